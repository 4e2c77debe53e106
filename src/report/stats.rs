//! What the end-of-run summary, the summary JSON and the HTML report say
//! about a run, gathered as outcomes and exchanges arrive: rows by status,
//! reasons with their first rows, conversations, latency, throughput over
//! time. Each lane (one per worker) keeps a tally of its own, merged into
//! the shared one when it flushes or is dropped: no lock per row.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::{Exchange, Outcome, RowRef, Status};

/// Rows kept per reason as examples (the first ones in input order).
pub const EXAMPLES: usize = 5;
/// Conversations listed as the slowest and as the most failed.
pub const TOP: usize = 10;
/// Distinct reasons counted; past this, rows with a reason not seen yet
/// are left out of the reason counts (never out of the status counts).
const MAX_REASONS: usize = 10_000;

/// One second of the run: what was answered and decided in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Second {
    /// Requests answered (or given up on).
    pub requests: u32,
    /// Rows the API stored in this run (`created`, `exists`).
    pub imported: u32,
    /// Rows `failed` or `uncertain`.
    pub failed: u32,
}

/// Latencies in a log-linear histogram: 8 buckets per power of two of
/// microseconds, so any percentile is within 12.5% of the truth in a
/// fixed 4 KB, however many requests.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_micros: u128,
    max_micros: u64,
}

const SUB: u64 = 8;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; Histogram::BUCKETS],
            total: 0,
            sum_micros: 0,
            max_micros: 0,
        }
    }
}

impl Histogram {
    const BUCKETS: usize = (SUB + 61 * SUB) as usize;

    fn index(micros: u64) -> usize {
        if micros < SUB {
            return micros as usize;
        }
        let e = 63 - u64::from(micros.leading_zeros()); // >= 3
        let sub = (micros >> (e - 3)) - SUB; // 0..8
        (SUB + (e - 3) * SUB + sub) as usize
    }

    /// The range of bucket `i`, in microseconds: `[low, high)`.
    fn bounds(i: usize) -> (u64, u64) {
        let i = i as u64;
        if i < SUB {
            return (i, i + 1);
        }
        let e = 3 + (i - SUB) / SUB;
        let sub = (i - SUB) % SUB;
        let width = 1u64 << (e - 3);
        let low = (SUB + sub) * width;
        (low, low.saturating_add(width))
    }

    pub fn add(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::index(micros)] += 1;
        self.total += 1;
        self.sum_micros += u128::from(micros);
        self.max_micros = self.max_micros.max(micros);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum_micros += other.sum_micros;
        self.max_micros = self.max_micros.max(other.max_micros);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The latency below which a share `q` (0 to 1) of requests fall: the
    /// middle of its bucket, never above the largest seen.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, high) = Self::bounds(i);
                let mid = low + (high - low) / 2;
                return Some(Duration::from_micros(mid.min(self.max_micros)));
            }
        }
        Some(Duration::from_micros(self.max_micros))
    }

    pub fn max(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_micros(self.max_micros))
    }

    pub fn mean(&self) -> Option<Duration> {
        (self.total > 0)
            .then(|| Duration::from_micros((self.sum_micros / u128::from(self.total)) as u64))
    }

    /// The non-empty range of buckets as `(low, high, count)`, in order.
    pub fn buckets(&self) -> Vec<(Duration, Duration, u64)> {
        let first = self.counts.iter().position(|&n| n > 0);
        let last = self.counts.iter().rposition(|&n| n > 0);
        let (Some(first), Some(last)) = (first, last) else {
            return Vec::new();
        };
        (first..=last)
            .map(|i| {
                let (low, high) = Self::bounds(i);
                (
                    Duration::from_micros(low),
                    Duration::from_micros(high),
                    self.counts[i],
                )
            })
            .collect()
    }
}

/// A row shown as an example of a reason.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Example {
    pub pos: RowRef,
    pub conversation_id: String,
}

#[derive(Debug, Clone, Default)]
struct ReasonTally {
    count: u64,
    /// The first rows in input order, at most [`EXAMPLES`].
    examples: Vec<Example>,
}

impl ReasonTally {
    fn example(&mut self, example: Example) {
        if self.examples.len() == EXAMPLES
            && self.examples.last().is_some_and(|last| *last <= example)
        {
            return;
        }
        let at = self.examples.partition_point(|e| *e < example);
        self.examples.insert(at, example);
        self.examples.truncate(EXAMPLES);
    }

