//! Transitions keep the archive whole (ARCHITECTURE.md, "Transitions are
//! where data is lost"): sequence numbers never reused across a drained
//! spool, rebuilds that keep unchanged outputs running and close changed
//! ones normally, recordings never truncated, one engine per spool, and one
//! flow that cannot be built never keeping the others down.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use airlift_engine::archive::spool::Spool;
use airlift_engine::assembly::BuildOptions;
use airlift_engine::node::Node;
use airlift_engine::rt::thread::RealtimeRequest;
use airlift_ipc::message::{EngineToCtl, FlowState, SegmentManifest};
use airlift_ipc::spec::DesiredState;
use common::{Peer, TempDir, ffprobe_flat, free_port};

fn segments_flow(bitrate: u32, job: &str) -> String {
    format!(
        r#"
[[flow]]
name = "seg"
channels = 1

[[flow.input]]
name = "sine"
producer = {{ test_signal = {{ kind = "sine", frequency = 1000.0, level_dbfs = -20.0, channels = 1 }} }}

[[flow.output]]
name = "ts"
consumer = {{ encoded = {{ codec = "aac", bitrate = {bitrate}, sink = {{ segments = {{ job = "{job}", target_seconds = 1 }} }} }} }}
"#
    )
}

/// Every manifest of `job` in `spool`, by sequence number.
fn manifests(spool: &Path, job: &str) -> Vec<SegmentManifest> {
    let mut out = Vec::new();
    let mut stack = vec![spool.join(job)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap());
            }
        }
    }
    out.sort_by_key(|m: &SegmentManifest| m.sequence);
    out
}

fn node(spool: &Path, base: &Path) -> Node {
    let options =
        BuildOptions { spool: Spool::new(spool), base_dir: base.to_path_buf(), ..BuildOptions::default() };
    Node::new(options, RealtimeRequest::default())
}

/// Polls `node` for `d`, collecting its events.
fn run_for(node: &mut Node, d: Duration, events: &mut Vec<EngineToCtl>) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        node.poll(events);
        std::thread::sleep(Duration::from_millis(20));
    }
    node.poll(events);
}

