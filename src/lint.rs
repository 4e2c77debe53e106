//! Warnings for `check`: things that are valid but look wrong. They never
//! block a run. Rows leave nothing here but two counters; the rest is read
//! off the plan, where each conversation is already sorted by instant and
//! identical messages are numbered, so checking costs no memory per row.
//!
//! - `future_timestamp`: after the time the check runs;
//! - `old_timestamp`: before 1990-01-01 (often an epoch value in the wrong
//!   unit, or a zero date);
//! - `timestamp_tie`: two different messages of one conversation at the
//!   same instant: their order rests on input order;
//! - `duplicate_message`: the same instant, role, sender and text twice in
//!   one conversation;
//! - `long_conversation`: first and last message more than 30 days apart.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::model::{Conversation, RowRef};
use crate::validate::Valid;

/// How many example rows a warning keeps.
pub const EXAMPLES: usize = 5;

/// Conversations spanning more than this many days are reported.
pub const LONG_CONVERSATION_DAYS: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub kind: &'static str,
    pub message: String,
    pub count: u64,
    /// The first few rows concerned, in input order.
    pub examples: Vec<RowRef>,
}

#[derive(Debug, Default)]
struct Tally {
    count: u64,
    /// The first rows in input order, whatever order they are met in.
    examples: Vec<RowRef>,
}

impl Tally {
    fn add(&mut self, at: RowRef) {
        self.count += 1;
        let i = self.examples.partition_point(|e| *e < at);
        if i < EXAMPLES {
            self.examples.insert(i, at);
            self.examples.truncate(EXAMPLES);
        }
    }
}

pub struct Linter {
    now: DateTime<Utc>,
    oldest_plausible: DateTime<Utc>,
    future: Tally,
    old: Tally,
}

