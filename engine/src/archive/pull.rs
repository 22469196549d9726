//! Pull jobs: a remote SRT MPEG-TS stream archived into spool segments
//! without decoding, cut at the first key frame after the target duration
//! (audio-only: at an audio PES). Each job runs on its own thread
//! (`airlift-pull-<job>`) that connects (caller with backoff, or listener),
//! reads, cuts and writes; a no-data watchdog drops a silent connection.
//! A full spool does not stop a job (the segmenter holds the stream, see
//! [`crate::archive::segment`]); junk input is counted and bounded by the
//! segment size and the wall-clock limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlift_ipc::message::{EngineToCtl, FlowState};
use airlift_ipc::spec::PullSpec;
use airlift_ipc::units::Name;

use crate::archive::segment::Segmenter;
use crate::archive::spool::{Spool, SpoolError, SpoolEvents};
use crate::net::link::{self as srt_link, Backoff, SrtEndpoint, log_failure, pause};
use crate::rt::worker::{Worker, WorkerContext};
use crate::sys::srt::{SRT_PAYLOAD, SrtError, SrtSocket};

/// A pull job that cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// `source` cannot be used (a listener port that is busy).
    #[error("pull {job}: source: {source}")]
    Source {
        /// The job.
        job: Name,
        /// The cause.
        source: SrtError,
    },
    /// The job's thread cannot start: the system is out of resources.
    #[error("pull {job}: cannot start its thread: {source}")]
    Thread {
        /// The job.
        job: Name,
        /// The cause.
        source: std::io::Error,
    },
}

/// Live counters of one pull job, shared with its thread.
#[derive(Debug, Default)]
pub struct PullStatus {
    /// Bytes received.
    pub bytes: AtomicU64,
    /// TS packets read.
    pub packets: AtomicU64,
    /// Continuity-counter errors in the source.
    pub cc_errors: AtomicU64,
    /// Packets that did not parse.
    pub garbage: AtomicU64,
    /// Bytes that did not parse as TS (outside packets or in packets that
    /// did not parse).
    pub junk_bytes: AtomicU64,
    /// Largest PCR jitter, microseconds.
    pub pcr_jitter_us: AtomicU64,
    /// Segments closed.
    pub segments: AtomicU64,
    /// Cuts forced by the maximum segment size.
    pub forced_cuts: AtomicU64,
    /// Connections made.
    pub connects: AtomicU64,
    /// Milliseconds since the job started at the last key frame (0: none).
    pub last_key_ms: AtomicU64,
    /// Received bits per second over the last second.
    pub bitrate_bps: AtomicU64,
    started: Mutex<Option<Instant>>,
    state: Mutex<Option<FlowState>>,
}

impl PullStatus {
    /// The job's state.
    pub fn state(&self) -> FlowState {
        self.state.lock().ok().and_then(|s| s.clone()).unwrap_or(FlowState::Running)
    }

    /// Milliseconds since the last key frame, if one was seen.
    pub fn since_key_ms(&self) -> Option<u64> {
        let at = self.last_key_ms.load(Ordering::Relaxed);
        let started = self.started.lock().ok().and_then(|s| *s)?;
        (at > 0).then(|| (started.elapsed().as_millis() as u64).saturating_sub(at))
    }
}

/// A running pull job. Control thread only.
#[derive(Debug)]
pub struct PullJob {
    spec: PullSpec,
    worker: Option<Worker>,
    status: Arc<PullStatus>,
}

impl PullJob {
    /// Starts `spec`: binds a listener port now (a busy port fails here),
    /// then connects, reads and segments on its own thread. Segment and
    /// state events go to `events`. Control thread only.
    pub fn start(spec: &PullSpec, spool: &Spool, events: SpoolEvents) -> Result<Self, PullError> {
        let endpoint = SrtEndpoint::new(&spec.source)
            .map_err(|source| PullError::Source { job: spec.name.clone(), source })?;
        let status = Arc::new(PullStatus::default());
        if let Ok(mut s) = status.started.lock() {
            *s = Some(Instant::now());
        }
        let thread_status = status.clone();
        let thread_spec = spec.clone();
        let spool = spool.clone();
        let worker = Worker::spawn(
            format!("airlift-pull-{}", spec.name),
            Duration::from_millis(100),
            move |ctx: WorkerContext| run(&ctx, &thread_spec, &endpoint, &spool, &events, &thread_status),
        )
        .map_err(|source| PullError::Thread { job: spec.name.clone(), source })?;
        Ok(Self { spec: spec.clone(), worker: Some(worker), status })
    }

    /// The job's spec.
    pub fn spec(&self) -> &PullSpec {
        &self.spec
    }

    /// Its live counters.
    pub fn status(&self) -> &PullStatus {
        &self.status
    }

    /// Stops the job, closing its open segment. Control thread only (joins).
    pub fn stop(mut self) {
        if let Some(w) = self.worker.take() {
            w.finish();
        }
    }
}

impl Drop for PullJob {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            w.finish();
        }
    }
}

fn set_state(status: &PullStatus, events: &SpoolEvents, job: &Name, state: FlowState) {
    if let Ok(mut s) = status.state.lock() {
        if s.as_ref() == Some(&state) {
            return;
        }
        *s = Some(state.clone());
    }
    events.push(EngineToCtl::PullState { job: job.clone(), state });
}

