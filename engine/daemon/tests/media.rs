//! FFmpeg path end to end: `airlift-engine render` into MPEG-TS files for
//! every codec, checked by `ffprobe` and a full `ffmpeg` decode; the file
//! producer decoding formats and rates other than the flow's.

mod common;

use std::process::Command;

use common::{TempDir, aac_kbps, decode_errors, ffprobe, frequency, loud_part, peak_db, read_wav, render};

fn encode_flow(codec: &str, extra: &str, channels: u32) -> String {
    format!(
        r#"
[[flow]]
name = "enc"
channels = {channels}

[[flow.input]]
name = "sine"
producer = {{ test_signal = {{ kind = "sine", frequency = 1000.0, level_dbfs = -20.0, channels = {channels} }} }}

[[flow.output]]
name = "ts"
consumer = {{ encoded = {{ codec = "{codec}", {extra} sink = {{ file = {{ path = "out.ts" }} }} }} }}
"#
    )
}

/// (codec name in the spec, name ffprobe shows, samples per codec frame,
/// encoder delay in samples that ffprobe counts in the duration)
const CODECS: [(&str, &str, f64, f64); 4] = [
    ("aac", "aac", 1024.0, 1024.0),
    ("opus", "opus", 960.0, 0.0),
    ("mp2", "mp2", 1152.0, 0.0),
    ("s302m", "s302m", 960.0, 0.0),
];

#[test]
fn every_codec_writes_a_ts_file_ffprobe_reads_with_the_right_duration() {
    for (codec, name, frame, delay) in CODECS {
        let dir = TempDir::new(&format!("ts-{codec}"));
        render(&dir.0, &encode_flow(codec, "", 2), "5");
        let out = dir.path("out.ts");
        let probe = ffprobe(&out);
        assert_eq!(probe.codec, name, "{codec}: {probe:?}");
        assert_eq!(probe.rate, 48_000, "{codec}");
        assert_eq!(probe.channels, 2, "{codec}");
        let expected = 5.0 + delay / 48_000.0;
        assert!(
            (probe.duration - expected).abs() <= frame / 48_000.0 + 1e-6,
            "{codec}: duration {} vs {expected}",
            probe.duration
        );
        let errors = decode_errors(&out);
        assert!(errors.is_empty(), "{codec}: decoding reported: {errors}");
    }
}

#[test]
fn service_name_provider_and_bitrate_reach_the_stream() {
    let dir = TempDir::new("ts-meta");
    render(
        &dir.0,
        &encode_flow("aac", r#"bitrate = 96000, service_name = "Airlift One", provider = "Studio B","#, 2),
        "4",
    );
    let out = dir.path("out.ts");
    let probe = ffprobe(&out);
    assert_eq!(probe.service_name.as_deref(), Some("Airlift One"));
    assert_eq!(probe.provider.as_deref(), Some("Studio B"));
    // The audio elementary stream itself runs at the asked bitrate.
    let kbps = aac_kbps(&out, 4.0);
    assert!((80.0..110.0).contains(&kbps), "{kbps} kbit/s");
}

#[test]
fn ts_written_by_the_engine_decodes_back_to_the_tone() {
    let dir = TempDir::new("ts-roundtrip");
    render(&dir.0, &encode_flow("mp2", "", 1), "3");
    let flows = r#"
[[flow]]
name = "dec"
channels = 1

[[flow.input]]
name = "ts"
producer = { file = { path = "out.ts" } }

[[flow.output]]
name = "rec"
consumer = { wav = { path = "back.wav", format = "f32" } }
"#;
    render(&dir.0, flows, "4");
    let (rate, channels, samples) = read_wav(&dir.path("back.wav"));
    let tone = loud_part(&samples, usize::from(channels), 0);
    let f = frequency(rate, &tone);
    assert!((f - 1000.0).abs() < 1.0, "{f} Hz");
    let seconds = tone.len() as f64 / f64::from(rate);
    assert!((seconds - 3.0).abs() < 0.05, "{seconds} s of tone");
    let peak = peak_db(&tone);
    assert!((peak + 20.0).abs() < 0.5, "peak {peak} dBFS");
}

#[test]
fn the_file_producer_decodes_other_formats_and_resamples_to_the_flow() {
    let dir = TempDir::new("file-flac");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
        .arg("sine=frequency=440:sample_rate=44100:duration=2")
        .arg(dir.path("in.flac"))
        .status()
        .expect("ffmpeg is installed");
    assert!(status.success());
    let flows = r#"
[[flow]]
name = "dec"
channels = 1

[[flow.input]]
name = "flac"
producer = { file = { path = "in.flac" } }

[[flow.output]]
name = "rec"
consumer = { wav = { path = "out.wav", format = "f32" } }
"#;
    render(&dir.0, flows, "3");
    let (rate, _, samples) = read_wav(&dir.path("out.wav"));
    assert_eq!(rate, 48_000);
    let tone = loud_part(&samples, 1, 0);
    let f = frequency(rate, &tone);
    assert!((f - 440.0).abs() < 0.5, "{f} Hz");
    let seconds = tone.len() as f64 / 48_000.0;
    assert!((seconds - 2.0).abs() < 0.01, "{seconds} s");
    // lavfi's sine has amplitude 1/8: -18.06 dBFS.
    let peak = peak_db(&tone);
    assert!((peak + 18.06).abs() < 0.2, "peak {peak} dBFS");
}

fn render_fails(flows: &str) -> String {
    let dir = TempDir::new("bad-media");
    let file = dir.path("flows.toml");
    std::fs::write(&file, flows).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlift-engine"))
        .args(["render", "--flows", file.to_str().unwrap(), "--seconds", "1"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!dir.path("out.ts").exists(), "nothing is left behind");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn impossible_codec_settings_and_missing_files_are_refused_with_the_field() {
    let err = render_fails(&encode_flow("s302m", "", 1));
    assert!(err.contains("output[ts].consumer.encoded") && err.contains("S302M"), "{err}");

    let err = render_fails(
        r#"
[[flow]]
name = "x"
[[flow.input]]
name = "f"
producer = { file = { path = "missing.mp3" } }
[[flow.output]]
name = "n"
consumer = "null"
"#,
    );
    assert!(err.contains("input[f].producer.file.path") && err.contains("missing.mp3"), "{err}");

    // A live SRT input cannot be rendered offline (it would wait forever).
    let err = render_fails(
        r#"
[[flow]]
name = "x"
[[flow.input]]
name = "live"
producer = { srt_in = { srt = { mode = { listener = { port = 9 } }, allow_unencrypted = true } } }
[[flow.output]]
name = "n"
consumer = "null"
"#,
    );
    assert!(err.contains("input[live].producer") && err.contains("offline"), "{err}");
}
