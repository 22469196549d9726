//! SRT end to end against real peers on 127.0.0.1: `srt-live-transmit` and
//! `ffmpeg`, as callers and listeners, plain and encrypted, with peers
//! killed and restarted mid-stream. Every peer is a [`Peer`] (killed on drop)
//! and every wait is bounded.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Peer, Probe, TempDir, decode_errors, engine_running, ffprobe, free_port, frequency, loud_part,
    median_frequency, peak_db, read_wav, run_engine, wait_for,
};

const LOG_WAIT: Duration = Duration::from_secs(15);

fn log_has(dir: &Path, needle: &str) -> bool {
    std::fs::read_to_string(dir.join("engine.log")).is_ok_and(|l| l.contains(needle))
}

fn log_count(dir: &Path, needle: &str) -> usize {
    std::fs::read_to_string(dir.join("engine.log")).map_or(0, |l| l.matches(needle).count())
}

/// `srt-live-transmit` listening on `port`, writing what it receives to `out`.
fn slt_listener(port: u16, query: &str, out: &Path) -> Peer {
    let file = File::create(out).unwrap();
    Peer::spawn(
        "srt-live-transmit",
        Command::new("timeout")
            .args(["60", "srt-live-transmit", "-chunk:1316", "-q"])
            .arg(format!("srt://:{port}?mode=listener{query}"))
            .arg("file://con")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::null()),
    )
}

