//! The `org.airlift.Node1` service on a private `dbus-daemon`, driven by
//! `busctl` and `gdbus`: every method, named errors for bad arguments with
//! no state change, signals seen by `gdbus monitor`.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::dbus_node::{Bus, CONFIG, Node, TapMkdir, airliftctl, metric, text};

#[test]
fn every_method_over_busctl_and_gdbus() {
    let node = Node::start("methods");
    let intro = text(&node.busctl(&["introspect", "org.airlift.Node1", "/org/airlift/Node1"]));
    for member in [
        "ListFlows",
        "StartFlow",
        "StopFlow",
        "SetGain",
        "SetMute",
        "SetPan",
        "StartPull",
        "StopPull",
        "ListPulls",
        "Status",
        "Reload",
        "RuntimeState",
        "ResetState",
        "ListSegments",
        "ListUploads",
        "Version",
        "State",
        "Flows",
        "EngineConnected",
        "Xruns",
        "SpoolBytes",
        "UploadBacklog",
        "FlowStateChanged",
        "SegmentClosed",
        "SegmentUploaded",
        "Alarm",
        "Levels",
    ] {
        assert!(intro.contains(member), "{member} missing from introspection:\n{intro}");
    }
    let flow_intro = text(&node.busctl(&["introspect", "org.airlift.Node1", "/org/airlift/Node1/flow/main"]));
    assert!(flow_intro.contains("org.airlift.Flow1") && flow_intro.contains("SetGain"), "{flow_intro}");

    for (method, sig, args) in [
        ("SetGain", "ssd", vec!["main", "tone", "-6"]),
        ("SetMute", "ssb", vec!["main", "tone", "true"]),
        ("SetMute", "ssb", vec!["main", "tone", "false"]),
        ("SetPan", "ssd", vec!["main", "tone", "0.5"]),
        ("StopFlow", "s", vec!["main"]),
        ("StartFlow", "s", vec!["main"]),
        ("Reload", "", vec![]),
        ("ListSegments", "uu", vec!["0", "10"]),
        ("ListPulls", "", vec![]),
    ] {
        let out = node.call(method, sig, &args);
        assert!(out.status.success(), "{method}: {}", text(&out));
    }
    let status = text(&node.call("Status", "", &[]));
    assert!(status.contains("engine_connected") && status.contains("true"), "{status}");
    let flows = text(&node.gdbus("ListFlows", &[]));
    assert!(flows.contains("('main', 'running')"), "{flows}");
    let version = text(&node.busctl(&[
        "get-property",
        "org.airlift.Node1",
        "/org/airlift/Node1",
        "org.airlift.Node1",
        "Version",
    ]));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let uploads = text(&node.call("ListUploads", "uu", &["0", "10"]));
    assert_eq!(uploads.trim(), "a(sts) 0", "an empty upload queue");
    let too_many = text(&node.call("ListUploads", "uu", &["0", "5000"]));
    assert!(too_many.contains("at most 1000"), "{too_many}");
}

#[test]
fn bad_arguments_get_named_errors_and_change_nothing() {
    let node = Node::start("bad-args");
    let huge = format!("'{}'", "x".repeat(100_000));
    // gdbus prints the D-Bus error name (busctl only the message).
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("SetGain", vec!["'nope'", "'tone'", "-6.0"], "NotFound"),
        ("SetGain", vec!["'main'", "'nope'", "-6.0"], "NotFound"),
        ("SetGain", vec!["'main'", "'tone'", "nan"], "InvalidArgument"),
        ("SetGain", vec!["'main'", "'tone'", "300.0"], "InvalidArgument"),
        ("SetGain", vec!["'../etc'", "'tone'", "0.0"], "InvalidArgument"),
        ("SetGain", vec![&huge, "'tone'", "0.0"], "InvalidArgument"),
        ("SetPan", vec!["'main'", "'tone'", "2.0"], "InvalidArgument"),
        ("StartFlow", vec!["'ghost'"], "NotFound"),
        ("StartPull", vec!["'http://example.net/'", "@a{sv} {}"], "InvalidArgument"),
        ("StartPull", vec!["'srt://127.0.0.1:0'", "@a{sv} {}"], "InvalidArgument"),
        ("ListSegments", vec!["@u 0", "@u 100000"], "InvalidArgument"),
    ];
    for (method, args, error) in cases {
        let out = node.gdbus(method, &args);
        let t = text(&out);
        assert!(!out.status.success(), "{method} accepted");
        assert!(
            t.contains(&format!("org.airlift.Node1.Error.{error}")),
            "{method}: {}",
            t.chars().take(300).collect::<String>()
        );
    }
    // An invalid file: Reload is refused, the running configuration stays.
    std::fs::write(node.dir.join("airlift.toml"), CONFIG.replace("period = 128", "period = 1")).unwrap();
    let t = text(&node.gdbus("Reload", &[]));
    assert!(t.contains("org.airlift.Node1.Error.InvalidArgument") && t.contains("period size"), "{t}");
    // Still alive and unchanged.
    let flows = text(&node.gdbus("ListFlows", &[]));
    assert!(flows.contains("('main', 'running')"), "{flows}");
}

