//! Consumer-group lag: each shard's group coordinator (the groups whose id the shard
//! owns) gives its committed offsets; shard 0 pairs them with the high watermarks in the
//! partition snapshots. Lag = high watermark - committed offset, as Kafka's tools report
//! it (0 when the commit is at or past the watermark).

use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sluice_engine::runtime::Shard;

use super::snapshot::PartitionSnapshot;
use crate::group::coordinator;
use crate::limits::ADMIN_LAG_SERIES_MAX;
use crate::partition_ops::OwnerContext;

/// One committed offset, copied off the coordinating shard.
#[derive(Clone, Debug, PartialEq)]
pub struct Committed {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One group's lag on one partition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupLag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub high_watermark: i64,
    pub lag: i64,
}

/// Committed offsets of the groups this shard coordinates (in a cluster: of the offsets
/// partitions this broker leads). Loads the coordinator from
/// `__consumer_offsets` first if nothing has used it since start-up (as a group request
/// would). Error: the Kafka code the coordinator gave (say, load in progress).
pub async fn committed_on_this_shard(
    shard: &Rc<Shard>,
    ctx: &OwnerContext,
) -> Result<Vec<Committed>, i16> {
    let c = coordinator::for_listing(shard, ctx).await?;
    let mut out = Vec::new();
    for (group, _, _) in c.list() {
        let Some(offsets) = c.committed(&group) else {
            continue;
        };
        for ((topic, partition), o) in offsets {
            if out.len() >= ADMIN_LAG_SERIES_MAX {
                return Ok(out);
            }
            out.push(Committed {
                group: group.clone(),
                topic,
                partition,
                offset: o.offset,
            });
        }
    }
    Ok(out)
}

/// Lag of every commit whose partition is in `partitions` (a commit for a partition no
/// shard has open - a deleted topic - has no watermark and is left out), sorted, at most
/// `ADMIN_LAG_SERIES_MAX`.
pub fn lag<'a>(
    committed: &[Committed],
    partitions: impl Iterator<Item = &'a PartitionSnapshot>,
) -> Vec<GroupLag> {
    let hwm: HashMap<(&str, i32), i64> = partitions
        .map(|p| ((p.topic.as_str(), p.partition), p.high_watermark))
        .collect();
    let mut out: Vec<GroupLag> = committed
        .iter()
        .filter_map(|c| {
            let high_watermark = *hwm.get(&(c.topic.as_str(), c.partition))?;
            Some(GroupLag {
                group: c.group.clone(),
                topic: c.topic.clone(),
                partition: c.partition,
                committed_offset: c.offset,
                high_watermark,
                lag: (high_watermark - c.offset.max(0)).max(0),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    out.truncate(ADMIN_LAG_SERIES_MAX);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(group: &str, partition: i32, offset: i64) -> Committed {
        Committed {
            group: group.into(),
            topic: "t".into(),
            partition,
            offset,
        }
    }

    #[test]
    fn lag_is_watermark_minus_commit_and_never_negative() {
        let partitions = [
            PartitionSnapshot {
                topic: "t".into(),
                partition: 0,
                high_watermark: 10,
                ..PartitionSnapshot::default()
            },
            PartitionSnapshot {
                topic: "t".into(),
                partition: 1,
                high_watermark: 4,
                ..PartitionSnapshot::default()
            },
        ];
        let commits = [
            committed("b", 0, 3),
            committed("a", 1, 9),
            committed("a", 0, 10),
            committed("a", 7, 1),
        ];
        let lag = lag(&commits, partitions.iter());
        let got: Vec<(&str, i32, i64)> = lag
            .iter()
            .map(|l| (l.group.as_str(), l.partition, l.lag))
            .collect();
        // Partition 7 has no watermark: left out. Sorted by group, topic, partition.
        assert_eq!(got, vec![("a", 0, 0), ("a", 1, 0), ("b", 0, 7)]);
        assert_eq!(lag[2].committed_offset, 3);
        assert_eq!(lag[2].high_watermark, 10);
    }
}
