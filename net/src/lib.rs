//! Sluice's Kafka wire protocol server.
//!
//! Layout:
//! - [`config`]: the `[server]` table; [`limits`]: every bound, in one place.
//! - [`frame`]: size-bounded request framing; [`codec`]: headers and response framing
//!   through `kafka-protocol`; [`versions`]: what we advertise.
//! - [`server`], [`connection`]: listeners per shard, pipelined connections.
//! - [`dispatch`], [`handlers`]: one handler file per API; [`routing`] and
//!   [`partition_ops`]: work sent to partition owners; [`topics`]: topic admin.
//! - [`metadata`]: topic metadata behind [`metadata::MetadataStore`], topic names and configs.
#![allow(clippy::future_not_send)]

pub mod admin;
pub mod broker;
pub mod buffer_pool;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod connection;
pub mod dispatch;
pub mod errors;
pub mod frame;
pub mod group;
pub mod handlers;
pub mod limits;
pub mod metadata;
pub mod partition_ops;
pub mod producer_ids;
pub mod routing;
pub mod server;
pub mod topics;
pub mod versions;

pub use config::ServerConfig;