    fn merge(&mut self, other: ReasonTally) {
        self.count += other.count;
        for e in other.examples {
            self.example(e);
        }
    }
}

/// Why rows are not created: their status, the HTTP status if one came,
/// and the reason (an invalid row's field and problem, else its message).
type ReasonKey = (Status, Option<u16>, String);

/// One conversation's rows and requests.
#[derive(Debug, Clone, Default)]
struct ConversationTally {
    rows: u32,
    invalid: u32,
    imported: u32,
    failed: u32,
    uncertain: u32,
    skipped: u32,
    not_attempted: u32,
    requests: u32,
    waited: Duration,
    /// The first row (in input order) that is failed, uncertain or
    /// invalid, with its reason.
    first_trouble: Option<(RowRef, String)>,
}

impl ConversationTally {
    fn merge(&mut self, o: ConversationTally) {
        self.rows += o.rows;
        self.invalid += o.invalid;
        self.imported += o.imported;
        self.failed += o.failed;
        self.uncertain += o.uncertain;
        self.skipped += o.skipped;
        self.not_attempted += o.not_attempted;
        self.requests += o.requests;
        self.waited += o.waited;
        if let Some(t) = o.first_trouble {
            self.trouble(t);
        }
    }

    fn trouble(&mut self, t: (RowRef, String)) {
        if self
            .first_trouble
            .as_ref()
            .is_none_or(|(pos, _)| t.0 < *pos)
        {
            self.first_trouble = Some(t);
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    by_status: BTreeMap<Status, u64>,
    reasons: HashMap<ReasonKey, ReasonTally>,
    conversations: HashMap<Box<str>, ConversationTally>,
    latency: Histogram,
    /// Answers by HTTP status.
    http: BTreeMap<u16, u64>,
    /// Requests that got no answer.
    no_answer: u64,
    retries: u64,
    timeline: Vec<Second>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (s, n) in other.by_status {
            *self.by_status.entry(s).or_default() += n;
        }
        for (key, r) in other.reasons {
            if let Some(mine) = self.reasons.get_mut(&key) {
                mine.merge(r);
            } else if self.reasons.len() < MAX_REASONS {
                self.reasons.insert(key, r);
            }
        }
        for (id, c) in other.conversations {
            self.conversations.entry(id).or_default().merge(c);
        }
        self.latency.merge(&other.latency);
        for (s, n) in other.http {
            *self.http.entry(s).or_default() += n;
        }
        self.no_answer += other.no_answer;
        self.retries += other.retries;
        if self.timeline.len() < other.timeline.len() {
            self.timeline
                .resize(other.timeline.len(), Second::default());
        }
        for (a, b) in self.timeline.iter_mut().zip(other.timeline) {
            a.requests += b.requests;
            a.imported += b.imported;
            a.failed += b.failed;
        }
    }

    fn second(&mut self, origin: Instant) -> &mut Second {
        let i = origin.elapsed().as_secs() as usize;
        if self.timeline.len() <= i {
            self.timeline.resize(i + 1, Second::default());
        }
        &mut self.timeline[i]
    }
}

/// A run's statistics; take a [`StatsLane`] per worker.
pub struct Stats {
    origin: Instant,
    /// Input names, for the examples' `file:record`.
    sources: Vec<String>,
    shared: Mutex<Tally>,
}

impl Stats {
    /// Statistics of rows of `sources`; the timeline starts now.
    pub fn new(sources: Vec<String>) -> Stats {
        Stats {
            origin: Instant::now(),
            sources,
            shared: Mutex::new(Tally::default()),
        }
    }

