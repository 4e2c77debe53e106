//! A message as the API takes it, and its identity across runs.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Role;

/// The body of `createMessage`, exactly as the spec names its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageBody {
    pub text: String,
    pub sender: Sender,
    pub timestamp: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub role: Role,
    #[serde(rename = "externalId")]
    pub external_id: String,
}

/// The body of `createOrUpdateConversation`: keyed by `externalId`, so
/// sending it again is safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationBody {
    #[serde(rename = "externalId")]
    pub external_id: String,
    pub customer: Participant,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<Participant>,
    pub timestamp: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    #[serde(rename = "externalId")]
    pub external_id: String,
}

/// A message as `getMessagesByExternalId` gives it back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StoredItem {
    pub text: String,
    pub sender: Sender,
    #[serde(rename = "messageId")]
    pub message_id: String,
    /// The timestamp the client sent.
    #[serde(rename = "clientTimestamp")]
    pub client_timestamp: String,
}

impl StoredItem {
    /// Its identity as the ledger keys messages of `conversation_id` (the
    /// input's id): the same key its row had, if it is that row's message.
    pub fn key(&self, conversation_id: &str) -> Option<ContentKey> {
        let instant = DateTime::parse_from_rfc3339(&self.client_timestamp).ok()?;
        Some(ContentKey::of(
            conversation_id,
            self.sender.role,
            &self.sender.external_id,
            &self.text,
            instant.with_timezone(&Utc),
        ))
    }
}

impl MessageBody {
    /// The body's size as JSON, in bytes, without building it.
    pub fn json_len(&self) -> usize {
        let mut counter = Counter(0);
        // Writing to a counter cannot fail.
        let _ = serde_json::to_writer(&mut counter, self);
        counter.0
    }
}

struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A message's identity for exactly-once bookkeeping: a hash of its content
/// (conversation, instant, role, sender, text). Stable across runs, machines
/// and versions: it is stored in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentKey(pub [u8; 16]);

impl ContentKey {
    pub fn of(
        conversation_id: &str,
        role: Role,
        sender_id: &str,
        text: &str,
        instant: DateTime<Utc>,
    ) -> ContentKey {
        let mut h = Sha256::new();
        // Length-prefix every field so that no two different rows can
        // concatenate to the same bytes.
        for field in [
            conversation_id.as_bytes(),
            role.as_str().as_bytes(),
            sender_id.as_bytes(),
            text.as_bytes(),
        ] {
            h.update((field.len() as u64).to_le_bytes());
            h.update(field);
        }
        h.update(instant.timestamp().to_le_bytes());
        h.update(instant.timestamp_subsec_nanos().to_le_bytes());
        let digest = h.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        ContentKey(key)
    }
}

impl fmt::Display for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A message in the ledger: its content, and which of identical messages
/// of its conversation it is (0 for the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageKey {
    pub content: ContentKey,
    pub occurrence: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn content_key_is_stable() {
        // Stored in ledgers: this value must never change.
        let at = Utc.timestamp_opt(10, 0).unwrap();
        let k = ContentKey::of("A", Role::Customer, "c1", "hello", at);
        assert_eq!(k.to_string(), "b9367a8c7cb88f72fd36eda71020f9e8");
    }

    #[test]
    fn json_len_is_the_serialized_length() {
        let body = MessageBody {
            text: "a \"quoted\"\nline é 😀 \u{0}".into(),
            sender: Sender {
                role: Role::Agent,
                external_id: "7".into(),
            },
            timestamp: "2021-11-23T12:13:14Z".into(),
        };
        assert_eq!(body.json_len(), serde_json::to_vec(&body).unwrap().len());
    }
}
