//! Shard 0's cluster task: this broker's controller voter (raft-rs through
//! [`ControllerNode`]), its heartbeats, the inter-broker listener, and the hand-off of
//! applied metadata to every shard (the published [`ClusterView`]) and of partition
//! leader/ISR changes to the shards that own the partitions.
//!
//! A broker serves its replicas only once the controller has applied its registration
//! (this process incarnation, unfenced): until then a replayed, possibly stale, log must
//! not make it act as a leader. Then every partition it holds gets the current state,
//! and each later change as it is applied, in order.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;
use sluice_engine::clock::{Clock, SystemClock};
use sluice_engine::io::dma::DmaStorage;
use sluice_engine::runtime::Shard;
use sluice_engine::TopicPartition;
use sluice_replication::controller::{
    BrokerHeartbeat, ControllerConfig, ControllerNode, ElectionJitter, LeaderRebalance,
    MetadataState,
};
use sluice_replication::partition::{LeaderAndIsr, ReplicaMessage};
use sluice_replication::transport::{serve, PeerLink};
use sluice_replication::wire::FrameKind;
use sluice_replication::BrokerId;

use super::{replicas, Cluster, ClusterView};
use crate::limits::CONTROLLER_FRAMES_QUEUED_MAX;
use crate::partition_ops::OwnerContext;

