//! Helpers for the media tests: temp dirs, peers that are always stopped
//! (drop guard), free ports, the engine in real time, and ffprobe.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("airlift-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("AIRLIFT_KEEP_TEST_DIRS").is_some() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (and reaped) when dropped.
pub struct Peer {
    pub child: Option<Child>,
    pub name: String,
}

impl Peer {
    /// Starts `cmd` in its own process group, so that stopping the peer
    /// reaches a program wrapped in `timeout` too.
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let child = cmd.process_group(0).spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { child: Some(child), name: name.into() }
    }

    /// Sends SIGINT and waits up to `limit` for a clean exit (then kills).
    pub fn interrupt(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = Command::new("kill").args(["-INT", "--", &format!("-{}", child.id())]).status();
        self.wait(limit)
    }

    /// Waits up to `limit` for the process to exit, killing it after that.
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
        let status = child.wait().ok();
        self.child = None;
        status
    }

    /// Kills it at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", c.id())]).status();
            let _ = c.wait();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A UDP port nobody uses right now.
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `airlift-engine run --flows FILE` in `dir`, logging to `dir/engine.log`,
/// its summary (stdout) to `dir/engine.out`.
pub fn run_engine(dir: &Path, flows: &str) -> Peer {
    let file = dir.join("flows.toml");
    std::fs::write(&file, flows).unwrap();
    let log = std::fs::File::create(dir.join("engine.log")).unwrap();
    Peer::spawn(
        "airlift-engine",
        Command::new(env!("CARGO_BIN_EXE_airlift-engine"))
            .args(["run", "--flows", file.to_str().unwrap()])
            .env("AIRLIFT_LOG", "info")
            .env("NO_COLOR", "1")
            .current_dir(dir)
            .stdout(std::fs::File::create(dir.join("engine.out")).unwrap())
            .stderr(log),
    )
}

/// `airlift-engine render --flows FILE --seconds N` in `dir`.
pub fn render(dir: &Path, flows: &str, seconds: &str) -> String {
    let file = dir.join("flows.toml");
    std::fs::write(&file, flows).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlift-engine"))
        .args(["render", "--flows", file.to_str().unwrap(), "--seconds", seconds])
        .current_dir(dir)
        .output()
        .expect("engine runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "render failed: {}{}", stdout, String::from_utf8_lossy(&out.stderr));
    stdout
}

/// What ffprobe says about the first audio stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub codec: String,
    pub rate: u32,
    pub channels: u32,
    pub start: f64,
    pub duration: f64,
    /// The container's duration (for containers without stream durations).
    pub format_duration: f64,
    pub service_name: Option<String>,
    pub provider: Option<String>,
}

impl Probe {
    pub fn end(&self) -> f64 {
        self.start + self.duration
    }
}

pub fn ffprobe(path: &Path) -> Probe {
    let value = ffprobe_flat(
        path,
        "stream=codec_name,sample_rate,channels,start_time,duration:program_tags=service_name,service_provider:format=duration",
    );
    let stream = |key: &str| value(&format!("streams.stream.0.{key}"));
    Probe {
        codec: stream("codec_name").unwrap_or_default(),
        rate: stream("sample_rate").and_then(|v| v.parse().ok()).unwrap_or(0),
        channels: stream("channels").and_then(|v| v.parse().ok()).unwrap_or(0),
        start: stream("start_time").and_then(|v| v.parse().ok()).unwrap_or(f64::NAN),
        duration: stream("duration").and_then(|v| v.parse().ok()).unwrap_or(f64::NAN),
        format_duration: value("format.duration").and_then(|v| v.parse().ok()).unwrap_or(f64::NAN),
        service_name: value("programs.program.0.tags.service_name"),
        provider: value("programs.program.0.tags.service_provider"),
    }
}

/// ffprobe's `-of flat` answer for the first audio stream and `entries`:
/// a lookup by flat key (e.g. `streams.stream.0.codec_name`, `format.duration`).
pub fn ffprobe_flat(path: &Path, entries: &str) -> impl Fn(&str) -> Option<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries", entries, "-of", "flat"])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    move |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k == key).then(|| v.trim_matches('"').to_owned())
        })
    }
}