fn run(
    ctx: &WorkerContext,
    spec: &PullSpec,
    endpoint: &SrtEndpoint,
    spool: &Spool,
    events: &SpoolEvents,
    status: &PullStatus,
) {
    let job = &spec.name;
    let mut segmenter = match Segmenter::open(spool, &spec.segments, events.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(job = %job, "pull job failed: {e}");
            set_state(status, events, job, FlowState::Failed { reason: e.to_string() });
            return;
        }
    };
    set_state(status, events, job, FlowState::Running);
    let options = srt_link::options(&spec.source);
    let mut backoff = Backoff::default();
    let started = Instant::now();
    let watchdog = Duration::from_secs(u64::from(spec.no_data_timeout_s.max(1)));
    while !ctx.stopping() {
        let socket = match endpoint.connect(&options, Duration::from_millis(200)) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                let delay = backoff.delay();
                log_failure(job.as_str(), &e, delay);
                // Nothing is archived while the source cannot be reached:
                // say so (once; the reason text stays the same).
                let reason = "source unreachable; reconnecting".to_string();
                set_state(status, events, job, FlowState::Failed { reason });
                if pause(ctx, delay, |d| {
                    std::thread::sleep(d);
                    true
                }) {
                    break;
                }
                continue;
            }
        };
        backoff.reset();
        set_state(status, events, job, FlowState::Running);
        status.connects.fetch_add(1, Ordering::Relaxed);
        tracing::info!(job = %job, peer = socket.peer(), "pull connected");
        let outcome = read_until_gone(ctx, job, &socket, &mut segmenter, status, started, watchdog);
        drop(socket);
        // A segment cut by a lost connection is marked truncated.
        let closed = segmenter.finish(!matches!(outcome, Outcome::Stopped));
        publish(&segmenter, status);
        let failure = match (&outcome, closed) {
            (Outcome::Failed(reason), _) => Some(reason.clone()),
            // A spool that still refuses writes cost what was held (logged
            // and counted); the job goes on with the next connection.
            (_, Err(SpoolError::Full { .. })) => None,
            (_, Err(e)) => Some(e.to_string()),
            _ => None,
        };
        if let Some(reason) = failure {
            tracing::error!(job = %job, "pull job failed: {reason}");
            set_state(status, events, job, FlowState::Failed { reason });
            return;
        }
        if matches!(outcome, Outcome::Stopped) {
            break;
        }
        tracing::warn!(job = %job, "pull source lost; reconnecting");
        set_state(status, events, job, FlowState::Failed { reason: "source lost; reconnecting".into() });
        if endpoint.is_caller()
            && pause(ctx, backoff.delay(), |d| {
                std::thread::sleep(d);
                true
            })
        {
            break;
        }
    }
    if let Err(e) = segmenter.finish(false) {
        set_state(status, events, job, FlowState::Failed { reason: e.to_string() });
        return;
    }
    publish(&segmenter, status);
    set_state(status, events, job, FlowState::Stopped);
}

enum Outcome {
    Stopped,
    Gone,
    Failed(String),
}

fn publish(segmenter: &Segmenter, status: &PullStatus) {
    let r = segmenter.cutter().reader.stats();
    status.packets.store(r.packets, Ordering::Relaxed);
    status.cc_errors.store(r.cc_errors, Ordering::Relaxed);
    status.garbage.store(r.garbage, Ordering::Relaxed);
    status.junk_bytes.store(segmenter.junk_bytes(), Ordering::Relaxed);
    status.pcr_jitter_us.store(r.pcr_jitter_us, Ordering::Relaxed);
    status.forced_cuts.store(segmenter.cutter().forced_cuts(), Ordering::Relaxed);
    status.segments.store(segmenter.closed(), Ordering::Relaxed);
}

fn read_until_gone(
    ctx: &WorkerContext,
    job: &Name,
    socket: &SrtSocket,
    segmenter: &mut Segmenter,
    status: &PullStatus,
    started: Instant,
    watchdog: Duration,
) -> Outcome {
    let mut buf = [0u8; SRT_PAYLOAD + 188];
    let mut last = Instant::now();
    let mut second = Instant::now();
    let mut second_bytes = 0u64;
    let mut keys = segmenter.cutter().reader.stats().keys;
    loop {
        if ctx.stopping() {
            return Outcome::Stopped;
        }
        match socket.recv(&mut buf) {
            Ok(Some(n)) => {
                last = Instant::now();
                let now_us = started.elapsed().as_micros() as u64;
                status.bytes.fetch_add(n as u64, Ordering::Relaxed);
                second_bytes += n as u64;
                if let Err(e) = segmenter.push(&buf[..n], now_us) {
                    return Outcome::Failed(e.to_string());
                }
                let k = segmenter.cutter().reader.stats().keys;
                if k != keys {
                    keys = k;
                    status.last_key_ms.store((now_us / 1000).max(1), Ordering::Relaxed);
                }
            }
            Ok(None) => {
                if last.elapsed() >= watchdog {
                    tracing::warn!(job = %job, seconds = watchdog.as_secs(), "no data from the pull source: dropping the connection");
                    return Outcome::Gone;
                }
            }
            Err(e) => {
                tracing::warn!(job = %job, "pull receive failed: {e}");
                return Outcome::Gone;
            }
        }
        if second.elapsed() >= Duration::from_secs(1) {
            status.bitrate_bps.store(
                second_bytes * 8 * 1000 / second.elapsed().as_millis().max(1) as u64,
                Ordering::Relaxed,
            );
            second = Instant::now();
            second_bytes = 0;
            publish(segmenter, status);
        }
    }
}