fn failures(events: &[EngineToCtl]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            EngineToCtl::FlowState { flow, state: FlowState::Failed { reason } } => {
                Some(format!("{flow}: {reason}"))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn sequence_numbers_survive_a_drained_spool_and_never_wrap() {
    let dir = TempDir::new("seq-drained");
    let spool = dir.path("spool");
    let state: DesiredState = toml::from_str(&segments_flow(128_000, "prog")).unwrap();
    let mut events = Vec::new();
    let mut n = node(&spool, &dir.0);
    n.apply_state(&state, &mut events).unwrap();
    run_for(&mut n, Duration::from_millis(2_600), &mut events);
    n.stop_flow("seg", &mut events).unwrap();
    let first = manifests(&spool, "prog");
    assert!(first.len() >= 2, "{first:?}");
    let last = first.last().unwrap().sequence;
    // The uploader drains the spool: every segment and manifest leaves.
    for m in &first {
        let ts = spool.join(&m.path);
        std::fs::remove_file(&ts).unwrap();
        std::fs::remove_file(ts.with_extension("json")).unwrap();
    }
    n.start_flow("seg", &mut events).unwrap();
    run_for(&mut n, Duration::from_millis(1_500), &mut events);
    n.shutdown(&mut events);
    let second = manifests(&spool, "prog");
    assert!(!second.is_empty());
    assert!(
        second.iter().all(|m| m.sequence > last),
        "numbers reused after a drain: before ..={last}, after {:?}",
        second.iter().map(|m| m.sequence).collect::<Vec<_>>()
    );
    assert!(second[0].discontinuity, "a restarted job's first segment is marked");
    assert!(failures(&events).is_empty(), "{:?}", failures(&events));

    // The mark is what counts, not the files: a fresh node continues too.
    let mut n = node(&spool, &dir.0);
    for m in &second {
        let ts = spool.join(&m.path);
        std::fs::remove_file(&ts).unwrap();
        std::fs::remove_file(ts.with_extension("json")).unwrap();
    }
    let high = second.last().unwrap().sequence;
    n.apply_state(&state, &mut events).unwrap();
    run_for(&mut n, Duration::from_millis(1_300), &mut events);
    n.shutdown(&mut events);
    assert!(manifests(&spool, "prog").iter().all(|m| m.sequence > high));

    // A number at the end of the range is refused, not wrapped: the flow
    // fails with the reason and the planted file is left as it was.
    let planted = spool.join("prog").join("prog-18446744073709551615.ts");
    std::fs::write(&planted, b"planted").unwrap();
    let mut n = node(&spool, &dir.0);
    let mut events = Vec::new();
    n.apply_state(&state, &mut events).unwrap();
    n.shutdown(&mut events);
    let failed = failures(&events);
    assert!(failed.iter().any(|f| f.contains("exhausted")), "{failed:?} {events:?}");
    assert_eq!(std::fs::read(&planted).unwrap(), b"planted");
}

#[test]
fn a_bitrate_reload_closes_the_old_segment_and_the_flow_runs_on() {
    let dir = TempDir::new("seq-reload");
    let spool = dir.path("spool");
    let mut n = node(&spool, &dir.0);
    let mut events = Vec::new();
    n.apply_state(&toml::from_str(&segments_flow(128_000, "prog")).unwrap(), &mut events).unwrap();
    run_for(&mut n, Duration::from_millis(2_500), &mut events);
    n.apply_state(&toml::from_str(&segments_flow(64_000, "prog")).unwrap(), &mut events).unwrap();
    run_for(&mut n, Duration::from_millis(2_500), &mut events);
    assert!(n.flow("seg").is_some(), "the flow stopped");
    n.shutdown(&mut events);
    assert!(failures(&events).is_empty(), "{:?}", failures(&events));
    let all = manifests(&spool, "prog");
    let seqs: Vec<u64> = all.iter().map(|m| m.sequence).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "gaps or reuse: {seqs:?}");
    assert!(all.iter().all(|m| !m.truncated), "a segment was closed as a crash leftover: {all:#?}");
    assert!(!spool.join("prog").join("quarantine").exists(), "something was quarantined");
    let marked: Vec<u64> = all.iter().filter(|m| m.discontinuity).map(|m| m.sequence).collect();
    assert_eq!(marked.len(), 1, "exactly the first segment of the new encoder is marked: {marked:?}");
    // Both encoders' segments are there and decode: the total is the run.
    let total: f64 = all.iter().map(|m| m.duration_90k as f64 / 90_000.0).sum();
    assert!(total > 4.0 && total < 5.6, "{total} s archived of a 5 s run");
    let before: Vec<_> = all.iter().filter(|m| m.sequence < marked[0]).collect();
    assert!(!before.is_empty());
    // PTS go on across the encoder change: the new encoder starts where
    // the flow's timeline is, not at 0 (within a frame and the old
    // encoder's flushed tail).
    for pair in all.windows(2) {
        let expected = pair[0].first_pts + pair[0].duration_90k as i64;
        let step = pair[1].first_pts - expected;
        println!("segment {} starts {step} ticks after the end of {}", pair[1].sequence, pair[0].sequence);
        assert!(
            step.abs() < 90 * 100,
            "PTS jump of {step} ticks (90 kHz) before segment {}",
            pair[1].sequence
        );
    }
    for m in &all {
        let path = spool.join(&m.path);
        let probe = ffprobe_flat(&path, "stream=codec_name");
        assert_eq!(probe("streams.stream.0.codec_name").as_deref(), Some("aac"), "{}", m.path);
    }
}

fn ogg_flow(gain_db: f64) -> String {
    format!(
        r#"
[[flow]]
name = "show"

[[flow.input]]
name = "tone"
producer = {{ test_signal = {{ kind = "sine", frequency = 440.0, level_dbfs = -20.0 }} }}

[[flow.processor]]
gain = {{ gain_db = {gain_db:.1} }}

[[flow.output]]
name = "rec"
consumer = {{ record = {{ path = "show.ogg", codec = "libopus" }} }}
"#
    )
}

fn duration_of(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0.0)
}

fn oggs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ogg"))
        .collect();
    v.sort();
    v
}

