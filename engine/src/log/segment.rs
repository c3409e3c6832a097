//! One segment: a preallocated DMA file of frames plus its in-memory index.
//!
//! Owned by the shard that owns the partition; only that shard's tasks touch it.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use crate::batch::BatchView;
use crate::frame::{FrameError, FrameHeader, FRAME_HEADER_BYTES};
use crate::ids::Offset;
use crate::io::StorageFile;
use crate::log::index::SegmentIndex;

/// Bytes read per request while scanning a segment on recovery.
pub const SCAN_WINDOW_BYTES: usize = 8 * 1024 * 1024;

pub fn log_file_name(base: Offset) -> String {
    format!("{:020}.log", base.0)
}

pub fn index_file_name(base: Offset) -> String {
    format!("{:020}.index", base.0)
}

/// Parses `<20 digits>.log`.
pub fn parse_log_file_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().map(Offset)
}

/// Mutable state of a segment. `written <= size`: `size` counts frames copied into write
/// chunks, `written` the prefix that is on the device and visible to readers.
#[derive(Debug)]
pub struct SegmentState {
    pub size: u64,
    pub written: u64,
    /// Exclusive end offset of the frames assigned to this segment.
    pub next_offset: Offset,
    pub index: SegmentIndex,
    pub created_ms: i64,
    pub sealed: bool,
    /// Bytes of the file reserved with fallocate so far.
    pub preallocated: u64,
    /// Bytes `[align_down(size), size)` when no pending chunk holds them: the partial block
    /// the next write must rewrite.
    pub tail_block: Vec<u8>,
}

pub struct Segment<F: StorageFile> {
    pub base_offset: Offset,
    pub file: F,
    pub log_path: PathBuf,
    pub index_path: PathBuf,
    pub st: RefCell<SegmentState>,
}

impl<F: StorageFile> Segment<F> {
    pub fn new(dir: &Path, base_offset: Offset, file: F, created_ms: i64) -> Self {
        Segment {
            base_offset,
            file,
            log_path: dir.join(log_file_name(base_offset)),
            index_path: dir.join(index_file_name(base_offset)),
            st: RefCell::new(SegmentState {
                size: 0,
                written: 0,
                next_offset: base_offset,
                index: SegmentIndex::new(),
                created_ms,
                sealed: false,
                preallocated: 0,
                tail_block: Vec::new(),
            }),
        }
    }

    pub fn size(&self) -> u64 {
        self.st.borrow().size
    }
}

/// Result of scanning a segment's frames from the start.
#[derive(Debug)]
pub struct ScanOutcome {
    pub index: SegmentIndex,
    /// Bytes of valid frames from position 0.
    pub valid_bytes: u64,
    pub next_offset: Offset,
    /// Why the scan stopped before the end of the file, if it did on something that is not
    /// zeroed space (a torn or corrupt frame).
    pub stopped_on: Option<String>,
    /// Idempotent-producer state of the valid frames (the last five batches per producer).
    pub producers: crate::log::producers::ProducerState,
}

/// Scan reads kept in flight at once: the device streams while the CPU checks CRCs.
pub const SCAN_READS_IN_FLIGHT: usize = 4;

/// What to do with one frame found by the scan.
enum Step {
    /// A valid frame of this many bytes.
    Frame(usize),
    /// Not enough bytes yet to decide.
    NeedMore,
    /// Zeroed space: the end of the written data.
    End,
    /// A torn or corrupt frame.
    Bad(String),
}

/// Reads every frame from the start, checking header CRC, batch prefix CRC, Kafka's batch
/// CRC and offset continuity; stops at the first frame that fails (a torn tail, or the
/// zeroed preallocated space) and reports the valid prefix. Reads ahead in
/// `SCAN_WINDOW_BYTES` windows, `SCAN_READS_IN_FLIGHT` at a time.
pub async fn scan_segment<F: StorageFile>(
    file: &F,
    base_offset: Offset,
    index_interval_bytes: u64,
) -> std::io::Result<ScanOutcome> {
    scan_segment_in_windows(file, base_offset, index_interval_bytes, SCAN_WINDOW_BYTES).await
}