/// Where the controller's Raft log lives under the data directory.
pub const METADATA_DIR: &str = "__cluster_metadata-0";
/// The controller loop's longest sleep: how quickly proposals queued by other shards are
/// picked up (they cross threads through a channel this loop polls, so no waker crosses
/// threads; frames from the network wake it at once).
const OPS_POLL_MS: u64 = 20;
/// Raft heartbeats every this many ticks.
const RAFT_HEARTBEAT_TICKS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum ClusterStartError {
    #[error(transparent)]
    Config(#[from] super::ClusterConfigError),
    #[error("binding the inter-broker listener {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: glommio::GlommioError<()>,
    },
    #[error("controller: {0}")]
    Controller(#[from] sluice_replication::controller::ControllerError),
}

/// What the pump hands to partition owners, in order.
enum PumpItem {
    /// Every partition this broker holds, from the view current when it runs.
    FullSync,
    Change(TopicPartition, LeaderAndIsr),
    Removed(TopicPartition),
    Configs(TopicPartition),
}

/// Runs the controller voter and the cluster plumbing on this (the first) shard until the
/// process ends. Errors only at start-up.
pub async fn run(
    shard: Rc<Shard>,
    ctx: OwnerContext,
    cluster: Arc<Cluster>,
) -> Result<(), ClusterStartError> {
    let cfg = &cluster.config;
    let voters = cfg.voters()?;
    let addr = cfg.replication_addr()?;
    let listener =
        TcpListener::bind(addr).map_err(|source| ClusterStartError::Bind { addr, source })?;
    let clock: Rc<dyn Clock> = Rc::new(SystemClock);
    let dir = shard.engine_config().data_dir.join(METADATA_DIR);
    let mut node = ControllerNode::open(
        DmaStorage,
        dir,
        ControllerConfig {
            id: cluster.me,
            voters: voters.iter().map(|v| v.id).collect(),
            election_ticks: cfg.election_ticks,
            heartbeat_ticks: RAFT_HEARTBEAT_TICKS,
            session_timeout_ms: cfg.broker_session_timeout_ms,
            election_jitter: ElectionJitter::Random,
        },
        clock.clone(),
    )
    .await?;
    node.set_leader_rebalance(cfg.auto_leader_rebalance_enable.then_some(LeaderRebalance {
        interval_ms: cfg.leader_imbalance_check_interval_ms,
        imbalance_percentage: cfg.leader_imbalance_per_broker_percentage,
    }));
    tracing::info!(broker = cluster.me.0, %addr, voters = cfg.voters, "controller voter started");
    let mut links: HashMap<BrokerId, PeerLink> = voters
        .iter()
        .filter(|v| v.id != cluster.me)
        .map(|v| (v.id, PeerLink::spawn(v.addr)))
        .collect();

    // Inbound frames: Raft and heartbeats to this task, replica frames to their owners.
    let (frames_tx, frames_rx) =
        flume::bounded::<(FrameKind, Vec<u8>)>(CONTROLLER_FRAMES_QUEUED_MAX);
    let route_shard = shard.clone();
    glommio::spawn_local(serve(listener, move |kind, frame| match kind {
        FrameKind::Replica => route_replica_frame(&route_shard, frame),
        FrameKind::Raft | FrameKind::Heartbeat => {
            let _ = frames_tx.try_send((kind, frame.to_vec()));
        }
        _ => {}
    }))
    .detach();

    let pump: Rc<std::cell::RefCell<VecDeque<PumpItem>>> = Rc::default();
    let pump_wake = Rc::new(async_lock::Semaphore::new(0));
    glommio::spawn_local(run_pump(
        shard.clone(),
        ctx,
        cluster.clone(),
        pump.clone(),
        pump_wake.clone(),
    ))
    .detach();

    let heartbeat = BrokerHeartbeat {
        broker: cluster.me.0,
        incarnation: cluster.incarnation,
        rack: cfg.rack.clone(),
        endpoint: cluster.endpoint.clone(),
    };
    let heartbeat_frame = heartbeat.encode();
    let tick = Duration::from_millis(cfg.raft_tick_ms);
    let heartbeat_every = Duration::from_millis(cfg.broker_heartbeat_interval_ms);
    let mut next_tick = Instant::now() + tick;
    let mut next_heartbeat = Instant::now();
    let mut published: Option<(u64, Option<BrokerId>)> = None;
    let mut registered = false;
    let mut last_state = MetadataState::default();
    loop {
        let now = Instant::now();
        let deadline = next_tick
            .min(next_heartbeat)
            .min(now + Duration::from_millis(OPS_POLL_MS));
        let first =
            futures_lite::future::race(async { frames_rx.recv_async().await.ok() }, async {
                glommio::timer::sleep(deadline.saturating_duration_since(now)).await;
                None
            })
            .await;
        let mut frames: Vec<(FrameKind, Vec<u8>)> = first.into_iter().collect();
        frames.extend(frames_rx.try_iter().take(CONTROLLER_FRAMES_QUEUED_MAX));
        let now_ms = clock.now_ms();
        for (kind, frame) in frames {
            match kind {
                FrameKind::Raft => {
                    if let Err(e) = node.step(&frame) {
                        tracing::debug!(error = %e, "raft message refused");
                    }
                }
                FrameKind::Heartbeat => match BrokerHeartbeat::decode(&frame) {
                    Ok(hb) => node.on_heartbeat(
                        BrokerId(hb.broker),
                        hb.incarnation,
                        hb.rack,
                        &hb.endpoint,
                        now_ms,
                    ),
                    Err(e) => tracing::debug!(error = %e, "bad heartbeat frame"),
                },
                _ => {}
            }
        }
        for op in cluster.ops().try_iter().take(CONTROLLER_FRAMES_QUEUED_MAX) {
            let super::ControllerOp::Propose(cmd) = op;
            if let Err(e) = node.propose_via_leader(&cmd) {
                tracing::debug!(error = %e, "proposal dropped");
            }
        }
        let now = Instant::now();
        if now >= next_tick {
            node.tick(now_ms);
            next_tick += tick;
            if next_tick < now {
                next_tick = now + tick;
            }
        }
        if now >= next_heartbeat {
            node.on_heartbeat(
                cluster.me,
                cluster.incarnation,
                cfg.rack.clone(),
                &cluster.endpoint,
                now_ms,
            );
            for v in &voters {
                if let Some(link) = links.get(&v.id) {
                    link.send(heartbeat_frame.clone());
                }
            }
            next_heartbeat = now + heartbeat_every;
        }
        if let Err(e) = node.process_ready().await {
            tracing::error!(error = %e, "controller could not persist or apply; retrying");
        }
        for (to, frame) in node.take_outbox() {
            if let Some(link) = links.get(&to) {
                link.send(frame);
                continue;
            }
            // A plain member (learner): linked at the address it registered.
            let addr = node
                .state()
                .brokers
                .get(&to)
                .and_then(|b| b.endpoint.replication.parse::<std::net::SocketAddr>().ok());
            if let Some(addr) = addr {
                let link = PeerLink::spawn(addr);
                link.send(frame);
                links.insert(to, link);
            }
        }
        let changes = node.take_changes();
        let key = (node.applied_index(), node.leader());
        if published != Some(key) {
            published = Some(key);
            let state = node.state().clone();
            let mut items = Vec::new();
            if registered {
                reconcile(&cluster, &last_state, &state, &mut items);
                for c in changes {
                    items.push(PumpItem::Change(
                        TopicPartition::new(c.topic, c.partition),
                        c.state,
                    ));
                }
            } else if state
                .brokers
                .get(&cluster.me)
                .is_some_and(|b| b.incarnation == cluster.incarnation && !b.fenced)
            {
                registered = true;
                tracing::info!(
                    broker = cluster.me.0,
                    "registered with the controller; serving replicas"
                );
                items.push(PumpItem::FullSync);
            }
            last_state = state.clone();
            cluster.publish(ClusterView::new(state, node.leader(), node.applied_index()));
            if !items.is_empty() {
                pump.borrow_mut().extend(items);
                pump_wake.add_permits(1);
            }
        }
    }
}

/// Topics deleted (or re-created under a new id) and topics whose configs changed since
/// `before`, for this broker's partitions.
fn reconcile(
    cluster: &Cluster,
    before: &MetadataState,
    after: &MetadataState,
    out: &mut Vec<PumpItem>,
) {
    let mine = |t: &sluice_replication::controller::TopicInfo, name: &str| -> Vec<TopicPartition> {
        t.partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.replicas.contains(&cluster.me))
            .map(|(i, _)| TopicPartition::new(name, i as i32))
            .collect()
    };
    for (name, old) in &before.topics {
        match after.topics.get(name) {
            Some(new) if new.topic_id == old.topic_id => {
                if new.configs != old.configs {
                    out.extend(mine(new, name).into_iter().map(PumpItem::Configs));
                }
            }
            _ => out.extend(mine(old, name).into_iter().map(PumpItem::Removed)),
        }
    }
}

