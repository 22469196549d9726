//! Durable uploads against a real S3 server (`s3s-fs` on 127.0.0.1, which
//! checks SigV4, Content-MD5 and x-amz-checksum-sha256). Stored objects are
//! checked independently of ctld: every object is fetched with `curl
//! --aws-sigv4` and hashed here, and s3s-fs's own storage folder is walked to
//! prove each key exists exactly once.
//!
//! ctld runs without an engine (`[engine] spawn = false`): uploads do not
//! need one. Segments and manifests are written by the tests themselves.
//!
//! [`tls`]: `https://` endpoints behind a private CA (`[[s3]] ca_file`).
//! [`events`]: engine events passed on as D-Bus signals (a stand-in engine).
//! [`write_once`]: keys are written once (objects found in S3 are compared,
//! never replaced), quarantine and retention never overwrite, one ctld per spool.
//! [`health`]: each health reason raised and cleared in `/health`, D-Bus
//! `Status`, the metric and a signed webhook (ctld with a real engine).

mod events;
mod health;
mod reload;
mod tls;
mod write_once;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const AK: &str = "airlifttest";
const SK: &str = "airlifttestsecret";
const BUCKET: &str = "archive";
const PREFIX: &str = "node1";
/// 2026-11-22T00:00:00Z.
const DAY_MS: i64 = 20_779 * 86_400_000;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn test_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("airlift-uploads-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    dir
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `s3s-fs` on a port, stopped on drop.
struct S3Server {
    child: Option<Child>,
    port: u16,
    data: PathBuf,
    log: PathBuf,
}

impl S3Server {
    fn start(dir: &Path, port: u16) -> Self {
        let data = dir.join("s3data");
        std::fs::create_dir_all(data.join(BUCKET)).expect("bucket dir");
        let mut s = Self { child: None, port, data, log: dir.join("s3s-fs.log") };
        s.restart();
        s
    }

    fn restart(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log");
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", AK, "--secret-key", SK])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("s3s-fs is installed (scripts/install-deps)");
        self.child = Some(child);
        let port = self.port;
        wait_for("s3s-fs to listen", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every object key stored, from s3s-fs's folder (its ground truth).
    fn stored_keys(&self) -> Vec<String> {
        let root = self.data.join(BUCKET);
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for e in entries.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().to_string();
                if p.is_dir() {
                    stack.push(p);
                } else if !name.starts_with('.') {
                    out.push(p.strip_prefix(&root).expect("inside").to_string_lossy().to_string());
                }
            }
        }
        out.sort();
        out
    }

    /// GET through curl's own SigV4 (not our client).
    fn get(&self, port: u16, key: &str) -> Option<Vec<u8>> {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &format!("{AK}:{SK}")])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .arg(format!("http://127.0.0.1:{port}/{BUCKET}/{key}"))
            .output()
            .expect("curl");
        out.status.success().then_some(out.stdout)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `n` segments of `size` random bytes for `job`, with manifests.
fn write_segments(spool: &Path, job: &str, first: u64, n: u64, size: usize) -> BTreeMap<String, String> {
    let mut expected = BTreeMap::new();
    let mut x = 0x1234_5678_9abc_def1u64 ^ (first << 20) ^ size as u64;
    for seq in first..first + n {
        let rel = format!("{job}/2026/11/22/{job}-{seq:08}.ts");
        let path = spool.join(&rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("segment dir");
        let mut data = vec![0u8; size];
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let sha = hex(&Sha256::digest(&data));
        std::fs::write(&path, &data).expect("segment");
        let manifest = serde_json::json!({
            "job": job, "sequence": seq, "path": rel, "utc_start_ms": DAY_MS + seq as i64 * 1000,
            "first_pts": 0, "duration_90k": 900_000, "bytes": size, "sha256": sha, "truncated": false,
        });
        let tmp = path.with_extension("json.partial");
        std::fs::write(&tmp, manifest.to_string()).expect("manifest");
        std::fs::rename(&tmp, path.with_extension("json")).expect("manifest rename");
        expected.insert(format!("{PREFIX}/{job}/2026/11/22/{job}-{seq:08}.ts"), sha);
    }
    expected
}

/// Segments and manifests still waiting in the spool.
fn pending(spool: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![spool.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|f| f != "quarantine" && f != "retained") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "ts" || x == "json") {
                n += 1;
            }
        }
    }
    n
}

