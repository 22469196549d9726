//! Safe wrapper over libsrt (through `airlift-srt-sys`): live-mode sockets
//! as caller or listener, with latency, passphrase + key length, stream id,
//! 1316-byte payloads and statistics. Every libsrt call of the engine is in
//! this file; no SRT handle leaves it.
//!
//! All calls block at most for the timeouts given; call them from worker
//! threads only, never from the audio thread.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use airlift_ipc::units::{PeerNetwork, peer_allowed};
use airlift_srt_sys as sys;

use crate::media::untrusted::{RateLimit, untrusted};

/// Payload of one SRT packet: seven 188-byte TS packets.
pub const SRT_PAYLOAD: usize = 1316;

/// Why an SRT operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrtError {
    /// An option value is unusable (e.g. a NUL byte in the passphrase); fix the spec field.
    #[error("SRT option {option}: {message}")]
    Option {
        /// The option, e.g. `passphrase`.
        option: &'static str,
        /// Why.
        message: String,
    },
    /// The host name does not resolve to an IPv4 address; fix `host`.
    #[error("cannot resolve {host}: {message}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        message: String,
    },
    /// The local port cannot be bound (in use?); pick another port.
    #[error("cannot listen on UDP port {port}: {message}")]
    Bind {
        /// The port.
        port: u16,
        /// libsrt's message.
        message: String,
    },
    /// The peer refused the connection; `reason` says why (e.g. a wrong
    /// passphrase gives `BadSecret`). Retried with backoff.
    #[error("connection to {peer} rejected: {reason}")]
    Rejected {
        /// The peer.
        peer: String,
        /// The reject reason.
        reason: RejectReason,
    },
    /// The connection could not be set up or was lost; retried with backoff.
    #[error("SRT {op}: {message}")]
    Io {
        /// The operation.
        op: &'static str,
        /// libsrt's message.
        message: String,
    },
}

/// Why a peer refused a connection (libsrt's `SRT_REJ_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// Wrong or missing passphrase (`SRT_REJ_BADSECRET`).
    BadSecret,
    /// One side encrypts, the other does not (`SRT_REJ_UNSECURE`).
    Unsecure,
    /// The peer's stream id check refused us (`SRT_REJ_PREDEFINED` and up).
    StreamId,
    /// Nobody answered (`SRT_REJ_TIMEOUT`).
    Timeout,
    /// Another reason, by libsrt's number.
    Other(i32),
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::BadSecret => f.write_str("BADSECRET (wrong passphrase)"),
            RejectReason::Unsecure => f.write_str("UNSECURE (encryption mismatch)"),
            RejectReason::StreamId => f.write_str("stream id refused"),
            RejectReason::Timeout => f.write_str("TIMEOUT (no answer)"),
            RejectReason::Other(n) => write!(f, "reason {n}"),
        }
    }
}

impl RejectReason {
    fn from_raw(n: c_int) -> Self {
        let u = n as u32;
        if u == sys::SRT_REJ_BADSECRET {
            RejectReason::BadSecret
        } else if u == sys::SRT_REJ_UNSECURE {
            RejectReason::Unsecure
        } else if u == sys::SRT_REJ_TIMEOUT {
            RejectReason::Timeout
        } else if n >= 1000 {
            RejectReason::StreamId
        } else {
            RejectReason::Other(n)
        }
    }
}

/// Connection options shared by callers and listeners.
#[derive(Clone, Default)]
pub struct SrtOptions {
    /// Receiver latency in milliseconds.
    pub latency_ms: u32,
    /// AES passphrase (10..=79 bytes), or none.
    pub passphrase: Option<String>,
    /// Key length in bytes: 16, 24 or 32.
    pub key_length: u32,
    /// Stream id a caller sends; a listener accepts only callers sending it.
    pub stream_id: Option<String>,
    /// The peer networks a listener accepts callers from (checked in the
    /// handshake); empty: any peer. Callers ignore it.
    pub allow_from: Vec<PeerNetwork>,
}

