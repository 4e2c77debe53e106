//! What the emulator stored, in arrival order, and what it counted.
//!
//! Counters are atomics, touched without a lock. Storing takes one short
//! mutex section that appends the message and updates the per-conversation
//! checks (order, duplicates). Requests in flight are counted per
//! conversation by a guard that holds that conversation's counter.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::schema::Message;
use crate::model::{Role, Sender};

/// The counters of `GET /_emulator/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// API requests received (everything but `/_emulator/*`), answered or dropped.
    pub requests_total: u64,
    /// Answers sent, by HTTP status (`"200"`, `"429"`, ...).
    pub requests_by_status: BTreeMap<String, u64>,
    /// Messages stored (including those whose answer was then dropped).
    pub stored: u64,
    /// The most requests ever in flight at once for one conversation.
    pub max_in_flight_per_conversation: u64,
    /// Messages stored after a message of the same conversation with a later timestamp.
    pub order_violations: u64,
    /// Messages stored again: same conversation, sender, timestamp instant and text.
    pub duplicates: u64,
    /// Connections dropped before the message was stored.
    pub dropped_before: u64,
    /// Connections dropped after the message was stored.
    pub dropped_after: u64,
    /// Answers 429 from the rate limit (`--rate-limit`).
    pub rate_limited: u64,
    /// Answers 429 from the daily quota (`--daily-quota`).
    pub quota_exceeded: u64,
    /// Answers 429, 503 or 500 injected at random (`--error-*`).
    pub injected_errors: u64,
    /// API requests received per endpoint, by the spec's operation name
    /// (`createMessage`, `createBatchMessages`, `createOrUpdateConversation`,
    /// `getMessagesByExternalId`), answered or not.
    #[serde(default)]
    pub requests_by_endpoint: BTreeMap<String, u64>,
    /// Conversations created: externalIds seen by createOrUpdateConversation
    /// for the first time (asking again for one is not a new conversation).
    #[serde(default)]
    pub conversations_created: u64,
}

/// The API's endpoints, by the spec's operation names, for counting.
pub const ENDPOINTS: [&str; 4] = [
    "createMessage",
    "createBatchMessages",
    "createOrUpdateConversation",
    "getMessagesByExternalId",
];

/// One stored message, as `GET /_emulator/messages` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMessage {
    /// The id the answer carried (or would have, when it was dropped).
    pub id: String,
    pub conversation_id: String,
    pub text: String,
    pub sender: Sender,
    /// The timestamp exactly as the client sent it.
    pub timestamp: String,
    /// When the emulator stored it.
    pub received_at: DateTime<Utc>,
    /// True when the connection was dropped after storing: the client never got the answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped_answer: bool,
}

/// A stored message, kept small: strings boxed, the conversation as an index.
struct Record {
    id: Ulid,
    conversation: u32,
    text: Box<str>,
    role: Role,
    external_id: Box<str>,
    timestamp: Box<str>,
    instant: i128,
    received_at: DateTime<Utc>,
    dropped_answer: bool,
}

#[derive(Default)]
struct Conversation {
    messages: Vec<u32>,
    latest: Option<i128>,
    in_flight: Arc<AtomicU32>,
}

#[derive(Default)]
struct Store {
    records: Vec<Record>,
    names: Vec<Box<str>>,
    conversations: HashMap<Box<str>, u32>,
    state: Vec<Conversation>,
    /// Hash of the duplicate key → first record with it.
    seen: HashMap<u64, u32>,
    /// createOrUpdateConversation: externalId → conversation id.
    by_external: HashMap<Box<str>, Ulid>,
    /// The conversation ids createOrUpdateConversation gave out.
    issued: std::collections::HashSet<Box<str>>,
}

impl Store {
    fn conversation(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.conversations.get(id) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(id.into());
        self.conversations.insert(id.into(), i);
        self.state.push(Conversation::default());
        i
    }

    fn duplicate_of(&self, hash: u64, conversation: u32, m: &Message) -> bool {
        self.seen.get(&hash).is_some_and(|&r| {
            let r = &self.records[r as usize];
            r.conversation == conversation
                && r.role == m.body.sender.role
                && *r.external_id == *m.body.sender.external_id
                && r.instant == m.instant
                && *r.text == *m.body.text
        })
    }
}

fn key_hash(conversation: u32, m: &Message) -> u64 {
    let mut h = DefaultHasher::new();
    conversation.hash(&mut h);
    m.body.sender.role.hash(&mut h);
    m.body.sender.external_id.hash(&mut h);
    m.instant.hash(&mut h);
    m.body.text.hash(&mut h);
    h.finish()
}

