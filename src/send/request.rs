//! One request, whatever it is for (a message, a batch, creating a
//! conversation, reading one back), through the rate limiter, the daily
//! quota, the retry schedule and the stop rule.

use std::time::{Duration, Instant};

use super::client::{Answer, Client, Response};
use super::retry::Schedule;
use super::verdict::Seen;
use super::worker::Worker;
use super::{Stop, StopReason};
use crate::model::{Exchange, Outcome};

/// How a request ended.
pub(super) enum Requested {
    /// An answer to act on: a final one, or the last of a retry schedule.
    Answered(Response),
    /// The run is stopping (or the quota allows no more requests) before
    /// an answer that stores anything: nothing was stored. The last
    /// refusal, if there was one.
    Stopped(Option<Response>),
}

impl Worker<'_> {
    /// Send with retries; the first attempt must already be counted
    /// against the daily quota (`take_request`), retries are counted here.
    /// `attempts` counts every request made; each one's answer is told to
    /// the sink, timed, as an exchange of `conversation_id`.
    pub(super) fn request(
        &mut self,
        conversation_id: &str,
        attempts: &mut u32,
        mut send: impl FnMut(&Client) -> Response,
    ) -> Requested {
        let shared = self.shared;
        let policy = shared.settings.policy;
        let started = Instant::now();
        let mut first = true;
        let mut throttled_in_a_row = 0;
        loop {
            if !first && !self.take_request() {
                return Requested::Stopped(None);
            }
            first = false;
            shared.limiter.acquire();
            *attempts += 1;
            let sent_at = Instant::now();
            let response = send(&self.client);
            self.sink.exchange(
                conversation_id,
                Exchange {
                    latency: sent_at.elapsed(),
                    http_status: response.http_status,
                    retry: *attempts > 1,
                },
            );
            let (seen, schedule, retry_after) = match &response.answer {
                Answer::Throttled { retry_after } => {
                    (Seen::Throttled, Some(Schedule::Throttled), *retry_after)
                }
                // A server that answers nothing but 503 is down, never out
                // of quota.
                Answer::Unavailable { retry_after } => {
                    (Seen::Failed, Some(Schedule::Throttled), *retry_after)
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
                if let Answer::Unauthorized = response.answer {
                    shared.stop.set(StopReason::Unauthorized {
                        status: response.http_status.unwrap_or(401),
                    });
                }
                return Requested::Answered(response);
            };
            // 429 and 503 are refusals the rate follows.
            if schedule == Schedule::Throttled {
                shared.limiter.refused();
            }
            if seen == Seen::Throttled {
                throttled_in_a_row += 1;
                // The server says later than a retry would wait (a spent
                // quota says "after midnight"), or 429s in a row used up the
                // advised retries: this worker's 429s persist. Other failures
                // in between (503 among them) say nothing of a quota.
                if retry_after.is_some_and(|w| w > policy.max_wait)
                    || throttled_in_a_row >= policy.persist_after
                {
                    self.persist(true);
                }
            } else {
                throttled_in_a_row = 0;
            }
            // Nothing was stored (a refusal, a server error, or no
            // connection): stopping here loses nothing.
            if shared.stop.is_set() {
                return Requested::Stopped(Some(response));
            }
            if !policy.may_retry(schedule, *attempts, started.elapsed()) {
                return Requested::Answered(response);
            }
            let wait = policy.wait(schedule, *attempts - 1, retry_after, &mut self.rng);
            sleep_unless_stopped(wait, shared.stop);
        }
    }
}

/// The reason of a row the run did not reach.
pub(super) fn not_sent(reason: &StopReason) -> String {
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

/// A row whose request was refused or failed, and the run stopped before
/// a retry: nothing was stored, the ledger may send it again.
pub(super) fn not_attempted<'c>(
    mut outcome: Outcome<'c>,
    response: Option<&Response>,
    reason: Option<&StopReason>,
) -> Outcome<'c> {
    if let Some(response) = response {
        fill(&mut outcome, response);
    }
    outcome.status = crate::model::Status::NotAttempted;
    if let Some(reason) = reason {
        outcome.error_message = Some(match response {
            Some(r) => format!("{}; last answer: {}", not_sent(reason), cause(r)),
            None => not_sent(reason),
        });
    }
    outcome
}

/// What the report says of a request: status, ids, the API's message.
pub(super) fn fill(outcome: &mut Outcome<'_>, response: &Response) {
    outcome.http_status = response.http_status;
    outcome.request_id.clone_from(&response.request_id);
    outcome.error_code.clone_from(&response.error_code);
    if !matches!(response.answer, Answer::Created { .. }) {
        outcome.error_message.clone_from(&response.error_message);
    }
}

/// A failed answer in a few words, for the line that says why a run stopped.
pub(super) fn cause(response: &Response) -> String {
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
