//! Engine events that ctld passes on as D-Bus signals, from a stand-in
//! engine on the socket (`[engine] spawn = false`): the real engine's side
//! is tested with the engine.

use super::*;
use airlift_ipc::message::{EngineToCtl, RecordingClosed};
use airlift_ipc::units::Name;

#[test]
fn a_closed_recording_becomes_a_recording_closed_signal() {
    let dir = test_dir("recording");
    let bus = Bus::start(&dir);
    let engine = std::os::unix::net::UnixListener::bind(dir.join("engine.sock")).expect("engine socket");
    let ctld = Ctld::start(&dir, &Options { dbus: Some(bus.address.clone()), ..Options::new(free_port()) });
    wait_for("the D-Bus service", Duration::from_secs(10), || ctld.log().contains("D-Bus service up"));
    let (mut conn, _) = engine.accept().expect("ctld connects");
    let closed = RecordingClosed {
        flow: Name::new("main").expect("name"),
        output: Name::new("show").expect("name"),
        path: "/srv/rec/show.ogg".into(),
        duration_ms: 26_000,
        bytes: 421_337,
        sha256: "ab".repeat(32),
    };
    for msg in [
        EngineToCtl::Hello {
            protocol: airlift_ipc::PROTOCOL_VERSION,
            engine_version: "stand-in".into(),
            pid: 1,
        },
        EngineToCtl::RecordingClosed(closed),
    ] {
        conn.write_all(&airlift_ipc::frame::encode(&msg).expect("frame")).expect("send");
    }
    wait_for("the signal", Duration::from_secs(10), || bus.signals().contains("member=RecordingClosed"));
    let signals = bus.signals();
    let at = signals.find("member=RecordingClosed").expect("signal");
    let args: Vec<&str> = signals[at..].lines().skip(1).take(6).map(str::trim).collect();
    assert_eq!(
        args,
        [
            "string \"main\"",
            "string \"show\"",
            "string \"/srv/rec/show.ogg\"",
            "uint64 26000",
            "uint64 421337",
            &format!("string \"{}\"", "ab".repeat(32)),
        ],
        "{signals}"
    );
    cleanup(&dir);
}