struct Options {
    s3_port: u16,
    max_bytes: &'static str,
    policy: &'static str,
    retention_hours: u32,
    concurrency: u32,
    dbus: Option<String>,
    /// `https://` endpoint instead of `http://`.
    tls: bool,
    ca_file: Option<PathBuf>,
}

impl Options {
    fn new(s3_port: u16) -> Self {
        Self {
            s3_port,
            max_bytes: "1GiB",
            policy: "drop_oldest",
            retention_hours: 0,
            concurrency: 4,
            dbus: None,
            tls: false,
            ca_file: None,
        }
    }
}

/// ctld with an uploader and no engine, killed on drop.
struct Ctld {
    child: Child,
    dir: PathBuf,
    http: u16,
}

impl Ctld {
    fn config(dir: &Path, o: &Options) -> PathBuf {
        std::fs::write(dir.join("creds"), format!("{AK}:{SK}\n")).expect("creds");
        let dbus = match &o.dbus {
            Some(a) => format!("[dbus]\naddress = \"{a}\"\ngroup = \"root\"\n"),
            None => "[dbus]\nbus = \"none\"\n".into(),
        };
        let text = format!(
            r#"[node]
name = "uptest"
[engine]
spawn = false
socket = "engine.sock"
[spool]
path = "spool"
max_bytes = "{max}"
full_policy = "{policy}"
retention_hours = {retention}
[upload]
concurrency = {conc}
backoff_min_ms = 50
backoff_max_ms = 1000
breaker_failures = 4
breaker_open_ms = 500
rescan_secs = 1
request_timeout_secs = 10
multipart_threshold = "5MiB"
part_size = "5MiB"
[[s3]]
name = "local"
endpoint = "{scheme}://127.0.0.1:{port}"
bucket = "{BUCKET}"
prefix = "{PREFIX}/"
credentials_file = "creds"
{ca}{dbus}"#,
            max = o.max_bytes,
            policy = o.policy,
            retention = o.retention_hours,
            conc = o.concurrency,
            scheme = if o.tls { "https" } else { "http" },
            port = o.s3_port,
            ca = o.ca_file.as_ref().map(|p| format!("ca_file = \"{}\"\n", p.display())).unwrap_or_default(),
        );
        let path = dir.join("airlift.toml");
        std::fs::write(&path, text).expect("config");
        path
    }

    fn start(dir: &Path, o: &Options) -> Self {
        let config = Self::config(dir, o);
        let http = free_port();
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.join("ctld.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_airlift-ctld"))
            .arg("--config")
            .arg(&config)
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ctld");
        let c = Self { child, dir: dir.to_path_buf(), http };
        wait_for("ctld's HTTP", Duration::from_secs(20), || c.get("/health").is_some());
        c
    }

    fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        Some(text.split_once("\r\n\r\n")?.1.to_string())
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let text = self.get("/metrics")?;
        text.lines().find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == name).then(|| v.parse().ok())?
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ctld.log")).unwrap_or_default()
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Ctld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every expected segment and its manifest exist exactly once with the right
/// bytes; nothing else is stored.
fn assert_all_stored(s3: &S3Server, expected: &BTreeMap<String, String>) {
    let stored = s3.stored_keys();
    let mut want: Vec<String> = expected.keys().cloned().collect();
    want.extend(expected.keys().map(|k| k.replace(".ts", ".json")));
    want.sort();
    assert_eq!(stored, want, "stored keys differ from the expected set");
    for (key, sha) in expected {
        let body = s3.get(s3.port, key).unwrap_or_else(|| panic!("GET {key} failed"));
        assert_eq!(&hex(&Sha256::digest(&body)), sha, "{key}: stored bytes differ from the manifest");
        let m =
            s3.get(s3.port, &key.replace(".ts", ".json")).unwrap_or_else(|| panic!("GET manifest of {key}"));
        let m: serde_json::Value = serde_json::from_slice(&m).expect("stored manifest is JSON");
        assert_eq!(m["sha256"].as_str(), Some(sha.as_str()));
    }
}

