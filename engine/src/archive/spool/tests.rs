//! Tests of the parent module.
use super::*;

#[test]
fn civil_dates() {
    assert_eq!(civil(0), (1970, 1, 1));
    // 2024-02-29T12:00:00Z
    assert_eq!(civil(1_709_208_000_000), (2024, 2, 29));
    assert_eq!(civil(1_798_761_599_000), (2026, 12, 31));
}

#[test]
fn the_free_space_gate_checks_by_time_or_bytes() {
    let t0 = Instant::now();
    let mut gate = FreeSpaceGate::new(Duration::from_millis(100), 1000);
    assert!(gate.due(10, t0), "the first write is checked");
    assert!(!gate.due(10, t0 + Duration::from_millis(50)));
    assert!(gate.due(10, t0 + Duration::from_millis(100)), "after the interval");
    assert!(!gate.due(500, t0 + Duration::from_millis(110)));
    assert!(gate.due(500, t0 + Duration::from_millis(120)), "after the bytes");
    assert!(!gate.due(0, t0 + Duration::from_millis(130)));
}

#[test]
fn a_refused_write_stays_pending_and_a_close_can_be_repeated() {
    let root = std::env::temp_dir().join(format!("airlift-spool-unit-{}", std::process::id()));
    let spool = Spool { root: root.clone(), min_free_bytes: 0 };
    let job = Name::new("unit").unwrap();
    let (mut js, _) = spool.open_job(&job).unwrap();
    let mut w = js.begin().unwrap();
    w.write(&[0x47; 188]).unwrap();
    assert_eq!(w.pending_bytes(), 188);
    w.write(&[0x47; 188]).unwrap();
    w.flush().unwrap();
    assert_eq!(w.pending_bytes(), 0);
    let m = js.close(w, 0, 0, false).unwrap();
    assert_eq!(m.bytes, 376);
    assert!(root.join(&m.path).with_extension("json").exists());
    // Publishing again after the rename (a retried close) is harmless.
    let again = js.publish(&root.join("unit/.unit-00000000.ts.partial"), m.clone()).unwrap();
    assert_eq!(again, m);
    let _ = fs::remove_dir_all(root);
}

#[test]
fn names() {
    assert_eq!(seq_of("cam-00000012.ts", "cam"), Some((12, false)));
    assert_eq!(seq_of("cam-00000012.json", "cam"), Some((12, false)));
    assert_eq!(seq_of(".cam-00000013.ts.partial", "cam"), Some((13, true)));
    assert_eq!(seq_of("cam2-00000013.ts", "cam"), None);
    assert_eq!(seq_of("cam-00000013.ts.quarantined", "cam"), Some((13, false)));
}
