//! Pull jobs: started at run time (runtime state, persisted with their
//! name, source, options and listener port), stopped, paused and listed.

use airlift_ipc::message::FlowState;
use airlift_ipc::spec::{PullSpec, SegmentSpec, reserved_job_name};
use airlift_ipc::srt_url::{SrtUrl, UrlMode};
use airlift_ipc::units::{Name, Port, SegmentSeconds};

use super::{ControlError, Controller, PullInfo, PullOptions, name, port_error, pull_owner, source_url};
use crate::engine_link::LinkError;
use crate::ports::udp_port_free;

impl Controller {
    /// Starts pulling `url` into segments; returns the job's name. A
    /// listener URL without a port (`srt://:0?mode=listener`) gets one from
    /// the SRT port pool. The job is runtime state: persisted, it comes back
    /// with the same name and port after a restart, until stopped or reset.
    pub async fn start_pull(&self, url: &str, options: PullOptions) -> Result<String, ControlError> {
        let parsed = SrtUrl::parse(url).map_err(|e| ControlError::InvalidArgument(e.to_string()))?;
        let config = self.config.lock().await;
        let mut runtime = self.runtime.lock().await;
        let current = Self::desired(&config, &runtime);
        let holding = runtime.holding(&config.state);
        // Job names and segment job names share one namespace in the spool.
        let clash = |n: &Name| -> Option<String> {
            if holding.pulls.iter().any(|p| &p.name == n) {
                return Some(format!("a pull job named {n} exists"));
            }
            if let Some(reason) = reserved_job_name(n.as_str()) {
                return Some(reason);
            }
            holding
                .segment_jobs()
                .find(|(_, _, job)| *job == n)
                .map(|(owner, field, _)| format!("segment job {n} is already written by {owner} ({field})"))
        };
        let job = match options.name {
            Some(n) => {
                let n = name("name", &n)?;
                if let Some(reason) = clash(&n) {
                    return Err(ControlError::InvalidArgument(reason));
                }
                n
            }
            None => (1..)
                .take(10_000)
                .filter_map(|i| Name::new(format!("pull-{i}")).ok())
                .find(|n| clash(n).is_none())
                .ok_or_else(|| ControlError::Failed("no free job name".into()))?,
        };
        // Paused jobs count: each comes back when resumed, on its own port.
        let max = config.limits.max_pull_jobs;
        if holding.pulls.len() >= max as usize {
            return Err(ControlError::LimitReached(format!(
                "{} pull jobs are configured or started ({} running); [limits] max_pull_jobs is {max}",
                holding.pulls.len(),
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
        let shown = source_url(&spec.source);
        let before = runtime.clone();
        runtime.pulls.push(spec);
        match self.link.apply(Self::desired(&config, &runtime)).await {
            Ok(()) => {}
            Err(LinkError::Unavailable(m)) => {
                tracing::warn!(pull = %job, "the engine is away ({m}); the job starts when it returns");
            }
            Err(e) => {
                self.roll_back(&config, &mut runtime, before).await;
                release();
                return Err(e.into());
            }
        }
        self.persist(&runtime);
        tracing::info!(pull = %job, url = %shown, "pull job started");
        Ok(job.to_string())
    }

    /// Stops pull job `id`: a job started at run time is removed and its
    /// port released; a configured one is paused until started again by a
    /// reset, or its entry in the file changes.
    pub async fn stop_pull(&self, id: &str) -> Result<(), ControlError> {
        let job = name("id", id)?;
        let config = self.config.lock().await;
        let mut runtime = self.runtime.lock().await;
        let before = runtime.clone();
        if runtime.runtime_pulls(&config.state).any(|p| p.name == job) {
            runtime.pulls.retain(|p| p.name != job);
        } else if config.state.pulls.iter().any(|p| p.name == job) && !runtime.paused_pulls.contains(&job) {
            runtime.paused_pulls.insert(job.clone());
        } else {
            return Err(ControlError::NotFound(format!("no pull job {job}")));
        }
        if let Err(e) = self.send_state(Self::desired(&config, &runtime)).await {
            self.roll_back(&config, &mut runtime, before).await;
            return Err(e);
        }
        self.resync_ports(&runtime.holding(&config.state));
        self.persist(&runtime);
        tracing::info!(pull = %job, "pull job stopped");
        Ok(())
    }

    /// Every pull job, configured or started at run time, with its state.
    pub async fn pulls(&self) -> Vec<PullInfo> {
        let config = self.config.lock().await;
        let runtime = self.runtime.lock().await;
        let running = Self::desired(&config, &runtime);
        let view = self.shared.with_view(|v| v.pulls.clone());
        let configured = config.state.pulls.iter().map(|p| (p, "config"));
        let started = runtime.runtime_pulls(&config.state).map(|p| (p, "runtime"));
        configured
            .chain(started)
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
}
