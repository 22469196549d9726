//! Builds an [`RtGraph`] and its workers from a [`FlowSpec`], on the control
//! thread. Everything that can fail (files, threads, unsupported nodes)
//! fails here, before the audio thread sees anything: nothing starts half-way.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use airlift_ipc::spec::{
    AlsaSpec, ClockSpec, ConsumerSpec, FlowSpec, ProcessorSpec, ProducerSpec, SpecError, TsSink,
};
use airlift_ipc::units::Name;

use crate::archive::segment::{SegmentTsOutput, Segmenter};
use crate::archive::spool::{Spool, SpoolError, SpoolEvents};
use crate::dsp::mix::MixKernel;
use crate::dsp::signal::SignalGenerator;
use crate::graph::alsa::{AlsaDevice, AlsaError, OpenRequest};
use crate::graph::failover::{Failover, FailoverControl};
use crate::graph::link::LinkBoard;
use crate::graph::processor::{BusGain, LoudnessMeter, Meter, NodeRef, Processor, Report, SilenceDetector};
use crate::graph::rt_graph::{Pacing, RtGraph, RtInput, Sink, Source};
use crate::net::link::{self as srt_link, SrtEndpoint, SrtLinkStatus};
use crate::rt::bridge::{BridgeQuality, BridgeTuning, DriftSink, link};
use crate::rt::stats::FlowCounters;
use crate::rt::worker::Worker;
use crate::sys::ffmpeg::{
    ChunkedEncoder, Decoder, Encoder, FileMuxer, FileRecording, MediaError, Muxer, TsMetadata, TsMuxer,
    TsOutput,
};
use crate::sys::srt::{SRT_PAYLOAD, SrtError};
use crate::workers::recording::RecordingNotice;
use crate::workers::srt_in::SrtInput;
use crate::workers::wav::{WavError, WavRecorder, WavSource};
use crate::workers::{encoded, file_in};

/// A flow that cannot be built. Nothing was started; the message names the
/// flow and the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The segment spool cannot be used (permissions, disk full).
    #[error("flow {flow}: {field}: {source}")]
    Spool {
        /// The flow.
        flow: String,
        /// The field.
        field: String,
        /// The cause.
        source: SpoolError,
    },
    /// The spec breaks one or more rules; fix every listed field.
    #[error("invalid flow spec: {}", join(.0))]
    Invalid(Vec<SpecError>),
    /// A file input or recording cannot be used.
    #[error("flow {flow}: {field}: {source}")]
    File {
        /// The flow.
        flow: String,
        /// The field, e.g. `input[music].producer.file.path`.
        field: String,
        /// Why.
        source: WavError,
    },
    /// FFmpeg cannot open the input or set up the encoder; the message says why.
    #[error("flow {flow}: {field}: {source}")]
    Media {
        /// The flow.
        flow: String,
        /// The field.
        field: String,
        /// Why.
        source: MediaError,
    },
    /// An SRT endpoint cannot be set up (e.g. the listener port is taken).
    #[error("flow {flow}: {field}: {source}")]
    Srt {
        /// The flow.
        flow: String,
        /// The field.
        field: String,
        /// Why.
        source: SrtError,
    },
    /// A TS file cannot be created; check the directory and permissions.
    #[error("flow {flow}: {field}: cannot create {path}: {source}")]
    Create {
        /// The flow.
        flow: String,
        /// The field.
        field: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The spec asks for a node this engine build does not have yet.
    #[error("flow {flow}: {field}: {what} is not available in this engine build")]
    Unsupported {
        /// The flow.
        flow: String,
        /// The field.
        field: String,
        /// What is missing.
        what: &'static str,
    },
    /// A processor could not be set up.
    #[error("flow {flow}: {field}: {message}")]
    Processor {
        /// The flow.
        flow: String,
        /// The field.
        field: String,
        /// Why.
        message: String,
    },
    /// An ALSA device cannot be used; the source lists what exists or what
    /// the device offers.
    #[error("flow {flow}: {field}: {source}")]
    Alsa {
        /// The flow.
        flow: String,
        /// The field, e.g. `input[mic].producer.alsa_capture`.
        field: String,
        /// Why.
        source: AlsaError,
    },
    /// An ALSA device in a realtime flow that its clock does not name. A
    /// device is driven by blocking I/O on the audio thread, so the flow must
    /// be clocked by one of its devices (`clock = { device = { node = … } }`);
    /// capture and playback of one card may share that clock. A device with
    /// an unrelated clock belongs in a flow of its own, joined through a
    /// clock-domain bridge (`rt::bridge`). Offline rendering needs no device
    /// clock: the devices' blocking I/O simply runs as fast as they allow.
    #[error(
        "flow {flow}: {field}: an ALSA device needs the flow clocked by a device (set clock.device.node to one of its ALSA inputs or outputs)"
    )]
    NeedsDeviceClock {
        /// The flow.
        flow: String,
        /// The field.
        field: String,
    },
    /// A link input whose writing flow has not been built (build the writer
    /// first; the node orders this itself), or a period too long for the
    /// link's ring.
    #[error("flow {flow}: {field}: link {link:?}: {why}")]
    Link {
        /// The flow.
        flow: String,
        /// The field.
        field: String,
        /// The link.
        link: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A worker thread could not be started (out of resources).
    #[error("flow {flow}: cannot start a worker thread: {source}")]
    Thread {
        /// The flow.
        flow: String,
        /// Why.
        source: std::io::Error,
    },
}

