//! The segmenter: cuts a TS byte stream into spool segments at the
//! [`Cutter`]'s points, starting each segment with the last PAT and PMT,
//! and announces each closed segment. Used by a flow's encoder worker
//! ([`SegmentTsOutput`]) and by pull jobs. Never on the audio thread.

use airlift_ipc::message::{EngineToCtl, FlowState};
use airlift_ipc::spec::SegmentSpec;
use airlift_ipc::units::Name;

use crate::media::ffmpeg::TsOutput;
use crate::media::spool::{JobSpool, SegmentWriter, Spool, SpoolError, SpoolEvents};
use crate::media::ts::{Cut, Cutter, PAT_PID, PacketSplitter, TS_PACKET};

/// Cuts one job's TS into segments.
#[derive(Debug)]
pub struct Segmenter {
    job: Name,
    spool: JobSpool,
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
    pub fn open(spool: &Spool, spec: &SegmentSpec, events: SpoolEvents) -> Result<Self, SpoolError> {
        let (job_spool, recovered) = spool.open_job(&spec.job)?;
        for m in recovered {
            events.push(EngineToCtl::SegmentClosed(m));
        }
        Ok(Self {
            job: spec.job.clone(),
            spool: job_spool,
            cutter: Cutter::new(u64::from(u32::from(spec.target_seconds)) * 90_000, spec.max_bytes),
            splitter: PacketSplitter::new(),
            current: None,
            events,
            failed: None,
            closed: 0,
        })
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
            let m = self.spool.close(w, timing.first_pts, timing.duration_90k, false)?;
            if why == Cut::MaxSize {
                tracing::warn!(job = %self.job, sequence = m.sequence, "segment cut at its maximum size, not at a key frame");
            }
            self.closed += 1;
            self.events.push(EngineToCtl::SegmentClosed(m));
        }
        if self.current.is_none() {
            let mut w = self.spool.begin()?;
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
                let mut w = self.spool.begin()?;
                w.write(data)?;
                self.current = Some(w);
                Ok(())
            }
        }
    }

    /// Closes the open segment at the end of the stream (`truncated` when
    /// the stream broke off rather than ended).
    pub fn finish(&mut self, truncated: bool) -> Result<(), SpoolError> {
        let rest = self.splitter.rest().to_vec();
        if !rest.is_empty() && self.failed.is_none() {
            self.write(&rest)?;
            self.splitter = PacketSplitter::new();
        }
        if let Some(w) = self.current.take() {
            let timing = self.cutter.timing(None);
            let m = self.spool.close(w, timing.first_pts, timing.duration_90k, truncated)?;
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