/// Counters and storage shared by every connection.
pub struct State {
    store: Mutex<Store>,
    pub requests_total: AtomicU64,
    by_status: Box<[AtomicU64]>,
    max_in_flight: AtomicU64,
    order_violations: AtomicU64,
    duplicates: AtomicU64,
    pub dropped_before: AtomicU64,
    pub dropped_after: AtomicU64,
    pub rate_limited: AtomicU64,
    pub quota_exceeded: AtomicU64,
    pub injected_errors: AtomicU64,
    by_endpoint: [AtomicU64; ENDPOINTS.len()],
}

/// What storing said.
pub enum Stored {
    /// Stored with these ids.
    Ids(Vec<Ulid>),
    /// Refused: already stored, and `conflict_on_duplicate` is on.
    Conflict,
}

/// Counts a request in flight for one conversation until dropped.
pub struct InFlight(Arc<AtomicU32>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            store: Mutex::default(),
            requests_total: AtomicU64::new(0),
            by_status: (0..600).map(|_| AtomicU64::new(0)).collect(),
            max_in_flight: AtomicU64::new(0),
            order_violations: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            dropped_before: AtomicU64::new(0),
            dropped_after: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            quota_exceeded: AtomicU64::new(0),
            injected_errors: AtomicU64::new(0),
            by_endpoint: Default::default(),
        }
    }
}