fn drain(ctld: &Ctld, spool: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    while pending(spool) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} spool files left after {limit:?}\nlog tail:\n{}",
            pending(spool),
            tail(&ctld.log())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn hundred_segments_arrive_with_matching_checksums() {
    let dir = test_dir("hundred");
    let s3 = S3Server::start(&dir, free_port());
    let spool = dir.join("spool");
    let mut expected = write_segments(&spool, "news", 1, 99, 64 << 10);
    // One segment above the multipart threshold goes up in parts.
    expected.extend(write_segments(&spool, "news", 100, 1, (11 << 20) + 12_345));
    let ctld = Ctld::start(&dir, &Options::new(s3.port));
    drain(&ctld, &spool, Duration::from_secs(120));
    assert_all_stored(&s3, &expected);
    assert_eq!(ctld.metric("airlift_uploads_ok_total"), Some(100.0));
    assert_eq!(ctld.metric("airlift_upload_queue_segments"), Some(0.0));
    let health = ctld.get("/health").expect("health");
    let h: serde_json::Value = serde_json::from_str(&health).expect("health JSON");
    assert!(
        h["last_upload"]["key"].as_str().is_some_and(|k| k.starts_with("node1/news/2026/11/22/")),
        "{health}"
    );
    assert!(!ctld.log().contains(SK), "the secret must never be logged");
    cleanup(&dir);
}

#[test]
fn an_s3_outage_opens_the_breaker_and_everything_arrives_once() {
    let dir = test_dir("outage");
    let mut s3 = S3Server::start(&dir, free_port());
    let spool = dir.join("spool");
    let expected = write_segments(&spool, "news", 1, 100, 256 << 10);
    let ctld = Ctld::start(&dir, &Options { concurrency: 2, ..Options::new(s3.port) });
    wait_for("some uploads", Duration::from_secs(30), || {
        ctld.metric("airlift_uploads_ok_total") >= Some(10.0)
    });
    s3.stop();
    let outage = Instant::now();
    wait_for("the breaker to open", Duration::from_secs(30), || {
        ctld.metric("airlift_upload_breaker_state{target=\"local\"}") == Some(1.0)
            || ctld.metric("airlift_upload_breaker_state{target=\"local\"}") == Some(2.0)
    });
    let during = pending(&spool);
    assert!(during > 0, "uploads finished before the outage: make the segments larger");
    let secs: u64 = std::env::var("AIRLIFT_OUTAGE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    std::thread::sleep(Duration::from_secs(secs).saturating_sub(outage.elapsed()));
    assert_eq!(pending(&spool), during, "nothing may leave the spool while S3 is down");
    s3.restart();
    drain(&ctld, &spool, Duration::from_secs(120));
    assert_eq!(
        ctld.metric("airlift_upload_breaker_state{target=\"local\"}"),
        Some(0.0),
        "the breaker closed again"
    );
    assert!(ctld.metric("airlift_uploads_failed_total") > Some(0.0));
    assert_eq!(ctld.metric("airlift_uploads_ok_total"), Some(100.0));
    assert_all_stored(&s3, &expected);
    println!(
        "outage {secs} s: {during} segment files waited; failed attempts {:?}, retried {:?}",
        ctld.metric("airlift_uploads_failed_total"),
        ctld.metric("airlift_uploads_retried_total")
    );
    cleanup(&dir);
}

#[test]
fn kill_9_at_random_points_loses_and_duplicates_nothing() {
    let dir = test_dir("kill9");
    let s3 = S3Server::start(&dir, free_port());
    let spool = dir.join("spool");
    let expected = write_segments(&spool, "news", 1, 100, 1 << 20);
    let mut x = std::process::id() as u64 | 1;
    let mut killed_busy = 0;
    for _ in 0..10 {
        let ctld = Ctld::start(&dir, &Options::new(s3.port));
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(100 + x % 600));
        if pending(&spool) > 0 {
            killed_busy += 1;
        }
        ctld.kill9();
    }
    let ctld = Ctld::start(&dir, &Options::new(s3.port));
    drain(&ctld, &spool, Duration::from_secs(120));
    assert_all_stored(&s3, &expected);
    println!(
        "kill -9 ten times, {killed_busy} of them with uploads still pending: 100/100 stored once, verified"
    );
    assert!(killed_busy >= 3, "too few kills landed during uploads ({killed_busy})");
    cleanup(&dir);
}

/// Per chunk of traffic, at random: pass, delay, reset, truncate or flip a bit.
struct FaultProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    faults: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

