//! The whole audio path — mixing with ramps, pan and mute changes, meters,
//! loudness, silence detection, ring input and output, a graph swap — runs
//! 100 000 periods on a thread whose allocations are counted, and must
//! allocate and free nothing.

use std::sync::atomic::Ordering;

use airlift_engine::FlowBuilder;
use airlift_engine::assembly::{BuildOptions, build};
use airlift_engine::flow::{RtCommand, audio_driver};
use airlift_engine::graph::rt_graph::ParamChange;
use airlift_ipc::spec::{ProcessorSpec, WavFormat};
use airlift_ipc::units::LevelDbfs;

mod counting_alloc;
use counting_alloc::{ALLOCS, ARMED, FREES};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const PERIODS: u64 = 100_000;

/// The tests of this file run one at a time: the first spins its audio
/// thread flat out, which would starve the second's real-time sender and
/// receiver on a 2-core machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn audio_path_never_allocates() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("airlift-rt-safety-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A looped WAV input exercises the input ring from a worker thread.
    let input = dir.join("in.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&input, spec).unwrap();
    for i in 0..48_000i32 {
        w.write_sample(((i * 37) % 20_000 - 10_000) as i16).unwrap();
        w.write_sample(((i * 53) % 20_000 - 10_000) as i16).unwrap();
    }
    w.finalize().unwrap();

    let make = |name: &str, out: &str| {
        FlowBuilder::new(name)
            .unwrap()
            .period(64)
            .unwrap()
            .sine("tone", 997.0, -12.0)
            .unwrap()
            .sine("low", 50.0, -30.0)
            .unwrap()
            .wav_file("file", input.to_str().unwrap(), true)
            .unwrap()
            .processor(ProcessorSpec::Gain { gain_db: airlift_ipc::units::GainDb::new(-1.0).unwrap() })
            .processor(ProcessorSpec::Meter)
            .processor(ProcessorSpec::Loudness)
            .processor(ProcessorSpec::SilenceDetector {
                threshold_dbfs: LevelDbfs::new(-60.0).unwrap(),
                hold_ms: 50,
            })
            .output(
                "rec",
                airlift_ipc::spec::ConsumerSpec::Wav {
                    path: airlift_ipc::units::SafePath::new(dir.join(out).to_str().unwrap()).unwrap(),
                    format: WavFormat::F32,
                },
            )
            .unwrap()
            .null("void")
            .unwrap()
            .spec()
    };
    let options = BuildOptions::default();
    let mut first = build(&make("a", "a.wav"), &options, vec![]).unwrap();
    let mut second = build(&make("a", "b.wav"), &options, vec![]).unwrap();
    let graph_a = std::mem::replace(&mut first.graph, Box::new(placeholder()));
    let swap_in = std::mem::replace(&mut second.graph, Box::new(placeholder()));
    let (mut control, mut driver) = audio_driver(graph_a);

    let audio = std::thread::spawn(move || {
        ARMED.with(|a| a.set(true));
        let mut periods = 0;
        while driver.run_period(1_333_333) {
            periods += 1;
        }
        ARMED.with(|a| a.set(false));
        (periods, driver)
    });

    let mut swap = Some(swap_in);
    let mut sent = 0u64;
    let mut returned = Vec::new();
    while sent < PERIODS {
        let change = match sent % 4 {
            0 => ParamChange::Gain(0, 0.5 + (sent % 7) as f32 * 0.05),
            1 => ParamChange::Pan(1, ((sent % 11) as f32 / 5.5) - 1.0),
            2 => ParamChange::Mute(2, sent % 8 == 2),
            _ => ParamChange::Gain(2, 0.8),
        };
        if control.send(RtCommand::Param(change)).is_ok() {
            sent += 1;
        }
        if sent == PERIODS / 2
            && let Some(g) = swap.take()
        {
            control.send(RtCommand::Swap(g)).unwrap();
        }
        if let Some(old) = control.take_returned() {
            returned.push(old);
        }
        for ring in first.reports.iter_mut().chain(second.reports.iter_mut()) {
            while ring.pop().is_ok() {}
        }
        std::thread::yield_now();
    }
    // Let the audio thread run its share of periods, then stop it.
    loop {
        let stats =
            first.counters.periods.load(Ordering::Relaxed) + second.counters.periods.load(Ordering::Relaxed);
        if stats >= PERIODS {
            break;
        }
        std::thread::yield_now();
    }
    while control.send(RtCommand::Stop).is_err() {
        std::thread::yield_now();
    }
    let (periods, driver) = audio.join().unwrap();
    while let Some(old) = control.take_returned() {
        returned.push(old);
    }
    assert!(periods >= PERIODS, "ran {periods} periods");
    assert_eq!(returned.len(), 1, "the swapped-out graph came back to the control thread");
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 0, "allocations on the audio thread");
    assert_eq!(FREES.load(Ordering::Relaxed), 0, "frees on the audio thread");
    drop(driver);
    drop(returned);
    first.finish();
    second.finish();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn placeholder() -> airlift_engine::graph::rt_graph::RtGraph {
    use airlift_engine::graph::rt_graph::{Pacing, RtGraph};
    RtGraph::new(
        Pacing::Realtime,
        airlift_engine::dsp::mix::MixKernel::Scalar,
        64,
        48_000,
        2,
        vec![],
        vec![],
        vec![],
        Default::default(),
    )
}

