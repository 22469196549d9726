//! The encoder consumer: bus ring → [`Encoder`](crate::sys::ffmpeg::Encoder) → a muxer: [`TsMuxer`](crate::sys::ffmpeg::TsMuxer) into
//! a TS file, the segmenter or an SRT sender thread that owns the connection
//! and its reconnects; or a [`FileMuxer`](crate::sys::ffmpeg::FileMuxer)
//! recording any container FFmpeg writes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use crate::rt::worker::{Worker, WorkerContext};
use crate::sys::ffmpeg::{AudioEncoder, MediaError, Muxer, TsOutput};
use crate::workers::recording::RecordingNotice;
use std::sync::Arc;

use crate::net::link::{Backoff, SrtEndpoint, SrtLinkStatus, log_failure, pause};
use crate::sys::srt::{SRT_PAYLOAD, SrtOptions, SrtSocket};

/// How often an encoder worker hands what its muxer holds to the kernel.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Starts the encoder thread `name`, reading the bus from `ring` until the
/// flow stops, then flushing the encoder and writing the trailer.
/// Control thread only.
pub fn spawn_encoder(
    name: String,
    cadence: Duration,
    mut ring: rtrb::Consumer<f32>,
    mut encoder: impl AudioEncoder + 'static,
    mut mux: impl Muxer + 'static,
    notice: Option<RecordingNotice>,
    mut start: Option<Arc<std::sync::atomic::AtomicU64>>,
) -> std::io::Result<Worker> {
    Worker::spawn(name, cadence, move |ctx: WorkerContext| {
        let mut failed: Option<MediaError> = None;
        let mut samples = 0u64;
        let mut checkpoint = Instant::now();
        loop {
            let stopping = ctx.stopping();
            let n = ring.slots();
            if n > 0 {
                if let Ok(chunk) = ring.read_chunk(n) {
                    let (a, b) = chunk.as_slices();
                    // The first samples: the graph published where they
                    // sit on the flow's timeline before pushing them.
                    if let Some(marker) = start.take() {
                        let at = marker.load(std::sync::atomic::Ordering::Acquire);
                        if at != u64::MAX {
                            encoder.start_at(i64::try_from(at).unwrap_or(0));
                        }
                    }
                    if failed.is_none() {
                        samples += (a.len() + b.len()) as u64;
                        let r = encoder.encode(a, &mut mux).and_then(|()| encoder.encode(b, &mut mux));
                        let r = r.and_then(|()| {
                            if checkpoint.elapsed() < CHECKPOINT_EVERY {
                                return Ok(());
                            }
                            checkpoint = Instant::now();
                            mux.checkpoint()
                        });
                        if let Err(e) = r {
                            tracing::error!(
                                encoder = encoder.name(),
                                "encoding failed, audio is discarded: {e}"
                            );
                            failed = Some(e);
                        }
                    }
                    chunk.commit_all();
                }
            } else if stopping || ring.is_abandoned() {
                break;
            } else {
                ctx.wait();
            }
        }
        if failed.is_none() {
            let r = encoder.finish(&mut mux).and_then(|()| mux.finish());
            match r {
                Ok(()) => {
                    if let Some(notice) = notice {
                        notice.announce(samples);
                    }
                }
                Err(e) => tracing::error!(encoder = encoder.name(), "cannot finish the stream: {e}"),
            }
        }
    })
}

/// A TS file being written.
#[derive(Debug)]
pub struct TsFile {
    writer: BufWriter<File>,
    path: PathBuf,
}

impl TsFile {
    /// Creates a new file for `path` (itself, or a rotation name beside it
    /// when a file is there: see [`crate::workers::recording::create_new`]).
    /// Control thread only.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let (file, path) = crate::workers::recording::create_new(path)?;
        Ok(Self { writer: BufWriter::with_capacity(1 << 16, file), path })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TsOutput for TsFile {
    fn write_ts(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(data)
    }

    fn flush_ts(&mut self) -> std::io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().sync_data().map_err(|e| {
            tracing::error!(file = %self.path.display(), "cannot sync TS file: {e}");
            e
        })
    }
}

/// One SRT message worth of TS.
#[derive(Clone, Copy)]
struct TsChunk {
    len: usize,
    data: [u8; SRT_PAYLOAD],
}

/// The muxer's end of the SRT sender: hands chunks to the sender thread,
/// dropping them (counted) when it falls behind; never blocks the encoder.
#[derive(Debug)]
pub struct SrtTsOutput {
    tx: SyncSender<TsChunk>,
    dropped: u64,
}

impl TsOutput for SrtTsOutput {
    fn write_ts(&mut self, data: &[u8]) -> std::io::Result<()> {
        for piece in data.chunks(SRT_PAYLOAD) {
            let mut chunk = TsChunk { len: piece.len(), data: [0; SRT_PAYLOAD] };
            chunk.data[..piece.len()].copy_from_slice(piece);
            match self.tx.try_send(chunk) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    self.dropped += 1;
                    if self.dropped.is_power_of_two() {
                        tracing::warn!(dropped = self.dropped, "SRT sender behind: TS chunks dropped");
                    }
                }
            }
        }
        Ok(())
    }
}

