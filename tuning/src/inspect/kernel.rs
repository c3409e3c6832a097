//! Kernel-wide settings, limits, the host summary and the io_uring probe.

use crate::error::TuneError;
use crate::machine::{
    Choice, Clocksource, Host, IoUringStatus, KernelSettings, LimitBytes, MemlockLimit,
};
use crate::sysroot::SysRoot;

pub fn host(sys: &SysRoot) -> Result<Host, TuneError> {
    if sys.is_live() {
        let system = sysinfo::System::new_with_specifics(
            sysinfo::RefreshKind::new().with_cpu(sysinfo::CpuRefreshKind::new()),
        );
        return Ok(Host {
            hostname: sysinfo::System::host_name(),
            os: sysinfo::System::long_os_version(),
            kernel: sysinfo::System::kernel_version(),
            cpu_brand: system.cpus().first().map(|c| c.brand().trim().to_string()),
            source: "sysinfo",
        });
    }
    let cpu_brand = sys.read("proc/cpuinfo")?.and_then(|text| {
        text.lines().find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_string())
        })
    });
    Ok(Host {
        hostname: sys.read("proc/sys/kernel/hostname")?,
        os: None,
        kernel: sys.read("proc/sys/kernel/osrelease")?,
        cpu_brand,
        source: "proc",
    })
}

pub fn memory_total_bytes(sys: &SysRoot) -> Result<u64, TuneError> {
    let text = sys.read("proc/meminfo")?.unwrap_or_default();
    Ok(super::cpu::meminfo_kib(&text, "MemTotal:").unwrap_or(0) * 1024)
}

pub fn clocksource(sys: &SysRoot) -> Result<Clocksource, TuneError> {
    let dir = "sys/devices/system/clocksource/clocksource0";
    Ok(Clocksource {
        current: sys.read(&format!("{dir}/current_clocksource"))?,
        available: sys
            .read(&format!("{dir}/available_clocksource"))?
            .map(|a| a.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
    })
}

pub fn settings(sys: &SysRoot) -> Result<KernelSettings, TuneError> {
    let thp = "sys/kernel/mm/transparent_hugepage";
    Ok(KernelSettings {
        swappiness: sys.read_parsed("proc/sys/vm/swappiness", "a number")?,
        aio_max_nr: sys.read_parsed("proc/sys/fs/aio-max-nr", "a number")?,
        thp_enabled: sys
            .read(&format!("{thp}/enabled"))?
            .as_deref()
            .and_then(Choice::parse),
        thp_defrag: sys
            .read(&format!("{thp}/defrag"))?
            .as_deref()
            .and_then(Choice::parse),
        io_uring_disabled: sys.read_parsed("proc/sys/kernel/io_uring_disabled", "0, 1 or 2")?,
        nvme_poll_queues: sys
            .read_parsed("sys/module/nvme/parameters/poll_queues", "a queue count")?,
    })
}

/// RLIMIT_MEMLOCK from /proc/self/limits ("Max locked memory  8388608  8388608  bytes").
pub fn memlock(sys: &SysRoot) -> Result<MemlockLimit, TuneError> {
    let rel = "proc/self/limits";
    let text = sys.read(rel)?.unwrap_or_default();
    let parse_error = |value: &str| TuneError::Parse {
        path: sys.host_path(rel),
        value: value.to_string(),
        expected: "a memlock limit",
    };
    let Some(line) = text.lines().find(|l| l.starts_with("Max locked memory")) else {
        // No limits file (not Linux, or not captured): report no limit rather than guess one.
        return Ok(MemlockLimit {
            soft: LimitBytes::Unlimited,
            hard: LimitBytes::Unlimited,
        });
    };
    let values: Vec<&str> = line["Max locked memory".len()..]
        .split_whitespace()
        .collect();
    let limit = |value: Option<&&str>| -> Result<LimitBytes, TuneError> {
        match value {
            Some(&"unlimited") => Ok(LimitBytes::Unlimited),
            Some(v) => v.parse().map(LimitBytes::Bytes).map_err(|_| parse_error(v)),
            None => Err(parse_error(line)),
        }
    };
    Ok(MemlockLimit {
        soft: limit(values.first())?,
        hard: limit(values.get(1))?,
    })
}

/// Looks for a running irqbalance in /proc/<pid>/comm.
pub fn irqbalance_running(sys: &SysRoot) -> Result<bool, TuneError> {
    for pid in sys.list("proc")? {
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A process may exit between the listing and the read; that is not an error.
        if let Ok(Some(comm)) = sys.read(&format!("proc/{pid}/comm")) {
            if comm == "irqbalance" {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Sets up a small ring on the running kernel and asks which opcodes it supports.
pub fn probe_io_uring() -> IoUringStatus {
    use io_uring::opcode;
    const RING_ENTRIES: u32 = 8;
    // What the engine's glommio reactor and the network path submit.
    let needed: [(u8, &str); 10] = [
        (opcode::Read::CODE, "Read"),
        (opcode::Write::CODE, "Write"),
        (opcode::ReadFixed::CODE, "ReadFixed"),
        (opcode::WriteFixed::CODE, "WriteFixed"),
        (opcode::Fsync::CODE, "Fsync"),
        (opcode::Fallocate::CODE, "Fallocate"),
        (opcode::Accept::CODE, "Accept"),
        (opcode::Recv::CODE, "Recv"),
        (opcode::Send::CODE, "Send"),
        (opcode::Timeout::CODE, "Timeout"),
    ];
    let ring = match io_uring::IoUring::new(RING_ENTRIES) {
        Ok(ring) => ring,
        Err(e) => {
            return IoUringStatus::Unavailable {
                error: e.to_string(),
            }
        }
    };
    let mut probe = io_uring::Probe::new();
    if let Err(e) = ring.submitter().register_probe(&mut probe) {
        return IoUringStatus::Unavailable {
            error: format!("probe: {e}"),
        };
    }
    let missing = needed
        .iter()
        .filter(|(code, _)| !probe.is_supported(*code))
        .map(|(_, name)| (*name).to_string())
        .collect();
    IoUringStatus::Available { missing }
}
