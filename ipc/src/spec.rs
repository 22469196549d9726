//! Flow and pull-job specifications: the desired state that ctl sends and the
//! engine converges to.
//!
//! Every field is a validated unit from [`crate::units`]. Cross-field rules
//! (unique names, frequency below Nyquist, devices that exist, files that
//! exist) need context and are checked by [`FlowSpec::validate`] here where
//! they are pure, and by the engine when it builds the graph otherwise.
//!
//! The same types deserialise from TOML (the engine's `--flows` files and
//! ctld's config): enums are externally tagged, e.g.
//! `producer = { test_signal = { kind = "sine", frequency = 1000.0 } }`.
//! An SRT endpoint ([`SrtSpec`]) is written either as an
//! `srt://` URL or as a table.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::units::{
    Bitrate, Channels, FfmpegName, FrequencyHz, GainDb, LevelDbfs, Name, Pan, PeriodFrames, Periods,
    SafePath, SampleRate, SegmentSeconds,
};

mod failover;
mod srt;

pub use failover::{AUTO_SOURCE, BackupSpec, FailoverSpec, MAX_BACKUPS, PRIMARY_SOURCE};
pub use srt::{KeyLength, MAX_ALLOW_FROM, SrtMode, SrtSpec};

/// One flow: producers → per-input gain/mute/pan → mixer bus → processors →
/// consumers, at one sample rate and period size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    /// Unique flow name.
    pub name: Name,
    /// Sample rate of the bus and of every input after resampling.
    #[serde(default = "default_rate")]
    pub sample_rate: SampleRate,
    /// Frames per period.
    #[serde(default = "default_period")]
    pub period: PeriodFrames,
    /// Channels of the mixer bus.
    #[serde(default = "default_channels")]
    pub channels: Channels,
    /// What clocks the flow's audio thread.
    #[serde(default)]
    pub clock: ClockSpec,
    /// The inputs mixed onto the bus.
    #[serde(default, rename = "input")]
    pub inputs: Vec<InputSpec>,
    /// Processors applied to the bus, in order.
    #[serde(default, rename = "processor")]
    pub processors: Vec<ProcessorSpec>,
    /// Where the bus goes.
    #[serde(default, rename = "output")]
    pub outputs: Vec<OutputSpec>,
}

fn default_rate() -> SampleRate {
    SampleRate::HZ_48000
}

fn default_period() -> PeriodFrames {
    PeriodFrames::new(256).expect("256 is a valid period")
}

fn default_channels() -> Channels {
    Channels::new(2).expect("2 is a valid channel count")
}

/// A cross-field rule that a flow spec breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("flow {flow}: {field}: {message}")]
#[non_exhaustive]
pub struct SpecError {
    /// The flow (or pull job) concerned.
    pub flow: String,
    /// The field path inside it, e.g. `input[tone].producer.frequency`.
    pub field: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl SpecError {
    /// Builds an error for `flow` at `field`.
    pub fn new(flow: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { flow: flow.into(), field: field.into(), message: message.into() }
    }
}

impl FlowSpec {
    /// Every SRT endpoint of the flow: `(field, spec)`, the field relative
    /// to the flow (`input[cam].producer.srt_in.srt`,
    /// `output[out].consumer.encoded.sink.srt`).
    pub fn srt_endpoints(&self) -> impl Iterator<Item = (String, &SrtSpec)> {
        let inputs = self.inputs.iter().flat_map(|i| {
            i.producers().filter_map(move |(source, producer)| match producer {
                ProducerSpec::SrtIn(s) if source == PRIMARY_SOURCE => {
                    Some((format!("input[{}].producer.srt_in.srt", i.name), &s.srt))
                }
                ProducerSpec::SrtIn(s) => {
                    Some((format!("input[{}].failover.backup[{source}].producer.srt_in.srt", i.name), &s.srt))
                }
                _ => None,
            })
        });
        let outputs = self.outputs.iter().filter_map(|o| match &o.consumer {
            ConsumerSpec::Encoded(e) => match &e.sink {
                TsSink::Srt(s) => Some((format!("output[{}].consumer.encoded.sink.srt", o.name), s)),
                _ => None,
            },
            _ => None,
        });
        inputs.chain(outputs)
    }

