//! `sluice bench`: a Kafka-protocol load generator for any Kafka-API broker.
//!
//! N producers and M consumers over T topics x P partitions, flat out or at a fixed
//! rate. At a fixed rate every latency counts from the record's scheduled send time, so
//! a broker stall shows up in full rather than being hidden by the generator slowing
//! down (no coordinated omission). Consumers measure end-to-end latency from the send
//! time stamped in each record. Produce-ack, end-to-end and fetch latencies go into HDR
//! histograms, summarised as a console table, `.hgrm` files, a JSON summary and
//! percentile-spectrum plots.
//!
//! Threads: per producer one writer (generate, batch, send) and one ack reader; per
//! consumer one fetcher; plain blocking sockets, no async runtime.

pub mod config;
mod consumer;
pub mod error;
pub mod groups;
pub mod histogram;
pub mod limits;
pub mod plot;
mod producer;
pub mod report;
mod run;
mod setup;
mod shared;
mod wire;
pub mod workload;

pub use config::{Acks, BenchConfig, CompressionCodec, Pace, SizeDistribution};
pub use error::{BenchError, Result};
pub use plot::{plot_spectrum, Metric};
pub use report::{write_outputs, Histograms, Summary};
pub use run::run;

/// Pin the calling thread to `cpus[n % len]`; no-op when `cpus` is empty. Failure to pin
/// is reported and ignored: the run is still valid, only noisier.
pub(crate) fn pin_current_thread(cpus: &[usize], n: usize) {
    if cpus.is_empty() {
        return;
    }
    let id = cpus[n % cpus.len()];
    if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
        eprintln!("sluice bench: could not pin a thread to cpu {id}");
    }
}
