//! The link to the engine: connect (or spawn and supervise), send the whole
//! desired state on every (re)connect, forward commands, and turn engine
//! events into shared state and metrics.
//!
//! An engine that dies or drops the connection is restarted (when ctld
//! spawned it) or reconnected to, with exponential backoff from 100 ms to 5 s;
//! the time without an engine is recorded as a gap (log, metric).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc, oneshot};

use airlift_ipc::frame;
use airlift_ipc::message::{
    Command, CommandId, CtlToEngine, EngineToCtl, FlowState, Rejection, SrtLinkState,
};
use airlift_ipc::spec::DesiredState;

use crate::metrics::Metrics;

/// How to reach the engine.
#[derive(Debug, Clone)]
pub struct EngineLinkConfig {
    /// The engine's socket.
    pub socket: PathBuf,
    /// Spawn (and supervise) this binary; `None` to only connect.
    pub spawn: Option<PathBuf>,
    /// Extra arguments for the spawned engine (realtime flags).
    pub args: Vec<String>,
}

/// What ctld knows about the engine and its flows, shared with HTTP (and D-Bus).
#[derive(Debug, Default)]
pub struct EngineView {
    /// Whether the link is up.
    pub connected: bool,
    /// The engine's process id, from its hello.
    pub engine_pid: Option<u32>,
    /// State of each flow as last reported.
    pub flows: BTreeMap<String, FlowState>,
    /// State of each pull job as last reported (a job removed while it
    /// failed to start gets no last report: see `desired_pulls`).
    pub pulls: BTreeMap<String, FlowState>,
    /// Pull jobs in the desired state last sent to the engine.
    pub desired_pulls: std::collections::BTreeSet<String>,
    /// Flows whose silence detector reports silence.
    pub silent: BTreeMap<String, bool>,
    /// Engine gaps: (when it started, how long), newest last, at most 100.
    pub gaps: Vec<(std::time::SystemTime, Duration)>,
    /// The last rejection of a desired state, if the engine refused it.
    pub last_rejection: Option<String>,
    /// SRT links not connected, by (flow, link): since when.
    pub links_down: BTreeMap<(String, String), std::time::Instant>,
    /// SRT listeners of the desired state last sent that run without a
    /// passphrase (`allow_unencrypted = true`), by endpoint.
    pub unencrypted_listeners: Vec<String>,
    /// Each running flow's last statistics report (realtime figures, SRT
    /// links, input sources); cleared when the engine goes away.
    pub stats: BTreeMap<String, airlift_ipc::message::FlowStats>,
    /// Each flow's last meter reading; cleared when the engine goes away.
    pub meters: BTreeMap<String, MeterReading>,
}

/// A flow's last meter report: per channel peak and RMS, and loudness when
/// the flow measures it.
#[derive(Debug, Clone, Default)]
pub struct MeterReading {
    /// Per channel.
    pub channels: Vec<airlift_ipc::message::ChannelMeter>,
    /// EBU R128 figures, if the flow has a loudness meter.
    pub loudness: Option<airlift_ipc::message::Loudness>,
}

/// State shared between the link, HTTP and D-Bus.
#[derive(Debug)]
pub struct Shared {
    /// Metrics.
    pub metrics: Metrics,
    /// The engine as ctld sees it.
    pub view: Mutex<EngineView>,
    /// Every engine event, for subscribers (D-Bus signals).
    pub events: broadcast::Sender<EngineToCtl>,
    /// Period length per flow, for the load histogram.
    pub periods: Mutex<HashMap<String, f64>>,
}

impl Shared {
    /// Fresh shared state.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            metrics: Metrics::new(),
            view: Mutex::new(EngineView::default()),
            events: broadcast::channel(1024).0,
            periods: Mutex::new(HashMap::new()),
        })
    }

    fn view(&self) -> std::sync::MutexGuard<'_, EngineView> {
        self.view.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the engine view.
    pub fn with_view<R>(&self, f: impl FnOnce(&EngineView) -> R) -> R {
        f(&self.view())
    }
}

