//! Progress on stderr: on a terminal, an indicatif bar; without one (cron,
//! CI, Kubernetes logs), one plain line every `--progress-every` seconds
//! with the UTC time of day, so logs stay readable. Both show the same
//! figures: messages done of the plan's, conversations done of the plan's,
//! the current rate, failures so far and an estimate of the end.

use std::collections::{HashMap, VecDeque};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::model::{Conversation, Outcome, Status};

/// Live counts, fed by outcomes as they arrive.
#[derive(Debug, Default)]
pub struct Counters {
    /// Rows with an outcome so far (sent or not, invalid ones included).
    pub done: AtomicU64,
    /// Planned messages (valid rows) with an outcome.
    pub messages: AtomicU64,
    /// Planned conversations whose every message has an outcome.
    pub conversations: AtomicU64,
    pub created: AtomicU64,
    pub failed: AtomicU64,
    pub uncertain: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    /// Messages per planned conversation, known once the plan is.
    sizes: OnceLock<HashMap<Box<str>, u32>>,
}

impl Counters {
    /// Count one row's outcome.
    pub fn outcome(&self, o: &Outcome<'_>) {
        let add = |c: &AtomicU64, n: u64| {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.done, 1);
        if o.status != Status::Invalid {
            add(&self.messages, 1);
        }
        match o.status {
            Status::Created => add(&self.created, 1),
            Status::Failed => add(&self.failed, 1),
            Status::Uncertain => add(&self.uncertain, 1),
            _ => {}
        }
        add(&self.requests, u64::from(o.requests));
        add(&self.retries, u64::from(o.requests.saturating_sub(1)));
    }

    /// Requests that belong to no one row (a batch, creating or reading
    /// back a conversation).
    pub fn requests(&self, n: u32) {
        self.requests.fetch_add(u64::from(n), Ordering::Relaxed);
    }

    /// Rows accounted for before sending (invalid ones).
    pub fn add_done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// The plan is known: how many messages each conversation has, so that
    /// a conversation is counted done with its last message.
    pub fn plan(&self, conversations: &[Conversation]) -> Totals {
        let sizes = conversations
            .iter()
            .map(|c| (c.id.clone(), c.entries.len() as u32))
            .collect();
        let _ = self.sizes.set(sizes);
        Totals {
            messages: conversations.iter().map(|c| c.entries.len() as u64).sum(),
            conversations: conversations.len() as u64,
        }
    }

    /// A worker's handle: it follows the conversation in hand.
    pub fn lane(&self) -> ProgressLane<'_> {
        ProgressLane {
            counters: self,
            current: String::new(),
            left: None,
        }
    }

    fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            messages: get(&self.messages),
            conversations: get(&self.conversations),
            failed: get(&self.failed),
            uncertain: get(&self.uncertain),
        }
    }
}

/// One worker's end of the counters. A worker gives every message of a
/// conversation its outcome before it takes the next conversation, so the
/// conversation in hand is done when its last message is.
pub struct ProgressLane<'a> {
    counters: &'a Counters,
    current: String,
    /// Messages of the conversation in hand still without an outcome.
    left: Option<u32>,
}

impl ProgressLane<'_> {
    pub fn outcome(&mut self, o: &Outcome<'_>) {
        self.counters.outcome(o);
        if o.status == Status::Invalid {
            return;
        }
        if self.current != o.conversation_id {
            self.current.clear();
            self.current.push_str(o.conversation_id);
            self.left = self
                .counters
                .sizes
                .get()
                .and_then(|sizes| sizes.get(o.conversation_id).copied());
        }
        if let Some(left) = &mut self.left {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.left = None;
                self.counters.conversations.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn requests(&mut self, n: u32) {
        self.counters.requests(n);
    }
}

/// What the plan holds: what progress counts towards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub messages: u64,
    pub conversations: u64,
}

/// The counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Snapshot {
    messages: u64,
    conversations: u64,
    failed: u64,
    uncertain: u64,
}

/// How far back the current rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// How often the counters are sampled (and the bar redrawn).
const TICK: Duration = Duration::from_millis(250);

