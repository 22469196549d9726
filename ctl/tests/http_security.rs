//! HTTPS with a bearer token and a per-client rate limit, checked with curl.

use std::path::PathBuf;
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
    // Burst of 10 allowed (2 x 5/s), then 429.
    let codes: Vec<String> = (0..20).map(|_| curl(&["--cacert", &cacert, "-H", &auth, &url]).0).collect();
    assert!(codes.iter().any(|c| c == "429"), "{codes:?}");
    assert!(codes.iter().filter(|c| *c == "200").count() >= 5, "{codes:?}");
}

/// Opens `idle` silent connections and `slow` ones that send a header
/// byte a second to 127.0.0.1:`port`, from 127.0.0.3, by a Python process (which may
/// raise its own descriptor limit), for `seconds`.
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
    Command::new("python3").args(["-c", &script]).spawn().expect("python3")
}

/// ctld at systemd's default soft limit of 1024 descriptors, under 1100
/// idle connections and 50 that send a header byte a second (from
/// 127.0.0.3): `/health` from another client (127.0.0.2) answers in under a second throughout, and ctld's
/// descriptors stay below its connection cap.
#[test]
fn idle_and_slow_connections_cannot_exhaust_ctld() {
    let dir = std::env::temp_dir().join(format!("airlift-http-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        dir.join("airlift.toml"),
        format!(
            "[engine]\nsocket = \"engine.sock\"\n[spool]\npath = \"spool\"\n[dbus]\nbus = \"none\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nrate_limit_per_second = 1000\n\
             [[flow]]\nname = \"a\"\n[[flow.input]]\nname = \"t\"\n\
             producer = {{ test_signal = {{ kind = \"sine\" }} }}\n[[flow.output]]\nname = \"n\"\nconsumer = \"null\"\n"
        ),
    )
    .unwrap();
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
    let mut attack = flood(port, 1100, 50, 12);
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
    let _ = attack.kill();
    let _ = attack.wait();
    println!(
        "under 1100 idle + 50 slow connections: slowest /health {worst:?}, most ctld descriptors {most_fds}"
    );
    assert!(worst < Duration::from_secs(1), "slowest /health {worst:?}");
    assert!(most_fds < 200, "ctld held {most_fds} descriptors");
}
