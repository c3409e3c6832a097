//! Small metadata files (index archives, checkpoints) written through the storage trait:
//! one aligned write of `[len u64 LE][payload][zero padding]`, then fdatasync. Payloads carry
//! their own checksums, so a torn file is detected by its reader.

use std::io;
use std::path::Path;

use crate::io::{align_up, OpenMode, Storage, StorageFile, WriteBuf};

/// Largest small file we read back (an index of a max-size segment fits comfortably).
pub const SMALL_FILE_BYTES_MAX: usize = 64 * 1024 * 1024;

pub async fn write_small_file<S: Storage>(
    storage: &S,
    path: &Path,
    payload: &[u8],
) -> io::Result<()> {
    let file = storage.open(path, OpenMode::CreateOrOpen).await?;
    let total = align_up((8 + payload.len()) as u64) as usize;
    let mut buf = file.alloc_buffer(total);
    {
        let bytes = buf.bytes_mut();
        bytes[..8].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes[8..8 + payload.len()].copy_from_slice(payload);
        bytes[8 + payload.len()..].fill(0);
    }
    file.truncate(0).await?;
    file.write_at(buf, 0).await?;
    file.sync().await
}

/// Writes to a temporary name, syncs, renames over `path` and syncs the directory: the file
/// is either the old or the new version after a crash.
pub async fn replace_small_file<S: Storage>(
    storage: &S,
    path: &Path,
    payload: &[u8],
) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    write_small_file(storage, &tmp, payload).await?;
    storage.rename(&tmp, path).await?;
    if let Some(dir) = path.parent() {
        storage.sync_dir(dir).await?;
    }
    Ok(())
}

/// `Ok(None)` when the file does not exist or is shorter than its length prefix says.
pub async fn read_small_file<S: Storage>(storage: &S, path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = match storage.open(path, OpenMode::Existing).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let size = file.size().await? as usize;
    if size < 8 {
        return Ok(None);
    }
    let head = file.read_at(0, 8).await?;
    let mut len = [0u8; 8];
    len.copy_from_slice(&head[..8]);
    let len = u64::from_le_bytes(len) as usize;
    if len > SMALL_FILE_BYTES_MAX || 8 + len > size {
        return Ok(None);
    }
    let body = file.read_at(8, len).await?;
    if body.len() != len {
        return Ok(None);
    }
    Ok(Some(body.to_vec()))
}