    /// A flow with the defaults (48 kHz, 256 frames, stereo, internal clock)
    /// and nothing in it.
    pub fn new(name: Name) -> Self {
        Self {
            name,
            sample_rate: default_rate(),
            period: default_period(),
            channels: default_channels(),
            clock: ClockSpec::default(),
            inputs: Vec::new(),
            processors: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// Checks the rules that span fields: unique input and output names,
    /// signal frequencies below Nyquist, a clock device that names an output
    /// or input of this flow. Returns every broken rule, not just the first.
    pub fn validate(&self) -> Result<(), Vec<SpecError>> {
        let mut errors = Vec::new();
        let flow = self.name.as_str();
        let mut seen = HashSet::new();
        for input in &self.inputs {
            if !seen.insert(input.name.as_str()) {
                errors.push(SpecError::new(flow, format!("input[{}]", input.name), "duplicate input name"));
            }
            if let Some(failover) = &input.failover {
                failover.validate(flow, input.name.as_str(), &mut errors);
            }
            if let ProducerSpec::TestSignal(signal) = &input.producer {
                let nyquist = self.sample_rate.get() as f32 / 2.0;
                for (field, f) in [("frequency", signal.frequency), ("end_frequency", signal.end_frequency)] {
                    if let Some(f) = f
                        && f.get() >= nyquist
                    {
                        errors.push(SpecError::new(
                            flow,
                            format!("input[{}].producer.test_signal.{field}", input.name),
                            format!("{} Hz is not below the Nyquist frequency {nyquist} Hz", f.get()),
                        ));
                    }
                }
            }
        }
        let mut seen = HashSet::new();
        for output in &self.outputs {
            if !seen.insert(output.name.as_str()) {
                errors.push(SpecError::new(
                    flow,
                    format!("output[{}]", output.name),
                    "duplicate output name",
                ));
            }
        }
        if let ClockSpec::Device { node } = &self.clock {
            let known = self
                .inputs
                .iter()
                .any(|i| &i.name == node && matches!(i.producer, ProducerSpec::AlsaCapture(_)))
                || self
                    .outputs
                    .iter()
                    .any(|o| &o.name == node && matches!(o.consumer, ConsumerSpec::AlsaPlayback(_)));
            if !known {
                errors.push(SpecError::new(
                    flow,
                    "clock.device.node",
                    format!("{node:?} is not an ALSA input or output of this flow"),
                ));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

/// What clocks a flow's audio thread.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockSpec {
    /// The engine's internal clock: absolute monotonic deadlines, one per period.
    #[default]
    Internal,
    /// The ALSA device of the named input or output of this flow.
    Device {
        /// Name of the input or output whose device clocks the flow.
        node: Name,
    },
}

/// One input of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Unique name inside the flow.
    pub name: Name,
    /// Where the audio comes from.
    pub producer: ProducerSpec,
    /// Gain applied before the bus.
    #[serde(default)]
    pub gain_db: GainDb,
    /// Whether the input is muted.
    #[serde(default)]
    pub muted: bool,
    /// Pan position on a stereo bus (−3 dB law for mono inputs, balance for stereo).
    #[serde(default)]
    pub pan: Pan,
    /// Backup sources the input switches to when its producer is lost or
    /// silent; `None`: the producer alone.
    #[serde(default)]
    pub failover: Option<FailoverSpec>,
}

impl InputSpec {
    /// The input's producers: its own (the source `primary`) and its
    /// backups', each with its source name.
    pub fn producers(&self) -> impl Iterator<Item = (&str, &ProducerSpec)> {
        std::iter::once((PRIMARY_SOURCE, &self.producer)).chain(
            self.failover.iter().flat_map(|f| f.backups.iter().map(|b| (b.name.as_str(), &b.producer))),
        )
    }

    /// The same, mutable (to resolve paths, say).
    pub fn producers_mut(&mut self) -> impl Iterator<Item = &mut ProducerSpec> {
        std::iter::once(&mut self.producer)
            .chain(self.failover.iter_mut().flat_map(|f| f.backups.iter_mut().map(|b| &mut b.producer)))
    }
}

/// A source of audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProducerSpec {
    /// A generated test signal.
    TestSignal(TestSignalSpec),
    /// A file (WAV; more formats when FFmpeg decoding is enabled).
    File(FileSourceSpec),
    /// An ALSA capture device.
    AlsaCapture(AlsaSpec),
    /// An SRT input carrying MPEG-TS audio.
    SrtIn(SrtInSpec),
    /// Another flow's output of the same name (`ConsumerSpec::Link`), from
    /// that flow's clock domain through adaptive resampling.
    Link(LinkSpec),
}

/// One end of a link between two flows that run on unrelated clocks (e.g.
/// two sound cards). The writing flow's bus goes out as `consumer = { link =
/// { name = "x" } }`; the reading flow takes it in as `producer = { link = {
/// name = "x" } }`. Both flows must have the same sample rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// The link's name, unique in the desired state.
    pub name: Name,
}

/// The shape of a test signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// A sine at `frequency`.
    Sine,
    /// Digital silence.
    Silence,
    /// White noise.
    WhiteNoise,
    /// Pink noise (−3 dB per octave).
    PinkNoise,
    /// A logarithmic sweep from `frequency` to `end_frequency` over `sweep_seconds`, repeated.
    Sweep,
}

/// A generated test signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSignalSpec {
    /// Shape.
    pub kind: SignalKind,
    /// Frequency of a sine, start frequency of a sweep.
    #[serde(default)]
    pub frequency: Option<FrequencyHz>,
    /// End frequency of a sweep.
    #[serde(default)]
    pub end_frequency: Option<FrequencyHz>,
    /// Sweep duration in seconds.
    #[serde(default)]
    pub sweep_seconds: Option<SegmentSeconds>,
    /// Peak level (sine, sweep) or RMS level (noise).
    #[serde(default = "default_level")]
    pub level_dbfs: LevelDbfs,
    /// Channels generated (the same signal on each).
    #[serde(default = "one_channel")]
    pub channels: Channels,
}

fn default_level() -> LevelDbfs {
    LevelDbfs::new(-20.0).expect("-20 dBFS is a valid level")
}

fn one_channel() -> Channels {
    Channels::new(1).expect("1 is a valid channel count")
}

/// A file source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceSpec {
    /// The file.
    pub path: SafePath,
    /// Start again at the end instead of producing silence.
    #[serde(default)]
    pub looped: bool,
}

