//! Findings about NIC interrupts: on which cores they land, and irqbalance.

use super::{Finding, Verdict};
use crate::cpulist;
use crate::machine::Machine;
use crate::placement::Placement;

pub fn nics(machine: &Machine, placement: &Placement) -> Vec<Finding> {
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
