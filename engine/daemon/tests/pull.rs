//! Pull jobs end to end with real SRT peers on 127.0.0.1: an H.264 + AAC
//! stream from ffmpeg is archived as segments cut at key frames that hold
//! every packet the peer sent; garbage and broken TS never crash the job.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use airlift_engine::sys::srt::{SrtOptions, SrtSocket};
use airlift_ipc::message::SegmentManifest;
use common::{Peer, TempDir, decode_errors, engine_running, free_port, run_engine, wait_for};

fn pull_state(port: u16, target: u32) -> String {
    format!(
        r#"
[[pull]]
name = "cam"
source = {{ mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true }}
segments = {{ job = "cam", target_seconds = {target} }}
no_data_timeout_s = 2
"#
    )
}

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

/// TS packets per PID.
fn count_pids(data: &[u8]) -> BTreeMap<u16, u64> {
    let mut counts = BTreeMap::new();
    for p in data.chunks_exact(188) {
        assert_eq!(p[0], 0x47);
        *counts.entry((u16::from(p[1] & 0x1f) << 8) | u16::from(p[2])).or_insert(0) += 1;
    }
    counts
}

/// Flags of the first video packet of a file, as ffprobe shows them.
fn first_video_flags(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=flags", "-of", "csv=p=0"])
        .args(["-read_intervals", "%+#1"])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_owned()
}

#[test]
fn an_h264_stream_is_cut_at_key_frames_and_keeps_every_packet() {
    let dir = TempDir::new("pull-h264");
    let port = free_port();
    let mut engine = run_engine(&dir.0, &pull_state(port, 4));
    engine_running(&dir.0);
    let reference = dir.path("sent.ts");
    let url = format!("srt://127.0.0.1:{port}?mode=caller&pkt_size=1316&linger=2");
    let mut ffmpeg = Peer::spawn(
        "ffmpeg",
        Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
            .args(["-t", "17", "-map", "0:v", "-map", "1:a"])
            .args(["-c:v", "libx264", "-g", "50", "-preset", "veryfast", "-c:a", "aac"])
            .args(["-f", "tee"])
            .arg(format!("[f=mpegts]{}|[f=mpegts]{url}", reference.display()))
            .stderr(std::fs::File::create(dir.path("ffmpeg.log")).unwrap()),
    );
    let status = ffmpeg.wait(Duration::from_secs(40)).expect("ffmpeg ran");
    assert!(status.success(), "ffmpeg: {}", std::fs::read_to_string(dir.path("ffmpeg.log")).unwrap());
    let spool = dir.path("spool");
    // The job closes its last segment when the peer leaves.
    assert!(wait_for(Duration::from_secs(10), || manifests(&spool, "cam").iter().any(|m| m.truncated)));
    engine.interrupt(Duration::from_secs(10));
    let summary = std::fs::read_to_string(dir.path("engine.out")).unwrap();
    println!("{summary}");
    assert!(summary.contains(" 0 CC errors, 0 unparsable packets"), "{summary}");
    let ms = manifests(&spool, "cam");
    assert!(ms.len() >= 3, "{} segments", ms.len());
    let mut concat = Vec::new();
    for (i, m) in ms.iter().enumerate() {
        assert_eq!(m.sequence, i as u64);
        let path = spool.join(&m.path);
        let flags = first_video_flags(&path);
        assert!(flags.starts_with('K'), "segment {i} starts with a key frame: {flags:?}");
        let errors = decode_errors(&path);
        assert!(errors.is_empty(), "segment {i}: {errors}");
        let d = m.duration_90k as f64 / 90_000.0;
        println!("segment {i}: {} bytes, {d:.3} s, truncated {}", m.bytes, m.truncated);
        if i + 1 < ms.len() {
            assert!((4.0..=6.0).contains(&d), "segment {i}: {d} s not in [target, target + GOP]");
        }
        concat.extend_from_slice(&std::fs::read(&path).unwrap());
    }
    let sent = count_pids(&std::fs::read(&reference).unwrap());
    let got = count_pids(&concat);
    println!("sent {sent:?}\ngot  {got:?}");
    for (pid, n) in &sent {
        let g = got.get(pid).copied().unwrap_or(0);
        if *pid == 0 || *pid == 4096 {
            // PAT and PMT are repeated at the start of each segment.
            assert!(g >= *n && g <= n + 2 * ms.len() as u64, "pid {pid}: sent {n}, got {g}");
        } else {
            assert_eq!(g, *n, "pid {pid}: every packet sent is archived once");
        }
    }
}

