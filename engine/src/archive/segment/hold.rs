//! The segmenter's memory hold: what it does while the spool refuses
//! writes (see the parent module's docs). Segmenter thread only.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::archive::spool::{SegmentWriter, SpoolError};
use crate::archive::ts::{Cut, PacketSplitter, SegmentTiming, TS_PACKET, pts_diff};

use super::{MAX_WAITING, Segmenter};

/// Seconds of the stream a segmenter holds in memory while the spool
/// refuses writes (full, or below its free-space floor), measured by the
/// stream's byte rate; within [`HOLD_MIN`] and [`MAX_WAITING`] bytes.
pub const HOLD_SECONDS: u64 = 30;
/// Bytes a segmenter may always hold while the spool refuses writes.
pub const HOLD_MIN: usize = 1024 * 1024;
/// A spool that refuses writes this long fails the job (reported once;
/// the operator frees space and starts it again). Shorter refusals only
/// cost the audio that did not fit in memory, recorded as a gap.
pub const STALL_FAILS_AFTER: Duration = Duration::from_secs(600);
/// First delay before writing again after a refusal; it doubles up to
/// [`RETRY_MAX`].
pub(super) const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest delay between two attempts to write again.
pub(super) const RETRY_MAX: Duration = Duration::from_secs(2);
/// A gap measured from PTS longer than this is not believed (a PTS jump):
/// the byte estimate is used instead.
const GAP_PTS_MAX: u64 = 90_000 * 3600;

/// The spool refuses writes: since when, and when to try again.
#[derive(Debug)]
pub(super) struct Stall {
    pub(super) since: Instant,
    pub(super) next_retry: Instant,
    pub(super) backoff: Duration,
    pub(super) reason: String,
    /// Bytes dropped from the hold during this stall.
    pub(super) dropped: u64,
}

/// A gap to write into the first segment after it.
#[derive(Debug)]
pub(super) struct GapMark {
    /// PTS just after the last audio written before the gap.
    pub(super) end_pts: Option<u64>,
    /// Bytes dropped.
    pub(super) bytes: u64,
    /// The stream's byte rate then (bytes per second), for an estimate.
    pub(super) rate: f64,
    /// The segment that carries the gap, once begun.
    pub(super) seq: Option<u64>,
}

impl Segmenter {
    /// Bytes held in memory because the spool refuses writes.
    pub(super) fn held(&self) -> usize {
        self.waiting.len()
            + self.current.as_ref().map_or(0, SegmentWriter::pending_bytes)
            + self.closing.as_ref().map_or(0, |(w, ..)| w.pending_bytes())
            + self.carry.as_ref().map_or(0, |(c, _)| c.len())
    }

    /// The most bytes held: [`HOLD_SECONDS`] of the stream at its rate so far.
    pub(super) fn hold_cap(&self) -> usize {
        if let Some(limit) = self.hold_limit {
            return limit;
        }
        let secs = self.opened.elapsed().as_secs_f64().max(1.0);
        let rate = self.bytes_in as f64 / secs;
        ((rate * HOLD_SECONDS as f64) as usize).clamp(HOLD_MIN, MAX_WAITING)
    }

    /// The stream's byte rate so far, bytes per second.
    pub(super) fn rate(&self) -> f64 {
        self.bytes_in as f64 / self.opened.elapsed().as_secs_f64().max(0.001)
    }

    /// Keeps `data` while the spool refuses writes; beyond the hold, drops
    /// the oldest bytes (whole packets' worth).
    pub(super) fn hold(&mut self, data: &[u8]) {
        self.waiting.extend_from_slice(data);
        self.trim_hold();
    }

    pub(super) fn trim_hold(&mut self) {
        let cap = self.hold_cap();
        if self.waiting.len() > cap {
            let excess = self.waiting.len() - cap;
            // Drop in slices of an eighth of the hold, not a packet per push.
            let n = (excess.max(cap / 8).div_ceil(TS_PACKET) * TS_PACKET).min(self.waiting.len());
            self.waiting.drain(..n);
            self.counters.dropped_bytes.fetch_add(n as u64, Relaxed);
            if let Some(st) = &mut self.stall {
                if st.dropped == 0 {
                    tracing::error!(job = %self.job, hold_bytes = cap, "spool still refuses writes and the memory hold is full: dropping the oldest audio");
                }
                st.dropped += n as u64;
            }
        }
        // Outside a stall the writer's own buffer is not a hold.
        let held = if self.stall.is_some() { self.held() as u64 } else { 0 };
        self.counters.held_bytes.store(held, Relaxed);
        self.counters.held_bytes_max.fetch_max(held, Relaxed);
    }

