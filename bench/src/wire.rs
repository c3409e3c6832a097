//! Blocking Kafka wire client: framing, request/response codecs, version negotiation.
//!
//! One `Connection` is one TCP stream. For pipelining it splits into a `RequestWriter`
//! and a `ResponseReader` that run on two threads; responses come back in request order
//! (Kafka guarantees per-connection ordering), which the reader checks by correlation id.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::error::{BenchError, Result};
use crate::limits::{FRAME_BYTES_MAX, REQUEST_BYTES_MAX};

/// The highest version of each API this client speaks. Produce and Fetch stop before the
/// versions that address topics by id only (Produce v13, Fetch v13), since the load
/// generator names topics.
const VERSION_CAPS: &[(ApiKey, i16)] = &[
    (ApiKey::Produce, 12),
    (ApiKey::Fetch, 12),
    (ApiKey::Metadata, 12),
    (ApiKey::CreateTopics, 7),
    (ApiKey::ListOffsets, 8),
];

/// API versions agreed with one broker.
#[derive(Debug, Clone, Copy)]
pub struct Versions {
    pub produce: i16,
    pub fetch: i16,
    pub metadata: i16,
    pub create_topics: i16,
    pub list_offsets: i16,
}

pub struct Connection {
    stream: TcpStream,
    addr: String,
    next_correlation_id: i32,
    client_id: StrBytes,
}

