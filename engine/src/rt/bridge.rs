//! A bridge between two clock domains: one audio thread writes interleaved
//! frames at its clock's pace, another reads them at its own, through an
//! adaptive resampler (rubato's `Async`) whose ratio a PI controller steers
//! from the ring's fill. The ring therefore neither overflows nor runs dry,
//! and the controller's integral is an estimate of the clocks' offset in ppm.
//!
//! - [`bridge`] (control thread only) allocates everything: the ring, the
//!   resampler, its buffers.
//! - [`BridgeWriter::push`] and [`BridgeReader::pull`] are realtime-safe: no
//!   allocation, no locks, no syscalls. No sample is dropped or repeated
//!   outside the resampler unless the ring overflows or runs dry, and both are
//!   counted.
//!
//! Fill is measured in continuous time: the frames in the ring plus the
//! frames the writer's clock has produced since its last push (elapsed time
//! × nominal rate, at most one writer block). Sampling the raw ring level
//! instead sees a sawtooth of one writer period that beats at the clock
//! offset (a 53 s cycle at 100 ppm, 256-frame periods), which a slow loop
//! cannot filter and turns into a limit cycle.
//!
//! Control law, per reader period of `P` frames: the fill error `e` (frames,
//! low-pass filtered over ~64 periods) drives `u = kp·e + ki·Σe`, and the resampler runs at
//! `out/in = 1 / (1 + u)`; `ki·Σe` converges to the writer's clock offset.
//! Gains put both closed-loop poles at a time constant of [`LOOP_PERIODS`]
//! periods (critically damped).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Adjustable, Async, FixedAsync, PolynomialDegree, Resampler, SincInterpolationParameters, WindowFunction,
};

use crate::rt::stats::FlowCounters;

/// Closed-loop time constant of the fill controller, in reader periods.
pub const LOOP_PERIODS: f64 = 2_000.0;
/// Periods over which the measured fill is averaged.
const FILL_SMOOTHING_PERIODS: f64 = 64.0;
/// Largest clock offset the bridge follows (±0.2 %).
const MAX_OFFSET: f64 = 2e-3;

/// How the bridge interpolates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeQuality {
    /// Band-limited sinc interpolation (128 taps): for program audio.
    Sinc,
    /// Cubic polynomial interpolation: cheap, slightly aliasing.
    Cubic,
}

/// A bridge that cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The resampler refused the parameters (channels or period of zero).
    #[error("cannot build the clock-domain bridge's resampler: {0}")]
    Resampler(#[from] rubato::ResamplerConstructionError),
}

/// The writing end, on the first clock domain's audio thread.
pub struct BridgeWriter {
    ring: rtrb::Producer<f32>,
    channels: usize,
    /// When the last block was pushed (monotonic ns), for the reader.
    last_push: Arc<AtomicU64>,
    /// Frames in the last block.
    last_block: Arc<AtomicU64>,
    /// Frames that did not fit (ring full).
    dropped: u64,
}

impl std::fmt::Debug for BridgeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeWriter")
            .field("channels", &self.channels)
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl BridgeWriter {
    /// Pushes interleaved frames at monotonic time `now_ns` (normally
    /// [`crate::rt::clock::now_ns`]); when the ring lacks room the whole
    /// block is dropped and counted. Realtime-safe.
    pub fn push(&mut self, interleaved: &[f32], now_ns: u64) -> bool {
        let frames = interleaved.len() / self.channels;
        let Ok(mut chunk) = self.ring.write_chunk(frames * self.channels) else {
            self.dropped += frames as u64;
            return false;
        };
        let (a, b) = chunk.as_mut_slices();
        let (head, tail) = interleaved.split_at(a.len());
        a.copy_from_slice(head);
        b.copy_from_slice(&tail[..b.len()]);
        chunk.commit_all();
        self.last_block.store(frames as u64, Relaxed);
        self.last_push.store(now_ns, Release);
        true
    }

    /// Pushes `frames` frames of `channels` planes (channel `c` at
    /// `planes[c * stride..]`), interleaving straight into the ring; when
    /// the ring lacks room the block is dropped and counted. Realtime-safe.
    pub fn push_planes(&mut self, planes: &[f32], stride: usize, frames: usize, now_ns: u64) -> bool {
        if !crate::graph::rt_graph::write_interleaved(&mut self.ring, planes, stride, self.channels, frames) {
            self.dropped += frames as u64;
            return false;
        }
        self.last_block.store(frames as u64, Relaxed);
        self.last_push.store(now_ns, Release);
        true
    }

    /// Channels carried.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// The reading end, on the second clock domain's audio thread.
pub struct BridgeReader {
    ring: rtrb::Consumer<f32>,
    last_push: Arc<AtomicU64>,
    last_block: Arc<AtomicU64>,
    /// Nominal frames per nanosecond.
    frames_per_ns: f64,
    resampler: Async<f32>,
    channels: usize,
    period: usize,
    /// Interleaved input for one resampler call.
    input: Vec<f32>,
    /// Interleaved output of one period.
    output: Vec<f32>,
    target_fill: f64,
    fill: f64,
    integral: f64,
    kp: f64,
    ki: f64,
    offset: f64,
    primed: bool,
    /// Periods the ring could not feed (silence was produced).
    starved: u64,
    /// Input frames consumed by the resampler.
    consumed: u64,
    counters: Option<Arc<FlowCounters>>,
}

impl std::fmt::Debug for BridgeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeReader")
            .field("channels", &self.channels)
            .field("period", &self.period)
            .field("drift_ppm", &self.drift_ppm())
            .field("starved", &self.starved)
            .finish()
    }
}

