//! The shipped D-Bus policy on a private system-like bus (Debian's
//! system.conf with our policy folder), with real users: a non-member is
//! denied every method and cannot own the name, a member of the `airlift`
//! group can call, and ctld's own uid check refuses changes from a user the
//! bus lets through but who is not in the group. The engine's user
//! (`airlift-engine`) is refused by the bus even when a group it is in may
//! call, and by ctld even when the bus lets it through and it is in ctld's
//! group.
//!
//! Needs root (it creates the users and groups it uses, idempotently).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status().unwrap();
    assert!(st.success(), "{cmd} {args:?}");
}

fn ensure_group(name: &str) {
    if !Command::new("getent").args(["group", name]).status().unwrap().success() {
        run("groupadd", &["--system", name]);
    }
}

fn ensure_user(name: &str, groups: &[&str]) {
    if !Command::new("id").arg(name).stdout(Stdio::null()).status().unwrap().success() {
        // --no-user-group: a group of the same name may already exist (airlift).
        run(
            "useradd",
            &["--system", "--no-create-home", "--no-user-group", "--shell", "/usr/sbin/nologin", name],
        );
    }
    for g in groups {
        run("usermod", &["-a", "-G", g, name]);
    }
}

struct Killed(Vec<Child>, PathBuf);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
            std::thread::sleep(Duration::from_millis(300));
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("pkill").args(["-9", "-f", &self.1.display().to_string()]).status();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// Debian's system.conf, made private: no user switch, no fork, no pid
/// file, no syslog, no service activation, our socket and policy folder.
fn system_like_config(dir: &Path) -> String {
    let system = std::fs::read_to_string("/usr/share/dbus-1/system.conf").expect("dbus system.conf");
    let mut out = String::new();
    for line in system.lines() {
        let t = line.trim();
        if t.starts_with("<user>")
            || t == "<fork/>"
            || t.starts_with("<pidfile>")
            || t == "<syslog/>"
            || t.starts_with("<standard_system_servicedirs")
            || t.contains("system.d")
            || t.starts_with("<listen>")
            || t.starts_with("<servicehelper>")
            || t.contains("/etc/dbus-1/system")
        {
            continue;
        }
        if t == "</busconfig>" {
            out.push_str(&format!("  <listen>unix:path={}/system_bus_socket</listen>\n", dir.display()));
            out.push_str(&format!("  <includedir>{}/policy</includedir>\n", dir.display()));
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn busctl_as(user: &str, address: &str, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", user, "--", "busctl", &format!("--address={address}")])
        .args(args)
        .output()
        .unwrap()
}

fn call_as(user: &str, address: &str, method: &str, sig: &str, args: &[&str]) -> String {
    let mut a = vec!["call", "--", "org.airlift.Node1", "/org/airlift/Node1", "org.airlift.Node1", method];
    if !sig.is_empty() {
        a.push(sig);
    }
    a.extend_from_slice(args);
    let o = busctl_as(user, address, &a);
    format!(
        "{}{}{}",
        if o.status.success() { "OK " } else { "FAILED " },
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn shipped_policy_on_a_system_like_bus() {
    if !is_root() {
        eprintln!("skipped: the policy test creates users and groups and needs root");
        return;
    }
    ensure_group("airlift");
    ensure_group("airlift-t-crew");
    ensure_user("airlift", &["airlift"]);
    ensure_user("airlift-t-member", &["airlift", "airlift-t-crew"]);
    // The engine's user, here (unlike in the package) in ctld's group.
    ensure_user("airlift-engine", &["airlift-t-crew"]);
    ensure_user("airlift-t-other", &[]);
    ensure_user("airlift-t-reader", &[]);

    let dir = std::env::temp_dir().join(format!("airlift-policy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("policy")).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/dbus/org.airlift.Node1.conf");
    std::fs::copy(&shipped, dir.join("policy/org.airlift.Node1.conf")).unwrap();
    // Test-only: a user the bus lets call, but who is not in the group; and
    // a group (ctld's, in this test) the bus lets call.
    std::fs::write(
        dir.join("policy/zz-test-reader.conf"),
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><policy user="airlift-t-reader"><allow send_destination="org.airlift.Node1"/></policy>
<policy group="airlift-t-crew"><allow send_destination="org.airlift.Node1"/></policy></busconfig>"#,
    )
    .unwrap();
    std::fs::write(dir.join("bus.conf"), system_like_config(&dir)).unwrap();
    let bus = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", dir.join("bus.conf").display()))
        .args(["--nofork", "--nopidfile"])
        .spawn()
        .unwrap();
    let mut guard = Killed(vec![bus], dir.clone());
    let socket = dir.join("system_bus_socket");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "system-like bus did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let address = format!("unix:path={}", socket.display());

    // A non-member cannot own the name.
    let own = busctl_as(
        "airlift-t-other",
        &address,
        &[
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "RequestName",
            "su",
            "org.airlift.Node1",
            "0",
        ],
    );
    let t = format!("{}{}", String::from_utf8_lossy(&own.stdout), String::from_utf8_lossy(&own.stderr));
    assert!(!own.status.success() && t.contains("Access denied"), "non-member could own the name: {t}");

    // ctld as the airlift user owns it.
    let node_dir = dir.join("node");
    std::fs::create_dir_all(&node_dir).unwrap();
    std::fs::write(
        node_dir.join("airlift.toml"),
        "[engine]\nsocket = \"engine.sock\"\n[spool]\npath = \"spool\"\n[[flow]]\nname = \"main\"\n[[flow.input]]\nname = \"tone\"\nproducer = { test_signal = { kind = \"sine\" } }\n[dbus]\ngroup = \"airlift-t-crew\"\n",
    )
    .unwrap();
    run("chown", &["-R", "airlift:airlift", node_dir.to_str().unwrap()]);
    let ctld_bin = PathBuf::from(env!("CARGO_BIN_EXE_airlift-ctld"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ctld = Command::new("runuser")
        .args(["-u", "airlift", "--"])
        .arg(&ctld_bin)
        .arg("--config")
        .arg(node_dir.join("airlift.toml"))
        .args(["--http-listen", &format!("127.0.0.1:{port}"), "--dbus-address", &address])
        .arg("--engine-binary")
        .arg(ctld_bin.with_file_name("airlift-engine"))
        .stderr(std::fs::File::create(dir.join("ctld.log")).unwrap())
        .spawn()
        .unwrap();
    guard.0.push(ctld);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if call_as("airlift-t-member", &address, "ListFlows", "", &[]).contains("running") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ctld not serving: {}",
            std::fs::read_to_string(dir.join("ctld.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A non-member is denied every method by the bus.
    let methods: &[(&str, &str, &[&str])] = &[
        ("ListFlows", "", &[]),
        ("StartFlow", "s", &["main"]),
        ("StopFlow", "s", &["main"]),
        ("SetGain", "ssd", &["main", "tone", "-6"]),
        ("SetMute", "ssb", &["main", "tone", "true"]),
        ("SetPan", "ssd", &["main", "tone", "0"]),
        ("StartPull", "sa{sv}", &["srt://127.0.0.1:9000", "0"]),
        ("StopPull", "s", &["x"]),
        ("ListPulls", "", &[]),
        ("Status", "", &[]),
        ("Reload", "", &[]),
        ("RuntimeState", "", &[]),
        ("ResetState", "s", &[""]),
        ("ListSegments", "uu", &["0", "10"]),
        ("ListUploads", "uu", &["0", "10"]),
    ];
    for (m, sig, args) in methods {
        let r = call_as("airlift-t-other", &address, m, sig, args);
        assert!(
            r.starts_with("FAILED") && r.contains("Access denied") || r.contains("AccessDenied"),
            "{m} as non-member: {r}"
        );
    }
    // A member can call, including changes.
    let r = call_as("airlift-t-member", &address, "SetGain", "ssd", &["main", "tone", "-6"]);
    assert!(r.starts_with("OK"), "member SetGain: {r}");
    let r = call_as("airlift-t-member", &address, "Status", "", &[]);
    assert!(r.starts_with("OK"), "member Status: {r}");
    // Let through by the bus but not in the group: reads work, changes are
    // refused by ctld's own check.
    let r = call_as("airlift-t-reader", &address, "ListFlows", "", &[]);
    assert!(r.starts_with("OK"), "reader ListFlows: {r}");
    let r = call_as("airlift-t-reader", &address, "SetGain", "ssd", &["main", "tone", "-6"]);
    assert!(r.starts_with("FAILED") && r.contains("may not change the node"), "reader SetGain: {r}");
    let r = call_as("airlift-t-reader", &address, "RuntimeState", "", &[]);
    assert!(r.starts_with("OK"), "reader RuntimeState: {r}");
    let r = call_as("airlift-t-reader", &address, "ResetState", "s", &[""]);
    assert!(r.starts_with("FAILED") && r.contains("may not change the node"), "reader ResetState: {r}");

    // The engine's user: the shipped policy's user rule beats the group
    // rule that lets airlift-t-crew call; it may only introspect and ping.
    for (m, sig, args) in methods {
        let r = call_as("airlift-engine", &address, m, sig, args);
        assert!(
            r.starts_with("FAILED") && r.contains("Access denied") && !r.contains("engine's user"),
            "{m} as airlift-engine must be refused by the bus: {r}"
        );
    }
    let ping = busctl_as(
        "airlift-engine",
        &address,
        &["call", "org.airlift.Node1", "/org/airlift/Node1", "org.freedesktop.DBus.Peer", "Ping"],
    );
    assert!(ping.status.success(), "airlift-engine Ping: {}", String::from_utf8_lossy(&ping.stderr));
    // Now the bus lets everyone through (a mandatory rule, reloaded): ctld
    // itself refuses the engine's uid, although it is in ctld's group.
    std::fs::write(
        dir.join("policy/zz-test-open.conf"),
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><policy context="mandatory"><allow send_destination="org.airlift.Node1"/></policy></busconfig>"#,
    )
    .unwrap();
    run("kill", &["-HUP", &guard.0[0].id().to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = call_as("airlift-engine", &address, "ListFlows", "", &[]);
        if r.starts_with("OK") {
            break;
        }
        assert!(Instant::now() < deadline, "the reloaded bus still refuses airlift-engine: {r}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for (m, sig, args) in [
        ("SetGain", "ssd", &["main", "tone", "-6"][..]),
        ("StopFlow", "s", &["main"][..]),
        ("StartPull", "sa{sv}", &["srt://127.0.0.1:9000", "0"][..]),
        ("Reload", "", &[][..]),
        ("ResetState", "s", &[""][..]),
    ] {
        let r = call_as("airlift-engine", &address, m, sig, args);
        assert!(
            r.starts_with("FAILED")
                && r.contains("is airlift-engine, the engine's user, which may not change the node"),
            "{m} as airlift-engine must be refused by ctld: {r}"
        );
    }
    let r = call_as("airlift-engine", &address, "Status", "", &[]);
    assert!(r.starts_with("OK"), "airlift-engine Status (read-only) once the bus lets it: {r}");
    let r = call_as("airlift-t-member", &address, "SetGain", "ssd", &["main", "tone", "-3"]);
    assert!(r.starts_with("OK"), "member SetGain after the reload: {r}");
}
