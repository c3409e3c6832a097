//! Reusable request-frame buffers. A fresh heap buffer per frame costs a page fault and a
//! kernel page clear per 4 KiB (most of the broker's produce CPU before this pool); a pooled
//! one is already mapped and initialised, so a frame costs only the socket copy. A frame
//! is handed out as `Bytes` that returns its buffer to the pool when the last reference
//! (say, the engine's append) drops it. Broker-wide per shard; `Send` because `Bytes` is.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::limits::{
    FRAME_BUFFERS_POOLED_MAX, FRAME_BUFFER_BYTES_MIN, FRAME_BUFFER_POOLED_BYTES_MAX,
};

#[derive(Clone, Default)]
pub struct BufferPool {
    free: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPool").finish_non_exhaustive()
    }
}

/// A buffer on loan: filled by the reader, then frozen into `Bytes`.
pub struct Loan {
    buf: Vec<u8>,
    len: usize,
    pool: BufferPool,
}

impl BufferPool {
    /// A buffer of at least `len` initialised bytes, from the pool when one fits.
    pub fn take(&self, len: usize) -> Loan {
        let reused = if len <= FRAME_BUFFER_POOLED_BYTES_MAX {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            free.iter()
                .position(|b| b.len() >= len)
                .map(|i| free.swap_remove(i))
        } else {
            None
        };
        let buf = reused.unwrap_or_else(|| vec![0u8; len.max(FRAME_BUFFER_BYTES_MIN)]);
        Loan {
            buf,
            len,
            pool: self.clone(),
        }
    }

    fn give_back(&self, buf: Vec<u8>) {
        if buf.len() > FRAME_BUFFER_POOLED_BYTES_MAX {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < FRAME_BUFFERS_POOLED_MAX {
            free.push(buf);
        }
    }

    #[cfg(test)]
    fn pooled(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }
}

impl Loan {
    /// The `len` bytes to fill.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// The filled frame; the buffer goes back to the pool when the last clone drops.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for Loan {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.pool.give_back(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_the_last_reference_drops() {
        let pool = BufferPool::default();
        let mut loan = pool.take(10);
        loan.bytes_mut().copy_from_slice(b"0123456789");
        let frame = loan.freeze();
        let slice = frame.slice(2..4);
        drop(frame);
        assert_eq!(pool.pooled(), 0, "a slice still holds the buffer");
        assert_eq!(&slice[..], b"23");
        drop(slice);
        assert_eq!(pool.pooled(), 1);
        let again = pool.take(100);
        assert_eq!(again.as_ref().len(), 100);
        assert_eq!(pool.pooled(), 0, "reused");
    }

    #[test]
    fn huge_buffers_are_not_kept() {
        let pool = BufferPool::default();
        drop(pool.take(FRAME_BUFFER_POOLED_BYTES_MAX + 1).freeze());
        assert_eq!(pool.pooled(), 0);
    }
}
