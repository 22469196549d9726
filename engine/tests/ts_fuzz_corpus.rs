//! Replays the committed corpus of the `ts_reader` fuzz target through the
//! same checks, so every CI run exercises the TS reading path on garbage.

use std::path::Path;

use airlift_engine::archive::ts::check_reading_path;

#[test]
fn corpus_replays_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ts_reader");
    let mut files = 0;
    let mut packets = 0;
    for entry in std::fs::read_dir(&dir).expect("the fuzz corpus is committed") {
        let data = std::fs::read(entry.expect("readable entry").path()).expect("readable file");
        files += 1;
        packets += check_reading_path(&data);
        // Every truncation of a seed too.
        for cut in [1, 187, 188, 189, data.len() / 2] {
            check_reading_path(&data[..cut.min(data.len())]);
        }
    }
    assert!(files >= 5, "corpus has only {files} files");
    assert!(packets >= 50, "only {packets} packets in the corpus: the seeds are missing");
}

#[test]
fn random_bytes_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for len in [0usize, 1, 187, 188, 376, 1316, 5000, 20_000] {
        let mut data = Vec::with_capacity(len);
        for i in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Plenty of sync bytes so that headers get parsed.
            data.push(if i % 188 == 0 && !seed.is_multiple_of(4) { 0x47 } else { seed as u8 });
        }
        check_reading_path(&data);
    }
}
