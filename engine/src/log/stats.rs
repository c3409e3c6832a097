//! Counters and the fdatasync latency histogram of one partition log, read by the metrics
//! endpoint. Owned by the partition's log (its shard); readers copy a snapshot.

use std::cell::{Cell, RefCell};

use hdrhistogram::Histogram;

/// Highest fdatasync latency recorded, microseconds (longer ones are clamped).
pub const SYNC_LATENCY_US_MAX: u64 = 60_000_000;

#[derive(Debug)]
pub struct LogStats {
    pub appended_bytes: Cell<u64>,
    pub appended_batches: Cell<u64>,
    pub read_bytes: Cell<u64>,
    pub syncs: Cell<u64>,
    /// Log cleaner: passes run, bytes of segments read and of cleaned copies written, and
    /// the clock time of the last pass (-1: never).
    pub cleaner_passes: Cell<u64>,
    pub cleaner_bytes_read: Cell<u64>,
    pub cleaner_bytes_written: Cell<u64>,
    pub cleaner_last_run_ms: Cell<i64>,
    sync_latency_us: RefCell<Histogram<u64>>,
}

impl Default for LogStats {
    fn default() -> Self {
        LogStats {
            appended_bytes: Cell::new(0),
            appended_batches: Cell::new(0),
            read_bytes: Cell::new(0),
            syncs: Cell::new(0),
            cleaner_passes: Cell::new(0),
            cleaner_bytes_read: Cell::new(0),
            cleaner_bytes_written: Cell::new(0),
            cleaner_last_run_ms: Cell::new(-1),
            sync_latency_us: RefCell::new(
                Histogram::new_with_bounds(1, SYNC_LATENCY_US_MAX, 2)
                    .expect("static histogram bounds are valid"),
            ),
        }
    }
}

impl LogStats {
    pub(crate) fn add(cell: &Cell<u64>, by: u64) {
        cell.set(cell.get().wrapping_add(by));
    }

    pub(crate) fn record_sync(&self, micros: u64) {
        Self::add(&self.syncs, 1);
        let _ = self
            .sync_latency_us
            .borrow_mut()
            .record(micros.clamp(1, SYNC_LATENCY_US_MAX));
    }

    pub(crate) fn record_clean(&self, outcome: &crate::log::CleanOutcome, now_ms: i64) {
        Self::add(&self.cleaner_passes, 1);
        Self::add(&self.cleaner_bytes_read, outcome.bytes_read);
        Self::add(&self.cleaner_bytes_written, outcome.bytes_written);
        self.cleaner_last_run_ms.set(now_ms);
    }

    /// A copy of the fdatasync latency histogram (microseconds).
    pub fn sync_latency_us(&self) -> Histogram<u64> {
        self.sync_latency_us.borrow().clone()
    }
}
