//! Clocks that pace a flow's audio thread.
//!
//! - [`InternalClock`]: absolute `CLOCK_MONOTONIC` deadlines, one per period,
//!   slept to with `clock_nanosleep(TIMER_ABSTIME)`; the next deadline is the
//!   previous one plus the period, so no drift accumulates.
//! - Device: a flow clocked by an ALSA device waits inside the device's
//!   blocking `readi`/`writei` (see `io::alsa`), not here.
//! - Offline: no waiting at all (the `render` mode); see `flow::render`.

use std::time::Duration;

/// A monotonic timestamp in nanoseconds. Realtime-safe (vDSO, no syscall).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps until the absolute monotonic time `deadline_ns`.
fn sleep_until(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    loop {
        // SAFETY: `ts` is a valid timespec; the remaining-time pointer may be
        // null with TIMER_ABSTIME.
        let rc = unsafe {
            libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut())
        };
        if rc != libc::EINTR {
            return;
        }
    }
}

/// The engine's own period clock for flows without a device.
#[derive(Debug)]
pub struct InternalClock {
    period_ns: f64,
    start_ns: u64,
    /// Index of the next period to start.
    next: u64,
}

/// What one tick of the clock says about the period that just ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// True when the processing finished after the period's deadline.
    pub missed: bool,
    /// Periods skipped to catch up after a miss.
    pub skipped: u64,
}

impl InternalClock {
    /// A clock of `frames` per period at `rate` Hz, starting now.
    pub fn new(frames: u32, rate: u32) -> Self {
        let period_ns = f64::from(frames) * 1e9 / f64::from(rate);
        Self { period_ns, start_ns: now_ns(), next: 0 }
    }

    /// The period's duration.
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period_ns as u64)
    }

    fn deadline(&self, index: u64) -> u64 {
        self.start_ns + (index as f64 * self.period_ns) as u64
    }

    /// Waits for the start of the next period. Call after processing one.
    /// A period whose processing ran past the next deadline counts as a miss;
    /// the clock then skips whole periods rather than bursting to catch up.
    /// Realtime-safe (its only syscall is the clocking sleep).
    pub fn wait(&mut self) -> Tick {
        self.next += 1;
        let now = now_ns();
        let deadline = self.deadline(self.next);
        if now <= deadline {
            sleep_until(deadline);
            return Tick { missed: false, skipped: 0 };
        }
        let behind = ((now - deadline) as f64 / self.period_ns) as u64;
        self.next += behind;
        sleep_until(self.deadline(self.next));
        Tick { missed: true, skipped: behind }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_do_not_drift() {
        let mut clock = InternalClock::new(480, 48_000); // 10 ms
        let start = now_ns();
        for _ in 0..20 {
            clock.wait();
        }
        let elapsed = (now_ns() - start) as f64 / 1e6;
        assert!((199.0..260.0).contains(&elapsed), "20 periods took {elapsed} ms");
    }
}