/// The reading end of a bridge before the reader's period is known: the
/// ring and the writer's timestamps. Turn it into a [`BridgeReader`] on the
/// reading flow's control thread.
pub struct BridgeTail {
    ring: rtrb::Consumer<f32>,
    channels: usize,
    rate: u32,
    last_push: Arc<AtomicU64>,
    last_block: Arc<AtomicU64>,
}

impl std::fmt::Debug for BridgeTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeTail").field("channels", &self.channels).field("rate", &self.rate).finish()
    }
}

/// Builds the ring of a bridge carrying `channels` channels at nominal
/// `rate` Hz, holding `capacity` frames (kept half full once read).
/// Control thread only.
pub fn link(rate: u32, channels: usize, capacity: usize) -> (BridgeWriter, BridgeTail) {
    let (tx, rx) = rtrb::RingBuffer::new(capacity * channels);
    let last_push = Arc::new(AtomicU64::new(0));
    let last_block = Arc::new(AtomicU64::new(0));
    let writer = BridgeWriter {
        ring: tx,
        channels,
        last_push: last_push.clone(),
        last_block: last_block.clone(),
        dropped: 0,
    };
    (writer, BridgeTail { ring: rx, channels, rate, last_push, last_block })
}

impl BridgeTail {
    /// Channels carried.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames the ring holds.
    pub fn capacity(&self) -> usize {
        self.ring.buffer().capacity() / self.channels
    }

    /// The reader, producing `period` frames per call; it publishes its
    /// drift estimate into `counters` when given. Control thread only.
    pub fn reader(
        self,
        period: usize,
        quality: BridgeQuality,
        counters: Option<Arc<FlowCounters>>,
    ) -> Result<BridgeReader, BridgeError> {
        let channels = self.channels;
        let resampler = match quality {
            BridgeQuality::Sinc => Async::new_sinc(
                1.0,
                1.0 + 2.0 * MAX_OFFSET,
                &SincInterpolationParameters::new(128, WindowFunction::BlackmanHarris2),
                period,
                channels,
                FixedAsync::Output,
            )?,
            BridgeQuality::Cubic => Async::new_poly(
                1.0,
                1.0 + 2.0 * MAX_OFFSET,
                PolynomialDegree::Cubic,
                period,
                channels,
                FixedAsync::Output,
            )?,
        };
        if let Some(c) = &counters {
            c.bridged.store(true, Relaxed);
        }
        // Critically damped: kp·P = 2/T, ki·P = 1/T² with T in periods.
        let p = period as f64;
        Ok(BridgeReader {
            target_fill: self.capacity() as f64 / 2.0,
            ring: self.ring,
            last_push: self.last_push,
            last_block: self.last_block,
            frames_per_ns: f64::from(self.rate) / 1e9,
            input: vec![0.0; resampler.input_frames_max() * channels],
            output: vec![0.0; period * channels],
            resampler,
            channels,
            period,
            fill: 0.0,
            integral: 0.0,
            kp: 2.0 / LOOP_PERIODS / p,
            ki: 1.0 / (LOOP_PERIODS * LOOP_PERIODS) / p,
            offset: 0.0,
            primed: false,
            starved: 0,
            consumed: 0,
            counters,
        })
    }
}

