//! Each finding about the machine: what was seen, whether it suits Sluice, and the exact
//! change advised - as file writes `--apply` can make, or steps for a person.

mod disk;
mod irq;

use serde::Serialize;

use crate::cpulist;
use crate::limits::SWAPPINESS_ADVISED;
use crate::machine::{IoUringStatus, LimitBytes, Machine};
use crate::placement::Placement;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Already as Sluice wants it.
    Good,
    /// Reported for the record; nothing to change.
    Info,
    /// Worth changing; `--check` still passes.
    Advise,
    /// Costs Sluice throughput or latency badly, or stops it: `--check` fails.
    Important,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Good => "ok",
            Verdict::Info => "info",
            Verdict::Advise => "advise",
            Verdict::Important => "FIX",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    /// Write `value` to the sysfs/procfs file `path` (as named on the machine).
    Write { path: String, value: String },
    /// A change `--apply` cannot make (limits, boot parameters) or a way to persist one.
    Manual { text: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub topic: &'static str,
    /// What it is about: "kernel", a disk, a NIC, a CPU list.
    pub subject: String,
    pub observed: String,
    pub advised: Option<String>,
    pub verdict: Verdict,
    pub why: String,
    pub actions: Vec<Action>,
}

impl Finding {
    fn new(topic: &'static str, subject: impl Into<String>, observed: impl Into<String>) -> Self {
        Finding {
            topic,
            subject: subject.into(),
            observed: observed.into(),
            advised: None,
            verdict: Verdict::Good,
            why: String::new(),
            actions: Vec::new(),
        }
    }

    fn verdict(mut self, verdict: Verdict, why: impl Into<String>) -> Self {
        self.verdict = verdict;
        self.why = why.into();
        self
    }

    fn advise(mut self, advised: impl Into<String>) -> Self {
        self.advised = Some(advised.into());
        self
    }

    fn write(mut self, path: impl Into<String>, value: impl Into<String>) -> Self {
        self.actions.push(Action::Write {
            path: path.into(),
            value: value.into(),
        });
        self
    }

    fn manual(mut self, text: impl Into<String>) -> Self {
        self.actions.push(Action::Manual { text: text.into() });
        self
    }
}

/// Everything worth saying about `machine` when it runs `placement`.
pub fn assess(machine: &Machine, placement: &Placement) -> Vec<Finding> {
    let mut findings = vec![io_uring(machine), memlock(machine, placement)];
    findings.extend(cpus(machine, placement));
    findings.push(clocksource(machine));
    findings.extend(disk::disks(machine, placement));
    findings.extend(irq::nics(machine, placement));
    findings.extend(memory(machine));
    findings
}

fn io_uring(machine: &Machine) -> Finding {
    let disabled = machine.kernel.io_uring_disabled.unwrap_or(0);
    let finding = match &machine.io_uring {
        IoUringStatus::Available { missing } if missing.is_empty() => {
            Finding::new("io_uring", "kernel", "available")
                .verdict(Verdict::Good, "every opcode Sluice submits is supported")
        }
        IoUringStatus::Available { missing } => Finding::new(
            "io_uring",
            "kernel",
            format!("missing {}", missing.join(", ")),
        )
        .verdict(
            Verdict::Important,
            "the engine submits these opcodes; run a kernel of 5.19 or later",
        )
        .advise("a newer kernel"),
        IoUringStatus::Unavailable { error } => Finding::new(
            "io_uring",
            "kernel",
            format!("unavailable: {error}"),
        )
        .verdict(
            Verdict::Important,
            "every shard runs on io_uring; Sluice cannot start without it",
        )
        .advise("io_uring allowed (kernel.io_uring_disabled = 0, no seccomp filter blocking it)"),
        IoUringStatus::NotProbed => {
            Finding::new("io_uring", "kernel", "not probed (captured tree)")
                .verdict(Verdict::Info, "only the running kernel can be probed")
        }
    };
    if disabled == 0 {
        return finding;
    }
    Finding::new(
        "io_uring",
        "kernel",
        format!("kernel.io_uring_disabled = {disabled}"),
    )
    .verdict(
        Verdict::Important,
        "io_uring is switched off or limited to privileged processes",
    )
    .advise("0")
    .write("/proc/sys/kernel/io_uring_disabled", "0")
    .manual("persist: echo 'kernel.io_uring_disabled = 0' > /etc/sysctl.d/60-sluice.conf")
}

