//! Moving a partition between shards while it is written, on real DMA files: appenders on
//! shard 0 keep appending through `admit` (following the partition when it has moved)
//! while shard 0 moves it back and forth; every acknowledged batch must be in the log once,
//! at its acknowledged offset, each appender's batches in its order; the placement must be
//! persisted and reload as it was left.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use sluice_engine::batch::{batches, build, BatchView};
use sluice_engine::config::{EngineConfig, LogConfig};
use sluice_engine::ids::{LeaderEpoch, Offset, ShardId, TopicPartition};
use sluice_engine::limits::BATCH_BYTES_MAX;
use sluice_engine::log::AppendOptions;
use sluice_engine::runtime::{self, Admission, EngineError, PlacementOverrides, Shard};

const OPTS: AppendOptions = AppendOptions {
    leader_epoch: LeaderEpoch(0),
    batch_bytes_max: BATCH_BYTES_MAX,
};
const APPENDERS: u8 = 4;
/// Appenders run until the moves are over, at most this many batches each.
const BATCHES_PER_APPENDER_MAX: usize = 5_000;
const MOVES: usize = 10;

fn test_dir(name: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("test dir");
    base
}

fn config(dir: &Path) -> EngineConfig {
    EngineConfig {
        data_dir: dir.to_path_buf(),
        shards: 2,
        io_memory_bytes: 1 << 20,
        ..EngineConfig::default()
    }
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        ..LogConfig::default()
    }
}

/// Runs `work` on shard 0 while shard 1 serves, then stops both.
fn on_shard_0<R: Send + 'static>(
    config: EngineConfig,
    work: impl Fn(Rc<Shard>) -> std::pin::Pin<Box<dyn std::future::Future<Output = R>>>
        + Send
        + Sync
        + Clone
        + 'static,
) -> R {
    let out: Arc<Mutex<Option<R>>> = Arc::new(Mutex::new(None));
    let (done_tx, done_rx) = flume::unbounded::<()>();
    let out2 = out.clone();
    runtime::run(config, move |shard: Rc<Shard>| {
        let (work, out, done_tx, done_rx) =
            (work.clone(), out2.clone(), done_tx.clone(), done_rx.clone());
        Box::pin(async move {
            if shard.id() == ShardId(0) {
                let r = work(shard).await;
                *out.lock().expect("result lock") = Some(r);
                let _ = done_tx.send(());
                let _ = done_tx.send(());
            } else {
                let _ = done_rx.recv_async().await;
            }
        })
    })
    .expect("runtime runs");
    let r = out.lock().expect("result lock").take();
    r.expect("shard 0 produced a result")
}

/// Appends `batch` wherever the partition lives now: admitted by the owner, or told where
/// it went (the caller's view may be behind during a move).
async fn append_following(shard: &Rc<Shard>, tp: &TopicPartition, batch: Vec<u8>) -> Offset {
    let mut owner = shard.owner(tp);
    for _ in 0..8 {
        let (t, b) = (tp.clone(), batch.clone());
        let answer = shard
            .route_to_owner(owner, move |s: Rc<Shard>| {
                Box::pin(async move {
                    match s.admit(&t).await {
                        Admission::Owned(lease) => {
                            let log = s.open_partition(t, log_config()).await.expect("open");
                            let info = log.append(&b, OPTS).await.expect("append");
                            drop(lease);
                            Ok(info.base_offset)
                        }
                        Admission::Elsewhere(to) => Err(to),
                        Admission::Moving => Err(s.owner(&t)),
                    }
                })
            })
            .await
            .expect("routed");
        match answer {
            Ok(offset) => return offset,
            Err(to) => owner = to,
        }
    }
    panic!("{tp} kept moving");
}

