//! `sluice serve`: start the broker.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML config file; without it the embedded defaults apply.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override the data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

pub fn run(_args: ServeArgs) -> Result<(), String> {
    Err("serve: not wired yet".into())
}
