//! Broker-local producer id allocation for InitProducerId (idempotent producers).
//!
//! One shard owns the allocator (the owner of the key [`ALLOCATOR_KEY`]); every other
//! shard routes to it. Ids are reserved in blocks of [`PRODUCER_ID_BLOCK`]: the end of
//! the reserved range is written to `<data_dir>/producer-ids` (temp file, fdatasync,
//! rename, directory fsync) before any id of the block is handed out, so a restart
//! starts after the last reserved block and never hands out an id twice.
//!
//! File format (versioned, checksummed): magic `SPID`, u16 version, i64 reserved end,
//! u32 crc32c of the preceding bytes; all big-endian.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use sluice_engine::runtime::Shard;

use crate::limits::PRODUCER_ID_BLOCK;

/// The shard-table key whose owner runs the allocator.
pub const ALLOCATOR_KEY: &str = "__sluice_producer_ids";
const FILE_NAME: &str = "producer-ids";
const TEMP_NAME: &str = "producer-ids.tmp";
const MAGIC: &[u8; 4] = b"SPID";
const VERSION: u16 = 1;
const FILE_BYTES: usize = 4 + 2 + 8 + 4;

#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    #[error("producer id file {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("producer id file {path} is damaged: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("producer ids exhausted")]
    Exhausted,
}

