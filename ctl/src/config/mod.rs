//! ctld's configuration, in two stages: the raw TOML sections (exactly the
//! file, `deny_unknown_fields`) and the validated [`Config`].
//!
//! Every section — and every `[[flow]]` and `[[pull]]` entry — is read on its
//! own, so one run reports all the errors of a file at once, each with the
//! file, line, column and key.

mod print;
mod units;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use airlift_ipc::spec::{
    ConsumerSpec, DesiredState, FlowSpec, ProducerSpec, PullSpec, SrtMode, SrtSpec, TsSink,
};
use airlift_ipc::units::{Name, SafePath};

pub use print::{PrintError, REDACTED, effective_toml};
pub use units::{ByteSize, ListenAddr, PortRange};

/// The built-in default configuration: the demo node (see README).
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `built-in default`, or `environment`).
    pub file: String,
    /// 1-based line and column, when the problem has a place in the file.
    pub position: Option<(usize, usize)>,
    /// The key, e.g. `srt.port_range` or `flow[main]`.
    pub key: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}: {}", self.file, self.key, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.key, self.message),
        }
    }
}

/// All the problems of one configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} configuration error(s):\n{}", .0.len(), list(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn list(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
}

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

fn default_node_name() -> Name {
    Name::new("airlift").expect("valid name")
}

/// `[engine]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Spawn and supervise the engine (development, demo); false when
    /// systemd runs `airlift-engine.service` and ctld only connects.
    #[serde(default = "yes")]
    pub spawn: bool,
    /// The engine binary to spawn; by default `airlift-engine` beside ctld,
    /// then on `PATH`.
    #[serde(default)]
    pub binary: Option<SafePath>,
    /// The engine's control socket.
    #[serde(default = "default_socket")]
    pub socket: SafePath,
    /// CPU for audio threads.
    #[serde(default)]
    pub cpu: Option<u16>,
    /// SCHED_FIFO priority for audio threads, 1–99.
    #[serde(default)]
    pub rt_priority: Option<u8>,
    /// Lock the engine's memory.
    #[serde(default)]
    pub mlock: bool,
}

fn yes() -> bool {
    true
}

