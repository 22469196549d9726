//! Per-flow counters written by the audio thread with relaxed atomic stores
//! and read by the control thread: no locks, no allocation.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use airlift_ipc::message::{FlowStats, PROCESS_LOAD_BUCKETS, RealtimeReport};

/// Number of histogram buckets (the bounds plus one overflow bucket).
pub const BUCKETS: usize = PROCESS_LOAD_BUCKETS.len() + 1;

/// Counters of one flow. Shared as `Arc<FlowCounters>`.
#[derive(Debug, Default)]
pub struct FlowCounters {
    /// Frames processed.
    pub frames: AtomicU64,
    /// Periods processed.
    pub periods: AtomicU64,
    /// Periods too late to catch up: periods were skipped (audio lost).
    pub deadline_misses: AtomicU64,
    /// Periods that finished after the next deadline and were caught up.
    pub late_periods: AtomicU64,
    /// Largest lateness past a deadline, in ns.
    pub max_late_ns: AtomicU64,
    /// Periods with an input ring that ran dry.
    pub underruns: AtomicU64,
    /// Periods with an output ring that was full.
    pub overruns: AtomicU64,
    /// Device xruns.
    pub xruns: AtomicU64,
    /// A duplex ALSA flow's input → output latency in frames (0: not duplex).
    pub latency_frames: AtomicU64,
    /// Set when the flow reads through a clock-domain bridge.
    pub bridged: AtomicBool,
    /// The bridge's estimate of the other clock's offset, in parts per billion.
    pub drift_ppb: AtomicI64,
    /// Largest processing time in ns.
    pub max_process_ns: AtomicU64,
    /// Sum of processing times in ns.
    pub process_ns_total: AtomicU64,
    /// Processing-load histogram.
    pub load: [AtomicU64; BUCKETS],
    /// Lowest fill of an input ring since the last snapshot, stored as
    /// `1001 − permille` so that `fetch_max` finds it (0: no input ring).
    pub input_fill_low: AtomicU64,
    /// Highest fill of an output ring since the last snapshot, stored as
    /// `permille + 1` (0: no output ring).
    pub output_fill_high: AtomicU64,
}

impl FlowCounters {
    /// Records one period's processing time. Realtime-safe.
    pub fn record_period(&self, frames: u32, process_ns: u64, period_ns: u64) {
        self.frames.fetch_add(u64::from(frames), Relaxed);
        self.periods.fetch_add(1, Relaxed);
        self.max_process_ns.fetch_max(process_ns, Relaxed);
        self.process_ns_total.fetch_add(process_ns, Relaxed);
        let load = process_ns as f64 / period_ns.max(1) as f64;
        let bucket = PROCESS_LOAD_BUCKETS.iter().position(|&b| load <= b).unwrap_or(BUCKETS - 1);
        self.load[bucket].fetch_add(1, Relaxed);
    }

    /// Notes an input ring's fill after a period. Realtime-safe.
    pub fn input_fill(&self, slots: usize, capacity: usize) {
        let permille = (slots * 1000 / capacity.max(1)).min(1000) as u64;
        self.input_fill_low.fetch_max(1001 - permille, Relaxed);
    }

    /// Notes an output ring's fill (`free` slots of `capacity`) after a
    /// period. Realtime-safe.
    pub fn output_fill(&self, free: usize, capacity: usize) {
        let used = capacity.saturating_sub(free);
        let permille = (used * 1000 / capacity.max(1)).min(1000) as u64;
        self.output_fill_high.fetch_max(permille + 1, Relaxed);
    }

    /// A snapshot for IPC. Control thread only. The ring fills restart
    /// with each snapshot: they cover the time since the previous one.
    pub fn snapshot(&self, flow: &str, realtime: RealtimeReport) -> FlowStats {
        FlowStats {
            flow: flow.to_owned(),
            frames: self.frames.load(Relaxed),
            periods: self.periods.load(Relaxed),
            deadline_misses: self.deadline_misses.load(Relaxed),
            late_periods: self.late_periods.load(Relaxed),
            max_late_us: u32::try_from(self.max_late_ns.load(Relaxed) / 1000).unwrap_or(u32::MAX),
            underruns: self.underruns.load(Relaxed),
            overruns: self.overruns.load(Relaxed),
            xruns: self.xruns.load(Relaxed),
            max_process_us: u32::try_from(self.max_process_ns.load(Relaxed) / 1000).unwrap_or(u32::MAX),
            process_ns_total: self.process_ns_total.load(Relaxed),
            process_load_histogram: self.load.iter().map(|b| b.load(Relaxed)).collect(),
            realtime,
            latency_frames: match self.latency_frames.load(Relaxed) {
                0 => None,
                n => Some(n),
            },
            drift_ppm: self.bridged.load(Relaxed).then(|| self.drift_ppb.load(Relaxed) as f64 / 1e3),
            srt_links: Vec::new(),
            input_sources: Vec::new(),
            input_ring_low: match self.input_fill_low.swap(0, Relaxed) {
                0 => None,
                v => Some((1001 - v.min(1001)) as f32 / 1000.0),
            },
            output_ring_high: match self.output_fill_high.swap(0, Relaxed) {
                0 => None,
                v => Some((v - 1) as f32 / 1000.0),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_fills_keep_the_extremes_until_the_next_snapshot() {
        let c = FlowCounters::default();
        let none = c.snapshot("f", RealtimeReport::default());
        assert_eq!((none.input_ring_low, none.output_ring_high), (None, None));
        for (slots, free) in [(900, 700), (250, 100), (600, 950)] {
            c.input_fill(slots, 1000);
            c.output_fill(free, 1000);
        }
        let s = c.snapshot("f", RealtimeReport::default());
        assert_eq!(s.input_ring_low, Some(0.25));
        assert_eq!(s.output_ring_high, Some(0.9));
        c.input_fill(0, 1000);
        c.output_fill(1000, 1000);
        let s = c.snapshot("f", RealtimeReport::default());
        assert_eq!((s.input_ring_low, s.output_ring_high), (Some(0.0), Some(0.0)));
        c.input_fill(1000, 1000);
        c.output_fill(0, 1000);
        let s = c.snapshot("f", RealtimeReport::default());
        assert_eq!((s.input_ring_low, s.output_ring_high), (Some(1.0), Some(1.0)));
    }
}
