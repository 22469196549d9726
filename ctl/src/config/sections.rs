//! The raw TOML sections of the configuration file (`[node]`, `[engine]`,
//! `[http]`, `[srt]`, `[spool]`, `[upload]`, `[limits]`, `[[s3]]`,
//! `[dbus]`), each read exactly as written (`deny_unknown_fields`), with
//! their defaults.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use airlift_ipc::units::{Name, SafePath};

use super::units::{ByteSize, ListenAddr, PortRange};

/// `[node]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// The node's name, in metrics and logs.
    #[serde(default = "default_node_name")]
    pub name: Name,
    /// Where the runtime state (the operator's gain, mute, pan, stopped
    /// flows and pull jobs) is kept across restarts; by default
    /// `state.json` beside the spool directory.
    #[serde(default)]
    pub state_file: Option<SafePath>,
}

pub(super) fn default_node_name() -> Name {
    Name::new("airlift").expect("valid name")
}

/// `[engine]`: the schema both ctld and the engine read (defined once, in
/// `airlift_ipc::settings`).
pub use airlift_ipc::settings::EngineSection;

fn yes() -> bool {
    true
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Where `/health` and `/metrics` are served. Beyond loopback, TLS and a
    /// token are required.
    #[serde(default = "default_listen")]
    pub listen: ListenAddr,
    /// PEM certificate chain; with `tls_key`, serve HTTPS.
    #[serde(default)]
    pub tls_cert: Option<SafePath>,
    /// PEM private key.
    #[serde(default)]
    pub tls_key: Option<SafePath>,
    /// File holding the bearer token clients must send (at least 16 characters).
    #[serde(default)]
    pub token_file: Option<SafePath>,
    /// Requests per second allowed per client address (a burst of twice that).
    #[serde(default = "default_rate")]
    pub rate_limit_per_second: u32,
    /// File holding the token of the HTTP API and the web console (created
    /// with a random token when missing; default `api-token` beside the
    /// state file).
    #[serde(default)]
    pub api_token_file: Option<SafePath>,
    /// Minutes a console session lasts after its login (1 … 10080).
    #[serde(default = "default_session_minutes")]
    pub session_minutes: u32,
}

fn default_rate() -> u32 {
    50
}

fn default_session_minutes() -> u32 {
    720
}

/// `[http]` with its paths resolved, for [`crate::http::HttpSecurity::load`].
#[derive(Debug)]
pub struct HttpSectionView<'a> {
    /// Certificate file.
    pub tls_cert: Option<&'a Path>,
    /// Key file.
    pub tls_key: Option<&'a Path>,
    /// Token file.
    pub token_file: Option<&'a Path>,
    /// Rate limit.
    pub rate_limit_per_second: u32,
}

impl HttpSection {
    /// A view of this section whose paths are already resolved in `paths`.
    pub fn view<'a>(&self, paths: &'a [Option<PathBuf>; 3]) -> HttpSectionView<'a> {
        HttpSectionView {
            tls_cert: paths[0].as_deref(),
            tls_key: paths[1].as_deref(),
            token_file: paths[2].as_deref(),
            rate_limit_per_second: self.rate_limit_per_second,
        }
    }

    pub(super) fn defaults() -> Self {
        Self {
            listen: default_listen(),
            tls_cert: None,
            tls_key: None,
            token_file: None,
            rate_limit_per_second: default_rate(),
            api_token_file: None,
            session_minutes: default_session_minutes(),
        }
    }
}

fn default_listen() -> ListenAddr {
    "127.0.0.1:9480".parse().expect("valid address")
}

/// `[srt]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrtSection {
    /// UDP ports SRT listeners may use.
    #[serde(default = "default_ports")]
    pub port_range: PortRange,
}

pub(super) fn default_ports() -> PortRange {
    PortRange::try_from("30000-30099".to_string()).expect("valid range")
}

/// What happens when the spool is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FullPolicy {
    /// Stop recording and raise an alarm.
    StopRecording,
    /// Drop the oldest segments not yet uploaded, counting them, with an alarm.
    DropOldest,
}

/// `[spool]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    /// Directory of finished segments waiting for upload.
    #[serde(default = "default_spool")]
    pub path: SafePath,
    /// Largest spool size.
    #[serde(default = "default_spool_bytes")]
    pub max_bytes: ByteSize,
    /// Policy when `max_bytes` is reached.
    #[serde(default = "default_policy")]
    pub full_policy: FullPolicy,
    /// Hours an uploaded segment stays in `<spool>/retained/` before it is
    /// deleted; 0 deletes it as soon as every target verified it.
    #[serde(default)]
    pub retention_hours: u32,
}

