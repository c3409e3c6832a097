//! Inspection of captured /sys and /proc trees: the real 2-core VM and a 2-socket NVMe box.

mod common;

use common::*;
use sluice_tuning::machine::{Choice, IoUringStatus, LimitBytes};

#[test]
fn vm_has_two_single_thread_cores_on_one_node() {
    let m = machine(VM_2CORE, "/work/main/data");
    let ids: Vec<usize> = m.cpus.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![0, 1]);
    assert_eq!(m.cpus[1].siblings, vec![1]);
    assert!(
        m.cpus.iter().all(|c| c.governor.is_none()),
        "no cpufreq in this VM"
    );
    assert_eq!(m.numa_nodes.len(), 1);
    assert_eq!(m.numa_nodes[0].cpus, vec![0, 1]);
    assert_eq!(m.memory_total_bytes, 24_684_084 * 1024);
    assert_eq!(m.smt.control.as_deref(), Some("notsupported"));
    assert_eq!(m.host.hostname.as_deref(), Some("vm"));
    assert_eq!(m.host.cpu_brand.as_deref(), Some("AMD EPYC"));
}

#[test]
fn vm_data_dir_resolves_to_the_virtio_disk() {
    let m = machine(VM_2CORE, "/work/main/data");
    let dir = &m.data_dirs[0];
    let mount = dir.mount.as_ref().expect("mounted");
    assert_eq!(
        (
            mount.mount_point.as_str(),
            mount.fs_type.as_str(),
            mount.device_number.as_str()
        ),
        ("/", "ext4", "254:0")
    );
    assert_eq!(dir.devices.len(), 1);
    let vda = &dir.devices[0];
    assert_eq!(vda.name, "vda");
    assert_eq!(vda.scheduler, Choice::parse("none [mq-deadline] kyber bfq"));
    assert_eq!(
        (vda.nomerges, vda.io_poll, vda.nr_requests),
        (Some(0), Some(0), Some(256))
    );
    assert_eq!(
        (vda.logical_block_bytes, vda.physical_block_bytes),
        (Some(512), Some(4096))
    );
    assert_eq!(vda.rotational, Some(true));
    assert_eq!(vda.write_cache.as_deref(), Some("write back"));
    assert_eq!(vda.numa_node, None, "the PCI function reports -1");
}

#[test]
fn vm_kernel_settings_limits_and_nic_irqs_are_read() {
    let m = machine(VM_2CORE, "/work/main/data");
    assert_eq!(m.memlock.soft, LimitBytes::Bytes(8 << 20));
    assert_eq!(m.kernel.swappiness, Some(60));
    assert_eq!(m.kernel.aio_max_nr, Some(65536));
    assert_eq!(
        m.kernel.thp_enabled.as_ref().map(|c| c.current.as_str()),
        Some("madvise")
    );
    assert_eq!(m.kernel.io_uring_disabled, Some(0));
    assert_eq!(m.kernel.nvme_poll_queues, None);
    assert_eq!(m.clocksource.current.as_deref(), Some("tsc"));
    assert_eq!(m.io_uring, IoUringStatus::NotProbed);
    assert!(!m.irqbalance_running);
    // lo and the ifb devices are virtual and left out.
    assert_eq!(m.nics.len(), 1);
    let eth0 = &m.nics[0];
    assert_eq!((eth0.name.as_str(), eth0.is_up()), ("eth0", true));
    let irqs: Vec<(u32, Option<&str>)> = eth0
        .irqs
        .iter()
        .map(|i| (i.number, i.name.as_deref()))
        .collect();
    assert_eq!(
        irqs,
        vec![
            (37, Some("virtio2-config")),
            (38, Some("virtio2-input.0")),
            (39, Some("virtio2-output.0"))
        ]
    );
    assert!(eth0.irqs.iter().all(|i| i.affinity == Some(vec![0, 1])));
}