/// Hands pump items to the partitions' owner shards, one at a time, in order.
async fn run_pump(
    shard: Rc<Shard>,
    ctx: OwnerContext,
    cluster: Arc<Cluster>,
    queue: Rc<std::cell::RefCell<VecDeque<PumpItem>>>,
    wake: Rc<async_lock::Semaphore>,
) {
    loop {
        wake.acquire().await.forget();
        loop {
            let Some(item) = queue.borrow_mut().pop_front() else {
                break;
            };
            let items: Vec<PumpItem> = match item {
                PumpItem::FullSync => {
                    let view = cluster.view();
                    let mut all = Vec::new();
                    for (name, t) in &view.state.topics {
                        for (i, p) in t.partitions.iter().enumerate() {
                            if p.replicas.contains(&cluster.me) {
                                all.push(PumpItem::Change(
                                    TopicPartition::new(name.clone(), i as i32),
                                    p.leader_and_isr(),
                                ));
                            }
                        }
                    }
                    all
                }
                other => vec![other],
            };
            for item in items {
                deliver(&shard, &ctx, item).await;
            }
        }
    }
}

async fn deliver(shard: &Rc<Shard>, ctx: &OwnerContext, item: PumpItem) {
    let (tp, result) = match item {
        PumpItem::FullSync => return,
        PumpItem::Change(tp, state) => {
            let owner = shard.owner(&tp);
            let (c, t) = (ctx.clone(), tp.clone());
            let r = shard
                .route_to_owner(owner, move |s| {
                    Box::pin(async move { replicas::apply_change(s, c, t, state).await })
                })
                .await;
            (tp, r)
        }
        PumpItem::Removed(tp) => {
            let owner = shard.owner(&tp);
            let t = tp.clone();
            let r = shard
                .route_to_owner(owner, move |s| Box::pin(replicas::remove(s, t)))
                .await;
            (tp, r)
        }
        PumpItem::Configs(tp) => {
            let owner = shard.owner(&tp);
            let (c, t) = (ctx.clone(), tp.clone());
            let r = shard
                .route_to_owner(owner, move |s| Box::pin(replicas::apply_config(s, c, t)))
                .await;
            (tp, r)
        }
    };
    match result {
        Ok(crate::errors::NONE) => {}
        Ok(code) => tracing::warn!(partition = %tp, code, "partition change not applied"),
        Err(e) => tracing::warn!(partition = %tp, error = %e, "partition change not routed"),
    }
}

/// A replica frame from a peer: to the shard that owns its partition. Frames to one
/// partition keep their order while the owner's inbox has room; the replication protocol
/// tolerates reordering and loss beyond that.
fn route_replica_frame(shard: &Rc<Shard>, frame: &[u8]) {
    // Decoded (validated) once, here; a bad frame is dropped like a lost one.
    let Ok(msg) = ReplicaMessage::decode(frame) else {
        return;
    };
    let owner = shard.owner(&TopicPartition::new(msg.topic.clone(), msg.partition));
    if owner == shard.id() {
        if let Some(reg) = replicas::here() {
            reg.on_message(msg);
        }
        return;
    }
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let _ = shard
            .route_to_owner(owner, move |_s| {
                Box::pin(async move {
                    if let Some(reg) = replicas::here() {
                        reg.on_message(msg);
                    }
                })
            })
            .await;
    })
    .detach();
}
