//! `GET /health` (JSON) and `GET /metrics` (Prometheus text) on a loopback
//! listener that the caller binds (tests use port 0).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

use airlift_ipc::message::FlowState;

use crate::engine_link::Shared;

/// What the HTTP handlers read.
#[derive(Debug)]
pub struct HttpState {
    /// Engine view and metrics.
    pub shared: Arc<Shared>,
    /// The node's name.
    pub node: String,
    /// When ctld started.
    pub started: Instant,
    /// Spool directory, for display.
    pub spool_path: String,
    /// Bytes in the spool (updated by the daemon).
    pub spool_bytes: AtomicU64,
    /// Spool limit.
    pub spool_limit: u64,
    /// Flows in the desired state.
    pub desired_flows: std::sync::Mutex<Vec<String>>,
    /// The uploader's state.
    pub uploads: Arc<crate::upload::UploadStatus>,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    reasons: Vec<String>,
    node: String,
    version: &'static str,
    uptime_seconds: u64,
    engine_connected: bool,
    engine_pid: Option<u32>,
    engine_restarts: u64,
    flows: Vec<FlowHealth>,
    spool: SpoolHealth,
    last_upload: Option<LastUploadHealth>,
    uploads: UploadsHealth,
}

#[derive(Serialize)]
struct LastUploadHealth {
    key: String,
    bytes: u64,
    at_ms: i64,
    age_seconds: i64,
}

#[derive(Serialize)]
struct UploadsHealth {
    targets: Vec<String>,
    backlog: u32,
    recording_stopped: bool,
}

#[derive(Serialize)]
struct FlowHealth {
    name: String,
    state: String,
    silent: bool,
}

#[derive(Serialize)]
struct SpoolHealth {
    path: String,
    bytes: u64,
    limit_bytes: u64,
}

/// The health verdict: unhealthy without an engine; degraded when a flow
/// failed, is not running, is silent, or the spool is over 90 % full.
fn health(state: &HttpState) -> Health {
    let (connected, pid, restarts, flows) = state.shared.with_view(|v| {
        let desired = state.desired_flows.lock().map(|d| d.clone()).unwrap_or_default();
        let flows: Vec<FlowHealth> = desired
            .into_iter()
            .map(|name| {
                let flow_state = match v.flows.get(&name) {
                    Some(FlowState::Running) => "running".to_string(),
                    Some(FlowState::Stopped) => "stopped".to_string(),
                    Some(FlowState::Failed { reason }) => format!("failed: {reason}"),
                    None => "unknown".to_string(),
                };
                let silent = v.silent.get(&name).copied().unwrap_or(false);
                FlowHealth { name, state: flow_state, silent }
            })
            .collect();
        (v.connected, v.engine_pid, v.gaps.len() as u64, flows)
    });
    let mut reasons = Vec::new();
    let mut status = "healthy";
    if !connected {
        status = "unhealthy";
        reasons.push("the engine is not connected".to_string());
    }
    for f in &flows {
        if f.state != "running" {
            reasons.push(format!("flow {} is {}", f.name, f.state));
        }
        if f.silent {
            reasons.push(format!("flow {} is silent", f.name));
        }
    }
    let bytes = state.spool_bytes.load(Relaxed);
    if state.spool_limit > 0 && bytes * 10 > state.spool_limit * 9 {
        reasons.push(format!("the spool is {}% full", bytes * 100 / state.spool_limit));
    }
    let up = &state.uploads;
    if up.recording_stopped() {
        reasons.push("recording stopped: the spool is full".to_string());
    }
    if status == "healthy" && !reasons.is_empty() {
        status = "degraded";
    }
    Health {
        status,
        reasons,
        node: state.node.clone(),
        version: crate::VERSION,
        uptime_seconds: state.started.elapsed().as_secs(),
        engine_connected: connected,
        engine_pid: pid,
        engine_restarts: restarts,
        flows,
        spool: SpoolHealth { path: state.spool_path.clone(), bytes, limit_bytes: state.spool_limit },
        last_upload: up.last_upload().map(|l| {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            LastUploadHealth {
                key: l.key,
                bytes: l.bytes,
                at_ms: l.at_ms,
                age_seconds: (now_ms - l.at_ms) / 1000,
            }
        }),
        uploads: UploadsHealth {
            targets: up.targets.clone(),
            backlog: up.backlog(),
            recording_stopped: up.recording_stopped(),
        },
    }
}

async fn get_health(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let h = health(&state);
    let code = if h.status == "unhealthy" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let body = serde_json::to_string_pretty(&h).unwrap_or_else(|_| "{}".into());
    (code, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn get_metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    state.shared.metrics.uptime_seconds.set(state.started.elapsed().as_secs_f64());
    state.shared.metrics.spool_bytes.set(i64::try_from(state.spool_bytes.load(Relaxed)).unwrap_or(i64::MAX));
    let body = state.shared.metrics.encode();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app =
        Router::new().route("/health", get(get_health)).route("/metrics", get(get_metrics)).with_state(state);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
