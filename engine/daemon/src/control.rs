//! The engine's control server: one ctl connection at a time on a Unix
//! socket, `ipc` frames in both directions.
//!
//! Threads: a reader per connection decodes frames and forwards them to the
//! control loop over a channel; the control loop owns the [`Node`], applies
//! commands, answers each by id and sends events (meters about 10 Hz, stats
//! every second). When ctl disconnects the flows keep running and the next
//! connection is accepted.
//!
//! The control loop never blocks on ctl: events go into a bounded outbound
//! queue that a writer thread per connection empties ([`Outbound`]). Meters
//! and statistics are dropped while the queue is backed up (the next ones
//! supersede them); other events are kept. A peer that takes nothing for
//! [`STALL_LIMIT`], or lets the queue grow past [`MAX_QUEUED`], is
//! disconnected; it reconnects and gets the whole state again.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use airlift_ipc::frame::{self, FrameError};
use airlift_ipc::message::{Command, CommandId, CtlToEngine, EngineToCtl, RejectKind, Rejection};

use airlift_engine::node::Node;
use airlift_engine::rt::stats::FlowCounters;

/// A peer that accepts nothing for this long is disconnected.
pub const STALL_LIMIT: Duration = Duration::from_secs(5);
/// Encoded bytes queued for a peer beyond which it is disconnected.
pub const MAX_QUEUED: usize = 8 * 1024 * 1024;
/// Queued bytes above which meters and statistics are dropped.
const COALESCE_ABOVE: usize = 64 * 1024;

/// The outbound side of one connection: frames queued by the control loop
/// (which never waits on the peer) and written by the connection's writer
/// thread.
struct Outbound {
    state: Mutex<OutState>,
    ready: Condvar,
}

struct OutState {
    frames: VecDeque<Vec<u8>>,
    bytes: usize,
    /// The writer gave up (peer gone or stalled) or the loop closed it.
    closed: bool,
}

impl Outbound {
    /// Starts the writer thread for `stream`. Control thread only.
    fn start(stream: UnixStream) -> std::io::Result<Arc<Self>> {
        let out = Arc::new(Self {
            state: Mutex::new(OutState { frames: VecDeque::new(), bytes: 0, closed: false }),
            ready: Condvar::new(),
        });
        stream.set_write_timeout(Some(STALL_LIMIT))?;
        let writer = out.clone();
        std::thread::Builder::new().name("al-ipc-tx".into()).spawn(move || writer.write_loop(stream))?;
        Ok(out)
    }

