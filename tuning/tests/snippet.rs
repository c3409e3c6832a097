//! The proposed config snippet is what `sluice serve --config` reads: it must deserialize
//! into the engine's own `EngineConfig` (deny_unknown_fields) and pass its validation.
//! The engine is a dev-dependency for this file only.

mod common;

use common::*;
use sluice_engine::EngineConfig;
use sluice_tuning::Report;

fn engine_config(shape: &str, data_dir: &str) -> (EngineConfig, String) {
    let (machine, placement, findings) = tuned(shape, data_dir);
    let online = machine.cpus.len();
    let report = Report::new(machine, placement, findings);
    let table: toml::Table = toml::from_str(&report.config_snippet).expect("snippet is TOML");
    let engine = table.get("engine").cloned().expect("an [engine] table");
    let config: EngineConfig = engine.try_into().expect("the engine accepts every key");
    config.validate(online).expect("valid for this machine");
    (config, report.config_snippet)
}

#[test]
fn vm_snippet_deserializes_into_engine_config() {
    let (config, snippet) = engine_config(VM_2CORE, "/work/main/data");
    assert_eq!(config.cores, vec![0, 1]);
    assert_eq!(config.io_memory_bytes, 2 << 20);
    assert_eq!(config.ring_depth, 256);
    assert_eq!(config.data_dir, std::path::PathBuf::from("/work/main/data"));
    assert_eq!(config.shard_count(2), 2);
    assert!(
        snippet.contains(
            "# Up to 6026 active partitions per shard; give topics a multiple of 2 partitions."
        ),
        "{snippet}"
    );
}

#[test]
fn two_socket_snippet_deserializes_into_engine_config() {
    let (config, snippet) = engine_config(SOCKET2_64CPU, "/var/lib/sluice/data");
    assert_eq!(config.cores, (1..=15).collect::<Vec<_>>());
    assert_eq!(config.io_memory_bytes, 32 << 20);
    assert_eq!(config.ring_depth, 1024);
    assert_eq!(config.shard_count(64), 15);
    assert!(
        snippet.contains("# CPUs 0,32 are left for IRQs and the OS."),
        "{snippet}"
    );
}

#[test]
fn data_dir_with_quotes_and_backslashes_survives_toml() {
    let (config, _) = engine_config(VM_2CORE, r#"/srv/we"ird\dir"#);
    assert_eq!(
        config.data_dir,
        std::path::PathBuf::from(r#"/srv/we"ird\dir"#)
    );
}

#[test]
fn mirrored_limits_match_the_engine() {
    use sluice_engine::limits as engine;
    use sluice_tuning::limits as tuning;
    assert_eq!(tuning::SHARDS_MAX, engine::SHARDS_MAX);
    assert_eq!(
        tuning::PARTITIONS_PER_SHARD_MAX,
        engine::PARTITIONS_PER_SHARD_MAX as u64
    );
    assert_eq!(tuning::WRITE_CHUNK_BYTES, engine::WRITE_CHUNK_BYTES as u64);
    assert_eq!(
        tuning::IO_ALIGNMENT_BYTES as usize,
        engine::IO_ALIGNMENT_BYTES
    );
    let default = EngineConfig::default();
    // The engine's default I/O memory is what tuning proposes for a shard with ample
    // memory and memlock; proposals only ever go below it.
    assert_eq!(
        tuning::IO_MEMORY_PROPOSED_MAX_BYTES,
        default.io_memory_bytes as u64
    );
    assert_eq!(tuning::RING_DEPTH_PROPOSED_MIN, default.ring_depth);
}
