//! When to try again, and how long to wait first.
//!
//! The API's advice: on 429 wait 1 s, 2 s, 4 s; on 5xx 250 ms, 500 ms, 1 s.
//! Past the advised steps the wait doubles with full jitter (a random wait
//! between zero and the step), capped, and a message gives up after a bounded
//! number of attempts or a bounded total time.

use std::time::Duration;

use rand::{Rng, RngExt};

/// Which schedule an answer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// 429, 503.
    Throttled,
    /// 500 and other 5xx.
    ServerError,
    /// The server never had the whole request (no connection, or a write
    /// cut short): nothing was stored.
    NotSent,
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per message for 429/503, the first included.
    pub throttled_attempts: u32,
    /// Attempts per message for 5xx and connect errors, the first included.
    pub error_attempts: u32,
    /// Longest time one message may spend retrying.
    pub max_elapsed: Duration,
    /// Longest single wait.
    pub max_wait: Duration,
    /// Multiplies every wait (1.0 in production; rehearsals may shorten waits).
    pub scale: f64,
    /// 429s on this many attempts in a row (the first and the API's three
    /// advised retries) mean they persist for this worker.
    pub persist_after: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            throttled_attempts: 8,
            error_attempts: 5,
            max_elapsed: Duration::from_secs(300),
            max_wait: Duration::from_secs(60),
            scale: 1.0,
            persist_after: 4,
        }
    }
}

impl RetryPolicy {
    /// May a message that has made `attempts` attempts over `elapsed` try again?
    pub fn may_retry(&self, schedule: Schedule, attempts: u32, elapsed: Duration) -> bool {
        let limit = match schedule {
            Schedule::Throttled => self.throttled_attempts,
            Schedule::ServerError | Schedule::NotSent => self.error_attempts,
        };
        attempts < limit && elapsed < self.max_elapsed
    }

    /// The wait before retry number `retry` (0 for the first retry).
    /// `Retry-After`, when the server sent one, wins.
    pub fn wait(
        &self,
        schedule: Schedule,
        retry: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max_wait).mul_f64(self.scale);
        }
        let first = match schedule {
            Schedule::Throttled => Duration::from_secs(1),
            Schedule::ServerError | Schedule::NotSent => Duration::from_millis(250),
        };
        let step = first
            .saturating_mul(1u32 << retry.min(20))
            .min(self.max_wait);
        let wait = if retry < 3 {
            // The advised steps, with ±10% jitter so workers do not retry in step.
            step.mul_f64(rng.random_range(0.9..=1.1))
        } else {
            step.mul_f64(rng.random_range(0.0..=1.0))
        };
        wait.min(self.max_wait).mul_f64(self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn follows_the_advised_schedule_then_full_jitter() {
        let p = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for (retry, ms) in [(0, 1000), (1, 2000), (2, 4000)] {
            let w = p
                .wait(Schedule::Throttled, retry, None, &mut rng)
                .as_millis() as u64;
            assert!(w >= ms * 9 / 10 && w <= ms * 11 / 10, "retry {retry}: {w}");
        }
        for (retry, ms) in [(0, 250), (1, 500), (2, 1000)] {
            let w = p
                .wait(Schedule::ServerError, retry, None, &mut rng)
                .as_millis() as u64;
            assert!(w >= ms * 9 / 10 && w <= ms * 11 / 10, "retry {retry}: {w}");
        }
        for _ in 0..100 {
            let w = p.wait(Schedule::Throttled, 3, None, &mut rng);
            assert!(w <= Duration::from_secs(8));
            assert!(p.wait(Schedule::Throttled, 30, None, &mut rng) <= p.max_wait);
        }
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let p = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let w = p.wait(
            Schedule::Throttled,
            0,
            Some(Duration::from_secs(7)),
            &mut rng,
        );
        assert_eq!(w, Duration::from_secs(7));
        let w = p.wait(
            Schedule::Throttled,
            0,
            Some(Duration::from_secs(7200)),
            &mut rng,
        );
        assert_eq!(w, p.max_wait);
    }

    #[test]
    fn attempts_and_time_are_bounded() {
        let p = RetryPolicy::default();
        assert!(p.may_retry(Schedule::ServerError, 4, Duration::ZERO));
        assert!(!p.may_retry(Schedule::ServerError, 5, Duration::ZERO));
        assert!(p.may_retry(Schedule::Throttled, 7, Duration::ZERO));
        assert!(!p.may_retry(Schedule::Throttled, 8, Duration::ZERO));
        assert!(!p.may_retry(Schedule::Throttled, 1, Duration::from_secs(301)));
    }
}
