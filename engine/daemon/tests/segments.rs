//! Gap-free TS segments from a flow (`TsSink::Segments`) into the spool:
//! every segment probes clean, the concatenation is the continuous stream
//! (sample count, phase-continuous sine), manifests match the files,
//! sequence numbers continue across runs, crash leftovers are recovered
//! or quarantined, SIGKILL mid-segment loses nothing reported, and a spool
//! on a small tmpfs that fills up for seconds costs no audio and no flow.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use airlift_engine::archive::spool::Spool;
use airlift_engine::assembly::BuildOptions;
use airlift_engine::node::Node;
use airlift_engine::rt::thread::RealtimeRequest;
use airlift_ipc::message::{EngineToCtl, FlowState, SegmentJobStats, SegmentManifest};
use airlift_ipc::spec::DesiredState;
use common::{TempDir, decode_errors, ffprobe, render, run_engine, wait_for};
use sha2::{Digest, Sha256};

fn segment_flow(target: u32) -> String {
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
consumer = {{ encoded = {{ codec = "aac", bitrate = 192000, sink = {{ segments = {{ job = "prog", target_seconds = {target} }} }} }} }}
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
            } else if p.extension().is_some_and(|x| x == "json") && !p.to_string_lossy().contains("/.") {
                let m: SegmentManifest = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                out.push(m);
            }
        }
    }
    out.sort_by_key(|m| m.sequence);
    out
}

