//! Moving a partition to another shard while the broker runs.
//!
//! The config's [`ShardTable`](super::ShardTable) stays immutable; on top of it every shard
//! keeps its own copy of a versioned set of overrides ("this partition now lives on shard
//! N"). Copies change only by a message through `route_to_owner`, so there is no shared
//! mutable state: each shard applies an update on its own thread, and a newer version
//! always replaces an older one.
//!
//! A move ([`Shard::move_partition`], run on shard 0, one at a time) goes:
//! 1. the old owner stops admitting work for the partition (new requests wait), waits for
//!    the work already admitted to finish, then flushes and closes the log (durable; the
//!    clean-close marker makes the next open skip the recovery scan);
//! 2. shard 0 persists the new overrides in `<data_dir>/placement.bin` (atomic replace);
//! 3. the update is sent to the new owner first, then to every other shard, the old owner
//!    last; when the old owner applies it, the waiting requests wake up, see the partition
//!    is owned elsewhere and are sent there by their caller (see [`Admission`]), in their
//!    original order (see [`super::dispatch`]).
//!
//! The file: the engine's small-file framing (length prefix, aligned, fdatasync'd, replaced
//! by rename) around a crc32c + versioned rkyv archive, like the producer-state snapshot.
//! It is written from a shard thread, so it must go through the async DMA storage (a
//! blocking `std::fs` write would stall the shard's reactor), and a torn or rotten file is
//! detected by the checksum and ignored (loudly) - safe because partition directories do
//! not depend on the shard, so any placement finds the data.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;
use rkyv::rancor;
use rkyv::{Archive, Deserialize, Serialize};

use crate::config::LogConfig;
use crate::ids::{ShardId, TopicPartition};
use crate::io::dma::DmaStorage;
use crate::limits::{MOVE_DRAIN_MS_MAX, MOVE_WAIT_MS_MAX, PLACEMENT_OVERRIDES_MAX};
use crate::log::small_file::{replace_small_file, SMALL_FILE_BYTES_MAX};
use crate::runtime::dispatch::DispatchTable;
use crate::runtime::shard::Shard;
use crate::runtime::table::ShardTable;
use crate::runtime::EngineError;

/// Where the overrides live, in the data directory.
pub const PLACEMENT_FILE: &str = "placement.bin";
const PLACEMENT_MAGIC: u32 = 0x534c_504d; // "SLPM"
const PLACEMENT_FORMAT: u16 = 1;

/// Broker view, one copy per shard: partitions moved away from their configured shard.
/// `version` only grows; shard 0 (the only shard that runs moves) makes each new version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlacementOverrides {
    pub version: u64,
    pub moved: HashMap<TopicPartition, ShardId>,
    /// Moves to shards this run does not have: not used for routing, but written back
    /// with the rest, so they apply again once the broker runs that many shards.
    pub set_aside: HashMap<TopicPartition, ShardId>,
}

#[derive(Archive, Serialize, Deserialize, Debug)]
struct PlacementArchive {
    magic: u32,
    format: u16,
    version: u64,
    /// (topic, partition, shard), sorted so equal placements encode equally.
    moved: Vec<(String, i32, u32)>,
}

