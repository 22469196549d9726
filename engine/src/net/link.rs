//! What SRT input and output share: the endpoint (caller or listener), the
//! reconnect backoff with jitter, link state events in the log, and the
//! link's state and statistics ([`SrtLinkStatus`]) for the control side.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use std::time::{Duration, Instant};

use airlift_ipc::spec::{SrtMode, SrtSpec};

use crate::rt::worker::WorkerContext;
use crate::sys::srt::{SrtError, SrtListener, SrtOptions, SrtSocket};

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

pub use crate::rt::link_status::{LinkState, SrtLinkStatus};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::srt::SrtStats;

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
            reason: crate::sys::srt::RejectReason::BadSecret,
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
