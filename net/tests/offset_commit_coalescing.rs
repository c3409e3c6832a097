//! Concurrent OffsetCommits for one `__consumer_offsets` partition, driven in-process
//! through `dispatch::handle` on a real one-shard engine (real DMA files, group commit):
//! the commits that queue while an append is in flight go to the log together, every
//! commit is still answered only after its own record is in the log, and each group
//! fetches back exactly what it committed.

use std::rc::Rc;
use std::sync::{mpsc, Arc};

use bytes::BytesMut;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, Encodable, StrBytes};
use sluice_engine::batch::batches;
use sluice_engine::{EngineConfig, Offset, TopicPartition};
use sluice_net::broker::Broker;
use sluice_net::codec::decode_header;
use sluice_net::dispatch::{decode_request, handle};
use sluice_net::group::offsets::{partition_for, OFFSETS_TOPIC};
use sluice_net::metadata::{FileMetadataStore, MetadataStore, TopicDefaults};
use sluice_net::server::ServerShared;
use sluice_net::ServerConfig;

// Helpers as in tests/handlers.rs (each integration test file is its own crate).

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Encodes `body`, runs it through decode + handler as a connection would, decodes the answer.
async fn call<Req: Encodable, Resp: Decodable>(
    broker: &Rc<Broker>,
    key: ApiKey,
    version: i16,
    body: &Req,
) -> Resp {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(9)
        .with_client_id(Some(s("kip848-test")));
    let mut buf = BytesMut::new();
    encode_request_header_into_buffer(&mut buf, &header).expect("header");
    body.encode(&mut buf, version).expect("body");
    let request = decode_request(decode_header(buf.freeze()).expect("header decodes"))
        .expect("request decodes");
    let mut out = handle(broker, request)
        .await
        .expect("handled")
        .expect("a response is due");
    let _size = bytes::Buf::get_i32(&mut out);
    assert_eq!(bytes::Buf::get_i32(&mut out), 9);
    if key.response_header_version(version) >= 1 {
        bytes::Buf::get_u8(&mut out);
    }
    Resp::decode(&mut out, version).expect("response decodes")
}

/// Runs `scenario` on shard 0 of a fresh one-shard engine; returns its findings.
fn on_engine<F, Fut>(scenario: F) -> Vec<String>
where
    F: Fn(Rc<Broker>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Vec<String>> + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = EngineConfig {
        data_dir: dir.path().join("data"),
        shards: 1,
        ..EngineConfig::default()
    };
    engine.log.segment_bytes = 1 << 20;
    let server = ServerConfig {
        listeners: "127.0.0.1:1".into(),
        ..ServerConfig::default()
    };
    let store = FileMetadataStore::open(&engine.data_dir).expect("store");
    let shared = ServerShared {
        defaults: Arc::new(TopicDefaults {
            log: engine.log.clone(),
            max_message_bytes: server.message_max_bytes,
        }),
        config: Arc::new(server),
        store: Arc::new(store) as Arc<dyn MetadataStore>,
    };
    let (tx, rx) = mpsc::channel();
    sluice_engine::runtime::run(engine, move |shard| {
        let (shared, tx, scenario) = (shared.clone(), tx.clone(), scenario.clone());
        Box::pin(async move {
            let broker = Rc::new(Broker::new(shard, &shared).expect("broker"));
            let _ = tx.send(scenario(broker).await);
        })
    })
    .expect("engine runs");
    rx.recv().expect("scenario finished")
}

macro_rules! check {
    ($findings:ident, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            $findings.push(format!($($msg)+));
        }
    };
}

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
