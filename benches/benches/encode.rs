//! 64-channel WAV → stereo mix → AAC 128 kbit/s in an MPEG-TS file, by
//! Airlift's offline render and by the `ffmpeg` CLI (`-threads 1`, `pan`
//! filter doing the same fold-down) in the same run; and stereo WAV → AAC
//! 128k, MP2 192k and Opus 96k TS alone, to compare the encode cost.
//! Airlift's render codes AAC and MP2 in chunks on one encoder per CPU
//! (`airlift_render`); the same render with one encoder, as a live flow
//! encodes, is `airlift_render_one_encoder`. Besides criterion's wall times,
//! which run each function in its own block of time, alternating runs of
//! all three give medians of wall time, CPU seconds per audio second
//! (getrusage over all threads) and of the per-run ratios: on a shared VM
//! whose speed drifts, those ratios are the steadier figures.
//!
//! For AAC and MP2 the same alternation also measures the limit a render
//! can reach (`encode_only_all_cores`): the already-mixed stereo, in memory,
//! cut into one equal part per CPU, each part coded by its own encoder (the
//! one the render uses, with the same settings, into its own TS file) on its
//! own thread, all at once, with no reading, mixing or overlap. The render's
//! fraction of that limit is the limit's wall time over the render's.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use airlift_engine::FlowBuilder;
use airlift_engine::assembly::BuildOptions;
use airlift_engine::flow::render;
use airlift_engine::sys::ffmpeg::{Encoder, TsMetadata, TsMuxer, TsOutput};
use airlift_ipc::spec::{Codec, ConsumerSpec, EncodedSpec, TsSink};
use airlift_ipc::units::{Bitrate, SafePath};
use criterion::{Criterion, criterion_group, criterion_main};

const SECONDS: u32 = 10;
const RATE: u32 = 48_000;

fn write_wav(path: &Path, channels: u16) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("bench WAV");
    for n in 0..RATE * SECONDS {
        for c in 0..channels {
            let f = 100.0 + 37.0 * f64::from(c);
            let s = (2.0 * std::f64::consts::PI * f * f64::from(n) / f64::from(RATE)).sin() * 0.02;
            w.write_sample((s * 32_767.0) as i16).expect("bench WAV");
        }
    }
    w.finalize().expect("bench WAV");
}

/// A codec at a bitrate, as Airlift and the ffmpeg CLI name it.
#[derive(Clone, Copy)]
struct Coding {
    codec: Codec,
    ffmpeg: &'static str,
    bitrate: u32,
}

const AAC_128: Coding = Coding { codec: Codec::Aac, ffmpeg: "aac", bitrate: 128_000 };

fn airlift(input: &Path, out: &Path, coding: Coding, encoders: Option<usize>) {
    let spec = FlowBuilder::new("bench")
        .unwrap()
        .channels(2)
        .unwrap()
        .wav_file("in", input.to_str().unwrap(), false)
        .unwrap()
        .output(
            "ts",
            ConsumerSpec::Encoded(EncodedSpec {
                codec: coding.codec,
                bitrate: Some(Bitrate::new(coding.bitrate).unwrap()),
                service_name: None,
                provider: None,
                sink: TsSink::File { path: SafePath::new(out.to_str().unwrap()).unwrap() },
            }),
        )
        .unwrap()
        .spec();
    let options =
        BuildOptions { encode_threads: encoders.and_then(NonZeroUsize::new), ..BuildOptions::default() };
    render(&spec, &options, f64::from(SECONDS), vec![]).unwrap();
}

fn ffmpeg(input: &Path, out: &Path, channels: u16, coding: Coding) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-nostdin", "-y", "-threads", "1", "-filter_threads", "1", "-i"]).arg(input);
    if channels > 2 {
        cmd.args(["-af", &pan_filter(channels)]);
    }
    let bitrate = coding.bitrate.to_string();
    cmd.args(["-c:a", coding.ffmpeg, "-b:a", &bitrate, "-threads", "1", "-f", "mpegts"]).arg(out);
    let status = cmd.status().expect("ffmpeg is installed");
    assert!(status.success(), "ffmpeg failed");
}

/// Even channels to the left, odd to the right, at unity: Airlift's
/// default routing of a many-channel input onto a stereo bus.
fn pan_filter(channels: u16) -> String {
    let side =
        |first: u16| (first..channels).step_by(2).map(|c| format!("c{c}")).collect::<Vec<_>>().join("+");
    format!("pan=stereo|c0={}|c1={}", side(0), side(1))
}