impl FaultProxy {
    fn start(upstream: u16, budget: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let faults: Arc<Mutex<BTreeMap<&'static str, u64>>> = Arc::default();
        let seed = Arc::new(AtomicU64::new(0x9e37_79b9_7f4a_7c15));
        let left = Arc::new(AtomicU64::new(budget));
        let (s2, f2) = (stop.clone(), faults.clone());
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                for (from, to) in [
                    (client.try_clone().expect("clone"), server.try_clone().expect("clone")),
                    (server, client),
                ] {
                    let (f, seed, left) = (f2.clone(), seed.clone(), left.clone());
                    std::thread::spawn(move || pump(from, to, &f, &seed, &left));
                }
            }
        });
        Self { port, stop, faults }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    faults: &Mutex<BTreeMap<&'static str, u64>>,
    seed: &AtomicU64,
    left: &AtomicU64,
) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let r = seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_mul(0xbf58_476d_1ce4_e5b9)
            >> 33;
        let roll = r % 1000;
        let fault = if roll < 60 && left.load(Ordering::Relaxed) > 0 {
            left.fetch_sub(1, Ordering::Relaxed);
            Some(match roll % 4 {
                0 => "delay",
                1 => "reset",
                2 => "truncate",
                _ => "bitflip",
            })
        } else {
            None
        };
        if let Some(kind) = fault
            && let Ok(mut f) = faults.lock()
        {
            *f.entry(kind).or_default() += 1;
        }
        match fault {
            Some("delay") => std::thread::sleep(Duration::from_millis(50 + r % 400)),
            Some("reset") => break,
            Some("truncate") => {
                let _ = to.write_all(&buf[..n / 2]);
                break;
            }
            Some(_) => {
                let bit = (r / 1000) as usize % (n * 8);
                buf[bit / 8] ^= 1 << (bit % 8);
            }
            None => {}
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[test]
fn a_fault_proxy_causes_retries_but_no_corrupt_object() {
    let dir = test_dir("faults");
    let s3 = S3Server::start(&dir, free_port());
    let proxy = FaultProxy::start(s3.port, 300);
    let spool = dir.join("spool");
    let expected = write_segments(&spool, "news", 1, 60, 128 << 10);
    let ctld = Ctld::start(&dir, &Options::new(proxy.port));
    drain(&ctld, &spool, Duration::from_secs(240));
    let faults = proxy.faults.lock().expect("faults").clone();
    println!(
        "faults injected: {faults:?}; failed attempts {:?}",
        ctld.metric("airlift_uploads_failed_total")
    );
    assert!(faults.values().sum::<u64>() >= 20, "too few faults: {faults:?}");
    assert!(ctld.metric("airlift_uploads_failed_total") > Some(0.0));
    // Checked straight against the server, past the proxy.
    assert_all_stored(&s3, &expected);
    cleanup(&dir);
}

/// A private bus with `dbus-monitor` recording Node1 signals.
struct Bus {
    daemon: Child,
    monitor: Child,
    address: String,
    out: PathBuf,
}

impl Bus {
    fn start(dir: &Path) -> Self {
        let socket = dir.join("bus");
        let address = format!("unix:path={}", socket.display());
        let daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={address}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        wait_for("dbus-daemon", Duration::from_secs(10), || socket.exists());
        let out = dir.join("signals.txt");
        let monitor = Command::new("dbus-monitor")
            .args(["--address", &address])
            .arg("type='signal',interface='org.airlift.Node1'")
            .stdout(std::fs::File::create(&out).expect("signals file"))
            .spawn()
            .expect("dbus-monitor");
        std::thread::sleep(Duration::from_millis(300));
        Self { daemon, monitor, address, out }
    }

    fn signals(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.monitor.kill();
        let _ = self.monitor.wait();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn a_tiny_spool_with_s3_down_drops_the_oldest_then_drains() {
    let dir = test_dir("drop");
    let bus = Bus::start(&dir);
    let port = free_port();
    let spool = dir.join("spool");
    write_segments(&spool, "news", 1, 5, 100 << 10);
    let expected = write_segments(&spool, "news", 6, 5, 100 << 10);
    // 600 KiB hold five 100 KiB segments with their manifests, not six.
    let options = Options {
        max_bytes: "600KiB",
        policy: "drop_oldest",
        dbus: Some(bus.address.clone()),
        ..Options::new(port)
    };
    let ctld = Ctld::start(&dir, &options);
    wait_for("the drop policy", Duration::from_secs(20), || {
        ctld.metric("airlift_spool_dropped_segments_total") == Some(5.0)
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        ctld.metric("airlift_spool_dropped_segments_total"),
        Some(5.0),
        "exactly the excess is dropped"
    );
    assert_eq!(pending(&spool), 10, "five segments with manifests remain");
    assert!(!spool.join("news/2026/11/22/news-00000005.ts").exists(), "the oldest went first");
    assert!(spool.join("news/2026/11/22/news-00000006.ts").exists());
    let s3 = S3Server::start(&dir, port);
    drain(&ctld, &spool, Duration::from_secs(60));
    assert_all_stored(&s3, &expected);
    wait_for("signals", Duration::from_secs(5), || {
        bus.signals().matches("member=SegmentUploaded").count() == 5
    });
    let signals = bus.signals();
    assert_eq!(
        signals.matches("string \"spool_full\"").count(),
        5,
        "one alarm per dropped segment:\n{signals}"
    );
    assert!(signals.contains("string \"upload_failing\""), "the open breaker is alarmed:\n{signals}");
    cleanup(&dir);
}

#[test]
fn a_tiny_spool_with_s3_down_stops_recording_then_resumes() {
    let dir = test_dir("stop");
    let bus = Bus::start(&dir);
    let port = free_port();
    let spool = dir.join("spool");
    let expected = write_segments(&spool, "news", 1, 10, 100 << 10);
    let options = Options {
        max_bytes: "600KiB",
        policy: "stop_recording",
        dbus: Some(bus.address.clone()),
        ..Options::new(port)
    };
    let ctld = Ctld::start(&dir, &options);
    wait_for("recording to stop", Duration::from_secs(20), || {
        ctld.metric("airlift_recording_stopped") == Some(1.0)
    });
    assert_eq!(ctld.metric("airlift_spool_full"), Some(1.0));
    assert_eq!(
        ctld.metric("airlift_spool_dropped_segments_total"),
        Some(0.0),
        "stop_recording drops nothing"
    );
    assert_eq!(pending(&spool), 20);
    let health = ctld.get("/health").expect("health");
    assert!(health.contains("\"recording_stopped\": true"), "{health}");
    let s3 = S3Server::start(&dir, port);
    drain(&ctld, &spool, Duration::from_secs(60));
    wait_for("recording to resume", Duration::from_secs(10), || {
        ctld.metric("airlift_recording_stopped") == Some(0.0)
    });
    assert_all_stored(&s3, &expected);
    wait_for("signals", Duration::from_secs(5), || {
        bus.signals().matches("member=SegmentUploaded").count() == 10
    });
    let signals = bus.signals();
    assert_eq!(signals.matches("string \"spool_full\"").count(), 2, "stopped, then resumed:\n{signals}");
    assert!(signals.contains("recording stopped") && signals.contains("recording resumed"), "{signals}");
    cleanup(&dir);
}

#[test]
fn a_segment_that_no_longer_matches_its_manifest_is_quarantined() {
    let dir = test_dir("quarantine");
    let s3 = S3Server::start(&dir, free_port());
    let spool = dir.join("spool");
    let mut expected = write_segments(&spool, "news", 1, 3, 10_000);
    let bad = spool.join("news/2026/11/22/news-00000002.ts");
    let mut data = std::fs::read(&bad).expect("segment");
    data[100] ^= 0x40;
    std::fs::write(&bad, data).expect("corrupt");
    expected.remove(&format!("{PREFIX}/news/2026/11/22/news-00000002.ts"));
    let ctld = Ctld::start(&dir, &Options::new(s3.port));
    drain(&ctld, &spool, Duration::from_secs(30));
    assert!(spool.join("quarantine/news-00000002.ts").exists());
    assert!(spool.join("quarantine/news-00000002.json").exists());
    assert_eq!(ctld.metric("airlift_spool_quarantined_segments_total"), Some(1.0));
    assert_all_stored(&s3, &expected);
    cleanup(&dir);
}

fn cleanup(dir: &Path) {
    if std::env::var_os("AIRLIFT_KEEP_TEST_DIRS").is_some() {
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
}