fn default_socket() -> SafePath {
    SafePath::new("airlift-engine.sock").expect("valid path")
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

    fn defaults() -> Self {
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

fn default_ports() -> PortRange {
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

fn default_spool() -> SafePath {
    SafePath::new("spool").expect("valid path")
}

fn default_spool_bytes() -> ByteSize {
    ByteSize(10 << 30)
}

fn default_policy() -> FullPolicy {
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

fn default_max_flows() -> u32 {
    16
}

fn default_max_segment() -> ByteSize {
    ByteSize(512 << 20)
}

fn default_upload_queue() -> u32 {
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

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it came from.
    pub source: String,
    /// Directory relative paths are resolved against.
    pub base_dir: PathBuf,
    /// `[node]`.
    pub node: NodeSection,
    /// `[engine]`.
    pub engine: EngineSection,
    /// `[http]`.
    pub http: HttpSection,
    /// `[srt]`.
    pub srt: SrtSection,
    /// `[spool]`.
    pub spool: SpoolSection,
    /// `[limits]`.
    pub limits: LimitsSection,
    /// `[[s3]]`.
    pub s3: Vec<S3Target>,
    /// `[upload]`.
    pub upload: UploadSection,
    /// `[dbus]`.
    pub dbus: DbusSection,
    /// `[health]`: when the node counts as degraded.
    pub health: crate::health::HealthSection,
    /// `[[alert]]`: webhooks that receive alarms and their clearing.
    pub alerts: Vec<crate::alert::AlertTarget>,
    /// `[[flow]]` and `[[pull]]`: the desired state sent to the engine.
    pub state: DesiredState,
}

impl Config {
    /// The spool directory, resolved.
    pub fn spool_dir(&self) -> PathBuf {
        resolve(&self.base_dir, self.spool.path.as_path())
    }

    /// The runtime state file, resolved: `[node] state_file`, else
    /// `state.json` beside the spool directory (`/var/lib/airlift/state.json`
    /// for the packaged spool `/var/lib/airlift/spool`).
    pub fn state_file(&self) -> PathBuf {
        if let Some(p) = &self.node.state_file {
            return p.resolve(&self.base_dir);
        }
        let spool = self.spool_dir();
        match spool.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join("state.json"),
            _ => self.base_dir.join("state.json"),
        }
    }

    /// `[http]` TLS certificate, key and token file, resolved.
    pub fn http_paths(&self) -> [Option<PathBuf>; 3] {
        let r = |p: &Option<SafePath>| p.as_ref().map(|p| p.resolve(&self.base_dir));
        [r(&self.http.tls_cert), r(&self.http.tls_key), r(&self.http.token_file)]
    }

    /// The API token file, resolved: `[http] api_token_file`, else
    /// `api-token` beside the state file.
    pub fn api_token_file(&self) -> PathBuf {
        match &self.http.api_token_file {
            Some(p) => p.resolve(&self.base_dir),
            None => self.state_file().with_file_name("api-token"),
        }
    }

    /// The engine socket, resolved.
    pub fn engine_socket(&self) -> PathBuf {
        resolve(&self.base_dir, self.engine.socket.as_path())
    }

    /// The desired state with relative file paths made absolute (the
    /// engine may run in another directory).
    pub fn resolved_state(&self) -> DesiredState {
        let mut state = self.state.clone();
        for flow in &mut state.flows {
            for input in &mut flow.inputs {
                for producer in input.producers_mut() {
                    if let ProducerSpec::File(file) = producer {
                        file.path = absolute(&self.base_dir, &file.path);
                    }
                }
            }
            for output in &mut flow.outputs {
                match &mut output.consumer {
                    ConsumerSpec::Wav { path, .. } => *path = absolute(&self.base_dir, path),
                    ConsumerSpec::Record(record) => record.path = absolute(&self.base_dir, &record.path),
                    ConsumerSpec::Encoded(enc) => {
                        if let TsSink::File { path } = &mut enc.sink {
                            *path = absolute(&self.base_dir, path);
                        }
                    }
                    _ => {}
                }
            }
        }
        state
    }
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}

fn absolute(base: &Path, path: &SafePath) -> SafePath {
    let joined = resolve(base, path.as_path());
    joined.to_str().and_then(|s| SafePath::new(s).ok()).unwrap_or_else(|| path.clone())
}

/// Overrides from the environment and the command line, applied after the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `AIRLIFT_HTTP_LISTEN` / `--http-listen`.
    pub http_listen: Option<String>,
    /// `AIRLIFT_SPOOL` / `--spool`.
    pub spool: Option<String>,
    /// `AIRLIFT_ENGINE_BINARY` / `--engine-binary`.
    pub engine_binary: Option<String>,
    /// `AIRLIFT_DBUS_ADDRESS` / `--dbus-address`.
    pub dbus_address: Option<String>,
}

impl Overrides {
    /// Reads the `AIRLIFT_*` environment variables.
    pub fn from_env() -> Self {
        Self {
            http_listen: std::env::var("AIRLIFT_HTTP_LISTEN").ok(),
            spool: std::env::var("AIRLIFT_SPOOL").ok(),
            engine_binary: std::env::var("AIRLIFT_ENGINE_BINARY").ok(),
            dbus_address: std::env::var("AIRLIFT_DBUS_ADDRESS").ok(),
        }
    }

    /// `self`, with every value `other` sets taking precedence.
    pub fn then(self, other: Overrides) -> Self {
        Self {
            http_listen: other.http_listen.or(self.http_listen),
            spool: other.spool.or(self.spool),
            engine_binary: other.engine_binary.or(self.engine_binary),
            dbus_address: other.dbus_address.or(self.dbus_address),
        }
    }
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            position: None,
            key: "-".into(),
            message: e.to_string(),
        }])
    })?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parse(&text, &file, base, overrides)
}

