//! How a run decides it must stop, in one place (DESIGN.md, "How a run
//! decides it must stop"). Every request's answer is observed here as it
//! happens, across workers:
//!
//! - **down** (exit 3): the server keeps failing (5xx, 503 included, or no
//!   connection at all: refused, DNS, TLS, timeouts) for most recent
//!   requests: 45 of the last 50 failed, or no good answer came for
//!   `down_after` while at least 3 requests failed and none succeeded;
//! - **out of quota** (exit 4): 429s persist for every worker. A worker
//!   persists when one message meets 429s in a row through the advised retries
//!   (1 s, 2 s, 4 s), or at once when the server says to come back later
//!   than a retry would wait (a `Retry-After` past the longest wait, as a
//!   spent quota says "after midnight"). When every worker still sending
//!   persists, the quota is spent. 503 is never a quota signal, and 429s
//!   that some workers get through are a rate limit, not a quota.
//!
//! `--daily-quota` is counted in `worker` (it needs no observation).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::StopReason;

/// Requests looked at by the ratio rule, and how many must have failed.
const WINDOW: usize = 50;
const WINDOW_FAILURES: usize = 45;
/// Failures needed, with no good answer since, for the time rule.
const MIN_FAILURES: u32 = 3;

/// What one request's answer says about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// It answered, and not with 5xx or 429: it works.
    Good,
    /// 429: slow down (a rate limit, or a spent quota).
    Throttled,
    /// 5xx, or no connection, or no answer.
    Failed,
}

pub struct Verdict {
    state: Mutex<State>,
    /// Nothing failed lately: the window is full and holds no failure (so
    /// none came since the last good answer either). A good answer then changes
    /// nothing but `last_good` and takes no lock: every worker observes
    /// every answer here, and at zero latency a profile put a tenth of the
    /// workers' samples on the shared lock and the count over the window.
    quiet: AtomicBool,
    /// When the last good answer came, in nanoseconds since `start`.
    last_good: AtomicU64,
    start: Instant,
    down_after: Duration,
}

struct State {
    recent: VecDeque<bool>,
    /// Failures in `recent`.
    failed: usize,
    failures_since_good: u32,
    last_failure: String,
    /// Workers with a conversation in hand.
    busy: usize,
    /// Of those, the ones whose 429s persist.
    persisting: usize,
}