#[test]
fn appends_during_moves_land_once_in_order_and_the_placement_persists() {
    let dir = test_dir("shard-moves");
    let tp = TopicPartition::new("moving", 0);
    let t = tp.clone();
    let (acked, read, outcomes, final_overrides) = on_shard_0(config(&dir), move |shard| {
        let tp = t.clone();
        Box::pin(async move {
            let start = shard.owner(&tp);
            let done = Rc::new(std::cell::Cell::new(0usize));
            let stop = Rc::new(std::cell::Cell::new(false));
            let mut appenders = Vec::new();
            for a in 0..APPENDERS {
                let (shard, tp, done, stop) =
                    (shard.clone(), tp.clone(), done.clone(), stop.clone());
                appenders.push(
                    glommio::spawn_local(async move {
                        let mut acked = Vec::new();
                        for i in 0..BATCHES_PER_APPENDER_MAX {
                            if stop.get() {
                                break;
                            }
                            // Appender id in the value bytes, sequence in the timestamp: every CRC differs.
                            let b = build::batch(2, 200, a, i as i64);
                            let crc = BatchView::parse(&b).expect("batch").stored_crc();
                            let offset = append_following(&shard, &tp, b).await;
                            done.set(done.get() + 1);
                            acked.push((offset, a, i, crc));
                        }
                        acked
                    })
                    .detach(),
                );
            }
            let mut outcomes = Vec::new();
            // Appends are under way before the first move (bounded wait).
            for _ in 0..1000 {
                if done.get() > 0 {
                    break;
                }
                glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
            }
            let mut under_load = 0;
            for m in 0..MOVES {
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                if done.get() > 0 && done.get() < APPENDERS as usize * BATCHES_PER_APPENDER_MAX {
                    under_load += 1;
                }
                let to = ShardId((start.0 + m + 1) % 2);
                let o = shard
                    .move_partition(tp.clone(), to, log_config())
                    .await
                    .expect("move");
                outcomes.push(o);
            }
            assert_eq!(under_load, MOVES, "every move happens while appending");
            // Refusals: a shard that does not exist; a move to where it already is.
            assert!(matches!(
                shard
                    .move_partition(tp.clone(), ShardId(5), log_config())
                    .await,
                Err(EngineError::NoSuchShard(ShardId(5)))
            ));
            let here = shard.owner(&tp);
            let same = shard
                .move_partition(tp.clone(), here, log_config())
                .await
                .expect("no-op move");
            assert!(!same.moved);
            stop.set(true);
            let mut acked = Vec::new();
            for task in appenders {
                acked.extend(task.await.expect("appender finished"));
            }
            let t = tp.clone();
            let read = shard
                .route_to_owner(here, move |s: Rc<Shard>| {
                    Box::pin(async move {
                        let log = s.open_partition(t, log_config()).await.expect("open");
                        let mut got = Vec::new();
                        let mut next = Offset(0);
                        loop {
                            let r = log.read(next, 1 << 20).await.expect("read");
                            if r.bytes.is_empty() {
                                break;
                            }
                            for b in batches(&r.bytes) {
                                let b = BatchView::parse_checked(b.expect("batch").bytes())
                                    .expect("crc");
                                got.push((b.base_offset(), b.stored_crc()));
                                next = b.last_offset().next();
                            }
                        }
                        got
                    })
                })
                .await
                .expect("routed");
            (acked, read, outcomes, shard.placement_overrides())
        })
    });

    assert_eq!(outcomes.len(), MOVES);
    for (i, o) in outcomes.iter().enumerate() {
        assert!(o.moved, "move {i}: {o:?}");
        assert_ne!(o.from, o.to);
        assert_eq!(o.version, i as u64 + 1);
    }
    // Every acknowledged batch once, at its offset; nothing else in the log.
    let mut acked = acked;
    acked.sort();
    let from_acks: Vec<(Offset, u32)> = acked.iter().map(|(o, _, _, crc)| (*o, *crc)).collect();
    assert_eq!(read, from_acks, "log differs from the acknowledgements");
    for w in acked.windows(2) {
        assert_eq!(
            w[1].0,
            Offset(w[0].0 .0 + 2),
            "2-record batches back to back"
        );
    }
    // Each appender's batches in its order.
    for a in 0..APPENDERS {
        let seq: Vec<usize> = acked.iter().filter(|x| x.1 == a).map(|x| x.2).collect();
        assert!(seq.len() < BATCHES_PER_APPENDER_MAX, "stopped by the flag");
        assert_eq!(seq, (0..seq.len()).collect::<Vec<_>>());
    }
    // The placement was persisted: a restart (same shard count) loads what was left.
    let reloaded = PlacementOverrides::load(&dir, 2);
    assert_eq!(reloaded.version, final_overrides.version);
    assert_eq!(reloaded.moved, final_overrides.moved);
    let _ = std::fs::remove_dir_all(&dir);
}
