//! `sluice tune`: inspect the machine, propose a placement, advise (and apply) OS settings.

use std::path::PathBuf;

use sluice_tuning::{ApplyMode, InspectOptions, Report};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Findings, placement and the config snippet, for people.
    Human,
    /// Everything, for scripts.
    Json,
    /// Only the `[engine]` config snippet: `sluice tune --format toml > sluice.toml`.
    Toml,
}

#[derive(clap::Args)]
pub struct TuneArgs {
    /// Data directory whose disks to inspect (repeat for several); the first goes into the
    /// config snippet.
    #[arg(long = "data-dir", default_value = "./data")]
    pub data_dirs: Vec<PathBuf>,
    /// Exit non-zero when an important setting is off.
    #[arg(long)]
    pub check: bool,
    /// Make the advised sysfs/procfs writes (runtime only; persistence is printed).
    #[arg(long)]
    pub apply: bool,
    /// With --apply: print each write (path and value), change nothing.
    #[arg(long, requires = "apply")]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Read sys/ and proc/ under this directory instead of / (a captured machine).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
}

pub fn run(args: TuneArgs) -> Result<(), String> {
    let options = if args.root == std::path::Path::new("/") {
        InspectOptions::live(args.data_dirs)
    } else {
        InspectOptions::captured(args.root.clone(), args.data_dirs)
    };
    let machine = sluice_tuning::inspect(&options).map_err(|e| e.to_string())?;
    let placement = sluice_tuning::propose(&machine);
    let findings = sluice_tuning::assess(&machine, &placement);
    let mut report = Report::new(machine, placement, findings);
    if args.apply {
        let mode = if args.dry_run {
            ApplyMode::DryRun
        } else {
            ApplyMode::Write
        };
        report.apply = Some(
            sluice_tuning::apply(&args.root, &report.findings, mode).map_err(|e| e.to_string())?,
        );
    }
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Human => report.write_human(&mut stdout),
        Format::Json => report.write_json(&mut stdout),
        Format::Toml => std::io::Write::write_all(&mut stdout, report.config_snippet.as_bytes())
            .map_err(|source| sluice_tuning::TuneError::Output { source }),
    }
    .map_err(|e| e.to_string())?;
    if report.apply_failed() {
        return Err("tune: some writes failed (see Apply above; run as root)".into());
    }
    if args.check && report.important > 0 {
        return Err(format!(
            "tune --check: {} important setting(s) off",
            report.important
        ));
    }
    Ok(())
}
