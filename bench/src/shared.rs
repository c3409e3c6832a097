//! State the load generator's threads share during one run: the topic-partition list,
//! acknowledged end offsets (so consumers know when they have everything), live counters
//! for the progress line, and the stop flags.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Slot {
    pub topic: String,
    pub partition: i32,
}

#[derive(Debug, Default)]
pub struct Counters {
    pub records_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub records_acked: AtomicU64,
    pub records_failed: AtomicU64,
    pub records_consumed: AtomicU64,
    pub in_flight: AtomicU64,
}

pub struct Shared {
    /// All latencies and schedules are ns since this instant.
    pub epoch: Instant,
    /// Wall clock at `epoch`, for record timestamps.
    pub epoch_unix_ms: i64,
    /// Distinguishes this run's records from any already in the topics.
    pub run_tag: u64,
    pub warmup_ns: u64,
    pub slots: Vec<Slot>,
    topic_index: HashMap<String, usize>,
    partitions_per_topic: usize,
    /// Per slot: the offset after the last acknowledged record of this run.
    pub acked_end: Vec<AtomicI64>,
    pub counters: Counters,
    pub producers_done: AtomicBool,
    pub producers_done_ns: AtomicU64,
    /// Set when any thread fails, so the others stop early.
    pub abort: AtomicBool,
}

impl Shared {
    pub fn new(
        topics: &[String],
        partitions: u32,
        warmup_ns: u64,
        run_tag: u64,
        epoch_unix_ms: i64,
    ) -> Self {
        let slots: Vec<Slot> = topics
            .iter()
            .flat_map(|t| {
                (0..partitions as i32).map(move |p| Slot {
                    topic: t.clone(),
                    partition: p,
                })
            })
            .collect();
        let acked_end = slots.iter().map(|_| AtomicI64::new(-1)).collect();
        Self {
            epoch: Instant::now(),
            epoch_unix_ms,
            run_tag,
            warmup_ns,
            topic_index: topics
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), i))
                .collect(),
            partitions_per_topic: partitions as usize,
            slots,
            acked_end,
            counters: Counters::default(),
            producers_done: AtomicBool::new(false),
            producers_done_ns: AtomicU64::new(0),
            abort: AtomicBool::new(false),
        }
    }

    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn slot_of(&self, topic: &str, partition: i32) -> Option<usize> {
        let t = *self.topic_index.get(topic)?;
        let p = usize::try_from(partition)
            .ok()
            .filter(|p| *p < self.partitions_per_topic)?;
        Some(t * self.partitions_per_topic + p)
    }

    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }
}
