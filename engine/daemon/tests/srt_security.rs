//! SRT listeners facing untrusted peers, against real libsrt and
//! `srt-live-transmit` on 127.0.0.x: the allow-list checked in the
//! handshake, refusals logged rate-limited with the peer's strings escaped,
//! an idle listener that stops at once, and a bind that fails after
//! `srt_listen` (descriptors exhausted) cleaning up in the right order.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use airlift_engine::sys::srt::{RejectReason, SrtError, SrtListener, SrtOptions, SrtSocket};
use airlift_ipc::units::PeerNetwork;
use common::{Peer, free_port};

/// Everything logged by this test binary (libsrt's threads log too, so the
/// subscriber is global).
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

/// Log lines mentioning `needle`.
fn log_lines(needle: &str) -> Vec<String> {
    String::from_utf8_lossy(&LOG.lock().unwrap())
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// `srt-live-transmit` calling 127.0.0.1:`port` from the local address
/// `source`, sending TS-sized chunks from its stdin for a few seconds.
fn slt_caller(port: u16, source: &str) -> Peer {
    Peer::spawn(
        "srt-live-transmit caller",
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "(sleep 1; head -c 1316000 /dev/urandom) | timeout 15 srt-live-transmit -q -chunk:1316 file://con \
                 'srt://127.0.0.1:{port}?mode=caller&adapter={source}'"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// Calls `f` until it gives something, for at most `limit`.
fn poll_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn allow(nets: &[&str]) -> SrtOptions {
    SrtOptions {
        latency_ms: 120,
        allow_from: nets.iter().map(|n| PeerNetwork::new(n).unwrap()).collect(),
        ..SrtOptions::default()
    }
}

#[test]
fn a_caller_outside_the_allow_list_is_refused_while_one_inside_streams() {
    capture_logs();
    let port = free_port();
    let listener = SrtListener::bind(port, &allow(&["127.0.0.2/32"])).unwrap();

    // From 127.0.0.1: refused in the handshake, never accepted.
    let mut outsider = slt_caller(port, "127.0.0.1");
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert!(
            listener.accept(Duration::from_millis(100)).unwrap().is_none(),
            "a caller from 127.0.0.1 got in"
        );
    }
    assert!(
        outsider.wait(Duration::from_secs(15)).is_some_and(|s| !s.success()),
        "srt-live-transmit from 127.0.0.1 must fail to connect"
    );
    let refused = log_lines(&format!("port={port}"));
    assert!(
        refused.iter().any(|l| l.contains("peer address not in allow_from") && l.contains("peer=127.0.0.1:")),
        "the refusal is logged with the peer: {refused:?}"
    );
    // The in-process caller (from 127.0.0.1 too) learns why.
    match SrtSocket::connect("127.0.0.1", port, &SrtOptions { latency_ms: 120, ..SrtOptions::default() }) {
        Err(SrtError::Rejected { reason, .. }) => {
            assert_eq!(reason, RejectReason::StreamId, "1403 forbidden")
        }
        other => panic!("a caller from 127.0.0.1 must be rejected: {other:?}"),
    }

    // From 127.0.0.2: accepted, and its data arrives.
    let _insider = slt_caller(port, "127.0.0.2");
    let socket = poll_until(Duration::from_secs(10), || listener.accept(Duration::from_millis(200)).unwrap())
        .expect("the caller from 127.0.0.2 is accepted");
    assert!(socket.peer().starts_with("127.0.0.2:"), "peer {}", socket.peer());
    let mut buf = [0u8; 1500];
    let mut received = 0;
    let until = Instant::now() + Duration::from_secs(10);
    while received < 100 * 1316 && Instant::now() < until {
        if let Some(n) = socket.recv(&mut buf).unwrap_or(None) {
            received += n;
        }
    }
    assert!(received >= 100 * 1316, "only {received} bytes arrived from the allowed caller");
}

#[test]
fn refusals_are_logged_once_then_summed_up_with_the_stream_id_escaped() {
    capture_logs();
    let port = free_port();
    let options = SrtOptions { latency_ms: 120, stream_id: Some("studio-a".into()), ..SrtOptions::default() };
    let listener = SrtListener::bind(port, &options).unwrap();
    let hostile = format!("evil\n\u{1b}[2J\"{}", "x".repeat(400));
    let caller = SrtOptions { latency_ms: 120, stream_id: Some(hostile), ..SrtOptions::default() };
    let started = Instant::now();
    for _ in 0..6 {
        assert!(matches!(SrtSocket::connect("127.0.0.1", port, &caller), Err(SrtError::Rejected { .. })));
    }
    assert!(started.elapsed() < Duration::from_secs(9), "the refusals took {:?}", started.elapsed());
    let lines = log_lines(&format!("port={port}"));
    assert_eq!(
        lines.iter().filter(|l| l.contains("refused a caller")).count(),
        1,
        "one line for six refusals: {lines:?}"
    );
    let line = lines.iter().find(|l| l.contains("refused a caller")).unwrap();
    assert!(line.contains(r#"evil\n\u{1b}[2J\""#), "control characters and quotes escaped: {line}");
    assert!(line.contains('…') && !line.contains(&"x".repeat(100)), "the stream id is cut: {line}");
    // The others are summed up once their 10 s window is over.
    let summary = poll_until(Duration::from_secs(15), || {
        listener.accept(Duration::from_millis(200)).unwrap();
        log_lines(&format!("port={port}")).into_iter().find(|l| l.contains("more caller(s)"))
    })
    .expect("a summary of the refusals left out");
    assert!(summary.contains("refused=5"), "{summary}");
}

#[test]
fn an_idle_listener_stops_promptly() {
    let port = free_port();
    let listener = SrtListener::bind(port, &allow(&[])).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                assert!(listener.accept(Duration::from_millis(100)).unwrap().is_none());
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    assert!(asked.elapsed() < Duration::from_millis(500), "stopping took {:?}", asked.elapsed());
    // Accepting with no caller returns within its timeout, every time.
    let listener = SrtListener::bind(free_port(), &allow(&[])).unwrap();
    for timeout in [0u64, 10, 50] {
        let t = Instant::now();
        assert!(listener.accept(Duration::from_millis(timeout)).unwrap().is_none());
        assert!(t.elapsed() < Duration::from_millis(timeout + 300), "{timeout} ms took {:?}", t.elapsed());
    }
}

const CHILD: &str = "AIRLIFT_TEST_EMFILE_CHILD";

/// With descriptors exhausted, `bind` fails: before `srt_listen` (no UDP
/// socket) or after it (no descriptor for the epoll set). Each failure is a
/// typed error, the socket is closed before the listen callback's data is
/// freed, and the port can be bound again. Runs in a child process, whose
/// descriptor limit it lowers.
#[test]
fn a_bind_failing_after_listen_cleans_up_in_order() {
    if std::env::var_os(CHILD).is_some() {
        exhausted_descriptors_child();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_bind_failing_after_listen_cleans_up_in_order",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child failed: {text}");
    let after_listen: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("failures after listen: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in {text}"));
    assert!(after_listen >= 1, "the path after srt_listen was not reached: {text}");
}

fn exhausted_descriptors_child() {
    // Start libsrt (its threads, its first multiplexer) while descriptors last.
    drop(SrtListener::bind(free_port(), &allow(&[])).unwrap());
    let ports: Vec<u16> = (0..16).map(|_| free_port()).collect();
    let limit = libc::rlimit { rlim_cur: 256, rlim_max: 256 };
    // SAFETY: plain setrlimit with a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let mut held = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        held.push(f);
    }
    // One more descriptor per attempt: the first attempt finds none (the
    // UDP socket fails), the next find one (the UDP socket takes it, then
    // the epoll set after srt_listen fails; libsrt lets go of the closed
    // socket's descriptor later, in its own thread).
    let (mut before, mut after_listen) = (0, Vec::new());
    for &port in &ports[..8] {
        match SrtListener::bind(port, &allow(&["127.0.0.1/32"])) {
            Ok(_) => println!("port {port}: bound"),
            Err(SrtError::Io { op: "epoll", message }) => {
                println!("port {port}: failed after listen: {message}");
                after_listen.push(port)
            }
            Err(e @ (SrtError::Bind { .. } | SrtError::Io { .. })) => {
                println!("port {port}: failed before listen: {e}");
                before += 1
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
        held.pop();
    }
    drop(held);
    // With descriptors back, each listener that failed after srt_listen
    // has been closed: its port binds again (once libsrt's collector ran).
    for &port in &after_listen {
        assert!(
            poll_until(Duration::from_secs(10), || SrtListener::bind(port, &allow(&[])).ok()).is_some(),
            "port {port} stayed taken after the failed bind"
        );
    }
    assert!(SrtListener::bind(ports[8], &allow(&[])).is_ok(), "with descriptors back, binding works");
    println!("failures before listen: {before}");
    println!("failures after listen: {}", after_listen.len());
}

/// libsrt counts a passphrase in bytes (10 to 79): a 5-character secret of
/// 2-byte letters is long enough for it, and the spec accepts it too; a
/// 41-character one (82 bytes) is refused by both.
#[test]
fn a_multi_byte_passphrase_is_measured_in_bytes_as_libsrt_does() {
    use airlift_ipc::units::Passphrase;
    let secret = Passphrase::new("ééééé").expect("10 bytes is long enough");
    let port = free_port();
    let options = SrtOptions {
        latency_ms: 120,
        passphrase: Some(secret.expose().to_owned()),
        key_length: 16,
        ..SrtOptions::default()
    };
    let listener = SrtListener::bind(port, &options).unwrap();
    let caller = SrtSocket::connect("127.0.0.1", port, &options).expect("the same passphrase connects");
    let accepted =
        poll_until(Duration::from_secs(5), || listener.accept(Duration::from_millis(100)).unwrap());
    assert!(accepted.is_some(), "the caller with the passphrase is accepted");
    caller.send(&[0x47; 1316]).unwrap();

    // 40 characters, 80 bytes: over the 79 bytes libsrt documents (the
    // spec keeps to that; libsrt 1.5.1 itself still takes 80).
    assert!(Passphrase::new("é".repeat(40)).is_err(), "80 bytes: refused by the spec");
    // 41 characters, 82 bytes: the old count (41 characters) let it through
    // to the engine, where libsrt refuses it.
    let too_long = "é".repeat(41);
    assert!(Passphrase::new(too_long.as_str()).is_err(), "82 bytes: refused by the spec");
    let options = SrtOptions { passphrase: Some(too_long), ..options };
    assert!(
        matches!(
            SrtListener::bind(free_port(), &options),
            Err(SrtError::Option { option: "passphrase", .. })
        ),
        "and by libsrt"
    );
}