/// The same fold-down as the pan filter, written as float WAV.
fn premix(input: &Path, out: &Path, channels: u16) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(input)
        .args(["-af", &pan_filter(channels), "-c:a", "pcm_f32le"])
        .arg(out)
        .status()
        .expect("ffmpeg is installed");
    assert!(status.success(), "ffmpeg premix failed");
}

/// The render's mix of `input` (even channels left, odd right, at unity),
/// interleaved stereo, in memory.
fn premix_in_memory(input: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(input).expect("bench WAV");
    let channels = usize::from(reader.spec().channels);
    let mut mixed = Vec::with_capacity(reader.duration() as usize * 2);
    let mut frame = [0.0f32; 2];
    for (i, s) in reader.samples::<i16>().enumerate() {
        frame[(i % channels) % 2] += f32::from(s.expect("bench WAV")) / 32_768.0;
        if i % channels == channels - 1 {
            mixed.extend_from_slice(&frame);
            frame = [0.0; 2];
        }
    }
    mixed
}

/// A TS file written through a buffer, as the render's TS sink writes.
struct TsFileOut(std::io::BufWriter<std::fs::File>);

impl TsOutput for TsFileOut {
    fn write_ts(&mut self, data: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(&mut self.0, data)
    }

    fn flush_ts(&mut self) -> std::io::Result<()> {
        std::io::Write::flush(&mut self.0)?;
        self.0.get_ref().sync_data()
    }
}

/// The limit: `mixed` (interleaved stereo) cut into `parts` equal parts in
/// whole codec frames, each coded at once on its own thread by its own
/// encoder into its own TS file under `dir`.
fn encode_only(mixed: &[f32], dir: &Path, coding: Coding, parts: usize) {
    // Whole AAC frames (1024) and MP2 frames (1152) alike.
    let frame = 9 * 1024;
    let per = (mixed.len() / 2).div_ceil(parts).div_ceil(frame) * frame;
    std::thread::scope(|scope| {
        for (i, part) in mixed.chunks(per * 2).enumerate() {
            let path = dir.join(format!("limit{i}.ts"));
            scope.spawn(move || {
                let encoder = Encoder::new(coding.codec, 2, RATE, Some(coding.bitrate));
                let mut encoder = encoder.expect("bench encoder");
                let file = std::fs::File::create(&path).expect("bench TS file");
                let out = Box::new(TsFileOut(std::io::BufWriter::with_capacity(1 << 16, file)));
                let mut mux =
                    TsMuxer::new(out, &encoder, &TsMetadata::default(), 188 * 64).expect("bench muxer");
                for period in part.chunks(2 * 1024) {
                    encoder.encode(period, &mut mux).expect("bench encode");
                }
                encoder.finish(&mut mux).expect("bench encode");
                mux.finish().expect("bench muxer");
            });
        }
    });
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills a zeroed, writable struct.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut u);
        u
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One render or ffmpeg run: wall seconds and CPU seconds per audio second.
fn timed(who: libc::c_int, run: impl FnOnce()) -> (f64, f64) {
    let (cpu, wall) = (cpu_seconds(who), std::time::Instant::now());
    run();
    (wall.elapsed().as_secs_f64(), (cpu_seconds(who) - cpu) / f64::from(SECONDS))
}

/// (wall, CPU) of the chunked render, the one-encoder render, ffmpeg, and
/// the encode-only limit (when measured).
type Row = ((f64, f64), (f64, f64), (f64, f64), Option<(f64, f64)>);

