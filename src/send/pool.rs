//! The worker pool and what one worker does with one conversation.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::{Answer, Client, Response};
use super::rate::RateLimiter;
use super::retry::{RetryPolicy, Schedule};
use super::{Counters, Stop, StopReason};
use crate::model::{MessageBody, Sender, Status, Timestamp};
use crate::plan::{Conversation, Entry};
use crate::read::{RecordReader, Source};
use crate::record::{Outcome, Recorder, Writer};
use crate::report::{Spool, SpoolWriter};
use crate::validate::{self, ValidateOptions};

/// What to do with one planned message, decided from the ledger before sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Todo {
    Send,
    /// Stored by an earlier run.
    AlreadyImported {
        message_id: Option<String>,
    },
    /// In flight when an earlier run died, or its answer was lost: not re-sent.
    Uncertain,
}

/// One conversation and, per entry, what to do with it.
pub struct Work {
    pub conversation: Conversation,
    pub todo: Vec<Todo>,
}

pub struct Settings {
    pub concurrency: usize,
    pub policy: RetryPolicy,
    /// Stop before the ledger's count of today's requests crosses this.
    pub daily_quota: Option<u64>,
}

/// Everything the workers share.
pub struct Context<'a> {
    pub sources: &'a [Source],
    pub validate: &'a ValidateOptions,
    pub client: &'a Client,
    pub limiter: &'a RateLimiter,
    pub writer: &'a Writer,
    /// Where report rows go.
    pub spool: &'a Spool,
    pub stop: &'a Stop,
    pub counters: &'a Counters,
    pub settings: &'a Settings,
    /// Requests already counted against today's quota.
    pub requests_today: &'a AtomicU64,
}

/// How many recent messages the API-down check looks at, and how many of
/// them must have failed at the server for the run to stop.
const HEALTH_WINDOW: usize = 50;
const HEALTH_FAILURES: usize = 45;

