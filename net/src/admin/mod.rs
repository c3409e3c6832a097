//! The admin HTTP endpoint, served by shard 0: `/metrics` (Prometheus text format) and
//! `/status` (JSON, read by `sluice status`).
//!
//! - [`requests`]: per-shard request counts and handler latency, recorded by connections.
//! - [`snapshot`]: copies every shard's counters and partitions to shard 0; [`lag`]:
//!   consumer-group lag from the group coordinators' committed offsets.
//! - [`metrics`], [`status`]: render a snapshot; [`http`]: the server; [`latency`]:
//!   histograms as exported.
//! - [`move_partition`]: moves a partition to another shard online.

pub mod http;
pub mod lag;
pub mod latency;
pub mod metrics;
pub mod move_partition;
pub mod requests;
pub mod snapshot;
pub mod status;

use std::net::SocketAddr;
use std::rc::Rc;

use glommio::net::TcpListener;
use sluice_engine::ShardId;

use crate::broker::Broker;
use crate::config::{ServerConfig, ServerConfigError};
use crate::server::ServerError;

/// The admin endpoint's address; `None` when `admin_listener` is empty (disabled).
pub fn admin_addr(config: &ServerConfig) -> Result<Option<SocketAddr>, ServerConfigError> {
    let raw = config.admin_listener.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let addr = raw.rsplit_once("://").map_or(raw, |(_, a)| a);
    addr.parse()
        .map(Some)
        .map_err(|source| ServerConfigError::BadListener {
            listener: raw.to_string(),
            source,
        })
}

/// Makes this shard visible to metrics snapshots and, on shard 0, binds and serves the
/// admin endpoint. A bad or unbindable address fails start-up like a Kafka listener does.
pub fn start(broker: &Rc<Broker>) -> Result<(), ServerError> {
    snapshot::register(broker);
    if broker.shard.id() != ShardId(0) {
        return Ok(());
    }
    let Some(addr) = admin_addr(&broker.config)? else {
        tracing::info!("admin endpoint disabled (admin_listener is empty)");
        return Ok(());
    };
    let listener = TcpListener::bind(addr).map_err(|source| ServerError::Bind {
        addr,
        shard: broker.shard.id(),
        source,
    })?;
    tracing::info!(%addr, "admin endpoint listening (/metrics, /status, /partitions/move)");
    glommio::spawn_local(http::serve(broker.clone(), listener)).detach();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_listener_parses_empty_disables_bad_is_refused() {
        let mut c = ServerConfig::default();
        assert_eq!(
            admin_addr(&c).expect("default parses"),
            Some("127.0.0.1:9644".parse().expect("addr"))
        );
        c.admin_listener = "http://0.0.0.0:19644".into();
        assert_eq!(
            admin_addr(&c).expect("prefixed parses"),
            Some("0.0.0.0:19644".parse().expect("addr"))
        );
        c.admin_listener = " ".into();
        assert_eq!(admin_addr(&c).expect("empty"), None);
        c.admin_listener = "localhost".into();
        assert!(admin_addr(&c).is_err());
    }
}