impl Linter {
    pub fn new(now: DateTime<Utc>) -> Self {
        Linter {
            now,
            oldest_plausible: Utc
                .with_ymd_and_hms(1990, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            future: Tally::default(),
            old: Tally::default(),
        }
    }

    pub fn row(&mut self, row: &Valid) {
        let instant = row.timestamp.instant;
        if instant > self.now {
            self.future.add(row.pos);
        }
        if instant < self.oldest_plausible {
            self.old.add(row.pos);
        }
    }

    /// The warnings, the plan's among them.
    pub fn finish(self, plan: &[Conversation]) -> Vec<Warning> {
        let (mut ties, mut duplicates) = (Tally::default(), Tally::default());
        let mut long: Vec<(&str, i64, RowRef)> = Vec::new();
        let limit = Duration::days(LONG_CONVERSATION_DAYS);
        for conversation in plan {
            let mut previous = None;
            for entry in &conversation.entries {
                let key = entry.key();
                let instant = entry.timestamp().map(|t| t.instant);
                // Identical messages (same content, so same instant) are
                // numbered by the plan; a first one at an instant already
                // taken is a tie.
                if key.occurrence > 0 {
                    duplicates.add(entry.pos());
                } else if instant.is_some() && instant == previous {
                    ties.add(entry.pos());
                }
                previous = instant;
            }
            let first = conversation.entries.first().and_then(|e| e.timestamp());
            let last = conversation.entries.last().and_then(|e| e.timestamp());
            if let (Some(first), Some(last), Some(entry)) =
                (first, last, conversation.entries.first())
            {
                let span = last.instant - first.instant;
                if span > limit {
                    long.push((&conversation.id, span.num_days(), entry.pos()));
                }
            }
        }
        let mut out = Vec::new();
        let mut push = |kind: &'static str, tally: Tally, message: String| {
            if tally.count > 0 {
                out.push(Warning {
                    kind,
                    message,
                    count: tally.count,
                    examples: tally.examples,
                });
            }
        };
        let n = |t: &Tally| t.count;
        let f = n(&self.future);
        push(
            "future_timestamp",
            self.future,
            format!("{f} message(s) have a timestamp in the future"),
        );
        let o = n(&self.old);
        push(
            "old_timestamp",
            self.old,
            format!("{o} message(s) have a timestamp before 1990 (epoch in the wrong unit?)"),
        );
        let t = n(&ties);
        push(
            "timestamp_tie",
            ties,
            format!(
                "{t} message(s) share their conversation's instant with another message; \
                 their order follows the input order"
            ),
        );
        let d = n(&duplicates);
        push(
            "duplicate_message",
            duplicates,
            format!(
                "{d} message(s) repeat an earlier message of their conversation exactly \
                 (instant, role, sender, text); each is sent as a message of its own"
            ),
        );
        long.sort_by_key(|(_, _, at)| *at);
        let mut tally = Tally::default();
        for (_, _, at) in &long {
            tally.add(*at);
        }
        let shown: Vec<String> = long
            .iter()
            .take(EXAMPLES)
            .map(|(id, days, _)| format!("{} ({days} days)", crate::model::excerpt(id)))
            .collect();
        let l = tally.count;
        push(
            "long_conversation",
            tally,
            format!(
                "{l} conversation(s) span more than {LONG_CONVERSATION_DAYS} days: {}",
                shown.join(", ")
            ),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Role, SourceId, Timestamp};
    use crate::validate::Row;

    fn at(record: u64) -> RowRef {
        RowRef {
            source: SourceId(0),
            record,
            line: record + 1,
            offset: record * 10,
        }
    }

    fn row(record: u64, conv: &str, secs: i64, text: &str) -> Row {
        Row {
            pos: at(record),
            conversation_id: conv.to_string(),
            timestamp: Timestamp::new(DateTime::from_timestamp(secs, 0).unwrap(), 0),
            role: Role::Agent,
            sender_id: "a".to_string(),
            text: text.to_string(),
        }
    }

    const NOW: i64 = 1_700_000_000;

    fn lint(rows: &[Row]) -> Vec<Warning> {
        let mut l = Linter::new(DateTime::from_timestamp(NOW, 0).unwrap());
        let mut plan = crate::plan::Builder::new(None, crate::model::ConversationMode::Create);
        for r in rows {
            l.row(&r.as_valid());
            plan.add(r).unwrap();
        }
        l.finish(&plan.finish())
    }

    #[test]
    fn clean_input_has_no_warnings() {
        assert!(lint(&[row(1, "A", NOW - 100, "x"), row(2, "A", NOW - 50, "y")]).is_empty());
    }

    #[test]
    fn future_and_old() {
        let w = lint(&[row(1, "A", NOW + 100, "x"), row(2, "B", 1000, "y")]);
        assert_eq!(w.len(), 2);
        assert_eq!(
            (w[0].kind, w[0].count, w[0].examples.clone()),
            ("future_timestamp", 1, vec![at(1)])
        );
        assert_eq!(
            (w[1].kind, w[1].count, w[1].examples.clone()),
            ("old_timestamp", 1, vec![at(2)])
        );
    }

    #[test]
    fn ties_and_duplicates_within_a_conversation() {
        let w = lint(&[
            row(1, "A", NOW - 100, "x"),
            row(2, "A", NOW - 100, "y"),
            row(3, "A", NOW - 100, "x"),
            row(4, "B", NOW - 100, "x"),
        ]);
        let kinds: Vec<_> = w
            .iter()
            .map(|w| (w.kind, w.count, w.examples.clone()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("timestamp_tie", 1, vec![at(2)]),
                ("duplicate_message", 1, vec![at(3)])
            ]
        );
    }

    #[test]
    fn long_conversations() {
        let day = 86_400;
        let w = lint(&[
            row(1, "A", NOW - 40 * day, "x"),
            row(2, "B", NOW - 40 * day, "x"),
            row(3, "A", NOW - day, "y"),
            row(4, "B", NOW - 20 * day, "y"),
        ]);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].kind, "long_conversation");
        assert_eq!(w[0].count, 1);
        assert_eq!(w[0].examples, vec![at(1)]);
        assert!(w[0].message.contains("A (39 days)"), "{}", w[0].message);
    }

    #[test]
    fn examples_are_capped() {
        let rows: Vec<Row> = (1..=10)
            .map(|i| row(i, "A", NOW + 10, &i.to_string()))
            .collect();
        let w = lint(&rows);
        let future = w.iter().find(|w| w.kind == "future_timestamp").unwrap();
        assert_eq!(future.count, 10);
        assert_eq!(future.examples.len(), EXAMPLES);
    }
}
