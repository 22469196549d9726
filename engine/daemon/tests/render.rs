//! `airlift-engine render` end to end: levels and frequency checked by our
//! own computation and by `sox`, loudness against `ffmpeg -af ebur128`, and
//! bad flow files refused with the field named and nothing written.

use std::path::{Path, PathBuf};
use std::process::Command;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("airlift-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn engine(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_airlift-engine")).args(args).output().expect("engine runs")
}

fn render(dir: &Path, flows: &str, seconds: &str) -> String {
    let file = dir.join("flows.toml");
    std::fs::write(&file, flows).unwrap();
    let out = engine(&["render", "--flows", file.to_str().unwrap(), "--seconds", seconds]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "render failed: {}{}", stdout, String::from_utf8_lossy(&out.stderr));
    stdout
}

fn read_mono(path: &Path) -> (u32, Vec<f64>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    assert_eq!(spec.channels, 1);
    let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample - 1));
    let samples = reader.samples::<i32>().map(|s| f64::from(s.unwrap()) * scale).collect();
    (spec.sample_rate, samples)
}

/// Frequency from the number of rising zero crossings over the whole file.
fn frequency(rate: u32, samples: &[f64]) -> f64 {
    let crossings: Vec<usize> =
        samples.windows(2).enumerate().filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0).map(|(i, _)| i).collect();
    let (first, last) = (crossings[0], *crossings.last().unwrap());
    (crossings.len() - 1) as f64 * f64::from(rate) / (last - first) as f64
}

fn sox_stat(path: &Path) -> std::collections::HashMap<String, f64> {
    let out = Command::new("sox").arg(path).args(["-n", "stat"]).output().expect("sox is installed");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

const TONE_AND_SILENCE: &str = r#"
[[flow]]
name = "tone"
channels = 1
period = 128

[[flow.input]]
name = "sine"
producer = { test_signal = { kind = "sine", frequency = 1000.0, level_dbfs = -20.0 } }

[[flow.input]]
name = "quiet"
producer = { test_signal = { kind = "silence" } }

[[flow.output]]
name = "rec"
consumer = { wav = { path = "out.wav", format = "s24" } }
"#;

#[test]
fn sine_mixed_with_silence_has_its_level_and_frequency() {
    let dir = TempDir::new("render-sine");
    render(&dir.0, TONE_AND_SILENCE, "5");
    let wav = dir.0.join("out.wav");
    let (rate, samples) = read_mono(&wav);
    assert_eq!(rate, 48_000);
    assert_eq!(samples.len(), 48_000 * 5);
    let peak = samples.iter().fold(0.0f64, |m, s| m.max(s.abs()));
    let rms = (samples.iter().map(|s| s * s).sum::<f64>() / samples.len() as f64).sqrt();
    assert!((20.0 * peak.log10() + 20.0).abs() < 0.01, "peak {peak}");
    assert!((20.0 * rms.log10() + 23.0103).abs() < 0.01, "rms {rms}");
    let f = frequency(rate, &samples);
    assert!((f - 1000.0).abs() < 0.05, "frequency {f}");

    let stat = sox_stat(&wav);
    assert!((stat["Maximum amplitude"] - 0.1).abs() < 1e-3, "{stat:?}");
    assert!((stat["RMS     amplitude"] - 0.070_71).abs() < 1e-3, "{stat:?}");
    assert!((stat["Rough   frequency"] - 1000.0).abs() < 5.0, "{stat:?}");
}

fn ffmpeg_integrated(path: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-af", "ebur128", "-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed");
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = text.rsplit("Summary:").next().unwrap();
    let line = summary.lines().find(|l| l.trim_start().starts_with("I:")).expect("integrated loudness line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn ours_integrated(stdout: &str) -> f64 {
    let line = stdout.lines().find(|l| l.contains("integrated")).expect("loudness line");
    line.split("integrated ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn integrated_loudness_matches_ffmpeg() {
    for (kind, extra) in [
        ("sine", "frequency = 1000.0,"),
        ("pink_noise", ""),
        ("sweep", "frequency = 50.0, end_frequency = 12000.0, sweep_seconds = 5,"),
    ] {
        let dir = TempDir::new(&format!("r128-{kind}"));
        let flows = format!(
            r#"
[[flow]]
name = "loud"
channels = 2

[[flow.input]]
name = "src"
producer = {{ test_signal = {{ kind = "{kind}", {extra} level_dbfs = -18.0 }} }}

[[flow.processor]]
loudness = {{}}

[[flow.output]]
name = "rec"
consumer = {{ wav = {{ path = "out.wav", format = "f32" }} }}
"#
        );
        let stdout = render(&dir.0, &flows, "12");
        let ours = ours_integrated(&stdout);
        let theirs = ffmpeg_integrated(&dir.0.join("out.wav"));
        eprintln!("{kind}: ours {ours} LUFS, ffmpeg {theirs} LUFS");
        assert!((ours - theirs).abs() <= 0.1, "{kind}: ours {ours} LUFS, ffmpeg {theirs} LUFS");
    }
}

fn refused(dir: &Path, flows: &str, expect: &[&str]) {
    let file = dir.join("bad.toml");
    std::fs::write(&file, flows).unwrap();
    let out = engine(&["render", "--flows", file.to_str().unwrap(), "--seconds", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {flows}");
    for e in expect {
        assert!(stderr.contains(e), "expected {e:?} in: {stderr}");
    }
    assert!(!dir.join("out.wav").exists(), "a refused flow wrote its output");
}

#[test]
fn bad_flow_specs_name_the_field_and_start_nothing() {
    let dir = TempDir::new("bad-specs");
    refused(&dir.0, &TONE_AND_SILENCE.replace("channels = 1", "channels = 0"), &["channel count", "line 4"]);
    refused(
        &dir.0,
        &TONE_AND_SILENCE.replace("period = 128", "period = 128\nsample_rate = 47999"),
        &["47999", "sample_rate"],
    );
    refused(
        &dir.0,
        &TONE_AND_SILENCE.replace("test_signal = { kind = \"silence\" }", "bogus = {}"),
        &["unknown variant", "bogus"],
    );
    refused(
        &dir.0,
        &TONE_AND_SILENCE.replace("name = \"quiet\"", "name = \"quiet\"\ngain_db = nan"),
        &["gain", "NaN"],
    );
    refused(
        &dir.0,
        &TONE_AND_SILENCE
            .replace("test_signal = { kind = \"silence\" }", "file = { path = \"missing.wav\" }"),
        &["input[quiet].producer.file.path", "missing.wav"],
    );
    refused(
        &dir.0,
        &TONE_AND_SILENCE.replace("frequency = 1000.0", "frequency = 30000.0"),
        &["input[sine]", "Nyquist"],
    );
}