fn join(errors: &[SpecError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// How to build a flow.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Realtime or offline ring behaviour.
    pub pacing: Pacing,
    /// The mix kernel (normally `MixKernel::detect`).
    pub kernel: MixKernel,
    /// Relative file paths are resolved against this directory.
    pub base_dir: PathBuf,
    /// Where link writers leave the reading ends for link readers.
    pub links: LinkBoard,
    /// The segment spool (`TsSink::Segments`, pull jobs).
    pub spool: Spool,
    /// Where segmenters announce closed segments.
    pub spool_events: SpoolEvents,
    /// Most pull jobs that may run at once.
    pub max_pulls: usize,
    /// Offline renders only: encoders that may code chunks of one AAC or
    /// MP2 output at the same time (`None`: one per CPU; 1: one encoder,
    /// as in a live flow). See `ChunkedEncoder`.
    pub encode_threads: Option<std::num::NonZeroUsize>,
    /// Offline renders only: how many frames will be rendered, when known,
    /// so chunked encoding can split the work evenly.
    pub length_hint: Option<u64>,
}

impl BuildOptions {
    /// Encoder threads per output for an offline render.
    pub fn encode_threads(&self) -> usize {
        self.encode_threads
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, std::num::NonZeroUsize::get)
    }
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            pacing: Pacing::Realtime,
            kernel: MixKernel::detect(),
            base_dir: PathBuf::from("."),
            links: LinkBoard::default(),
            spool: Spool::new("spool"),
            spool_events: SpoolEvents::default(),
            max_pulls: 16,
            encode_threads: None,
            length_hint: None,
        }
    }
}

/// A built flow: the graph for the audio thread, and what stays on the
/// control side (workers, report rings, the name → index map for inputs).
#[derive(Debug)]
pub struct BuiltFlow {
    /// The graph, ready to move to the audio thread.
    pub graph: Box<RtGraph>,
    /// Worker threads; dropping them stops them.
    pub workers: Vec<Worker>,
    /// Report rings of the flow's meters and detectors.
    pub reports: Vec<rtrb::Consumer<Report>>,
    /// Input name → index, for parameter changes.
    pub inputs: HashMap<Name, usize>,
    /// The flow's counters.
    pub counters: Arc<FlowCounters>,
    /// State and statistics of the flow's SRT links.
    pub links: Vec<Arc<SrtLinkStatus>>,
    /// Per output index, the range of `workers` that serve it (outputs
    /// without workers are absent).
    pub output_workers: Vec<(usize, std::ops::Range<usize>)>,
    /// Outputs taken over from the graph this one replaces: `(new output
    /// index, old output index)`. Their sinks are [`Sink::Carried`].
    pub carried: Vec<(usize, usize)>,
    /// The failover state of inputs with backups, by input name.
    pub failovers: Vec<(Name, Arc<FailoverControl>)>,
    /// Files this build created (removed again if a later step fails).
    created: Vec<PathBuf>,
}

