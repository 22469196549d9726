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
