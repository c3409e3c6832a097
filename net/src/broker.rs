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
            advertised_host,
            advertised_port,
            connections: Cell::new(0),
            buffers: crate::buffer_pool::BufferPool::default(),
        })
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }
}

impl Broker {
    /// The `Send` context owner-side work carries to other shards.
    pub fn owner_context(&self) -> crate::partition_ops::OwnerContext {
        crate::partition_ops::OwnerContext {
            store: self.store.clone(),
            defaults: self.defaults.clone(),
        }
    }
}
