//! Chunked parallel encoding in offline renders: the same flow rendered with
//! one encoder and with four coding chunks at once gives streams with the
//! same packet times and count, both decode cleanly, and the parallel one is
//! as close to the source as the serial one everywhere — in particular in
//! the frames around each splice, where clicks are placed to force AAC's
//! short windows across the cut. Checked for AAC and MP2, in MPEG-TS and in
//! file recordings (MP4, Matroska), with ffprobe and ffmpeg's decoder.

mod common;

use std::num::NonZeroUsize;
use std::path::Path;
use std::process::Command;

use airlift_engine::FlowBuilder;
use airlift_engine::assembly::BuildOptions;
use airlift_engine::flow::render;
use airlift_engine::sys::ffmpeg::{ChunkedEncoder, Encoder};
use airlift_ipc::spec::{Codec, ConsumerSpec, EncodedSpec, RecordSpec, TsSink};
use airlift_ipc::units::{Bitrate, FfmpegName, SafePath};
use common::{TempDir, decode_errors, ffprobe};

const RATE: usize = 48_000;
const SECONDS: usize = 16;
const THREADS: usize = 4;

/// Where a render of `SECONDS` on `THREADS` encoders splices, as the
/// engine sizes its chunks.
fn splices(codec: Codec) -> Vec<usize> {
    let template = Encoder::new(codec, 2, RATE as u32, Some(128_000)).unwrap();
    let chunked = ChunkedEncoder::new(&template, THREADS, Some((RATE * SECONDS) as u64)).unwrap();
    let chunk = chunked.chunk_frames() as usize;
    assert_eq!(chunk % template.frame_size(), 0, "chunks of whole codec frames");
    (1..THREADS).map(|k| k * chunk).collect()
}

/// The splices with bursts around them (the first and the last); the one
/// between stays a plain tone, where any seam would stand out.
fn burst_splices(codec: Codec) -> Vec<usize> {
    let all = splices(codec);
    vec![all[0], all[all.len() - 1]]
}

/// Mid-chunk places with the same bursts as the splices, as a control: how
/// differently two encoders code the same transient away from any seam.
fn controls(codec: Codec, frame: usize) -> Vec<usize> {
    let half = splices(codec)[0] / 2 / frame * frame;
    burst_splices(codec).into_iter().map(|s| s - half).collect()
}

/// Stereo source: a tone on each side, with short loud bursts just before,
/// on and just after two of the splices (the hardest place for the coder's
/// window decisions) and at control places, written as float WAV. Returns
/// the samples (interleaved).
fn write_source(path: &Path, codec: Codec, frame: usize) -> Vec<f32> {
    let n = RATE * SECONDS;
    let mut samples = Vec::with_capacity(n * 2);
    for i in 0..n {
        let t = i as f64 / RATE as f64;
        let l = 0.1 * (2.0 * std::f64::consts::PI * 997.0 * t).sin();
        let r = 0.05 * (2.0 * std::f64::consts::PI * 1499.0 * t).sin();
        samples.push(l as f32);
        samples.push(r as f32);
    }
    for s in burst_splices(codec).into_iter().chain(controls(codec, frame)) {
        for at in [s - 700, s - 40, s + 300, s + 1800] {
            for k in 0..96 {
                let w = (std::f64::consts::PI * k as f64 / 96.0).sin();
                let b = 0.5 * w * (2.0 * std::f64::consts::PI * 5_000.0 * k as f64 / RATE as f64).sin();
                samples[(at + k) * 2] += b as f32;
                samples[(at + k) * 2 + 1] -= b as f32;
            }
        }
    }
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE as u32,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in &samples {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
    samples
}

/// Renders `source` into `out`: an MPEG-TS file for `.ts`, else a file
/// recording (container from the extension).
fn render_to(source: &Path, out: &Path, codec: Codec, threads: usize) {
    let path = SafePath::new(out.to_str().unwrap()).unwrap();
    let bitrate = Some(Bitrate::new(128_000).unwrap());
    let consumer = if out.extension().is_some_and(|e| e == "ts") {
        ConsumerSpec::Encoded(EncodedSpec {
            codec,
            bitrate,
            service_name: None,
            provider: None,
            sink: TsSink::File { path },
        })
    } else {
        let name = match codec {
            Codec::Aac => "aac",
            _ => "mp2",
        };
        ConsumerSpec::Record(RecordSpec {
            path,
            format: None,
            codec: Some(FfmpegName::new(name).unwrap()),
            bitrate,
        })
    };
    let spec = FlowBuilder::new("chunks")
        .unwrap()
        .channels(2)
        .unwrap()
        .wav_file("in", source.to_str().unwrap(), false)
        .unwrap()
        .output("out", consumer)
        .unwrap()
        .spec();
    let options = BuildOptions { encode_threads: NonZeroUsize::new(threads), ..BuildOptions::default() };
    render(&spec, &options, SECONDS as f64, vec![]).unwrap();
}

/// Packet timestamps and sizes, as ffprobe lists them.
fn packets(path: &Path) -> Vec<(i64, usize)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries", "packet=pts,size", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut fields = l.split(',').filter(|f| !f.is_empty());
            Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
        .collect()
}

