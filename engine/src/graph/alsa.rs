//! ALSA capture and playback through the `alsa` crate (alsa-lib). The only
//! module of the engine that talks to alsa-lib.
//!
//! - [`AlsaDevice::open`] (control thread only) opens and configures a PCM:
//!   interleaved access, the asked format, channels, rate, period size and
//!   period count, exactly, or a typed [`AlsaError`] that lists what exists
//!   or what the device offers.
//! - [`AlsaDevice::capture`] / [`AlsaDevice::playback`] (realtime-safe) move
//!   one period between the device and the graph's planes through a
//!   preallocated byte buffer. They use blocking `readi`/`writei`: the device
//!   clocks the audio thread that calls them.
//! - Xruns (`EPIPE`, `ESTRPIPE`) are recovered with `snd_pcm_recover` (a
//!   playback device is refilled with its silence prefill so the latency stays
//!   what it was); a running device that moves no data for four buffers'
//!   time (at least 100 ms) is restarted the same way, and after three such
//!   stalls in a row counts as lost. Xruns and stalls are counted, reported
//!   on the device's report ring and in the flow's counters; the period goes
//!   on. A device that fails for good
//!   (`ENODEV` after an unplug, `EIO`, …) is marked lost, reported once, and
//!   from then on reads silence and drops writes without touching alsa-lib;
//!   the control side rebuilds the flow when the device is back.
//!
//! Device names in use by this engine are held in a process-wide registry, so
//! a second flow asking for the same PCM gets [`AlsaError::Busy`] naming the
//! holder even for plugin devices the kernel would not refuse.

mod convert;

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use airlift_ipc::spec::{AlsaSpec, SampleFormat};
use alsa::pcm::{Access, Format, HwParams, PCM, State};
use alsa::{Direction, ValueOr};

use crate::graph::processor::{NodeRef, Report};

pub use convert::{bytes_per_sample, decode_into_planes, encode_from_planes};

/// Why an ALSA device cannot be used. Nothing was left open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlsaError {
    /// No PCM of that name; pick one of `available` (from alsa-lib's device
    /// hints) or define it in the ALSA configuration.
    #[error("ALSA device {device:?} not found; PCMs that exist: {}", list(.available))]
    NotFound {
        /// The name asked for.
        device: String,
        /// PCM names alsa-lib knows.
        available: Vec<String>,
    },
    /// The device is open elsewhere; stop the other user (named when it is a
    /// flow of this engine) or choose another device.
    #[error("ALSA device {device:?} is busy{}", holder.as_ref().map(|h| format!(" (used by flow {h})")).unwrap_or_default())]
    Busy {
        /// The device.
        device: String,
        /// The flow of this engine that holds it, if it is one.
        holder: Option<String>,
    },
    /// The device does not take this sample format; use one of `offered`.
    #[error("ALSA device {device:?} does not support format {format}; it offers: {}", list(.offered))]
    FormatUnsupported {
        /// The device.
        device: String,
        /// The format asked for.
        format: String,
        /// Formats the device accepts.
        offered: Vec<String>,
    },
    /// The device does not run at this rate; use a rate in `min..=max`
    /// (the device may still refuse some rates inside that range).
    #[error("ALSA device {device:?} does not support {rate} Hz; it offers {min}..={max} Hz")]
    RateUnsupported {
        /// The device.
        device: String,
        /// The rate asked for.
        rate: u32,
        /// Lowest rate offered.
        min: u32,
        /// Highest rate offered.
        max: u32,
    },
    /// The device does not open with this channel count; use `min..=max`.
    #[error("ALSA device {device:?} does not support {channels} channels; it offers {min}..={max}")]
    ChannelsUnsupported {
        /// The device.
        device: String,
        /// The channel count asked for.
        channels: u32,
        /// Fewest channels offered.
        min: u32,
        /// Most channels offered.
        max: u32,
    },
    /// The device cannot use this period size or period count; choose one in
    /// `min..=max`.
    #[error("ALSA device {device:?} does not support {what} {asked}; it offers {min}..={max}")]
    BufferUnsupported {
        /// The device.
        device: String,
        /// `"period size"` or `"periods"`.
        what: &'static str,
        /// The value asked for.
        asked: u64,
        /// Lowest value offered.
        min: u64,
        /// Highest value offered.
        max: u64,
    },
    /// alsa-lib refused a step of the setup; the message names the call.
    #[error("ALSA device {device:?}: {source}")]
    Device {
        /// The device.
        device: String,
        /// alsa-lib's error.
        source: alsa::Error,
    },
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "(none)".to_owned() } else { items.join(", ") }
}

