//! The file recorder (`consumer = { record = { ... } }`): `airlift-engine
//! render` into FLAC, MP3, WAV, Ogg (Vorbis, Opus), MP4 and Matroska, each
//! checked by `ffprobe` and decoded back by `ffmpeg`; lossless files compared
//! sample by sample with the engine's own WAV recorder; refused choices give
//! the typed error and leave no file.

mod common;

use std::path::Path;
use std::process::Command;

use common::{TempDir, decode_errors, ffprobe, frequency, loud_part, peak_db, read_wav, render};

fn record_flow(channels: u32, record: &str) -> String {
    format!(
        r#"
[[flow]]
name = "rec"
channels = {channels}

[[flow.input]]
name = "sine"
producer = {{ test_signal = {{ kind = "sine", frequency = 1000.0, level_dbfs = -20.0, channels = {channels} }} }}

[[flow.output]]
name = "reference"
consumer = {{ wav = {{ path = "reference.wav", format = "s24" }} }}

[[flow.output]]
name = "file"
consumer = {{ record = {{ {record} }} }}
"#
    )
}

/// Decodes `path` with ffmpeg into a 32-bit WAV and reads it.
fn decode(dir: &TempDir, path: &Path) -> (u32, u16, Vec<f64>) {
    let wav = dir.path("decoded.wav");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(path)
        .args(["-c:a", "pcm_s32le"])
        .arg(&wav)
        .status()
        .expect("ffmpeg is installed");
    assert!(status.success(), "ffmpeg cannot decode {}", path.display());
    read_wav(&wav)
}

struct Case {
    /// The `record` table's keys.
    record: &'static str,
    file: &'static str,
    /// Codec ffprobe must show.
    codec: &'static str,
    /// Samples per codec frame: the duration tolerance.
    frame: f64,
    /// The decoded samples equal the engine's 24-bit WAV.
    lossless: bool,
}

const CASES: [Case; 8] = [
    Case { record: r#"path = "out.flac""#, file: "out.flac", codec: "flac", frame: 4608.0, lossless: true },
    Case {
        record: r#"path = "out.mp3", bitrate = 192000"#,
        file: "out.mp3",
        codec: "mp3",
        frame: 1152.0,
        lossless: false,
    },
    Case {
        record: r#"path = "out.wav", codec = "pcm_s24le""#,
        file: "out.wav",
        codec: "pcm_s24le",
        frame: 1.0,
        lossless: true,
    },
    Case { record: r#"path = "out.ogg""#, file: "out.ogg", codec: "vorbis", frame: 2048.0, lossless: false },
    Case {
        record: r#"path = "out.opus.ogg", codec = "libopus", bitrate = 96000"#,
        file: "out.opus.ogg",
        codec: "opus",
        frame: 960.0,
        lossless: false,
    },
    Case {
        record: r#"path = "out.m4a", codec = "aac""#,
        file: "out.m4a",
        codec: "aac",
        frame: 1024.0,
        lossless: false,
    },
    Case {
        record: r#"path = "out.mka", codec = "flac""#,
        file: "out.mka",
        codec: "flac",
        frame: 4608.0,
        lossless: true,
    },
    Case {
        record: r#"path = "out.audio", format = "matroska", codec = "libopus""#,
        file: "out.audio",
        codec: "opus",
        frame: 960.0,
        lossless: false,
    },
];

#[test]
fn every_container_and_codec_records_a_file_ffmpeg_reads_back() {
    for case in CASES {
        let dir = TempDir::new(&format!("record-{}", case.file));
        render(&dir.0, &record_flow(2, case.record), "3");
        let out = dir.path(case.file);
        let probe = ffprobe(&out);
        let what = case.record;
        assert_eq!(probe.codec, case.codec, "{what}");
        assert_eq!(probe.rate, 48_000, "{what}");
        assert_eq!(probe.channels, 2, "{what}");
        let duration = probe.format_duration;
        assert!((duration - 3.0).abs() <= case.frame / 48_000.0 + 1e-3, "{what}: duration {duration}");
        let errors = decode_errors(&out);
        assert!(errors.is_empty(), "{what}: decoding reported: {errors}");

        let (drate, dchannels, decoded) = decode(&dir, &out);
        assert_eq!((drate, dchannels), (48_000, 2), "{what}");
        if case.lossless {
            let (_, _, reference) = read_wav(&dir.path("reference.wav"));
            assert_eq!(decoded.len(), reference.len(), "{what}: sample count");
            let worst = decoded.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-9, "{what}: differs from the engine's own WAV by {worst}");
        }
        for c in 0..2 {
            let tone = loud_part(&decoded, 2, c);
            let f = frequency(48_000, &tone);
            assert!((f - 1000.0).abs() < 0.5, "{what}: {f} Hz");
            // −20 dBFS peak on each channel: RMS −23.01 dBFS, measured away
            // from the ends (lossy codecs ring at the onset).
            let middle = &tone[tone.len() / 10..tone.len() * 9 / 10];
            let rms = 10.0 * (middle.iter().map(|s| s * s).sum::<f64>() / middle.len() as f64).log10();
            assert!((rms + 23.01).abs() < 0.3, "{what}: RMS {rms} dBFS");
            if case.lossless {
                let peak = peak_db(&tone);
                assert!((peak + 20.0).abs() < 0.01, "{what}: peak {peak} dBFS");
            }
        }
    }
}

/// Runs a render that must be refused; returns its error output.
fn refused(dir: &TempDir, flows: &str) -> String {
    let file = dir.path("flows.toml");
    std::fs::write(&file, flows).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlift-engine"))
        .args(["render", "--flows", file.to_str().unwrap(), "--seconds", "1"])
        .current_dir(&dir.0)
        .output()
        .expect("engine runs");
    assert!(!out.status.success(), "accepted: {flows}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn impossible_choices_are_refused_with_the_reason_and_leave_no_file() {
    let cases: [(u32, &str, &str, &str); 7] = [
        (2, r#"path = "out.xyz""#, "out.xyz", "no container for this extension; set `format`"),
        (2, r#"path = "out.bin", format = "nosuchmuxer""#, "out.bin", "nosuchmuxer: no such container"),
        (
            2,
            r#"path = "out.flac", codec = "nosuch""#,
            "out.flac",
            "encoder nosuch is not in this FFmpeg build",
        ),
        (2, r#"path = "out.mp3", codec = "flac""#, "out.mp3", "container mp3 cannot hold flac"),
        (2, r#"path = "out.ogg", codec = "opus""#, "out.ogg", "experimental"),
        (8, r#"path = "out.mp3""#, "out.mp3", "channel count not supported"),
        (2, r#"path = "out.flac", codec = "mjpeg""#, "out.flac", "not an audio encoder"),
    ];
    for (channels, record, file, reason) in cases {
        let dir = TempDir::new("record-refused");
        let stderr = refused(&dir, &record_flow(channels, record));
        assert!(stderr.contains("output[file].consumer.record"), "{record}: field not named: {stderr}");
        assert!(stderr.contains(reason), "{record}: expected {reason:?} in: {stderr}");
        assert!(!dir.path(file).exists(), "{record}: {file} left behind");
        assert!(!dir.path("reference.wav").exists(), "{record}: the flow started half-way");
    }
    // Bad names never reach FFmpeg: the spec itself is refused.
    let dir = TempDir::new("record-refused-name");
    let stderr = refused(&dir, &record_flow(2, r#"path = "out.flac", codec = "../flac""#));
    assert!(stderr.contains("FFmpeg name"), "{stderr}");
}
