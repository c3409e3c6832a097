//! What `sluice tune` found on the machine: plain data, filled in by [`crate::inspect`],
//! read by the placement and the advice. Serialized as is into the JSON report.

use std::path::PathBuf;

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Where /sys and /proc were read from ("/" on the live machine).
    pub root: PathBuf,
    pub host: Host,
    /// Online CPUs, by id.
    pub cpus: Vec<Cpu>,
    pub smt: Smt,
    pub numa_nodes: Vec<NumaNode>,
    /// MemTotal from /proc/meminfo.
    pub memory_total_bytes: u64,
    pub clocksource: Clocksource,
    pub kernel: KernelSettings,
    /// RLIMIT_MEMLOCK of this process (what a shell-started broker would get).
    pub memlock: MemlockLimit,
    pub io_uring: IoUringStatus,
    pub data_dirs: Vec<DataDir>,
    /// Physical network interfaces (virtual ones such as `lo` are left out).
    pub nics: Vec<Nic>,
    /// An `irqbalance` process is running (it would move IRQs back onto shard cores).
    pub irqbalance_running: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Host {
    pub hostname: Option<String>,
    pub os: Option<String>,
    pub kernel: Option<String>,
    pub cpu_brand: Option<String>,
    /// "sysinfo" on the live machine, "proc" for a captured tree.
    pub source: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cpu {
    pub id: usize,
    /// topology/core_id
    pub core_id: Option<usize>,
    /// topology/physical_package_id (the socket)
    pub package_id: Option<usize>,
    /// topology/thread_siblings_list: the hardware threads of this CPU's core, itself included.
    pub siblings: Vec<usize>,
    pub node: Option<usize>,
    /// cpufreq/scaling_governor; `None` without cpufreq (most VMs).
    pub governor: Option<String>,
    pub available_governors: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Smt {
    /// smt/active
    pub active: Option<bool>,
    /// smt/control ("on", "off", "notsupported", ...)
    pub control: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NumaNode {
    pub id: usize,
    pub cpus: Vec<usize>,
    pub memory_total_bytes: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Clocksource {
    pub current: Option<String>,
    pub available: Vec<String>,
}

/// A sysfs choice attribute such as "none [mq-deadline] kyber": the bracketed one is current.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Choice {
    pub current: String,
    pub available: Vec<String>,
}

impl Choice {
    pub fn parse(text: &str) -> Option<Choice> {
        let mut current = None;
        let mut available = Vec::new();
        for word in text.split_whitespace() {
            let name = word.trim_start_matches('[').trim_end_matches(']');
            if word.starts_with('[') {
                current = Some(name.to_string());
            }
            available.push(name.to_string());
        }
        // A file with a single value and no brackets (e.g. "none") names the current one.
        if current.is_none() && available.len() == 1 {
            current = available.first().cloned();
        }
        Some(Choice {
            current: current?,
            available,
        })
    }

    pub fn offers(&self, name: &str) -> bool {
        self.available.iter().any(|a| a == name)
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct KernelSettings {
    /// vm.swappiness
    pub swappiness: Option<u32>,
    /// fs.aio-max-nr
    pub aio_max_nr: Option<u64>,
    /// /sys/kernel/mm/transparent_hugepage/enabled
    pub thp_enabled: Option<Choice>,
    /// /sys/kernel/mm/transparent_hugepage/defrag
    pub thp_defrag: Option<Choice>,
    /// kernel.io_uring_disabled (0 = allowed, 1 = privileged only, 2 = off); absent before 6.6.
    pub io_uring_disabled: Option<u32>,
    /// nvme.poll_queues module parameter; absent without the nvme driver.
    pub nvme_poll_queues: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "bytes")]
pub enum LimitBytes {
    Unlimited,
    Bytes(u64),
}

impl LimitBytes {
    /// True when at least `bytes` may be locked.
    pub fn allows(self, bytes: u64) -> bool {
        match self {
            LimitBytes::Unlimited => true,
            LimitBytes::Bytes(limit) => limit >= bytes,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MemlockLimit {
    pub soft: LimitBytes,
    pub hard: LimitBytes,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum IoUringStatus {
    /// A ring was set up; `missing` names the opcodes Sluice uses that the kernel lacks.
    Available { missing: Vec<String> },
    /// Setting up a ring failed (ENOSYS: too old; EPERM: io_uring_disabled or seccomp).
    Unavailable { error: String },
    /// Not probed: inspecting a captured tree, not this kernel.
    NotProbed,
}

#[derive(Clone, Debug, Serialize)]
pub struct DataDir {
    /// As given.
    pub path: PathBuf,
    /// The existing directory inspected: the path itself, or its nearest existing ancestor.
    pub inspected_path: PathBuf,
    pub mount: Option<Mount>,
    /// The physical block devices holding it (the members of a dm/md device, or the disk
    /// itself); empty when it is on no block device (tmpfs, overlay on tmpfs, ...).
    pub devices: Vec<BlockDevice>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    /// "major:minor"
    pub device_number: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct BlockDevice {
    /// Kernel name of the whole disk ("nvme0n1", "vda").
    pub name: String,
    pub numa_node: Option<usize>,
    pub scheduler: Option<Choice>,
    pub nomerges: Option<u32>,
    pub io_poll: Option<u32>,
    pub nr_requests: Option<u32>,
    pub logical_block_bytes: Option<u32>,
    pub physical_block_bytes: Option<u32>,
    pub rotational: Option<bool>,
    /// "write back" (volatile cache, flushed by fdatasync) or "write through".
    pub write_cache: Option<String>,
}

impl BlockDevice {
    pub fn is_nvme(&self) -> bool {
        self.name.starts_with("nvme")
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Nic {
    pub name: String,
    pub operstate: Option<String>,
    pub numa_node: Option<usize>,
    pub irqs: Vec<Irq>,
}

impl Nic {
    pub fn is_up(&self) -> bool {
        self.operstate.as_deref() == Some("up")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Irq {
    pub number: u32,
    /// Action name from /proc/interrupts ("eth0-TxRx-3", "virtio2-input.0").
    pub name: Option<String>,
    /// /proc/irq/N/smp_affinity_list
    pub affinity: Option<Vec<usize>>,
}

impl Machine {
    pub fn cpu(&self, id: usize) -> Option<&Cpu> {
        self.cpus.iter().find(|c| c.id == id)
    }

    pub fn node(&self, id: usize) -> Option<&NumaNode> {
        self.numa_nodes.iter().find(|n| n.id == id)
    }

    /// Every distinct physical disk under the data directories.
    pub fn data_devices(&self) -> Vec<&BlockDevice> {
        let mut devices: Vec<&BlockDevice> = Vec::new();
        for device in self.data_dirs.iter().flat_map(|d| d.devices.iter()) {
            if !devices.iter().any(|d| d.name == device.name) {
                devices.push(device);
            }
        }
        devices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracketed_entry_is_the_current_choice() {
        let c = Choice::parse("none [mq-deadline] kyber bfq").expect("parses");
        assert_eq!(c.current, "mq-deadline");
        assert!(c.offers("none"));
        assert_eq!(c.available.len(), 4);
    }

    #[test]
    fn single_unbracketed_value_is_current() {
        let c = Choice::parse("none").expect("parses");
        assert_eq!(c.current, "none");
        assert!(Choice::parse("a b c").is_none());
    }
}
