//! Per-shard broker context handed to every connection and handler on that shard.
//! Owned by one shard; holds shared (cluster-wide) views by `Arc`.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use sluice_engine::runtime::Shard;

use crate::config::ServerConfig;
use crate::metadata::{MetadataStore, TopicDefaults};

/// What a shard's handlers need: the shard itself (routing, owned partitions), the
/// broker's server config, the cluster's topic metadata and the topic config defaults.
pub struct Broker {
    pub shard: Rc<Shard>,
    pub config: Arc<ServerConfig>,
    pub store: Arc<dyn MetadataStore>,
    pub defaults: Arc<TopicDefaults>,
    /// Cluster membership; `None` on a single broker.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    pub advertised_host: String,
    pub advertised_port: u16,
    /// Connections this shard is serving now.
    pub connections: Cell<usize>,
    /// Request frame buffers for this shard's connections.
    pub buffers: crate::buffer_pool::BufferPool,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("shard", &self.shard.id())
            .finish()
    }
}

impl Broker {
    /// This shard's context from the broker-wide pieces.
    pub fn new(
        shard: Rc<Shard>,
        shared: &crate::server::ServerShared,
    ) -> Result<Broker, crate::config::ServerConfigError> {
        let (advertised_host, advertised_port) = shared.config.advertised()?;
        Ok(Broker {
            shard,
            config: shared.config.clone(),
            store: shared.store.clone(),
            defaults: shared.defaults.clone(),
            cluster: shared.cluster.clone(),
            advertised_host,
            advertised_port,
            connections: Cell::new(0),
            buffers: crate::buffer_pool::BufferPool::default(),
        })
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The brokers clients may talk to: on a single broker this one; in a cluster every
    /// live (unfenced) registered broker, and always this one.
    pub fn live_brokers(&self) -> Vec<BrokerAddress> {
        let me = BrokerAddress {
            id: self.node_id(),
            host: self.advertised_host.clone(),
            port: i32::from(self.advertised_port),
            rack: None,
        };
        let Some(cluster) = &self.cluster else {
            return vec![me];
        };
        let view = cluster.view();
        let mut out: Vec<BrokerAddress> = view
            .state
            .brokers
            .iter()
            .filter(|(id, b)| !b.fenced && id.0 != me.id)
            .map(|(id, b)| BrokerAddress {
                id: id.0,
                host: b.endpoint.host.clone(),
                port: b.endpoint.port,
                rack: b.rack.clone(),
            })
            .collect();
        out.push(BrokerAddress {
            rack: cluster.config.rack.clone(),
            ..me
        });
        out.sort_by_key(|b| b.id);
        out
    }

    /// The broker clients see as the controller: this one alone, else the active
    /// controller (-1 while there is none).
    pub fn controller_id(&self) -> i32 {
        match &self.cluster {
            None => self.node_id(),
            Some(c) => c.view().controller.map_or(-1, |b| b.0),
        }
    }
}

/// A broker's client endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddress {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl Broker {
    /// The `Send` context owner-side work carries to other shards.
    pub fn owner_context(&self) -> crate::partition_ops::OwnerContext {
        crate::partition_ops::OwnerContext {
            store: self.store.clone(),
            defaults: self.defaults.clone(),
            cluster: self.cluster.clone(),
        }
    }
}
