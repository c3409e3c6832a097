//! `sluice tune`: reads the machine (cores, SMT, NUMA, memory, data disks, NIC IRQs,
//! kernel settings and limits), proposes a shard placement as an `[engine]` config
//! snippet, advises OS settings and, when asked, applies them.
//!
//! Stands alone: it knows the engine's config keys, not its code. Every read and write of
//! /sys and /proc goes through [`sysroot::SysRoot`], so the tests run on captured trees.

pub mod advice;
pub mod apply;
pub mod cpulist;
pub mod error;
pub mod inspect;
pub mod limits;
pub mod machine;
pub mod numa;
pub mod placement;
pub mod report;
pub mod sysroot;

pub use advice::{assess, Action, Finding, Verdict};
pub use apply::{apply, ApplyMode, ApplyStep};
pub use error::TuneError;
pub use inspect::{inspect, InspectOptions, IoUringProbe};
pub use machine::Machine;
pub use placement::{propose, Placement};
pub use report::Report;
