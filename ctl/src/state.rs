//! The runtime state: what the operator changed on top of the configuration
//! file — gain, mute and pan per input, stopped flows, paused configured pull
//! jobs, pull jobs started over D-Bus — and what the `stop_recording` spool
//! policy stopped.
//!
//! Pure logic plus the state file: [`RuntimeState::apply`] merges the
//! overrides into the configuration's desired state (what the engine is sent
//! on every (re)connect), [`RuntimeState::reload`] keeps them across a reload
//! (a value the file changed wins for its key), [`RuntimeState::rows`] lists
//! them beside the configured values, and [`save`] / [`restore`] keep them
//! across ctld restarts (write, fsync, rename, fsync the directory; a corrupt
//! file is moved aside and the configuration applies).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use airlift_ipc::spec::{ConsumerSpec, DesiredState, FlowSpec, InputSpec, PullSpec, SrtMode, TsSink};
use airlift_ipc::units::{GainDb, Name, Pan};

/// The state file's format version, written into every file.
pub const FORMAT: u32 = 1;

/// Largest state file read (a few hundred overrides take a few kB).
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The operator's values for one input; `None` keeps the configured one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputOverride {
    /// Gain in dB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gain_db: Option<GainDb>,
    /// Muted or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<bool>,
    /// Pan position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pan: Option<Pan>,
    /// The source an input with backups plays: a source's name, or `auto`
    /// for automatic selection where the configuration forces one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Name>,
}

impl InputOverride {
    fn is_empty(&self) -> bool {
        self.gain_db.is_none() && self.muted.is_none() && self.pan.is_none() && self.source.is_none()
    }
}

/// One input setting: gain, mute, pan or the source of an input with backups.
#[derive(Debug, Clone, PartialEq)]
pub enum InputSetting {
    /// Gain in dB.
    Gain(GainDb),
    /// Muted or not.
    Mute(bool),
    /// Pan position.
    Pan(Pan),
    /// The source forced (`primary` or a backup's name), or `None` for
    /// automatic selection.
    Source(Option<Name>),
}

/// The configured source choice of `input`, as an override spells it.
fn configured_source(input: &InputSpec) -> Option<Name> {
    input.failover.as_ref().and_then(|f| f.selected.clone())
}

/// `auto` as a name (for overrides of a configured choice).
fn auto_name() -> Name {
    Name::new(airlift_ipc::spec::AUTO_SOURCE).expect("\"auto\" is a valid name")
}

/// Everything the operator (and the spool policy) changed at run time, as
/// kept in memory and in the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeState {
    /// [`FORMAT`] of the file this came from.
    #[serde(default)]
    pub format: u32,
    /// Input overrides by flow, then input.
    #[serde(default)]
    pub inputs: BTreeMap<Name, BTreeMap<Name, InputOverride>>,
    /// Flows the operator stopped.
    #[serde(default)]
    pub stopped: BTreeSet<Name>,
    /// Configured pull jobs the operator stopped.
    #[serde(default)]
    pub paused_pulls: BTreeSet<Name>,
    /// Pull jobs started at run time, with their name, source (the allocated
    /// listener port included) and segment options.
    #[serde(default)]
    pub pulls: Vec<PullSpec>,
    /// The `stop_recording` spool policy holds every flow with a segments
    /// output and every pull job.
    #[serde(default)]
    pub policy_stop: bool,
}

/// One runtime value next to the configured one, for `RuntimeState()` and
/// `airliftctl state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideRow {
    /// The flow, or empty for a pull job.
    pub flow: String,
    /// The input, `pull <name>` for a pull job, or empty for the flow itself.
    pub subject: String,
    /// `gain_db`, `muted`, `pan`, `state` or `source`.
    pub key: String,
    /// The value in force.
    pub runtime: String,
    /// The value of the configuration file.
    pub config: String,
}

/// Whether `flow` writes segments into the spool (the spool policy stops it).
pub fn writes_segments(flow: &FlowSpec) -> bool {
    flow.outputs
        .iter()
        .any(|o| matches!(&o.consumer, ConsumerSpec::Encoded(e) if matches!(e.sink, TsSink::Segments(_))))
}

fn find_input<'a>(config: &'a DesiredState, flow: &Name, input: &Name) -> Option<&'a InputSpec> {
    config.flows.iter().find(|f| &f.name == flow)?.inputs.iter().find(|i| &i.name == input)
}