impl std::fmt::Debug for SrtOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtOptions")
            .field("latency_ms", &self.latency_ms)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "***"))
            .field("key_length", &self.key_length)
            .field("stream_id", &self.stream_id)
            .field("allow_from", &self.allow_from)
            .finish()
    }
}

/// Counters of one connection, read with [`SrtSocket::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SrtStats {
    /// Smoothed round-trip time, ms.
    pub rtt_ms: f64,
    /// Estimated link bandwidth, Mbit/s.
    pub bandwidth_mbps: f64,
    /// Packets the sender lost (reported by the receiver).
    pub send_loss: i64,
    /// Packets this side found missing.
    pub recv_loss: i64,
    /// Packets retransmitted.
    pub retransmits: i64,
    /// Packets dropped as too late.
    pub recv_dropped: i64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

/// libsrt's log lines go to `tracing` (target `libsrt`): that is where a
/// listener learns that a caller was refused (e.g. "Incorrect passphrase").
unsafe extern "C" fn log_to_tracing(
    _opaque: *mut c_void,
    level: c_int,
    _file: *const c_char,
    _line: c_int,
    area: *const c_char,
    message: *const c_char,
) {
    if message.is_null() {
        return;
    }
    // SAFETY: libsrt passes NUL-terminated strings valid for the call.
    let (message, area) = unsafe {
        (
            CStr::from_ptr(message).to_string_lossy(),
            if area.is_null() { Default::default() } else { CStr::from_ptr(area).to_string_lossy() },
        )
    };
    // libsrt's lines can quote what a peer sent (a stream id, a bad
    // handshake): escape them, cap them, and let a flood of refusals through
    // only as a count.
    let message = untrusted(message.trim_end(), 300);
    let _ = std::panic::catch_unwind(|| {
        let Some(suppressed) = LIBSRT_LOG.admit() else { return };
        if level <= 3 {
            tracing::error!(target: "libsrt", area = %area, suppressed, "{message}");
        } else {
            tracing::warn!(target: "libsrt", area = %area, suppressed, "{message}");
        }
    });
}

/// libsrt's own warnings: at most 5 lines per [`RateLimit::WINDOW`] over
/// the whole process.
static LIBSRT_LOG: RateLimit = RateLimit::new(5);

fn startup() {
    static START: Once = Once::new();
    START.call_once(|| {
        // SAFETY: srt_startup takes no arguments; it is reference counted and
        // never undone (the library lives as long as the process). The log
        // handler is a plain function that lives forever.
        unsafe {
            sys::srt_startup();
            sys::srt_setloghandler(std::ptr::null_mut(), Some(log_to_tracing));
            // LOG_WARNING: refusals and errors, nothing chattier.
            sys::srt_setloglevel(4);
            sys::srt_setlogflags((sys::SRT_LOGF_DISABLE_TIME | sys::SRT_LOGF_DISABLE_EOL) as c_int);
        }
    });
}

fn last_error() -> (c_int, String) {
    let mut errno: c_int = 0;
    // SAFETY: srt_getlasterror writes the system errno into a valid int;
    // srt_getlasterror_str returns a thread-local NUL-terminated string that
    // we copy at once.
    unsafe {
        let code = sys::srt_getlasterror(&mut errno);
        let text = sys::srt_getlasterror_str();
        let message = if text.is_null() {
            format!("error {code}")
        } else {
            CStr::from_ptr(text).to_string_lossy().into_owned()
        };
        (code, message)
    }
}

/// `struct linger` from `<sys/socket.h>`, as SRTO_LINGER takes it.
#[repr(C)]
struct Linger {
    l_onoff: c_int,
    l_linger: c_int,
}

/// An owned SRT handle, closed on drop.
#[derive(Debug)]
struct Handle(sys::SRTSOCKET);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: we own the handle and close it exactly once.
        unsafe {
            sys::srt_close(self.0);
        }
    }
}

