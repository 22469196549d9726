//! The real parts the torture test drives, each started on 127.0.0.1 or a
//! private socket and stopped on drop: a `dbus-daemon`, `s3s-fs`, and ctld
//! (which spawns the engine) on one node directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const AK: &str = "airlifttest";
pub const SK: &str = "airlifttestsecret";
pub const BUCKET: &str = "archive";
pub const PREFIX: &str = "torture";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `secs`.
pub fn wait<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {secs} s waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private session-style bus, killed on drop.
pub struct Bus {
    child: Child,
    pub address: String,
}

impl Bus {
    pub fn start(dir: &Path) -> Self {
        let socket = dir.join("bus");
        let address = format!("unix:path={}", socket.display());
        let child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={address}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("dbus-daemon is installed");
        wait(10, "dbus-daemon", || socket.exists().then_some(())).unwrap();
        Self { child, address }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `s3s-fs` on a free port, stopped on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
    pub data: PathBuf,
}

impl S3Server {
    pub fn start(dir: &Path) -> Self {
        let data = dir.join("s3data");
        std::fs::create_dir_all(data.join(BUCKET)).expect("bucket dir");
        let port = free_port();
        let log = std::fs::File::create(dir.join("s3s-fs.log")).expect("log");
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", AK, "--secret-key", SK])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("s3s-fs is installed (scripts/install-deps)");
        let s = Self { child, port, data };
        wait(20, "s3s-fs to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).ok()).unwrap();
        s
    }

    /// The bucket's folder: s3s-fs's own storage, the ground truth.
    pub fn bucket(&self) -> PathBuf {
        self.data.join(BUCKET)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node directory with its bus; ctld is started, killed and restarted on
/// it as the test wants. Drop stops ctld, kills any engine serving this
/// node's socket (by pid) and removes the directory unless the test failed.
pub struct Node {
    pub dir: PathBuf,
    pub bus: Bus,
    ctld: Option<Child>,
    http: u16,
    pub starts: u32,
}

pub fn ctld_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_airlift-ctld"))
}

impl Node {
    pub fn new(dir: PathBuf) -> Self {
        let bus = Bus::start(&dir);
        Self { dir, bus, ctld: None, http: 0, starts: 0 }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("airlift.toml")
    }

    /// Starts ctld; waits until D-Bus answers and, when `engine`, until
    /// the engine is connected.
    pub fn start(&mut self, engine: bool) -> Result<(), String> {
        assert!(self.ctld.is_none());
        self.http = free_port();
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).expect("log");
        let ctld = Command::new(ctld_bin())
            .arg("--config")
            .arg(self.config_path())
            .args(["--http-listen", &format!("127.0.0.1:{}", self.http), "--dbus-address", &self.bus.address])
            .arg("--engine-binary")
            .arg(ctld_bin().with_file_name("airlift-engine"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ctld");
        self.ctld = Some(ctld);
        wait(25, if engine { "ctld with its engine" } else { "ctld" }, || {
            let status = text(&self.call("Status", "", &[]));
            let up = if engine {
                status.contains("\"engine_connected\" b true")
            } else {
                status.contains("\"engine_connected\" b")
            };
            up.then_some(())
        })
    }

    fn log_path(&self, n: u32) -> PathBuf {
        self.dir.join(format!("ctld-{n}.log"))
    }

    /// SIGTERM, as systemd stops it; waits for a clean exit and for the
    /// engine to be gone with it.
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(mut ctld) = self.ctld.take() else { return Ok(()) };
        let _ = Command::new("kill").args(["-TERM", &ctld.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = ctld.try_wait().expect("try_wait") {
                if !status.success() {
                    return Err(format!("ctld exited with {status} on SIGTERM"));
                }
                break;
            }
            if Instant::now() > deadline {
                let _ = ctld.kill();
                let _ = ctld.wait();
                return Err("ctld did not stop within 20 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        wait(15, "the engine to exit with ctld", || self.engine_pids().is_empty().then_some(()))
    }

    /// `kill -9` of ctld (its engine is left to whatever happens).
    pub fn kill9(&mut self) {
        if let Some(mut ctld) = self.ctld.take() {
            let _ = ctld.kill();
            let _ = ctld.wait();
        }
    }

    /// Every ctld log of this node, restarts marked.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|i| std::fs::read_to_string(self.log_path(i)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    /// The last `lines` lines of the logs that are not INFO.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().filter(|l| !l.contains(" INFO ")).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Engines serving this node's socket, by pid (from /proc).
    pub fn engine_pids(&self) -> Vec<u32> {
        let socket = self.dir.join("engine.sock").display().to_string();
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
                let args: Vec<String> =
                    cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
                (args.first()?.ends_with("airlift-engine") && args.contains(&socket)).then_some(pid)
            })
            .collect()
    }

    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.ctld {
            let _ = Command::new("kill").args([sig, &c.id().to_string()]).status();
        }
    }

    pub fn busctl(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["20", "busctl", &format!("--address={}", self.bus.address)])
            .args(args)
            .output()
            .expect("busctl")
    }

    pub fn call(&self, method: &str, signature: &str, args: &[&str]) -> Output {
        let mut a =
            vec!["call", "--", "org.airlift.Node1", "/org/airlift/Node1", "org.airlift.Node1", method];
        if !signature.is_empty() {
            a.push(signature);
        }
        a.extend_from_slice(args);
        self.busctl(&a)
    }

    pub fn gdbus(&self, method: &str, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["20", "gdbus", "call", "--address", &self.bus.address, "--dest", "org.airlift.Node1"])
            .args(["--object-path", "/org/airlift/Node1"])
            .args(["--method", &format!("org.airlift.Node1.{method}"), "--"])
            .args(args)
            .output()
            .expect("gdbus")
    }

    pub fn metrics(&self) -> String {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", &format!("http://127.0.0.1:{}/metrics", self.http)])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok()))
    }

    /// Flow name → state, from D-Bus ListFlows (empty when ctld does not answer).
    pub fn flows(&self) -> Vec<(String, String)> {
        let out = text(&self.gdbus("ListFlows", &[]));
        out.split("('")
            .skip(1)
            .filter_map(|r| {
                let mut parts = r.split('\'');
                let name = parts.next()?.to_string();
                let state = parts.nth(1)?.to_string();
                Some((name, state))
            })
            .collect()
    }

    /// Pull job id → (state, source), from D-Bus ListPulls.
    pub fn pulls(&self) -> Vec<(String, String, String)> {
        let out = text(&self.gdbus("ListPulls", &[]));
        out.split("('")
            .skip(1)
            .filter_map(|r| {
                let mut parts = r.split('\'');
                let name = parts.next()?.to_string();
                let state = parts.nth(1)?.to_string();
                let source = parts.nth(1)?.to_string();
                Some((name, state, source))
            })
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut ctld) = self.ctld.take() {
            let _ = Command::new("kill").args(["-TERM", &ctld.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while ctld.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = ctld.kill();
            let _ = ctld.wait();
        }
        for pid in self.engine_pids() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}
