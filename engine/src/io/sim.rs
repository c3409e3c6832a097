//! In-memory storage with a crash model, for crash tests.
//!
//! Each file keeps a durable image plus the writes issued since its last sync. A crash
//! keeps the durable image and, per the crash mode, drops every unsynced write or lets each
//! land whole, torn (some sectors, the last partially) or not at all, in any order. Metadata operations (create, truncate, rename, remove, preallocate) are modelled as
//! immediately durable - a simplification noted here because real ext4 needs a directory
//! sync for them, which the log issues anyway.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{OpenMode, Storage, StorageFile, IO_ALIGNMENT_BYTES};

/// Size of a "sector" for tearing: the unit the device writes atomically.
pub const SIM_SECTOR_BYTES: usize = 512;

#[derive(Default)]
struct SimFileState {
    durable: Vec<u8>,
    unsynced: Vec<(u64, Vec<u8>)>,
}

impl SimFileState {
    fn current(&self) -> Vec<u8> {
        let mut img = self.durable.clone();
        for (pos, data) in &self.unsynced {
            apply(&mut img, *pos, data);
        }
        img
    }
}

fn apply(img: &mut Vec<u8>, pos: u64, data: &[u8]) {
    let end = pos as usize + data.len();
    if img.len() < end {
        img.resize(end, 0);
    }
    img[pos as usize..end].copy_from_slice(data);
}

#[derive(Default)]
struct SimFs {
    files: BTreeMap<PathBuf, Rc<RefCell<SimFileState>>>,
    dirs: std::collections::BTreeSet<PathBuf>,
    /// Fail every write after this many more writes (None: never).
    writes_until_failure: Option<u64>,
    syncs: u64,
}

/// A shared in-memory file system. Clones see the same files.
#[derive(Clone, Default)]
pub struct SimStorage {
    fs: Rc<RefCell<SimFs>>,
}

/// One open in-memory file.
#[derive(Clone)]
pub struct SimFile {
    state: Rc<RefCell<SimFileState>>,
    fs: Rc<RefCell<SimFs>>,
}

/// How a crash treats the unsynced tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write is lost.
    DropUnsynced,
    /// Each unsynced write lands whole, torn at a sector boundary (the last landed sector
    /// partially written), or not at all, independently of the others.
    TearTail,
}