/// Kbit/s of the AAC elementary stream in `ts` over `seconds`, copied out
/// as ADTS next to it.
pub fn aac_kbps(ts: &Path, seconds: f64) -> f64 {
    let adts = ts.with_extension("aac");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(ts)
        .args(["-c", "copy", "-f", "adts"])
        .arg(&adts)
        .status()
        .expect("ffmpeg is installed");
    assert!(status.success(), "cannot copy the AAC out of {}", ts.display());
    std::fs::metadata(&adts).unwrap().len() as f64 * 8.0 / seconds / 1000.0
}

/// Decodes the whole file with ffmpeg; returns its error output (empty
/// when decoding reported nothing).
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed");
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

/// Waits (at most 30 s) until the engine started in `dir` by `run` has
/// applied its flows (its listeners bound) and says it is running; panics
/// with its log otherwise. A fixed pause could end first on a loaded
/// machine, and a caller connecting too early gives up.
pub fn engine_running(dir: &Path) {
    engine_log_says(dir, "running; Ctrl-C stops", Duration::from_secs(30));
}

/// Waits (at most `limit`) until the log of the engine started in `dir`
/// holds `text`; panics with the log otherwise.
pub fn engine_log_says(dir: &Path, text: &str, limit: Duration) {
    let log = dir.join("engine.log");
    let says = || std::fs::read_to_string(&log).is_ok_and(|l| l.contains(text));
    assert!(
        wait_for(limit, says),
        "the engine's log never said {text:?}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Waits until `cond` holds, up to `limit`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Interleaved f32 samples of a WAV file (any format hound reads).
pub fn read_wav(path: &Path) -> (u32, u16, Vec<f64>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    let samples = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().map(|s| f64::from(s.unwrap())).collect(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample - 1));
            reader.samples::<i32>().map(|s| f64::from(s.unwrap()) * scale).collect()
        }
    };
    (spec.sample_rate, spec.channels, samples)
}

/// Channel `c` of interleaved samples, keeping only the part above -60 dBFS
/// (from the first to the last loud sample).
pub fn loud_part(samples: &[f64], channels: usize, c: usize) -> Vec<f64> {
    let ch: Vec<f64> = samples.iter().skip(c).step_by(channels).copied().collect();
    let first = ch.iter().position(|s| s.abs() > 0.001).unwrap_or(0);
    let last = ch.iter().rposition(|s| s.abs() > 0.001).unwrap_or(0);
    ch[first..=last.max(first)].to_vec()
}

/// Frequency from rising zero crossings.
pub fn frequency(rate: u32, samples: &[f64]) -> f64 {
    let crossings: Vec<usize> =
        samples.windows(2).enumerate().filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0).map(|(i, _)| i).collect();
    assert!(crossings.len() > 2, "no tone");
    let (first, last) = (crossings[0], *crossings.last().unwrap());
    (crossings.len() - 1) as f64 * f64::from(rate) / (last - first) as f64
}

/// Frequency from the median distance between rising zero crossings: a
/// network stream may lose a packet under load (SRT drops what arrives too
/// late), which shifts a whole-span count but not the median period.
pub fn median_frequency(rate: u32, samples: &[f64]) -> f64 {
    let crossings: Vec<usize> =
        samples.windows(2).enumerate().filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0).map(|(i, _)| i).collect();
    assert!(crossings.len() > 100, "no tone");
    // Spans of 50 cycles keep the resolution well under 0.1 Hz.
    let mut spans: Vec<usize> = crossings.windows(51).map(|w| w[50] - w[0]).collect();
    spans.sort_unstable();
    50.0 * f64::from(rate) / spans[spans.len() / 2] as f64
}

/// Peak in dBFS.
pub fn peak_db(samples: &[f64]) -> f64 {
    20.0 * samples.iter().fold(0.0f64, |m, s| m.max(s.abs())).log10()
}