/// PCM names alsa-lib knows (its device hints), for error messages.
/// Control thread only.
pub fn pcm_names() -> Vec<String> {
    let Ok(hints) = alsa::device_name::HintIter::new_str(None, "pcm") else {
        return Vec::new();
    };
    let mut names: Vec<String> = hints.filter_map(|h| h.name).collect();
    names.sort();
    names.dedup();
    names
}

/// A device name and stream direction (capture and playback of one PCM
/// are separate streams).
type StreamKey = (String, bool);

/// Streams this engine has open, with the flow holding each.
fn registry() -> &'static Mutex<HashMap<StreamKey, String>> {
    static OPEN: std::sync::OnceLock<Mutex<HashMap<StreamKey, String>>> = std::sync::OnceLock::new();
    OPEN.get_or_init(Default::default)
}

/// The claim of one stream in the registry; released on drop.
#[derive(Debug)]
struct Claim(StreamKey);

impl Claim {
    fn take(device: &str, direction: Direction, flow: &str) -> Result<Self, AlsaError> {
        let key = (device.to_owned(), direction == Direction::Capture);
        let mut open = registry().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(holder) = open.get(&key) {
            return Err(AlsaError::Busy { device: device.to_owned(), holder: Some(holder.clone()) });
        }
        open.insert(key.clone(), flow.to_owned());
        Ok(Self(key))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut open = registry().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.remove(&self.0);
    }
}

/// Overrun, underrun or suspend (what `snd_pcm_recover` calls an xrun), or
/// a running device that moved no data for the stall timeout.
fn is_xrun(errno: i32) -> bool {
    errno == libc::EPIPE || errno == libc::ESTRPIPE || errno == libc::ETIMEDOUT
}

/// Consecutive stalls after which a device counts as lost.
const MAX_STALLS: u32 = 3;

fn alsa_format(format: SampleFormat) -> Format {
    match format {
        SampleFormat::S16Le => Format::S16LE,
        SampleFormat::S24_3le => Format::S243LE,
        SampleFormat::S24Le => Format::S24LE,
        SampleFormat::S32Le => Format::S32LE,
        SampleFormat::FloatLe => Format::FloatLE,
    }
}

/// Injects xruns into a running device, for tests and fault drills: each
/// injected xrun makes the device's next I/O call behave as if alsa-lib had
/// returned `EPIPE`, and the real recovery (`snd_pcm_recover`, which
/// re-prepares the PCM, plus the playback prefill) runs against the device.
#[derive(Debug, Clone)]
pub struct XrunInjector(Arc<AtomicU32>);

impl XrunInjector {
    /// Queues `n` xruns. Any thread.
    pub fn inject(&self, n: u32) {
        self.0.fetch_add(n, Relaxed);
    }
}

/// What to open, beyond the spec.
#[derive(Debug, Clone)]
pub struct OpenRequest<'a> {
    /// The flow (named in busy errors).
    pub flow: &'a str,
    /// Which node of the flow the device is.
    pub node: NodeRef,
    /// Capture or playback.
    pub direction: Direction,
    /// Frames per period.
    pub period: usize,
    /// Sample rate.
    pub rate: u32,
}

/// An open, configured ALSA PCM with its preallocated period buffer. Moved
/// into the audio thread inside the graph.
pub struct AlsaDevice {
    pcm: PCM,
    name: String,
    node: NodeRef,
    direction: Direction,
    format: SampleFormat,
    channels: usize,
    period: usize,
    periods: u32,
    /// Silence frames written ahead of playback at start and after an xrun.
    prefill: usize,
    /// One period of interleaved device bytes.
    bytes: Vec<u8>,
    xruns: u64,
    /// Longest wait for a running device to move data, in ms.
    stall_ms: u32,
    /// Consecutive stalls so far.
    stalls: u32,
    lost: bool,
    injected: Arc<AtomicU32>,
    reports: rtrb::Producer<Report>,
    _claim: Claim,
}