impl Handle {
    fn new() -> Result<Self, SrtError> {
        startup();
        // SAFETY: plain constructor; the result is checked.
        let s = unsafe { sys::srt_create_socket() };
        if s == sys::SRT_INVALID_SOCK {
            return Err(SrtError::Io { op: "create socket", message: last_error().1 });
        }
        Ok(Self(s))
    }

    fn set_int(&self, opt: sys::SRT_SOCKOPT, name: &'static str, value: i32) -> Result<(), SrtError> {
        // SAFETY: the pointer and length describe a live i32, as libsrt
        // expects for integer options.
        let r = unsafe {
            sys::srt_setsockflag(
                self.0,
                opt,
                (&value as *const i32).cast::<c_void>(),
                size_of::<i32>() as c_int,
            )
        };
        if r < 0 { Err(SrtError::Option { option: name, message: last_error().1 }) } else { Ok(()) }
    }

    fn set_bool(&self, opt: sys::SRT_SOCKOPT, name: &'static str, value: bool) -> Result<(), SrtError> {
        // libsrt reads boolean options as an int (or a bool) of the given size.
        self.set_int(opt, name, i32::from(value))
    }

    fn set_str(&self, opt: sys::SRT_SOCKOPT, name: &'static str, value: &str) -> Result<(), SrtError> {
        if value.as_bytes().contains(&0) {
            return Err(SrtError::Option { option: name, message: "contains a NUL byte".into() });
        }
        // SAFETY: pointer and length describe the string's bytes, which live
        // for the call; libsrt copies them.
        let r = unsafe {
            sys::srt_setsockflag(self.0, opt, value.as_ptr().cast::<c_void>(), value.len() as c_int)
        };
        if r < 0 { Err(SrtError::Option { option: name, message: last_error().1 }) } else { Ok(()) }
    }

    fn configure(&self, options: &SrtOptions) -> Result<(), SrtError> {
        self.set_int(sys::SRT_SOCKOPT::SRTO_TRANSTYPE, "transtype", sys::SRTT_LIVE as i32)?;
        self.set_int(sys::SRT_SOCKOPT::SRTO_PAYLOADSIZE, "payload size", SRT_PAYLOAD as i32)?;
        self.set_int(
            sys::SRT_SOCKOPT::SRTO_LATENCY,
            "latency",
            options.latency_ms.min(i32::MAX as u32) as i32,
        )?;
        self.set_int(sys::SRT_SOCKOPT::SRTO_CONNTIMEO, "connect timeout", 3000)?;
        self.set_int(sys::SRT_SOCKOPT::SRTO_PEERIDLETIMEO, "peer idle timeout", 3000)?;
        if let Some(p) = &options.passphrase {
            self.set_str(sys::SRT_SOCKOPT::SRTO_PASSPHRASE, "passphrase", p)?;
            self.set_int(sys::SRT_SOCKOPT::SRTO_PBKEYLEN, "key length", options.key_length as i32)?;
        }
        Ok(())
    }

    fn set_linger(&self, seconds: i32) -> Result<(), SrtError> {
        let linger = Linger { l_onoff: i32::from(seconds > 0), l_linger: seconds };
        // SAFETY: pointer and length describe a live `struct linger`.
        let r = unsafe {
            sys::srt_setsockflag(
                self.0,
                sys::SRT_SOCKOPT::SRTO_LINGER,
                (&linger as *const Linger).cast::<c_void>(),
                size_of::<Linger>() as c_int,
            )
        };
        if r < 0 { Err(SrtError::Option { option: "linger", message: last_error().1 }) } else { Ok(()) }
    }

    fn set_timeouts(&self, recv: Duration, send: Duration) -> Result<(), SrtError> {
        self.set_int(
            sys::SRT_SOCKOPT::SRTO_RCVTIMEO,
            "receive timeout",
            recv.as_millis().min(i32::MAX as u128) as i32,
        )?;
        self.set_int(
            sys::SRT_SOCKOPT::SRTO_SNDTIMEO,
            "send timeout",
            send.as_millis().min(i32::MAX as u128) as i32,
        )
    }
}

