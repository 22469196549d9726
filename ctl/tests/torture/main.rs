//! The transition torture test (ARCHITECTURE.md, "Transitions are where
//! data is lost"; issue 15, deliverable 9).
//!
//! Real ctld and engine on a private `dbus-daemon`, uploading to `s3s-fs`
//! behind [`proxy::S3Proxy`] (which records every request and its answer,
//! and can refuse or black-hole S3), take a seeded random sequence of
//! transitions: SIGHUP with a random valid change (gain, bitrate, segment
//! length, a flow or an output added or removed), SIGHUP with an invalid
//! file, `kill -9` of the engine, `kill -9` of ctld and a restart, SIGTERM
//! and a restart, StopFlow/StartFlow over D-Bus, StartPull/StopPull of a
//! runtime pull job fed by an ffmpeg SRT sender (killed and restarted as a
//! step of its own), and S3 refusing (503) or black-holed for a few
//! seconds. After every step:
//! (a) no S3 key is written twice (successful PUTs on the wire, and no
//!     stored object's file ever changes);
//! (b) per job, a sequence number names one segment only, and numbers go
//!     up with time (spool and S3 together);
//! (c) every segment's SHA-256 matches its manifest (spool and S3);
//! (d) after a clean stop: no `.ts` without its manifest, no partial;
//! (e) file recordings never shrink and are never removed;
//! and at the end, with S3 back and a clean stop:
//! (f) the spool drains and every segment ever seen is in S3, written once;
//! (g) PTS continue (ffprobe) across every cut whose manifest does not say
//!     `discontinuity`.
//!
//! `CHAOS_SEED` picks the sequence (else the clock does; it is printed
//! first, and a failing seed replays the same transitions); `CHAOS_STEPS`
//! how many (60 by default; `make chaos CHAOS_STEPS=300`).

mod archive;
mod node;
mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use archive::Archive;
use node::{AK, BUCKET, Node, PREFIX, S3Server, SK, text, wait};
use proxy::{Mode, S3Proxy};

/// splitmix64: small, seedable, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

/// The configuration the test writes; every valid change is a change of it.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    /// Input gain of flow `a` (a tune, no rebuild).
    gain_db: i32,
    /// AAC bitrate of flow `a`'s segments (a rebuild of that output).
    bitrate: u32,
    /// Segment length of flow `a`.
    seg_secs: u32,
    /// Flow `c` is configured.
    third: bool,
    /// Flow `b` has a second output besides its segments and its recording.
    extra: bool,
}

impl Model {
    fn flows(&self) -> Vec<&'static str> {
        if self.third { vec!["a", "b", "c"] } else { vec!["a", "b"] }
    }

    fn config(&self, s3_port: u16, srt_first: u16, spawn: bool) -> String {
        let mut t = format!(
            r#"[node]
name = "torture"

[engine]
spawn = {spawn}
socket = "engine.sock"

[spool]
path = "spool"
max_bytes = "2GiB"
full_policy = "drop_oldest"

[upload]
concurrency = 2
backoff_min_ms = 50
backoff_max_ms = 1000
breaker_failures = 4
breaker_open_ms = 500
rescan_secs = 1
request_timeout_secs = 2

[[s3]]
name = "local"
endpoint = "http://127.0.0.1:{s3_port}"
bucket = "{BUCKET}"
prefix = "{PREFIX}/"
credentials_file = "creds"

[srt]
port_range = "{srt_first}-{srt_last}"

[[flow]]
name = "a"
period = 256

[[flow.input]]
name = "tone"
gain_db = {gain}.0
producer = {{ test_signal = {{ kind = "sine", frequency = 1000.0, level_dbfs = -20.0 }} }}

[[flow.output]]
name = "ts"
consumer = {{ encoded = {{ codec = "aac", bitrate = {bitrate}, sink = {{ segments = {{ job = "a", target_seconds = {seg} }} }} }} }}

[[flow]]
name = "b"
period = 256
channels = 1

[[flow.input]]
name = "tone"
producer = {{ test_signal = {{ kind = "sine", frequency = 440.0, level_dbfs = -20.0, channels = 1 }} }}

[[flow.output]]
name = "ts"
consumer = {{ encoded = {{ codec = "mp2", bitrate = 64000, sink = {{ segments = {{ job = "b", target_seconds = 1 }} }} }} }}

[[flow.output]]
name = "rec"
consumer = {{ record = {{ path = "rec/b.ogg", codec = "libopus" }} }}
"#,
            srt_last = srt_first + 9,
            gain = self.gain_db,
            bitrate = self.bitrate,
            seg = self.seg_secs,
        );
        if self.extra {
            t.push_str("\n[[flow.output]]\nname = \"extra\"\nconsumer = \"null\"\n");
        }
        if self.third {
            t.push_str(
                r#"
[[flow]]
name = "c"
period = 256
channels = 1

[[flow.input]]
name = "tone"
producer = { test_signal = { kind = "sine", frequency = 660.0, level_dbfs = -20.0, channels = 1 } }

[[flow.output]]
name = "ts"
consumer = { encoded = { codec = "mp2", bitrate = 64000, sink = { segments = { job = "c", target_seconds = 1 } } } }
"#,
            );
        }
        t
    }
}