impl PlacementOverrides {
    pub fn encode(&self) -> Vec<u8> {
        let mut moved: Vec<(String, i32, u32)> = self
            .moved
            .iter()
            .chain(&self.set_aside)
            .map(|(tp, s)| (tp.topic.clone(), tp.partition.0, s.0 as u32))
            .collect();
        moved.sort();
        let archive = PlacementArchive {
            magic: PLACEMENT_MAGIC,
            format: PLACEMENT_FORMAT,
            version: self.version,
            moved,
        };
        let body = rkyv::to_bytes::<rancor::Error>(&archive)
            .expect("serializing plain data into a Vec cannot fail");
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// `None` for anything damaged, from another format, or over the bound.
    pub fn decode(bytes: &[u8]) -> Option<PlacementOverrides> {
        let (crc, body) = bytes.split_at_checked(4)?;
        let mut c = [0u8; 4];
        c.copy_from_slice(crc);
        if crc32c::crc32c(body) != u32::from_le_bytes(c) {
            return None;
        }
        let archived = rkyv::access::<ArchivedPlacementArchive, rancor::Error>(body).ok()?;
        if archived.magic.to_native() != PLACEMENT_MAGIC
            || archived.format.to_native() != PLACEMENT_FORMAT
            || archived.moved.len() > PLACEMENT_OVERRIDES_MAX
        {
            return None;
        }
        let archive = rkyv::deserialize::<PlacementArchive, rancor::Error>(archived).ok()?;
        Some(PlacementOverrides {
            version: archive.version,
            moved: archive
                .moved
                .into_iter()
                .map(|(t, p, s)| (TopicPartition::new(t, p), ShardId(s as usize)))
                .collect(),
            set_aside: HashMap::new(),
        })
    }

    /// Reads the file at start-up (before any shard runs, so plain `std::fs` is fine).
    /// Entries naming a shard this run does not have are dropped with a warning: their
    /// partitions fall back to the configured placement, and their data is found anyway.
    pub fn load(data_dir: &Path, shard_count: usize) -> PlacementOverrides {
        let path = data_dir.join(PLACEMENT_FILE);
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return PlacementOverrides::default()
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "placement overrides unreadable; using the configured placement");
                return PlacementOverrides::default();
            }
        };
        let Some(mut found) = unframe_small_file(&raw).and_then(PlacementOverrides::decode) else {
            tracing::warn!(path = %path.display(), "placement overrides damaged; using the configured placement");
            return PlacementOverrides::default();
        };
        let (moved, set_aside) = found
            .moved
            .drain()
            .partition(|(_, shard)| shard.0 < shard_count);
        found.moved = moved;
        found.set_aside = set_aside;
        for (tp, shard) in &found.set_aside {
            tracing::warn!(partition = %tp, %shard, shard_count, "placement override names a shard this run does not have; using the configured placement until it does");
        }
        found
    }

    /// The next version with `tp` on `to`: an override only where it differs from the
    /// configured placement, so moving a partition back home removes its entry.
    pub fn with_move(&self, table: &ShardTable, tp: &TopicPartition, to: ShardId) -> Self {
        let mut next = self.clone();
        next.version += 1;
        next.set_aside.remove(tp);
        if table.owner(tp) == to {
            next.moved.remove(tp);
        } else {
            next.moved.insert(tp.clone(), to);
        }
        next
    }

    /// "topic/partition" -> shard, for logs and status.
    pub fn describe(&self) -> BTreeMap<String, usize> {
        self.moved
            .iter()
            .map(|(tp, s)| (format!("{}/{}", tp.topic, tp.partition.0), s.0))
            .collect()
    }
}

/// The payload of a file written by `write_small_file` (`[len u64 LE][payload][padding]`).
fn unframe_small_file(raw: &[u8]) -> Option<&[u8]> {
    let (len, rest) = raw.split_at_checked(8)?;
    let mut l = [0u8; 8];
    l.copy_from_slice(len);
    let len = usize::try_from(u64::from_le_bytes(l)).ok()?;
    if len > SMALL_FILE_BYTES_MAX {
        return None;
    }
    rest.get(..len)
}

/// Per-shard move state. Owned by its shard; only that shard's tasks touch it.
#[derive(Default)]
pub(crate) struct ShardPlacement {
    pub(crate) overrides: RefCell<PlacementOverrides>,
    /// Work admitted per partition and not finished yet (entries removed at zero).
    leases: RefCell<HashMap<TopicPartition, usize>>,
    /// Partitions leaving this shard: the requests waiting for the move, and the mover
    /// waiting for the admitted work to drain.
    departing: RefCell<HashMap<TopicPartition, Departure>>,
    /// Serialises moves (used on shard 0 only).
    move_lock: async_lock::Mutex<()>,
    /// This shard's own routed work per partition, as the origin.
    pub(crate) dispatches: DispatchTable,
}

