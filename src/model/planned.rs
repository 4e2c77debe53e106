//! What planning hands to sending: conversations in the order they are
//! sent, each with its messages in order and what to do with each.

use chrono::DateTime;

use super::{ConversationId, ConversationMode, MessageKey, RowRef, Timestamp};

/// What to do with one planned message, decided from the ledger before sending.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Todo {
    #[default]
    Send,
    /// Stored by an earlier run, with the id the API gave it.
    AlreadyImported { message_id: Option<Box<str>> },
    /// Sent by an earlier run that got no answer: it may be stored; not re-sent.
    Uncertain,
}

/// One message to send, in its conversation's order. Small on purpose
/// (place, instant, key), never the text: the text is read back by offset
/// when the message is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub pos: RowRef,
    /// Nanoseconds since the epoch: the sort key.
    pub instant: i128,
    /// Fractional-second digits of the input, to report the instant as sent.
    pub digits: u8,
    pub key: MessageKey,
    pub todo: Todo,
}

impl Entry {
    /// The instant this message is (or was) sent as.
    pub fn timestamp(&self) -> Option<Timestamp> {
        let secs = i64::try_from(self.instant.div_euclid(1_000_000_000)).ok()?;
        let nanos = self.instant.rem_euclid(1_000_000_000) as u32;
        DateTime::from_timestamp(secs, nanos).map(|t| Timestamp::new(t, self.digits))
    }
}

/// One conversation's messages, in the order they must be stored.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// The id as the input gives it.
    pub id: Box<str>,
    /// The API's id, where it is known before sending (`--conversations
    /// existing`: the input's id is the API's; `create`: an earlier run's).
    pub api: Option<ConversationId>,
    /// `--conversations create`: who takes part, to create it with.
    pub participants: Participants,
    pub entries: Vec<Entry>,
}

impl Conversation {
    /// The fewest requests this conversation needs (without retries):
    /// creating it (`create` mode, when no earlier run did), settling what
    /// an earlier run left uncertain (a read-back), its messages one each
    /// or in batches of `batch`, and reading it back for a batch's ids.
    pub fn fewest_requests(&self, mode: ConversationMode, batch: Option<usize>) -> u64 {
        let create_mode = mode == ConversationMode::Create;
        let uncertain = self
            .entries
            .iter()
            .any(|e| matches!(e.todo, Todo::Uncertain));
        let settle = create_mode && uncertain;
        let per = batch.unwrap_or(1) as u64;
        let (mut units, mut run, mut to_send) = (0u64, 0u64, 0u64);
        for entry in &self.entries {
            // In create mode an uncertain row may be sent again.
            let sends = matches!(entry.todo, Todo::Send)
                || (create_mode && matches!(entry.todo, Todo::Uncertain));
            if sends {
                run += 1;
                to_send += 1;
            } else {
                units += run.div_ceil(per);
                run = 0;
            }
        }
        units += run.div_ceil(per);
        if to_send == 0 && !settle {
            return 0;
        }
        let create = u64::from(create_mode && self.api.is_none());
        let ids = u64::from(create_mode && batch.is_some() && to_send > 0);
        create + u64::from(settle) + units + ids
    }
}

/// The first customer and the first agent of a conversation, by instant
/// (ties by input order): what the API creates a conversation with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Participants {
    pub customer: Option<Box<str>>,
    pub agent: Option<Box<str>>,
}

/// What an earlier run left for a message, as the ledger remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// Stored by the API (200 or 409) in an earlier run.
    Stored { message_id: Option<Box<str>> },
    /// Sent, and no answer came back: it may or may not be stored.
    Uncertain,
    /// Refused for good, or never got through: may be sent again.
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(todos: &[Todo], api: bool) -> Conversation {
        Conversation {
            id: "chat-1".into(),
            api: api.then(|| ConversationId::try_from("01H").unwrap()),
            participants: Participants::default(),
            entries: todos
                .iter()
                .map(|todo| Entry {
                    pos: RowRef::default(),
                    instant: 0,
                    digits: 0,
                    key: MessageKey {
                        content: super::super::ContentKey([0; 16]),
                        occurrence: 0,
                    },
                    todo: todo.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn fewest_requests_per_mode_and_batch() {
        use ConversationMode::{Create, Existing};
        let send = vec![Todo::Send; 250];
        assert_eq!(
            conversation(&send, true).fewest_requests(Existing, None),
            250
        );
        assert_eq!(
            conversation(&send, true).fewest_requests(Existing, Some(100)),
            3
        );
        // Create, 3 batches, read back for the ids.
        assert_eq!(
            conversation(&send, false).fewest_requests(Create, Some(100)),
            5
        );
        assert_eq!(
            conversation(&send, false).fewest_requests(Create, None),
            251
        );
        // Created before: no create.
        assert_eq!(conversation(&send, true).fewest_requests(Create, None), 250);
        // Nothing to send: nothing at all.
        let done = vec![Todo::AlreadyImported { message_id: None }; 3];
        assert_eq!(
            conversation(&done, false).fewest_requests(Create, Some(100)),
            0
        );
        // An imported row splits the batches; an uncertain one is settled.
        let mixed = [
            Todo::Send,
            Todo::AlreadyImported { message_id: None },
            Todo::Send,
            Todo::Uncertain,
        ];
        assert_eq!(
            conversation(&mixed, true).fewest_requests(Existing, Some(100)),
            2
        );
        assert_eq!(
            conversation(&mixed, true).fewest_requests(Create, Some(100)),
            4
        );
    }
}
