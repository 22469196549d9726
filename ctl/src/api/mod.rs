//! The HTTP API (`/api/v1`) and the web console (`/`), served on ctld's
//! HTTP listener beside `/health` and `/metrics`.
//!
//! One more client of the [`Controller`] that serves D-Bus and `airliftctl`:
//! every change goes through the same controller methods with the same
//! checks, and a refusal carries the same error name as on D-Bus. Access is
//! by the API token or a session made from it ([`auth`]); the routes, the
//! JSON shapes and the events are documented in docs/http-api.md and in the
//! OpenAPI document served at `/api/v1/openapi.json`.

pub mod auth;
mod console;
mod events;
mod flows;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};

use crate::controller::{ControlError, Controller, PullOptions};
use crate::recent::Recent;
use auth::{Auth, Credential};

/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;

/// The OpenAPI 3.0 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// A refused request: a status code and a JSON body
/// `{"error": name, "message": …}` whose names are those of the D-Bus errors.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// The error's name (`NotFound`, `InvalidArgument`, …).
    pub name: &'static str,
    /// For people.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, name: &'static str, message: impl Into<String>) -> Self {
        Self { status, name, message: message.into() }
    }
    /// 401: no credential, or a wrong one.
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", m)
    }
    /// 403: a credential, but the request may not be made (CSRF, origin).
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", m)
    }
    /// 429: too many wrong tokens.
    pub fn too_many(m: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", m)
    }
    /// 500.
    pub fn failed(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Failed", m)
    }
    /// 400.
    pub fn invalid(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidArgument", m)
    }
    /// 404.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", m)
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let (status, name) = match &e {
            ControlError::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "InvalidArgument"),
            ControlError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            ControlError::LimitReached(_) => (StatusCode::CONFLICT, "LimitReached"),
            ControlError::EngineUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "EngineUnavailable"),
            ControlError::NotSupported(_) => (StatusCode::NOT_IMPLEMENTED, "NotSupported"),
            ControlError::AccessDenied(_) => (StatusCode::FORBIDDEN, "AccessDenied"),
            ControlError::Failed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Failed"),
        };
        Self::new(status, name, e.to_string())
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_string(&ErrorBody { error: self.name, message: &self.message })
            .unwrap_or_else(|_| "{}".into());
        let mut r = (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// A JSON body whose every rejection (bad JSON, wrong type, too large,
/// wrong content type) is an [`ApiError`] with a JSON body.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(JsonRejection::BytesRejection(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PayloadTooLarge",
                    format!("at most {MAX_BODY} bytes"),
                ))
            }
            Err(e) => Err(ApiError::invalid(e.body_text())),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// What the handlers share.
#[derive(Debug)]
pub struct Api {
    /// The controller (the same one D-Bus drives).
    pub ctl: Arc<Controller>,
    /// Token and sessions.
    pub auth: Auth,
    /// The last alarms and segments.
    pub recent: Arc<Recent>,
}

fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => ApiError::failed(e.to_string()).into_response(),
    }
}

/// The API's and the console's routes, guarded by `require` (a credential; CSRF and origin for changes).
pub fn router(api: Arc<Api>) -> Router {
    let v1 = Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/session", get(session))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/status", get(status))
        .route("/api/v1/health", get(health))
        .route("/api/v1/flows", get(flows::list))
        .route("/api/v1/flows/{flow}", get(flows::one))
        .route("/api/v1/flows/{flow}/start", post(start_flow))
        .route("/api/v1/flows/{flow}/stop", post(stop_flow))
        .route("/api/v1/flows/{flow}/inputs/{input}/gain", put(set_gain))
        .route("/api/v1/flows/{flow}/inputs/{input}/mute", put(set_mute))
        .route("/api/v1/flows/{flow}/inputs/{input}/pan", put(set_pan))
        .route("/api/v1/flows/{flow}/inputs/{input}/source", put(select_source))
        .route("/api/v1/pulls", get(pulls).post(start_pull))
        .route("/api/v1/pulls/{name}", axum::routing::delete(stop_pull))
        .route("/api/v1/segments", get(segments))
        .route("/api/v1/uploads", get(uploads))
        .route("/api/v1/archive", get(archive))
        .route("/api/v1/alarms", get(alarms))
        .route("/api/v1/state", get(state))
        .route("/api/v1/state/reset", post(reset_state))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/events", get(events::stream))
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), require));
    Router::new()
        .route("/api/v1/login", post(login))
        .merge(v1)
        .merge(console::routes())
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// The answer of every API and console path while they are off.
pub async fn off(why: String) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "NotSupported",
        format!("the web console and the HTTP API are off: {why}"),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// Every guarded route: a credential (bearer token or live session); for a