impl State {
    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave the store half-written
        // in a way that matters to counting; keep serving.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count an answer.
    pub fn answered(&self, status: u16) {
        if let Some(c) = self.by_status.get(usize::from(status)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request for `conversation` starts; it counts until the guard drops.
    pub fn enter(&self, conversation: &str) -> InFlight {
        let counter = {
            let mut store = self.store();
            let i = store.conversation(conversation);
            Arc::clone(&store.state[i as usize].in_flight)
        };
        let now = counter.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight
            .fetch_max(u64::from(now), Ordering::Relaxed);
        InFlight(counter)
    }

    /// Store `messages` for `conversation`, in order. With `conflict` on,
    /// refuse all of them if any is already stored.
    pub fn store_messages(
        &self,
        conversation: &str,
        messages: &[Message],
        conflict: bool,
        dropped_answer: bool,
    ) -> Stored {
        let received_at = Utc::now();
        let mut store = self.store();
        let c = store.conversation(conversation);
        let hashes: Vec<u64> = messages.iter().map(|m| key_hash(c, m)).collect();
        if conflict
            && messages
                .iter()
                .zip(&hashes)
                .any(|(m, &h)| store.duplicate_of(h, c, m))
        {
            return Stored::Conflict;
        }
        let mut ids = Vec::with_capacity(messages.len());
        for (m, hash) in messages.iter().zip(hashes) {
            let index = store.records.len() as u32;
            if store.duplicate_of(hash, c, m) {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            } else {
                store.seen.entry(hash).or_insert(index);
            }
            let conv = &mut store.state[c as usize];
            match conv.latest {
                Some(latest) if latest > m.instant => {
                    self.order_violations.fetch_add(1, Ordering::Relaxed);
                }
                _ => conv.latest = Some(m.instant),
            }
            conv.messages.push(index);
            let id = Ulid::new();
            store.records.push(Record {
                id,
                conversation: c,
                text: m.body.text.as_ref().into(),
                role: m.body.sender.role,
                external_id: m.body.sender.external_id.as_ref().into(),
                timestamp: m.body.timestamp.as_ref().into(),
                instant: m.instant,
                received_at,
                dropped_answer,
            });
            ids.push(id);
        }
        Stored::Ids(ids)
    }

    /// createOrUpdateConversation: the id for this externalId, made on first sight.
    pub fn conversation_for(&self, external_id: &str) -> Ulid {
        let mut store = self.store();
        if let Some(&id) = store.by_external.get(external_id) {
            return id;
        }
        let id = Ulid::new();
        store.by_external.insert(external_id.into(), id);
        store.issued.insert(id.to_string().into());
        store.conversation(&id.to_string());
        id
    }

    /// Whether createOrUpdateConversation gave out this conversation id.
    pub fn issued(&self, id: &str) -> bool {
        self.store().issued.contains(id)
    }

    /// A request reached endpoint `i` of [`ENDPOINTS`].
    pub fn reached(&self, i: usize) {
        if let Some(c) = self.by_endpoint.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every message of the conversation created with this externalId, or
    /// `None` when no conversation has it.
    pub fn messages_by_external(&self, external_id: &str) -> Option<Vec<StoredMessage>> {
        let store = self.store();
        let id = store.by_external.get(external_id)?.to_string();
        let c = store.conversations.get(id.as_str()).copied()?;
        Some(
            store.state[c as usize]
                .messages
                .iter()
                .map(|&r| to_stored(&store, &store.records[r as usize]))
                .collect(),
        )
    }

    /// Every stored message, in arrival order.
    pub fn messages(&self) -> Vec<StoredMessage> {
        let store = self.store();
        store.records.iter().map(|r| to_stored(&store, r)).collect()
    }

    pub fn stats(&self) -> Stats {
        let stored = self.store().records.len() as u64;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            requests_total: load(&self.requests_total),
            requests_by_status: self
                .by_status
                .iter()
                .enumerate()
                .filter(|(_, c)| load(c) > 0)
                .map(|(s, c)| (s.to_string(), load(c)))
                .collect(),
            stored,
            max_in_flight_per_conversation: load(&self.max_in_flight),
            order_violations: load(&self.order_violations),
            duplicates: load(&self.duplicates),
            dropped_before: load(&self.dropped_before),
            dropped_after: load(&self.dropped_after),
            rate_limited: load(&self.rate_limited),
            quota_exceeded: load(&self.quota_exceeded),
            injected_errors: load(&self.injected_errors),
            requests_by_endpoint: ENDPOINTS
                .iter()
                .zip(&self.by_endpoint)
                .filter(|(_, c)| load(c) > 0)
                .map(|(name, c)| (name.to_string(), load(c)))
                .collect(),
            conversations_created: self.store().issued.len() as u64,
        }
    }
}

fn to_stored(store: &Store, r: &Record) -> StoredMessage {
    StoredMessage {
        id: r.id.to_string(),
        conversation_id: store.names[r.conversation as usize].to_string(),
        text: r.text.to_string(),
        sender: Sender {
            role: r.role,
            external_id: r.external_id.to_string(),
        },
        timestamp: r.timestamp.to_string(),
        received_at: r.received_at,
        dropped_answer: r.dropped_answer,
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema;
    use super::*;

    fn body(text: &str, ts: &str) -> String {
        format!(
            r#"{{"text":"{text}","sender":{{"role":"agent","externalId":"a"}},"timestamp":"{ts}"}}"#
        )
    }

    fn store(state: &State, conv: &str, text: &str, ts: &str, conflict: bool) -> bool {
        let b = body(text, ts);
        let m = schema::message(b.as_bytes()).unwrap();
        matches!(
            state.store_messages(conv, &[m], conflict, false),
            Stored::Ids(_)
        )
    }

    #[test]
    fn counts_order_violations_and_duplicates() {
        let s = State::default();
        assert!(store(&s, "A", "one", "2021-01-01T00:00:02Z", false));
        assert!(store(&s, "A", "two", "2021-01-01T00:00:01Z", false)); // earlier: violation
        assert!(store(&s, "B", "two", "2021-01-01T00:00:01Z", false)); // other conversation
                                                                       // Same instant written differently, same text: a duplicate.
        assert!(store(&s, "A", "one", "2021-01-01T01:00:02+01:00", false));
        let stats = s.stats();
        assert_eq!(stats.stored, 4);
        assert_eq!(stats.order_violations, 1);
        assert_eq!(stats.duplicates, 1);
        assert!(!store(&s, "A", "one", "2021-01-01T00:00:02Z", true));
        assert_eq!(s.stats().stored, 4);
        let msgs = s.messages();
        assert_eq!(msgs[3].timestamp, "2021-01-01T01:00:02+01:00");
        assert_eq!(msgs[2].conversation_id, "B");
    }

    #[test]
    fn in_flight_is_counted_per_conversation() {
        let s = State::default();
        let a = s.enter("A");
        let b = s.enter("B");
        assert_eq!(s.stats().max_in_flight_per_conversation, 1);
        let a2 = s.enter("A");
        assert_eq!(s.stats().max_in_flight_per_conversation, 2);
        drop((a, a2, b));
        let _a3 = s.enter("A");
        assert_eq!(s.stats().max_in_flight_per_conversation, 2);
    }

    #[test]
    fn conversations_are_keyed_by_external_id() {
        let s = State::default();
        let one = s.conversation_for("x");
        assert_eq!(s.conversation_for("x"), one);
        assert_ne!(s.conversation_for("y"), one);
        assert_eq!(s.messages_by_external("x"), Some(vec![]));
        assert_eq!(s.messages_by_external("z"), None);
    }
}