impl RuntimeState {
    /// Sets one input's value; a value equal to the configured one removes
    /// the override. Returns whether anything changed. The flow and input
    /// must exist in `config` (checked by the caller).
    pub fn set_input(
        &mut self,
        config: &DesiredState,
        flow: &Name,
        input: &Name,
        value: InputSetting,
    ) -> bool {
        let Some(spec) = find_input(config, flow, input) else { return false };
        let before = self.inputs.clone();
        let entry = self.inputs.entry(flow.clone()).or_default().entry(input.clone()).or_default();
        match value {
            InputSetting::Gain(g) => entry.gain_db = (g != spec.gain_db).then_some(g),
            InputSetting::Mute(m) => entry.muted = (m != spec.muted).then_some(m),
            InputSetting::Pan(p) => entry.pan = (p != spec.pan).then_some(p),
            InputSetting::Source(choice) => {
                entry.source = (choice != configured_source(spec)).then(|| choice.unwrap_or_else(auto_name));
            }
        }
        self.prune();
        self.inputs != before
    }

    fn prune(&mut self) {
        for inputs in self.inputs.values_mut() {
            inputs.retain(|_, o| !o.is_empty());
        }
        self.inputs.retain(|_, i| !i.is_empty());
    }

    /// The effective gain, mute and pan of one input (configured values
    /// with the overrides on top), or `None` when `config` lacks it.
    pub fn input_values(
        &self,
        config: &DesiredState,
        flow: &Name,
        input: &Name,
    ) -> Option<(GainDb, bool, Pan)> {
        let spec = find_input(config, flow, input)?;
        let o = self.inputs.get(flow).and_then(|i| i.get(input)).cloned().unwrap_or_default();
        Some((o.gain_db.unwrap_or(spec.gain_db), o.muted.unwrap_or(spec.muted), o.pan.unwrap_or(spec.pan)))
    }

    /// Whether the spool policy holds `flow` (of `config`) stopped.
    pub fn policy_holds(&self, config: &DesiredState, flow: &Name) -> bool {
        self.policy_stop && config.flows.iter().any(|f| &f.name == flow && writes_segments(f))
    }

    /// What the engine runs: `config` with the input overrides applied, the
    /// stopped flows named in [`DesiredState::stopped`], paused pull jobs
    /// left out and runtime pull jobs added; while the spool policy holds,
    /// flows with a segments output are stopped and no pull job runs.
    pub fn apply(&self, config: &DesiredState) -> DesiredState {
        let mut state = config.clone();
        for flow in &mut state.flows {
            let Some(inputs) = self.inputs.get(&flow.name) else { continue };
            for input in &mut flow.inputs {
                let Some(o) = inputs.get(&input.name) else { continue };
                input.gain_db = o.gain_db.unwrap_or(input.gain_db);
                input.muted = o.muted.unwrap_or(input.muted);
                input.pan = o.pan.unwrap_or(input.pan);
                if let (Some(choice), Some(f)) = (&o.source, input.failover.as_mut()) {
                    f.selected = (choice.as_str() != airlift_ipc::spec::AUTO_SOURCE).then(|| choice.clone());
                }
            }
        }
        let stopped: Vec<Name> = state
            .flows
            .iter()
            .filter(|f| {
                config.stopped.contains(&f.name)
                    || self.stopped.contains(&f.name)
                    || (self.policy_stop && writes_segments(f))
            })
            .map(|f| f.name.clone())
            .collect();
        state.stopped = stopped;
        state.pulls.retain(|p| !self.paused_pulls.contains(&p.name));
        state.pulls.extend(self.runtime_pulls(config).cloned());
        if self.policy_stop {
            state.pulls.clear();
        }
        state
    }

    /// Everything that holds an SRT port: `config` with every runtime pull
    /// job added, running or not (a paused or policy-stopped job keeps its
    /// port, so it comes back on the same one).
    pub fn holding(&self, config: &DesiredState) -> DesiredState {
        let mut state = config.clone();
        state.pulls.extend(self.runtime_pulls(config).cloned());
        state
    }

    /// The runtime pull jobs that `config` does not configure itself.
    pub fn runtime_pulls<'a>(&'a self, config: &'a DesiredState) -> impl Iterator<Item = &'a PullSpec> {
        self.pulls.iter().filter(|r| !config.pulls.iter().any(|p| p.name == r.name))
    }