fn memlock(machine: &Machine, placement: &Placement) -> Finding {
    let shards = placement.shard_cores.len() as u64;
    let wanted = placement.io_memory_bytes_memlock_unlimited * shards;
    let soft = machine.memlock.soft;
    let observed = match soft {
        LimitBytes::Unlimited => "unlimited".to_string(),
        LimitBytes::Bytes(b) => format!("{} KiB", b / 1024),
    };
    let finding = Finding::new("memlock limit", "process", observed);
    if soft == LimitBytes::Unlimited || soft.allows(wanted * 4 / 3) {
        return finding.verdict(
            Verdict::Good,
            "room to register every shard's I/O memory with io_uring",
        );
    }
    finding
        .verdict(
            Verdict::Important,
            format!(
                "{shards} shards want {} MiB of registered I/O memory; io_memory_bytes is cut to fit",
                wanted >> 20
            ),
        )
        .advise("unlimited")
        .manual("systemd: LimitMEMLOCK=infinity in the [Service] section of sluice.service")
        .manual("shell: '* - memlock unlimited' in /etc/security/limits.d/sluice.conf, log in again, ulimit -l unlimited")
}

fn cpus(machine: &Machine, placement: &Placement) -> Vec<Finding> {
    let mut findings = Vec::new();
    let threads_per_core = machine
        .cpus
        .iter()
        .map(|c| c.siblings.len())
        .max()
        .unwrap_or(1);
    let smt = Finding::new(
        "SMT",
        "cpus",
        format!(
            "{} CPUs, {} thread(s) per core, smt control {}",
            machine.cpus.len(),
            threads_per_core,
            machine.smt.control.as_deref().unwrap_or("unknown")
        ),
    );
    findings.push(if threads_per_core > 1 {
        smt.verdict(
            Verdict::Info,
            "shards take one thread per core; siblings serve IRQs, kernel threads and the OS",
        )
    } else {
        smt.verdict(
            Verdict::Info,
            "one thread per core: every CPU can run a shard",
        )
    });

    let nodes = machine.numa_nodes.len();
    findings.push(
        Finding::new("NUMA", "machine", format!("{} node(s)", nodes.max(1))).verdict(
            Verdict::Info,
            format!(
                "shards on node {}: {}",
                placement.node.unwrap_or(0),
                placement.node_reason
            ),
        ),
    );

    // The governor matters on the CPUs Sluice uses: its shards and the IRQ/OS core.
    let used: Vec<usize> = placement
        .shard_cores
        .iter()
        .chain(&placement.os_cores)
        .copied()
        .collect();
    let used_cpus: Vec<_> = machine
        .cpus
        .iter()
        .filter(|c| used.contains(&c.id))
        .collect();
    if used_cpus.iter().all(|c| c.governor.is_none()) {
        findings.push(
            Finding::new("cpu governor", "cpus", "no cpufreq (fixed frequency or VM)").verdict(
                Verdict::Info,
                "the frequency is not the kernel's to set here",
            ),
        );
        return findings;
    }
    let slow: Vec<_> = used_cpus
        .iter()
        .filter(|c| c.governor.as_deref().is_some_and(|g| g != "performance"))
        .collect();
    if slow.is_empty() {
        findings.push(
            Finding::new("cpu governor", cpulist::format(&used), "performance")
                .verdict(Verdict::Good, "shard cores stay at full clock"),
        );
        return findings;
    }
    let ids: Vec<usize> = slow.iter().map(|c| c.id).collect();
    let mut governors: Vec<&str> = slow.iter().filter_map(|c| c.governor.as_deref()).collect();
    governors.sort_unstable();
    governors.dedup();
    let mut finding = Finding::new("cpu governor", cpulist::format(&ids), governors.join(", "))
        .verdict(
            Verdict::Important,
            "a shard polls in bursts; a governor that scales down adds wake-up and ramp-up latency to every request",
        )
        .advise("performance");
    for cpu in slow
        .iter()
        .filter(|c| c.available_governors.iter().any(|g| g == "performance"))
    {
        finding = finding.write(
            format!(
                "/sys/devices/system/cpu/cpu{}/cpufreq/scaling_governor",
                cpu.id
            ),
            "performance",
        );
    }
    findings.push(finding.manual(
        "persist: cpupower frequency-set -g performance at boot (cpupower.service or tuned)",
    ));
    findings
}