/// Airlift's render (chunked encoders, then one encoder), ffmpeg and, with
/// `limit`, the encode-only limit on every CPU, run alternately `runs`
/// times, so that a machine whose speed drifts (a shared VM) slows all
/// alike. Prints the medians of wall time and CPU per audio second, and the
/// medians of the per-run ratios.
fn paired(
    label: &str,
    input: &Path,
    out: &Path,
    channels: u16,
    coding: Coding,
    runs: usize,
    limit: Option<&[f32]>,
) {
    let mut rows = Vec::new();
    let dir = out.parent().expect("bench output in a directory");
    for _ in 0..runs {
        let chunked = timed(libc::RUSAGE_SELF, || airlift(input, out, coding, None));
        let one = timed(libc::RUSAGE_SELF, || airlift(input, out, coding, Some(1)));
        let theirs = timed(libc::RUSAGE_CHILDREN, || ffmpeg(input, out, channels, coding));
        let floor = limit.map(|mixed| timed(libc::RUSAGE_SELF, || encode_only(mixed, dir, coding, cpus())));
        rows.push((chunked, one, theirs, floor));
    }
    let col = |f: &dyn Fn(&Row) -> f64| median(rows.iter().map(f).collect());
    println!(
        "{label}: {runs} alternating runs, medians: wall airlift {:.1} ms (one encoder {:.1} ms), ffmpeg -threads 1 {:.1} ms; airlift faster by {:.2}x (one encoder {:.2}x)",
        col(&|r| r.0.0) * 1e3,
        col(&|r| r.1.0) * 1e3,
        col(&|r| r.2.0) * 1e3,
        col(&|r| r.2.0 / r.0.0),
        col(&|r| r.2.0 / r.1.0),
    );
    println!(
        "{label}: CPU per audio second airlift {:.2} ms (one encoder {:.2} ms), ffmpeg {:.2} ms; ratio airlift/ffmpeg {:.3} (one encoder {:.3})",
        col(&|r| r.0.1) * 1e3,
        col(&|r| r.1.1) * 1e3,
        col(&|r| r.2.1) * 1e3,
        col(&|r| r.0.1 / r.2.1),
        col(&|r| r.1.1 / r.2.1),
    );
    if limit.is_some() {
        let floor = |r: &Row| r.3.unwrap_or_default();
        println!(
            "{label}: limit (the mix already in memory, encode-only, {} parts on {} threads at once): wall {:.1} ms, CPU per audio second {:.2} ms; render fraction of the limit {:.2} (limit wall / render wall), one encoder {:.2}",
            cpus(),
            cpus(),
            col(&|r| floor(r).0) * 1e3,
            col(&|r| floor(r).1) * 1e3,
            col(&|r| floor(r).0 / r.0.0),
            col(&|r| floor(r).0 / r.1.0),
        );
    }
}

struct Files {
    dir: PathBuf,
    in64: PathBuf,
    in2: PathBuf,
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("airlift-bench-encode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = Files { in64: dir.join("in64.wav"), in2: dir.join("in2.wav"), dir };
    write_wav(&files.in64, 64);
    write_wav(&files.in2, 2);
    let out = files.dir.join("out.ts");

    let jobs = [
        ("64ch_mix_aac128_ts", &files.in64, 64, AAC_128),
        ("stereo_aac128_ts", &files.in2, 2, AAC_128),
        ("stereo_mp2_192_ts", &files.in2, 2, Coding { codec: Codec::Mp2, ffmpeg: "mp2", bitrate: 192_000 }),
        (
            "stereo_opus96_ts",
            &files.in2,
            2,
            Coding { codec: Codec::Opus, ffmpeg: "libopus", bitrate: 96_000 },
        ),
    ];
    let only = std::env::var("AIRLIFT_ENCODE_BENCH_ONLY").ok();
    for (label, input, channels, coding) in jobs {
        if only.as_deref().is_some_and(|o| o != label) {
            continue;
        }
        let chunked = matches!(coding.codec, Codec::Aac | Codec::Mp2);
        let mixed = chunked.then(|| premix_in_memory(input));
        paired(label, input, &out, channels, coding, 9, mixed.as_deref());
        let mut group = c.benchmark_group(format!("encode_{label}_{SECONDS}s"));
        group.bench_function("airlift_render", |b| b.iter(|| airlift(input, &out, coding, None)));
        if coding.codec != Codec::Opus {
            // Opus renders use one encoder anyway.
            group.bench_function("airlift_render_one_encoder", |b| {
                b.iter(|| airlift(input, &out, coding, Some(1)))
            });
        }
        group.bench_function("ffmpeg_cli_threads_1", |b| b.iter(|| ffmpeg(input, &out, channels, coding)));
        if channels > 2 {
            // The floor for one libavcodec AAC encoder: the same stereo mix,
            // already mixed, encoded alone by the ffmpeg CLI.
            let mixed = files.dir.join("mixed.wav");
            premix(input, &mixed, channels);
            group.bench_function("ffmpeg_encode_only_premixed", |b| {
                b.iter(|| ffmpeg(&mixed, &out, 2, coding))
            });
        }
        if let Some(mixed) = &mixed {
            group.bench_function("encode_only_all_cores", |b| {
                b.iter(|| encode_only(mixed, &files.dir, coding, cpus()))
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
