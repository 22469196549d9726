//! airlift-ctld end to end with a real engine: supervision after `kill -9`,
//! SIGHUP reload without a dropped sample, `/metrics` through `promtool`,
//! and clean shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn ctld_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_airlift-ctld"))
}

fn engine_bin() -> PathBuf {
    let engine = ctld_bin().with_file_name("airlift-engine");
    assert!(engine.exists(), "{} is missing: build the workspace (cargo test --workspace)", engine.display());
    engine
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Ctld {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Ctld {
    fn start(tag: &str, config: &str) -> Self {
        Self::start_with(tag, config, &[])
    }

    /// Starts ctld with extra environment variables (it passes them on to
    /// the engine it spawns).
    fn start_with(tag: &str, config: &str, env: &[(&str, String)]) -> Self {
        let dir = std::env::temp_dir().join(format!("airlift-ctld-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("airlift.toml"), config).unwrap();
        let port = free_port();
        let child = Command::new(ctld_bin())
            .arg("--config")
            .arg(dir.join("airlift.toml"))
            .args(["--http-listen", &format!("127.0.0.1:{port}")])
            .arg("--engine-binary")
            .arg(engine_bin())
            .envs(env.iter().map(|(k, v)| (k.to_string(), v.clone())))
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.join("ctld.log")).unwrap())
            .spawn()
            .unwrap();
        let ctld = Self { child, dir, port };
        ctld.wait_health("the first healthy report", |h| h.contains("\"status\": \"healthy\""));
        ctld
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let code = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_string();
        Some((code, body))
    }

    fn health(&self) -> String {
        self.get("/health").map(|(_, b)| b).unwrap_or_default()
    }

    fn wait_health(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let h = self.health();
            if pred(&h) {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last health: {h}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ctld.log")).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok);
    }

    fn stop(mut self) -> PathBuf {
        self.signal("-INT");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "ctld exited with {status}\n{}", self.log());
                break;
            }
            assert!(Instant::now() < deadline, "ctld did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.dir.clone()
    }
}

impl Drop for Ctld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Any engine it spawned dies with its socket gone; kill stragglers of this test.
        let _ = Command::new("pkill").args(["-9", "-f", &self.dir.display().to_string()]).status();
    }
}

fn json_u64(health: &str, key: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(health).ok()?;
    v.get(key)?.as_u64()
}

fn tone_config(extra: &str) -> String {
    format!(
        r#"
[engine]
socket = "engine.sock"

[spool]
path = "spool"

[[flow]]
name = "a"
channels = 1
period = 128

[[flow.input]]
name = "tone"
producer = {{ test_signal = {{ kind = "sine", frequency = 1000.0, level_dbfs = -6.0 }} }}

[[flow.output]]
name = "rec"
consumer = {{ wav = {{ path = "a.wav", format = "f32" }} }}
{extra}
"#
    )
}

const FLOW_B: &str = r#"
[[flow]]
name = "b"
channels = 1

[[flow.input]]
name = "tone"
gain_db = -20.0
producer = { test_signal = { kind = "sine", frequency = 440.0, level_dbfs = -6.0 } }

[[flow.output]]
name = "rec"
consumer = { wav = { path = "b.wav", format = "f32" } }
"#;

const FLOW_C: &str = r#"
[[flow]]
name = "c"
[[flow.input]]
name = "noise"
producer = { test_signal = { kind = "pink_noise" } }
[[flow.output]]
name = "void"
consumer = "null"
"#;