/// Sample formats of ALSA devices and recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SampleFormat {
    /// 16-bit signed little endian.
    S16Le,
    /// 24-bit signed little endian in 3 bytes.
    S24_3le,
    /// 24-bit signed little endian in the low bits of 4 bytes.
    S24Le,
    /// 32-bit signed little endian.
    S32Le,
    /// 32-bit float little endian.
    FloatLe,
}

/// An ALSA device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlsaSpec {
    /// PCM name, e.g. `hw:0,0` or `default`.
    pub device: String,
    /// Channels opened on the device.
    pub channels: Channels,
    /// Sample format on the device.
    pub format: SampleFormat,
    /// Periods in the device buffer.
    #[serde(default = "default_periods")]
    pub periods: Periods,
}

fn default_periods() -> Periods {
    Periods::new(3).expect("3 is a valid period count")
}

/// An SRT input of MPEG-TS audio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrtInSpec {
    /// The connection.
    pub srt: SrtSpec,
    /// Jitter buffer between the decoder and the audio thread, in milliseconds.
    #[serde(default = "default_jitter")]
    pub jitter_ms: u32,
}

fn default_jitter() -> u32 {
    200
}

/// A processor on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessorSpec {
    /// A ramped gain on the whole bus.
    Gain {
        /// Gain in dB.
        gain_db: GainDb,
    },
    /// Peak and RMS meters per channel.
    Meter,
    /// EBU R128 loudness (momentary, short-term, integrated) and true peak.
    Loudness,
    /// Raises an event when the bus stays below `threshold_dbfs` for `hold_ms`.
    SilenceDetector {
        /// Level below which the bus counts as silent.
        threshold_dbfs: LevelDbfs,
        /// How long it must stay silent, in milliseconds.
        hold_ms: u32,
    },
}

