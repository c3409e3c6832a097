//! Shard memory nodes against the captured machines (hand-worked: node0 = CPUs 0-15 and
//! 32-47, node1 = CPUs 16-31 and 48-63 on the 2-socket box; the VM has one node).

mod common;

use common::*;
use sluice_tuning::numa::memory_nodes;

#[test]
fn two_socket_shards_get_the_node_of_their_core() {
    let m = machine(SOCKET2_64CPU, "/var/lib/sluice/data");
    assert_eq!(m.numa_nodes.len(), 2);
    let cpus = [
        Some(1),
        Some(15),
        Some(17),
        Some(31),
        Some(40),
        Some(63),
        None,
    ];
    let d = memory_nodes(&m.numa_nodes, &cpus);
    assert_eq!(
        d.nodes,
        vec![Some(0), Some(0), Some(1), Some(1), Some(0), Some(1), None]
    );
    assert!(d.reason.contains("2 NUMA nodes"), "{}", d.reason);
    assert!(d.reason.contains("1 shard(s) unpinned"), "{}", d.reason);
}

#[test]
fn the_proposed_node_1_placement_binds_every_shard_to_node_1() {
    let (m, p, _) = tuned(SOCKET2_64CPU, "/srv/sluice");
    let cpus: Vec<Option<usize>> = p.shard_cores.iter().map(|c| Some(*c)).collect();
    let d = memory_nodes(&m.numa_nodes, &cpus);
    assert_eq!(d.nodes, vec![Some(1); p.shard_cores.len()]);
}

#[test]
fn single_node_vm_binds_nothing_and_says_why() {
    let m = machine(VM_2CORE, "/work/main/data");
    let d = memory_nodes(&m.numa_nodes, &[Some(0), Some(1)]);
    assert_eq!(d.nodes, vec![None, None]);
    assert!(d.reason.contains("no binding needed"), "{}", d.reason);
    // No node directory at all (kernel without NUMA) is one node too.
    assert_eq!(memory_nodes(&[], &[Some(0)]).nodes, vec![None]);
}