fn sha256_hex(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

fn check_manifest(spool: &Path, m: &SegmentManifest) -> PathBuf {
    let path = spool.join(&m.path);
    let expected = format!("{job}-{seq:08}.ts", job = m.job, seq = m.sequence);
    assert!(m.path.ends_with(&expected), "{}", m.path);
    // <job>/<yyyy>/<mm>/<dd>/<file>
    assert_eq!(Path::new(&m.path).components().count(), 5, "{}", m.path);
    let data = std::fs::read(&path).unwrap();
    assert_eq!(data.len() as u64, m.bytes, "{}", m.path);
    assert_eq!(sha256_hex(&path), m.sha256, "{}", m.path);
    assert!(path.with_extension("json").exists());
    path
}

/// Mono f32 samples of a TS decoded by ffmpeg.
fn decode(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "1", "-"])
        .output()
        .expect("ffmpeg is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Largest |x[n+1] + x[n-1] − 2cos(w)x[n]| over the signal (a pure sine gives 0;
/// one lost or doubled sample at -20 dBFS, 1 kHz gives about 0.013).
fn worst_residual(x: &[f32], freq: f64, rate: f64) -> (f64, usize) {
    let c = 2.0 * (2.0 * std::f64::consts::PI * freq / rate).cos();
    let mut worst = (0.0, 0);
    for n in 1..x.len() - 1 {
        let r = (f64::from(x[n + 1]) + f64::from(x[n - 1]) - c * f64::from(x[n])).abs();
        if r > worst.0 {
            worst = (r, n);
        }
    }
    worst
}

#[test]
fn a_sine_flow_cut_into_2_s_segments_concatenates_to_the_continuous_stream() {
    let dir = TempDir::new("segments-sine");
    render(&dir.0, &segment_flow(2), "20");
    let spool = dir.path("spool");
    let ms = manifests(&spool, "prog");
    assert!(ms.len() >= 9 && ms.len() <= 11, "{} segments", ms.len());
    let mut concat = Vec::new();
    let mut total_90k = 0;
    for (i, m) in ms.iter().enumerate() {
        assert_eq!(m.sequence, i as u64);
        assert!(!m.truncated);
        let path = check_manifest(&spool, m);
        let data = std::fs::read(&path).unwrap();
        // Starts with PAT then PMT (the first as the stream does: SDT, PAT, PMT).
        let pid = |k: usize| (u16::from(data[188 * k + 1] & 0x1f) << 8) | u16::from(data[188 * k + 2]);
        let first = if i == 0 { 1 } else { 0 };
        assert!(data.len().is_multiple_of(188) && data[0] == 0x47);
        assert_eq!(pid(first), 0, "segment {i} starts with the PAT");
        assert_eq!(pid(first + 1), 4096, "segment {i}: then the PMT");
        let probe = ffprobe(&path);
        assert_eq!(probe.codec, "aac", "segment {i}");
        let errors = decode_errors(&path);
        assert!(errors.is_empty(), "segment {i}: {errors}");
        if i + 1 < ms.len() {
            // Cut at the first PES at or after 2 s.
            assert!((180_000..=200_000).contains(&m.duration_90k), "segment {i}: {}", m.duration_90k);
            assert_eq!(m.first_pts + m.duration_90k as i64, ms[i + 1].first_pts, "timestamps continue");
        }
        println!("segment {i}: {} bytes, {:.3} s", m.bytes, m.duration_90k as f64 / 90_000.0);
        total_90k += m.duration_90k;
        concat.extend_from_slice(&data);
    }
    println!("total {:.3} s", total_90k as f64 / 90_000.0);
    let whole = dir.path("all.ts");
    std::fs::write(&whole, &concat).unwrap();
    let errors = decode_errors(&whole);
    assert!(errors.is_empty(), "concatenation: {errors}");
    let samples = decode(&whole);
    // 20 s plus the AAC encoder delay (1024), within one codec frame.
    let expected = 20 * 48_000 + 1024;
    println!("decoded {} samples, expected {expected} ± 1024", samples.len());
    assert!((samples.len() as i64 - expected).abs() <= 1024, "{} samples", samples.len());
    // Phase continuity after the priming, before the final padding.
    let body = &samples[4096..samples.len() - 4096];
    let (r, at) = worst_residual(body, 1000.0, 48_000.0);
    println!("worst sine residual {r:.5} at sample {at}");
    assert!(r < 0.004, "discontinuity of {r} at {}", at + 4096);
    // The check sees one lost sample.
    let mut cut = body.to_vec();
    cut.remove(cut.len() / 2);
    assert!(worst_residual(&cut, 1000.0, 48_000.0).0 > 0.004);
}

#[test]
fn sequence_numbers_continue_and_crash_leftovers_are_recovered_or_quarantined() {
    let dir = TempDir::new("segments-recover");
    render(&dir.0, &segment_flow(2), "5");
    let spool = dir.path("spool");
    let first = manifests(&spool, "prog");
    assert!(first.len() >= 2);
    let last_seq = first.last().unwrap().sequence;
    // A crash left one partial with packets (plus a torn packet) and one with garbage.
    let some = std::fs::read(spool.join(&first[0].path)).unwrap();
    let mut torn = some[..188 * 40].to_vec();
    torn.extend_from_slice(&[0x47, 1, 2, 3]);
    std::fs::write(spool.join("prog").join(format!(".prog-{:08}.ts.partial", last_seq + 1)), &torn).unwrap();
    std::fs::write(spool.join("prog").join(format!(".prog-{:08}.ts.partial", last_seq + 2)), b"junk")
        .unwrap();

    render(&dir.0, &segment_flow(2), "5");
    let all = manifests(&spool, "prog");
    let recovered = all.iter().find(|m| m.sequence == last_seq + 1).expect("partial recovered");
    assert!(recovered.truncated);
    assert_eq!(recovered.bytes, 188 * 40);
    check_manifest(&spool, recovered);
    let q = spool.join("prog/quarantine").join(format!("prog-{:08}.ts.quarantined", last_seq + 2));
    assert_eq!(std::fs::read(&q).unwrap(), b"junk", "garbage is quarantined, not deleted");
    // New segments continue after everything seen, no number reused.
    let new: Vec<_> = all.iter().filter(|m| m.sequence > last_seq + 2).collect();
    assert!(new.len() >= 2);
    assert_eq!(new[0].sequence, last_seq + 3);
    let mut seqs: Vec<_> = all.iter().map(|m| m.sequence).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), all.len());
    for m in &all {
        check_manifest(&spool, m);
    }
    assert!(
        std::fs::read_dir(spool.join("prog"))
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".partial"))
    );
}

