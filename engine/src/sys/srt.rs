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

use crate::untrusted::{RateLimit, untrusted};

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
        .name("al-dns".into())
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
        self.recv_within(buf, Duration::from_millis(100))
    }

    /// Receives one message into `buf` if one is ready now, without waiting:
    /// how a reader drains a burst of messages in one wake-up.
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<Option<usize>, SrtError> {
        self.recv_within(buf, Duration::ZERO)
    }

    fn recv_within(&self, buf: &mut [u8], wait: Duration) -> Result<Option<usize>, SrtError> {
        if !self.epoll.ready(wait) && self.is_connected() {
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

mod listener;
use listener::BusyGuard;
pub use listener::SrtListener;

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