/// [`scan_segment`] with a chosen read window (aligned), so tests can make frames straddle
/// windows.
pub async fn scan_segment_in_windows<F: StorageFile>(
    file: &F,
    base_offset: Offset,
    index_interval_bytes: u64,
    window_bytes: usize,
) -> std::io::Result<ScanOutcome> {
    use futures_util::stream::{self, StreamExt};

    let file_size = file.size().await?;
    let mut index = SegmentIndex::new();
    let mut pos = 0u64;
    let mut next = base_offset;
    let mut stopped_on = None;
    let mut producers = crate::log::producers::ProducerState::default();
    // Bytes of a frame that started in an earlier window (at file position `pos`).
    let mut carry: Vec<u8> = Vec::new();
    assert!(
        window_bytes > 0 && window_bytes.is_multiple_of(crate::limits::IO_ALIGNMENT_BYTES),
        "scan window must be aligned"
    );
    let window = window_bytes as u64;
    let windows = file_size.div_ceil(window);
    let mut reads = stream::iter(0..windows)
        .map(|k| {
            let at = k * window;
            file.read_at(at, window.min(file_size - at) as usize)
        })
        .buffered(SCAN_READS_IN_FLIGHT);
    let check = |bytes: &[u8],
                 pos: u64,
                 next: &mut Offset,
                 index: &mut SegmentIndex,
                 producers: &mut crate::log::producers::ProducerState|
     -> Step {
        if bytes.len() < FRAME_HEADER_BYTES {
            return Step::NeedMore;
        }
        let header = match FrameHeader::decode(bytes) {
            Ok(h) => h,
            Err(FrameError::HeaderCrc) if bytes[..FRAME_HEADER_BYTES].iter().all(|b| *b == 0) => {
                return Step::End
            }
            Err(e) => return Step::Bad(format!("frame header at {pos}: {e}")),
        };
        let frame_bytes = header.frame_bytes();
        if pos + frame_bytes as u64 > file_size {
            return Step::Bad(format!("frame at {pos} runs past the end of the file"));
        }
        if bytes.len() < frame_bytes {
            return Step::NeedMore;
        }
        match check_frame(&header, &bytes[FRAME_HEADER_BYTES..frame_bytes], *next) {
            Ok(view) => producers.record(&view),
            Err(e) => return Step::Bad(format!("frame at {pos}: {e}")),
        }
        index.on_append(
            base_offset,
            Offset(header.base_offset),
            Offset(header.last_offset()),
            pos,
            frame_bytes as u64,
            header.max_timestamp,
            index_interval_bytes,
        );
        *next = Offset(header.last_offset() + 1);
        Step::Frame(frame_bytes)
    };
    'windows: while let Some(block) = reads.next().await {
        let block = block?;
        let mut at = 0usize;
        // Finish a frame that straddles the previous window, taking only the bytes it needs.
        while !carry.is_empty() {
            let need = if carry.len() < FRAME_HEADER_BYTES {
                FRAME_HEADER_BYTES - carry.len()
            } else {
                match FrameHeader::decode(&carry) {
                    Ok(h) => h.frame_bytes().saturating_sub(carry.len()),
                    Err(_) => 0,
                }
            };
            let take = need.min(block.len() - at);
            carry.extend_from_slice(&block[at..at + take]);
            at += take;
            match check(&carry, pos, &mut next, &mut index, &mut producers) {
                Step::Frame(n) => {
                    debug_assert_eq!(n, carry.len());
                    pos += n as u64;
                    carry.clear();
                }
                Step::NeedMore if at == block.len() => continue 'windows,
                Step::NeedMore => {}
                Step::End => break 'windows,
                Step::Bad(why) => {
                    stopped_on = Some(why);
                    break 'windows;
                }
            }
        }
        loop {
            match check(&block[at..], pos, &mut next, &mut index, &mut producers) {
                Step::Frame(n) => {
                    pos += n as u64;
                    at += n;
                }
                Step::NeedMore => {
                    carry.extend_from_slice(&block[at..]);
                    continue 'windows;
                }
                Step::End => break 'windows,
                Step::Bad(why) => {
                    stopped_on = Some(why);
                    break 'windows;
                }
            }
        }
    }
    if !carry.is_empty() && stopped_on.is_none() && !carry.iter().all(|b| *b == 0) {
        stopped_on = Some(format!(
            "frame at {pos} is cut short by the end of the file"
        ));
    }
    Ok(ScanOutcome {
        index,
        valid_bytes: pos,
        next_offset: next,
        stopped_on,
        producers,
    })
}

