//! The D-Bus service `org.airlift.Node1` at `/org/airlift/Node1`, with one
//! `org.airlift.Flow1` object per flow at `/org/airlift/Node1/flow/<name>`.
//!
//! Interfaces are registered through `connection::Builder` before the name
//! is taken. Methods that change the node check the caller's uid (from the
//! bus) against root, ctld's own user and the configured group, on top of the
//! bus policy; the engine's user (`airlift-engine`, which parses media from
//! the network) is refused even when it is in the group. Refusals are named
//! errors `org.airlift.Node1.Error.*`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, interface};
use zbus::{OwnedObjectPath, OwnedVariant as OwnedValue, Variant as Value};

use airlift_ipc::message::{EngineToCtl, FlowState, SrtLinkState};

use crate::upload::UploadEvent;

use crate::config::{BusKind, DbusSection};
use crate::controller::{ControlError, Controller, PullOptions};

/// The well-known name.
pub const BUS_NAME: &str = "org.airlift.Node1";
/// The node object's path.
pub const NODE_PATH: &str = "/org/airlift/Node1";

/// Errors as the bus sees them: `org.airlift.Node1.Error.<Variant>`.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.airlift.Node1.Error")]
pub enum NodeError {
    /// A transport-level error.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// An argument is malformed or out of range.
    InvalidArgument(String),
    /// No such flow, input or job.
    NotFound(String),
    /// A limit would be exceeded.
    LimitReached(String),
    /// The engine is not connected.
    EngineUnavailable(String),
    /// This build lacks the capability.
    NotSupported(String),
    /// The caller may not change the node.
    AccessDenied(String),
    /// Anything else.
    Failed(String),
}

impl From<ControlError> for NodeError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::InvalidArgument(m) => NodeError::InvalidArgument(m),
            ControlError::NotFound(m) => NodeError::NotFound(m),
            ControlError::LimitReached(m) => NodeError::LimitReached(m),
            ControlError::EngineUnavailable(m) => NodeError::EngineUnavailable(m),
            ControlError::NotSupported(m) => NodeError::NotSupported(m),
            ControlError::AccessDenied(m) => NodeError::AccessDenied(m),
            ControlError::Failed(m) => NodeError::Failed(m),
        }
    }
}

/// Longest string argument accepted (names are far shorter).
const MAX_ARG: usize = 4096;

fn bounded(what: &str, s: &str) -> Result<(), NodeError> {
    if s.len() > MAX_ARG {
        return Err(NodeError::InvalidArgument(format!("{what} is longer than {MAX_ARG} bytes")));
    }
    Ok(())
}

/// Who may change the node.
#[derive(Debug, Clone)]
struct CallerPolicy {
    own_uid: u32,
    group: Option<String>,
}

impl CallerPolicy {
    async fn check(&self, hdr: &Header<'_>, conn: &Connection) -> Result<(), NodeError> {
        let sender = hdr.sender().ok_or_else(|| NodeError::AccessDenied("the call has no sender".into()))?;
        let dbus = zbus::fdo::DBusProxy::new(conn).await?;
        let uid = dbus
            .get_connection_unix_user(sender.clone().into())
            .await
            .map_err(|e| NodeError::AccessDenied(format!("cannot identify the caller: {e}")))?;
        if uid == 0 || uid == self.own_uid {
            return Ok(());
        }
        if Some(uid) == crate::engine_link::engine_user_uid() {
            return Err(NodeError::AccessDenied(format!(
                "uid {uid} is {}, the engine's user, which may not change the node",
                crate::engine_link::ENGINE_USER
            )));
        }
        if let Some(group) = &self.group
            && user_in_group(uid, group)
        {
            return Ok(());
        }
        Err(NodeError::AccessDenied(format!(
            "uid {uid} may not change the node; add the user to the {} group",
            self.group.as_deref().unwrap_or("(no group configured)")
        )))
    }
}

/// Whether `uid` belongs to `group` (primary or supplementary), from
/// `/etc/passwd` and `/etc/group`.
fn user_in_group(uid: u32, group: &str) -> bool {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let user = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[2].parse() == Ok(uid)).then(|| (f[0].to_string(), f[3].to_string()))
    });
    let Some((name, primary_gid)) = user else { return false };
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups.lines().any(|l| {
        let f: Vec<&str> = l.split(':').collect();
        f.len() > 3 && f[0] == group && (f[2] == primary_gid || f[3].split(',').any(|m| m == name))
    })
}

