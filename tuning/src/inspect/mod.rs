//! Reads the machine: /sys and /proc under a [`SysRoot`], `sysinfo` for the host summary
//! on the live machine, and an io_uring probe of the running kernel.

mod block;
pub(crate) mod cpu;
mod kernel;
mod nic;

use std::path::PathBuf;

use crate::error::TuneError;
use crate::machine::{IoUringStatus, Machine};
use crate::sysroot::SysRoot;

pub use kernel::probe_io_uring;

/// How to learn whether io_uring works.
#[derive(Clone, Debug)]
pub enum IoUringProbe {
    /// Set up a ring on this kernel (only meaningful when inspecting the live machine).
    Kernel,
    /// Take this answer (a captured tree, or a test).
    Given(IoUringStatus),
}

#[derive(Clone, Debug)]
pub struct InspectOptions {
    /// Directory holding `sys/` and `proc/`: "/" for this machine, a fixture in tests.
    pub root: PathBuf,
    /// Data directories whose block devices to inspect.
    pub data_dirs: Vec<PathBuf>,
    pub io_uring: IoUringProbe,
}

impl InspectOptions {
    /// The live machine, probing the running kernel.
    pub fn live(data_dirs: Vec<PathBuf>) -> Self {
        InspectOptions {
            root: PathBuf::from("/"),
            data_dirs,
            io_uring: IoUringProbe::Kernel,
        }
    }

    /// A captured tree; io_uring is reported as not probed.
    pub fn captured(root: PathBuf, data_dirs: Vec<PathBuf>) -> Self {
        InspectOptions {
            root,
            data_dirs,
            io_uring: IoUringProbe::Given(IoUringStatus::NotProbed),
        }
    }
}

pub fn inspect(options: &InspectOptions) -> Result<Machine, TuneError> {
    let sys = SysRoot::new(&options.root)?;
    let numa_nodes = cpu::numa_nodes(&sys)?;
    let cpus = cpu::cpus(&sys, &numa_nodes)?;
    let data_dirs = options
        .data_dirs
        .iter()
        .map(|dir| block::data_dir(&sys, dir))
        .collect::<Result<Vec<_>, _>>()?;
    let io_uring = match &options.io_uring {
        IoUringProbe::Kernel => probe_io_uring(),
        IoUringProbe::Given(status) => status.clone(),
    };
    Ok(Machine {
        root: sys.root().to_path_buf(),
        host: kernel::host(&sys)?,
        smt: cpu::smt(&sys)?,
        cpus,
        numa_nodes,
        memory_total_bytes: kernel::memory_total_bytes(&sys)?,
        clocksource: kernel::clocksource(&sys)?,
        kernel: kernel::settings(&sys)?,
        memlock: kernel::memlock(&sys)?,
        io_uring,
        data_dirs,
        nics: nic::nics(&sys)?,
        irqbalance_running: kernel::irqbalance_running(&sys)?,
    })
}

/// Reads `<dir>/numa_node` in `start` and each of its ancestors up to `sys/devices`: the
/// PCI function carries it, the block or net device below it does not. -1 means unknown.
fn numa_node_above(sys: &SysRoot, start: &str) -> Result<Option<usize>, TuneError> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if d == "sys/devices" || !d.starts_with("sys/devices/") {
            break;
        }
        let file = format!("{d}/numa_node");
        if let Some(node) = sys.read_parsed::<i64>(&file, "a NUMA node number")? {
            return Ok(usize::try_from(node).ok());
        }
        dir = crate::sysroot::parent(d);
    }
    Ok(None)
}