#[test]
fn sigkill_mid_segment_loses_no_reported_segment_and_the_partial_is_recovered() {
    let dir = TempDir::new("segments-kill");
    let spool = dir.path("spool");
    let mut engine = run_engine(&dir.0, &segment_flow(2));
    assert!(
        wait_for(Duration::from_secs(20), || manifests(&spool, "prog").len() >= 2),
        "no segments: {}",
        std::fs::read_to_string(dir.path("engine.log")).unwrap_or_default()
    );
    // Mid-segment.
    std::thread::sleep(Duration::from_millis(700));
    let reported = manifests(&spool, "prog");
    engine.kill();
    let partials: Vec<_> = std::fs::read_dir(spool.join("prog"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert_eq!(partials.len(), 1, "one open segment at the kill");
    for m in &reported {
        check_manifest(&spool, m);
    }
    let top = manifests(&spool, "prog").last().unwrap().sequence;

    render(&dir.0, &segment_flow(2), "3");
    let all = manifests(&spool, "prog");
    for m in &reported {
        assert!(all.contains(m), "reported manifest {} unchanged", m.sequence);
    }
    let recovered = all.iter().find(|m| m.sequence == top + 1).expect("the partial was closed");
    assert!(recovered.truncated);
    let path = check_manifest(&spool, recovered);
    let errors = decode_errors(&path);
    assert!(errors.is_empty(), "{errors}");
    assert!(all.iter().any(|m| m.sequence == top + 2 && !m.truncated), "numbering continues");
    let mut seqs: Vec<_> = all.iter().map(|m| m.sequence).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), all.len());
}

/// A spool that never has room: the flow holds its stream while it runs,
/// and at the end (5 s more of retries) reports what was lost.
#[test]
fn a_spool_that_never_has_room_reports_the_loss_and_leaves_nothing_half_done() {
    let dir = TempDir::new("segments-full");
    let file = dir.path("flows.toml");
    std::fs::write(&file, segment_flow(2)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlift-engine"))
        .args(["render", "--flows", file.to_str().unwrap(), "--seconds", "5"])
        // More free space than any disk has: the spool counts as full.
        .args(["--spool-min-free-mb", "1000000000"])
        .env("NO_COLOR", "1")
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("segments stop") && log.contains("is full"), "{log}");
    assert!(manifests(&dir.path("spool"), "prog").is_empty());
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `20M`) on `dir`; `None` when this
    /// process may not mount (not root).
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `path` to the last byte with a file there;
/// returns its size.
fn fill(path: &Path) -> u64 {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 1 << 16];
    let mut total = 0;
    while let Ok(n) = f.write(&chunk) {
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let _ = f.sync_all();
    total
}

/// Closed segments (`.ts` in the dated folders) without a manifest.
fn orphans(spool: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![spool.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "ts") && !p.with_extension("json").exists() {
                out.push(p);
            }
        }
    }
    out
}

fn poll_for(node: &mut Node, d: Duration, events: &mut Vec<EngineToCtl>) {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        node.poll(events);
        std::thread::sleep(Duration::from_millis(20));
    }
    node.poll(events);
}

fn job_stats(node: &Node, job: &str) -> SegmentJobStats {
    node.stats().segment_jobs.into_iter().find(|j| j.job == job).unwrap_or_default()
}

#[test]
fn a_spool_filled_below_its_floor_for_5_s_keeps_the_flow_running_and_loses_no_audio() {
    fill_for_5_s("segments-tmpfs-floor", 4 * 1024 * 1024);
}

/// Without a floor every write meets ENOSPC itself.
#[test]
fn a_spool_out_of_space_for_5_s_keeps_the_flow_running_and_loses_no_audio() {
    fill_for_5_s("segments-tmpfs-enospc", 0);
}

