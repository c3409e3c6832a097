//! The placement proposal: which NUMA node and cores run shards, which core is left for
//! IRQs and the OS, and the per-shard I/O memory, ring depth and partition budget.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::limits::*;
use crate::machine::{LimitBytes, Machine};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// NUMA node the shards run on; `None` when the machine reports no nodes.
    pub node: Option<usize>,
    pub node_reason: String,
    /// CPU ids running shards, one per physical core: the `cores` config key.
    pub shard_cores: Vec<usize>,
    /// Hardware threads kept for IRQs and the OS (empty on small machines).
    pub os_cores: Vec<usize>,
    /// `io_memory_bytes`: what fits the current memlock limit.
    pub io_memory_bytes: u64,
    /// What `io_memory_bytes` would be with memlock unlimited.
    pub io_memory_bytes_memlock_unlimited: u64,
    /// `ring_depth`
    pub ring_depth: usize,
    pub ring_depth_reason: String,
    /// Active partitions one shard can hold write chunks for.
    pub partitions_per_shard: u64,
    /// `data_dir`: the first data directory given.
    pub data_dir: Option<PathBuf>,
    pub notes: Vec<String>,
}

pub fn propose(machine: &Machine) -> Placement {
    let mut notes = Vec::new();
    let (node, node_reason) = choose_node(machine, &mut notes);

    let on_node: Vec<usize> = machine
        .cpus
        .iter()
        .filter(|c| node.is_none() || c.node == node || c.node.is_none())
        .map(|c| c.id)
        .collect();
    let cores = physical_cores(machine, &on_node);
    let (os_cores, mut shard_cores): (Vec<usize>, Vec<usize>) =
        if cores.len() >= RESERVE_CORE_FROM_PHYSICAL_CORES {
            (
                cores[0].clone(),
                cores[1..]
                    .iter()
                    .filter_map(|t| t.first().copied())
                    .collect(),
            )
        } else {
            (
                Vec::new(),
                cores.iter().filter_map(|t| t.first().copied()).collect(),
            )
        };
    if shard_cores.is_empty() {
        // No topology at all (an empty capture): one shard on CPU 0 still runs.
        shard_cores.push(0);
        notes.push("no online CPUs found; proposing one shard on CPU 0".into());
    }
    if shard_cores.len() > SHARDS_MAX {
        shard_cores.truncate(SHARDS_MAX);
        notes.push(format!("capped at {SHARDS_MAX} shards, the engine's limit"));
    }
    if cores.iter().any(|threads| threads.len() > 1) {
        notes.push(
            "SMT: one shard per physical core; sibling threads are left to the kernel".into(),
        );
    }
    let shards = shard_cores.len() as u64;

    let node_memory_bytes = node_memory_bytes(machine, node);
    let io_memory_bytes_memlock_unlimited =
        floor_power_of_two(node_memory_bytes / IO_MEMORY_NODE_SHARE_DIVISOR / shards)
            .clamp(IO_MEMORY_PROPOSED_MIN_BYTES, IO_MEMORY_PROPOSED_MAX_BYTES);
    let io_memory_bytes = match machine.memlock.soft {
        LimitBytes::Unlimited => io_memory_bytes_memlock_unlimited,
        LimitBytes::Bytes(limit) => {
            let share = limit / IO_MEMORY_MEMLOCK_SHARE_DENOMINATOR
                * IO_MEMORY_MEMLOCK_SHARE_NUMERATOR
                / shards;
            if share >= io_memory_bytes_memlock_unlimited {
                io_memory_bytes_memlock_unlimited
            } else {
                notes.push(format!(
                    "io_memory_bytes is cut to fit memlock {} MiB; with memlock unlimited use {}",
                    limit >> 20,
                    io_memory_bytes_memlock_unlimited
                ));
                floor_power_of_two(share).max(IO_MEMORY_FLOOR_BYTES)
            }
        }
    };

    let (ring_depth, ring_depth_reason) = ring_depth(machine);
    let partitions_per_shard =
        (node_memory_bytes / PARTITION_MEMORY_SHARE_DIVISOR / shards / WRITE_CHUNK_BYTES)
            .min(PARTITIONS_PER_SHARD_MAX);

    Placement {
        node,
        node_reason,
        shard_cores,
        os_cores,
        io_memory_bytes,
        io_memory_bytes_memlock_unlimited,
        ring_depth,
        ring_depth_reason,
        partitions_per_shard,
        data_dir: machine.data_dirs.first().map(|d| d.path.clone()),
        notes,
    }
}

