//! Each finding about the machine: what was seen, whether it suits Sluice, and the exact
//! change advised - as file writes `--apply` can make, or steps for a person.

use serde::Serialize;

use crate::cpulist;
use crate::limits::{IO_ALIGNMENT_BYTES, NOMERGES_ADVISED, SWAPPINESS_ADVISED};
use crate::machine::{BlockDevice, IoUringStatus, LimitBytes, Machine};
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
    findings.extend(disks(machine, placement));
    findings.extend(nics(machine, placement));
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

fn disks(machine: &Machine, placement: &Placement) -> Vec<Finding> {
    let mut findings = Vec::new();
    for dir in &machine.data_dirs {
        if dir.devices.is_empty() {
            let on = dir
                .mount
                .as_ref()
                .map_or("no mount found".to_string(), |m| {
                    format!("{} {}", m.fs_type, m.source)
                });
            findings.push(
                Finding::new("data directory", dir.path.display().to_string(), on)
                    .verdict(
                        Verdict::Advise,
                        "not on a block device: nothing is durable and direct I/O may be refused",
                    )
                    .advise("a directory on an NVMe file system"),
            );
        }
    }
    for device in machine.data_devices() {
        findings.extend(disk(device, placement));
    }
    findings
}

fn disk(d: &BlockDevice, placement: &Placement) -> Vec<Finding> {
    let mut findings = Vec::new();
    let name = d.name.as_str();
    let queue = |attr: &str| format!("/sys/block/{name}/queue/{attr}");
    let rotational = d.rotational == Some(true);
    let udev = |attr: &str, value: &str| {
        format!("persist: udev rule ACTION==\"add|change\", KERNEL==\"{name}\", ATTR{{queue/{attr}}}=\"{value}\"")
    };

    if let Some(scheduler) = &d.scheduler {
        let wanted = if rotational { "mq-deadline" } else { "none" };
        let finding = Finding::new("disk scheduler", name, scheduler.current.clone());
        findings.push(if scheduler.current == wanted || !scheduler.offers(wanted) {
            finding.verdict(Verdict::Good, "no reordering layer between the shard and the device")
        } else if rotational {
            finding
                .verdict(Verdict::Advise, "on a spinning disk mq-deadline keeps reads from starving behind writes")
                .advise(wanted)
                .write(queue("scheduler"), wanted)
                .manual(udev("scheduler", wanted))
        } else {
            finding
                .verdict(Verdict::Important, "the engine already issues large sequential O_DIRECT writes; a scheduler only adds latency and CPU on flash")
                .advise(wanted)
                .write(queue("scheduler"), wanted)
                .manual(udev("scheduler", wanted))
        });
    }

    if let Some(nomerges) = d.nomerges {
        let finding = Finding::new("disk nomerges", name, nomerges.to_string());
        findings.push(if rotational || nomerges == NOMERGES_ADVISED {
            finding.verdict(Verdict::Good, "merge attempts only where they can help")
        } else {
            let value = NOMERGES_ADVISED.to_string();
            finding
                .verdict(Verdict::Advise, "writes arrive whole and aligned; looking for merges costs CPU on every request")
                .advise(value.clone())
                .write(queue("nomerges"), value.clone())
                .manual(udev("nomerges", &value))
        });
    }

    if d.is_nvme() {
        let io_poll = d.io_poll.unwrap_or(0);
        let finding = Finding::new("disk io_poll", name, format!("io_poll {io_poll}"));
        findings.push(if io_poll == 1 {
            finding.verdict(Verdict::Good, "poll queues are set up: shards can reap completions without interrupts")
        } else {
            finding
                .verdict(Verdict::Advise, "with poll queues the engine's IOPOLL ring reaps reads without an interrupt")
                .advise(format!("nvme poll queues ({} shards)", placement.shard_cores.len()))
                .manual(format!(
                    "boot with nvme.poll_queues={n} (or 'options nvme poll_queues={n}' in /etc/modprobe.d/nvme.conf, then rebuild the initramfs)",
                    n = placement.shard_cores.len()
                ))
        });
    } else if let Some(io_poll) = d.io_poll {
        findings.push(
            Finding::new("disk io_poll", name, format!("io_poll {io_poll}"))
                .verdict(Verdict::Info, "completion polling needs NVMe poll queues"),
        );
    }

    if let (Some(logical), Some(physical)) = (d.logical_block_bytes, d.physical_block_bytes) {
        let finding = Finding::new(
            "disk block size",
            name,
            format!("logical {logical}, physical {physical}"),
        );
        findings.push(if logical <= IO_ALIGNMENT_BYTES && physical <= IO_ALIGNMENT_BYTES {
            finding.verdict(Verdict::Good, "the engine's 4096-byte aligned writes fit whole blocks")
        } else {
            finding
                .verdict(Verdict::Important, "the engine aligns O_DIRECT I/O to 4096 bytes; larger blocks mean refused or read-modify-write I/O")
                .advise(format!("a device (or namespace format) with blocks of at most {IO_ALIGNMENT_BYTES} bytes"))
        });
    }

    if let Some(rotational) = d.rotational {
        let finding = Finding::new("disk rotational", name, rotational.to_string());
        findings.push(if !rotational {
            finding.verdict(Verdict::Good, "flash: sequential and random I/O both fast")
        } else if name.starts_with("vd") {
            finding
                .verdict(Verdict::Advise, "virtio-blk reports rotational unless told otherwise; if the backing store is flash, say so and the scheduler advice changes")
                .advise("false, if the host disk is flash")
                .manual(format!("if the host disk is flash: echo 0 > /sys/block/{name}/queue/rotational"))
        } else {
            finding
                .verdict(Verdict::Advise, "Sluice is built for NVMe; a spinning disk caps throughput and tail latency")
                .advise("an NVMe data directory")
        });
    }

    if let Some(cache) = &d.write_cache {
        let why = if cache == "write back" {
            "volatile cache: each group commit's fdatasync sends a cache flush (safe; leave it)"
        } else {
            "no volatile cache (or power-loss protected): fdatasync needs no flush"
        };
        findings.push(
            Finding::new("disk write cache", name, cache.clone()).verdict(Verdict::Info, why),
        );
    }

    if let Some(node) = d.numa_node {
        if placement.node.is_some_and(|p| p != node) {
            findings.push(
                Finding::new("disk NUMA node", name, format!("node {node}"))
                    .verdict(
                        Verdict::Advise,
                        "shards run on another node; every I/O crosses sockets",
                    )
                    .advise(format!(
                        "data disks on node {}",
                        placement.node.unwrap_or(0)
                    )),
            );
        }
    }
    findings
}