/// An owned libsrt epoll set watching one socket for input (or errors).
#[derive(Debug)]
struct Epoll(c_int);

impl Epoll {
    fn watch(handle: &Handle) -> Result<Self, SrtError> {
        // SAFETY: plain constructor, result checked.
        let id = unsafe { sys::srt_epoll_create() };
        if id < 0 {
            return Err(SrtError::Io { op: "epoll", message: last_error().1 });
        }
        let epoll = Epoll(id);
        let events = (sys::SRT_EPOLL_IN | sys::SRT_EPOLL_ERR) as c_int;
        // SAFETY: valid epoll id and socket; `events` lives for the call.
        if unsafe { sys::srt_epoll_add_usock(epoll.0, handle.0, &events) } < 0 {
            return Err(SrtError::Io { op: "epoll", message: last_error().1 });
        }
        Ok(epoll)
    }

    /// True when the socket became readable (or failed) within `timeout`.
    fn ready(&self, timeout: Duration) -> bool {
        let mut ready = [0 as sys::SRTSOCKET; 2];
        let mut n = ready.len() as c_int;
        let mut errs = [0 as sys::SRTSOCKET; 2];
        let mut n_errs = errs.len() as c_int;
        // SAFETY: the arrays and their lengths are writable for the call;
        // the system-socket sets are null.
        let r = unsafe {
            sys::srt_epoll_wait(
                self.0,
                ready.as_mut_ptr(),
                &mut n,
                errs.as_mut_ptr(),
                &mut n_errs,
                timeout.as_millis().min(i64::MAX as u128) as i64,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        r > 0
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we created this epoll id and release it once.
        unsafe {
            sys::srt_epoll_release(self.0);
        }
    }
}

fn sockaddr(addr: SocketAddrV4) -> sys::sockaddr_in {
    sys::sockaddr_in {
        sin_family: sys::AF_INET as sys::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: sys::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
        sin_zero: [0; 8],
    }
}

/// How long a caller waits for its peer's name to resolve.
pub const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `host:port` as an IPv4 address: a literal at once, a name through the
/// system resolver on a thread of its own, given up after
/// [`RESOLVE_TIMEOUT`] (a hung resolver never holds the caller longer).
fn resolve(host: &str, port: u16) -> Result<SocketAddrV4, SrtError> {
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return Ok(SocketAddrV4::new(ip, port));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("airlift-dns".into())
        .spawn(move || {
            let _ = tx.send((name.as_str(), port).to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
        })
        .map_err(|e| SrtError::Resolve { host: host.into(), message: e.to_string() })?;
    let addrs = match rx.recv_timeout(RESOLVE_TIMEOUT) {
        Ok(Ok(addrs)) => addrs,
        Ok(Err(e)) => return Err(SrtError::Resolve { host: host.into(), message: e.to_string() }),
        Err(_) => {
            return Err(SrtError::Resolve {
                host: host.into(),
                message: format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs()),
            });
        }
    };
    addrs
        .into_iter()
        .filter_map(|a| match a {
            SocketAddr::V4(v4) => Some(v4),
            SocketAddr::V6(_) => None,
        })
        .next()
        .ok_or_else(|| SrtError::Resolve { host: host.into(), message: "no IPv4 address".into() })
}

/// A connected live-mode SRT socket. Worker threads only.
#[derive(Debug)]
pub struct SrtSocket {
    // Field order is drop order: the epoll set, the socket, then the
    // listener's busy flag (so a new caller is let in only once we are gone).
    epoll: Epoll,
    handle: Handle,
    peer: String,
    busy: Option<BusyGuard>,
}

impl SrtSocket {
    /// Connects to a listener at `host:port`, waiting at most about 3 s.
    /// A refusal comes back as [`SrtError::Rejected`] with libsrt's reason.
    pub fn connect(host: &str, port: u16, options: &SrtOptions) -> Result<Self, SrtError> {
        let addr = resolve(host, port)?;
        let handle = Handle::new()?;
        handle.configure(options)?;
        if let Some(id) = &options.stream_id {
            handle.set_str(sys::SRT_SOCKOPT::SRTO_STREAMID, "stream id", id)?;
        }
        let sa = sockaddr(addr);
        // SAFETY: `sa` is a valid sockaddr_in of the length passed.
        let r = unsafe {
            sys::srt_connect(
                handle.0,
                (&sa as *const sys::sockaddr_in).cast::<sys::sockaddr>(),
                size_of::<sys::sockaddr_in>() as c_int,
            )
        };
        let peer = addr.to_string();
        if r < 0 {
            let (code, message) = last_error();
            // SAFETY: the handle is still open.
            let reason = unsafe { sys::srt_getrejectreason(handle.0) };
            if code == sys::SRT_ECONNREJ as c_int || reason > 0 {
                return Err(SrtError::Rejected { peer, reason: RejectReason::from_raw(reason) });
            }
            return Err(SrtError::Io { op: "connect", message });
        }
        handle.set_timeouts(Duration::from_millis(100), Duration::from_millis(500))?;
        Ok(Self { epoll: Epoll::watch(&handle)?, handle, peer, busy: None })
    }

    /// The peer's address.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Sends one message of at most [`SRT_PAYLOAD`] bytes.
    pub fn send(&self, payload: &[u8]) -> Result<(), SrtError> {
        let len = payload.len().min(SRT_PAYLOAD);
        // SAFETY: pointer and length describe `payload`'s first `len` bytes;
        // a null MSGCTRL means defaults.
        let r = unsafe {
            sys::srt_sendmsg2(
                self.handle.0,
                payload.as_ptr().cast::<c_char>(),
                len as c_int,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(SrtError::Io { op: "send", message: last_error().1 });
        }
        if let Some(b) = &self.busy {
            b.0.touch();
        }
        Ok(())
    }

    /// Receives one message into `buf` (at least [`SRT_PAYLOAD`] bytes).
    /// `Ok(None)` when nothing arrived within 100 ms; an error when the
    /// connection is gone.
    pub fn recv(&self, buf: &mut [u8]) -> Result<Option<usize>, SrtError> {
        if !self.epoll.ready(Duration::from_millis(100)) && self.is_connected() {
            return Ok(None);
        }
        // SAFETY: pointer and length describe `buf`, writable for the call.
        let r = unsafe {
            sys::srt_recvmsg2(
                self.handle.0,
                buf.as_mut_ptr().cast::<c_char>(),
                buf.len() as c_int,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let (code, message) = last_error();
            if code == sys::SRT_EASYNCRCV as c_int || code == sys::SRT_ETIMEOUT as c_int {
                return Ok(None);
            }
            return Err(SrtError::Io { op: "receive", message });
        }
        if let Some(b) = &self.busy {
            b.0.touch();
        }
        Ok(Some(r as usize))
    }

    /// Makes closing wait (up to `seconds`) until queued data is delivered,
    /// so a sender's tail is not lost when it stops. Receivers keep the
    /// live-mode default (no linger), so dropping them is immediate.
    pub fn linger(&self, seconds: u8) -> Result<(), SrtError> {
        self.handle.set_linger(i32::from(seconds))
    }

    /// True while libsrt reports the connection as established.
    pub fn is_connected(&self) -> bool {
        // SAFETY: plain query on our open handle.
        let state = unsafe { sys::srt_getsockstate(self.handle.0) };
        state == sys::SRTS_CONNECTED
    }

    /// Statistics since the connection started.
    pub fn stats(&self) -> Result<SrtStats, SrtError> {
        let mut s = sys::SRT_TRACEBSTATS::default();
        // SAFETY: `s` is a valid, writable stats struct; clear = 0.
        let r = unsafe { sys::srt_bstats(self.handle.0, &mut s, 0) };
        if r < 0 {
            return Err(SrtError::Io { op: "statistics", message: last_error().1 });
        }
        Ok(SrtStats {
            rtt_ms: s.msRTT,
            bandwidth_mbps: s.mbpsBandwidth,
            send_loss: i64::from(s.pktSndLossTotal),
            recv_loss: i64::from(s.pktRcvLossTotal),
            retransmits: i64::from(s.pktRetransTotal),
            recv_dropped: i64::from(s.pktRcvDropTotal),
            bytes_sent: s.byteSentTotal,
            bytes_received: s.byteRecvTotal,
        })
    }
}

/// A listening SRT socket on a local UDP port, taking one caller at a time:
/// while an accepted connection is alive and carrying data, further callers
/// are refused (`SRT_REJX_OVERLOAD`), so nobody streams into a queue that is
/// never read. A caller arriving while the current one has been silent for
/// a second is let in (it replaces a peer that died without saying so).
/// Callers from outside [`SrtOptions::allow_from`] or with another stream id
/// are refused in the handshake, before any data flows. Accepting never
/// blocks longer than the timeout asked for (the socket is non-blocking).
/// Worker threads only.
pub struct SrtListener {
    epoll: Epoll,
    socket: ListeningSocket,
    port: u16,
}

/// The listening handle and what its callback reads. Field order is drop
/// order: the socket is closed first — after `srt_close` returns libsrt
/// never calls the callback again (it unregisters the listener under the
/// lock it calls the callback with) — and only then is the gate freed, on
/// every path, including an error half-way through [`SrtListener::bind`].
struct ListeningSocket {
    handle: Handle,
    /// Boxed so its address is stable while libsrt holds it.
    gate: Box<ListenGate>,
}

/// The listen callback's view: the required stream id, the allowed peer
/// networks, whether a caller is being served, and the refusal log's limit.
struct ListenGate {
    port: u16,
    stream_id: Option<CString>,
    allow_from: Vec<PeerNetwork>,
    busy: Arc<Busy>,
    /// The first refusal is logged; then one line per [`RateLimit::WINDOW`]
    /// with the count of those in between.
    refusals: RateLimit,
}

impl ListenGate {
    /// Logs a refusal within the rate limit. `stream_id` came from the
    /// peer: it is escaped and cut. Called from libsrt's thread.
    fn log_refusal(&self, peer: Option<SocketAddr>, stream_id: &CStr, why: &str) {
        let Some(earlier) = self.refusals.admit() else { return };
        let stream_id = untrusted(&stream_id.to_string_lossy(), 64);
        let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        tracing::warn!(
            port = self.port,
            peer = %peer,
            stream_id = %stream_id,
            refused_before = earlier,
            "SRT listener refused a caller: {why} (further refusals are summed up every {} s)",
            RateLimit::WINDOW.as_secs()
        );
    }

    /// Logs how many refusals went unlogged once their window is over.
    fn flush_refusals(&self) {
        let n = self.refusals.take_overdue();
        if n > 0 {
            tracing::warn!(port = self.port, refused = n, "SRT listener refused {n} more caller(s)");
        }
    }
}

/// Whether the listener serves a caller, and when data last moved.
#[derive(Debug)]
struct Busy {
    serving: AtomicBool,
    epoch: Instant,
    last_data_ms: AtomicU64,
}

impl Busy {
    fn touch(&self) {
        self.last_data_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Serving a caller that moved data within the last second.
    fn active(&self) -> bool {
        let idle = (self.epoch.elapsed().as_millis() as u64)
            .saturating_sub(self.last_data_ms.load(Ordering::Relaxed));
        self.serving.load(Ordering::Acquire) && idle < 1000
    }
}

/// Marks the listener free again when an accepted connection ends.
#[derive(Debug)]
struct BusyGuard(Arc<Busy>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.serving.store(false, Ordering::Release);
    }
}

impl std::fmt::Debug for SrtListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtListener").field("port", &self.port).finish()
    }
}

/// The address in a `sockaddr` from libsrt (IPv4 or IPv6), if any.
///
/// # Safety
/// `addr` is null or points to a socket address whose family field tells
/// its real type, readable for the call.
unsafe fn peer_address(addr: *const sys::sockaddr) -> Option<SocketAddr> {
    if addr.is_null() {
        return None;
    }
    // SAFETY: per the contract the family field is readable, and it says
    // which structure the address really is.
    unsafe {
        match i32::from((*addr.cast::<libc::sockaddr>()).sa_family) {
            libc::AF_INET => {
                let sin = &*addr.cast::<libc::sockaddr_in>();
                Some(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))),
                    u16::from_be(sin.sin_port),
                ))
            }
            libc::AF_INET6 => {
                let sin6 = &*addr.cast::<libc::sockaddr_in6>();
                Some(SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)),
                    u16::from_be(sin6.sin6_port),
                ))
            }
            _ => None,
        }
    }
}