impl Verdict {
    pub fn new(down_after: Duration) -> Verdict {
        Verdict {
            state: Mutex::new(State {
                recent: VecDeque::with_capacity(WINDOW),
                failed: 0,
                failures_since_good: 0,
                last_failure: String::new(),
                busy: 0,
                persisting: 0,
            }),
            quiet: AtomicBool::new(false),
            last_good: AtomicU64::new(0),
            start: Instant::now(),
            down_after,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One request's answer. `cause` names a failure (for the stop line).
    pub fn observe(&self, seen: Seen, cause: impl FnOnce() -> String) -> Option<StopReason> {
        self.observe_at(seen, cause, Instant::now())
    }

    fn observe_at(
        &self,
        seen: Seen,
        cause: impl FnOnce() -> String,
        now: Instant,
    ) -> Option<StopReason> {
        // An answer that races a failure past this check counts as having
        // come before it: a good answer pushed into a window of good ones
        // changes nothing else.
        if seen == Seen::Good && self.quiet.load(Ordering::Acquire) {
            self.good_at(now);
            return None;
        }
        let mut s = self.lock();
        match seen {
            Seen::Good => {
                self.good_at(now);
                s.failures_since_good = 0;
            }
            Seen::Throttled => return None,
            Seen::Failed => {
                s.failures_since_good += 1;
                s.last_failure = cause();
            }
        }
        if s.recent.len() == WINDOW && s.recent.pop_front() == Some(true) {
            s.failed -= 1;
        }
        s.recent.push_back(seen == Seen::Failed);
        s.failed += usize::from(seen == Seen::Failed);
        let full = s.recent.len() == WINDOW;
        self.quiet.store(full && s.failed == 0, Ordering::Release);
        let failed = s.failed;
        let last_good = self.start + Duration::from_nanos(self.last_good.load(Ordering::Relaxed));
        let since_good = now.saturating_duration_since(last_good);
        let by_ratio = full && failed >= WINDOW_FAILURES;
        let by_time = s.failures_since_good >= MIN_FAILURES && since_good >= self.down_after;
        (seen == Seen::Failed && (by_ratio || by_time)).then(|| StopReason::ApiDown {
            cause: format!(
                "{} (no good answer for {:.0} s; {failed} of the last {} requests failed)",
                s.last_failure,
                since_good.as_secs_f64(),
                s.recent.len()
            ),
        })
    }

    /// A good answer came at `now`. Workers may store out of order, by the
    /// microseconds between their answers: nothing here is that fine.
    fn good_at(&self, now: Instant) {
        let since = now.saturating_duration_since(self.start).as_nanos();
        self.last_good
            .store(u64::try_from(since).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A worker took a conversation (`true`) or has no more (`false`).
    pub fn busy(&self, busy: bool) -> Option<StopReason> {
        let mut s = self.lock();
        if busy {
            s.busy += 1;
        } else {
            s.busy = s.busy.saturating_sub(1);
        }
        s.quota_spent()
    }

    /// A worker's 429s persist (`true`), or it got through again (`false`).
    pub fn persisting(&self, persisting: bool) -> Option<StopReason> {
        let mut s = self.lock();
        if persisting {
            s.persisting += 1;
        } else {
            s.persisting = s.persisting.saturating_sub(1);
        }
        s.quota_spent()
    }
}

impl State {
    fn quota_spent(&self) -> Option<StopReason> {
        (self.persisting > 0 && self.persisting >= self.busy)
            .then_some(StopReason::Quota { flag: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause() -> String {
        "connection refused".into()
    }

    #[test]
    fn an_unreachable_api_is_down_after_a_bounded_time() {
        let v = Verdict::new(Duration::from_secs(10));
        let t = Instant::now();
        for i in 0..3 {
            assert_eq!(
                v.observe_at(Seen::Failed, cause, t + Duration::from_secs(i)),
                None
            );
        }
        let stop = v.observe_at(Seen::Failed, cause, t + Duration::from_secs(11));
        match stop {
            Some(StopReason::ApiDown { cause }) => {
                assert!(
                    cause.starts_with("connection refused (no good answer for 11 s"),
                    "{cause}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn most_recent_requests_failing_is_down_at_once() {
        let v = Verdict::new(Duration::from_secs(3600));
        let t = Instant::now();
        let mut stopped = None;
        for i in 0..WINDOW {
            let seen = if i % 10 == 0 || i == 1 {
                Seen::Good
            } else {
                Seen::Failed
            };
            stopped = stopped.or(v.observe_at(seen, cause, t));
        }
        assert!(stopped.is_none(), "44 of 50 failed: under the line");
        let mut stopped = None;
        for _ in 0..5 {
            stopped = stopped.or(v.observe_at(Seen::Failed, cause, t));
        }
        assert!(matches!(stopped, Some(StopReason::ApiDown { .. })));
    }

    #[test]
    fn failures_after_a_long_good_stretch_count_from_its_last_answer() {
        let v = Verdict::new(Duration::from_secs(10));
        let t = Instant::now();
        // Past a full window of good answers, they take no lock: the last
        // one's time must still be the one the time rule counts from.
        for i in 0..=(2 * WINDOW as u64) {
            assert_eq!(
                v.observe_at(Seen::Good, cause, t + Duration::from_millis(50 * i)),
                None
            );
        }
        let last_good = t + Duration::from_millis(50 * 2 * WINDOW as u64);
        for i in 1..=3 {
            assert_eq!(
                v.observe_at(Seen::Failed, cause, last_good + Duration::from_secs(i)),
                None
            );
        }
        match v.observe_at(Seen::Failed, cause, last_good + Duration::from_secs(11)) {
            Some(StopReason::ApiDown { cause }) => assert!(
                cause.starts_with("connection refused (no good answer for 11 s; 4 of the last 50"),
                "{cause}"
            ),
            other => panic!("{other:?}"),
        }
        // And the ratio rule counts the window whole: 45 of 50.
        let v = Verdict::new(Duration::from_secs(3600));
        for _ in 0..(2 * WINDOW) {
            assert_eq!(v.observe_at(Seen::Good, cause, t), None);
        }
        for i in 1..WINDOW_FAILURES {
            assert_eq!(v.observe_at(Seen::Failed, cause, t), None, "failure {i}");
        }
        assert!(matches!(
            v.observe_at(Seen::Failed, cause, t),
            Some(StopReason::ApiDown { .. })
        ));
    }

    #[test]
    fn a_fifth_of_503s_or_half_never_makes_a_verdict() {
        let v = Verdict::new(Duration::from_secs(10));
        let t = Instant::now();
        let mut x: u64 = 1;
        for i in 0..100_000u64 {
            // Half the answers fail, at random, a request every 10 ms.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let seen = if x.is_multiple_of(2) {
                Seen::Failed
            } else {
                Seen::Good
            };
            let at = t + Duration::from_millis(10 * i);
            assert_eq!(v.observe_at(seen, cause, at), None, "request {i}");
        }
    }

    #[test]
    fn throttling_alone_is_neither_down_nor_a_quota() {
        let v = Verdict::new(Duration::from_secs(1));
        let t = Instant::now();
        for i in 0..1000 {
            assert_eq!(
                v.observe_at(Seen::Throttled, cause, t + Duration::from_secs(i)),
                None
            );
        }
    }

    #[test]
    fn the_quota_is_spent_when_every_busy_worker_persists() {
        let v = Verdict::new(Duration::from_secs(10));
        for _ in 0..3 {
            assert_eq!(v.busy(true), None);
        }
        assert_eq!(v.persisting(true), None);
        assert_eq!(v.persisting(true), None);
        // One gets through again: a rate limit, not a quota.
        assert_eq!(v.persisting(false), None);
        assert_eq!(v.persisting(true), None);
        assert_eq!(v.persisting(true), Some(StopReason::Quota { flag: false }));
        // Or the last worker still sending persists while the others are done.
        let v = Verdict::new(Duration::from_secs(10));
        v.busy(true);
        v.busy(true);
        assert_eq!(v.persisting(true), None);
        assert_eq!(v.busy(false), Some(StopReason::Quota { flag: false }));
    }
}
