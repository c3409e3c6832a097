//! The one error type of the tuning crate: every variant keeps the path it was about and,
//! for I/O, the source error.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error("inspection root {path}: {source}")]
    Root {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("listing {path}: {source}")]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("resolving {path}: {source}")]
    Resolve {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: cannot read {value:?} as {expected}")]
    Parse {
        path: PathBuf,
        value: String,
        expected: &'static str,
    },
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the report: {source}")]
    Output {
        #[source]
        source: io::Error,
    },
    #[error("encoding the JSON report: {source}")]
    Json {
        #[source]
        source: serde_json::Error,
    },
}
