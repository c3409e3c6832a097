//! Synthetic records: sizes, keys, partition choice, the send-time stamp, and the
//! fixed-rate schedule.

use bytes::{BufMut, Bytes, BytesMut};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::SizeDistribution;

/// Every value starts with the record's intended send time (ns since the run's epoch,
/// little-endian u64) and the run tag, so consumers measure end-to-end latency and skip
/// records from other runs.
pub const VALUE_STAMP_BYTES: usize = 16;
/// Payload bytes are cut from a pool of random capital letters (as Kafka's
/// producer-perf-test does), so compression has something realistic to chew on.
const PAYLOAD_POOL_BYTES: usize = 256 << 10;

pub fn stamp_value(buf: &mut BytesMut, intended_ns: u64, run_tag: u64) {
    buf.put_u64_le(intended_ns);
    buf.put_u64_le(run_tag);
}

/// `(intended_ns, run_tag)` from a value written by `stamp_value`.
pub fn read_stamp(value: &[u8]) -> Option<(u64, u64)> {
    let intended = u64::from_le_bytes(value.get(0..8)?.try_into().ok()?);
    let tag = u64::from_le_bytes(value.get(8..16)?.try_into().ok()?);
    Some((intended, tag))
}

/// FNV-1a: a fixed, documented key-to-partition hash (not Java's murmur2; the mapping
/// only has to be stable within a run).
pub fn key_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratedShape {
    /// Index into the run's topic-partition list.
    pub slot: usize,
    pub value_bytes: usize,
}

/// Produces one producer's records. Unkeyed records stick to one partition until a
/// batch's worth has gone there, then move on (Kafka's sticky partitioner); keyed
/// records go to their key's partition.
pub struct RecordGenerator {
    rng: SmallRng,
    sizes: SizeDistribution,
    key_cardinality: Option<u64>,
    slots: usize,
    sticky_slot: usize,
    sticky_bytes: usize,
    batch_bytes: usize,
    run_tag: u64,
    pool: Bytes,
}

pub struct GeneratedRecord {
    pub slot: usize,
    pub key: Option<Bytes>,
    pub value: Bytes,
}

impl RecordGenerator {
    pub fn new(
        seed: u64,
        sizes: SizeDistribution,
        key_cardinality: Option<u64>,
        slots: usize,
        batch_bytes: usize,
        run_tag: u64,
    ) -> Self {
        assert!(
            slots > 0,
            "a workload has at least one topic-partition (validated)"
        );
        let mut rng = SmallRng::seed_from_u64(seed);
        let pool: Vec<u8> = (0..PAYLOAD_POOL_BYTES)
            .map(|_| rng.gen_range(b'A'..=b'Z'))
            .collect();
        let sticky_slot = rng.gen_range(0..slots);
        Self {
            rng,
            sizes,
            key_cardinality,
            slots,
            sticky_slot,
            sticky_bytes: 0,
            batch_bytes,
            run_tag,
            pool: Bytes::from(pool),
        }
    }

    fn next_size(&mut self) -> usize {
        match self.sizes {
            SizeDistribution::Fixed { bytes } => bytes,
            SizeDistribution::Uniform { min, max } => self.rng.gen_range(min..=max),
        }
    }

    pub fn next_record(&mut self, intended_ns: u64) -> GeneratedRecord {
        let size = self.next_size();
        let (slot, key) = match self.key_cardinality {
            Some(cardinality) => {
                let key = format!("key-{:012}", self.rng.gen_range(0..cardinality));
                let slot = (key_hash(key.as_bytes()) % self.slots as u64) as usize;
                (slot, Some(Bytes::from(key.into_bytes())))
            }
            None => {
                if self.sticky_bytes + size > self.batch_bytes {
                    self.sticky_slot = (self.sticky_slot + 1) % self.slots;
                    self.sticky_bytes = 0;
                }
                self.sticky_bytes += size;
                (self.sticky_slot, None)
            }
        };
        let mut value = BytesMut::with_capacity(size);
        stamp_value(&mut value, intended_ns, self.run_tag);
        let payload = size - VALUE_STAMP_BYTES;
        let start = self
            .rng
            .gen_range(0..=PAYLOAD_POOL_BYTES.saturating_sub(payload));
        if payload <= PAYLOAD_POOL_BYTES {
            value.put_slice(&self.pool[start..start + payload]);
        } else {
            while value.len() < size {
                let n = (size - value.len()).min(PAYLOAD_POOL_BYTES);
                value.put_slice(&self.pool[..n]);
            }
        }
        debug_assert_eq!(value.len(), size);
        GeneratedRecord {
            slot,
            key,
            value: value.freeze(),
        }
    }
}