#[derive(Default)]
struct Departure {
    waiters: Vec<oneshot::Sender<()>>,
    drained: Option<oneshot::Sender<()>>,
}

/// Whether this shard will run work for a partition.
pub enum Admission {
    /// This shard owns it: run the work while holding the lease (a move waits for it).
    Owned(PartitionLease),
    /// Another shard owns it (this shard's view, which is at least as new as the
    /// caller's when the partition just left): send the work there.
    Elsewhere(ShardId),
    /// A move of the partition did not finish within `MOVE_WAIT_MS_MAX`.
    Moving,
}

/// Held while admitted work for a partition runs; the partition cannot leave the shard
/// until every lease is dropped.
pub struct PartitionLease {
    shard: Rc<Shard>,
    tp: TopicPartition,
}

impl Drop for PartitionLease {
    fn drop(&mut self) {
        let p = self.shard.placement();
        let mut leases = p.leases.borrow_mut();
        let Some(n) = leases.get_mut(&self.tp) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            leases.remove(&self.tp);
            if let Some(d) = p.departing.borrow_mut().get_mut(&self.tp) {
                if let Some(tx) = d.drained.take() {
                    let _ = tx.send(());
                }
            }
        }
    }
}

/// What a finished move reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveOutcome {
    pub from: ShardId,
    pub to: ShardId,
    /// The placement version now in force.
    pub version: u64,
    /// False when the partition already was on `to` (nothing happened).
    pub moved: bool,
    /// Opening the log on the new owner (after a clean close: no recovery scan).
    pub open_us: u64,
}

