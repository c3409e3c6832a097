//! Helpers shared by the net tests that run the real `sluice serve` binary.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub struct Broker {
    child: Child,
    config: std::path::PathBuf,
    pub port: u16,
    /// `host:port` of the admin endpoint, empty when the broker runs without it.
    pub admin: String,
    /// The broker's own temporary directory; `None` when the caller owns the data dir
    /// (restart tests).
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    /// Clean shutdown: SIGTERM (partitions are flushed and closed), then wait for the exit,
    /// at most 30 s before the SIGKILL of `drop`.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the broker and starts it again on the same config, data and port.
    pub fn restart_after_sigkill(&mut self) {
        self.sigkill();
        self.start_again();
    }

    /// SIGKILLs the broker (and reaps it); `start_again` brings it back.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same config, data and port.
    pub fn start_again(&mut self) {
        self.child = spawn(&self.config);
        self.wait_listening();
    }

    fn wait_listening(&self) {
        let port = self.port;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && (self.admin.is_empty() || TcpStream::connect(&self.admin).is_ok())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "broker did not start listening on {port} (admin {:?})",
            self.admin
        );
    }
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
    l.local_addr().expect("addr").port()
}

/// A 2-shard broker with small request bounds and no admin endpoint.
pub fn start_broker() -> Broker {
    start_broker_with(
        "\"socket.request.max.bytes\" = 1048576\nin_flight_bytes_per_connection = 4194304\n",
        Admin::Off,
    )
}

/// Whether the broker under test serves the admin endpoint (on its own free port: brokers
/// sharing one would split connections between them via SO_REUSEPORT).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Admin {
    Off,
    On,
}

/// Starts the real binary with a 2-shard engine and `server_extra` appended to `[server]`;
/// data under the target dir (a real disk: O_DIRECT does not work on tmpfs).
pub fn start_broker_with(server_extra: &str, admin: Admin) -> Broker {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut broker = start_broker_on(dir.path(), "shards = 2\n", server_extra, admin);
    broker._dir = Some(dir);
    broker
}

/// Starts the real binary on `root` (config file and `data/` in it, kept after the broker
/// stops, so a test can restart on the same data), with `engine_extra` in `[engine]` (it
/// must set the shard count) and `server_extra` in `[server]`.
pub fn start_broker_on(
    root: &std::path::Path,
    engine_extra: &str,
    server_extra: &str,
    admin: Admin,
) -> Broker {
    let port = free_port();
    let admin_addr = match admin {
        Admin::On => format!("127.0.0.1:{}", free_port()),
        Admin::Off => String::new(),
    };
    let config = root.join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\ndata_dir = {:?}\n{engine_extra}[engine.log]\nsegment_bytes = 1048576\n\
             [server]\nlisteners = \"127.0.0.1:{port}\"\nadmin_listener = \"{admin_addr}\"\n{server_extra}",
            root.join("data")
        ),
    )
    .expect("write config");
    let broker = Broker {
        child: spawn(&config),
        config,
        port,
        admin: admin_addr,
        _dir: None,
    };
    broker.wait_listening();
    broker
}

fn spawn(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        // SLUICE_TEST_BROKER_LOG=1 shows the broker's log when a case fails.
        .stderr(if std::env::var_os("SLUICE_TEST_BROKER_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("start sluice")
}

pub fn connect(b: &Broker) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", b.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

pub fn request<T: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &T) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")));
    let mut buf = BytesMut::new();
    encode_request_header_into_buffer(&mut buf, &header).expect("header");
    body.encode(&mut buf, version).expect("body");
    framed(&buf)
}

pub fn framed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// A request header for `key`/`version` with no body, for versions the codec refuses.
pub fn raw_header(key: i16, version: i16, correlation_id: i32) -> BytesMut {
    let mut raw = BytesMut::new();
    raw.extend_from_slice(&key.to_be_bytes());
    raw.extend_from_slice(&version.to_be_bytes());
    raw.extend_from_slice(&correlation_id.to_be_bytes());
    raw.extend_from_slice(&(-1i16).to_be_bytes());
    raw
}

/// Reads one response frame; None when the broker closed the connection.
pub fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

/// Decodes a response frame, checking the correlation id.
pub fn response<T: Decodable>(frame: Bytes, key: ApiKey, version: i16, correlation_id: i32) -> T {
    let mut frame = frame;
    assert_eq!(
        frame.get_i32(),
        correlation_id,
        "answers come back in request order"
    );
    let header_version = if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    };
    if header_version >= 1 {
        assert_eq!(frame.get_u8(), 0, "no tagged fields in the response header");
    }
    T::decode(&mut frame, version).expect("response decodes")
}

/// True when the broker closed the connection (EOF or reset) without answering.
pub fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

pub fn still_serving(b: &Broker) {
    let mut s = connect(b);
    s.write_all(&request(
        ApiKey::ApiVersions,
        3,
        7,
        &ApiVersionsRequest::default(),
    ))
    .expect("write");
    let frame = read_frame(&mut s).expect("a fresh connection is answered");
    let r: ApiVersionsResponse = response(frame, ApiKey::ApiVersions, 3, 7);
    assert_eq!(r.error_code, 0);
}

pub fn record_batch(value_bytes: usize) -> Vec<u8> {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from(vec![b'v'; value_bytes])),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &opts).expect("batch encodes");
    buf.to_vec()
}

pub fn produce(b: &Broker, topic: &str, records: Vec<u8>) -> i16 {
    produce_to_port(b.port, topic, records)
}

/// Produce v9, acks=all, one record set to partition 0; the partition's error code.
pub fn produce_to_port(port: u16, topic: &str, records: Vec<u8>) -> i16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let partition = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(Bytes::from(records)));
    let topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_data(vec![partition]);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![topic]);
    s.write_all(&request(ApiKey::Produce, 9, 11, &req))
        .expect("write");
    let r: ProduceResponse = response(
        read_frame(&mut s).expect("produce answered"),
        ApiKey::Produce,
        9,
        11,
    );
    r.responses[0].partition_responses[0].error_code
}
