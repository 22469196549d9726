//! The [`Processor`] trait and the built-in processors.
//!
//! A processor runs on the audio thread: `process` must be realtime-safe (no
//! allocation, no locks, no syscalls, no logging). Anything it wants to tell
//! the outside world goes through an `rtrb` ring it was given when it was
//! built; the control side reads the other end.

use airlift_ipc::message::{ChannelMeter, Loudness};

use crate::dsp::meter;

pub use super::loudness::LoudnessMeter;

/// Most channels a bus carries.
pub const MAX_CHANNELS: usize = 64;

/// The mixer bus of one period, planar: channel `c` is `channel(c)`.
#[derive(Debug)]
pub struct Bus<'a> {
    planes: &'a mut [f32],
    stride: usize,
    frames: usize,
    channels: usize,
    sample_rate: u32,
}

impl<'a> Bus<'a> {
    /// Wraps `planes` (channel `c` at `planes[c * stride..][..frames]`).
    ///
    /// # Panics
    /// If `planes` is shorter than `channels * stride` or `frames > stride`.
    pub fn new(
        planes: &'a mut [f32],
        stride: usize,
        frames: usize,
        channels: usize,
        sample_rate: u32,
    ) -> Self {
        assert!(frames <= stride && channels * stride <= planes.len());
        Self { planes, stride, frames, channels, sample_rate }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames in this period.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The samples of channel `c`. Realtime-safe.
    pub fn channel(&self, c: usize) -> &[f32] {
        &self.planes[c * self.stride..][..self.frames]
    }

    /// The samples of channel `c`, writable. Realtime-safe.
    pub fn channel_mut(&mut self, c: usize) -> &mut [f32] {
        &mut self.planes[c * self.stride..][..self.frames]
    }
}

/// A step of DSP on a flow's bus, run once per period on the audio thread.
///
/// Implementations allocate everything they need in their constructor (on
/// the control thread). `process` is called on the audio thread and must be
/// realtime-safe: no allocation or freeing, no locks, no syscalls, no
/// logging. The engine's allocation-counting test holds the built-in
/// processors to this; hold yours to it too.
pub trait Processor: Send + 'static {
    /// Processes one period of the bus in place. Realtime-safe by contract.
    fn process(&mut self, bus: &mut Bus<'_>);

    /// Called once after the last period, on the control thread (e.g. to
    /// publish a final reading). Does nothing by default.
    fn finish(&mut self) {}
}

/// A bus gain, ramped over one period whenever it changes (no zipper noise).
#[derive(Debug)]
pub struct BusGain {
    current: f32,
    target: f32,
}

impl BusGain {
    /// A gain of `linear`.
    pub fn new(linear: f32) -> Self {
        Self { current: linear, target: linear }
    }
}

impl Processor for BusGain {
    fn process(&mut self, bus: &mut Bus<'_>) {
        let frames = bus.frames();
        let step = (self.target - self.current) / frames as f32;
        for c in 0..bus.channels() {
            crate::dsp::mix::apply_gain(bus.channel_mut(c), self.current, step);
        }
        self.current = self.target;
    }
}

/// What processors report to the control side. `Copy`, fixed size: it moves
/// through an `rtrb` ring without allocating (hence no boxing of the large
/// variant).
#[derive(Debug, Clone, Copy)]
#[allow(clippy::large_enum_variant)]
pub enum Report {
    /// Peak and RMS per channel over the last report interval.
    Meters {
        /// Channels used in `levels`.
        channels: usize,
        /// Levels per channel.
        levels: [ChannelMeter; MAX_CHANNELS],
    },
    /// EBU R128 loudness.
    Loudness(Loudness),
    /// Silence started (`true`) or ended (`false`).
    Silence(bool),
    /// An ALSA device of the flow had an xrun and recovered.
    Xrun {
        /// The input or output whose device ran.
        node: NodeRef,
        /// Xruns of that device so far.
        total: u64,
    },
    /// An input with backups switched source.
    InputSwitched {
        /// The input, by index.
        input: usize,
        /// The source now playing (0: the primary, then the backups).
        source: usize,
        /// Why.
        reason: crate::graph::failover::SwitchReason,
    },
    /// An ALSA device of the flow failed for good (e.g. unplugged).
    DeviceLost {
        /// The input or output whose device failed.
        node: NodeRef,
        /// alsa-lib's errno.
        errno: i32,
    },
}

/// An input or output of a flow, by index in its spec; `Copy`, so it can
/// travel in a [`Report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRef {
    /// `inputs[.0]`.
    Input(usize),
    /// `outputs[.0]`.
    Output(usize),
}

