//! Matching what the server holds (a read-back of one conversation) to
//! planned messages: by content key, and among identical messages by
//! occurrence, so that a message sent twice on purpose is two matches.

use std::collections::HashMap;

use crate::model::{ContentKey, MessageKey, StoredItem};

/// The messages the server holds for one conversation, by content.
#[derive(Debug, Default)]
pub(super) struct Held {
    /// Message ids in the order the server stored them.
    by_key: HashMap<ContentKey, Vec<String>>,
}

impl Held {
    /// `conversation_id` is the input's id: the one content keys are made of.
    pub fn new(conversation_id: &str, items: Vec<StoredItem>) -> Held {
        let mut by_key: HashMap<ContentKey, Vec<String>> = HashMap::new();
        for item in items {
            if let Some(key) = item.key(conversation_id) {
                by_key.entry(key).or_default().push(item.message_id);
            }
        }
        Held { by_key }
    }

    /// The id of the stored message that is this planned one, if stored.
    pub fn id_of(&self, key: &MessageKey) -> Option<&str> {
        self.by_key
            .get(&key.content)?
            .get(key.occurrence as usize)
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Role, Sender};

    fn item(text: &str, id: &str, ts: &str) -> StoredItem {
        StoredItem {
            text: text.into(),
            sender: Sender {
                role: Role::Customer,
                external_id: "c1".into(),
            },
            message_id: id.into(),
            client_timestamp: ts.into(),
        }
    }

    #[test]
    fn identical_messages_match_by_occurrence_and_instants_by_value() {
        let at = "2021-11-23T12:13:14.500Z";
        let held = Held::new(
            "chat-1",
            vec![
                item("ok", "M1", at),
                item("ok", "M2", "2021-11-23T12:13:14.5+00:00"),
                item("other", "M3", at),
            ],
        );
        let instant = chrono::DateTime::parse_from_rfc3339(at)
            .unwrap()
            .with_timezone(&chrono::Utc);
        let content = ContentKey::of("chat-1", Role::Customer, "c1", "ok", instant);
        let key = |occurrence| MessageKey {
            content,
            occurrence,
        };
        assert_eq!(held.id_of(&key(0)), Some("M1"));
        assert_eq!(held.id_of(&key(1)), Some("M2"));
        assert_eq!(held.id_of(&key(2)), None);
        let elsewhere = ContentKey::of("chat-2", Role::Customer, "c1", "ok", instant);
        assert_eq!(
            held.id_of(&MessageKey {
                content: elsewhere,
                occurrence: 0
            }),
            None
        );
    }
}