    pub fn lane(&self) -> StatsLane<'_> {
        StatsLane {
            stats: self,
            tally: Tally::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What every lane handed over so far, summed up.
    pub fn summary(&self) -> Summary {
        let tally = self.lock();
        let by_status: Vec<(Status, u64)> = tally
            .by_status
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| (*s, *n))
            .collect();
        let source = |pos: &RowRef| {
            self.sources
                .get(pos.source.0 as usize)
                .cloned()
                .unwrap_or_default()
        };
        let mut reasons: Vec<Reason> = tally
            .reasons
            .iter()
            .map(|((status, http_status, text), r)| Reason {
                status: *status,
                http_status: *http_status,
                text: text.clone(),
                count: r.count,
                examples: r
                    .examples
                    .iter()
                    .map(|e| RowName {
                        source: source(&e.pos),
                        record: e.pos.record,
                        line: e.pos.line,
                        conversation_id: e.conversation_id.clone(),
                    })
                    .collect(),
            })
            .collect();
        reasons.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.first_pos().cmp(&b.first_pos()))
                .then_with(|| a.text.cmp(&b.text))
        });

        let mut conversations = Conversations::default();
        let mut lines = Vec::new();
        for (id, c) in &tally.conversations {
            // Conversations of the plan: invalid rows alone make none.
            if c.rows == c.invalid {
                continue;
            }
            conversations.total += 1;
            if c.imported == c.rows {
                conversations.complete += 1;
            } else if c.imported == 0 {
                conversations.untouched += 1;
            } else {
                conversations.partly += 1;
            }
            lines.push(ConversationLine {
                id: id.to_string(),
                rows: c.rows,
                imported: c.imported,
                failed: c.failed,
                uncertain: c.uncertain,
                skipped: c.skipped,
                invalid: c.invalid,
                not_attempted: c.not_attempted,
                requests: c.requests,
                waited: c.waited,
                first_trouble: c.first_trouble.as_ref().map(|(pos, why)| {
                    (
                        RowName {
                            source: source(pos),
                            record: pos.record,
                            line: pos.line,
                            conversation_id: id.to_string(),
                        },
                        why.clone(),
                    )
                }),
            });
        }
        let mut slowest: Vec<ConversationLine> =
            lines.iter().filter(|c| c.requests > 0).cloned().collect();
        slowest.sort_by(|a, b| b.waited.cmp(&a.waited).then_with(|| a.id.cmp(&b.id)));
        slowest.truncate(TOP);
        let mut most_failed: Vec<ConversationLine> =
            lines.into_iter().filter(|c| c.imported < c.rows).collect();
        most_failed.sort_by(|a, b| {
            (b.rows - b.imported)
                .cmp(&(a.rows - a.imported))
                .then_with(|| b.failed.cmp(&a.failed))
                .then_with(|| a.id.cmp(&b.id))
        });
        most_failed.truncate(TOP);

        let count_http = |f: &dyn Fn(u16) -> bool| -> u64 {
            tally
                .http
                .iter()
                .filter(|(s, _)| f(**s))
                .map(|(_, n)| n)
                .sum()
        };
        let requests = Requests {
            made: tally.latency.count(),
            retries: tally.retries,
            throttled: count_http(&|s| s == 429),
            server_errors: count_http(&|s| s >= 500),
            no_answer: tally.no_answer,
            by_http: tally.http.iter().map(|(s, n)| (*s, *n)).collect(),
        };
        Summary {
            by_status,
            reasons,
            conversations,
            slowest,
            most_failed,
            requests,
            latency: tally.latency.clone(),
            timeline: tally.timeline.clone(),
        }
    }
}

/// A worker's own tally.
pub struct StatsLane<'a> {
    stats: &'a Stats,
    tally: Tally,
}