/// Interval between reports, in milliseconds (about 10 Hz).
pub const REPORT_INTERVAL_MS: u32 = 100;

/// Peak and RMS meters, reported every [`REPORT_INTERVAL_MS`].
#[derive(Debug)]
pub struct Meter {
    peak: [f32; MAX_CHANNELS],
    sum_squares: [f64; MAX_CHANNELS],
    frames: usize,
    interval: usize,
    reports: rtrb::Producer<Report>,
}

impl Meter {
    /// A meter reporting into `reports` at `sample_rate`.
    pub fn new(sample_rate: u32, reports: rtrb::Producer<Report>) -> Self {
        Self {
            peak: [0.0; MAX_CHANNELS],
            sum_squares: [0.0; MAX_CHANNELS],
            frames: 0,
            interval: (sample_rate * REPORT_INTERVAL_MS / 1000) as usize,
            reports,
        }
    }
}

impl Processor for Meter {
    fn process(&mut self, bus: &mut Bus<'_>) {
        let channels = bus.channels().min(MAX_CHANNELS);
        for c in 0..channels {
            let level = meter::level(bus.channel(c));
            self.peak[c] = self.peak[c].max(level.peak);
            self.sum_squares[c] += f64::from(level.sum_squares);
        }
        self.frames += bus.frames();
        if self.frames >= self.interval {
            let mut levels =
                [ChannelMeter { peak_dbfs: f32::NEG_INFINITY, rms_dbfs: f32::NEG_INFINITY }; MAX_CHANNELS];
            for (c, level) in levels.iter_mut().enumerate().take(channels) {
                let rms = (self.sum_squares[c] / self.frames as f64).sqrt() as f32;
                *level =
                    ChannelMeter { peak_dbfs: meter::to_dbfs(self.peak[c]), rms_dbfs: meter::to_dbfs(rms) };
            }
            // A full ring means nobody reads: dropping a report is fine.
            let _ = self.reports.push(Report::Meters { channels, levels });
            self.peak = [0.0; MAX_CHANNELS];
            self.sum_squares = [0.0; MAX_CHANNELS];
            self.frames = 0;
        }
    }
}

/// Reports when the bus stays below a threshold for a hold time, and when it
/// comes back.
#[derive(Debug)]
pub struct SilenceDetector {
    threshold: f32,
    hold_frames: u64,
    quiet_frames: u64,
    silent: bool,
    reports: rtrb::Producer<Report>,
}

impl SilenceDetector {
    /// A detector at `threshold_dbfs` holding for `hold_ms`.
    pub fn new(threshold_dbfs: f32, hold_ms: u32, sample_rate: u32, reports: rtrb::Producer<Report>) -> Self {
        Self {
            threshold: 10f32.powf(threshold_dbfs / 20.0),
            hold_frames: u64::from(hold_ms) * u64::from(sample_rate) / 1000,
            quiet_frames: 0,
            silent: false,
            reports,
        }
    }
}

impl Processor for SilenceDetector {
    fn process(&mut self, bus: &mut Bus<'_>) {
        let mut peak = 0f32;
        for c in 0..bus.channels() {
            peak = peak.max(meter::level(bus.channel(c)).peak);
        }
        if peak < self.threshold {
            self.quiet_frames += bus.frames() as u64;
            if !self.silent && self.quiet_frames >= self.hold_frames {
                self.silent = true;
                let _ = self.reports.push(Report::Silence(true));
            }
        } else {
            self.quiet_frames = 0;
            if self.silent {
                self.silent = false;
                let _ = self.reports.push(Report::Silence(false));
            }
        }
    }
}