fn nics(machine: &Machine, placement: &Placement) -> Vec<Finding> {
    let mut findings = Vec::new();
    let os_cores = cpulist::format(&placement.os_cores);
    for nic in machine.nics.iter().filter(|n| n.is_up()) {
        let on_shards: Vec<_> = nic
            .irqs
            .iter()
            .filter(|irq| match &irq.affinity {
                Some(cpus) => cpus.iter().any(|c| placement.shard_cores.contains(c)),
                None => false,
            })
            .collect();
        let observed = format!(
            "{} IRQs, {} on shard cores",
            nic.irqs.len(),
            on_shards.len()
        );
        let finding = Finding::new("NIC IRQs", nic.name.clone(), observed);
        if placement.os_cores.is_empty() {
            findings.push(finding.verdict(
                Verdict::Info,
                "no core is kept for IRQs on a machine this small; interrupts share the shard cores",
            ));
        } else if on_shards.is_empty() {
            findings.push(finding.verdict(
                Verdict::Good,
                format!("interrupts stay on the IRQ/OS cores ({os_cores})"),
            ));
        } else {
            let mut finding = finding
                .verdict(Verdict::Important, "an interrupt on a shard core preempts its reactor and adds its handler to request latency")
                .advise(format!("smp_affinity_list {os_cores}"));
            for irq in on_shards {
                finding = finding.write(
                    format!("/proc/irq/{}/smp_affinity_list", irq.number),
                    os_cores.clone(),
                );
            }
            findings.push(
                finding
                    .manual("persist: reapply at boot (sluice tune --apply from a oneshot unit)"),
            );
        }
        if let (Some(node), Some(shards_node)) = (nic.numa_node, placement.node) {
            if node != shards_node {
                findings.push(
                    Finding::new("NIC NUMA node", nic.name.clone(), format!("node {node}"))
                        .verdict(
                            Verdict::Advise,
                            "shards run on another node; every packet crosses sockets",
                        )
                        .advise(format!("the NIC in a slot on node {shards_node}")),
                );
            }
        }
    }
    if machine.irqbalance_running && !placement.os_cores.is_empty() {
        findings.push(
            Finding::new("irqbalance", "service", "running")
                .verdict(
                    Verdict::Important,
                    "irqbalance moves IRQs back onto shard cores",
                )
                .advise("stopped, or banned from the shard cores")
                .manual("systemctl disable --now irqbalance")
                .manual(format!(
                    "or keep it and set IRQBALANCE_BANNED_CPULIST={} in /etc/default/irqbalance",
                    cpulist::format(&placement.shard_cores)
                )),
        );
    }
    findings
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
