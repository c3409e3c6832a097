//! Kafka request framing: a big-endian i32 size, then that many bytes. The size is checked
//! against `socket.request.max.bytes` before a single byte of the body is allocated.

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncReadExt};

use crate::buffer_pool::BufferPool;
use crate::limits::REQUEST_HEADER_BYTES_MIN;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("request frame of {size} bytes exceeds socket.request.max.bytes {max}")]
    TooLarge { size: i64, max: usize },
    #[error("request frame of {size} bytes is shorter than a request header")]
    TooSmall { size: i64 },
    #[error("connection closed in the middle of a frame")]
    Truncated {
        #[source]
        source: std::io::Error,
    },
    #[error("socket read failed")]
    Io {
        #[source]
        source: std::io::Error,
    },
}

/// Reads the size prefix of the next frame. `Ok(None)` is a clean end of stream (the peer
/// closed between frames). The returned size is within `REQUEST_HEADER_BYTES_MIN..=max`.
pub async fn read_frame_size<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<usize>, FrameError> {
    let mut size_bytes = [0u8; 4];
    let mut have = 0;
    while have < size_bytes.len() {
        let n = reader
            .read(&mut size_bytes[have..])
            .await
            .map_err(|source| FrameError::Io { source })?;
        if n == 0 {
            if have == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
        have += n;
    }
    check_frame_size(i32::from_be_bytes(size_bytes), max).map(Some)
}

/// The bound check on its own, so tests and the fuzz target can reach it without a socket.
pub fn check_frame_size(size: i32, max: usize) -> Result<usize, FrameError> {
    let size = i64::from(size);
    if size < REQUEST_HEADER_BYTES_MIN as i64 {
        return Err(FrameError::TooSmall { size });
    }
    if size > max as i64 {
        return Err(FrameError::TooLarge { size, max });
    }
    Ok(size as usize)
}

/// Reads exactly `size` body bytes (a size from [`read_frame_size`], already bounded) into
/// a buffer from `pool`.
pub async fn read_frame_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    size: usize,
    pool: &BufferPool,
) -> Result<Bytes, FrameError> {
    let mut body = pool.take(size);
    reader
        .read_exact(body.bytes_mut())
        .await
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::UnexpectedEof {
                FrameError::Truncated { source }
            } else {
                FrameError::Io { source }
            }
        })?;
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn reads_back_to_back_frames_then_clean_eof() {
        let mut wire = frame(b"0123456789");
        wire.extend(frame(b"abcdefgh"));
        let mut r = &wire[..];
        block_on(async {
            let n = read_frame_size(&mut r, 100)
                .await
                .expect("ok")
                .expect("frame");
            assert_eq!(
                &read_frame_body(&mut r, n, &BufferPool::default())
                    .await
                    .expect("body")[..],
                b"0123456789"
            );
            let n = read_frame_size(&mut r, 100)
                .await
                .expect("ok")
                .expect("frame");
            assert_eq!(
                &read_frame_body(&mut r, n, &BufferPool::default())
                    .await
                    .expect("body")[..],
                b"abcdefgh"
            );
            assert!(read_frame_size(&mut r, 100).await.expect("ok").is_none());
        });
    }

    #[test]
    fn oversized_size_is_refused_before_reading_the_body() {
        let wire = i32::MAX.to_be_bytes();
        let mut r = &wire[..];
        let err = block_on(read_frame_size(&mut r, 1024)).expect_err("too large");
        assert!(
            matches!(err, FrameError::TooLarge { size, max: 1024 } if size == i64::from(i32::MAX))
        );
    }

    #[test]
    fn negative_and_tiny_sizes_are_refused() {
        assert!(matches!(
            check_frame_size(-1, 1024),
            Err(FrameError::TooSmall { .. })
        ));
        assert!(matches!(
            check_frame_size(0, 1024),
            Err(FrameError::TooSmall { .. })
        ));
        assert!(matches!(
            check_frame_size(7, 1024),
            Err(FrameError::TooSmall { .. })
        ));
        assert_eq!(check_frame_size(8, 1024).expect("min ok"), 8);
        assert_eq!(check_frame_size(1024, 1024).expect("max ok"), 1024);
        assert!(matches!(
            check_frame_size(1025, 1024),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn truncated_body_and_truncated_size_are_errors() {
        let wire = frame(b"0123456789");
        let mut r = &wire[..wire.len() - 1];
        block_on(async {
            let n = read_frame_size(&mut r, 100)
                .await
                .expect("ok")
                .expect("frame");
            assert!(matches!(
                read_frame_body(&mut r, n, &BufferPool::default()).await,
                Err(FrameError::Truncated { .. })
            ));
        });
        let mut r = &wire[..2];
        assert!(matches!(
            block_on(read_frame_size(&mut r, 100)),
            Err(FrameError::Truncated { .. })
        ));
    }
}
