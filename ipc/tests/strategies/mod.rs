//! proptest strategies producing every message variant with valid units.
#![allow(dead_code)]

use airlift_ipc::message::*;
use airlift_ipc::spec::*;
use airlift_ipc::units::*;
use proptest::prelude::*;

pub fn name() -> impl Strategy<Value = Name> {
    "[a-z0-9][a-z0-9_-]{0,20}".prop_map(|s| Name::new(s).unwrap())
}

pub fn path() -> impl Strategy<Value = SafePath> {
    "(/?[a-z0-9_]{1,8}){1,4}\\.(wav|ts)".prop_map(|s| SafePath::new(s).unwrap())
}

fn rate() -> impl Strategy<Value = SampleRate> {
    prop::sample::select(SUPPORTED_SAMPLE_RATES.to_vec()).prop_map(|r| SampleRate::new(r).unwrap())
}

fn channels() -> impl Strategy<Value = Channels> {
    (Channels::MIN..=Channels::MAX).prop_map(|c| Channels::new(c).unwrap())
}

fn gain() -> impl Strategy<Value = GainDb> {
    (GainDb::MIN..=GainDb::MAX).prop_map(|g| GainDb::new(g).unwrap())
}

fn pan() -> impl Strategy<Value = Pan> {
    (Pan::MIN..=Pan::MAX).prop_map(|p| Pan::new(p).unwrap())
}

fn level() -> impl Strategy<Value = LevelDbfs> {
    (LevelDbfs::MIN..=LevelDbfs::MAX).prop_map(|l| LevelDbfs::new(l).unwrap())
}

fn freq() -> impl Strategy<Value = FrequencyHz> {
    (1.0f32..20_000.0).prop_map(|f| FrequencyHz::new(f).unwrap())
}

fn port() -> impl Strategy<Value = Port> {
    (1u16..=65_535).prop_map(|p| Port::new(p).unwrap())
}

fn srt() -> impl Strategy<Value = SrtSpec> {
    let mode = prop_oneof![
        ("[a-z0-9.]{1,20}", port())
            .prop_map(|(h, port)| SrtMode::Caller { host: Host::new(h).unwrap(), port }),
        port().prop_map(|port| SrtMode::Listener { port }),
    ];
    (
        mode,
        (SrtLatencyMs::MIN..=SrtLatencyMs::MAX),
        prop::option::of("[ -~]{10,79}"),
        prop::sample::select(vec![KeyLength::Aes128, KeyLength::Aes192, KeyLength::Aes256]),
        prop::option::of("[ -~]{0,40}"),
        any::<bool>(),
        prop::collection::vec((any::<[u8; 4]>(), 0u8..=32), 0..3),
    )
        .prop_map(|(mode, latency, pass, key_length, sid, allow_unencrypted, nets)| SrtSpec {
            mode,
            latency_ms: SrtLatencyMs::new(latency).unwrap(),
            passphrase: pass.map(|p| Passphrase::new(p).unwrap()),
            key_length,
            stream_id: sid.map(|s| StreamId::new(s).unwrap()),
            allow_unencrypted,
            allow_from: nets
                .into_iter()
                .map(|(a, prefix)| {
                    let net = std::net::Ipv4Addr::from(
                        u32::from_be_bytes(a) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0),
                    );
                    PeerNetwork::new(&format!("{net}/{prefix}")).unwrap()
                })
                .collect(),
        })
}

fn alsa() -> impl Strategy<Value = AlsaSpec> {
    (
        "[a-z:,0-9]{1,12}",
        channels(),
        prop::sample::select(vec![
            SampleFormat::S16Le,
            SampleFormat::S24_3le,
            SampleFormat::S24Le,
            SampleFormat::S32Le,
            SampleFormat::FloatLe,
        ]),
        (Periods::MIN..=Periods::MAX),
    )
        .prop_map(|(device, channels, format, periods)| AlsaSpec {
            device,
            channels,
            format,
            periods: Periods::new(periods).unwrap(),
        })
}

