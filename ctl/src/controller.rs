//! The operations that change or read the node, shared by SIGHUP, D-Bus and
//! anything else that drives ctld. Every argument from outside is validated
//! here; a refused operation changes nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use airlift_ipc::message::{Command, FlowState, RejectKind};
use airlift_ipc::units::{GainDb, Name, Pan};

use crate::config::{self, Config, Overrides};
use crate::engine_link::{EngineLink, LinkError, Shared};
use crate::http::HttpState;

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
}

fn name(what: &str, value: &str) -> Result<Name, ControlError> {
    Name::new(value).map_err(|e| ControlError::InvalidArgument(format!("{what}: {e}")))
}

impl Controller {
    /// A controller over a running link.
    pub fn new(
        link: EngineLink,
        shared: Arc<Shared>,
        http: Arc<HttpState>,
        config: Config,
        source: ConfigSource,
        overrides: Overrides,
    ) -> Self {
        Self {
            link,
            shared,
            http,
            config: tokio::sync::Mutex::new(config),
            source,
            overrides,
            stopped: std::sync::Mutex::new(BTreeSet::new()),
        }
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
        if new.engine != current.engine || new.http != current.http || new.spool != current.spool {
            tracing::warn!("reload: [engine], [http] and [spool] changes take effect when ctld restarts");
        }
        match self.link.apply(new.resolved_state()).await {
            Ok(()) => {
                tracing::info!(flows = new.state.flows.len(), "reloaded; unchanged flows kept running");
                self.shared.metrics.reloads.get_or_create(&result(true)).inc();
                if let Ok(mut d) = self.http.desired_flows.lock() {
                    *d = new.state.flows.iter().map(|f| f.name.to_string()).collect();
                }
                let n = new.state.flows.len();
                *current = new;
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
                Ok(n)
            }
            Err(e) => {
                tracing::error!("reload refused by the engine, the old configuration keeps running: {e}");
                self.shared.metrics.reloads.get_or_create(&result(false)).inc();
                // The link kept the refused state as desired: put the old one back.
                let _ = self.link.apply(current.resolved_state()).await;
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
