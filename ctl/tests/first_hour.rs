//! The README's "first hour" walk-through, command by command: the block in
//! README.md must be exactly [`WALK`], and each command runs as written (in a
//! temporary directory, with the built binaries first on `PATH`, the demo's
//! HTTP port moved off 9480) and its output is checked. `make demo` runs
//! `scripts/demo` on the debug binaries (`AIRLIFT_DEMO_BIN`) instead of
//! installing packages and building release ones; `make deb` and the `apt
//! install` are run by `make test-package` (scripts/test-deb, in a Debian
//! chroot), not here.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The walk-through's commands, comments stripped, in the README's order.
const WALK: &[&str] = &[
    "make demo",
    "export DBUS_SESSION_BUS_ADDRESS=unix:path=$PWD/airlift-demo/bus",
    "curl -s http://127.0.0.1:9480/health",
    "ffprobe -v error -show_entries format=format_name,duration -of default=nw=1 airlift-demo/spool/main/*/*/*/main-00000000.ts",
    "airliftctl --session meter main --count 1",
    "airliftctl --session mute main tone",
    "airliftctl --session gain main bed -3",
    "airliftctl --session state show",
    "curl -s -H \"Authorization: Bearer $(cat airlift-demo/api-token)\" http://127.0.0.1:9480/api/v1/flows/main",
    "cp ctl/src/config/default.toml airlift.toml",
    "scripts/demo --config airlift.toml",
    "sed -i 's/frequency = 1000.0/frequency = 440.0/' airlift.toml",
    "airliftctl --session reload",
    "airliftctl --session state show",
    "make deb",
    "apt install ./target/debian/airlift_*.deb",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The commands of the README's walk-through block.
fn readme_walk() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let start = readme.find("<!-- first-hour:").expect("the README has the first-hour marker");
    let block = &readme[start..];
    let open = block.find("```sh\n").expect("a sh block after the marker") + "```sh\n".len();
    let close = block[open..].find("```").expect("the block ends") + open;
    block[open..close]
        .lines()
        .map(|l| match l.find("  #") {
            Some(i) => l[..i].trim_end().to_owned(),
            None => l.trim_end().to_owned(),
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// A `scripts/demo` run in its own process group; stopped with SIGINT.
struct Demo {
    child: Child,
    log: PathBuf,
}

impl Demo {
    fn start(dir: &Path, port: u16, args: &[&str], tag: &str) -> Self {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_airlift-ctld"));
        let log = dir.join(format!("demo-{tag}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new("bash")
            .arg(repo().join("scripts/demo"))
            .args(args)
            .current_dir(dir)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("AIRLIFT_DEMO_BIN", bin.parent().expect("bin dir"))
            .env("AIRLIFT_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("bash runs scripts/demo");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ctrl-C, as in a terminal: SIGINT to the whole process group.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let pgid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", "--", &format!("-{pgid}")]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the demo did not stop on Ctrl-C:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.interrupt();
        }
    }
}

/// Runs one walk-through line with bash in `dir`.
fn sh(dir: &Path, bus: &str, port: u16, line: &str) -> Output {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_airliftctl"));
    let path =
        format!("{}:{}", bin.parent().expect("bin dir").display(), std::env::var("PATH").unwrap_or_default());
    let line = line.replace("127.0.0.1:9480", &format!("127.0.0.1:{port}")).replace(
        "cp ctl/src/config/default.toml",
        &format!("cp {}/ctl/src/config/default.toml", repo().display()),
    );
    Command::new("bash")
        .args(["-c", &line])
        .current_dir(dir)
        .env("PATH", path)
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .stdin(Stdio::null())
        .output()
        .expect("bash")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs `line` until `ok` holds for its output (bounded), returning it.
fn until(
    dir: &Path,
    bus: &str,
    port: u16,
    line: &str,
    what: &str,
    ok: impl Fn(&Output) -> bool,
    demo: &Demo,
) -> Output {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let out = sh(dir, bus, port, line);
        if ok(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: `{line}` gave:\n{}\ndemo log:\n{}",
            text(&out),
            demo.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn check(line: &str, out: &Output, ok: bool) {
    assert!(ok, "`{line}` (exit {:?}):\n{}", out.status.code(), text(out));
}

fn state_rows_hold(out: &Output) -> bool {
    let s = String::from_utf8_lossy(&out.stdout);
    let row = |want: &[&str]| s.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == want);
    out.status.success()
        && row(&["main", "tone", "muted", "true", "false"])
        && row(&["main", "bed", "gain_db", "-3", "-6"])
}

#[test]
fn the_readme_walk_through_runs_command_by_command() {
    assert_eq!(readme_walk(), WALK, "README's first-hour block and this test's list differ");

    let dir = std::env::temp_dir().join(format!("airlift-first-hour-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let bus = format!("unix:path={}/airlift-demo/bus", dir.display());

    // make demo
    let mut demo = Demo::start(&dir, port, &[], "1");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !demo.log().contains("export DBUS_SESSION_BUS_ADDRESS=") {
        assert!(Instant::now() < deadline, "the demo did not print its bus:\n{}", demo.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // export …: the line the demo printed, with $PWD expanded.
    let printed = demo.log().lines().find_map(|l| l.trim().strip_prefix("D-Bus:").map(str::to_owned));
    assert!(
        demo.log().contains(&WALK[1].replace("$PWD", &dir.display().to_string())),
        "the demo printed another bus line ({printed:?}):\n{}",
        demo.log()
    );
    // curl …/health
    until(
        &dir,
        &bus,
        port,
        WALK[2],
        "health",
        |o| String::from_utf8_lossy(&o.stdout).contains("\"status\": \"healthy\""),
        &demo,
    );
    // ffprobe of the first segment, once its manifest is written (10 s).
    until(
        &dir,
        &bus,
        port,
        "ls airlift-demo/spool/main/*/*/*/main-00000000.json",
        "first segment",
        |o| o.status.success(),
        &demo,
    );
    let out = sh(&dir, &bus, port, WALK[3]);
    let probe = String::from_utf8_lossy(&out.stdout).to_string();
    let duration =
        probe.lines().find_map(|l| l.strip_prefix("duration=")).and_then(|d| d.parse::<f64>().ok());
    check(
        WALK[3],
        &out,
        probe.lines().next() == Some("format_name=mpegts")
            && duration.is_some_and(|d| (d - 10.0).abs() < 0.1),
    );
    // meter
    let out = sh(&dir, &bus, port, WALK[4]);
    let meter = String::from_utf8_lossy(&out.stdout).to_string();
    check(
        WALK[4],
        &out,
        out.status.success() && meter.starts_with("main peak/rms dBFS") && meter.contains("LUFS"),
    );
    // mute, gain, state show
    for line in &WALK[5..7] {
        let out = sh(&dir, &bus, port, line);
        check(line, &out, out.status.success());
    }
    let out = sh(&dir, &bus, port, WALK[7]);
    check(WALK[7], &out, state_rows_hold(&out));
    // The web console's API: the same runtime values (the tone muted).
    let out = sh(&dir, &bus, port, WALK[8]);
    let flow = String::from_utf8_lossy(&out.stdout).to_string();
    check(
        WALK[8],
        &out,
        flow.contains("\"name\":\"main\"")
            && flow.contains("\"name\":\"tone\",\"gain_db\":0.0,\"muted\":true"),
    );

    // Ctrl-C: the demo stops cleanly, the segment in progress closed.
    let status = demo.interrupt();
    assert!(status.success(), "the demo's exit: {status:?}\n{}", demo.log());
    assert!(demo.log().contains("engine stopped cleanly"), "{}", demo.log());
    // cp …
    let out = sh(&dir, &bus, port, WALK[9]);
    check(WALK[9], &out, out.status.success());
    // scripts/demo --config airlift.toml
    let demo2 = Demo::start(&dir, port, &["--config", "airlift.toml"], "2");
    until(
        &dir,
        &bus,
        port,
        WALK[2],
        "health after the restart",
        |o| String::from_utf8_lossy(&o.stdout).contains("\"status\": \"healthy\""),
        &demo2,
    );
    // The runtime state came back from the state file.
    until(&dir, &bus, port, WALK[7], "runtime state after the restart", state_rows_hold, &demo2);
    // sed …, reload
    let out = sh(&dir, &bus, port, WALK[11]);
    check(WALK[11], &out, out.status.success());
    let config = std::fs::read_to_string(dir.join("airlift.toml")).expect("airlift.toml");
    assert!(config.contains("frequency = 440.0"), "sed changed nothing:\n{config}");
    let out = sh(&dir, &bus, port, WALK[12]);
    check(WALK[12], &out, String::from_utf8_lossy(&out.stdout).trim() == "reloaded: 1 flows");
    let out = sh(&dir, &bus, port, WALK[13]);
    check(WALK[13], &out, state_rows_hold(&out));
    drop(demo2);

    // make deb and apt install: scripts/test-deb does the same in a chroot.
    let test_deb = std::fs::read_to_string(repo().join("scripts/test-deb")).expect("scripts/test-deb");
    assert!(
        test_deb.contains("apt-get install -y -q ./airlift.deb"),
        "test-deb installs the package with apt"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