/// `ffmpeg` calling an SRT listener and storing the TS it receives, with its
/// timestamps unchanged.
fn ffmpeg_receiver(port: u16, query: &str, out: &Path) -> Peer {
    Peer::spawn(
        "ffmpeg receiver",
        Command::new("timeout")
            .args(["60", "ffmpeg", "-v", "error", "-nostdin", "-y", "-i"])
            .arg(format!("srt://127.0.0.1:{port}?mode=caller{query}"))
            .args(["-c", "copy", "-copyts", "-muxdelay", "0", "-muxpreload", "0", "-f", "mpegts"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// `ffmpeg -re` sending a stereo 440 Hz tone at -12 dBFS peak, AAC in TS, for `seconds`.
fn ffmpeg_sender(port: u16, query: &str, seconds: u32) -> Peer {
    Peer::spawn(
        "ffmpeg sender",
        Command::new("timeout")
            .args(["60", "ffmpeg", "-v", "error", "-nostdin", "-re", "-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:sample_rate=44100:duration={seconds}"))
            .args(["-af", "volume=6dB", "-ac", "2", "-c:a", "aac", "-b:a", "128k", "-f", "mpegts"])
            .arg(format!("srt://127.0.0.1:{port}?pkt_size=1316&linger=2{query}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

fn srt_output(name: &str, codec: &str, srt: &str) -> String {
    format!(
        r#"
[[flow.output]]
name = "{name}"
consumer = {{ encoded = {{ codec = "{codec}", sink = {{ srt = {{ {srt} }} }} }} }}

[[flow.output]]
name = "{name}-ref"
consumer = {{ encoded = {{ codec = "{codec}", sink = {{ file = {{ path = "{name}-ref.ts" }} }} }} }}
"#
    )
}

const TONE_FLOW: &str = r#"
[[flow]]
name = "live"
channels = 2

[[flow.input]]
name = "sine"
producer = { test_signal = { kind = "sine", frequency = 1000.0, level_dbfs = -20.0, channels = 2 } }
"#;

/// The received stream is the tail of what the engine encoded: same codec
/// and shape, same end within one codec frame, and it decodes cleanly.
fn assert_tail_of_reference(received: &Path, reference: &Path, codec: &str, frame: f64) {
    let got: Probe = ffprobe(received);
    let want = ffprobe(reference);
    assert_eq!(got.codec, codec, "{got:?}");
    assert_eq!((got.rate, got.channels), (48_000, 2), "{got:?}");
    assert!(got.duration > 1.0, "{codec}: only {} s received", got.duration);
    assert!(
        (got.end() - want.end()).abs() <= frame / 48_000.0 + 1e-6,
        "{codec}: received ends at {} s, engine encoded until {} s",
        got.end(),
        want.end()
    );
    let errors = decode_errors(received);
    assert!(errors.is_empty(), "{codec}: decoding reported: {errors}");
}

const CODECS: [(&str, &str, f64); 3] =
    [("aac", "aac", 1024.0), ("opus", "opus", 960.0), ("mp2", "mp2", 1152.0)];

#[test]
fn engine_caller_to_srt_live_transmit_listener_for_aac_opus_mp2() {
    let dir = TempDir::new("srt-caller");
    let mut flows = TONE_FLOW.to_owned();
    let mut peers = Vec::new();
    for (codec, _, _) in CODECS {
        let port = free_port();
        peers.push(slt_listener(port, "", &dir.path(&format!("{codec}.ts"))));
        flows += &srt_output(
            codec,
            codec,
            &format!(r#"mode = {{ caller = {{ host = "127.0.0.1", port = {port} }} }}"#),
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut engine = run_engine(&dir.0, &flows);
    assert!(wait_for(LOG_WAIT, || log_count(&dir.0, "SRT output connected") == 3), "not all connected");
    std::thread::sleep(Duration::from_secs(3));
    let status = engine.interrupt(Duration::from_secs(10)).expect("engine exits");
    assert!(status.success(), "engine: {status}");
    std::thread::sleep(Duration::from_millis(300));
    // SIGINT lets srt-live-transmit flush its output.
    for mut p in peers {
        p.interrupt(Duration::from_secs(5));
    }
    for (codec, name, frame) in CODECS {
        assert_tail_of_reference(
            &dir.path(&format!("{codec}.ts")),
            &dir.path(&format!("{codec}-ref.ts")),
            name,
            frame,
        );
    }
}

#[test]
fn engine_listener_to_ffmpeg_caller_for_aac_opus_mp2() {
    let dir = TempDir::new("srt-listener");
    let mut flows = TONE_FLOW.to_owned();
    let mut ports = Vec::new();
    for (codec, _, _) in CODECS {
        let port = free_port();
        ports.push(port);
        flows += &srt_output(
            codec,
            codec,
            &format!("mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true"),
        );
    }
    let mut engine = run_engine(&dir.0, &flows);
    std::thread::sleep(Duration::from_millis(500));
    let peers: Vec<Peer> = CODECS
        .iter()
        .zip(&ports)
        .map(|((codec, _, _), port)| ffmpeg_receiver(*port, "", &dir.path(&format!("{codec}.ts"))))
        .collect();
    assert!(wait_for(LOG_WAIT, || log_count(&dir.0, "SRT output connected") == 3), "not all connected");
    std::thread::sleep(Duration::from_secs(3));
    let status = engine.interrupt(Duration::from_secs(10)).expect("engine exits");
    assert!(status.success(), "engine: {status}");
    // The receivers end by themselves when the engine closes the link.
    for mut p in peers {
        p.wait(Duration::from_secs(10));
    }
    for (codec, name, frame) in CODECS {
        assert_tail_of_reference(
            &dir.path(&format!("{codec}.ts")),
            &dir.path(&format!("{codec}-ref.ts")),
            name,
            frame,
        );
    }
}

fn srt_input_flow(srt: &str) -> String {
    format!(
        r#"
[[flow]]
name = "rx"
channels = 2

[[flow.input]]
name = "contrib"
producer = {{ srt_in = {{ srt = {{ {srt} }}, jitter_ms = 200 }} }}

[[flow.input]]
name = "quiet"
producer = {{ test_signal = {{ kind = "silence", channels = 2 }} }}

[[flow.output]]
name = "rec"
consumer = {{ wav = {{ path = "rx.wav", format = "f32" }} }}
"#
    )
}

/// The recorded tone: 440 Hz at the sent level, for about `seconds`. The
/// sender's `-ac 2` spreads lavfi's mono sine over two channels at -3 dB; a
/// stereo input reaches the stereo bus at unity.
fn assert_tone(dir: &Path, seconds: f64) {
    let (rate, channels, samples) = read_wav(&dir.join("rx.wav"));
    for c in 0..usize::from(channels) {
        let tone = loud_part(&samples, usize::from(channels), c);
        // Away from the codec's fade-in and fade-out at the edges.
        let f = frequency(rate, &tone[tone.len() / 10..tone.len() * 9 / 10]);
        assert!((f - 440.0).abs() < 0.5, "channel {c}: {f} Hz");
        // lavfi sine: -18.06 dBFS peak, +6 dB, -3.01 dB mono → stereo.
        let peak = peak_db(&tone);
        assert!((peak - (-18.06 + 6.0 - 3.01)).abs() < 1.0, "channel {c}: peak {peak} dBFS");
        let got = tone.len() as f64 / f64::from(rate);
        assert!((got - seconds).abs() < 0.1, "channel {c}: {got} s of tone, sent {seconds}");
    }
}

#[test]
fn ffmpeg_into_an_engine_srt_input_is_recorded_with_its_frequency_and_level() {
    let dir = TempDir::new("srt-in");
    let port = free_port();
    let mut engine = run_engine(
        &dir.0,
        &srt_input_flow(&format!("mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true")),
    );
    engine_running(&dir.0);
    let mut sender = ffmpeg_sender(port, "", 3);
    assert!(sender.wait(Duration::from_secs(20)).is_some_and(|s| s.success()), "ffmpeg sender failed");
    assert!(wait_for(LOG_WAIT, || log_has(&dir.0, "SRT input disconnected")));
    std::thread::sleep(Duration::from_millis(300));
    let status = engine.interrupt(Duration::from_secs(10)).expect("engine exits");
    assert!(status.success(), "engine: {status}");
    assert_tone(&dir.0, 3.0);
}

#[test]
fn encrypted_both_ways_and_a_wrong_passphrase_is_refused_without_harm() {
    let dir = TempDir::new("srt-crypto");
    let (good, bad, input) = (free_port(), free_port(), free_port());
    let secret = "correct-horse-battery";
    let mut good_peer =
        slt_listener(good, "&passphrase=correct-horse-battery&pbkeylen=32", &dir.path("good.ts"));
    let _bad_peer = slt_listener(bad, "&passphrase=something-else-entirely&pbkeylen=32", &dir.path("bad.ts"));
    std::thread::sleep(Duration::from_millis(300));
    let mut flows = srt_input_flow(&format!(
        r#"mode = {{ listener = {{ port = {input} }} }}, passphrase = "{secret}", key_length = "aes256""#
    ));
    let out = |port| {
        format!(
            r#"mode = {{ caller = {{ host = "127.0.0.1", port = {port} }} }}, passphrase = "{secret}", key_length = "aes256""#
        )
    };
    flows += &srt_output("good", "aac", &out(good));
    flows += &srt_output("bad", "aac", &out(bad));
    let mut engine = run_engine(&dir.0, &flows);
    assert!(wait_for(LOG_WAIT, || log_has(&dir.0, "SRT output connected")));

    // A caller with the wrong passphrase is refused by the engine's listener…
    let mut intruder = ffmpeg_sender(input, "&passphrase=not-the-secret-at-all", 2);
    let refused = intruder.wait(Duration::from_secs(20));
    assert!(refused.is_some_and(|s| !s.success()), "a wrong passphrase must not connect");
    assert!(wait_for(LOG_WAIT, || log_has(&dir.0, "Incorrect passphrase")), "the refusal is logged");
    // …and the right one is decoded.
    let mut sender = ffmpeg_sender(input, "&passphrase=correct-horse-battery&pbkeylen=32", 3);
    assert!(sender.wait(Duration::from_secs(20)).is_some_and(|s| s.success()), "ffmpeg sender failed");
    assert!(wait_for(LOG_WAIT, || log_has(&dir.0, "SRT input disconnected")));
    std::thread::sleep(Duration::from_millis(300));

    // The engine's own caller with a mismatching passphrase is told BADSECRET.
    assert!(log_has(&dir.0, "BADSECRET"), "the engine logs the refusal");
    let status = engine.interrupt(Duration::from_secs(10)).expect("engine exits");
    assert!(status.success(), "engine: {status}");
    std::thread::sleep(Duration::from_millis(300));
    good_peer.interrupt(Duration::from_secs(5));
    assert_eq!(std::fs::metadata(dir.path("bad.ts")).unwrap().len(), 0, "nothing reached the wrong listener");
    assert_tail_of_reference(&dir.path("good.ts"), &dir.path("good-ref.ts"), "aac", 1024.0);
    assert_tone(&dir.0, 3.0);
}

#[test]
fn a_killed_peer_is_reconnected_and_audio_resumes() {
    let dir = TempDir::new("srt-reconnect");
    let (out_port, in_port) = (free_port(), free_port());
    let mut listener = slt_listener(out_port, "", &dir.path("first.ts"));
    std::thread::sleep(Duration::from_millis(300));
    let mut flows =
        srt_input_flow(&format!("mode = {{ listener = {{ port = {in_port} }} }}, allow_unencrypted = true"));
    flows += &srt_output(
        "out",
        "mp2",
        &format!(r#"mode = {{ caller = {{ host = "127.0.0.1", port = {out_port} }} }}"#),
    );
    let mut engine = run_engine(&dir.0, &flows);
    assert!(wait_for(LOG_WAIT, || log_count(&dir.0, "SRT output connected") == 1));

    // Input: a sender killed mid-stream, then a new one.
    let mut sender = ffmpeg_sender(in_port, "", 30);
    assert!(wait_for(LOG_WAIT, || log_has(&dir.0, "SRT input decoding")));
    std::thread::sleep(Duration::from_secs(1));
    sender.kill();
    // Output: the listener killed mid-stream.
    listener.kill();

    // Both come back before the engine's no-data watchdog (3 s) has dropped
    // the dead input: a silent connection does not keep the new caller out.
    std::thread::sleep(Duration::from_millis(1500));
    let mut listener = slt_listener(out_port, "", &dir.path("second.ts"));
    let mut sender = ffmpeg_sender(in_port, "", 4);
    assert!(wait_for(LOG_WAIT, || log_has(&dir.0, "SRT output disconnected")), "output loss noticed");
    assert!(
        wait_for(LOG_WAIT, || log_has(&dir.0, "SRT input disconnected")),
        "input loss noticed (watchdog)"
    );
    assert!(wait_for(LOG_WAIT, || log_count(&dir.0, "SRT output connected") == 2), "output reconnected");
    assert!(sender.wait(Duration::from_secs(20)).is_some_and(|s| s.success()), "second sender failed");
    assert!(wait_for(LOG_WAIT, || log_count(&dir.0, "SRT input decoding") == 2), "input reconnected");
    std::thread::sleep(Duration::from_secs(1));
    let status = engine.interrupt(Duration::from_secs(10)).expect("engine exits");
    assert!(status.success(), "the flow survived: {status}");
    std::thread::sleep(Duration::from_millis(300));
    listener.interrupt(Duration::from_secs(5));
    // The link statistics count both connections of each link.
    let summary = std::fs::read_to_string(dir.path("engine.out")).unwrap();
    for link in ["airlift-srt-tx-out", "airlift-srt-rx-contrib"] {
        let line = summary
            .lines()
            .find(|l| l.contains(link))
            .unwrap_or_else(|| panic!("no stats for {link}: {summary}"));
        assert!(line.contains("2 connects"), "{line}");
    }

    let second = ffprobe(&dir.path("second.ts"));
    assert_eq!(second.codec, "mp2");
    assert!(second.duration > 1.0, "audio resumed on the output: {second:?}");
    let errors = decode_errors(&dir.path("second.ts"));
    assert!(errors.is_empty(), "{errors}");
    // The recording holds the first sender's tone, a gap, then the second's.
    let (rate, channels, samples) = read_wav(&dir.path("rx.wav"));
    let left: Vec<f64> = samples.iter().step_by(usize::from(channels)).copied().collect();
    let runs = loud_runs(&left, rate);
    assert!(runs.len() >= 2, "tone, gap, tone: {runs:?}");
    let (start, end) = *runs.last().unwrap();
    assert!((end - start) as f64 / f64::from(rate) > 2.0, "audio resumed on the input: {runs:?}");
    let tone = &left[start..end];
    let f = median_frequency(rate, &tone[tone.len() / 10..tone.len() * 9 / 10]);
    assert!((f - 440.0).abs() < 0.5, "resumed tone at {f} Hz");
}

#[test]
fn a_listener_takes_one_caller_with_its_stream_id_and_refuses_the_rest() {
    let dir = TempDir::new("srt-streamid");
    let port = free_port();
    let mut engine = run_engine(
        &dir.0,
        &srt_input_flow(&format!(
            r#"mode = {{ listener = {{ port = {port} }} }}, stream_id = "studio-a", allow_unencrypted = true"#
        )),
    );
    engine_running(&dir.0);
    let mut stranger = ffmpeg_sender(port, "&streamid=studio-b", 2);
    assert!(
        stranger.wait(Duration::from_secs(20)).is_some_and(|s| !s.success()),
        "an unknown stream id must not connect"
    );
    assert!(wait_for(LOG_WAIT, || log_has(&dir.0, "unknown stream id")), "the refusal is logged");
    let mut sender = ffmpeg_sender(port, "&streamid=studio-a", 3);
    assert!(wait_for(LOG_WAIT, || log_has(&dir.0, "SRT input decoding")));
    // While it is served, a second caller (right id) is refused, not queued.
    let mut second = ffmpeg_sender(port, "&streamid=studio-a", 1);
    assert!(
        second.wait(Duration::from_secs(20)).is_some_and(|s| !s.success()),
        "a second caller must not connect"
    );
    // The refusal is counted: refusals after the first are logged as a
    // count, every 10 s at most or when the listener closes.
    assert!(!log_has(&dir.0, "busy with another caller"), "a second refusal line within 10 s");
    assert!(sender.wait(Duration::from_secs(20)).is_some_and(|s| s.success()), "ffmpeg sender failed");
    assert!(wait_for(LOG_WAIT, || log_has(&dir.0, "SRT input disconnected")));
    std::thread::sleep(Duration::from_millis(300));
    let status = engine.interrupt(Duration::from_secs(10)).expect("engine exits");
    assert!(status.success(), "engine: {status}");
    assert!(log_has(&dir.0, "refused 1 more caller(s)"), "the second refusal is counted");
    assert_tone(&dir.0, 3.0);
}

/// Sample ranges where the signal stays above -40 dBFS, in 10 ms blocks,
/// ignoring gaps shorter than 100 ms.
fn loud_runs(samples: &[f64], rate: u32) -> Vec<(usize, usize)> {
    let block = rate as usize / 100;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, chunk) in samples.chunks(block).enumerate() {
        if chunk.iter().any(|s| s.abs() > 0.01) {
            let (start, end) = (i * block, i * block + chunk.len());
            match runs.last_mut() {
                Some(last) if start - last.1 < 10 * block => last.1 = end,
                _ => runs.push((start, end)),
            }
        }
    }
    runs
}

/// A structural change to a flow whose output listens on an SRT port (here
/// its bitrate) rebuilds it on the same port: the old graph lets the port go
/// before the new one binds it, and the new listener serves the next caller.
#[test]
fn a_flow_holding_an_srt_listener_is_rebuilt_on_its_port() {
    use airlift_engine::Node;
    use airlift_engine::assembly::BuildOptions;
    use airlift_engine::rt::thread::RealtimeRequest;
    use airlift_ipc::spec::DesiredState;

    let dir = TempDir::new("srt-rebuild");
    let port = free_port();
    let state = |bitrate: u32| -> DesiredState {
        let toml = format!(
            "{TONE_FLOW}\n[[flow.output]]\nname = \"out\"\nconsumer = {{ encoded = {{ codec = \"aac\", bitrate = {bitrate}, \
             sink = {{ srt = {{ mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true }} }} }} }}\n"
        );
        toml::from_str(&toml).unwrap()
    };
    let mut node = Node::new(BuildOptions::default(), RealtimeRequest::default());
    let mut events = Vec::new();
    node.apply_state(&state(128_000), &mut events).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    node.apply_state(&state(64_000), &mut events).expect("the flow is rebuilt on its port");
    assert!(node.flow("live").is_some(), "the flow runs");

    let out = dir.path("after.ts");
    let mut peer = ffmpeg_receiver(port, "", &out);
    assert!(
        wait_for(LOG_WAIT, || std::fs::metadata(&out).is_ok_and(|m| m.len() > 40_000)),
        "the rebuilt listener sends nothing"
    );
    node.shutdown(&mut events);
    peer.wait(Duration::from_secs(10));
    let probe = ffprobe(&out);
    assert_eq!((probe.codec.as_str(), probe.rate, probe.channels), ("aac", 48_000, 2), "{probe:?}");
    let errors = decode_errors(&out);
    assert!(errors.is_empty(), "decoding reported: {errors}");
    // The new graph's encoder: 64 kbit/s of AAC, not the old 128.
    let kbps = common::aac_kbps(&out, probe.duration);
    assert!((50.0..90.0).contains(&kbps), "{kbps} kbit/s of AAC: still the old encoder?");
}
