//! glommio DMA files: O_DIRECT reads and writes through io_uring.

use std::io;
use std::path::Path;
use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions, ReadResult};

use super::{OpenMode, Storage, StorageFile};

/// The production storage: every segment and index file is a glommio DMA file.
#[derive(Clone, Copy, Debug, Default)]
pub struct DmaStorage;

/// A DMA file shared by the writers and readers of one segment (shard-local).
#[derive(Clone)]
pub struct DmaHandle {
    file: Rc<DmaFile>,
}

fn to_io(e: glommio::GlommioError<()>) -> io::Error {
    io::Error::from(e)
}

impl StorageFile for DmaHandle {
    type Buf = DmaBuffer;
    type ReadBuf = ReadResult;

    fn alloc_buffer(&self, len: usize) -> DmaBuffer {
        // From the shard's I/O memory arena when it has room (no page faults, registered with
        // io_uring when memlock allows); not zeroed - callers write or zero every byte.
        self.file.alloc_dma_buffer(len)
    }

    async fn write_at(&self, buf: DmaBuffer, pos: u64) -> io::Result<usize> {
        self.file.write_at(buf, pos).await.map_err(to_io)
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<ReadResult> {
        self.file.read_at(pos, len).await.map_err(to_io)
    }

    async fn sync(&self) -> io::Result<()> {
        self.file.fdatasync().await.map_err(to_io)
    }

    async fn preallocate(&self, len: u64) -> io::Result<()> {
        self.file.pre_allocate(len, false).await.map_err(to_io)
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.truncate(len).await.map_err(to_io)
    }

    async fn size(&self) -> io::Result<u64> {
        self.file.file_size().await.map_err(to_io)
    }
}

impl Drop for DmaHandle {
    fn drop(&mut self) {
        // The last handle closes the file without blocking the reactor.
        if Rc::strong_count(&self.file) == 1 {
            let file = self.file.clone();
            glommio::spawn_local(async move {
                let _ = file.close_rc().await;
            })
            .detach();
        }
    }
}

impl Storage for DmaStorage {
    type File = DmaHandle;

    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<DmaHandle> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        if mode == OpenMode::CreateOrOpen {
            opts.create(true);
        }
        let file = opts.dma_open(path).await.map_err(to_io)?;
        Ok(DmaHandle {
            file: Rc::new(file),
        })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        blocking(move || std::fs::create_dir_all(path)).await
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        // glommio resolves relative directory paths against no directory fd (EBADF).
        let path = std::path::absolute(path)?;
        let dir = glommio::io::Directory::open(&path).await.map_err(to_io)?;
        dir.sync().await.map_err(to_io)?;
        dir.close().await.map_err(to_io)
    }

    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = dir.to_path_buf();
        blocking(move || {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(dir)? {
                if let Some(name) = entry?.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
            Ok(names)
        })
        .await
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        glommio::io::remove(path).await.map_err(to_io)
    }

    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        blocking(move || std::fs::remove_dir_all(path)).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        glommio::io::rename(from, to).await.map_err(to_io)
    }
}

/// Directory-tree work has no io_uring op in glommio; run it on glommio's blocking pool so
/// the reactor never blocks.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> io::Result<R> + Send + 'static,
) -> io::Result<R> {
    glommio::executor().spawn_blocking(f).await
}

/// Works around glommio 0.9's per-device IOPOLL probe: it reads one block of the first DMA
/// file opened on a device and, if that file is empty, wrongly caches "supported", after
/// which every DMA read on the device fails with EOPNOTSUPP. Opening and reading one aligned
/// block of a non-empty file on the data directory's device first avoids it. Call on every
/// shard before any segment is opened. The probe file is written with std::fs at start-up,
/// before the shards serve anything.
pub fn write_probe_file(data_dir: &Path) -> io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join(".sluice-device-probe");
    let ok = std::fs::metadata(&path)
        .map(|m| m.len() >= super::IO_ALIGNMENT_BYTES as u64)
        .unwrap_or(false);
    if !ok {
        std::fs::write(&path, vec![0x5a; super::IO_ALIGNMENT_BYTES])?;
    }
    Ok(path)
}

/// Shard-side half of the probe work-around: open and read the probe file with DMA.
pub async fn prime_device_probe(probe_file: &Path) -> io::Result<()> {
    let file = DmaFile::open(probe_file).await.map_err(to_io)?;
    let read = file
        .read_at_aligned(0, super::IO_ALIGNMENT_BYTES)
        .await
        .map_err(to_io)?;
    if read.len() != super::IO_ALIGNMENT_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "device probe file is short",
        ));
    }
    file.close().await.map_err(to_io)
}
