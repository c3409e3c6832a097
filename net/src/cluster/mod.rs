//! The broker in a cluster: the controller quorum (on shard 0), the inter-broker
//! transport, partition replicas on their owning shards, and the metadata view every
//! shard serves from. Absent `[cluster]` voters, none of this runs.
//!
//! - `config.rs` the `[cluster]` table.
//! - `controller.rs` shard 0's controller task: Raft voter, heartbeats, inter-broker
//!   listener, publishing the applied metadata and handing partition changes to owners.
//! - `replicas.rs` each shard's partition replicas (leader/follower drivers), their links
//!   to peers and their ticker; the produce/fetch checks requests pass through.
//! - `store.rs` the [`crate::metadata::MetadataStore`] that proposes admin changes to
//!   the controller and waits for them to be applied.

pub mod config;
pub mod controller;
pub mod replicas;
pub mod store;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use sluice_replication::controller::{BrokerEndpoint, MetadataCommand, MetadataState};
use sluice_replication::BrokerId;

pub use config::{ClusterConfig, ClusterConfigError};

use crate::metadata::{ClusterMetadata, PartitionLayout, TopicMetadata};

/// What the controller has applied, as every shard reads it.
#[derive(Debug, Default)]
pub struct ClusterView {
    pub state: MetadataState,
    /// The active controller (Raft leader) as this broker knows it.
    pub controller: Option<BrokerId>,
    /// The same topics in the shape the Kafka handlers use.
    pub metadata: Arc<ClusterMetadata>,
}

impl ClusterView {
    pub fn new(state: MetadataState, controller: Option<BrokerId>, version: u64) -> Self {
        let metadata = Arc::new(to_metadata(&state, version));
        ClusterView {
            state,
            controller,
            metadata,
        }
    }

    /// A live broker's Kafka endpoint.
    pub fn endpoint(&self, b: BrokerId) -> Option<&BrokerEndpoint> {
        self.state
            .brokers
            .get(&b)
            .filter(|i| !i.fenced)
            .map(|i| &i.endpoint)
    }
}

fn to_metadata(state: &MetadataState, version: u64) -> ClusterMetadata {
    let topics = state
        .topics
        .iter()
        .map(|(name, t)| {
            let layout: Vec<PartitionLayout> = t
                .partitions
                .iter()
                .map(|p| PartitionLayout {
                    leader: p.leader.map_or(-1, |b| b.0),
                    leader_epoch: p.leader_epoch.0,
                    replicas: p.replicas.iter().map(|b| b.0).collect(),
                    isr: p.isr.iter().map(|b| b.0).collect(),
                    offline: p
                        .replicas
                        .iter()
                        .filter(|b| state.brokers.get(b).is_none_or(|i| i.fenced))
                        .map(|b| b.0)
                        .collect(),
                })
                .collect();
            let meta = TopicMetadata {
                name: name.clone(),
                topic_id: t.topic_id,
                partitions: t.partitions.len() as i32,
                configs: t.configs.clone(),
                replication_factor: t.partitions.first().map_or(0, |p| p.replicas.len() as i16),
                assignments: layout.iter().map(|l| l.replicas.clone()).collect(),
                layout,
            };
            (name.clone(), meta)
        })
        .collect::<BTreeMap<_, _>>();
    ClusterMetadata {
        epoch: version,
        topics,
    }
}

/// Work for the controller task, from any shard.
#[derive(Debug)]
pub enum ControllerOp {
    /// Propose a command (forwarded to the active controller if this voter is not it).
    Propose(MetadataCommand),
}

/// This broker's cluster membership, shared by every shard (`Send + Sync`).
pub struct Cluster {
    pub config: ClusterConfig,
    pub me: BrokerId,
    /// Changes with every process start.
    pub incarnation: u64,
    pub endpoint: BrokerEndpoint,
    view: RwLock<Arc<ClusterView>>,
    /// Set on a stop signal (controlled shutdown under way).
    shutting_down: std::sync::atomic::AtomicBool,
    ops_tx: flume::Sender<ControllerOp>,
    ops_rx: flume::Receiver<ControllerOp>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("me", &self.me).finish()
    }
}

