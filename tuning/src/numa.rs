//! Which NUMA node's memory each shard should use: the node of the core it is pinned to.
//! `sluice serve` hands the answer to the engine, which sets each shard thread's memory
//! policy (`[engine] numa_memory`); on a single-node machine there is nothing to choose.

use crate::error::TuneError;
use crate::machine::NumaNode;
use crate::sysroot::SysRoot;

/// The decision for every shard, and why (printed at start-up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryNodes {
    /// Index = shard: the node to bind its memory to, or None to leave it alone.
    pub nodes: Vec<Option<usize>>,
    pub reason: String,
}

/// `shard_cpus`: each shard's pinned CPU (None: unpinned, it may run on any node).
pub fn memory_nodes(nodes: &[NumaNode], shard_cpus: &[Option<usize>]) -> MemoryNodes {
    if nodes.len() <= 1 {
        return MemoryNodes {
            nodes: vec![None; shard_cpus.len()],
            reason: format!(
                "{} NUMA node: all memory is local, no binding needed",
                nodes.len().max(1)
            ),
        };
    }
    let node_of = |cpu: usize| nodes.iter().find(|n| n.cpus.contains(&cpu)).map(|n| n.id);
    let chosen: Vec<Option<usize>> = shard_cpus.iter().map(|cpu| cpu.and_then(node_of)).collect();
    let unbound = chosen.iter().filter(|n| n.is_none()).count();
    let mut reason = format!(
        "{} NUMA nodes: each pinned shard's memory on its core's node",
        nodes.len()
    );
    if unbound > 0 {
        reason.push_str(&format!(
            "; {unbound} shard(s) unpinned or on a CPU no node lists, left to the kernel"
        ));
    }
    MemoryNodes {
        nodes: chosen,
        reason,
    }
}

/// The live machine's nodes, read from /sys (no node directory: one node).
pub fn live_nodes() -> Result<Vec<NumaNode>, TuneError> {
    let sys = SysRoot::new(std::path::Path::new("/"))?;
    crate::inspect::cpu::numa_nodes(&sys)
}
