//! Concurrent OffsetCommits for one `__consumer_offsets` partition, driven in-process
//! through `dispatch::handle` on a real one-shard engine (real DMA files, group commit):
//! the commits that queue while an append is in flight go to the log together, every
//! commit is still answered only after its own record is in the log, and each group
//! fetches back exactly what it committed.

#[macro_use]
mod in_process;
use in_process::*;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use sluice_engine::batch::batches;
use sluice_engine::{Offset, TopicPartition};
use sluice_net::group::offsets::{partition_for, OFFSETS_TOPIC};

const COMMITS: i32 = 64;

fn commit(group: &str, partition: i32, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(""))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name("orders"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)])])
}

#[test]
fn concurrent_commits_share_appends_and_each_is_durable() {
    let findings = on_engine(|b| async move {
        let mut f = Vec::new();
        let r: CreateTopicsResponse = call(
            &b,
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name("orders"))
                .with_num_partitions(COMMITS)
                .with_replication_factor(1)]),
        )
        .await;
        check!(f, r.topics[0].error_code == 0, "create: {:?}", r.topics[0]);
        // Creates __consumer_offsets and loads the coordinator before the burst.
        let r: OffsetCommitResponse = call(&b, ApiKey::OffsetCommit, 8, &commit("g", 0, 0)).await;
        check!(
            f,
            r.topics[0].partitions[0].error_code == 0,
            "first commit: {r:?}"
        );

        // One group: every commit goes to the same offsets partition, all in flight at once.
        let mut tasks = Vec::new();
        for p in 0..COMMITS {
            let b = b.clone();
            tasks.push(glommio::spawn_local(async move {
                let r: OffsetCommitResponse = call(
                    &b,
                    ApiKey::OffsetCommit,
                    8,
                    &commit("g", p, 1000 + i64::from(p)),
                )
                .await;
                r.topics[0].partitions[0].error_code
            }));
        }
        for (p, t) in tasks.into_iter().enumerate() {
            let code = t.await;
            check!(f, code == 0, "commit of partition {p}: error {code}");
        }

        let r: OffsetFetchResponse = call(
            &b,
            ApiKey::OffsetFetch,
            8,
            &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(name("orders"))
                    .with_partition_indexes((0..COMMITS).collect())]))]),
        )
        .await;
        for p in &r.groups[0].topics[0].partitions {
            check!(
                f,
                p.committed_offset == 1000 + i64::from(p.partition_index),
                "partition {} fetched {}",
                p.partition_index,
                p.committed_offset
            );
        }

        // Every record is in the log (they were answered, so they are durable under group
        // commit); the burst took fewer appends - fewer batches - than commits.
        let partitions = b
            .store
            .snapshot()
            .topic(OFFSETS_TOPIC)
            .map_or(1, |t| t.partitions);
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition_for("g", partitions));
        let Some(log) = b.shard.partition_for_work(&tp) else {
            f.push(format!("{tp} is not open"));
            return f;
        };
        check!(
            f,
            log.high_watermark() == Offset(1 + i64::from(COMMITS)),
            "offsets log holds {:?} records, expected {}",
            log.high_watermark(),
            1 + COMMITS
        );
        let (mut batch_count, mut records, mut from) = (0, 0i64, Offset(0));
        while from < log.high_watermark() {
            let read = match log.read(from, 1 << 20).await {
                Ok(read) => read,
                Err(e) => {
                    f.push(format!("read {tp} at {from:?}: {e}"));
                    return f;
                }
            };
            for view in batches(&read.bytes) {
                let Ok(view) = view else {
                    f.push(format!("damaged batch in {tp}"));
                    return f;
                };
                batch_count += 1;
                records += i64::from(view.last_offset_delta()) + 1;
                from = view.last_offset().next();
            }
        }
        check!(
            f,
            records == 1 + i64::from(COMMITS),
            "{records} records read back"
        );
        check!(
            f,
            batch_count < 1 + COMMITS,
            "{batch_count} batches for {} commits: nothing was coalesced",
            1 + COMMITS
        );
        f
    });
    assert!(findings.is_empty(), "{findings:#?}");
}
