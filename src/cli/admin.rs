//! `sluice admin`: operations on a running broker through its admin endpoint.

use sluice_net::admin::move_partition::MoveReport;
use sluice_net::limits::ADMIN_LISTENER_DEFAULT;

#[derive(clap::Args)]
pub struct AdminArgs {
    /// The broker's admin endpoint (`admin_listener` in its `[server]` config).
    #[arg(long, default_value = ADMIN_LISTENER_DEFAULT, global = true)]
    pub admin: String,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// Move one partition to another shard while clients keep using it. Requests for it
    /// wait during the move (one flush and close, about milliseconds) and then go to the
    /// new shard; the placement is kept in <data_dir>/placement.bin across restarts.
    MovePartition {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        #[arg(long)]
        to_shard: usize,
        /// Print the broker's JSON answer.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: AdminArgs) -> Result<(), String> {
    match args.command {
        AdminCommand::MovePartition {
            topic,
            partition,
            to_shard,
            json,
        } => {
            let path = format!(
                "{}?topic={topic}&partition={partition}&to_shard={to_shard}",
                sluice_net::admin::http::MOVE_PATH
            );
            let body = super::status::http_request(&args.admin, "POST", &path)?;
            if json {
                print!("{body}");
                return Ok(());
            }
            let r: MoveReport = serde_json::from_str(&body)
                .map_err(|e| format!("unexpected answer {body:?}: {e}"))?;
            if r.moved {
                println!(
                    "{}-{}: shard {} -> shard {} in {:.1} ms (reopened in {:.1} ms); placement version {}",
                    r.topic,
                    r.partition,
                    r.from_shard,
                    r.to_shard,
                    r.move_us as f64 / 1000.0,
                    r.open_us as f64 / 1000.0,
                    r.placement_version
                );
            } else {
                println!(
                    "{}-{} already is on shard {}; nothing moved",
                    r.topic, r.partition, r.to_shard
                );
            }
            Ok(())
        }
    }
}
