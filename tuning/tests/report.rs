//! The report in its two forms, and the live machine end to end.

mod common;

use common::*;
use sluice_tuning::machine::IoUringStatus;
use sluice_tuning::{assess, inspect, propose, InspectOptions, Report};

#[test]
fn json_report_carries_machine_placement_findings_and_snippet() {
    let (machine, placement, findings) = tuned(SOCKET2_64CPU, "/var/lib/sluice/data");
    let report = Report::new(machine, placement, findings);
    let mut out = Vec::new();
    report.write_json(&mut out).expect("renders");
    let json: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(json["important"], 3);
    assert_eq!(json["placement"]["os_cores"], serde_json::json!([0, 32]));
    assert_eq!(json["placement"]["ring_depth"], 1024);
    assert_eq!(
        json["machine"]["data_dirs"][0]["devices"][0]["name"],
        "nvme0n1"
    );
    assert_eq!(json["machine"]["memlock"]["soft"]["kind"], "unlimited");
    assert_eq!(
        json["findings"][0]["verdict"], "info",
        "io_uring is not probed on a fixture"
    );
    assert!(json["config_snippet"]
        .as_str()
        .is_some_and(|s| s.contains("cores = [1, 2, 3")));
    assert!(json["apply"].is_null());
}

#[test]
fn human_report_names_the_disk_the_placement_and_says_nothing_changed() {
    let (machine, placement, findings) = tuned(VM_2CORE, "/work/main/data");
    let report = Report::new(machine, placement, findings);
    let mut out = Vec::new();
    report.write_human(&mut out).expect("renders");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(
        text.starts_with(
            "sluice tune: vm - AMD EPYC, 2 CPUs, 1 NUMA node(s), 23.5 GiB, Linux 6.18.44-fc-v669\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "data dir /work/main/data: ext4 /dev/vda on /; disks: vda (NUMA node unknown)\n"
        ),
        "{text}"
    );
    assert!(text.contains("Findings (1 to fix, 2 advised):\n"), "{text}");
    assert!(
        text.contains("  FIX    memlock limit     process    8192 KiB -> unlimited\n"),
        "{text}"
    );
    assert!(text.contains("  shards on CPUs 0-1 (2 shards)\n"), "{text}");
    assert!(text.contains("  cores = [0, 1]\n"), "{text}");
    assert!(
        text.contains(
            "  - systemd: LimitMEMLOCK=infinity in the [Service] section of sluice.service\n"
        ),
        "{text}"
    );
    assert!(text.ends_with("Nothing was changed; `sluice tune --apply` makes the writes (add --dry-run to list them).\n"));
}

#[test]
fn live_machine_inspects_with_sysinfo_and_an_io_uring_probe() {
    let machine =
        inspect(&InspectOptions::live(vec![std::env::temp_dir()])).expect("this machine inspects");
    assert_eq!(machine.host.source, "sysinfo");
    assert!(!machine.cpus.is_empty());
    assert!(machine.memory_total_bytes > 0);
    assert_ne!(machine.io_uring, IoUringStatus::NotProbed);
    assert!(
        machine.data_dirs[0].mount.is_some(),
        "every path is on some mount"
    );
    let placement = propose(&machine);
    assert!(!placement.shard_cores.is_empty());
    assert!(
        placement
            .shard_cores
            .iter()
            .all(|c| machine.cpu(*c).is_some()),
        "shards only on online CPUs"
    );
    let findings = assess(&machine, &placement);
    assert!(findings.iter().any(|f| f.topic == "io_uring"));
}
