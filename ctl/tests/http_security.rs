//! HTTPS with a bearer token and a per-client rate limit, checked with curl.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Ctld(Child, PathBuf);

impl Drop for Ctld {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = Command::new("pkill").args(["-9", "-f", &self.1.display().to_string()]).status();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn https_token_and_rate_limit() {
    let dir = std::env::temp_dir().join(format!("airlift-https-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let token = "s3cret-token-0123456789";
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        dir.join("airlift.toml"),
        format!(
            "[engine]\nsocket = \"engine.sock\"\n[spool]\npath = \"spool\"\n[dbus]\nbus = \"none\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n\
             token_file = \"token\"\nrate_limit_per_second = 5\n"
        ),
    )
    .unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_airlift-ctld"));
    let child = Command::new(&bin)
        .arg("--config")
        .arg(dir.join("airlift.toml"))
        .arg("--engine-binary")
        .arg(bin.with_file_name("airlift-engine"))
        .stderr(std::fs::File::create(dir.join("ctld.log")).unwrap())
        .spawn()
        .unwrap();
    let _ctld = Ctld(child, dir.clone());
    let url = format!("https://127.0.0.1:{port}/health");
    let cacert = dir.join("cert.pem").display().to_string();
    let auth = format!("Authorization: Bearer {token}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _) = curl(&["--cacert", &cacert, "-H", &auth, &url]);
        if code == "200" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 200 over HTTPS (last {code}): {}",
            std::fs::read_to_string(dir.join("ctld.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_millis(600)); // let the bucket refill
    assert_eq!(curl(&["--cacert", &cacert, &url]).0, "401", "no token");
    assert_eq!(
        curl(&["--cacert", &cacert, "-H", "Authorization: Bearer wrong-token-0123456789", &url]).0,
        "401"
    );
    let (code, _) = curl(&[&format!("http://127.0.0.1:{port}/health")]);
    assert_ne!(code, "200", "plain HTTP must not be served on the TLS port");
    // Burst of 10 allowed (2 x 5/s), then 429. The 20 requests go from one
    // curl over one connection: 20 processes, each with its own TLS
    // handshake, could be slower than the refill on a loaded machine.
    let mut args = vec!["--cacert", &cacert, "-H", &auth];
    for _ in 0..20 {
        args.extend(["-o", "/dev/null", &url]);
    }
    let out = Command::new("curl").args(["-s", "-w", "%{http_code}\n"]).args(&args).output().unwrap();
    let codes: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(codes.len(), 20, "{codes:?}");
    assert!(codes.iter().any(|c| c == "429"), "{codes:?}");
    assert!(codes.iter().filter(|c| *c == "200").count() >= 5, "{codes:?}");
}

/// Opens `idle` silent connections and `slow` ones that send a header
/// byte a second to 127.0.0.1:`port`, from 127.0.0.3, by a Python process (which may
/// raise its own descriptor limit), for `seconds`. Once all are open it
/// prints `held IDLE SLOW` (how many connected) on its stdout.
fn flood(port: u16, idle: usize, slow: usize, seconds: u64) -> Child {
    let script = format!(
        r#"
import resource, socket, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
idle, slow = [], []
for _ in range({idle}):
    try:
        s = socket.create_connection(("127.0.0.1", {port}), timeout=2, source_address=("127.0.0.3", 0)); idle.append(s)
    except OSError:
        pass
for _ in range({slow}):
    try:
        s = socket.create_connection(("127.0.0.1", {port}), timeout=2, source_address=("127.0.0.3", 0)); s.setblocking(False); slow.append(s)
    except OSError:
        pass
print("held", len(idle), len(slow), flush=True)
end = time.time() + {seconds}
while time.time() < end:
    for s in slow:
        try:
            s.send(b"X")
        except OSError:
            pass
    time.sleep(1)
"#
    );
    Command::new("python3").args(["-c", &script]).stdout(Stdio::piped()).spawn().expect("python3")
}

/// Waits (at most `limit`) for the flood's `held IDLE SLOW` line.
fn held(attack: &mut Child, limit: Duration) -> (usize, usize) {
    use std::io::BufRead;
    let out = attack.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(limit).expect("the flood did not open its connections in time");
    let f: Vec<usize> = line.split_whitespace().skip(1).filter_map(|n| n.parse().ok()).collect();
    assert_eq!(f.len(), 2, "flood said {line:?}");
    (f[0], f[1])
}

const AK: &str = "airlifttest";
const SK: &str = "airlifttestsecret";
const BUCKET: &str = "archive";

/// `s3s-fs` on 127.0.0.1:`port`, storing under `data`, killed on drop.
struct S3(Child);

impl S3 {
    fn start(data: &Path, port: u16) -> Self {
        std::fs::create_dir_all(data.join(BUCKET)).unwrap();
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", AK, "--secret-key", SK])
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs is installed (scripts/install-deps)");
        let s3 = Self(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        s3
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Object keys stored by s3s-fs under `root` (its bucket folder), from its
/// own storage: every file not starting with a dot.
fn stored(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !e.file_name().to_string_lossy().starts_with('.') {
                out.insert(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// ctld at systemd's default soft limit of 1024 descriptors, under 1100
/// idle connections and 50 that send a header byte a second (from
/// 127.0.0.3): `/health` from another client (127.0.0.2) answers in under a second throughout, and ctld's
/// descriptors stay below its connection cap. Uploads keep running: a flow
/// cuts a segment a second (mp2 in TS, by the real engine) and segments cut
/// while the connections are held reach a real S3 server (s3s-fs), each
/// object byte for byte the segment ctld kept in `retained/`.
#[test]
fn idle_and_slow_connections_cannot_exhaust_ctld() {
    let dir = std::env::temp_dir().join(format!("airlift-http-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s3_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _s3 = S3::start(&dir.join("s3data"), s3_port);
    std::fs::write(dir.join("creds"), format!("{AK}:{SK}\n")).unwrap();
    std::fs::write(
        dir.join("airlift.toml"),
        format!(
            "[engine]\nsocket = \"engine.sock\"\n[spool]\npath = \"spool\"\nretention_hours = 1\n[dbus]\nbus = \"none\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nrate_limit_per_second = 1000\n\
             [upload]\nrescan_secs = 1\nbackoff_min_ms = 50\nbackoff_max_ms = 1000\nrequest_timeout_secs = 10\n\
             [[s3]]\nname = \"local\"\nendpoint = \"http://127.0.0.1:{s3_port}\"\nbucket = \"{BUCKET}\"\n\
             prefix = \"flood/\"\ncredentials_file = \"creds\"\n\
             [[flow]]\nname = \"a\"\n[[flow.input]]\nname = \"t\"\n\
             producer = {{ test_signal = {{ kind = \"sine\" }} }}\n[[flow.output]]\nname = \"n\"\nconsumer = \"null\"\n\
             [[flow.output]]\nname = \"archive\"\n\
             consumer = {{ encoded = {{ codec = \"mp2\", bitrate = 64000, sink = {{ segments = {{ job = \"a\", target_seconds = 1 }} }} }} }}\n"
        ),
    )
    .unwrap();
    let objects = dir.join("s3data").join(BUCKET).join("flood");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_airlift-ctld"));
    let child = Command::new("sh")
        .args(["-c", "ulimit -n 1024 && exec \"$0\" \"$@\""])
        .arg(&bin)
        .arg("--config")
        .arg(dir.join("airlift.toml"))
        .arg("--engine-binary")
        .arg(bin.with_file_name("airlift-engine"))
        .stderr(std::fs::File::create(dir.join("ctld.log")).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _ctld = Ctld(child, dir.clone());
    // The other client comes from another loopback address.
    let health = || -> (String, Duration) {
        let t = Instant::now();
        let (code, _) =
            curl(&["--interface", "127.0.0.2", "-m", "5", &format!("http://127.0.0.1:{port}/health")]);
        (code, t.elapsed())
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while health().0 != "200" {
        assert!(
            Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(dir.join("ctld.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The uploader runs before the flood starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored(&objects).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no segment uploaded before the flood: {}",
            std::fs::read_to_string(dir.join("ctld.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut attack = flood(port, 1100, 50, 14);
    let (idle_held, slow_held) = held(&mut attack, Duration::from_secs(20));
    let before = stored(&objects);
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut most_fds = 0;
    while started.elapsed() < Duration::from_secs(10) {
        let (code, took) = health();
        assert_eq!(code, "200", "/health failed under the flood after {:?}", started.elapsed());
        worst = worst.max(took);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
        most_fds = most_fds.max(fds);
        std::thread::sleep(Duration::from_millis(300));
    }
    // Segments (`.ts`) and their manifests (`.json`) both go up.
    let during: Vec<String> = stored(&objects).difference(&before).cloned().collect();
    let segments = during.iter().filter(|k| k.ends_with(".ts")).count();
    let flood_alive = attack.try_wait().unwrap().is_none();
    let _ = attack.kill();
    let _ = attack.wait();
    println!(
        "under 1100 idle + 50 slow connections ({idle_held} idle and {slow_held} slow connected): slowest \
         /health {worst:?}, most ctld descriptors {most_fds}, {segments} segments uploaded meanwhile \
         ({} objects)",
        during.len()
    );
    assert!(flood_alive, "the flood ended before the measurement did");
    assert_eq!((idle_held, slow_held), (1100, 50), "the flood could not open its connections");
    assert!(worst < Duration::from_secs(1), "slowest /health {worst:?}");
    assert!(most_fds < 200, "ctld held {most_fds} descriptors");
    // A segment a second for 10 s: most of them must have gone up.
    assert!(
        segments >= 5,
        "only {segments} segments uploaded during the flood: {}",
        std::fs::read_to_string(dir.join("ctld.log")).unwrap_or_default()
    );
    for key in &during {
        let object = std::fs::read(objects.join(key)).unwrap();
        let kept = std::fs::read(dir.join("spool/retained").join(key))
            .unwrap_or_else(|e| panic!("{key}: uploaded but not in retained/: {e}"));
        if key.ends_with(".ts") {
            assert!(
                object.len() > 188 && object.len().is_multiple_of(188),
                "{key}: {} bytes is not TS",
                object.len()
            );
        }
        assert!(object == kept, "{key}: the object differs from the segment");
    }
}
