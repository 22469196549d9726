//! When nothing runs, the engine drops FFmpeg's code from its resident set
//! (`rt::thread::return_idle_memory`), also under `mlockall` as the package
//! runs it; the next encoder faults the same bytes back in and codes
//! exactly as before.

use airlift_engine::rt::thread::{RealtimeRequest, apply, return_idle_memory};
use airlift_engine::sys::ffmpeg::{Encoder, TsMetadata, TsMuxer, TsOutput};
use airlift_ipc::spec::Codec;

/// Resident KiB of this process's mappings of libavcodec.
fn libavcodec_rss_kib() -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut ours = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            ours = line.contains("/libavcodec.");
        } else if ours && first == "Rss:" {
            kib += line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
        }
    }
    kib
}

/// TS bytes, kept in memory.
struct Bytes(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl TsOutput for Bytes {
    fn write_ts(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(())
    }
}

/// Two seconds of a two-tone stereo signal coded to AAC 128k in TS.
fn encode_aac() -> Vec<u8> {
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut encoder = Encoder::new(Codec::Aac, 2, 48_000, Some(128_000)).unwrap();
    let mut mux =
        TsMuxer::new(Box::new(Bytes(out.clone())), &encoder, &TsMetadata::default(), 188 * 64).unwrap();
    let signal: Vec<f32> = (0..96_000)
        .flat_map(|n| {
            let t = n as f32 / 48_000.0;
            [(t * 440.0 * std::f32::consts::TAU).sin() * 0.3, (t * 997.0 * std::f32::consts::TAU).sin() * 0.3]
        })
        .collect();
    for period in signal.chunks(2 * 128) {
        encoder.encode(period, &mut mux).unwrap();
    }
    encoder.finish(&mut mux).unwrap();
    mux.finish().unwrap();
    // The muxer (and its output) is gone: the bytes are ours alone.
    std::sync::Arc::try_unwrap(out).unwrap().into_inner().unwrap()
}

#[test]
fn idle_engine_drops_ffmpeg_code_and_codes_the_same_after() {
    // Locked as the packaged engine is, when this user may lock (root, or
    // a high enough memlock limit); the unlocked path is tested otherwise.
    let report = apply(&RealtimeRequest { cpu: None, fifo_priority: None, lock_memory: true });
    let first = encode_aac();
    assert!(first.len() > 20_000, "two seconds of AAC 128k: {} bytes", first.len());
    let used = libavcodec_rss_kib();
    assert!(used > 256, "libavcodec resident after encoding: {used} KiB");

    return_idle_memory();
    let idle = libavcodec_rss_kib();
    assert!(
        idle * 2 < used,
        "libavcodec resident: {used} KiB while encoding, {idle} KiB after the idle release (memory locked: {})",
        report.memory_locked
    );

    println!(
        "libavcodec resident: {used} KiB encoding, {idle} KiB idle; memory locked: {}",
        report.memory_locked
    );

    let again = encode_aac();
    assert!(first == again, "the encoder coded differently after its code was paged back in");
    assert!(libavcodec_rss_kib() > idle, "encoding faulted libavcodec's code back in");
}
