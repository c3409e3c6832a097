//! `[cluster]` table of the broker config file: replication and the controller quorum.
//! Absent (or `voters` empty), the broker runs alone as before: its topics in
//! `topics.json`, every partition led here, nothing replicated.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use sluice_replication::BrokerId;

/// Cluster settings; Kafka's dotted names are accepted as aliases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This broker's inter-broker listener (replication and controller traffic).
    pub replication_listener: String,
    /// The controller quorum, `id@host:port` of each voter's inter-broker listener, comma
    /// separated (Kafka's controller.quorum.voters). Empty: no cluster.
    #[serde(alias = "controller.quorum.voters")]
    pub voters: String,
    /// Replication factor of topics created without one (and of auto-created topics).
    #[serde(alias = "default.replication.factor")]
    pub default_replication_factor: i16,
    /// Default of the topic config min.insync.replicas.
    #[serde(alias = "min.insync.replicas")]
    pub min_insync_replicas: i32,
    /// A follower not caught up for this long leaves the ISR.
    #[serde(alias = "replica.lag.time.max.ms")]
    pub replica_lag_time_max_ms: i64,
    /// The active controller fences a broker it has not heard from for this long (its
    /// partitions get new leaders). Kafka's default is 9 s; Sluice's is shorter so clients
    /// produce again within ~3 s of a broker's death.
    #[serde(alias = "broker.session.timeout.ms")]
    pub broker_session_timeout_ms: i64,
    /// How often this broker heartbeats to the controller voters.
    #[serde(alias = "broker.heartbeat.interval.ms")]
    pub broker_heartbeat_interval_ms: u64,
    /// One Raft tick; elections happen after `election_ticks` to twice that without a leader.
    pub raft_tick_ms: u64,
    pub election_ticks: usize,
    /// This broker's rack (rack-aware replica placement).
    #[serde(alias = "broker.rack")]
    pub rack: Option<String>,
    /// The active controller moves leadership back to preferred replicas (Kafka's
    /// auto.leader.rebalance.enable) every `leader_imbalance_check_interval_ms` for
    /// brokers above `leader_imbalance_per_broker_percentage`.
    #[serde(alias = "auto.leader.rebalance.enable")]
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_ms: i64,
    #[serde(alias = "leader.imbalance.per.broker.percentage")]
    pub leader_imbalance_per_broker_percentage: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            replication_listener: String::new(),
            voters: String::new(),
            default_replication_factor: 1,
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            broker_session_timeout_ms: 1_500,
            broker_heartbeat_interval_ms: 250,
            raft_tick_ms: 100,
            election_ticks: 8,
            rack: None,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("[cluster] {0}")]
pub struct ClusterConfigError(pub String);

/// One controller voter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    pub id: BrokerId,
    pub addr: SocketAddr,
}

impl ClusterConfig {
    pub fn enabled(&self) -> bool {
        !self.voters.trim().is_empty()
    }

    pub fn voters(&self) -> Result<Vec<Voter>, ClusterConfigError> {
        let mut out: Vec<Voter> = Vec::new();
        for raw in self
            .voters
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (id, addr) = raw
                .split_once('@')
                .ok_or_else(|| ClusterConfigError(format!("voter {raw:?}: want id@host:port")))?;
            let id: i32 = id
                .parse()
                .map_err(|_| ClusterConfigError(format!("voter {raw:?}: bad id")))?;
            let addr: SocketAddr = addr
                .parse()
                .map_err(|e| ClusterConfigError(format!("voter {raw:?}: {e}")))?;
            if id <= 0 || out.iter().any(|v| v.id.0 == id) {
                return Err(ClusterConfigError(format!(
                    "voter {raw:?}: ids must be positive and distinct"
                )));
            }
            out.push(Voter {
                id: BrokerId(id),
                addr,
            });
        }
        if out.len() > sluice_replication::limits::CONTROLLER_VOTERS_MAX {
            return Err(ClusterConfigError(format!(
                "{} voters is too many",
                out.len()
            )));
        }
        Ok(out)
    }

    pub fn replication_addr(&self) -> Result<SocketAddr, ClusterConfigError> {
        self.replication_listener
            .parse()
            .map_err(|e| ClusterConfigError(format!("replication_listener: {e}")))
    }

    /// Checks the table against this broker's node id.
    pub fn validate(&self, node_id: i32) -> Result<(), ClusterConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        let voters = self.voters()?;
        self.replication_addr()?;
        if voters.is_empty() {
            return Err(ClusterConfigError("no voters".into()));
        }
        // A broker not among the voters joins as a plain member (a Raft learner).
        if node_id <= 0 {
            return Err(ClusterConfigError(format!(
                "[server] node_id {node_id}: a cluster member needs a positive id"
            )));
        }
        if self.default_replication_factor < 1
            || self.default_replication_factor as usize > sluice_replication::limits::REPLICAS_MAX
        {
            return Err(ClusterConfigError(
                "default_replication_factor out of range".into(),
            ));
        }
        if self.min_insync_replicas < 1 {
            return Err(ClusterConfigError(
                "min_insync_replicas must be >= 1".into(),
            ));
        }
        if self.broker_heartbeat_interval_ms == 0
            || self.broker_session_timeout_ms <= 2 * self.broker_heartbeat_interval_ms as i64
        {
            return Err(ClusterConfigError(
                "broker_session_timeout_ms must exceed twice broker_heartbeat_interval_ms".into(),
            ));
        }
        if self.raft_tick_ms == 0 || self.election_ticks < 2 {
            return Err(ClusterConfigError(
                "raft_tick_ms > 0 and election_ticks >= 2".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_and_bad_ones_are_refused() {
        let c = ClusterConfig {
            voters: "1@127.0.0.1:19092, 2@127.0.0.1:19093".into(),
            replication_listener: "127.0.0.1:19092".into(),
            ..ClusterConfig::default()
        };
        let v = c.voters().expect("valid");
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].id, BrokerId(2));
        assert!(c.validate(1).is_ok());
        assert!(c.validate(3).is_ok(), "a plain member");
        assert!(c.validate(0).is_err(), "no id");
        for bad in [
            "1@nohost",
            "x@127.0.0.1:1",
            "1@127.0.0.1:1,1@127.0.0.1:2",
            "0@127.0.0.1:1",
        ] {
            let c = ClusterConfig {
                voters: bad.into(),
                ..ClusterConfig::default()
            };
            assert!(c.voters().is_err(), "{bad} accepted");
        }
        assert!(!ClusterConfig::default().enabled());
    }
}
