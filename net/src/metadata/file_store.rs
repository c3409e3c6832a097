//! [`MetadataStore`] kept in one file, `<data_dir>/topics.json`: a header line
//! `sluice-topics <format> <crc32c> <body bytes>` then the JSON body. Every change writes a
//! temp file, fdatasyncs it, renames it over the old one and syncs the directory, so a
//! crash leaves either the old or the new file. Broker-wide: one instance shared by all
//! shards; writes run on whichever shard asked, one at a time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{
    apply, Change, ClusterMetadata, LocalFuture, MetadataError, MetadataStore, TopicMetadata,
};
use crate::limits::METADATA_FILE_BYTES_MAX;

const FILE_NAME: &str = "topics.json";
const TEMP_NAME: &str = "topics.json.tmp";
const MAGIC: &str = "sluice-topics";
const FORMAT: u32 = 1;

pub struct FileMetadataStore {
    dir: PathBuf,
    current: RwLock<Arc<ClusterMetadata>>,
    /// Serialises writers across shards (held across the file write's awaits).
    writer: async_lock::Mutex<()>,
}

impl std::fmt::Debug for FileMetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMetadataStore")
            .field("dir", &self.dir)
            .finish()
    }
}

fn encode(path: &Path, m: &ClusterMetadata) -> Result<Vec<u8>, MetadataError> {
    let body = serde_json::to_vec_pretty(m).map_err(|source| MetadataError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = format!(
        "{MAGIC} {FORMAT} {:08x} {}\n",
        crc32c::crc32c(&body),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Ok(out)
}

fn decode(path: &Path, bytes: &[u8]) -> Result<ClusterMetadata, MetadataError> {
    let corrupt = |what: String| MetadataError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("no header line".into()))?;
    let header = std::str::from_utf8(&bytes[..newline])
        .map_err(|_| corrupt("header is not UTF-8".into()))?;
    let body = &bytes[newline + 1..];
    let fields: Vec<&str> = header.split(' ').collect();
    let [magic, format, crc, len] = fields[..] else {
        return Err(corrupt(format!("bad header {header:?}")));
    };
    if magic != MAGIC || format != FORMAT.to_string() {
        return Err(corrupt(format!("unknown header {header:?}")));
    }
    if len.parse::<usize>().ok() != Some(body.len()) {
        return Err(corrupt(format!(
            "body is {} bytes, header says {len}",
            body.len()
        )));
    }
    let computed = format!("{:08x}", crc32c::crc32c(body));
    if crc != computed {
        return Err(corrupt(format!("crc32c {computed}, header says {crc}")));
    }
    serde_json::from_slice(body).map_err(|e| corrupt(format!("JSON: {e}")))
}

impl FileMetadataStore {
    /// Loads the store from `dir` (start-up only: blocking file I/O). A missing file is an
    /// empty cluster; a damaged one is an error, never silently an empty cluster.
    pub fn open(dir: &Path) -> Result<FileMetadataStore, MetadataError> {
        let path = dir.join(FILE_NAME);
        std::fs::create_dir_all(dir).map_err(|source| MetadataError::Io {
            path: dir.to_path_buf(),
            op: "create data dir",
            source,
        })?;
        let current = match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > METADATA_FILE_BYTES_MAX as u64 => {
                return Err(MetadataError::Corrupt {
                    path,
                    what: format!(
                        "{} bytes, above the {METADATA_FILE_BYTES_MAX} limit",
                        meta.len()
                    ),
                })
            }
            Ok(_) => {
                let bytes = std::fs::read(&path).map_err(|source| MetadataError::Io {
                    path: path.clone(),
                    op: "read",
                    source,
                })?;
                decode(&path, &bytes)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ClusterMetadata::default(),
            Err(source) => {
                return Err(MetadataError::Io {
                    path,
                    op: "stat",
                    source,
                })
            }
        };
        Ok(FileMetadataStore {
            dir: dir.to_path_buf(),
            current: RwLock::new(Arc::new(current)),
            writer: async_lock::Mutex::new(()),
        })
    }

    async fn write_file(&self, m: &ClusterMetadata) -> Result<(), MetadataError> {
        let path = self.dir.join(FILE_NAME);
        let temp = self.dir.join(TEMP_NAME);
        let bytes = encode(&path, m)?;
        let io = |path: &Path, op: &'static str| {
            let path = path.to_path_buf();
            move |source: glommio::GlommioError<()>| MetadataError::Io {
                path,
                op,
                source: source.into(),
            }
        };
        let file = glommio::io::BufferedFile::create(&temp)
            .await
            .map_err(io(&temp, "create temp"))?;
        let len = bytes.len();
        let written = file
            .write_at(bytes, 0)
            .await
            .map_err(io(&temp, "write temp"))?;
        if written != len {
            return Err(MetadataError::Io {
                path: temp,
                op: "short write",
                source: std::io::ErrorKind::WriteZero.into(),
            });
        }
        file.fdatasync()
            .await
            .map_err(io(&temp, "fdatasync temp"))?;
        file.close().await.map_err(io(&temp, "close temp"))?;
        glommio::io::rename(&temp, &path)
            .await
            .map_err(io(&path, "rename"))?;
        let dir = glommio::io::BufferedFile::open(&self.dir)
            .await
            .map_err(io(&self.dir, "open dir"))?;
        dir.fdatasync().await.map_err(io(&self.dir, "fsync dir"))?;
        dir.close().await.map_err(io(&self.dir, "close dir"))?;
        Ok(())
    }

    async fn change(&self, change: Change) -> Result<ClusterMetadata, MetadataError> {
        let _writer = self.writer.lock().await;
        let next = apply(&self.snapshot(), change)?;
        self.write_file(&next).await?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(next.clone());
        Ok(next)
    }
}