    fn write_loop(&self, mut stream: UnixStream) {
        loop {
            let batch: Vec<Vec<u8>> = {
                let Ok(mut st) = self.state.lock() else { return };
                while st.frames.is_empty() && !st.closed {
                    st = match self.ready.wait(st) {
                        Ok(st) => st,
                        Err(_) => return,
                    };
                }
                if st.closed {
                    break;
                }
                st.bytes = 0;
                st.frames.drain(..).collect()
            };
            for frame in batch {
                // A write that cannot finish within STALL_LIMIT times out:
                // the peer is stalled (or gone).
                if let Err(e) = stream.write_all(&frame) {
                    tracing::warn!("ctl stopped taking events ({e}); disconnecting it");
                    self.close();
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }

    /// Queues the events, dropping meters and statistics while the peer is
    /// behind. False when the connection is closed (or has just been closed
    /// for being too far behind). Never blocks on the peer.
    fn queue(&self, events: &mut Vec<EngineToCtl>) -> bool {
        let Ok(mut st) = self.state.lock() else { return false };
        if st.closed {
            events.clear();
            return false;
        }
        for event in events.drain(..) {
            let coalescable = matches!(event, EngineToCtl::Meters { .. } | EngineToCtl::Stats(_));
            if coalescable && st.bytes > COALESCE_ABOVE {
                continue;
            }
            let mut frame = Vec::new();
            if let Err(e) = frame::encode_into(&event, &mut frame) {
                tracing::error!("cannot encode an event: {e}");
                continue;
            }
            st.bytes += frame.len();
            st.frames.push_back(frame);
        }
        if st.bytes > MAX_QUEUED {
            tracing::warn!(bytes = st.bytes, "ctl is too far behind; disconnecting it");
            st.closed = true;
        }
        self.ready.notify_one();
        !st.closed
    }

    fn close(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.closed = true;
            st.frames.clear();
        }
        self.ready.notify_one();
    }

    /// Waits up to `limit` for the queue to empty (at shutdown).
    fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.state.lock() {
                Ok(st) if st.frames.is_empty() || st.closed => return,
                Ok(_) => {}
                Err(_) => return,
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// What the control loop receives.
enum Inbound {
    /// A new connection; events go to this stream from now on.
    Connected(UnixStream),
    /// A decoded message from the current connection.
    Message(CtlToEngine),
    /// The connection ended (cleanly or with a bad frame).
    Disconnected(Option<FrameError>),
}

/// Who may connect: the engine's own uid and root, plus `extra_uid`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerPolicy {
    /// One more uid allowed (e.g. the `airlift` user when the engine runs as root).
    pub extra_uid: Option<u32>,
}

impl PeerPolicy {
    fn allows(&self, uid: u32) -> bool {
        uid == 0 || uid == nix::unistd::getuid().as_raw() || Some(uid) == self.extra_uid
    }
}

/// Serves ctl connections on `listener` until a Shutdown command arrives or
/// `stop` is set (checked every 100 ms; e.g. by a SIGTERM handler), then
/// stops every flow cleanly. Control thread only: this thread owns the node.
pub fn serve(
    listener: UnixListener,
    mut node: Node,
    policy: PeerPolicy,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel::<Inbound>();
    let accept_tx = tx.clone();
    std::thread::Builder::new().name("al-ipc-accept".into()).spawn(move || {
        for stream in listener.incoming() {
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            };
            match peer_uid(&stream) {
                Ok(uid) if policy.allows(uid) => {}
                Ok(uid) => {
                    tracing::warn!(uid, "refusing ctl connection from a uid that is not allowed");
                    continue;
                }
                Err(e) => {
                    tracing::warn!("cannot read peer credentials, refusing: {e}");
                    continue;
                }
            }
            let Ok(reader) = stream.try_clone() else {
                continue;
            };
            if accept_tx.send(Inbound::Connected(stream)).is_err() {
                return;
            }
            read_frames(reader, &accept_tx);
        }
    })?;

    let mut conn: Option<Arc<Outbound>> = None;
    let mut events = Vec::new();
    let mut last_stats = Instant::now();
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let watched = Arc::new(Mutex::new(node.period_counters()));
    if let Some(interval) = sd_notify::watchdog_enabled() {
        let watched = watched.clone();
        std::thread::Builder::new()
            .name("al-watchdog".into())
            .spawn(move || watchdog_loop(interval, &watched))?;
    }
    loop {
        // The watchdog thread follows the running flows.
        if let Ok(mut w) = watched.lock() {
            let now = node.period_counters();
            if w.iter().map(|(n, _)| n).ne(now.iter().map(|(n, _)| n)) {
                *w = now;
            }
        }
        if stop.load(Ordering::Acquire) {
            tracing::info!("stopping on a signal: closing every flow");
            node.shutdown(&mut events);
            flush_last(&mut conn, &mut events);
            return Ok(());
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Inbound::Connected(stream)) => {
                tracing::info!("ctl connected");
                if let Some(old) = conn.take() {
                    old.close();
                }
                conn = match Outbound::start(stream) {
                    Ok(out) => Some(out),
                    Err(e) => {
                        tracing::error!("cannot serve the ctl connection: {e}");
                        None
                    }
                };
                events.push(EngineToCtl::Hello {
                    protocol: airlift_ipc::PROTOCOL_VERSION,
                    engine_version: airlift_engine::VERSION.into(),
                    pid: std::process::id(),
                });
                // A ctl that restarted while the engine ran on learns where
                // every flow and pull job stands.
                events.extend(node.current_states());
            }
            Ok(Inbound::Message(CtlToEngine::Hello { protocol, client })) => {
                tracing::info!(%client, protocol, "ctl said hello");
            }
            Ok(Inbound::Message(CtlToEngine::Command { id, command })) => {
                let shutdown = matches!(command, Command::Shutdown);
                handle(&mut node, id, command, &mut events);
                if shutdown {
                    flush_last(&mut conn, &mut events);
                    return Ok(());
                }
            }
            Ok(Inbound::Disconnected(reason)) => {
                match reason {
                    Some(e) => tracing::warn!("ctl connection closed after a bad frame: {e}"),
                    None => tracing::info!("ctl disconnected; flows keep running"),
                }
                if let Some(out) = conn.take() {
                    out.close();
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        node.poll(&mut events);
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            events.push(EngineToCtl::Stats(node.stats()));
        }
        flush(&mut conn, &mut events);
    }
}

/// Pings systemd's watchdog every `interval / 2` while every running flow's
/// audio thread keeps counting periods; withholds it when one stopped.
/// Runs on its own thread, so a control thread busy with a slow command (a
/// graph build, a worker that takes its time to stop) never gets the
/// engine killed while its audio runs.
fn watchdog_loop(interval: Duration, watched: &Mutex<Vec<(airlift_ipc::units::Name, Arc<FlowCounters>)>>) {
    let periods = || -> Vec<(airlift_ipc::units::Name, u64)> {
        watched
            .lock()
            .map(|w| w.iter().map(|(n, c)| (n.clone(), c.periods.load(Ordering::Relaxed))).collect())
            .unwrap_or_default()
    };
    let mut last = periods();
    loop {
        std::thread::sleep(interval / 2);
        let now = periods();
        let stalled: Vec<&airlift_ipc::units::Name> = now
            .iter()
            .filter(|(flow, n)| last.iter().find(|(f, _)| f == flow).is_some_and(|(_, before)| n <= before))
            .map(|(flow, _)| flow)
            .collect();
        if stalled.is_empty() {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        } else {
            tracing::error!(flows = ?stalled, "an audio thread stopped counting periods; withholding the watchdog ping");
        }
        last = now;
    }
}

fn handle(node: &mut Node, id: CommandId, command: Command, events: &mut Vec<EngineToCtl>) {
    let result = match command {
        Command::ApplyState(state) => node.apply_state(&state, events),
        Command::StartFlow { flow } => node.start_flow(flow.as_str(), events),
        Command::StopFlow { flow } => node.stop_flow(flow.as_str(), events),
        Command::SetGain { flow, input, gain } => node.set_gain(flow.as_str(), input.as_str(), gain),
        Command::SetMute { flow, input, muted } => node.set_mute(flow.as_str(), input.as_str(), muted),
        Command::SelectSource { flow, input, source } => {
            node.select_source(flow.as_str(), input.as_str(), source)
        }
        Command::SetPan { flow, input, pan } => node.set_pan(flow.as_str(), input.as_str(), pan),
        Command::StartPull(spec) => node.start_pull(&spec, events),
        Command::StopPull { job } => node.stop_pull(job.as_str(), events),
        Command::GetStats => {
            events.push(EngineToCtl::Stats(node.stats()));
            Ok(())
        }
        Command::Shutdown => {
            node.shutdown(events);
            Ok(())
        }
    };
    match result {
        Ok(()) => events.push(EngineToCtl::Accepted { id }),
        Err(e) => {
            tracing::warn!(command = id.0, "rejected: {e}");
            events.push(EngineToCtl::Rejected { id, reason: e.rejection() });
        }
    }
}

/// Hands the events to the connection's writer (never waits on the peer).
fn flush(conn: &mut Option<Arc<Outbound>>, events: &mut Vec<EngineToCtl>) {
    let Some(out) = conn else {
        events.clear();
        return;
    };
    if !out.queue(events) {
        *conn = None;
    }
}

/// The last flush before the engine exits: gives the writer a moment to
/// deliver the final events (Accepted for Shutdown, closed segments).
fn flush_last(conn: &mut Option<Arc<Outbound>>, events: &mut Vec<EngineToCtl>) {
    flush(conn, events);
    if let Some(out) = conn.take() {
        out.drain(STALL_LIMIT);
        out.close();
    }
}

/// Reads frames from `stream` until it ends; forwards them.
fn read_frames(mut stream: UnixStream, tx: &mpsc::Sender<Inbound>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = [0u8; 64 * 1024];
    loop {
        loop {
            match frame::decode::<CtlToEngine>(&buf) {
                Ok(Some((msg, used))) => {
                    buf.drain(..used);
                    if tx.send(Inbound::Message(msg)).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Tell the peer why (id u64::MAX: no command could be
                    // read), then close: the stream is out of step.
                    let _ = frame::encode(&EngineToCtl::Rejected {
                        id: CommandId(u64::MAX),
                        reason: Rejection { kind: RejectKind::InvalidArgument, message: e.to_string() },
                    })
                    .map(|bytes| stream.write_all(&bytes));
                    let _ = tx.send(Inbound::Disconnected(Some(e)));
                    return;
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => {
                let _ = tx.send(Inbound::Disconnected(None));
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn peer_uid(stream: &UnixStream) -> nix::Result<u32> {
    let creds = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)?;
    Ok(creds.uid())
}