/// Validates `text` (named `file` in errors), resolving relative paths
/// against `base_dir`. Reports every error found.
pub fn parse(text: &str, file: &str, base_dir: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    let mut cx = Context { text, file, errors: Vec::new() };
    let root = match DeTable::parse(text) {
        Ok(root) => root.into_inner(),
        Err(e) => {
            cx.toml_error("-", e);
            return Err(ConfigErrors(cx.errors));
        }
    };
    let mut sections: BTreeMap<String, Spanned<DeValue<'_>>> = BTreeMap::new();
    for (key, value) in root {
        let name = key.get_ref().to_string();
        match name.as_str() {
            "node" | "engine" | "http" | "srt" | "spool" | "limits" | "s3" | "upload" | "dbus" | "health" | "alert"
            | "flow" | "pull" => {
                sections.insert(name, value);
            }
            other => cx.at(
                key.span().start,
                other,
                "unknown section; expected node, engine, http, srt, spool, limits, s3, upload, dbus, health, alert, flow or pull",
            ),
        }
    }
    let node: Option<NodeSection> = cx.section(&mut sections, "node");
    let engine: Option<EngineSection> = cx.section(&mut sections, "engine");
    let http: Option<HttpSection> = cx.section(&mut sections, "http");
    let srt: Option<SrtSection> = cx.section(&mut sections, "srt");
    let spool: Option<SpoolSection> = cx.section(&mut sections, "spool");
    let limits: Option<LimitsSection> = cx.section(&mut sections, "limits");
    let s3: Vec<(usize, S3Target)> = cx.array(&mut sections, "s3");
    let upload: Option<UploadSection> = cx.section(&mut sections, "upload");
    let dbus: Option<DbusSection> = cx.section(&mut sections, "dbus");
    let health: Option<crate::health::HealthSection> = cx.section(&mut sections, "health");
    let alerts: Vec<(usize, crate::alert::AlertTarget)> = cx.array(&mut sections, "alert");
    for (at, target) in &alerts {
        if let Err(e) = crate::alert::check_target(target, base_dir) {
            cx.at(*at, &format!("alert[{}]", target.name), e.to_string());
        }
    }
    let flows: Vec<(usize, FlowSpec)> = cx.array(&mut sections, "flow");
    let pulls: Vec<(usize, PullSpec)> = cx.array(&mut sections, "pull");

    let mut config = Config {
        source: file.to_string(),
        base_dir: base_dir.to_path_buf(),
        node: node.unwrap_or_else(|| NodeSection { name: default_node_name(), state_file: None }),
        engine: engine.unwrap_or_else(parse_default_section),
        http: http.unwrap_or_else(HttpSection::defaults),
        srt: srt.unwrap_or(SrtSection { port_range: default_ports() }),
        spool: spool.unwrap_or(SpoolSection {
            path: default_spool(),
            max_bytes: default_spool_bytes(),
            full_policy: default_policy(),
            retention_hours: 0,
        }),
        limits: limits.unwrap_or(LimitsSection {
            max_flows: default_max_flows(),
            max_pull_jobs: default_max_flows(),
            max_segment_bytes: default_max_segment(),
            upload_queue: default_upload_queue(),
        }),
        s3: s3.iter().map(|(_, t)| t.clone()).collect(),
        upload: upload.unwrap_or_default(),
        dbus: dbus.unwrap_or_default(),
        health: health.unwrap_or_default(),
        alerts: alerts.into_iter().map(|(_, t)| t).collect(),
        state: DesiredState {
            flows: flows.iter().map(|(_, f)| f.clone()).collect(),
            pulls: pulls.iter().map(|(_, p)| p.clone()).collect(),
            stopped: Vec::new(),
        },
    };
    apply_overrides(&mut config, overrides, &mut cx.errors);
    cx.check(&config, &flows, &pulls, &s3);
    if cx.errors.is_empty() { Ok(config) } else { Err(ConfigErrors(cx.errors)) }
}

fn parse_default_section<T: DeserializeOwned>() -> T {
    toml::from_str("").expect("every field of this section has a default")
}

fn apply_overrides(config: &mut Config, o: &Overrides, errors: &mut Vec<ConfigError>) {
    let env_error = |key: &str, message: String| ConfigError {
        file: "environment".into(),
        position: None,
        key: key.into(),
        message,
    };
    if let Some(listen) = &o.http_listen {
        match listen.parse() {
            Ok(addr) => config.http.listen = addr,
            Err(e) => errors.push(env_error("AIRLIFT_HTTP_LISTEN", e)),
        }
    }
    if let Some(spool) = &o.spool {
        match SafePath::new(spool.as_str()) {
            Ok(p) => config.spool.path = p,
            Err(e) => errors.push(env_error("AIRLIFT_SPOOL", e.to_string())),
        }
    }
    if let Some(addr) = &o.dbus_address {
        config.dbus.address = Some(addr.clone());
    }
    if let Some(bin) = &o.engine_binary {
        match SafePath::new(bin.as_str()) {
            Ok(p) => config.engine.binary = Some(p),
            Err(e) => errors.push(env_error("AIRLIFT_ENGINE_BINARY", e.to_string())),
        }
    }
}

/// Largest CA file read (a bundle of a few hundred certificates fits).
const CA_FILE_MAX: u64 = 1 << 20;

/// Checks that `path` is a regular file of PEM certificates that each parse
/// as a trust anchor; the message says what is wrong.
fn check_ca_file(path: &Path) -> Result<usize, String> {
    use std::io::Read;
    // Looked at before it is opened: opening a FIFO would block.
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    if meta.len() > CA_FILE_MAX {
        return Err(format!("is larger than {CA_FILE_MAX} bytes; expected PEM certificates"));
    }
    let mut pem = Vec::new();
    file.take(CA_FILE_MAX).read_to_end(&mut pem).map_err(|e| format!("cannot be read: {e}"))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|e| format!("certificate {} is not a usable CA certificate: {e}", i + 1))?;
    }
    Ok(certs.len())
}

