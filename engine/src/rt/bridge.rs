//! A bridge between two clock domains: one audio thread writes interleaved
//! frames at its clock's pace, another reads them at its own, through an
//! adaptive resampler (rubato's `Async`) whose ratio a PI controller steers
//! from the ring's fill. The ring therefore neither overflows nor runs dry,
//! and the controller's integral is an estimate of the clocks' offset in ppm
//! (for a network stream, once it has played 30 s, the writer's measured
//! mean pace since it settled, which does not follow the sender's wander).
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
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Adjustable, Async, FixedAsync, PolynomialDegree, Resampler, SincInterpolationParameters, WindowFunction,
};

use crate::rt::link_status::SrtLinkStatus;
use crate::rt::stats::FlowCounters;

/// Closed-loop time constant of the fill controller, in reader periods.
pub const LOOP_PERIODS: f64 = 2_000.0;
/// Periods over which the measured fill is averaged.
const FILL_SMOOTHING_PERIODS: f64 = 64.0;
/// Largest clock offset a flow-to-flow bridge follows (±0.2 %).
const MAX_OFFSET: f64 = 2e-3;
/// Largest clock offset a network input follows (±1 %): encoders drift
/// 10–100 ppm, but a sender that paces by its own wall clock (`ffmpeg
/// -readrate 0.997` on a busy machine measured 0.9958) goes much further.
const NETWORK_MAX_OFFSET: f64 = 1e-2;
/// Closed-loop time constant of a network input's controller, in seconds:
/// slow enough that the arrival jitter left after smoothing moves the
/// ratio by far less than a cent.
const NETWORK_LOOP_SECONDS: f64 = 10.0;
/// Seconds over which a network input's fill is averaged: a decoder
/// delivers a burst of frames per SRT packet (82 ms of TS at 128 kbit/s),
/// a sawtooth the loop must not follow.
const NETWORK_SMOOTHING_SECONDS: f64 = 1.0;
/// Seconds after priming over which a network input's mean fill is taken
/// as its target.
const NETWORK_SETTLE_SECONDS: f64 = 2.0;

/// Seconds a network stream plays after settling before its drift estimate
/// is its measured mean pace rather than the controller's integral.
const MEASURE_MIN_SECONDS: f64 = 30.0;

/// How a reader's controller is tuned, and what it does when its ring runs dry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BridgeTuning {
    /// Closed-loop time constant, in reader periods.
    pub loop_periods: f64,
    /// Periods over which the measured fill is averaged.
    pub smoothing_periods: f64,
    /// Largest clock offset followed (fraction, e.g. 2e-3).
    pub max_offset: f64,
    /// After the ring ran dry, buffer up to the target fill again before
    /// playing (a network input); otherwise play whatever arrives (a link
    /// between two flows, whose writer never pauses).
    pub rebuffer: bool,
    /// Periods after priming during which the reader only measures the
    /// fill, then holds its mean as the target: a bursty writer's mean
    /// fill sits below the level seen at priming by half a burst, an error
    /// the loop would otherwise "correct" with an audible change of pitch.
    pub settle_periods: usize,
}

impl BridgeTuning {
    /// A link between two flows on unrelated clocks.
    pub const LINK: BridgeTuning = BridgeTuning {
        loop_periods: LOOP_PERIODS,
        smoothing_periods: FILL_SMOOTHING_PERIODS,
        max_offset: MAX_OFFSET,
        rebuffer: false,
        settle_periods: 0,
    };

    /// A network input (an SRT receiver) read `period` frames at a time at
    /// `rate` Hz: a time constant of a few seconds, a wider offset range,
    /// and a re-buffer after every dry spell.
    pub fn network(period: usize, rate: u32) -> BridgeTuning {
        let periods_per_second = f64::from(rate) / period.max(1) as f64;
        BridgeTuning {
            loop_periods: (NETWORK_LOOP_SECONDS * periods_per_second).max(50.0),
            smoothing_periods: (NETWORK_SMOOTHING_SECONDS * periods_per_second).max(4.0),
            max_offset: NETWORK_MAX_OFFSET,
            rebuffer: true,
            settle_periods: (NETWORK_SETTLE_SECONDS * periods_per_second).ceil() as usize,
        }
    }
}

