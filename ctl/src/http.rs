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
use crate::health::{self, HealthInputs, HealthSection, Reason, Verdict};

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
    /// Segments without a manifest found by the last spool survey.
    pub orphans: AtomicU64,
    /// `[health]` bounds (follow reloads).
    pub health: std::sync::Mutex<HealthSection>,
}

impl HttpState {
    /// What the health verdict is made from, now.
    pub fn health_inputs(&self) -> HealthInputs {
        let desired = self.desired_flows.lock().map(|d| d.clone()).unwrap_or_default();
        let mut inputs = self.shared.with_view(|v| HealthInputs {
            engine_connected: v.connected,
            flows: desired
                .into_iter()
                .map(|name| {
                    let state = match v.flows.get(&name) {
                        Some(FlowState::Running) => "running".to_string(),
                        Some(FlowState::Stopped) => "stopped".to_string(),
                        Some(FlowState::Failed { reason }) => format!("failed: {reason}"),
                        None => "unknown".to_string(),
                    };
                    let silent = v.silent.get(&name).copied().unwrap_or(false);
                    (name, state, silent)
                })
                .collect(),
            // A job removed while it failed (reload, StopPull, the spool
            // policy) gets no last report from the engine: only wanted
            // jobs count.
            pulls_failing: v
                .pulls
                .iter()
                .filter(|(job, _)| v.desired_pulls.contains(*job))
                .filter_map(|(job, s)| match s {
                    FlowState::Failed { reason } => Some((job.clone(), reason.clone())),
                    _ => None,
                })
                .collect(),
            links_down: v
                .links_down
                .iter()
                .map(|((flow, link), since)| (flow.clone(), link.clone(), since.elapsed()))
                .collect(),
            state_rejected: v.last_rejection.clone(),
            unencrypted_listeners: v.unencrypted_listeners.clone(),
            ..HealthInputs::default()
        });
        let up = &self.uploads;
        inputs.breakers_open = up.breakers_open();
        inputs.most_upload_attempts = up.most_attempts();
        let lag = self.shared.metrics.upload.lag_seconds.get();
        inputs.upload_lag = (lag > 0.0).then(|| std::time::Duration::from_secs_f64(lag));
        inputs.orphans = self.orphans.load(Relaxed);
        inputs.spool_bytes = self.spool_bytes.load(Relaxed);
        inputs.spool_limit = self.spool_limit;
        inputs.recording_stopped = up.recording_stopped();
        inputs
    }

    /// The verdict and its reasons; also sets `airlift_health_reason`.
    pub fn judge(&self) -> (Verdict, Vec<Reason>) {
        let bounds = self.health.lock().map(|h| h.clone()).unwrap_or_default();
        let (verdict, reasons) = health::judge(&self.health_inputs(), &bounds);
        self.shared.metrics.record_health(verdict, &reasons);
        (verdict, reasons)
    }
}

/// The body of `/health`.
#[derive(Serialize)]
pub(crate) struct Health {
    status: &'static str,
    reasons: Vec<String>,
    reason_codes: Vec<&'static str>,
    node: String,
    version: &'static str,
    uptime_seconds: u64,
    engine_connected: bool,
    engine_pid: Option<u32>,
    engine_restarts: u64,
    flows: Vec<FlowHealth>,
    spool: SpoolHealth,
    pub(crate) last_upload: Option<LastUploadHealth>,
    uploads: UploadsHealth,
}

#[derive(Serialize)]
pub(crate) struct LastUploadHealth {
    key: String,
    bytes: u64,
    at_ms: i64,
    age_seconds: i64,
}

#[derive(Serialize)]
struct UploadsHealth {
    targets: Vec<String>,
    backlog: u32,
    /// Of the backlog, segments waiting in the spool for room in the queue.
    unqueued: u64,
    /// `[limits] upload_queue`.
    queue_limit: u64,
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

/// The health verdict ([`crate::health`]) with what it was made from.
pub(crate) fn health_report(state: &HttpState) -> Health {
    let (verdict, reasons) = state.judge();
    let inputs = state.health_inputs();
    let (connected, pid, restarts) =
        state.shared.with_view(|v| (v.connected, v.engine_pid, v.gaps.len() as u64));
    let flows =
        inputs.flows.into_iter().map(|(name, state, silent)| FlowHealth { name, state, silent }).collect();
    let bytes = inputs.spool_bytes;
    let up = &state.uploads;
    Health {
        status: verdict.as_str(),
        reason_codes: reasons.iter().map(|r| r.code).collect(),
        reasons: reasons.into_iter().map(|r| r.message).collect(),
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
            targets: up.targets(),
            backlog: up.backlog(),
            unqueued: up.unqueued(),
            queue_limit: up.queue_limit(),
            recording_stopped: up.recording_stopped(),
        },
    }
}

