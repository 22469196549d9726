//! Clocks that pace a flow's audio thread.
//!
//! - [`InternalClock`]: absolute `CLOCK_MONOTONIC` deadlines, one per period,
//!   slept to with `clock_nanosleep(TIMER_ABSTIME)`; the next deadline is the
//!   previous one plus the period, so no drift accumulates.
//! - Device: a flow clocked by an ALSA device waits inside the device's
//!   blocking `readi`/`writei` (see `io::alsa`), not here.
//! - Offline: no waiting at all (the `render` mode); see `flow::render`.
#![allow(unsafe_code)] // a realtime spot: see engine/tests/layout.rs

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
///
/// A period that starts late (the thread woke late: scheduler or hypervisor
/// latency) is caught up, not dropped: the next periods run back to back
/// until the clock is on time again, and the flow's output rings absorb the
/// burst. Only when it is further behind than its catch-up budget (half the
/// flow's ring, 100 ms at 48 kHz) does it skip periods, which loses audio:
/// that is a deadline miss.
#[derive(Debug)]
pub struct InternalClock {
    period_ns: f64,
    start_ns: u64,
    /// Index of the next period to start.
    next: u64,
    /// Lateness caught up without skipping, in ns.
    budget_ns: u64,
}

/// What one tick of the clock says about the period that just ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tick {
    /// How far past its deadline the period finished, in ns (0: on time).
    pub late_ns: u64,
    /// True when it was too late to catch up: periods were skipped.
    pub missed: bool,
    /// Periods skipped.
    pub skipped: u64,
}

impl InternalClock {
    /// A clock of `frames` per period at `rate` Hz, starting now, catching
    /// up at most `budget_frames` of lateness.
    pub fn new(frames: u32, rate: u32, budget_frames: usize) -> Self {
        let period_ns = f64::from(frames) * 1e9 / f64::from(rate);
        let budget_ns = (budget_frames as f64 * 1e9 / f64::from(rate)) as u64;
        Self { period_ns, start_ns: now_ns(), next: 0, budget_ns }
    }

    /// The period's duration.
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period_ns as u64)
    }

    fn deadline(&self, index: u64) -> u64 {
        self.start_ns + (index as f64 * self.period_ns) as u64
    }

    /// Waits for the start of the next period. Call after processing one.
    /// A period that finished past the next deadline is late: the next one
    /// starts at once (catching up) while the lateness is within budget;
    /// beyond it, whole periods are skipped and the tick says `missed`.
    /// Realtime-safe (its only syscall is the clocking sleep).
    pub fn wait(&mut self) -> Tick {
        self.next += 1;
        let now = now_ns();
        let deadline = self.deadline(self.next);
        if now <= deadline {
            sleep_until(deadline);
            return Tick::default();
        }
        let late_ns = now - deadline;
        if late_ns <= self.budget_ns {
            return Tick { late_ns, missed: false, skipped: 0 };
        }
        let behind = (late_ns as f64 / self.period_ns) as u64;
        self.next += behind;
        sleep_until(self.deadline(self.next));
        Tick { late_ns, missed: true, skipped: behind }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_do_not_drift() {
        let mut clock = InternalClock::new(480, 48_000, 4800); // 10 ms
        let start = now_ns();
        for _ in 0..20 {
            clock.wait();
        }
        let elapsed = (now_ns() - start) as f64 / 1e6;
        assert!((199.0..260.0).contains(&elapsed), "20 periods took {elapsed} ms");
    }

    #[test]
    fn a_late_period_is_caught_up_within_the_budget() {
        // 1 ms periods, 20 ms budget.
        let mut clock = InternalClock::new(48, 48_000, 960);
        clock.wait();
        std::thread::sleep(Duration::from_millis(6));
        let tick = clock.wait();
        assert!(tick.late_ns >= 4_000_000 && !tick.missed, "{tick:?}");
        // Back to back until on time again: no period is lost.
        let start = now_ns();
        let mut caught = 0;
        while clock.wait().late_ns > 0 {
            caught += 1;
        }
        assert!(caught >= 3, "caught up {caught} periods");
        assert!(now_ns() - start < 10_000_000);
    }

    #[test]
    fn beyond_the_budget_periods_are_skipped_and_counted_as_a_miss() {
        let mut clock = InternalClock::new(48, 48_000, 960);
        clock.wait();
        std::thread::sleep(Duration::from_millis(40));
        let tick = clock.wait();
        assert!(tick.missed && tick.skipped >= 30, "{tick:?}");
        // The skip lands on the last deadline passed, so the next one is at
        // most a period away: within the budget, whatever the scheduler
        // adds between the two calls (an exact zero would race it).
        let next = clock.wait();
        assert!(!next.missed && next.skipped == 0, "on time after the skip: {next:?}");
    }
}
