//! The engine's control server: one ctl connection at a time on a Unix
//! socket, `ipc` frames in both directions.
//!
//! Threads: a reader per connection decodes frames and forwards them to the
//! control loop over a channel; the control loop owns the [`Node`], applies
//! commands, answers each by id and sends events (meters about 10 Hz, stats
//! every second). When ctl disconnects the flows keep running and the next
//! connection is accepted.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use airlift_ipc::frame::{self, FrameError};
use airlift_ipc::message::{Command, CommandId, CtlToEngine, EngineToCtl, RejectKind, Rejection};

use crate::node::Node;

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
    std::thread::Builder::new().name("airlift-ipc-accept".into()).spawn(move || {
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

    let mut conn: Option<UnixStream> = None;
    let mut events = Vec::new();
    let mut last_stats = Instant::now();
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let watchdog = sd_notify::watchdog_enabled();
    let mut last_ping = Instant::now();
    let mut last_periods = node.periods();
    loop {
        // Ping systemd's watchdog only while every running flow's audio
        // thread keeps counting periods.
        if let Some(interval) = watchdog
            && last_ping.elapsed() >= interval / 2
        {
            let periods = node.periods();
            let alive =
                periods.iter().all(|(flow, n)| last_periods.get(flow).is_none_or(|before| n > before));
            if alive {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            } else {
                tracing::error!("an audio thread stopped counting periods; withholding the watchdog ping");
            }
            last_periods = periods;
            last_ping = Instant::now();
        }
        if stop.load(Ordering::Acquire) {
            tracing::info!("stopping on a signal: closing every flow");
            node.shutdown(&mut events);
            flush(&mut conn, &mut events);
            return Ok(());
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Inbound::Connected(stream)) => {
                tracing::info!("ctl connected");
                conn = Some(stream);
                events.push(EngineToCtl::Hello {
                    protocol: airlift_ipc::PROTOCOL_VERSION,
                    engine_version: crate::VERSION.into(),
                    pid: std::process::id(),
                });
            }
            Ok(Inbound::Message(CtlToEngine::Hello { protocol, client })) => {
                tracing::info!(%client, protocol, "ctl said hello");
            }
            Ok(Inbound::Message(CtlToEngine::Command { id, command })) => {
                let shutdown = matches!(command, Command::Shutdown);
                handle(&mut node, id, command, &mut events);
                if shutdown {
                    flush(&mut conn, &mut events);
                    return Ok(());
                }
            }
            Ok(Inbound::Disconnected(reason)) => {
                match reason {
                    Some(e) => tracing::warn!("ctl connection closed after a bad frame: {e}"),
                    None => tracing::info!("ctl disconnected; flows keep running"),
                }
                conn = None;
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

fn handle(node: &mut Node, id: CommandId, command: Command, events: &mut Vec<EngineToCtl>) {
    let result = match command {
        Command::ApplyState(state) => node.apply_state(&state, events),
        Command::StartFlow { flow } => node.start_flow(flow.as_str(), events),
        Command::StopFlow { flow } => node.stop_flow(flow.as_str(), events),
        Command::SetGain { flow, input, gain } => node.set_gain(flow.as_str(), input.as_str(), gain),
        Command::SetMute { flow, input, muted } => node.set_mute(flow.as_str(), input.as_str(), muted),
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

fn flush(conn: &mut Option<UnixStream>, events: &mut Vec<EngineToCtl>) {
    let Some(stream) = conn else {
        events.clear();
        return;
    };
    let mut buf = Vec::new();
    for event in events.drain(..) {
        if let Err(e) = frame::encode_into(&event, &mut buf) {
            tracing::error!("cannot encode an event: {e}");
        }
    }
    if !buf.is_empty() && stream.write_all(&buf).is_err() {
        *conn = None;
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