fn producer() -> impl Strategy<Value = ProducerSpec> {
    let kind = prop::sample::select(vec![
        SignalKind::Sine,
        SignalKind::Silence,
        SignalKind::WhiteNoise,
        SignalKind::PinkNoise,
        SignalKind::Sweep,
    ]);
    prop_oneof![
        (kind, prop::option::of(freq()), prop::option::of(freq()), level(), channels()).prop_map(
            |(kind, frequency, end_frequency, level_dbfs, channels)| {
                ProducerSpec::TestSignal(TestSignalSpec {
                    kind,
                    frequency,
                    end_frequency,
                    sweep_seconds: None,
                    level_dbfs,
                    channels,
                })
            }
        ),
        (path(), any::<bool>())
            .prop_map(|(path, looped)| ProducerSpec::File(FileSourceSpec { path, looped })),
        alsa().prop_map(ProducerSpec::AlsaCapture),
        (srt(), 0u32..5000).prop_map(|(srt, jitter_ms)| ProducerSpec::SrtIn(SrtInSpec { srt, jitter_ms })),
    ]
}

fn segments() -> impl Strategy<Value = SegmentSpec> {
    (name(), (SegmentSeconds::MIN..=SegmentSeconds::MAX), any::<u64>()).prop_map(|(job, s, max_bytes)| {
        SegmentSpec { job, target_seconds: SegmentSeconds::new(s).unwrap(), max_bytes }
    })
}

fn consumer() -> impl Strategy<Value = ConsumerSpec> {
    let sink = prop_oneof![
        srt().prop_map(TsSink::Srt),
        path().prop_map(|path| TsSink::File { path }),
        segments().prop_map(TsSink::Segments),
    ];
    prop_oneof![
        Just(ConsumerSpec::Null),
        (path(), prop::sample::select(vec![WavFormat::S16, WavFormat::S24, WavFormat::F32]))
            .prop_map(|(path, format)| ConsumerSpec::Wav { path, format }),
        alsa().prop_map(ConsumerSpec::AlsaPlayback),
        (
            prop::sample::select(vec![Codec::Aac, Codec::Opus, Codec::Mp2, Codec::S302m]),
            prop::option::of((Bitrate::MIN..=Bitrate::MAX).prop_map(|b| Bitrate::new(b).unwrap())),
            prop::option::of("[ -~]{0,20}"),
            sink,
        )
            .prop_map(|(codec, bitrate, service_name, sink)| ConsumerSpec::Encoded(EncodedSpec {
                codec,
                bitrate,
                service_name,
                provider: None,
                sink,
            })),
        (
            path(),
            prop::option::of("[a-z0-9_]{1,32}".prop_map(|s| FfmpegName::new(s).unwrap())),
            prop::option::of("[a-z0-9_]{1,32}".prop_map(|s| FfmpegName::new(s).unwrap())),
            prop::option::of((Bitrate::MIN..=Bitrate::MAX).prop_map(|b| Bitrate::new(b).unwrap())),
        )
            .prop_map(|(path, format, codec, bitrate)| ConsumerSpec::Record(RecordSpec {
                path,
                format,
                codec,
                bitrate
            })),
    ]
}

fn processor() -> impl Strategy<Value = ProcessorSpec> {
    prop_oneof![
        gain().prop_map(|gain_db| ProcessorSpec::Gain { gain_db }),
        Just(ProcessorSpec::Meter),
        Just(ProcessorSpec::Loudness),
        (level(), any::<u32>()).prop_map(|(threshold_dbfs, hold_ms)| {
            ProcessorSpec::SilenceDetector { threshold_dbfs, hold_ms }
        }),
    ]
}

