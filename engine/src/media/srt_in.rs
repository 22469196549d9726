//! The SRT input producer: one thread (`airlift-srt-rx-<input>`) that
//! connects or accepts, demuxes and decodes the TS audio programme with
//! FFmpeg, resamples it to the flow, and feeds the input ring behind a
//! jitter buffer. It reconnects forever; the flow never sees it fail.

use std::time::{Duration, Instant};

use crate::io::worker::{Worker, WorkerContext};
use crate::media::ffmpeg::{Decoder, TsInput};
use std::sync::Arc;

use crate::media::link::{Backoff, SrtEndpoint, SrtLinkStatus, log_failure, pause, sleep};
use crate::media::srt::{SRT_PAYLOAD, SrtOptions, SrtSocket};

/// Seconds without any byte after which a connection counts as dead.
const NO_DATA: Duration = Duration::from_secs(3);

/// How an SRT input is set up.
#[derive(Debug)]
pub struct SrtInput {
    /// Caller or (bound) listener.
    pub endpoint: SrtEndpoint,
    /// libsrt options.
    pub options: SrtOptions,
    /// Channels delivered to the flow (the stream is up- or down-mixed).
    pub channels: usize,
    /// The flow's rate.
    pub rate: u32,
    /// Jitter buffer in frames.
    pub jitter_frames: usize,
    /// State and statistics, for the control side.
    pub status: Arc<SrtLinkStatus>,
}

/// The demuxer's byte source: one SRT connection with a no-data watchdog.
struct SrtReader {
    socket: SrtSocket,
    ctx: WorkerContext,
    link: String,
    pending: Vec<u8>,
    gone: bool,
    status: Arc<SrtLinkStatus>,
    stats_at: Instant,
}