async fn get_health(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let h = health_report(&state);
    let code = if h.status == "unhealthy" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let body = serde_json::to_string_pretty(&h).unwrap_or_else(|_| "{}".into());
    (code, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn get_metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    state.shared.metrics.uptime_seconds.set(state.started.elapsed().as_secs_f64());
    state.shared.metrics.spool_bytes.set(i64::try_from(state.spool_bytes.load(Relaxed)).unwrap_or(i64::MAX));
    state.judge();
    let engine_pid = state.shared.with_view(|v| if v.connected { v.engine_pid } else { None });
    state.shared.metrics.record_process("ctld", Some(std::process::id()));
    state.shared.metrics.record_process("engine", engine_pid);
    let body = state.shared.metrics.encode();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

/// Who may ask: an optional bearer token, a per-client rate limit, and TLS.
#[derive(Clone)]
pub struct HttpSecurity {
    /// Serve HTTPS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Clients must send `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Requests per second per client address.
    pub rate_per_second: u32,
}

impl std::fmt::Debug for HttpSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSecurity")
            .field("tls", &self.tls.is_some())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("rate_per_second", &self.rate_per_second)
            .finish()
    }
}

/// Why the HTTP security settings could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The token file holds fewer than 16 characters.
    #[error("the token in {0} is shorter than 16 characters")]
    ShortToken(String),
    /// The certificate or key is not usable PEM.
    #[error("TLS: {0}")]
    Tls(String),
}

impl HttpSecurity {
    /// Loads the token and TLS files named by `[http]`.
    pub fn load(http: &crate::config::HttpSectionView<'_>) -> Result<Self, SecurityError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|source| SecurityError::Read { path: p.display().to_string(), source })
        };
        let token = match http.token_file {
            Some(p) => {
                let text = String::from_utf8_lossy(&read(p)?).trim().to_string();
                if text.chars().count() < 16 {
                    return Err(SecurityError::ShortToken(p.display().to_string()));
                }
                Some(text)
            }
            None => None,
        };
        let tls = match (http.tls_cert, http.tls_key) {
            (Some(cert), Some(key)) => {
                let certs: Vec<_> = rustls_pemfile::certs(&mut read(cert)?.as_slice())
                    .collect::<Result<_, _>>()
                    .map_err(|e| SecurityError::Tls(format!("{}: {e}", cert.display())))?;
                if certs.is_empty() {
                    return Err(SecurityError::Tls(format!("{}: no certificate", cert.display())));
                }
                let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
                    .map_err(|e| SecurityError::Tls(format!("{}: {e}", key.display())))?
                    .ok_or_else(|| SecurityError::Tls(format!("{}: no private key", key.display())))?;
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ServerConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| SecurityError::Tls(e.to_string()))?
                    .with_no_client_auth()
                    .with_single_cert(certs, key)
                    .map_err(|e| SecurityError::Tls(e.to_string()))?;
                Some(Arc::new(config))
            }
            _ => None,
        };
        Ok(Self { tls, token, rate_per_second: http.rate_limit_per_second })
    }
}

