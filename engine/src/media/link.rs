//! What SRT input and output share: the endpoint (caller or listener), the
//! reconnect backoff with jitter, link state events in the log, and the
//! link's state and statistics ([`SrtLinkStatus`]) for the control side.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use airlift_ipc::spec::{SrtMode, SrtSpec};

use crate::io::worker::WorkerContext;
use crate::media::srt::{SrtError, SrtListener, SrtOptions, SrtSocket, SrtStats};

/// Where connections come from.
#[derive(Debug)]
pub enum SrtEndpoint {
    /// We call a remote listener.
    Caller {
        /// Remote host.
        host: String,
        /// Remote port.
        port: u16,
    },
    /// We listen (bound when the flow is built, so a busy port fails the build).
    Listener(SrtListener),
}

/// libsrt options from a spec.
pub fn options(spec: &SrtSpec) -> SrtOptions {
    SrtOptions {
        latency_ms: u32::from(spec.latency_ms),
        passphrase: spec.passphrase.as_ref().map(|p| p.expose().to_owned()),
        key_length: spec.key_length.bytes(),
        stream_id: spec.stream_id.as_ref().map(|s| s.as_str().to_owned()),
        allow_from: spec.allow_from.clone(),
    }
}

impl SrtEndpoint {
    /// Prepares the endpoint: binds the port of a listener. Control thread only.
    pub fn new(spec: &SrtSpec) -> Result<Self, SrtError> {
        Ok(match &spec.mode {
            SrtMode::Caller { host, port } => {
                SrtEndpoint::Caller { host: host.as_str().to_owned(), port: u16::from(*port) }
            }
            SrtMode::Listener { port } => {
                SrtEndpoint::Listener(SrtListener::bind(u16::from(*port), &options(spec))?)
            }
        })
    }

    /// Waits for one connection: a caller tries once (about 3 s at most),
    /// a listener waits up to `wait`. `Ok(None)`: nothing yet, ask again.
    /// Worker threads only (it blocks).
    pub fn connect(&self, options: &SrtOptions, wait: Duration) -> Result<Option<SrtSocket>, SrtError> {
        match self {
            SrtEndpoint::Caller { host, port } => SrtSocket::connect(host, *port, options).map(Some),
            SrtEndpoint::Listener(l) => l.accept(wait),
        }
    }

    /// True for a caller (which backs off between attempts).
    pub fn is_caller(&self) -> bool {
        matches!(self, SrtEndpoint::Caller { .. })
    }
}

/// Exponential backoff with ±25 % jitter, 250 ms up to 8 s.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(8);

    /// The delay before the next attempt; doubles the one after.
    pub fn delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let random = RandomState::new().build_hasher().finish();
        let factor = 0.75 + (random % 1000) as f64 / 2000.0;
        base.mul_f64(factor)
    }

    /// A connection worked: start from the shortest delay again.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Waits `delay` in short steps; `idle` spends each step (sleeping, or
/// discarding data that has nowhere to go) and returns false when the worker
/// has nothing left to do. Returns true when the worker should end.
pub fn pause(ctx: &WorkerContext, delay: Duration, mut idle: impl FnMut(Duration) -> bool) -> bool {
    let step = Duration::from_millis(50);
    let deadline = Instant::now() + delay;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || ctx.stopping() {
            return ctx.stopping();
        }
        if !idle(left.min(step)) {
            return true;
        }
    }
}

/// A plain sleep for [`pause`].
pub fn sleep(d: Duration) -> bool {
    std::thread::sleep(d);
    true
}

/// Logs a failed connection attempt; a refusal (e.g. BADSECRET) is an error,
/// the peer simply not being there is a warning.
pub fn log_failure(link: &str, e: &SrtError, retry: Duration) {
    match e {
        SrtError::Rejected { .. } => {
            tracing::error!(link, retry_ms = retry.as_millis() as u64, "SRT connection refused: {e}")
        }
        _ => tracing::warn!(link, retry_ms = retry.as_millis() as u64, "SRT not connected: {e}"),
    }
}

/// Where an SRT link stands (the protocol's type, sent to ctl as is).
pub use airlift_ipc::message::SrtLinkState as LinkState;

/// A live SRT link's state and counters, written by its worker thread and
/// read from the control side (lock-free).
#[derive(Debug)]
pub struct SrtLinkStatus {
    name: String,
    state: AtomicU8,
    connects: AtomicU64,
    refusals: AtomicU64,
    rtt_us: AtomicU64,
    bandwidth_kbps: AtomicU64,
    lost: AtomicU64,
    retransmits: AtomicU64,
    bytes: AtomicU64,
    dropped_frames: AtomicU64,
    inserted_frames: AtomicU64,
    /// An input's clock offset estimate in ppb; `i64::MIN` until known.
    drift_ppb: AtomicI64,
}

