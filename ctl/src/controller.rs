//! The operations that change or read the node, shared by SIGHUP, D-Bus and
//! anything else that drives ctld. Every argument from outside is validated
//! here; a refused operation changes nothing.

use std::path::PathBuf;
use std::sync::Arc;

use airlift_ipc::message::{Command, FlowState, RejectKind};
use airlift_ipc::spec::{ConsumerSpec, DesiredState, ProducerSpec, SrtMode, TsSink};
use airlift_ipc::units::Name;

use crate::config::{self, Config, Overrides};
use crate::engine_link::{EngineLink, LinkError, Shared};
use crate::http::HttpState;
use crate::ports::{PortAllocator, PortError, udp_port_free};
use crate::state::{self, InputSetting, OverrideRow, Restored, RuntimeState};
use crate::upload::UploadEvent;

mod inputs;
mod pulls;

/// Where the configuration came from, so a reload can read it again.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file.
    File(PathBuf),
    /// The built-in default (nothing to reload).
    BuiltIn,
}

/// A refused operation. Each maps to a named D-Bus error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// An argument is malformed or out of range.
    #[error("{0}")]
    InvalidArgument(String),
    /// No such flow, input or job.
    #[error("{0}")]
    NotFound(String),
    /// A configured limit would be exceeded.
    #[error("{0}")]
    LimitReached(String),
    /// The engine is not connected.
    #[error("{0}")]
    EngineUnavailable(String),
    /// This build lacks the capability.
    #[error("{0}")]
    NotSupported(String),
    /// The caller may not change the node.
    #[error("{0}")]
    AccessDenied(String),
    /// Anything else (the message says what).
    #[error("{0}")]
    Failed(String),
}

impl From<LinkError> for ControlError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Unavailable(m) => {
                ControlError::EngineUnavailable(format!("the engine is unavailable: {m}"))
            }
            LinkError::Rejected(r) => match r.kind {
                RejectKind::InvalidArgument => ControlError::InvalidArgument(r.message),
                RejectKind::NotFound => ControlError::NotFound(r.message),
                RejectKind::LimitReached => ControlError::LimitReached(r.message),
                RejectKind::Unsupported => ControlError::NotSupported(r.message),
                RejectKind::Busy | RejectKind::Internal => ControlError::Failed(r.message),
            },
        }
    }
}

/// One flow as reported to clients.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FlowInfo {
    /// Name.
    pub name: String,
    /// `running`, `stopped`, `failed: …` or `unknown`.
    pub state: String,
    /// Input names.
    pub inputs: Vec<String>,
}

/// The node's status.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Status {
    /// Node name.
    pub node: String,
    /// ctld version.
    pub version: String,
    /// `healthy`, `degraded` or `unhealthy` (the same verdict as `/health`).
    pub state: String,
    /// Why the node is not healthy, for people (empty when healthy).
    pub reasons: Vec<String>,
    /// Whether the engine is connected.
    pub engine_connected: bool,
    /// Engine restarts so far.
    pub engine_restarts: u64,
    /// Flows.
    pub flows: Vec<FlowInfo>,
    /// Total xruns.
    pub xruns: u64,
    /// Total deadline misses.
    pub deadline_misses: u64,
    /// Bytes in the spool.
    pub spool_bytes: u64,
    /// Segments waiting for upload.
    pub upload_backlog: u32,
    /// Configuration source.
    pub config: String,
    /// Runtime values in force over the configuration (`RuntimeState()` rows).
    pub runtime_overrides: u32,
    /// Whether the `stop_recording` spool policy holds recording stopped.
    pub recording_stopped_by_policy: bool,
    /// Where the runtime state is persisted.
    pub state_file: String,
}

/// A file in the spool.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpoolEntry {
    /// Path relative to the spool.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Longest page of a listing.
pub const MAX_PAGE: u32 = 1000;

/// Options of a pull job started at run time (D-Bus `StartPull`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullOptions {
    /// Job name (also the segment job); `pull-N` when absent.
    pub name: Option<String>,
    /// Target segment duration in seconds (default 6).
    pub segment_seconds: Option<u32>,
    /// Forced cut size (default and maximum: `[limits] max_segment_bytes`).
    pub max_segment_bytes: Option<u64>,
}