/// One output of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Unique name inside the flow.
    pub name: Name,
    /// Where the bus goes.
    pub consumer: ConsumerSpec,
}

/// Bit depth of a WAV recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WavFormat {
    /// 16-bit integer.
    S16,
    /// 24-bit integer.
    #[default]
    S24,
    /// 32-bit float.
    F32,
}

/// A sink for the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerSpec {
    /// Discards the audio (useful for metering-only flows and benches).
    Null,
    /// A WAV file recorder.
    Wav {
        /// The file written.
        path: SafePath,
        /// Sample format in the file.
        #[serde(default)]
        format: WavFormat,
    },
    /// An ALSA playback device.
    AlsaPlayback(AlsaSpec),
    /// An encoder into MPEG-TS, sent to `sink`.
    Encoded(EncodedSpec),
    /// To another flow on another clock (`ProducerSpec::Link`).
    Link(LinkSpec),
    /// A recorder into a file of any container and codec FFmpeg writes
    /// (FLAC, MP3, Ogg, Matroska, MP4, WAV, ...).
    Record(RecordSpec),
}

/// A file recorder through FFmpeg's encoders and muxers.
///
/// The container comes from `format` or else from the file's extension; the
/// codec from `codec` or else the container's default (FLAC for `.flac`,
/// MP3 for `.mp3`, PCM for `.wav`, ...). Both are checked against this
/// FFmpeg build, and against each other, when the flow is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// The file written.
    pub path: SafePath,
    /// FFmpeg muxer name (`ffmpeg -muxers`), when the extension does not say.
    #[serde(default)]
    pub format: Option<FfmpegName>,
    /// FFmpeg encoder name (`ffmpeg -encoders`), e.g. `flac`, `libmp3lame`,
    /// `aac`, `libopus`, `libvorbis`, `pcm_s24le`.
    #[serde(default)]
    pub codec: Option<FfmpegName>,
    /// Bitrate for lossy codecs; the codec's usual default when absent.
    #[serde(default)]
    pub bitrate: Option<Bitrate>,
}

/// Audio codecs for MPEG-TS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// AAC-LC (FFmpeg's native encoder).
    Aac,
    /// Opus (libopus).
    Opus,
    /// MPEG-1 Layer II.
    Mp2,
    /// SMPTE 302M linear PCM.
    S302m,
}

/// Encoder settings and where the TS goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodedSpec {
    /// Codec.
    pub codec: Codec,
    /// Bitrate; the codec's default when absent (ignored for S302M).
    #[serde(default)]
    pub bitrate: Option<Bitrate>,
    /// Service name written into the SDT.
    #[serde(default)]
    pub service_name: Option<String>,
    /// Provider name written into the SDT.
    #[serde(default)]
    pub provider: Option<String>,
    /// Where the TS goes.
    pub sink: TsSink,
}

/// Where an encoded MPEG-TS goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TsSink {
    /// Out over SRT.
    Srt(SrtSpec),
    /// Into one TS file.
    File {
        /// The file written.
        path: SafePath,
    },
    /// Into segments in the spool.
    Segments(SegmentSpec),
}

