//! `--apply --dry-run` lists every write and changes nothing; `--apply` writes them.

mod common;

use common::*;
use sluice_tuning::apply::Outcome;
use sluice_tuning::{apply, ApplyMode, Report};

/// The "Apply:" section of the human report, one string per line.
fn apply_section(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    report.write_human(&mut out).expect("renders");
    let text = String::from_utf8(out).expect("utf-8");
    text.lines()
        .skip_while(|l| *l != "Apply:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn vm_dry_run_prints_the_one_write_and_changes_nothing() {
    let root = fixture(VM_2CORE);
    let (machine, placement, findings) = tuned(VM_2CORE, "/work/main/data");
    let before = read(&root, "proc/sys/vm/swappiness");
    let steps = apply(&root, &findings, ApplyMode::DryRun).expect("dry run");
    let mut report = Report::new(machine, placement, findings);
    report.apply = Some(steps);
    assert_eq!(
        apply_section(&report),
        vec![r#"would write "1" to /proc/sys/vm/swappiness"#]
    );
    assert_eq!(read(&root, "proc/sys/vm/swappiness"), before);
}

#[test]
fn two_socket_dry_run_prints_each_path_and_value_in_order() {
    let root = fixture(SOCKET2_64CPU);
    let (machine, placement, findings) = tuned(SOCKET2_64CPU, "/var/lib/sluice/data");
    let steps = apply(&root, &findings, ApplyMode::DryRun).expect("dry run");
    assert!(steps.iter().all(|s| s.outcome == Outcome::Planned));
    let mut report = Report::new(machine, placement, findings);
    report.apply = Some(steps);

    let mut expected = Vec::new();
    for cpu in (0..=15).chain([32]) {
        expected.push(format!(r#"would write "performance" to /sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"#));
    }
    expected.push(r#"would write "2" to /sys/block/nvme0n1/queue/nomerges"#.to_string());
    for irq in std::iter::once(120).chain(122..=136) {
        expected.push(format!(
            r#"would write "0,32" to /proc/irq/{irq}/smp_affinity_list"#
        ));
    }
    expected.push(
        r#"would write "madvise" to /sys/kernel/mm/transparent_hugepage/enabled"#.to_string(),
    );
    expected.push(r#"would write "1" to /proc/sys/vm/swappiness"#.to_string());
    assert_eq!(apply_section(&report), expected);
    assert_eq!(
        read(&root, "proc/irq/125/smp_affinity_list"),
        "4",
        "dry run wrote nothing"
    );
    assert_eq!(
        read(&root, "sys/kernel/mm/transparent_hugepage/enabled"),
        "[always] madvise never"
    );
}

#[test]
fn apply_writes_through_sysfs_symlinks_on_a_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    copy_tree(&fixture(SOCKET2_64CPU), &root);
    let (_, _, findings) = tuned(SOCKET2_64CPU, "/var/lib/sluice/data");
    let steps = apply(&root, &findings, ApplyMode::Write).expect("apply");
    assert_eq!(steps.len(), 36);
    assert!(
        steps.iter().all(|s| s.outcome == Outcome::Written),
        "{steps:#?}"
    );
    assert_eq!(
        read(
            &root,
            "sys/devices/pci0000:5d/0000:5d:00.0/0000:5e:00.0/nvme/nvme0/nvme0n1/queue/nomerges"
        ),
        "2"
    );
    assert_eq!(read(&root, "proc/irq/125/smp_affinity_list"), "0,32");
    assert_eq!(
        read(&root, "proc/irq/121/smp_affinity_list"),
        "0",
        "already off the shard cores"
    );
    assert_eq!(
        read(
            &root,
            "sys/devices/system/cpu/cpu7/cpufreq/scaling_governor"
        ),
        "performance"
    );
    assert_eq!(
        read(
            &root,
            "sys/devices/system/cpu/cpu20/cpufreq/scaling_governor"
        ),
        "powersave",
        "node 1 runs no shard"
    );
    assert_eq!(read(&root, "proc/sys/vm/swappiness"), "1");

    // Inspecting the changed copy: the writes made those findings good.
    let after = sluice_tuning::inspect(&sluice_tuning::InspectOptions::captured(
        root.clone(),
        vec!["/var/lib/sluice/data".into()],
    ))
    .expect("inspects");
    let placement = sluice_tuning::propose(&after);
    let findings = sluice_tuning::assess(&after, &placement);
    let important: Vec<&str> = findings
        .iter()
        .filter(|f| f.verdict == sluice_tuning::Verdict::Important)
        .map(|f| f.topic)
        .collect();
    assert_eq!(
        important,
        vec!["irqbalance"],
        "only the service is left, and that is by hand"
    );
}

#[test]
fn a_failed_write_is_reported_and_the_rest_still_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    copy_tree(&fixture(VM_2CORE), &root);
    let (_, _, mut findings) = tuned(VM_2CORE, "/work/main/data");
    let swappiness = findings
        .iter_mut()
        .find(|f| f.topic == "swappiness")
        .expect("swappiness finding");
    swappiness.actions.insert(
        0,
        sluice_tuning::Action::Write {
            path: "/proc/sys/vm/no_such_dir/knob".into(),
            value: "1".into(),
        },
    );
    let steps = apply(&root, &findings, ApplyMode::Write).expect("apply");
    assert_eq!(steps.len(), 2);
    assert!(matches!(steps[0].outcome, Outcome::Failed { .. }));
    assert!(steps[0]
        .describe()
        .starts_with(r#"FAILED to write "1" to /proc/sys/vm/no_such_dir/knob: "#));
    assert_eq!(steps[1].outcome, Outcome::Written);
    assert_eq!(read(&root, "proc/sys/vm/swappiness"), "1");
}
