//! CPUs, SMT siblings, NUMA nodes and frequency governors.

use crate::error::TuneError;
use crate::machine::{Cpu, NumaNode, Smt};
use crate::sysroot::SysRoot;

const CPU_DIR: &str = "sys/devices/system/cpu";
const NODE_DIR: &str = "sys/devices/system/node";

pub fn numa_nodes(sys: &SysRoot) -> Result<Vec<NumaNode>, TuneError> {
    // Kernels without CONFIG_NUMA have no node directory: the machine is one node.
    let Some(ids) = sys.read_cpulist(&format!("{NODE_DIR}/online"))? else {
        return Ok(Vec::new());
    };
    let mut nodes = Vec::new();
    for id in ids {
        let dir = format!("{NODE_DIR}/node{id}");
        let cpus = sys
            .read_cpulist(&format!("{dir}/cpulist"))?
            .unwrap_or_default();
        let memory_total_bytes = match sys.read(&format!("{dir}/meminfo"))? {
            Some(text) => meminfo_kib(&text, "MemTotal:").map(|kib| kib * 1024),
            None => None,
        };
        nodes.push(NumaNode {
            id,
            cpus,
            memory_total_bytes,
        });
    }
    Ok(nodes)
}

/// The kB value of `key` in a meminfo file; node files prefix lines with "Node N ".
pub fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let at = line.find(key)?;
        line[at + key.len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

pub fn cpus(sys: &SysRoot, nodes: &[NumaNode]) -> Result<Vec<Cpu>, TuneError> {
    let online_file = format!("{CPU_DIR}/online");
    let online = match sys.read_cpulist(&online_file)? {
        Some(online) => online,
        // Without the online file every cpuN directory counts.
        None => sys
            .list(CPU_DIR)?
            .iter()
            .filter_map(|name| name.strip_prefix("cpu")?.parse().ok())
            .collect(),
    };
    let mut cpus = Vec::with_capacity(online.len());
    for id in online {
        let dir = format!("{CPU_DIR}/cpu{id}");
        let siblings = sys
            .read_cpulist(&format!("{dir}/topology/thread_siblings_list"))?
            .unwrap_or_else(|| vec![id]);
        let governors = sys.read(&format!("{dir}/cpufreq/scaling_available_governors"))?;
        cpus.push(Cpu {
            id,
            core_id: sys.read_parsed(&format!("{dir}/topology/core_id"), "a core id")?,
            package_id: sys
                .read_parsed::<i64>(
                    &format!("{dir}/topology/physical_package_id"),
                    "a package id",
                )?
                .and_then(|p| usize::try_from(p).ok()),
            siblings,
            node: nodes.iter().find(|n| n.cpus.contains(&id)).map(|n| n.id),
            governor: sys.read(&format!("{dir}/cpufreq/scaling_governor"))?,
            available_governors: governors
                .map(|g| g.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
        });
    }
    Ok(cpus)
}

pub fn smt(sys: &SysRoot) -> Result<Smt, TuneError> {
    Ok(Smt {
        active: sys
            .read_parsed::<u8>(&format!("{CPU_DIR}/smt/active"), "0 or 1")?
            .map(|a| a == 1),
        control: sys.read(&format!("{CPU_DIR}/smt/control"))?,
    })
}