/// libsrt's listen callback: refuses callers from outside `allow_from`,
/// callers while one is served, and callers whose stream id differs from
/// the required one.
unsafe extern "C" fn check_caller(
    opaque: *mut c_void,
    ns: sys::SRTSOCKET,
    _hs_version: c_int,
    peer: *const sys::sockaddr,
    stream_id: *const c_char,
) -> c_int {
    // SAFETY: `opaque` is the ListenGate boxed in the listener, alive while
    // the listener socket is open; `stream_id` is NUL-terminated (or null);
    // `peer` is the caller's address as libsrt received it.
    let (gate, got, peer) = unsafe {
        let gate = &*opaque.cast::<ListenGate>();
        let got = if stream_id.is_null() { c"" } else { CStr::from_ptr(stream_id) };
        (gate, got, peer_address(peer))
    };
    let allowed = match peer {
        Some(p) => peer_allowed(&gate.allow_from, p.ip()),
        None => gate.allow_from.is_empty(),
    };
    let (reason, why) = if !allowed {
        (1403, "peer address not in allow_from") // SRT_REJX_FORBIDDEN (1000 + HTTP 403)
    } else if gate.busy.active() {
        (1503, "busy with another caller") // SRT_REJX_OVERLOAD (1000 + HTTP 503)
    } else if gate.stream_id.as_deref().is_some_and(|want| want != got) {
        (1403, "unknown stream id") // SRT_REJX_FORBIDDEN (1000 + HTTP 403)
    } else {
        return 0;
    };
    let _ = std::panic::catch_unwind(|| gate.log_refusal(peer, got, why));
    // SAFETY: `ns` is the socket being accepted; setting its reject reason is allowed here.
    unsafe {
        sys::srt_setrejectreason(ns, reason);
    }
    -1
}

