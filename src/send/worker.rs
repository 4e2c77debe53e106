//! What one worker does with one conversation: the daily quota, creating
//! the conversation (`--conversations create`), settling what an earlier
//! run left uncertain, sending its messages one at a time or in batches,
//! the skip policy, and reading it back for ids. Every row gets exactly
//! one outcome, as soon as it is final.

use std::sync::atomic::{AtomicU64, Ordering};

use super::client::{Answer, Client};
use super::rate::RateLimiter;
use super::request::{fill, not_attempted, not_sent, Requested};
use super::verdict::Verdict;
use super::{BodyReader, BoxError, Settings, SinkHandle, Stop, StopReason};
use crate::model::{
    Conversation, ConversationId, ConversationMode, Entry, MessageBody, Outcome, Status, Todo,
};

/// What every worker shares.
pub(super) struct Shared<'a> {
    /// What each worker's own client is forked from.
    pub client: &'a Client,
    pub limiter: &'a RateLimiter,
    pub settings: &'a Settings,
    pub stop: &'a Stop,
    pub verdict: Verdict,
    /// Requests counted against today's quota, earlier runs' included.
    pub used_today: AtomicU64,
    /// Conversations left for another day: they did not fit the quota.
    pub deferred: AtomicU64,
}

impl Shared<'_> {
    /// Count `n` more requests against `--daily-quota`; false, and nothing
    /// counted, when they would cross it.
    fn reserve(&self, n: u64) -> bool {
        let Some(quota) = self.settings.daily_quota else {
            return true;
        };
        self.used_today
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used + n <= quota).then_some(used + n)
            })
            .is_ok()
    }

    /// Give back requests reserved and not made.
    fn release(&self, n: u64) {
        if n > 0 && self.settings.daily_quota.is_some() {
            self.used_today.fetch_sub(n, Ordering::SeqCst);
        }
    }

    pub fn stop_if(&self, reason: Option<StopReason>) {
        if let Some(reason) = reason {
            self.stop.set(reason);
        }
    }

    fn create_mode(&self) -> bool {
        self.settings.mode == ConversationMode::Create
    }
}

/// A worker's own state: no lock per message.
pub(super) struct Worker<'a> {
    pub(super) shared: &'a Shared<'a>,
    /// `shared.client` with this worker's own idle connections.
    pub(super) client: Client,
    pub(super) sink: Box<dyn SinkHandle + 'a>,
    bodies: Box<dyn BodyReader + 'a>,
    pub(super) rng: rand::rngs::StdRng,
    /// This worker's 429s outlast the advised retries (see `verdict`).
    persisting: bool,
    /// An intent the sink could not record: nothing more is sent, every
    /// row is still reported, and the error ends the run.
    failed: Option<BoxError>,
    /// Requests reserved for the conversation in hand and not made yet.
    budget: u64,
}

/// Where a row stands before it is sent.
enum Step<'c> {
    Send,
    /// Final before sending: already imported, or settled by a read-back.
    Done(Box<Outcome<'c>>),
    /// Sent by an earlier run without an answer, and not settled.
    Uncertain,
}

impl<'a> Worker<'a> {
    pub fn new(
        shared: &'a Shared<'a>,
        sink: Box<dyn SinkHandle + 'a>,
        bodies: Box<dyn BodyReader + 'a>,
    ) -> Self {
        Worker {
            shared,
            client: shared.client.fork(),
            sink,
            bodies,
            rng: rand::make_rng(),
            persisting: false,
            failed: None,
            budget: 0,
        }
    }

    /// Hand everything over; the first error this worker met, if any.
    pub fn finish(mut self) -> Result<(), BoxError> {
        let flushed = self.sink.flush();
        match self.failed.take() {
            Some(e) => Err(e),
            None => flushed,
        }
    }

    /// Every row of one conversation gets exactly one outcome. Errors are
    /// the sink's failing to record a conversation created: the run stops.
    /// An intent or an outcome it cannot take stops the run too, and every
    /// row still gets its outcome (see [`deliver`](Self::deliver)); the
    /// error comes from [`finish`](Self::finish).
    pub fn conversation(&mut self, conv: &Conversation) -> Result<(), BoxError> {
        self.shared.stop_if(self.shared.verdict.busy(true));
        let result = self.each_row(conv);
        self.shared.release(std::mem::take(&mut self.budget));
        self.persist(false);
        self.shared.stop_if(self.shared.verdict.busy(false));
        result
    }

