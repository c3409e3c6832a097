//! Bad input against the real `sluice serve` binary: every malformed request gets the
//! protocol's error code or a closed connection, never a crash, and the broker keeps
//! answering fresh connections afterwards.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
    l.local_addr().expect("addr").port()
}

fn start_broker() -> Broker {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\ndata_dir = {:?}\nshards = 2\n[engine.log]\nsegment_bytes = 1048576\n\
             [server]\nlisteners = \"127.0.0.1:{port}\"\n\"socket.request.max.bytes\" = 1048576\n\
             in_flight_bytes_per_connection = 4194304\n",
            dir.path().join("data")
        ),
    )
    .expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        // SLUICE_TEST_BROKER_LOG=1 shows the broker's log when a case fails.
        .stderr(if std::env::var_os("SLUICE_TEST_BROKER_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .expect("start sluice");
    let broker = Broker { child, port, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return broker;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("broker did not start listening on {port}");
}

fn connect(b: &Broker) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", b.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s
}

fn request<T: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &T) -> Vec<u8> {
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

fn framed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// A request header for `key`/`version` with no body, for versions the codec refuses.
fn raw_header(key: i16, version: i16, correlation_id: i32) -> BytesMut {
    let mut raw = BytesMut::new();
    raw.extend_from_slice(&key.to_be_bytes());
    raw.extend_from_slice(&version.to_be_bytes());
    raw.extend_from_slice(&correlation_id.to_be_bytes());
    raw.extend_from_slice(&(-1i16).to_be_bytes());
    raw
}

/// Reads one response frame; None when the broker closed the connection.
fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

/// Decodes a response frame, checking the correlation id.
fn response<T: Decodable>(frame: Bytes, key: ApiKey, version: i16, correlation_id: i32) -> T {
    let mut frame = frame;
    assert_eq!(frame.get_i32(), correlation_id, "answers come back in request order");
    let header_version = if key == ApiKey::ApiVersions { 0 } else { key.response_header_version(version) };
    if header_version >= 1 {
        assert_eq!(frame.get_u8(), 0, "no tagged fields in the response header");
    }
    T::decode(&mut frame, version).expect("response decodes")
}

/// True when the broker closed the connection (EOF or reset) without answering.
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

fn still_serving(b: &Broker) {
    let mut s = connect(b);
    s.write_all(&request(ApiKey::ApiVersions, 3, 7, &ApiVersionsRequest::default())).expect("write");
    let frame = read_frame(&mut s).expect("a fresh connection is answered");
    let r: ApiVersionsResponse = response(frame, ApiKey::ApiVersions, 3, 7);
    assert_eq!(r.error_code, 0);
}

fn record_batch(value_bytes: usize) -> Vec<u8> {
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

fn produce(b: &Broker, topic: &str, records: Vec<u8>) -> i16 {
    let mut s = connect(b);
    let partition = PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(records)));
    let topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_data(vec![partition]);
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![topic]);
    s.write_all(&request(ApiKey::Produce, 9, 11, &req)).expect("write");
    let r: ProduceResponse = response(read_frame(&mut s).expect("produce answered"), ApiKey::Produce, 9, 11);
    r.responses[0].partition_responses[0].error_code
}

