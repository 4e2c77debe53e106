//! One request rate for all workers together, that follows the server.
//!
//! A token bucket whose rate moves AIMD-style. Answers are counted over
//! one-second windows; a window in which the server refused (429/503) a
//! real share of the requests cuts the rate to what the server accepted in
//! that window (its goodput: with a rate limit, about that limit), never
//! by more than half and at most once a window. A few refusals scattered
//! among many good answers are retried but do not cut: random throttling
//! that does not depend on the rate would otherwise ratchet the rate down
//! to nothing. Every good answer raises the rate a little, so the run
//! settles just under a limit it was never told. `--rate` is the ceiling.
//! With no ceiling and no cut yet, there is no limit at all.
//!
//! A cut is a test: a rate limit refuses less once the rate is down, while
//! refusals that do not depend on the rate (a server answering 503 to a
//! fifth of all requests, whatever the pace) come back at the same share.
//! The window after a cut is read as whichever it looks more like, allowing
//! for the chance spread of a share counted over a few dozen answers: when
//! it looks like refusals that do not follow the rate, the cut is undone
//! and that share becomes a baseline. Only a share clearly above the
//! baseline (by a tenth and by more than chance explains) cuts again; the
//! baseline fades as windows are refused less, and never follows a rising
//! share up, which is what crossing a limit looks like.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The deepest cut on a refusal: the new rate is at least this share of the
/// rate the window saw.
const DECREASE: f64 = 0.5;
/// A window cuts when at least this share of its answers were refusals...
const REFUSED_SHARE: f64 = 0.2;
/// ...and at least this many.
const REFUSED_MIN: u64 = 2;
/// Never go slower than this, requests per second.
const MIN_RATE: f64 = 1.0;
/// The length of a counting window.
const WINDOW: Duration = Duration::from_secs(1);
/// A window cuts past the baseline only when refused this much more.
const ABOVE_BASELINE: f64 = 0.1;
/// How far each window moves the baseline towards its own share.
const BASELINE_PACE: f64 = 0.05;
/// Standard errors of a window's share that chance alone may explain: a
/// cut past the baseline needs this many...
const NOISE_MARGIN: f64 = 3.0;
/// ...and a cut is undone when the window after it is within this many of
/// looking like the refusals did not follow the rate.
const UNDO_MARGIN: f64 = 2.0;

pub struct RateLimiter {
    state: Mutex<State>,
}

struct State {
    /// Requests per second now; `None` is no limit.
    rate: Option<f64>,
    ceiling: Option<f64>,
    /// When the next request may start.
    next: Instant,
    /// The current counting window.
    window_start: Instant,
    accepted: u64,
    refused: u64,
    /// The last cut, waiting for the next window to say if it helped.
    cut: Option<Cut>,
    /// The share of refusals seen not to depend on the rate.
    baseline: f64,
}

/// A cut of the rate, and the window that caused it.
struct Cut {
    /// The rate before it.
    before: Option<f64>,
    /// The share of refusals in that window...
    share: f64,
    /// ...and the answers a second it accepted.
    goodput: f64,
}

impl State {
    /// Close the window if it is over, cutting the rate if the server
    /// refused a real share of its requests.
    fn roll(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.window_start);
        if elapsed < WINDOW {
            return;
        }
        let total = self.accepted + self.refused;
        if total == 0 {
            // Nothing answered (every worker waiting): nothing learnt, and
            // a cut waiting to be judged waits for a window that says.
            self.window_start = now;
            return;
        }
        let secs = elapsed.as_secs_f64();
        let offered = total as f64 / secs;
        let goodput = self.accepted as f64 / secs;
        let share = self.refused as f64 / total as f64;
        // How far a window's share strays from `p` by chance alone: a few
        // dozen answers a window make a fifth look like a quarter now and
        // then.
        let noise = |p: f64| (p * (1.0 - p) / total as f64).sqrt();
        let mut undone = false;
        if let Some(cut) = self.cut.take() {
            // Had a limit at the goodput before the cut caused it, on top
            // of the baseline, the share now would be this; refusals that
            // do not follow the rate would stay where they were. The
            // window is read as whichever it is nearer.
            let limited = (1.0 - cut.goodput / offered).max(self.baseline);
            let between = (cut.share + limited) / 2.0;
            if share + UNDO_MARGIN * noise(share) >= between {
                // As refused at the lower rate: not a rate limit.
                self.rate = cut.before;
                self.baseline = self.baseline.max(share);
                undone = true;
            }
        }
        let threshold =
            REFUSED_SHARE.max(self.baseline + ABOVE_BASELINE + NOISE_MARGIN * noise(self.baseline));
        if self.refused >= REFUSED_MIN && share >= threshold {
            let current = self.rate.map_or(offered, |r| r.min(offered.max(MIN_RATE)));
            self.cut = Some(Cut {
                before: self.rate,
                share,
                goodput,
            });
            self.rate = Some(goodput.max(current * DECREASE).min(current).max(MIN_RATE));
        } else if !undone && share < self.baseline {
            // Only a cut that did not help raises the baseline (a rising
            // share is what a limit being crossed looks like); windows
            // refused less let it fade, so it ends with the refusals.
            self.baseline += BASELINE_PACE * (share - self.baseline);
        }
        self.window_start = now;
        self.accepted = 0;
        self.refused = 0;
    }
}