/// Messages per second over the last [`RATE_WINDOW`].
struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    fn new(now: Instant, messages: u64) -> Rate {
        Rate {
            samples: VecDeque::from([(now, messages)]),
        }
    }

    fn add(&mut self, now: Instant, messages: u64) -> f64 {
        self.samples.push_back((now, messages));
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= RATE_WINDOW {
            self.samples.pop_front();
        }
        let (then, before) = self.samples[0];
        let secs = now.duration_since(then).as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            messages.saturating_sub(before) as f64 / secs
        }
    }
}

pub struct Progress {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Progress {
    /// Start drawing towards `totals`; `quiet` draws nothing. Without a
    /// terminal, a line every `log_every`.
    pub fn start(
        counters: Arc<Counters>,
        totals: Totals,
        quiet: bool,
        log_every: Duration,
    ) -> Progress {
        if quiet || totals.messages == 0 {
            return Progress {
                stop: None,
                handle: None,
            };
        }
        let (tx, rx) = mpsc::channel::<()>();
        let terminal = std::io::stderr().is_terminal();
        let handle = thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let started = Instant::now();
                let mut rate = Rate::new(started, counters.snapshot().messages);
                let bar = terminal.then(|| {
                    let bar = indicatif::ProgressBar::new(totals.messages);
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{elapsed_precise} [{bar:30}] {pos}/{len} messages  {msg}",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar
                });
                let mut last_line = started;
                loop {
                    let stopping =
                        !matches!(rx.recv_timeout(TICK), Err(mpsc::RecvTimeoutError::Timeout));
                    let now = Instant::now();
                    let snap = counters.snapshot();
                    let per_second = rate.add(now, snap.messages);
                    let eta = eta(&snap, totals, per_second, now.duration_since(started));
                    if let Some(bar) = &bar {
                        bar.set_position(snap.messages);
                        bar.set_message(figures(&snap, totals, per_second, &eta, "  "));
                    } else if !stopping && now.duration_since(last_line) >= log_every {
                        last_line = now;
                        say!(
                            "{}",
                            log_line(chrono::Utc::now(), &snap, totals, per_second, &eta)
                        );
                    }
                    if stopping {
                        break;
                    }
                }
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
            })
            .ok();
        Progress {
            stop: Some(tx),
            handle,
        }
    }

    pub fn finish(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// `35/220 conversations, 85 msg/s, 3 failed, eta 45s`, joined by `sep`.
fn figures(s: &Snapshot, totals: Totals, per_second: f64, eta: &str, sep: &str) -> String {
    let mut parts = vec![
        format!("{}/{} conversations", s.conversations, totals.conversations),
        format!("{} msg/s", rate_text(per_second)),
        format!("{} failed", s.failed),
    ];
    if s.uncertain > 0 {
        parts.push(format!("{} uncertain", s.uncertain));
    }
    parts.push(format!("eta {eta}"));
    parts.join(sep)
}

/// The log line: `12:03:04Z progress: 1200/5000 messages (24%), 35/220
/// conversations, 85 msg/s, 3 failed, eta 45s`.
fn log_line(
    now: chrono::DateTime<chrono::Utc>,
    s: &Snapshot,
    totals: Totals,
    per_second: f64,
    eta: &str,
) -> String {
    format!(
        "{} progress: {}/{} messages ({:.0}%), {}",
        now.format("%H:%M:%SZ"),
        s.messages,
        totals.messages,
        s.messages as f64 * 100.0 / totals.messages.max(1) as f64,
        figures(s, totals, per_second, eta, ", ")
    )
}

fn rate_text(per_second: f64) -> String {
    if per_second >= 10.0 || per_second == 0.0 {
        format!("{per_second:.0}")
    } else {
        format!("{per_second:.1}")
    }
}

/// When the rest will be done: at the current rate, or at the rate so far
/// when nothing was done lately.
fn eta(s: &Snapshot, totals: Totals, per_second: f64, elapsed: Duration) -> String {
    let left = totals.messages.saturating_sub(s.messages);
    if left == 0 {
        return "now".into();
    }
    let rate = if per_second > 0.0 {
        per_second
    } else if s.messages > 0 && elapsed > Duration::ZERO {
        s.messages as f64 / elapsed.as_secs_f64()
    } else {
        return "unknown".into();
    };
    duration_text((left as f64 / rate).round() as u64)
}

fn duration_text(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RowRef, SourceId};
    use chrono::TimeZone;

    fn snap(messages: u64, conversations: u64, failed: u64, uncertain: u64) -> Snapshot {
        Snapshot {
            messages,
            conversations,
            failed,
            uncertain,
        }
    }

    const TOTALS: Totals = Totals {
        messages: 5000,
        conversations: 220,
    };

    #[test]
    fn eta_follows_the_current_rate_else_the_rate_so_far() {
        let s = snap(1000, 10, 0, 0);
        assert_eq!(eta(&s, TOTALS, 100.0, Duration::from_secs(5)), "40s");
        assert_eq!(eta(&s, TOTALS, 2.0, Duration::from_secs(5)), "33m20s");
        assert_eq!(eta(&s, TOTALS, 0.5, Duration::from_secs(5)), "2h13m");
        // Nothing lately: the rate so far (1000 in 10 s).
        assert_eq!(eta(&s, TOTALS, 0.0, Duration::from_secs(10)), "40s");
        assert_eq!(
            eta(&snap(0, 0, 0, 0), TOTALS, 0.0, Duration::ZERO),
            "unknown"
        );
        assert_eq!(
            eta(&snap(5000, 220, 0, 0), TOTALS, 0.0, Duration::ZERO),
            "now"
        );
    }

    #[test]
    fn a_log_line_has_the_time_of_day_and_every_figure() {
        let at = chrono::Utc.with_ymd_and_hms(2024, 3, 1, 12, 3, 4).unwrap();
        assert_eq!(
            log_line(at, &snap(1200, 35, 3, 0), TOTALS, 85.2, "45s"),
            "12:03:04Z progress: 1200/5000 messages (24%), 35/220 conversations, 85 msg/s, 3 failed, eta 45s"
        );
        assert_eq!(
            log_line(at, &snap(1200, 35, 3, 2), TOTALS, 2.25, "1m00s"),
            "12:03:04Z progress: 1200/5000 messages (24%), 35/220 conversations, 2.2 msg/s, 3 failed, 2 uncertain, eta 1m00s"
        );
    }

    #[test]
    fn the_rate_looks_back_ten_seconds() {
        let t0 = Instant::now();
        let mut r = Rate::new(t0, 0);
        assert_eq!(r.add(t0 + Duration::from_secs(1), 100), 100.0);
        // 20 s in: the first samples are out of the window.
        for s in 2..=20 {
            r.add(t0 + Duration::from_secs(s), 100 + (s - 1) * 10);
        }
        let now = r.add(t0 + Duration::from_secs(21), 300);
        assert!((now - 10.0).abs() < 0.5, "{now}");
    }

    #[test]
    fn a_conversation_is_done_with_its_last_message() {
        let counters = Counters::default();
        let conv = |id: &str, n: usize| Conversation {
            id: id.into(),
            api: None,
            participants: Default::default(),
            entries: (0..n)
                .map(|i| {
                    let pos = RowRef {
                        source: SourceId(0),
                        record: i as u64 + 1,
                        line: 0,
                        offset: 0,
                    };
                    let at = crate::model::Timestamp {
                        instant: chrono::DateTime::UNIX_EPOCH,
                        digits: 0,
                    };
                    crate::model::Entry::new(pos, at, crate::model::ContentKey([0; 16])).unwrap()
                })
                .collect(),
            imported: Vec::new(),
        };
        let totals = counters.plan(&[conv("A", 2), conv("B", 1)]);
        assert_eq!(
            totals,
            Totals {
                messages: 3,
                conversations: 2
            }
        );
        let mut lane = counters.lane();
        let o = |id| Outcome::bare(RowRef::default(), id, Status::Created);
        lane.outcome(&Outcome::bare(RowRef::default(), "A", Status::Invalid));
        lane.outcome(&o("A"));
        assert_eq!(counters.snapshot().conversations, 0);
        lane.outcome(&o("A"));
        assert_eq!(counters.snapshot().conversations, 1);
        lane.outcome(&o("B"));
        assert_eq!(counters.snapshot(), snap(3, 2, 0, 0));
        assert_eq!(counters.done.load(Ordering::Relaxed), 4);
    }
}