impl Cluster {
    pub fn new(config: ClusterConfig, me: i32, host: String, port: u16) -> Cluster {
        let (ops_tx, ops_rx) = flume::bounded(crate::limits::CONTROLLER_OPS_QUEUED_MAX);
        let incarnation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        let endpoint = BrokerEndpoint {
            host,
            port: i32::from(port),
            replication: config.replication_listener.clone(),
        };
        Cluster {
            config,
            me: BrokerId(me),
            incarnation,
            endpoint,
            view: RwLock::new(Arc::new(ClusterView::default())),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            ops_tx,
            ops_rx,
        }
    }

    /// The latest applied metadata; cheap.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn publish(&self, view: ClusterView) {
        *self
            .view
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(view);
    }

    /// Queues a command for the controller task; false when its queue is full.
    pub fn propose(&self, cmd: MetadataCommand) -> bool {
        self.ops_tx.try_send(ControllerOp::Propose(cmd)).is_ok()
    }

    pub(crate) fn ops(&self) -> &flume::Receiver<ControllerOp> {
        &self.ops_rx
    }

    /// Proposes `cmd` and waits until `done` holds on the applied view (`Some(result)`),
    /// proposing again every 2 s (a proposal made with no leader, or lost in a leader
    /// change, is dropped by Raft; commands are idempotent or refused identically on every
    /// broker); `MetadataError::Controller` after `CONTROLLER_APPLY_WAIT_MS`.
    pub async fn propose_and_wait<T>(
        &self,
        cmd: MetadataCommand,
        done: impl Fn(&ClusterView) -> Option<Result<T, crate::metadata::MetadataError>>,
    ) -> Result<T, crate::metadata::MetadataError> {
        use std::time::{Duration, Instant};
        let limit = Duration::from_millis(crate::limits::CONTROLLER_APPLY_WAIT_MS);
        let started = Instant::now();
        let mut proposed: Option<Instant> = None;
        loop {
            if let Some(r) = done(&self.view()) {
                return r;
            }
            if started.elapsed() >= limit {
                return Err(crate::metadata::MetadataError::Controller(
                    "not applied in time (no active controller?)".into(),
                ));
            }
            if proposed.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
                proposed = Some(Instant::now());
                let _ = self.propose(cmd.clone());
            }
            glommio::timer::sleep(Duration::from_millis(
                crate::limits::CONTROLLER_APPLY_POLL_MS,
            ))
            .await;
        }
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Controlled shutdown (Kafka's): asks the controller to move every leadership this
    /// broker holds to another in-sync replica and take it out of the ISRs
    /// (`ShutdownBroker` for this incarnation; heartbeats go on but no longer unfence it);
    /// resolves when that is applied here, or after [`CONTROLLED_SHUTDOWN_WAIT_MS`] (then
    /// the session timeout does the same later).
    pub async fn controlled_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let started = std::time::Instant::now();
        let limit = std::time::Duration::from_millis(crate::limits::CONTROLLED_SHUTDOWN_WAIT_MS);
        let mut proposed_at: Option<std::time::Instant> = None;
        while started.elapsed() < limit {
            let view = self.view();
            if !view.state.brokers.contains_key(&self.me) {
                return;
            }
            if view
                .state
                .controlled_shutdown_complete(self.me, self.incarnation)
            {
                tracing::info!(broker = self.me.0, "controlled shutdown: leaderships moved");
                return;
            }
            if proposed_at.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
                proposed_at = Some(std::time::Instant::now());
                let _ = self.propose(MetadataCommand::ShutdownBroker {
                    broker: self.me.0,
                    incarnation: self.incarnation,
                });
            }
            glommio::timer::sleep(std::time::Duration::from_millis(
                crate::limits::CONTROLLER_APPLY_POLL_MS,
            ))
            .await;
        }
        tracing::warn!(
            broker = self.me.0,
            "controlled shutdown not applied in time"
        );
    }
}
