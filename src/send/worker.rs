//! What one worker does with one conversation: skip policy, stopping, the
//! daily quota, and the retry loop around each request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;

use super::client::{Answer, Client, Response};
use super::rate::RateLimiter;
use super::retry::Schedule;
use super::verdict::{Seen, Verdict};
use super::{BodyReader, BoxError, Settings, SinkHandle, Stop, StopReason};
use crate::model::{Conversation, Entry, Outcome, Status, Todo};

/// What every worker shares.
pub(super) struct Shared<'a> {
    pub client: &'a Client,
    pub limiter: &'a RateLimiter,
    pub settings: &'a Settings,
    pub stop: &'a Stop,
    pub verdict: Verdict,
    /// Requests counted against today's quota, earlier runs' included.
    pub used_today: AtomicU64,
}

impl Shared<'_> {
    /// Count one more request against `--daily-quota`; false (and the run
    /// stops) when it would cross it.
    fn reserve_request(&self) -> bool {
        let Some(quota) = self.settings.daily_quota else {
            return true;
        };
        let reserved = self
            .used_today
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used < quota).then_some(used + 1)
            })
            .is_ok();
        if !reserved {
            self.stop.set(StopReason::Quota { flag: true });
        }
        reserved
    }

    fn stop_if(&self, reason: Option<StopReason>) {
        if let Some(reason) = reason {
            self.stop.set(reason);
        }
    }
}

/// A worker's own state: no lock per message.
pub(super) struct Worker<'a> {
    shared: &'a Shared<'a>,
    sink: Box<dyn SinkHandle + 'a>,
    bodies: Box<dyn BodyReader + 'a>,
    rng: rand::rngs::StdRng,
    /// This worker's 429s outlast the advised retries (see `verdict`).
    persisting: bool,
    /// An intent the sink could not record: nothing more is sent, every
    /// row is still reported, and the error ends the run.
    failed: Option<BoxError>,
}

impl<'a> Worker<'a> {
    pub fn new(
        shared: &'a Shared<'a>,
        sink: Box<dyn SinkHandle + 'a>,
        bodies: Box<dyn BodyReader + 'a>,
    ) -> Self {
        Worker {
            shared,
            sink,
            bodies,
            rng: rand::rngs::StdRng::from_entropy(),
            persisting: false,
            failed: None,
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
    /// the sink's failing to take an outcome: the run stops.
    pub fn conversation(&mut self, conv: &Conversation) -> Result<(), BoxError> {
        self.shared.stop_if(self.shared.verdict.busy(true));
        let result = self.each_message(conv);
        self.persist(false);
        self.shared.stop_if(self.shared.verdict.busy(false));
        result
    }

    fn each_message(&mut self, conv: &Conversation) -> Result<(), BoxError> {
        // The first row that blocks the rest: (record, status).
        let mut blocked: Option<(u64, Status)> = None;
        for entry in &conv.entries {
            let mut outcome = Outcome::bare(entry.pos, &conv.id, Status::NotAttempted);
            outcome.api_conversation_id = conv.api.as_ref().map(|id| id.as_str());
            outcome.timestamp = entry.timestamp();
            let outcome = match (&entry.todo, self.shared.stop.get(), blocked) {
                // A stopped run still reports what earlier runs imported.
                (Todo::AlreadyImported { message_id }, _, _) => Outcome {
                    status: Status::AlreadyImported,
                    message_id: message_id.as_deref().map(str::to_string),
                    ..outcome
                },
                (_, Some(reason), _) => outcome.because(not_sent(reason)),
                (_, None, Some((record, status))) => Outcome {
                    status: Status::Skipped,
                    ..outcome.because(format!(
                        "not sent: an earlier message of this conversation (record {record}) is {status}"
                    ))
                },
                (Todo::Uncertain, None, None) => Outcome {
                    status: Status::Uncertain,
                    ..outcome.because(
                        "sent by an earlier run that got no answer: it may be stored; not re-sent (--resend-uncertain sends it again)",
                    )
                },
                (Todo::Send, None, None) => self.send(conv, entry, outcome)?,
            };
            if blocked.is_none() && matches!(outcome.status, Status::Failed | Status::Uncertain) {
                blocked = Some((entry.pos.record, outcome.status));
            }
            self.sink.outcome(outcome)?;
        }
        Ok(())
    }

    /// Read the message back, record the intent, send with retries, and say
    /// what came of it. Errors are the sink's only: they stop the run.
    fn send<'c>(
        &mut self,
        conv: &'c Conversation,
        entry: &Entry,
        mut outcome: Outcome<'c>,
    ) -> Result<Outcome<'c>, BoxError> {
        let shared = self.shared;
        let Some(api) = &conv.api else {
            outcome.status = Status::Failed;
            return Ok(outcome.because("no API id for this conversation"));
        };
        let body = match self.bodies.body(entry) {
            Ok(body) => body,
            Err(changed) => {
                let what = changed.to_string();
                shared
                    .stop
                    .set(StopReason::InputChanged { what: what.clone() });
                return Ok(outcome.because(format!("not sent: {what}")));
            }
        };
        if !shared.reserve_request() {
            return Ok(outcome.because(not_sent(&StopReason::Quota { flag: true })));
        }
        if let Err(e) = self.sink.intent(entry.key, &conv.id) {
            shared.stop.set(StopReason::Sink);
            self.failed.get_or_insert(e);
            return Ok(outcome.because(not_sent(&StopReason::Sink)));
        }
        outcome.sent = Some(entry.key);

        let started = Instant::now();
        let policy = shared.settings.policy;
        let response = loop {
            shared.limiter.acquire();
            outcome.attempts += 1;
            let response = shared.client.create_message(api.as_str(), &body);
            let (seen, schedule, retry_after) = match &response.answer {
                Answer::Throttled { retry_after } => {
                    (Seen::Throttled, Some(Schedule::Throttled), *retry_after)
                }
                Answer::ServerError => (Seen::Failed, Some(Schedule::ServerError), None),
                Answer::NotSent => (Seen::Failed, Some(Schedule::NotSent), None),
                Answer::Lost => (Seen::Failed, None, None),
                _ => (Seen::Good, None, None),
            };
            shared.stop_if(shared.verdict.observe(seen, || cause(&response)));
            let Some(schedule) = schedule else {
                if seen == Seen::Good {
                    shared.limiter.accepted();
                    self.persist(false);
                }
                break response;
            };
            if response.http_status == Some(429) {
                shared.limiter.refused();
                // The server says later than a retry would wait (a spent
                // quota says "after midnight"), or the advised retries
                // are used up: this worker's 429s persist.
                if retry_after.is_some_and(|w| w > policy.max_wait)
                    || outcome.attempts >= policy.persist_after
                {
                    self.persist(true);
                }
            } else if response.http_status == Some(503) {
                shared.limiter.refused();
            }
            // Nothing was stored (a refusal, a server error, or no
            // connection): stopping here loses nothing.
            if shared.stop.is_set() {
                return Ok(not_attempted(outcome, &response, shared.stop.get()));
            }
            if !policy.may_retry(schedule, outcome.attempts, started.elapsed()) {
                break response;
            }
            if !shared.reserve_request() {
                return Ok(not_attempted(outcome, &response, shared.stop.get()));
            }
            let wait = policy.wait(schedule, outcome.attempts - 1, retry_after, &mut self.rng);
            sleep_unless_stopped(wait, shared.stop);
        };

        fill(&mut outcome, &response);
        outcome.status = match response.answer {
            Answer::Created { id } => {
                outcome.message_id = Some(id);
                Status::Created
            }
            Answer::Exists => Status::Exists,
            Answer::Lost => Status::Uncertain,
            Answer::Unauthorized => {
                shared.stop.set(StopReason::Unauthorized {
                    status: response.http_status.unwrap_or(401),
                });
                Status::NotAttempted
            }
            Answer::Refused | Answer::ServerError | Answer::NotSent | Answer::Throttled { .. } => {
                Status::Failed
            }
        };
        Ok(outcome)
    }

