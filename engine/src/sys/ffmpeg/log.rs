//! FFmpeg's log, routed into `tracing` (target `ffmpeg`) instead of stderr,
//! with a rate limit: a hostile or broken stream can make FFmpeg print a
//! line per packet, and that must not flood the journal.
//!
//! Each level (error, warning, info, debug) may log [`LINES_PER_SECOND`]
//! lines in each one-second window; lines beyond that are counted and the
//! count is logged once the window has passed. Control characters from the
//! stream (service names, metadata) are escaped.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use ffmpeg_sys_next as ff;

/// Lines each level may log per second; the rest are counted.
pub const LINES_PER_SECOND: u32 = 20;

/// FFmpeg's messages less severe than this are not even formatted.
const FFMPEG_LEVEL: c_int = ff::AV_LOG_WARNING;

/// Installs the callback (once per process; later calls do nothing). The
/// engine calls it at startup, and every FFmpeg entry point of this module
/// calls it before touching FFmpeg. Any thread.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sets two process-wide values; the callback is a plain
        // `extern "C"` function valid for the life of the process.
        unsafe {
            ff::av_log_set_level(FFMPEG_LEVEL);
            ff::av_log_set_callback(Some(callback));
        }
    });
}

/// The tracing level an FFmpeg level maps to, as an index into the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    fn of(ffmpeg: c_int) -> Self {
        if ffmpeg <= ff::AV_LOG_ERROR {
            Self::Error
        } else if ffmpeg <= ff::AV_LOG_WARNING {
            Self::Warn
        } else if ffmpeg <= ff::AV_LOG_INFO {
            Self::Info
        } else {
            Self::Debug
        }
    }
}

/// Per-level line budget over one-second windows. Pure, so it is tested
/// with made-up clocks.
#[derive(Debug)]
struct RateLimit {
    window: [Option<Instant>; 4],
    logged: [u32; 4],
    suppressed: [u64; 4],
}

/// What to do with one line.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    /// Log the line.
    log: bool,
    /// Lines suppressed in the window that just ended (to report first).
    ended_window_suppressed: u64,
}

impl RateLimit {
    const fn new() -> Self {
        Self { window: [None; 4], logged: [0; 4], suppressed: [0; 4] }
    }

    fn admit(&mut self, level: Level, now: Instant) -> Verdict {
        let i = level as usize;
        let mut ended = 0;
        let expired = self.window[i].is_none_or(|start| now.duration_since(start) >= Duration::from_secs(1));
        if expired {
            ended = std::mem::take(&mut self.suppressed[i]);
            self.window[i] = Some(now);
            self.logged[i] = 0;
        }
        if self.logged[i] < LINES_PER_SECOND {
            self.logged[i] += 1;
            Verdict { log: true, ended_window_suppressed: ended }
        } else {
            self.suppressed[i] += 1;
            Verdict { log: false, ended_window_suppressed: ended }
        }
    }
}

static LIMIT: Mutex<RateLimit> = Mutex::new(RateLimit::new());

thread_local! {
    /// FFmpeg's "start of a line" flag for this thread (it logs lines in pieces).
    static PRINT_PREFIX: Cell<c_int> = const { Cell::new(1) };
    /// The part of a line not yet ended by a newline.
    static PARTIAL: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The `va_list` type as FFmpeg's bindings pass it to a log callback.
#[cfg(all(target_arch = "x86_64", not(windows)))]
type VaList = *mut ff::__va_list_tag;
#[cfg(not(all(target_arch = "x86_64", not(windows))))]
type VaList = ff::va_list;

unsafe extern "C" fn callback(avcl: *mut c_void, level: c_int, fmt: *const c_char, vl: VaList) {
    if level > FFMPEG_LEVEL || fmt.is_null() {
        return;
    }
    let mut buf = [0 as c_char; 1024];
    let text = PRINT_PREFIX.with(|prefix| {
        let mut print_prefix = prefix.get();
        // SAFETY: FFmpeg hands us its own format string and argument list,
        // which av_log_format_line2 consumes once; `buf` is writable for
        // the length passed, and the result is NUL-terminated (truncated
        // when longer).
        let r = unsafe {
            ff::av_log_format_line2(
                avcl,
                level,
                fmt,
                vl,
                buf.as_mut_ptr(),
                buf.len() as c_int,
                &mut print_prefix,
            )
        };
        prefix.set(print_prefix);
        if r < 0 {
            return None;
        }
        // SAFETY: NUL-terminated within `buf` (see above).
        Some(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
    });
    let Some(text) = text else { return };
    // Never unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let line = PARTIAL.with(|partial| {
            let mut partial = partial.borrow_mut();
            partial.push_str(&text);
            if partial.ends_with('\n') || partial.len() >= 4096 {
                Some(std::mem::take(&mut *partial))
            } else {
                None
            }
        });
        if let Some(line) = line {
            emit(Level::of(level), &line);
        }
    }));
}