impl StatsLane<'_> {
    /// Count one row's outcome.
    pub fn outcome(&mut self, o: &Outcome<'_>) {
        let t = &mut self.tally;
        *t.by_status.entry(o.status).or_default() += 1;
        let troubled = matches!(
            o.status,
            Status::Invalid | Status::Failed | Status::Uncertain
        );
        let reason = troubled.then(|| match o.invalid {
            Some(invalid) => invalid.kind(),
            None => o
                .error_message
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "no reason given".into()),
        });
        if let Some(reason) = &reason {
            let key = (o.status, o.http_status, reason.clone());
            let full = t.reasons.len() >= MAX_REASONS;
            let example = Example {
                pos: o.pos,
                conversation_id: o.conversation_id.to_string(),
            };
            match t.reasons.get_mut(&key) {
                Some(r) => {
                    r.count += 1;
                    r.example(example);
                }
                None if !full => {
                    let mut r = ReasonTally {
                        count: 1,
                        ..ReasonTally::default()
                    };
                    r.example(example);
                    t.reasons.insert(key, r);
                }
                None => {}
            }
        }
        if !o.conversation_id.is_empty() {
            let c = match t.conversations.get_mut(o.conversation_id) {
                Some(c) => c,
                None => t.conversations.entry(o.conversation_id.into()).or_default(),
            };
            c.rows += 1;
            match o.status {
                Status::Created | Status::AlreadyImported | Status::Exists => c.imported += 1,
                Status::Invalid => c.invalid += 1,
                Status::Failed => c.failed += 1,
                Status::Uncertain => c.uncertain += 1,
                Status::Skipped => c.skipped += 1,
                Status::NotAttempted => c.not_attempted += 1,
            }
            if let Some(reason) = reason {
                c.trouble((o.pos, reason));
            }
        }
        let (imported, failed) = match o.status {
            Status::Created | Status::Exists => (1, 0),
            Status::Failed | Status::Uncertain => (0, 1),
            _ => (0, 0),
        };
        if imported + failed > 0 {
            let s = t.second(self.stats.origin);
            s.imported += imported;
            s.failed += failed;
        }
    }

    /// Count one request's answer and how long it took.
    pub fn exchange(&mut self, conversation_id: &str, e: Exchange) {
        let t = &mut self.tally;
        t.latency.add(e.latency);
        match e.http_status {
            Some(s) => *t.http.entry(s).or_default() += 1,
            None => t.no_answer += 1,
        }
        if e.retry {
            t.retries += 1;
        }
        t.second(self.stats.origin).requests += 1;
        let c = match t.conversations.get_mut(conversation_id) {
            Some(c) => c,
            None => t.conversations.entry(conversation_id.into()).or_default(),
        };
        c.requests += 1;
        c.waited += e.latency;
    }

    /// Hand the tally to the shared one.
    pub fn flush(&mut self) {
        let tally = std::mem::take(&mut self.tally);
        self.stats.lock().merge(tally);
    }
}

impl Drop for StatsLane<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A row named for people: `file:record`, its line and conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowName {
    pub source: String,
    pub record: u64,
    pub line: u64,
    pub conversation_id: String,
}

impl std::fmt::Display for RowName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source, self.record)
    }
}

/// Rows that share a reason for not being created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub status: Status,
    pub http_status: Option<u16>,
    /// An invalid row's field and problem, else the API's or our message.
    pub text: String,
    pub count: u64,
    /// The first rows in input order, at most [`EXAMPLES`].
    pub examples: Vec<RowName>,
}

impl Reason {
    fn first_pos(&self) -> Option<(&str, u64)> {
        self.examples.first().map(|e| (e.source.as_str(), e.record))
    }
}

impl std::fmt::Display for Reason {
    /// `failed: HTTP 422: text too long`, `invalid: text: empty`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.http_status {
            Some(http) => write!(f, "{}: HTTP {http}: {}", self.status, self.text),
            None => write!(f, "{}: {}", self.status, self.text),
        }
    }
}

/// Conversations of the plan by how much of each the API holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Conversations {
    pub total: u64,
    /// Every row created, already imported or existing.
    pub complete: u64,
    /// Some rows in the API, some not.
    pub partly: u64,
    /// No row in the API.
    pub untouched: u64,
}

/// One conversation, for the slowest and most failed lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationLine {
    pub id: String,
    pub rows: u32,
    /// Rows created, already imported or existing.
    pub imported: u32,
    pub failed: u32,
    pub uncertain: u32,
    pub skipped: u32,
    pub invalid: u32,
    pub not_attempted: u32,
    pub requests: u32,
    /// Time its requests took, added up.
    pub waited: Duration,
    /// Its first row in input order that is failed, uncertain or invalid,
    /// and why.
    pub first_trouble: Option<(RowName, String)>,
}

/// Requests made, by what came back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    pub made: u64,
    /// Second and later attempts of a request.
    pub retries: u64,
    /// Answered 429.
    pub throttled: u64,
    /// Answered 5xx.
    pub server_errors: u64,
    /// No answer: no connection, a timeout, a connection lost.
    pub no_answer: u64,
    pub by_http: Vec<(u16, u64)>,
}

/// Everything the statistics say at the end of a run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Statuses with at least one row, in the contract's order.
    pub by_status: Vec<(Status, u64)>,
    /// Why rows are invalid, failed or uncertain, the most frequent first.
    pub reasons: Vec<Reason>,
    pub conversations: Conversations,
    /// The conversations whose requests took longest, at most [`TOP`].
    pub slowest: Vec<ConversationLine>,
    /// The conversations with the most rows not in the API, at most [`TOP`].
    pub most_failed: Vec<ConversationLine>,
    pub requests: Requests,
    pub latency: Histogram,
    /// Second by second from the start of the run.
    pub timeline: Vec<Second>,
}

