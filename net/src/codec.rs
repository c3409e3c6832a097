//! Request header decoding and response framing, all through `kafka-protocol`'s generated
//! codecs. Nothing here trusts the frame: every failure is a [`CodecError`], never a panic.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::limits::REQUEST_HEADER_BYTES_MIN;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {0} bytes is shorter than a request header")]
    Short(usize),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("{key:?} v{version} is not supported")]
    UnsupportedVersion { key: ApiKey, version: i16 },
    #[error("malformed {what}")]
    Malformed {
        what: &'static str,
        #[source]
        source: anyhow_like::Error,
    },
    #[error("encoding the {key:?} response failed")]
    Encode {
        key: ApiKey,
        #[source]
        source: anyhow_like::Error,
    },
}

/// `kafka-protocol` reports errors as `anyhow::Error`; wrap it so it can be a `#[source]`.
pub mod anyhow_like {
    #[derive(Debug)]
    pub struct Error(pub String);
    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Error {}
    impl Error {
        pub fn from_display(e: impl std::fmt::Display) -> Self {
            Error(format!("{e:#}"))
        }
    }
}

/// A decoded request header plus the body bytes that follow it (sharing the frame).
#[derive(Debug)]
pub struct RequestFrame {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

impl RequestFrame {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}

/// Decodes the request header at the start of `frame`. Unknown api keys fail here.
pub fn decode_header(mut frame: Bytes) -> Result<RequestFrame, CodecError> {
    if frame.len() < REQUEST_HEADER_BYTES_MIN {
        return Err(CodecError::Short(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| CodecError::UnknownApiKey(raw_key))?;
    let header_version = api_key.request_header_version(version);
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|e| CodecError::Malformed {
            what: "request header",
            source: anyhow_like::Error::from_display(e),
        })?;
    Ok(RequestFrame {
        api_key,
        header,
        body: frame,
    })
}

/// Decodes a request body of type `T` at `version`.
pub fn decode_body<T: Decodable>(
    body: &mut Bytes,
    version: i16,
    what: &'static str,
) -> Result<T, CodecError> {
    T::decode(body, version).map_err(|e| CodecError::Malformed {
        what,
        source: anyhow_like::Error::from_display(e),
    })
}

/// Frames a response: size prefix, response header (v0 or v1 as the api/version wants;
/// ApiVersions always v0), body.
pub fn encode_response<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, CodecError> {
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let wrap = |e| CodecError::Encode {
        key: api_key,
        source: anyhow_like::Error::from_display(e),
    };
    let size = header.compute_size(header_version).map_err(wrap)?
        + body.compute_size(version).map_err(wrap)?;
    let mut out = BytesMut::with_capacity(4 + size);
    out.put_i32(i32::try_from(size).map_err(|e| wrap(e.into()))?);
    header.encode(&mut out, header_version).map_err(wrap)?;
    body.encode(&mut out, version).map_err(wrap)?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::{encode_request_header_into_buffer, StrBytes};

    pub fn request_bytes<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut buf = BytesMut::new();
        encode_request_header_into_buffer(&mut buf, &header).expect("header encodes");
        body.encode(&mut buf, version).expect("body encodes");
        buf.freeze()
    }

    #[test]
    fn header_and_body_round_trip_for_flexible_and_old_versions() {
        for version in [0, 4, 9, 12] {
            let frame = request_bytes(
                ApiKey::Metadata,
                version,
                &MetadataRequest::default().with_topics(None),
            );
            let mut req = decode_header(frame).expect("decodes");
            assert_eq!(req.api_key, ApiKey::Metadata);
            assert_eq!(req.header.correlation_id, 42);
            let v = req.version();
            let _: MetadataRequest =
                decode_body(&mut req.body, v, "Metadata").expect("body decodes");
        }
    }

    #[test]
    fn unknown_api_key_and_short_frame_are_errors() {
        let mut frame = BytesMut::new();
        frame.put_i16(9999);
        frame.put_i16(0);
        frame.put_i32(1);
        frame.put_i16(-1);
        assert!(matches!(
            decode_header(frame.freeze()),
            Err(CodecError::UnknownApiKey(9999))
        ));
        assert!(matches!(
            decode_header(Bytes::from_static(&[0, 18, 0])),
            Err(CodecError::Short(3))
        ));
    }

    #[test]
    fn truncated_body_is_malformed_not_a_panic() {
        let frame = request_bytes(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let cut = frame.slice(..frame.len() - 2);
        let mut req = decode_header(cut).expect("header fits");
        let r: Result<ApiVersionsRequest, _> = decode_body(&mut req.body, 3, "ApiVersions");
        assert!(matches!(r, Err(CodecError::Malformed { .. })));
    }

    #[test]
    fn huge_array_count_is_refused_without_allocating() {
        // Metadata v0 with a topic-array count of 0x033c0c00: upstream 0.18 would try to
        // allocate gigabytes here (see net/vendor/README.md).
        let frame = Bytes::from_static(&[
            0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0x03, 0x3c, 0x0c, 0x00, 0xb6,
        ]);
        let mut req = decode_header(frame).expect("header");
        let r: Result<MetadataRequest, _> = decode_body(&mut req.body, 0, "Metadata");
        assert!(r.is_err());
    }

    #[test]
    fn response_frame_carries_size_and_correlation_id() {
        let body = kafka_protocol::messages::ApiVersionsResponse::default();
        let out = encode_response(ApiKey::ApiVersions, 3, 77, &body).expect("encodes");
        let size = i32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        assert_eq!(size, out.len() - 4);
        assert_eq!(i32::from_be_bytes([out[4], out[5], out[6], out[7]]), 77);
    }
}
