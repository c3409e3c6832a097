//! The shard runtime: one glommio executor pinned per configured core, the shard table,
//! cross-shard routing over bounded flume channels, and orderly shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::{Latency, LocalExecutorBuilder, Placement, Shares};

use crate::config::{ConfigError, EngineConfig, NumaMemory};
use crate::ids::{ShardId, TopicPartition};
use crate::limits::{SHARD_INBOX_DEPTH, SHARD_REPLY_INBOX_DEPTH};
use crate::log::LogError;

pub mod dispatch;
pub mod numa;
pub mod placement;
pub mod shard;
pub mod table;

pub use dispatch::DispatchTicket;
pub use placement::{Admission, MoveOutcome, PartitionLease, PlacementOverrides};
pub use shard::{Job, Shard};
pub use table::ShardTable;

/// Locked memory glommio needs at minimum to start a reactor.
pub const MEMLOCK_BYTES_MIN: u64 = 512 * 1024;
/// Shares of the background task queue relative to the default queue's 1000.
pub const BACKGROUND_SHARES: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{tp} is owned by {owner}, not {here}")]
    NotOwner {
        tp: TopicPartition,
        owner: ShardId,
        here: ShardId,
    },
    #[error("{0} does not exist")]
    NoSuchShard(ShardId),
    #[error("{0} stopped")]
    ShardGone(ShardId),
    #[error("{0} owns the maximum number of partitions")]
    TooManyPartitions(ShardId),
    #[error("{0} is already moving between shards")]
    MoveInProgress(TopicPartition),
    #[error("{0}: work admitted before the move did not finish in time; move abandoned")]
    MoveTimedOut(TopicPartition),
    #[error("executor: {0}")]
    Executor(String),
}

/// The placement `run` will use: one entry per shard, the CPU it is pinned to (None when
/// the config asks for more shards than there are online CPUs to pin to, or sets
/// `pin_threads = false`).
pub fn plan_placement(config: &EngineConfig) -> Result<Vec<Option<usize>>, EngineError> {
    let online: Vec<usize> = {
        let mut cpus: Vec<usize> = glommio::CpuSet::online()
            .map_err(|e| EngineError::Executor(e.to_string()))?
            .iter()
            .map(|l| l.cpu)
            .collect();
        cpus.sort_unstable();
        cpus.dedup();
        cpus
    };
    config.validate(online.len())?;
    if !config.pin_threads {
        return Ok(vec![None; config.shard_count(online.len())]);
    }
    if !config.cores.is_empty() {
        for c in &config.cores {
            if !online.contains(c) {
                return Err(ConfigError::Invalid(format!(
                    "core {c} is not online (online: {online:?})"
                ))
                .into());
            }
        }
        return Ok(config.cores.iter().map(|c| Some(*c)).collect());
    }
    let n = config.shard_count(online.len());
    Ok((0..n)
        .map(|i| (n <= online.len()).then(|| online[i]))
        .collect())
}

/// Raises RLIMIT_MEMLOCK toward `want` if allowed; glommio needs at least 512 KiB, and
/// registers its I/O memory with io_uring only if the limit covers it - otherwise it
/// falls back to unregistered buffers (slower, still correct), which we report.
fn ensure_memlock(want: u64) -> Result<(), EngineError> {
    let (soft, hard) = rlimit::Resource::MEMLOCK
        .get()
        .map_err(|e| EngineError::Io {
            path: PathBuf::from("RLIMIT_MEMLOCK"),
            source: e,
        })?;
    if soft >= want {
        return Ok(());
    }
    // Root (CAP_SYS_RESOURCE) may raise the hard limit too; others only up to it.
    if rlimit::Resource::MEMLOCK.set(want, want.max(hard)).is_ok() {
        tracing::info!(from = soft, to = want, "raised RLIMIT_MEMLOCK");
    } else if hard > soft && rlimit::Resource::MEMLOCK.set(want.min(hard), hard).is_ok() {
        tracing::info!(
            from = soft,
            to = want.min(hard),
            "raised RLIMIT_MEMLOCK to its hard limit"
        );
    }
    let (soft, _) = rlimit::Resource::MEMLOCK
        .get()
        .map_err(|e| EngineError::Io {
            path: PathBuf::from("RLIMIT_MEMLOCK"),
            source: e,
        })?;
    if soft < MEMLOCK_BYTES_MIN {
        return Err(EngineError::Executor(format!(
            "locked-memory limit is {soft} bytes; glommio needs at least {MEMLOCK_BYTES_MIN} (raise `ulimit -l` or LimitMEMLOCK)"
        )));
    }
    if soft < want {
        tracing::warn!(limit = soft, wanted = want, "locked-memory limit below the I/O memory of all shards; io_uring buffer registration may fail and fall back to unregistered buffers");
    }
    Ok(())
}

