//! The two limits the API documents: a spike limit (requests per second, a
//! token bucket here) and a daily quota reset at 00:00 UTC. Pure: time is
//! passed in, so both are tested without sleeping.

use std::time::{Duration, Instant};

use chrono::{DateTime, Days, NaiveDate, Utc};

/// A token bucket: `rate` tokens a second, holding at most `rate` (one second of burst).
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        TokenBucket {
            rate,
            capacity: rate,
            tokens: rate,
            last: now,
        }
    }

    /// Take a token, or say how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// Whole seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Requests allowed per UTC day; every request past that is refused until 00:00 UTC.
#[derive(Debug)]
pub struct DailyQuota {
    limit: u64,
    day: NaiveDate,
    used: u64,
}

impl DailyQuota {
    pub fn new(limit: u64, now: DateTime<Utc>) -> Self {
        DailyQuota {
            limit,
            day: now.date_naive(),
            used: 0,
        }
    }

    /// Count a request, or refuse it with the time left until the next 00:00 UTC.
    pub fn take(&mut self, now: DateTime<Utc>) -> Result<(), Duration> {
        if now.date_naive() != self.day {
            self.day = now.date_naive();
            self.used = 0;
        }
        if self.used < self.limit {
            self.used += 1;
            Ok(())
        } else {
            Err(until_midnight(now))
        }
    }

    /// Start the day over, as if 00:00 UTC had just passed.
    pub fn reset(&mut self, now: DateTime<Utc>) {
        self.day = now.date_naive();
        self.used = 0;
    }
}

fn until_midnight(now: DateTime<Utc>) -> Duration {
    let next = now
        .date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc());
    match next {
        Some(next) => (next - now).to_std().unwrap_or(Duration::from_secs(1)),
        None => Duration::from_secs(86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn bucket_allows_a_burst_then_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, t0);
        for _ in 0..10 {
            assert!(b.take(t0).is_ok());
        }
        let wait = b.take(t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert!(b.take(t0 + Duration::from_millis(100)).is_ok());
        assert!(b.take(t0 + Duration::from_millis(100)).is_err());
        // A long pause refills only up to the capacity.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..10 {
            assert!(b.take(later).is_ok());
        }
        assert!(b.take(later).is_err());
    }

    #[test]
    fn bucket_of_zero_is_one() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0, t0);
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0).is_err());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn quota_refuses_until_midnight_then_resets() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 23, 0, 0).unwrap();
        let mut q = DailyQuota::new(2, t);
        assert!(q.take(t).is_ok());
        assert!(q.take(t).is_ok());
        assert_eq!(q.take(t).unwrap_err(), Duration::from_secs(3600));
        let next_day = Utc.with_ymd_and_hms(2024, 5, 2, 0, 0, 1).unwrap();
        assert!(q.take(next_day).is_ok());
        assert!(q.take(next_day).is_ok());
        assert!(q.take(next_day).is_err());
        q.reset(next_day);
        assert!(q.take(next_day).is_ok());
    }
}
