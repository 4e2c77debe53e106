//! What planning hands to sending: conversations in the order they are
//! sent, each with its messages in order and what to do with each.

use chrono::DateTime;

use super::{ContentKey, ConversationId, ConversationMode, MessageKey, RowRef, Timestamp};

/// What to do with one planned message, decided from the ledger before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Todo {
    #[default]
    Send,
    /// Stored by an earlier run (its id, if the API gave one, is in
    /// [`Conversation::imported`]).
    AlreadyImported,
    /// Sent by an earlier run that got no answer: it may be stored; not re-sent.
    Uncertain,
}

/// One message to send, in its conversation's order. Small on purpose,
/// 56 bytes: where the row is, its instant, its key, never its text (read
/// back by offset when the message is sent), so a plan of ten million
/// rows fits in memory whatever the texts' length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    offset: u64,
    secs: i64,
    content: ContentKey,
    record: u32,
    line: u32,
    nanos: u32,
    occurrence: u32,
    /// While planning, the number of its conversation (it fits where the
    /// other fields leave room); 0 in a finished plan.
    group: u32,
    source: u16,
    /// Fractional-second digits of the input, to report the instant as sent.
    digits: u8,
    pub todo: Todo,
}

/// A row past what a plan entry can number: more than 65,535 inputs, or
/// more than 4,294,967,295 records or lines in one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more records, lines or inputs than one run can plan ({0:?})")]
pub struct TooMany(pub RowRef);

impl Entry {
    /// The plan entry of a valid row, its occurrence not yet counted.
    pub fn new(pos: RowRef, timestamp: Timestamp, content: ContentKey) -> Result<Entry, TooMany> {
        let too_many = |_| TooMany(pos);
        Ok(Entry {
            offset: pos.offset,
            secs: timestamp.instant.timestamp(),
            nanos: timestamp.instant.timestamp_subsec_nanos(),
            content,
            record: u32::try_from(pos.record).map_err(too_many)?,
            line: u32::try_from(pos.line).map_err(too_many)?,
            source: u16::try_from(pos.source.0).map_err(too_many)?,
            occurrence: 0,
            group: 0,
            digits: timestamp.digits,
            todo: Todo::Send,
        })
    }

    /// Where the row is.
    pub fn pos(&self) -> RowRef {
        RowRef {
            source: super::SourceId(u32::from(self.source)),
            record: u64::from(self.record),
            line: u64::from(self.line),
            offset: self.offset,
        }
    }

    /// The message's identity in the ledger.
    pub fn key(&self) -> MessageKey {
        MessageKey {
            content: self.content,
            occurrence: self.occurrence,
        }
    }

    /// Which of identical messages of its conversation this is (0: the first).
    pub fn set_occurrence(&mut self, occurrence: u32) {
        self.occurrence = occurrence;
    }

    /// While planning: the number of its conversation.
    pub(crate) fn group(&self) -> u32 {
        self.group
    }

    pub(crate) fn set_group(&mut self, group: u32) {
        self.group = group;
    }

    /// The sort key: the instant, then input order (source, record). No two
    /// entries of a plan have the same.
    pub fn order(&self) -> (i64, u32, u16, u32) {
        (self.secs, self.nanos, self.source, self.record)
    }

    /// The instant this message is (or was) sent as.
    pub fn timestamp(&self) -> Option<Timestamp> {
        DateTime::from_timestamp(self.secs, self.nanos).map(|t| Timestamp::new(t, self.digits))
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
    /// The ids the API gave messages an earlier run stored, by index in
    /// `entries`, in order: kept apart so that a plan entry stays small.
    pub imported: Vec<(u32, Box<str>)>,
}

impl Conversation {
    /// The id of entry `index`, when an earlier run stored it with one.
    pub fn imported_id(&self, index: usize) -> Option<&str> {
        let i = self
            .imported
            .binary_search_by_key(&index, |(i, _)| *i as usize)
            .ok()?;
        Some(&self.imported[i].1)
    }

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

    fn stamp() -> Timestamp {
        Timestamp::new(chrono::DateTime::from_timestamp(0, 0).unwrap(), 0)
    }

    #[test]
    fn an_entry_is_small_and_gives_back_what_it_was_made_of() {
        assert_eq!(std::mem::size_of::<Entry>(), 56);
        let pos = RowRef {
            source: super::super::SourceId(3),
            record: 7,
            line: 9,
            offset: 1 << 40,
        };
        let at = Timestamp::new(
            chrono::DateTime::from_timestamp(-62_135_596_800, 123_456_789).unwrap(),
            9,
        );
        let e = Entry::new(pos, at, ContentKey([5; 16])).unwrap();
        assert_eq!(e.pos(), pos);
        assert_eq!(e.timestamp(), Some(at));
        assert_eq!(e.key().content, ContentKey([5; 16]));
        let far = RowRef {
            record: u64::from(u32::MAX) + 1,
            ..pos
        };
        assert!(Entry::new(far, at, ContentKey([5; 16])).is_err());
    }

    fn conversation(todos: &[Todo], api: bool) -> Conversation {
        Conversation {
            id: "chat-1".into(),
            api: api.then(|| ConversationId::try_from("01H").unwrap()),
            participants: Participants::default(),
            entries: todos
                .iter()
                .map(|todo| Entry {
                    todo: *todo,
                    ..Entry::new(RowRef::default(), stamp(), ContentKey([0; 16])).unwrap()
                })
                .collect(),
            imported: Vec::new(),
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
        let done = vec![Todo::AlreadyImported; 3];
        assert_eq!(
            conversation(&done, false).fewest_requests(Create, Some(100)),
            0
        );
        // An imported row splits the batches; an uncertain one is settled.
        let mixed = [
            Todo::Send,
            Todo::AlreadyImported,
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