    pub(super) fn enter_stall(&mut self, e: &SpoolError) {
        if self.stall.is_some() {
            return;
        }
        let now = Instant::now();
        tracing::warn!(
            job = %self.job,
            hold_bytes = self.hold_cap(),
            "spool refuses writes ({e}): holding the stream in memory and retrying"
        );
        self.counters.stalls.fetch_add(1, Relaxed);
        self.stall = Some(Stall {
            since: now,
            next_retry: now + RETRY_FIRST,
            backoff: RETRY_FIRST,
            reason: e.to_string(),
            dropped: 0,
        });
    }

    /// After a refusal: a full spool is retried later (Ok), anything else
    /// is returned.
    pub(super) fn retry_later(&mut self, e: SpoolError) -> Result<(), SpoolError> {
        if !matches!(e, SpoolError::Full { .. }) {
            return Err(e);
        }
        self.enter_stall(&e);
        if let Some(st) = &mut self.stall {
            st.backoff = (st.backoff * 2).min(RETRY_MAX);
            st.next_retry = Instant::now() + st.backoff;
            st.reason = e.to_string();
        }
        Ok(())
    }

    /// Tries to write what is held, in order: the segment being closed, the
    /// open segment's pending bytes, the piece that had no segment, a cut
    /// before dropped bytes (the gap), then everything that arrived since.
    pub(super) fn resume(&mut self, arrival_us: u64) -> Result<(), SpoolError> {
        if let Some(spool) = &self.spool
            && let Err(e) = spool.check_free(&self.spool_dir())
        {
            return self.retry_later(e);
        }
        if let Some((w, timing, truncated)) = self.closing.take()
            && let Err(e) = self.close_writer(w, timing, truncated)
        {
            return self.retry_later(e);
        }
        if let Some(w) = &mut self.current
            && let Err(e) = w.flush()
        {
            return self.retry_later(e);
        }
        if let Some((piece, psi)) = self.carry.take() {
            if let Err(e) = self.ensure_open(psi) {
                self.carry = Some((piece, psi));
                return self.retry_later(e);
            }
            if let Some(w) = &mut self.current
                && let Err(e) = w.write(&piece)
            {
                return self.retry_later(e);
            }
        }
        let Some(stall) = self.stall.take() else { return Ok(()) };
        if stall.dropped > 0 {
            self.gap = Some(GapMark {
                end_pts: self.cutter.end_pts(),
                bytes: stall.dropped,
                rate: self.rate(),
                seq: None,
            });
            let timing = self.cutter.cut_now(Cut::Gap);
            if let Err(e) = self.cut(timing, false) {
                return self.retry_later(e);
            }
        }
        tracing::info!(
            job = %self.job,
            seconds = stall.since.elapsed().as_secs_f64(),
            held_bytes = self.held(),
            dropped_bytes = stall.dropped,
            "spool takes writes again: writing what was held"
        );
        let waiting = std::mem::take(&mut self.waiting);
        let fed = self.feed(&waiting, arrival_us, false);
        self.trim_hold();
        fed
    }

    /// Gives up what is held. The partial files stay on disk and are closed
    /// as truncated segments before the next segment begins (or when the
    /// job is next opened); the lost bytes are recorded as a gap (estimated
    /// from the stream's rate) on the next segment, if there is one.
    pub(super) fn abandon(&mut self) {
        let lost = self.held() as u64;
        if lost > 0 {
            self.gap = Some(GapMark { end_pts: None, bytes: lost, rate: self.rate(), seq: None });
        }
        self.discontinuity = true;
        self.stall = None;
        self.waiting.clear();
        self.carry = None;
        self.abandoned.extend(self.closing.take().map(|(w, ..)| w));
        self.abandoned.extend(self.current.take());
        self.splitter = PacketSplitter::new();
        self.counters.held_bytes.store(0, Relaxed);
        self.cutter.restart();
    }

    /// Writes a pending gap into `w` if it is the segment after it: the
    /// lost audio from PTS (the end of what was written before, the start
    /// of `w`), else estimated from the bytes dropped and the stream's rate.
    pub(super) fn apply_gap(&mut self, w: &mut SegmentWriter, timing: SegmentTiming) {
        if let Some(gap) = &self.gap
            && gap.seq == Some(w.sequence())
        {
            let estimate = if gap.rate > 0.0 { (gap.bytes as f64 / gap.rate * 90_000.0) as u64 } else { 0 };
            let lost = match gap.end_pts {
                Some(end) if timing.first_pts > 0 || timing.duration_90k > 0 => {
                    let d = pts_diff(end, timing.first_pts as u64);
                    if d < GAP_PTS_MAX { d } else { estimate }
                }
                _ => estimate,
            };
            w.mark_discontinuity(lost);
            self.counters.gaps.fetch_add(1, Relaxed);
            self.counters.gap_90k.fetch_add(lost, Relaxed);
            tracing::error!(
                job = %self.job,
                sequence = w.sequence(),
                lost_s = lost as f64 / 90_000.0,
                dropped_bytes = gap.bytes,
                "audio lost while the spool refused writes: gap recorded in the manifest"
            );
            self.gap = None;
        }
    }
}