/// Sets the spawning thread's memory policy for shard `shard` (a failure degrades to the
/// kernel's default placement, with a warning).
fn bind_spawning_thread(config: &EngineConfig, shard: usize, node: Option<usize>) {
    if config.numa_memory == NumaMemory::Off || config.memory_nodes.iter().all(Option::is_none) {
        return;
    }
    let Some(node) = node else {
        // Not the previous shard's node: back to the default for this one.
        if let Err(e) = numa::set_thread_policy(NumaMemory::Off, None) {
            tracing::warn!(shard, error = %e, "resetting the memory policy failed");
        }
        return;
    };
    match numa::set_thread_policy(config.numa_memory, Some(node)) {
        Ok(()) => {
            tracing::info!(shard, node, mode = ?config.numa_memory, "shard memory bound to its NUMA node")
        }
        Err(e) => {
            tracing::warn!(shard, node, error = %e, "binding shard memory to its NUMA node failed; using the default policy")
        }
    }
}

/// Starts one executor per shard, each pinned per the placement, and runs `serve` on each
/// after the shard's own machinery (inbox pump, background tasks) is up. Blocks until a
/// SIGINT or SIGTERM arrives (then closes every partition cleanly) or until every `serve`
/// future ends.
pub fn run<F>(config: EngineConfig, serve: F) -> Result<(), EngineError>
where
    F: Fn(Rc<Shard>) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync + Clone + 'static,
{
    run_with_shutdown(config, serve, |_shard| Box::pin(async {}))
}

