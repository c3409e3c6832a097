//! The bench crate's one error type.

use std::path::PathBuf;

/// A codec error from `kafka-protocol` (which reports `anyhow` errors), kept as a source.
pub type CodecError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid bench configuration: {0}")]
    Config(String),
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("i/o with {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: CodecError,
    },
    #[error("decode {what} from {addr}: {source}")]
    Decode {
        what: &'static str,
        addr: String,
        source: CodecError,
    },
    #[error("no response from {addr} within the request timeout ({timeout:?})")]
    Timeout {
        addr: String,
        timeout: std::time::Duration,
    },
    #[error("protocol error from {addr}: {detail}")]
    Protocol { addr: String, detail: String },
    #[error("broker answered error code {code} to {what}")]
    Broker { what: String, code: i16 },
    #[error("write {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("read {path}: {source}")]
    Input {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("json {path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("plot {path}: {detail}")]
    Plot { path: PathBuf, detail: String },
    #[error("load-generator thread `{0}` panicked")]
    ThreadPanicked(String),
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