impl BuiltFlow {
    /// Stops the workers, letting recorders drain and finalise. Control thread only.
    pub fn finish(self) {
        drop(self.graph);
        for w in self.workers {
            w.finish();
        }
    }
}

/// Lateness an internal clock catches up: half a worker ring, so a burst of
/// caught-up periods still fits the rings between the audio thread and its
/// workers.
pub fn catch_up_frames(period: u32, rate: u32) -> usize {
    ring_frames(period as usize, rate) / 2
}

/// Ring capacity in frames: 8 periods or 200 ms, whichever is larger.
fn ring_frames(period: usize, rate: u32) -> usize {
    (period * 8).max(rate as usize / 5)
}

/// Builds `spec` with `custom` processors appended after the built-in ones.
/// Control thread only.
pub fn build(
    spec: &FlowSpec,
    options: &BuildOptions,
    custom: Vec<Box<dyn Processor>>,
) -> Result<BuiltFlow, BuildError> {
    build_replacing(spec, options, custom, None, &[])
}

/// Whether an output of this kind can keep running across a graph swap:
/// one fed by a ring whose worker owns everything else (file recorders,
/// encoders into a TS file or segments). SRT outputs, devices and links
/// are rebuilt.
fn carries_over(consumer: &ConsumerSpec) -> bool {
    match consumer {
        ConsumerSpec::Wav { .. } | ConsumerSpec::Record(_) => true,
        ConsumerSpec::Encoded(e) => matches!(e.sink, TsSink::File { .. } | TsSink::Segments(_)),
        _ => false,
    }
}

/// Outputs of `new` that can be taken over unchanged from a running graph
/// built from `old`: `(new index, old index)`. Empty when the bus itself
/// changed (rate, period, channels).
pub fn carried_outputs(old: &FlowSpec, new: &FlowSpec) -> Vec<(usize, usize)> {
    if old.sample_rate != new.sample_rate || old.period != new.period || old.channels != new.channels {
        return Vec::new();
    }
    new.outputs
        .iter()
        .enumerate()
        .filter(|(_, o)| carries_over(&o.consumer))
        .filter_map(|(i, o)| old.outputs.iter().position(|p| p == o).map(|j| (i, j)))
        .collect()
}

