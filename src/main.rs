//! The `sluice` binary: wires the crates together behind one clap command line.

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Kafka-compatible thread-per-core event-streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (embedded defaults: 127.0.0.1:9092, ./data).
    Serve(cli::serve::ServeArgs),
    /// Inspect the machine; propose a shard placement; advise (or --apply) OS settings.
    Tune(cli::tune::TuneArgs),
    /// Load-generate against any Kafka-API broker; latency histograms, tables, plots.
    Bench(cli::bench::BenchArgs),
    /// Show a running broker's shards, partitions and their load (from its admin endpoint).
    Status(cli::status::StatusArgs),
    /// Operate a running broker (move a partition to another shard).
    Admin(cli::admin::AdminArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Tune(args) => cli::tune::run(args),
        Command::Bench(args) => cli::bench::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::Admin(args) => cli::admin::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
