//! Decoder plus handler dispatch against a real one-shard engine in a temp directory:
//! each input is one request frame body, decoded and handled as a connection would, with
//! the response encoded. A panic anywhere is a finding. Topics are capped at 4 partitions
//! and each request at 200 ms (Fetch long polls) so the fuzzer stays fast and the disk
//! small.
#![no_main]

use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_engine::EngineConfig;
use sluice_net::broker::Broker;
use sluice_net::codec::decode_header;
use sluice_net::dispatch::{decode_request, handle};
use sluice_net::metadata::{FileMetadataStore, MetadataStore, TopicDefaults};
use sluice_net::server::ServerShared;
use sluice_net::ServerConfig;

type Job = (Vec<u8>, flume::Sender<()>);

fn engine() -> &'static flume::Sender<Job> {
    static ENGINE: OnceLock<flume::Sender<Job>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let (tx, rx) = flume::bounded::<Job>(1);
        let dir = tempfile::tempdir().expect("tempdir").keep();
        std::thread::spawn(move || {
            let mut engine = EngineConfig {
                data_dir: dir.join("data"),
                shards: 1,
                ..EngineConfig::default()
            };
            engine.log.segment_bytes = 1 << 20;
            let server = ServerConfig {
                listeners: "127.0.0.1:1".into(),
                partitions_per_topic_max: 4,
                num_partitions: 1,
                ..ServerConfig::default()
            };
            let store = FileMetadataStore::open(&engine.data_dir).expect("store");
            let shared = ServerShared {
                defaults: Arc::new(TopicDefaults {
                    log: engine.log.clone(),
                    max_message_bytes: server.message_max_bytes,
                }),
                config: Arc::new(server),
                store: Arc::new(store) as Arc<dyn MetadataStore>,
            };
            sluice_engine::runtime::run(engine, move |shard| {
                let (shared, rx) = (shared.clone(), rx.clone());
                Box::pin(async move {
                    let broker = Rc::new(Broker::new(shard, &shared).expect("broker"));
                    while let Ok((data, done)) = rx.recv_async().await {
                        if let Ok(frame) = decode_header(Bytes::from(data)) {
                            if let Ok(request) = decode_request(frame) {
                                let _ = glommio::timer::timeout(Duration::from_millis(200), async {
                                    Ok(handle(&broker, request).await)
                                })
                                .await;
                            }
                        }
                        let _ = done.send(());
                    }
                })
            })
            .expect("engine runs");
        });
        tx
    })
}

fuzz_target!(|data: &[u8]| {
    let (done_tx, done_rx) = flume::bounded(1);
    engine().send((data.to_vec(), done_tx)).expect("engine alive");
    done_rx.recv().expect("engine answered");
});
