//! ALSA capture and playback against real alsa-lib, without sound hardware:
//! alsa-lib's own `file` and `null` plugins from an asoundrc passed through
//! `ALSA_CONFIG_PATH`, cross-checked with `arecord`/`aplay`.
//!
//! The asoundrc and every input file are written once, before any test
//! touches alsa-lib (see [`setup`]); each test uses devices of its own, so the
//! tests may run in parallel. The `file` plugin runs as fast as the engine
//! reads and writes, and reads stale data past the end of its input, so every
//! input is longer than what a test reads.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use airlift_engine::FlowBuilder;
use airlift_engine::assembly::{BuildError, BuildOptions, build};
use airlift_engine::flow::{render, start};
use airlift_engine::graph::alsa::{AlsaError, bytes_per_sample};
use airlift_engine::node::Node;
use airlift_engine::rt::thread::RealtimeRequest;
use airlift_ipc::message::{EngineToCtl, FlowState};
use airlift_ipc::spec::{
    AlsaSpec, ClockSpec, ConsumerSpec, DesiredState, FlowSpec, ProcessorSpec, ProducerSpec, SampleFormat,
};
use airlift_ipc::units::{Channels, GainDb, Name, Periods};

const RATE: u32 = 48_000;
const PERIOD: usize = 256;
const CHANNELS: usize = 2;
/// Input length of the file-backed capture devices: 3 s.
const INPUT_FRAMES: usize = 3 * RATE as usize;