/// `org.airlift.Node1`.
#[derive(Debug)]
pub struct NodeService {
    ctl: Arc<Controller>,
    policy: CallerPolicy,
}

#[interface(name = "org.airlift.Node1")]
impl NodeService {
    /// Flows as (name, state).
    async fn list_flows(&self) -> Vec<(String, String)> {
        self.ctl.flows().await.into_iter().map(|f| (f.name, f.state)).collect()
    }

    /// Starts a stopped flow.
    async fn start_flow(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        flow: &str,
    ) -> Result<(), NodeError> {
        bounded("flow", flow)?;
        self.policy.check(&hdr, conn).await?;
        Ok(self.ctl.start_flow(flow).await?)
    }

    /// Stops a flow.
    async fn stop_flow(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        flow: &str,
    ) -> Result<(), NodeError> {
        bounded("flow", flow)?;
        self.policy.check(&hdr, conn).await?;
        Ok(self.ctl.stop_flow(flow).await?)
    }

    /// Sets an input's gain in dB.
    async fn set_gain(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        flow: &str,
        input: &str,
        db: f64,
    ) -> Result<(), NodeError> {
        bounded("flow", flow)?;
        bounded("input", input)?;
        self.policy.check(&hdr, conn).await?;
        Ok(self.ctl.set_gain(flow, input, db).await?)
    }

    /// Mutes or unmutes an input.
    async fn set_mute(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        flow: &str,
        input: &str,
        muted: bool,
    ) -> Result<(), NodeError> {
        bounded("flow", flow)?;
        bounded("input", input)?;
        self.policy.check(&hdr, conn).await?;
        Ok(self.ctl.set_mute(flow, input, muted).await?)
    }

    /// Forces the source an input with backups plays (`primary` or a
    /// backup's name), or `auto` to return it to automatic selection. The
    /// choice is operator state: it outlives restarts until changed.
    async fn select_source(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        flow: &str,
        input: &str,
        source: &str,
    ) -> Result<(), NodeError> {
        bounded("flow", flow)?;
        bounded("input", input)?;
        bounded("source", source)?;
        self.policy.check(&hdr, conn).await?;
        Ok(self.ctl.select_source(flow, input, source).await?)
    }

    /// Sets an input's pan (−1 … 1).
    async fn set_pan(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        flow: &str,
        input: &str,
        pan: f64,
    ) -> Result<(), NodeError> {
        bounded("flow", flow)?;
        bounded("input", input)?;
        self.policy.check(&hdr, conn).await?;
        Ok(self.ctl.set_pan(flow, input, pan).await?)
    }

    /// Starts pulling an `srt://` URL into segments; returns the job's id.
    /// Options: `name` (s), `segment_seconds` (u), `max_segment_bytes` (t).
    async fn start_pull(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        url: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<String, NodeError> {
        bounded("url", url)?;
        self.policy.check(&hdr, conn).await?;
        let options = pull_options(&options)?;
        Ok(self.ctl.start_pull(url, options).await?)
    }

    /// Stops a pull job.
    async fn stop_pull(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        id: &str,
    ) -> Result<(), NodeError> {
        bounded("id", id)?;
        self.policy.check(&hdr, conn).await?;
        Ok(self.ctl.stop_pull(id).await?)
    }

    /// Pull jobs as (id, state, source URL without its passphrase).
    async fn list_pulls(&self) -> Vec<(String, String, String)> {
        self.ctl.pulls().await.into_iter().map(|p| (p.name, p.state, p.source)).collect()
    }

    /// The node's status as a dictionary.
    async fn status(&self) -> HashMap<String, OwnedValue> {
        let s = self.ctl.status().await;
        let mut m = HashMap::new();
        let mut put = |k: &str, v: Value<'_>| {
            if let Ok(v) = v.try_into() {
                m.insert(k.to_string(), v);
            }
        };
        put("node", Value::from(s.node));
        put("version", Value::from(s.version));
        put("state", Value::from(s.state));
        put("reasons", Value::from(s.reasons));
        put("engine_connected", Value::from(s.engine_connected));
        put("engine_restarts", Value::from(s.engine_restarts));
        put("flows", Value::from(s.flows.len() as u32));
        put("xruns", Value::from(s.xruns));
        put("deadline_misses", Value::from(s.deadline_misses));
        put("spool_bytes", Value::from(s.spool_bytes));
        put("upload_backlog", Value::from(s.upload_backlog));
        put("config", Value::from(s.config));
        put("runtime_overrides", Value::from(s.runtime_overrides));
        put("recording_stopped_by_policy", Value::from(s.recording_stopped_by_policy));
        put("state_file", Value::from(s.state_file));
        m
    }

