//! Producers: one [`make_source`] arm per kind of input (test signal, file,
//! ALSA capture, flow link, SRT), each turning an input's spec into the
//! source the audio thread reads, with its worker thread when it has one.

use super::*;

/// What building one source needs from the flow being built.
pub(super) struct SourceCx<'a> {
    pub(super) spec: &'a FlowSpec,
    pub(super) options: &'a BuildOptions,
    pub(super) flow: &'a str,
    pub(super) rate: u32,
    pub(super) frames: usize,
    pub(super) bus_channels: usize,
    pub(super) ring_len: usize,
    pub(super) cadence: Duration,
    pub(super) counters: &'a Arc<FlowCounters>,
}

/// Builds the source of one producer of input `index` (an input's own
/// producer or one of its backups; `tag` names its threads), with its
/// workers; returns it with its channel count. Control thread only.
pub(super) fn make_source(
    cx: &SourceCx<'_>,
    built: &mut BuiltFlow,
    latency: &mut DuplexLatency,
    producer: &ProducerSpec,
    index: usize,
    tag: &str,
    field: String,
) -> Result<(Source, usize), BuildError> {
    let SourceCx { spec, options, flow, rate, frames, bus_channels, ring_len, cadence, counters } = *cx;
    Ok(match producer {
        ProducerSpec::TestSignal(signal) => {
            (Source::Signal(SignalGenerator::new(signal, rate)), usize::from(signal.channels.get()))
        }
        ProducerSpec::File(file) => {
            let path = resolve(&options.base_dir, file.path.as_path());
            let field = format!("{field}.file.path");
            let (tx_len, ended) = (ring_len, Arc::new(AtomicBool::new(false)));
            let thread_name = format!("airlift-file-{}", tag);
            // FFmpeg decodes (and resamples) anything it reads, WAV
            // included, several times faster than hound; hound stays
            // as the fallback for a WAV FFmpeg refuses.
            let (worker, channels) = match Decoder::open_file(&path, rate, None) {
                Ok(decoder) => {
                    let channels = decoder.channels();
                    let (tx, rx) = rtrb::RingBuffer::new(tx_len * channels);
                    let worker =
                        file_in::spawn_file(decoder, thread_name, cadence, tx, file.looped, ended.clone())
                            .map_err(|source| BuildError::Thread { flow: flow.to_owned(), source })?;
                    ((worker, rx), channels)
                }
                Err(media_error) => {
                    let wav = WavSource::open(&path, rate).map_err(|_| BuildError::Media {
                        flow: flow.to_owned(),
                        field: field.clone(),
                        source: media_error,
                    })?;
                    let channels = wav.channels();
                    let (tx, rx) = rtrb::RingBuffer::new(tx_len * channels);
                    let worker = wav
                        .spawn(thread_name, cadence, tx, file.looped, ended.clone())
                        .map_err(|source| BuildError::Thread { flow: flow.to_owned(), source })?;
                    ((worker, rx), channels)
                }
            };
            let (worker, rx) = worker;
            let thread = worker.thread();
            built.workers.push(worker);
            (Source::Ring { ring: rx, ended, worker: thread }, channels)
        }
        ProducerSpec::AlsaCapture(alsa) => {
            let request = OpenRequest {
                flow,
                node: NodeRef::Input(index),
                direction: alsa::Direction::Capture,
                period: frames,
                rate,
            };
            let device = open_device(spec, options, alsa, &request, field, built)?;
            latency.capture = Some(device.period());
            let channels = device.channels();
            (Source::Alsa(Box::new(device)), channels)
        }
        ProducerSpec::Link(spec_link) => {
            let name = spec_link.name.as_str();
            let link_error = |why| BuildError::Link {
                flow: flow.to_owned(),
                field: format!("{field}.link.name"),
                link: name.to_owned(),
                why,
            };
            let tail = options.links.take(name).ok_or_else(|| link_error("no flow writes it yet"))?;
            if tail.capacity() < 4 * frames {
                return Err(link_error(
                    "this flow's period is too long for the link (at most 1/4 of its ring)",
                ));
            }
            let channels = tail.channels();
            let reader = tail
                .reader(frames, BridgeQuality::Sinc, Some(counters.clone()))
                .map_err(|_| link_error("the resampler refused this flow's period"))?;
            (Source::Bridge(Box::new(reader)), channels)
        }
        ProducerSpec::SrtIn(_) if options.pacing == Pacing::Offline => {
            // A live input has no end and no faster-than-real-time
            // pace: an offline render would wait on it forever.
            return Err(unsupported(flow, field, "an SRT input in an offline render"));
        }
        ProducerSpec::SrtIn(srt_in) => {
            let endpoint = SrtEndpoint::new(&srt_in.srt).map_err(|source| BuildError::Srt {
                flow: flow.to_owned(),
                field: format!("{field}.srt"),
                source,
            })?;
            // The bridge's reader keeps the ring half full: the jitter
            // buffer plus two periods, with as much room again above it.
            let jitter_frames = (srt_in.jitter_ms as usize * rate as usize / 1000).max(frames);
            let capacity = 2 * (jitter_frames + 2 * frames);
            let (writer, tail) = link(rate, bus_channels, capacity);
            let name = format!("airlift-srt-rx-{}", tag);
            let status = SrtLinkStatus::new(&name);
            built.links.push(status.clone());
            let reader = tail
                .tuned_reader(
                    frames,
                    BridgeQuality::Sinc,
                    BridgeTuning::network(frames, rate),
                    Some(DriftSink::Input(status.clone())),
                )
                .map_err(|_| unsupported(flow, field.clone(), "this period with an SRT input's resampler"))?;
            let input_worker = SrtInput {
                endpoint,
                options: srt_link::options(&srt_in.srt),
                channels: bus_channels,
                rate,
                status,
            }
            .spawn(name, cadence, writer)
            .map_err(|source| BuildError::Thread { flow: flow.to_owned(), source })?;
            built.workers.push(input_worker);
            (Source::Bridge(Box::new(reader)), bus_channels)
        }
    })
}

/// Opens an ALSA device for `request`, with its own report ring.
pub(super) fn open_device(
    spec: &FlowSpec,
    options: &BuildOptions,
    alsa: &AlsaSpec,
    request: &OpenRequest<'_>,
    field: String,
    built: &mut BuiltFlow,
) -> Result<AlsaDevice, BuildError> {
    let flow = request.flow.to_owned();
    if options.pacing == Pacing::Realtime && !matches!(spec.clock, ClockSpec::Device { .. }) {
        return Err(BuildError::NeedsDeviceClock { flow, field });
    }
    let (tx, rx) = rtrb::RingBuffer::new(64);
    let device =
        AlsaDevice::open(alsa, request, tx).map_err(|source| BuildError::Alsa { flow, field, source })?;
    built.reports.push(rx);
    Ok(device)
}
