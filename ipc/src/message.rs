//! The messages, named by direction: [`CtlToEngine`] and [`EngineToCtl`].
//!
//! Every command from ctl carries a [`CommandId`]; the engine answers each
//! with [`EngineToCtl::Accepted`] or [`EngineToCtl::Rejected`] carrying the
//! same id. Everything else the engine sends is an event.

use serde::{Deserialize, Serialize};

use crate::spec::{DesiredState, PullSpec};
use crate::units::{GainDb, Name, Pan};

/// Identifies a command so that its answer can be matched to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CommandId(pub u64);

/// Messages from ctl to the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CtlToEngine {
    /// First message on a connection.
    Hello {
        /// The protocol version ctl speaks.
        protocol: u16,
        /// Free text naming the client, for logs.
        client: String,
    },
    /// A command to carry out; answered by id.
    Command {
        /// Echoed in the answer.
        id: CommandId,
        /// What to do.
        command: Command,
    },
}

/// What ctl asks the engine to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Converge to this whole desired state: start what is new, stop what is
    /// gone, rebuild what changed, leave untouched flows running.
    ApplyState(DesiredState),
    /// Start a flow that is part of the desired state.
    StartFlow {
        /// The flow.
        flow: Name,
    },
    /// Stop a running flow (it stays part of the desired state).
    StopFlow {
        /// The flow.
        flow: Name,
    },
    /// Set one input's gain (ramped over one period).
    SetGain {
        /// The flow.
        flow: Name,
        /// The input.
        input: Name,
        /// New gain.
        gain: GainDb,
    },
    /// Mute or unmute one input (ramped).
    SetMute {
        /// The flow.
        flow: Name,
        /// The input.
        input: Name,
        /// Whether it is muted.
        muted: bool,
    },
    /// Set one input's pan.
    SetPan {
        /// The flow.
        flow: Name,
        /// The input.
        input: Name,
        /// New pan.
        pan: Pan,
    },
    /// Force the source an input with backups plays (`primary` or a
    /// backup's name), or return it to automatic selection (`None`).
    SelectSource {
        /// The flow.
        flow: Name,
        /// The input.
        input: Name,
        /// The source, or `None` for automatic.
        source: Option<Name>,
    },
    /// Start a pull job.
    StartPull(PullSpec),
    /// Stop a pull job.
    StopPull {
        /// The job.
        job: Name,
    },
    /// Ask for an [`EngineToCtl::Stats`] event now.
    GetStats,
    /// Stop every flow cleanly (closing recordings and segments) and exit.
    Shutdown,
}

/// Messages from the engine to ctl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EngineToCtl {
    /// First message on a connection.
    Hello {
        /// The protocol version the engine speaks.
        protocol: u16,
        /// The engine's version string.
        engine_version: String,
        /// The engine's process id.
        pid: u32,
    },
    /// The command with this id was carried out.
    Accepted {
        /// The command's id.
        id: CommandId,
    },
    /// The command with this id was refused; nothing changed.
    Rejected {
        /// The command's id.
        id: CommandId,
        /// Why.
        reason: Rejection,
    },
    /// A flow changed state.
    FlowState {
        /// The flow.
        flow: Name,
        /// Its new state.
        state: FlowState,
    },
    /// A pull job changed state.
    PullState {
        /// The job.
        job: Name,
        /// Its new state.
        state: FlowState,
    },
    /// A segment is closed, fsynced and renamed into the spool.
    SegmentClosed(SegmentManifest),
    /// Levels of a flow's bus, throttled to about 10 Hz.
    Meters {
        /// The flow.
        flow: Name,
        /// One entry per bus channel.
        channels: Vec<ChannelMeter>,
        /// EBU R128 loudness, when the flow has a loudness processor.
        loudness: Option<Loudness>,
    },
    /// A device over- or under-ran and was recovered.
    Xrun {
        /// The flow.
        flow: Name,
        /// The input or output whose device ran.
        node: Name,
        /// Total xruns of that device so far.
        total: u64,
    },
    /// The silence detector of a flow changed its verdict.
    Silence {
        /// The flow.
        flow: Name,
        /// True when silence started, false when it ended.
        silent: bool,
    },
    /// Engine statistics.
    Stats(EngineStats),
    /// An SRT link of a flow changed state: connected, lost its peer (or
    /// is still calling), or was refused (e.g. a wrong passphrase). Also
    /// sent when a link reconnects between two looks (its `connects` grew).
    SrtLink {
        /// The flow.
        flow: Name,
        /// The link's worker thread name, e.g. `airlift-srt-tx-out`.
        link: String,
        /// Where it stands now.
        state: SrtLinkState,
        /// Connections made so far.
        connects: u64,
        /// Attempts the peer refused so far.
        refusals: u64,
    },
    /// A file recording was closed (its flow stopped or was rebuilt with a
    /// changed recorder, or the engine shut down): the file is complete and
    /// fsynced, and will not be written again.
    RecordingClosed(RecordingClosed),
    /// An input with backups switched source.
    InputSwitched {
        /// The flow.
        flow: Name,
        /// The input.
        input: Name,
        /// The source now playing: `primary` or a backup's name.
        source: Name,
        /// Why.
        reason: SwitchReason,
    },
}