/// [`run`], and on a stop signal each shard first runs `shutdown` (while its partitions
/// are still open and serving: a cluster member hands its leaderships away there), then
/// closes its partitions.
pub fn run_with_shutdown<F, G>(
    config: EngineConfig,
    serve: F,
    shutdown: G,
) -> Result<(), EngineError>
where
    F: Fn(Rc<Shard>) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync + Clone + 'static,
    G: Fn(Rc<Shard>) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync + Clone + 'static,
{
    let placement = plan_placement(&config)?;
    let n = placement.len();
    ensure_memlock(
        (config.io_memory_bytes as u64)
            .saturating_mul(n as u64)
            .max(MEMLOCK_BYTES_MIN),
    )?;
    let probe =
        crate::io::dma::write_probe_file(&config.data_dir).map_err(|e| EngineError::Io {
            path: config.data_dir.clone(),
            source: e,
        })?;
    for (i, cpu) in placement.iter().enumerate() {
        match cpu {
            Some(c) => tracing::info!(shard = i, cpu = c, "shard placement"),
            None => tracing::info!(
                shard = i,
                "shard placement: unpinned (more shards than cores)"
            ),
        }
    }
    let table = Arc::new(ShardTable::new(n, config.pin.clone()));
    let overrides = PlacementOverrides::load(&config.data_dir, n);
    for (tp, shard) in overrides.describe() {
        tracing::info!(partition = %tp, shard, version = overrides.version, "placement: moved at run time (placement.bin)");
    }
    let config = Arc::new(config);
    let (work_txs, work_rxs): (Vec<_>, Vec<_>) = (0..n)
        .map(|_| flume::bounded::<Job>(SHARD_INBOX_DEPTH))
        .unzip();
    let (reply_txs, reply_rxs): (Vec<_>, Vec<_>) = (0..n)
        .map(|_| flume::bounded::<Job>(SHARD_REPLY_INBOX_DEPTH))
        .unzip();
    let senders: Vec<shard::Peer> = work_txs
        .into_iter()
        .zip(reply_txs)
        .map(|(work, reply)| shard::Peer { work, reply })
        .collect();
    let receivers: Vec<_> = work_rxs.into_iter().zip(reply_rxs).collect();
    let (stop_txs, stop_rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| flume::bounded::<()>(1)).unzip();

    let mut handles = Vec::with_capacity(n);
    for (i, ((inbox, replies), stop)) in receivers.into_iter().zip(stop_rxs).enumerate() {
        let placement = match placement[i] {
            Some(cpu) => Placement::Fixed(cpu),
            None => Placement::Unbound,
        };
        let (table, config, peers, serve, probe, overrides, shutdown) = (
            table.clone(),
            config.clone(),
            senders.clone(),
            serve.clone(),
            probe.clone(),
            overrides.clone(),
            shutdown.clone(),
        );
        // The new thread inherits this thread's memory policy at clone(2), before glommio
        // allocates the shard's I/O memory there.
        let memory_node = config.memory_nodes.get(i).copied().flatten();
        bind_spawning_thread(&config, i, memory_node);
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("sluice-shard-{i}"))
            .io_memory(config.io_memory_bytes)
            .ring_depth(config.ring_depth)
            .spawn(move || async move {
                if memory_node.is_some() {
                    match numa::thread_policy() {
                        Ok(p) => tracing::info!(shard = i, mode = p.mode, nodes = ?p.nodes, "shard memory policy"),
                        Err(e) => tracing::warn!(shard = i, error = %e, "reading the memory policy failed"),
                    }
                }
                if let Err(e) = crate::io::dma::prime_device_probe(&probe).await {
                    tracing::error!(shard = i, error = %e, "device probe read failed; DMA reads may fail");
                }
                let background = glommio::executor().create_task_queue(
                    Shares::Static(BACKGROUND_SHARES),
                    Latency::NotImportant,
                    "background",
                );
                let shard = Rc::new(Shard::new(
                    ShardId(i),
                    table,
                    config,
                    peers,
                    background,
                    overrides,
                ));
                glommio::spawn_local(shard.clone().pump(inbox)).detach();
                glommio::spawn_local(shard.clone().reply_pump(replies)).detach();
                if let Err(e) = shard.start_background() {
                    tracing::error!(shard = i, error = %e, "background tasks did not start");
                }
                let serving = serve(shard.clone());
                let stopped = async {
                    let _ = stop.recv_async().await;
                    true
                };
                let serving = async {
                    serving.await;
                    false
                };
                // The shutdown hook runs while `serving`'s tasks (detached ones included)
                // still run: only the serve future itself is dropped here.
                if futures_lite::future::or(serving, stopped).await {
                    shutdown(shard.clone()).await;
                }
                if let Err(e) = shard.close_all().await {
                    tracing::error!(shard = i, error = %e, "clean close failed");
                }
            })
            .map_err(|e| EngineError::Executor(e.to_string()))?;
        handles.push(handle);
    }
    if config.memory_nodes.iter().any(Option::is_some) {
        if let Err(e) = numa::set_thread_policy(NumaMemory::Off, None) {
            tracing::warn!(error = %e, "resetting the main thread's memory policy failed");
        }
    }
    drop(senders);

    // Wait for a stop signal on this (non-shard) thread, then tell every shard.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(|e| EngineError::Io {
        path: PathBuf::from("signals"),
        source: e,
    })?;
    let handle_signals = signals.handle();
    let waiter = std::thread::Builder::new()
        .name("sluice-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                tracing::info!(signal = sig, "stopping: closing partitions");
                for tx in &stop_txs {
                    let _ = tx.try_send(());
                }
            }
        })
        .map_err(|e| EngineError::Io {
            path: PathBuf::from("signal thread"),
            source: e,
        })?;
    let mut first_err = None;
    for h in handles {
        if let Err(e) = h.join() {
            first_err.get_or_insert(EngineError::Executor(e.to_string()));
        }
    }
    handle_signals.close();
    let _ = waiter.join();
    // Give detached close tasks' file handles a moment to finish closing.
    std::thread::sleep(Duration::from_millis(10));
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_pins_configured_cores_unless_pinning_is_off() {
        let pinned = EngineConfig {
            cores: vec![0],
            ..EngineConfig::default()
        };
        assert_eq!(plan_placement(&pinned).expect("plan"), vec![Some(0)]);

        let unpinned = EngineConfig {
            shards: 2,
            pin_threads: false,
            ..EngineConfig::default()
        };
        assert_eq!(plan_placement(&unpinned).expect("plan"), vec![None, None]);

        // `cores` still sets the shard count when the threads are not pinned.
        let counted = EngineConfig {
            cores: vec![0],
            pin_threads: false,
            ..EngineConfig::default()
        };
        assert_eq!(plan_placement(&counted).expect("plan"), vec![None]);
    }
}