fn check_frame<'a>(
    header: &FrameHeader,
    batch: &'a [u8],
    expected: Offset,
) -> Result<BatchView<'a>, String> {
    header.check_batch(batch).map_err(|e| e.to_string())?;
    // Offsets only grow; compaction leaves gaps between batches (never overlaps).
    if header.base_offset < expected.0 {
        return Err(format!(
            "base offset {} where at least {} was expected",
            header.base_offset, expected.0
        ));
    }
    let view = BatchView::parse_checked(batch).map_err(|e| e.to_string())?;
    if view.last_offset_delta() != header.last_offset_delta {
        return Err("last offset delta differs from the frame header".into());
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build, stamp, TimestampStamp};
    use crate::ids::LeaderEpoch;
    use crate::io::sim::SimStorage;
    use crate::io::{OpenMode, Storage};
    use futures_lite::future::block_on;
    use proptest::prelude::*;

    /// Writes frames of the given batch sizes back to back into a sim file.
    fn segment_with(sizes: &[usize], tail_garbage: &[u8]) -> (crate::io::sim::SimFile, u64, i64) {
        let storage = SimStorage::new();
        block_on(storage.create_dir_all(Path::new("/s"))).expect("dir");
        let file =
            block_on(storage.open(Path::new("/s/0.log"), OpenMode::CreateOrOpen)).expect("open");
        let mut bytes = Vec::new();
        let mut next = 0i64;
        for (i, size) in sizes.iter().enumerate() {
            let mut b = build::batch(1 + i % 3, *size, i as u8, 0);
            stamp(
                &mut b,
                Offset(next),
                LeaderEpoch(0),
                TimestampStamp::CreateTime,
            );
            let view = BatchView::parse(&b).expect("batch");
            next = view.last_offset().0 + 1;
            let mut head = [0u8; FRAME_HEADER_BYTES];
            FrameHeader::for_batch(&view).encode_into(&mut head);
            bytes.extend_from_slice(&head);
            bytes.extend_from_slice(&b);
        }
        let valid = bytes.len() as u64;
        bytes.extend_from_slice(tail_garbage);
        let len = crate::io::align_up(bytes.len() as u64 + 1) as usize;
        bytes.resize(len, 0);
        block_on(crate::io::StorageFile::write_at(&file, bytes, 0)).expect("write");
        (file, valid, next)
    }

    proptest! {
        #[test]
        fn scan_finds_every_frame_whatever_the_window(
            sizes in proptest::collection::vec(0usize..20_000, 1..40),
            window_blocks in 1usize..6,
        ) {
            let (file, valid, next) = segment_with(&sizes, &[]);
            let small = block_on(scan_segment_in_windows(&file, Offset(0), 4096, window_blocks * 4096)).expect("scan");
            prop_assert_eq!(small.valid_bytes, valid);
            prop_assert_eq!(small.next_offset, Offset(next));
            prop_assert!(small.stopped_on.is_none());
            let big = block_on(scan_segment(&file, Offset(0), 4096)).expect("scan");
            prop_assert_eq!(big.index.offsets, small.index.offsets);
        }

        #[test]
        fn scan_stops_at_garbage_after_the_last_frame(
            sizes in proptest::collection::vec(0usize..9_000, 1..10),
            garbage in proptest::collection::vec(1u8..=255, 41..200),
        ) {
            let (file, valid, next) = segment_with(&sizes, &garbage);
            let out = block_on(scan_segment_in_windows(&file, Offset(0), 4096, 4096)).expect("scan");
            prop_assert_eq!(out.valid_bytes, valid);
            prop_assert_eq!(out.next_offset, Offset(next));
            prop_assert!(out.stopped_on.is_some());
        }
    }

    #[test]
    fn log_file_names_round_trip() {
        assert_eq!(log_file_name(Offset(42)), "00000000000000000042.log");
        assert_eq!(
            parse_log_file_name("00000000000000000042.log"),
            Some(Offset(42))
        );
        assert_eq!(parse_log_file_name("42.log"), None);
        assert_eq!(parse_log_file_name("00000000000000000042.index"), None);
    }
}