impl SrtListener {
    /// Listens on `port` (all interfaces).
    pub fn bind(port: u16, options: &SrtOptions) -> Result<Self, SrtError> {
        let stream_id = match &options.stream_id {
            Some(id) => Some(CString::new(id.as_str()).map_err(|_| SrtError::Option {
                option: "stream id",
                message: "contains a NUL byte".into(),
            })?),
            None => None,
        };
        let busy = Arc::new(Busy {
            serving: AtomicBool::new(false),
            epoch: Instant::now(),
            last_data_ms: AtomicU64::new(0),
        });
        let gate = Box::new(ListenGate {
            port,
            stream_id,
            allow_from: options.allow_from.clone(),
            busy,
            refusals: RateLimit::new(1),
        });
        // From here on every early return drops `socket`: the handle is
        // closed before the gate is freed.
        let socket = ListeningSocket { handle: Handle::new()?, gate };
        let handle = &socket.handle;
        handle.configure(options)?;
        // Non-blocking accept: `srt_accept` answers at once, with
        // SRT_EASYNCRCV when the caller that woke the epoll is gone again.
        handle.set_bool(sys::SRT_SOCKOPT::SRTO_RCVSYN, "receive blocking", false)?;
        let sa = sockaddr(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, port));
        // SAFETY: `sa` is a valid sockaddr_in of the length passed.
        let r = unsafe {
            sys::srt_bind(
                handle.0,
                (&sa as *const sys::sockaddr_in).cast::<sys::sockaddr>(),
                size_of::<sys::sockaddr_in>() as c_int,
            )
        };
        if r < 0 {
            return Err(SrtError::Bind { port, message: last_error().1 });
        }
        let opaque = (&*socket.gate as *const ListenGate).cast_mut().cast::<c_void>();
        // SAFETY: the callback matches libsrt's signature; `opaque` points
        // into a box that `ListeningSocket` frees only after closing the
        // socket.
        let r = unsafe { sys::srt_listen_callback(handle.0, Some(check_caller), opaque) };
        if r < 0 {
            return Err(SrtError::Option { option: "listen callback", message: last_error().1 });
        }
        // SAFETY: plain call on our bound socket.
        if unsafe { sys::srt_listen(handle.0, 4) } < 0 {
            return Err(SrtError::Bind { port, message: last_error().1 });
        }
        let epoll = Epoll::watch(handle)?;
        Ok(Self { epoll, socket, port })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits up to `timeout` for a caller. `Ok(None)` when none came; never
    /// blocks longer than `timeout` (and the time to set the socket up).
    pub fn accept(&self, timeout: Duration) -> Result<Option<SrtSocket>, SrtError> {
        self.socket.gate.flush_refusals();
        if !self.epoll.ready(timeout) {
            return Ok(None);
        }
        let mut storage = sys::sockaddr_storage::default();
        let mut len = size_of::<sys::sockaddr_storage>() as c_int;
        // SAFETY: storage/len describe a writable sockaddr_storage; the
        // listener is non-blocking, so this returns at once.
        let s = unsafe {
            sys::srt_accept(
                self.socket.handle.0,
                (&mut storage as *mut sys::sockaddr_storage).cast(),
                &mut len,
            )
        };
        if s == sys::SRT_INVALID_SOCK {
            let (code, message) = last_error();
            if code == sys::SRT_EASYNCRCV as c_int {
                return Ok(None);
            }
            return Err(SrtError::Io { op: "accept", message });
        }
        let handle = Handle(s);
        // SAFETY: libsrt filled `storage` with the peer's address; its family
        // says which structure it is, and sockaddr_storage holds either.
        let peer = unsafe { peer_address((&storage as *const sys::sockaddr_storage).cast()) }
            .map_or_else(|| "peer".to_owned(), |p| p.to_string());
        // The accepted socket inherits the listener's non-blocking receive;
        // the connection's own reads block (up to their timeout) as a
        // caller's do.
        handle.set_bool(sys::SRT_SOCKOPT::SRTO_RCVSYN, "receive blocking", true)?;
        handle.set_timeouts(Duration::from_millis(100), Duration::from_millis(500))?;
        let busy = &self.socket.gate.busy;
        busy.touch();
        busy.serving.store(true, Ordering::Release);
        let busy = Some(BusyGuard(busy.clone()));
        Ok(Some(SrtSocket { epoll: Epoll::watch(&handle)?, handle, peer, busy }))
    }
}

impl Drop for SrtListener {
    fn drop(&mut self) {
        let n = self.socket.gate.refusals.take_all();
        if n > 0 {
            tracing::warn!(port = self.port, refused = n, "SRT listener refused {n} more caller(s)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_on_their_own_thread_and_never_hang_the_caller() {
        assert_eq!(resolve("127.0.0.1", 9).unwrap(), "127.0.0.1:9".parse().unwrap());
        assert_eq!(resolve("localhost", 9).unwrap().ip(), &std::net::Ipv4Addr::LOCALHOST);
        let t = std::time::Instant::now();
        assert!(matches!(resolve("no-such-host.invalid", 9), Err(SrtError::Resolve { .. })));
        assert!(t.elapsed() < RESOLVE_TIMEOUT + std::time::Duration::from_secs(1));
    }
}
