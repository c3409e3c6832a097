//! The request decoder alone: frame size check, header, version check, body decode.
//! Fast; no broker state. Input: one frame body (what follows the size prefix).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_net::codec::decode_header;
use sluice_net::dispatch::decode_request;
use sluice_net::frame::check_frame_size;

fuzz_target!(|data: &[u8]| {
    let _ = check_frame_size(i32::try_from(data.len()).unwrap_or(i32::MAX), 1 << 20);
    if let Ok(frame) = decode_header(Bytes::copy_from_slice(data)) {
        let _ = decode_request(frame);
    }
});
