//! One request rate for all workers together, that follows the server.
//!
//! A token bucket whose rate moves AIMD-style: a 429 or 503 cuts it (at most
//! once a second, so one burst of refusals counts once), and every good
//! answer raises it a little, so the run settles just under a limit it was
//! never told. `--rate` is the ceiling. With no ceiling and no refusal yet,
//! there is no limit at all.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cut on a refusal: the new rate is this share of the recent rate.
const DECREASE: f64 = 0.7;
/// Never go slower than this, requests per second.
const MIN_RATE: f64 = 1.0;

pub struct RateLimiter {
    state: Mutex<State>,
}

struct State {
    /// Requests per second now; `None` is no limit.
    rate: Option<f64>,
    ceiling: Option<f64>,
    /// When the next request may start.
    next: Instant,
    last_cut: Option<Instant>,
    /// Measured rate over the last full window, for the first cut.
    window_start: Instant,
    window_count: u64,
    measured: f64,
}

impl RateLimiter {
    pub fn new(ceiling: Option<f64>) -> RateLimiter {
        let now = Instant::now();
        RateLimiter {
            state: Mutex::new(State {
                rate: ceiling,
                ceiling,
                next: now,
                last_cut: None,
                window_start: now,
                window_count: 0,
                measured: 0.0,
            }),
        }
    }

    /// Wait for this request's turn.
    pub fn acquire(&self) {
        let wait = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            s.window_count += 1;
            let elapsed = now.duration_since(s.window_start);
            if elapsed >= Duration::from_secs(1) {
                s.measured = s.window_count as f64 / elapsed.as_secs_f64();
                s.window_start = now;
                s.window_count = 0;
            }
            match s.rate {
                None => Duration::ZERO,
                Some(rate) => {
                    let start = s.next.max(now);
                    s.next = start + Duration::from_secs_f64(1.0 / rate);
                    start - now
                }
            }
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// The server said "too many": slow everybody down.
    pub fn refused(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if s.last_cut
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        s.last_cut = Some(now);
        let current = match s.rate {
            Some(r) => r,
            None => {
                let in_window = now.duration_since(s.window_start).as_secs_f64();
                if s.measured > 0.0 {
                    s.measured
                } else if in_window > 0.0 {
                    s.window_count as f64 / in_window.max(0.1)
                } else {
                    10.0
                }
            }
        };
        s.rate = Some((current * DECREASE).max(MIN_RATE));
    }

    /// A good answer: probe back up, by about two percent (at least one
    /// request per second) per second's worth of good answers.
    pub fn accepted(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rate) = s.rate {
            let step = (rate * 0.02).max(1.0) / rate;
            let raised = rate + step;
            s.rate = match s.ceiling {
                Some(c) => Some(raised.min(c)),
                None => Some(raised),
            };
        }
    }

    /// The current rate, `None` for unlimited.
    pub fn rate(&self) -> Option<f64> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_until_refused_then_cut_once_per_second() {
        let l = RateLimiter::new(None);
        assert_eq!(l.rate(), None);
        l.refused();
        let first = l.rate().unwrap();
        l.refused();
        assert_eq!(l.rate().unwrap(), first, "a burst of refusals cuts once");
    }

    #[test]
    fn ceiling_holds_and_increase_is_additive() {
        let l = RateLimiter::new(Some(100.0));
        for _ in 0..1000 {
            l.accepted();
        }
        assert_eq!(l.rate(), Some(100.0));
        l.refused();
        assert_eq!(l.rate(), Some(70.0));
        // 70 good answers at 70/s is about one second: + about 1.4/s.
        for _ in 0..70 {
            l.accepted();
        }
        let r = l.rate().unwrap();
        assert!(r > 70.9 && r < 71.6, "{r}");
    }

    #[test]
    fn spacing_follows_the_rate() {
        let l = RateLimiter::new(Some(200.0));
        let t = Instant::now();
        for _ in 0..21 {
            l.acquire();
        }
        // 20 gaps of 5 ms.
        assert!(
            t.elapsed() >= Duration::from_millis(95),
            "{:?}",
            t.elapsed()
        );
    }
}