/// Builds a bridge for `channels` channels at nominal `rate` Hz on both
/// sides, whose reader produces `period` frames per call; the ring holds
/// `ring_periods` periods (at least 4) and is kept half full. The reader
/// publishes its drift estimate into `counters` when given. Control thread
/// only.
pub fn bridge(
    rate: u32,
    channels: usize,
    period: usize,
    ring_periods: usize,
    quality: BridgeQuality,
    counters: Option<Arc<FlowCounters>>,
) -> Result<(BridgeWriter, BridgeReader), BridgeError> {
    let (writer, tail) = link(rate, channels, ring_periods.max(4) * period);
    Ok((writer, tail.reader(period, quality, counters)?))
}

impl BridgeReader {
    /// Produces one period into `channels` planes of `stride` floats at
    /// monotonic time `now_ns` (same clock as the writer's). Before the ring
    /// first reaches its target fill, and whenever it cannot feed the
    /// resampler, the period is silence (the latter is counted). Returns
    /// false for a silent period. Realtime-safe.
    pub fn pull(&mut self, planes: &mut [f32], stride: usize, now_ns: u64) -> bool {
        let ch = self.channels;
        let pushed_at = self.last_push.load(Acquire);
        let in_ring = (self.ring.slots() / ch) as f64;
        let since = now_ns.saturating_sub(pushed_at) as f64 * self.frames_per_ns;
        let fill = in_ring + since.min(self.last_block.load(Relaxed) as f64);
        if !self.primed {
            if fill < self.target_fill {
                self.silence(planes, stride);
                return false;
            }
            self.primed = true;
            // Hold the level found at priming (the target plus at most one
            // writer block): no initial error for the loop to work off.
            self.target_fill = fill;
            self.fill = fill;
        }
        self.steer(fill);
        let need = self.resampler.input_frames_next();
        let Ok(chunk) = self.ring.read_chunk(need * ch) else {
            self.starved += 1;
            self.silence(planes, stride);
            return false;
        };
        let (a, b) = chunk.as_slices();
        self.input[..a.len()].copy_from_slice(a);
        self.input[a.len()..a.len() + b.len()].copy_from_slice(b);
        let (read, written) = match (
            InterleavedSlice::new(&self.input[..], ch, need),
            InterleavedSlice::new_mut(&mut self.output[..], ch, self.period),
        ) {
            (Ok(input), Ok(mut output)) => {
                self.resampler.process_into_buffer(&input, &mut output, None).unwrap_or((0, 0))
            }
            _ => (0, 0),
        };
        // Only what the resampler took leaves the ring.
        chunk.commit(read.min(need) * ch);
        self.consumed += read.min(need) as u64;
        for (f, frame) in self.output.chunks_exact(ch).take(written).enumerate() {
            for (c, &s) in frame.iter().enumerate() {
                planes[c * stride + f] = s;
            }
        }
        for c in 0..ch {
            planes[c * stride..][written..self.period].fill(0.0);
        }
        true
    }

    /// One controller step from the fill seen before this period's read.
    fn steer(&mut self, fill: f64) {
        self.fill += (fill - self.fill) / FILL_SMOOTHING_PERIODS;
        let error = self.fill - self.target_fill;
        self.integral += error;
        self.offset = (self.ki * self.integral).clamp(-MAX_OFFSET, MAX_OFFSET);
        let u = (self.kp * error + self.offset).clamp(-MAX_OFFSET, MAX_OFFSET);
        // A fuller ring means a faster writer: take more input per output.
        let _ = self.resampler.set_resample_ratio_relative(1.0 / (1.0 + u), true);
        if let Some(c) = &self.counters {
            c.drift_ppb.store((self.offset * 1e9) as i64, Relaxed);
        }
    }

    fn silence(&self, planes: &mut [f32], stride: usize) {
        for c in 0..self.channels {
            planes[c * stride..][..self.period].fill(0.0);
        }
    }

    /// The writer's clock offset against the reader's, in ppm (positive: the
    /// writer runs fast).
    pub fn drift_ppm(&self) -> f64 {
        self.offset * 1e6
    }

    /// Channels carried.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Publishes the drift estimate into `counters` from now on (a rebuilt
    /// flow keeps its counters). Control thread only, before the reader
    /// moves to its audio thread.
    pub fn publish_to(&mut self, counters: Arc<FlowCounters>) {
        counters.bridged.store(true, Relaxed);
        self.counters = Some(counters);
    }

    /// Frames in the ring now.
    pub fn fill_frames(&self) -> usize {
        self.ring.slots() / self.channels
    }

    /// The fill the controller holds, in frames.
    pub fn target_fill(&self) -> usize {
        self.target_fill as usize
    }

    /// Periods the ring could not feed since priming.
    pub fn starved(&self) -> u64 {
        self.starved
    }

    /// Input frames the resampler consumed.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }
}