/// A command for the link task.
#[derive(Debug)]
enum Request {
    /// Replace the desired state and send it.
    Apply(DesiredState, oneshot::Sender<Result<(), LinkError>>),
    /// Send one command.
    Command(Command, oneshot::Sender<Result<(), LinkError>>),
    /// Replace the desired state without sending it, then send the command
    /// (if any) that brings a running engine to it.
    Tune(DesiredState, Option<Command>, oneshot::Sender<Result<(), LinkError>>),
}

/// The control handle of a running link.
#[derive(Debug, Clone)]
pub struct EngineLink {
    tx: mpsc::Sender<Request>,
}

/// Why a request to the engine did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The engine is not connected (restarting, or never came up); retry later.
    #[error("the engine is unavailable: {0}")]
    Unavailable(String),
    /// The engine refused the command; nothing changed.
    #[error("{}", .0.message)]
    Rejected(Rejection),
}

fn unavailable(message: &str) -> LinkError {
    LinkError::Unavailable(message.to_string())
}

impl EngineLink {
    /// Starts the link task with `state` as the desired state.
    pub fn start(config: EngineLinkConfig, state: DesiredState, shared: Arc<Shared>) -> Self {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(supervise(config, state, shared, rx));
        Self { tx }
    }

    /// Sets a new desired state and waits for the engine to accept it.
    /// While the engine is away the state is kept and sent on reconnect.
    pub async fn apply(&self, state: DesiredState) -> Result<(), LinkError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::Apply(state, reply)).await.map_err(|_| unavailable("link stopped"))?;
        rx.await.map_err(|_| unavailable("link stopped"))?
    }

    /// Replaces the desired state without sending it and sends `command`,
    /// which brings the running engine to it without a rebuild (a gain,
    /// mute or pan); waits for the command's answer. The state is what the
    /// engine gets on its next (re)connect. Without a command the state is
    /// only kept. While the engine is away the state is kept and the answer
    /// is [`LinkError::Unavailable`].
    pub async fn tune(&self, state: DesiredState, command: Option<Command>) -> Result<(), LinkError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::Tune(state, command, reply)).await.map_err(|_| unavailable("link stopped"))?;
        rx.await.map_err(|_| unavailable("link stopped"))?
    }

    /// Sends a command and waits for its answer.
    pub async fn command(&self, command: Command) -> Result<(), LinkError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::Command(command, reply)).await.map_err(|_| unavailable("link stopped"))?;
        rx.await.map_err(|_| unavailable("link stopped"))?
    }
}

struct Session {
    stream: UnixStream,
    buf: Vec<u8>,
    next_id: u64,
    pending: HashMap<u64, oneshot::Sender<Result<(), LinkError>>>,
    /// The id of the desired state sent on (re)connect, or by a retry.
    state_id: Option<u64>,
    /// When to send a refused state again, and the wait before that.
    retry: Option<(tokio::time::Instant, Duration)>,
}

/// First wait before a refused desired state is sent again; doubles to
/// [`STATE_RETRY_MAX`].
const STATE_RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between sends of a refused desired state.
const STATE_RETRY_MAX: Duration = Duration::from_secs(60);

