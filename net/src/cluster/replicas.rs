//! Each shard's partition replicas: one [`ReplicaDriver`] per partition replica this
//! broker holds and this shard owns, the shard's outgoing links to peer brokers, and the
//! ticker that drives keepalives, ISR checks and retries. Everything here belongs to one
//! shard (a thread-local registry installed when the shard starts); other shards reach
//! it only through `route_to_owner`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use sluice_engine::clock::SystemClock;
use sluice_engine::io::dma::DmaStorage;
use sluice_engine::runtime::Shard;
use sluice_engine::TopicPartition;
use sluice_replication::controller::MetadataCommand;
use sluice_replication::driver::{DriverHooks, ReplicaDriver};
use sluice_replication::partition::{LeaderAndIsr, ReplicaMessage, ReplicaSettings, RoleKind};
use sluice_replication::transport::PeerLink;
use sluice_replication::BrokerId;

use super::Cluster;
use crate::errors;
use crate::limits::{REPLICA_KEEPALIVE_MS, REPLICA_RETRY_MS, REPLICA_TICK_MS};
use crate::partition_ops::{partition_log, OwnerContext};

pub type Driver = ReplicaDriver<DmaStorage>;

/// One shard's replicas and links.
pub struct ShardReplicas {
    cluster: Arc<Cluster>,
    drivers: RefCell<HashMap<TopicPartition, Driver>>,
    /// Outgoing link per peer broker, with the registered address it was made for.
    links: RefCell<HashMap<BrokerId, (String, PeerLink)>>,
}

thread_local! {
    static REPLICAS: RefCell<Option<Rc<ShardReplicas>>> = const { RefCell::new(None) };
}

/// This shard's replicas, once [`install`]ed (cluster mode only).
pub fn here() -> Option<Rc<ShardReplicas>> {
    REPLICAS.with(|r| r.borrow().clone())
}

/// Sets up this shard's registry and starts its ticker. Called once per shard at start.
pub fn install(cluster: Arc<Cluster>) {
    let replicas = Rc::new(ShardReplicas {
        cluster,
        drivers: RefCell::new(HashMap::new()),
        links: RefCell::new(HashMap::new()),
    });
    REPLICAS.with(|r| *r.borrow_mut() = Some(replicas.clone()));
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(Duration::from_millis(REPLICA_TICK_MS)).await;
            let drivers: Vec<Driver> = replicas.drivers.borrow().values().cloned().collect();
            for d in drivers {
                d.tick();
            }
        }
    })
    .detach();
}

impl ShardReplicas {
    pub fn driver(&self, tp: &TopicPartition) -> Option<Driver> {
        self.drivers.borrow().get(tp).cloned()
    }

    /// Queues a frame for `to` on this shard's link to it (made on first use, remade when
    /// the broker's registered address changes). Unknown or fenced brokers get nothing: the
    /// replication protocol resends.
    fn send(&self, to: BrokerId, frame: Vec<u8>) {
        let view = self.cluster.view();
        let Some(registered) = view.state.brokers.get(&to).map(|b| &b.endpoint.replication) else {
            return;
        };
        let mut links = self.links.borrow_mut();
        if let Some((addr, link)) = links.get(&to) {
            if addr == registered {
                link.send(frame);
                return;
            }
        }
        let Ok(addr) = registered.parse::<SocketAddr>() else {
            return;
        };
        let link = PeerLink::spawn(addr);
        link.send(frame);
        links.insert(to, (registered.clone(), link));
    }

    /// A replica message from a peer, for a partition this shard owns.
    pub fn on_message(&self, msg: ReplicaMessage) {
        let tp = TopicPartition::new(msg.topic.clone(), msg.partition);
        if let Some(d) = self.driver(&tp) {
            d.on_message(msg);
        }
    }

    fn settings(&self, ctx: &OwnerContext, tp: &TopicPartition) -> ReplicaSettings {
        let min_insync = ctx
            .store
            .snapshot()
            .topic(&tp.topic)
            .and_then(|t| t.configs.get("min.insync.replicas").cloned())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(i64::from(self.cluster.config.min_insync_replicas))
            .max(1) as usize;
        ReplicaSettings {
            replica_lag_time_max_ms: self.cluster.config.replica_lag_time_max_ms,
            min_insync_replicas: min_insync,
            keepalive_interval_ms: REPLICA_KEEPALIVE_MS,
            retry_ms: REPLICA_RETRY_MS,
            ..ReplicaSettings::default()
        }
    }
}

