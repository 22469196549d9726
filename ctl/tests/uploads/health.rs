//! Health that tells the truth, end to end: one ctld with a real engine, a
//! private D-Bus bus, an S3 server and a signed webhook walks a table of
//! causes. For each, the cause is provoked for real (a server stopped, a
//! port held, bytes in the spool, …); the test waits until every reason
//! it must give shows in `/health`, in D-Bus `Status`, in
//! `airlift_health_reason` and as a signed `raised` alarm at the webhook;
//! then the cause is removed and every reason must leave all three and be
//! `cleared` at the webhook, and the node must be healthy again before the
//! next row.
//!
//! Not here: a pull job *reconnecting* (a caller whose peer is gone) — the
//! engine reports such a job `Running`, so ctld cannot see it; and the
//! `unhealthy` reasons (`engine_away`, `all_flows_failed`), which ctld
//! restores faster than an alarm is raised.

use super::*;

use std::net::UdpSocket;

const HOOK_SECRET: &str = "hook-secret-for-health";
/// The spool's limit; `[spool] full_policy = "stop_recording"`.
const SPOOL_MAX: u64 = 8 << 20;
/// Raising takes the cause's own delay plus the alarm hold (3 s).
const RAISE_LIMIT: Duration = Duration::from_secs(30);
const CLEAR_LIMIT: Duration = Duration::from_secs(30);

/// One request the webhook received: its headers (lower-case names) and body.
type Received = (Vec<(String, String)>, Vec<u8>);

/// A webhook receiver on 127.0.0.1 that answers 200 and keeps what it
/// got; stopped on drop.
struct Webhook {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Webhook {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("webhook bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                if let Some(r) = read_request(stream) {
                    seen.lock().expect("webhook log").push(r);
                }
            }
        });
        Self { port, got, stop }
    }

    /// Events received from index `from` on, with whether each signature
    /// was valid.
    fn events(&self, from: usize) -> Vec<(serde_json::Value, bool)> {
        let got = self.got.lock().expect("webhook log");
        got.iter()
            .skip(from)
            .filter_map(|(headers, body)| {
                let sig = headers.iter().find(|(k, _)| k == "x-airlift-signature").map(|(_, v)| v.as_str());
                let valid = sig == Some(airlift_ctl::alert::sign(HOOK_SECRET.as_bytes(), body).as_str());
                Some((serde_json::from_slice(body).ok()?, valid))
            })
            .collect()
    }

    fn count(&self) -> usize {
        self.got.lock().expect("webhook log").len()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read_request(stream: TcpStream) -> Option<Received> {
    use std::io::BufRead;
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = std::io::BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize =
        headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    Some((headers, body))
}

/// ctld with the engine it spawns; stopped (SIGINT, then SIGKILL) on drop.
struct Node {
    child: Child,
    dir: PathBuf,
    http: u16,
    bus: String,
}

impl Node {
    fn start(dir: &Path, config: &str, bus: &str) -> Self {
        let path = dir.join("airlift.toml");
        std::fs::write(&path, config).expect("config");
        let http = free_port();
        let ctld = PathBuf::from(env!("CARGO_BIN_EXE_airlift-ctld"));
        let engine = ctld.with_file_name("airlift-engine");
        assert!(engine.exists(), "{} is missing: cargo build -p airlift-engine", engine.display());
        let log = std::fs::File::create(dir.join("ctld.log")).expect("log");
        let child = Command::new(&ctld)
            .arg("--config")
            .arg(&path)
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .arg("--engine-binary")
            .arg(engine)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ctld");
        Self { child, dir: dir.to_path_buf(), http, bus: bus.to_string() }
    }

    fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        Some(text.split_once("\r\n\r\n")?.1.to_string())
    }

    fn health(&self) -> serde_json::Value {
        self.get("/health").and_then(|h| serde_json::from_str(&h).ok()).unwrap_or_default()
    }

    fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get("/metrics")?;
        text.lines().find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == series).then(|| v.parse().ok())?
        })
    }

    /// D-Bus `Status`: its `state` and `reasons`, through busctl.
    fn status(&self) -> (String, Vec<String>) {
        let out = Command::new("busctl")
            .arg(format!("--address={}", self.bus))
            .args(["--json=short", "call", "org.airlift.Node1", "/org/airlift/Node1"])
            .args(["org.airlift.Node1", "Status"])
            .output()
            .expect("busctl");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let d = &v["data"][0];
        let state = d["state"]["data"].as_str().unwrap_or("").to_string();
        let reasons = d["reasons"]["data"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r.as_str().map(String::from)).collect())
            .unwrap_or_default();
        (state, reasons)
    }

    fn reload(&self, config: &str) {
        std::fs::write(self.dir.join("airlift.toml"), config).expect("config");
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "SIGHUP");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ctld.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // SIGINT: ctld shuts its engine down; SIGKILL if it does not stop.
        let engine = self.health()["engine_pid"].as_u64();
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = engine
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// A child process killed on drop (srt-live-transmit).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An S3 endpoint that accepts connections and never answers (a
/// black-holed server); stopped, and its port freed, on drop.
struct Staller {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Staller {
    fn start(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("staller bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => held.push(s),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self { stop, thread: Some(thread) }
    }
}

impl Drop for Staller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the rows provoke with, and what they leave for the next.
struct World {
    dir: PathBuf,
    node: Node,
    s3: S3Server,
    /// The configuration without the pieces rows add.
    base: String,
    /// Pieces rows added, in order.
    pieces: Vec<String>,
    /// UDP ports inside `[srt] port_range` that the test may hold.
    ports: Vec<u16>,
    held: Vec<UdpSocket>,
    listener: Option<Killed>,
    staller: Option<Staller>,
}

impl World {
    fn add(&mut self, piece: String) {
        self.pieces.push(piece);
        let config = format!("{}{}", self.base, self.pieces.concat());
        self.node.reload(&config);
    }