/// The stream decoded by ffmpeg to interleaved float.
fn decode(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "2", "-"])
        .output()
        .expect("ffmpeg is installed");
    assert!(out.status.success(), "ffmpeg cannot decode {}", path.display());
    out.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// The codec delay: the lag (in frames) at which `decoded` best matches
/// `source` around the burst at `place` (a tone alone cannot tell lags a
/// period apart).
fn lag(source: &[f32], decoded: &[f32], place: usize) -> usize {
    let err = |d: usize| -> f64 {
        (place - 2048..place + 4096)
            .flat_map(|i| (0..2).map(move |c| (i, c)))
            .map(|(i, c)| f64::from(decoded[(i + d) * 2 + c] - source[i * 2 + c]).powi(2))
            .sum()
    };
    (0..4000).min_by(|&a, &b| err(a).total_cmp(&err(b))).unwrap()
}

/// Error energy over signal energy in each `window` frames, after `delay`.
fn window_errors(source: &[f32], decoded: &[f32], delay: usize, window: usize) -> Vec<f64> {
    let frames = (source.len() / 2).min(decoded.len() / 2 - delay);
    (0..frames / window)
        .map(|w| {
            let (mut err, mut sig) = (0.0, 0.0);
            for i in w * window..(w + 1) * window {
                for c in 0..2 {
                    let s = f64::from(source[i * 2 + c]);
                    err += (f64::from(decoded[(i + delay) * 2 + c]) - s).powi(2);
                    sig += s * s;
                }
            }
            err / sig
        })
        .collect()
}

fn db(ratio: f64) -> f64 {
    10.0 * ratio.log10()
}

