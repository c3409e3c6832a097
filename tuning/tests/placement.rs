//! Placement proposals against hand-worked expectations (the arithmetic is in the comments).

mod common;

use common::*;
use sluice_tuning::machine::{Cpu, LimitBytes};
use sluice_tuning::propose;

const MIB: u64 = 1 << 20;

#[test]
fn vm_runs_a_shard_on_each_of_its_two_cores() {
    let (_, p, _) = tuned(VM_2CORE, "/work/main/data");
    assert_eq!(p.node, Some(0));
    // 2 physical cores < 4: no core is kept back.
    assert_eq!(p.shard_cores, vec![0, 1]);
    assert!(p.os_cores.is_empty());
    // MemTotal 24684084 kB = 25276502016 B; /256 /2 shards = 49368168 -> 32 MiB (power of two).
    assert_eq!(p.io_memory_bytes_memlock_unlimited, 32 * MIB);
    // memlock 8 MiB: 3/4 of it over 2 shards = 3 MiB -> 2 MiB.
    assert_eq!(p.io_memory_bytes, 2 * MIB);
    // vda queues 256 requests.
    assert_eq!(p.ring_depth, 256);
    // 25276502016 / 2 / 2 shards / 1 MiB = 6026.3
    assert_eq!(p.partitions_per_shard, 6026);
    assert_eq!(
        p.data_dir.as_deref(),
        Some(std::path::Path::new("/work/main/data"))
    );
}

#[test]
fn two_socket_shards_follow_the_data_nvme_to_node_0_leaving_core_0() {
    let (_, p, _) = tuned(SOCKET2_64CPU, "/var/lib/sluice/data");
    assert_eq!(p.node, Some(0));
    assert_eq!(p.node_reason, "data disk nvme0n1 is on node 0");
    // Node 0 has 16 cores (CPUs 0-15, siblings 32-47); core 0 (CPUs 0 and 32) is kept for
    // IRQs and the OS; one shard on the first thread of each other core.
    assert_eq!(p.shard_cores, (1..=15).collect::<Vec<_>>());
    assert_eq!(p.os_cores, vec![0, 32]);
    // Node 0: 196581460 kB = 201299415040 B; /256 /15 = 52421722 -> 32 MiB; memlock unlimited.
    assert_eq!(p.io_memory_bytes, 32 * MIB);
    assert_eq!(p.io_memory_bytes_memlock_unlimited, 32 * MIB);
    // nvme0n1 queues 1023 requests -> 1024.
    assert_eq!(p.ring_depth, 1024);
    // 201299415040 / 2 / 15 / 1 MiB = 6399.06
    assert_eq!(p.partitions_per_shard, 6399);
    assert!(p.notes.iter().any(|n| n.contains("SMT")));
}

#[test]
fn two_socket_data_on_the_node_1_disk_moves_shards_to_node_1() {
    let (_, p, _) = tuned(SOCKET2_64CPU, "/srv/sluice");
    assert_eq!(p.node, Some(1));
    assert_eq!(p.shard_cores, (17..=31).collect::<Vec<_>>());
    assert_eq!(p.os_cores, vec![16, 48]);
    // The NIC stays on node 0: noted, not followed.
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("NIC ens1f0 is on node 0")),
        "{:?}",
        p.notes
    );
}

#[test]
fn nic_node_decides_when_the_disk_node_is_unknown() {
    let mut m = machine(SOCKET2_64CPU, "/var/lib/sluice/data");
    m.data_dirs[0].devices[0].numa_node = None;
    m.nics[0].numa_node = Some(1);
    let p = propose(&m);
    assert_eq!(p.node, Some(1));
    assert_eq!(
        p.node_reason,
        "NIC ens1f0 is on node 1 (data disk node unknown)"
    );
    assert_eq!(p.shard_cores[0], 17);
}

#[test]
fn small_memlock_cuts_io_memory_to_the_floor() {
    let mut m = machine(SOCKET2_64CPU, "/var/lib/sluice/data");
    m.memlock.soft = LimitBytes::Bytes(64 * 1024);
    let p = propose(&m);
    // 48 KiB over 15 shards rounds to nothing; 1 MiB is the floor.
    assert_eq!(p.io_memory_bytes, MIB);
    assert_eq!(p.io_memory_bytes_memlock_unlimited, 32 * MIB);
    assert!(p.notes.iter().any(|n| n.contains("memlock")));
}

#[test]
fn four_cpus_in_two_smt_cores_get_two_shards_and_no_reserved_core() {
    let mut m = machine(VM_2CORE, "/work/main/data");
    m.cpus = (0..4)
        .map(|id| Cpu {
            id,
            core_id: Some(id % 2),
            package_id: Some(0),
            siblings: vec![id % 2, id % 2 + 2],
            node: Some(0),
            governor: None,
            available_governors: Vec::new(),
        })
        .collect();
    m.numa_nodes[0].cpus = vec![0, 1, 2, 3];
    let p = propose(&m);
    assert_eq!(p.shard_cores, vec![0, 1]);
    assert!(p.os_cores.is_empty());
}

#[test]
fn eight_single_thread_cores_keep_cpu_0_for_the_os() {
    let mut m = machine(VM_2CORE, "/work/main/data");
    m.cpus = (0..8)
        .map(|id| Cpu {
            id,
            core_id: Some(id),
            package_id: Some(0),
            siblings: vec![id],
            node: Some(0),
            governor: None,
            available_governors: Vec::new(),
        })
        .collect();
    m.numa_nodes[0].cpus = (0..8).collect();
    let p = propose(&m);
    assert_eq!(p.os_cores, vec![0]);
    assert_eq!(p.shard_cores, (1..8).collect::<Vec<_>>());
}

#[test]
fn data_striped_over_both_nodes_takes_the_lower_node_and_says_so() {
    let (_, p, _) = tuned(SOCKET2_64CPU, "/var/lib/sluice-lvm");
    // One data disk per node: a tie, broken towards node 0.
    assert_eq!(p.node, Some(0));
    assert_eq!(p.node_reason, "data disk nvme0n1 is on node 0");
    assert!(
        p.notes
            .iter()
            .any(|n| n == "data disks span 2 NUMA nodes; shards follow node 0"),
        "{:?}",
        p.notes
    );
    assert_eq!(p.shard_cores, (1..=15).collect::<Vec<_>>());
}