impl std::fmt::Debug for AlsaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlsaDevice")
            .field("name", &self.name)
            .field("direction", &self.direction)
            .field("format", &self.format)
            .field("channels", &self.channels)
            .field("period", &self.period)
            .field("periods", &self.periods)
            .finish()
    }
}

/// What happened to one period of device I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoOutcome {
    /// Xruns recovered during the period; the period still moved (after a
    /// capture xrun the period holds a gap in time, not in samples).
    pub xruns: u32,
    /// The device is gone; silence was read or the period dropped.
    pub lost: bool,
}

impl AlsaDevice {
    /// Opens and configures `spec` for `request`; `reports` receive the
    /// xrun and loss events. Control thread only.
    pub fn open(
        spec: &AlsaSpec,
        request: &OpenRequest<'_>,
        reports: rtrb::Producer<Report>,
    ) -> Result<Self, AlsaError> {
        let device = spec.device.as_str();
        let claim = Claim::take(device, request.direction, request.flow)?;
        let not_found = || AlsaError::NotFound { device: device.to_owned(), available: pcm_names() };
        let name = CString::new(device).map_err(|_| not_found())?;
        let pcm = PCM::open(&name, request.direction, false).map_err(|e| match e.errno() {
            libc::ENOENT | libc::ENODEV | libc::ENXIO => not_found(),
            libc::EBUSY => AlsaError::Busy { device: device.to_owned(), holder: None },
            _ => AlsaError::Device { device: device.to_owned(), source: e },
        })?;
        let channels = u32::from(spec.channels.get());
        let periods = spec.periods.get();
        let failed = |source| AlsaError::Device { device: device.to_owned(), source };
        {
            let hw = HwParams::any(&pcm).map_err(failed)?;
            hw.set_access(Access::RWInterleaved).map_err(failed)?;
            let format = alsa_format(spec.format);
            if hw.test_format(format).is_err() {
                let offered = Format::all()
                    .iter()
                    // UNKNOWN (-1) trips an assertion inside alsa-lib.
                    .filter(|f| **f as i32 >= 0 && hw.test_format(**f).is_ok())
                    .map(|f| f.to_string())
                    .collect();
                return Err(AlsaError::FormatUnsupported {
                    device: device.to_owned(),
                    format: format.to_string(),
                    offered,
                });
            }
            hw.set_format(format).map_err(failed)?;
            if hw.test_channels(channels).is_err() {
                return Err(AlsaError::ChannelsUnsupported {
                    device: device.to_owned(),
                    channels,
                    min: hw.get_channels_min().unwrap_or(0),
                    max: hw.get_channels_max().unwrap_or(0),
                });
            }
            hw.set_channels(channels).map_err(failed)?;
            hw.set_rate_resample(false).map_err(failed)?;
            if hw.test_rate(request.rate).is_err() {
                // alsa-lib may give open bounds: report the rates inside.
                let (mut min, mut max) = (hw.get_rate_min().unwrap_or(0), hw.get_rate_max().unwrap_or(0));
                if min < max && hw.test_rate(min).is_err() {
                    min += 1;
                }
                if max > min && hw.test_rate(max).is_err() {
                    max -= 1;
                }
                return Err(AlsaError::RateUnsupported {
                    device: device.to_owned(),
                    rate: request.rate,
                    min,
                    max,
                });
            }
            hw.set_rate(request.rate, ValueOr::Nearest).map_err(failed)?;
            let asked = request.period as alsa::pcm::Frames;
            if hw.set_period_size(asked, ValueOr::Nearest).is_err() {
                return Err(AlsaError::BufferUnsupported {
                    device: device.to_owned(),
                    what: "period size",
                    asked: asked as u64,
                    min: hw.get_period_size_min().unwrap_or(0) as u64,
                    max: hw.get_period_size_max().unwrap_or(0) as u64,
                });
            }
            if hw.set_periods(periods, ValueOr::Nearest).is_err() {
                let buffer_min = hw.get_buffer_size_min().unwrap_or(0) as u64;
                let buffer_max = hw.get_buffer_size_max().unwrap_or(0) as u64;
                return Err(AlsaError::BufferUnsupported {
                    device: device.to_owned(),
                    what: "periods",
                    asked: u64::from(periods),
                    min: buffer_min.div_ceil(asked as u64),
                    max: buffer_max / asked as u64,
                });
            }
            pcm.hw_params(&hw).map_err(failed)?;
        }
        let buffer = request.period * periods as usize;
        {
            let sw = pcm.sw_params_current().map_err(failed)?;
            sw.set_avail_min(request.period as alsa::pcm::Frames).map_err(failed)?;
            // Playback starts once the prefill and the first period are in;
            // capture starts on the first read.
            let start = if request.direction == Direction::Playback { buffer } else { 1 };
            sw.set_start_threshold(start as alsa::pcm::Frames).map_err(failed)?;
            sw.set_stop_threshold(buffer as alsa::pcm::Frames).map_err(failed)?;
            pcm.sw_params(&sw).map_err(failed)?;
        }
        let prefill = if request.direction == Direction::Playback {
            request.period * (periods as usize - 1)
        } else {
            0
        };
        let bps = bytes_per_sample(spec.format);
        let mut dev = Self {
            pcm,
            name: device.to_owned(),
            node: request.node,
            direction: request.direction,
            format: spec.format,
            channels: channels as usize,
            period: request.period,
            periods,
            prefill,
            bytes: vec![0; request.period * channels as usize * bps],
            xruns: 0,
            // Four buffers' time, at least 100 ms.
            stall_ms: ((buffer as u64 * 4_000 / u64::from(request.rate)) as u32).max(100),
            stalls: 0,
            lost: false,
            injected: Arc::new(AtomicU32::new(0)),
            reports,
            _claim: claim,
        };
        if dev.direction == Direction::Playback {
            dev.write_prefill().map_err(failed)?;
        }
        Ok(dev)
    }