/// Where offset `at` lies inside `value`: `.input[remote].producer.srt_in.srt`
/// (an entry of an array of tables by its `name`, else its index), or ""
/// when `at` is not inside a nested value.
///
/// An inline value's span covers it; a table or array of tables written
/// with a header (`[[flow.input]]`) spans only its header, and its keys
/// follow it: the place is in the last such table that starts before `at`.
fn path_to(value: &Spanned<DeValue<'_>>, at: usize) -> String {
    fn pick<'v, 'i>(
        children: Vec<(String, &'v Spanned<DeValue<'i>>)>,
        at: usize,
    ) -> Option<(String, &'v Spanned<DeValue<'i>>)> {
        let container =
            |v: &Spanned<DeValue<'_>>| matches!(v.get_ref(), DeValue::Table(_) | DeValue::Array(_));
        let inline = children.iter().position(|(_, v)| v.span().contains(&at));
        let index = inline.or_else(|| {
            let headed =
                children.iter().enumerate().filter(|(_, (_, v))| container(v) && v.span().start <= at);
            headed.max_by_key(|(_, (_, v))| v.span().start).map(|(i, _)| i)
        })?;
        children.into_iter().nth(index)
    }
    let mut path = String::new();
    let mut current = value;
    loop {
        let next = match current.get_ref() {
            DeValue::Table(table) => {
                pick(table.iter().map(|(k, v)| (format!(".{}", k.get_ref()), v)).collect(), at)
            }
            DeValue::Array(items) => pick(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let name = match v.get_ref() {
                            DeValue::Table(t) => t.get("name").and_then(|n| match n.get_ref() {
                                DeValue::String(n) => Some(n.to_string()),
                                _ => None,
                            }),
                            _ => None,
                        };
                        (format!("[{}]", name.unwrap_or_else(|| i.to_string())), v)
                    })
                    .collect(),
                at,
            ),
            _ => None,
        };
        match next {
            Some((step, v)) => {
                path.push_str(&step);
                current = v;
            }
            None => return path,
        }
    }
}

struct Context<'a> {
    text: &'a str,
    file: &'a str,
    errors: Vec<ConfigError>,
}

