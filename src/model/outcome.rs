//! What happened to one input row: the pipeline's result type, and the
//! seam through which outcomes leave the send stage.

use std::time::Duration;

use super::{Invalid, MessageKey, RowRef, Status, Timestamp};

/// The outcome of one input row in this run. Conversation ids are
/// borrowed from the plan: building an outcome allocates only what an
/// answer brought.
#[derive(Debug, Clone)]
pub struct Outcome<'a> {
    pub pos: RowRef,
    /// The conversation id as the input gives it (empty when unreadable).
    pub conversation_id: &'a str,
    /// The API's id of the conversation, when known.
    pub api_conversation_id: Option<&'a str>,
    /// The instant sent (or that would have been), when the row had one.
    pub timestamp: Option<Timestamp>,
    pub status: Status,
    pub message_id: Option<String>,
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    /// Why the row is not created (the API's message, or ours).
    pub error_message: Option<String>,
    pub request_id: Option<String>,
    /// Requests made for this row in this run (for a batch's rows, the
    /// batch's).
    pub attempts: u32,
    /// Of those, the requests this row accounts for against the daily
    /// quota: its own, or none for a batch's rows (the batch is counted
    /// once, on its own).
    pub requests: u32,
    /// Set when a request was made: the message's ledger entry to settle.
    pub sent: Option<MessageKey>,
    /// Why an invalid row is: its reasons are counted by kind (field and
    /// problem), not by the excerpt each one shows.
    pub invalid: Option<&'a Invalid>,
}

impl<'a> Outcome<'a> {
    /// An outcome with nothing sent and nothing to say but its status.
    pub fn bare(pos: RowRef, conversation_id: &'a str, status: Status) -> Self {
        Outcome {
            pos,
            conversation_id,
            api_conversation_id: None,
            timestamp: None,
            status,
            message_id: None,
            http_status: None,
            error_code: None,
            error_message: None,
            request_id: None,
            attempts: 0,
            requests: 0,
            sent: None,
            invalid: None,
        }
    }

    /// The same, with a reason.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.error_message = Some(reason.into());
        self
    }
}

/// One request and what came back, timed by the send stage: what the
/// summary, progress and the HTML report know of latency, retries and
/// refusals. Every request made gets one, whatever it was for (a message,
/// a batch, creating a conversation, reading one back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// From handing the request to the HTTP client to its answer (or to
    /// giving up on one): the rate limiter's wait is not in it.
    pub latency: Duration,
    /// The answer's HTTP status; `None` when none came (no connection, a
    /// timeout, a connection lost).
    pub http_status: Option<u16>,
    /// A retry: the second or a later attempt of the same request.
    pub retry: bool,
}