/// Why an input with backups switched source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchReason {
    /// The source playing delivered no audio for the loss time.
    Loss,
    /// The source playing was silent for the silence hold.
    Silence,
    /// A more preferred source has been healthy for the return hold.
    Recovered,
    /// The operator selected the source.
    Forced,
    /// The operator returned the input to automatic selection.
    Auto,
}

impl SwitchReason {
    /// The reason as events, logs and metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchReason::Loss => "loss",
            SwitchReason::Silence => "silence",
            SwitchReason::Recovered => "recovered",
            SwitchReason::Forced => "forced",
            SwitchReason::Auto => "auto",
        }
    }
}

/// A closed file recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingClosed {
    /// The flow.
    pub flow: Name,
    /// The output.
    pub output: Name,
    /// The file, absolute or relative to the engine's base directory.
    pub path: String,
    /// Audio in the file, in milliseconds.
    pub duration_ms: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

/// Where an SRT link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SrtLinkState {
    /// Not connected: calling, or waiting for a caller.
    #[default]
    Waiting,
    /// Connected and carrying the stream.
    Connected,
    /// The last attempt was refused by the peer (e.g. BADSECRET).
    Refused,
}

/// The lifecycle state of a flow or pull job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowState {
    /// Running.
    Running,
    /// Stopped on request.
    Stopped,
    /// Failed; the engine may retry (e.g. a device that comes back).
    Failed {
        /// Why, for people.
        reason: String,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The kind of failure, for programs.
    pub kind: RejectKind,
    /// What is wrong, naming the field, for people.
    pub message: String,
}

/// Kinds of refusal; ctl maps them to D-Bus error names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectKind {
    /// A spec or argument is invalid.
    InvalidArgument,
    /// A named flow, input or job does not exist.
    NotFound,
    /// A configured limit would be exceeded.
    LimitReached,
    /// A resource (device, port) is in use.
    Busy,
    /// The engine was built without the needed feature.
    Unsupported,
    /// The engine failed for an internal reason.
    Internal,
}

/// A closed segment, as recorded beside it in the spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentManifest {
    /// Job (flow recording or pull job) name.
    pub job: Name,
    /// Sequence number, monotonic per job.
    pub sequence: u64,
    /// Path of the segment relative to the spool root.
    pub path: String,
    /// UTC start time in milliseconds since the Unix epoch.
    pub utc_start_ms: i64,
    /// First presentation timestamp (90 kHz units).
    pub first_pts: i64,
    /// Duration in 90 kHz units.
    pub duration_90k: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// True for a segment recovered from a crash (cut short).
    pub truncated: bool,
    /// True when this segment does not continue the previous one of its job
    /// seamlessly: the encoder's settings changed at a rebuild, or audio was
    /// lost before it (see `gap_90k`). Players should reset their decoder.
    #[serde(default)]
    pub discontinuity: bool,
    /// Audio known to be lost between the previous segment of the job and
    /// this one (90 kHz units), e.g. while the disk was full. 0: none.
    #[serde(default)]
    pub gap_90k: u64,
}

