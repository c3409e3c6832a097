//! Retention decisions, as a pure function of the segments' summaries and the clock.

/// What retention needs to know about one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSummary {
    pub bytes: u64,
    /// Largest batch timestamp in the segment (-1 if none).
    pub max_timestamp: i64,
    /// The active segment is never deleted.
    pub active: bool,
}

/// How many of the oldest segments to delete (whole segments only, oldest first, never the
/// active one): those past `retention_ms` by their largest timestamp, and then as many more
/// as keep the total at or above `retention_bytes` after their removal (Kafka's rule).
/// Negative limits disable that rule.
pub fn segments_to_delete(
    segments: &[SegmentSummary],
    now_ms: i64,
    retention_ms: i64,
    retention_bytes: i64,
) -> usize {
    let deletable = segments.iter().take_while(|s| !s.active).count();
    let mut count = 0;
    if retention_ms >= 0 {
        while count < deletable
            && segments[count].max_timestamp >= 0
            && now_ms - segments[count].max_timestamp > retention_ms
        {
            count += 1;
        }
    }
    if retention_bytes >= 0 {
        let mut total: u64 = segments[count..].iter().map(|s| s.bytes).sum();
        while count < deletable
            && total.saturating_sub(segments[count].bytes) >= retention_bytes as u64
        {
            total -= segments[count].bytes;
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(bytes: u64, ts: i64) -> SegmentSummary {
        SegmentSummary {
            bytes,
            max_timestamp: ts,
            active: false,
        }
    }

    #[test]
    fn time_retention_deletes_only_expired_prefix() {
        let mut s = vec![seg(10, 100), seg(10, 500), seg(10, 150), seg(10, 2000)];
        s[3].active = true;
        // now 1000, retention 600: 100 and (not 500: 1000-500=500 <= 600) -> 1
        assert_eq!(segments_to_delete(&s, 1000, 600, -1), 1);
        // everything expired but the active segment stays
        assert_eq!(segments_to_delete(&s, 100_000, 600, -1), 3);
    }

    #[test]
    fn size_retention_keeps_at_least_the_limit() {
        let mut s = vec![seg(100, 0), seg(100, 0), seg(100, 0), seg(50, 0)];
        s[3].active = true;
        assert_eq!(segments_to_delete(&s, 0, -1, 150), 2);
        assert_eq!(segments_to_delete(&s, 0, -1, 1000), 0);
        assert_eq!(segments_to_delete(&s, 0, -1, 0), 3);
    }

    proptest! {
        #[test]
        fn never_deletes_active_and_respects_size_floor(
            sizes in proptest::collection::vec((1u64..1000, 0i64..10_000), 1..30),
            now in 0i64..20_000,
            rms in -1i64..10_000,
            rbytes in -1i64..20_000,
        ) {
            let mut s: Vec<_> = sizes.iter().map(|(b, t)| seg(*b, *t)).collect();
            let last = s.len() - 1;
            s[last].active = true;
            let n = segments_to_delete(&s, now, rms, rbytes);
            prop_assert!(n <= last);
            // Size rule alone (time disabled) never leaves less than the limit behind.
            let m = segments_to_delete(&s, now, -1, rbytes);
            let total: u64 = s.iter().map(|x| x.bytes).sum();
            let left: u64 = s[m..].iter().map(|x| x.bytes).sum();
            if rbytes >= 0 {
                prop_assert!(left >= (rbytes as u64).min(total));
                // And it deleted as much as it could: one more would break the floor.
                if m < last { prop_assert!(left - s[m].bytes < rbytes as u64); }
            } else {
                prop_assert_eq!(m, 0);
            }
        }
    }
}