impl Connection {
    pub fn connect(addr: &str, client_id: &str, timeout: Duration) -> Result<Self> {
        let connect_err = |source| BenchError::Connect {
            addr: addr.to_string(),
            source,
        };
        let socket_addr = addr
            .to_socket_addrs()
            .map_err(connect_err)?
            .next()
            .ok_or_else(|| BenchError::Config(format!("{addr} resolves to no address")))?;
        let stream = TcpStream::connect_timeout(&socket_addr, timeout).map_err(connect_err)?;
        stream.set_nodelay(true).map_err(connect_err)?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(connect_err)?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(connect_err)?;
        Ok(Self {
            stream,
            addr: addr.to_string(),
            next_correlation_id: 1,
            client_id: StrBytes::from_string(client_id.to_string()),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Send one request and wait for its response (no pipelining).
    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> Result<R::Response> {
        let mut buf = BytesMut::with_capacity(256);
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        encode_request(&mut buf, &self.client_id, correlation_id, version, request)?;
        write_frame(&mut self.stream, &self.addr, &buf)?;
        let frame = read_frame(&mut self.stream, &self.addr)?;
        decode_response::<R>(frame, correlation_id, version, &self.addr)
    }

    /// Ask the broker which versions it serves and pick the highest both sides speak.
    pub fn negotiate(&mut self) -> Result<Versions> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-bench"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response: ApiVersionsResponse = self.call(3, &request)?;
        if response.error_code != 0 {
            return Err(BenchError::Broker {
                what: "ApiVersions".into(),
                code: response.error_code,
            });
        }
        let pick = |key: ApiKey| -> Result<i16> {
            let cap = VERSION_CAPS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .unwrap_or(0);
            let ours_min = match key {
                ApiKey::Produce => 3,
                ApiKey::Fetch => 4,
                ApiKey::CreateTopics => 2,
                ApiKey::ListOffsets => 1,
                _ => 1,
            };
            let theirs = response
                .api_keys
                .iter()
                .find(|k| k.api_key == key as i16)
                .ok_or_else(|| BenchError::Protocol {
                    addr: self.addr.clone(),
                    detail: format!("broker does not serve {key:?}"),
                })?;
            let version = cap.min(theirs.max_version);
            if version < ours_min.max(theirs.min_version) {
                return Err(BenchError::Protocol {
                    addr: self.addr.clone(),
                    detail: format!(
                        "no common {key:?} version (broker {}..={}, client {ours_min}..={cap})",
                        theirs.min_version, theirs.max_version
                    ),
                });
            }
            Ok(version)
        };
        Ok(Versions {
            produce: pick(ApiKey::Produce)?,
            fetch: pick(ApiKey::Fetch)?,
            metadata: pick(ApiKey::Metadata)?,
            create_topics: pick(ApiKey::CreateTopics)?,
            list_offsets: pick(ApiKey::ListOffsets)?,
        })
    }

    /// Split into halves for a writer thread and a reader thread.
    pub fn split(self) -> Result<(RequestWriter, ResponseReader)> {
        let read_half = self.stream.try_clone().map_err(|source| BenchError::Io {
            addr: self.addr.clone(),
            source,
        })?;
        Ok((
            RequestWriter {
                stream: self.stream,
                addr: self.addr.clone(),
                next_correlation_id: self.next_correlation_id,
                client_id: self.client_id,
                buf: BytesMut::with_capacity(REQUEST_BYTES_MAX),
            },
            ResponseReader {
                stream: read_half,
                addr: self.addr,
            },
        ))
    }
}

pub struct RequestWriter {
    stream: TcpStream,
    addr: String,
    next_correlation_id: i32,
    client_id: StrBytes,
    buf: BytesMut,
}

impl RequestWriter {
    /// The correlation id the next `send` will use.
    pub fn next_correlation_id(&self) -> i32 {
        self.next_correlation_id
    }

    /// Encode and write one request; returns its correlation id.
    pub fn send<R: Request>(&mut self, version: i16, request: &R) -> Result<i32> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        self.buf.clear();
        encode_request(
            &mut self.buf,
            &self.client_id,
            correlation_id,
            version,
            request,
        )?;
        write_frame(&mut self.stream, &self.addr, &self.buf)?;
        Ok(correlation_id)
    }
}

pub struct ResponseReader {
    stream: TcpStream,
    addr: String,
}

impl ResponseReader {
    pub fn recv<R: Request>(&mut self, correlation_id: i32, version: i16) -> Result<R::Response> {
        let frame = read_frame(&mut self.stream, &self.addr)?;
        decode_response::<R>(frame, correlation_id, version, &self.addr)
    }
}

fn encode_request<R: Request>(
    buf: &mut BytesMut,
    client_id: &StrBytes,
    correlation_id: i32,
    version: i16,
    request: &R,
) -> Result<()> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    let start = buf.len();
    buf.put_i32(0);
    header
        .encode(buf, R::header_version(version))
        .map_err(|e| BenchError::Encode {
            what: "request header",
            source: e.into(),
        })?;
    request
        .encode(buf, version)
        .map_err(|e| BenchError::Encode {
            what: "request body",
            source: e.into(),
        })?;
    let size = buf.len() - start - 4;
    let size =
        i32::try_from(size).map_err(|_| BenchError::Config(format!("request of {size} bytes")))?;
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

fn write_frame(stream: &mut TcpStream, addr: &str, frame: &[u8]) -> Result<()> {
    stream.write_all(frame).map_err(|source| BenchError::Io {
        addr: addr.to_string(),
        source,
    })
}

fn read_frame(stream: &mut TcpStream, addr: &str) -> Result<Bytes> {
    let timeout = stream.read_timeout().ok().flatten().unwrap_or_default();
    let io_err = |source: std::io::Error| match source.kind() {
        // SO_RCVTIMEO expiring shows up as WouldBlock on Linux.
        ErrorKind::WouldBlock | ErrorKind::TimedOut => BenchError::Timeout {
            addr: addr.to_string(),
            timeout,
        },
        _ => BenchError::Io {
            addr: addr.to_string(),
            source,
        },
    };
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).map_err(io_err)?;
    let size = i32::from_be_bytes(size);
    let size = usize::try_from(size)
        .ok()
        .filter(|s| *s <= FRAME_BYTES_MAX)
        .ok_or_else(|| BenchError::Protocol {
            addr: addr.to_string(),
            detail: format!("response frame of {size} bytes (limit {FRAME_BYTES_MAX})"),
        })?;
    let mut body = vec![0u8; size];
    stream.read_exact(&mut body).map_err(io_err)?;
    Ok(Bytes::from(body))
}

fn decode_response<R: Request>(
    mut frame: Bytes,
    correlation_id: i32,
    version: i16,
    addr: &str,
) -> Result<R::Response> {
    let header =
        ResponseHeader::decode(&mut frame, R::Response::header_version(version)).map_err(|e| {
            BenchError::Decode {
                what: "response header",
                addr: addr.into(),
                source: e.into(),
            }
        })?;
    if header.correlation_id != correlation_id {
        return Err(BenchError::Protocol {
            addr: addr.to_string(),
            detail: format!(
                "response correlation id {} where {correlation_id} was due",
                header.correlation_id
            ),
        });
    }
    R::Response::decode(&mut frame, version).map_err(|e| BenchError::Decode {
        what: "response body",
        addr: addr.into(),
        source: e.into(),
    })
}
