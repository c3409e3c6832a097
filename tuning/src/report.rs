//! The report in both forms (human text, JSON) and the `[engine]` config snippet.

use std::fmt::Write as _;
use std::io::Write;

use serde::Serialize;

use crate::advice::{Action, Finding, Verdict};
use crate::apply::{ApplyStep, Outcome};
use crate::cpulist;
use crate::error::TuneError;
use crate::machine::Machine;
use crate::placement::Placement;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub placement: Placement,
    pub findings: Vec<Finding>,
    /// TOML for `sluice serve --config`.
    pub config_snippet: String,
    /// Findings that make `--check` fail.
    pub important: usize,
    /// What `--apply` did (or would do, in a dry run).
    pub apply: Option<Vec<ApplyStep>>,
}

impl Report {
    pub fn new(machine: Machine, placement: Placement, findings: Vec<Finding>) -> Self {
        let config_snippet = config_snippet(&machine, &placement);
        let important = findings
            .iter()
            .filter(|f| f.verdict == Verdict::Important)
            .count();
        Report {
            machine,
            placement,
            findings,
            config_snippet,
            important,
            apply: None,
        }
    }

    /// True when some write of `--apply` failed.
    pub fn apply_failed(&self) -> bool {
        self.apply
            .iter()
            .flatten()
            .any(|s| matches!(s.outcome, Outcome::Failed { .. }))
    }

    pub fn write_json(&self, out: &mut dyn Write) -> Result<(), TuneError> {
        serde_json::to_writer_pretty(&mut *out, self)
            .map_err(|source| TuneError::Json { source })?;
        writeln!(out).map_err(|source| TuneError::Output { source })
    }

    pub fn write_human(&self, out: &mut dyn Write) -> Result<(), TuneError> {
        out.write_all(self.human().as_bytes())
            .map_err(|source| TuneError::Output { source })
    }