/// state-changing request with a session, the same origin and the CSRF token.
async fn require(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let credential = match api.auth.credential(peer.ip(), request.headers()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if auth::changes_state(request.method())
        && matches!(credential, Credential::Session { .. })
        && let Err(e) = auth::same_origin(request.headers())
            .and_then(|()| auth::check_csrf(&credential, request.headers()))
    {
        tracing::warn!(peer = %peer, path = %request.uri().path(), "HTTP API: {}", e.message);
        return e.into_response();
    }
    request.extensions_mut().insert(credential);
    next.run(request).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    token: String,
}

#[derive(Serialize)]
struct SessionInfo {
    csrf: String,
    expires_at_ms: i64,
    node: String,
}

async fn login(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Body<LoginBody>, ApiError>,
) -> ApiResult<Response> {
    auth::same_origin(&headers)?;
    if api.auth.blocked(peer.ip()) {
        return Err(ApiError::too_many("too many wrong tokens from this address; wait a minute"));
    }
    let Body(body) = body?;
    api.auth.check_token(peer.ip(), &body.token)?;
    let Credential::Session { id, csrf, expires_at_ms } = api.auth.login()? else {
        return Err(ApiError::failed("no session"));
    };
    tracing::info!(peer = %peer, "HTTP API: console login");
    let node = api.ctl.http.node.clone();
    let mut r = json(&SessionInfo { csrf, expires_at_ms, node });
    if let Ok(v) = HeaderValue::from_str(&api.auth.cookie(&id)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

async fn logout(State(api): State<Arc<Api>>, axum::Extension(c): axum::Extension<Credential>) -> Response {
    if let Credential::Session { id, .. } = c {
        api.auth.logout(&id);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&api.auth.clear_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn session(State(api): State<Arc<Api>>, axum::Extension(c): axum::Extension<Credential>) -> Response {
    let node = api.ctl.http.node.clone();
    match c {
        Credential::Session { csrf, expires_at_ms, .. } => json(&SessionInfo { csrf, expires_at_ms, node }),
        Credential::Bearer => json(&serde_json::json!({ "node": node, "bearer": true })),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn status(State(api): State<Arc<Api>>) -> Response {
    json(&api.ctl.status().await)
}

async fn health(State(api): State<Arc<Api>>) -> Response {
    json(&crate::http::health_report(&api.ctl.http))
}

async fn start_flow(State(api): State<Arc<Api>>, Path(flow): Path<String>) -> ApiResult<StatusCode> {
    api.ctl.start_flow(&flow).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stop_flow(State(api): State<Arc<Api>>, Path(flow): Path<String>) -> ApiResult<StatusCode> {
    api.ctl.stop_flow(&flow).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GainBody {
    db: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteBody {
    muted: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PanBody {
    pan: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceBody {
    source: String,
}

async fn set_gain(
    State(api): State<Arc<Api>>,
    Path((flow, input)): Path<(String, String)>,
    Body(b): Body<GainBody>,
) -> ApiResult<StatusCode> {
    api.ctl.set_gain(&flow, &input, b.db).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_mute(
    State(api): State<Arc<Api>>,
    Path((flow, input)): Path<(String, String)>,
    Body(b): Body<MuteBody>,
) -> ApiResult<StatusCode> {
    api.ctl.set_mute(&flow, &input, b.muted).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_pan(
    State(api): State<Arc<Api>>,
    Path((flow, input)): Path<(String, String)>,
    Body(b): Body<PanBody>,
) -> ApiResult<StatusCode> {
    api.ctl.set_pan(&flow, &input, b.pan).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn select_source(
    State(api): State<Arc<Api>>,
    Path((flow, input)): Path<(String, String)>,
    Body(b): Body<SourceBody>,
) -> ApiResult<StatusCode> {
    api.ctl.select_source(&flow, &input, &b.source).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pulls(State(api): State<Arc<Api>>) -> Response {
    json(&api.ctl.pulls().await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PullBody {
    url: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    segment_seconds: Option<u32>,
    #[serde(default)]
    max_segment_bytes: Option<u64>,
}

async fn start_pull(State(api): State<Arc<Api>>, Body(b): Body<PullBody>) -> ApiResult<Response> {
    let options = PullOptions {
        name: b.name.filter(|n| !n.is_empty()),
        segment_seconds: b.segment_seconds,
        max_segment_bytes: b.max_segment_bytes,
    };
    let name = api.ctl.start_pull(&b.url, options).await?;
    let mut r = json(&serde_json::json!({ "name": name }));
    *r.status_mut() = StatusCode::CREATED;
    Ok(r)
}

async fn stop_pull(State(api): State<Arc<Api>>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    api.ctl.stop_pull(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    #[serde(default)]
    offset: u32,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    100
}

async fn segments(
    State(api): State<Arc<Api>>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(page) = page.map_err(|e| ApiError::invalid(e.body_text()))?;
    Ok(json(&api.ctl.spool_files(page.offset, page.limit).await?))
}

async fn uploads(
    State(api): State<Arc<Api>>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(page) = page.map_err(|e| ApiError::invalid(e.body_text()))?;
    if page.limit > crate::controller::MAX_PAGE {
        return Err(ApiError::invalid(format!(
            "limit {}: at most {}",
            page.limit,
            crate::controller::MAX_PAGE
        )));
    }
    Ok(json(&api.ctl.http.uploads.list(page.offset, page.limit)))
}

#[derive(Serialize)]
struct Target {
    name: String,
    breaker: &'static str,
}

async fn archive(State(api): State<Arc<Api>>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let http = &api.ctl.http;
    let up = &http.uploads;
    let open = up.breakers_open();
    let targets: Vec<Target> = up
        .targets()
        .into_iter()
        .map(|name| {
            let breaker = if open.contains(&name) { "open" } else { "closed" };
            Target { name, breaker }
        })
        .collect();
    let health = crate::http::health_report(http);
    json(&serde_json::json!({
        "spool": {
            "path": http.spool_path,
            "bytes": http.spool_bytes.load(Relaxed),
            "limit_bytes": http.spool_limit,
        },
        "uploads": {
            "targets": targets,
            "backlog": up.backlog(),
            "unqueued": up.unqueued(),
            "queue_limit": up.queue_limit(),
            "lag_seconds": http.shared.metrics.upload.lag_seconds.get(),
            "recording_stopped": up.recording_stopped(),
        },
        "last_upload": health.last_upload,
        "recent_segments": api.recent.segments(),
    }))
}

async fn alarms(State(api): State<Arc<Api>>) -> Response {
    json(&api.recent.alarms())
}

async fn state(State(api): State<Arc<Api>>) -> Response {
    json(&api.ctl.runtime_state().await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    target: String,
}

async fn reset_state(State(api): State<Arc<Api>>, Body(b): Body<ResetBody>) -> ApiResult<Response> {
    let removed = api.ctl.reset_state(&b.target).await?;
    Ok(json(&serde_json::json!({ "removed": removed })))
}

async fn reload(State(api): State<Arc<Api>>) -> ApiResult<Response> {
    let flows = api.ctl.reload().await?;
    Ok(json(&serde_json::json!({ "flows": flows })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route this file serves, as (method, path) — read from the
    /// source, so a route added without documenting it fails here.
    fn served() -> std::collections::BTreeSet<(String, String)> {
        let src = include_str!("mod.rs");
        let mut out = std::collections::BTreeSet::new();
        for line in src.lines().map(str::trim).filter(|l| l.starts_with(".route(\"/api/v1")) {
            let path = line.split('"').nth(1).unwrap_or_default().to_string();
            let rest = line.split_once(',').map(|(_, r)| r).unwrap_or_default();
            for m in ["get", "post", "put", "delete"] {
                if rest.contains(&format!("{m}(")) {
                    out.insert((m.to_string(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn the_openapi_document_lists_exactly_the_served_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
        let mut documented = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for m in ["get", "post", "put", "delete"] {
                if item.get(m).is_some() {
                    documented.insert((m.to_string(), path.clone()));
                }
            }
        }
        let served = served();
        assert!(served.len() > 20, "{served:?}");
        assert_eq!(documented, served);
    }

    #[test]
    fn controller_errors_keep_their_d_bus_names() {
        let e: ApiError = ControlError::NotFound("no flow named x".into()).into();
        assert_eq!((e.status.as_u16(), e.name), (404, "NotFound"));
        let e: ApiError = ControlError::EngineUnavailable("away".into()).into();
        assert_eq!((e.status.as_u16(), e.name), (503, "EngineUnavailable"));
        let e: ApiError = ControlError::LimitReached("full".into()).into();
        assert_eq!((e.status.as_u16(), e.name), (409, "LimitReached"));
    }
}