fn clocksource(machine: &Machine) -> Finding {
    let current = machine
        .clocksource
        .current
        .clone()
        .unwrap_or_else(|| "unknown".into());
    let finding = Finding::new("clocksource", "kernel", current.clone());
    // These are read in user space through the vDSO; hpet and acpi_pm cost a system call.
    if matches!(
        current.as_str(),
        "tsc" | "kvm-clock" | "arch_sys_counter" | "unknown"
    ) {
        return finding.verdict(Verdict::Good, "timestamps are read without a system call");
    }
    let finding = finding.verdict(
        Verdict::Advise,
        "each clock read is a system call; the engine stamps every batch and the benchmark every record",
    );
    if machine.clocksource.available.iter().any(|c| c == "tsc") {
        finding
            .advise("tsc")
            .write(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
                "tsc",
            )
            .manual("persist: boot with clocksource=tsc (check dmesg that the TSC is stable)")
    } else {
        finding.advise("tsc (not offered: the kernel found the TSC unstable)")
    }
}

fn memory(machine: &Machine) -> Vec<Finding> {
    let mut findings = Vec::new();
    let thp = "/sys/kernel/mm/transparent_hugepage";
    if let Some(enabled) = &machine.kernel.thp_enabled {
        let finding = Finding::new("THP enabled", "kernel", enabled.current.clone());
        findings.push(if enabled.current == "always" && enabled.offers("madvise") {
            finding
                .verdict(Verdict::Advise, "khugepaged collapsing pages behind a shard's back causes latency spikes; the engine's buffers need no huge pages")
                .advise("madvise")
                .write(format!("{thp}/enabled"), "madvise")
                .manual("persist: boot with transparent_hugepage=madvise")
        } else {
            finding.verdict(Verdict::Good, "huge pages only where a program asks for them")
        });
    }
    if let Some(defrag) = &machine.kernel.thp_defrag {
        let finding = Finding::new("THP defrag", "kernel", defrag.current.clone());
        findings.push(if defrag.current == "always" && defrag.offers("madvise") {
            finding
                .verdict(
                    Verdict::Advise,
                    "synchronous compaction stalls the faulting thread, which may be a shard",
                )
                .advise("madvise")
                .write(format!("{thp}/defrag"), "madvise")
        } else {
            finding.verdict(
                Verdict::Good,
                "no synchronous compaction for programs that did not ask",
            )
        });
    }
    if let Some(swappiness) = machine.kernel.swappiness {
        let finding = Finding::new("swappiness", "kernel", swappiness.to_string());
        findings.push(if swappiness <= SWAPPINESS_ADVISED {
            finding.verdict(Verdict::Good, "the broker's memory stays resident")
        } else {
            let value = SWAPPINESS_ADVISED.to_string();
            finding
                .verdict(
                    Verdict::Advise,
                    "a swapped-out page of a shard turns one request into a disk read",
                )
                .advise(value.clone())
                .write("/proc/sys/vm/swappiness", value.clone())
                .manual(format!(
                    "persist: echo 'vm.swappiness = {value}' > /etc/sysctl.d/60-sluice.conf"
                ))
        });
    }
    if let Some(aio_max_nr) = machine.kernel.aio_max_nr {
        findings.push(
            Finding::new("fs.aio-max-nr", "kernel", aio_max_nr.to_string()).verdict(
                Verdict::Info,
                "glommio submits through io_uring, not Linux AIO; this limit does not bind Sluice",
            ),
        );
    }
    findings
}
