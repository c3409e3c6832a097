//! Before the load: agree versions, create the topics, wait until every partition has
//! a leader, and find the broker that leads them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{CreateTopicsRequest, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::config::BenchConfig;
use crate::error::{BenchError, Result};
use crate::producer::new_record;
use crate::wire::{Connection, Versions};

const TOPIC_EXISTS: i16 = 36;
/// UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER.
const RETRIABLE: [i16; 3] = [3, 5, 6];
const PRIME_WAIT: Duration = Duration::from_secs(120);
const PRIME_PARTITIONS_PER_REQUEST: usize = 250;
const LEADERS_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Cluster {
    pub versions: Versions,
    /// host:port of the one broker that leads every partition of the workload.
    pub leader_addr: String,
}

pub fn prepare(config: &BenchConfig, topics: &[String]) -> Result<Cluster> {
    let mut conn = Connection::connect(
        &config.bootstrap,
        "sluice-bench-setup",
        config.request_timeout,
    )?;
    let versions = conn.negotiate()?;
    if config.create_topics {
        let missing = missing_topics(&mut conn, versions.metadata, topics)?;
        if !missing.is_empty() {
            create(&mut conn, versions.create_topics, &missing, config)?;
        }
    }
    let deadline = Instant::now() + LEADERS_WAIT;
    loop {
        let md = metadata(&mut conn, versions.metadata, topics)?;
        match leader_of_all(&md, topics, config.partitions) {
            Ok(Some(addr)) => {
                let mut leader =
                    Connection::connect(&addr, "sluice-bench-primer", config.request_timeout)?;
                prime(
                    &mut leader,
                    versions.produce,
                    topics,
                    config.partitions,
                    config,
                )?;
                return Ok(Cluster {
                    versions,
                    leader_addr: addr,
                });
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Ok(None) => {
                return Err(BenchError::Protocol {
                    addr: config.bootstrap.clone(),
                    detail: format!("partitions still without a leader after {LEADERS_WAIT:?}"),
                })
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes one acknowledged record to every partition before the clock starts, retrying
/// while a partition is still being loaded ("not leader" right after creation). Fresh
/// partitions cost both brokers a first-write set-up (files, indexes) that would otherwise
/// land inside the measured window of a short run. Consumers position themselves after
/// these records, so they are never measured.
fn prime(
    conn: &mut Connection,
    version: i16,
    topics: &[String],
    partitions: u32,
    config: &BenchConfig,
) -> Result<()> {
    let mut todo: Vec<(usize, i32)> = (0..topics.len())
        .flat_map(|t| (0..partitions as i32).map(move |p| (t, p)))
        .collect();
    let deadline = Instant::now() + PRIME_WAIT;
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let record = [new_record(
        0,
        now_ms,
        None,
        Bytes::from_static(b"sluice-bench primer"),
    )];
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, record.iter(), &options).map_err(|e| {
        BenchError::Encode {
            what: "primer batch",
            source: e.into(),
        }
    })?;
    let batch = buf.freeze();
    while !todo.is_empty() {
        let chunk: Vec<(usize, i32)> = todo
            .iter()
            .take(PRIME_PARTITIONS_PER_REQUEST)
            .copied()
            .collect();
        let mut by_topic: BTreeMap<usize, Vec<PartitionProduceData>> = BTreeMap::new();
        for (t, p) in &chunk {
            by_topic.entry(*t).or_default().push(
                PartitionProduceData::default()
                    .with_index(*p)
                    .with_records(Some(batch.clone())),
            );
        }
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(i32::try_from(config.request_timeout.as_millis()).unwrap_or(i32::MAX))
            .with_topic_data(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(topics[t].clone())))
                            .with_partition_data(ps)
                    })
                    .collect(),
            );
        let response = conn.call(version, &request)?;
        let mut done = Vec::new();
        for topic in &response.responses {
            let Some(t) = topics
                .iter()
                .position(|n| n.as_str() == topic.name.0.as_str())
            else {
                continue;
            };
            for p in &topic.partition_responses {
                match p.error_code {
                    0 => done.push((t, p.index)),
                    code if RETRIABLE.contains(&code) && Instant::now() < deadline => {}
                    code => {
                        return Err(BenchError::Broker {
                            what: format!("priming produce to {}-{}", topics[t], p.index),
                            code,
                        })
                    }
                }
            }
        }
        if done.is_empty() {
            if Instant::now() >= deadline {
                return Err(BenchError::Protocol {
                    addr: conn.addr().to_string(),
                    detail: format!("no partition accepted a record within {PRIME_WAIT:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        todo.retain(|tp| !done.contains(tp));
    }
    Ok(())
}

fn metadata(conn: &mut Connection, version: i16, topics: &[String]) -> Result<MetadataResponse> {
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(
            topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                })
                .collect(),
        ));
    conn.call(version, &request)
}

fn missing_topics(conn: &mut Connection, version: i16, topics: &[String]) -> Result<Vec<String>> {
    let md = metadata(conn, version, topics)?;
    Ok(topics
        .iter()
        .filter(|t| {
            !md.topics.iter().any(|m| {
                m.error_code == 0 && m.name.as_ref().is_some_and(|n| n.0.as_str() == t.as_str())
            })
        })
        .cloned()
        .collect())
}

fn create(
    conn: &mut Connection,
    version: i16,
    topics: &[String],
    config: &BenchConfig,
) -> Result<()> {
    // Kafka caps one CreateTopics request's work by time, not count; chunks keep each
    // request small enough to finish within the timeout.
    for chunk in topics.chunks(100) {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(
                chunk
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.clone())))
                            .with_num_partitions(config.partitions as i32)
                            .with_replication_factor(1)
                    })
                    .collect(),
            );
        let response = conn.call(version, &request)?;
        for t in &response.topics {
            if t.error_code != 0 && t.error_code != TOPIC_EXISTS {
                return Err(BenchError::Broker {
                    what: format!("CreateTopics {}", t.name.0.as_str()),
                    code: t.error_code,
                });
            }
        }
    }
    Ok(())
}