/// Files a configuration must refuse, each keeping everything as it was.
const INVALID: [&str; 4] = [
    "[[flow]\nname = \"a\"\n",
    "[[flow]]\nname = \"a\"\nperiod = 7\n",
    "[spool]\npath = \"spool\"\n[[flow]]\nname = \"a\"\n[[flow.output]]\nname = \"ts\"\nconsumer = { encoded = { codec = \"mp2\", bitrate = 64000, sink = { segments = { job = \"retained\", target_seconds = 1 } } } }\n",
    "[spool]\npath = \"spool\"\nno_such_key = 1\n",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ReloadGain,
    ReloadBitrate,
    ReloadSegment,
    ReloadFlow,
    ReloadOutput,
    ReloadInvalid,
    KillEngine,
    KillCtld,
    RestartCtld,
    StopStartFlow,
    S3Refusing,
    S3BlackHole,
    StartStopPull,
    KillSender,
}

const KINDS: [(Kind, u64); 14] = [
    (Kind::ReloadGain, 8),
    (Kind::ReloadBitrate, 8),
    (Kind::ReloadSegment, 6),
    (Kind::ReloadFlow, 7),
    (Kind::ReloadOutput, 7),
    (Kind::ReloadInvalid, 7),
    (Kind::KillEngine, 10),
    (Kind::KillCtld, 8),
    (Kind::RestartCtld, 8),
    (Kind::StopStartFlow, 12),
    (Kind::S3Refusing, 7),
    (Kind::S3BlackHole, 7),
    (Kind::StartStopPull, 8),
    (Kind::KillSender, 4),
];

fn pick_kind(rng: &mut Rng) -> Kind {
    let total: u64 = KINDS.iter().map(|k| k.1).sum();
    let mut r = rng.below(total);
    for (k, w) in KINDS {
        if r < w {
            return k;
        }
        r -= w;
    }
    Kind::KillEngine
}

struct Torture {
    node: Node,
    s3: S3Server,
    proxy: S3Proxy,
    archive: Archive,
    model: Model,
    stopped: BTreeSet<String>,
    srt_first: u16,
    rng: Rng,
    /// The runtime pull job `cam` is started (over D-Bus).
    pull: bool,
    sender: Sender,
}

/// ffmpeg sending a tone as MPEG-TS (MP2) over SRT to the pull job's
/// listener; started again whenever it has exited (it exits when the
/// listener goes away), killed on drop.
struct Sender {
    child: Option<std::process::Child>,
    log: PathBuf,
    pub starts: u32,
}