#[test]
fn malformed_requests_get_error_codes_or_a_closed_connection_and_the_broker_keeps_serving() {
    let b = start_broker();

    // Frame length above socket.request.max.bytes: closed before any body is read.
    let mut s = connect(&b);
    s.write_all(&(200 * 1024 * 1024i32).to_be_bytes()).expect("write");
    assert!(closed(&mut s), "oversized frame closes the connection");
    still_serving(&b);

    // Negative length.
    let mut s = connect(&b);
    s.write_all(&(-5i32).to_be_bytes()).expect("write");
    assert!(closed(&mut s), "negative length closes the connection");
    still_serving(&b);

    // Garbage that frames correctly but is no request.
    let mut s = connect(&b);
    s.write_all(&framed(&[0x13, 0x37, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])).expect("write");
    assert!(closed(&mut s), "garbage closes the connection");
    still_serving(&b);

    // Truncated frame: the length promises more than ever arrives.
    let mut s = connect(&b);
    let full = request(ApiKey::Metadata, 9, 1, &MetadataRequest::default());
    s.write_all(&full[..full.len() / 2]).expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown");
    assert!(read_frame(&mut s).is_none(), "truncated frame gets no answer");
    still_serving(&b);

    // A body cut short inside a correct frame.
    let mut s = connect(&b);
    let topic = CreatableTopic::default().with_name(TopicName(StrBytes::from_static_str("x")));
    let mut body = request(ApiKey::CreateTopics, 5, 1, &CreateTopicsRequest::default().with_topics(vec![topic]));
    body.truncate(body.len() - 6);
    let len = (body.len() - 4) as i32;
    body[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&body).expect("write");
    assert!(closed(&mut s), "malformed body closes the connection");
    still_serving(&b);

    // An array count far beyond the frame (would be a multi-GB allocation upstream).
    let mut s = connect(&b);
    let mut raw = raw_header(ApiKey::Metadata as i16, 0, 1);
    raw.extend_from_slice(&0x7fff_fff0i32.to_be_bytes());
    s.write_all(&framed(&raw)).expect("write");
    assert!(closed(&mut s), "impossible array count closes the connection");
    still_serving(&b);

    // Unknown api key.
    let mut s = connect(&b);
    s.write_all(&framed(&raw_header(999, 0, 1))).expect("write");
    assert!(closed(&mut s), "unknown api key closes the connection");
    still_serving(&b);

    // Unsupported version: ApiVersions answers UNSUPPORTED_VERSION (35) in v0 ...
    let mut s = connect(&b);
    let mut raw = raw_header(ApiKey::ApiVersions as i16, 99, 5);
    raw.extend_from_slice(&[0]); // header v2: no tagged fields
    s.write_all(&framed(&raw)).expect("write");
    let r: ApiVersionsResponse = response(read_frame(&mut s).expect("answered"), ApiKey::ApiVersions, 0, 5);
    assert_eq!(r.error_code, 35);
    assert!(r.api_keys.iter().any(|k| k.api_key == ApiKey::Produce as i16 && k.min_version == 0));
    // ... any other API closes (Produce v2 is advertised for librdkafka but not served).
    let mut s = connect(&b);
    let mut raw = raw_header(ApiKey::Produce as i16, 2, 5);
    raw.extend_from_slice(&[0; 16]);
    s.write_all(&framed(&raw)).expect("write");
    assert!(closed(&mut s), "unsupported version closes the connection");
    still_serving(&b);

    // Pipelining: three requests in one write, three answers in request order.
    let mut s = connect(&b);
    let mut wire = request(ApiKey::ApiVersions, 3, 100, &ApiVersionsRequest::default());
    wire.extend(request(ApiKey::Metadata, 12, 101, &MetadataRequest::default().with_topics(Some(vec![]))));
    wire.extend(request(ApiKey::ApiVersions, 0, 102, &ApiVersionsRequest::default()));
    s.write_all(&wire).expect("write");
    let _: ApiVersionsResponse = response(read_frame(&mut s).expect("1st"), ApiKey::ApiVersions, 3, 100);
    let _: MetadataResponse = response(read_frame(&mut s).expect("2nd"), ApiKey::Metadata, 12, 101);
    let _: ApiVersionsResponse = response(read_frame(&mut s).expect("3rd"), ApiKey::ApiVersions, 0, 102);

    // Invalid topic names: INVALID_TOPIC_EXCEPTION (17) from Produce, Metadata and CreateTopics.
    assert_eq!(produce(&b, "bad topic!", record_batch(10)), 17);
    let mut s = connect(&b);
    let wanted = MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str("../../etc"))));
    let md = MetadataRequest::default().with_topics(Some(vec![wanted])).with_allow_auto_topic_creation(true);
    s.write_all(&request(ApiKey::Metadata, 12, 3, &md)).expect("write");
    let r: MetadataResponse = response(read_frame(&mut s).expect("answered"), ApiKey::Metadata, 12, 3);
    assert_eq!(r.topics[0].error_code, 17);

    // A topic with a small max.message.bytes, and one with an invalid name.
    let mut s = connect(&b);
    let small = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("small")))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("max.message.bytes"))
            .with_value(Some(StrBytes::from_static_str("1000")))]);
    let bad = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("bad/name")))
        .with_num_partitions(1)
        .with_replication_factor(1);
    let create = CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![small, bad]);
    s.write_all(&request(ApiKey::CreateTopics, 5, 4, &create)).expect("write");
    let r: CreateTopicsResponse = response(read_frame(&mut s).expect("answered"), ApiKey::CreateTopics, 5, 4);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    assert_eq!(r.topics[1].error_code, 17);

    // Within the limit the batch lands; above it, MESSAGE_TOO_LARGE (10).
    assert_eq!(produce(&b, "small", record_batch(100)), 0);
    assert_eq!(produce(&b, "small", record_batch(5000)), 10);

    // Bad CRC: flip a byte the CRC covers -> CORRUPT_MESSAGE (2).
    let mut batch = record_batch(100);
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    assert_eq!(produce(&b, "small", batch), 2);
    // A record set that is no batch at all.
    assert_eq!(produce(&b, "small", vec![0u8; 70]), 2);

    still_serving(&b);
}