    /// Re-reads the configuration file; returns the number of flows.
    async fn reload(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, NodeError> {
        self.policy.check(&hdr, conn).await?;
        Ok(self.ctl.reload().await? as u32)
    }

    /// The runtime state: each value the operator (or the spool policy) set
    /// over the configuration, as (flow, subject, key, runtime value,
    /// configured value); flow is empty for a pull job, subject is an input,
    /// `pull <id>` or empty for the flow itself.
    async fn runtime_state(&self) -> Vec<(String, String, String, String, String)> {
        self.ctl
            .runtime_state()
            .await
            .into_iter()
            .map(|r| (r.flow, r.subject, r.key, r.runtime, r.config))
            .collect()
    }

    /// Clears the operator's runtime values of a flow or pull job ("" for
    /// all): the configuration applies again, runtime pull jobs stop. The
    /// spool policy's stop stays. Returns how many values were cleared.
    async fn reset_state(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        flow: &str,
    ) -> Result<u32, NodeError> {
        bounded("flow", flow)?;
        self.policy.check(&hdr, conn).await?;
        Ok(self.ctl.reset_state(flow).await?)
    }

    /// A page of spool files as (path, bytes); `limit` at most 1000.
    async fn list_segments(&self, offset: u32, limit: u32) -> Result<Vec<(String, u64)>, NodeError> {
        Ok(self.ctl.spool_files(offset, limit).await?.into_iter().map(|e| (e.path, e.bytes)).collect())
    }

    /// A page of the upload queue, oldest first, as (key, bytes, state); `limit` at most 1000.
    async fn list_uploads(&self, offset: u32, limit: u32) -> Result<Vec<(String, u64, String)>, NodeError> {
        if limit > 1000 {
            return Err(NodeError::InvalidArgument(format!("limit {limit}: at most 1000")));
        }
        Ok(self
            .ctl
            .http
            .uploads
            .list(offset, limit)
            .into_iter()
            .map(|e| {
                let state = if e.state == "uploading" {
                    format!("uploading {}/{}", e.sent, e.bytes)
                } else {
                    e.state
                };
                (e.key, e.bytes, state)
            })
            .collect())
    }

    /// ctld's version.
    #[zbus(property)]
    async fn version(&self) -> String {
        crate::VERSION.into()
    }

    /// `healthy`, `degraded` or `unhealthy`.
    #[zbus(property)]
    async fn state(&self) -> String {
        self.ctl.status().await.state
    }

    /// Flow names.
    #[zbus(property)]
    async fn flows(&self) -> Vec<String> {
        self.ctl.flows().await.into_iter().map(|f| f.name).collect()
    }

    /// Whether the engine is connected.
    #[zbus(property)]
    async fn engine_connected(&self) -> bool {
        self.ctl.shared.with_view(|v| v.connected)
    }

    /// Total xruns.
    #[zbus(property)]
    async fn xruns(&self) -> u64 {
        self.ctl.shared.metrics.total("xruns")
    }

    /// Bytes in the spool.
    #[zbus(property)]
    async fn spool_bytes(&self) -> u64 {
        self.ctl.http.spool_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Segments waiting for upload.
    #[zbus(property)]
    async fn upload_backlog(&self) -> u32 {
        self.ctl.http.uploads.backlog()
    }

    /// A flow changed state.
    #[zbus(signal)]
    async fn flow_state_changed(emitter: &SignalEmitter<'_>, flow: &str, state: &str) -> zbus::Result<()>;

    /// A segment was closed in the spool.
    #[zbus(signal)]
    async fn segment_closed(
        emitter: &SignalEmitter<'_>,
        job: &str,
        sequence: u64,
        path: &str,
        bytes: u64,
        sha256: &str,
    ) -> zbus::Result<()>;

    /// A segment reached S3.
    #[zbus(signal)]
    async fn segment_uploaded(
        emitter: &SignalEmitter<'_>,
        job: &str,
        sequence: u64,
        key: &str,
    ) -> zbus::Result<()>;

    /// An SRT link of a flow changed: state is `connected`, `waiting`
    /// (calling, or waiting for a caller) or `refused` (e.g. a wrong
    /// passphrase); connects and refusals count since the flow started.
    #[zbus(signal)]
    async fn srt_link_changed(
        emitter: &SignalEmitter<'_>,
        flow: &str,
        link: &str,
        state: &str,
        connects: u64,
        refusals: u64,
    ) -> zbus::Result<()>;

    /// A file recording was closed (complete, fsynced, never written again):
    /// its flow, output, path, audio in milliseconds, size and SHA-256.
    #[zbus(signal)]
    async fn recording_closed(
        emitter: &SignalEmitter<'_>,
        flow: &str,
        output: &str,
        path: &str,
        duration_ms: u64,
        bytes: u64,
        sha256: &str,
    ) -> zbus::Result<()>;

    /// An input with backups switched source: `source` is `primary` or a
    /// backup's name, `reason` one of `loss`, `silence`, `recovered`,
    /// `forced` or `auto`.
    #[zbus(signal)]
    async fn input_switched(
        emitter: &SignalEmitter<'_>,
        flow: &str,
        input: &str,
        source: &str,
        reason: &str,
    ) -> zbus::Result<()>;

    /// Something needs attention: kind is `silence`, `xrun`, `engine`, `spool_full`, `upload_failing`, `quarantine`, `upload_conflict`, `srt_down`, `segment_gap`, `orphan_segments` or `state_file`.
    #[zbus(signal)]
    async fn alarm(emitter: &SignalEmitter<'_>, kind: &str, flow: &str, message: &str) -> zbus::Result<()>;

    /// Levels of a flow's bus, at most 5 per second: peak and RMS dBFS per
    /// channel (empty without a `meter` processor) and EBU R128 loudness,
    /// whose keys `momentary_lufs`, `short_term_lufs`, `integrated_lufs` and
    /// `true_peak_dbtp` are present only with a `loudness` processor.
    /// Silence is −∞ (IEEE negative infinity); NaN is never sent.
    #[zbus(signal)]
    async fn levels(
        emitter: &SignalEmitter<'_>,
        flow: &str,
        peak_dbfs: Vec<f64>,
        rms_dbfs: Vec<f64>,
        loudness: HashMap<String, f64>,
    ) -> zbus::Result<()>;
}

/// `org.airlift.Flow1` at `/org/airlift/Node1/flow/<name>`.
#[derive(Debug)]
pub struct FlowObject {
    ctl: Arc<Controller>,
    policy: CallerPolicy,
    name: String,
}

#[interface(name = "org.airlift.Flow1")]
impl FlowObject {
    /// The flow's name.
    #[zbus(property)]
    async fn name(&self) -> String {
        self.name.clone()
    }

    /// The flow's state.
    #[zbus(property)]
    async fn state(&self) -> String {
        self.ctl
            .flows()
            .await
            .into_iter()
            .find(|f| f.name == self.name)
            .map_or_else(|| "gone".into(), |f| f.state)
    }

    /// Input names.
    #[zbus(property)]
    async fn inputs(&self) -> Vec<String> {
        self.ctl.flows().await.into_iter().find(|f| f.name == self.name).map(|f| f.inputs).unwrap_or_default()
    }

    /// Each input's effective (input, gain dB, muted, pan): the configured
    /// values with the operator's runtime values on top.
    #[zbus(property)]
    async fn input_settings(&self) -> Vec<(String, f64, bool, f64)> {
        self.ctl.input_settings(&self.name).await
    }

    /// Sets an input's gain in dB.
    async fn set_gain(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        input: &str,
        db: f64,
    ) -> Result<(), NodeError> {
        bounded("input", input)?;
        self.policy.check(&hdr, conn).await?;
        Ok(self.ctl.set_gain(&self.name, input, db).await?)
    }

    /// Mutes or unmutes an input.
    async fn set_mute(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        input: &str,
        muted: bool,
    ) -> Result<(), NodeError> {
        bounded("input", input)?;
        self.policy.check(&hdr, conn).await?;
        Ok(self.ctl.set_mute(&self.name, input, muted).await?)
    }
}

/// `StartPull`'s options: known keys with their D-Bus types, nothing else.
fn pull_options(options: &HashMap<String, OwnedValue>) -> Result<PullOptions, NodeError> {
    let mut out = PullOptions::default();
    let wrong =
        |key: &str, ty: &str| NodeError::InvalidArgument(format!("option {key} must be of type {ty}"));
    for (key, value) in options {
        match key.as_str() {
            "name" => {
                let v: &str = value.downcast_ref().map_err(|_| wrong(key, "s"))?;
                bounded("name", v)?;
                out.name = Some(v.to_owned());
            }
            "segment_seconds" => {
                out.segment_seconds = Some(value.downcast_ref().map_err(|_| wrong(key, "u"))?)
            }
            "max_segment_bytes" => {
                out.max_segment_bytes = Some(value.downcast_ref().map_err(|_| wrong(key, "t"))?)
            }
            other => {
                return Err(NodeError::InvalidArgument(format!(
                    "unknown option {:?} (known: name, segment_seconds, max_segment_bytes)",
                    other.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    Ok(out)
}

fn flow_path(name: &str) -> Option<OwnedObjectPath> {
    // Flow names are [A-Za-z0-9_-]; D-Bus path elements allow [A-Za-z0-9_].
    let element: String = name.chars().map(|c| if c == '-' { '_' } else { c }).collect();
    OwnedObjectPath::try_from(format!("{NODE_PATH}/flow/{element}")).ok()
}

/// Starts the service on the configured bus; `Ok(None)` when D-Bus is off.
pub async fn serve(ctl: Arc<Controller>, config: &DbusSection) -> zbus::Result<Option<Connection>> {
    let builder = match (&config.address, config.bus) {
        (Some(addr), _) => zbus::connection::Builder::address(addr.as_str()),
        (None, BusKind::None) => return Ok(None),
        (None, BusKind::System) => zbus::connection::Builder::system(),
        (None, BusKind::Session) => zbus::connection::Builder::session(),
        (None, BusKind::Auto) => {
            if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
                zbus::connection::Builder::session()
            } else {
                zbus::connection::Builder::system()
            }
        }
    };
    let policy = CallerPolicy { own_uid: crate::own_uid(), group: config.group.clone() };
    let mut builder = builder.serve_at(NODE_PATH, NodeService { ctl: ctl.clone(), policy: policy.clone() });
    for f in ctl.flows().await {
        if let Some(path) = flow_path(&f.name) {
            builder =
                builder.serve_at(path, FlowObject { ctl: ctl.clone(), policy: policy.clone(), name: f.name });
        }
    }
    let conn = builder.name(BUS_NAME).build().await?;
    tracing::info!(name = BUS_NAME, "D-Bus service up");
    // Subscribed before the uploader starts, so its first alarms reach the bus.
    let uploads = ctl.http.uploads.events.subscribe();
    tokio::spawn(forward_events(conn.clone(), ctl, policy, uploads));
    Ok(Some(conn))
}

/// Turns engine events into signals and property changes, and keeps the
/// per-flow objects in step with the configuration.
async fn forward_events(
    conn: Connection,
    ctl: Arc<Controller>,
    policy: CallerPolicy,
    mut uploads: tokio::sync::broadcast::Receiver<UploadEvent>,
) {
    let mut events = ctl.shared.events.subscribe();
    let Ok(emitter) = SignalEmitter::new(&conn, NODE_PATH) else { return };
    let Ok(iface) = conn.object_server().interface::<_, NodeService>(NODE_PATH).await else { return };
    let mut last_levels: HashMap<String, Instant> = HashMap::new();
    let mut connected = false;
    let mut objects: Vec<String> = ctl.flows().await.into_iter().map(|f| f.name).collect();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            event = uploads.recv() => {
                let result = match event {
                    Ok(UploadEvent::Uploaded { job, sequence, key }) => {
                        let _ = iface.get().await.upload_backlog_changed(&emitter).await;
                        NodeService::segment_uploaded(&emitter, &job, sequence, &key).await
                    }
                    Ok(UploadEvent::Alarm { kind, job, message }) => {
                        NodeService::alarm(&emitter, kind, &job, &message).await
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Ok(()),
                    Err(_) => return,
                };
                if let Err(e) = result {
                    tracing::debug!("D-Bus signal not sent: {e}");
                }
            }
            event = events.recv() => {
                let event = match event {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                // The alarm an event raises: the same as the console's log.
                if let Some((kind, flow, message)) = crate::recent::engine_alarm(&event)
                    && let Err(e) = NodeService::alarm(&emitter, kind, &flow, &message).await
                {
                    tracing::debug!("D-Bus signal not sent: {e}");
                }
                let result = match &event {
                    EngineToCtl::FlowState { flow, state } => {
                        let text = match state {
                            FlowState::Running => "running".to_string(),
                            FlowState::Stopped => "stopped".to_string(),
                            FlowState::Failed { reason } => format!("failed: {reason}"),
                        };
                        let _ = iface.get().await.flows_changed(&emitter).await;
                        NodeService::flow_state_changed(&emitter, flow.as_str(), &text).await
                    }
                    EngineToCtl::Xrun { .. } => iface.get().await.xruns_changed(&emitter).await,
                    EngineToCtl::SrtLink { flow, link, state, connects, refusals } => {
                        let text = match state {
                            SrtLinkState::Connected => "connected",
                            SrtLinkState::Waiting => "waiting",
                            SrtLinkState::Refused => "refused",
                        };
                        NodeService::srt_link_changed(&emitter, flow.as_str(), link, text, *connects, *refusals).await
                    }
                    EngineToCtl::InputSwitched { flow, input, source, reason } => {
                        NodeService::input_switched(&emitter, flow.as_str(), input.as_str(), source.as_str(), reason.as_str()).await
                    }
                    EngineToCtl::RecordingClosed(r) => {
                        NodeService::recording_closed(&emitter, r.flow.as_str(), r.output.as_str(), &r.path, r.duration_ms, r.bytes, &r.sha256).await
                    }
                    EngineToCtl::SegmentClosed(m) => {
                        NodeService::segment_closed(&emitter, m.job.as_str(), m.sequence, &m.path, m.bytes, &m.sha256).await
                    }
                    EngineToCtl::Meters { flow, channels, loudness } if !channels.is_empty() || loudness.is_some() => {
                        let due = last_levels.get(flow.as_str()).is_none_or(|t| t.elapsed() >= Duration::from_millis(200));
                        if due {
                            last_levels.insert(flow.to_string(), Instant::now());
                            let (peak, rms, loudness) = levels_args(channels, loudness.as_ref());
                            NodeService::levels(&emitter, flow.as_str(), peak, rms, loudness).await
                        } else {
                            Ok(())
                        }
                    }
                    _ => Ok(()),
                };
                if let Err(e) = result {
                    tracing::debug!("D-Bus signal not sent: {e}");
                }
            }
            _ = tick.tick() => {
                let now = ctl.shared.with_view(|v| v.connected);
                if now != connected {
                    connected = now;
                    let _ = iface.get().await.engine_connected_changed(&emitter).await;
                    let _ = iface.get().await.state_changed(&emitter).await;
                    if !now {
                        let _ = NodeService::alarm(&emitter, "engine", "", crate::recent::ENGINE_DOWN).await;
                    }
                }
                let _ = iface.get().await.spool_bytes_changed(&emitter).await;
                // Flow objects follow reloads.
                let names: Vec<String> = ctl.flows().await.into_iter().map(|f| f.name).collect();
                if names != objects {
                    for gone in objects.iter().filter(|n| !names.contains(n)) {
                        if let Some(p) = flow_path(gone) {
                            let _ = conn.object_server().remove::<FlowObject, _>(p).await;
                        }
                    }
                    for new in names.iter().filter(|n| !objects.contains(n)) {
                        if let Some(p) = flow_path(new) {
                            let obj = FlowObject { ctl: ctl.clone(), policy: policy.clone(), name: new.clone() };
                            let _ = conn.object_server().at(p, obj).await;
                        }
                    }
                    objects = names;
                    let _ = iface.get().await.flows_changed(&emitter).await;
                }
            }
        }
    }
}

/// The arguments of the `Levels` signal from an engine meters report: −∞
/// stays −∞, NaN becomes −∞, absent meters are absent.
fn levels_args(
    channels: &[airlift_ipc::message::ChannelMeter],
    loudness: Option<&airlift_ipc::message::Loudness>,
) -> (Vec<f64>, Vec<f64>, HashMap<String, f64>) {
    use crate::metrics::level;
    let peak = channels.iter().map(|c| level(f64::from(c.peak_dbfs))).collect();
    let rms = channels.iter().map(|c| level(f64::from(c.rms_dbfs))).collect();
    let loudness = loudness
        .map(|l| {
            HashMap::from([
                ("momentary_lufs".to_string(), level(l.momentary_lufs)),
                ("short_term_lufs".to_string(), level(l.short_term_lufs)),
                ("integrated_lufs".to_string(), level(l.integrated_lufs)),
                ("true_peak_dbtp".to_string(), level(l.true_peak_dbtp)),
            ])
        })
        .unwrap_or_default();
    (peak, rms, loudness)
}

#[cfg(test)]
mod tests;
