//! The per-shard server: binds every listener on this shard (SO_REUSEPORT, so the kernel
//! spreads connections over the shards), opens the partitions this shard owns so they
//! recover, and serves each accepted connection on this shard.

use std::rc::Rc;
use std::sync::Arc;

use glommio::net::TcpListener;
use sluice_engine::runtime::Shard;
use sluice_engine::TopicPartition;

use crate::broker::Broker;
use crate::config::{ServerConfig, ServerConfigError};
use crate::metadata::{MetadataStore, TopicDefaults};
use crate::partition_ops;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ServerConfigError),
    #[error("binding {addr} on {shard}")]
    Bind {
        addr: std::net::SocketAddr,
        shard: sluice_engine::ShardId,
        #[source]
        source: glommio::GlommioError<()>,
    },
}

/// Everything a shard's server needs, shared (`Send`) across shards at start-up.
#[derive(Clone)]
pub struct ServerShared {
    pub config: Arc<ServerConfig>,
    pub store: Arc<dyn MetadataStore>,
    pub defaults: Arc<TopicDefaults>,
    /// Cluster membership; `None` on a single broker.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Runs this shard's part of the broker until the listeners fail.
pub async fn run_shard(shard: Rc<Shard>, shared: ServerShared) -> Result<(), ServerError> {
    let broker = Rc::new(Broker::new(shard.clone(), &shared)?);
    match &shared.cluster {
        // Replicated partitions open when the controller hands them to this shard.
        Some(cluster) => {
            crate::cluster::replicas::install(cluster.clone());
            if shard.id().0 == 0 {
                let (s, ctx, c) = (shard.clone(), broker.owner_context(), cluster.clone());
                glommio::spawn_local(async move {
                    if let Err(e) = crate::cluster::controller::run(s, ctx, c).await {
                        tracing::error!(error = %e, "cluster controller failed to start");
                        eprintln!("sluice: cluster: {e}");
                        std::process::exit(1);
                    }
                })
                .detach();
            }
        }
        None => recover_owned_partitions(&broker).await,
    }
    let mut listeners = Vec::new();
    for addr in shared.config.listener_addrs()? {
        let listener = TcpListener::bind(addr).map_err(|source| ServerError::Bind {
            addr,
            shard: shard.id(),
            source,
        })?;
        tracing::info!(shard = %shard.id(), %addr, "listening");
        listeners.push(listener);
    }
    crate::admin::start(&broker)?;
    let tasks: Vec<_> = listeners
        .into_iter()
        .map(|l| glommio::spawn_local(accept_loop(broker.clone(), l)).detach())
        .collect();
    for t in tasks {
        t.await;
    }
    Ok(())
}

/// Opens every partition of every known topic that this shard owns, so logs recover at
/// start-up rather than on first use.
async fn recover_owned_partitions(broker: &Rc<Broker>) {
    let snapshot = broker.store.snapshot();
    let ctx = broker.owner_context();
    let mut opened = 0usize;
    for t in snapshot.topics.values() {
        for p in 0..t.partitions {
            let tp = TopicPartition::new(t.name.clone(), p);
            if broker.shard.owner(&tp) != broker.shard.id() {
                continue;
            }
            match partition_ops::partition_log(&broker.shard, &ctx, &tp).await {
                Ok(_) => opened += 1,
                Err(code) => tracing::error!(partition = %tp, code, "partition did not recover"),
            }
        }
    }
    tracing::info!(shard = %broker.shard.id(), partitions = opened, "recovered owned partitions");
}

async fn accept_loop(broker: Rc<Broker>, listener: TcpListener) {
    let limit = broker
        .config
        .connections_per_shard(broker.shard.shard_count());
    loop {
        match listener.accept().await {
            Ok(stream) => {
                if broker.connections.get() >= limit {
                    tracing::warn!(limit, "connection limit reached; refusing a connection");
                    drop(stream);
                    continue;
                }
                broker.connections.set(broker.connections.get() + 1);
                let b = broker.clone();
                glommio::spawn_local(async move {
                    crate::connection::serve(b.clone(), stream).await;
                    b.connections.set(b.connections.get() - 1);
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