pub fn flow() -> impl Strategy<Value = FlowSpec> {
    let backup = (name(), producer()).prop_map(|(name, producer)| BackupSpec { name, producer });
    let failover = (
        prop::collection::vec(backup, 1..3),
        prop::array::uniform4(any::<u32>()),
        prop::option::of(level()),
        prop::option::of(name()),
    )
        .prop_map(|(backups, t, silence_threshold_dbfs, selected)| FailoverSpec {
            backups,
            loss_ms: t[0],
            silence_threshold_dbfs,
            silence_ms: t[1],
            crossfade_ms: t[2],
            return_after_ms: t[3],
            selected,
        });
    let input = (name(), producer(), gain(), any::<bool>(), pan(), prop::option::of(failover)).prop_map(
        |(name, producer, gain_db, muted, pan, failover)| InputSpec {
            name,
            producer,
            gain_db,
            muted,
            pan,
            failover,
        },
    );
    let output = (name(), consumer()).prop_map(|(name, consumer)| OutputSpec { name, consumer });
    (
        name(),
        rate(),
        (PeriodFrames::MIN..=PeriodFrames::MAX),
        channels(),
        prop::collection::vec(input, 0..4),
        prop::collection::vec(processor(), 0..3),
        prop::collection::vec(output, 0..3),
        prop::option::of(name()),
    )
        .prop_map(|(name, sample_rate, period, channels, inputs, processors, outputs, clock)| FlowSpec {
            name,
            sample_rate,
            period: PeriodFrames::new(period).unwrap(),
            channels,
            clock: clock.map_or(ClockSpec::Internal, |node| ClockSpec::Device { node }),
            inputs,
            processors,
            outputs,
        })
}

pub fn pull() -> impl Strategy<Value = PullSpec> {
    (name(), srt(), segments(), any::<u32>()).prop_map(|(name, source, segments, no_data_timeout_s)| {
        PullSpec { name, source, segments, no_data_timeout_s }
    })
}

pub fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (prop::collection::vec(flow(), 0..3), prop::collection::vec(pull(), 0..2))
            .prop_map(|(flows, pulls)| Command::ApplyState(DesiredState { flows, pulls, stopped: vec![] })),
        name().prop_map(|flow| Command::StartFlow { flow }),
        name().prop_map(|flow| Command::StopFlow { flow }),
        (name(), name(), gain()).prop_map(|(flow, input, gain)| Command::SetGain { flow, input, gain }),
        (name(), name(), any::<bool>()).prop_map(|(flow, input, muted)| Command::SetMute {
            flow,
            input,
            muted
        }),
        (name(), name(), pan()).prop_map(|(flow, input, pan)| Command::SetPan { flow, input, pan }),
        (name(), name(), prop::option::of(name())).prop_map(|(flow, input, source)| Command::SelectSource {
            flow,
            input,
            source
        }),
        pull().prop_map(Command::StartPull),
        name().prop_map(|job| Command::StopPull { job }),
        Just(Command::GetStats),
        Just(Command::Shutdown),
    ]
}

pub fn ctl_to_engine() -> impl Strategy<Value = CtlToEngine> {
    prop_oneof![
        (any::<u16>(), ".{0,30}").prop_map(|(protocol, client)| CtlToEngine::Hello { protocol, client }),
        (any::<u64>(), command())
            .prop_map(|(id, command)| CtlToEngine::Command { id: CommandId(id), command }),
    ]
}

fn state() -> impl Strategy<Value = FlowState> {
    prop_oneof![
        Just(FlowState::Running),
        Just(FlowState::Stopped),
        ".{0,40}".prop_map(|reason| FlowState::Failed { reason }),
    ]
}

fn finite_db() -> impl Strategy<Value = f32> {
    prop_oneof![Just(f32::NEG_INFINITY), -200.0f32..10.0]
}