/// One pull job as reported to clients.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PullInfo {
    /// Job name.
    pub name: String,
    /// `running`, `stopped`, `failed: …` or `starting`.
    pub state: String,
    /// Where it comes from, as an `srt://` URL without secrets.
    pub source: String,
    /// `config` (a `[[pull]]` of the file) or `runtime` (started over D-Bus).
    pub origin: String,
}

/// Every SRT listener port of `state`, with its owner.
pub(crate) fn listener_ports(state: &DesiredState) -> Vec<(u16, String)> {
    let mut ports = Vec::new();
    for f in &state.flows {
        for i in &f.inputs {
            for (source, producer) in i.producers() {
                if let ProducerSpec::SrtIn(s) = producer
                    && let SrtMode::Listener { port } = s.srt.mode
                {
                    let owner = match source {
                        airlift_ipc::spec::PRIMARY_SOURCE => format!("flow {} input {}", f.name, i.name),
                        backup => format!("flow {} input {} backup {backup}", f.name, i.name),
                    };
                    ports.push((port.get(), owner));
                }
            }
        }
        for o in &f.outputs {
            if let ConsumerSpec::Encoded(e) = &o.consumer
                && let TsSink::Srt(s) = &e.sink
                && let SrtMode::Listener { port } = s.mode
            {
                ports.push((port.get(), format!("flow {} output {}", f.name, o.name)));
            }
        }
    }
    for p in &state.pulls {
        if let SrtMode::Listener { port } = p.source.mode {
            ports.push((port.get(), pull_owner(&p.name)));
        }
    }
    ports
}

fn pull_owner(name: &Name) -> String {
    format!("pull {name}")
}

/// Brings `ports` in line with the listeners of `state`: ports no longer
/// listened on are released, new ones reserved (a port already held by the
/// same owner is kept: the engine is bound to it). Problems are logged.
pub fn sync_ports(ports: &mut PortAllocator, state: &DesiredState) {
    let wanted = listener_ports(state);
    let held: Vec<(u16, String)> = ports.held_ports().map(|(p, o)| (p, o.to_owned())).collect();
    for (port, owner) in &held {
        if !wanted.iter().any(|(p, o)| p == port && o == owner) {
            ports.release(*port);
        }
    }
    for (port, owner) in wanted {
        if ports.owner(port) == Some(owner.as_str()) {
            continue;
        }
        match ports.claim(port, &owner, udp_port_free) {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                port,
                %owner,
                "SRT port {port} is in use (another program, or an engine letting go of it); kept for {owner}, whose listener retries until it is free"
            ),
            Err(e) => tracing::warn!(port, %owner, "SRT port: {e}"),
        }
    }
}

/// The URL of `spec` for display: no passphrase.
pub(crate) fn source_url(spec: &airlift_ipc::spec::SrtSpec) -> String {
    let (host, port, mode) = match &spec.mode {
        SrtMode::Caller { host, port } => (host.as_str().to_owned(), port.get(), "caller"),
        SrtMode::Listener { port } => (String::new(), port.get(), "listener"),
    };
    let mut url = format!("srt://{host}:{port}?mode={mode}&latency={}", spec.latency_ms.get());
    if spec.passphrase.is_some() {
        url.push_str("&passphrase=(set)");
    }
    if let Some(id) = &spec.stream_id {
        url.push_str(&format!("&streamid={}", id.as_str()));
    }
    if spec.allow_unencrypted && spec.passphrase.is_none() {
        url.push_str("&allow_unencrypted=true");
    }
    if !spec.allow_from.is_empty() {
        let nets: Vec<String> = spec.allow_from.iter().map(ToString::to_string).collect();
        url.push_str(&format!("&allow_from={}", nets.join(",")));
    }
    url
}

/// The node's control surface.
#[derive(Debug)]
pub struct Controller {
    /// The engine link.
    pub link: EngineLink,
    /// Engine view and metrics.
    pub shared: Arc<Shared>,
    /// HTTP state (desired flows, spool size).
    pub http: Arc<HttpState>,
    config: tokio::sync::Mutex<Config>,
    source: ConfigSource,
    overrides: Overrides,
    /// The operator's values on top of the configuration (gain, mute, pan,
    /// stopped flows, paused and runtime pull jobs) and the spool policy's
    /// stop. Lock order: `config`, then this.
    runtime: tokio::sync::Mutex<RuntimeState>,
    /// Where `runtime` is persisted.
    state_file: PathBuf,
    /// Why the state file could not be used at start-up, until announced.
    restore_problem: std::sync::Mutex<Option<String>>,
    /// The SRT port pool.
    ports: std::sync::Mutex<PortAllocator>,
    /// A note after every change of the runtime state or the configuration,
    /// whoever made it (D-Bus, HTTP, a reload), so every client can follow.
    pub changes: tokio::sync::broadcast::Sender<Change>,
}

