//! The in-process harness the net integration tests share: a fresh one-shard engine with a
//! broker on it (`on_engine`), and requests encoded, run through `dispatch::handle` as a
//! connection would, and their answers decoded (`call`).
#![allow(dead_code)]

use std::rc::Rc;
use std::sync::{mpsc, Arc};

use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, Encodable, StrBytes};
use sluice_engine::EngineConfig;
use sluice_net::broker::Broker;
use sluice_net::codec::decode_header;
use sluice_net::dispatch::{decode_request, handle};
use sluice_net::metadata::{FileMetadataStore, MetadataStore, TopicDefaults};
use sluice_net::server::ServerShared;
use sluice_net::ServerConfig;

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Encodes `body`, runs it through decode + handler as a connection would, decodes the answer.
pub async fn call<Req: Encodable, Resp: Decodable>(
    broker: &Rc<Broker>,
    key: ApiKey,
    version: i16,
    body: &Req,
) -> Resp {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(9)
        .with_client_id(Some(s("in-process-test")));
    let mut buf = BytesMut::new();
    encode_request_header_into_buffer(&mut buf, &header).expect("header");
    body.encode(&mut buf, version).expect("body");
    let request = decode_request(decode_header(buf.freeze()).expect("header decodes"))
        .expect("request decodes");
    let mut out = handle(broker, request)
        .await
        .expect("handled")
        .expect("a response is due");
    let _size = bytes::Buf::get_i32(&mut out);
    assert_eq!(bytes::Buf::get_i32(&mut out), 9);
    if key.response_header_version(version) >= 1 {
        bytes::Buf::get_u8(&mut out);
    }
    Resp::decode(&mut out, version).expect("response decodes")
}

/// Runs `scenario` on shard 0 of a fresh one-shard engine; returns its findings.
pub fn on_engine<F, Fut>(scenario: F) -> Vec<String>
where
    F: Fn(Rc<Broker>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Vec<String>> + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = EngineConfig {
        data_dir: dir.path().join("data"),
        shards: 1,
        ..EngineConfig::default()
    };
    engine.log.segment_bytes = 1 << 20;
    let server = ServerConfig {
        listeners: "127.0.0.1:1".into(),
        ..ServerConfig::default()
    };
    let store = FileMetadataStore::open(&engine.data_dir).expect("store");
    let shared = ServerShared {
        cluster: None,
        defaults: Arc::new(TopicDefaults {
            log: engine.log.clone(),
            max_message_bytes: server.message_max_bytes,
        }),
        config: Arc::new(server),
        store: Arc::new(store) as Arc<dyn MetadataStore>,
    };
    let (tx, rx) = mpsc::channel();
    sluice_engine::runtime::run(engine, move |shard| {
        let (shared, tx, scenario) = (shared.clone(), tx.clone(), scenario.clone());
        Box::pin(async move {
            let broker = Rc::new(Broker::new(shard, &shared).expect("broker"));
            let _ = tx.send(scenario(broker).await);
        })
    })
    .expect("engine runs");
    rx.recv().expect("scenario finished")
}

macro_rules! check {
    ($findings:ident, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            $findings.push(format!($($msg)+));
        }
    };
}