const FORMATS: [(SampleFormat, &str, &str); 5] = [
    (SampleFormat::S16Le, "s16", "S16_LE"),
    (SampleFormat::S24_3le, "s24_3", "S24_3LE"),
    (SampleFormat::S24Le, "s24", "S24_LE"),
    (SampleFormat::S32Le, "s32", "S32_LE"),
    (SampleFormat::FloatLe, "float", "FLOAT_LE"),
];

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Random samples that the format carries exactly through f32: full-range
/// integers of up to 24 significant bits, floats in [-1, 1) (never -0.0).
fn input_bytes(format: SampleFormat, frames: usize, seed: u64) -> Vec<u8> {
    let mut noise = Noise(seed | 1);
    let mut out = Vec::with_capacity(frames * CHANNELS * bytes_per_sample(format));
    for _ in 0..frames * CHANNELS {
        let r = noise.next();
        match format {
            SampleFormat::S16Le => out.extend_from_slice(&(r as i16).to_le_bytes()),
            SampleFormat::S24_3le => out.extend_from_slice(&((r as i32) >> 8).to_le_bytes()[..3]),
            SampleFormat::S24Le => out.extend_from_slice(&((r as i32) >> 8).to_le_bytes()),
            SampleFormat::S32Le => out.extend_from_slice(&((r as i32) & !0xff).to_le_bytes()),
            SampleFormat::FloatLe => {
                let x = ((r >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
                let x = if x == 0.0 { 0.5 } else { x };
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    out
}

/// Asserts equal bytes, naming the first difference (not printing megabytes).
fn same_bytes(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {i}");
    }
}

const FLAKY_GONE: &str =
    "pcm.flaky { type file slave.pcm { type null } file \"/dev/full\" format \"raw\" }\n";

/// Redefines `flaky` as a working device: the asoundrc is replaced by
/// rename, and alsa-lib re-reads a changed configuration on the next open.
fn device_comes_back(dir: &Path) {
    let mut rc = std::fs::read_to_string(dir.join("asoundrc.base")).unwrap();
    rc.push_str(&format!(
        "pcm.flaky {{ type file slave.pcm {{ type null }} file \"{}\" format \"raw\" }}\n",
        dir.join("flaky_out.raw").display()
    ));
    std::fs::write(dir.join("asoundrc.new"), rc).unwrap();
    std::fs::rename(dir.join("asoundrc.new"), dir.join("asoundrc")).unwrap();
}

/// The test directory, with its asoundrc in force for this process.
fn setup() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // The directory outlives the tests (a static cannot clean up):
        // remove those of earlier runs whose process is gone.
        for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("airlift-alsa-").and_then(|p| p.parse::<u32>().ok())
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = std::env::temp_dir().join(format!("airlift-alsa-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let mut rc = String::from(
            "pcm.nul { type null hint.description \"Discards playback, captures silence\" }\n\
             pcm.s16only { type linear slave { pcm { type null } format S16_LE } hint.description \"Linear only\" }\n",
        );
        for (format, tag, _) in FORMATS {
            std::fs::write(dir.join(format!("in_{tag}.raw")), input_bytes(format, INPUT_FRAMES, tag.len() as u64 * 7919))
                .unwrap();
            for (who, _) in [("engine", 0), ("alsautils", 1), ("cli", 2)] {
                rc.push_str(&format!(
                    "pcm.cap_{who}_{tag} {{ type file slave.pcm {{ type null }} file \"/dev/null\" infile \"{d}/in_{tag}.raw\" format \"raw\" hint.description \"capture {tag}\" }}\n\
                     pcm.play_{who}_{tag} {{ type file slave.pcm {{ type null }} file \"{d}/out_{who}_{tag}.raw\" format \"raw\" }}\n"
                ));
            }
        }
        std::fs::write(dir.join("in_rt.raw"), input_bytes(SampleFormat::FloatLe, 10 * RATE as usize, 42)).unwrap();
        rc.push_str(&format!(
            "pcm.cap_rt {{ type file slave.pcm {{ type null }} file \"/dev/null\" infile \"{d}/in_rt.raw\" format \"raw\" }}\n\
             pcm.play_rt {{ type file slave.pcm {{ type null }} file \"{d}/out_rt.raw\" format \"raw\" }}\n"
        ));
        for name in ["nul_xrun", "nul_busy", "nul_clock", "nul_lost", "nul_change", "nul_cli", "nul_cli_bad"] {
            rc.push_str(&format!("pcm.{name} {{ type null }}\n"));
        }
        rc.push_str("pcm.r44k { type plug slave { pcm { type null } rate 44100 } }\n");
        let path = dir.join("asoundrc");
        std::fs::write(dir.join("asoundrc.base"), &rc).unwrap();
        // A playback device whose writes fail (the file plugin reports EIO),
        // as an unplugged card's do; `device_comes_back` redefines it.
        rc.push_str(FLAKY_GONE);
        std::fs::write(&path, rc).unwrap();
        // SAFETY: every test calls `setup` before anything reads the
        // environment or touches alsa-lib, and the OnceLock makes the other
        // test threads wait here until the variable is set.
        unsafe { std::env::set_var("ALSA_CONFIG_PATH", &path) };
        dir
    })
}

fn alsa(device: &str, format: SampleFormat, periods: u32) -> AlsaSpec {
    AlsaSpec {
        device: device.into(),
        channels: Channels::new(CHANNELS as u16).unwrap(),
        format,
        periods: Periods::new(periods).unwrap(),
    }
}

/// capture → input gain 0 dB → bus gain 0 dB → playback, clocked by the capture.
fn duplex(name: &str, capture: AlsaSpec, playback: AlsaSpec) -> FlowSpec {
    let mut spec = FlowBuilder::new(name)
        .unwrap()
        .sample_rate(RATE)
        .unwrap()
        .period(PERIOD as u32)
        .unwrap()
        .channels(CHANNELS as u16)
        .unwrap()
        .input("mic", ProducerSpec::AlsaCapture(capture))
        .unwrap()
        .processor(ProcessorSpec::Gain { gain_db: GainDb::new(0.0).unwrap() })
        .output("monitor", ConsumerSpec::AlsaPlayback(playback))
        .unwrap()
        .spec();
    spec.clock = ClockSpec::Device { node: Name::new("mic").unwrap() };
    spec
}

#[test]
fn capture_to_playback_is_sample_exact_for_every_format_as_arecord_and_aplay_agree() {
    let dir = setup();
    for (format, tag, alsa_name) in FORMATS {
        let periods = 3u32;
        let spec = duplex(
            &format!("exact-{tag}"),
            alsa(&format!("cap_engine_{tag}"), format, periods),
            alsa(&format!("play_engine_{tag}"), format, periods),
        );
        let seconds = 2.0;
        let summary = render(&spec, &BuildOptions::default(), seconds, vec![]).unwrap();
        let frames = (seconds * f64::from(RATE)) as usize;
        assert_eq!(summary.stats.frames, frames as u64);
        assert_eq!(summary.stats.xruns, 0);

        let frame_bytes = CHANNELS * bytes_per_sample(format);
        let input = std::fs::read(dir.join(format!("in_{tag}.raw"))).unwrap();
        let output = std::fs::read(dir.join(format!("out_engine_{tag}.raw"))).unwrap();
        // The playback queue starts with (periods − 1) periods of silence.
        let prefill = (periods as usize - 1) * PERIOD;
        assert_eq!(output.len(), (prefill + frames) * frame_bytes, "{tag}: output length");
        assert!(output[..prefill * frame_bytes].iter().all(|&b| b == 0), "{tag}: prefill is silence");
        same_bytes(&output[prefill * frame_bytes..], &input[..frames * frame_bytes], tag);
        // Latency: capture period + playback queue = periods × period,
        // and the queue is exactly where the input landed in the output.
        assert_eq!(summary.stats.latency_frames, Some((PERIOD + prefill) as u64), "{tag}");
        assert_eq!(summary.stats.latency_frames, Some(periods as usize as u64 * PERIOD as u64));
        cross_check_with_alsa_utils(dir, format, tag, alsa_name, &output);
    }
}

/// `arecord` from the same kind of capture device and `aplay` to the same
/// kind of playback device give what the engine read and wrote.
fn cross_check_with_alsa_utils(
    dir: &Path,
    format: SampleFormat,
    tag: &str,
    alsa_name: &str,
    engine_out: &[u8],
) {
    {
        let frames = 187 * PERIOD; // a whole number of periods: aplay pads the last one
        let frame_bytes = CHANNELS * bytes_per_sample(format);
        let input = std::fs::read(dir.join(format!("in_{tag}.raw"))).unwrap();
        let recorded = dir.join(format!("arecord_{tag}.raw"));
        let common = ["-f", alsa_name, "-c", "2", "-r", "48000", "-t", "raw", "-q"];
        let status = Command::new("arecord")
            .args(["-D", &format!("cap_alsautils_{tag}")])
            .args(common)
            .args(["--period-size=256", "--buffer-size=768", "-s", &frames.to_string()])
            .arg(&recorded)
            .status()
            .expect("arecord is installed");
        assert!(status.success(), "arecord {tag}");
        let recorded = std::fs::read(&recorded).unwrap();
        same_bytes(
            &recorded,
            &input[..frames * frame_bytes],
            &format!("{tag}: arecord reads the input as-is"),
        );

        let status = Command::new("aplay")
            .args(["-D", &format!("play_alsautils_{tag}")])
            .args(common)
            .args(["--period-size=256", "--buffer-size=768"])
            .arg(dir.join(format!("arecord_{tag}.raw")))
            .status()
            .expect("aplay is installed");
        assert!(status.success(), "aplay {tag}");
        let played = std::fs::read(dir.join(format!("out_alsautils_{tag}.raw"))).unwrap();
        // aplay adds at most one period of silence when it drains.
        let (played, padding) = played.split_at(played.len().min(frames * frame_bytes));
        assert!(
            padding.len() <= PERIOD * frame_bytes && padding.iter().all(|&b| b == 0),
            "{tag}: aplay padding"
        );
        same_bytes(played, &input[..frames * frame_bytes], &format!("{tag}: aplay writes the input as-is"));
        // The engine's output of the same input, after its prefill, is the same.
        let prefill = 2 * PERIOD * frame_bytes;
        same_bytes(&engine_out[prefill..][..played.len()], played, &format!("{tag}: engine and aplay"));
    }
}

#[test]
fn device_clocked_flow_runs_on_its_audio_thread_and_stays_exact() {
    let dir = setup();
    let spec =
        duplex("rt", alsa("cap_rt", SampleFormat::FloatLe, 2), alsa("play_rt", SampleFormat::FloatLe, 2));
    let flow = start(&spec, &BuildOptions::default(), &RealtimeRequest::default(), vec![]).unwrap();
    let started = Instant::now();
    // The file plugin runs as fast as it is read: a device-clocked thread
    // does far more periods than the internal clock's one per 5.3 ms.
    while flow.stats().frames < RATE as u64 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    let stats = flow.stats();
    flow.stop();
    assert!(stats.frames >= RATE as u64, "only {} frames in {elapsed:?}", stats.frames);
    assert!(elapsed < Duration::from_millis(900), "1 s of audio took {elapsed:?}: not device-clocked");
    assert_eq!(stats.deadline_misses, 0);
    assert_eq!(stats.latency_frames, Some(2 * PERIOD as u64));
    let input = std::fs::read(dir.join("in_rt.raw")).unwrap();
    let output = std::fs::read(dir.join("out_rt.raw")).unwrap();
    let frame_bytes = CHANNELS * 4;
    let prefill = PERIOD * frame_bytes;
    assert!(output[..prefill].iter().all(|&b| b == 0));
    let n = (output.len() - prefill).min(input.len());
    assert!(n >= RATE as usize * frame_bytes);
    assert!(output[prefill..prefill + n] == input[..n], "played audio differs from captured audio");
}

#[test]
fn injected_xruns_are_counted_reported_and_the_flow_goes_on() {
    setup();
    let spec = duplex(
        "xrun",
        alsa("nul_xrun", SampleFormat::S16Le, 3),
        alsa("nul_xrun", SampleFormat::S16Le, 3), // duplex on one device
    );
    let mut node = Node::new(BuildOptions::default(), RealtimeRequest::default());
    let mut events = Vec::new();
    node.add_flow(spec, vec![], &mut events).unwrap();
    let flow = node.flow("xrun").unwrap();
    let injectors = flow.xrun_injectors().to_vec();
    assert_eq!(injectors.len(), 2, "capture and playback");
    std::thread::sleep(Duration::from_millis(20));
    injectors[0].inject(3);
    injectors[1].inject(2);
    let started = Instant::now();
    while node.flow("xrun").unwrap().stats().xruns < 5 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = node.flow("xrun").unwrap().stats();
    std::thread::sleep(Duration::from_millis(50));
    let after = node.flow("xrun").unwrap().stats();
    assert_eq!(after.xruns, 5);
    assert!(after.periods > before.periods + 10, "the flow stalled after xruns: {before:?} → {after:?}");

    events.clear();
    node.poll(&mut events);
    let xruns: Vec<(String, u64)> = events
        .iter()
        .filter_map(|e| match e {
            EngineToCtl::Xrun { flow, node, total } => {
                assert_eq!(flow.as_str(), "xrun");
                Some((node.to_string(), *total))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        xruns,
        [
            ("mic".into(), 1),
            ("mic".into(), 2),
            ("mic".into(), 3),
            ("monitor".into(), 1),
            ("monitor".into(), 2)
        ]
    );
    assert!(
        !events.iter().any(|e| matches!(e, EngineToCtl::FlowState { state: FlowState::Failed { .. }, .. }))
    );
    node.shutdown(&mut events);
}

fn build_error(spec: &FlowSpec) -> BuildError {
    build(spec, &BuildOptions::default(), vec![]).expect_err("the build must fail")
}

#[test]
fn a_wrong_device_name_lists_the_pcms_that_exist() {
    setup();
    let spec =
        duplex("wrong", alsa("no_such_pcm", SampleFormat::S16Le, 2), alsa("nul", SampleFormat::S16Le, 2));
    let err = build_error(&spec);
    let text = err.to_string();
    match err {
        BuildError::Alsa { field, source: AlsaError::NotFound { device, available }, .. } => {
            assert_eq!(device, "no_such_pcm");
            assert_eq!(field, "input[mic].producer");
            assert!(available.contains(&"nul".to_owned()), "{available:?}");
            assert!(available.contains(&"cap_engine_s16".to_owned()), "{available:?}");
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(text.contains("not found") && text.contains("nul"), "{text}");
}

#[test]
fn an_unsupported_format_lists_the_formats_offered() {
    setup();
    let spec =
        duplex("fmt", alsa("s16only", SampleFormat::FloatLe, 2), alsa("nul", SampleFormat::FloatLe, 2));
    match build_error(&spec) {
        BuildError::Alsa { source: AlsaError::FormatUnsupported { format, offered, .. }, .. } => {
            assert_eq!(format, "FLOAT_LE");
            assert!(
                offered.contains(&"S16_LE".to_owned()) && offered.contains(&"S24_3LE".to_owned()),
                "{offered:?}"
            );
            assert!(!offered.contains(&"FLOAT_LE".to_owned()));
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn a_busy_device_names_the_flow_holding_it() {
    setup();
    let first =
        duplex("holder", alsa("nul_busy", SampleFormat::S16Le, 2), alsa("nul", SampleFormat::S16Le, 2));
    let held = build(&first, &BuildOptions::default(), vec![]).unwrap();
    let second =
        duplex("second", alsa("nul_busy", SampleFormat::S16Le, 2), alsa("nul", SampleFormat::S16Le, 2));
    match build_error(&second) {
        BuildError::Alsa { source: AlsaError::Busy { device, holder }, .. } => {
            assert_eq!(device, "nul_busy");
            assert_eq!(holder.as_deref(), Some("holder"));
        }
        other => panic!("wrong error: {other}"),
    }
    held.finish();
    build(&second, &BuildOptions::default(), vec![]).expect("free again once the holder is gone").finish();
}

#[test]
fn a_realtime_flow_with_a_device_must_be_clocked_by_a_device() {
    setup();
    let mut spec =
        duplex("clock", alsa("nul_clock", SampleFormat::S16Le, 2), alsa("nul", SampleFormat::S16Le, 2));
    spec.clock = ClockSpec::Internal;
    match build_error(&spec) {
        BuildError::NeedsDeviceClock { field, .. } => assert_eq!(field, "input[mic].producer"),
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn an_unsupported_rate_gives_the_range_offered() {
    setup();
    let spec = duplex("rate", alsa("r44k", SampleFormat::S16Le, 2), alsa("nul", SampleFormat::S16Le, 2));
    match build_error(&spec) {
        BuildError::Alsa { source: AlsaError::RateUnsupported { rate, min, max, .. }, .. } => {
            assert_eq!(rate, RATE);
            assert_eq!((min, max), (44_100, 44_100));
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn a_lost_device_fails_the_flow_and_it_reopens_when_the_device_returns() {
    let dir = setup();
    let spec =
        duplex("lost", alsa("nul_lost", SampleFormat::S16Le, 2), alsa("flaky", SampleFormat::S16Le, 2));
    let mut node = Node::new(BuildOptions::default(), RealtimeRequest::default());
    let mut events = Vec::new();
    node.add_flow(spec, vec![], &mut events).unwrap();
    let wait_for = |node: &mut Node, what: &dyn Fn(&EngineToCtl) -> bool| {
        let started = Instant::now();
        let mut seen = Vec::new();
        while started.elapsed() < Duration::from_secs(10) {
            let mut events = Vec::new();
            node.poll(&mut events);
            if let Some(e) = events.iter().find(|e| what(e)) {
                return e.clone();
            }
            seen.extend(events);
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("event not seen; got {seen:?}");
    };
    let failed =
        wait_for(&mut node, &|e| matches!(e, EngineToCtl::FlowState { state: FlowState::Failed { .. }, .. }));
    let EngineToCtl::FlowState { flow, state: FlowState::Failed { reason } } = failed else { unreachable!() };
    assert_eq!(flow.as_str(), "lost");
    assert!(reason.contains("monitor") && reason.contains("I/O error"), "{reason}");
    assert!(node.flow("lost").is_none(), "a failed flow is not running");

    device_comes_back(dir);
    wait_for(&mut node, &|e| matches!(e, EngineToCtl::FlowState { state: FlowState::Running, .. }));
    let flow = node.flow("lost").expect("running again");
    let before = flow.stats().periods;
    std::thread::sleep(Duration::from_millis(30));
    assert!(node.flow("lost").unwrap().stats().periods > before);
    node.shutdown(&mut events);
}

#[test]
fn changing_a_device_flow_restarts_it_and_a_bad_change_keeps_the_old_one() {
    setup();
    let first = duplex(
        "change",
        alsa("nul_change", SampleFormat::S16Le, 2),
        alsa("nul_change", SampleFormat::S16Le, 2),
    );
    let mut node = Node::new(BuildOptions::default(), RealtimeRequest::default());
    let mut events = Vec::new();
    node.apply_state(&DesiredState { flows: vec![first.clone()], ..Default::default() }, &mut events)
        .unwrap();

    // A changed spec on the same devices: the old flow must let go of them.
    let mut second = first.clone();
    second.processors.push(ProcessorSpec::Meter);
    node.apply_state(&DesiredState { flows: vec![second.clone()], ..Default::default() }, &mut events)
        .unwrap();
    assert_eq!(node.flow("change").unwrap().spec(), &second);
    let before = node.flow("change").unwrap().stats().periods;
    std::thread::sleep(Duration::from_millis(20));
    assert!(node.flow("change").unwrap().stats().periods > before, "the restarted flow runs");

    // A change to a device that does not exist: the error, and the flow as it was.
    let mut third = second.clone();
    third.inputs[0].producer = ProducerSpec::AlsaCapture(alsa("no_such_pcm", SampleFormat::S16Le, 2));
    let err = node
        .apply_state(&DesiredState { flows: vec![third], ..Default::default() }, &mut events)
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    assert_eq!(node.flow("change").expect("the old flow runs again").spec(), &second);
    node.shutdown(&mut events);
}

fn engine_cli(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlift-engine"));
    cmd.args(args).env("ALSA_CONFIG_PATH", dir.join("asoundrc")).current_dir(dir);
    cmd
}

#[test]
fn the_engine_binary_renders_and_runs_alsa_flows_from_toml() {
    let dir = setup();
    // render: S24_3LE through the binary, from the TOML form of the spec.
    let flows = dir.join("cli.toml");
    std::fs::write(
        &flows,
        r#"
[[flow]]
name = "cli"
channels = 2
period = 256
clock = { device = { node = "mic" } }

[[flow.input]]
name = "mic"
producer = { alsa_capture = { device = "cap_cli_s24_3", channels = 2, format = "S24_3LE", periods = 4 } }

[[flow.output]]
name = "monitor"
consumer = { alsa_playback = { device = "play_cli_s24_3", channels = 2, format = "S24_3LE", periods = 4 } }
"#,
    )
    .unwrap();
    let out =
        engine_cli(dir, &["render", "--flows", flows.to_str().unwrap(), "--seconds", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let input = std::fs::read(dir.join("in_s24_3.raw")).unwrap();
    let output = std::fs::read(dir.join("out_cli_s24_3.raw")).unwrap();
    let prefill = 3 * PERIOD * 6;
    assert!(output[..prefill].iter().all(|&b| b == 0));
    same_bytes(&output[prefill..], &input[..RATE as usize * 6], "render through the binary");

    // run: device-clocked on the null plugin until SIGINT, then a clean exit.
    let run_flows = dir.join("cli_run.toml");
    std::fs::write(
        &run_flows,
        std::fs::read_to_string(&flows)
            .unwrap()
            .replace("cap_cli_s24_3", "nul_cli")
            .replace("play_cli_s24_3", "nul_cli"),
    )
    .unwrap();
    let child = engine_cli(dir, &["run", "--flows", run_flows.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("flow cli:") && stdout.contains("0 deadline misses"), "{stdout}");
    assert!(stdout.contains("0 device xruns, duplex latency 1024 frames"), "{stdout}");

    // run: an ALSA flow on the internal clock is refused with the reason.
    let bad = dir.join("cli_bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&run_flows)
            .unwrap()
            .replace("clock = { device = { node = \"mic\" } }\n", "")
            .replace("nul_cli", "nul_cli_bad"),
    )
    .unwrap();
    let out = engine_cli(dir, &["run", "--flows", bad.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("needs the flow clocked by a device"), "{stderr}");
}
