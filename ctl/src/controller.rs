//! The operations that change or read the node, shared by SIGHUP, D-Bus and
//! anything else that drives ctld. Every argument from outside is validated
//! here; a refused operation changes nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use airlift_ipc::message::{Command, FlowState, RejectKind};
use airlift_ipc::spec::{ConsumerSpec, DesiredState, ProducerSpec, PullSpec, SegmentSpec, SrtMode, TsSink};
use airlift_ipc::srt_url::{SrtUrl, UrlMode};
use airlift_ipc::units::{GainDb, Name, Pan, Port, SegmentSeconds};

use crate::config::{self, Config, Overrides};
use crate::engine_link::{EngineLink, LinkError, Shared};
use crate::http::HttpState;
use crate::ports::{PortAllocator, PortError, udp_port_free};

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
    /// `healthy`, `degraded` or `unhealthy`.
    pub state: String,
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
fn listener_ports(state: &DesiredState) -> Vec<(u16, String)> {
    let mut ports = Vec::new();
    for f in &state.flows {
        for i in &f.inputs {
            if let ProducerSpec::SrtIn(s) = &i.producer
                && let SrtMode::Listener { port } = s.srt.mode
            {
                ports.push((port.get(), format!("flow {} input {}", f.name, i.name)));
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
        if let Err(e) = ports.reserve(port, &owner, udp_port_free) {
            tracing::warn!(port, %owner, "SRT port: {e}");
        }
    }
}

/// The URL of `spec` for display: no passphrase.
fn source_url(spec: &airlift_ipc::spec::SrtSpec) -> String {
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
    stopped: std::sync::Mutex<BTreeSet<String>>,
    /// Pull jobs started over D-Bus, kept until stopped or ctld exits.
    /// Lock order: `config`, then this.
    runtime_pulls: tokio::sync::Mutex<Vec<PullSpec>>,
    /// Configured pull jobs stopped over D-Bus (until the next reload).
    paused_pulls: std::sync::Mutex<BTreeSet<Name>>,
    /// The SRT port pool.
    ports: std::sync::Mutex<PortAllocator>,
}

fn port_error(e: PortError) -> ControlError {
    match e {
        PortError::Exhausted { .. } => ControlError::LimitReached(e.to_string()),
        _ => ControlError::InvalidArgument(e.to_string()),
    }
}

fn name(what: &str, value: &str) -> Result<Name, ControlError> {
    Name::new(value).map_err(|e| ControlError::InvalidArgument(format!("{what}: {e}")))
}

impl Controller {
    /// A controller over a running link, with the SRT port pool holding the
    /// configured listeners.
    pub fn new(
        link: EngineLink,
        shared: Arc<Shared>,
        http: Arc<HttpState>,
        config: Config,
        source: ConfigSource,
        overrides: Overrides,
        ports: PortAllocator,
    ) -> Self {
        Self {
            link,
            shared,
            http,
            config: tokio::sync::Mutex::new(config),
            source,
            overrides,
            stopped: std::sync::Mutex::new(BTreeSet::new()),
            runtime_pulls: tokio::sync::Mutex::new(Vec::new()),
            paused_pulls: std::sync::Mutex::new(BTreeSet::new()),
            ports: std::sync::Mutex::new(ports),
        }
    }

    fn ports(&self) -> std::sync::MutexGuard<'_, PortAllocator> {
        self.ports.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish_ports(&self, ports: &PortAllocator) {
        self.shared.metrics.srt_ports_total.set(ports.capacity() as i64);
        self.shared.metrics.srt_ports_in_use.set(ports.held() as i64);
    }

    /// What the engine should run: the file's flows and pull jobs (less the
    /// paused ones) and the pull jobs started at run time.
    pub async fn desired_state(&self) -> DesiredState {
        let config = self.config.lock().await;
        let runtime = self.runtime_pulls.lock().await;
        self.desired(&config, &runtime)
    }

    fn desired(&self, config: &Config, runtime: &[PullSpec]) -> DesiredState {
        let mut state = config.resolved_state();
        let paused = self.paused_pulls.lock().map(|p| p.clone()).unwrap_or_default();
        state.pulls.retain(|p| !paused.contains(&p.name));
        let configured = |r: &&PullSpec| config.state.pulls.iter().any(|p| p.name == r.name);
        state.pulls.extend(runtime.iter().filter(|r| !configured(r)).cloned());
        state
    }

    /// The current configuration.
    pub async fn config(&self) -> Config {
        self.config.lock().await.clone()
    }

    /// Re-reads the configuration file and applies the difference. An invalid
    /// file (or one the engine refuses) changes nothing.
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
        if new.engine != current.engine
            || new.http != current.http
            || new.spool != current.spool
            || new.srt != current.srt
        {
            tracing::warn!(
                "reload: [engine], [http], [spool] and [srt] changes take effect when ctld restarts"
            );
        }
        let mut runtime = self.runtime_pulls.lock().await;
        runtime.retain(|r| {
            let clash = new.state.pulls.iter().any(|p| p.name == r.name);
            if clash {
                tracing::warn!(pull = %r.name, "reload: the file now configures this pull job; its entry replaces the one started over D-Bus");
            }
            !clash
        });
        if let Ok(mut paused) = self.paused_pulls.lock() {
            paused.clear();
        }
        let desired = self.desired(&new, &runtime);
        drop(runtime);
        match self.link.apply(desired.clone()).await {
            Ok(()) => {
                tracing::info!(flows = new.state.flows.len(), "reloaded; unchanged flows kept running");
                self.shared.metrics.reloads.get_or_create(&result(true)).inc();
                if let Ok(mut d) = self.http.desired_flows.lock() {
                    *d = new.state.flows.iter().map(|f| f.name.to_string()).collect();
                }
                let n = new.state.flows.len();
                *current = new;
                self.resync_ports(&desired);
                Ok(n)
            }
            Err(LinkError::Unavailable(m)) => {
                // Kept as the desired state: it is sent when the engine is back.
                tracing::warn!(
                    "reloaded while the engine is away ({m}); the new state is sent when it returns"
                );
                self.shared.metrics.reloads.get_or_create(&result(true)).inc();
                let n = new.state.flows.len();
                *current = new;
                self.resync_ports(&desired);
                Ok(n)
            }
            Err(e) => {
                tracing::error!("reload refused by the engine, the old configuration keeps running: {e}");
                self.shared.metrics.reloads.get_or_create(&result(false)).inc();
                // The link kept the refused state as desired: put the old one back.
                let runtime = self.runtime_pulls.lock().await;
                let _ = self.link.apply(self.desired(&current, &runtime)).await;
                Err(e.into())
            }
        }
    }

    /// Every flow of the configuration with its state.
    pub async fn flows(&self) -> Vec<FlowInfo> {
        let config = self.config.lock().await;
        let stopped = self.stopped.lock().map(|s| s.clone()).unwrap_or_default();
        self.shared.with_view(|v| {
            config
                .state
                .flows
                .iter()
                .map(|f| {
                    let state = match v.flows.get(f.name.as_str()) {
                        Some(FlowState::Running) => "running".to_string(),
                        Some(FlowState::Stopped) => "stopped".to_string(),
                        Some(FlowState::Failed { reason }) => format!("failed: {reason}"),
                        None if stopped.contains(f.name.as_str()) => "stopped".to_string(),
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

    async fn check_input(
        &self,
        flow: &str,
        input: Option<&str>,
    ) -> Result<(Name, Option<Name>), ControlError> {
        let flow_name = name("flow", flow)?;
        let input_name = input.map(|i| name("input", i)).transpose()?;
        let config = self.config.lock().await;
        let spec = config
            .state
            .flows
            .iter()
            .find(|f| f.name == flow_name)
            .ok_or_else(|| ControlError::NotFound(format!("no flow named {flow_name}")))?;
        if let Some(i) = &input_name
            && !spec.inputs.iter().any(|x| &x.name == i)
        {
            return Err(ControlError::NotFound(format!("flow {flow_name} has no input {i}")));
        }
        Ok((flow_name, input_name))
    }

    /// Sets one input's gain in dB (−120 … +24), ramped over a period.
    pub async fn set_gain(&self, flow: &str, input: &str, db: f64) -> Result<(), ControlError> {
        let gain = GainDb::new(db as f32).ok().filter(|_| db.is_finite()).ok_or_else(|| {
            ControlError::InvalidArgument(format!("gain {db} dB is not a finite number in -120..=24"))
        })?;
        let (flow, input) = self.check_input(flow, Some(input)).await?;
        let input = input.ok_or_else(|| ControlError::InvalidArgument("input missing".into()))?;
        self.link.command(Command::SetGain { flow, input, gain }).await?;
        Ok(())
    }

    /// Mutes or unmutes one input.
    pub async fn set_mute(&self, flow: &str, input: &str, muted: bool) -> Result<(), ControlError> {
        let (flow, input) = self.check_input(flow, Some(input)).await?;
        let input = input.ok_or_else(|| ControlError::InvalidArgument("input missing".into()))?;
        self.link.command(Command::SetMute { flow, input, muted }).await?;
        Ok(())
    }

    /// Sets one input's pan (−1 … 1).
    pub async fn set_pan(&self, flow: &str, input: &str, pan: f64) -> Result<(), ControlError> {
        let pan = Pan::new(pan as f32).ok().filter(|_| pan.is_finite()).ok_or_else(|| {
            ControlError::InvalidArgument(format!("pan {pan} is not a finite number in -1..=1"))
        })?;
        let (flow, input) = self.check_input(flow, Some(input)).await?;
        let input = input.ok_or_else(|| ControlError::InvalidArgument("input missing".into()))?;
        self.link.command(Command::SetPan { flow, input, pan }).await?;
        Ok(())
    }

    /// Starts a stopped flow.
    pub async fn start_flow(&self, flow: &str) -> Result<(), ControlError> {
        let (flow, _) = self.check_input(flow, None).await?;
        self.link.command(Command::StartFlow { flow: flow.clone() }).await?;
        if let Ok(mut s) = self.stopped.lock() {
            s.remove(flow.as_str());
        }
        Ok(())
    }

    /// Stops a flow (it stays configured).
    pub async fn stop_flow(&self, flow: &str) -> Result<(), ControlError> {
        let (flow, _) = self.check_input(flow, None).await?;
        self.link.command(Command::StopFlow { flow: flow.clone() }).await?;
        if let Ok(mut s) = self.stopped.lock() {
            s.insert(flow.to_string());
        }
        Ok(())
    }

    fn resync_ports(&self, state: &DesiredState) {
        let mut ports = self.ports();
        sync_ports(&mut ports, state);
        self.publish_ports(&ports);
    }

    /// Starts pulling `url` into segments; returns the job's name. A
    /// listener URL without a port (`srt://:0?mode=listener`) gets one from
    /// the SRT port pool; the job runs until stopped or ctld exits (put it
    /// in a `[[pull]]` of the file to keep it).
    pub async fn start_pull(&self, url: &str, options: PullOptions) -> Result<String, ControlError> {
        let parsed = SrtUrl::parse(url).map_err(|e| ControlError::InvalidArgument(e.to_string()))?;
        let config = self.config.lock().await;
        let mut runtime = self.runtime_pulls.lock().await;
        let current = self.desired(&config, &runtime);
        let taken = |n: &Name| current.pulls.iter().chain(config.state.pulls.iter()).any(|p| &p.name == n);
        let job = match options.name {
            Some(n) => {
                let n = name("name", &n)?;
                if taken(&n) {
                    return Err(ControlError::InvalidArgument(format!("a pull job named {n} exists")));
                }
                n
            }
            None => (1..)
                .filter_map(|i| Name::new(format!("pull-{i}")).ok())
                .find(|n| !taken(n))
                .ok_or_else(|| ControlError::Failed("no free job name".into()))?,
        };
        let max = config.limits.max_pull_jobs;
        if current.pulls.len() >= max as usize {
            return Err(ControlError::LimitReached(format!(
                "{} pull jobs run; [limits] max_pull_jobs is {max}",
                current.pulls.len()
            )));
        }
        let target_seconds = SegmentSeconds::new(options.segment_seconds.unwrap_or(6))
            .map_err(|e| ControlError::InvalidArgument(format!("segment_seconds: {e}")))?;
        let limit = config.limits.max_segment_bytes.0;
        let max_bytes = options.max_segment_bytes.unwrap_or(limit);
        if max_bytes == 0 || max_bytes > limit {
            return Err(ControlError::InvalidArgument(format!(
                "max_segment_bytes {max_bytes} is outside 1..={limit} ([limits] max_segment_bytes)"
            )));
        }
        let owner = pull_owner(&job);
        let port = {
            let mut ports = self.ports();
            let port = match parsed.mode {
                UrlMode::Caller { .. } => None,
                UrlMode::Listener { port: Some(p) } => {
                    ports.reserve(p.get(), &owner, udp_port_free).map_err(port_error)?;
                    Some(p)
                }
                UrlMode::Listener { port: None } => {
                    let p = ports.allocate(&owner, udp_port_free).map_err(port_error)?;
                    Some(Port::new(p).map_err(|e| ControlError::Failed(e.to_string()))?)
                }
            };
            self.publish_ports(&ports);
            port
        };
        let release = || {
            let mut ports = self.ports();
            ports.release_owner(&owner);
            self.publish_ports(&ports);
        };
        let Some(source) = parsed.into_spec(port) else {
            release();
            return Err(ControlError::Failed("no port for the listener".into()));
        };
        let spec = PullSpec {
            name: job.clone(),
            source,
            segments: SegmentSpec { job: job.clone(), target_seconds, max_bytes },
            no_data_timeout_s: 5,
        };
        runtime.push(spec);
        match self.link.apply(self.desired(&config, &runtime)).await {
            Ok(()) => {}
            Err(LinkError::Unavailable(m)) => {
                tracing::warn!(pull = %job, "the engine is away ({m}); the job starts when it returns");
            }
            Err(e) => {
                runtime.pop();
                release();
                let _ = self.link.apply(self.desired(&config, &runtime)).await;
                return Err(e.into());
            }
        }
        tracing::info!(pull = %job, url = %source_url(&runtime[runtime.len() - 1].source), "pull job started");
        Ok(job.to_string())
    }

    /// Stops pull job `id`: a job started at run time is removed and its
    /// port released; a configured one is paused until the next reload.
    pub async fn stop_pull(&self, id: &str) -> Result<(), ControlError> {
        let job = name("id", id)?;
        let config = self.config.lock().await;
        let mut runtime = self.runtime_pulls.lock().await;
        let before = self.desired(&config, &runtime);
        if !before.pulls.iter().any(|p| p.name == job) {
            return Err(ControlError::NotFound(format!("no pull job {job}")));
        }
        let removed = runtime.iter().position(|p| p.name == job).map(|i| runtime.remove(i));
        if removed.is_none()
            && let Ok(mut paused) = self.paused_pulls.lock()
        {
            paused.insert(job.clone());
        }
        let after = self.desired(&config, &runtime);
        match self.link.apply(after.clone()).await {
            Ok(()) | Err(LinkError::Unavailable(_)) => {}
            Err(e) => {
                if let Some(spec) = removed {
                    runtime.push(spec);
                } else if let Ok(mut paused) = self.paused_pulls.lock() {
                    paused.remove(&job);
                }
                return Err(e.into());
            }
        }
        self.resync_ports(&after);
        if let Ok(mut paused) = self.paused_pulls.lock() {
            paused.retain(|p| config.state.pulls.iter().any(|c| &c.name == p));
        }
        tracing::info!(pull = %job, "pull job stopped");
        Ok(())
    }

    /// Every pull job, configured or started at run time, with its state.
    pub async fn pulls(&self) -> Vec<PullInfo> {
        let config = self.config.lock().await;
        let runtime = self.runtime_pulls.lock().await;
        let running = self.desired(&config, &runtime);
        let view = self.shared.with_view(|v| v.pulls.clone());
        let configured = config.state.pulls.iter().map(|p| (p, "config"));
        let started = runtime.iter().filter(|r| !config.state.pulls.iter().any(|c| c.name == r.name));
        configured
            .chain(started.map(|p| (p, "runtime")))
            .map(|(p, origin)| {
                let state = if !running.pulls.iter().any(|r| r.name == p.name) {
                    "stopped".to_string()
                } else {
                    match view.get(p.name.as_str()) {
                        Some(FlowState::Running) => "running".to_string(),
                        Some(FlowState::Stopped) => "stopped".to_string(),
                        Some(FlowState::Failed { reason }) => format!("failed: {reason}"),
                        None => "starting".to_string(),
                    }
                };
                PullInfo {
                    name: p.name.to_string(),
                    state,
                    source: source_url(&p.source),
                    origin: origin.into(),
                }
            })
            .collect()
    }

    /// The node's status.
    pub async fn status(&self) -> Status {
        let flows = self.flows().await;
        let (connected, restarts) = self.shared.with_view(|v| (v.connected, v.gaps.len() as u64));
        let state = if !connected {
            "unhealthy"
        } else if flows.iter().any(|f| f.state != "running" && f.state != "stopped") {
            "degraded"
        } else {
            "healthy"
        };
        let config = self.config.lock().await;
        Status {
            node: config.node.name.to_string(),
            version: crate::VERSION.into(),
            state: state.into(),
            engine_connected: connected,
            engine_restarts: restarts,
            flows,
            xruns: self.shared.metrics.total("xruns"),
            deadline_misses: self.shared.metrics.total("misses"),
            spool_bytes: self.http.spool_bytes.load(std::sync::atomic::Ordering::Relaxed),
            upload_backlog: self.http.uploads.backlog(),
            config: config.source.clone(),
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