impl SimStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates power loss: every file reverts to its durable image plus what `mode` lets
    /// through. Open handles keep working on the new images (as if reopened after reboot).
    pub fn crash(&self, seed: u64, mode: CrashMode) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let fs = self.fs.borrow();
        for file in fs.files.values() {
            let mut f = file.borrow_mut();
            let unsynced = std::mem::take(&mut f.unsynced);
            if mode == CrashMode::TearTail {
                // Writes in flight together complete in any order: each unsynced write lands
                // whole, lands torn (some sectors, the last one partially), or not at all.
                for (pos, data) in &unsynced {
                    match rng.gen_range(0..3) {
                        0 => {}
                        1 => apply(&mut f.durable, *pos, data),
                        _ => {
                            let sectors = data.len().div_ceil(SIM_SECTOR_BYTES);
                            let whole = rng.gen_range(0..sectors);
                            let partial = rng.gen_range(0..SIM_SECTOR_BYTES);
                            let end = (whole * SIM_SECTOR_BYTES + partial).min(data.len());
                            apply(&mut f.durable, *pos, &data[..end]);
                        }
                    }
                }
            }
        }
    }

    /// Makes every write after the next `n` fail with an I/O error.
    pub fn fail_writes_after(&self, n: u64) {
        self.fs.borrow_mut().writes_until_failure = Some(n);
    }

    /// The current (post-crash or live) image of a file, for assertions.
    pub fn file_image(&self, path: &Path) -> Option<Vec<u8>> {
        self.fs
            .borrow()
            .files
            .get(path)
            .map(|f| f.borrow().current())
    }

    /// Overwrites bytes of a file's durable image directly: bit rot for tests.
    pub fn corrupt(&self, path: &Path, pos: usize, bytes: &[u8]) {
        if let Some(f) = self.fs.borrow().files.get(path) {
            let mut f = f.borrow_mut();
            let mut img = f.current();
            f.unsynced.clear();
            apply(&mut img, pos as u64, bytes);
            f.durable = img;
        }
    }

    /// fdatasyncs issued on any file so far.
    pub fn sync_count(&self) -> u64 {
        self.fs.borrow().syncs
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        self.fs.borrow().files.keys().cloned().collect()
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl StorageFile for SimFile {
    type Buf = Vec<u8>;
    type ReadBuf = Rc<[u8]>;

    fn alloc_buffer(&self, len: usize) -> Vec<u8> {
        vec![0u8; len]
    }

    async fn write_at(&self, buf: Vec<u8>, pos: u64) -> io::Result<usize> {
        assert_eq!(
            pos % IO_ALIGNMENT_BYTES as u64,
            0,
            "unaligned O_DIRECT write position"
        );
        assert_eq!(
            buf.len() % IO_ALIGNMENT_BYTES,
            0,
            "unaligned O_DIRECT write length"
        );
        {
            let mut fs = self.fs.borrow_mut();
            if let Some(n) = fs.writes_until_failure.as_mut() {
                if *n == 0 {
                    return Err(io::Error::other("injected write failure"));
                }
                *n -= 1;
            }
        }
        let len = buf.len();
        self.state.borrow_mut().unsynced.push((pos, buf));
        // Model device latency: other tasks run while the write is in flight.
        futures_lite::future::yield_now().await;
        Ok(len)
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Rc<[u8]>> {
        let f = self.state.borrow();
        let size = f
            .unsynced
            .iter()
            .fold(f.durable.len(), |n, (p, d)| n.max(*p as usize + d.len()));
        let start = (pos as usize).min(size);
        let end = (pos as usize + len).min(size);
        let mut out = vec![0u8; end - start];
        let durable_end = end.min(f.durable.len());
        if start < durable_end {
            out[..durable_end - start].copy_from_slice(&f.durable[start..durable_end]);
        }
        for (p, d) in &f.unsynced {
            let (ws, we) = (*p as usize, *p as usize + d.len());
            let (s, e) = (ws.max(start), we.min(end));
            if s < e {
                out[s - start..e - start].copy_from_slice(&d[s - ws..e - ws]);
            }
        }
        Ok(Rc::from(out))
    }

    async fn sync(&self) -> io::Result<()> {
        futures_lite::future::yield_now().await;
        self.fs.borrow_mut().syncs += 1;
        let mut f = self.state.borrow_mut();
        let unsynced = std::mem::take(&mut f.unsynced);
        for (pos, data) in unsynced {
            apply(&mut f.durable, pos, &data);
        }
        Ok(())
    }

    async fn preallocate(&self, len: u64) -> io::Result<()> {
        let mut f = self.state.borrow_mut();
        if (f.durable.len() as u64) < len {
            f.durable.resize(len as usize, 0);
        }
        Ok(())
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        let mut f = self.state.borrow_mut();
        let mut img = f.current();
        img.resize(len as usize, 0);
        f.unsynced.clear();
        f.durable = img;
        Ok(())
    }

    async fn size(&self) -> io::Result<u64> {
        let f = self.state.borrow();
        Ok(f.unsynced
            .iter()
            .fold(f.durable.len(), |n, (p, d)| n.max(*p as usize + d.len())) as u64)
    }
}

impl Storage for SimStorage {
    type File = SimFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<SimFile> {
        let mut fs = self.fs.borrow_mut();
        let state = match (fs.files.get(path), mode) {
            (Some(s), _) => s.clone(),
            (None, OpenMode::Existing) => return Err(not_found(path)),
            (None, OpenMode::CreateOrOpen) => {
                let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
                if !fs.dirs.contains(&parent) {
                    return Err(not_found(&parent));
                }
                let s = Rc::new(RefCell::new(SimFileState::default()));
                fs.files.insert(path.to_path_buf(), s.clone());
                s
            }
        };
        Ok(SimFile {
            state,
            fs: self.fs.clone(),
        })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut fs = self.fs.borrow_mut();
        for ancestor in path.ancestors() {
            fs.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        // A metadata operation is I/O too: other tasks (and a test's crash) can come between.
        futures_lite::future::yield_now().await;
        if self.fs.borrow().dirs.contains(path) {
            Ok(())
        } else {
            Err(not_found(path))
        }
    }

    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let fs = self.fs.borrow();
        if !fs.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(fs
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
            .collect())
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        // A metadata operation is I/O too: other tasks (and a test's crash) can come between.
        futures_lite::future::yield_now().await;
        self.fs
            .borrow_mut()
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut fs = self.fs.borrow_mut();
        fs.files.retain(|p, _| !p.starts_with(path));
        fs.dirs.retain(|p| !p.starts_with(path));
        Ok(())
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        // A metadata operation is I/O too: other tasks (and a test's crash) can come between.
        futures_lite::future::yield_now().await;
        let mut fs = self.fs.borrow_mut();
        let f = fs.files.remove(from).ok_or_else(|| not_found(from))?;
        fs.files.insert(to.to_path_buf(), f);
        Ok(())
    }
}