/// The node of the data disks (storage is what the engine is built around), else of the
/// NICs, else the first.
fn choose_node(machine: &Machine, notes: &mut Vec<String>) -> (Option<usize>, String) {
    let nodes: Vec<usize> = machine
        .numa_nodes
        .iter()
        .filter(|n| !n.cpus.is_empty())
        .map(|n| n.id)
        .collect();
    if nodes.len() <= 1 {
        return (
            nodes.first().copied(),
            "the only NUMA node with CPUs".into(),
        );
    }
    let mut disks_by_node: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for device in machine.data_devices() {
        if let Some(node) = device.numa_node.filter(|n| nodes.contains(n)) {
            disks_by_node.entry(node).or_default().push(&device.name);
        }
    }
    let mut nics_by_node: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for nic in machine.nics.iter().filter(|n| n.is_up()) {
        if let Some(node) = nic.numa_node.filter(|n| nodes.contains(n)) {
            nics_by_node.entry(node).or_default().push(&nic.name);
        }
    }
    // Most data disks wins; ties go to the lower node id.
    let by_disks = disks_by_node
        .iter()
        .max_by_key(|(node, disks)| (disks.len(), std::cmp::Reverse(**node)));
    if let Some((&node, disks)) = by_disks {
        if disks_by_node.len() > 1 {
            notes.push(format!(
                "data disks span {} NUMA nodes; shards follow node {node}",
                disks_by_node.len()
            ));
        }
        for (nic_node, nics) in nics_by_node.iter().filter(|(n, _)| **n != node) {
            notes.push(format!(
                "NIC {} is on node {nic_node}, not the data disk's node {node}: network traffic crosses sockets",
                nics.join(", ")
            ));
        }
        return (
            Some(node),
            format!("data disk {} is on node {node}", disks.join(", ")),
        );
    }
    let by_nics = nics_by_node
        .iter()
        .max_by_key(|(node, nics)| (nics.len(), std::cmp::Reverse(**node)));
    if let Some((&node, nics)) = by_nics {
        return (
            Some(node),
            format!(
                "NIC {} is on node {node} (data disk node unknown)",
                nics.join(", ")
            ),
        );
    }
    (
        nodes.first().copied(),
        "data disk and NIC NUMA nodes unknown; the first node".into(),
    )
}

/// The given CPUs grouped by physical core (SMT siblings together), cores ordered by their
/// lowest CPU id, threads in id order.
fn physical_cores(machine: &Machine, cpus: &[usize]) -> Vec<Vec<usize>> {
    let mut cores: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &id in cpus {
        let first_sibling = machine
            .cpu(id)
            .and_then(|c| c.siblings.iter().copied().min())
            .unwrap_or(id)
            .min(id);
        cores.entry(first_sibling).or_default().push(id);
    }
    cores
        .into_values()
        .map(|mut threads| {
            threads.sort_unstable();
            threads
        })
        .collect()
}

/// Memory local to the shards: the node's own on a multi-node machine, all of it otherwise
/// (some VMs report less in their single node than in /proc/meminfo).
fn node_memory_bytes(machine: &Machine, node: Option<usize>) -> u64 {
    let node_memory = node
        .and_then(|n| machine.node(n))
        .and_then(|n| n.memory_total_bytes);
    if machine.numa_nodes.len() > 1 {
        node_memory.unwrap_or(machine.memory_total_bytes / machine.numa_nodes.len() as u64)
    } else if machine.memory_total_bytes > 0 {
        machine.memory_total_bytes
    } else {
        node_memory.unwrap_or(0)
    }
}

fn ring_depth(machine: &Machine) -> (usize, String) {
    let deepest = machine
        .data_devices()
        .into_iter()
        .filter_map(|d| d.nr_requests.map(|n| (n, d.name.clone())))
        .max_by_key(|(n, _)| *n);
    match deepest {
        Some((requests, name)) => {
            let depth = (requests as usize)
                .next_power_of_two()
                .clamp(RING_DEPTH_PROPOSED_MIN, RING_DEPTH_PROPOSED_MAX);
            (depth, format!("{name} queues {requests} requests"))
        }
        None => (
            RING_DEPTH_PROPOSED_MIN,
            "no data disk queue found; engine default".into(),
        ),
    }
}

fn floor_power_of_two(bytes: u64) -> u64 {
    if bytes == 0 {
        0
    } else {
        1 << (63 - bytes.leading_zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_power_of_two_rounds_down() {
        assert_eq!(floor_power_of_two(0), 0);
        assert_eq!(floor_power_of_two(1), 1);
        assert_eq!(floor_power_of_two(3 << 20), 2 << 20);
        assert_eq!(floor_power_of_two(32 << 20), 32 << 20);
    }
}
