//! The SRT input producer: one thread (`airlift-srt-rx-<input>`) that
//! connects or accepts, demuxes and decodes the TS audio programme with
//! FFmpeg, converts it to the flow's rate and channels, and writes it into
//! a clock-domain bridge ([`crate::rt::bridge`]): the flow's audio thread
//! reads it through an adaptive resampler steered by the bridge's fill, so
//! the sender's clock drift is followed instead of dropping or repeating
//! audio. It reconnects forever; the flow never sees it fail.

use std::time::{Duration, Instant};

use crate::rt::worker::{Worker, WorkerContext};
use crate::sys::ffmpeg::{Decoder, TsInput};
use std::sync::Arc;

use crate::net::link::{Backoff, SrtEndpoint, SrtLinkStatus, log_failure, pause, sleep};
use crate::rt::bridge::BridgeWriter;
use crate::rt::clock::now_ns;
use crate::sys::srt::{SRT_PAYLOAD, SrtOptions, SrtSocket};

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

impl SrtReader {
    /// Receives the messages that are already waiting straight into `buf`,
    /// as long as a whole message surely fits: a burst (a video frame's
    /// worth of TS) costs the demuxer one read instead of one per message.
    /// Never waits; a failure is left for the next blocking receive to see.
    fn drain(&mut self, buf: &mut [u8]) -> usize {
        let mut filled = 0;
        while self.pending.is_empty() && buf.len() - filled >= SRT_PAYLOAD * 2 {
            match self.socket.try_recv(&mut buf[filled..filled + SRT_PAYLOAD * 2]) {
                Ok(Some(n)) => filled += n,
                Ok(None) | Err(_) => break,
            }
        }
        filled
    }
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
                    return Ok(take + self.drain(&mut buf[take..]));
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
    /// Starts the input thread `name`, writing into the bridge `writer`
    /// (whose reader, on the flow's audio thread, holds the jitter buffer).
    /// A live input never ends: it reconnects until the flow stops.
    /// Control thread only.
    pub fn spawn(self, name: String, cadence: Duration, writer: BridgeWriter) -> std::io::Result<Worker> {
        let link = name.clone();
        Worker::spawn(name, cadence, move |ctx: WorkerContext| {
            let mut feed = Feed { writer, channels: self.channels.max(1), status: self.status.clone() };
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
                feed.writer.pause();
                if self.endpoint.is_caller() && pause(&ctx, backoff.delay(), sleep) {
                    break;
                }
            }
        })
    }
}

/// Writes decoded audio into the bridge in blocks of at most [`BLOCK`]
/// frames; a block that does not fit (the sender ran ahead by more than
/// the bridge can absorb) is dropped and counted.
struct Feed {
    writer: BridgeWriter,
    channels: usize,
    status: Arc<SrtLinkStatus>,
}

/// Frames per write into the bridge: the reader's fill estimate counts at
/// most one block as "in flight", so smaller blocks measure it finer.
const BLOCK: usize = 1024;

impl Feed {
    fn push(&mut self, samples: &[f32]) {
        for block in samples.chunks(BLOCK * self.channels) {
            let frames = (block.len() / self.channels) as u64;
            if !self.writer.push(&block[..block.len() / self.channels * self.channels], now_ns()) {
                self.status.jitter(frames, 0);
                tracing::debug!(
                    frames,
                    "SRT input ahead of the flow clock by more than its buffer: block dropped"
                );
            }
        }
    }
}