fn ts_packet(pid: u16, cc: u8, payload_start: bool, fill: u8) -> [u8; 188] {
    let mut p = [fill; 188];
    p[0] = 0x47;
    p[1] = (u8::from(payload_start) << 6) | (pid >> 8) as u8;
    p[2] = pid as u8;
    p[3] = 0x10 | (cc & 0x0f);
    p
}

#[test]
fn garbage_truncated_and_corrupted_ts_never_crash_the_pull_job() {
    let dir = TempDir::new("pull-garbage");
    let port = free_port();
    let mut engine = run_engine(&dir.0, &pull_state(port, 1));
    engine_running(&dir.0);
    let options = SrtOptions { latency_ms: 120, ..SrtOptions::default() };
    let socket = SrtSocket::connect("127.0.0.1", port, &options).expect("the pull job listens");
    socket.linger(2).unwrap();
    let mut sent = 0u64;
    let mut seed = 0x1234_5678_u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..600u32 {
        let mut msg = Vec::with_capacity(1316);
        match round % 4 {
            // Random bytes.
            0 => (0..1316).for_each(|_| msg.push(rand() as u8)),
            // Sync bytes with random headers and adaptation fields.
            1 => {
                for _ in 0..7 {
                    let mut p = [0u8; 188];
                    p.iter_mut().for_each(|b| *b = rand() as u8);
                    p[0] = 0x47;
                    msg.extend_from_slice(&p);
                }
            }
            // Wrong continuity counters, no PAT, PES starts with bogus headers.
            2 => {
                for k in 0..7 {
                    let mut p = ts_packet(0x100, rand() as u8, k % 2 == 0, 0xff);
                    p[4..8].copy_from_slice(&[0, 0, 1, 0xe0]);
                    msg.extend_from_slice(&p);
                }
            }
            // Truncated packets and a PAT/PMT pointing anywhere.
            _ => {
                let mut pat = ts_packet(0, rand() as u8, true, 0xff);
                pat[4..17].copy_from_slice(&[0, 0, 0xb0, 0xff, 0, 1, 0xc1, 0, 0, 0, 1, 0xf0, 0x00]);
                msg.extend_from_slice(&pat);
                let mut pmt = ts_packet(0x1000, 0, true, 0xff);
                pmt[4..10].copy_from_slice(&[0xff, 0x02, 0xbf, 0xff, 0xff, 0xff]);
                msg.extend_from_slice(&pmt);
                msg.extend_from_slice(&ts_packet(0x100, 3, true, 0)[..100]);
            }
        }
        socket.send(&msg).expect("the job keeps the connection");
        sent += msg.len() as u64;
        // About 5 Mbit/s: live mode paces, it does not buffer bursts.
        std::thread::sleep(Duration::from_millis(2));
    }
    // Let the receiver deliver what it holds for its latency before closing.
    std::thread::sleep(Duration::from_millis(500));
    drop(socket);
    // Still alive, still closing what it received.
    let spool = dir.path("spool");
    // The segment closed by the disconnection (an earlier one may have been
    // cut by time if sending was slow).
    assert!(wait_for(Duration::from_secs(10), || manifests(&spool, "cam").iter().any(|m| m.truncated)));
    assert!(engine.child.as_mut().unwrap().try_wait().unwrap().is_none(), "the engine survived");
    let total: u64 = manifests(&spool, "cam").iter().map(|m| m.bytes).sum();
    assert_eq!(total, sent, "received bytes are archived, not dropped");
    // And a second peer is served.
    let socket = SrtSocket::connect("127.0.0.1", port, &options).expect("the pull job listens again");
    socket.send(&ts_packet(0x100, 0, true, 0)).unwrap();
    drop(socket);
    let status = engine.interrupt(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{}", std::fs::read_to_string(dir.path("engine.log")).unwrap_or_default());
}

fn engine_with(dir: &Path, state: &str, extra: &[&str]) -> Peer {
    let file = dir.join("flows.toml");
    std::fs::write(&file, state).unwrap();
    Peer::spawn(
        "airlift-engine",
        Command::new(env!("CARGO_BIN_EXE_airlift-engine"))
            .args(["run", "--flows", file.to_str().unwrap()])
            .args(extra)
            .env("AIRLIFT_LOG", "info")
            .env("NO_COLOR", "1")
            .current_dir(dir)
            .stdout(std::fs::File::create(dir.join("engine.out")).unwrap())
            .stderr(std::fs::File::create(dir.join("engine.log")).unwrap()),
    )
}

#[test]
fn more_pull_jobs_than_the_limit_are_refused() {
    let dir = TempDir::new("pull-limit");
    let mut state = pull_state(free_port(), 4);
    state += &pull_state(free_port(), 4).replace("\"cam\"", "\"cam2\"");
    let mut engine = engine_with(&dir.0, &state, &["--max-pulls", "1"]);
    let status = engine.wait(Duration::from_secs(10)).expect("exits");
    assert!(!status.success());
    let log = std::fs::read_to_string(dir.path("engine.log")).unwrap();
    assert!(log.contains("2 pull jobs exceed the limit of 1"), "{log}");
}

#[test]
fn a_spool_that_stays_full_costs_the_held_bytes_but_not_the_job() {
    let dir = TempDir::new("pull-full");
    let port = free_port();
    // More free space than any disk has: the spool always refuses writes.
    let mut engine = engine_with(&dir.0, &pull_state(port, 4), &["--spool-min-free-mb", "1000000000"]);
    engine_running(&dir.0);
    let options = SrtOptions { latency_ms: 120, ..SrtOptions::default() };
    let socket = SrtSocket::connect("127.0.0.1", port, &options).expect("the pull job listens");
    for cc in 0..20u8 {
        let _ = socket.send(&ts_packet(0x100, cc, cc == 0, 0));
        std::thread::sleep(Duration::from_millis(5));
    }
    let log = || std::fs::read_to_string(dir.path("engine.log")).unwrap_or_default();
    assert!(wait_for(Duration::from_secs(5), || log().contains("spool refuses writes")), "{}", log());
    drop(socket);
    // The source leaves: what was held is reported lost, the job goes on.
    assert!(wait_for(Duration::from_secs(15), || log().contains("what was held is lost")), "{}", log());
    engine.interrupt(Duration::from_secs(10)).expect("exits");
    let out = std::fs::read_to_string(dir.path("engine.out")).unwrap();
    // Not failed by the full spool: running, or reconnecting to a sender
    // that is gone.
    assert!(out.contains("pull cam: Running") || out.contains("reconnecting\" }"), "{out}");
    assert!(!log().contains("pull job failed"), "{}", log());
    assert!(manifests(&dir.path("spool"), "cam").is_empty());
}

#[test]
fn a_caller_job_reconnects_after_the_no_data_watchdog() {
    use airlift_engine::sys::srt::SrtListener;
    let dir = TempDir::new("pull-watchdog");
    let options = SrtOptions { latency_ms: 120, ..SrtOptions::default() };
    let port = free_port();
    let listener = SrtListener::bind(port, &options).expect("binds");
    let state = format!(
        r#"
[[pull]]
name = "cam"
source = {{ mode = {{ caller = {{ host = "127.0.0.1", port = {port} }} }} }}
segments = {{ job = "cam", target_seconds = 4 }}
no_data_timeout_s = 1
"#
    );
    let mut engine = engine_with(&dir.0, &state, &[]);
    let first = listener.accept(Duration::from_secs(10)).unwrap().expect("the job calls");
    for cc in 0..10u8 {
        first.send(&ts_packet(0x100, cc, cc == 0, 0)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    // Then silence, with the connection up: the watchdog drops it and the
    // job calls again.
    let second = listener.accept(Duration::from_secs(10)).unwrap().expect("the job calls again");
    drop(first);
    drop(second);
    let spool = dir.path("spool");
    // What arrived before the silence is closed as a truncated segment.
    assert!(
        wait_for(Duration::from_secs(5), || manifests(&spool, "cam")
            .iter()
            .any(|m| m.truncated && m.bytes > 0 && m.bytes <= 1880 && m.bytes % 188 == 0)),
        "{:?}",
        manifests(&spool, "cam")
    );
    engine.interrupt(Duration::from_secs(10)).expect("exits");
    let log = std::fs::read_to_string(dir.path("engine.log")).unwrap();
    assert!(log.contains("no data from the pull source"), "{log}");
    let out = std::fs::read_to_string(dir.path("engine.out")).unwrap();
    // Connected again, or reconnecting once the test's listener is gone:
    // never failed for another reason.
    assert!(out.contains("pull cam: Running") || out.contains("reconnecting\" }"), "{out}");
}

/// A flow of the desired state that cannot be built (a missing file) fails
/// alone, reported with its reason: the pull jobs of the same state apply.
/// A state that breaks the spec rules (two jobs with one name) is refused
/// whole and changes nothing.
#[test]
fn a_flow_that_cannot_be_built_fails_alone_and_the_pull_jobs_apply() {
    use airlift_engine::Node;
    use airlift_engine::archive::spool::Spool;
    use airlift_engine::assembly::BuildOptions;
    use airlift_engine::rt::thread::RealtimeRequest;
    use airlift_ipc::spec::DesiredState;

    let dir = TempDir::new("pull-refused");
    let options = BuildOptions { spool: Spool::new(dir.path("spool")), ..BuildOptions::default() };
    let mut node = Node::new(options, RealtimeRequest::default());
    let mut events = Vec::new();
    let first: DesiredState = toml::from_str(&pull_state(free_port(), 4)).unwrap();
    node.apply_state(&first, &mut events).unwrap();
    let bad_flow = r#"
[[flow]]
name = "broken"

[[flow.input]]
name = "missing"
producer = { file = { path = "/nonexistent/airlift/input.wav" } }

[[flow.output]]
name = "void"
consumer = "null"
"#;
    let second = format!(
        "{}{}{bad_flow}",
        pull_state(free_port(), 4),
        pull_state(free_port(), 4).replace("\"cam\"", "\"cam2\"")
    );
    let second: DesiredState = toml::from_str(&second).unwrap();
    node.apply_state(&second, &mut events).unwrap();
    let failed = events.iter().any(|e| {
        matches!(e, airlift_ipc::message::EngineToCtl::FlowState { flow, state: airlift_ipc::message::FlowState::Failed { reason } }
            if flow.as_str() == "broken" && reason.contains("input.wav"))
    });
    assert!(failed, "the broken flow is not reported: {events:?}");
    let jobs: Vec<(String, _)> = node.pulls().map(|(n, j)| (n.to_string(), j.spec().clone())).collect();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(jobs[0].1, second.pulls[0], "the changed job was not applied");
    assert_eq!(jobs[1].1, second.pulls[1], "the new job was not started");
    // A state that breaks the rules is still refused whole.
    let mut invalid = second.clone();
    invalid.pulls[1].segments.job = invalid.pulls[0].segments.job.clone();
    let err = node.apply_state(&invalid, &mut events).unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
    assert_eq!(node.pulls().count(), 2);
    node.shutdown(&mut events);
}

fn pull_with(port: u16, target: u32, max_bytes: u64) -> String {
    format!(
        r#"
[[pull]]
name = "cam"
source = {{ mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true }}
segments = {{ job = "cam", target_seconds = {target}, max_bytes = {max_bytes} }}
no_data_timeout_s = 2
"#
    )
}

/// The number before `what` in the engine's summary line of `prefix`.
fn summary_number(summary: &str, prefix: &str, what: &str) -> u64 {
    let line =
        summary.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {summary}"));
    let end = line.find(what).unwrap_or_else(|| panic!("{what}: {line}"));
    line[..end]
        .trim_end()
        .rsplit([' ', ','])
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn a_pull_fed_zeros_is_cut_at_max_bytes_and_the_junk_is_counted() {
    let dir = TempDir::new("pull-zeros");
    let port = free_port();
    let max = 1024 * 1024;
    let mut engine = engine_with(&dir.0, &pull_with(port, 4, max), &[]);
    engine_running(&dir.0);
    let options = SrtOptions { latency_ms: 120, ..SrtOptions::default() };
    let socket = SrtSocket::connect("127.0.0.1", port, &options).expect("the pull job listens");
    socket.linger(2).unwrap();
    // /dev/zero: 8 MiB of zeros, about 20 Mbit/s.
    let zeros = [0u8; 1316];
    let mut sent = 0u64;
    while sent < 8 * 1024 * 1024 {
        for _ in 0..8 {
            socket.send(&zeros).expect("the job keeps the connection");
            sent += zeros.len() as u64;
        }
        std::thread::sleep(Duration::from_millis(4));
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(socket);
    let spool = dir.path("spool");
    assert!(wait_for(Duration::from_secs(10), || manifests(&spool, "cam").iter().any(|m| m.truncated)));
    engine.interrupt(Duration::from_secs(10)).expect("exits");
    let summary = std::fs::read_to_string(dir.path("engine.out")).unwrap();
    println!("{summary}");
    let received = summary_number(&summary, "pull cam", "bytes,");
    let junk = summary_number(&summary, "pull cam", "junk bytes");
    let ms = manifests(&spool, "cam");
    let archived: u64 = ms.iter().map(|m| m.bytes).sum();
    println!("sent {sent}, received {received}, junk {junk}, archived {archived} in {} segments", ms.len());
    assert!(received > sent / 2, "{received} of {sent}");
    assert_eq!(junk, received, "every byte of zeros is junk");
    assert_eq!(archived, received, "the junk is archived as it came, not dropped");
    assert!(ms.iter().all(|m| m.bytes <= max), "{:?}", ms.iter().map(|m| m.bytes).collect::<Vec<_>>());
    assert!(ms.len() as u64 >= received / max, "{} segments for {received} bytes", ms.len());
    assert!(summary_number(&summary, "segments cam", "junk bytes") == junk, "{summary}");
}

#[test]
fn a_stream_without_timestamps_is_cut_at_the_wall_clock_limit() {
    let dir = TempDir::new("pull-wall");
    let port = free_port();
    // Target 1 s: the wall-clock limit is 3 s.
    let mut engine = engine_with(&dir.0, &pull_with(port, 1, 64 * 1024 * 1024), &[]);
    engine_running(&dir.0);
    let options = SrtOptions { latency_ms: 120, ..SrtOptions::default() };
    let socket = SrtSocket::connect("127.0.0.1", port, &options).expect("the pull job listens");
    // Valid packets, but no PAT, no PES header: nothing to cut at.
    let start = std::time::Instant::now();
    let mut cc = 0u8;
    while start.elapsed() < Duration::from_millis(7_500) {
        let mut msg = Vec::with_capacity(1316);
        for _ in 0..7 {
            msg.extend_from_slice(&ts_packet(0x100, cc, false, 0xff));
            cc = cc.wrapping_add(1);
        }
        socket.send(&msg).expect("the job keeps the connection");
        std::thread::sleep(Duration::from_millis(20));
    }
    let spool = dir.path("spool");
    let while_connected = manifests(&spool, "cam");
    drop(socket);
    engine.interrupt(Duration::from_secs(10)).expect("exits");
    for m in &while_connected {
        println!("segment {}: {} bytes, {:.3} s", m.sequence, m.bytes, m.duration_90k as f64 / 90_000.0);
    }
    assert!(while_connected.len() >= 2, "{while_connected:?}");
    for m in &while_connected[..2] {
        assert!(!m.truncated);
        let d = m.duration_90k as f64 / 90_000.0;
        assert!((3.0..3.5).contains(&d), "segment {} lasted {d} s, the limit is 3 s", m.sequence);
    }
    let log = std::fs::read_to_string(dir.path("engine.log")).unwrap();
    assert!(log.contains("wall-clock limit"), "{log}");
}