impl Context<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    fn at(&mut self, offset: usize, key: &str, message: impl Into<String>) {
        let position = Some(self.position(offset));
        self.errors.push(ConfigError {
            file: self.file.into(),
            position,
            key: key.into(),
            message: message.into(),
        });
    }

    /// A serde error inside the entry `key`, whose value was `value`: the
    /// key is completed with the path to the error's place in the value.
    fn value_error(&mut self, key: &str, value: &Spanned<DeValue<'_>>, e: toml::de::Error) {
        let inner = e.span().map(|s| path_to(value, s.start)).unwrap_or_default();
        self.toml_error(&format!("{key}{inner}"), e);
    }

    fn toml_error(&mut self, key: &str, e: toml::de::Error) {
        let position = e.span().map(|s| self.position(s.start));
        self.errors.push(ConfigError {
            file: self.file.into(),
            position,
            key: key.to_owned(),
            message: e.message().trim().to_string(),
        });
    }

    fn section<T: DeserializeOwned>(
        &mut self,
        sections: &mut BTreeMap<String, Spanned<DeValue<'_>>>,
        name: &str,
    ) -> Option<T> {
        let value = sections.remove(name)?;
        match T::deserialize(value.clone().into_deserializer()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.value_error(name, &value, e);
                None
            }
        }
    }

    fn array<T: DeserializeOwned>(
        &mut self,
        sections: &mut BTreeMap<String, Spanned<DeValue<'_>>>,
        name: &str,
    ) -> Vec<(usize, T)> {
        let Some(value) = sections.remove(name) else { return Vec::new() };
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.at(span.start, name, format!("must be an array of tables ([[{name}]])"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let start = item.span().start;
            match T::deserialize(item.clone().into_deserializer()) {
                Ok(v) => out.push((start, v)),
                Err(e) => self.value_error(&format!("{name}[{i}]"), &item, e),
            }
        }
        out
    }

    /// Rules across fields and sections.
    fn check(
        &mut self,
        config: &Config,
        flows: &[(usize, FlowSpec)],
        pulls: &[(usize, PullSpec)],
        s3: &[(usize, S3Target)],
    ) {
        self.check_upload(&config.upload, config.spool.retention_hours);
        let limits = &config.limits;
        if !(1..=256).contains(&limits.max_flows) {
            self.errors.push(self.plain("limits.max_flows", "must be 1 to 256"));
        }
        if limits.max_pull_jobs > 256 {
            self.errors.push(self.plain("limits.max_pull_jobs", "must be 0 to 256"));
        }
        if !(1..=1_000_000).contains(&limits.upload_queue) {
            self.errors.push(self.plain("limits.upload_queue", "must be 1 to 1000000"));
        }
        if flows.len() > limits.max_flows as usize {
            let at = flows[limits.max_flows as usize].0;
            self.at(
                at,
                "flow",
                format!("{} flows exceed limits.max_flows = {}", flows.len(), limits.max_flows),
            );
        }
        if pulls.len() > limits.max_pull_jobs as usize {
            let at = pulls[limits.max_pull_jobs as usize].0;
            self.at(
                at,
                "pull",
                format!("{} pull jobs exceed limits.max_pull_jobs = {}", pulls.len(), limits.max_pull_jobs),
            );
        }
        let http = &config.http;
        if http.tls_cert.is_some() != http.tls_key.is_some() {
            self.errors.push(self.plain("http.tls_cert", "tls_cert and tls_key go together"));
        }
        if !http.listen.0.ip().is_loopback() && (http.tls_cert.is_none() || http.token_file.is_none()) {
            self.errors.push(self.plain(
                "http.listen",
                &format!("{} is not a loopback address: serving beyond the host needs tls_cert, tls_key and token_file", http.listen.0),
            ));
        }
        if !(1..=100_000).contains(&http.rate_limit_per_second) {
            self.errors.push(self.plain("http.rate_limit_per_second", "must be 1 to 100000"));
        }
        if !(1..=10_080).contains(&http.session_minutes) {
            self.errors.push(self.plain("http.session_minutes", "must be 1 to 10080 (a week)"));
        }
        if let Some(p) = config.engine.rt_priority
            && !(1..=99).contains(&p)
        {
            self.errors.push(self.plain("engine.rt_priority", "must be 1 to 99"));
        }
        let mut names = HashSet::new();
        for (at, flow) in flows {
            if !names.insert(flow.name.as_str()) {
                self.at(*at, &format!("flow[{}]", flow.name), "duplicate flow name");
            }
            if let Err(errors) = flow.validate() {
                for e in errors {
                    self.at(*at, &format!("flow[{}].{}", flow.name, e.field), e.message);
                }
            }
        }
        let mut jobs = HashSet::new();
        for (at, pull) in pulls {
            if !jobs.insert(pull.name.as_str()) {
                self.at(*at, &format!("pull[{}]", pull.name), "duplicate pull job name");
            }
            if pull.segments.max_bytes > limits.max_segment_bytes.0 {
                self.at(
                    *at,
                    &format!("pull[{}].segments.max_bytes", pull.name),
                    format!("exceeds limits.max_segment_bytes ({})", limits.max_segment_bytes),
                );
            }
        }
        self.check_segment_jobs(flows, pulls);
        // SRT listener ports: inside the range, each used once.
        let mut ports: BTreeMap<u16, String> = BTreeMap::new();
        let mut listener = |cx: &mut Self, at: usize, key: String, srt: &SrtSpec| {
            for (field, message) in srt.problems() {
                match field {
                    "passphrase" => cx.at(
                        at,
                        &key,
                        "an SRT listener without a passphrase serves whoever connects first; \
                         set passphrase = \"…\" (10 to 79 bytes), or allow_unencrypted = true to run it \
                         unencrypted anyway (/health then warns: unencrypted_listener)",
                    ),
                    other => cx.at(at, &format!("{key}.{other}"), message),
                }
            }
            if let SrtMode::Listener { port } = srt.mode {
                let port = port.get();
                if !config.srt.port_range.contains(port) {
                    cx.at(
                        at,
                        &key,
                        format!(
                            "listener port {port} is outside srt.port_range {}",
                            String::from(config.srt.port_range)
                        ),
                    );
                }
                if let Some(other) = ports.insert(port, key.clone()) {
                    cx.at(at, &key, format!("listener port {port} is already used by {other}"));
                }
            }
        };
        for (at, flow) in flows {
            for input in &flow.inputs {
                for (source, producer) in input.producers() {
                    if let ProducerSpec::SrtIn(s) = producer {
                        let key = match source {
                            airlift_ipc::spec::PRIMARY_SOURCE => {
                                format!("flow[{}].input[{}].producer.srt_in.srt", flow.name, input.name)
                            }
                            backup => format!(
                                "flow[{}].input[{}].failover.backup[{backup}].producer.srt_in.srt",
                                flow.name, input.name
                            ),
                        };
                        let at = self.name_offset(*at, input.name.as_str());
                        listener(self, at, key, &s.srt);
                    }
                }
            }
            for output in &flow.outputs {
                if let ConsumerSpec::Encoded(e) = &output.consumer
                    && let TsSink::Srt(s) = &e.sink
                {
                    let at = self.name_offset(*at, output.name.as_str());
                    listener(
                        self,
                        at,
                        format!("flow[{}].output[{}].consumer.encoded.sink.srt", flow.name, output.name),
                        s,
                    );
                }
            }
        }
        for (at, pull) in pulls {
            let source = self.key_offset(*at, "source");
            listener(self, source, format!("pull[{}].source", pull.name), &pull.source);
        }
        for (at, target) in s3 {
            let key = format!("s3[{}]", target.name);
            if !(target.endpoint.starts_with("http://") || target.endpoint.starts_with("https://")) {
                self.at(*at, &format!("{key}.endpoint"), "must start with http:// or https://");
            }
            let b = &target.bucket;
            let bucket_ok = (3..=63).contains(&b.len())
                && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
            if !bucket_ok {
                self.at(*at, &format!("{key}.bucket"), "must be 3 to 63 characters of a-z 0-9 . -");
            }
            if target.prefix.contains("..") || target.prefix.starts_with('/') {
                self.at(*at, &format!("{key}.prefix"), "must be relative and must not contain `..`");
            }
            if let Some(ca) = &target.ca_file {
                let path = ca.resolve(&config.base_dir);
                if let Err(message) = check_ca_file(&path) {
                    let offset = self.key_offset(*at, "ca_file");
                    self.at(offset, &format!("{key}.ca_file"), format!("{}: {message}", path.display()));
                }
            }
        }
    }

    /// Segment jobs share one namespace (the spool's folders, the S3 keys)
    /// across flows and pulls, apart from the spool's own folder names. What
    /// a segment job is comes from [`DesiredState::segment_jobs`]; each entry
    /// is looked at on its own so the error carries its position.
    fn check_segment_jobs(&mut self, flows: &[(usize, FlowSpec)], pulls: &[(usize, PullSpec)]) {
        let one =
            |flows: Vec<FlowSpec>, pulls: Vec<PullSpec>| DesiredState { flows, pulls, stopped: Vec::new() };
        let owners = flows
            .iter()
            .map(|(at, f)| (*at, format!("flow[{}]", f.name), one(vec![f.clone()], Vec::new())))
            .chain(
                pulls
                    .iter()
                    .map(|(at, p)| (*at, format!("pull[{}]", p.name), one(Vec::new(), vec![p.clone()]))),
            );
        let mut used: BTreeMap<String, String> = BTreeMap::new();
        for (at, owner, state) in owners {
            for (_, field, job) in state.segment_jobs() {
                let key = format!("{owner}.{field}");
                if let Some(reason) = airlift_ipc::spec::reserved_job_name(job.as_str()) {
                    self.at(at, &key, reason);
                } else if let Some(first) = used.get(job.as_str()) {
                    self.at(
                        at,
                        &key,
                        format!(
                            "segment job {:?} is already used by {first}: every job needs a name of its own",
                            job.as_str()
                        ),
                    );
                } else {
                    used.insert(job.to_string(), key);
                }
            }
        }
    }

    /// Where `name = "NAME"` is first written after `from` inside the same
    /// `[[flow]]` (an input or output's own table), else `from`.
    fn name_offset(&self, from: usize, name: &str) -> usize {
        let Some(rest) = self.text.get(from..) else { return from };
        let mut offset = from;
        for (i, line) in rest.split_inclusive('\n').enumerate() {
            let trimmed = line.trim_start();
            if i > 0 && trimmed.starts_with("[[flow]]") {
                break;
            }
            for (at, _) in line.match_indices("name") {
                let after = line[at + 4..].trim_start();
                if let Some(value) = after.strip_prefix('=')
                    && value
                        .trim_start()
                        .strip_prefix('"')
                        .is_some_and(|v| v.starts_with(&format!("{name}\"")))
                {
                    return offset + at;
                }
            }
            offset += line.len();
        }
        from
    }

    /// Where `key = …` is written in the table that starts at `table`
    /// (`table` itself when it is not found, e.g. in an inline table).
    fn key_offset(&self, table: usize, key: &str) -> usize {
        let Some(rest) = self.text.get(table..) else { return table };
        let mut offset = table;
        for (i, line) in rest.split_inclusive('\n').enumerate() {
            let trimmed = line.trim_start();
            if i > 0 && trimmed.starts_with('[') {
                break;
            }
            if let Some(after) = trimmed.strip_prefix(key)
                && after.trim_start().starts_with('=')
            {
                return offset + (line.len() - trimmed.len());
            }
            offset += line.len();
        }
        table
    }

    fn check_upload(&mut self, u: &UploadSection, retention_hours: u32) {
        let mut bad = |key: &str, ok: bool, message: &str| {
            if !ok {
                self.errors.push(self.plain(key, message));
            }
        };
        bad("spool.retention_hours", retention_hours <= 24 * 365, "must be 0 to 8760");
        bad("upload.concurrency", (1..=64).contains(&u.concurrency), "must be 1 to 64");
        bad("upload.multipart_threshold", u.multipart_threshold.0 >= 5 << 20, "must be at least 5 MiB");
        bad("upload.part_size", (5 << 20..=5 << 30).contains(&u.part_size.0), "must be 5 MiB to 5 GiB");
        bad("upload.backoff_min_ms", (10..=60_000).contains(&u.backoff_min_ms), "must be 10 to 60000");
        bad(
            "upload.backoff_max_ms",
            u.backoff_max_ms >= u.backoff_min_ms && u.backoff_max_ms <= 3_600_000,
            "must be at least upload.backoff_min_ms and at most 3600000",
        );
        bad("upload.breaker_failures", (1..=1000).contains(&u.breaker_failures), "must be 1 to 1000");
        bad("upload.breaker_open_ms", (10..=3_600_000).contains(&u.breaker_open_ms), "must be 10 to 3600000");
        bad("upload.rescan_secs", (1..=3600).contains(&u.rescan_secs), "must be 1 to 3600");
        bad("upload.request_timeout_secs", (1..=3600).contains(&u.request_timeout_secs), "must be 1 to 3600");
    }

    fn plain(&self, key: &str, message: &str) -> ConfigError {
        ConfigError { file: self.file.into(), position: None, key: key.into(), message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid() {
        let config =
            parse(DEFAULT_CONFIG, "built-in default", Path::new("."), &Overrides::default()).unwrap();
        assert!(!config.state.flows.is_empty());
    }

    #[test]
    fn upload_settings_have_defaults_and_ranges() {
        let config = parse("", "empty.toml", Path::new("."), &Overrides::default()).unwrap();
        assert_eq!(config.upload, UploadSection::default());
        assert_eq!(config.spool.retention_hours, 0);
        let text = r#"
[spool]
retention_hours = 9000
[upload]
concurrency = 0
multipart_threshold = "1MiB"
part_size = "1KiB"
backoff_min_ms = 5000
backoff_max_ms = 100
breaker_failures = 0
rescan_secs = 0
[limits]
upload_queue = 0
"#;
        let errors = parse(text, "u.toml", Path::new("."), &Overrides::default()).unwrap_err().0;
        let all: Vec<String> = errors.iter().map(|e| e.key.clone()).collect();
        for key in [
            "spool.retention_hours",
            "upload.concurrency",
            "upload.multipart_threshold",
            "upload.part_size",
            "upload.backoff_max_ms",
            "upload.breaker_failures",
            "upload.rescan_secs",
            "limits.upload_queue",
        ] {
            assert!(all.iter().any(|k| k == key), "missing {key} in {all:?}");
        }
        let bad =
            parse("[upload]\nspeed = 1\n", "u.toml", Path::new("."), &Overrides::default()).unwrap_err();
        assert!(bad.to_string().contains("unknown field `speed`"), "{bad}");
    }

    #[test]
    fn an_unencrypted_srt_listener_is_refused_unless_opted_out() {
        let text = r#"[srt]
port_range = "31000-31010"

[[flow]]
name = "main"

[[flow.input]]
name = "tone"
producer = { test_signal = { kind = "silence" } }

[[flow.input]]
name = "studio"
producer = { srt_in = { srt = { mode = { listener = { port = 31000 } } } } }

[[pull]]
name = "ingest"
segments = { job = "ingest", target_seconds = 6 }
source = { mode = { listener = { port = 31001 } } }
"#;
        let errors = parse(text, "l.toml", Path::new("."), &Overrides::default()).unwrap_err();
        let shown = errors.to_string();
        assert!(
            shown.contains("l.toml:12:1: flow[main].input[studio].producer.srt_in.srt: an SRT listener without a passphrase"),
            "{shown}"
        );
        assert!(shown.contains("allow_unencrypted = true"), "{shown}");
        assert!(shown.contains("l.toml:18:1: pull[ingest].source: an SRT listener"), "{shown}");
        assert_eq!(errors.0.len(), 2, "{shown}");

        let opted_out =
            text.replace("port = 31000 } } }", "port = 31000 } }, allow_unencrypted = true }").replace(
                "port = 31001 } } }",
                "port = 31001 } }, allow_unencrypted = true, allow_from = [\"10.0.0.0/8\"] }",
            );
        let config = parse(&opted_out, "l.toml", Path::new("."), &Overrides::default()).unwrap();
        assert!(config.state.pulls[0].source.allow_unencrypted);
        assert_eq!(config.state.pulls[0].source.allow_from[0].to_string(), "10.0.0.0/8");
        let encrypted = text
            .replace("port = 31000 } } }", "port = 31000 } }, passphrase = \"correct horse\" }")
            .replace("port = 31001 } } }", "port = 31001 } }, passphrase = \"correct horse\" }");
        parse(&encrypted, "l.toml", Path::new("."), &Overrides::default()).unwrap();
        // A malformed network is refused with its own message.
        let bad = opted_out.replace("10.0.0.0/8", "10.0.0.1/8");
        let shown = parse(&bad, "l.toml", Path::new("."), &Overrides::default()).unwrap_err().to_string();
        assert!(shown.contains("the network is 10.0.0.0/8"), "{shown}");
    }

    #[test]
    fn url_listeners_get_the_same_port_checks_as_tables() {
        let text = r#"[srt]
port_range = "31000-31010"

[[flow]]
name = "main"

[[flow.input]]
name = "a"
producer = { srt_in = { srt = "srt://:31000?mode=listener&passphrase=correct-horse" } }

[[flow.input]]
name = "b"
producer = { srt_in = { srt = { mode = { listener = { port = 31000 } }, passphrase = "correct-horse" } } }

[[pull]]
name = "ingest"
segments = { job = "ingest", target_seconds = 6 }
source = "srt://:32000?mode=listener&passphrase=correct-horse"
"#;
        let shown = parse(text, "p.toml", Path::new("."), &Overrides::default()).unwrap_err().to_string();
        assert!(
            shown.contains("p.toml:12:1: flow[main].input[b].producer.srt_in.srt: listener port 31000 is already used by flow[main].input[a]"),
            "{shown}"
        );
        assert!(
            shown.contains("pull[ingest].source: listener port 32000 is outside srt.port_range 31000-31010"),
            "{shown}"
        );
        let fixed = text.replace("port = 31000 }", "port = 31001 }").replace(":32000?", ":31002?");
        let config = parse(&fixed, "p.toml", Path::new("."), &Overrides::default()).unwrap();
        assert_eq!(
            config.state.pulls[0].source.mode,
            SrtMode::Listener { port: airlift_ipc::units::Port::new(31002).unwrap() }
        );
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let text = r#"
[node]
name = "ok"
colour = "blue"

[srt]
port_range = "30100-30000"

[http]
listen = "0.0.0.0:80"

[[flow]]
name = "a"
channels = 0

[[flow]]
name = "b"
[[flow.input]]
name = "x"
gain_db = 300.0
producer = { test_signal = { kind = "silence" } }

[[s3]]
name = "t"
endpoint = "ftp://x"
bucket = "B"

[bogus]
"#;
        let errors = parse(text, "test.toml", Path::new("."), &Overrides::default()).unwrap_err().0;
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let all = shown.join("\n");
        for needle in [
            "test.toml:4:1: node: unknown field `colour`",
            "test.toml:7:14: srt.port_range: ",
            "inverted",
            "http",
            "loopback",
            "flow[0]",
            "channel count",
            "flow[1]",
            "gain",
            "s3[t].endpoint",
            "s3[t].bucket",
            "bogus: unknown section",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert!(errors.len() >= 7, "{all}");
    }

    #[test]
    fn an_s3_ca_file_must_hold_pem_certificates() {
        let dir = std::env::temp_dir().join(format!("airlift-config-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("not-pem.pem"), "this is not a certificate\n").unwrap();
        std::fs::write(
            dir.join("bad-base64.pem"),
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let config = |ca: &str| {
            format!(
                "[[s3]]\nname = \"t\"\nendpoint = \"https://127.0.0.1:9000\"\nbucket = \"archive\"\n\
                 ca_file = \"{ca}\"\n"
            )
        };
        for (ca, needle) in [
            ("not-pem.pem", "holds no PEM certificate"),
            ("bad-base64.pem", "is not valid PEM"),
            ("missing.pem", "cannot be read"),
        ] {
            let errors = parse(&config(ca), "ca.toml", &dir, &Overrides::default()).unwrap_err().0;
            assert_eq!(errors.len(), 1, "{errors:?}");
            let shown = errors[0].to_string();
            assert!(shown.starts_with("ca.toml:5:1: s3[t].ca_file: "), "{shown}");
            assert!(shown.contains(ca) && shown.contains(needle), "{shown}");
        }
        let inline =
            "s3 = [{ name = \"t\", endpoint = \"https://h\", bucket = \"archive\", ca_file = \"x.pem\" }]\n";
        let errors = parse(inline, "ca.toml", &dir, &Overrides::default()).unwrap_err().0;
        assert_eq!(errors[0].key, "s3[t].ca_file");
        assert_eq!(errors[0].position.map(|p| p.0), Some(1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn overrides_win_and_are_checked() {
        let o = Overrides { http_listen: Some("127.0.0.1:9999".into()), ..Default::default() };
        let c = parse(DEFAULT_CONFIG, "d", Path::new("."), &o).unwrap();
        assert_eq!(c.http.listen.0.port(), 9999);
        let o = Overrides { spool: Some("../escape".into()), ..Default::default() };
        let e = parse(DEFAULT_CONFIG, "d", Path::new("."), &o).unwrap_err();
        assert!(e.to_string().contains("AIRLIFT_SPOOL"));
    }
}
