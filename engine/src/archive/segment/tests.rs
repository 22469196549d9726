//! Tests of the parent module.
use super::*;

/// A tiny audio-only TS: PAT, PMT (one AAC stream on PID 0x100) and
/// one PES packet every 1/10 s (`pts` counted in tenths).
fn pat() -> [u8; TS_PACKET] {
    let mut p = [0xffu8; TS_PACKET];
    p[..4].copy_from_slice(&[0x47, 0x40, 0x00, 0x10]);
    p[4..21].copy_from_slice(&[0, 0x00, 0xb0, 0x0d, 0, 1, 0xc1, 0, 0, 0, 1, 0xf0, 0x00, 0, 0, 0, 0]);
    p
}

fn pmt() -> [u8; TS_PACKET] {
    let mut p = [0xffu8; TS_PACKET];
    p[..4].copy_from_slice(&[0x47, 0x50, 0x00, 0x10]);
    p[4..26].copy_from_slice(&[
        0, 0x02, 0xb0, 0x12, 0, 1, 0xc1, 0, 0, 0xe1, 0x00, 0xf0, 0x00, 0x0f, 0xe1, 0x00, 0xf0, 0x00, 0, 0, 0,
        0,
    ]);
    p
}

fn pes(tenth: u64, cc: u8) -> [u8; TS_PACKET] {
    let pts = tenth * 9000;
    let mut p = [0xffu8; TS_PACKET];
    p[..4].copy_from_slice(&[0x47, 0x41, 0x00, 0x10 | (cc & 0x0f)]);
    p[4..18].copy_from_slice(&[
        0,
        0,
        1,
        0xc0,
        0,
        0,
        0x80,
        0x80,
        5,
        0x21 | ((pts >> 29) as u8 & 0x0e),
        (pts >> 22) as u8,
        ((pts >> 14) as u8) | 1,
        (pts >> 7) as u8,
        ((pts << 1) as u8) | 1,
    ]);
    p
}

/// `tenths` tenths of a second of the stream, from `from`.
fn stream(from: u64, tenths: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for t in from..from + tenths {
        if t % 10 == 0 {
            out.extend_from_slice(&pat());
            out.extend_from_slice(&pmt());
        }
        out.extend_from_slice(&pes(t, t as u8));
    }
    out
}

