//! Consumers: one function per kind of output (WAV file, ALSA playback,
//! flow link, file recording, encoded TS to a file, segments or SRT), each
//! turning an output's spec into the sink the audio thread writes and the
//! worker threads behind it.

use super::*;

/// What every consumer function needs to know about the flow and the output.
pub(super) struct SinkCx<'a> {
    pub(super) spec: &'a FlowSpec,
    pub(super) options: &'a BuildOptions,
    pub(super) flow: &'a str,
    pub(super) rate: u32,
    pub(super) frames: usize,
    pub(super) bus_channels: usize,
    pub(super) ring_len: usize,
    pub(super) cadence: Duration,
    pub(super) started_at: &'a Arc<std::sync::atomic::AtomicU64>,
    /// The output's index in the spec.
    pub(super) index: usize,
    pub(super) output: &'a airlift_ipc::spec::OutputSpec,
    /// `output[<name>].consumer`, for errors.
    pub(super) field: String,
}

impl SinkCx<'_> {
    /// Live recordings announce themselves when closed.
    fn notice(&self, path: &Path) -> Option<RecordingNotice> {
        (self.options.pacing == Pacing::Realtime).then(|| RecordingNotice {
            events: self.options.spool_events.clone(),
            flow: self.spec.name.clone(),
            output: self.output.name.clone(),
            path: path.to_path_buf(),
            rate: self.rate,
            channels: self.bus_channels,
        })
    }
}

/// A WAV recorder on its worker (`airlift-wav-<output>`).
pub(super) fn wav(
    cx: &SinkCx<'_>,
    path: &airlift_ipc::units::SafePath,
    format: airlift_ipc::spec::WavFormat,
    sinks: &mut Vec<Sink>,
    built: &mut BuiltFlow,
) -> Result<(), BuildError> {
    let path = resolve(&cx.options.base_dir, path.as_path());
    let recorder = WavRecorder::create(&path, cx.bus_channels, cx.rate, format).map_err(|source| {
        BuildError::File { flow: cx.flow.to_owned(), field: format!("{}.wav.path", cx.field), source }
    })?;
    built.created.push(recorder.path().to_path_buf());
    let notice = cx.notice(recorder.path());
    let name = format!("airlift-wav-{}", cx.output.name);
    ring_sink(cx.flow, cx.ring_len * cx.bus_channels, sinks, built, |rx| {
        recorder.spawn(name, cx.cadence, rx, notice)
    })
}

/// An ALSA playback device, written by the audio thread itself.
pub(super) fn alsa(
    cx: &SinkCx<'_>,
    alsa: &AlsaSpec,
    sinks: &mut Vec<Sink>,
    built: &mut BuiltFlow,
    latency: &mut DuplexLatency,
) -> Result<(), BuildError> {
    let request = OpenRequest {
        flow: cx.flow,
        node: NodeRef::Output(cx.index),
        direction: ::alsa::Direction::Playback,
        period: cx.frames,
        rate: cx.rate,
    };
    let device = open_device(cx.spec, cx.options, alsa, &request, cx.field.clone(), built)?;
    latency.playback = Some(device.prefill());
    sinks.push(Sink::Alsa(Box::new(device)));
    Ok(())
}

/// A link to another flow: the writing half of a clock-domain bridge, its
/// reading half parked for the flow that reads it.
pub(super) fn link(cx: &SinkCx<'_>, spec_link: &airlift_ipc::spec::LinkSpec, sinks: &mut Vec<Sink>) {
    // 200 ms of ring, or 16 periods: the reader keeps it half full.
    let (writer, tail) =
        crate::rt::bridge::link(cx.rate, cx.bus_channels, ring_frames(cx.frames * 2, cx.rate));
    cx.options.links.park(spec_link.name.as_str(), tail);
    sinks.push(Sink::Bridge(Box::new(writer)));
}