async fn supervise(
    config: EngineLinkConfig,
    mut state: DesiredState,
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Request>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut gap_started: Option<(Instant, std::time::SystemTime)> = None;
    let mut first = true;
    loop {
        if config.spawn.is_some() {
            retire_leftover(&config.socket).await;
        }
        let mut child = match &config.spawn {
            Some(binary) => match spawn_engine(binary, &config.socket, &config.args) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(binary = %binary.display(), "cannot start the engine: {e}");
                    wait_or_serve(&mut rx, &mut state, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
            None => None,
        };
        let session = connect(&config.socket, Duration::from_secs(5)).await;
        let mut session = match session {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(socket = %config.socket.display(), "cannot reach the engine: {e}");
                if let Some(c) = child.as_mut() {
                    let _ = c.kill().await;
                }
                wait_or_serve(&mut rx, &mut state, backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Some((since, wall)) = gap_started.take() {
            let gap = since.elapsed();
            tracing::warn!(gap_ms = gap.as_millis() as u64, "engine back; re-sent the desired state");
            shared.metrics.engine_restarts.inc();
            shared.metrics.engine_gap_seconds.inc_by(gap.as_secs_f64());
            shared.metrics.engine_last_gap_seconds.set(gap.as_secs_f64());
            let mut view = shared.view();
            view.gaps.push((wall, gap));
            if view.gaps.len() > 100 {
                view.gaps.remove(0);
            }
        } else if first {
            tracing::info!("engine connected");
        }
        first = false;
        // Connected counts from the engine's hello (its pid), not from the
        // socket's accept: /health is not "healthy" with an unknown engine.
        record_state(&shared, &state);
        let connected_at = Instant::now();
        let reason = run_session(&mut session, &mut state, &shared, &mut rx, child.as_mut()).await;
        // The session ended: everything waiting for an answer gets one.
        for (_, reply) in session.pending.drain() {
            let _ = reply.send(Err(unavailable(&reason)));
        }
        shared.metrics.engine_connected.set(0);
        {
            let mut view = shared.view();
            view.connected = false;
            view.engine_pid = None;
            view.flows.clear();
            // The next engine reports its pull jobs and links afresh.
            view.pulls.clear();
            view.links_down.clear();
            view.stats.clear();
            view.meters.clear();
        }
        gap_started = Some((Instant::now(), std::time::SystemTime::now()));
        if reason == SHUTTING_DOWN {
            tracing::info!("engine link closed: {reason}");
        } else {
            tracing::error!("engine link lost: {reason}");
        }
        if let Some(mut c) = child {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
        if connected_at.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(100);
        }
        if reason == SHUTTING_DOWN {
            return;
        }
        // Restart at once the first time; back off if it keeps failing.
        if connected_at.elapsed() < Duration::from_secs(2) {
            wait_or_serve(&mut rx, &mut state, backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// The running SRT listeners of `state` without a passphrase, named as
/// `check-config` names them (`flow[main].input[studio].producer.srt_in.srt`,
/// `pull[ingest].source`); stopped flows bind nothing and are left out.
pub fn unencrypted_listeners(state: &DesiredState) -> Vec<String> {
    let flows = state.flows.iter().filter(|f| !state.stopped.contains(&f.name)).flat_map(|f| {
        f.srt_endpoints()
            .filter(|(_, s)| s.is_unencrypted_listener())
            .map(move |(field, _)| format!("flow[{}].{field}", f.name))
    });
    let pulls = state
        .pulls
        .iter()
        .filter(|p| p.source.is_unencrypted_listener())
        .map(|p| format!("pull[{}].source", p.name));
    flows.chain(pulls).collect()
}

/// What ctld keeps of a desired state sent to the engine: each flow's
/// period (for the load histogram) and which pull jobs are wanted.
fn record_state(shared: &Shared, state: &DesiredState) {
    {
        let mut view = shared.view();
        view.desired_pulls = state.pulls.iter().map(|p| p.name.to_string()).collect();
        view.unencrypted_listeners = unencrypted_listeners(state);
    }
    if let Ok(mut p) = shared.periods.lock() {
        p.clear();
        for f in &state.flows {
            p.insert(f.name.to_string(), f64::from(f.period.get()) / f64::from(f.sample_rate.get()));
        }
    }
    shared.metrics.flows_desired.set(state.flows.len() as i64);
}

/// Waits `delay` while answering requests: state changes are kept for the
/// next connection, commands are refused (no engine).
async fn wait_or_serve(rx: &mut mpsc::Receiver<Request>, state: &mut DesiredState, delay: Duration) {
    let deadline = tokio::time::Instant::now() + delay;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return,
            req = rx.recv() => match req {
                Some(Request::Apply(s, reply)) => {
                    *state = s;
                    let _ = reply.send(Ok(()));
                }
                Some(Request::Command(_, reply)) => {
                    let _ = reply.send(Err(unavailable("the engine is restarting")));
                }
                Some(Request::Tune(s, command, reply)) => {
                    *state = s;
                    let answer = match command {
                        Some(_) => Err(unavailable("the engine is restarting")),
                        None => Ok(()),
                    };
                    let _ = reply.send(answer);
                }
                None => return,
            },
        }
    }
}

/// An engine started by an earlier ctld that died without its clean
/// shutdown (`kill -9`, OOM) keeps its flows running, holds the spool and
/// serves the socket. Starting a second one would unlink that socket and
/// fail on the spool, leaving the first running out of reach. Such an
/// engine is asked to shut down cleanly (its segments and recordings
/// closed), and waited for (at most 10 s), before a new one is started.
async fn retire_leftover(socket: &Path) {
    if !socket.exists() {
        return;
    }
    let Ok(mut session) = connect(socket, Duration::ZERO).await else { return };
    tracing::warn!(socket = %socket.display(), "an engine left by an earlier ctld serves the socket; shutting it down");
    let hello = CtlToEngine::Hello {
        protocol: airlift_ipc::PROTOCOL_VERSION,
        client: format!("airlift-ctld {}", crate::VERSION),
    };
    if session.send(&hello).await.is_err() || session.command(Command::Shutdown, None).await.is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, session.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) => {
                tracing::error!(socket = %socket.display(), "the leftover engine did not shut down within 10 s");
                return;
            }
        }
    }
}

/// The user the packaged engine runs as (`airlift-engine.service`): it may
/// serve the engine socket, and may not change the node over D-Bus.
pub const ENGINE_USER: &str = "airlift-engine";

/// The uid of [`ENGINE_USER`], when that user exists.
pub fn engine_user_uid() -> Option<u32> {
    nix::unistd::User::from_name(ENGINE_USER).ok().flatten().map(|u| u.uid.as_raw())
}

fn spawn_engine(binary: &Path, socket: &Path, args: &[String]) -> std::io::Result<tokio::process::Child> {
    if socket.exists() {
        std::fs::remove_file(socket)?;
    }
    tracing::info!(binary = %binary.display(), "starting the engine");
    tokio::process::Command::new(binary)
        .arg("serve")
        .arg("--listen")
        .arg(socket)
        .args(args)
        // Its own process group: a Ctrl-C in the terminal reaches ctld only,
        // which then shuts the engine down cleanly (recordings closed).
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

async fn connect(socket: &Path, within: Duration) -> std::io::Result<Session> {
    let deadline = Instant::now() + within;
    loop {
        match UnixStream::connect(socket).await {
            Ok(stream) => {
                // SO_PEERCRED: only root, our own uid or the engine's user
                // may serve the engine socket.
                let uid = stream.peer_cred()?.uid();
                let own = crate::own_uid();
                if uid != 0 && uid != own && Some(uid) != engine_user_uid() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!(
                            "the engine socket is served by uid {uid}, not by root, uid {own} or the user {ENGINE_USER}"
                        ),
                    ));
                }
                return Ok(Session {
                    stream,
                    buf: Vec::with_capacity(64 * 1024),
                    next_id: 1,
                    pending: HashMap::new(),
                    state_id: None,
                    retry: None,
                });
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

impl Session {
    async fn send(&mut self, msg: &CtlToEngine) -> std::io::Result<()> {
        let bytes =
            frame::encode(msg).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.stream.write_all(&bytes).await
    }

    async fn command(
        &mut self,
        command: Command,
        reply: Option<oneshot::Sender<Result<(), LinkError>>>,
    ) -> std::io::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(reply) = reply {
            self.pending.insert(id, reply);
        }
        self.send(&CtlToEngine::Command { id: CommandId(id), command }).await
    }
}

/// The end of a session that ctld asked for.
const SHUTTING_DOWN: &str = "ctld is shutting down";

async fn run_session(
    session: &mut Session,
    state: &mut DesiredState,
    shared: &Arc<Shared>,
    rx: &mut mpsc::Receiver<Request>,
    mut child: Option<&mut tokio::process::Child>,
) -> String {
    let hello = CtlToEngine::Hello {
        protocol: airlift_ipc::PROTOCOL_VERSION,
        client: format!("airlift-ctld {}", crate::VERSION),
    };
    if let Err(e) = session.send(&hello).await {
        return format!("cannot greet the engine: {e}");
    }
    session.state_id = Some(session.next_id);
    if let Err(e) = session.command(Command::ApplyState(state.clone()), None).await {
        return format!("cannot send the desired state: {e}");
    }
    let mut chunk = vec![0u8; 64 * 1024];
    // Set once ctld has asked the engine to shut down: its closing the
    // connection is then the expected end, not a loss.
    let mut shutdown_sent = false;
    loop {
        let retry_at = session.retry.map(|(at, _)| at);
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let exited = async {
            match child.as_mut() {
                Some(c) => c.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = session.stream.read(&mut chunk) => match read {
                Ok(0) if shutdown_sent => return SHUTTING_DOWN.into(),
                Ok(0) => return "the engine closed the connection".into(),
                Err(e) => return format!("read from the engine failed: {e}"),
                Ok(n) => {
                    session.buf.extend_from_slice(&chunk[..n]);
                    loop {
                        match frame::decode::<EngineToCtl>(&session.buf) {
                            Ok(Some((msg, used))) => {
                                session.buf.drain(..used);
                                handle_event(session, shared, msg);
                            }
                            Ok(None) => break,
                            Err(e) => return format!("the engine sent a bad frame: {e}"),
                        }
                    }
                }
            },
            () = retry => {
                // The engine refused the state (e.g. more pull jobs than it
                // allows): ask again, backing off.
                tracing::info!("sending the refused desired state again");
                session.state_id = Some(session.next_id);
                if let Err(e) = session.command(Command::ApplyState(state.clone()), None).await {
                    return format!("cannot send the desired state: {e}");
                }
                if let Some((at, delay)) = session.retry.as_mut() {
                    *at = tokio::time::Instant::now() + *delay;
                }
            }
            req = rx.recv() => {
                let result = match req {
                    Some(Request::Apply(s, reply)) => {
                        *state = s;
                        record_state(shared, state);
                        // A new state supersedes one that was refused.
                        session.retry = None;
                        session.command(Command::ApplyState(state.clone()), Some(reply)).await
                    }
                    Some(Request::Command(c, reply)) => {
                        shutdown_sent |= matches!(c, Command::Shutdown);
                        session.command(c, Some(reply)).await
                    }
                    Some(Request::Tune(s, command, reply)) => {
                        *state = s;
                        record_state(shared, state);
                        match command {
                            Some(c) => session.command(c, Some(reply)).await,
                            None => {
                                let _ = reply.send(Ok(()));
                                Ok(())
                            }
                        }
                    }
                    None => return SHUTTING_DOWN.into(),
                };
                if let Err(e) = result {
                    return format!("write to the engine failed: {e}");
                }
            },
            status = exited => return format!("the engine exited ({status})"),
        }
    }
}

fn handle_event(session: &mut Session, shared: &Arc<Shared>, msg: EngineToCtl) {
    match &msg {
        EngineToCtl::Accepted { id } => {
            if let Some(reply) = session.pending.remove(&id.0) {
                let _ = reply.send(Ok(()));
            }
            if session.state_id == Some(id.0) {
                session.retry = None;
                shared.view().last_rejection = None;
            }
        }
        EngineToCtl::Rejected { id, reason } => {
            tracing::warn!(command = id.0, "engine refused: {}", reason.message);
            match session.pending.remove(&id.0) {
                Some(reply) => {
                    let _ = reply.send(Err(LinkError::Rejected(reason.clone())));
                }
                None => shared.view().last_rejection = Some(reason.message.clone()),
            }
            if session.state_id == Some(id.0) {
                let delay = session.retry.map_or(STATE_RETRY_FIRST, |(_, d)| (d * 2).min(STATE_RETRY_MAX));
                session.retry = Some((tokio::time::Instant::now() + delay, delay));
            }
        }
        EngineToCtl::FlowState { flow, state } => {
            tracing::info!(flow = %flow, ?state, "flow state");
            let mut view = shared.view();
            view.flows.insert(flow.to_string(), state.clone());
            if *state != FlowState::Running {
                // A flow that does not run has no links to be down.
                view.links_down.retain(|(f, _), _| f != flow.as_str());
            }
        }
        EngineToCtl::Meters { flow, channels, loudness } => {
            shared.metrics.record_meters(flow.as_str(), channels, loudness.as_ref());
            shared.view().meters.insert(
                flow.to_string(),
                MeterReading { channels: channels.clone(), loudness: *loudness },
            );
        }
        EngineToCtl::Silence { flow, silent } => {
            if *silent {
                tracing::warn!(flow = %flow, "silence detected");
            } else {
                tracing::info!(flow = %flow, "audio is back");
            }
            shared.metrics.record_silence(flow.as_str(), *silent);
            shared.view().silent.insert(flow.to_string(), *silent);
        }
        EngineToCtl::Xrun { flow, node, total } => {
            tracing::warn!(flow = %flow, node = %node, total, "xrun");
        }
        EngineToCtl::SrtLink { flow, link, state, connects, refusals } => {
            let key = (flow.to_string(), link.clone());
            let mut view = shared.view();
            if *state == SrtLinkState::Connected {
                view.links_down.remove(&key);
            } else {
                view.links_down.entry(key).or_insert_with(std::time::Instant::now);
            }
            drop(view);
            match state {
                SrtLinkState::Connected => {
                    tracing::info!(flow = %flow, link = %link, connects, "SRT link connected");
                }
                SrtLinkState::Waiting if *connects > 0 => {
                    tracing::warn!(flow = %flow, link = %link, connects, "SRT link down; reconnecting");
                }
                SrtLinkState::Waiting => {
                    tracing::info!(flow = %flow, link = %link, "SRT link waiting for its peer")
                }
                SrtLinkState::Refused => {
                    tracing::warn!(flow = %flow, link = %link, refusals, "SRT link refused by the peer");
                }
            }
        }
        EngineToCtl::Stats(stats) => {
            let periods = shared.periods.lock().map(|p| p.clone()).unwrap_or_default();
            shared.metrics.record_stats(&stats.flows, &periods);
            shared.metrics.record_pulls(&stats.pulls);
            shared.metrics.record_segment_jobs(&stats.segment_jobs);
            let mut view = shared.view();
            view.stats = stats.flows.iter().map(|f| (f.flow.clone(), f.clone())).collect();
        }
        EngineToCtl::Hello { engine_version, pid, .. } => {
            tracing::info!(%engine_version, pid, "engine said hello");
            {
                let mut view = shared.view();
                view.engine_pid = Some(*pid);
                view.connected = true;
            }
            shared.metrics.engine_connected.set(1);
        }
        EngineToCtl::PullState { job, state } => {
            tracing::info!(job = %job, ?state, "pull job state");
            shared.view().pulls.insert(job.to_string(), state.clone());
        }
        EngineToCtl::SegmentClosed(m) => {
            tracing::info!(job = %m.job, sequence = m.sequence, bytes = m.bytes, "segment closed");
            if m.gap_90k > 0 {
                tracing::warn!(
                    job = %m.job, sequence = m.sequence, lost_s = m.gap_90k as f64 / 90_000.0,
                    "audio lost before this segment (recorded in its manifest)"
                );
            }
            let label = crate::metrics::JobLabel { job: m.job.to_string() };
            shared.metrics.segments.get_or_create(&label).inc();
            shared.metrics.segment_bytes.get_or_create(&label).inc_by(m.bytes);
        }
        EngineToCtl::InputSwitched { flow, input, source, reason } => {
            tracing::warn!(flow = %flow, input = %input, source = %source, reason = reason.as_str(), "input switched source");
            shared.metrics.record_switch(flow.as_str(), input.as_str(), source.as_str(), *reason);
        }
        EngineToCtl::RecordingClosed(r) => {
            tracing::info!(
                flow = %r.flow, output = %r.output, path = %r.path, duration_ms = r.duration_ms,
                bytes = r.bytes, sha256 = %r.sha256, "recording closed"
            );
        }
    }
    let _ = shared.events.send(msg);
}