/// When each record is due: flat out (now) or a fixed interval from the start.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    interval_ns: Option<f64>,
    sent: u64,
}

impl Schedule {
    pub fn new(records_per_second: Option<f64>) -> Self {
        Self {
            interval_ns: records_per_second.map(|r| 1e9 / r),
            sent: 0,
        }
    }

    /// Intended send time of the next record, ns since the run epoch; `now_ns` for flat out.
    pub fn next_due_ns(&self, now_ns: u64) -> u64 {
        match self.interval_ns {
            None => now_ns,
            Some(interval) => (self.sent as f64 * interval) as u64,
        }
    }

    pub fn advance(&mut self) {
        self.sent += 1;
    }

    pub fn is_paced(&self) -> bool {
        self.interval_ns.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_and_short_values_have_none() {
        let mut b = BytesMut::new();
        stamp_value(&mut b, 123_456_789, 42);
        assert_eq!(read_stamp(&b), Some((123_456_789, 42)));
        assert_eq!(read_stamp(&b[..15]), None);
    }

    #[test]
    fn fixed_sizes_are_exact_and_uniform_sizes_stay_in_range() {
        let mut g =
            RecordGenerator::new(1, SizeDistribution::Fixed { bytes: 100 }, None, 4, 1000, 7);
        for i in 0..1000 {
            let r = g.next_record(i);
            assert_eq!(r.value.len(), 100);
            assert_eq!(read_stamp(&r.value), Some((i, 7)));
            assert!(r.key.is_none());
        }
        let mut g = RecordGenerator::new(
            1,
            SizeDistribution::Uniform {
                min: 16,
                max: 300_000,
            },
            None,
            4,
            1 << 20,
            7,
        );
        let sizes: Vec<usize> = (0..2000).map(|i| g.next_record(i).value.len()).collect();
        assert!(sizes.iter().all(|s| (16..=300_000).contains(s)));
        assert!(sizes.iter().any(|s| *s < 150_000) && sizes.iter().any(|s| *s > 150_000));
    }

    #[test]
    fn unkeyed_records_stick_to_a_partition_for_one_batch() {
        let mut g =
            RecordGenerator::new(3, SizeDistribution::Fixed { bytes: 100 }, None, 8, 1000, 0);
        let slots: Vec<usize> = (0..40).map(|i| g.next_record(i).slot).collect();
        for chunk in slots.chunks(10) {
            assert!(chunk.iter().all(|s| *s == chunk[0]), "{slots:?}");
        }
        assert_ne!(slots[0], slots[10]);
        assert_eq!(slots[10], (slots[0] + 1) % 8);
    }

    #[test]
    fn keyed_records_map_each_key_to_one_partition_and_respect_cardinality() {
        let mut g = RecordGenerator::new(
            5,
            SizeDistribution::Fixed { bytes: 64 },
            Some(50),
            1000,
            1 << 16,
            0,
        );
        let mut seen = std::collections::HashMap::new();
        for i in 0..5000 {
            let r = g.next_record(i);
            let key = r.key.expect("keyed workload");
            assert_eq!(r.slot as u64, key_hash(&key) % 1000);
            if let Some(prev) = seen.insert(key.clone(), r.slot) {
                assert_eq!(prev, r.slot);
            }
        }
        assert_eq!(seen.len(), 50);
    }

    #[test]
    fn same_seed_gives_same_records() {
        let mk = || {
            RecordGenerator::new(
                9,
                SizeDistribution::Uniform { min: 20, max: 200 },
                Some(10),
                16,
                4096,
                1,
            )
        };
        let (mut a, mut b) = (mk(), mk());
        for i in 0..100 {
            let (x, y) = (a.next_record(i), b.next_record(i));
            assert_eq!((x.slot, x.key, x.value), (y.slot, y.key, y.value));
        }
    }

    #[test]
    fn fixed_rate_schedule_spaces_records_evenly_from_the_start() {
        let mut s = Schedule::new(Some(1000.0));
        let due: Vec<u64> = (0..4)
            .map(|_| {
                let d = s.next_due_ns(999_999_999);
                s.advance();
                d
            })
            .collect();
        assert_eq!(due, vec![0, 1_000_000, 2_000_000, 3_000_000]);
        let flat = Schedule::new(None);
        assert_eq!(flat.next_due_ns(55), 55);
    }
}