pub fn engine_to_ctl() -> impl Strategy<Value = EngineToCtl> {
    let reject_kind = prop::sample::select(vec![
        RejectKind::InvalidArgument,
        RejectKind::NotFound,
        RejectKind::LimitReached,
        RejectKind::Busy,
        RejectKind::Unsupported,
        RejectKind::Internal,
    ]);
    let manifest = (
        name(),
        any::<u64>(),
        ".{0,40}",
        any::<i64>(),
        any::<i64>(),
        any::<u64>(),
        any::<u64>(),
        "[0-9a-f]{64}",
        any::<bool>(),
    )
        .prop_map(
            |(job, sequence, path, utc_start_ms, first_pts, duration_90k, bytes, sha256, truncated)| {
                SegmentManifest {
                    job,
                    sequence,
                    path,
                    utc_start_ms,
                    first_pts,
                    duration_90k,
                    bytes,
                    sha256,
                    truncated,
                    discontinuity: truncated,
                    gap_90k: duration_90k / 2,
                }
            },
        );
    let meter =
        (finite_db(), finite_db()).prop_map(|(peak_dbfs, rms_dbfs)| ChannelMeter { peak_dbfs, rms_dbfs });
    let loudness = (-70.0f64..0.0, -70.0f64..0.0, -70.0f64..0.0, -70.0f64..6.0).prop_map(|(m, s, i, tp)| {
        Loudness { momentary_lufs: m, short_term_lufs: s, integrated_lufs: i, true_peak_dbtp: tp }
    });
    let realtime = (
        prop::option::of(any::<u32>()),
        prop::option::of(1u8..99),
        any::<bool>(),
        prop::collection::vec(".{0,20}", 0..3),
    )
        .prop_map(|(pinned_cpu, fifo_priority, memory_locked, refusals)| RealtimeReport {
            pinned_cpu,
            fifo_priority,
            memory_locked,
            refusals,
        });
    let flow_stats = (
        "[a-z]{1,8}",
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        prop::collection::vec(any::<u64>(), 0..9),
        realtime,
    )
        .prop_map(
            |(
                flow,
                frames,
                periods,
                deadline_misses,
                underruns,
                max_process_us,
                process_load_histogram,
                realtime,
            )| FlowStats {
                flow,
                frames,
                periods,
                deadline_misses,
                late_periods: deadline_misses / 5,
                max_late_us: max_process_us / 3,
                underruns,
                overruns: underruns / 2,
                xruns: deadline_misses / 3,
                max_process_us,
                process_ns_total: frames / 3,
                process_load_histogram,
                realtime,
                latency_frames: (frames % 3 == 0).then_some(frames / 7),
                drift_ppm: (frames % 5 == 0).then_some((frames % 200) as f64 - 100.0),
                input_ring_low: (frames % 2 == 0).then_some((frames % 1001) as f32 / 1000.0),
                output_ring_high: (frames % 3 == 1).then_some((periods % 1001) as f32 / 1000.0),
                srt_links: (0..frames % 3)
                    .map(|i| SrtLinkStats {
                        name: format!("airlift-srt-tx-{i}"),
                        connected: i % 2 == 0,
                        state: if i % 2 == 0 { SrtLinkState::Connected } else { SrtLinkState::Waiting },
                        connects: frames / 11,
                        refusals: i,
                        rtt_ms: (frames % 997) as f64 / 10.0,
                        bandwidth_mbps: 12.5,
                        lost: periods % 17,
                        retransmits: periods % 13,
                        bytes: frames,
                        dropped_frames: periods % 7,
                        inserted_frames: frames % 5,
                        drift_ppm: (i % 2 == 1).then_some((frames % 20_000) as f64 - 10_000.0),
                    })
                    .collect(),
                input_sources: (0..periods % 3)
                    .map(|i| InputSourceStats {
                        input: format!("in{i}"),
                        active: "primary".into(),
                        sources: vec!["primary".into(), format!("backup{i}")],
                        selected: (i == 1).then(|| format!("backup{i}")),
                        switches: frames % 9,
                    })
                    .collect(),
            },
        );
    prop_oneof![
        (any::<u16>(), ".{0,20}", any::<u32>()).prop_map(|(protocol, engine_version, pid)| {
            EngineToCtl::Hello { protocol, engine_version, pid }
        }),
        any::<u64>().prop_map(|id| EngineToCtl::Accepted { id: CommandId(id) }),
        (any::<u64>(), reject_kind, ".{0,60}").prop_map(|(id, kind, message)| {
            EngineToCtl::Rejected { id: CommandId(id), reason: Rejection { kind, message } }
        }),
        (name(), state()).prop_map(|(flow, state)| EngineToCtl::FlowState { flow, state }),
        (name(), state()).prop_map(|(job, state)| EngineToCtl::PullState { job, state }),
        manifest.prop_map(EngineToCtl::SegmentClosed),
        (name(), prop::collection::vec(meter, 0..8), prop::option::of(loudness))
            .prop_map(|(flow, channels, loudness)| EngineToCtl::Meters { flow, channels, loudness }),
        (name(), name(), any::<u64>()).prop_map(|(flow, node, total)| EngineToCtl::Xrun {
            flow,
            node,
            total
        }),
        (name(), any::<bool>()).prop_map(|(flow, silent)| EngineToCtl::Silence { flow, silent }),
        (
            prop::collection::vec(flow_stats, 0..3),
            prop::collection::vec(pull_stats(), 0..3),
            prop::collection::vec(segment_job_stats(), 0..3)
        )
            .prop_map(|(flows, pulls, segment_jobs)| EngineToCtl::Stats(EngineStats {
                flows,
                pulls,
                segment_jobs
            })),
        (
            name(),
            "[a-z0-9-]{1,24}",
            prop_oneof![
                Just(SrtLinkState::Waiting),
                Just(SrtLinkState::Connected),
                Just(SrtLinkState::Refused)
            ],
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(flow, link, state, connects, refusals)| EngineToCtl::SrtLink {
                flow,
                link,
                state,
                connects,
                refusals
            }),
        (name(), name(), "[a-z0-9/._-]{1,40}", any::<u64>(), any::<u64>(), "[0-9a-f]{64}").prop_map(
            |(flow, output, path, duration_ms, bytes, sha256)| EngineToCtl::RecordingClosed(
                RecordingClosed { flow, output, path, duration_ms, bytes, sha256 }
            )
        ),
        (
            name(),
            name(),
            name(),
            prop_oneof![
                Just(SwitchReason::Loss),
                Just(SwitchReason::Silence),
                Just(SwitchReason::Recovered),
                Just(SwitchReason::Forced),
                Just(SwitchReason::Auto),
            ]
        )
            .prop_map(|(flow, input, source, reason)| EngineToCtl::InputSwitched {
                flow,
                input,
                source,
                reason
            }),
    ]
}

fn pull_stats() -> impl Strategy<Value = PullStats> {
    ("[a-z0-9-]{1,16}", prop::array::uniform8(any::<u64>()), prop::option::of(any::<u64>())).prop_map(
        |(job, v, since_key_frame_ms)| PullStats {
            job,
            connects: v[0],
            bytes: v[1],
            packets: v[2],
            bitrate_bps: v[3],
            cc_errors: v[4],
            unparsable_packets: v[5],
            pcr_jitter_us: v[6],
            segments: v[7],
            forced_cuts: v[0] / 7,
            since_key_frame_ms,
            junk_bytes: v[1] / 3,
        },
    )
}

fn segment_job_stats() -> impl Strategy<Value = SegmentJobStats> {
    ("[a-z0-9-]{1,16}", prop::array::uniform7(any::<u64>())).prop_map(|(job, v)| SegmentJobStats {
        job,
        stalls: v[0],
        held_bytes: v[1],
        held_bytes_max: v[2],
        dropped_bytes: v[3],
        gaps: v[4],
        gap_90k: v[5],
        junk_bytes: v[6],
    })
}