pub fn encode_file(reserved_end: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(FILE_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&reserved_end.to_be_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

pub fn decode_file(path: &Path, bytes: &[u8]) -> Result<i64, ProducerIdError> {
    let corrupt = |detail: &str| ProducerIdError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    if bytes.len() != FILE_BYTES {
        return Err(corrupt("wrong length"));
    }
    let (body, crc) = bytes.split_at(FILE_BYTES - 4);
    let mut crc_bytes = [0u8; 4];
    crc_bytes.copy_from_slice(crc);
    if crc32c::crc32c(body) != u32::from_be_bytes(crc_bytes) {
        return Err(corrupt("checksum mismatch"));
    }
    if &body[..4] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let mut version = [0u8; 2];
    version.copy_from_slice(&body[4..6]);
    if u16::from_be_bytes(version) != VERSION {
        return Err(corrupt("unknown version"));
    }
    let mut end = [0u8; 8];
    end.copy_from_slice(&body[6..14]);
    let end = i64::from_be_bytes(end);
    if end < 0 {
        return Err(corrupt("negative reserved end"));
    }
    Ok(end)
}

/// The allocator on its owner shard. `next..reserved_end` is durable-reserved and unused.
pub struct ProducerIdAllocator {
    dir: PathBuf,
    loaded: Cell<bool>,
    next: Cell<i64>,
    reserved_end: Cell<i64>,
    /// Serialises loading and block reservation (file writes).
    writer: async_lock::Mutex<()>,
}

thread_local! {
    static ALLOCATOR: RefCell<Option<Rc<ProducerIdAllocator>>> = const { RefCell::new(None) };
}

fn io_err(
    path: &Path,
    op: &'static str,
) -> impl FnOnce(glommio::GlommioError<()>) -> ProducerIdError {
    let path = path.to_path_buf();
    move |e| ProducerIdError::Io {
        path,
        op,
        source: e.into(),
    }
}

impl ProducerIdAllocator {
    /// This shard's allocator (only used on the owner of [`ALLOCATOR_KEY`]).
    pub fn on_shard(shard: &Shard) -> Rc<ProducerIdAllocator> {
        ALLOCATOR.with(|a| {
            a.borrow_mut()
                .get_or_insert_with(|| {
                    let dir = &shard.engine_config().data_dir;
                    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
                    Rc::new(ProducerIdAllocator::new(dir))
                })
                .clone()
        })
    }

    pub fn new(dir: PathBuf) -> ProducerIdAllocator {
        ProducerIdAllocator {
            dir,
            loaded: Cell::new(false),
            next: Cell::new(0),
            reserved_end: Cell::new(0),
            writer: async_lock::Mutex::new(()),
        }
    }

    /// Highest id ever handed out + 1 (ids below it may be in use by producers).
    pub fn handed_out_below(&self) -> i64 {
        self.next.get()
    }

    /// A fresh producer id; resolves once its block reservation is durable.
    pub async fn allocate(&self) -> Result<i64, ProducerIdError> {
        let _writer = self.writer.lock().await;
        if !self.loaded.get() {
            let end = self.read_file().await?;
            self.next.set(end);
            self.reserved_end.set(end);
            self.loaded.set(true);
        }
        if self.next.get() >= self.reserved_end.get() {
            let end = self
                .reserved_end
                .get()
                .checked_add(PRODUCER_ID_BLOCK)
                .ok_or(ProducerIdError::Exhausted)?;
            self.write_file(end).await?;
            self.reserved_end.set(end);
        }
        let id = self.next.get();
        self.next.set(id + 1);
        assert!(
            id < self.reserved_end.get(),
            "an id is only handed out from a durably reserved block"
        );
        Ok(id)
    }

    async fn read_file(&self) -> Result<i64, ProducerIdError> {
        let path = self.dir.join(FILE_NAME);
        let file = match glommio::io::BufferedFile::open(&path).await {
            Ok(f) => f,
            Err(e) => {
                let source: std::io::Error = e.into();
                if source.kind() == std::io::ErrorKind::NotFound {
                    return Ok(0);
                }
                return Err(ProducerIdError::Io {
                    path,
                    op: "open",
                    source,
                });
            }
        };
        let bytes = file
            .read_at(0, FILE_BYTES + 1)
            .await
            .map_err(io_err(&path, "read"))?;
        let end = decode_file(&path, &bytes);
        file.close().await.map_err(io_err(&path, "close"))?;
        end
    }

    async fn write_file(&self, end: i64) -> Result<(), ProducerIdError> {
        let path = self.dir.join(FILE_NAME);
        let temp = self.dir.join(TEMP_NAME);
        let bytes = encode_file(end);
        let file = glommio::io::BufferedFile::create(&temp)
            .await
            .map_err(io_err(&temp, "create temp"))?;
        let written = file
            .write_at(bytes, 0)
            .await
            .map_err(io_err(&temp, "write temp"))?;
        if written != FILE_BYTES {
            return Err(ProducerIdError::Io {
                path: temp,
                op: "short write",
                source: std::io::ErrorKind::WriteZero.into(),
            });
        }
        file.fdatasync()
            .await
            .map_err(io_err(&temp, "fdatasync temp"))?;
        file.close().await.map_err(io_err(&temp, "close temp"))?;
        glommio::io::rename(&temp, &path)
            .await
            .map_err(io_err(&path, "rename"))?;
        let dir = glommio::io::BufferedFile::open(&self.dir)
            .await
            .map_err(io_err(&self.dir, "open dir"))?;
        dir.fdatasync()
            .await
            .map_err(io_err(&self.dir, "fsync dir"))?;
        dir.close().await.map_err(io_err(&self.dir, "close dir"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trips_and_damage_is_detected() {
        let p = Path::new("x");
        assert_eq!(decode_file(p, &encode_file(3000)).expect("decode"), 3000);
        let mut bad = encode_file(3000);
        bad[8] ^= 1;
        assert!(decode_file(p, &bad).is_err());
        assert!(decode_file(p, &bad[..5]).is_err());
    }

    #[test]
    fn restart_never_reuses_an_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let a = ProducerIdAllocator::new(path.clone());
                let first: Vec<i64> = {
                    let mut v = Vec::new();
                    for _ in 0..3 {
                        v.push(a.allocate().await.expect("allocate"));
                    }
                    v
                };
                assert_eq!(first, vec![0, 1, 2]);
                // "Restart": a new allocator over the same directory.
                let b = ProducerIdAllocator::new(path.clone());
                let next = b.allocate().await.expect("allocate");
                assert_eq!(
                    next, PRODUCER_ID_BLOCK,
                    "restart starts after the reserved block"
                );
                for _ in 0..PRODUCER_ID_BLOCK {
                    b.allocate().await.expect("allocate");
                }
                let c = ProducerIdAllocator::new(path);
                assert_eq!(c.allocate().await.expect("allocate"), 3 * PRODUCER_ID_BLOCK);
            })
            .expect("spawn")
            .join()
            .expect("join");
    }
}