/// What changed (clients read what they show again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// The operator's runtime state: a gain, mute, pan, source, a stopped
    /// flow, a pull job.
    Runtime,
    /// The configuration (a reload).
    Config,
}

fn port_error(e: PortError) -> ControlError {
    match e {
        PortError::Exhausted { .. } => ControlError::LimitReached(e.to_string()),
        _ => ControlError::InvalidArgument(e.to_string()),
    }
}

/// The command that retunes one input of a running flow to `value`.
fn input_command(flow: &Name, input: &Name, value: InputSetting) -> Command {
    let (flow, input) = (flow.clone(), input.clone());
    match value {
        InputSetting::Gain(gain) => Command::SetGain { flow, input, gain },
        InputSetting::Mute(muted) => Command::SetMute { flow, input, muted },
        InputSetting::Pan(pan) => Command::SetPan { flow, input, pan },
        InputSetting::Source(source) => Command::SelectSource { flow, input, source },
    }
}

fn name(what: &str, value: &str) -> Result<Name, ControlError> {
    Name::new(value).map_err(|e| ControlError::InvalidArgument(format!("{what}: {e}")))
}

impl Controller {
    /// A controller over a running link, with the SRT port pool holding the
    /// configured listeners and the runtime state `restored` from
    /// `state_file` (already merged into the state the link was started with).
    #[expect(clippy::too_many_arguments, reason = "the daemon's parts, each built before the controller")]
    pub fn new(
        link: EngineLink,
        shared: Arc<Shared>,
        http: Arc<HttpState>,
        config: Config,
        source: ConfigSource,
        overrides: Overrides,
        ports: PortAllocator,
        restored: Restored,
        state_file: PathBuf,
    ) -> Self {
        for line in &restored.dropped {
            tracing::info!(file = %state_file.display(), "runtime state: {line}");
        }
        if let Some(problem) = &restored.problem {
            tracing::warn!("{problem}");
        } else if restored.state.operator_overrides() > 0 {
            tracing::info!(
                file = %state_file.display(),
                overrides = restored.state.operator_overrides(),
                "runtime state restored: the operator's values hold"
            );
        }
        Self {
            link,
            shared,
            http,
            config: tokio::sync::Mutex::new(config),
            source,
            overrides,
            runtime: tokio::sync::Mutex::new(restored.state),
            state_file,
            restore_problem: std::sync::Mutex::new(restored.problem),
            ports: std::sync::Mutex::new(ports),
            changes: tokio::sync::broadcast::channel(64).0,
        }
    }

    /// Raises the alarm for a state file that could not be used at
    /// start-up, once the D-Bus service is up to carry it.
    pub fn announce_restore(&self) {
        let problem = self.restore_problem.lock().ok().and_then(|mut p| p.take());
        if let Some(problem) = problem {
            self.alarm("state_file", problem);
        }
    }

    fn alarm(&self, kind: &'static str, message: String) {
        let _ = self.http.uploads.events.send(UploadEvent::Alarm { kind, job: String::new(), message });
    }

    /// Writes the runtime state file; a failure is logged and alarmed, and
    /// the state still holds in memory (written again with the next change).
    fn persist(&self, runtime: &RuntimeState) {
        let _ = self.changes.send(Change::Runtime);
        if let Err(e) = state::save(&self.state_file, runtime) {
            tracing::error!("{e}; the runtime state holds in memory and is written with the next change");
            self.alarm("state_file", format!("{e}: the runtime state is not persisted"));
        }
    }

    fn ports(&self) -> std::sync::MutexGuard<'_, PortAllocator> {
        self.ports.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish_ports(&self, ports: &PortAllocator) {
        self.shared.metrics.srt_ports_total.set(ports.capacity() as i64);
        self.shared.metrics.srt_ports_in_use.set(ports.held() as i64);
    }