/// A file recording in any FFmpeg container and codec (`airlift-rec-<output>`).
pub(super) fn record(
    cx: &SinkCx<'_>,
    record: &airlift_ipc::spec::RecordSpec,
    sinks: &mut Vec<Sink>,
    built: &mut BuiltFlow,
) -> Result<(), BuildError> {
    let path = resolve(&cx.options.base_dir, record.path.as_path());
    let recording = FileRecording {
        path: &path,
        format: record.format.as_ref().map(|f| f.as_str()),
        codec: record.codec.as_ref().map(|c| c.as_str()),
        channels: cx.bus_channels,
        rate: cx.rate,
        bitrate: record.bitrate.map(u32::from),
        create: crate::workers::recording::create_new,
    };
    let (encoder, mux) = FileMuxer::create(&recording).map_err(|source| BuildError::Media {
        flow: cx.flow.to_owned(),
        field: format!("{}.record", cx.field),
        source,
    })?;
    built.created.push(mux.path().to_path_buf());
    let notice = cx.notice(mux.path());
    let name = format!("airlift-rec-{}", cx.output.name);
    ring_sink(cx.flow, cx.ring_len * cx.bus_channels, sinks, built, |rx| {
        spawn_encoder(cx.options, name, cx.cadence, rx, encoder, mux, notice, None)
    })
}

/// Encoded audio in MPEG-TS (`airlift-enc-<output>`) to a file, to segments
/// in the spool, or to an SRT sender (`airlift-srt-tx-<output>`).
pub(super) fn encoded(
    cx: &SinkCx<'_>,
    enc: &airlift_ipc::spec::EncodedSpec,
    sinks: &mut Vec<Sink>,
    built: &mut BuiltFlow,
) -> Result<(), BuildError> {
    let field = format!("{}.encoded", cx.field);
    let flow = cx.flow.to_owned();
    let media = |source| BuildError::Media { flow: flow.clone(), field: field.clone(), source };
    let encoder =
        Encoder::new(enc.codec, cx.bus_channels, cx.rate, enc.bitrate.map(u32::from)).map_err(media)?;
    let mut ts_notice = None;
    let (ts_out, chunk, sender): (Box<dyn TsOutput>, usize, Option<Worker>) = match &enc.sink {
        TsSink::File { path } => {
            let path = resolve(&cx.options.base_dir, path.as_path());
            let file = encoded::TsFile::create(&path).map_err(|source| BuildError::Create {
                flow: flow.clone(),
                field: format!("{field}.sink.file.path"),
                path: path.clone(),
                source,
            })?;
            built.created.push(file.path().to_path_buf());
            ts_notice = cx.notice(file.path());
            (Box::new(file), 188 * 64, None)
        }
        TsSink::Srt(srt) => {
            let endpoint = SrtEndpoint::new(srt).map_err(|source| BuildError::Srt {
                flow: flow.clone(),
                field: format!("{field}.sink.srt"),
                source,
            })?;
            let name = format!("airlift-srt-tx-{}", cx.output.name);
            let status = SrtLinkStatus::new(&name);
            built.links.push(status.clone());
            let (worker, out) = encoded::spawn_srt_sender(name, endpoint, srt_link::options(srt), status)
                .map_err(|source| BuildError::Thread { flow: flow.clone(), source })?;
            (Box::new(out), SRT_PAYLOAD, Some(worker))
        }
        TsSink::Segments(seg) => {
            let segmenter = Segmenter::open(&cx.options.spool, seg, cx.options.spool_events.clone())
                .map_err(|source| BuildError::Spool {
                    flow: flow.clone(),
                    field: format!("{field}.sink.segments"),
                    source,
                })?;
            (Box::new(SegmentTsOutput::new(segmenter, cx.spec.name.clone())), 188 * 64, None)
        }
    };
    let metadata = TsMetadata { service_name: enc.service_name.clone(), provider: enc.provider.clone() };
    let mux = TsMuxer::new(ts_out, &encoder, &metadata, chunk).map_err(media)?;
    let name = format!("airlift-enc-{}", cx.output.name);
    let start = cx.started_at.clone();
    ring_sink(cx.flow, cx.ring_len * cx.bus_channels, sinks, built, |rx| {
        // TS outputs continue the flow's timeline across a rebuild (a
        // recording file starts at 0).
        spawn_encoder(cx.options, name, cx.cadence, rx, encoder, mux, ts_notice, Some(start))
    })?;
    // The encoder finishes (and flushes into the sender) first.
    built.workers.extend(sender);
    Ok(())
}
