//! `airlift-engine serve --listen PATH` driven over its Unix socket with real
//! `ipc` frames: commands answered by id, events flowing, flows surviving a
//! ctl disconnect, garbage refused, clean shutdown, SRT link changes as
//! events against a real `srt-live-transmit` peer.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use airlift_ipc::frame;
use airlift_ipc::message::{
    Command as Cmd, CommandId, CtlToEngine, EngineToCtl, FlowState, RejectKind, SrtLinkState,
};
use airlift_ipc::spec::DesiredState;

struct Engine {
    child: Child,
    dir: PathBuf,
}

impl Engine {
    fn start(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("airlift-serve-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_airlift-engine"))
            .args(["serve", "--listen"])
            .arg(dir.join("engine.sock"))
            .arg("--spool")
            .arg(dir.join("spool"))
            .spawn()
            .unwrap();
        let engine = Self { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !engine.socket().exists() {
            assert!(Instant::now() < deadline, "engine socket did not appear");
            std::thread::sleep(Duration::from_millis(20));
        }
        engine
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("engine.sock")
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    next_id: u64,
}

impl Conn {
    fn open(path: &Path) -> Self {
        let stream = UnixStream::connect(path).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        Self { stream, buf: Vec::new(), next_id: 1 }
    }

    fn send(&mut self, msg: &CtlToEngine) {
        self.stream.write_all(&frame::encode(msg).unwrap()).unwrap();
    }

    fn command(&mut self, command: Cmd) -> CommandId {
        let id = CommandId(self.next_id);
        self.next_id += 1;
        self.send(&CtlToEngine::Command { id, command });
        id
    }

    /// Reads messages until `pred` matches one (returned) or 10 s pass.
    fn wait_for(&mut self, what: &str, pred: impl FnMut(&EngineToCtl) -> bool) -> EngineToCtl {
        self.wait_within(Duration::from_secs(10), what, pred)
    }