#[test]
fn recordings_keep_every_second_across_a_rebuild_and_a_kill() {
    let dir = TempDir::new("rec-transitions");
    let spool = dir.path("spool");
    let started = Instant::now();
    let mut n = node(&spool, &dir.0);
    let mut events = Vec::new();
    n.apply_state(&toml::from_str(&ogg_flow(0.0)).unwrap(), &mut events).unwrap();
    run_for(&mut n, Duration::from_millis(2_000), &mut events);
    // A processor change rebuilds the graph; the recorder's spec is the
    // same, so it keeps writing the same file.
    n.apply_state(&toml::from_str(&ogg_flow(-1.0)).unwrap(), &mut events).unwrap();
    run_for(&mut n, Duration::from_millis(2_000), &mut events);
    n.shutdown(&mut events);
    let in_process = started.elapsed().as_secs_f64();
    let files = oggs(&dir.0);
    assert_eq!(files, vec![dir.path("show.ogg")], "the rebuild started a new file");
    let first = duration_of(&dir.path("show.ogg"));
    assert!((first - in_process).abs() < 0.5, "show.ogg holds {first} s of a {in_process} s run");
    let closed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            EngineToCtl::RecordingClosed(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 1, "{closed:?}");
    let bytes = std::fs::read(dir.path("show.ogg")).unwrap();
    assert_eq!(closed[0].bytes, bytes.len() as u64);
    assert!((closed[0].duration_ms as f64 / 1000.0 - first).abs() < 0.1, "{closed:?} vs {first}");

    // The engine binary on the same file, killed: the earlier recording
    // stays as it was, the new run goes to a new file.
    let flows = dir.path("flows.toml");
    std::fs::write(&flows, ogg_flow(0.0)).unwrap();
    let run = |dir: &TempDir| {
        Peer::spawn(
            "airlift-engine",
            Command::new(env!("CARGO_BIN_EXE_airlift-engine"))
                .args(["run", "--flows", flows.to_str().unwrap()])
                .env("NO_COLOR", "1")
                .current_dir(&dir.0)
                .stderr(std::fs::File::create(dir.path("engine.log")).unwrap()),
        )
    };
    let t = Instant::now();
    let mut engine = run(&dir);
    std::thread::sleep(Duration::from_millis(3_000));
    engine.kill();
    let killed_run = t.elapsed().as_secs_f64();
    assert_eq!(std::fs::read(dir.path("show.ogg")).unwrap(), bytes, "the earlier recording changed");
    let files = oggs(&dir.0);
    assert_eq!(files.len(), 2, "{files:?}");
    let rotated = files.iter().find(|p| **p != dir.path("show.ogg")).unwrap().clone();
    let name = rotated.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("show-") && name.ends_with("Z.ogg"), "{name}");
    let killed = duration_of(&rotated);
    // What a kill loses: the audio in flight (ring, encoder, the last Ogg
    // page), plus the engine's start-up, which the wall clock counts.
    assert!(killed_run - killed < 1.0, "the killed run's file holds {killed} s of {killed_run} s");
}

#[test]
fn a_flow_that_cannot_be_built_fails_alone_and_runs_once_its_port_is_free() {
    let dir = TempDir::new("isolation");
    let port = free_port();
    // Another socket holds the port.
    let holder = std::net::UdpSocket::bind(("0.0.0.0", port)).unwrap();
    let toml = format!(
        r#"
[[flow]]
name = "a"

[[flow.input]]
name = "tone"
producer = {{ test_signal = {{ kind = "sine", frequency = 440.0, level_dbfs = -20.0 }} }}

[[flow.output]]
name = "rec"
consumer = {{ wav = {{ path = "a.wav" }} }}

[[flow]]
name = "b"

[[flow.input]]
name = "contribution"
producer = {{ srt_in = {{ srt = {{ mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true }}, jitter_ms = 200 }} }}

[[flow.output]]
name = "void"
consumer = "null"
"#
    );
    let state: DesiredState = toml::from_str(&toml).unwrap();
    let mut n = node(&dir.path("spool"), &dir.0);
    let mut events = Vec::new();
    n.apply_state(&state, &mut events).unwrap();
    assert!(n.flow("a").is_some(), "flow a does not run");
    assert!(n.flow("b").is_none());
    let failed = failures(&events);
    assert!(failed.iter().any(|f| f.starts_with("b:") && f.contains(&port.to_string())), "{failed:?}");
    run_for(&mut n, Duration::from_millis(1_500), &mut events);
    assert!(n.flow("b").is_none(), "b runs although its port is held");
    drop(holder);
    let freed = Instant::now();
    let mut running = false;
    while freed.elapsed() < Duration::from_secs(10) && !running {
        run_for(&mut n, Duration::from_millis(100), &mut events);
        running = n.flow("b").is_some();
    }
    let waited = freed.elapsed();
    assert!(running, "b did not start after its port was freed");
    // Backoff 0.5 s doubling: the third retry at most 4 s after the failure.
    assert!(waited < Duration::from_secs(5), "b started {waited:?} after its port was freed");
    n.shutdown(&mut events);
}