impl Shard {
    /// Admits work for `tp` on this shard: waits (bounded) while the partition is leaving,
    /// then says whether this shard owns it.
    pub async fn admit(self: &Rc<Self>, tp: &TopicPartition) -> Admission {
        let deadline = std::time::Instant::now() + Duration::from_millis(MOVE_WAIT_MS_MAX);
        loop {
            let rx = {
                let mut departing = self.placement().departing.borrow_mut();
                let Some(d) = departing.get_mut(tp) else {
                    break;
                };
                let (tx, rx) = oneshot::channel();
                d.waiters.push(tx);
                rx
            };
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Admission::Moving;
            }
            futures_lite::future::or(
                async {
                    let _ = rx.await;
                },
                glommio::timer::sleep(left),
            )
            .await;
        }
        let owner = self.owner(tp);
        if owner != self.id() {
            return Admission::Elsewhere(owner);
        }
        *self
            .placement()
            .leases
            .borrow_mut()
            .entry(tp.clone())
            .or_insert(0) += 1;
        Admission::Owned(PartitionLease {
            shard: self.clone(),
            tp: tp.clone(),
        })
    }

    pub(crate) fn is_departing(&self, tp: &TopicPartition) -> bool {
        self.placement().departing.borrow().contains_key(tp)
    }

    /// The overrides this shard routes by.
    pub fn placement_overrides(&self) -> PlacementOverrides {
        self.placement().overrides.borrow().clone()
    }

    /// Step 1 of a move, on the old owner: hold new work, drain admitted work, flush and
    /// close the log. The partition stays held until [`Shard::apply_placement`] moves it
    /// away or [`Shard::cancel_departure`] keeps it.
    async fn depart(self: &Rc<Self>, tp: &TopicPartition) -> Result<(), EngineError> {
        if self.owner(tp) != self.id() {
            return Err(EngineError::NotOwner {
                tp: tp.clone(),
                owner: self.owner(tp),
                here: self.id(),
            });
        }
        let drained = {
            let p = self.placement();
            let mut departing = p.departing.borrow_mut();
            if departing.contains_key(tp) {
                return Err(EngineError::MoveInProgress(tp.clone()));
            }
            let mut d = Departure::default();
            let rx = p.leases.borrow().contains_key(tp).then(|| {
                let (tx, rx) = oneshot::channel();
                d.drained = Some(tx);
                rx
            });
            departing.insert(tp.clone(), d);
            rx
        };
        let started = std::time::Instant::now();
        if let Some(rx) = drained {
            let done = futures_lite::future::or(async { rx.await.is_ok() }, async {
                glommio::timer::sleep(Duration::from_millis(MOVE_DRAIN_MS_MAX)).await;
                false
            })
            .await;
            if !done {
                self.cancel_departure(tp);
                return Err(EngineError::MoveTimedOut(tp.clone()));
            }
        }
        let drained_us = started.elapsed().as_micros() as u64;
        if let Err(e) = self.close_for_move(tp).await {
            self.cancel_departure(tp);
            return Err(e);
        }
        tracing::debug!(partition = %tp, drained_us, closed_us = started.elapsed().as_micros() as u64 - drained_us, "partition left this shard");
        Ok(())
    }

    /// Ends a departure without moving: waiting requests run here again.
    pub(crate) fn cancel_departure(&self, tp: &TopicPartition) {
        let d = self.placement().departing.borrow_mut().remove(tp);
        if let Some(d) = d {
            for w in d.waiters {
                let _ = w.send(());
            }
        }
    }

    /// Installs a newer placement; wakes the requests held by partitions that now live
    /// elsewhere (they re-route to the new owner).
    pub fn apply_placement(&self, update: PlacementOverrides) {
        let p = self.placement();
        if update.version <= p.overrides.borrow().version {
            return;
        }
        *p.overrides.borrow_mut() = update;
        let gone: Vec<TopicPartition> = p
            .departing
            .borrow()
            .keys()
            .filter(|tp| self.owner(tp) != self.id())
            .cloned()
            .collect();
        for tp in gone {
            self.cancel_departure(&tp);
        }
    }

    /// Moves `tp` to shard `to` with the protocol in the module docs. Runs on shard 0 (the
    /// admin endpoint's shard); moves are serialised. Requests for the partition wait
    /// during the move (about one flush and one index write) and then go to the new owner.
    pub async fn move_partition(
        self: &Rc<Self>,
        tp: TopicPartition,
        to: ShardId,
        config: LogConfig,
    ) -> Result<MoveOutcome, EngineError> {
        if self.id() != ShardId(0) {
            return Err(EngineError::Executor(
                "partition moves are coordinated by shard 0".into(),
            ));
        }
        if to.0 >= self.shard_count() {
            return Err(EngineError::NoSuchShard(to));
        }
        let _one_at_a_time = self.placement().move_lock.lock().await;
        let from = self.owner(&tp);
        let current = self.placement_overrides();
        if from == to {
            return Ok(MoveOutcome {
                from,
                to,
                version: current.version,
                moved: false,
                open_us: 0,
            });
        }
        let next = current.with_move(self.table(), &tp, to);
        if next.moved.len() > PLACEMENT_OVERRIDES_MAX {
            return Err(EngineError::Executor(format!(
                "at most {PLACEMENT_OVERRIDES_MAX} partitions can be moved off their configured shard"
            )));
        }
        let started = std::time::Instant::now();
        let t = tp.clone();
        self.route_to_owner(from, move |s| Box::pin(async move { s.depart(&t).await }))
            .await??;
        let departed_us = started.elapsed().as_micros() as u64;
        let path = self.engine_config().data_dir.join(PLACEMENT_FILE);
        if let Err(source) = replace_small_file(&DmaStorage, &path, &next.encode()).await {
            let t = tp.clone();
            let _ = self
                .route_to_owner(from, move |s| {
                    Box::pin(async move { s.cancel_departure(&t) })
                })
                .await;
            return Err(EngineError::Io { path, source });
        }
        // New owner first, so requests released by the old owner find it ready; the old
        // owner last, since applying there releases them.
        let mut order = vec![to];
        order.extend(
            (0..self.shard_count())
                .map(ShardId)
                .filter(|s| *s != to && *s != from),
        );
        order.push(from);
        let persisted_us = started.elapsed().as_micros() as u64;
        let mut open_us = 0;
        for s in order {
            let update = next.clone();
            if s == to {
                // The new owner opens the log before anything is released towards it, so
                // released requests find it open and queue on it in their order.
                let (t, config) = (tp.clone(), config.clone());
                open_us = self
                    .route_to_owner(s, move |shard| {
                        Box::pin(async move {
                            shard.apply_placement(update);
                            let opened = std::time::Instant::now();
                            if let Err(e) = shard.open_partition(t.clone(), config).await {
                                // Requests will open it (and report the error) themselves.
                                tracing::warn!(partition = %t, error = %e, "opening a moved partition failed");
                            }
                            opened.elapsed().as_micros() as u64
                        })
                    })
                    .await?;
                continue;
            }
            self.route_to_owner(s, move |shard| {
                Box::pin(async move { shard.apply_placement(update) })
            })
            .await?;
        }
        tracing::info!(partition = %tp, %from, %to, version = next.version, elapsed_us = started.elapsed().as_micros() as u64, departed_us, persisted_us, open_us, "partition moved");
        Ok(MoveOutcome {
            from,
            to,
            version: next.version,
            moved: true,
            open_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("orders", p)
    }

    #[test]
    fn overrides_round_trip_and_damage_is_refused() {
        let table = ShardTable::new(4, BTreeMap::new());
        let a = PlacementOverrides::default()
            .with_move(&table, &tp(0), ShardId(3))
            .with_move(&table, &tp(7), ShardId(1));
        let bytes = a.encode();
        assert_eq!(PlacementOverrides::decode(&bytes), Some(a.clone()));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert_eq!(PlacementOverrides::decode(&bad), None, "flip at byte {i}");
        }
        assert_eq!(PlacementOverrides::decode(&bytes[..bytes.len() - 1]), None);
    }

    #[test]
    fn moving_home_removes_the_override_and_versions_grow() {
        let table = ShardTable::new(2, BTreeMap::new());
        let home = table.owner(&tp(0));
        let away = ShardId(1 - home.0);
        let a = PlacementOverrides::default().with_move(&table, &tp(0), away);
        assert_eq!(a.moved.get(&tp(0)), Some(&away));
        let b = a.with_move(&table, &tp(0), home);
        assert!(b.moved.is_empty());
        assert_eq!((a.version, b.version), (1, 2));
    }

    #[test]
    fn load_sets_aside_overrides_for_shards_that_no_longer_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = ShardTable::new(4, BTreeMap::new());
        let a = PlacementOverrides::default()
            .with_move(&table, &tp(0), ShardId(3))
            .with_move(&table, &tp(1), ShardId(0));
        // The small-file framing, as replace_small_file writes it.
        let payload = a.encode();
        let mut raw = (payload.len() as u64).to_le_bytes().to_vec();
        raw.extend_from_slice(&payload);
        raw.resize(4096, 0);
        std::fs::write(dir.path().join(PLACEMENT_FILE), &raw).expect("write");
        let four = PlacementOverrides::load(dir.path(), 4);
        assert_eq!(four, a);
        let one = PlacementOverrides::load(dir.path(), 1);
        assert_eq!(one.version, a.version);
        assert_eq!(one.moved.get(&tp(0)), None);
        assert_eq!(one.set_aside.get(&tp(0)), Some(&ShardId(3)));
        assert_eq!(one.moved.get(&tp(1)), a.moved.get(&tp(1)));
        // Written back whole: the set-aside move returns with 4 shards.
        let again = PlacementOverrides::decode(&one.encode()).expect("decodes");
        assert_eq!(again.moved.get(&tp(0)), Some(&ShardId(3)));
        // Damage: ignored, not fatal.
        raw[12] ^= 1;
        std::fs::write(dir.path().join(PLACEMENT_FILE), &raw).expect("write");
        assert_eq!(
            PlacementOverrides::load(dir.path(), 4),
            PlacementOverrides::default()
        );
    }
}