/// Levels of one channel, in dBFS (−∞ is sent as `f32::NEG_INFINITY`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChannelMeter {
    /// Sample peak since the last report.
    pub peak_dbfs: f32,
    /// RMS since the last report.
    pub rms_dbfs: f32,
}

/// EBU R128 loudness of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Loudness {
    /// Momentary loudness (400 ms), LUFS.
    pub momentary_lufs: f64,
    /// Short-term loudness (3 s), LUFS.
    pub short_term_lufs: f64,
    /// Integrated loudness since the flow started, LUFS.
    pub integrated_lufs: f64,
    /// True peak since the flow started, dBTP.
    pub true_peak_dbtp: f64,
}

/// Engine-wide statistics.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EngineStats {
    /// Per-flow statistics.
    pub flows: Vec<FlowStats>,
    /// Per pull job statistics.
    #[serde(default)]
    pub pulls: Vec<PullStats>,
    /// Per segment job (flow segments outputs and pull jobs) writing
    /// statistics: spool stalls, held and dropped bytes, gaps.
    #[serde(default)]
    pub segment_jobs: Vec<SegmentJobStats>,
}

/// How one segment job's writing went: a full spool (or one below its
/// free-space floor) stalls it; it holds what arrives in memory, drops the
/// oldest when the hold is full, and records the lost audio as a gap.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SegmentJobStats {
    /// The job.
    pub job: String,
    /// Times the spool refused writes.
    pub stalls: u64,
    /// Bytes held in memory now (0 unless stalled).
    pub held_bytes: u64,
    /// Most bytes held at once.
    pub held_bytes_max: u64,
    /// Bytes dropped because the hold was full.
    pub dropped_bytes: u64,
    /// Gaps recorded in manifests.
    pub gaps: u64,
    /// Audio lost in those gaps, in 90 kHz ticks.
    pub gap_90k: u64,
    /// Bytes that did not parse as TS.
    pub junk_bytes: u64,
}

/// Statistics of one pull job.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PullStats {
    /// The job.
    pub job: String,
    /// Connections made.
    pub connects: u64,
    /// Bytes received.
    pub bytes: u64,
    /// TS packets read.
    pub packets: u64,
    /// Received bits per second over the last second.
    pub bitrate_bps: u64,
    /// Continuity-counter errors in the source.
    pub cc_errors: u64,
    /// Packets that did not parse as TS.
    pub unparsable_packets: u64,
    /// Largest PCR jitter seen, microseconds.
    pub pcr_jitter_us: u64,
    /// Segments closed.
    pub segments: u64,
    /// Cuts forced by the maximum segment size (no key frame in time).
    pub forced_cuts: u64,
    /// Milliseconds since the last key frame, if one was seen.
    pub since_key_frame_ms: Option<u64>,
    /// Bytes that did not parse as TS (outside any packet, or in packets
    /// that did not parse); they count towards the segment size.
    #[serde(default)]
    pub junk_bytes: u64,
}

