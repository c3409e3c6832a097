//! Before the load: agree versions, create the topics, wait until every partition has
//! a leader, and find the broker that leads them.

use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{CreateTopicsRequest, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::config::BenchConfig;
use crate::error::{BenchError, Result};
use crate::wire::{Connection, Versions};

const TOPIC_EXISTS: i16 = 36;
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
                return Ok(Cluster {
                    versions,
                    leader_addr: addr,
                })
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