#[test]
fn signals_reach_gdbus_monitor() {
    let node = Node::start("signals");
    let out = node.dir.join("monitor.txt");
    let mut monitor = Command::new("gdbus")
        .args(["monitor", "--address", &node.bus.address, "--dest", "org.airlift.Node1"])
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    let seen = || std::fs::read_to_string(&out).unwrap_or_default();
    let until = |secs: u64, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !seen().contains(what) {
            assert!(Instant::now() < deadline, "no {what} within {secs} s: {}", seen());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The running flow's levels reach the monitor: it is subscribed (a
    // fixed pause could end before a loaded machine has started it).
    until(15, "org.airlift.Node1.Levels ('main'");
    assert!(node.call("StopFlow", "s", &["main"]).status.success());
    assert!(node.call("StartFlow", "s", &["main"]).status.success());
    until(15, "org.airlift.Node1.FlowStateChanged ('main', 'stopped')");
    until(15, "org.airlift.Node1.FlowStateChanged ('main', 'running')");
    let restarted = seen().len();
    let levels_again = || seen()[restarted..].contains("org.airlift.Node1.Levels ('main'");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !levels_again() {
        assert!(Instant::now() < deadline, "no levels after the restart: {}", seen());
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = monitor.kill();
    let _ = monitor.wait();
}

#[test]
fn airliftctl_matches_the_bus_and_uses_exit_codes() {
    let node = Node::start("cli");
    let out = airliftctl(&node, &["--json", "status"]);
    assert!(out.status.success(), "{}", text(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["engine_connected"], serde_json::json!(true));
    assert_eq!(status["flows"], serde_json::json!(1));
    let busctl = text(&node.call("Status", "", &[]));
    assert!(busctl.contains(&format!("\"node\" s \"{}\"", status["node"].as_str().unwrap())), "{busctl}");

    let out = airliftctl(&node, &["--json", "flows"]);
    let flows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(flows, serde_json::json!([{"name": "main", "state": "running"}]));
    assert!(text(&node.gdbus("ListFlows", &[])).contains("('main', 'running')"));

    assert!(airliftctl(&node, &["gain", "main", "tone", "-6"]).status.success());
    let out = airliftctl(&node, &["gain", "main", "tone", "300"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("InvalidArgument"), "{}", text(&out));
    let out = airliftctl(&node, &["gain", "main"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
    let out = airliftctl(&node, &["--json", "segments"]);
    assert!(out.status.success());
    assert!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap().is_array());

    // No daemon on the bus, or no bus at all: exit 3.
    let lonely = Bus::start(&node.dir.join("lonely").tap_mkdir());
    let out = Command::new(env!("CARGO_BIN_EXE_airliftctl"))
        .args(["--address", &lonely.address, "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_airliftctl"))
        .args(["--address", "unix:path=/nonexistent/bus", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    // Completions and the man page come from clap.
    let out = Command::new(env!("CARGO_BIN_EXE_airliftctl")).args(["completions", "bash"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("airliftctl"));
    let out = Command::new(env!("CARGO_BIN_EXE_airliftctl")).arg("man").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH airliftctl"));
}

/// Runs `airliftctl meter` in a tmux pane and reads the screen.
#[test]
fn meter_in_a_terminal_shows_the_tone_and_then_silence() {
    let node = Node::start("meter");
    let session = format!("airlift-meter-{}", std::process::id());
    let cmd = format!("{} --address {} meter main", env!("CARGO_BIN_EXE_airliftctl"), node.bus.address);
    let started = Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "100", "-y", "12", &cmd])
        .status()
        .unwrap();
    assert!(started.success());
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).status();
        }
    }
    let _guard = Kill(session.clone());
    let screen = || {
        let out = Command::new("tmux").args(["capture-pane", "-p", "-t", &session]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let wait_for = |what: &str, pred: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = screen();
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "meter never showed {what}:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // A −20 dBFS mono tone centred on a stereo bus: −23 dBFS peak per channel.
    let s = wait_for("the tone", &|s| s.contains("ch0") && s.contains("-23.0 dBFS"));
    assert!(s.contains("##########"), "{s}");
    // The screen is redrawn in place: one frame, not a scroll of them.
    assert_eq!(s.matches("ch0").count(), 1, "{s}");
    assert!(airliftctl(&node, &["mute", "main", "tone"]).status.success());
    let s = wait_for("silence", &|s| s.matches("-inf dBFS").count() >= 4);
    assert!(!s.contains("#####"), "bars still lit:\n{s}");
}

/// The interface XML shipped in packaging/ is what the service introspects as.
#[test]
fn shipped_introspection_matches_the_service() {
    let node = Node::start("introspect");
    for (path, iface, file) in [
        ("/org/airlift/Node1", "org.airlift.Node1", "org.airlift.Node1.xml"),
        ("/org/airlift/Node1/flow/main", "org.airlift.Flow1", "org.airlift.Flow1.xml"),
    ] {
        let live = text(&node.busctl(&["introspect", "--xml-interface", "org.airlift.Node1", path]));
        let shipped = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/dbus").join(file),
        )
        .unwrap();
        let start =
            shipped.find(&format!("  <interface name=\"{iface}\">")).expect("interface in the shipped file");
        let end = shipped.rfind("  </interface>").unwrap() + "  </interface>".len();
        assert!(
            live.contains(&shipped[start..end]),
            "{file} differs from the live introspection of {path}:\n{live}"
        );
    }
}

/// Arbitrary arguments thrown at every method through a real client: each
/// call succeeds or fails with a named `org.airlift.Node1.Error.*`, and the
/// daemon keeps serving.
#[test]
fn arbitrary_arguments_never_break_the_daemon() {
    use airlift_ctl::client::Node1Proxy;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let node = Node::start("proptest");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let conn = rt.block_on(zbus::connection::Builder::address(node.bus.address.as_str()).build()).unwrap();
    let proxy = rt.block_on(Node1Proxy::new(&conn)).unwrap();
    let named = |r: zbus::Result<()>| -> Result<(), TestCaseError> {
        match r {
            Ok(()) => Ok(()),
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str().starts_with("org.airlift.Node1.Error.") =>
            {
                Ok(())
            }
            Err(e) => {
                eprintln!("unnamed failure: {e}");
                Err(TestCaseError::fail(format!("unnamed failure: {e}")))
            }
        }
    };
    let text = prop_oneof![
        Just("main".to_string()),
        Just("tone".to_string()),
        ".{0,40}",
        "[a-z/.]{0,12}",
        prop::collection::vec(any::<char>(), 0..5000).prop_map(|c| c.into_iter().collect()),
    ]
    // D-Bus strings cannot carry NUL (the bus drops a client that sends one).
    .prop_map(|s: String| s.replace('\0', ""));
    let number = prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), -130.0f64..30.0];
    let mut runner = TestRunner::new(Config { cases: 200, ..Config::default() });
    runner
        .run(
            &(text.clone(), text.clone(), number, any::<bool>(), any::<u32>(), any::<u32>(), 0u8..9),
            |(a, b, x, flag, o, l, which)| {
                if std::env::var_os("AIRLIFT_TRACE_CASES").is_some() {
                    eprintln!(
                        "case {which} {:?} {:?} {x} {flag} {o} {l}",
                        a.chars().take(30).collect::<String>(),
                        b.chars().take(30).collect::<String>()
                    );
                }
                rt.block_on(async {
                    match which {
                        0 => named(proxy.set_gain(&a, &b, x).await),
                        1 => named(proxy.set_pan(&a, &b, x).await),
                        2 => named(proxy.set_mute(&a, &b, flag).await),
                        3 => named(proxy.start_flow(&a).await),
                        4 => named(proxy.stop_flow(&b).await.and(proxy.start_flow("main").await)),
                        5 => named(proxy.start_pull(&a, Default::default()).await.map(|_| ())),
                        6 => named(proxy.stop_pull(&a).await),
                        7 => named(proxy.list_segments(o, l).await.map(|_| ())),
                        _ => named(proxy.list_uploads(o, l).await.map(|_| ())),
                    }
                })
            },
        )
        .unwrap();
    let flows = rt.block_on(proxy.list_flows()).unwrap();
    assert_eq!(flows, vec![("main".to_string(), "running".to_string())]);
}

/// Pull jobs over D-Bus: a listener on a port from the pool receives an
/// `ffmpeg` stream that lands in segments; limits, duplicate names and bad
/// options are refused by name; stopping frees the port.
#[test]
fn pull_jobs_start_list_and_stop_over_dbus() {
    let first = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().min(60_000);
    let config =
        format!("{CONFIG}\n[srt]\nport_range = \"{first}-{}\"\n\n[limits]\nmax_pull_jobs = 2\n", first + 19);
    let node = Node::start_with("pulls", &config);
    let out = node.gdbus(
        "StartPull",
        &[
            "'srt://:0?mode=listener&latency=80&allow_unencrypted=true'",
            "{'name': <'cam1'>, 'segment_seconds': <@u 1>}",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("'cam1'"), "{}", text(&out));
    let list = text(&node.gdbus("ListPulls", &[]));
    let port: u16 = list
        .split("srt://:")
        .nth(1)
        .and_then(|r| r.split('?').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no listener port in {list}"));
    assert!((first..=first + 19).contains(&port), "{port} outside the pool: {list}");
    assert_eq!(metric(&node, "airlift_srt_ports_in_use"), Some(1.0));
    // The unencrypted listener it opted into is a warning in Status.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = text(&node.call("Status", "", &[]));
        if status.contains("pull[cam1].source runs without a passphrase") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no unencrypted_listener warning: {status}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // Refusals, each by name, changing nothing.
    for (args, error) in [
        (vec!["'srt://127.0.0.1:9?mode=caller'", "{'name': <'cam1'>}"], "InvalidArgument"),
        (vec!["'srt://127.0.0.1:9'", "{'colour': <'blue'>}"], "InvalidArgument"),
        (vec!["'srt://127.0.0.1:9'", "{'segment_seconds': <'six'>}"], "InvalidArgument"),
        (vec!["'srt://127.0.0.1:9?latency=5'", "@a{sv} {}"], "InvalidArgument"),
        (vec!["'srt://:0?mode=listener'", "{'name': <'open'>}"], "InvalidArgument"),
        (
            vec!["'srt://:0?mode=listener&passphrase=SeCrEt-TeXt-1&streamid=%zz'", "@a{sv} {}"],
            "InvalidArgument",
        ),
    ] {
        let t = text(&node.gdbus("StartPull", &args));
        assert!(t.contains(&format!("org.airlift.Node1.Error.{error}")), "{args:?}: {t}");
        assert!(!t.contains("SeCrEt"), "an error shows the passphrase: {t}");
    }
    // A listener without a passphrase needs the opt-out, and says so.
    let t = text(&node.gdbus("StartPull", &["'srt://:0?mode=listener'", "@a{sv} {}"]));
    assert!(t.contains("needs a passphrase") && t.contains("allow_unencrypted=true"), "{t}");
    let out = node.gdbus("StartPull", &["'srt://127.0.0.1:9?streamid=cam2'", "{'name': <'cam2'>}"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&node.gdbus("StartPull", &["'srt://127.0.0.1:9'", "@a{sv} {}"]));
    assert!(t.contains("org.airlift.Node1.Error.LimitReached"), "{t}");

    // A stream into the allocated port lands in closed segments.
    let mut sender = Command::new("timeout")
        .args(["30", "ffmpeg", "-v", "error", "-nostdin", "-re", "-f", "lavfi", "-i"])
        .arg("sine=frequency=440:sample_rate=48000:duration=4")
        .args(["-c:a", "aac", "-b:a", "128k", "-f", "mpegts"])
        .arg(format!("srt://127.0.0.1:{port}?pkt_size=1316"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg is installed");
    let manifests = || {
        let mut n = 0;
        let mut stack = vec![node.dir.join("spool/cam1")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "json") {
                    n += 1;
                }
            }
        }
        n
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while manifests() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = sender.kill();
    let _ = sender.wait();
    assert!(manifests() >= 2, "no segments from the pulled stream: {}", node.log());
    // The job's statistics reach /metrics (reported each second), in a
    // form promtool accepts.
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&node, "airlift_pull_packets_total{job=\"cam1\"}").unwrap_or(0.0) < 100.0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        metric(&node, "airlift_pull_packets_total{job=\"cam1\"}").unwrap_or(0.0) >= 100.0,
        "no pull statistics"
    );
    assert!(metric(&node, "airlift_pull_received_bytes_total{job=\"cam1\"}").unwrap_or(0.0) >= 18_800.0);
    assert_eq!(metric(&node, "airlift_pull_cc_errors_total{job=\"cam1\"}"), Some(0.0));
    assert_eq!(metric(&node, "airlift_pull_connects_total{job=\"cam1\"}"), Some(1.0));
    let body = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{}/metrics", node.http)])
        .output()
        .unwrap()
        .stdout;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), &body).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(checked.status.success(), "promtool: {}", String::from_utf8_lossy(&checked.stderr));
    let list = text(&node.gdbus("ListPulls", &[]));
    assert!(list.contains("('cam1', 'running'") || list.contains("('cam1', 'failed"), "{list}");

    // Stopping ends the job and frees its port; a second stop finds nothing.
    let out = node.gdbus("StopPull", &["'cam1'"]);
    assert!(out.status.success(), "{}", text(&out));
    let list = text(&node.gdbus("ListPulls", &[]));
    assert!(!list.contains("cam1") && list.contains("cam2"), "{list}");
    assert_eq!(metric(&node, "airlift_srt_ports_in_use"), Some(0.0));
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&node, "airlift_pull_packets_total{job=\"cam1\"}").is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        metric(&node, "airlift_pull_packets_total{job=\"cam1\"}"),
        None,
        "a stopped job's series stay"
    );
    let t = text(&node.gdbus("StopPull", &["'cam1'"]));
    assert!(t.contains("org.airlift.Node1.Error.NotFound"), "{t}");
    let out = airliftctl(&node, &["--json", "pull", "list"]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"id\": \"cam2\"") && json.contains("streamid=cam2"), "{json}");
}