    /// Drops what `config` no longer has room for: overrides of flows,
    /// inputs and configured pull jobs it lacks, and runtime pull jobs whose
    /// name it now configures or whose segment job it uses. Returns one line
    /// per dropped override, for the log.
    pub fn retain_known(&mut self, config: &DesiredState) -> Vec<String> {
        let mut dropped = Vec::new();
        self.inputs.retain(|flow, inputs| {
            let Some(spec) = config.flows.iter().find(|f| &f.name == flow) else {
                dropped.push(format!("flow {flow} is no longer configured: its input overrides are dropped"));
                return false;
            };
            inputs.retain(|input, _| {
                let known = spec.inputs.iter().any(|i| &i.name == input);
                if !known {
                    dropped.push(format!(
                        "flow {flow} has no input {input} any more: its overrides are dropped"
                    ));
                }
                known
            });
            !inputs.is_empty()
        });
        self.stopped.retain(|flow| {
            let known = config.flows.iter().any(|f| &f.name == flow);
            if !known {
                dropped.push(format!("flow {flow} is no longer configured: its stop is dropped"));
            }
            known
        });
        self.paused_pulls.retain(|job| {
            let known = config.pulls.iter().any(|p| &p.name == job);
            if !known {
                dropped.push(format!("pull job {job} is no longer configured: its stop is dropped"));
            }
            known
        });
        let mut jobs: BTreeSet<String> = config.segment_jobs().map(|(_, _, job)| job.to_string()).collect();
        let mut ports: BTreeMap<u16, String> =
            crate::controller::listener_ports(config).into_iter().collect();
        let mut kept: Vec<PullSpec> = Vec::new();
        for pull in std::mem::take(&mut self.pulls) {
            let job = pull.segments.job.as_str();
            let reason = if config.pulls.iter().any(|p| p.name == pull.name) {
                Some("the file now configures a pull job of this name, which replaces it".to_string())
            } else if let Some(r) = airlift_ipc::spec::reserved_job_name(job) {
                Some(r)
            } else if jobs.contains(job) {
                Some(format!("its segment job {job} is already used"))
            } else if let SrtMode::Listener { port } = pull.source.mode
                && let Some(owner) = ports.get(&port.get())
            {
                Some(format!("its listener port {port} is now used by {owner}"))
            } else if let Err(errors) =
                (DesiredState { pulls: vec![pull.clone()], ..DesiredState::default() }).validate()
            {
                Some(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
            } else {
                None
            };
            match reason {
                Some(r) => dropped.push(format!("runtime pull job {} is dropped: {r}", pull.name)),
                None => {
                    jobs.insert(job.to_string());
                    if let SrtMode::Listener { port } = pull.source.mode {
                        ports.insert(port.get(), format!("pull {}", pull.name));
                    }
                    kept.push(pull);
                }
            }
        }
        self.pulls = kept;
        dropped
    }

    /// Carries the overrides from configuration `old` to `new`: a value the
    /// file changed wins over the operator's value for that key (the
    /// override is dropped); a configured pull job whose entry changed runs
    /// again; everything else keeps the operator's value. Then drops what
    /// `new` lacks ([`Self::retain_known`]). Returns one line per dropped
    /// override, for the log.
    pub fn reload(&mut self, old: &DesiredState, new: &DesiredState) -> Vec<String> {
        let mut dropped = Vec::new();
        for (flow, inputs) in &mut self.inputs {
            for (input, o) in inputs.iter_mut() {
                let (Some(was), Some(now)) = (find_input(old, flow, input), find_input(new, flow, input))
                else {
                    continue;
                };
                if o.gain_db.is_some() && was.gain_db != now.gain_db {
                    dropped.push(format!(
                        "flow {flow} input {input}: the file changed gain_db from {} to {}; the file wins",
                        was.gain_db, now.gain_db
                    ));
                    o.gain_db = None;
                }
                if o.muted.is_some() && was.muted != now.muted {
                    dropped.push(format!(
                        "flow {flow} input {input}: the file changed muted from {} to {}; the file wins",
                        was.muted, now.muted
                    ));
                    o.muted = None;
                }
                if o.pan.is_some() && was.pan != now.pan {
                    dropped.push(format!(
                        "flow {flow} input {input}: the file changed pan from {} to {}; the file wins",
                        was.pan, now.pan
                    ));
                    o.pan = None;
                }
            }
        }
        self.prune();
        self.paused_pulls.retain(|job| {
            let was = old.pulls.iter().find(|p| &p.name == job);
            let now = new.pulls.iter().find(|p| &p.name == job);
            let changed = was.is_some() && now.is_some() && was != now;
            if changed {
                dropped
                    .push(format!("pull job {job}: the file changed its entry; the file wins and it runs"));
            }
            !changed
        });
        // A value the file now gives itself is no override any more.
        for (flow, per) in &mut self.inputs {
            for (input, o) in per.iter_mut() {
                let Some(spec) = find_input(new, flow, input) else { continue };
                if o.gain_db == Some(spec.gain_db) {
                    o.gain_db = None;
                }
                if o.muted == Some(spec.muted) {
                    o.muted = None;
                }
                if o.pan == Some(spec.pan) {
                    o.pan = None;
                }
            }
        }
        self.prune();
        dropped.extend(self.retain_known(new));
        dropped
    }

    /// Clears the operator's overrides of flow or pull job `name`, or all of
    /// them for `None`; the spool policy's stop stays (the spool decides).
    /// Returns how many values were cleared.
    pub fn reset(&mut self, name: Option<&Name>) -> usize {
        let before = self.operator_overrides();
        match name {
            None => *self = RuntimeState { policy_stop: self.policy_stop, ..RuntimeState::default() },
            Some(n) => {
                self.inputs.remove(n);
                self.stopped.remove(n);
                self.paused_pulls.remove(n);
                self.pulls.retain(|p| &p.name != n);
            }
        }
        before - self.operator_overrides()
    }

    /// How many values the operator set: input keys, stopped flows, paused
    /// and runtime pull jobs.
    pub fn operator_overrides(&self) -> usize {
        let keys: usize = self
            .inputs
            .values()
            .flat_map(BTreeMap::values)
            .map(|o| {
                usize::from(o.gain_db.is_some())
                    + usize::from(o.muted.is_some())
                    + usize::from(o.pan.is_some())
            })
            .sum();
        keys + self.stopped.len() + self.paused_pulls.len() + self.pulls.len()
    }

    /// Whether `name` is a flow or pull job this state or `config` knows.
    pub fn knows(&self, config: &DesiredState, name: &Name) -> bool {
        config.flows.iter().any(|f| &f.name == name)
            || config.pulls.iter().any(|p| &p.name == name)
            || self.pulls.iter().any(|p| &p.name == name)
    }

    /// Every runtime value next to its configured value, flows first.
    pub fn rows(&self, config: &DesiredState) -> Vec<OverrideRow> {
        let mut rows = Vec::new();
        let row = |flow: &str, subject: &str, key: &str, runtime: String, config: String| OverrideRow {
            flow: flow.into(),
            subject: subject.into(),
            key: key.into(),
            runtime,
            config,
        };
        for flow in &config.flows {
            let name = flow.name.as_str();
            if let Some(inputs) = self.inputs.get(&flow.name) {
                for input in &flow.inputs {
                    let Some(o) = inputs.get(&input.name) else { continue };
                    let i = input.name.as_str();
                    if let Some(g) = o.gain_db {
                        rows.push(row(name, i, "gain_db", g.to_string(), input.gain_db.to_string()));
                    }
                    if let Some(m) = o.muted {
                        rows.push(row(name, i, "muted", m.to_string(), input.muted.to_string()));
                    }
                    if let Some(p) = o.pan {
                        rows.push(row(name, i, "pan", p.to_string(), input.pan.to_string()));
                    }
                    if let Some(choice) = &o.source {
                        let configured =
                            configured_source(input).map_or_else(|| "auto".to_string(), |n| n.to_string());
                        rows.push(row(name, i, "source", choice.to_string(), configured));
                    }
                }
            }
            if self.stopped.contains(&flow.name) {
                rows.push(row(name, "", "state", "stopped".into(), "running".into()));
            } else if self.policy_stop && writes_segments(flow) {
                rows.push(row(name, "", "state", "stopped by the spool policy".into(), "running".into()));
            }
        }
        for pull in &config.pulls {
            let subject = format!("pull {}", pull.name);
            if self.paused_pulls.contains(&pull.name) {
                rows.push(row("", &subject, "state", "stopped".into(), "running".into()));
            } else if self.policy_stop {
                rows.push(row("", &subject, "state", "stopped by the spool policy".into(), "running".into()));
            }
        }
        for pull in self.runtime_pulls(config) {
            let subject = format!("pull {}", pull.name);
            let source = crate::controller::source_url(&pull.source);
            let state = if self.policy_stop { " (stopped by the spool policy)" } else { "" };
            rows.push(row("", &subject, "source", format!("{source}{state}"), "(not configured)".into()));
        }
        rows
    }
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateFileError {
    /// Reading, writing or renaming failed (permissions, a full or
    /// read-only disk): fix the cause; the state in memory still holds and
    /// is written again with the next change.
    #[error("state file {}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not a runtime state this ctld reads (damaged, truncated,
    /// edited, or written by a newer version): [`restore`] moves it aside.
    #[error("state file {}: {message}", path.display())]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StateFileError + '_ {
    move |source| StateFileError::Io { path: path.to_path_buf(), source }
}

/// Reads the state file; `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<RuntimeState>, StateFileError> {
    let corrupt = |message: String| StateFileError::Corrupt { path: path.to_path_buf(), message };
    // Looked at before it is opened: opening a FIFO would block.
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    if !meta.is_file() {
        return Err(corrupt("is not a regular file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(corrupt(format!("is larger than {MAX_FILE_BYTES} bytes")));
    }
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES).read_to_end(&mut text))
        .map_err(io_error(path))?;
    let state: RuntimeState =
        serde_json::from_slice(&text).map_err(|e| corrupt(format!("is not a valid runtime state: {e}")))?;
    if state.format != FORMAT {
        return Err(corrupt(format!("has format {}; this ctld reads format {FORMAT}", state.format)));
    }
    Ok(Some(state))
}

/// Writes `state` to `path` atomically: a temporary file beside it is
/// written and fsynced, renamed over `path`, and the directory fsynced, so
/// a crash leaves either the old or the new file, never a torn one. The
/// file is readable by its owner only (it may hold SRT passphrases).
pub fn save(path: &Path, state: &RuntimeState) -> Result<(), StateFileError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp"));
    let mut state = state.clone();
    state.format = FORMAT;
    let mut text = serde_json::to_vec_pretty(&state).map_err(|e| StateFileError::Corrupt {
        path: path.to_path_buf(),
        message: format!("cannot be encoded: {e}"),
    })?;
    text.push(b'\n');
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&tmp)(e)),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_error(&tmp))?;
    file.write_all(&text).and_then(|()| file.sync_all()).map_err(io_error(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_error(path))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))?;
    Ok(())
}