fn check_codec(codec: Codec, name: &str, frame: usize, ext: &str) {
    let dir = TempDir::new(&format!("parallel-encode-{name}-{ext}"));
    let source_path = dir.path("source.wav");
    let source = write_source(&source_path, codec, frame);
    let serial = dir.path(&format!("serial.{ext}"));
    let parallel = dir.path(&format!("parallel.{ext}"));
    render_to(&source_path, &serial, codec, 1);
    render_to(&source_path, &parallel, codec, THREADS);

    for ts in [&serial, &parallel] {
        let probe = ffprobe(ts);
        assert_eq!((probe.codec.as_str(), probe.rate, probe.channels), (name, 48_000, 2), "{}", ts.display());
        assert_eq!(decode_errors(ts), "", "{} decodes with errors", ts.display());
    }
    let (ps, pp) = (packets(&serial), packets(&parallel));
    assert_eq!(ps.len(), pp.len(), "packet count");
    assert!(ps.iter().zip(&pp).all(|(a, b)| a.0 == b.0), "packet times differ");
    let (bytes_s, bytes_p): (usize, usize) = (ps.iter().map(|p| p.1).sum(), pp.iter().map(|p| p.1).sum());
    let rate_ratio = bytes_p as f64 / bytes_s as f64;
    assert!((0.97..1.03).contains(&rate_ratio), "bitrate parallel/serial {rate_ratio:.4}");

    let (ds, dp) = (decode(&serial), decode(&parallel));
    assert_eq!(ds.len(), dp.len(), "decoded lengths");
    if codec == Codec::Mp2 {
        // MP2 carries only its filter bank's 512 samples from frame to
        // frame: after the preroll, each chunk's frames are the serial
        // encoder's, bit for bit.
        assert!(ps == pp && ds == dp, "MP2 chunks differ from the serial stream");
    }
    let place = controls(codec, frame)[0];
    let delay = lag(&source, &ds, place);
    assert_eq!(lag(&source, &dp, place), delay, "the parallel stream is shifted");
    let window = frame;
    let (es, ep) = (window_errors(&source, &ds, delay, window), window_errors(&source, &dp, delay, window));
    let total = |e: &[f64]| e.iter().sum::<f64>() / e.len() as f64;
    let worst = |e: &[f64]| e.iter().copied().fold(0.0, f64::max);
    println!(
        "{name}: delay {delay}, mean error serial {:.1} dB parallel {:.1} dB, worst window serial {:.1} dB parallel {:.1} dB, bytes ratio {rate_ratio:.4}",
        db(total(&es)),
        db(total(&ep)),
        db(worst(&es)),
        db(worst(&ep))
    );
    // Windows a burst reaches: from the first burst to the last, widened by
    // the frames whose transform or window switching spans them.
    let burst_windows = |places: Vec<usize>| -> Vec<usize> {
        places.into_iter().flat_map(|s| (s - 700) / window - 3..=(s + 1900) / window + 4).collect()
    };
    let (at_splices, at_controls) =
        (burst_windows(burst_splices(codec)), burst_windows(controls(codec, frame)));
    // Not the coder's onset (the first 16 frames) nor its flush.
    let tone_only: Vec<usize> =
        (16..es.len() - 2).filter(|w| !at_splices.contains(w) && !at_controls.contains(w)).collect();
    let max_db = |e: &[f64], ws: &[usize]| ws.iter().map(|&w| db(e[w])).fold(f64::MIN, f64::max);

    // A plain tone across a splice is coded as well as anywhere else: no
    // window of the parallel stream is worse than the worst of the serial
    // one (two encoders' noise differs by a few dB window by window; a seam
    // — a shifted or doubled frame, aliasing left uncancelled — is 10 dB
    // and more above the coding noise).
    let (tone_s, tone_p) = (max_db(&es, &tone_only), max_db(&ep, &tone_only));
    let quiet_splice = splices(codec)[1] / window;
    println!(
        "{name}: tone-only windows: worst serial {tone_s:.1} dB, parallel {tone_p:.1} dB; at the plain splice: serial {:.1}/{:.1} dB, parallel {:.1}/{:.1} dB",
        db(es[quiet_splice - 1]),
        db(es[quiet_splice]),
        db(ep[quiet_splice - 1]),
        db(ep[quiet_splice])
    );
    assert!(tone_p < tone_s + 3.0, "a tone-only window of the parallel stream is {tone_p:.1} dB off");
    // Transients on a splice are coded no worse than the same transients
    // away from any splice (by either encoding).
    let (burst_p, control) =
        (max_db(&ep, &at_splices), max_db(&es, &at_controls).max(max_db(&ep, &at_controls)));
    println!("{name}: bursts: worst at splices {burst_p:.1} dB, worst at the controls {control:.1} dB");
    assert!(
        burst_p < control + 3.0,
        "bursts at a splice are coded {burst_p:.1} dB off (controls {control:.1} dB)"
    );
}

#[test]
fn aac_chunks_splice_seamlessly() {
    check_codec(Codec::Aac, "aac", 1024, "ts");
}

#[test]
fn mp2_chunks_splice_seamlessly() {
    check_codec(Codec::Mp2, "mp2", 1152, "ts");
}

/// The file recorder's AAC in MP4 (global header, edit list for the priming).
#[test]
fn aac_chunks_splice_seamlessly_in_a_file_recording() {
    check_codec(Codec::Aac, "aac", 1024, "m4a");
}

#[test]
fn mp2_chunks_splice_seamlessly_in_a_file_recording() {
    check_codec(Codec::Mp2, "mp2", 1152, "mka");
}
