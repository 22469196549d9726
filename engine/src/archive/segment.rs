//! The segmenter: cuts a TS byte stream into spool segments at the
//! [`Cutter`]'s points, starting each segment with the last PAT and PMT,
//! and announces each closed segment. Used by a flow's encoder worker
//! ([`SegmentTsOutput`]) and by pull jobs. Never on the audio thread.
//!
//! A segmenter writes its job only while it holds the job's lock (see
//! [`Spool::open_job`]). A flow rebuilt with a changed segments output
//! builds its new segmenter while the old one still closes its last
//! segment: until the old one lets go, the new one keeps what arrives in
//! memory (at most [`MAX_WAITING`] bytes), then continues with the next
//! sequence number, its first segment marked as a discontinuity.
//!
//! A full spool is a pause, not a failure. When a write is refused (ENOSPC,
//! EDQUOT) or the file system has less free space than the spool's floor
//! (looked at with `statvfs` every 250 ms or 1 MiB, see [`FreeSpaceGate`]),
//! the segmenter keeps what it accepted (byte-exact, in the open segment's
//! writer) and holds what arrives in memory, up to [`HOLD_SECONDS`] of the
//! stream; it tries again after 100 ms, doubling to 2 s, on the pushes that
//! follow (it never sleeps on the worker). When the spool takes writes
//! again it writes everything in order: nothing lost, the segment in
//! progress closed normally. If the hold overflowed, the oldest bytes
//! (whole packets) were dropped: the segment in progress is closed where
//! the written audio ends, and the next one is marked `discontinuity` with
//! the lost audio as `gap_90k` (from PTS, else from bytes and the stream's
//! rate), counted in the job's [`SegmentJobCounters`] and logged. Only a
//! refusal lasting [`STALL_FAILS_AFTER`] fails the job.
//!
//! Hostile input is bounded: bytes that are not TS packets are written as
//! they came but count towards the segment's `max_bytes` and the job's
//! junk counter, and a segment is cut at the wall-clock limit
//! ([`wall_limit`], three times the target) whatever arrives.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use airlift_ipc::message::{EngineToCtl, FlowState};
use airlift_ipc::spec::SegmentSpec;
use airlift_ipc::units::Name;

use crate::archive::spool::{
    FreeSpaceGate, JobSpool, SegmentJobCounters, SegmentWriter, Spool, SpoolError, SpoolEvents,
};
use crate::archive::ts::{Cut, Cutter, PAT_PID, PacketSplitter, SegmentTiming, TS_PACKET, wall_limit};
use crate::sys::ffmpeg::TsOutput;

mod hold;

use hold::{GapMark, RETRY_FIRST, RETRY_MAX, Stall};
pub use hold::{HOLD_MIN, HOLD_SECONDS, STALL_FAILS_AFTER};

/// TS bytes a segmenter keeps while another writer still holds its job,
/// and at most while the spool refuses writes.
pub const MAX_WAITING: usize = 32 * 1024 * 1024;
/// How long [`Segmenter::finish`] waits for the job's lock (or for the
/// spool to take what is held) before giving up.
const FINISH_WAIT: Duration = Duration::from_secs(5);

/// Cuts one job's TS into segments.
#[derive(Debug)]
pub struct Segmenter {
    job: Name,
    /// Where the job lives, to take it once its previous writer let go.
    root: Spool,
    /// The job, once this segmenter holds it.
    spool: Option<JobSpool>,
    /// What arrived before the job was held, or while the spool refuses
    /// writes (not yet read by the cutter).
    waiting: Vec<u8>,
    /// The next segment begins a new stream after earlier segments of the job.
    discontinuity: bool,
    cutter: Cutter,
    splitter: PacketSplitter,
    current: Option<SegmentWriter>,
    /// A cut segment the spool refused to close (retried first).
    closing: Option<(SegmentWriter, SegmentTiming, bool)>,
    /// A piece the cutter read but no segment took (the spool refused to
    /// begin one); with whether its segment starts with PAT and PMT.
    carry: Option<(Vec<u8>, bool)>,
    stall: Option<Stall>,
    gap: Option<GapMark>,
    gate: FreeSpaceGate,
    events: SpoolEvents,
    counters: Arc<SegmentJobCounters>,
    failed: Option<String>,
    closed: u64,
    opened: Instant,
    /// When the open segment began (for the wall-clock limit).
    segment_started: Instant,
    wall_limit: Duration,
    bytes_in: u64,
    junk: u64,
    hold_limit: Option<usize>,
    /// Partial segments given up on, closed as truncated once the spool
    /// takes writes again.
    abandoned: Vec<SegmentWriter>,
}