    /// The PCM name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Channels opened on the device.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames per period.
    pub fn period(&self) -> usize {
        self.period
    }

    /// Periods in the device buffer.
    pub fn periods(&self) -> u32 {
        self.periods
    }

    /// Silence frames queued ahead of the first played frame (playback only):
    /// `(periods − 1) × period`.
    pub fn prefill(&self) -> usize {
        self.prefill
    }

    /// Xruns of this device so far.
    pub fn xruns(&self) -> u64 {
        self.xruns
    }

    /// A handle that injects xruns (fault drills and tests).
    pub fn xrun_injector(&self) -> XrunInjector {
        XrunInjector(self.injected.clone())
    }

    /// Queues the silence prefill. Writes at most one buffer, which fits, so
    /// it does not block.
    fn write_prefill(&mut self) -> alsa::Result<()> {
        self.bytes.fill(0);
        let frame_bytes = self.bytes.len() / self.period;
        let mut left = self.prefill;
        while left > 0 {
            let n = left.min(self.period);
            let done = self.pcm.io_bytes().writei(&self.bytes[..n * frame_bytes])?;
            left -= done.min(left);
        }
        Ok(())
    }

    /// Waits, at most the stall timeout, until a running device can move
    /// data; `Err(ETIMEDOUT)` for a stalled one. A device not running yet is
    /// started by the read or write itself. This bounds every blocking call,
    /// so a dead device cannot hang the audio thread (and with it `stop`).
    /// Realtime-safe (its syscall is the device wait).
    fn await_device(&mut self) -> Result<(), i32> {
        if self.pcm.state() != State::Running {
            return Ok(());
        }
        match self.pcm.wait(Some(self.stall_ms)) {
            Ok(true) => Ok(()),
            Ok(false) => Err(libc::ETIMEDOUT),
            Err(e) => Err(e.errno()),
        }
    }

