//! The envelope of a replica's small state files (the epoch cache, the high-watermark
//! checkpoint): `[len u64][crc32c u32][rkyv archive of len bytes]`, little-endian. The
//! length is checked against what was read and the checksum over the archive before the
//! archive is looked at.

/// Bytes before the archive.
pub const PREAMBLE_BYTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeError {
    Truncated,
    Crc,
}

/// Wraps an archive.
pub fn seal(archive: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREAMBLE_BYTES + archive.len());
    out.extend_from_slice(&(archive.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(archive).to_le_bytes());
    out.extend_from_slice(archive);
    out
}

/// The archive inside a sealed file, once its length and checksum hold.
pub fn open(bytes: &[u8]) -> Result<&[u8], EnvelopeError> {
    if bytes.len() < PREAMBLE_BYTES {
        return Err(EnvelopeError::Truncated);
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[..8]);
    let len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| EnvelopeError::Truncated)?;
    let body = bytes
        .get(PREAMBLE_BYTES..PREAMBLE_BYTES.saturating_add(len))
        .ok_or(EnvelopeError::Truncated)?;
    let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if crc32c::crc32c(body) != crc {
        return Err(EnvelopeError::Crc);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_and_damage_is_refused() {
        let sealed = seal(b"archive bytes");
        assert_eq!(open(&sealed), Ok(&b"archive bytes"[..]));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open(&bad).is_err(), "flip at byte {i} accepted");
        }
        assert_eq!(open(&sealed[..5]), Err(EnvelopeError::Truncated));
        assert_eq!(
            open(&sealed[..sealed.len() - 1]),
            Err(EnvelopeError::Truncated)
        );
    }
}