    fn human(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let host = &m.host;
        let _ = writeln!(
            s,
            "sluice tune: {} - {}, {} CPUs, {} NUMA node(s), {:.1} GiB, Linux {}",
            host.hostname.as_deref().unwrap_or("unknown host"),
            host.cpu_brand.as_deref().unwrap_or("unknown CPU"),
            m.cpus.len(),
            m.numa_nodes.len().max(1),
            m.memory_total_bytes as f64 / (1u64 << 30) as f64,
            host.kernel.as_deref().unwrap_or("unknown"),
        );
        for dir in &m.data_dirs {
            let mount = dir.mount.as_ref().map_or("no mount found".into(), |mt| {
                format!("{} {} on {}", mt.fs_type, mt.source, mt.mount_point)
            });
            let devices: Vec<String> = dir
                .devices
                .iter()
                .map(|d| {
                    format!(
                        "{} (NUMA node {})",
                        d.name,
                        d.numa_node.map_or("unknown".into(), |n| n.to_string())
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "data dir {}: {mount}; disks: {}",
                dir.path.display(),
                if devices.is_empty() {
                    "none".into()
                } else {
                    devices.join(", ")
                }
            );
        }

        let advised = self
            .findings
            .iter()
            .filter(|f| f.verdict == Verdict::Advise)
            .count();
        let _ = writeln!(
            s,
            "\nFindings ({} to fix, {advised} advised):",
            self.important
        );
        for f in &self.findings {
            let advised = f
                .advised
                .as_ref()
                .map(|a| format!(" -> {a}"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {:<6} {:<17} {:<10} {}{advised}",
                f.verdict.label(),
                f.topic,
                f.subject,
                f.observed
            );
            if f.verdict != Verdict::Good {
                let _ = writeln!(s, "         {}", f.why);
            }
        }

        let p = &self.placement;
        let _ = writeln!(s, "\nPlacement:");
        let _ = writeln!(
            s,
            "  NUMA node {}: {}",
            p.node.map_or("-".into(), |n| n.to_string()),
            p.node_reason
        );
        let _ = writeln!(
            s,
            "  shards on CPUs {} ({} shards)",
            cpulist::format(&p.shard_cores),
            p.shard_cores.len()
        );
        let _ = writeln!(
            s,
            "  IRQ/OS CPUs: {}",
            if p.os_cores.is_empty() {
                "none kept (fewer than 4 cores)".into()
            } else {
                cpulist::format(&p.os_cores)
            }
        );
        let _ = writeln!(
            s,
            "  io memory {} MiB per shard ({} MiB with memlock unlimited); ring depth {} ({})",
            p.io_memory_bytes >> 20,
            p.io_memory_bytes_memlock_unlimited >> 20,
            p.ring_depth,
            p.ring_depth_reason
        );
        let _ = writeln!(
            s,
            "  up to {} active partitions per shard; give topics a multiple of {} partitions",
            p.partitions_per_shard,
            p.shard_cores.len()
        );
        for note in &p.notes {
            let _ = writeln!(s, "  note: {note}");
        }

        let _ = writeln!(s, "\nConfig snippet for `sluice serve --config`:");
        for line in self.config_snippet.lines() {
            let _ = writeln!(s, "  {line}");
        }

        if let Some(steps) = &self.apply {
            let _ = writeln!(s, "\nApply:");
            if steps.is_empty() {
                let _ = writeln!(s, "  nothing to write");
            }
            for step in steps {
                let _ = writeln!(s, "  {}", step.describe());
            }
        }
        let manual: Vec<&str> = self
            .findings
            .iter()
            .filter(|f| f.verdict >= Verdict::Advise)
            .flat_map(|f| f.actions.iter())
            .filter_map(|a| match a {
                Action::Manual { text } => Some(text.as_str()),
                Action::Write { .. } => None,
            })
            .collect();
        if !manual.is_empty() {
            let _ = writeln!(s, "\nBy hand (--apply does not do these):");
            for text in manual {
                let _ = writeln!(s, "  - {text}");
            }
        }
        if self.apply.is_none()
            && self
                .findings
                .iter()
                .any(|f| f.actions.iter().any(|a| matches!(a, Action::Write { .. })))
        {
            let _ = writeln!(s, "\nNothing was changed; `sluice tune --apply` makes the writes (add --dry-run to list them).");
        }
        s
    }
}

/// The `[engine]` table `sluice serve --config` reads, with the reasoning as comments.
pub fn config_snippet(machine: &Machine, placement: &Placement) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Proposed by `sluice tune` for {}: shards on NUMA node {} ({}).",
        machine.host.hostname.as_deref().unwrap_or("this machine"),
        placement.node.map_or("-".into(), |n| n.to_string()),
        placement.node_reason
    );
    if !placement.os_cores.is_empty() {
        let _ = writeln!(
            s,
            "# CPUs {} are left for IRQs and the OS.",
            cpulist::format(&placement.os_cores)
        );
    }
    let _ = writeln!(
        s,
        "# Up to {} active partitions per shard; give topics a multiple of {} partitions.",
        placement.partitions_per_shard,
        placement.shard_cores.len()
    );
    let _ = writeln!(s, "[engine]");
    if let Some(dir) = &placement.data_dir {
        let _ = writeln!(s, "data_dir = {}", toml_string(&dir.to_string_lossy()));
    }
    let cores: Vec<String> = placement
        .shard_cores
        .iter()
        .map(ToString::to_string)
        .collect();
    let _ = writeln!(s, "cores = [{}]", cores.join(", "));
    let _ = writeln!(
        s,
        "io_memory_bytes = {} # {} MiB",
        placement.io_memory_bytes,
        placement.io_memory_bytes >> 20
    );
    let _ = writeln!(s, "ring_depth = {}", placement.ring_depth);
    s
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(s, "\\u{:04X}", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(toml_string(r#"/a "b"\c"#), r#""/a \"b\"\\c""#);
        assert_eq!(toml_string("a\tb"), "\"a\\u0009b\"");
    }
}