    /// One more request: from what the conversation reserved, else from
    /// the quota; false (and the run stops) when the quota allows none.
    pub(super) fn take_request(&mut self) -> bool {
        if self.budget > 0 {
            self.budget -= 1;
            return true;
        }
        let taken = self.shared.reserve(1);
        if !taken {
            self.shared.stop.set(StopReason::Quota { flag: true });
        }
        taken
    }

    /// Enter or leave the state in which this worker's 429s persist.
    pub(super) fn persist(&mut self, on: bool) {
        if self.persisting != on {
            self.persisting = on;
            self.shared.stop_if(self.shared.verdict.persisting(on));
        }
    }

    fn each_row(&mut self, conv: &Conversation) -> Result<(), BoxError> {
        let bare = |entry: &Entry, status| {
            let mut o = Outcome::bare(entry.pos(), &conv.id, status);
            o.api_conversation_id = conv.api.as_ref().map(ConversationId::as_str);
            o.timestamp = entry.timestamp();
            o
        };
        if let Some(reason) = self.shared.stop.get().cloned() {
            self.all(conv, |e| {
                bare(e, Status::NotAttempted).because(not_sent(&reason))
            });
            return Ok(());
        }
        // Under a quota a conversation goes whole or waits for another
        // day: its fewest requests are reserved before the first.
        let settings = self.shared.settings;
        let need = conv.fewest_requests(settings.mode, settings.batch);
        if !self.shared.reserve(need) {
            self.shared.deferred.fetch_add(1, Ordering::SeqCst);
            let why = format!(
                "not sent: its {need} request(s) do not fit what is left of today's --daily-quota; it waits for the next run"
            );
            self.all(conv, |e| bare(e, Status::NotAttempted).because(why.clone()));
            return Ok(());
        }
        self.budget = need;
        // Created only when something is to be sent or settled.
        let created;
        let api = match &conv.api {
            Some(api) => Some(api),
            None if need == 0 => None,
            None => match self.create(conv)? {
                Ok(id) => {
                    created = id;
                    Some(&created)
                }
                Err(outcome) => {
                    self.all(conv, |e| Outcome {
                        pos: e.pos(),
                        timestamp: e.timestamp(),
                        ..outcome.clone()
                    });
                    return Ok(());
                }
            },
        };
        let bare = |entry: &Entry, status| Outcome {
            api_conversation_id: api.map(ConversationId::as_str),
            ..bare(entry, status)
        };

        let mut steps: Vec<Step<'_>> = conv
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| match e.todo {
                Todo::Send => Step::Send,
                Todo::AlreadyImported => Step::Done(Box::new(Outcome {
                    message_id: conv.imported_id(i).map(str::to_string),
                    ..bare(e, Status::AlreadyImported)
                })),
                Todo::Uncertain => Step::Uncertain,
            })
            .collect();
        // What an earlier run left uncertain is settled by what the server
        // holds: found is created, not found is sent (once).
        if self.shared.create_mode() && steps.iter().any(|s| matches!(s, Step::Uncertain)) {
            if let Ok(held) = self.read_back(conv) {
                for (step, entry) in steps.iter_mut().zip(&conv.entries) {
                    if let Step::Uncertain = step {
                        *step = match held.id_of(&entry.key()) {
                            // Recorded as created, so no later run asks again.
                            Some(id) => Step::Done(Box::new(Outcome {
                                message_id: Some(id.to_string()),
                                sent: Some(entry.key()),
                                ..bare(entry, Status::Created)
                            })),
                            None => Step::Send,
                        };
                    }
                }
            }
        }

        // Rows created whose ids only a read-back can tell (a batch's, a 409).
        let mut awaiting_ids: Vec<Outcome<'_>> = Vec::new();
        let mut blocked: Option<(u64, Status)> = None;
        let mut i = 0;
        while i < conv.entries.len() {
            let entry = &conv.entries[i];
            let step = std::mem::replace(&mut steps[i], Step::Send);
            let stopped = self.shared.stop.get().cloned();
            let outcomes = match (step, stopped, blocked) {
                // Facts, whatever happens to the run: imported by an earlier
                // run, or found stored by a read-back.
                (Step::Done(o), _, _) => vec![*o],
                (_, Some(reason), _) => vec![bare(entry, Status::NotAttempted).because(not_sent(&reason))],
                (_, None, Some((record, status))) => vec![Outcome {
                    status: Status::Skipped,
                    ..bare(entry, Status::Skipped).because(format!(
                        "not sent: an earlier message of this conversation (record {record}) is {status}"
                    ))
                }],
                (Step::Uncertain, None, None) => vec![Outcome {
                    status: Status::Uncertain,
                    ..bare(entry, Status::Uncertain).because(
                        "sent by an earlier run that got no answer: it may be stored; not re-sent (--resend-uncertain sends it again)",
                    )
                }],
                (Step::Send, None, None) => match api {
                    None => vec![bare(entry, Status::Failed).because("no API id for this conversation")],
                    Some(api) => self.send_from(conv, api, i, &steps, &bare)?,
                },
            };
            for outcome in outcomes {
                i += 1;
                if blocked.is_none() && matches!(outcome.status, Status::Failed | Status::Uncertain)
                {
                    blocked = Some((outcome.pos.record, outcome.status));
                }
                let needs_id = self.shared.create_mode()
                    && matches!(outcome.status, Status::Created | Status::Exists)
                    && outcome.message_id.is_none();
                if needs_id {
                    awaiting_ids.push(outcome);
                } else {
                    self.deliver(outcome);
                }
            }
        }