/// Token-bucket rate limiting per client address.
#[derive(Debug)]
struct RateLimiter {
    rate: f64,
    buckets: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    fn allow(&self, ip: std::net::IpAddr) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else { return false };
        let now = Instant::now();
        if buckets.len() > 10_000 {
            // Forget clients idle for a minute rather than grow without bound.
            buckets.retain(|_, (_, t)| now.duration_since(*t).as_secs() < 60);
        }
        let burst = self.rate * 2.0;
        let (tokens, last) = buckets.entry(ip).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Guard {
    token: Option<String>,
    limiter: RateLimiter,
}

fn same(a: &[u8], b: &[u8]) -> bool {
    // Constant time for equal lengths.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every route: at most the configured requests per second per address.
async fn rate_limit(
    State(guard): State<Arc<Guard>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !guard.limiter.allow(peer.ip()) {
        return (StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded\n").into_response();
    }
    next.run(request).await
}

/// `/health` and `/metrics`: the bearer token of `[http] token_file`, if set.
async fn guard(
    State(guard): State<Arc<Guard>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(token) = &guard.token {
        let sent = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(sent.as_bytes(), token.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// Serves until `shutdown` completes: plain HTTP, or HTTPS when `security`
/// has TLS; the token and rate limit apply either way. With `api`, the
/// HTTP API and the web console ([`crate::api`]) are served beside
/// `/health` and `/metrics`, under their own credentials. Untrusted clients
/// cannot exhaust ctld: at most [`MAX_CONNECTIONS`] connections at once and
/// [`MAX_PER_ADDRESS`] from one address (more are closed at once), a
/// connection that sends nothing for 5 s or takes longer than 5 s for a
/// request head is closed, request heads are capped at 16 KiB, and no
/// connection lives past 60 s.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    security: HttpSecurity,
    api: Option<Arc<crate::api::Api>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let guard_state = Arc::new(Guard {
        token: security.token.clone(),
        limiter: RateLimiter {
            rate: f64::from(security.rate_per_second.max(1)),
            buckets: Default::default(),
        },
    });
    let mut app = Router::new()
        .route("/health", get(get_health))
        .route("/metrics", get(get_metrics))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(guard_state.clone(), guard));
    if let Some(api) = api {
        app = app.merge(crate::api::router(api));
    }
    let app = app.layer(axum::middleware::from_fn_with_state(guard_state, rate_limit));
    let acceptor = security.tls.map(tokio_rustls::TlsAcceptor::from);
    let limits = Arc::new(ConnLimits::default());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: wait a moment instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        // Over a cap the connection is closed at once: it costs no
        // descriptor beyond this moment, and clients elsewhere still get in.
        let Some(slot) = limits.admit(peer.ip()) else {
            drop(tcp);
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        tokio::spawn(async move {
            let _slot = slot;
            // A connection that sends nothing is closed after FIRST_BYTE.
            if tokio::time::timeout(FIRST_BYTE, tcp.readable()).await.is_err() {
                return;
            }
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ)
                .max_buf_size(MAX_REQUEST_HEAD);
            let served = async {
                match &acceptor {
                    Some(acceptor) => {
                        let stream = match tokio::time::timeout(HEADER_READ, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, "TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => return,
                        };
                        let io = hyper_util::rt::TokioIo::new(stream);
                        if let Err(e) = builder.serve_connection(io, service).await {
                            tracing::debug!(%peer, "HTTPS connection: {e}");
                        }
                    }
                    None => {
                        let io = hyper_util::rt::TokioIo::new(tcp);
                        if let Err(e) = builder.serve_connection(io, service).await {
                            tracing::debug!(%peer, "HTTP connection: {e}");
                        }
                    }
                }
            };
            // No connection lives longer than CONNECTION_MAX (a scraper
            // simply connects again).
            let _ = tokio::time::timeout(CONNECTION_MAX, served).await;
        });
    }
}

/// Connections served at once, in all.
pub const MAX_CONNECTIONS: usize = 512;
/// Connections served at once from one address.
pub const MAX_PER_ADDRESS: usize = 32;
/// How long a new connection may stay silent.
const FIRST_BYTE: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a request's head (or a TLS handshake) may take.
const HEADER_READ: std::time::Duration = std::time::Duration::from_secs(5);
/// The longest a connection is kept.
const CONNECTION_MAX: std::time::Duration = std::time::Duration::from_secs(60);
/// Largest request head read.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Counts open connections, in all and per address.
#[derive(Debug, Default)]
struct ConnLimits {
    open: std::sync::Mutex<(usize, std::collections::HashMap<std::net::IpAddr, usize>)>,
}

/// A connection's place under the caps, given back when it drops.
struct Slot {
    limits: Arc<ConnLimits>,
    ip: std::net::IpAddr,
}

impl ConnLimits {
    fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().ok()?;
        let per = open.1.get(&ip).copied().unwrap_or(0);
        if open.0 >= MAX_CONNECTIONS || per >= MAX_PER_ADDRESS {
            return None;
        }
        open.0 += 1;
        open.1.insert(ip, per + 1);
        Some(Slot { limits: self.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.limits.open.lock() {
            open.0 = open.0.saturating_sub(1);
            if let Some(n) = open.1.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    open.1.remove(&self.ip);
                }
            }
        }
    }
}