/// The runtime state ctld starts with.
#[derive(Debug, Default)]
pub struct Restored {
    /// The state, fitted to the configuration.
    pub state: RuntimeState,
    /// Overrides dropped because the configuration lacks their flow,
    /// input or job (for the log).
    pub dropped: Vec<String>,
    /// Why the file could not be used, when it could not (an alarm): the
    /// configuration applies alone.
    pub problem: Option<String>,
}

/// Reads the state file at start-up and fits it to `config`. A file that
/// cannot be used is moved aside as `<name>.corrupt-<unix_time>` (kept for
/// a post-mortem) and the configuration applies alone. The spool policy's
/// stop is kept only when `spool_over_limit` (the uploader then confirms it
/// on its first scan and releases it once uploads free space).
pub fn restore(path: &Path, config: &DesiredState, spool_over_limit: bool, unix_time: u64) -> Restored {
    let mut restored = Restored::default();
    match load(path) {
        Ok(None) => {}
        Ok(Some(mut state)) => {
            restored.dropped = state.retain_known(config);
            if state.policy_stop && !spool_over_limit {
                restored
                    .dropped
                    .push("the spool is within its limit: the spool policy's stop is lifted".into());
                state.policy_stop = false;
            }
            restored.state = state;
        }
        Err(e) => {
            let mut aside = path.as_os_str().to_owned();
            aside.push(format!(".corrupt-{unix_time}"));
            let aside = PathBuf::from(aside);
            let moved = match std::fs::rename(path, &aside) {
                Ok(()) => format!("moved aside to {}", aside.display()),
                Err(m) => format!("could not be moved aside to {} ({m})", aside.display()),
            };
            restored.problem =
                Some(format!("{e}; {moved}; the configuration applies without runtime overrides"));
        }
    }
    restored
}

#[cfg(test)]
mod tests;