    /// What the engine should run: the file's flows and pull jobs with the
    /// runtime state on top (gains, mutes, pans, stopped flows, paused and
    /// runtime pull jobs, the spool policy's stop).
    pub async fn desired_state(&self) -> DesiredState {
        let config = self.config.lock().await;
        let runtime = self.runtime.lock().await;
        Self::desired(&config, &runtime)
    }

    fn desired(config: &Config, runtime: &RuntimeState) -> DesiredState {
        runtime.apply(&config.resolved_state())
    }

    /// Sends `state`; an engine that is away gets it when it returns.
    async fn send_state(&self, state: DesiredState) -> Result<(), ControlError> {
        match self.link.apply(state).await {
            Ok(()) => Ok(()),
            Err(LinkError::Unavailable(m)) => {
                tracing::info!("the engine is away ({m}); the state is sent when it returns");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Puts `before` back after the engine refused a change (the link kept
    /// the refused state as desired).
    async fn roll_back(&self, config: &Config, runtime: &mut RuntimeState, before: RuntimeState) {
        *runtime = before;
        let _ = self.link.apply(Self::desired(config, runtime)).await;
    }

    /// The current configuration.
    pub async fn config(&self) -> Config {
        self.config.lock().await.clone()
    }

    /// Re-reads the configuration file and applies the difference. A value
    /// the file changed wins over the operator's value for that key; every
    /// other runtime value holds. An invalid file (or one the engine
    /// refuses) changes nothing.
    pub async fn reload(&self) -> Result<usize, ControlError> {
        let result =
            |ok: bool| crate::metrics::ResultLabel { result: if ok { "ok" } else { "rejected" }.into() };
        let ConfigSource::File(path) = &self.source else {
            return Err(ControlError::NotSupported(
                "running on the built-in default configuration; there is no file to reload".into(),
            ));
        };
        let new = match config::load(path, &self.overrides) {
            Ok(c) => c,
            Err(errors) => {
                tracing::error!("reload refused, the old configuration keeps running:\n{errors}");
                self.shared.metrics.reloads.get_or_create(&result(false)).inc();
                return Err(ControlError::InvalidArgument(errors.to_string()));
            }
        };
        let mut current = self.config.lock().await;
        // New upload targets and settings are checked (credentials read)
        // before anything changes; a bad one refuses the whole reload.
        let uploads = if crate::upload::UploadSettings::changed(&current, &new) {
            match crate::upload::UploadSettings::from_config(&new) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!("reload refused, the old configuration keeps running: {e}");
                    self.shared.metrics.reloads.get_or_create(&result(false)).inc();
                    return Err(ControlError::InvalidArgument(e.to_string()));
                }
            }
        } else {
            None
        };
        if new.engine != current.engine
            || new.http != current.http
            || new.spool != current.spool
            || new.srt != current.srt
            || new.node.state_file != current.node.state_file
        {
            tracing::warn!(
                "reload: [engine], [http], [spool], [srt] and [node] state_file changes take effect when ctld restarts"
            );
        }
        let mut runtime = self.runtime.lock().await;
        let before = runtime.clone();
        let dropped = runtime.reload(&current.state, &new.state);
        let desired = Self::desired(&new, &runtime);
        match self.link.apply(desired.clone()).await {
            Ok(()) => tracing::info!(flows = new.state.flows.len(), "reloaded; unchanged flows kept running"),
            Err(LinkError::Unavailable(m)) => {
                // Kept as the desired state: it is sent when the engine is back.
                tracing::warn!(
                    "reloaded while the engine is away ({m}); the new state is sent when it returns"
                );
            }
            Err(e) => {
                tracing::error!("reload refused by the engine, the old configuration keeps running: {e}");
                self.shared.metrics.reloads.get_or_create(&result(false)).inc();
                self.roll_back(&current, &mut runtime, before).await;
                return Err(e.into());
            }
        }
        for line in &dropped {
            tracing::info!("reload: {line}");
        }
        if let Some(settings) = uploads
            && let Err(e) = self.http.uploads.reconfigure(settings)
        {
            tracing::error!("reload: [[s3]] and [upload] not applied: {e}");
        }
        self.shared.metrics.reloads.get_or_create(&result(true)).inc();
        if let Ok(mut d) = self.http.desired_flows.lock() {
            *d = new.state.flows.iter().map(|f| f.name.to_string()).collect();
        }
        if let Ok(mut h) = self.http.health.lock() {
            *h = new.health.clone();
        }
        let n = new.state.flows.len();
        *current = new;
        self.resync_ports(&runtime.holding(&current.state));
        if *runtime != before {
            self.persist(&runtime);
        }
        let _ = self.changes.send(Change::Config);
        Ok(n)
    }

    /// Every flow of the configuration with its state.
    pub async fn flows(&self) -> Vec<FlowInfo> {
        let config = self.config.lock().await;
        let runtime = self.runtime.lock().await;
        self.shared.with_view(|v| {
            config
                .state
                .flows
                .iter()
                .map(|f| {
                    let held =
                        runtime.stopped.contains(&f.name) || runtime.policy_holds(&config.state, &f.name);
                    let state = match v.flows.get(f.name.as_str()) {
                        Some(FlowState::Running) => "running".to_string(),
                        Some(FlowState::Stopped) => "stopped".to_string(),
                        Some(FlowState::Failed { reason }) => format!("failed: {reason}"),
                        None if held => "stopped".to_string(),
                        None => "unknown".to_string(),
                    };
                    FlowInfo {
                        name: f.name.to_string(),
                        state,
                        inputs: f.inputs.iter().map(|i| i.name.to_string()).collect(),
                    }
                })
                .collect()
        })
    }

    /// Every runtime value next to its configured value.
    pub async fn runtime_state(&self) -> Vec<OverrideRow> {
        let config = self.config.lock().await;
        let runtime = self.runtime.lock().await;
        runtime.rows(&config.state)
    }

    /// Starts a stopped flow (unless the spool policy holds it).
    pub async fn start_flow(&self, flow: &str) -> Result<(), ControlError> {
        self.set_flow_stopped(flow, false).await
    }

    /// Stops a flow (it stays configured, and stopped across restarts until
    /// started or reset).
    pub async fn stop_flow(&self, flow: &str) -> Result<(), ControlError> {
        self.set_flow_stopped(flow, true).await
    }

    async fn set_flow_stopped(&self, flow: &str, stop: bool) -> Result<(), ControlError> {
        let flow = name("flow", flow)?;
        let config = self.config.lock().await;
        if !config.state.flows.iter().any(|f| f.name == flow) {
            return Err(ControlError::NotFound(format!("no flow named {flow}")));
        }
        let mut runtime = self.runtime.lock().await;
        if !stop && runtime.policy_holds(&config.state, &flow) {
            return Err(ControlError::Failed(format!(
                "flow {flow} is held stopped by the spool's stop_recording policy; it starts when uploads free space"
            )));
        }
        let before = runtime.clone();
        if stop {
            runtime.stopped.insert(flow.clone());
        } else {
            runtime.stopped.remove(&flow);
        }
        if let Err(e) = self.send_state(Self::desired(&config, &runtime)).await {
            self.roll_back(&config, &mut runtime, before).await;
            return Err(e);
        }
        if *runtime != before {
            self.persist(&runtime);
        }
        Ok(())
    }

    /// The `stop_recording` spool policy: holds (or releases) every flow
    /// with a segments output and every pull job. Kept in the runtime state,
    /// so an engine restart does not resume recording into a full spool.
    pub async fn set_policy_stop(&self, stop: bool) {
        let config = self.config.lock().await;
        let mut runtime = self.runtime.lock().await;
        if runtime.policy_stop == stop {
            return;
        }
        let was = Self::desired(&config, &runtime);
        runtime.policy_stop = stop;
        let now = Self::desired(&config, &runtime);
        if let Err(e) = self.send_state(now.clone()).await {
            tracing::error!("spool policy: the engine refused the state: {e}");
        }
        for f in &config.state.flows {
            let (held, holds) = (was.stopped.contains(&f.name), now.stopped.contains(&f.name));
            if held == holds {
                continue;
            }
            tracing::warn!(flow = %f.name, "spool policy: {}", if holds { "stopped" } else { "started" });
        }
        for p in was.pulls.iter().filter(|p| !now.pulls.iter().any(|n| n.name == p.name)) {
            tracing::warn!(pull = %p.name, "spool policy: stopped");
        }
        for p in now.pulls.iter().filter(|p| !was.pulls.iter().any(|w| w.name == p.name)) {
            tracing::warn!(pull = %p.name, "spool policy: started");
        }
        self.persist(&runtime);
    }

    /// Clears the operator's runtime values of flow or pull job `target`
    /// ("" for all): the configuration applies again (runtime pull jobs are
    /// stopped). The spool policy's stop stays. Returns how many values
    /// were cleared.
    pub async fn reset_state(&self, target: &str) -> Result<u32, ControlError> {
        let target = if target.is_empty() { None } else { Some(name("flow", target)?) };
        let config = self.config.lock().await;
        let mut runtime = self.runtime.lock().await;
        if let Some(n) = &target
            && !runtime.knows(&config.state, n)
        {
            return Err(ControlError::NotFound(format!("no flow or pull job named {n}")));
        }
        let before = runtime.clone();
        let cleared = runtime.reset(target.as_ref());
        let desired = Self::desired(&config, &runtime);
        let was = Self::desired(&config, &before);
        if let Err(e) = self.send_state(desired.clone()).await {
            self.roll_back(&config, &mut runtime, before).await;
            return Err(e);
        }
        // Gains, mutes and pans are retuned by the state itself; the
        // commands also reach a flow the engine had not noted them for.
        for flow in &config.state.flows {
            if desired.stopped.contains(&flow.name) || was.stopped.contains(&flow.name) {
                continue;
            }
            for input in &flow.inputs {
                let old = before.input_values(&config.state, &flow.name, &input.name);
                let new = runtime.input_values(&config.state, &flow.name, &input.name);
                let (Some((g0, m0, p0)), Some((g1, m1, p1))) = (old, new) else { continue };
                let mut settings = Vec::new();
                if g0 != g1 {
                    settings.push(InputSetting::Gain(g1));
                }
                if m0 != m1 {
                    settings.push(InputSetting::Mute(m1));
                }
                if p0 != p1 {
                    settings.push(InputSetting::Pan(p1));
                }
                for s in settings {
                    if let Err(e) = self.link.command(input_command(&flow.name, &input.name, s)).await {
                        tracing::info!(flow = %flow.name, input = %input.name, "reset: {e}; the engine gets the value with the state");
                    }
                }
            }
        }
        self.resync_ports(&runtime.holding(&config.state));
        if *runtime != before {
            self.persist(&runtime);
        }
        tracing::info!(
            target = target.as_ref().map_or("all", Name::as_str),
            cleared,
            "runtime state reset; the configuration applies"
        );
        Ok(cleared as u32)
    }

    fn resync_ports(&self, state: &DesiredState) {
        let mut ports = self.ports();
        sync_ports(&mut ports, state);
        self.publish_ports(&ports);
    }

    /// The node's status.
    pub async fn status(&self) -> Status {
        let flows = self.flows().await;
        let (connected, restarts) = self.shared.with_view(|v| (v.connected, v.gaps.len() as u64));
        let (verdict, reasons) = self.http.judge();
        let config = self.config.lock().await;
        let runtime = self.runtime.lock().await;
        Status {
            node: config.node.name.to_string(),
            version: crate::VERSION.into(),
            state: verdict.as_str().into(),
            reasons: reasons.into_iter().map(|r| r.message).collect(),
            engine_connected: connected,
            engine_restarts: restarts,
            flows,
            xruns: self.shared.metrics.total("xruns"),
            deadline_misses: self.shared.metrics.total("misses"),
            spool_bytes: self.http.spool_bytes.load(std::sync::atomic::Ordering::Relaxed),
            upload_backlog: self.http.uploads.backlog(),
            config: config.source.clone(),
            runtime_overrides: runtime.rows(&config.state).len() as u32,
            recording_stopped_by_policy: runtime.policy_stop,
            state_file: self.state_file.display().to_string(),
        }
    }
    /// A page of the files in the spool, sorted by path.
    pub async fn spool_files(&self, offset: u32, limit: u32) -> Result<Vec<SpoolEntry>, ControlError> {
        if limit > MAX_PAGE {
            return Err(ControlError::InvalidArgument(format!(
                "limit {limit} exceeds the page maximum {MAX_PAGE}"
            )));
        }
        let root = self.config.lock().await.spool_dir();
        let mut all = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let path = e.path();
                match e.metadata() {
                    Ok(m) if m.is_dir() => stack.push(path),
                    Ok(m) => {
                        let rel = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
                        all.push(SpoolEntry { path: rel, bytes: m.len() });
                    }
                    Err(_) => {}
                }
            }
        }
        all.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(all.into_iter().skip(offset as usize).take(limit as usize).collect())
    }
}
