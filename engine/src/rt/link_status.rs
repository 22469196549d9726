//! A live SRT link's state and counters ([`SrtLinkStatus`]): written
//! lock-free by its worker thread (and, for an input's drift and jitter
//! counts, by the audio thread through the bridge), read from the control
//! side as the protocol's own [`SrtLinkSnapshot`].
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};

use crate::sys::srt::{SrtError, SrtStats};

// Where an SRT link stands (the protocol's type, sent to ctl as is).
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

// A copy of `SrtLinkStatus` at one moment: the protocol's own type.
pub use airlift_ipc::message::SrtLinkStats as SrtLinkSnapshot;

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
        let state = match self.state.load(Ordering::Relaxed) {
            1 => LinkState::Connected,
            2 => LinkState::Refused,
            _ => LinkState::Waiting,
        };
        SrtLinkSnapshot {
            name: self.name.clone(),
            connected: state == LinkState::Connected,
            state,
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