impl Segmenter {
    /// Opens `spec.job` in `spool` (recovering partials, whose manifests are
    /// announced first) for segments of `spec`'s target and size.
    /// When another writer still holds the job, the segmenter waits for
    /// it (see the module docs); other spool errors are returned.
    pub fn open(spool: &Spool, spec: &SegmentSpec, events: SpoolEvents) -> Result<Self, SpoolError> {
        let target_90k = u64::from(u32::from(spec.target_seconds)) * 90_000;
        let now = Instant::now();
        let mut segmenter = Self {
            job: spec.job.clone(),
            root: spool.clone(),
            spool: None,
            waiting: Vec::new(),
            discontinuity: false,
            cutter: Cutter::new(target_90k, spec.max_bytes),
            splitter: PacketSplitter::new(),
            current: None,
            closing: None,
            carry: None,
            stall: None,
            gap: None,
            gate: FreeSpaceGate::default(),
            counters: events.job_counters(spec.job.as_str()),
            events,
            failed: None,
            closed: 0,
            opened: now,
            segment_started: now,
            wall_limit: wall_limit(target_90k),
            bytes_in: 0,
            junk: 0,
            hold_limit: None,
            abandoned: Vec::new(),
        };
        match segmenter.try_hold() {
            Ok(_) => Ok(segmenter),
            Err(SpoolError::Locked { .. }) => {
                tracing::info!(job = %spec.job, "waiting for the job's previous writer to close its segment");
                Ok(segmenter)
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the job if this segmenter does not hold it yet: announces
    /// recovered partials, and notes whether the job has earlier segments.
    /// True when the job is held.
    fn try_hold(&mut self) -> Result<bool, SpoolError> {
        if self.spool.is_some() {
            return Ok(true);
        }
        let (job_spool, recovered) = self.root.open_job(&self.job)?;
        for m in recovered {
            self.events.push(EngineToCtl::SegmentClosed(m));
        }
        self.discontinuity = job_spool.next_sequence() > 0;
        self.spool = Some(job_spool);
        Ok(true)
    }

    /// Whether this segmenter holds its job (false while it waits for the
    /// previous writer).
    pub fn holds_job(&self) -> bool {
        self.spool.is_some()
    }

    /// Whether the spool refuses writes now (what arrives is held in memory).
    pub fn stalled(&self) -> bool {
        self.stall.is_some()
    }

    /// The cutter (reader statistics, forced cuts).
    pub fn cutter(&self) -> &Cutter {
        &self.cutter
    }

    /// Segments closed so far.
    pub fn closed(&self) -> u64 {
        self.closed
    }

    /// Bytes in the open segment.
    pub fn open_bytes(&self) -> u64 {
        self.current.as_ref().map_or(0, SegmentWriter::bytes)
    }

    /// Bytes that did not parse as TS so far (outside any packet, or in a
    /// packet that did not parse).
    pub fn junk_bytes(&self) -> u64 {
        self.junk
    }

    /// Holds at most `bytes` while the spool refuses writes instead of
    /// [`HOLD_SECONDS`] of the stream (tests, small machines).
    pub fn set_hold_limit(&mut self, bytes: usize) {
        self.hold_limit = Some(bytes);
    }

    /// Changes the job's free-space floor (tests).
    pub fn set_min_free_bytes(&mut self, bytes: u64) {
        self.root.min_free_bytes = bytes;
        if let Some(s) = &mut self.spool {
            s.set_min_free_bytes(bytes);
        }
    }

    /// Takes the next bytes of the stream (`arrival_us`: arrival clock for
    /// PCR jitter). While the spool refuses writes they are held in memory
    /// and written (or, past the hold, the oldest dropped and recorded as
    /// a gap) when it takes them again: `Ok` all the same. An error (other
    /// I/O errors; a refusal longer than [`STALL_FAILS_AFTER`]) is final:
    /// after it the segmenter refuses everything.
    pub fn push(&mut self, data: &[u8], arrival_us: u64) -> Result<(), SpoolError> {
        if let Some(reason) = &self.failed {
            return Err(SpoolError::Full { path: self.spool_dir(), reason: reason.clone() });
        }
        self.bytes_in += data.len() as u64;
        if self.spool.is_none() {
            match self.try_hold() {
                Ok(_) => {
                    let waiting = std::mem::take(&mut self.waiting);
                    self.feed(&waiting, arrival_us, false)?;
                }
                Err(SpoolError::Locked { .. }) if self.waiting.len() + data.len() <= MAX_WAITING => {
                    self.waiting.extend_from_slice(data);
                    return Ok(());
                }
                Err(e) => {
                    self.failed = Some(e.to_string());
                    return Err(e);
                }
            }
        }
        let now = Instant::now();
        if self.stall.is_none()
            && self.gate.due(data.len() as u64, now)
            && let Some(spool) = &self.spool
            && let Err(e) = spool.check_free(&self.spool_dir())
        {
            self.enter_stall(&e);
        }
        if self.stall.is_some() {
            self.hold(data);
            if self.stall.as_ref().is_some_and(|s| now >= s.next_retry) {
                self.resume(arrival_us)?;
            }
            if let Some(st) = &self.stall
                && st.since.elapsed() >= STALL_FAILS_AFTER
            {
                let reason =
                    format!("the spool refused writes for {} s: {}", st.since.elapsed().as_secs(), st.reason);
                self.failed = Some(reason.clone());
                return Err(SpoolError::Full { path: self.spool_dir(), reason });
            }
            return Ok(());
        }
        self.feed(data, arrival_us, true)
    }

    /// Runs `data` through the splitter and cutter into segments. While the
    /// spool refuses writes, what is left goes to the hold, in order.
    /// `wall`: apply the wall-clock limit (not when replaying held bytes).
    fn feed(&mut self, data: &[u8], arrival_us: u64, wall: bool) -> Result<(), SpoolError> {
        let mut splitter = std::mem::take(&mut self.splitter);
        let mut result = Ok(());
        splitter.push(data, |piece| {
            if result.is_ok() {
                result = self.take_piece(piece, arrival_us, wall);
            }
        });
        if self.stall.is_some() {
            self.waiting.extend_from_slice(splitter.rest());
            splitter = PacketSplitter::new();
        }
        self.splitter = splitter;
        if result.is_ok()
            && self.stall.is_none()
            && let Some(w) = &mut self.current
            && let Err(e) = w.flush()
        {
            result = self.retry_later(e);
        }
        if self.stall.is_some() {
            self.trim_hold();
        }
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    /// One piece: written, or held when the spool refuses writes (then
    /// what the piece did not get to write is held, in order). Only errors
    /// other than a refusal come back.
    fn take_piece(
        &mut self,
        piece: Result<&[u8], &[u8]>,
        arrival_us: u64,
        wall: bool,
    ) -> Result<(), SpoolError> {
        let bytes = match piece {
            Ok(b) | Err(b) => b,
        };
        if self.stall.is_some() {
            self.waiting.extend_from_slice(bytes);
            return Ok(());
        }
        match self.piece(piece, arrival_us, wall) {
            Ok(()) => Ok(()),
            Err((e, consumed)) if matches!(e, SpoolError::Full { .. }) => {
                self.enter_stall(&e);
                self.waiting.extend_from_slice(&bytes[consumed..]);
                Ok(())
            }
            Err((e, _)) => Err(e),
        }
    }

    fn spool_dir(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(self.job.as_str())
    }

    /// One piece of the stream: a packet (`Ok`) or bytes that are not one
    /// (`Err`, junk: kept, counted, and counted towards the size limit).
    /// On an error, how many of its bytes were taken (written, or kept as
    /// the carry); the rest is to be fed again.
    fn piece(
        &mut self,
        piece: Result<&[u8], &[u8]>,
        arrival_us: u64,
        wall: bool,
    ) -> Result<(), (SpoolError, usize)> {
        if wall && self.current.is_some() && self.segment_started.elapsed() >= self.wall_limit {
            let timing = self.cutter.cut_now(Cut::WallClock);
            tracing::warn!(job = %self.job, limit_s = self.wall_limit.as_secs(), "segment cut at the wall-clock limit: nothing to cut at arrived in time");
            self.cut(timing, false).map_err(|e| (e, 0))?;
        }
        match piece {
            Ok(packet) => self.packet(packet, arrival_us),
            Err(junk) => self.junk(junk),
        }
    }

    fn packet(&mut self, packet: &[u8], arrival_us: u64) -> Result<(), (SpoolError, usize)> {
        let (info, cut) = self.cutter.push(packet, arrival_us);
        if info.garbage {
            self.junk += TS_PACKET as u64;
            self.counters.junk_bytes.fetch_add(TS_PACKET as u64, Relaxed);
        }
        let psi = info.pid != PAT_PID;
        let carry = |e| (e, TS_PACKET);
        if let Some((why, timing)) = cut {
            if why == Cut::MaxSize {
                tracing::warn!(job = %self.job, "segment cut at its maximum size, not at a key frame");
            }
            if let Err(e) = self.cut(timing, false) {
                self.carry = Some((packet.to_vec(), psi));
                return Err(carry(e));
            }
        }
        if let Err(e) = self.ensure_open(psi) {
            self.carry = Some((packet.to_vec(), psi));
            return Err(carry(e));
        }
        match &mut self.current {
            Some(w) => w.write(packet).map_err(carry),
            None => Ok(()),
        }
    }

    /// Bytes that are not a packet: written as they came, cutting the
    /// segment where they would take it past its size limit.
    fn junk(&mut self, junk: &[u8]) -> Result<(), (SpoolError, usize)> {
        let mut done = 0;
        while done < junk.len() {
            let rest = (junk.len() - done) as u64;
            if self.current.is_some()
                && self.cutter.bytes() > 0
                && self.cutter.bytes() + rest > self.cutter.max_bytes()
            {
                let timing = self.cutter.cut_now(Cut::MaxSize);
                self.cut(timing, false).map_err(|e| (e, done))?;
            }
            self.ensure_open(true).map_err(|e| (e, done))?;
            let room = self.cutter.max_bytes().saturating_sub(self.cutter.bytes()).max(TS_PACKET as u64);
            let n = rest.min(room) as usize;
            self.cutter.add_bytes(n as u64);
            self.junk += n as u64;
            self.counters.junk_bytes.fetch_add(n as u64, Relaxed);
            let written = match &mut self.current {
                Some(w) => w.write(&junk[done..done + n]),
                None => Ok(()),
            };
            done += n;
            written.map_err(|e| (e, done))?;
        }
        Ok(())
    }

    /// Begins a segment if none is open, starting it with the last PAT and
    /// PMT when `psi` (unless the stream does so itself: the first segment
    /// of a stream starts as the stream does).
    fn ensure_open(&mut self, psi: bool) -> Result<(), SpoolError> {
        if self.current.is_some() {
            return Ok(());
        }
        let mut w = self.begin()?;
        if psi {
            let (pat, pmt) = self.cutter.reader.psi();
            let (pat, pmt) = (pat.copied(), pmt.copied());
            for psi in [pat, pmt].into_iter().flatten() {
                // Accepted even if the disk refuses it (kept pending).
                let _ = w.write(&psi);
                self.cutter.add_bytes(TS_PACKET as u64);
            }
        }
        self.segment_started = Instant::now();
        self.current = Some(w);
        Ok(())
    }

    /// Closes the open segment (if any) with `timing`.
    fn cut(&mut self, timing: SegmentTiming, truncated: bool) -> Result<(), SpoolError> {
        let timing = self.with_wall(timing);
        match self.current.take() {
            Some(w) => self.close_writer(w, timing, truncated),
            None => Ok(()),
        }
    }

    /// The open segment's timing; without PTS in it, its duration is the
    /// time it took to arrive.
    fn with_wall(&self, mut timing: SegmentTiming) -> SegmentTiming {
        if timing == SegmentTiming::default() {
            timing.duration_90k = self.segment_started.elapsed().as_millis() as u64 * 90;
        }
        timing
    }

    /// Closes `w` and announces it; on a refusal it is kept to close again.
    fn close_writer(
        &mut self,
        mut w: SegmentWriter,
        timing: SegmentTiming,
        truncated: bool,
    ) -> Result<(), SpoolError> {
        self.apply_gap(&mut w, timing);
        let Some(spool) = self.spool.as_ref() else {
            self.closing = Some((w, timing, truncated));
            return Err(SpoolError::Locked { job: self.job.to_string(), path: std::path::PathBuf::new() });
        };
        match spool.close(w, timing.first_pts, timing.duration_90k, truncated) {
            Ok(m) => {
                self.closed += 1;
                self.events.push(EngineToCtl::SegmentClosed(m));
                Ok(())
            }
            Err(failed) => {
                let (e, w) = *failed;
                self.closing = Some((w, timing, truncated));
                Err(e)
            }
        }
    }

    /// Begins the next segment, marking the first one after a restart or
    /// a gap. Partials given up on earlier are closed first.
    fn begin(&mut self) -> Result<SegmentWriter, SpoolError> {
        let job = self.job.to_string();
        let spool =
            self.spool.as_mut().ok_or_else(|| SpoolError::Locked { job, path: std::path::PathBuf::new() })?;
        while !self.abandoned.is_empty() {
            let old = self.abandoned.remove(0);
            match spool.close_abandoned(old) {
                Ok(Some(m)) => self.events.push(EngineToCtl::SegmentClosed(m)),
                Ok(None) => {}
                Err(failed) => {
                    let (e, old) = *failed;
                    self.abandoned.insert(0, old);
                    return Err(e);
                }
            }
        }
        let mut w = spool.begin()?;
        if std::mem::take(&mut self.discontinuity) {
            w.mark_discontinuity(0);
        }
        if let Some(gap) = &mut self.gap
            && gap.seq.is_none()
        {
            gap.seq = Some(w.sequence());
            w.mark_discontinuity(0);
        }
        Ok(w)
    }

    /// Closes the open segment at the end of the stream (`truncated` when
    /// the stream broke off rather than ended). A segmenter still waiting
    /// for its job waits up to 5 s more for it, and one whose spool refuses
    /// writes retries for up to 5 s; then what it held is reported lost
    /// (recorded as a gap on the next segment; a partial already on disk is
    /// closed as truncated before the next segment begins, or when the job
    /// is next opened).
    pub fn finish(&mut self, truncated: bool) -> Result<(), SpoolError> {
        if self.spool.is_none() && !self.waiting.is_empty() {
            let deadline = Instant::now() + FINISH_WAIT;
            loop {
                match self.try_hold() {
                    Ok(_) => {
                        let waiting = std::mem::take(&mut self.waiting);
                        self.feed(&waiting, 0, false)?;
                        break;
                    }
                    Err(SpoolError::Locked { .. }) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => {
                        tracing::error!(job = %self.job, bytes = self.waiting.len(), "the job never became free: its last bytes are lost: {e}");
                        self.waiting.clear();
                        return Err(e);
                    }
                }
            }
        }
        let deadline = Instant::now() + FINISH_WAIT;
        loop {
            while self.stall.is_some() {
                let wait = self.stall.as_ref().map_or(RETRY_FIRST, |s| s.backoff).min(RETRY_MAX);
                if Instant::now() + wait > deadline {
                    let reason = self.stall.as_ref().map(|s| s.reason.clone()).unwrap_or_default();
                    tracing::error!(job = %self.job, held_bytes = self.held(), "the spool still refuses writes at the end of the stream: what was held is lost ({reason})");
                    self.abandon();
                    return Err(SpoolError::Full { path: self.spool_dir(), reason });
                }
                std::thread::sleep(wait);
                self.resume(0)?;
            }
            let rest = self.splitter.rest().to_vec();
            self.splitter = PacketSplitter::new();
            if !rest.is_empty() && self.failed.is_none() {
                self.take_piece(Err(&rest), 0, false)?;
                if self.stall.is_some() {
                    continue;
                }
            }
            if let Some(w) = self.current.take() {
                let timing = self.with_wall(self.cutter.timing(None));
                if let Err(e) = self.close_writer(w, timing, truncated) {
                    self.retry_later(e)?;
                    continue;
                }
            }
            break;
        }
        self.cutter.restart();
        // Whatever comes next (a pull job's next connection) is a new
        // stream: its timestamps and continuity counters start afresh.
        self.discontinuity = true;
        Ok(())
    }
}

impl Drop for Segmenter {
    fn drop(&mut self) {
        if (self.current.is_some() || self.stall.is_some() || self.closing.is_some())
            && let Err(e) = self.finish(true)
        {
            tracing::error!(job = %self.job, "cannot close the last segment: {e}");
        }
    }
}

/// A flow encoder's TS output into segments. Runs on the encoder worker.
/// A spool that refuses writes for a while (full disk, below its floor)
/// does not stop the flow: the segmenter holds the stream and records any
/// loss as a gap. When the spool fails for good (another I/O error, or
/// refusals longer than [`STALL_FAILS_AFTER`]) the segments stop and the
/// flow is reported as failed once, with the reason.
#[derive(Debug)]
pub struct SegmentTsOutput {
    segmenter: Segmenter,
    flow: Name,
    reported: bool,
}

impl SegmentTsOutput {
    /// Wraps an opened segmenter for `flow`.
    pub fn new(segmenter: Segmenter, flow: Name) -> Self {
        Self { segmenter, flow, reported: false }
    }

    fn fail(&mut self, e: SpoolError) -> std::io::Error {
        if !self.reported {
            self.reported = true;
            tracing::error!(flow = %self.flow, job = %self.segmenter.job, "segments stop: {e}");
            self.segmenter.events.push(EngineToCtl::FlowState {
                flow: self.flow.clone(),
                state: FlowState::Failed { reason: format!("segments {}: {e}", self.segmenter.job) },
            });
        }
        std::io::Error::other(e)
    }
}

impl TsOutput for SegmentTsOutput {
    fn write_ts(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.segmenter.push(data, 0).map_err(|e| self.fail(e))
    }

    fn flush_ts(&mut self) -> std::io::Result<()> {
        self.segmenter.finish(false).map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests;
