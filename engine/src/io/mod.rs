//! The storage the log writes through. Two implementations:
//! - [`dma::DmaStorage`]: glommio DMA files (O_DIRECT, io_uring) - production.
//! - [`sim::SimStorage`]: in-memory files that keep a durable and a volatile image and can
//!   "crash", dropping unsynced writes and tearing the last sector - crash tests.
//!
//! Positions and lengths passed to `write_at` are multiples of [`IO_ALIGNMENT_BYTES`];
//! reads may be unaligned (the implementation widens them).
#![allow(async_fn_in_trait)]

use std::io;
use std::ops::Deref;
use std::path::Path;

pub mod dma;
pub mod sim;

pub use crate::limits::IO_ALIGNMENT_BYTES;

/// A write buffer suitable for the file it was allocated for (aligned for O_DIRECT).
pub trait WriteBuf {
    fn bytes(&self) -> &[u8];
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Shrinks the buffer to its first `len` bytes (an aligned length).
    fn shrink_to(&mut self, len: usize);
}

impl WriteBuf for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
    fn shrink_to(&mut self, len: usize) {
        self.truncate(len);
    }
}

impl WriteBuf for glommio::io::DmaBuffer {
    fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.as_bytes_mut()
    }
    fn shrink_to(&mut self, len: usize) {
        self.trim_to_size(len);
    }
}

/// One open file. Contract of each call:
/// - `write_at` resolves when the bytes are written to the device (not durable).
/// - `sync` resolves when everything written before it is durable (fdatasync).
pub trait StorageFile: 'static {
    type Buf: WriteBuf;
    type ReadBuf: Deref<Target = [u8]> + Clone;

    /// A buffer of `len` bytes (`len` a multiple of the alignment). Its contents are
    /// unspecified: the caller writes or zeroes every byte it hands to `write_at`.
    fn alloc_buffer(&self, len: usize) -> Self::Buf;
    /// Writes the whole buffer at `pos`; both aligned.
    async fn write_at(&self, buf: Self::Buf, pos: u64) -> io::Result<usize>;
    /// Reads up to `len` bytes at `pos`; shorter only at end of file.
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Self::ReadBuf>;
    async fn sync(&self) -> io::Result<()>;
    /// Reserves space up to `len` bytes (file size becomes at least `len`).
    async fn preallocate(&self, len: u64) -> io::Result<()>;
    async fn truncate(&self, len: u64) -> io::Result<()>;
    async fn size(&self) -> io::Result<u64>;
}

/// How a file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create it, or open it if it exists, for reading and writing.
    CreateOrOpen,
    /// It must exist.
    Existing,
}

/// A file system the log can live on.
pub trait Storage: Clone + 'static {
    type File: StorageFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Self::File>;
    async fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (created, renamed, removed files) durable.
    async fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// File names (not paths) in `dir`.
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    async fn remove_file(&self, path: &Path) -> io::Result<()>;
    async fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
}

pub fn align_up(v: u64) -> u64 {
    let a = IO_ALIGNMENT_BYTES as u64;
    v.div_ceil(a) * a
}

pub fn align_down(v: u64) -> u64 {
    let a = IO_ALIGNMENT_BYTES as u64;
    v - v % a
}