/// `Ok(Some(addr))` when every partition has the same live leader, `Ok(None)` while some
/// have none yet. Several leaders (a multi-broker cluster) are refused for now: each
/// producer holds one connection.
fn leader_of_all(
    md: &MetadataResponse,
    topics: &[String],
    partitions: u32,
) -> Result<Option<String>> {
    let mut leader = None;
    for t in topics {
        let Some(m) = md
            .topics
            .iter()
            .find(|m| m.name.as_ref().is_some_and(|n| n.0.as_str() == t))
        else {
            return Ok(None);
        };
        if m.error_code != 0 || m.partitions.len() < partitions as usize {
            if m.partitions.len() > partitions as usize {
                return Err(BenchError::Config(format!(
                    "topic {t} exists with {} partitions, the workload wants {partitions}",
                    m.partitions.len()
                )));
            }
            return Ok(None);
        }
        if m.partitions.len() != partitions as usize {
            return Err(BenchError::Config(format!(
                "topic {t} exists with {} partitions, the workload wants {partitions}",
                m.partitions.len()
            )));
        }
        for p in &m.partitions {
            if p.error_code != 0 || p.leader_id.0 < 0 {
                return Ok(None);
            }
            match leader {
                None => leader = Some(p.leader_id.0),
                Some(l) if l != p.leader_id.0 => return Err(BenchError::Config(
                    "partitions are led by several brokers; the load generator drives one broker"
                        .into(),
                )),
                Some(_) => {}
            }
        }
    }
    let Some(id) = leader else { return Ok(None) };
    let broker = md
        .brokers
        .iter()
        .find(|b| b.node_id.0 == id)
        .ok_or_else(|| {
            BenchError::Config(format!("leader {id} is not among the brokers in metadata"))
        })?;
    Ok(Some(format!("{}:{}", broker.host.as_str(), broker.port)))
}
