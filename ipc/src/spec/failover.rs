//! Automatic failover of an input: its backups, their timings, the
//! operator's choice, and the names of the sources.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{ProducerSpec, SpecError};
use crate::units::{LevelDbfs, Name};

/// The name by which failover, events and `airliftctl input select` call an
/// input's own producer, as opposed to its backups.
pub const PRIMARY_SOURCE: &str = "primary";

/// What D-Bus and `airliftctl input select` pass for "automatic selection".
pub const AUTO_SOURCE: &str = "auto";

/// Most backups one input may name.
pub const MAX_BACKUPS: usize = 4;

/// Automatic failover of an input: its producer (the source `primary`) and
/// backups in order of preference. The input plays the first source, in that
/// order, that is neither lost (no audio for `loss_ms`) nor silent (below
/// `silence_threshold_dbfs` for `silence_ms`); it goes back to a preferred
/// source once that has been healthy for `return_after_ms`. Every switch
/// crossfades over `crossfade_ms`. All sources run all the time, so a
/// backup is ready the moment it is needed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverSpec {
    /// Backups, most preferred first.
    #[serde(rename = "backup")]
    pub backups: Vec<BackupSpec>,
    /// A source that delivers no audio for this long counts as lost, ms.
    #[serde(default = "default_loss_ms")]
    pub loss_ms: u32,
    /// Level below which a source counts as silent; `None`: silence never
    /// switches.
    #[serde(default)]
    pub silence_threshold_dbfs: Option<LevelDbfs>,
    /// How long a source must stay below the threshold to count as silent, ms.
    #[serde(default = "default_silence_ms")]
    pub silence_ms: u32,
    /// Crossfade between the old and the new source at a switch, ms.
    #[serde(default = "default_crossfade_ms")]
    pub crossfade_ms: u32,
    /// How long a more preferred source must be healthy before the input
    /// switches back to it, ms.
    #[serde(default = "default_return_after_ms")]
    pub return_after_ms: u32,
    /// The operator's choice (`primary` or a backup's name), which holds
    /// whatever the sources do; `None`: automatic.
    #[serde(default)]
    pub selected: Option<Name>,
}

fn default_loss_ms() -> u32 {
    500
}

fn default_silence_ms() -> u32 {
    10_000
}

fn default_crossfade_ms() -> u32 {
    50
}

fn default_return_after_ms() -> u32 {
    10_000
}

impl FailoverSpec {
    /// Failover to `backups` with the default timings and no silence rule.
    pub fn new(backups: Vec<BackupSpec>) -> Self {
        Self {
            backups,
            loss_ms: default_loss_ms(),
            silence_threshold_dbfs: None,
            silence_ms: default_silence_ms(),
            crossfade_ms: default_crossfade_ms(),
            return_after_ms: default_return_after_ms(),
            selected: None,
        }
    }

    /// The index of source `name` (0: the primary, then the backups in order).
    pub fn source_index(&self, name: &str) -> Option<usize> {
        if name == PRIMARY_SOURCE {
            return Some(0);
        }
        self.backups.iter().position(|b| b.name.as_str() == name).map(|i| i + 1)
    }

    /// The name of source `index` (0: `primary`).
    pub fn source_name(&self, index: usize) -> Option<&str> {
        match index {
            0 => Some(PRIMARY_SOURCE),
            i => self.backups.get(i - 1).map(|b| b.name.as_str()),
        }
    }

    pub(super) fn validate(&self, flow: &str, input: &str, errors: &mut Vec<SpecError>) {
        let field = |f: &str| format!("input[{input}].failover.{f}");
        if self.backups.is_empty() || self.backups.len() > MAX_BACKUPS {
            errors.push(SpecError::new(flow, field("backup"), format!("name 1 to {MAX_BACKUPS} backups")));
        }
        let mut seen = HashSet::new();
        for b in &self.backups {
            if [PRIMARY_SOURCE, AUTO_SOURCE].contains(&b.name.as_str()) || !seen.insert(b.name.as_str()) {
                errors.push(SpecError::new(
                    flow,
                    field(&format!("backup[{}]", b.name)),
                    format!(
                        "a backup's name must be unique and neither {PRIMARY_SOURCE:?} nor {AUTO_SOURCE:?}"
                    ),
                ));
            }
            if !matches!(
                b.producer,
                ProducerSpec::SrtIn(_) | ProducerSpec::File(_) | ProducerSpec::TestSignal(_)
            ) {
                errors.push(SpecError::new(
                    flow,
                    field(&format!("backup[{}].producer", b.name)),
                    "a backup is an SRT input, a file or a test signal",
                ));
            }
        }
        for (name, value, range) in [
            ("loss_ms", self.loss_ms, 20..=60_000),
            ("silence_ms", self.silence_ms, 100..=3_600_000),
            ("crossfade_ms", self.crossfade_ms, 0..=2_000),
            ("return_after_ms", self.return_after_ms, 0..=3_600_000),
        ] {
            if !range.contains(&value) {
                errors.push(SpecError::new(
                    flow,
                    field(name),
                    format!("{value} is outside {} to {}", range.start(), range.end()),
                ));
            }
        }
        if let Some(selected) = &self.selected
            && self.source_index(selected.as_str()).is_none()
        {
            errors.push(SpecError::new(
                flow,
                field("selected"),
                format!("\"{selected}\" is neither {PRIMARY_SOURCE:?} nor a backup of this input"),
            ));
        }
    }
}

/// One backup source of an input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSpec {
    /// The source's name, unique among the input's backups (not `primary`).
    pub name: Name,
    /// Where its audio comes from: an SRT input, a file or a test signal.
    pub producer: ProducerSpec,
}