impl Sender {
    fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    fn ensure(&mut self, port: u16) {
        if self.running() {
            return;
        }
        self.kill();
        self.starts += 1;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("sender log");
        let child = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000"])
            .args(["-c:a", "mp2", "-b:a", "128k", "-f", "mpegts"])
            .arg(format!("srt://127.0.0.1:{port}?mode=caller&pkt_size=1316&latency=80000"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ffmpeg is installed");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Torture {
    fn write_config(&self, spawn: bool) {
        let t = self.model.config(self.proxy.port, self.srt_first, spawn);
        std::fs::write(self.node.config_path(), t).expect("config");
    }

    fn spool(&self) -> PathBuf {
        self.node.dir.join("spool")
    }

    fn reloads(&self, result: &str) -> f64 {
        self.node.metric(&format!("airlift_config_reloads_total{{result=\"{result}\"}}")).unwrap_or(0.0)
    }

    /// Writes the model and SIGHUPs; waits until ctld counted the reload.
    fn reload(&mut self) -> Result<String, String> {
        let before = self.reloads("ok");
        self.write_config(true);
        self.node.signal("-HUP");
        wait(20, "the reload to be counted", || (self.reloads("ok") > before).then_some(()))?;
        Ok(format!("{:?}", self.model))
    }

    /// Every configured flow runs unless the operator stopped it, and
    /// exactly one engine serves the node.
    fn converged(&self) -> Result<(), String> {
        let want: BTreeMap<String, &str> = self
            .model
            .flows()
            .into_iter()
            .map(|f| (f.to_string(), if self.stopped.contains(f) { "stopped" } else { "running" }))
            .collect();
        let mut last = Vec::new();
        wait(20, "the flows to converge", || {
            last = self.node.flows();
            let have: BTreeMap<String, &str> = last.iter().map(|(n, s)| (n.clone(), s.as_str())).collect();
            (have == want).then_some(())
        })
        .map_err(|e| format!("{e}: want {want:?}, have {last:?}"))?;
        let pulls = self.node.pulls();
        let listed = pulls.iter().find(|p| p.0 == "cam");
        match (self.pull, listed) {
            (true, None) => return Err(format!("pull job cam is gone: {pulls:?}")),
            (false, Some(p)) => return Err(format!("pull job cam is back after StopPull: {p:?}")),
            (true, Some(p)) if p.1.contains("fail") => return Err(format!("pull job cam failed: {p:?}")),
            _ => {}
        }
        let engines = self.node.engine_pids();
        if engines.len() != 1 {
            return Err(format!("one engine expected, found {engines:?}"));
        }
        Ok(())
    }

    /// The pull job's listener port, from ListPulls.
    fn pull_port(&self) -> Option<u16> {
        let pulls = self.node.pulls();
        let (_, _, source) = pulls.iter().find(|p| p.0 == "cam")?;
        source.split("srt://:").nth(1)?.split('?').next()?.parse().ok()
    }

    /// Keeps ffmpeg sending while the pull job exists.
    fn keep_sender(&mut self) -> Result<(), String> {
        if !self.pull {
            self.sender.kill();
            return Ok(());
        }
        let port =
            self.pull_port().ok_or_else(|| format!("pull job cam is not listed: {:?}", self.node.pulls()))?;
        self.sender.ensure(port);
        Ok(())
    }

    fn step(&mut self, kind: Kind) -> Result<String, String> {
        match kind {
            Kind::StartStopPull | Kind::KillSender if !self.pull => {
                let out = self.node.gdbus(
                    "StartPull",
                    &[
                        "'srt://:0?mode=listener&latency=80&allow_unencrypted=true'",
                        "{'name': <'cam'>, 'segment_seconds': <uint32 1>}",
                    ],
                );
                if !out.status.success() {
                    return Err(format!("StartPull: {}", text(&out)));
                }
                self.pull = true;
                self.keep_sender()?;
                Ok(format!("StartPull cam on port {:?}", self.pull_port()))
            }
            Kind::StartStopPull => {
                let out = self.node.gdbus("StopPull", &["'cam'"]);
                if !out.status.success() {
                    return Err(format!("StopPull: {}", text(&out)));
                }
                self.pull = false;
                self.sender.kill();
                Ok("StopPull cam".into())
            }
            Kind::KillSender => {
                self.sender.kill();
                std::thread::sleep(self.rng.millis(200, 1_500));
                self.keep_sender()?;
                Ok("ffmpeg killed and started again".into())
            }
            Kind::ReloadGain => {
                self.model.gain_db = -(self.rng.below(20) as i32);
                self.reload()
            }
            Kind::ReloadBitrate => {
                let b = *self.rng.pick(&[64_000u32, 96_000, 128_000, 160_000]);
                self.model.bitrate = if b == self.model.bitrate { 192_000 } else { b };
                self.reload()
            }
            Kind::ReloadSegment => {
                self.model.seg_secs = if self.model.seg_secs == 1 { 2 } else { 1 };
                self.reload()
            }
            Kind::ReloadFlow => {
                // A stopped flow is not removed: its runtime state would
                // outlive it and the expectation would be a guess.
                if self.model.third && self.stopped.contains("c") {
                    self.stopped.remove("c");
                    let out = self.node.call("StartFlow", "s", &["c"]);
                    if !out.status.success() {
                        return Err(format!("StartFlow c: {}", text(&out)));
                    }
                    return Ok("StartFlow c (before removing it)".into());
                }
                self.model.third = !self.model.third;
                self.reload()
            }
            Kind::ReloadOutput => {
                self.model.extra = !self.model.extra;
                self.reload()
            }
            Kind::ReloadInvalid => {
                let bad = *self.rng.pick(&INVALID);
                let before = self.reloads("rejected");
                let flows = self.node.flows();
                std::fs::write(self.node.config_path(), bad).expect("config");
                self.node.signal("-HUP");
                let counted = wait(20, "the refused reload to be counted", || {
                    (self.reloads("rejected") > before).then_some(())
                });
                self.write_config(true);
                counted?;
                let now = self.node.flows();
                if now != flows {
                    return Err(format!("an invalid file changed the flows: {flows:?} → {now:?}"));
                }
                Ok(format!("{:?}", bad.lines().next().unwrap_or_default()))
            }
            Kind::KillEngine => {
                let pids = self.node.engine_pids();
                if pids.len() != 1 {
                    return Err(format!("one engine expected before kill -9, found {pids:?}"));
                }
                let _ = std::process::Command::new("kill").args(["-KILL", &pids[0].to_string()]).status();
                wait(25, "a new engine connected", || {
                    let now = self.node.engine_pids();
                    let connected =
                        text(&self.node.call("Status", "", &[])).contains("\"engine_connected\" b true");
                    (connected && now.len() == 1 && now[0] != pids[0]).then_some(())
                })?;
                Ok(format!("engine {}", pids[0]))
            }
            Kind::KillCtld => {
                let engines = self.node.engine_pids();
                self.node.kill9();
                std::thread::sleep(self.rng.millis(0, 500));
                let left = self.node.engine_pids();
                self.node.start(true).map_err(|e| {
                    format!(
                        "{e} (engines before the kill: {engines:?}; after: {left:?}; now: {:?})",
                        self.node.engine_pids()
                    )
                })?;
                Ok(format!("engines {engines:?} before, {left:?} after the kill"))
            }
            Kind::RestartCtld => {
                self.node.stop()?;
                archive::check_clean_spool(&self.spool())?;
                std::thread::sleep(self.rng.millis(0, 500));
                self.node.start(true)?;
                Ok("clean stop checked".into())
            }
            Kind::StopStartFlow => {
                let flows = self.model.flows();
                let f = self.rng.pick(&flows).to_string();
                let method = if self.stopped.contains(&f) { "StartFlow" } else { "StopFlow" };
                let out = self.node.call(method, "s", &[&f]);
                if !out.status.success() {
                    return Err(format!("{method} {f}: {}", text(&out)));
                }
                if method == "StopFlow" {
                    self.stopped.insert(f.clone());
                } else {
                    self.stopped.remove(&f);
                }
                Ok(format!("{method} {f}"))
            }
            Kind::S3Refusing | Kind::S3BlackHole => {
                let mode = if kind == Kind::S3Refusing { Mode::Refuse } else { Mode::BlackHole };
                let d = self.rng.millis(1_500, 4_000);
                self.proxy.set_mode(mode);
                std::thread::sleep(d);
                self.proxy.set_mode(Mode::Pass);
                Ok(format!("{mode:?} for {d:?}"))
            }
        }
    }

    /// The invariants that hold at any moment.
    fn check(&mut self) -> Result<(), String> {
        archive::check_writes(&self.proxy.log())?;
        let (spool, bucket) = (self.spool(), self.s3.bucket());
        self.archive.observe(&spool, &bucket)?;
        self.archive.check_recordings(&self.node.dir.join("rec"))
    }
}

fn seed() -> u64 {
    std::env::var("CHAOS_SEED").ok().and_then(|s| s.trim().parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

/// Removes the test folder on success (and keeps it on failure, or with
/// `AIRLIFT_KEEP_TEST_DIRS`).
struct TestDir(PathBuf);

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("AIRLIFT_KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {} for a look", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn transitions_never_lose_reuse_or_overwrite() {
    let seed = seed();
    let steps: usize = std::env::var("CHAOS_STEPS").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(60);
    println!("CHAOS_SEED={seed} CHAOS_STEPS={steps}");
    eprintln!("CHAOS_SEED={seed} CHAOS_STEPS={steps}");
    let started = Instant::now();

    let dir = TestDir(std::env::temp_dir().join(format!("airlift-torture-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(dir.0.join("rec")).unwrap();
    std::fs::write(dir.0.join("creds"), format!("{AK}:{SK}\n")).unwrap();
    let s3 = S3Server::start(&dir.0);
    let proxy = S3Proxy::start(s3.port);
    let srt_first = node::free_port().clamp(20_000, 60_000);
    let mut t = Torture {
        node: Node::new(dir.0.clone()),
        s3,
        proxy,
        archive: Archive::default(),
        model: Model { gain_db: 0, bitrate: 128_000, seg_secs: 1, third: false, extra: false },
        stopped: BTreeSet::new(),
        srt_first,
        rng: Rng(seed),
        pull: false,
        sender: Sender { child: None, log: dir.0.join("ffmpeg-sender.log"), starts: 0 },
    };
    t.write_config(true);
    let fail = |t: &Torture, step: usize, what: &str, e: String| -> ! {
        panic!(
            "CHAOS_SEED={seed}: step {step} ({what}) failed:\n{e}\n--- ctld log (tail) ---\n{}\n\
             replay: CHAOS_SEED={seed} CHAOS_STEPS={steps} cargo test -p airlift-ctl --test torture -- --nocapture",
            t.node.log_tail(60)
        )
    };
    if let Err(e) = t.node.start(true) {
        fail(&t, 0, "start", e);
    }
    std::thread::sleep(Duration::from_millis(1_500));

    let mut counts: BTreeMap<Kind, u32> = BTreeMap::new();
    for i in 1..=steps {
        let kind = pick_kind(&mut t.rng);
        *counts.entry(kind).or_default() += 1;
        let t0 = Instant::now();
        let done = t.step(kind);
        let detail = match done {
            Ok(d) => d,
            Err(e) => fail(&t, i, &format!("{kind:?}"), e),
        };
        println!("step {i:>3} {:>6.1}s {kind:?}: {detail}", started.elapsed().as_secs_f64());
        if let Err(e) = t.converged().and_then(|()| t.keep_sender()) {
            fail(&t, i, &format!("{kind:?}: {detail}"), e);
        }
        let settle = t.rng.millis(300, 1_500).saturating_sub(t0.elapsed() / 4);
        std::thread::sleep(settle);
        if let Err(e) = t.check() {
            fail(&t, i, &format!("{kind:?}: {detail}"), e);
        }
    }

    // S3 back, a clean stop, then ctld alone (no engine) drains the spool.
    t.proxy.set_mode(Mode::Pass);
    t.sender.kill();
    let end = steps + 1;
    if let Err(e) = t.node.stop().and_then(|()| archive::check_clean_spool(&t.spool())) {
        fail(&t, end, "final clean stop", e);
    }
    t.write_config(false);
    if let Err(e) = t.node.start(false) {
        fail(&t, end, "ctld without engine", e);
    }
    let spool = t.spool();
    if let Err(e) = wait(120, "the spool to drain", || (archive::pending(&spool) == 0).then_some(())) {
        let left = archive::pending(&spool);
        fail(&t, end, "drain", format!("(f) {e}: {left} files left"));
    }
    if let Err(e) = t.check() {
        fail(&t, end, "after the drain", e);
    }
    let conflicts = t.node.metric("airlift_upload_conflicts_total").unwrap_or(0.0);
    let quarantined = t.node.metric("airlift_spool_quarantined_segments_total").unwrap_or(0.0);
    if let Err(e) = t.node.stop() {
        fail(&t, end, "last stop", e);
    }
    if conflicts > 0.0 || quarantined > 0.0 {
        fail(&t, end, "after the drain", format!("{conflicts} upload conflicts, {quarantined} quarantined"));
    }

    // (f) Every segment ever seen is in S3, written once, with its manifest.
    let log = t.proxy.log();
    let writes = archive::writes(&log);
    let mut missing = Vec::new();
    for m in t.archive.seen.values() {
        for key in [format!("{PREFIX}/{}", m.path), format!("{PREFIX}/{}", m.path.replace(".ts", ".json"))] {
            if writes.get(&key) != Some(&1) || !t.s3.bucket().join(&key).exists() {
                missing.push(format!("{key}: {} writes", writes.get(&key).copied().unwrap_or(0)));
            }
        }
    }
    if !missing.is_empty() {
        fail(&t, end, "(f) every segment in S3 exactly once", missing.join("\n"));
    }

    // (g) PTS continue across every cut not marked as a discontinuity.
    let mut pairs = 0;
    let mut marked = 0;
    let mut from_manifest = 0;
    let mut jumps = Vec::new();
    let seen: Vec<_> = t.archive.seen.values().cloned().collect();
    for w in seen.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.job != b.job || b.sequence != a.sequence + 1 {
            continue;
        }
        if b.discontinuity {
            marked += 1;
            continue;
        }
        // A segment of a few frames (cut by a rebuild just after it began)
        // is too short for ffprobe to find its codec's parameters: its
        // manifest's PTS and duration stand in.
        let mut span = |m: &airlift_ipc::message::SegmentManifest| {
            archive::pts_span(&t.s3.bucket().join(format!("{PREFIX}/{}", m.path))).unwrap_or_else(|| {
                from_manifest += 1;
                (m.first_pts, m.first_pts + m.duration_90k as i64)
            })
        };
        let ((_, end_a), (first_b, _)) = (span(a), span(b));
        pairs += 1;
        // One AAC frame (1024 samples at 48 kHz) of slack.
        if (first_b - end_a).abs() > 1_920 {
            jumps.push(format!(
                "{} {}→{}: ends at PTS {end_a}, next starts at {first_b} ({:+} ms), not marked discontinuity",
                a.job,
                a.sequence,
                b.sequence,
                (first_b - end_a) / 90
            ));
        }
    }

    let puts = log.iter().filter(|e| e.method == "PUT").count();
    let refused = log.iter().filter(|e| e.status == 503).count();
    let held = log.iter().filter(|e| e.status == 0).count();
    let mut per_job: BTreeMap<String, usize> = BTreeMap::new();
    for (job, _) in t.archive.seen.keys() {
        *per_job.entry(job.clone()).or_default() += 1;
    }
    let (recordings, rec_bytes) = t.archive.recording_figures();
    println!("--- torture figures (CHAOS_SEED={seed}) ---");
    println!("steps: {steps}");
    for (k, n) in &counts {
        println!("  {k:?}: {n}");
    }
    println!("segments: {} {per_job:?}", t.archive.seen.len());
    println!("objects in S3: {}", t.archive.objects());
    println!("requests through the proxy: {} ({puts} PUT, {refused} refused, {held} black-holed)", log.len());
    println!(
        "cuts checked for PTS: {pairs} continuous ({from_manifest} segment ends from the manifest, too short \
         for ffprobe), {marked} marked discontinuity"
    );
    println!("empty partials quarantined by the engine: {}", t.archive.quarantined_partials);
    println!("recordings: {recordings} files, {rec_bytes} bytes, none shrank");
    println!("ctld starts: {}; ffmpeg sender starts: {}", t.node.starts, t.sender.starts);
    println!("seconds: {:.1}", started.elapsed().as_secs_f64());
    // Last, so that a failing run still prints its figures.
    if !jumps.is_empty() {
        fail(&t, end, "(g) PTS continuity", jumps.join("\n"));
    }
}