impl Summary {
    pub fn count(&self, status: Status) -> u64 {
        self.by_status
            .iter()
            .filter(|(s, _)| *s == status)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.by_status.iter().map(|(_, n)| n).sum()
    }

    /// Rows the API holds: created, already imported, existing.
    pub fn imported(&self) -> u64 {
        self.by_status
            .iter()
            .filter(|(s, _)| s.is_success())
            .map(|(_, n)| n)
            .sum()
    }

    pub fn all_success(&self) -> bool {
        self.by_status
            .iter()
            .all(|(s, n)| *n == 0 || s.is_success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceId;

    fn pos(record: u64) -> RowRef {
        RowRef {
            source: SourceId(0),
            record,
            line: record + 1,
            offset: 0,
        }
    }

    fn outcome<'a>(record: u64, conv: &'a str, status: Status, why: &str) -> Outcome<'a> {
        let mut o = Outcome::bare(pos(record), conv, status);
        if !why.is_empty() {
            o.error_message = Some(why.into());
        }
        o
    }

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.add(Duration::from_millis(ms));
        }
        let near = |q: f64, want_ms: f64| {
            let got = h.quantile(q).unwrap().as_secs_f64() * 1000.0;
            assert!(
                (got - want_ms).abs() <= want_ms * 0.125,
                "p{q}: {got} ms, want about {want_ms}"
            );
        };
        near(0.5, 500.0);
        near(0.95, 950.0);
        near(0.99, 990.0);
        assert_eq!(h.max(), Some(Duration::from_millis(1000)));
        assert_eq!(h.count(), 1000);
        assert!(Histogram::default().quantile(0.5).is_none());
        // Every bucket's bounds hold what it is given.
        for micros in [0u64, 1, 7, 8, 9, 15, 16, 1000, 123_456, u64::MAX / 2] {
            let (low, high) = Histogram::bounds(Histogram::index(micros));
            assert!(low <= micros && micros < high, "{micros}: {low}..{high}");
        }
        let b = h.buckets();
        assert_eq!(b.iter().map(|(_, _, n)| n).sum::<u64>(), 1000);
    }

    #[test]
    fn lanes_merge_into_one_summary() {
        let stats = Stats::new(vec!["a.csv".into()]);
        {
            let mut one = stats.lane();
            let mut two = stats.lane();
            for r in [9, 3, 7, 1, 5, 11] {
                one.outcome(&outcome(r, "C1", Status::Failed, "HTTP 422: too long"));
            }
            one.outcome(&outcome(2, "C1", Status::Created, ""));
            two.outcome(&outcome(4, "C2", Status::Created, ""));
            two.outcome(&outcome(6, "C3", Status::NotAttempted, "not sent"));
            two.exchange(
                "C2",
                Exchange {
                    latency: Duration::from_millis(30),
                    http_status: Some(429),
                    retry: false,
                },
            );
            two.exchange(
                "C2",
                Exchange {
                    latency: Duration::from_millis(10),
                    http_status: Some(200),
                    retry: true,
                },
            );
        }
        let s = stats.summary();
        assert_eq!(s.total(), 9);
        assert_eq!(s.count(Status::Failed), 6);
        assert!(!s.all_success());
        assert_eq!(s.reasons.len(), 1);
        let r = &s.reasons[0];
        assert_eq!(r.count, 6);
        let records: Vec<u64> = r.examples.iter().map(|e| e.record).collect();
        assert_eq!(records, [1, 3, 5, 7, 9], "the first rows in input order");
        assert_eq!(r.examples[0].to_string(), "a.csv:1");
        assert_eq!(
            s.conversations,
            Conversations {
                total: 3,
                complete: 1,
                partly: 1,
                untouched: 1
            }
        );
        assert_eq!(s.most_failed[0].id, "C1");
        assert_eq!(s.most_failed[0].failed, 6);
        assert_eq!(s.slowest[0].id, "C2");
        assert_eq!(s.slowest[0].waited, Duration::from_millis(40));
        assert_eq!((s.requests.made, s.requests.retries), (2, 1));
        assert_eq!(s.requests.throttled, 1);
        let seconds: u32 = s.timeline.iter().map(|x| x.requests).sum();
        assert_eq!(seconds, 2);
    }
}