/// How a stream is cut into segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    /// The job name used in segment paths and manifests.
    pub job: Name,
    /// Target duration of one segment.
    pub target_seconds: SegmentSeconds,
    /// A cut is forced at this size even without a key frame.
    #[serde(default = "default_max_segment")]
    pub max_bytes: u64,
}

fn default_max_segment() -> u64 {
    512 * 1024 * 1024
}

/// A pull job: an SRT MPEG-TS stream archived as segments without re-encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullSpec {
    /// Unique job name.
    pub name: Name,
    /// Where the stream comes from.
    pub source: SrtSpec,
    /// How it is cut.
    pub segments: SegmentSpec,
    /// Seconds without data after which the connection is dropped and retried.
    #[serde(default = "default_watchdog")]
    pub no_data_timeout_s: u32,
}

fn default_watchdog() -> u32 {
    5
}

/// The whole desired state of an engine.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredState {
    /// Flows to run.
    #[serde(default, rename = "flow")]
    pub flows: Vec<FlowSpec>,
    /// Pull jobs to run.
    #[serde(default, rename = "pull")]
    pub pulls: Vec<PullSpec>,
    /// Flows of `flows` that the operator stopped: kept in the state (so
    /// their settings are known) but not running.
    #[serde(default)]
    pub stopped: Vec<Name>,
}

/// Why `job` cannot name a segment job, or `None` when it can: the spool
/// keeps folders of its own beside the jobs' folders.
pub fn reserved_job_name(job: &str) -> Option<String> {
    const RESERVED: [&str; 2] = [crate::spool_layout::RETAINED, crate::spool_layout::QUARANTINE];
    if RESERVED.contains(&job) || job.starts_with('.') {
        Some(format!(
            "segment job name {job:?} is reserved for the spool's own folders ({})",
            RESERVED.join(", ")
        ))
    } else {
        None
    }
}

impl DesiredState {
    /// Every segment job of the state: `(owner, field, job)`, where the owner
    /// is the flow or pull job that writes it. Job names share one namespace
    /// in the spool and in S3.
    pub fn segment_jobs(&self) -> impl Iterator<Item = (&str, String, &Name)> {
        let flows = self.flows.iter().flat_map(|flow| {
            flow.outputs.iter().filter_map(move |o| match &o.consumer {
                ConsumerSpec::Encoded(e) => match &e.sink {
                    TsSink::Segments(s) => Some((
                        flow.name.as_str(),
                        format!("output[{}].consumer.encoded.sink.segments.job", o.name),
                        &s.job,
                    )),
                    _ => None,
                },
                _ => None,
            })
        });
        let pulls = self.pulls.iter().map(|p| (p.name.as_str(), "segments.job".to_owned(), &p.segments.job));
        flows.chain(pulls)
    }

    /// Every SRT endpoint of the state: `(owner, field, spec)`, e.g.
    /// `("main", "input[cam].producer.srt_in.srt", …)` or
    /// `("ingest", "source", …)` for a pull job.
    pub fn srt_endpoints(&self) -> impl Iterator<Item = (&str, String, &SrtSpec)> {
        let flows =
            self.flows.iter().flat_map(|flow| flow.srt_endpoints().map(|(f, s)| (flow.name.as_str(), f, s)));
        let pulls = self.pulls.iter().map(|p| (p.name.as_str(), "source".to_owned(), &p.source));
        flows.chain(pulls)
    }