        if !awaiting_ids.is_empty() {
            let held = self.read_back(conv).ok();
            for mut outcome in awaiting_ids {
                let entry = conv.entries.iter().find(|e| e.pos() == outcome.pos);
                match (&held, entry) {
                    (Some(held), Some(entry)) => match held.id_of(&entry.key()) {
                        Some(id) => outcome.message_id = Some(id.to_string()),
                        None => {
                            outcome.error_message = Some(
                                "stored (the API said so), yet not found when the conversation was read back; no id".into(),
                            )
                        }
                    },
                    _ => {
                        outcome.error_message =
                            Some("stored; its id is unknown: the read-back failed".into())
                    }
                }
                self.deliver(outcome);
            }
        }
        Ok(())
    }

    /// Hand one row's outcome on. Where the sink cannot take it (the
    /// report's spool on a full disk), the run stops, as it does when an
    /// intent cannot be recorded, and this row and every later one still
    /// reach the sink's other parts: the summary counts every row.
    fn deliver(&mut self, outcome: Outcome<'_>) {
        if let Err(e) = self.sink.outcome(outcome) {
            self.sink_failed(e);
        }
    }

    /// The sink could not take an intent or an outcome: the run stops, and
    /// the first such error is what [`finish`](Self::finish) returns.
    fn sink_failed(&mut self, e: BoxError) {
        self.shared.stop.set(StopReason::Sink);
        self.failed.get_or_insert(e);
    }

    /// Report every row of a conversation that is not sent, as `make`
    /// says (rows an earlier run imported stay `already_imported`).
    fn all<'c>(&mut self, conv: &'c Conversation, make: impl Fn(&'c Entry) -> Outcome<'c>) {
        for (i, entry) in conv.entries.iter().enumerate() {
            let outcome = match entry.todo {
                Todo::AlreadyImported => Outcome {
                    status: Status::AlreadyImported,
                    message_id: conv.imported_id(i).map(str::to_string),
                    error_message: None,
                    ..make(entry)
                },
                _ => make(entry),
            };
            self.deliver(outcome);
        }
    }

    /// How many rows from `from` go in one request: 1, or with `--batch`
    /// the run of rows to send, at most N.
    fn unit(&self, conv: &Conversation, from: usize, steps: &[Step<'_>]) -> usize {
        let Some(n) = self.shared.settings.batch else {
            return 1;
        };
        let run = steps[from..]
            .iter()
            .take_while(|s| matches!(s, Step::Send))
            .count()
            .max(1);
        run.min(n).min(conv.entries.len() - from)
    }

    /// Read the bodies of the rows from `from` that go in one request, and
    /// send them.
    fn send_from<'c>(
        &mut self,
        conv: &'c Conversation,
        api: &ConversationId,
        from: usize,
        steps: &[Step<'c>],
        bare: &impl Fn(&'c Entry, Status) -> Outcome<'c>,
    ) -> Result<Vec<Outcome<'c>>, BoxError> {
        let entries = &conv.entries[from..from + self.unit(conv, from, steps)];
        let mut bodies = Vec::with_capacity(entries.len());
        for entry in entries {
            match self.bodies.body(entry) {
                Ok(body) => bodies.push(body),
                Err(changed) => {
                    let what = changed.to_string();
                    self.shared.stop.set(StopReason::InputChanged { what });
                    let reason = not_sent(self.shared.stop.get().unwrap_or(&StopReason::Sink));
                    return Ok(vec![bare(&entries[0], Status::NotAttempted).because(reason)]);
                }
            }
        }
        let rows = entries.iter().map(|e| bare(e, Status::Failed)).collect();
        self.send(conv, api, entries, bodies, rows)
    }

    /// Send rows `entries` (one, or a batch), whose bodies are read, and
    /// say what came of each. `rows` are their outcomes so far.
    fn send<'c>(
        &mut self,
        conv: &'c Conversation,
        api: &ConversationId,
        entries: &[Entry],
        bodies: Vec<MessageBody>,
        mut rows: Vec<Outcome<'c>>,
    ) -> Result<Vec<Outcome<'c>>, BoxError> {
        // A batch over the body limit is split (the limit was checked per
        // message): the rows that fit go now, the rest come back to this
        // function through the caller's loop.
        let fit = fitting(&bodies, self.shared.settings.max_body);
        if fit < bodies.len() {
            rows.truncate(fit);
            return self.send(conv, api, &entries[..fit], bodies[..fit].to_vec(), rows);
        }
        if !self.take_request() {
            let reason = self.shared.stop.get().cloned();
            return Ok(rows
                .into_iter()
                .map(|o| not_attempted(o, None, reason.as_ref()))
                .collect());
        }
        for entry in entries {
            if let Err(e) = self.sink.intent(entry.key(), &conv.id) {
                self.sink_failed(e);
                return Ok(rows
                    .into_iter()
                    .map(|o| o.because(not_sent(&StopReason::Sink)))
                    .collect());
            }
        }
        for (row, entry) in rows.iter_mut().zip(entries) {
            row.sent = Some(entry.key());
        }
        let batch = self.shared.settings.batch.is_some();
        let mut attempts = 0;
        // A lost answer in create mode is settled by reading back: found
        // is created; not found is sent again (each time the read-back has
        // proved it is not stored, so never twice), a bounded number of times.
        let mut resent = 0;
        let answer = loop {
            let requested = self.request(&conv.id, &mut attempts, |client| {
                if batch {
                    client.create_batch(api.as_str(), &bodies)
                } else {
                    client.create_message(api.as_str(), &bodies[0])
                }
            });
            let response = match requested {
                Requested::Answered(r) if r.answer == Answer::Lost && self.shared.create_mode() => {
                    r
                }
                other => break other,
            };
            let Ok(held) = self.read_back(conv) else {
                break Requested::Answered(response);
            };
            let ids: Vec<Option<&str>> = entries.iter().map(|e| held.id_of(&e.key())).collect();
            let found = ids.iter().filter(|id| id.is_some()).count();
            if found == ids.len() {
                for (row, id) in rows.iter_mut().zip(ids) {
                    fill(row, &response);
                    row.status = Status::Created;
                    row.message_id = id.map(str::to_string);
                    row.error_message = None;
                }
                self.account(&mut rows, attempts, batch);
                return Ok(rows);
            }
            // A batch is stored whole or not at all: when none of it is
            // there it goes again; a part found is never resent.
            let give_up = resent + 1 >= self.shared.settings.policy.error_attempts;
            if found > 0 || give_up || !self.take_request() {
                break Requested::Answered(response);
            }
            resent += 1;
        };
        match answer {
            Requested::Stopped(last) => {
                let reason = self.shared.stop.get().cloned();
                rows = rows
                    .into_iter()
                    .map(|o| not_attempted(o, last.as_ref(), reason.as_ref()))
                    .collect();
            }
            Requested::Answered(response) => {
                let status = match &response.answer {
                    Answer::Created { .. } | Answer::Accepted => Status::Created,
                    Answer::Exists => Status::Exists,
                    Answer::Lost => Status::Uncertain,
                    Answer::Unauthorized => Status::NotAttempted,
                    _ => Status::Failed,
                };
                for row in &mut rows {
                    fill(row, &response);
                    row.status = status;
                    if let Answer::Created { id } = &response.answer {
                        row.message_id = Some(id.clone());
                    }
                }
            }
        }
        self.account(&mut rows, attempts, batch);
        Ok(rows)
    }

    /// Who the requests were for: a message's are its own; a batch's are
    /// counted once, on their own, and shown on each of its rows.
    fn account(&mut self, rows: &mut [Outcome<'_>], attempts: u32, batch: bool) {
        for row in rows.iter_mut() {
            row.attempts = attempts;
            row.requests = if batch { 0 } else { attempts };
        }
        if batch {
            self.sink.requests(attempts);
        }
    }
}

/// How many of `bodies`, from the first, fit in one batch body of at most
/// `max` bytes (at least one).
fn fitting(bodies: &[MessageBody], max: usize) -> usize {
    // `{"messages":[` + bodies joined by `,` + `]}`
    let mut size = 16;
    for (n, body) in bodies.iter().enumerate() {
        size += body.json_len() + 1;
        if size > max {
            return n.max(1);
        }
    }
    bodies.len()
}