    /// Reloads without the pieces that contain `marker`.
    fn remove(&mut self, marker: &str) {
        self.pieces.retain(|p| !p.contains(marker));
        let config = format!("{}{}", self.base, self.pieces.concat());
        self.node.reload(&config);
    }

    fn hold(&mut self, port: u16) {
        self.held.push(UdpSocket::bind(("0.0.0.0", port)).expect("hold the port"));
    }

    fn spool(&self) -> PathBuf {
        self.dir.join("spool")
    }

    fn ballast(&self, bytes: u64) {
        let f = std::fs::File::create(self.spool().join("ballast.bin")).expect("ballast");
        f.set_len(bytes).expect("ballast size");
    }
}

/// One reason a row must show: its code, the start of its subject at the
/// webhook, and a piece of its text in D-Bus `Status`.
type Expect = (&'static str, &'static str, &'static str);

/// A cause: how to provoke it, what it must show, how to remove it.
struct Row {
    cause: &'static str,
    expect: &'static [Expect],
    provoke: fn(&mut World),
    clear: fn(&mut World),
    /// Run once the reasons cleared, before the node must be healthy.
    tidy: fn(&mut World),
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            cause: "S3 down",
            expect: &[
                ("upload_breaker_open", "local", "circuit breaker open"),
                ("upload_failing", "", "failed to upload"),
                ("upload_lag", "", "has waited"),
            ],
            provoke: |w| w.s3.stop(),
            clear: |w| w.s3.restart(),
            tidy: |_| {},
        },
        Row {
            cause: "S3 stalled: connections accepted, never answered",
            expect: &[
                ("upload_breaker_open", "local", "circuit breaker open"),
                ("upload_failing", "", "failed to upload"),
                ("upload_lag", "", "has waited"),
            ],
            provoke: |w| {
                w.s3.stop();
                w.staller = Some(Staller::start(w.s3.port));
            },
            clear: |w| {
                w.staller = None;
                w.s3.restart();
            },
            tidy: |_| {},
        },
        Row {
            cause: "SRT caller output to a dead port",
            expect: &[("link_down", "tx/", "SRT link")],
            provoke: |w| {
                let dead = free_port();
                w.add(format!(
                    "[[flow]]\nname = \"tx\"\n[[flow.input]]\nname = \"tone\"\n\
                     producer = {{ test_signal = {{ kind = \"sine\", frequency = 440.0 }} }}\n\
                     [[flow.output]]\nname = \"out\"\n\
                     consumer = {{ encoded = {{ codec = \"mp2\", sink = {{ srt = {{ mode = {{ caller = {{ host = \"127.0.0.1\", port = {dead} }} }} }} }} }} }}\n"
                ));
                w.ports.push(dead);
            },
            // The peer appears: the caller connects on its next attempt.
            clear: |w| {
                let dead = w.ports.pop().expect("the dead port");
                let child = Command::new("srt-live-transmit")
                    .args(["-q", "-chunk:1316", &format!("srt://:{dead}?mode=listener"), "file://con"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("srt-live-transmit is installed");
                w.listener = Some(Killed(child));
            },
            tidy: |_| {},
        },
        Row {
            cause: "SRT listener flow on a port another socket holds",
            expect: &[("flow_failed", "b", "flow b is failed")],
            provoke: |w| {
                let port = w.ports[0];
                w.hold(port);
                w.add(format!(
                    "[[flow]]\nname = \"b\"\n[[flow.input]]\nname = \"contribution\"\n\
                     producer = {{ srt_in = {{ srt = {{ mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true }} }} }}\n\
                     [[flow.output]]\nname = \"void\"\nconsumer = \"null\"\n"
                ));
            },
            clear: |w| w.held.clear(),
            // Running, b's listener waits for a caller that never comes:
            // its link would count as down.
            tidy: |w| w.remove("name = \"b\""),
        },
        Row {
            cause: "pull job listening on a port another socket holds",
            expect: &[("pull_failed", "cam", "pull job cam")],
            provoke: |w| {
                let port = w.ports[1];
                w.hold(port);
                w.add(format!(
                    "[[pull]]\nname = \"cam\"\nsource = {{ mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true }}\n\
                     segments = {{ job = \"cam\", target_seconds = 2 }}\n"
                ));
            },
            clear: |w| w.held.clear(),
            tidy: |_| {},
        },
        Row {
            cause: "failed pull job, then removed by a reload",
            expect: &[("pull_failed", "gone", "pull job gone")],
            provoke: |w| {
                let port = w.ports[2];
                w.hold(port);
                w.add(format!(
                    "[[pull]]\nname = \"gone\"\nsource = {{ mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true }}\n\
                     segments = {{ job = \"gone\", target_seconds = 2 }}\n"
                ));
            },
            // The job goes while it still cannot start: its failure goes with it.
            clear: |w| w.remove("name = \"gone\""),
            tidy: |w| w.held.clear(),
        },
        Row {
            cause: "a segment without its manifest",
            expect: &[("orphan_segments", "", "without a manifest")],
            provoke: |w| {
                let day = w.spool().join("main/2026/12/01");
                std::fs::create_dir_all(&day).expect("day folder");
                let orphan = day.join("main-00000007.ts");
                std::fs::write(&orphan, [0x47u8; 188]).expect("orphan");
                // Older than the survey's 10 s grace for a segment whose
                // manifest is being written.
                let ok = Command::new("touch")
                    .args(["-d", "1 hour ago"])
                    .arg(&orphan)
                    .status()
                    .expect("touch")
                    .success();
                assert!(ok);
            },
            clear: |w| {
                std::fs::remove_file(w.spool().join("main/2026/12/01/main-00000007.ts")).expect("rm orphan");
            },
            tidy: |_| {},
        },
        Row {
            cause: "spool above 80 %",
            expect: &[("spool_high", "", "% full")],
            provoke: |w| w.ballast(SPOOL_MAX / 100 * 87),
            clear: |w| std::fs::remove_file(w.spool().join("ballast.bin")).expect("rm ballast"),
            tidy: |_| {},
        },
        Row {
            cause: "spool over its limit: the stop_recording policy",
            expect: &[
                ("recording_stopped", "", "recording stopped by the spool policy"),
                ("spool_high", "", "% full"),
            ],
            provoke: |w| w.ballast(SPOOL_MAX + (1 << 20)),
            clear: |w| std::fs::remove_file(w.spool().join("ballast.bin")).expect("rm ballast"),
            tidy: |_| {},
        },
    ]
}

fn base_config(dir: &Path, s3: u16, hook: u16, bus: &str, ports: (u16, u16)) -> String {
    std::fs::write(dir.join("creds"), format!("{AK}:{SK}\n")).expect("creds");
    std::fs::write(dir.join("hook.secret"), format!("{HOOK_SECRET}\n")).expect("secret");
    format!(
        r#"[node]
name = "healthnode"
[engine]
socket = "engine.sock"
[srt]
port_range = "{lo}-{hi}"
[spool]
path = "spool"
max_bytes = {SPOOL_MAX}
full_policy = "stop_recording"
[upload]
concurrency = 2
backoff_min_ms = 50
backoff_max_ms = 500
breaker_failures = 2
breaker_open_ms = 1000
rescan_secs = 1
request_timeout_secs = 2
[[s3]]
name = "local"
endpoint = "http://127.0.0.1:{s3}"
bucket = "{BUCKET}"
prefix = "{PREFIX}/"
credentials_file = "creds"
[health]
max_upload_lag_seconds = 3
link_down_seconds = 1
upload_failures = 3
[[alert]]
name = "ops"
url = "http://127.0.0.1:{hook}/airlift"
secret_file = "{secret}"
[dbus]
address = "{bus}"
group = "root"

[[flow]]
name = "main"
[[flow.input]]
name = "tone"
producer = {{ test_signal = {{ kind = "sine", frequency = 1000.0, level_dbfs = -18.0 }} }}
[[flow.output]]
name = "archive"
consumer = {{ encoded = {{ codec = "mp2", bitrate = 64000, sink = {{ segments = {{ job = "main", target_seconds = 1 }} }} }} }}
"#,
        lo = ports.0,
        hi = ports.1,
        secret = dir.join("hook.secret").display(),
    )
}

/// Three UDP ports free now inside a range of 20 of this process's own.
fn srt_range() -> ((u16, u16), Vec<u16>) {
    let lo = 31_100 + (std::process::id() % 40) as u16 * 20;
    let hi = lo + 19;
    let free: Vec<u16> = (lo..=hi).filter(|p| UdpSocket::bind(("0.0.0.0", *p)).is_ok()).take(3).collect();
    assert_eq!(free.len(), 3, "three free UDP ports in {lo}-{hi}");
    ((lo, hi), free)
}

/// Whether alarm `e` is about `subject`: the node's own alarms have an
/// empty subject (the uploader's one-shot `upload_failing` names a job).
fn about(e: &serde_json::Value, subject: &str) -> bool {
    e["subject"]
        .as_str()
        .is_some_and(|s| if subject.is_empty() { s.is_empty() } else { s.starts_with(subject) })
}

/// Where each side stands for one reason.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Seen {
    health: bool,
    status: bool,
    metric: bool,
    hook: bool,
}

impl Seen {
    fn all(self) -> bool {
        self.health && self.status && self.metric && self.hook
    }
}

/// Polls every side for each reason of `expect` until `done` holds for
/// all, or panics after `limit`. Returns when each reason was complete.
fn await_sides(
    w: &World,
    hook: &Webhook,
    expect: &[Expect],
    from: usize,
    raised: bool,
    limit: Duration,
) -> Vec<Duration> {
    let t0 = Instant::now();
    let mut when: Vec<Option<Duration>> = vec![None; expect.len()];
    loop {
        let h = w.node.health();
        let codes: Vec<&str> = h["reason_codes"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str()).collect())
            .unwrap_or_default();
        let (state, reasons) = w.node.status();
        let events = hook.events(from);
        let mut seen = Vec::new();
        for (i, (code, subject, text)) in expect.iter().enumerate() {
            let metric = w.node.metric(&format!("airlift_health_reason{{reason=\"{code}\"}}"));
            let want = if raised { "raised" } else { "cleared" };
            let at_hook =
                events.iter().find(|(e, _)| e["kind"] == *code && e["state"] == want && about(e, subject));
            if let Some((e, valid)) = at_hook {
                assert!(valid, "{code}: the webhook got a bad signature on {e}");
                assert_eq!(e["node"], "healthnode", "{e}");
            }
            let in_status = reasons.iter().any(|r| r.contains(text));
            let s = if raised {
                Seen {
                    health: codes.contains(code) && h["status"] == "degraded",
                    status: state == "degraded" && in_status,
                    metric: metric.is_some_and(|m| m >= 1.0),
                    hook: at_hook.is_some(),
                }
            } else {
                Seen {
                    health: !codes.contains(code) && h["status"].is_string(),
                    status: !state.is_empty() && !in_status,
                    metric: metric == Some(0.0),
                    hook: at_hook.is_some(),
                }
            };
            if s.all() && when[i].is_none() {
                when[i] = Some(t0.elapsed());
            }
            seen.push(s);
        }
        if when.iter().all(Option::is_some) {
            return when.into_iter().flatten().collect();
        }
        assert!(
            t0.elapsed() < limit,
            "{} not {} everywhere after {limit:?}: {:?}\nhealth: {h}\nStatus: {state} {reasons:?}\n\
             webhook: {:?}\nlog tail:\n{}",
            expect.iter().map(|e| e.0).collect::<Vec<_>>().join(", "),
            if raised { "raised" } else { "cleared" },
            expect.iter().map(|e| e.0).zip(&seen).collect::<Vec<_>>(),
            events.iter().map(|(e, _)| e.to_string()).collect::<Vec<_>>(),
            quiet_tail(&w.node.log())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The log's last lines without the routine ones (segments closed and uploaded).
fn quiet_tail(log: &str) -> String {
    let quiet: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("segment closed") && !l.contains("uploaded and verified"))
        .collect();
    quiet[quiet.len().saturating_sub(30)..].join("\n")
}

fn wait_healthy(w: &World, what: &str) {
    let deadline = Instant::now() + CLEAR_LIMIT;
    loop {
        let h = w.node.health();
        if h["status"] == "healthy" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not healthy {what}: {h}\nlog tail:\n{}",
            quiet_tail(&w.node.log())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each health reason provoked for real, seen in `/health`, `Status`, the
/// metric and a signed alarm, and cleared in all of them.
#[test]
fn each_health_reason_is_raised_and_cleared_everywhere() {
    let started = Instant::now();
    let dir = test_dir("health");
    let bus = Bus::start(&dir);
    let hook = Webhook::start();
    let s3 = S3Server::start(&dir, free_port());
    let (range, ports) = srt_range();
    let base = base_config(&dir, s3.port, hook.port, &bus.address, range);
    let node = Node::start(&dir, &base, &bus.address);
    let mut w = World {
        dir: dir.clone(),
        node,
        s3,
        base,
        pieces: Vec::new(),
        ports,
        held: Vec::new(),
        listener: None,
        staller: None,
    };
    wait_for("a healthy node with flow main running", Duration::from_secs(30), || {
        let h = w.node.health();
        h["status"] == "healthy" && h["flows"][0]["state"] == "running"
    });
    wait_for("some uploaded segments", Duration::from_secs(20), || {
        w.node.metric("airlift_uploads_ok_total") >= Some(1.0)
    });
    assert_eq!(w.node.status().0, "healthy");
    let mut report = Vec::new();
    for row in rows() {
        let row_start = hook.count();
        let from = row_start;
        let t = Instant::now();
        (row.provoke)(&mut w);
        let raised = await_sides(&w, &hook, row.expect, from, true, RAISE_LIMIT);
        if row.cause.contains("stop_recording") {
            let h = w.node.health();
            assert_eq!(h["flows"][0]["state"], "stopped", "the policy stops the segment flow: {h}");
        }
        let from = hook.count();
        let c = Instant::now();
        (row.clear)(&mut w);
        let cleared = await_sides(&w, &hook, row.expect, from, false, CLEAR_LIMIT);
        (row.tidy)(&mut w);
        wait_healthy(&w, &format!("after {}", row.cause));
        // One alarm and one clearing per reason: nothing flapped.
        let events = hook.events(row_start);
        for (code, subject, _) in row.expect {
            for state in ["raised", "cleared"] {
                let n = events
                    .iter()
                    .filter(|(e, _)| e["kind"] == *code && e["state"] == state && about(e, subject))
                    .count();
                assert_eq!(n, 1, "{}: {code} {state} {n} times: {events:?}", row.cause);
            }
        }
        for ((code, _, _), (r, c)) in row.expect.iter().zip(raised.iter().zip(&cleared)) {
            report.push(format!(
                "{:<52} {code:<20} raised {:>5.1} s, cleared {:>5.1} s",
                row.cause,
                r.as_secs_f64(),
                c.as_secs_f64()
            ));
        }
        println!(
            "{}: provoked at {:.1} s, clear started {:.1} s after",
            row.cause,
            t.duration_since(started).as_secs_f64(),
            c.duration_since(t).as_secs_f64()
        );
    }
    let h = w.node.health();
    assert!(h["flows"].as_array().is_some_and(|f| f.iter().all(|f| f["state"] == "running")), "{h}");
    // Every alarm the webhook got was signed with the secret.
    let all = hook.events(0);
    assert!(all.iter().all(|(_, valid)| *valid), "an unsigned or badly signed alarm");
    for line in &report {
        println!("{line}");
    }
    println!("{} alarms received, whole test {:.1} s", all.len(), started.elapsed().as_secs_f64());
    drop(w);
    drop(bus);
    cleanup(&dir);
}