/// Send every conversation. Returns why the run stopped early, if it did.
pub fn run(work: &[Work], ctx: &Context<'_>) -> Result<Option<StopReason>, String> {
    let cursor = AtomicUsize::new(0);
    let health = Mutex::new(VecDeque::with_capacity(HEALTH_WINDOW));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(ctx.settings.concurrency.max(1))
        .thread_name(|i| format!("send-{i}"))
        .build()
        .map_err(|e| format!("cannot start {} workers: {e}", ctx.settings.concurrency))?;
    let errors = Mutex::new(Vec::new());
    pool.scope(|scope| {
        for _ in 0..ctx.settings.concurrency.max(1) {
            scope.spawn(|_| {
                let mut worker = Worker::new(ctx, &health);
                while let Some(w) = work.get(cursor.fetch_add(1, Ordering::SeqCst)) {
                    if let Err(e) = worker.conversation(w) {
                        ctx.stop.set(StopReason::Ledger);
                        errors.lock().unwrap_or_else(|e| e.into_inner()).push(e);
                    }
                }
                if let Err(e) = worker.recorder.flush().and_then(|()| worker.rows.flush()) {
                    errors.lock().unwrap_or_else(|e| e.into_inner()).push(e);
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    Ok(ctx.stop.get())
}

/// A worker's own state: no lock per message.
struct Worker<'a> {
    ctx: &'a Context<'a>,
    recorder: Recorder,
    rows: SpoolWriter<'a>,
    readers: Vec<Option<RecordReader>>,
    rng: rand::rngs::StdRng,
    health: &'a Mutex<VecDeque<bool>>,
}

/// Why the rest of a conversation is not sent.
enum Blocked {
    No,
    By { record: u64, status: Status },
}

impl<'a> Worker<'a> {
    fn new(ctx: &'a Context<'a>, health: &'a Mutex<VecDeque<bool>>) -> Self {
        Worker {
            ctx,
            recorder: ctx.writer.recorder(),
            rows: ctx.spool.writer(),
            readers: ctx.sources.iter().map(|_| None).collect(),
            rng: rand::make_rng(),
            health,
        }
    }

    fn conversation(&mut self, work: &Work) -> Result<(), String> {
        let conv = &work.conversation;
        let mut blocked = Blocked::No;
        for (entry, todo) in conv.entries.iter().zip(&work.todo) {
            let timestamp = entry_timestamp(entry);
            let bare = |status| Outcome::bare(entry.pos, &conv.id, timestamp.clone(), status);
            // A stopped run still reports what earlier runs imported.
            let stopped =
                self.ctx.stop.get().is_some() && !matches!(todo, Todo::AlreadyImported { .. });
            let outcome = if stopped {
                bare(Status::NotAttempted)
            } else if let Blocked::By { record, status } = blocked {
                let mut o = bare(Status::Skipped);
                o.error_message = Some(format!(
                    "not sent: an earlier message of this conversation (record {record}) is {status}"
                ));
                o
            } else {
                match todo {
                    Todo::AlreadyImported { message_id } => {
                        let mut o = bare(Status::AlreadyImported);
                        o.message_id = message_id.clone();
                        o
                    }
                    Todo::Uncertain => {
                        let mut o = bare(Status::Uncertain);
                        o.error_message = Some(
                            "sent by an earlier run that got no answer: it may be stored; not re-sent (--resend-uncertain sends it again)"
                                .into(),
                        );
                        o
                    }
                    Todo::Send => self.send(&conv.id, entry, timestamp.clone())?,
                }
            };
            if matches!(outcome.status, Status::Failed | Status::Uncertain)
                && matches!(blocked, Blocked::No)
            {
                blocked = Blocked::By {
                    record: entry.pos.record,
                    status: outcome.status,
                };
            }
            let counters = self.ctx.counters;
            match outcome.status {
                Status::Created => Counters::add(&counters.created, 1),
                Status::Failed => Counters::add(&counters.failed, 1),
                Status::Uncertain => Counters::add(&counters.uncertain, 1),
                _ => {}
            }
            Counters::add(&counters.done, 1);
            self.recorder.outcome(&outcome);
            self.rows.outcome(outcome)?;
        }
        Ok(())
    }

    /// Read the message back, record the intent, send with retries, and say
    /// what came of it. Errors are ledger errors only: they stop the run.
    fn send(
        &mut self,
        conversation_id: &str,
        entry: &Entry,
        timestamp: String,
    ) -> Result<Outcome, String> {
        let mut outcome = Outcome::bare(entry.pos, conversation_id, timestamp, Status::Failed);
        let body = match self.body(entry) {
            Ok(body) => body,
            Err(reason) => {
                outcome.error_message = Some(reason);
                return Ok(outcome);
            }
        };
        outcome.timestamp = body.timestamp.clone();
        if self.quota_spent() {
            outcome.status = Status::NotAttempted;
            return Ok(outcome);
        }
        self.recorder
            .intent(entry.key, entry.occurrence, conversation_id)?;
        outcome.sent = Some((entry.key, entry.occurrence));

        let started = Instant::now();
        let policy = self.ctx.settings.policy;
        let response = loop {
            self.ctx.limiter.acquire();
            outcome.attempts += 1;
            Counters::add(&self.ctx.counters.requests, 1);
            let response = self.ctx.client.create_message(conversation_id, &body);
            let (schedule, retry_after) = match &response.answer {
                Answer::Throttled { retry_after } => {
                    self.ctx.limiter.refused();
                    (Schedule::Throttled, *retry_after)
                }
                Answer::ServerError => (Schedule::ServerError, None),
                Answer::NotSent => (Schedule::NotSent, None),
                _ => {
                    self.ctx.limiter.accepted();
                    break response;
                }
            };
            if !policy.may_retry(schedule, outcome.attempts, started.elapsed()) {
                if schedule == Schedule::Throttled {
                    // Refusals that outlast the whole schedule: the daily
                    // quota is spent. Nothing was stored; the next run sends it.
                    self.ctx.stop.set(StopReason::Quota);
                    outcome.status = Status::NotAttempted;
                    fill(&mut outcome, &response);
                    return Ok(outcome);
                }
                break response;
            }
            if self.ctx.stop.get().is_some() || self.quota_spent() {
                outcome.status = Status::NotAttempted;
                fill(&mut outcome, &response);
                return Ok(outcome);
            }
            Counters::add(&self.ctx.counters.retries, 1);
            let wait = policy.wait(schedule, outcome.attempts - 1, retry_after, &mut self.rng);
            sleep_unless_stopped(wait, self.ctx.stop);
        };

        fill(&mut outcome, &response);
        outcome.status = match &response.answer {
            Answer::Created { id } => {
                outcome.message_id = Some(id.clone());
                Status::Created
            }
            Answer::Exists => Status::Exists,
            Answer::Lost => Status::Uncertain,
            Answer::Unauthorized => {
                self.ctx.stop.set(StopReason::Unauthorized);
                Status::NotAttempted
            }
            Answer::Refused | Answer::ServerError | Answer::NotSent | Answer::Throttled { .. } => {
                Status::Failed
            }
        };
        let server_failure = matches!(
            response.answer,
            Answer::ServerError | Answer::NotSent | Answer::Lost
        );
        self.health(server_failure);
        Ok(outcome)
    }

    /// The message's text, read back from its source by offset.
    fn body(&mut self, entry: &Entry) -> Result<MessageBody, String> {
        let i = entry.pos.source.0 as usize;
        let source = self
            .ctx
            .sources
            .get(i)
            .ok_or_else(|| format!("no source {i}"))?;
        if self.readers[i].is_none() {
            self.readers[i] = Some(source.reader().map_err(|e| {
                format!(
                    "cannot re-read {}: {:#}",
                    source.name,
                    anyhow::Error::from(e)
                )
            })?);
        }
        let reader = self.readers[i].as_mut().ok_or("reader")?;
        let record = reader
            .read_at(&entry.pos)
            .map_err(|e| format!("cannot re-read record: {:#}", anyhow::Error::from(e)))?;
        let fields = record
            .fields
            .map_err(|e| format!("the input changed while importing: {e}"))?;
        let row = validate::row(entry.pos, fields, self.ctx.validate)
            .map_err(|e| format!("the input changed while importing: {e}"))?;
        Ok(MessageBody {
            timestamp: row.timestamp.to_rfc3339(),
            text: row.text,
            sender: Sender {
                role: row.role,
                external_id: row.sender_id,
            },
        })
    }

    fn quota_spent(&self) -> bool {
        let Some(quota) = self.ctx.settings.daily_quota else {
            return false;
        };
        if self.ctx.requests_today.fetch_add(1, Ordering::SeqCst) >= quota {
            self.ctx.stop.set(StopReason::Quota);
            return true;
        }
        false
    }

    /// Track recent server-side failures; stop when nearly all fail.
    fn health(&self, failed: bool) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if h.len() == HEALTH_WINDOW {
            h.pop_front();
        }
        h.push_back(failed);
        if h.len() == HEALTH_WINDOW && h.iter().filter(|f| **f).count() >= HEALTH_FAILURES {
            self.ctx.stop.set(StopReason::ApiDown);
        }
    }
}

fn fill(outcome: &mut Outcome, response: &Response) {
    outcome.http_status = response.http_status;
    outcome.request_id = response.request_id.clone();
    outcome.error_code = response.error_code.clone();
    if !matches!(response.answer, Answer::Created { .. }) {
        outcome.error_message = response.error_message.clone();
    }
}

/// The instant a planned entry will be (or was) sent as, for the report.
fn entry_timestamp(entry: &Entry) -> String {
    let secs = entry.instant.div_euclid(1_000_000_000) as i64;
    let nanos = entry.instant.rem_euclid(1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|t| Timestamp::new(t, entry.digits).to_rfc3339())
        .unwrap_or_default()
}

/// Sleep, waking early if the run is stopping.
fn sleep_unless_stopped(wait: Duration, stop: &Stop) {
    let until = Instant::now() + wait;
    loop {
        let now = Instant::now();
        if now >= until || stop.get().is_some() {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}
