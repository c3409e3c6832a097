//! Bad input against the real `sluice serve` binary: every malformed request gets the
//! protocol's error code or a closed connection, never a crash, and the broker keeps
//! answering fresh connections afterwards.

mod net_common;

use std::io::Write;
use std::net::Shutdown;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use net_common::*;

#[test]
fn malformed_requests_get_error_codes_or_a_closed_connection_and_the_broker_keeps_serving() {
    let b = start_broker();

    // Frame length above socket.request.max.bytes: closed before any body is read.
    let mut s = connect(&b);
    s.write_all(&(200 * 1024 * 1024i32).to_be_bytes())
        .expect("write");
    assert!(closed(&mut s), "oversized frame closes the connection");
    still_serving(&b);

    // Negative length.
    let mut s = connect(&b);
    s.write_all(&(-5i32).to_be_bytes()).expect("write");
    assert!(closed(&mut s), "negative length closes the connection");
    still_serving(&b);

    // Garbage that frames correctly but is no request.
    let mut s = connect(&b);
    s.write_all(&framed(&[
        0x13, 0x37, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]))
    .expect("write");
    assert!(closed(&mut s), "garbage closes the connection");
    still_serving(&b);

    // Truncated frame: the length promises more than ever arrives.
    let mut s = connect(&b);
    let full = request(ApiKey::Metadata, 9, 1, &MetadataRequest::default());
    s.write_all(&full[..full.len() / 2]).expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown");
    assert!(
        read_frame(&mut s).is_none(),
        "truncated frame gets no answer"
    );
    still_serving(&b);

    // A body cut short inside a correct frame.
    let mut s = connect(&b);
    let topic = CreatableTopic::default().with_name(TopicName(StrBytes::from_static_str("x")));
    let mut body = request(
        ApiKey::CreateTopics,
        5,
        1,
        &CreateTopicsRequest::default().with_topics(vec![topic]),
    );
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
    assert!(
        closed(&mut s),
        "impossible array count closes the connection"
    );
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
    let r: ApiVersionsResponse = response(
        read_frame(&mut s).expect("answered"),
        ApiKey::ApiVersions,
        0,
        5,
    );
    assert_eq!(r.error_code, 35);
    assert!(r
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16 && k.min_version == 0));
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
    wire.extend(request(
        ApiKey::Metadata,
        12,
        101,
        &MetadataRequest::default().with_topics(Some(vec![])),
    ));
    wire.extend(request(
        ApiKey::ApiVersions,
        0,
        102,
        &ApiVersionsRequest::default(),
    ));
    s.write_all(&wire).expect("write");
    let _: ApiVersionsResponse = response(
        read_frame(&mut s).expect("1st"),
        ApiKey::ApiVersions,
        3,
        100,
    );
    let _: MetadataResponse = response(read_frame(&mut s).expect("2nd"), ApiKey::Metadata, 12, 101);
    let _: ApiVersionsResponse = response(
        read_frame(&mut s).expect("3rd"),
        ApiKey::ApiVersions,
        0,
        102,
    );

    // Invalid topic names: INVALID_TOPIC_EXCEPTION (17) from Produce, Metadata and CreateTopics.
    assert_eq!(produce(&b, "bad topic!", record_batch(10)), 17);
    let mut s = connect(&b);
    let wanted = MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_static_str("../../etc"))));
    let md = MetadataRequest::default()
        .with_topics(Some(vec![wanted]))
        .with_allow_auto_topic_creation(true);
    s.write_all(&request(ApiKey::Metadata, 12, 3, &md))
        .expect("write");
    let r: MetadataResponse = response(
        read_frame(&mut s).expect("answered"),
        ApiKey::Metadata,
        12,
        3,
    );
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
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![small, bad]);
    s.write_all(&request(ApiKey::CreateTopics, 5, 4, &create))
        .expect("write");
    let r: CreateTopicsResponse = response(
        read_frame(&mut s).expect("answered"),
        ApiKey::CreateTopics,
        5,
        4,
    );
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