fn manifests(events: &SpoolEvents) -> Vec<airlift_ipc::message::SegmentManifest> {
    let mut got = Vec::new();
    events.drain_into(&mut got);
    got.into_iter()
        .filter_map(|e| match e {
            EngineToCtl::SegmentClosed(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn setup(name: &str) -> (std::path::PathBuf, Spool, SegmentSpec) {
    let root = std::env::temp_dir().join(format!("airlift-seg-unit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut spool = Spool::new(&root);
    spool.min_free_bytes = 0;
    let spec: SegmentSpec = toml::from_str("job = \"prog\"\ntarget_seconds = 1").unwrap();
    (root, spool, spec)
}

#[test]
fn a_spool_below_its_floor_holds_the_stream_and_loses_nothing() {
    let (root, spool, spec) = setup("hold");
    let events = SpoolEvents::default();
    let segmenter = Segmenter::open(&spool, &spec, events.clone()).unwrap();
    let mut out = SegmentTsOutput::new(segmenter, Name::new("main").unwrap());
    out.write_ts(&stream(0, 25)).unwrap();
    out.segmenter.set_min_free_bytes(u64::MAX);
    out.segmenter.gate = FreeSpaceGate::new(Duration::ZERO, 0);
    for t in 0..30 {
        out.write_ts(&stream(25 + t, 1)).unwrap();
    }
    assert!(out.segmenter.stalled());
    out.segmenter.set_min_free_bytes(0);
    std::thread::sleep(Duration::from_millis(250));
    out.write_ts(&stream(55, 20)).unwrap();
    assert!(!out.segmenter.stalled());
    out.flush_ts().unwrap();
    let got = manifests(&events);
    let seqs: Vec<u64> = got.iter().map(|m| m.sequence).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "{got:?}");
    let total: u64 = got.iter().map(|m| m.duration_90k).sum();
    assert_eq!(total, 75 * 9000, "all 7.5 s written: {got:?}");
    assert!(got.iter().all(|m| !m.discontinuity && m.gap_90k == 0), "{got:?}");
    let c = events.job_counters("prog").snapshot("prog");
    assert_eq!((c.stalls, c.gaps, c.dropped_bytes, c.held_bytes), (1, 0, 0, 0), "{c:?}");
    assert!(c.held_bytes_max >= 30 * 188, "{c:?}");
    drop(out);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn an_overflowing_hold_drops_the_oldest_and_records_the_gap() {
    let (root, spool, spec) = setup("gap");
    let events = SpoolEvents::default();
    let mut seg = Segmenter::open(&spool, &spec, events.clone()).unwrap();
    seg.set_hold_limit(20 * TS_PACKET);
    seg.push(&stream(0, 25), 0).unwrap();
    seg.set_min_free_bytes(u64::MAX);
    seg.gate = FreeSpaceGate::new(Duration::ZERO, 0);
    // 4 s while full: 40 PES + 8 PAT/PMT pairs; the hold keeps ~20 packets.
    for t in 0..40 {
        seg.push(&stream(25 + t, 1), 0).unwrap();
    }
    seg.set_min_free_bytes(0);
    std::thread::sleep(Duration::from_millis(250));
    seg.push(&stream(65, 20), 0).unwrap();
    seg.finish(false).unwrap();
    let got = manifests(&events);
    let seqs: Vec<u64> = got.iter().map(|m| m.sequence).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "{got:?}");
    let gapped: Vec<_> = got.iter().filter(|m| m.gap_90k > 0).collect();
    assert_eq!(gapped.len(), 1, "{got:?}");
    assert!(gapped[0].discontinuity);
    let total: u64 = got.iter().map(|m| m.duration_90k + m.gap_90k).sum();
    assert_eq!(total, 85 * 9000, "audio written plus the gap is the whole stream: {got:?}");
    let c = events.job_counters("prog").snapshot("prog");
    println!("gap {:.3} s, {c:?}", gapped[0].gap_90k as f64 / 90_000.0);
    assert_eq!((c.gaps, c.gap_90k), (1, gapped[0].gap_90k), "{c:?}");
    assert!(c.dropped_bytes > 0 && c.dropped_bytes % 188 == 0, "{c:?}");
    drop(seg);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_stream_that_ends_while_full_is_closed_truncated_once_there_is_room() {
    let (root, spool, spec) = setup("abandon");
    let events = SpoolEvents::default();
    let mut seg = Segmenter::open(&spool, &spec, events.clone()).unwrap();
    seg.push(&stream(0, 25), 0).unwrap();
    seg.set_min_free_bytes(u64::MAX);
    seg.gate = FreeSpaceGate::new(Duration::ZERO, 0);
    seg.push(&stream(25, 10), 0).unwrap();
    assert!(seg.stalled());
    // The source leaves while the spool is full: 5 s of retries, then lost.
    assert!(matches!(seg.finish(true), Err(SpoolError::Full { .. })));
    assert!(!seg.stalled());
    seg.set_min_free_bytes(0);
    // The next connection.
    seg.push(&stream(100, 15), 0).unwrap();
    seg.finish(false).unwrap();
    let got = manifests(&events);
    let seqs: Vec<u64> = got.iter().map(|m| m.sequence).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4], "{got:?}");
    assert!(got[2].truncated, "the partial of the full spool is closed as truncated: {got:?}");
    assert_eq!(got[2].duration_90k, 5 * 9000, "with what reached its file");
    assert!(got[3].discontinuity && got[3].gap_90k > 0, "the loss is recorded: {got:?}");
    let c = events.job_counters("prog").snapshot("prog");
    println!("estimated gap {:.3} s, {c:?}", got[3].gap_90k as f64 / 90_000.0);
    assert_eq!((c.gaps, c.gap_90k), (1, got[3].gap_90k));
    let partials = std::fs::read_dir(root.join("prog"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .count();
    assert_eq!(partials, 0);
    drop(seg);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn junk_counts_towards_the_size_limit() {
    let (root, spool, _) = setup("junk");
    let spec: SegmentSpec = toml::from_str("job = \"prog\"\ntarget_seconds = 1\nmax_bytes = 10000").unwrap();
    let events = SpoolEvents::default();
    let mut seg = Segmenter::open(&spool, &spec, events.clone()).unwrap();
    for _ in 0..100 {
        seg.push(&[0u8; 1316], 0).unwrap();
    }
    seg.finish(false).unwrap();
    let got = manifests(&events);
    assert!(got.len() >= 13, "{}", got.len());
    assert!(got.iter().all(|m| m.bytes <= 10000), "{got:?}");
    assert_eq!(got.iter().map(|m| m.bytes).sum::<u64>(), 131_600);
    assert_eq!(seg.junk_bytes(), 131_600);
    drop(seg);
    let _ = std::fs::remove_dir_all(root);
}