#[test]
fn two_socket_topology_groups_smt_siblings_and_numa_nodes() {
    let m = machine(SOCKET2_64CPU, "/var/lib/sluice/data");
    assert_eq!(m.cpus.len(), 64);
    let cpu5 = m.cpu(5).expect("cpu5");
    assert_eq!(
        (cpu5.siblings.clone(), cpu5.package_id, cpu5.node),
        (vec![5, 37], Some(0), Some(0))
    );
    let cpu50 = m.cpu(50).expect("cpu50");
    assert_eq!(
        (cpu50.siblings.clone(), cpu50.package_id, cpu50.node),
        (vec![18, 50], Some(1), Some(1))
    );
    assert_eq!(cpu50.governor.as_deref(), Some("powersave"));
    assert_eq!(m.numa_nodes.len(), 2);
    assert_eq!(
        m.numa_nodes[1].cpus,
        (16..32).chain(48..64).collect::<Vec<_>>()
    );
    assert_eq!(m.numa_nodes[0].memory_total_bytes, Some(196_581_460 * 1024));
    assert_eq!(m.smt.active, Some(true));
    assert_eq!(m.memlock.soft, LimitBytes::Unlimited);
    assert!(m.irqbalance_running);
    assert_eq!(m.kernel.nvme_poll_queues, Some(16));
}

#[test]
fn two_socket_data_partition_resolves_to_its_nvme_disk_on_node_0() {
    let m = machine(SOCKET2_64CPU, "/var/lib/sluice/data");
    let dir = &m.data_dirs[0];
    let mount = dir.mount.as_ref().expect("mounted");
    assert_eq!(
        (mount.mount_point.as_str(), mount.source.as_str()),
        ("/var/lib/sluice", "/dev/nvme0n1p1")
    );
    let names: Vec<&str> = dir.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec!["nvme0n1"], "a partition's queue is its disk's");
    let d = &dir.devices[0];
    assert_eq!(
        (d.numa_node, d.io_poll, d.nr_requests, d.rotational),
        (Some(0), Some(1), Some(1023), Some(false))
    );
    assert_eq!(
        d.scheduler.as_ref().map(|s| s.current.as_str()),
        Some("none")
    );

    let root = machine(SOCKET2_64CPU, "/srv/sluice");
    let root_disk = &root.data_dirs[0].devices[0];
    assert_eq!(
        (root_disk.name.as_str(), root_disk.numa_node),
        ("nvme1n1", Some(1))
    );
}

#[test]
fn two_socket_nics_carry_msi_irqs_with_names_and_affinity() {
    let m = machine(SOCKET2_64CPU, "/var/lib/sluice/data");
    let names: Vec<&str> = m.nics.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["ens1f0", "ens1f1"],
        "lo and docker0 are virtual"
    );
    let nic = &m.nics[0];
    assert_eq!(
        (nic.is_up(), nic.numa_node, nic.irqs.len()),
        (true, Some(0), 17)
    );
    assert_eq!(
        nic.irqs[0].name.as_deref(),
        Some("mlx5_async0@pci:0000:18:00.0")
    );
    assert_eq!(nic.irqs[0].affinity, Some((0..64).collect()));
    assert_eq!(nic.irqs[1].number, 121);
    assert_eq!(
        nic.irqs[1].name.as_deref(),
        Some("mlx5_comp0@pci:0000:18:00.0")
    );
    assert_eq!(nic.irqs[16].affinity, Some(vec![15]));
    assert!(!m.nics[1].is_up());
}

#[test]
fn data_dir_on_no_block_device_has_no_disks() {
    let m = machine(SOCKET2_64CPU, "/run/sluice");
    let dir = &m.data_dirs[0];
    assert_eq!(
        dir.mount.as_ref().map(|m| m.fs_type.as_str()),
        Some("tmpfs")
    );
    assert!(dir.devices.is_empty());
}

#[test]
fn lvm_volume_resolves_to_the_nvme_disks_under_its_slaves() {
    let m = machine(SOCKET2_64CPU, "/var/lib/sluice-lvm");
    let dir = &m.data_dirs[0];
    assert_eq!(
        dir.mount.as_ref().map(|m| m.device_number.as_str()),
        Some("253:0")
    );
    let disks: Vec<(&str, Option<usize>)> = dir
        .devices
        .iter()
        .map(|d| (d.name.as_str(), d.numa_node))
        .collect();
    assert_eq!(
        disks,
        vec![("nvme0n1", Some(0)), ("nvme1n1", Some(1))],
        "dm-0's own queue is not the device's"
    );
}
