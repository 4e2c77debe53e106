//! The requests about a conversation rather than a message, in
//! `--conversations create`: creating it by its external id, and reading
//! back what the server holds of it.

use super::client::{Answer, Response};
use super::readback::Held;
use super::request::{cause, fill, not_attempted, Requested};
use super::worker::Worker;
use super::BoxError;
use crate::model::{
    Conversation, ConversationBody, ConversationId, Entry, Outcome, Participant, Status,
};

impl Worker<'_> {
    /// Create (or find) the conversation by its external id. An `Err` is
    /// the outcome every row of the conversation gets.
    pub(super) fn create<'c>(
        &mut self,
        conv: &'c Conversation,
    ) -> Result<Result<ConversationId, Outcome<'c>>, BoxError> {
        let first = conv.entries.first();
        let mut failed = Outcome::bare(
            first.map(|e| e.pos()).unwrap_or_default(),
            &conv.id,
            Status::Failed,
        );
        let (Some(customer), Some(started)) = (
            &conv.participants.customer,
            first.and_then(Entry::timestamp),
        ) else {
            return Ok(Err(failed.because(
                "the conversation has no customer message, and the API creates a conversation only with its customer",
            )));
        };
        let body = ConversationBody {
            external_id: conv.id.to_string(),
            customer: Participant {
                external_id: customer.to_string(),
            },
            agent: conv.participants.agent.as_ref().map(|a| Participant {
                external_id: a.to_string(),
            }),
            timestamp: started.to_rfc3339(),
        };
        if !self.take_request() {
            let reason = self.shared.stop.get().cloned();
            return Ok(Err(not_attempted(failed, None, reason.as_ref())));
        }
        let mut attempts = 0;
        // Creating is keyed by the external id: a lost answer is asked
        // again, as many times as the retry policy allows a failure.
        let mut lost = 0;
        let requested = loop {
            match self.request(&conv.id, &mut attempts, |client| {
                client.create_conversation(&body)
            }) {
                Requested::Answered(r) if r.answer == Answer::Lost && self.ask_again(&mut lost) => {
                    continue
                }
                other => break other,
            }
        };
        self.sink.requests(attempts);
        let response = match requested {
            Requested::Stopped(last) => {
                let reason = self.shared.stop.get().cloned();
                return Ok(Err(not_attempted(failed, last.as_ref(), reason.as_ref())));
            }
            Requested::Answered(response) => response,
        };
        fill(&mut failed, &response);
        let id = match &response.answer {
            Answer::Created { id } => id,
            Answer::Unauthorized => {
                failed.status = Status::NotAttempted;
                return Ok(Err(failed));
            }
            _ => {
                let why = format!(
                    "the conversation could not be created: {}",
                    cause(&response)
                );
                return Ok(Err(failed.because(why)));
            }
        };
        match ConversationId::try_from(id.as_str()) {
            Ok(api) => {
                self.sink.conversation(&conv.id, &api)?;
                Ok(Ok(api))
            }
            Err(problem) => Ok(Err(failed.because(format!(
                "the API answered a conversation id that cannot be used: {problem}"
            )))),
        }
    }

    /// What the server holds of this conversation. A read-back is a GET:
    /// a lost answer is asked again.
    pub(super) fn read_back(&mut self, conv: &Conversation) -> Result<Held, Option<Response>> {
        if !self.take_request() {
            return Err(None);
        }
        let (mut attempts, mut lost) = (0, 0);
        let requested = loop {
            match self.request(&conv.id, &mut attempts, |client| client.read_back(&conv.id)) {
                Requested::Answered(r) if r.answer == Answer::Lost && self.ask_again(&mut lost) => {
                    continue
                }
                other => break other,
            }
        };
        self.sink.requests(attempts);
        match requested {
            Requested::Answered(Response {
                answer: Answer::Found { items },
                ..
            }) => Ok(Held::new(&conv.id, items)),
            Requested::Answered(r) => Err(Some(r)),
            Requested::Stopped(r) => Err(r),
        }
    }

    /// After one more lost answer to a request that is safe to repeat:
    /// whether to ask again (and a request to do it with).
    fn ask_again(&mut self, lost: &mut u32) -> bool {
        *lost += 1;
        *lost < self.shared.settings.policy.error_attempts && self.take_request()
    }
}
