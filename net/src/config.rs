//! `[server]` table of the broker config file. Field names are snake_case; Kafka's dotted
//! names (`auto.create.topics.enable`, `num.partitions`, `socket.request.max.bytes` ...)
//! are accepted as aliases. Every field has a default.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::limits;

/// Broker-wide server settings; one copy shared read-only by every shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Addresses to listen on, comma separated; `PLAINTEXT://` prefixes are accepted.
    pub listeners: String,
    /// Host clients are told to connect to; defaults to the first listener's host.
    #[serde(alias = "advertised.host")]
    pub advertised_host: Option<String>,
    /// Port clients are told to connect to; defaults to the first listener's port.
    #[serde(alias = "advertised.port")]
    pub advertised_port: Option<u16>,
    #[serde(alias = "node.id")]
    pub node_id: i32,
    #[serde(alias = "cluster.id")]
    pub cluster_id: String,
    #[serde(alias = "auto.create.topics.enable")]
    pub auto_create_topics_enable: bool,
    #[serde(alias = "num.partitions")]
    pub num_partitions: i32,
    #[serde(alias = "socket.request.max.bytes")]
    pub socket_request_max_bytes: usize,
    /// Connections the broker serves at once (split evenly over the shards).
    #[serde(alias = "max.connections")]
    pub max_connections: usize,
    /// Request bytes one connection may have read but not yet answered.
    pub in_flight_bytes_per_connection: usize,
    /// Requests one connection may have in flight.
    pub in_flight_requests_per_connection: usize,
    /// Most partitions one topic may have (CreateTopics, CreatePartitions, auto-creation).
    pub partitions_per_topic_max: i32,
    /// Broker default for the topic config max.message.bytes.
    #[serde(alias = "message.max.bytes")]
    pub message_max_bytes: i32,
    /// Address of the admin HTTP endpoint (`/metrics`, `/status`), served by shard 0;
    /// empty disables it.
    pub admin_listener: String,
    /// KIP-848 groups: session timeout sent to members and enforced (Kafka's
    /// group.consumer.session.timeout.ms).
    #[serde(alias = "group.consumer.session.timeout.ms")]
    pub group_consumer_session_timeout_ms: i32,
    /// KIP-848 groups: heartbeat interval sent to members (Kafka's
    /// group.consumer.heartbeat.interval.ms).
    #[serde(alias = "group.consumer.heartbeat.interval.ms")]
    pub group_consumer_heartbeat_interval_ms: i32,
    /// How long the first rebalance of an empty group waits for more members (extended
    /// by each newcomer, up to the rebalance timeout), as Kafka's
    /// group.initial.rebalance.delay.ms. Besides saving rebalances when a group starts,
    /// it lets each member's topic metadata arrive before the leader assigns: a leader
    /// that assigned without it re-joins at once, and kafka-python 3.0.12 can lose the
    /// answer to that re-join (see net/src/group/state.rs).
    #[serde(alias = "group.initial.rebalance.delay.ms")]
    pub group_initial_rebalance_delay_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listeners: "127.0.0.1:9092".into(),
            advertised_host: None,
            advertised_port: None,
            node_id: 0,
            cluster_id: "sluice-cluster-0000000".into(),
            auto_create_topics_enable: true,
            num_partitions: 1,
            socket_request_max_bytes: limits::REQUEST_BYTES_MAX_DEFAULT,
            max_connections: limits::CONNECTIONS_PER_SHARD_DEFAULT,
            in_flight_bytes_per_connection: limits::IN_FLIGHT_BYTES_PER_CONNECTION_DEFAULT,
            in_flight_requests_per_connection: limits::IN_FLIGHT_REQUESTS_PER_CONNECTION_DEFAULT,
            partitions_per_topic_max: limits::PARTITIONS_PER_TOPIC_MAX,
            message_max_bytes: limits::MESSAGE_BYTES_MAX_DEFAULT,
            admin_listener: limits::ADMIN_LISTENER_DEFAULT.into(),
            group_consumer_session_timeout_ms: limits::CONSUMER_SESSION_TIMEOUT_MS_DEFAULT,
            group_consumer_heartbeat_interval_ms: limits::CONSUMER_HEARTBEAT_INTERVAL_MS_DEFAULT,
            group_initial_rebalance_delay_ms: limits::GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerConfigError {
    #[error("[server] {0}")]
    Invalid(String),
    #[error("[server] listener {listener:?}: {source}")]
    BadListener {
        listener: String,
        #[source]
        source: std::net::AddrParseError,
    },
}

