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

use airlift_ipc::message::{EngineToCtl, FlowState};
use airlift_ipc::spec::SegmentSpec;
use airlift_ipc::units::Name;

use crate::media::ffmpeg::TsOutput;
use crate::media::spool::{JobSpool, SegmentWriter, Spool, SpoolError, SpoolEvents};
use crate::media::ts::{Cut, Cutter, PAT_PID, PacketSplitter, TS_PACKET};

/// TS bytes a segmenter keeps while another writer still holds its job.
pub const MAX_WAITING: usize = 32 * 1024 * 1024;
/// How long [`Segmenter::finish`] waits for the job's lock before giving up.
const FINISH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Cuts one job's TS into segments.
#[derive(Debug)]
pub struct Segmenter {
    job: Name,
    /// Where the job lives, to take it once its previous writer let go.
    root: Spool,
    /// The job, once this segmenter holds it.
    spool: Option<JobSpool>,
    /// What arrived before the job was held.
    waiting: Vec<u8>,
    /// The next segment begins a new stream after earlier segments of the job.
    discontinuity: bool,
    cutter: Cutter,
    splitter: PacketSplitter,
    current: Option<SegmentWriter>,
    events: SpoolEvents,
    failed: Option<String>,
    closed: u64,
}

impl Segmenter {
    /// Opens `spec.job` in `spool` (recovering partials, whose manifests are
    /// announced first) for segments of `spec`'s target and size.
    /// When another writer still holds the job, the segmenter waits for
    /// it (see the module docs); other spool errors are returned.
    pub fn open(spool: &Spool, spec: &SegmentSpec, events: SpoolEvents) -> Result<Self, SpoolError> {
        let mut segmenter = Self {
            job: spec.job.clone(),
            root: spool.clone(),
            spool: None,
            waiting: Vec::new(),
            discontinuity: false,
            cutter: Cutter::new(u64::from(u32::from(spec.target_seconds)) * 90_000, spec.max_bytes),
            splitter: PacketSplitter::new(),
            current: None,
            events,
            failed: None,
            closed: 0,
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

    /// Takes the next bytes of the stream (`arrival_us`: arrival clock for
    /// PCR jitter). After an error the segmenter refuses everything.
    pub fn push(&mut self, data: &[u8], arrival_us: u64) -> Result<(), SpoolError> {
        if let Some(reason) = &self.failed {
            return Err(SpoolError::Full { path: self.spool_dir(), reason: reason.clone() });
        }
        if self.spool.is_none() {
            match self.try_hold() {
                Ok(_) => {
                    let waiting = std::mem::take(&mut self.waiting);
                    self.feed(&waiting, arrival_us)?;
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
        self.feed(data, arrival_us)
    }

    fn feed(&mut self, data: &[u8], arrival_us: u64) -> Result<(), SpoolError> {
        let mut splitter = std::mem::take(&mut self.splitter);
        let mut result = Ok(());
        splitter.push(data, |piece| {
            if result.is_ok() {
                result = match piece {
                    Ok(packet) => self.packet(packet, arrival_us),
                    Err(junk) => self.write(junk),
                };
            }
        });
        self.splitter = splitter;
        if result.is_ok()
            && let Some(w) = &mut self.current
        {
            result = w.flush();
        }
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    fn spool_dir(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(self.job.as_str())
    }

    fn packet(&mut self, packet: &[u8], arrival_us: u64) -> Result<(), SpoolError> {
        let (info, cut) = self.cutter.push(packet, arrival_us);
        if let Some((why, timing)) = cut
            && let Some(w) = self.current.take()
        {
            let m = self.held()?.close(w, timing.first_pts, timing.duration_90k, false)?;
            if why == Cut::MaxSize {
                tracing::warn!(job = %self.job, sequence = m.sequence, "segment cut at its maximum size, not at a key frame");
            }
            self.closed += 1;
            self.events.push(EngineToCtl::SegmentClosed(m));
        }
        if self.current.is_none() {
            let mut w = self.begin()?;
            // Start with PAT and PMT unless the stream does so itself. (The
            // first segment of a stream starts as the stream does: FFmpeg
            // writes its SDT before them.)
            if info.pid != PAT_PID {
                let (pat, pmt) = self.cutter.reader.psi();
                let (pat, pmt) = (pat.copied(), pmt.copied());
                for psi in [pat, pmt].into_iter().flatten() {
                    w.write(&psi)?;
                    self.cutter.add_bytes(TS_PACKET as u64);
                }
            }
            self.current = Some(w);
        }
        self.write(packet)
    }

    fn write(&mut self, data: &[u8]) -> Result<(), SpoolError> {
        match &mut self.current {
            Some(w) => w.write(data),
            None => {
                let mut w = self.begin()?;
                w.write(data)?;
                self.current = Some(w);
                Ok(())
            }
        }
    }

    fn held(&mut self) -> Result<&mut JobSpool, SpoolError> {
        let job = self.job.to_string();
        self.spool.as_mut().ok_or_else(|| SpoolError::Locked { job, path: std::path::PathBuf::new() })
    }

    /// Begins the next segment, marking the first one after a restart.
    fn begin(&mut self) -> Result<SegmentWriter, SpoolError> {
        let mut w = self.held()?.begin()?;
        if std::mem::take(&mut self.discontinuity) {
            w.mark_discontinuity(0);
        }
        Ok(w)
    }

    /// Closes the open segment at the end of the stream (`truncated` when
    /// the stream broke off rather than ended). A segmenter still waiting
    /// for its job waits up to 5 s more for it, then reports what it held
    /// as lost.
    pub fn finish(&mut self, truncated: bool) -> Result<(), SpoolError> {
        if self.spool.is_none() && !self.waiting.is_empty() {
            let deadline = std::time::Instant::now() + FINISH_WAIT;
            loop {
                match self.try_hold() {
                    Ok(_) => {
                        let waiting = std::mem::take(&mut self.waiting);
                        self.feed(&waiting, 0)?;
                        break;
                    }
                    Err(SpoolError::Locked { .. }) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => {
                        tracing::error!(job = %self.job, bytes = self.waiting.len(), "the job never became free: its last bytes are lost: {e}");
                        self.waiting.clear();
                        return Err(e);
                    }
                }
            }
        }
        let rest = self.splitter.rest().to_vec();
        if !rest.is_empty() && self.failed.is_none() {
            self.write(&rest)?;
            self.splitter = PacketSplitter::new();
        }
        if let Some(w) = self.current.take() {
            let timing = self.cutter.timing(None);
            let m = self.held()?.close(w, timing.first_pts, timing.duration_90k, truncated)?;
            self.closed += 1;
            self.events.push(EngineToCtl::SegmentClosed(m));
        }
        self.cutter.restart();
        Ok(())
    }
}

impl Drop for Segmenter {
    fn drop(&mut self) {
        if self.current.is_some()
            && let Err(e) = self.finish(true)
        {
            tracing::error!(job = %self.job, "cannot close the last segment: {e}");
        }
    }
}

/// A flow encoder's TS output into segments. Runs on the encoder worker.
/// When the spool fails (disk full, I/O error) the segments stop and the
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
mod tests {
    use super::*;

    #[test]
    fn a_full_spool_fails_the_flow_once_with_the_reason() {
        let root = std::env::temp_dir().join(format!("airlift-seg-unit-{}", std::process::id()));
        let mut spool = Spool::new(&root);
        spool.min_free_bytes = u64::MAX;
        let spec: SegmentSpec = toml::from_str("job = \"prog\"\ntarget_seconds = 2").unwrap();
        let events = SpoolEvents::default();
        let segmenter = Segmenter::open(&spool, &spec, events.clone()).unwrap();
        let mut out = SegmentTsOutput::new(segmenter, Name::new("main").unwrap());
        let mut packet = [0xffu8; TS_PACKET];
        packet[..4].copy_from_slice(&[0x47, 0x41, 0x00, 0x10]);
        assert!(out.write_ts(&packet).is_err());
        assert!(out.write_ts(&packet).is_err());
        let mut got = Vec::new();
        events.drain_into(&mut got);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            matches!(&got[0], EngineToCtl::FlowState { state: FlowState::Failed { reason }, .. } if reason.contains("is full")),
            "{got:?}"
        );
        drop(out);
        let _ = std::fs::remove_dir_all(root);
    }
}