/// A copy of [`SrtLinkStatus`] at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct SrtLinkSnapshot {
    /// The link's worker thread name, e.g. `airlift-srt-tx-out`.
    pub name: String,
    /// Where it stands.
    pub state: LinkState,
    /// Connections made so far.
    pub connects: u64,
    /// Attempts the peer refused.
    pub refusals: u64,
    /// Round-trip time of the current (or last) connection, ms.
    pub rtt_ms: f64,
    /// Estimated link bandwidth, Mbit/s.
    pub bandwidth_mbps: f64,
    /// Packets lost on the current (or last) connection (send or receive side).
    pub lost: u64,
    /// Packets retransmitted on the current (or last) connection.
    pub retransmits: u64,
    /// Bytes carried by the current (or last) connection.
    pub bytes: u64,
    /// An input's frames dropped because the sender ran ahead of the flow's clock.
    pub dropped_frames: u64,
    /// An input's frames of silence while it buffered again after running dry.
    pub inserted_frames: u64,
    /// An input's sender clock offset against the flow's, in ppm (positive:
    /// the sender runs fast); `None` for outputs and before the first audio.
    pub drift_ppm: Option<f64>,
}

impl SrtLinkStatus {
    /// A new link status, waiting. Control thread only.
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            state: AtomicU8::new(0),
            connects: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
            rtt_us: AtomicU64::new(0),
            bandwidth_kbps: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            retransmits: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            dropped_frames: AtomicU64::new(0),
            inserted_frames: AtomicU64::new(0),
            drift_ppb: AtomicI64::new(i64::MIN),
        })
    }

    /// The current values. Any thread.
    pub fn snapshot(&self) -> SrtLinkSnapshot {
        SrtLinkSnapshot {
            name: self.name.clone(),
            state: match self.state.load(Ordering::Relaxed) {
                1 => LinkState::Connected,
                2 => LinkState::Refused,
                _ => LinkState::Waiting,
            },
            connects: self.connects.load(Ordering::Relaxed),
            refusals: self.refusals.load(Ordering::Relaxed),
            rtt_ms: self.rtt_us.load(Ordering::Relaxed) as f64 / 1000.0,
            bandwidth_mbps: self.bandwidth_kbps.load(Ordering::Relaxed) as f64 / 1000.0,
            lost: self.lost.load(Ordering::Relaxed),
            retransmits: self.retransmits.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            dropped_frames: self.dropped_frames.load(Ordering::Relaxed),
            inserted_frames: self.inserted_frames.load(Ordering::Relaxed),
            drift_ppm: match self.drift_ppb.load(Ordering::Relaxed) {
                i64::MIN => None,
                ppb => Some(ppb as f64 / 1e3),
            },
        }
    }

    /// Publishes an input's clock offset estimate, in ppb. Realtime-safe.
    pub(crate) fn drift(&self, ppb: i64) {
        self.drift_ppb.store(ppb.max(i64::MIN + 1), Ordering::Relaxed);
    }

    /// Counts an input's frames dropped (sender ahead) and inserted
    /// (silence while it buffered again). Any thread; realtime-safe.
    pub(crate) fn jitter(&self, dropped: u64, inserted: u64) {
        self.dropped_frames.fetch_add(dropped, Ordering::Relaxed);
        self.inserted_frames.fetch_add(inserted, Ordering::Relaxed);
    }

    pub(crate) fn connected(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        self.state.store(1, Ordering::Relaxed);
    }

    pub(crate) fn disconnected(&self) {
        self.state.store(0, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.refusals.fetch_add(1, Ordering::Relaxed);
        self.state.store(2, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, e: &SrtError) {
        if matches!(e, SrtError::Rejected { .. }) { self.refused() } else { self.disconnected() }
    }

    pub(crate) fn record(&self, s: &SrtStats) {
        self.rtt_us.store((s.rtt_ms * 1000.0).max(0.0) as u64, Ordering::Relaxed);
        self.bandwidth_kbps.store((s.bandwidth_mbps * 1000.0).max(0.0) as u64, Ordering::Relaxed);
        self.lost.store((s.send_loss + s.recv_loss).max(0) as u64, Ordering::Relaxed);
        self.retransmits.store(s.retransmits.max(0) as u64, Ordering::Relaxed);
        self.bytes.store(s.bytes_sent + s.bytes_received, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap_and_resets() {
        let mut b = Backoff::default();
        let mut base = Backoff::FIRST;
        for _ in 0..10 {
            let d = b.delay();
            assert!(d >= base.mul_f64(0.75) && d <= base.mul_f64(1.25), "{d:?} around {base:?}");
            base = (base * 2).min(Backoff::MAX);
        }
        assert!(b.delay() <= Backoff::MAX.mul_f64(1.25));
        b.reset();
        assert!(b.delay() <= Backoff::FIRST.mul_f64(1.25));
    }

    #[test]
    fn link_status_follows_state_changes_and_statistics() {
        let status = SrtLinkStatus::new("airlift-srt-tx-test");
        assert_eq!(status.snapshot().state, LinkState::Waiting);
        status.failed(&SrtError::Rejected {
            peer: "p".into(),
            reason: crate::media::srt::RejectReason::BadSecret,
        });
        assert_eq!((status.snapshot().state, status.snapshot().refusals), (LinkState::Refused, 1));
        status.connected();
        status.record(&SrtStats {
            rtt_ms: 1.5,
            retransmits: 3,
            send_loss: 2,
            bytes_sent: 10,
            ..Default::default()
        });
        let s = status.snapshot();
        assert_eq!(
            (s.state, s.connects, s.retransmits, s.lost, s.bytes),
            (LinkState::Connected, 1, 3, 2, 10)
        );
        assert!((s.rtt_ms - 1.5).abs() < 1e-9);
        status.failed(&SrtError::Io { op: "send", message: "broken".into() });
        assert_eq!(status.snapshot().state, LinkState::Waiting);
    }
}