    /// An injected xrun, if one is queued. Realtime-safe.
    fn take_injected(&self) -> bool {
        self.injected.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).is_ok()
    }

    /// Recovers from `errno`; false when the device is lost. An xrun is
    /// counted and reported. Realtime-safe
    /// apart from the alsa-lib calls on the clocking device.
    fn recover(&mut self, errno: i32) -> bool {
        let xrun = is_xrun(errno);
        let recovered = match errno {
            libc::EPIPE | libc::ESTRPIPE | libc::EINTR => self.pcm.recover(-errno, true).is_ok(),
            // Running but silent: restart it, a few times.
            libc::ETIMEDOUT if self.stalls < MAX_STALLS => {
                self.stalls += 1;
                self.pcm.drop().is_ok() && self.pcm.prepare().is_ok()
            }
            // A PCM stopped under us (not running, not prepared): prepare again.
            libc::EBADFD => self.pcm.prepare().is_ok(),
            _ => false,
        };
        let recovered = recovered && (self.direction == Direction::Capture || self.write_prefill().is_ok());
        if !recovered {
            self.lost = true;
            let _ = self.reports.push(Report::DeviceLost { node: self.node, errno });
            return false;
        }
        if xrun {
            self.xruns += 1;
            let _ = self.reports.push(Report::Xrun { node: self.node, total: self.xruns });
        }
        true
    }

    /// Reads one period of `frames` (at most the period size) into
    /// `channels` planes of `stride` floats. Blocks until the device has
    /// them: this is what clocks a device-clocked flow. Realtime-safe.
    pub fn capture(&mut self, planes: &mut [f32], stride: usize, frames: usize) -> IoOutcome {
        let frames = frames.min(self.period);
        let frame_bytes = self.bytes.len() / self.period;
        let mut outcome = IoOutcome::default();
        let mut got = 0;
        while got < frames && !self.lost {
            let result = if self.take_injected() {
                Err(libc::EPIPE)
            } else {
                self.await_device().and_then(|()| {
                    self.pcm
                        .io_bytes()
                        .readi(&mut self.bytes[got * frame_bytes..frames * frame_bytes])
                        .map_err(|e| e.errno())
                })
            };
            match result {
                // Blocking reads return at least one frame; never spin on zero.
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    self.stalls = 0;
                }
                Err(errno) => {
                    if self.recover(errno) && is_xrun(errno) {
                        outcome.xruns += 1;
                    }
                }
            }
        }
        // Whatever was not read (a lost device, a zero-length read) is silence.
        self.bytes[got.min(frames) * frame_bytes..].fill(0);
        outcome.lost = self.lost;
        decode_into_planes(self.format, &self.bytes, self.channels, planes, stride, frames);
        outcome
    }

    /// Writes one period of `frames` from `plane_count` planes of `stride`
    /// floats (device channels beyond the planes get silence). Blocks while
    /// the device buffer is full: this clocks a playback-clocked flow.
    /// Realtime-safe.
    pub fn playback(
        &mut self,
        planes: &[f32],
        stride: usize,
        plane_count: usize,
        frames: usize,
    ) -> IoOutcome {
        if self.lost {
            return IoOutcome { xruns: 0, lost: true };
        }
        let frames = frames.min(self.period);
        let frame_bytes = self.bytes.len() / self.period;
        encode_from_planes(self.format, planes, stride, plane_count, self.channels, frames, &mut self.bytes);
        let mut outcome = IoOutcome::default();
        let mut done = 0;
        while done < frames {
            let result = if self.take_injected() {
                Err(libc::EPIPE)
            } else {
                self.await_device().and_then(|()| {
                    self.pcm
                        .io_bytes()
                        .writei(&self.bytes[done * frame_bytes..frames * frame_bytes])
                        .map_err(|e| e.errno())
                })
            };
            match result {
                Ok(0) => break,
                Ok(n) => {
                    done += n;
                    self.stalls = 0;
                }
                Err(errno) => {
                    if !self.recover(errno) {
                        outcome.lost = true;
                        return outcome;
                    }
                    outcome.xruns += u32::from(is_xrun(errno));
                }
            }
        }
        outcome
    }

    /// Whether the device was lost.
    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Plays out what is queued (playback), then closes. Control thread only.
    pub fn drain(&mut self) {
        if self.direction == Direction::Playback && !self.lost {
            let _ = self.pcm.drain();
        }
    }
}