/// A flow (tone → AAC, 1 s segments) records on a 20 MiB tmpfs with a free
/// space floor of `floor` bytes; after 3 s the file system is filled to
/// the last byte for 5 s, then freed; the flow runs 4 s more.
fn fill_for_5_s(tag: &str, floor: u64) {
    let dir = TempDir::new(tag);
    let spool = dir.path("spool");
    let Some(_tmpfs) = Tmpfs::mount(&spool, "20M") else {
        eprintln!("skipped: cannot mount a tmpfs (not root)");
        return;
    };
    let mut root = Spool::new(&spool);
    root.min_free_bytes = floor;
    let options = BuildOptions { spool: root, base_dir: dir.0.clone(), ..BuildOptions::default() };
    let mut node = Node::new(options, RealtimeRequest::default());
    let state: DesiredState = toml::from_str(&segment_flow(1)).unwrap();
    let mut events = Vec::new();
    node.apply_state(&state, &mut events).unwrap();
    poll_for(&mut node, Duration::from_secs(3), &mut events);
    let before = manifests(&spool, "prog");
    assert!(before.len() >= 2, "{before:?}");

    // Fill the file system to the last byte (ENOSPC, and far below the floor) for 5 s.
    let filler = spool.join("filler");
    let filled = fill(&filler);
    let mut held_max = 0;
    for _ in 0..10 {
        poll_for(&mut node, Duration::from_millis(500), &mut events);
        assert!(orphans(&spool).is_empty(), "a segment without a manifest: {:?}", orphans(&spool));
        held_max = held_max.max(job_stats(&node, "prog").held_bytes);
    }
    let during = job_stats(&node, "prog");
    let closed_during = manifests(&spool, "prog").len() - before.len();
    std::fs::remove_file(&filler).unwrap();
    poll_for(&mut node, Duration::from_secs(4), &mut events);
    assert!(node.flow("seg").is_some(), "the flow stopped");
    let after = job_stats(&node, "prog");
    node.shutdown(&mut events);

    let failed: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, EngineToCtl::FlowState { state: FlowState::Failed { .. }, .. }))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    println!(
        "filled {filled} bytes; during: {during:?} ({closed_during} segments closed), held at most {held_max} bytes; after: {after:?}"
    );
    assert!(during.stalls >= 1 && held_max > 0, "the segmenter saw the full spool: {during:?}");
    assert_eq!(after.held_bytes, 0, "everything held was written");
    assert!(orphans(&spool).is_empty(), "{:?}", orphans(&spool));
    let partials: Vec<_> = std::fs::read_dir(spool.join("prog"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(partials.is_empty(), "{partials:?}");

    let all = manifests(&spool, "prog");
    let seqs: Vec<u64> = all.iter().map(|m| m.sequence).collect();
    assert_eq!(seqs, (0..all.len() as u64).collect::<Vec<_>>(), "numbers continue, none reused");
    let gaps: u64 = all.iter().map(|m| m.gap_90k).sum();
    assert_eq!(gaps, after.gap_90k, "the manifests and the counter agree on the gap");
    assert_eq!(all.iter().filter(|m| m.gap_90k > 0).count() as u64, after.gaps);
    let total: u64 = all.iter().map(|m| m.duration_90k + m.gap_90k).sum();
    println!(
        "{} segments, {:.3} s archived, gap {:.3} s",
        all.len(),
        total as f64 / 90_000.0,
        gaps as f64 / 90_000.0
    );
    assert!((11.0..13.5).contains(&(total as f64 / 90_000.0)), "a 12 s run: {total}");
    let mut concat = Vec::new();
    for m in &all {
        assert!(!m.truncated, "{m:?}");
        concat.extend_from_slice(&std::fs::read(check_manifest(&spool, m)).unwrap());
    }
    let whole = dir.path("all.ts");
    std::fs::write(&whole, &concat).unwrap();
    if gaps == 0 {
        // Nothing lost: the stream held in memory went out whole.
        let samples = decode(&whole);
        let body = &samples[4096..samples.len() - 4096];
        let (r, at) = worst_residual(body, 1000.0, 48_000.0);
        println!("worst sine residual {r:.5} at sample {at}");
        assert!(r < 0.004, "discontinuity of {r} at {}", at + 4096);
    }
}