/// An SRT input (a real ffmpeg sender) read through its adaptive resampler,
/// inside a failover with a tone backup, paced at real time for 6 s: the
/// audio thread resamples, re-buffers, switches and crossfades without
/// allocating or freeing.
#[test]
fn a_resampled_srt_input_with_failover_never_allocates() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use airlift_ipc::spec::{BackupSpec, FailoverSpec, ProducerSpec, SrtInSpec, TestSignalSpec};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let secret = "alloc-test-passphrase";
    let srt: SrtInSpec = toml::from_str(&format!(
        "jitter_ms = 100\nsrt = {{ mode = {{ listener = {{ port = {port} }} }}, passphrase = \"{secret}\" }}"
    ))
    .unwrap();
    let tone: TestSignalSpec = toml::from_str("kind = \"sine\"\nfrequency = 1000.0\nchannels = 2").unwrap();
    let mut spec = FlowBuilder::new("srt")
        .unwrap()
        .input("contrib", ProducerSpec::SrtIn(srt))
        .unwrap()
        .null("void")
        .unwrap()
        .spec();
    let backup = BackupSpec {
        name: airlift_ipc::units::Name::new("tone").unwrap(),
        producer: ProducerSpec::TestSignal(tone),
    };
    spec.inputs[0].failover = Some(FailoverSpec {
        loss_ms: 50,
        crossfade_ms: 10,
        return_after_ms: 200,
        ..FailoverSpec::new(vec![backup])
    });
    let mut built = build(&spec, &BuildOptions::default(), vec![]).unwrap();
    let mut sender = Command::new("timeout")
        .args([
            "30",
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=20",
        ])
        .args(["-ac", "2", "-c:a", "aac", "-f", "mpegts"])
        .arg(format!("srt://127.0.0.1:{port}?pkt_size=1316&passphrase={secret}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let connected = Instant::now();
    while built.links[0].snapshot().state != airlift_engine::net::link::LinkState::Connected {
        assert!(connected.elapsed() < Duration::from_secs(15), "the sender did not connect");
        std::thread::sleep(Duration::from_millis(20));
    }
    let graph = std::mem::replace(&mut built.graph, Box::new(placeholder()));
    let (mut control, mut driver) = audio_driver(graph);
    let audio = std::thread::spawn(move || {
        let period = Duration::from_nanos(1_333_333);
        let start = Instant::now();
        ARMED.with(|a| a.set(true));
        let mut periods = 0u32;
        while driver.run_period(1_333_333) {
            periods += 1;
            // Real-time pace (sleeping allocates nothing), with a burst of
            // 200 periods at once every second: the ring runs dry, the
            // input re-buffers and the failover switches.
            if periods % 750 >= 200 {
                let due = start + period * periods;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        }
        ARMED.with(|a| a.set(false));
        (periods, driver)
    });
    // At least 6 s, and on a loaded machine (a slow sender start) up to
    // 20 s, until the failover has switched away and back.
    let started = Instant::now();
    let failover = built.failovers[0].1.clone();
    while started.elapsed() < Duration::from_secs(6)
        || (failover.switches() < 2 && started.elapsed() < Duration::from_secs(20))
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    while control.send(RtCommand::Stop).is_err() {
        std::thread::yield_now();
    }
    let (periods, driver) = audio.join().unwrap();
    let _ = sender.kill();
    let _ = sender.wait();
    let switches = built.failovers[0].1.switches();
    let snapshot = built.links[0].snapshot();
    assert!(periods > 3_000, "ran {periods} periods");
    assert!(switches >= 2, "the failover switched ({switches})");
    assert!(snapshot.drift_ppm.is_some(), "the resampler ran: {snapshot:?}");
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 0, "allocations on the audio thread");
    assert_eq!(FREES.load(Ordering::Relaxed), 0, "frees on the audio thread");
    drop(driver);
    for ring in &mut built.reports {
        while ring.pop().is_ok() {}
    }
    built.finish();
}
