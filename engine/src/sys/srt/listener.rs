//! [`SrtListener`]: a listening SRT socket that admits one caller at a time,
//! checks the caller's address against the allow-list in libsrt's listen
//! callback, and hands accepted connections over as [`SrtSocket`]s.

use super::*;

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
pub(super) struct Busy {
    serving: AtomicBool,
    epoch: Instant,
    last_data_ms: AtomicU64,
}

impl Busy {
    pub(super) fn touch(&self) {
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
pub(super) struct BusyGuard(pub(super) Arc<Busy>);

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