/// On the owner shard: the controller's latest leader/ISR for `tp`. Opens the log and
/// starts the replica the first time; a broker no longer among the replicas stops its
/// replica (the files stay until the topic is deleted).
pub async fn apply_change(
    shard: Rc<Shard>,
    ctx: OwnerContext,
    tp: TopicPartition,
    state: LeaderAndIsr,
) -> i16 {
    let Some(reg) = here() else {
        return errors::NONE;
    };
    if !state.replicas.contains(&reg.cluster.me) {
        // Reassigned away (the reassignment completed): the replica and its files go.
        let had = reg.drivers.borrow_mut().remove(&tp).is_some();
        if had {
            tracing::info!(partition = %tp, "no longer a replica here: removing it");
            return crate::partition_ops::remove(shard, tp).await;
        }
        return errors::NONE;
    }
    let driver = match reg.driver(&tp) {
        Some(d) => d,
        None => {
            let log = match partition_log(&shard, &ctx, &tp).await {
                Ok(l) => l,
                Err(code) => return code,
            };
            // Another change may have started it while the log opened.
            if let Some(d) = reg.driver(&tp) {
                d
            } else {
                let send_reg = Rc::downgrade(&reg);
                let cluster = reg.cluster.clone();
                let isr_tp = tp.clone();
                let hooks = DriverHooks {
                    send: Box::new(move |to, frame| {
                        if let Some(r) = send_reg.upgrade() {
                            r.send(to, frame);
                        }
                    }),
                    alter_isr: Box::new(move |leader_epoch, partition_epoch, isr| {
                        let _ = cluster.propose(MetadataCommand::AlterIsr {
                            topic: isr_tp.topic.clone(),
                            partition: isr_tp.partition.0,
                            leader_epoch: leader_epoch.0,
                            partition_epoch: partition_epoch.0,
                            isr: isr.iter().map(|b| b.0).collect(),
                        });
                    }),
                };
                let settings = reg.settings(&ctx, &tp);
                match ReplicaDriver::start(
                    reg.cluster.me,
                    log,
                    DmaStorage,
                    settings,
                    hooks,
                    Rc::new(SystemClock),
                )
                .await
                {
                    Ok(d) => {
                        reg.drivers.borrow_mut().insert(tp.clone(), d.clone());
                        d
                    }
                    Err(e) => {
                        tracing::error!(partition = %tp, error = %e, "replica did not start");
                        return errors::KAFKA_STORAGE_ERROR;
                    }
                }
            }
        }
    };
    let before = (driver.role(), driver.leader_epoch());
    driver.on_metadata(&state);
    let after = (driver.role(), driver.leader_epoch());
    if before != after {
        tracing::info!(partition = %tp, role = ?after.0, leader_epoch = after.1 .0,
            leader = ?state.leader.map(|b| b.0), isr = ?state.isr.iter().map(|b| b.0).collect::<Vec<_>>(),
            "replica role");
    }
    errors::NONE
}

/// On the owner shard: the topic's configs changed - the log takes its new config and a
/// running replica its new settings (min.insync.replicas).
pub async fn apply_config(shard: Rc<Shard>, ctx: OwnerContext, tp: TopicPartition) -> i16 {
    crate::partition_ops::apply_config(shard, ctx.clone(), tp.clone()).await;
    if let Some(reg) = here() {
        if let Some(d) = reg.driver(&tp) {
            d.set_settings(reg.settings(&ctx, &tp));
        }
    }
    errors::NONE
}

/// On a clean stop: every replica on this shard checkpoints its high watermark, so after
/// the restart its consumers see what was committed at once.
pub async fn checkpoint_all() {
    let Some(reg) = here() else {
        return;
    };
    let drivers: Vec<(TopicPartition, Driver)> = reg
        .drivers
        .borrow()
        .iter()
        .map(|(tp, d)| (tp.clone(), d.clone()))
        .collect();
    for (tp, d) in drivers {
        if let Err(e) = d.checkpoint_high_watermark().await {
            tracing::warn!(partition = %tp, error = %e, "high watermark checkpoint failed");
        }
    }
}

/// On the owner shard: the topic was deleted; stop the replica and remove its files.
pub async fn remove(shard: Rc<Shard>, tp: TopicPartition) -> i16 {
    if let Some(reg) = here() {
        reg.drivers.borrow_mut().remove(&tp);
    }
    crate::partition_ops::remove(shard, tp).await
}

/// Why a client request cannot be served by this replica: NOT_LEADER_OR_FOLLOWER when
/// it is not the leader, FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH when the client's
/// `current_leader_epoch` (-1: not given) is older / newer than the leader's.
pub fn check_leader(tp: &TopicPartition, current_leader_epoch: i32) -> Result<Driver, i16> {
    let Some(reg) = here() else {
        return Err(errors::NOT_LEADER_OR_FOLLOWER);
    };
    let Some(d) = reg.driver(tp) else {
        return Err(errors::NOT_LEADER_OR_FOLLOWER);
    };
    if d.role() != RoleKind::Leader {
        return Err(errors::NOT_LEADER_OR_FOLLOWER);
    }
    let epoch = d.leader_epoch().0;
    if current_leader_epoch >= 0 {
        if current_leader_epoch < epoch {
            return Err(errors::FENCED_LEADER_EPOCH);
        }
        if current_leader_epoch > epoch {
            return Err(errors::UNKNOWN_LEADER_EPOCH);
        }
    }
    Ok(d)
}