/// `line` with control characters escaped and the trailing newline gone.
fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.trim_end().chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn emit(level: Level, line: &str) {
    let verdict = match LIMIT.lock() {
        Ok(mut limit) => limit.admit(level, Instant::now()),
        Err(poisoned) => poisoned.into_inner().admit(level, Instant::now()),
    };
    if verdict.ended_window_suppressed > 0 {
        let n = verdict.ended_window_suppressed;
        let note = format!("{n} more FFmpeg lines at this level were suppressed (over {LINES_PER_SECOND}/s)");
        log(level, &note);
    }
    if verdict.log {
        log(level, &clean(line));
    }
}

fn log(level: Level, text: &str) {
    match level {
        Level::Error => tracing::error!(target: "ffmpeg", "{text}"),
        Level::Warn => tracing::warn!(target: "ffmpeg", "{text}"),
        Level::Info => tracing::info!(target: "ffmpeg", "{text}"),
        Level::Debug => tracing::debug!(target: "ffmpeg", "{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_logs_its_budget_per_second_and_counts_the_rest() {
        let mut limit = RateLimit::new();
        let t0 = Instant::now();
        for i in 0..LINES_PER_SECOND {
            assert!(limit.admit(Level::Error, t0).log, "line {i}");
        }
        for _ in 0..7 {
            assert_eq!(limit.admit(Level::Error, t0), Verdict { log: false, ended_window_suppressed: 0 });
        }
        // Another level has its own budget.
        assert!(limit.admit(Level::Warn, t0).log);
        // Still inside the window.
        assert!(!limit.admit(Level::Error, t0 + Duration::from_millis(999)).log);
        // The next window reports the 8 suppressed lines once.
        let next = t0 + Duration::from_secs(1);
        assert_eq!(limit.admit(Level::Error, next), Verdict { log: true, ended_window_suppressed: 8 });
        assert_eq!(limit.admit(Level::Error, next), Verdict { log: true, ended_window_suppressed: 0 });
    }

    #[test]
    fn control_characters_from_the_stream_are_escaped() {
        assert_eq!(clean("[mpegts] service \u{1b}[31mred\r\n"), "[mpegts] service \\u{1b}[31mred");
        assert_eq!(clean("plain line\n"), "plain line");
    }

    /// A `tracing` writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_flood_of_ffmpeg_errors_reaches_tracing_rate_limited() {
        install();
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber =
            tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..(3 * LINES_PER_SECOND) {
                // SAFETY: a format string with one int argument, given.
                unsafe {
                    ff::av_log(
                        std::ptr::null_mut(),
                        ff::AV_LOG_ERROR,
                        c"flood-marker %d of a \x01 stream\n".as_ptr(),
                        i as c_int,
                    )
                };
            }
            // Below the threshold: never formatted, never logged.
            // SAFETY: a format string without arguments.
            unsafe { ff::av_log(std::ptr::null_mut(), ff::AV_LOG_DEBUG, c"debug-marker\n".as_ptr()) };
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines = text.lines().filter(|l| l.contains("flood-marker")).count();
        // At most one window's budget (a window may turn over mid-flood: two).
        assert!((1..=2 * LINES_PER_SECOND as usize).contains(&lines), "{lines} lines: {text}");
        assert!(lines < 3 * LINES_PER_SECOND as usize, "nothing suppressed: {text}");
        assert!(text.contains(r"flood-marker 0 of a \u{1} stream"), "{text}");
        assert!(text.contains("ERROR ffmpeg"), "{text}");
        assert!(!text.contains("debug-marker"), "{text}");
    }

    #[test]
    fn levels_map_by_severity() {
        assert_eq!(Level::of(ff::AV_LOG_PANIC), Level::Error);
        assert_eq!(Level::of(ff::AV_LOG_ERROR), Level::Error);
        assert_eq!(Level::of(ff::AV_LOG_WARNING), Level::Warn);
        assert_eq!(Level::of(ff::AV_LOG_INFO), Level::Info);
        assert_eq!(Level::of(ff::AV_LOG_DEBUG), Level::Debug);
    }
}