/// `[upload]`: how segments travel from the spool to the `[[s3]]` targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadSection {
    /// Uploads in flight at once, 1–64.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Objects of this size or larger go up in parts (at least 5 MiB).
    #[serde(default = "default_multipart_threshold")]
    pub multipart_threshold: ByteSize,
    /// Part size of multipart uploads (5 MiB to 5 GiB).
    #[serde(default = "default_part_size")]
    pub part_size: ByteSize,
    /// Objects up to this size are read back and hashed after the upload;
    /// larger ones are checked by size (their parts were checksummed by the server).
    #[serde(default = "default_verify_read_back")]
    pub verify_read_back_max: ByteSize,
    /// First retry delay in milliseconds (doubles per failure, with jitter), 10–60000.
    #[serde(default = "default_backoff_min")]
    pub backoff_min_ms: u64,
    /// Longest retry delay in milliseconds, ≥ `backoff_min_ms`, ≤ 3600000.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    /// Consecutive failures that open a target's circuit breaker, 1–1000.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// Milliseconds an open breaker waits before a half-open probe, 10–3600000.
    #[serde(default = "default_breaker_open_ms")]
    pub breaker_open_ms: u64,
    /// Seconds between full spool rescans (besides start-up and segment events), 1–3600.
    #[serde(default = "default_rescan_secs")]
    pub rescan_secs: u64,
    /// Timeout of one S3 request in seconds, 1–3600.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
}

fn default_concurrency() -> u32 {
    4
}
fn default_multipart_threshold() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_part_size() -> ByteSize {
    ByteSize(16 << 20)
}
fn default_verify_read_back() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_backoff_min() -> u64 {
    500
}
fn default_backoff_max() -> u64 {
    60_000
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_open_ms() -> u64 {
    10_000
}
fn default_rescan_secs() -> u64 {
    30
}
fn default_request_timeout() -> u64 {
    120
}

impl Default for UploadSection {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            multipart_threshold: default_multipart_threshold(),
            part_size: default_part_size(),
            verify_read_back_max: default_verify_read_back(),
            backoff_min_ms: default_backoff_min(),
            backoff_max_ms: default_backoff_max(),
            breaker_failures: default_breaker_failures(),
            breaker_open_ms: default_breaker_open_ms(),
            rescan_secs: default_rescan_secs(),
            request_timeout_secs: default_request_timeout(),
        }
    }
}

pub(super) fn default_spool() -> SafePath {
    SafePath::new("spool").expect("valid path")
}

pub(super) fn default_spool_bytes() -> ByteSize {
    ByteSize(10 << 30)
}

pub(super) fn default_policy() -> FullPolicy {
    FullPolicy::StopRecording
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Most flows.
    #[serde(default = "default_max_flows")]
    pub max_flows: u32,
    /// Most pull jobs.
    #[serde(default = "default_max_flows")]
    pub max_pull_jobs: u32,
    /// Largest segment.
    #[serde(default = "default_max_segment")]
    pub max_segment_bytes: ByteSize,
    /// Most segments in the upload queue at once, 1–1000000. Segments
    /// beyond it wait in the spool (nothing is dropped for it) and are
    /// queued as uploads finish; the spool's own limit is `[spool] max_bytes`.
    #[serde(default = "default_upload_queue")]
    pub upload_queue: u32,
}

pub(super) fn default_max_flows() -> u32 {
    16
}

pub(super) fn default_max_segment() -> ByteSize {
    ByteSize(512 << 20)
}

pub(super) fn default_upload_queue() -> u32 {
    10_000
}

/// One `[[s3]]` target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Target {
    /// Target name.
    pub name: Name,
    /// `http://` or `https://` endpoint.
    pub endpoint: String,
    /// Region.
    #[serde(default = "default_region")]
    pub region: String,
    /// Bucket.
    pub bucket: String,
    /// Key prefix.
    #[serde(default)]
    pub prefix: String,
    /// File holding `ACCESS_KEY:SECRET_KEY`; else the environment's
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    #[serde(default)]
    pub credentials_file: Option<SafePath>,
    /// Path-style addressing.
    #[serde(default = "yes")]
    pub path_style: bool,
    /// PEM file of CA certificates trusted for an `https://` endpoint, besides
    /// the built-in roots (a private CA). Read and checked when the
    /// configuration is validated: it must hold at least one certificate.
    #[serde(default)]
    pub ca_file: Option<SafePath>,
}

fn default_region() -> String {
    "us-east-1".into()
}

/// Which bus the D-Bus service is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusKind {
    /// The session bus if `DBUS_SESSION_BUS_ADDRESS` is set, else the system bus.
    Auto,
    /// The system bus (appliances; needs the shipped policy file).
    System,
    /// The session bus (development).
    Session,
    /// No D-Bus service.
    None,
}

/// `[dbus]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbusSection {
    /// Which bus.
    #[serde(default = "default_bus")]
    pub bus: BusKind,
    /// A bus address used instead (e.g. a private test bus); overrides `bus`.
    #[serde(default)]
    pub address: Option<String>,
    /// Members of this group (besides root and ctld's own user) may call
    /// methods that change the node.
    #[serde(default = "default_group")]
    pub group: Option<String>,
}

fn default_bus() -> BusKind {
    BusKind::Auto
}

fn default_group() -> Option<String> {
    Some("airlift".into())
}

impl Default for DbusSection {
    fn default() -> Self {
        Self { bus: default_bus(), address: None, group: default_group() }
    }
}