/// Where a reader publishes its drift estimate and the frames it inserted.
#[derive(Debug, Clone)]
pub enum DriftSink {
    /// A flow's counters (a link between flows: `airlift_flow_drift_ppm`).
    Flow(Arc<FlowCounters>),
    /// An SRT input's status (`airlift_input_drift_ppm`, inserted frames).
    Input(Arc<SrtLinkStatus>),
}

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
    /// Set while the writer has nothing to send (e.g. its connection is
    /// down), so the reader's wait for it is not counted as a dropout.
    idle: Arc<AtomicBool>,
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
        self.idle.store(false, Relaxed);
        true
    }

    /// Tells the reader the writer has nothing to send for now (its source
    /// is gone); the next push ends that. The reader plays what the ring
    /// holds, then waits for the ring to fill again without counting the
    /// wait as inserted frames.
    pub fn pause(&mut self) {
        self.idle.store(true, Relaxed);
    }

    /// Pushes `frames` frames of `channels` planes (channel `c` at
    /// `planes[c * stride..]`), interleaving straight into the ring; when
    /// the ring lacks room the block is dropped and counted. Realtime-safe.
    pub fn push_planes(&mut self, planes: &[f32], stride: usize, frames: usize, now_ns: u64) -> bool {
        if !crate::rt::ring::write_interleaved(&mut self.ring, planes, stride, self.channels, frames) {
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
    idle: Arc<AtomicBool>,
    tuning: BridgeTuning,
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
    /// The fill the reader buffers up to before playing.
    prime_fill: f64,
    fill: f64,
    integral: f64,
    kp: f64,
    ki: f64,
    offset: f64,
    primed: bool,
    /// Whether the reader has played anything yet.
    ever_primed: bool,
    /// Periods left in the settling window, and the fills summed so far.
    settle: (usize, f64, usize),
    /// Periods the ring could not feed (silence was produced).
    starved: u64,
    /// Frames of silence played while the writer was expected to deliver.
    inserted: u64,
    /// Input frames consumed by the resampler.
    consumed: u64,
    /// Frames produced from input (not silence).
    produced: u64,
    /// Network readers: the counts (consumed, produced) and the smoothed
    /// fill when the current stream settled, from which the writer's mean
    /// pace since then is measured.
    measured_from: Option<(u64, u64, f64)>,
    /// The published drift estimate (fraction).
    estimate: f64,
    sink: Option<DriftSink>,
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
    idle: Arc<AtomicBool>,
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
    let idle = Arc::new(AtomicBool::new(false));
    let writer = BridgeWriter {
        ring: tx,
        channels,
        last_push: last_push.clone(),
        last_block: last_block.clone(),
        dropped: 0,
        idle: idle.clone(),
    };
    (writer, BridgeTail { ring: rx, channels, rate, last_push, last_block, idle })
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
        self.tuned_reader(period, quality, BridgeTuning::LINK, counters.map(DriftSink::Flow))
    }

    /// The reader with its controller tuned by `tuning`, publishing into
    /// `sink` when given. Control thread only.
    pub fn tuned_reader(
        self,
        period: usize,
        quality: BridgeQuality,
        tuning: BridgeTuning,
        sink: Option<DriftSink>,
    ) -> Result<BridgeReader, BridgeError> {
        let channels = self.channels;
        let max_offset = tuning.max_offset.clamp(1e-5, 0.05);
        let resampler = match quality {
            BridgeQuality::Sinc => Async::new_sinc(
                1.0,
                1.0 + 2.0 * max_offset,
                &SincInterpolationParameters::new(128, WindowFunction::BlackmanHarris2),
                period,
                channels,
                FixedAsync::Output,
            )?,
            BridgeQuality::Cubic => Async::new_poly(
                1.0,
                1.0 + 2.0 * max_offset,
                PolynomialDegree::Cubic,
                period,
                channels,
                FixedAsync::Output,
            )?,
        };
        if let Some(DriftSink::Flow(c)) = &sink {
            c.bridged.store(true, Relaxed);
        }
        // Critically damped: kp·P = 2/T, ki·P = 1/T² with T in periods.
        let (p, t) = (period as f64, tuning.loop_periods.max(1.0));
        Ok(BridgeReader {
            target_fill: self.capacity() as f64 / 2.0,
            prime_fill: self.capacity() as f64 / 2.0,
            ring: self.ring,
            last_push: self.last_push,
            last_block: self.last_block,
            idle: self.idle,
            tuning: BridgeTuning { max_offset, ..tuning },
            frames_per_ns: f64::from(self.rate) / 1e9,
            input: vec![0.0; resampler.input_frames_max() * channels],
            output: vec![0.0; period * channels],
            resampler,
            channels,
            period,
            fill: 0.0,
            integral: 0.0,
            kp: 2.0 / t / p,
            ki: 1.0 / (t * t) / p,
            offset: 0.0,
            primed: false,
            ever_primed: false,
            settle: (0, 0.0, 0),
            starved: 0,
            inserted: 0,
            consumed: 0,
            produced: 0,
            measured_from: None,
            estimate: 0.0,
            sink,
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
            if fill < self.prime_fill {
                if self.ever_primed && !self.idle.load(Relaxed) {
                    self.count_inserted();
                }
                self.silence(planes, stride);
                return false;
            }
            self.primed = true;
            self.ever_primed = true;
            if self.tuning.rebuffer {
                // A network writer arrives in bursts: start at the target,
                // skipping what a burst brought beyond it (nothing has
                // played yet, or the stream was broken anyway).
                let excess = (fill - self.prime_fill).max(0.0) as usize;
                let skip = excess.min(in_ring as usize) * ch;
                if let Ok(chunk) = self.ring.read_chunk(skip) {
                    chunk.commit_all();
                }
                self.target_fill = self.prime_fill;
                self.fill = fill - (skip / ch) as f64;
                // A new stream (or one broken by a dry spell): measure its
                // pace afresh once it has settled.
                self.measured_from = None;
                self.settle = (self.tuning.settle_periods, 0.0, 0);
                let _ = self.resampler.set_resample_ratio_relative(1.0 / (1.0 + self.offset), true);
            } else {
                // Hold the level found at priming (the target plus at most
                // one writer block): no initial error for the loop to work off.
                self.target_fill = fill;
                self.fill = fill;
            }
        }
        if self.settle.0 > 0 {
            // Measure only; the ratio stays at the drift estimate.
            let (left, sum, n) = self.settle;
            let (sum, n) = (sum + fill, n + 1);
            self.settle = (left - 1, sum, n);
            if left == 1 {
                self.target_fill = sum / n as f64;
                self.fill = self.target_fill;
                if self.tuning.rebuffer {
                    self.measured_from = Some((self.consumed, self.produced, self.fill));
                }
            }
            self.publish();
        } else {
            self.steer(fill);
        }
        let need = self.resampler.input_frames_next();
        let Ok(chunk) = self.ring.read_chunk(need * ch) else {
            self.starved += 1;
            if self.tuning.rebuffer {
                // Buffer up to the target again rather than play the
                // stream out in scraps; the drift estimate is kept (the
                // sender's clock has not changed).
                self.primed = false;
                if !self.idle.load(Relaxed) {
                    self.count_inserted();
                }
            }
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
        self.produced += written as u64;
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
        let max = self.tuning.max_offset;
        self.fill += (fill - self.fill) / self.tuning.smoothing_periods.max(1.0);
        let error = self.fill - self.target_fill;
        // The integral stops where the offset saturates (no wind-up).
        self.integral = (self.integral + error).clamp(-max / self.ki, max / self.ki);
        self.offset = (self.ki * self.integral).clamp(-max, max);
        let u = (self.kp * error + self.offset).clamp(-max, max);
        // A fuller ring means a faster writer: take more input per output.
        let _ = self.resampler.set_resample_ratio_relative(1.0 / (1.0 + u), true);
        self.publish();
    }

    /// Publishes the drift estimate into the sink.
    ///
    /// The estimate is the controller's integral, except for a network
    /// reader whose stream has played [`MEASURE_MIN_SECONDS`] since it
    /// settled: then it is the writer's mean pace over that time, measured
    /// from the frames the resampler consumed and the change of the smoothed
    /// fill, against the frames it produced. The integral follows the
    /// sender's pace over the loop's time constant, and a network sender's
    /// pace wanders by tens of ppm over tens of seconds; the mean does not,
    /// and its error shrinks as the stream plays (a few ms of fill over
    /// minutes).
    fn publish(&mut self) {
        self.estimate = match self.measured_from {
            Some((c0, p0, f0))
                if (self.produced - p0) as f64 >= MEASURE_MIN_SECONDS * self.frames_per_ns * 1e9 =>
            {
                let written = (self.consumed - c0) as f64 + (self.fill - f0);
                (written / (self.produced - p0) as f64 - 1.0)
                    .clamp(-self.tuning.max_offset, self.tuning.max_offset)
            }
            _ => self.offset,
        };
        match &self.sink {
            Some(DriftSink::Flow(c)) => c.drift_ppb.store((self.estimate * 1e9) as i64, Relaxed),
            Some(DriftSink::Input(s)) => s.drift((self.estimate * 1e9) as i64),
            None => {}
        }
    }

    /// Counts one period of silence played in place of expected audio.
    fn count_inserted(&mut self) {
        self.inserted += self.period as u64;
        if let Some(DriftSink::Input(s)) = &self.sink {
            s.jitter(0, self.period as u64);
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
        self.estimate * 1e6
    }

    /// Channels carried.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Publishes the drift estimate into `counters` from now on (a rebuilt
    /// flow keeps its counters). Control thread only, before the reader
    /// moves to its audio thread.
    pub fn publish_to(&mut self, counters: Arc<FlowCounters>) {
        if matches!(self.sink, Some(DriftSink::Input(_))) {
            return;
        }
        counters.bridged.store(true, Relaxed);
        self.sink = Some(DriftSink::Flow(counters));
    }

    /// Frames of silence played while the writer was expected to deliver
    /// (dry spells and the re-buffering after them), since the start.
    pub fn inserted(&self) -> u64 {
        self.inserted
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_reader_rebuffers_after_a_dry_spell_and_counts_what_it_inserted() {
        let (period, rate) = (64, 48_000);
        let status = SrtLinkStatus::new("airlift-srt-rx-test");
        let (mut writer, tail) = link(rate, 1, 1024);
        let mut reader = tail
            .tuned_reader(
                period,
                BridgeQuality::Cubic,
                BridgeTuning::network(period, rate),
                Some(DriftSink::Input(status.clone())),
            )
            .unwrap();
        let mut out = vec![0.0; period];
        // Nothing yet: silence, and nothing counted (it never played).
        assert!(!reader.pull(&mut out, period, 0));
        assert_eq!(status.snapshot().inserted_frames, 0);
        assert_eq!(status.snapshot().drift_ppm, None);
        // A burst beyond the target: it starts at the target (512 frames).
        writer.push(&[0.5; 900], 0);
        assert!(reader.pull(&mut out, period, 0));
        assert!(reader.fill_frames() <= 512, "{} frames left", reader.fill_frames());
        assert!(status.snapshot().drift_ppm.is_some());
        let mut played = 1;
        while reader.pull(&mut out, period, 0) {
            played += 1;
            assert!(played < 20, "the ring never ran dry");
        }
        // Dry: that period and every one while it buffers again count.
        assert_eq!(status.snapshot().inserted_frames, period as u64);
        writer.push(&[0.5; 100], 0);
        assert!(!reader.pull(&mut out, period, 0), "buffering up to the target again");
        assert_eq!(status.snapshot().inserted_frames, 2 * period as u64);
        // The writer has nothing to send (its connection is down): waiting
        // for it is not a dropout.
        writer.pause();
        assert!(!reader.pull(&mut out, period, 0));
        assert_eq!(status.snapshot().inserted_frames, 2 * period as u64);
        writer.push(&[0.5; 500], 0);
        assert!(reader.pull(&mut out, period, 0), "primed again");
        assert_eq!(reader.inserted(), 2 * period as u64);
    }

    /// The drift estimate after `seconds` of a simulated network sender
    /// `ppm` off its nominal rate, delivering 1024-frame blocks up to 5 ms
    /// late at random, its pace wandering by ±0.5 ms over 40 s (±78 ppm
    /// for seconds at a time, as ffmpeg's sleep-paced `-readrate` does),
    /// with the reader's dropped and inserted frames.
    fn simulated(ppm: f64, seconds: u64) -> (f64, u64, u64) {
        let (period, rate) = (256usize, 48_000u32);
        let status = SrtLinkStatus::new("sim");
        let (mut writer, tail) = link(rate, 1, 19_200);
        let mut reader = tail
            .tuned_reader(
                period,
                BridgeQuality::Cubic,
                BridgeTuning::network(period, rate),
                Some(DriftSink::Input(status.clone())),
            )
            .unwrap();
        let block = vec![0.25f32; 1024];
        let mut out = vec![0.0; period];
        let block_ns = 1024.0 / (f64::from(rate) * (1.0 + ppm * 1e-6)) * 1e9;
        let period_ns = period as f64 / f64::from(rate) * 1e9;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut arrival = |k: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let late = (seed >> 33) as f64 / (1u64 << 31) as f64 * 5e6;
            let sent = k as f64 * block_ns;
            sent + 0.5e6 * (sent / 40e9 * std::f64::consts::TAU).sin() + late + 10e6
        };
        let (mut k, mut next_at) = (0u64, arrival(0));
        for p in 0..seconds * u64::from(rate) / period as u64 {
            let now = p as f64 * period_ns;
            while next_at <= now {
                writer.push(&block, next_at as u64);
                k += 1;
                next_at = arrival(k).max(next_at);
            }
            reader.pull(&mut out, period, now as u64);
        }
        let published = status.snapshot().drift_ppm.unwrap_or(f64::NAN);
        assert!((published - reader.drift_ppm()).abs() < 0.01, "{published} vs {}", reader.drift_ppm());
        (reader.drift_ppm(), writer.dropped(), reader.inserted())
    }

    #[test]
    fn a_network_senders_mean_pace_is_the_estimate_not_its_wander() {
        for ppm in [100.0, -100.0] {
            let (estimate, dropped, inserted) = simulated(ppm, 600);
            assert!((estimate - ppm).abs() <= 10.0, "{ppm} ppm: estimate {estimate:.1}");
            assert_eq!((dropped, inserted), (0, 0), "{ppm} ppm");
        }
        for ppm in [3000.0, -3000.0] {
            let (estimate, dropped, inserted) = simulated(ppm, 90);
            assert!((estimate - ppm).abs() <= ppm.abs() * 0.1, "{ppm} ppm: estimate {estimate:.1}");
            assert_eq!((dropped, inserted), (0, 0), "{ppm} ppm");
        }
    }
}
