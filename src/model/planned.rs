//! What planning hands to sending: conversations in the order they are
//! sent, each with its messages in order and what to do with each.

use chrono::DateTime;

use super::{ConversationId, MessageKey, RowRef, Timestamp};

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
