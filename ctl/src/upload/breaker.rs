//! Retry pacing: a circuit breaker per S3 target and exponential backoff
//! with jitter per object. Pure logic; time is passed in.

use std::time::{Duration, Instant};

/// The state of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; counts consecutive failures.
    Closed {
        /// Failures in a row so far.
        failures: u32,
    },
    /// Requests are refused until `until`.
    Open {
        /// When one probe may go.
        until: Instant,
    },
    /// One probe is in flight; its outcome closes or re-opens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 open, 2 half-open (the metric's values).
    pub fn code(&self) -> i64 {
        match self {
            Self::Closed { .. } => 0,
            Self::Open { .. } => 1,
            Self::HalfOpen => 2,
        }
    }
}

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Go,
    /// Go ahead as the half-open probe.
    Probe,
    /// Refused; try again after this long.
    Wait(Duration),
}

/// Opens after `threshold` consecutive failures, stays open for `open_for`,
/// then lets one probe through (half-open): its success closes the breaker,
/// its failure opens it again.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    state: BreakerState,
    opened: u64,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self { threshold: threshold.max(1), open_for, state: BreakerState::Closed { failures: 0 }, opened: 0 }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// How many times the breaker has opened.
    pub fn times_opened(&self) -> u64 {
        self.opened
    }

    /// Asks to send a request at `now`.
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            BreakerState::Closed { .. } => Admission::Go,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                Admission::Probe
            }
            BreakerState::Open { until } => Admission::Wait(until - now),
            BreakerState::HalfOpen => Admission::Wait(self.open_for.min(Duration::from_secs(1))),
        }
    }

    /// A request succeeded. Returns true when this closed an open breaker.
    pub fn success(&mut self) -> bool {
        let was_open = !matches!(self.state, BreakerState::Closed { .. });
        self.state = BreakerState::Closed { failures: 0 };
        was_open
    }

    /// A request failed at `now`. Returns true when this opened a closed
    /// breaker (a failed half-open probe re-opens it and returns false, so
    /// an outage raises one alarm).
    pub fn failure(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed { failures } if failures + 1 < self.threshold => {
                self.state = BreakerState::Closed { failures: failures + 1 };
                false
            }
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen => {
                self.state = BreakerState::Open { until: now + self.open_for };
                false
            }
            BreakerState::Closed { .. } => {
                self.state = BreakerState::Open { until: now + self.open_for };
                self.opened += 1;
                true
            }
        }
    }
}

/// The delay before attempt `attempt + 1` (attempt 0 is the first retry):
/// `min · 2^attempt`, capped at `max`, with "equal jitter" — a uniform
/// value in [d/2, d] drawn from `random` (any u64).
pub fn backoff_delay(attempt: u32, min: Duration, max: Duration, random: u64) -> Duration {
    let factor = 1u64.checked_shl(attempt.min(32)).unwrap_or(u64::MAX);
    let ms = (min.as_millis() as u64).saturating_mul(factor).min(max.as_millis() as u64).max(1);
    let half = ms / 2;
    Duration::from_millis(half + random % (ms - half + 1))
}

/// A small non-cryptographic random source for jitter (xorshift64*),
/// seeded from the clock and an address.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeds from the system clock.
    pub fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64);
        Self(nanos | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_once() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(3, Duration::from_secs(10));
        assert!(!b.failure(t0));
        assert!(!b.failure(t0));
        assert_eq!(b.admit(t0), Admission::Go);
        assert!(b.failure(t0));
        assert_eq!(b.state().code(), 1);
        assert!(matches!(b.admit(t0 + Duration::from_secs(1)), Admission::Wait(_)));
        assert_eq!(b.admit(t0 + Duration::from_secs(10)), Admission::Probe);
        assert!(matches!(b.admit(t0 + Duration::from_secs(10)), Admission::Wait(_)), "only one probe");
        assert!(!b.failure(t0 + Duration::from_secs(11)), "a failed probe re-opens without a new alarm");
        assert_eq!(b.state().code(), 1);
        assert_eq!(b.admit(t0 + Duration::from_secs(21)), Admission::Probe);
        assert!(b.success());
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        assert_eq!(b.times_opened(), 1);
    }

    #[test]
    fn a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(2, Duration::from_secs(1));
        b.failure(t0);
        assert!(!b.success());
        assert!(!b.failure(t0));
        assert!(b.failure(t0));
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for r in [0, 1, 17, u64::MAX] {
            let d0 = backoff_delay(0, min, max, r);
            assert!(d0 >= Duration::from_millis(50) && d0 <= min, "{d0:?}");
            let d3 = backoff_delay(3, min, max, r);
            assert!(d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(800));
            let big = backoff_delay(60, min, max, r);
            assert!(big >= max / 2 && big <= max);
        }
        let mut j = Jitter::from_clock();
        let a: Vec<_> = (0..8).map(|_| backoff_delay(4, min, max, j.next_u64())).collect();
        assert!(a.iter().any(|d| *d != a[0]), "jitter varies: {a:?}");
    }
}
