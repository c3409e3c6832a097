//! One segment: a preallocated DMA file of frames plus its in-memory index.
//!
//! Owned by the shard that owns the partition; only that shard's tasks touch it.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use crate::batch::BatchView;
use crate::frame::{FrameError, FrameHeader, FRAME_HEADER_BYTES};
use crate::ids::Offset;
use crate::io::{align_down, StorageFile};
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
}

/// Reads every frame from the start, checking header CRC, batch prefix CRC, Kafka's batch
/// CRC and offset continuity; stops at the first frame that fails (a torn tail, or the
/// zeroed preallocated space) and reports the valid prefix.
pub async fn scan_segment<F: StorageFile>(
    file: &F,
    base_offset: Offset,
    index_interval_bytes: u64,
) -> std::io::Result<ScanOutcome> {
    let file_size = file.size().await?;
    let mut index = SegmentIndex::new();
    let mut pos = 0u64;
    let mut next = base_offset;
    let mut stopped_on = None;
    'outer: while pos < file_size {
        let window_start = align_down(pos);
        let want = (SCAN_WINDOW_BYTES as u64).min(file_size - window_start) as usize;
        let window = file.read_at(window_start, want).await?;
        let mut at = (pos - window_start) as usize;
        loop {
            let rest = &window[at.min(window.len())..];
            if rest.len() < FRAME_HEADER_BYTES {
                if window_start + window.len() as u64 >= file_size {
                    break 'outer;
                }
                break;
            }
            let header = match FrameHeader::decode(rest) {
                Ok(h) => h,
                Err(FrameError::HeaderCrc)
                    if rest[..FRAME_HEADER_BYTES].iter().all(|b| *b == 0) =>
                {
                    break 'outer
                }
                Err(e) => {
                    stopped_on = Some(format!("frame header at {pos}: {e}"));
                    break 'outer;
                }
            };
            let frame_bytes = header.frame_bytes();
            if rest.len() < frame_bytes {
                if pos + frame_bytes as u64 > file_size {
                    stopped_on = Some(format!("frame at {pos} runs past the end of the file"));
                    break 'outer;
                }
                if at == 0 && frame_bytes > window.len() {
                    // A frame larger than the window: read it whole.
                    let whole = file.read_at(pos, frame_bytes).await?;
                    if let Err(e) = check_frame(&header, &whole[FRAME_HEADER_BYTES..], next) {
                        stopped_on = Some(format!("frame at {pos}: {e}"));
                        break 'outer;
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
                    next = Offset(header.last_offset() + 1);
                    pos += frame_bytes as u64;
                }
                break;
            }
            if let Err(e) = check_frame(&header, &rest[FRAME_HEADER_BYTES..frame_bytes], next) {
                stopped_on = Some(format!("frame at {pos}: {e}"));
                break 'outer;
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
            next = Offset(header.last_offset() + 1);
            pos += frame_bytes as u64;
            at += frame_bytes;
        }
    }
    Ok(ScanOutcome {
        index,
        valid_bytes: pos,
        next_offset: next,
        stopped_on,
    })
}

fn check_frame(header: &FrameHeader, batch: &[u8], expected: Offset) -> Result<(), String> {
    header.check_batch(batch).map_err(|e| e.to_string())?;
    if header.base_offset != expected.0 {
        return Err(format!(
            "base offset {} where {} was expected",
            header.base_offset, expected.0
        ));
    }
    let view = BatchView::parse_checked(batch).map_err(|e| e.to_string())?;
    if view.last_offset_delta() != header.last_offset_delta {
        return Err("last offset delta differs from the frame header".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