impl RateLimiter {
    pub fn new(ceiling: Option<f64>) -> RateLimiter {
        let now = Instant::now();
        RateLimiter {
            state: Mutex::new(State {
                rate: ceiling,
                ceiling,
                next: now,
                window_start: now,
                accepted: 0,
                refused: 0,
                cut: None,
                baseline: 0.0,
            }),
        }
    }

    /// Wait for this request's turn.
    pub fn acquire(&self) {
        let wait = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            s.roll(now);
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

    /// The server said "too many": counted; enough of them slow everybody down.
    pub fn refused(&self) {
        self.refused_at(Instant::now());
    }

    fn refused_at(&self, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.roll(now);
        s.refused += 1;
    }

    /// A good answer: probe back up, by about two percent (at least one
    /// request per second) per second's worth of good answers.
    pub fn accepted(&self) {
        self.accepted_at(Instant::now());
    }

    fn accepted_at(&self, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.roll(now);
        s.accepted += 1;
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

    /// `n` answers spread evenly over one window starting at `t`, every
    /// `refuse_every`-th refused (0: none).
    fn window(l: &RateLimiter, t: Instant, n: u32, refuse_every: u32) {
        for i in 0..n {
            let at = t + WINDOW.mul_f64(f64::from(i) / f64::from(n));
            if refuse_every > 0 && i % refuse_every == 0 {
                l.refused_at(at);
            } else {
                l.accepted_at(at);
            }
        }
    }

    #[test]
    fn unlimited_until_a_window_with_many_refusals_then_cut_to_goodput() {
        let l = RateLimiter::new(None);
        let t = Instant::now();
        // 1,000 requests in a second, every second one refused.
        window(&l, t, 1000, 2);
        assert_eq!(l.rate(), None, "the cut comes when the window closes");
        l.accepted_at(t + WINDOW);
        let r = l.rate().unwrap();
        assert!(
            (499.0..=520.0).contains(&r),
            "cut to about the goodput: {r}"
        );
    }

    #[test]
    fn scattered_refusals_do_not_ratchet_the_rate_down() {
        let l = RateLimiter::new(Some(100.0));
        let t = Instant::now();
        // Ten seconds at 100/s with one answer in ten refused.
        for s in 0..10 {
            window(&l, t + WINDOW * s, 100, 10);
        }
        l.accepted_at(t + WINDOW * 10);
        assert_eq!(l.rate(), Some(100.0));
    }

    #[test]
    fn a_burst_of_refusals_cuts_once_and_at_most_by_half() {
        let l = RateLimiter::new(Some(100.0));
        let t = Instant::now();
        // Everything refused: goodput 0, but the cut is at most a half.
        window(&l, t, 100, 1);
        l.refused_at(t + WINDOW);
        let r = l.rate().unwrap();
        assert!((49.5..=50.0).contains(&r), "{r}");
        for _ in 0..100 {
            l.refused_at(t + WINDOW);
        }
        assert_eq!(l.rate(), Some(r), "one cut per window");
    }

    #[test]
    fn refusals_that_do_not_follow_the_rate_do_not_ratchet_it_down() {
        let l = RateLimiter::new(Some(100.0));
        let t = Instant::now();
        // A fifth or more of every window refused, whatever the rate: the
        // first cut is undone when the next window is refused as much.
        for s in 0..60 {
            window(&l, t + WINDOW * s, 100, 4);
        }
        l.accepted_at(t + WINDOW * 60);
        let r = l.rate().unwrap();
        assert!(r >= 90.0, "{r}");
    }

    #[test]
    fn a_rate_limit_met_after_random_refusals_still_cuts() {
        let l = RateLimiter::new(Some(100.0));
        let t = Instant::now();
        for s in 0..5 {
            window(&l, t + WINDOW * s, 100, 4);
        }
        // Then most requests refused: a limit well under the rate.
        window(&l, t + WINDOW * 5, 100, 1);
        l.accepted_at(t + WINDOW * 6);
        let r = l.rate().unwrap();
        assert!(r <= 60.0, "{r}");
    }

    #[test]
    fn ceiling_holds_and_increase_is_additive() {
        let l = RateLimiter::new(Some(100.0));
        let t = Instant::now();
        for _ in 0..1000 {
            l.accepted_at(t);
        }
        assert_eq!(l.rate(), Some(100.0));
        // 30 of 100 refused: cut to the 70 accepted.
        window(&l, t + WINDOW, 100, 0);
        for i in 0..30 {
            l.refused_at(t + WINDOW * 2 + Duration::from_millis(i));
        }
        for i in 0..70 {
            l.accepted_at(t + WINDOW * 2 + Duration::from_millis(30 + i));
        }
        l.refused_at(t + WINDOW * 3);
        let r = l.rate().unwrap();
        assert!((69.9..=70.0).contains(&r), "{r}");
        // 70 good answers at 70/s is about one second: + about 1.4/s.
        for _ in 0..70 {
            l.accepted_at(t + WINDOW * 3);
        }
        let r = l.rate().unwrap();
        assert!(r > 70.9 && r < 71.6, "{r}");
    }

    /// A server for `windows` seconds: the workers can offer at most `cap`
    /// requests a second (their own retry waits bound them), a rate limit
    /// refuses what is over `limit`, and every request is refused at
    /// random with probability `random`. The rate after each window.
    fn simulate(
        l: &RateLimiter,
        windows: u32,
        cap: f64,
        limit: f64,
        random: f64,
        seed: u64,
    ) -> Vec<f64> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let t = Instant::now();
        let mut rates = Vec::new();
        for w in 0..windows {
            let offered = l.rate().map_or(cap, |r| r.min(cap)).round().max(1.0) as u32;
            let over = (f64::from(offered) - limit).max(0.0) / f64::from(offered);
            let start = t + WINDOW * w;
            for i in 0..offered {
                let at = start + WINDOW.mul_f64(f64::from(i) / f64::from(offered));
                if rng.random_bool(over) || rng.random_bool(random) {
                    l.refused_at(at);
                } else {
                    l.accepted_at(at);
                }
            }
            l.accepted_at(start + WINDOW);
            rates.push(l.rate().unwrap_or(f64::INFINITY));
        }
        rates
    }

    #[test]
    fn a_long_storm_of_random_refusals_does_not_wind_the_rate_down() {
        // A fifth of all answers refused whatever the pace, the workers'
        // waits letting about 80 requests a second through: over ten
        // minutes the rate lets them offer nearly all of that, and a
        // window cut by chance is undone the next.
        for seed in 0..20 {
            let l = RateLimiter::new(None);
            let rates = simulate(&l, 600, 80.0, f64::INFINITY, 0.2, seed);
            let offered: f64 = rates.iter().map(|r| r.min(80.0)).sum();
            let slow = rates.iter().filter(|r| **r < 60.0).count();
            assert!(
                offered >= 0.97 * 600.0 * 80.0 && slow <= 12,
                "seed {seed}: {:.0} % of what the workers can offer, {slow} windows under 60/s",
                100.0 * offered / (600.0 * 80.0)
            );
        }
    }

    #[test]
    fn an_unknown_rate_limit_is_found_under_random_refusals_too() {
        for (random, seed) in [(0.0, 1), (0.2, 2), (0.2, 3)] {
            let l = RateLimiter::new(None);
            let rates = simulate(&l, 120, 2000.0, 500.0, random, seed);
            let tail = &rates[60..];
            let mean = tail.iter().sum::<f64>() / tail.len() as f64;
            assert!(
                (450.0..=600.0).contains(&mean),
                "random {random}: settled at {mean:.0}/s against a limit of 500"
            );
        }
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