    /// Enter or leave the state in which this worker's 429s persist.
    fn persist(&mut self, on: bool) {
        if self.persisting != on {
            self.persisting = on;
            self.shared.stop_if(self.shared.verdict.persisting(on));
        }
    }
}

/// The reason of a row the run did not reach.
fn not_sent(reason: &StopReason) -> String {
    let why = match reason {
        StopReason::Interrupted => "the run was interrupted",
        StopReason::Unauthorized { .. } => "the API refused the credentials",
        StopReason::ApiDown { .. } => "the API kept failing",
        StopReason::Quota { flag: true } => "the --daily-quota is reached for today",
        StopReason::Quota { flag: false } => "the API's daily quota is spent",
        StopReason::InputChanged { .. } => "an input changed while importing",
        StopReason::Sink => "the ledger or the report could not record",
    };
    format!("not sent: {why}")
}

/// A row whose request was refused or failed, and the run stops before a retry.
fn not_attempted<'c>(
    mut outcome: Outcome<'c>,
    response: &Response,
    reason: Option<&StopReason>,
) -> Outcome<'c> {
    fill(&mut outcome, response);
    outcome.status = Status::NotAttempted;
    // Nothing was stored: the ledger may send it again.
    if let Some(reason) = reason {
        outcome.error_message = Some(format!(
            "{}; last answer: {}",
            not_sent(reason),
            cause(response)
        ));
    }
    outcome
}

fn fill(outcome: &mut Outcome<'_>, response: &Response) {
    outcome.http_status = response.http_status;
    outcome.request_id.clone_from(&response.request_id);
    outcome.error_code.clone_from(&response.error_code);
    if !matches!(response.answer, Answer::Created { .. }) {
        outcome.error_message.clone_from(&response.error_message);
    }
}

/// A failed answer in a few words, for the line that says why a run stopped.
fn cause(response: &Response) -> String {
    let message = response.error_message.as_deref().unwrap_or("no answer");
    match response.http_status {
        Some(status) if !message.starts_with("HTTP") => format!("HTTP {status}: {message}"),
        _ => message.to_string(),
    }
}

/// Sleep, waking early if the run is stopping.
fn sleep_unless_stopped(wait: Duration, stop: &Stop) {
    let until = Instant::now() + wait;
    loop {
        let now = Instant::now();
        if now >= until || stop.is_set() {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}
