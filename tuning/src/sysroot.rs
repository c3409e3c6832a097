//! Every read and write of /sys and /proc goes through [`SysRoot`], so tests point it at a
//! captured tree (`tests/fixtures/<shape>/`) instead of the live machine.
//!
//! Paths are given relative to the root ("sys/block/vda/queue/scheduler") and shown to
//! people as they would be on the machine ("/sys/block/vda/queue/scheduler").

use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::TuneError;

#[derive(Clone, Debug)]
pub struct SysRoot {
    root: PathBuf,
}

impl SysRoot {
    pub fn new(root: &Path) -> Result<Self, TuneError> {
        let root = root.canonicalize().map_err(|source| TuneError::Root {
            path: root.to_path_buf(),
            source,
        })?;
        Ok(SysRoot { root })
    }

    /// True when this is the running machine's own `/`.
    pub fn is_live(&self) -> bool {
        self.root == Path::new("/")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `rel` is on this host's file system.
    pub fn host_path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// How `rel` is named on the inspected machine.
    pub fn display(rel: &str) -> String {
        format!("/{}", rel.trim_start_matches('/'))
    }

    /// The file's contents, trimmed; `None` when the file is absent or the device does not
    /// implement the attribute.
    pub fn read(&self, rel: &str) -> Result<Option<String>, TuneError> {
        let path = self.host_path(rel);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.trim().to_string())),
            Err(e) if is_absent(&e) => Ok(None),
            Err(source) => Err(TuneError::Read { path, source }),
        }
    }

    /// The file's contents parsed as `T`.
    pub fn read_parsed<T: FromStr>(
        &self,
        rel: &str,
        expected: &'static str,
    ) -> Result<Option<T>, TuneError> {
        match self.read(rel)? {
            None => Ok(None),
            Some(value) => value.parse().map(Some).map_err(|_| TuneError::Parse {
                path: self.host_path(rel),
                value,
                expected,
            }),
        }
    }

    /// A CPU list file ("0-3,8").
    pub fn read_cpulist(&self, rel: &str) -> Result<Option<Vec<usize>>, TuneError> {
        match self.read(rel)? {
            None => Ok(None),
            Some(value) => {
                crate::cpulist::parse(&value)
                    .map(Some)
                    .ok_or_else(|| TuneError::Parse {
                        path: self.host_path(rel),
                        value,
                        expected: "a CPU list",
                    })
            }
        }
    }

    /// Entry names of a directory, sorted, without hidden entries; empty when absent.
    pub fn list(&self, rel: &str) -> Result<Vec<String>, TuneError> {
        let path = self.host_path(rel);
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if is_absent(&e) => return Ok(Vec::new()),
            Err(source) => return Err(TuneError::List { path, source }),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| TuneError::List {
                path: path.clone(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.host_path(rel).exists()
    }

    /// Follows sysfs symlinks (`sys/block/vda` -> `sys/devices/.../block/vda`); `None` when
    /// absent or when the target lies outside the root.
    pub fn resolve(&self, rel: &str) -> Result<Option<String>, TuneError> {
        let path = self.host_path(rel);
        let real = match path.canonicalize() {
            Ok(real) => real,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(source) => return Err(TuneError::Resolve { path, source }),
        };
        Ok(real
            .strip_prefix(&self.root)
            .ok()
            .map(|p| p.to_string_lossy().into_owned()))
    }

    /// Writes `value` to `rel` (a sysfs or procfs attribute).
    pub fn write(&self, rel: &str, value: &str) -> io::Result<()> {
        std::fs::write(self.host_path(rel), value)
    }
}

/// Errors that mean "this machine or device has no such attribute" rather than a failure.
fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(
            e.raw_os_error(),
            Some(libc::ENODEV | libc::ENXIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOTDIR)
        )
}

/// Parent of a relative path ("a/b/c" -> "a/b").
pub fn parent(rel: &str) -> Option<&str> {
    rel.rsplit_once('/').map(|(parent, _)| parent)
}

/// Last component of a relative path.
pub fn file_name(rel: &str) -> &str {
    rel.rsplit_once('/').map_or(rel, |(_, name)| name)
}