impl MetadataStore for FileMetadataStore {
    fn snapshot(&self) -> Arc<ClusterMetadata> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn create_topic(&self, topic: TopicMetadata) -> LocalFuture<'_, Result<(), MetadataError>> {
        Box::pin(async move { self.change(Change::Create(topic)).await.map(drop) })
    }

    fn delete_topic(&self, name: String) -> LocalFuture<'_, Result<TopicMetadata, MetadataError>> {
        Box::pin(async move {
            let before = self.snapshot().topic(&name).cloned();
            self.change(Change::Delete(name.clone())).await?;
            before.ok_or(MetadataError::UnknownTopic(name))
        })
    }

    fn set_partition_count(
        &self,
        name: String,
        partitions: i32,
    ) -> LocalFuture<'_, Result<(), MetadataError>> {
        Box::pin(async move {
            self.change(Change::Partitions(name, partitions))
                .await
                .map(drop)
        })
    }

    fn set_topic_configs(
        &self,
        name: String,
        configs: std::collections::BTreeMap<String, String>,
    ) -> LocalFuture<'_, Result<(), MetadataError>> {
        Box::pin(async move { self.change(Change::Configs(name, configs)).await.map(drop) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn topic(name: &str, partitions: i32) -> TopicMetadata {
        TopicMetadata {
            replication_factor: 0,
            assignments: Vec::new(),
            layout: Vec::new(),
            name: name.into(),
            topic_id: 0x1234_5678_9abc_def0_1122_3344_5566_7788,
            partitions,
            configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
        }
    }

    fn on_glommio<F: std::future::Future<Output = ()> + 'static>(
        f: impl FnOnce() -> F + Send + 'static,
    ) {
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move { f().await })
            .expect("executor starts")
            .join()
            .expect("executor finishes");
    }

    #[test]
    fn topics_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let p = path.clone();
        on_glommio(move || async move {
            let store = FileMetadataStore::open(&p).expect("opens empty");
            store.create_topic(topic("a", 3)).await.expect("create a");
            store.create_topic(topic("b", 1)).await.expect("create b");
            assert!(matches!(
                store.create_topic(topic("a", 1)).await,
                Err(MetadataError::TopicExists(_))
            ));
            store
                .set_partition_count("b".into(), 4)
                .await
                .expect("grow b");
            assert!(store.set_partition_count("b".into(), 2).await.is_err());
            store.delete_topic("a".into()).await.expect("delete a");
        });
        let reopened = FileMetadataStore::open(&path).expect("reopens");
        let snap = reopened.snapshot();
        assert_eq!(snap.topics.len(), 1);
        let b = snap.topic("b").expect("b survives");
        assert_eq!(b.partitions, 4);
        assert_eq!(b.topic_id, topic("b", 1).topic_id);
        assert_eq!(
            b.configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert!(!path.join(TEMP_NAME).exists());
    }

    #[test]
    fn damaged_file_is_an_error_not_an_empty_cluster() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = ClusterMetadata {
            epoch: 1,
            topics: BTreeMap::from([("t".to_string(), topic("t", 1))]),
        };
        let path = dir.path().join(FILE_NAME);
        let mut bytes = encode(&path, &m).expect("encodes");
        assert_eq!(decode(&path, &bytes).expect("decodes"), m);
        let last = bytes.len() - 3;
        bytes[last] ^= 0x20;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            FileMetadataStore::open(dir.path()),
            Err(MetadataError::Corrupt { .. })
        ));
        std::fs::write(&path, b"garbage").expect("write");
        assert!(matches!(
            FileMetadataStore::open(dir.path()),
            Err(MetadataError::Corrupt { .. })
        ));
    }
}