/// Builds `spec` to replace a running graph built from `old`: outputs
/// whose spec did not change are not built again but carried over from
/// the running graph (their file, encoder and worker keep running; see
/// [`Sink::Carried`]). `playing` names, per input with backups, the source
/// the replaced flow was playing (see [`crate::flow::RunningFlow::playing`]):
/// the new input starts there. Control thread only.
pub fn build_replacing(
    spec: &FlowSpec,
    options: &BuildOptions,
    custom: Vec<Box<dyn Processor>>,
    old: Option<&FlowSpec>,
    playing: &[(Name, String)],
) -> Result<BuiltFlow, BuildError> {
    let carry = old.map(|old| carried_outputs(old, spec)).unwrap_or_default();
    spec.validate().map_err(BuildError::Invalid)?;
    let flow = spec.name.as_str().to_owned();
    let rate = spec.sample_rate.get();
    let frames = spec.period.get() as usize;
    let bus_channels = usize::from(spec.channels.get());
    let ring_len = ring_frames(frames, rate);
    let cadence = Duration::from_secs_f64(ring_len as f64 / f64::from(rate) / 4.0);
    let counters = Arc::new(FlowCounters::default());
    let started_at = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));

    let mut built = BuiltFlow {
        graph: Box::new(RtGraph::new(
            options.pacing,
            options.kernel,
            frames,
            rate,
            bus_channels,
            vec![],
            vec![],
            vec![],
            counters.clone(),
        )),
        workers: Vec::new(),
        reports: Vec::new(),
        inputs: HashMap::new(),
        counters: counters.clone(),
        links: Vec::new(),
        output_workers: Vec::new(),
        carried: Vec::new(),
        failovers: Vec::new(),
        created: Vec::new(),
    };
    let mut latency = DuplexLatency::default();
    let result = (|| {
        let mut inputs = Vec::new();
        let mut next_plane = 0;
        for (index, input) in spec.inputs.iter().enumerate() {
            let field = format!("input[{}].producer", input.name);
            let cx = SourceCx {
                spec,
                options,
                flow: &flow,
                rate,
                frames,
                bus_channels,
                ring_len,
                cadence,
                counters: &counters,
            };
            let (source, channels) = make_source(
                &cx,
                &mut built,
                &mut latency,
                &input.producer,
                index,
                input.name.as_str(),
                field,
            )?;
            let (source, channels) = match &input.failover {
                None => (source, channels),
                Some(failover) => {
                    let mut backups = Vec::with_capacity(failover.backups.len());
                    for b in &failover.backups {
                        let tag = format!("{}/{}", input.name, b.name);
                        let field = format!("input[{}].failover.backup[{}].producer", input.name, b.name);
                        backups.push(make_source(
                            &cx,
                            &mut built,
                            &mut latency,
                            &b.producer,
                            index,
                            &tag,
                            field,
                        )?);
                    }
                    let (tx, rx) = rtrb::RingBuffer::new(16);
                    built.reports.push(rx);
                    let resume = playing.iter().find(|(i, _)| *i == input.name).map(|(_, s)| s.as_str());
                    let (failover, control) = Failover::new(
                        index,
                        failover,
                        (source, channels),
                        backups,
                        rate,
                        frames,
                        tx,
                        resume,
                    );
                    built.failovers.push((input.name.clone(), control));
                    (Source::Failover(Box::new(failover)), channels)
                }
            };
            inputs.push(RtInput {
                source,
                channels,
                first_plane: next_plane,
                gain: input.gain_db.linear(),
                pan: input.pan.get(),
                muted: input.muted,
            });
            next_plane += channels;
            built.inputs.insert(input.name.clone(), index);
        }

        let mut processors: Vec<Box<dyn Processor>> = Vec::new();
        for (i, p) in spec.processors.iter().enumerate() {
            let field = format!("processor[{i}]");
            match p {
                ProcessorSpec::Gain { gain_db } => processors.push(Box::new(BusGain::new(gain_db.linear()))),
                ProcessorSpec::Meter => {
                    let (tx, rx) = rtrb::RingBuffer::new(64);
                    built.reports.push(rx);
                    processors.push(Box::new(Meter::new(rate, tx)));
                }
                ProcessorSpec::Loudness => {
                    let (tx, rx) = rtrb::RingBuffer::new(64);
                    let meter = LoudnessMeter::new(bus_channels, rate, tx).map_err(|e| {
                        BuildError::Processor { flow: flow.clone(), field, message: e.to_string() }
                    })?;
                    built.reports.push(rx);
                    processors.push(Box::new(meter));
                }
                ProcessorSpec::SilenceDetector { threshold_dbfs, hold_ms } => {
                    let (tx, rx) = rtrb::RingBuffer::new(64);
                    built.reports.push(rx);
                    processors.push(Box::new(SilenceDetector::new(threshold_dbfs.get(), *hold_ms, rate, tx)));
                }
            }
        }
        processors.extend(custom);

        let mut sinks = Vec::new();
        for (index, output) in spec.outputs.iter().enumerate() {
            if let Some(&(_, old_index)) = carry.iter().find(|(new, _)| *new == index) {
                sinks.push(Sink::Carried(old_index));
                built.carried.push((index, old_index));
                continue;
            }
            let first_worker = built.workers.len();
            let cx = SinkCx {
                spec,
                options,
                flow: &flow,
                rate,
                frames,
                bus_channels,
                ring_len,
                cadence,
                started_at: &started_at,
                index,
                output,
                field: format!("output[{}].consumer", output.name),
            };
            let (sinks, built) = (&mut sinks, &mut built);
            match &output.consumer {
                ConsumerSpec::Null => sinks.push(Sink::Null),
                ConsumerSpec::Wav { path, format } => consumers::wav(&cx, path, *format, sinks, built)?,
                ConsumerSpec::AlsaPlayback(alsa) => consumers::alsa(&cx, alsa, sinks, built, &mut latency)?,
                ConsumerSpec::Link(spec_link) => consumers::link(&cx, spec_link, sinks),
                ConsumerSpec::Record(record) => consumers::record(&cx, record, sinks, built)?,
                ConsumerSpec::Encoded(enc) => consumers::encoded(&cx, enc, sinks, built)?,
            }
            if built.workers.len() > first_worker {
                built.output_workers.push((index, first_worker..built.workers.len()));
            }
        }
        Ok((inputs, processors, sinks))
    })();

    match result {
        Ok((inputs, processors, sinks)) => {
            if let (Some(capture), Some(prefill)) = (latency.capture, latency.playback) {
                counters
                    .latency_frames
                    .store((capture + prefill) as u64, std::sync::atomic::Ordering::Relaxed);
            }
            built.graph = Box::new(RtGraph::new(
                options.pacing,
                options.kernel,
                frames,
                rate,
                bus_channels,
                inputs,
                processors,
                sinks,
                counters,
            ));
            built.graph.set_start_marker(started_at);
            built.created.clear();
            Ok(built)
        }
        Err(e) => {
            let created = std::mem::take(&mut built.created);
            drop(built);
            for path in created {
                let _ = std::fs::remove_file(path);
            }
            Err(e)
        }
    }
}

