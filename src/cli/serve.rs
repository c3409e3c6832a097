//! `sluice serve`: start the broker. The config file has an `[engine]` table
//! (sluice_engine::EngineConfig) and a `[server]` table (sluice_net::ServerConfig); no
//! file means the embedded defaults (127.0.0.1:9092, ./data).

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use serde::Deserialize;
use sluice_engine::EngineConfig;
use sluice_net::metadata::{FileMetadataStore, MetadataStore, TopicDefaults};
use sluice_net::server::{run_shard, ServerShared};
use sluice_net::ServerConfig;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML config file; without it the embedded defaults apply.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override the data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// The broker config file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfigFile {
    pub engine: EngineConfig,
    pub server: ServerConfig,
    pub cluster: sluice_net::cluster::ClusterConfig,
}

pub fn load_config(path: Option<&PathBuf>) -> Result<BrokerConfigFile, String> {
    match path {
        None => Ok(BrokerConfigFile::default()),
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
        }
    }
}

pub fn run(args: ServeArgs) -> Result<(), String> {
    let mut file = load_config(args.config.as_ref())?;
    if let Some(dir) = args.data_dir {
        file.engine.data_dir = dir;
    }
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    file.engine.validate(online).map_err(|e| e.to_string())?;
    file.server.validate().map_err(|e| e.to_string())?;
    file.cluster
        .validate(file.server.node_id)
        .map_err(|e| e.to_string())?;
    let placement =
        sluice_engine::runtime::plan_placement(&file.engine).map_err(|e| e.to_string())?;
    let memory = match sluice_tuning::numa::live_nodes() {
        Ok(nodes) => sluice_tuning::numa::memory_nodes(&nodes, &placement),
        Err(e) => sluice_tuning::numa::MemoryNodes {
            nodes: vec![None; placement.len()],
            reason: format!("NUMA topology unreadable ({e}): memory left to the kernel"),
        },
    };
    let memory_policy = if file.engine.numa_memory == sluice_engine::runtime::numa::NumaMemory::Off
    {
        "numa_memory = off: memory left to the kernel".to_string()
    } else {
        memory.reason.clone()
    };
    file.engine.memory_nodes = memory.nodes.clone();
    let cores: Vec<String> = placement
        .iter()
        .zip(&memory.nodes)
        .enumerate()
        .map(|(shard, (cpu, node))| match (cpu, node) {
            (Some(c), Some(n))
                if file.engine.numa_memory != sluice_engine::runtime::numa::NumaMemory::Off =>
            {
                format!("shard {shard} -> cpu {c} (memory on node {n})")
            }
            (Some(c), _) => format!("shard {shard} -> cpu {c}"),
            (None, _) => format!("shard {shard} -> unpinned"),
        })
        .collect();
    eprintln!(
        "sluice: {} shard(s): {}; {memory_policy}; data in {}; listening on {}",
        placement.len(),
        cores.join(", "),
        file.engine.data_dir.display(),
        file.server.listeners
    );
    let overrides =
        sluice_engine::runtime::PlacementOverrides::load(&file.engine.data_dir, placement.len());
    if !overrides.moved.is_empty() {
        let moved: Vec<String> = overrides
            .describe()
            .into_iter()
            .map(|(tp, shard)| format!("{tp} -> shard {shard}"))
            .collect();
        eprintln!(
            "sluice: partitions moved at run time (placement.bin, version {}): {}",
            overrides.version,
            moved.join(", ")
        );
    }

    let (cluster, store): (_, Arc<dyn MetadataStore>) = if file.cluster.enabled() {
        let (host, port) = file.server.advertised().map_err(|e| e.to_string())?;
        let cluster = Arc::new(sluice_net::cluster::Cluster::new(
            file.cluster.clone(),
            file.server.node_id,
            host,
            port,
        ));
        eprintln!(
            "sluice: cluster member {} (voters {}), inter-broker listener {}",
            file.server.node_id, file.cluster.voters, file.cluster.replication_listener
        );
        let store = sluice_net::cluster::store::ControllerStore::new(cluster.clone());
        (Some(cluster), Arc::new(store))
    } else {
        let store = FileMetadataStore::open(&file.engine.data_dir).map_err(|e| e.to_string())?;
        (None, Arc::new(store))
    };
    let shared = ServerShared {
        cluster,
        defaults: Arc::new(TopicDefaults {
            log: file.engine.log.clone(),
            max_message_bytes: file.server.message_max_bytes,
        }),
        config: Arc::new(file.server),
        store,
    };
    let stopping = shared.cluster.clone();
    sluice_engine::runtime::run_with_shutdown(
        file.engine,
        move |shard: Rc<sluice_engine::runtime::Shard>| {
            let shared = shared.clone();
            Box::pin(async move {
                let id = shard.id();
                if let Err(e) = run_shard(shard, shared).await {
                    // A shard that cannot serve (say, the port is taken) makes the broker useless.
                    tracing::error!(shard = %id, error = %e, "server failed to start");
                    eprintln!("sluice: {id}: {e}");
                    std::process::exit(1);
                }
            })
        },
        move |shard: Rc<sluice_engine::runtime::Shard>| {
            let cluster = stopping.clone();
            Box::pin(async move {
                // Shard 0 hands this broker's leaderships away before partitions close;
                // every shard checkpoints its replicas' high watermarks.
                if let Some(c) = cluster {
                    if shard.id().0 == 0 {
                        c.controlled_shutdown().await;
                    }
                    sluice_net::cluster::replicas::checkpoint_all().await;
                }
            })
        },
    )
    .map_err(|e| e.to_string())
}