/// Starts the SRT sender thread `name` and returns the muxer's output for it.
/// The thread connects (caller: with backoff and jitter; listener: accepts
/// the next caller when one leaves), sends what the muxer writes, and
/// discards it while nobody is connected. Control thread only.
pub fn spawn_srt_sender(
    name: String,
    endpoint: SrtEndpoint,
    options: SrtOptions,
    status: Arc<SrtLinkStatus>,
) -> std::io::Result<(Worker, SrtTsOutput)> {
    // About 2 s of TS at 1 Mbit/s.
    let (tx, rx) = sync_channel::<TsChunk>(256);
    let link = name.clone();
    let worker = Worker::spawn(name, Duration::from_millis(50), move |ctx: WorkerContext| {
        run_sender(&ctx, &link, &endpoint, &options, &rx, &status);
    })?;
    Ok((worker, SrtTsOutput { tx, dropped: 0 }))
}

/// Throws away what the muxer sends while nobody listens, waiting up to
/// `wait`. False once the encoder has finished (the stream is over).
fn discard(rx: &Receiver<TsChunk>, wait: Duration) -> bool {
    match rx.recv_timeout(wait) {
        Ok(_) => {
            while rx.try_recv().is_ok() {}
            true
        }
        Err(RecvTimeoutError::Timeout) => true,
        Err(RecvTimeoutError::Disconnected) => false,
    }
}

fn run_sender(
    ctx: &WorkerContext,
    link: &str,
    endpoint: &SrtEndpoint,
    options: &SrtOptions,
    rx: &Receiver<TsChunk>,
    status: &SrtLinkStatus,
) {
    let mut backoff = Backoff::default();
    while !ctx.stopping() {
        let socket = match endpoint.connect(options, Duration::from_millis(100)) {
            Ok(Some(s)) => s,
            Ok(None) => {
                if !discard(rx, Duration::from_millis(1)) {
                    break;
                }
                continue;
            }
            Err(e) => {
                let delay = backoff.delay();
                log_failure(link, &e, delay);
                status.failed(&e);
                if pause(ctx, delay, |d| discard(rx, d)) {
                    break;
                }
                continue;
            }
        };
        backoff.reset();
        tracing::info!(link, peer = socket.peer(), "SRT output connected");
        if let Err(e) = socket.linger(2) {
            tracing::warn!(link, "the stream's tail may be cut at stop: {e}");
        }
        status.connected();
        // Start the new peer on fresh data, not on what queued while waiting.
        while rx.try_recv().is_ok() {}
        let ended = send_until_gone(ctx, link, &socket, rx, status);
        status.disconnected();
        if let Ok(s) = socket.stats() {
            status.record(&s);
            tracing::info!(
                link,
                rtt_ms = s.rtt_ms,
                bandwidth_mbps = s.bandwidth_mbps,
                lost = s.send_loss,
                retransmitted = s.retransmits,
                bytes = s.bytes_sent,
                "SRT output statistics"
            );
        }
        if ended {
            // The receiver holds packets for its latency before it delivers
            // them; give it that time before closing, or it drops the tail.
            std::thread::sleep(Duration::from_millis(u64::from(options.latency_ms.min(2000)) * 2 + 100));
            break;
        }
        tracing::warn!(link, peer = socket.peer(), "SRT output disconnected");
        if endpoint.is_caller() && pause(ctx, backoff.delay(), |d| discard(rx, d)) {
            break;
        }
    }
}

/// Sends until the connection breaks (false) or the flow stops (true, after
/// sending what the encoder flushed).
fn send_until_gone(
    ctx: &WorkerContext,
    link: &str,
    socket: &SrtSocket,
    rx: &Receiver<TsChunk>,
    status: &SrtLinkStatus,
) -> bool {
    let watchdog = Duration::from_secs(2);
    let mut last = Instant::now();
    let mut stats_at = Instant::now();
    let mut warned = false;
    loop {
        if stats_at.elapsed() >= Duration::from_secs(1) {
            stats_at = Instant::now();
            if let Ok(s) = socket.stats() {
                status.record(&s);
            }
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(chunk) => {
                if let Err(e) = socket.send(&chunk.data[..chunk.len]) {
                    tracing::warn!(link, "SRT send failed: {e}");
                    return false;
                }
                last = Instant::now();
                warned = false;
            }
            Err(RecvTimeoutError::Disconnected) => return true,
            Err(RecvTimeoutError::Timeout) => {
                if ctx.stopping() {
                    return true;
                }
                if !warned && last.elapsed() > watchdog {
                    tracing::warn!(link, "no TS from the encoder for 2 s: the SRT link is up but silent");
                    warned = true;
                }
                // A dead peer shows up as a failed send, or here.
                if !socket.is_connected() {
                    return false;
                }
            }
        }
    }
}