#[test]
fn a_second_engine_on_the_same_spool_refuses_and_touches_nothing() {
    let dir = TempDir::new("spool-owner");
    let flows = dir.path("flows.toml");
    std::fs::write(&flows, segments_flow(96_000, "prog")).unwrap();
    let engine = |log: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlift-engine"));
        cmd.args(["run", "--flows", flows.to_str().unwrap(), "--spool"])
            .arg(dir.path("spool"))
            .env("NO_COLOR", "1")
            .current_dir(&dir.0)
            .stderr(std::fs::File::create(dir.path(log)).unwrap());
        cmd
    };
    let mut first = Peer::spawn("airlift-engine", &mut engine("first.log"));
    assert!(common::wait_for(Duration::from_secs(10), || !manifests(&dir.path("spool"), "prog").is_empty()));
    let out = engine("second.log").output().unwrap();
    assert!(!out.status.success());
    let log = std::fs::read_to_string(dir.path("second.log")).unwrap();
    assert!(log.contains("owned by another engine") && log.contains("pid"), "{log}");
    assert!(first.interrupt(Duration::from_secs(10)).is_some_and(|s| s.success()));
    let all = manifests(&dir.path("spool"), "prog");
    let seqs: Vec<u64> = all.iter().map(|m| m.sequence).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert!(all.iter().all(|m| !m.truncated), "the second engine recovered the first one's partial");
}

/// A flow whose input has failed over to its backup, with a recorder and a
/// gain processor `gain_db`: the processor is what a reload changes.
fn failover_flow(port: u16, gain_db: f64) -> String {
    format!(
        r#"
[[flow]]
name = "fo"
channels = 1

[[flow.input]]
name = "contrib"
producer = {{ srt_in = {{ srt = {{ mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true }}, jitter_ms = 200 }} }}

[flow.input.failover]
loss_ms = 300
crossfade_ms = 20
return_after_ms = 2000

[[flow.input.failover.backup]]
name = "tone"
producer = {{ test_signal = {{ kind = "sine", frequency = 1000.0, level_dbfs = -20.0, channels = 1 }} }}

[[flow.processor]]
gain = {{ gain_db = {gain_db:.1} }}

[[flow.output]]
name = "rec"
consumer = {{ wav = {{ path = "fo.wav", format = "f32" }} }}
"#
    )
}

#[test]
fn a_rebuild_keeps_playing_the_backup_a_failed_over_input_was_playing() {
    let dir = TempDir::new("failover-rebuild");
    let port = free_port();
    let mut n = node(&dir.path("spool"), &dir.0);
    let mut events = Vec::new();
    // No sender on the primary: the backup plays after the loss time.
    n.apply_state(&toml::from_str(&failover_flow(port, 0.0)).unwrap(), &mut events).unwrap();
    run_for(&mut n, Duration::from_millis(1_500), &mut events);
    // A processor change rebuilds the graph, inputs and failover included.
    n.apply_state(&toml::from_str(&failover_flow(port, -1.0)).unwrap(), &mut events).unwrap();
    run_for(&mut n, Duration::from_millis(1_500), &mut events);
    n.shutdown(&mut events);
    let switches: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            EngineToCtl::InputSwitched { source, reason, .. } => {
                Some((source.to_string(), format!("{reason:?}")))
            }
            _ => None,
        })
        .collect();
    assert_eq!(switches, vec![("tone".to_owned(), "Loss".to_owned())], "{events:?}");
    assert!(failures(&events).is_empty(), "{:?}", failures(&events));
    // A flow with an SRT listener is stopped and started again by a
    // rebuild (its port cannot be bound twice), so its recording goes on in
    // a second file: that one holds the backup's tone from its first
    // period, where a failover starting on the lost primary would have
    // recorded the loss time (300 ms) of silence first.
    let files: Vec<PathBuf> = {
        let mut f: Vec<PathBuf> = std::fs::read_dir(&dir.0)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wav"))
            .collect();
        f.sort();
        f
    };
    assert_eq!(files.len(), 2, "{files:?}");
    let second = files.iter().find(|p| **p != dir.path("fo.wav")).unwrap();
    let (rate, _, samples) = common::read_wav(second);
    let first = samples.iter().position(|s| s.abs() > 0.01).expect("the backup was heard");
    assert!(first < rate as usize / 50, "the rebuilt input was silent for {first} samples");
    let mut quiet = 0usize;
    let mut longest = 0usize;
    for s in &samples[first..] {
        quiet = if s.abs() < 0.001 { quiet + 1 } else { 0 };
        longest = longest.max(quiet);
    }
    // A 1 kHz sine at 48 kHz is below 0.001 for a sample or two at each zero crossing.
    assert!(longest < 5, "{longest} silent samples in a row in the rebuilt flow's recording");
}
