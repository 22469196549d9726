//! The node the D-Bus tests drive: a private `dbus-daemon` and ctld (which
//! spawns the engine) on it, both stopped on drop, with helpers to call the
//! service through `busctl`, `gdbus`, `airliftctl` and `/metrics`.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A private session-style bus, killed on drop.
pub struct Bus {
    child: Child,
    pub address: String,
}

impl Bus {
    pub fn start(dir: &std::path::Path) -> Self {
        let socket = dir.join("bus");
        let address = format!("unix:path={}", socket.display());
        let child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={address}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("dbus-daemon is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "dbus-daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, address }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Node {
    ctld: Child,
    pub bus: Bus,
    pub dir: PathBuf,
    pub http: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.ctld.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ctld.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.ctld.kill();
        let _ = self.ctld.wait();
        let _ = Command::new("pkill").args(["-9", "-f", &self.dir.display().to_string()]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub const CONFIG: &str = r#"
[engine]
socket = "engine.sock"

[spool]
path = "spool"

[[flow]]
name = "main"
period = 128

[[flow.input]]
name = "tone"
producer = { test_signal = { kind = "sine", frequency = 1000.0, level_dbfs = -20.0 } }

[[flow.processor]]
meter = {}

[[flow.output]]
name = "void"
consumer = "null"
"#;

impl Node {
    pub fn start(tag: &str) -> Self {
        Self::start_with(tag, CONFIG)
    }

    pub fn start_with(tag: &str, config: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("airlift-dbus-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("airlift.toml"), config).unwrap();
        let bus = Bus::start(&dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ctld_bin = PathBuf::from(env!("CARGO_BIN_EXE_airlift-ctld"));
        let ctld = Command::new(&ctld_bin)
            .arg("--config")
            .arg(dir.join("airlift.toml"))
            .args(["--http-listen", &format!("127.0.0.1:{port}"), "--dbus-address", &bus.address])
            .arg("--engine-binary")
            .arg(ctld_bin.with_file_name("airlift-engine"))
            .stderr(std::fs::File::create(dir.join("ctld.log")).unwrap())
            .spawn()
            .unwrap();
        let node = Self { ctld, bus, dir, http: port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = node.busctl(&[
                "call",
                "org.airlift.Node1",
                "/org/airlift/Node1",
                "org.airlift.Node1",
                "ListFlows",
            ]);
            if String::from_utf8_lossy(&out.stdout).contains("running") {
                break;
            }
            assert!(Instant::now() < deadline, "service not up: {}", node.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        node
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ctld.log")).unwrap_or_default()
    }

    pub fn busctl(&self, args: &[&str]) -> Output {
        Command::new("busctl").arg(format!("--address={}", self.bus.address)).args(args).output().unwrap()
    }

    pub fn call(&self, method: &str, signature: &str, args: &[&str]) -> Output {
        // `--` so that negative numbers are not taken for options.
        let mut a =
            vec!["call", "--", "org.airlift.Node1", "/org/airlift/Node1", "org.airlift.Node1", method];
        if !signature.is_empty() {
            a.push(signature);
        }
        a.extend_from_slice(args);
        self.busctl(&a)
    }

    pub fn gdbus(&self, method: &str, args: &[&str]) -> Output {
        Command::new("gdbus")
            .args([
                "call",
                "--address",
                &self.bus.address,
                "--dest",
                "org.airlift.Node1",
                "--object-path",
                "/org/airlift/Node1",
            ])
            .args(["--method", &format!("org.airlift.Node1.{method}"), "--"])
            .args(args)
            .output()
            .unwrap()
    }
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub fn airliftctl(node: &Node, args: &[&str]) -> Output {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_airliftctl"));
    Command::new(bin).args(["--address", &node.bus.address]).args(args).output().unwrap()
}

pub trait TapMkdir {
    fn tap_mkdir(self) -> PathBuf;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> PathBuf {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

/// A metric's value from ctld's `/metrics`.
pub fn metric(node: &Node, name: &str) -> Option<f64> {
    let out = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{}/metrics", node.http)])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok()))
}
