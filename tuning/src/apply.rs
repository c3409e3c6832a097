//! `--apply`: makes the file writes the findings advise. With `--dry-run` it only lists
//! them. Writes are runtime-only; each finding also carries how to persist it.

use std::path::Path;

use serde::Serialize;

use crate::advice::{Action, Finding, Verdict};
use crate::error::TuneError;
use crate::sysroot::SysRoot;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyMode {
    /// List each write; change nothing.
    DryRun,
    /// Write.
    Write,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// Dry run: would be written.
    Planned,
    Written,
    Failed {
        error: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApplyStep {
    /// As named on the machine ("/sys/block/vda/queue/scheduler").
    pub path: String,
    pub value: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl ApplyStep {
    /// The line printed for this step.
    pub fn describe(&self) -> String {
        match &self.outcome {
            Outcome::Planned => format!("would write {:?} to {}", self.value, self.path),
            Outcome::Written => format!("wrote {:?} to {}", self.value, self.path),
            Outcome::Failed { error } => {
                format!("FAILED to write {:?} to {}: {error}", self.value, self.path)
            }
        }
    }
}

/// Makes (or, in a dry run, lists) every write advised by a finding that is not already
/// good, under `root` ("/" on the live machine). A failed write is recorded and the rest
/// still run: one read-only attribute should not stop the others.
pub fn apply(
    root: &Path,
    findings: &[Finding],
    mode: ApplyMode,
) -> Result<Vec<ApplyStep>, TuneError> {
    let sys = SysRoot::new(root)?;
    let mut steps = Vec::new();
    for finding in findings.iter().filter(|f| f.verdict >= Verdict::Advise) {
        for action in &finding.actions {
            let Action::Write { path, value } = action else {
                continue;
            };
            let outcome = match mode {
                ApplyMode::DryRun => Outcome::Planned,
                ApplyMode::Write => match sys.write(path, value) {
                    Ok(()) => {
                        tracing::info!(path = %path, value = %value, "tune: wrote");
                        Outcome::Written
                    }
                    Err(e) => Outcome::Failed {
                        error: e.to_string(),
                    },
                },
            };
            steps.push(ApplyStep {
                path: path.clone(),
                value: value.clone(),
                outcome,
            });
        }
    }
    Ok(steps)
}