#[test]
fn srt_link_changes_and_losses_reach_gdbus_monitor() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        r#"{CONFIG}
[[flow]]
name = "contrib"

[[flow.input]]
name = "tone"
producer = {{ test_signal = {{ kind = "sine", frequency = 440.0, level_dbfs = -20.0 }} }}

[[flow.output]]
name = "out"
consumer = {{ encoded = {{ codec = "mp2", sink = {{ srt = {{ mode = {{ caller = {{ host = "127.0.0.1", port = {port} }} }} }} }} }} }}
"#
    );
    let node = Node::start_with("srt-link", &config);
    let mut monitor = Command::new("gdbus")
        .args(["monitor", "--address", &node.bus.address, "--dest", "org.airlift.Node1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Lines of the monitor, read on a thread so waiting stays bounded.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        let stdout = monitor.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                seen.lock().unwrap().push_str(&(line + "\n"));
            }
        })
    };
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(25);
        loop {
            let text = seen.lock().unwrap().clone();
            if text.contains(needle) {
                break;
            }
            assert!(Instant::now() < deadline, "no {needle:?} in:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let listener = || {
        Command::new("timeout")
            .args(["60", "srt-live-transmit", "-chunk:1316", "-q"])
            .arg(format!("srt://:{port}?mode=listener"))
            .arg("file://con")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("srt-live-transmit is installed")
    };
    // `timeout` and the peer under it.
    let kill = |peer: &mut Child| {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", peer.id())]).status();
        let _ = peer.wait();
    };
    std::thread::sleep(Duration::from_millis(500));
    let mut peer = listener();
    wait_for("SrtLinkChanged ('contrib', 'airlift-srt-tx-out', 'connected', uint64 1, uint64 0)");
    kill(&mut peer);
    wait_for("SrtLinkChanged ('contrib', 'airlift-srt-tx-out', 'waiting', uint64 1, uint64 0)");
    wait_for("Alarm ('srt_down', 'contrib', 'airlift-srt-tx-out: peer lost, reconnecting')");
    let mut peer = listener();
    wait_for("SrtLinkChanged ('contrib', 'airlift-srt-tx-out', 'connected', uint64 2, uint64 0)");
    kill(&mut peer);
    let _ = monitor.kill();
    let _ = monitor.wait();
    let _ = reader.join();
}

