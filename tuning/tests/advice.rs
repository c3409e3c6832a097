//! Findings on the fixtures: what is flagged, how important, and the writes advised.

mod common;

use common::*;
use sluice_tuning::{Action, Finding, Verdict};

fn find<'a>(findings: &'a [Finding], topic: &str, subject: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.topic == topic && f.subject == subject)
        .unwrap_or_else(|| panic!("no finding {topic} / {subject} in {findings:#?}"))
}

fn writes(finding: &Finding) -> Vec<(String, String)> {
    finding
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Write { path, value } => Some((path.clone(), value.clone())),
            Action::Manual { .. } => None,
        })
        .collect()
}

#[test]
fn vm_check_fails_only_on_the_memlock_limit() {
    let (_, _, findings) = tuned(VM_2CORE, "/work/main/data");
    let important: Vec<&str> = findings
        .iter()
        .filter(|f| f.verdict == Verdict::Important)
        .map(|f| f.topic)
        .collect();
    assert_eq!(important, vec!["memlock limit"]);
    let memlock = find(&findings, "memlock limit", "process");
    assert_eq!(memlock.observed, "8192 KiB");
    assert_eq!(memlock.advised.as_deref(), Some("unlimited"));
    assert!(
        writes(memlock).is_empty(),
        "setrlimit does not persist: advice only"
    );
    assert!(memlock
        .actions
        .iter()
        .any(|a| matches!(a, Action::Manual { text } if text.contains("LimitMEMLOCK=infinity"))));
}

#[test]
fn vm_rotational_virtio_disk_keeps_mq_deadline_and_merges() {
    let (_, _, findings) = tuned(VM_2CORE, "/work/main/data");
    assert_eq!(
        find(&findings, "disk scheduler", "vda").verdict,
        Verdict::Good
    );
    assert_eq!(
        find(&findings, "disk nomerges", "vda").verdict,
        Verdict::Good
    );
    assert_eq!(
        find(&findings, "disk rotational", "vda").verdict,
        Verdict::Advise
    );
    assert_eq!(
        find(&findings, "disk block size", "vda").verdict,
        Verdict::Good
    );
    assert_eq!(
        find(&findings, "NIC IRQs", "eth0").verdict,
        Verdict::Info,
        "no spare core to move them to"
    );
    let swappiness = find(&findings, "swappiness", "kernel");
    assert_eq!(
        writes(swappiness),
        vec![("/proc/sys/vm/swappiness".to_string(), "1".to_string())]
    );
}

#[test]
fn flash_disk_with_a_scheduler_must_switch_to_none() {
    let mut m = machine(VM_2CORE, "/work/main/data");
    m.data_dirs[0].devices[0].rotational = Some(false);
    let p = sluice_tuning::propose(&m);
    let findings = sluice_tuning::assess(&m, &p);
    let scheduler = find(&findings, "disk scheduler", "vda");
    assert_eq!(scheduler.verdict, Verdict::Important);
    assert_eq!(
        writes(scheduler),
        vec![(
            "/sys/block/vda/queue/scheduler".to_string(),
            "none".to_string()
        )]
    );
    let nomerges = find(&findings, "disk nomerges", "vda");
    assert_eq!(
        writes(nomerges),
        vec![("/sys/block/vda/queue/nomerges".to_string(), "2".to_string())]
    );
}

#[test]
fn two_socket_flags_governor_nic_irqs_and_irqbalance() {
    let (_, _, findings) = tuned(SOCKET2_64CPU, "/var/lib/sluice/data");
    let important: Vec<&str> = findings
        .iter()
        .filter(|f| f.verdict == Verdict::Important)
        .map(|f| f.topic)
        .collect();
    assert_eq!(important, vec!["cpu governor", "NIC IRQs", "irqbalance"]);

    // Shard cores 1-15 and the OS core's threads 0 and 32, all on powersave.
    let governor = find(&findings, "cpu governor", "0-15,32");
    assert_eq!(governor.observed, "powersave");
    assert_eq!(writes(governor).len(), 17);

    // mlx5_async0 (all CPUs) and mlx5_comp1..15 (CPUs 1..15) sit on shard cores;
    // mlx5_comp0 is on CPU 0 already.
    let irqs = find(&findings, "NIC IRQs", "ens1f0");
    assert_eq!(irqs.observed, "17 IRQs, 16 on shard cores");
    let expected: Vec<(String, String)> = std::iter::once(120)
        .chain(122..=136)
        .map(|n| {
            (
                format!("/proc/irq/{n}/smp_affinity_list"),
                "0,32".to_string(),
            )
        })
        .collect();
    assert_eq!(writes(irqs), expected);

    assert_eq!(
        find(&findings, "disk scheduler", "nvme0n1").verdict,
        Verdict::Good
    );
    assert_eq!(
        find(&findings, "disk io_poll", "nvme0n1").verdict,
        Verdict::Good
    );
    assert_eq!(
        find(&findings, "disk nomerges", "nvme0n1").verdict,
        Verdict::Advise
    );
    assert_eq!(
        find(&findings, "THP enabled", "kernel").verdict,
        Verdict::Advise
    );
    assert_eq!(
        find(&findings, "memlock limit", "process").verdict,
        Verdict::Good
    );
    // ens1f1 is down: not assessed.
    assert!(findings.iter().all(|f| f.subject != "ens1f1"));
}

#[test]
fn nvme_without_poll_queues_gets_the_boot_parameter_advice() {
    let mut m = machine(SOCKET2_64CPU, "/var/lib/sluice/data");
    m.data_dirs[0].devices[0].io_poll = Some(0);
    let p = sluice_tuning::propose(&m);
    let findings = sluice_tuning::assess(&m, &p);
    let poll = find(&findings, "disk io_poll", "nvme0n1");
    assert_eq!(poll.verdict, Verdict::Advise);
    assert!(poll
        .actions
        .iter()
        .any(|a| matches!(a, Action::Manual { text } if text.contains("nvme.poll_queues=15"))));
}

#[test]
fn striped_data_flags_the_disk_on_the_other_node() {
    let (_, _, findings) = tuned(SOCKET2_64CPU, "/var/lib/sluice-lvm");
    let remote = find(&findings, "disk NUMA node", "nvme1n1");
    assert_eq!(remote.verdict, Verdict::Advise);
    assert!(findings
        .iter()
        .all(|f| !(f.topic == "disk NUMA node" && f.subject == "nvme0n1")));
    // Both members get their own queue advice.
    assert_eq!(
        find(&findings, "disk nomerges", "nvme1n1").verdict,
        Verdict::Advise
    );
}
