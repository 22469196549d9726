//! Logging what untrusted peers send: strings escaped and cut
//! ([`untrusted`]), and a lock-free rate limit ([`RateLimit`]) so a peer
//! that keeps knocking cannot flood the log. Pure; callable from any
//! thread, including libsrt's callbacks. Not for the audio thread (the
//! callers log).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `text` from a peer, safe to log: control characters, quotes and
/// backslashes escaped (`escape_debug`), cut after `max` characters with
/// `…` (so a 512-byte stream id cannot flood a log line).
pub fn untrusted(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).flat_map(char::escape_debug).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// A log rate limit without locks: a burst of lines per [`Self::WINDOW`];
/// past it lines are counted, and the first line of a later window carries
/// the count. Callable from any thread, including libsrt's callbacks.
#[derive(Debug)]
pub struct RateLimit {
    /// Lines let through per window.
    burst: u64,
    /// Start of the current window, ms since the process's first use.
    window_start_ms: AtomicU64,
    /// Lines admitted in the current window.
    admitted: AtomicU64,
    /// Lines refused since the last admitted one.
    suppressed: AtomicU64,
}

impl RateLimit {
    /// The window.
    pub const WINDOW: Duration = Duration::from_secs(10);

    /// A limit of `burst` lines per window, with nothing logged yet.
    pub const fn new(burst: u64) -> Self {
        Self {
            burst,
            window_start_ms: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    fn now_ms() -> u64 {
        static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        // +1 so that 0 means "no window yet".
        EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
    }

    /// `Some(n)`: log this line, saying `n` lines were left out before it;
    /// `None`: leave it out (it is counted).
    pub fn admit(&self) -> Option<u64> {
        let now = Self::now_ms();
        let start = self.window_start_ms.load(Ordering::Acquire);
        if (start == 0 || now.saturating_sub(start) >= Self::WINDOW.as_millis() as u64)
            && self.window_start_ms.compare_exchange(start, now, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            self.admitted.store(0, Ordering::Release);
        }
        if self.admitted.fetch_add(1, Ordering::AcqRel) < self.burst {
            Some(self.suppressed.swap(0, Ordering::AcqRel))
        } else {
            self.suppressed.fetch_add(1, Ordering::AcqRel);
            None
        }
    }

    /// Lines left out and not yet reported (resets the count).
    pub fn take_all(&self) -> u64 {
        self.suppressed.swap(0, Ordering::AcqRel)
    }

    /// Lines left out and not yet reported; reports them (resets the count)
    /// when the window they fell in is over.
    pub fn take_overdue(&self) -> u64 {
        let start = self.window_start_ms.load(Ordering::Acquire);
        if start != 0 && Self::now_ms().saturating_sub(start) >= Self::WINDOW.as_millis() as u64 {
            self.suppressed.swap(0, Ordering::AcqRel)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_is_escaped_and_cut() {
        assert_eq!(untrusted("studio-a", 64), "studio-a");
        assert_eq!(untrusted("a\nb\u{1b}[2J\"", 64), r#"a\nb\u{1b}[2J\""#);
        let long = untrusted(&"x".repeat(600), 64);
        assert_eq!(long, format!("{}…", "x".repeat(64)));
    }

    #[test]
    fn a_burst_is_let_through_then_counted() {
        let limit = RateLimit::new(2);
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        // Inside the window nothing is overdue yet.
        assert_eq!(limit.take_overdue(), 0);
        assert_eq!(limit.take_all(), 2);
        assert_eq!(limit.take_all(), 0);
    }
}