/// Silence end to end: a flow with a silent source and a flow whose input
/// is muted (after `airliftctl gain … -6` without `--`) show `-Inf` in
/// `/metrics` (which promtool accepts), `-inf` in `airliftctl meter`, and
/// only the meters each flow has.
#[test]
fn silence_is_minus_inf_in_metrics_and_the_cli() {
    let config = r#"
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

[[flow.processor]]
loudness = {}

[[flow.output]]
name = "void"
consumer = "null"

[[flow]]
name = "quiet"
period = 128

[[flow.input]]
name = "nothing"
producer = { test_signal = { kind = "silence" } }

[[flow.processor]]
meter = {}

[[flow.output]]
name = "void"
consumer = "null"
"#;
    let node = Node::start_with("silence", config);

    // A negative gain needs no `--`, and the bus then says -6.
    let out = airliftctl(&node, &["gain", "main", "tone", "-6"]);
    assert!(out.status.success(), "{}", text(&out));
    let settings = text(&node.busctl(&[
        "get-property",
        "org.airlift.Node1",
        "/org/airlift/Node1/flow/main",
        "org.airlift.Flow1",
        "InputSettings",
    ]));
    assert!(settings.contains("\"tone\" -6 false"), "{settings}");
    let out = airliftctl(&node, &["pan", "main", "tone", "-0.25"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(airliftctl(&node, &["mute", "main", "tone"]).status.success());

    let scrape = || {
        let out = Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{}/metrics", node.http)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let wanted = [
        "airlift_meter_peak_dbfs{flow=\"quiet\",channel=\"0\"} -Inf",
        "airlift_meter_rms_dbfs{flow=\"quiet\",channel=\"1\"} -Inf",
        "airlift_meter_peak_dbfs{flow=\"main\",channel=\"0\"} -Inf",
        "airlift_loudness_momentary_lufs{flow=\"main\"} -Inf",
    ];
    let deadline = Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let m = scrape();
        if wanted.iter().all(|w| m.lines().any(|l| l == *w)) {
            break m;
        }
        assert!(Instant::now() < deadline, "no -Inf silence in /metrics:\n{m}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!metrics.contains("-200") && !metrics.contains("NaN"), "{metrics}");
    assert!(
        !metrics.contains("airlift_loudness_momentary_lufs{flow=\"quiet\"}"),
        "quiet has no loudness meter"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), metrics.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(checked.status.success(), "promtool: {}", String::from_utf8_lossy(&checked.stderr));

    // The meter, off a terminal: one line per update, only what each flow has.
    let meter = |args: &[&str]| {
        let out = Command::new("timeout")
            .arg("20")
            .arg(env!("CARGO_BIN_EXE_airliftctl"))
            .args(["--address", &node.bus.address])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "meter: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let lines = meter(&["meter", "--count", "10"]);
    let quiet = lines.lines().find(|l| l.starts_with("quiet ")).unwrap_or_else(|| panic!("{lines}"));
    assert_eq!(quiet, "quiet peak/rms dBFS -inf/-inf -inf/-inf", "{lines}");
    // Meter and loudness reports come on their own cadences (loudness at
    // its 100 ms block boundaries), so an update may carry meters alone:
    // judge the last one that carries loudness.
    let main = lines
        .lines()
        .rev()
        .find(|l| l.starts_with("main ") && l.contains(" LUFS "))
        .unwrap_or_else(|| panic!("{lines}"));
    assert!(main.starts_with("main peak/rms dBFS -inf/-inf -inf/-inf M -inf LUFS I "), "{lines}");
    let json = meter(&["--json", "meter", "quiet", "--count", "1"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v, serde_json::json!({"flow": "quiet", "peak_dbfs": [null, null], "rms_dbfs": [null, null]}));
}