    /// Each link has exactly one writing output and at most one reading
    /// input, in flows of the same sample rate.
    fn validate_links(&self, errors: &mut Vec<SpecError>) {
        let mut writers: std::collections::HashMap<&str, &FlowSpec> = std::collections::HashMap::new();
        for flow in &self.flows {
            for output in &flow.outputs {
                if let ConsumerSpec::Link(link) = &output.consumer
                    && writers.insert(link.name.as_str(), flow).is_some()
                {
                    errors.push(SpecError::new(
                        flow.name.as_str(),
                        format!("output[{}].consumer.link.name", output.name),
                        format!("link {:?} has more than one writer", link.name.as_str()),
                    ));
                }
            }
        }
        let mut readers = HashSet::new();
        let read: HashSet<&str> = self
            .flows
            .iter()
            .flat_map(|f| f.inputs.iter())
            .filter_map(|i| match &i.producer {
                ProducerSpec::Link(l) => Some(l.name.as_str()),
                _ => None,
            })
            .collect();
        for flow in &self.flows {
            for output in &flow.outputs {
                if let ConsumerSpec::Link(link) = &output.consumer
                    && !read.contains(link.name.as_str())
                {
                    errors.push(SpecError::new(
                        flow.name.as_str(),
                        format!("output[{}].consumer.link.name", output.name),
                        format!("no flow reads link {:?}", link.name.as_str()),
                    ));
                }
            }
        }
        for flow in &self.flows {
            for input in &flow.inputs {
                let ProducerSpec::Link(link) = &input.producer else { continue };
                let field = format!("input[{}].producer.link.name", input.name);
                match writers.get(link.name.as_str()) {
                    None => errors.push(SpecError::new(
                        flow.name.as_str(),
                        field,
                        format!("no flow writes link {:?}", link.name.as_str()),
                    )),
                    Some(writer) if writer.name == flow.name => errors.push(SpecError::new(
                        flow.name.as_str(),
                        field,
                        "a flow cannot read its own link",
                    )),
                    Some(writer) if writer.sample_rate != flow.sample_rate => errors.push(SpecError::new(
                        flow.name.as_str(),
                        field,
                        format!(
                            "link {:?} comes from flow {} at another sample rate",
                            link.name.as_str(),
                            writer.name
                        ),
                    )),
                    Some(_) if !readers.insert(link.name.as_str()) => errors.push(SpecError::new(
                        flow.name.as_str(),
                        field,
                        format!("link {:?} has more than one reader", link.name.as_str()),
                    )),
                    Some(_) => {}
                }
            }
        }
    }

    /// Validates every flow and checks names are unique across flows and
    /// across pull jobs. Returns all errors.
    pub fn validate(&self) -> Result<(), Vec<SpecError>> {
        let mut errors = Vec::new();
        let mut names = HashSet::new();
        for flow in &self.flows {
            if !names.insert(flow.name.as_str()) {
                errors.push(SpecError::new(flow.name.as_str(), "name", "duplicate flow name"));
            }
            if let Err(mut e) = flow.validate() {
                errors.append(&mut e);
            }
        }
        self.validate_links(&mut errors);
        let mut jobs = HashSet::new();
        for pull in &self.pulls {
            if !jobs.insert(pull.name.as_str()) {
                errors.push(SpecError::new(pull.name.as_str(), "name", "duplicate pull job name"));
            }
        }
        let mut segment_jobs = std::collections::HashMap::new();
        for (owner, field, job) in self.segment_jobs() {
            if let Some(reason) = reserved_job_name(job.as_str()) {
                errors.push(SpecError::new(owner, field, reason));
            } else if let Some(first) = segment_jobs.insert(job.as_str(), owner) {
                errors.push(SpecError::new(
                    owner,
                    field,
                    format!(
                        "segment job {:?} is already used by {first}: every job needs a name of its own",
                        job.as_str()
                    ),
                ));
            }
        }
        for (owner, field, srt) in self.srt_endpoints() {
            for (key, message) in srt.problems() {
                errors.push(SpecError::new(owner, format!("{field}.{key}"), message));
            }
        }
        for name in &self.stopped {
            if !names.contains(name.as_str()) {
                errors.push(SpecError::new(name.as_str(), "stopped", "no flow of this name"));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}