    /// Reads messages until `pred` matches one (returned) or `limit` passes.
    fn wait_within(
        &mut self,
        limit: Duration,
        what: &str,
        mut pred: impl FnMut(&EngineToCtl) -> bool,
    ) -> EngineToCtl {
        let deadline = Instant::now() + limit;
        loop {
            while let Some((msg, used)) = frame::decode::<EngineToCtl>(&self.buf).unwrap() {
                self.buf.drain(..used);
                if pred(&msg) {
                    return msg;
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("engine closed the connection while waiting for {what}"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

fn state(dir: &Path) -> DesiredState {
    let wav = dir.join("main.wav");
    toml::from_str(&format!(
        r#"
[[flow]]
name = "main"
period = 128

[[flow.input]]
name = "tone"
producer = {{ test_signal = {{ kind = "sine", frequency = 440.0, level_dbfs = -20.0 }} }}

[[flow.input]]
name = "gap"
producer = {{ test_signal = {{ kind = "silence" }} }}

[[flow.processor]]
meter = {{}}

[[flow.output]]
name = "rec"
consumer = {{ wav = {{ path = "{}", format = "s16" }} }}

[[flow]]
name = "quiet"
channels = 1

[[flow.input]]
name = "nothing"
producer = {{ test_signal = {{ kind = "silence" }} }}

[[flow.processor]]
silence_detector = {{ threshold_dbfs = -60.0, hold_ms = 200 }}
"#,
        wav.display()
    ))
    .unwrap()
}

fn periods_of(stats: &EngineToCtl, flow: &str) -> u64 {
    match stats {
        EngineToCtl::Stats(s) => s.flows.iter().find(|f| f.flow == flow).map_or(0, |f| f.periods),
        _ => 0,
    }
}

#[test]
fn ctl_session_commands_events_reconnect_and_shutdown() {
    let engine = Engine::start("session");
    let mut ctl = Conn::open(&engine.socket());
    ctl.wait_for("hello", |m| {
        matches!(m, EngineToCtl::Hello { protocol: airlift_ipc::frame::PROTOCOL_VERSION, .. })
    });
    ctl.send(&CtlToEngine::Hello { protocol: 1, client: "test".into() });

    let id = ctl.command(Cmd::ApplyState(state(&engine.dir)));
    // A command's events come before its answer.
    ctl.wait_for("main running", |m| {
        matches!(m, EngineToCtl::FlowState { flow, state: FlowState::Running } if flow.as_str() == "main")
    });
    ctl.wait_for("accepted", |m| matches!(m, EngineToCtl::Accepted { id: got } if *got == id));
    let meters =
        ctl.wait_for("meters", |m| matches!(m, EngineToCtl::Meters { flow, .. } if flow.as_str() == "main"));
    if let EngineToCtl::Meters { channels, .. } = meters {
        assert_eq!(channels.len(), 2);
        // A −20 dBFS mono tone panned centre is −23 dBFS peak per channel.
        assert!((channels[0].peak_dbfs + 23.0).abs() < 0.5, "{channels:?}");
    }
    ctl.wait_for(
        "silence",
        |m| matches!(m, EngineToCtl::Silence { flow, silent: true } if flow.as_str() == "quiet"),
    );

    // A bad argument is refused by id with a typed reason; nothing changes.
    let bad = ctl.command(Cmd::SetGain {
        flow: "main".parse_name(),
        input: "nope".parse_name(),
        gain: airlift_ipc::units::GainDb::new(-6.0).unwrap(),
    });
    let rejected = ctl.wait_for("rejection", |m| matches!(m, EngineToCtl::Rejected { id, .. } if *id == bad));
    assert!(
        matches!(&rejected, EngineToCtl::Rejected { reason, .. } if reason.kind == RejectKind::NotFound && reason.message.contains("nope"))
    );
    let ok = ctl.command(Cmd::SetMute { flow: "main".parse_name(), input: "tone".parse_name(), muted: true });
    ctl.wait_for("mute accepted", |m| matches!(m, EngineToCtl::Accepted { id } if *id == ok));

    let ask = ctl.command(Cmd::GetStats);
    ctl.wait_for("accepted", |m| matches!(m, EngineToCtl::Accepted { id } if *id == ask));
    let before = periods_of(&ctl.wait_for("stats", |m| matches!(m, EngineToCtl::Stats(_))), "main");
    assert!(before > 0);

    // ctl goes away; the flows keep running; the next connection is served.
    drop(ctl);
    std::thread::sleep(Duration::from_millis(500));
    let mut ctl = Conn::open(&engine.socket());
    ctl.wait_for("hello again", |m| matches!(m, EngineToCtl::Hello { .. }));
    ctl.command(Cmd::GetStats);
    let after = periods_of(&ctl.wait_for("stats", |m| matches!(m, EngineToCtl::Stats(_))), "main");
    assert!(after > before + 100, "flow kept running: {before} -> {after} periods");

    let bye = ctl.command(Cmd::Shutdown);
    ctl.wait_for("shutdown accepted", |m| matches!(m, EngineToCtl::Accepted { id } if *id == bye));
    let mut engine = engine;
    let status = engine.child.wait().unwrap();
    assert!(status.success());
    let wav = hound::WavReader::open(engine.dir.join("main.wav")).unwrap();
    assert!(wav.duration() > 48_000 / 2, "the recording was finalised with its audio");
}

#[test]
fn garbage_is_refused_and_the_engine_lives_on() {
    let engine = Engine::start("garbage");
    let mut ctl = Conn::open(&engine.socket());
    ctl.wait_for("hello", |m| matches!(m, EngineToCtl::Hello { .. }));
    ctl.stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let refused = ctl.wait_for("refusal", |m| matches!(m, EngineToCtl::Rejected { .. }));
    assert!(matches!(refused, EngineToCtl::Rejected { reason, .. } if reason.message.contains("magic")));
    // The engine still serves a well-behaved client.
    let mut ctl = Conn::open(&engine.socket());
    ctl.wait_for("hello", |m| matches!(m, EngineToCtl::Hello { .. }));
    let id = ctl.command(Cmd::GetStats);
    ctl.wait_for("accepted", |m| matches!(m, EngineToCtl::Accepted { id: got } if *got == id));
}

trait ParseName {
    fn parse_name(&self) -> airlift_ipc::units::Name;
}

impl ParseName for str {
    fn parse_name(&self) -> airlift_ipc::units::Name {
        airlift_ipc::units::Name::new(self).unwrap()
    }
}

/// `srt-live-transmit` listening on `port`, throwing the stream away.
fn srt_listener(port: u16) -> common::Peer {
    common::Peer::spawn(
        "srt-live-transmit",
        Command::new("timeout")
            .args(["60", "srt-live-transmit", "-chunk:1316", "-q"])
            .arg(format!("srt://:{port}?mode=listener"))
            .arg("file://con")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
}

#[test]
fn srt_link_changes_are_events() {
    let engine = Engine::start("srt-link");
    let port = common::free_port();
    let mut ctl = Conn::open(&engine.socket());
    ctl.wait_for("hello", |m| matches!(m, EngineToCtl::Hello { .. }));
    ctl.send(&CtlToEngine::Hello { protocol: 1, client: "test".into() });
    let state: DesiredState = toml::from_str(&format!(
        r#"
[[flow]]
name = "live"

[[flow.input]]
name = "tone"
producer = {{ test_signal = {{ kind = "sine", frequency = 1000.0, level_dbfs = -20.0 }} }}

[[flow.output]]
name = "out"
consumer = {{ encoded = {{ codec = "mp2", sink = {{ srt = {{ mode = {{ caller = {{ host = "127.0.0.1", port = {port} }} }} }} }} }} }}
"#
    ))
    .unwrap();
    let link = |want: SrtLinkState, connects: u64| {
        move |m: &EngineToCtl| {
            matches!(m, EngineToCtl::SrtLink { flow, link, state, connects: c, .. }
                if flow.as_str() == "live" && link == "airlift-srt-tx-out" && *state == want && *c == connects)
        }
    };
    ctl.command(Cmd::ApplyState(state));
    // Calling, nobody listens yet.
    ctl.wait_for("link waiting", link(SrtLinkState::Waiting, 0));
    let mut peer = srt_listener(port);
    ctl.wait_within(Duration::from_secs(20), "link connected", link(SrtLinkState::Connected, 1));
    // The peer dies: the link is reported down, then up again when a new
    // peer listens (the caller's backoff starts again at 250 ms).
    peer.kill();
    ctl.wait_within(Duration::from_secs(20), "link lost", link(SrtLinkState::Waiting, 1));
    let _peer = srt_listener(port);
    ctl.wait_within(Duration::from_secs(20), "link reconnected", link(SrtLinkState::Connected, 2));
}

/// A ctl that stops reading (SIGSTOP, a hung event loop) never stalls the
/// engine's control loop: the engine queues, drops meters and statistics,
/// disconnects the peer after its stall limit, goes on retrying and
/// recording, and serves the next connection at once.
#[test]
fn a_stalled_ctl_is_disconnected_and_the_engine_goes_on() {
    let engine = Engine::start("stalled");
    let mut ctl = Conn::open(&engine.socket());
    ctl.wait_for("hello", |m| matches!(m, EngineToCtl::Hello { .. }));
    let id = ctl.command(Cmd::ApplyState(state(&engine.dir)));
    ctl.wait_for("accepted", |m| matches!(m, EngineToCtl::Accepted { id: got } if *got == id));
    // Ask for far more than the socket buffer holds, and read nothing.
    let stalled = Instant::now();
    for _ in 0..20_000 {
        ctl.command(Cmd::GetStats);
    }
    // The engine gives up on the peer within its stall limit (plus the
    // time to answer the burst).
    // Probe by writing, never by reading: once the engine shuts the
    // connection down, writes fail.
    let mut closed = false;
    let probe =
        frame::encode(&CtlToEngine::Command { id: CommandId(u64::MAX - 1), command: Cmd::GetStats }).unwrap();
    while stalled.elapsed() < Duration::from_secs(30) && !closed {
        std::thread::sleep(Duration::from_millis(500));
        closed = ctl.stream.write_all(&probe).is_err();
    }
    assert!(closed, "the engine kept a stalled peer for {:?}", stalled.elapsed());
    // The next connection is served, and the flows never stopped.
    let mut ctl = Conn::open(&engine.socket());
    ctl.wait_for("hello", |m| matches!(m, EngineToCtl::Hello { .. }));
    ctl.command(Cmd::GetStats);
    let periods = periods_of(&ctl.wait_for("stats", |m| matches!(m, EngineToCtl::Stats(_))), "main");
    let expected = stalled.elapsed().as_secs_f64() * 48_000.0 / 128.0;
    assert!(periods as f64 > expected * 0.9, "{periods} periods, {expected} expected");
}
