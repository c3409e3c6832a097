//! Findings about the block devices under the data directories.

use super::{Finding, Verdict};
use crate::limits::{IO_ALIGNMENT_BYTES, NOMERGES_ADVISED};
use crate::machine::{BlockDevice, Machine};
use crate::placement::Placement;

pub fn disks(machine: &Machine, placement: &Placement) -> Vec<Finding> {
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