/// Statistics of one flow.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FlowStats {
    /// The flow's name.
    pub flow: String,
    /// Frames processed since the flow started.
    pub frames: u64,
    /// Periods processed.
    pub periods: u64,
    /// Periods too late to be caught up: the clock skipped periods, so
    /// audio was lost. (A device-clocked flow reports its xruns instead.)
    pub deadline_misses: u64,
    /// Periods that finished after the next period's deadline and were
    /// caught up (run back to back) without losing audio: scheduling
    /// latency the flow's buffers absorbed.
    #[serde(default)]
    pub late_periods: u64,
    /// Largest lateness past a deadline, in microseconds.
    #[serde(default)]
    pub max_late_us: u32,
    /// Periods in which an input ring ran dry (silence was substituted).
    pub underruns: u64,
    /// Periods in which an output ring was full (audio was dropped).
    pub overruns: u64,
    /// Device xruns.
    pub xruns: u64,
    /// Largest period processing time, in microseconds.
    pub max_process_us: u32,
    /// Sum of all period processing times, in nanoseconds.
    pub process_ns_total: u64,
    /// Histogram of period processing time as a fraction of the period:
    /// counts for the buckets bounded by [`PROCESS_LOAD_BUCKETS`].
    pub process_load_histogram: Vec<u64>,
    /// Realtime settings actually achieved for the flow's thread.
    pub realtime: RealtimeReport,
    /// Input → output latency in frames of a duplex ALSA flow (capture
    /// period + playback queue); `None` for other flows.
    #[serde(default)]
    pub latency_frames: Option<u64>,
    /// Estimated clock offset of a bridged input against the flow's clock,
    /// in ppm (positive: the input's clock runs fast); `None` without a bridge.
    #[serde(default)]
    pub drift_ppm: Option<f64>,
    /// State and statistics of the flow's SRT connections.
    pub srt_links: Vec<SrtLinkStats>,
    /// The inputs with backups: which source each plays.
    #[serde(default)]
    pub input_sources: Vec<InputSourceStats>,
    /// Lowest fill (0–1) of the rings from the flow's input workers (files,
    /// SRT inputs) since the previous report: headroom before an underrun.
    #[serde(default)]
    pub input_ring_low: Option<f32>,
    /// Highest fill (0–1) of the rings to the flow's output workers
    /// (recorders, encoders) since the previous report: near 1 an overrun
    /// is close.
    #[serde(default)]
    pub output_ring_high: Option<f32>,
}

/// The source an input with backups plays.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InputSourceStats {
    /// The input.
    pub input: String,
    /// The source playing: `primary` or a backup's name.
    pub active: String,
    /// Every source, most preferred first (`primary` first).
    pub sources: Vec<String>,
    /// The operator's choice, if the input is not automatic.
    pub selected: Option<String>,
    /// Switches since the flow (re)started.
    pub switches: u64,
}

/// One SRT connection of a flow (input or output).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SrtLinkStats {
    /// The link's worker thread name, e.g. `airlift-srt-tx-out`.
    pub name: String,
    /// Whether it is connected now.
    pub connected: bool,
    /// Where it stands (`connected` distinguishes only the first state).
    #[serde(default)]
    pub state: SrtLinkState,
    /// Connections made so far.
    pub connects: u64,
    /// Attempts the peer refused (e.g. a wrong passphrase).
    pub refusals: u64,
    /// Round-trip time of the current (or last) connection, ms.
    pub rtt_ms: f64,
    /// Estimated bandwidth, Mbit/s.
    pub bandwidth_mbps: f64,
    /// Packets lost on the current (or last) connection.
    pub lost: u64,
    /// Packets retransmitted on the current (or last) connection.
    pub retransmits: u64,
    /// Bytes carried by the current (or last) connection.
    pub bytes: u64,
    /// An input's frames dropped because the sender ran ahead of the flow's
    /// clock (0 for outputs).
    #[serde(default)]
    pub dropped_frames: u64,
    /// An input's frames of silence while it buffered again after running
    /// dry (0 for outputs).
    #[serde(default)]
    pub inserted_frames: u64,
    /// An input's sender clock offset against the flow's clock, in ppm
    /// (positive: the sender runs fast), as its adaptive resampler follows
    /// it; `None` for outputs and before the input played.
    #[serde(default)]
    pub drift_ppm: Option<f64>,
}

/// Upper bounds of the processing-load histogram buckets, as a fraction of the
/// period duration; the last bucket is everything above the final bound.
pub const PROCESS_LOAD_BUCKETS: [f64; 8] = [0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0];

/// What realtime setup a thread got, and why not when it did not.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RealtimeReport {
    /// The CPU the thread is pinned to, if pinning succeeded.
    pub pinned_cpu: Option<u32>,
    /// The SCHED_FIFO priority, if it was granted.
    pub fifo_priority: Option<u8>,
    /// Whether memory is locked (`mlockall`).
    pub memory_locked: bool,
    /// One line per refused request, e.g. `"SCHED_FIFO 70: EPERM"`.
    pub refusals: Vec<String>,
}
