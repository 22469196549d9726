//! The operator's last word holds: a mute, a stopped flow and a pull job
//! started over D-Bus survive an engine `kill -9` (ctld re-sends them) and a
//! ctld restart (the state file), are shown by `airliftctl state` next to
//! the configured value, and `airliftctl state reset` gives the
//! configuration back. Real ctld and engine binaries on a private
//! `dbus-daemon`; every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A private session-style bus, killed on drop.
struct Bus {
    child: Child,
    address: String,
}

impl Bus {
    fn start(dir: &Path) -> Self {
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

/// A node directory (config, spool, state file) with its bus; ctld is
/// started and stopped on it as often as the test wants. Drop stops ctld,
/// kills any engine of this directory by its pid and removes the directory.
struct Node {
    dir: PathBuf,
    bus: Bus,
    ctld: Option<Child>,
    http: u16,
    starts: u32,
}

fn ctld_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_airlift-ctld"))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `secs`.
fn wait<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Node {
    fn new(tag: &str, config: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("airlift-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("airlift.toml"), config).unwrap();
        let bus = Bus::start(&dir);
        let mut node = Self { dir, bus, ctld: None, http: 0, starts: 0 };
        node.start();
        node
    }

    /// Starts ctld on the node's directory and waits until it serves and
    /// the engine is connected.
    fn start(&mut self) {
        assert!(self.ctld.is_none());
        self.http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        self.starts += 1;
        let log = std::fs::File::create(self.dir.join(format!("ctld-{}.log", self.starts))).unwrap();
        let ctld = Command::new(ctld_bin())
            .arg("--config")
            .arg(self.dir.join("airlift.toml"))
            .args(["--http-listen", &format!("127.0.0.1:{}", self.http), "--dbus-address", &self.bus.address])
            .arg("--engine-binary")
            .arg(ctld_bin().with_file_name("airlift-engine"))
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.ctld = Some(ctld);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = text(&self.call("Status", "", &[]));
            if status.contains("\"engine_connected\" b true") {
                break;
            }
            assert!(Instant::now() < deadline, "ctld not up: {status}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, as systemd stops it; waits for a clean exit.
    fn stop(&mut self) {
        let Some(mut ctld) = self.ctld.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &ctld.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = ctld.try_wait().unwrap() {
                assert!(status.success(), "ctld exited with {status}\n{}", self.log());
                break;
            }
            if Instant::now() > deadline {
                let _ = ctld.kill();
                let _ = ctld.wait();
                panic!("ctld did not stop on SIGTERM\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The engine ctld spawned is gone with it.
        wait(10, "the engine to exit with ctld", || self.engine_pids().is_empty().then_some(()));
    }

    /// `kill -9` of ctld: no clean shutdown reaches the engine it spawned.
    fn kill9(&mut self) {
        if let Some(mut ctld) = self.ctld.take() {
            let _ = ctld.kill();
            let _ = ctld.wait();
        }
    }

    fn log(&self) -> String {
        (1..=self.starts)
            .map(|i| std::fs::read_to_string(self.dir.join(format!("ctld-{i}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    /// The engines serving this node's socket, by pid (from /proc).
    fn engine_pids(&self) -> Vec<u32> {
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

    /// `kill -9` the engine, then waits until ctld has restarted it and
    /// re-sent the desired state (a new pid, one more restart counted).
    fn kill_engine(&self) {
        let pids = self.engine_pids();
        assert_eq!(pids.len(), 1, "one engine expected: {pids:?}");
        let restarts = self.metric("airlift_engine_restarts_total").unwrap_or(0.0);
        assert!(Command::new("kill").args(["-KILL", &pids[0].to_string()]).status().unwrap().success());
        wait(20, "the engine to be restarted", || {
            let now = self.engine_pids();
            let counted = self.metric("airlift_engine_restarts_total").unwrap_or(0.0) > restarts;
            (counted && now.len() == 1 && now[0] != pids[0]).then_some(())
        });
    }

    fn busctl(&self, args: &[&str]) -> Output {
        Command::new("busctl").arg(format!("--address={}", self.bus.address)).args(args).output().unwrap()
    }

    fn call(&self, method: &str, signature: &str, args: &[&str]) -> Output {
        let mut a =
            vec!["call", "--", "org.airlift.Node1", "/org/airlift/Node1", "org.airlift.Node1", method];
        if !signature.is_empty() {
            a.push(signature);
        }
        a.extend_from_slice(args);
        self.busctl(&a)
    }

    fn gdbus(&self, method: &str, args: &[&str]) -> Output {
        Command::new("gdbus")
            .args(["call", "--address", &self.bus.address, "--dest", "org.airlift.Node1"])
            .args(["--object-path", "/org/airlift/Node1"])
            .args(["--method", &format!("org.airlift.Node1.{method}"), "--"])
            .args(args)
            .output()
            .unwrap()
    }

    fn airliftctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_airliftctl"))
            .args(["--address", &self.bus.address])
            .args(args)
            .output()
            .unwrap()
    }

    fn metrics(&self) -> String {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", &format!("http://127.0.0.1:{}/metrics", self.http)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn metric(&self, name: &str) -> Option<f64> {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok()))
    }

    /// The loudest channel's sample peak of `flow` in dBFS, once the
    /// engine has reported meters to this ctld.
    fn peak(&self, flow: &str) -> Option<f64> {
        let prefix = format!("airlift_meter_peak_dbfs{{flow=\"{flow}\"");
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .reduce(f64::max)
    }

    /// Asserts the peak of `flow` stays below `db` for `secs` (sampled).
    fn stays_below(&self, flow: &str, db: f64, secs: u64) {
        let first = wait(10, "meters", || self.peak(flow));
        assert!(first < db, "peak {first} dBFS, not below {db}\n{}", self.log());
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            let p = self.peak(flow).unwrap_or(-200.0);
            assert!(p < db, "peak {p} dBFS, not below {db}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn flow_state(&self, flow: &str) -> String {
        let out = text(&self.gdbus("ListFlows", &[]));
        let needle = format!("('{flow}', '");
        out.split(&needle).nth(1).and_then(|r| r.split('\'').next()).unwrap_or("").to_string()
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
        if !std::thread::panicking() && std::env::var_os("AIRLIFT_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("kept {} for a look", self.dir.display());
        }
    }
}

const TONE: &str = r#"
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

const OTHER: &str = r#"
[[flow]]
name = "other"
period = 128

[[flow.input]]
name = "tone"
producer = { test_signal = { kind = "sine", frequency = 440.0, level_dbfs = -20.0 } }

[[flow.output]]
name = "void"
consumer = "null"
"#;

/// Mute over D-Bus; engine `kill -9`; ctld restart; shown; reset unmutes.
#[test]
fn a_mute_survives_engine_and_ctld_restarts_until_reset() {
    let mut node = Node::new("mute", TONE);
    // A −20 dBFS mono tone centred on a stereo bus: about −23 dBFS a channel.
    wait(10, "the tone on the meter", || node.peak("main").filter(|p| *p > -30.0));
    let out = node.call("SetMute", "ssb", &["main", "tone", "true"]);
    assert!(out.status.success(), "{}", text(&out));
    wait(10, "silence after the mute", || node.peak("main").filter(|p| *p < -100.0));
    let settings = text(&node.busctl(&[
        "get-property",
        "org.airlift.Node1",
        "/org/airlift/Node1/flow/main",
        "org.airlift.Flow1",
        "InputSettings",
    ]));
    assert!(settings.contains("\"tone\" 0 true 0"), "{settings}");

    node.kill_engine();
    node.stays_below("main", -100.0, 2);

    let saved = std::fs::read_to_string(node.dir.join("state.json")).expect("the state file is written");
    assert!(saved.contains("\"muted\": true"), "{saved}");
    node.stop();
    node.start();
    node.stays_below("main", -100.0, 2);
    let status = text(&node.call("Status", "", &[]));
    assert!(status.contains("\"runtime_overrides\" u 1"), "{status}");

    let out = node.airliftctl(&["state"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    let row = shown.lines().find(|l| l.starts_with("main")).unwrap_or_else(|| panic!("no row: {shown}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols, ["main", "tone", "muted", "true", "false"], "{shown}");
    let json: serde_json::Value =
        serde_json::from_slice(&node.airliftctl(&["--json", "state"]).stdout).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!([{"flow": "main", "subject": "tone", "key": "muted", "runtime": "true", "config": "false"}])
    );

    // A reload: the gain the file changed wins over the operator's gain;
    // the mute the file did not change holds.
    assert!(node.airliftctl(&["gain", "main", "tone", "-10"]).status.success());
    assert_eq!(node.airliftctl(&["--json", "state"]).stdout.split(|b| *b == b'{').count() - 1, 2);
    let config = TONE.replace("name = \"tone\"\n", "name = \"tone\"\ngain_db = -6.0\n");
    assert_ne!(config, TONE);
    std::fs::write(node.dir.join("airlift.toml"), config).unwrap();
    let out = node.call("Reload", "", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let settings = text(&node.busctl(&[
        "get-property",
        "org.airlift.Node1",
        "/org/airlift/Node1/flow/main",
        "org.airlift.Flow1",
        "InputSettings",
    ]));
    assert!(settings.contains("\"tone\" -6 true 0"), "{settings}");
    node.stays_below("main", -100.0, 1);
    let shown = text(&node.airliftctl(&["state"]));
    assert!(shown.contains("muted") && !shown.contains("gain_db"), "{shown}");

    let out = node.airliftctl(&["state", "reset"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1 runtime value(s) cleared"), "{}", text(&out));
    // The tone at the file's gain: about −29 dBFS.
    wait(10, "the tone back after the reset", || node.peak("main").filter(|p| *p > -40.0));
    assert!(text(&node.airliftctl(&["state"])).contains("no runtime overrides"));
    let saved = std::fs::read_to_string(node.dir.join("state.json")).unwrap();
    assert!(!saved.contains("muted"), "{saved}");
    // The reset is for good: the engine restarted again still plays the tone.
    node.kill_engine();
    wait(10, "the tone after another restart", || node.peak("main").filter(|p| *p > -40.0));
}

/// A state file that cannot be read is moved aside with an alarm and a
/// warning, and the configuration applies.
#[test]
fn a_corrupt_state_file_is_moved_aside_and_the_config_applies() {
    let mut node = Node::new("corrupt", TONE);
    assert!(node.airliftctl(&["mute", "main", "tone"]).status.success());
    node.stop();
    std::fs::write(node.dir.join("state.json"), "{ \"format\": 1, \"inputs\": { \"main\": ").unwrap();
    // Everything on the bus from before ctld starts (the alarm comes at once).
    let (bus_out, bus_err) = (node.dir.join("busctl.txt"), node.dir.join("busctl.err"));
    let mut monitor = Command::new("busctl")
        .args([&format!("--address={}", node.bus.address), "monitor"])
        .stdout(std::fs::File::create(&bus_out).unwrap())
        .stderr(std::fs::File::create(&bus_err).unwrap())
        .spawn()
        .unwrap();
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    wait(10, "busctl monitoring", || read(&bus_err).contains("Monitoring bus message stream").then_some(()));
    node.start();
    wait(10, "the configured tone", || node.peak("main").filter(|p| *p > -30.0));
    // busctl writes each message whole and flushes it.
    wait(10, "the alarm on the bus", || {
        read(&bus_out).split("Member=Alarm").nth(1).is_some_and(|a| a.contains("};")).then_some(())
    });
    let _ = monitor.kill();
    let _ = monitor.wait();
    let seen = read(&bus_out);
    let aside: Vec<String> = std::fs::read_dir(&node.dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(node.log().contains("moved aside"), "{}", node.log());
    let alarm = seen.split("Member=Alarm").nth(1).unwrap_or_else(|| panic!("no alarm in:\n{seen}"));
    assert!(alarm.contains("STRING \"state_file\""), "{alarm}");
    assert!(text(&node.airliftctl(&["state"])).contains("no runtime overrides"));
}

/// A stopped flow stays stopped across an engine `kill -9` and a ctld
/// restart while the other flow runs; `state reset FLOW` starts it.
#[test]
fn a_stopped_flow_stays_stopped_until_reset() {
    let config = format!("{TONE}{OTHER}");
    let mut node = Node::new("stopped", &config);
    wait(10, "both flows running", || {
        (node.flow_state("main") == "running" && node.flow_state("other") == "running").then_some(())
    });
    assert!(node.airliftctl(&["flows", "stop", "main"]).status.success());
    wait(10, "main stopped", || (node.flow_state("main") == "stopped").then_some(()));

    let held = |node: &Node| {
        wait(10, "the other flow running", || (node.flow_state("other") == "running").then_some(()));
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let s = node.flow_state("main");
            assert_ne!(s, "running", "the stopped flow runs again\n{}", node.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    node.kill_engine();
    held(&node);
    node.stop();
    node.start();
    held(&node);

    let shown = text(&node.airliftctl(&["state"]));
    let row = shown.lines().find(|l| l.starts_with("main")).unwrap_or_else(|| panic!("no row: {shown}"));
    assert_eq!(row.split_whitespace().collect::<Vec<_>>(), ["main", "-", "state", "stopped", "running"]);
    // Unknown names are refused by name.
    let out = node.airliftctl(&["state", "reset", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("NotFound"), "{}", text(&out));
    let out = node.airliftctl(&["state", "reset", "main"]);
    assert!(out.status.success(), "{}", text(&out));
    wait(10, "main running after the reset", || (node.flow_state("main") == "running").then_some(()));
}

/// A pull job started over D-Bus comes back after an engine `kill -9` and
/// a ctld restart with the same id and listener port; names that clash with
/// a segment job or the spool's own folders are refused.
#[test]
fn a_runtime_pull_job_survives_restarts_with_its_id_and_port() {
    let first = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().min(60_000);
    let config = format!("{TONE}\n[srt]\nport_range = \"{first}-{}\"\n", first + 19);
    let mut node = Node::new("pull", &config);
    let out = node.gdbus(
        "StartPull",
        &["'srt://:0?mode=listener&latency=80&allow_unencrypted=true'", "{'name': <'cam1'>}"],
    );
    assert!(out.status.success(), "{}", text(&out));
    for (name, needle) in [("cam1", "exists"), ("quarantine", "reserved"), ("retained", "reserved")] {
        let t = text(&node.gdbus("StartPull", &["'srt://127.0.0.1:9'", &format!("{{'name': <'{name}'>}}")]));
        assert!(t.contains("org.airlift.Node1.Error.InvalidArgument") && t.contains(needle), "{name}: {t}");
    }
    let listed = |node: &Node| {
        let list = text(&node.gdbus("ListPulls", &[]));
        let port: u16 = list
            .split("('cam1', '")
            .nth(1)
            .and_then(|r| r.split("srt://:").nth(1))
            .and_then(|r| r.split('?').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("cam1 is not listed with a listener port: {list}\n{}", node.log()));
        let state =
            list.split("('cam1', '").nth(1).and_then(|r| r.split('\'').next()).unwrap_or("").to_string();
        (port, state)
    };
    let (port, _) = listed(&node);
    assert!((first..=first + 19).contains(&port), "{port} outside the pool");

    node.kill_engine();
    let (again, state) = listed(&node);
    assert_eq!(again, port);
    assert_ne!(state, "stopped");
    node.stop();
    node.start();
    let (again, state) = listed(&node);
    assert_eq!(again, port, "the same port after a ctld restart");
    assert_ne!(state, "stopped");
    assert_eq!(node.metric("airlift_srt_ports_in_use"), Some(1.0));
    let shown = text(&node.airliftctl(&["state"]));
    assert!(
        shown.contains("pull cam1") && shown.contains(&format!("srt://:{port}?mode=listener")),
        "{shown}"
    );
    // A second job gets another port; the first keeps its own.
    let out = node.gdbus("StartPull", &["'srt://:0?mode=listener&allow_unencrypted=true'", "@a{sv} {}"]);
    assert!(out.status.success() && text(&out).contains("'pull-1'"), "{}", text(&out));
    assert_eq!(listed(&node).0, port);

    // Reset stops the runtime jobs and frees their ports.
    let out = node.airliftctl(&["state", "reset"]);
    assert!(out.status.success(), "{}", text(&out));
    let list = text(&node.gdbus("ListPulls", &[]));
    assert!(!list.contains("cam1") && !list.contains("pull-1"), "{list}");
    assert_eq!(node.metric("airlift_srt_ports_in_use"), Some(0.0));
}

/// The `stop_recording` spool policy's stop is runtime state too: an engine
/// restart does not resume recording into a full spool; the operator
/// cannot start the flow over it; once space is freed recording resumes.
#[test]
fn a_policy_stop_holds_across_an_engine_restart_until_space_is_freed() {
    let config = r#"
[engine]
socket = "engine.sock"

[spool]
path = "spool"
max_bytes = "24KiB"
full_policy = "stop_recording"

[upload]
rescan_secs = 1

[[flow]]
name = "rec"
period = 128
channels = 1

[[flow.input]]
name = "tone"
producer = { test_signal = { kind = "sine", frequency = 1000.0, level_dbfs = -20.0 } }

[[flow.output]]
name = "seg"
consumer = { encoded = { codec = "mp2", bitrate = 64000, sink = { segments = { job = "rec", target_seconds = 1 } } } }
"#;
    let node = Node::new("policy", config);
    wait(20, "the spool policy to stop recording", || (node.flow_state("rec") == "stopped").then_some(()));
    let status = text(&node.call("Status", "", &[]));
    assert!(status.contains("\"recording_stopped_by_policy\" b true"), "{status}");
    let shown = text(&node.airliftctl(&["state"]));
    assert!(shown.contains("stopped by the spool policy"), "{shown}");
    let out = node.airliftctl(&["flows", "start", "rec"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("spool"), "{}", text(&out));

    node.kill_engine();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_ne!(node.flow_state("rec"), "running", "recording resumed into a full spool\n{}", node.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    // Space comes back (as after uploads): recording resumes by itself.
    let mut stack = vec![node.dir.join("spool")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "ts") {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }
    wait(20, "recording to resume", || (node.flow_state("rec") == "running").then_some(()));
    let status = text(&node.call("Status", "", &[]));
    assert!(status.contains("\"recording_stopped_by_policy\" b false"), "{status}");
}

/// ctld killed with `kill -9` leaves its engine running (flows keep going
/// without ctl). The restarted ctld shuts that engine down cleanly and
/// starts its own: one engine, reachable, the stopped flow still stopped.
#[test]
fn a_ctld_killed_with_9_leaves_no_engine_out_of_reach() {
    let config = format!("{TONE}{OTHER}");
    let mut node = Node::new("kill9", &config);
    assert!(node.airliftctl(&["flows", "stop", "main"]).status.success());
    wait(10, "main stopped", || (node.flow_state("main") == "stopped").then_some(()));
    let before = node.engine_pids();
    assert_eq!(before.len(), 1, "{before:?}");
    node.kill9();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(node.engine_pids(), before, "the engine outlives a killed ctld");
    node.start();
    let now = node.engine_pids();
    assert_eq!(now.len(), 1, "one engine after the restart: {now:?}\n{}", node.log());
    assert_ne!(now, before, "the leftover engine was replaced");
    assert!(node.log().contains("left by an earlier ctld"), "{}", node.log());
    wait(10, "the other flow running", || (node.flow_state("other") == "running").then_some(()));
    assert_eq!(node.flow_state("main"), "stopped");
    // The new engine answers: a command reaches it.
    assert!(node.airliftctl(&["flows", "start", "main"]).status.success());
    wait(10, "main running", || (node.flow_state("main") == "running").then_some(()));
}

/// An input whose SRT primary has no sender fails over to its tone backup;
/// `airliftctl input select` forces the primary (a D-Bus `InputSwitched`
/// signal and the metrics say so), the choice survives an engine `kill -9`
/// and a ctld restart, shows in `airliftctl state`, and `--auto` hands the
/// choice back to the failover. Bad names change nothing.
#[test]
fn a_forced_input_source_is_signalled_counted_and_kept_until_auto() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        r#"
[engine]
socket = "engine.sock"

[spool]
path = "spool"

[srt]
port_range = "{port}-{port}"

[[flow]]
name = "main"
period = 128

[[flow.input]]
name = "contrib"
producer = {{ srt_in = {{ srt = {{ mode = {{ listener = {{ port = {port} }} }}, passphrase = "failover-test-secret" }} }} }}

[flow.input.failover]
loss_ms = 200
crossfade_ms = 10

[[flow.input.failover.backup]]
name = "tone"
producer = {{ test_signal = {{ kind = "sine", frequency = 1000.0, level_dbfs = -20.0 }} }}

[[flow.processor]]
meter = {{}}

[[flow.output]]
name = "void"
consumer = "null"
"#
    );
    let mut node = Node::new("failover", &config);
    let active = |node: &Node, source: &str| {
        node.metric(&format!(
            r#"airlift_input_source_active{{flow="main",input="contrib",source="{source}"}}"#
        ))
    };
    // No sender: the tone takes over after the loss time.
    wait(15, "the backup playing", || (active(&node, "tone") == Some(1.0)).then_some(()));
    wait(10, "the tone on the meter", || node.peak("main").filter(|p| *p > -30.0));

    let monitor_out = node.dir.join("monitor.txt");
    let mut monitor = Command::new("gdbus")
        .args(["monitor", "--address", &node.bus.address, "--dest", "org.airlift.Node1"])
        .stdout(std::fs::File::create(&monitor_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let signals = || std::fs::read_to_string(&monitor_out).unwrap_or_default();
    // Subscribed once the running flow's levels reach it.
    wait(15, "the monitor subscribed", || signals().contains("Node1.Levels ('main'").then_some(()));

    // Forced onto the (silent) primary.
    let out = node.airliftctl(&["input", "select", "main", "contrib", "primary"]);
    assert!(out.status.success(), "{}", text(&out));
    wait(10, "the InputSwitched signal", || {
        signals().contains("InputSwitched ('main', 'contrib', 'primary', 'forced')").then_some(())
    });
    wait(10, "the primary active in /metrics", || (active(&node, "primary") == Some(1.0)).then_some(()));
    let forced =
        r#"airlift_input_switches_total{flow="main",input="contrib",source="primary",reason="forced"}"#;
    assert_eq!(node.metric(forced), Some(1.0), "{}", node.metrics());
    wait(10, "silence on the meter", || node.peak("main").filter(|p| *p < -100.0));

    // Bad names: refused, nothing changes.
    for args in
        [["main", "contrib", "nosuch"], ["main", "ghost", "primary"], ["main", "contrib", "bad name!"]]
    {
        let mut a = vec!["input", "select"];
        a.extend_from_slice(&args);
        let out = node.airliftctl(&a);
        assert!(!out.status.success(), "{args:?} accepted: {}", text(&out));
    }
    assert_eq!(active(&node, "primary"), Some(1.0));

    // The choice outlives an engine kill -9 and a ctld restart.
    node.kill_engine();
    wait(15, "the primary still forced after the engine restart", || {
        (active(&node, "primary") == Some(1.0)).then_some(())
    });
    node.stays_below("main", -100.0, 2);
    node.stop();
    node.start();
    wait(15, "the primary still forced after the ctld restart", || {
        (active(&node, "primary") == Some(1.0)).then_some(())
    });
    node.stays_below("main", -100.0, 2);
    let shown = text(&node.airliftctl(&["state"]));
    let row = shown.lines().find(|l| l.contains("source")).unwrap_or_else(|| panic!("{shown}"));
    assert_eq!(row.split_whitespace().collect::<Vec<_>>(), ["main", "contrib", "source", "primary", "auto"]);

    // Automatic again: the primary is lost, so the tone.
    let _ = monitor.kill();
    let _ = monitor.wait();
    let mut monitor = Command::new("gdbus")
        .args(["monitor", "--address", &node.bus.address, "--dest", "org.airlift.Node1"])
        .stdout(std::fs::File::create(&monitor_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait(15, "the monitor subscribed", || signals().contains("Node1.Levels ('main'").then_some(()));
    let out = node.airliftctl(&["input", "select", "main", "contrib", "--auto"]);
    assert!(out.status.success(), "{}", text(&out));
    wait(10, "the switch back to the tone", || {
        signals().contains("InputSwitched ('main', 'contrib', 'tone', 'auto')").then_some(())
    });
    wait(10, "the tone active in /metrics", || (active(&node, "tone") == Some(1.0)).then_some(()));
    wait(10, "the tone on the meter", || node.peak("main").filter(|p| *p > -30.0));
    let shown = text(&node.airliftctl(&["state"]));
    assert!(!shown.contains("source"), "no override left: {shown}");
    let _ = monitor.kill();
    let _ = monitor.wait();
}