#[test]
fn engine_killed_is_restarted_and_the_gap_recorded() {
    let ctld = Ctld::start("supervise", &tone_config(""));
    let health = ctld.health();
    let pid = json_u64(&health, "engine_pid").expect("engine pid in /health");
    let killed = Instant::now();
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    let health = ctld.wait_health("a new engine with flow a running", |h| {
        json_u64(h, "engine_pid").is_some_and(|p| p != pid) && h.contains("\"state\": \"running\"")
    });
    let back = killed.elapsed();
    assert!(back < Duration::from_secs(2), "flows back after {back:?}");
    assert_eq!(json_u64(&health, "engine_restarts"), Some(1));
    let (_, metrics) = ctld.get("/metrics").unwrap();
    assert!(metrics.contains("airlift_engine_restarts_total 1"), "{metrics}");
    let gap: f64 = metrics
        .lines()
        .find(|l| l.starts_with("airlift_engine_gap_seconds_total"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .expect("gap metric");
    assert!(gap > 0.0 && gap < 2.0, "gap {gap}");
    ctld.stop();
}

/// Samples of a mono f32 WAV.
fn samples(path: &Path) -> (u32, Vec<f32>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let rate = r.spec().sample_rate;
    (rate, r.samples::<f32>().map(Result::unwrap).collect())
}

#[test]
fn reload_applies_only_the_difference_and_refuses_bad_files() {
    let ctld = Ctld::start("reload", &tone_config(FLOW_B));
    std::thread::sleep(Duration::from_millis(700));
    let config = ctld.dir.join("airlift.toml");

    // Change b's gain and add c: a must not notice.
    std::fs::write(
        &config,
        tone_config(&format!("{}\n{FLOW_C}", FLOW_B.replace("gain_db = -20.0", "gain_db = 0.0"))),
    )
    .unwrap();
    ctld.signal("-HUP");
    ctld.wait_health("flow c running", |h| {
        h.contains("\"name\": \"c\"") && h.matches("\"running\"").count() == 3
    });
    std::thread::sleep(Duration::from_millis(700));

    // A broken file is refused; everything keeps running.
    std::fs::write(&config, tone_config("[[flow]]\nname = \"d\"\nchannels = 99\n")).unwrap();
    ctld.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ctld.log().contains("reload refused") {
        assert!(Instant::now() < deadline, "no refusal logged:\n{}", ctld.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = ctld.log();
    assert!(log.contains("airlift.toml:") && log.contains("channel count"), "{log}");
    let (_, metrics) = ctld.get("/metrics").unwrap();
    assert!(metrics.contains("airlift_config_reloads_total{result=\"ok\"} 1"), "{metrics}");
    assert!(metrics.contains("airlift_config_reloads_total{result=\"rejected\"} 1"), "{metrics}");
    assert_eq!(ctld.health().matches("\"running\"").count(), 3);
    let dir = ctld.stop();

    // Flow a: one continuous sine from its first sample to its last.
    let (rate, a) = samples(&dir.join("a.wav"));
    assert!(a.len() > rate as usize, "a recorded {} samples", a.len());
    let amp = 10f64.powf(-6.0 / 20.0);
    for (n, &s) in a.iter().enumerate() {
        let want = amp * (std::f64::consts::TAU * 1000.0 * n as f64 / f64::from(rate)).sin();
        assert!((f64::from(s) - want).abs() < 1e-4, "discontinuity at sample {n}: {s} vs {want}");
    }
    // Flow b: the gain change ramped in without a restart (one file, both levels).
    let (_, b) = samples(&dir.join("b.wav"));
    let peak = |s: &[f32]| s.iter().fold(0f32, |m, x| m.max(x.abs()));
    let (first, last) = (peak(&b[..4800]), peak(&b[b.len() - 4800..]));
    assert!((20.0 * first.log10() + 26.0).abs() < 0.1, "b before: {first}");
    assert!((20.0 * last.log10() + 6.0).abs() < 0.1, "b after: {last}");
}

#[test]
fn metrics_pass_promtool() {
    // An SRT output calling a port where nobody listens: its link shows up
    // in /metrics as not connected.
    let nobody = free_port();
    let srt_out = format!(
        "\n[[flow]]\nname = \"srt\"\n[[flow.input]]\nname = \"t\"\nproducer = {{ test_signal = {{ kind = \"sine\" }} }}\n\
         [[flow.output]]\nname = \"out\"\nconsumer = {{ encoded = {{ codec = \"mp2\", sink = {{ srt = {{ mode = {{ caller = {{ host = \"127.0.0.1\", port = {nobody} }} }} }} }} }} }}\n"
    );
    let ctld = Ctld::start("promtool", &tone_config(&srt_out));
    std::thread::sleep(Duration::from_millis(2500));
    let (code, metrics) = ctld.get("/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("airlift_periods_total{flow=\"a\"}"), "{metrics}");
    // Flow a's WAV recorder drains its ring: far from full, never absent.
    let high: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("airlift_ring_fill_ratio{flow=\"a\",side=\"output\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no output ring fill for flow a: {metrics}"));
    assert!((0.0..0.9).contains(&high), "output ring fill {high}");
    assert!(!metrics.contains("airlift_ring_fill_ratio{flow=\"a\",side=\"input\"}"), "a has no input ring");
    assert!(
        metrics.contains("airlift_srt_connected{flow=\"srt\",link=\"airlift-srt-tx-out\"} 0"),
        "{metrics}"
    );
    // Both daemons' CPU time and memory, and the health verdict.
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series}: {metrics}"))
    };
    for process in ["ctld", "engine"] {
        let cpu = value(&format!("airlift_process_cpu_seconds{{process=\"{process}\"}}"));
        // The engine has run audio for 2.5 s; an idle ctld may not have used a tick yet.
        assert!(if process == "engine" { cpu > 0.0 } else { cpu >= 0.0 }, "{process} cpu {cpu}");
        let rss = value(&format!("airlift_process_resident_memory_bytes{{process=\"{process}\"}}"));
        assert!(rss > 1e6 && rss < 1e9, "{process} resident {rss}");
    }
    assert!(metrics.contains("airlift_health_reason{reason=\"engine_away\"} 0"), "{metrics}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    promtool.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ctld.stop();
}

/// The value of one metric line (`name{labels}`) in `/metrics`.
fn metric(ctld: &Ctld, series: &str) -> Option<f64> {
    let (_, text) = ctld.get("/metrics")?;
    text.lines().find(|l| l.starts_with(series))?.rsplit(' ').next()?.parse().ok()
}

/// `/health` tells the truth: each condition turns the node degraded with
/// its reason, in the JSON and in `airlift_health_reason`, and clears when
/// the condition goes (a flow failing to build and retried, an SRT link
/// down longer than the configured time, a segment without a manifest).
#[test]
fn health_reasons_come_and_go_with_their_conditions() {
    let health = "[health]\nlink_down_seconds = 1\n";
    let ctld = Ctld::start("health", &format!("{health}{}", tone_config("")));
    let config = ctld.dir.join("airlift.toml");
    let reason = |code: &str| format!("airlift_health_reason{{reason=\"{code}\"}}");
    assert_eq!(metric(&ctld, &reason("flow_failed")), Some(0.0));
    assert_eq!(metric(&ctld, "airlift_health_state"), Some(0.0));

    // A flow whose listener port another socket holds: degraded, retried.
    let held = (30_050..30_100)
        .find_map(|p| std::net::UdpSocket::bind(("0.0.0.0", p)).ok())
        .expect("a free port in the SRT range");
    let port = held.local_addr().unwrap().port();
    let flow_b = format!(
        "[[flow]]\nname = \"b\"\n[[flow.input]]\nname = \"contribution\"\n\
         producer = {{ srt_in = {{ srt = {{ mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true }} }} }}\n\
         [[flow.output]]\nname = \"void\"\nconsumer = \"null\"\n"
    );
    std::fs::write(&config, format!("{health}{}", tone_config(&flow_b))).unwrap();
    ctld.signal("-HUP");
    let h = ctld.wait_health("flow b failed", |h| h.contains("\"flow_failed\""));
    assert!(h.contains("\"status\": \"degraded\"") && h.contains(&port.to_string()), "{h}");
    assert_eq!(metric(&ctld, &reason("flow_failed")), Some(1.0));
    assert_eq!(metric(&ctld, "airlift_health_state"), Some(1.0));
    drop(held);
    // b runs once its port is free (its listener then waits for a caller,
    // which counts as a link down after 1 s: not what is looked at here).
    ctld.wait_health("flow b running once its port is free", |h| !h.contains("\"flow_failed\""));
    assert_eq!(metric(&ctld, &reason("flow_failed")), Some(0.0));

    // An SRT output calling a peer that is not there: degraded after 1 s.
    let dead = free_port();
    let flow_c = format!(
        "[[flow]]\nname = \"c\"\n[[flow.input]]\nname = \"tone\"\n\
         producer = {{ test_signal = {{ kind = \"sine\", frequency = 440.0 }} }}\n\
         [[flow.output]]\nname = \"tx\"\n\
         consumer = {{ encoded = {{ codec = \"mp2\", sink = {{ srt = {{ mode = {{ caller = {{ host = \"127.0.0.1\", port = {dead} }} }} }} }} }} }}\n"
    );
    std::fs::write(&config, format!("{health}{}", tone_config(&flow_c))).unwrap();
    ctld.signal("-HUP");
    let h = ctld.wait_health("the link counted down", |h| h.contains("\"link_down\""));
    assert!(h.contains("SRT link"), "{h}");
    assert_eq!(metric(&ctld, &reason("link_down")), Some(1.0));
    std::fs::write(&config, format!("{health}{}", tone_config(""))).unwrap();
    ctld.signal("-HUP");
    ctld.wait_health("healthy without flow c", |h| h.contains("\"status\": \"healthy\""));

    // A segment without its manifest (older than the 10 s grace).
    let day = ctld.dir.join("spool/news/2026/12/01");
    std::fs::create_dir_all(&day).unwrap();
    let orphan = day.join("news-00000007.ts");
    std::fs::write(&orphan, [0x47u8; 188]).unwrap();
    assert!(Command::new("touch").args(["-d", "1 hour ago"]).arg(&orphan).status().unwrap().success());
    let h = ctld.wait_health("the orphan seen", |h| h.contains("\"orphan_segments\""));
    assert!(h.contains("without a manifest"), "{h}");
    std::fs::remove_file(&orphan).unwrap();
    ctld.wait_health("healthy again", |h| h.contains("\"status\": \"healthy\""));
    ctld.stop();
}

/// Issue 21: an SRT listener without a passphrase is refused by
/// `check-config` (naming the endpoint and the opt-out); with
/// `allow_unencrypted = true` ctld runs it and `/health` warns — the node
/// stays healthy, the reason and its metric name the endpoint.
#[test]
fn an_unencrypted_listener_needs_its_opt_out_and_then_warns() {
    let port = (30_020..30_050)
        .find(|p| std::net::UdpSocket::bind(("0.0.0.0", *p)).is_ok())
        .expect("a free port in the SRT range");
    let flow = |opt_out: &str| {
        format!(
            "[[flow]]\nname = \"b\"\n[[flow.input]]\nname = \"contribution\"\n\
             producer = {{ srt_in = {{ srt = {{ mode = {{ listener = {{ port = {port} }} }}{opt_out} }} }} }}\n\
             [[flow.output]]\nname = \"void\"\nconsumer = \"null\"\n"
        )
    };
    let dir = std::env::temp_dir().join(format!("airlift-ctld-unencrypted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("plain.toml");
    std::fs::write(&file, tone_config(&flow(""))).unwrap();
    let out = Command::new(ctld_bin()).arg("check-config").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "flow[b].input[contribution].producer.srt_in.srt: an SRT listener without a passphrase"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("allow_unencrypted = true") && stderr.contains("plain.toml:"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);

    let ctld = Ctld::start("unencrypted", &tone_config(&flow(", allow_unencrypted = true")));
    let h = ctld.wait_health("the warning", |h| h.contains("\"unencrypted_listener\""));
    assert!(h.contains("\"status\": \"healthy\""), "a warning, not a degradation: {h}");
    assert!(h.contains("flow[b].input[contribution].producer.srt_in.srt runs without a passphrase"), "{h}");
    assert_eq!(metric(&ctld, "airlift_health_reason{reason=\"unencrypted_listener\"}"), Some(1.0));
    assert_eq!(metric(&ctld, "airlift_health_state"), Some(0.0));
    // The listener really runs: it holds its port.
    assert!(std::net::UdpSocket::bind(("0.0.0.0", port)).is_err(), "the listener is not bound");
    // With a passphrase instead, the warning goes.
    std::fs::write(
        ctld.dir.join("airlift.toml"),
        tone_config(&flow(", passphrase = \"correct horse battery\"")),
    )
    .unwrap();
    ctld.signal("-HUP");
    ctld.wait_health("the warning gone", |h| {
        !h.contains("\"unencrypted_listener\"") && h.contains("\"healthy\"")
    });
    assert_eq!(metric(&ctld, "airlift_health_reason{reason=\"unencrypted_listener\"}"), Some(0.0));
    ctld.stop();
}

/// One request a test webhook received: its headers (lower-case names) and body.
type Received = (Vec<(String, String)>, Vec<u8>);

/// A webhook receiver on 127.0.0.1: answers the first `fail_first`
/// requests 500 (to see retries), then 200; keeps what it received.
fn webhook(fail_first: usize) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    use std::io::BufRead;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        let mut n = 0;
        for stream in listener.incoming().take(200) {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.trim().split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            n += 1;
            let status = if n <= fail_first { "500 Internal Server Error" } else { "200 OK" };
            let mut stream = stream;
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            seen.lock().unwrap().push((headers, body));
        }
    });
    (port, got)
}

/// Alarms reach people: a flow that fails to build raises `flow_failed`
/// at the webhook, signed with HMAC-SHA256, retried after a 500; freeing
/// its port clears it.
#[test]
fn alarms_and_their_clearing_reach_a_signed_webhook() {
    let (hook, got) = webhook(1);
    let secret_dir = std::env::temp_dir().join(format!("airlift-alert-secret-{}", std::process::id()));
    std::fs::create_dir_all(&secret_dir).unwrap();
    let secret_file = secret_dir.join("secret");
    std::fs::write(&secret_file, "s3cr3t-for-tests\n").unwrap();
    let alert = format!(
        "[[alert]]\nname = \"ops\"\nurl = \"http://127.0.0.1:{hook}/airlift\"\nsecret_file = \"{}\"\n",
        secret_file.display()
    );
    let ctld = Ctld::start("alert", &format!("{alert}{}", tone_config("")));
    let config = ctld.dir.join("airlift.toml");
    let held = (30_000..30_050)
        .find_map(|p| std::net::UdpSocket::bind(("0.0.0.0", p)).ok())
        .expect("a free port in the SRT range");
    let port = held.local_addr().unwrap().port();
    let flow_b = format!(
        "[[flow]]\nname = \"b\"\n[[flow.input]]\nname = \"contribution\"\n\
         producer = {{ srt_in = {{ srt = {{ mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true }} }} }}\n\
         [[flow.output]]\nname = \"void\"\nconsumer = \"null\"\n"
    );
    std::fs::write(&config, format!("{alert}{}", tone_config(&flow_b))).unwrap();
    ctld.signal("-HUP");
    let events = |state: &str| -> Vec<(Vec<(String, String)>, serde_json::Value)> {
        got.lock()
            .unwrap()
            .iter()
            .filter_map(|(h, b)| Some((h.clone(), serde_json::from_slice::<serde_json::Value>(b).ok()?)))
            .filter(|(_, v)| v["kind"] == "flow_failed" && v["subject"] == "b" && v["state"] == state)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while events("raised").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no raised alarm (with its retry): {:?}\n{}",
            got.lock().unwrap(),
            ctld.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(held);
    while events("cleared").is_empty() {
        assert!(Instant::now() < deadline + Duration::from_secs(10), "no clearing:\n{}", ctld.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let raised = events("raised");
    assert_eq!(raised[0].1, raised[1].1, "the retry sends the same event");
    assert_eq!(raised[0].1["subject"], "b");
    assert_eq!(raised[0].1["node"], "airlift");
    for (headers, body) in got.lock().unwrap().iter() {
        let signature = headers.iter().find(|(k, _)| k == "x-airlift-signature").map(|(_, v)| v.clone());
        assert_eq!(signature, Some(airlift_ctl::alert::sign(b"s3cr3t-for-tests", body)), "bad signature");
    }
    let metrics = ctld.get("/metrics").unwrap().1;
    assert!(metrics.contains("airlift_alerts_total{target=\"ops\",outcome=\"sent\"}"), "{metrics}");
    ctld.stop();
    let _ = std::fs::remove_dir_all(secret_dir);
}

/// ctld stopped (SIGSTOP) for 60 s: the engine records without a gap,
/// keeps pinging the systemd watchdog (a notify socket of the test's), and
/// ctld catches up after SIGCONT.
#[test]
fn a_stopped_ctld_never_stops_the_audio_or_the_watchdog() {
    let notify_dir = std::env::temp_dir().join(format!("airlift-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&notify_dir);
    std::fs::create_dir_all(&notify_dir).unwrap();
    let notify = notify_dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    // Read every notification as systemd would (a full socket would block
    // the senders): the times of the watchdog pings.
    let pings_at = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (pings_at, done) = (pings_at.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf)
                    && String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1")
                {
                    pings_at.lock().unwrap().push(Instant::now());
                }
            }
        })
    };
    let env = [("NOTIFY_SOCKET", notify.display().to_string()), ("WATCHDOG_USEC", "2000000".to_string())];
    let ctld = Ctld::start_with("sigstop", &tone_config(""), &env);
    std::thread::sleep(Duration::from_millis(500));
    ctld.signal("-STOP");
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(60));
    // Only the engine can ping while ctld is stopped.
    let pings =
        pings_at.lock().unwrap().iter().filter(|t| **t > stopped + Duration::from_millis(100)).count();
    ctld.signal("-CONT");
    // The engine pings every WATCHDOG_USEC / 2 = 1 s.
    assert!(pings >= 50, "{pings} watchdog pings in the 60 s ctld was stopped");
    let h = ctld.wait_health("ctld caught up", |h| h.contains("\"status\": \"healthy\""));
    assert!(h.contains("\"engine_restarts\": 0"), "{h}");
    std::thread::sleep(Duration::from_millis(500));
    let dir = ctld.stop();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = reader.join();
    let (rate, a) = samples(&dir.join("a.wav"));
    assert!(a.len() as f64 > f64::from(rate) * 60.0, "a recorded {} samples", a.len());
    let amp = 10f64.powf(-6.0 / 20.0);
    for (n, &s) in a.iter().enumerate() {
        let want = amp * (std::f64::consts::TAU * 1000.0 * n as f64 / f64::from(rate)).sin();
        assert!((f64::from(s) - want).abs() < 1e-4, "discontinuity at sample {n}: {s} vs {want}");
    }
    let _ = std::fs::remove_dir_all(notify_dir);
}

/// One flow that cannot be built keeps no other flow down: after an
/// engine `kill -9`, flow a runs at once (its WAV has no gap beyond the
/// restart) while flow b, whose listener port another socket holds, is
/// `Failed` with the reason — and runs within the backoff once the port is
/// free.
#[test]
fn after_an_engine_kill_one_broken_flow_keeps_no_other_flow_down() {
    let held = (30_080..30_100)
        .find_map(|p| std::net::UdpSocket::bind(("0.0.0.0", p)).ok())
        .expect("a free port in the SRT range");
    let port = held.local_addr().unwrap().port();
    let flow_b = format!(
        "[[flow]]\nname = \"b\"\n[[flow.input]]\nname = \"contribution\"\n\
         producer = {{ srt_in = {{ srt = {{ mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true }} }} }}\n\
         [[flow.output]]\nname = \"void\"\nconsumer = \"null\"\n"
    );
    // Started while b works (Ctld::start waits for a healthy node), then
    // the port is taken and the engine killed.
    let free = held;
    drop(free);
    let started = Instant::now();
    let ctld = Ctld::start("isolation", &tone_config(&flow_b));
    let pid = json_u64(&ctld.health(), "engine_pid").expect("engine pid");
    std::thread::sleep(Duration::from_secs(2));
    let killed = Instant::now();
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    // Take the port the moment the killed engine lets go of it (ctld waits
    // 100 ms before it starts the next engine).
    let held = loop {
        if let Ok(s) = std::net::UdpSocket::bind(("0.0.0.0", port)) {
            break s;
        }
        assert!(killed.elapsed() < Duration::from_secs(2), "the port stayed taken");
        std::thread::sleep(Duration::from_millis(2));
    };
    let h = ctld.wait_health("a running, b failed", |h| {
        json_u64(h, "engine_pid").is_some_and(|p| p != pid)
            && h.contains("\"name\": \"a\",\n      \"state\": \"running\"")
            && h.contains("\"flow_failed\"")
    });
    assert!(killed.elapsed() < Duration::from_secs(3), "a back after {:?}", killed.elapsed());
    assert!(h.contains(&format!("port {port}")), "{h}");
    drop(held);
    let freed = Instant::now();
    ctld.wait_health("b running once its port is free", |h| h.contains("\"status\": \"healthy\""));
    assert!(freed.elapsed() < Duration::from_secs(8), "b ran {:?} after its port was freed", freed.elapsed());
    std::thread::sleep(Duration::from_secs(1));
    let dir = ctld.stop();
    // a's recordings: the one cut by the kill and the new run's (a new file
    // beside it), each a continuous sine.
    let mut wavs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('a'))
                && p.extension().is_some_and(|x| x == "wav")
        })
        .collect();
    wavs.sort();
    assert_eq!(wavs.len(), 2, "{wavs:?}");
    let run = started.elapsed().as_secs_f64();
    let recorded: f64 = wavs
        .iter()
        .map(|w| {
            let (rate, s) = samples(w);
            s.len() as f64 / f64::from(rate)
        })
        .sum();
    println!("flow a: {recorded:.3} s recorded in two files over a {run:.3} s run");
    // What is missing: engine start-up twice and the restart (ctld waits
    // 100 ms); the killed file keeps what reached the kernel.
    assert!(run - recorded < 1.5, "{recorded:.2} s recorded in a {run:.2} s run");
}