impl TsInput for SrtReader {
    fn read_ts(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.pending.is_empty() {
            let n = self.pending.len().min(buf.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(n);
        }
        if self.gone {
            return Ok(0);
        }
        if self.stats_at.elapsed() >= Duration::from_secs(1) {
            self.stats_at = Instant::now();
            if let Ok(s) = self.socket.stats() {
                self.status.record(&s);
            }
        }
        let mut msg = [0u8; SRT_PAYLOAD * 2];
        let since = Instant::now();
        loop {
            if self.ctx.stopping() {
                return Ok(0);
            }
            match self.socket.recv(&mut msg) {
                Ok(Some(n)) => {
                    let take = n.min(buf.len());
                    buf[..take].copy_from_slice(&msg[..take]);
                    self.pending.extend_from_slice(&msg[take..n]);
                    return Ok(take);
                }
                Ok(None) if since.elapsed() < NO_DATA => {}
                Ok(None) => {
                    tracing::warn!(link = %self.link, "no data for {} s: dropping the SRT connection", NO_DATA.as_secs());
                    self.gone = true;
                    return Ok(0);
                }
                Err(e) => {
                    tracing::warn!(link = %self.link, "SRT input lost: {e}");
                    self.gone = true;
                    return Ok(0);
                }
            }
        }
    }
}

impl SrtInput {
    /// Starts the input thread `name`, feeding `ring`. A live input never
    /// ends: it reconnects until the flow stops. Control thread only.
    pub fn spawn(
        self,
        name: String,
        cadence: Duration,
        ring: rtrb::Producer<f32>,
    ) -> std::io::Result<Worker> {
        let link = name.clone();
        Worker::spawn(name, cadence, move |ctx: WorkerContext| {
            let mut feed = JitterFeed::new(ring, self.jitter_frames * self.channels);
            feed.report_to(self.status.clone(), self.channels);
            let mut backoff = Backoff::default();
            while !ctx.stopping() {
                let socket = match self.endpoint.connect(&self.options, Duration::from_millis(200)) {
                    Ok(Some(s)) => s,
                    Ok(None) => continue,
                    Err(e) => {
                        let delay = backoff.delay();
                        log_failure(&link, &e, delay);
                        self.status.failed(&e);
                        if pause(&ctx, delay, sleep) {
                            break;
                        }
                        continue;
                    }
                };
                backoff.reset();
                let peer = socket.peer().to_owned();
                tracing::info!(link, peer, "SRT input connected");
                self.status.connected();
                let reader = SrtReader {
                    socket,
                    ctx: ctx.clone(),
                    link: link.clone(),
                    pending: Vec::new(),
                    gone: false,
                    status: self.status.clone(),
                    stats_at: Instant::now(),
                };
                match Decoder::open_ts(Box::new(reader), self.rate, self.channels) {
                    Ok(mut decoder) => {
                        tracing::info!(link, stream = decoder.describe(), "SRT input decoding");
                        let mut samples = Vec::with_capacity(1 << 14);
                        loop {
                            match decoder.read(&mut samples) {
                                Ok(true) => {
                                    feed.push(&samples);
                                    samples.clear();
                                }
                                Ok(false) => break,
                                Err(e) => {
                                    tracing::warn!(link, "SRT input decode failed: {e}");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(link, peer, "SRT input carries no usable audio: {e}"),
                }
                tracing::warn!(link, peer, "SRT input disconnected");
                self.status.disconnected();
                feed.reset();
                if self.endpoint.is_caller() && pause(&ctx, backoff.delay(), sleep) {
                    break;
                }
            }
        })
    }
}

/// Holds decoded audio back until `jitter` samples are buffered, then keeps
/// the ring fed; re-buffers after an underrun; drops what does not fit.
struct JitterFeed {
    ring: rtrb::Producer<f32>,
    jitter: usize,
    held: Vec<f32>,
    primed: bool,
    dropped: u64,
    /// Where dropped and inserted frames are counted, and the channels.
    report: Option<(Arc<SrtLinkStatus>, usize)>,
}

impl JitterFeed {
    fn new(ring: rtrb::Producer<f32>, jitter: usize) -> Self {
        Self { ring, jitter, held: Vec::with_capacity(jitter * 2), primed: false, dropped: 0, report: None }
    }

    fn report_to(&mut self, status: Arc<SrtLinkStatus>, channels: usize) {
        self.report = Some((status, channels.max(1)));
    }

    fn push(&mut self, samples: &[f32]) {
        let capacity = self.ring.buffer().capacity();
        if self.primed && self.ring.slots() == capacity {
            // The audio thread ran dry: buffer again before resuming. The
            // flow plays silence for this input until then: about the
            // jitter depth.
            self.primed = false;
            if let Some((status, channels)) = &self.report {
                status.jitter(0, (self.jitter / channels) as u64);
            }
        }
        self.held.extend_from_slice(samples);
        if !self.primed {
            if self.held.len() < self.jitter {
                return;
            }
            self.primed = true;
        }
        let (pushed, _) = self.ring.push_partial_slice(&self.held);
        let n = pushed.len();
        if n < self.held.len() {
            self.dropped += (self.held.len() - n) as u64;
            if let Some((status, channels)) = &self.report {
                status.jitter(((self.held.len() - n) / channels) as u64, 0);
            }
            tracing::debug!(dropped = self.dropped, "SRT input ahead of the flow clock: samples dropped");
        }
        self.held.clear();
    }

    fn reset(&mut self) {
        self.held.clear();
        self.primed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jitter_buffer_holds_audio_back_until_it_is_filled() {
        let (tx, rx) = rtrb::RingBuffer::new(100);
        let mut feed = JitterFeed::new(tx, 40);
        feed.push(&[1.0; 30]);
        assert_eq!(rx.slots(), 0, "still buffering");
        feed.push(&[2.0; 20]);
        assert_eq!(rx.slots(), 50, "released at once when full");
        feed.push(&[3.0; 10]);
        assert_eq!(rx.slots(), 60, "then passed straight through");
    }

    #[test]
    fn an_underrun_buffers_again_and_overflow_is_dropped() {
        let (tx, mut rx) = rtrb::RingBuffer::new(100);
        let mut feed = JitterFeed::new(tx, 40);
        let status = SrtLinkStatus::new("airlift-srt-rx-test");
        feed.report_to(status.clone(), 2);
        feed.push(&[1.0; 40]);
        let mut out = [0.0; 40];
        rx.pop_entire_slice(&mut out).unwrap();
        // The ring ran dry: the next samples are held until the buffer refills.
        feed.push(&[2.0; 10]);
        assert_eq!(rx.slots(), 0);
        feed.push(&[2.0; 200]);
        assert_eq!(rx.slots(), 100, "what does not fit is dropped, not queued");
        assert_eq!(feed.dropped, 110);
        // Counted in frames of the 2-channel stream: 110 samples dropped,
        // one re-buffer of the 40-sample jitter depth.
        let snap = status.snapshot();
        assert_eq!((snap.dropped_frames, snap.inserted_frames), (55, 20));
        feed.reset();
        assert!(feed.held.is_empty());
    }
}