impl ServerConfig {
    /// The socket addresses to bind, parsed from `listeners`.
    pub fn listener_addrs(&self) -> Result<Vec<SocketAddr>, ServerConfigError> {
        let mut out = Vec::new();
        for raw in self
            .listeners
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let addr = raw.rsplit_once("://").map_or(raw, |(_, a)| a);
            let parsed = addr
                .parse()
                .map_err(|source| ServerConfigError::BadListener {
                    listener: raw.to_string(),
                    source,
                })?;
            out.push(parsed);
        }
        if out.is_empty() {
            return Err(ServerConfigError::Invalid("listeners is empty".into()));
        }
        Ok(out)
    }

    /// Host and port this broker advertises in Metadata and DescribeCluster.
    pub fn advertised(&self) -> Result<(String, u16), ServerConfigError> {
        let first = self.listener_addrs()?[0];
        let host = self
            .advertised_host
            .clone()
            .unwrap_or_else(|| first.ip().to_string());
        Ok((host, self.advertised_port.unwrap_or(first.port())))
    }

    /// Connections one shard accepts before it stops accepting.
    pub fn connections_per_shard(&self, shard_count: usize) -> usize {
        self.max_connections.div_ceil(shard_count.max(1)).max(1)
    }

    pub fn validate(&self) -> Result<(), ServerConfigError> {
        self.listener_addrs()?;
        let bad = |m: String| Err(ServerConfigError::Invalid(m));
        if self.socket_request_max_bytes < limits::REQUEST_HEADER_BYTES_MIN
            || self.socket_request_max_bytes > limits::REQUEST_BYTES_MAX_CEILING
        {
            return bad(format!(
                "socket_request_max_bytes {} not in {}..={}",
                self.socket_request_max_bytes,
                limits::REQUEST_HEADER_BYTES_MIN,
                limits::REQUEST_BYTES_MAX_CEILING
            ));
        }
        if self.in_flight_bytes_per_connection < self.socket_request_max_bytes {
            return bad(format!(
                "in_flight_bytes_per_connection {} is below socket_request_max_bytes {}: a maximal request could never be read",
                self.in_flight_bytes_per_connection, self.socket_request_max_bytes
            ));
        }
        if self.in_flight_requests_per_connection == 0 || self.max_connections == 0 {
            return bad("in_flight_requests_per_connection and max_connections must be > 0".into());
        }
        if !(1..=limits::PARTITIONS_PER_TOPIC_MAX).contains(&self.partitions_per_topic_max) {
            return bad(format!(
                "partitions_per_topic_max {} not in 1..={}",
                self.partitions_per_topic_max,
                limits::PARTITIONS_PER_TOPIC_MAX
            ));
        }
        if self.num_partitions < 1 || self.num_partitions > self.partitions_per_topic_max {
            return bad(format!(
                "num_partitions {} not in 1..={}",
                self.num_partitions, self.partitions_per_topic_max
            ));
        }
        if self.message_max_bytes < 0
            || self.message_max_bytes as usize > sluice_engine::limits::BATCH_BYTES_MAX
        {
            return bad(format!(
                "message_max_bytes {} out of range",
                self.message_max_bytes
            ));
        }
        if self.group_initial_rebalance_delay_ms > limits::GROUP_INITIAL_REBALANCE_DELAY_MS_MAX {
            return bad(format!(
                "group_initial_rebalance_delay_ms {} above {}",
                self.group_initial_rebalance_delay_ms,
                limits::GROUP_INITIAL_REBALANCE_DELAY_MS_MAX
            ));
        }
        if self.node_id < 0 {
            return bad(format!("node_id {} is negative", self.node_id));
        }
        let session = self.group_consumer_session_timeout_ms;
        let heartbeat = self.group_consumer_heartbeat_interval_ms;
        if !(limits::SESSION_TIMEOUT_MS_MIN..=limits::SESSION_TIMEOUT_MS_MAX).contains(&session)
            || heartbeat < limits::CONSUMER_HEARTBEAT_INTERVAL_MS_MIN
            || heartbeat >= session
        {
            return bad(format!(
                "group_consumer_session_timeout_ms {session} must be in {}..={} and \
                 group_consumer_heartbeat_interval_ms {heartbeat} in {}..session",
                limits::SESSION_TIMEOUT_MS_MIN,
                limits::SESSION_TIMEOUT_MS_MAX,
                limits::CONSUMER_HEARTBEAT_INTERVAL_MS_MIN
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_is_all_defaults() {
        let c: ServerConfig = toml::from_str("").expect("empty parses");
        assert_eq!(c, ServerConfig::default());
        c.validate().expect("defaults are valid");
        assert_eq!(
            c.advertised().expect("advertised"),
            ("127.0.0.1".to_string(), 9092)
        );
    }

    #[test]
    fn kafka_dotted_names_are_accepted() {
        let c: ServerConfig = toml::from_str(
            r#"
            listeners = "PLAINTEXT://127.0.0.1:19092, 127.0.0.1:19093"
            "auto.create.topics.enable" = false
            "num.partitions" = 3
            "socket.request.max.bytes" = 1048576
            "node.id" = 7
            advertised_host = "broker.example"
            "#,
        )
        .expect("parses");
        c.validate().expect("valid");
        assert!(!c.auto_create_topics_enable);
        assert_eq!(c.num_partitions, 3);
        assert_eq!(c.socket_request_max_bytes, 1 << 20);
        assert_eq!(c.listener_addrs().expect("addrs").len(), 2);
        assert_eq!(
            c.advertised().expect("advertised"),
            ("broker.example".to_string(), 19092)
        );
    }

    #[test]
    fn consumer_group_timing_is_checked() {
        let c: ServerConfig = toml::from_str(
            r#"
            "group.consumer.session.timeout.ms" = 10000
            "group.consumer.heartbeat.interval.ms" = 1000
            "#,
        )
        .expect("parses");
        c.validate().expect("valid");
        assert_eq!(c.group_consumer_session_timeout_ms, 10_000);
        let bad = ServerConfig {
            group_consumer_heartbeat_interval_ms: 10_000,
            ..c
        };
        assert!(
            bad.validate().is_err(),
            "heartbeat interval must be below the session"
        );
    }

    #[test]
    fn frame_bound_above_in_flight_bound_is_rejected() {
        let c = ServerConfig {
            socket_request_max_bytes: 1 << 20,
            in_flight_bytes_per_connection: 1 << 10,
            ..ServerConfig::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn unknown_key_is_rejected() {
        assert!(toml::from_str::<ServerConfig>("listner = \"x\"").is_err());
    }
}
