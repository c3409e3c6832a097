//! Data directory -> mount -> block device(s) -> queue settings.

use std::path::{Component, Path, PathBuf};

use crate::error::TuneError;
use crate::machine::{BlockDevice, Choice, DataDir, Mount};
use crate::sysroot::{self, SysRoot};

/// dm on md on a partition is about as deep as stacks go; bounds the walk.
const DEVICE_STACK_DEPTH_MAX: usize = 4;

pub fn data_dir(sys: &SysRoot, dir: &Path) -> Result<DataDir, TuneError> {
    let inspected_path = inspected_path(sys, dir)?;
    let mounts = match sys.read("proc/self/mountinfo")? {
        Some(text) => parse_mountinfo(&text),
        None => Vec::new(),
    };
    let mount = mount_of(&mounts, &inspected_path).cloned();
    let mut devices = Vec::new();
    if let Some(disk) = mount
        .as_ref()
        .map(|m| disk_of(sys, m))
        .transpose()?
        .flatten()
    {
        for leaf in physical_disks(sys, &disk, 0)? {
            let device = block_device(sys, &leaf)?;
            if !devices.iter().any(|d: &BlockDevice| d.name == device.name) {
                devices.push(device);
            }
        }
    }
    Ok(DataDir {
        path: dir.to_path_buf(),
        inspected_path,
        mount,
        devices,
    })
}

/// The directory to look up in the mount table. On the live machine: the nearest existing
/// ancestor, symlinks resolved (the data directory may not exist yet). In a captured tree
/// the path cannot be resolved, so it is only made absolute and normalized.
fn inspected_path(sys: &SysRoot, dir: &Path) -> Result<PathBuf, TuneError> {
    if !sys.is_live() {
        return Ok(normalize(&Path::new("/").join(dir)));
    }
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|source| TuneError::DataDir {
                path: dir.to_path_buf(),
                source,
            })?
            .join(dir)
    };
    let mut candidate = normalize(&absolute);
    loop {
        match candidate.canonicalize() {
            Ok(real) => return Ok(real),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match candidate.parent() {
                Some(parent) => candidate = parent.to_path_buf(),
                None => {
                    return Err(TuneError::DataDir {
                        path: dir.to_path_buf(),
                        source: e,
                    })
                }
            },
            Err(source) => {
                return Err(TuneError::DataDir {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Lines of /proc/self/mountinfo:
/// `id parent major:minor root mount_point options [optional...] - fs_type source super_options`
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let head: Vec<&str> = head.split_whitespace().collect();
            let mut tail = tail.split_whitespace();
            Some(Mount {
                device_number: head.get(2)?.to_string(),
                mount_point: unescape_octal(head.get(4)?),
                fs_type: tail.next()?.to_string(),
                source: unescape_octal(tail.next()?),
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match escape {
            Some(digits) => {
                let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount holding `path`: the longest mount point that is a path prefix of it; of equal
/// ones the last mounted (it hides the others).
pub fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .fold(None, |best: Option<&Mount>, m| match best {
            Some(b) if b.mount_point.len() > m.mount_point.len() => Some(b),
            _ => Some(m),
        })
}

/// sysfs directory of the whole disk behind a mount, if it is on a block device.
fn disk_of(sys: &SysRoot, mount: &Mount) -> Result<Option<String>, TuneError> {
    let by_number = if mount.device_number.starts_with("0:") {
        // Anonymous device numbers (tmpfs, overlay, btrfs subvolumes): fall back to the source.
        None
    } else {
        sys.resolve(&format!("sys/dev/block/{}", mount.device_number))?
    };
    let device = match by_number {
        Some(device) => Some(device),
        None => match mount.source.strip_prefix("/dev/") {
            Some(name) if !name.contains('/') => sys.resolve(&format!("sys/class/block/{name}"))?,
            _ => None,
        },
    };
    Ok(device.map(|d| whole_disk(sys, &d)))
}

/// A partition's queue settings live on its disk, the parent directory.
fn whole_disk(sys: &SysRoot, device: &str) -> String {
    if sys.exists(&format!("{device}/partition")) {
        if let Some(parent) = sysroot::parent(device) {
            return parent.to_string();
        }
    }
    device.to_string()
}

/// The disks at the bottom of a dm/md stack (`slaves/`), or the disk itself.
fn physical_disks(sys: &SysRoot, disk: &str, depth: usize) -> Result<Vec<String>, TuneError> {
    let slaves = sys.list(&format!("{disk}/slaves"))?;
    if slaves.is_empty() || depth >= DEVICE_STACK_DEPTH_MAX {
        return Ok(vec![disk.to_string()]);
    }
    let mut disks = Vec::new();
    for slave in slaves {
        if let Some(device) = sys.resolve(&format!("sys/class/block/{slave}"))? {
            disks.extend(physical_disks(sys, &whole_disk(sys, &device), depth + 1)?);
        }
    }
    Ok(disks)
}

fn block_device(sys: &SysRoot, disk: &str) -> Result<BlockDevice, TuneError> {
    let queue = |attr: &str| format!("{disk}/queue/{attr}");
    let mut numa_node = super::numa_node_above(sys, disk)?;
    if numa_node.is_none() {
        // NVMe multipath namespaces hang off a virtual subsystem; the controller knows.
        numa_node = sys
            .read_parsed::<i64>(&format!("{disk}/device/numa_node"), "a NUMA node number")?
            .and_then(|n| usize::try_from(n).ok());
    }
    Ok(BlockDevice {
        name: sysroot::file_name(disk).to_string(),
        numa_node,
        scheduler: sys
            .read(&queue("scheduler"))?
            .as_deref()
            .and_then(Choice::parse),
        nomerges: sys.read_parsed(&queue("nomerges"), "0, 1 or 2")?,
        io_poll: sys.read_parsed(&queue("io_poll"), "0 or 1")?,
        nr_requests: sys.read_parsed(&queue("nr_requests"), "a request count")?,
        logical_block_bytes: sys.read_parsed(&queue("logical_block_size"), "a block size")?,
        physical_block_bytes: sys.read_parsed(&queue("physical_block_size"), "a block size")?,
        rotational: sys
            .read_parsed::<u8>(&queue("rotational"), "0 or 1")?
            .map(|r| r == 1),
        write_cache: sys.read(&queue("write_cache"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
40 27 259:5 / /var/lib/sluice rw,noatime shared:7 - xfs /dev/nvme1n1 rw
41 27 0:40 / /mnt/my\\040disk rw - tmpfs tmpfs rw
";

    #[test]
    fn longest_mount_point_prefix_wins() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 4);
        let m = mount_of(&mounts, Path::new("/var/lib/sluice/data")).expect("mounted");
        assert_eq!(m.source, "/dev/nvme1n1");
        assert_eq!(m.device_number, "259:5");
        let root = mount_of(&mounts, Path::new("/var/lib/sluicex")).expect("mounted");
        assert_eq!(
            root.mount_point, "/",
            "a mount point matches whole components only"
        );
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts[3].mount_point, "/mnt/my disk");
        assert_eq!(mounts[3].fs_type, "tmpfs");
    }

    #[test]
    fn paths_are_normalized_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