/// The parts of a duplex flow's input → output latency, in frames.
#[derive(Debug, Default)]
struct DuplexLatency {
    /// The capture period: a frame waits for its period to complete.
    capture: Option<usize>,
    /// Silence queued ahead of playback: `(periods − 1) × period`.
    playback: Option<usize>,
}

/// Starts an encoder worker: in an offline render, AAC and MP2 are coded in
/// chunks on [`BuildOptions::encode_threads`] threads ([`ChunkedEncoder`]);
/// otherwise by `encoder` alone.
#[allow(clippy::too_many_arguments)]
fn spawn_encoder(
    options: &BuildOptions,
    name: String,
    cadence: Duration,
    rx: rtrb::Consumer<f32>,
    encoder: Encoder,
    mux: impl Muxer + 'static,
    notice: Option<RecordingNotice>,
    start: Option<Arc<std::sync::atomic::AtomicU64>>,
) -> std::io::Result<Worker> {
    let chunked = match options.pacing {
        Pacing::Offline => ChunkedEncoder::new(&encoder, options.encode_threads(), options.length_hint),
        Pacing::Realtime => None,
    };
    match chunked {
        Some(chunked) => encoded::spawn_encoder(name, cadence, rx, chunked, mux, notice, start),
        None => encoded::spawn_encoder(name, cadence, rx, encoder, mux, notice, start),
    }
}

/// Starts the worker `spawn` makes around a new ring of `capacity` samples
/// from the audio thread, and adds the ring as a sink. Control thread only.
fn ring_sink(
    flow: &str,
    capacity: usize,
    sinks: &mut Vec<Sink>,
    built: &mut BuiltFlow,
    spawn: impl FnOnce(rtrb::Consumer<f32>) -> std::io::Result<Worker>,
) -> Result<(), BuildError> {
    let (tx, rx) = rtrb::RingBuffer::new(capacity);
    let worker = spawn(rx).map_err(|source| BuildError::Thread { flow: flow.to_owned(), source })?;
    sinks.push(Sink::Ring { ring: tx, worker: worker.thread() });
    built.workers.push(worker);
    Ok(())
}

fn unsupported(flow: &str, field: String, what: &'static str) -> BuildError {
    BuildError::Unsupported { flow: flow.to_owned(), field, what }
}

mod consumers;
mod producers;
use consumers::SinkCx;
use producers::{SourceCx, make_source, open_device};

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}
