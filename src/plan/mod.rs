//! Plan: read and validate every input ([`inputs`]), group valid rows by
//! conversation, stable-sort each by instant (ties keep input order),
//! number identical messages, optionally keep one shard, order
//! conversations longest first, and decide from what earlier runs left
//! what to do with each message ([`decide`]). [`texts`] reads a planned
//! message's text back when it is sent.
//!
//! A plan entry is small (place, instant, content key), never the text: the
//! text is read back by offset when the message is sent, so memory grows with
//! the number of rows, not with the size of the transcripts.

pub mod inputs;
pub mod texts;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::str::FromStr;

use crate::model::{
    ContentKey, Conversation, ConversationId, ConversationMode, Entry, MessageKey, Participants,
    Prior, Role, Todo, TooMany,
};
use crate::validate::{Row, Valid};

pub use inputs::{read_all, InputConfig, Inputs, Swallowing};
pub use texts::{Changed, TextReader, Texts, OPEN_PER_WORKER};

/// `--shard K/N`: keep the conversations whose id hashes to K (1-based) of N.
/// The hash is FNV-1a 64 of the conversation id's UTF-8 bytes, mod N: stable
/// and documented, so N hosts split one backfill with no coordination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    k: u32,
    n: u32,
}

impl Shard {
    pub fn new(k: u32, n: u32) -> Result<Shard, String> {
        if n == 0 || k == 0 || k > n {
            return Err(format!("shard {k}/{n}: need 1 <= K <= N"));
        }
        Ok(Shard { k, n })
    }

    pub fn contains(&self, conversation_id: &str) -> bool {
        (fnv1a64(conversation_id.as_bytes()) % u64::from(self.n)) as u32 == self.k - 1
    }

    /// Whether a row, valid or not, belongs to this shard: by its
    /// conversation id, or to shard 1 when it has none that can be read.
    /// So the N shards' reports hold every input row exactly once.
    pub fn owns(&self, conversation_id: Option<&str>) -> bool {
        match conversation_id {
            Some(id) => self.contains(id),
            None => self.k == 1,
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected K/N, e.g. 1/4"))?;
        let k = k
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: K is not a number"))?;
        let n = n
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: N is not a number"))?;
        Shard::new(k, n)
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A sender and where it was seen first (`Entry::order`).
struct First {
    at: (i64, u32, u16, u32),
    sender: Box<str>,
}

/// Conversation ids to their place in the plan: the places only, each id
/// held once, by its conversation. foldhash: several times faster than
/// SipHash on short keys, and seeded per process, so crafted ids cannot
/// pile up in one bucket.
#[derive(Default)]
struct Index {
    places: hashbrown::HashTable<usize>,
    hasher: foldhash::fast::RandomState,
}

impl Index {
    /// The place of the conversation `id`, among `conversations`.
    fn get(&self, id: &str, conversations: &[Conversation]) -> Option<usize> {
        let hash = self.hasher.hash_one(id);
        self.places
            .find(hash, |&i| {
                conversations.get(i).is_some_and(|c| &*c.id == id)
            })
            .copied()
    }

    /// Record that the conversation `id` is at `place`.
    fn insert(&mut self, id: &str, place: usize, conversations: &[Conversation]) {
        let hasher = &self.hasher;
        let rehash = |i: &usize| hasher.hash_one(conversations.get(*i).map_or("", |c| &*c.id));
        self.places
            .insert_unique(hasher.hash_one(id), place, rehash);
    }
}

/// Plan entries in input order, in chunks of a fixed size, each entry
/// marked with its conversation's number: growing never copies what is
/// held nor leaves more than one chunk unused, and [`Builder::finish`]
/// hands the memory over to the conversations a chunk at a time (per
/// conversation vectors grown row by row took a quarter more, in slack
/// and in the allocator's holes).
#[derive(Default)]
struct Rows {
    chunks: Vec<Vec<Entry>>,
}

impl Rows {
    const CHUNK: usize = 1 << 15;

    fn push(&mut self, entry: Entry) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < Self::CHUNK => chunk.push(entry),
            _ => {
                let mut chunk = Vec::with_capacity(Self::CHUNK);
                chunk.push(entry);
                self.chunks.push(chunk);
            }
        }
    }
}

/// Collects valid rows, then builds the plan.
#[derive(Default)]
pub struct Builder {
    index: Index,
    /// Their entries are in `rows` until `finish`.
    conversations: Vec<Conversation>,
    /// Valid rows per conversation.
    counts: Vec<usize>,
    rows: Rows,
    /// Create mode: per conversation, the earliest customer and agent so
    /// far, by (instant, input position).
    firsts: Vec<[Option<First>; 2]>,
    shard: Option<Shard>,
    mode: ConversationMode,
    /// Rows dropped because their conversation belongs to another shard.
    pub other_shards: u64,
}

impl Builder {
    pub fn new(shard: Option<Shard>, mode: ConversationMode) -> Builder {
        Builder {
            shard,
            mode,
            ..Builder::default()
        }
    }

    /// Add a valid row. Returns false when its conversation belongs to
    /// another shard.
    pub fn add(&mut self, row: &Row) -> Result<bool, TooMany> {
        self.add_keyed(&row.as_valid(), row.key())
    }

    /// [`Builder::add`], the row borrowed and its content key already
    /// computed (`row.key()`).
    pub fn add_keyed(&mut self, row: &Valid, key: ContentKey) -> Result<bool, TooMany> {
        let i = match self.index.get(row.conversation_id, &self.conversations) {
            Some(i) => i,
            None => {
                if let Some(shard) = self.shard {
                    if !shard.contains(row.conversation_id) {
                        self.other_shards += 1;
                        return Ok(false);
                    }
                }
                let id: Box<str> = row.conversation_id.into();
                // Existing mode: validation has checked the id against
                // the API's pattern, so this only fails in create mode,
                // where the API's id comes from creating the conversation.
                let api = match self.mode {
                    ConversationMode::Existing => ConversationId::try_from(&*id).ok(),
                    ConversationMode::Create => None,
                };
                self.conversations.push(Conversation {
                    id,
                    api,
                    participants: Participants::default(),
                    entries: Vec::new(),
                    imported: Vec::new(),
                });
                self.counts.push(0);
                if self.mode == ConversationMode::Create {
                    self.firsts.push([None, None]);
                }
                let i = self.conversations.len() - 1;
                self.index
                    .insert(row.conversation_id, i, &self.conversations);
                i
            }
        };
        let mut entry = Entry::new(row.pos, row.timestamp, key)?;
        entry.set_group(u32::try_from(i).map_err(|_| TooMany(row.pos))?);
        if let Some(firsts) = self.firsts.get_mut(i) {
            let slot = match row.role {
                Role::Customer => Some(&mut firsts[0]),
                Role::Agent => Some(&mut firsts[1]),
                Role::System => None,
            };
            let at = entry.order();
            if let Some(slot) = slot {
                if slot.as_ref().is_none_or(|f| at < f.at) {
                    *slot = Some(First {
                        at,
                        sender: row.sender_id.into(),
                    });
                }
            }
        }
        if let Some(n) = self.counts.get_mut(i) {
            *n += 1;
        }
        self.rows.push(entry);
        Ok(true)
    }

    /// Sort each conversation by instant (stable: ties keep input order, and
    /// input order is the order rows were added), number identical messages,
    /// and put the longest conversations first.
    pub fn finish(self) -> Vec<Conversation> {
        let Builder {
            mut conversations,
            counts,
            rows,
            firsts,
            ..
        } = self;
        for (c, [customer, agent]) in conversations.iter_mut().zip(firsts) {
            c.participants = Participants {
                customer: customer.map(|f| f.sender),
                agent: agent.map(|f| f.sender),
            };
        }
        // Each entry to its conversation, in input order, into a vector
        // of the conversation's size; each chunk is freed once moved, so
        // the plan is not held twice. (Moving entries in place to group
        // them wrote all over the plan, then copied each conversation out:
        // twice as slow, and it lost the input order, which is mostly
        // already the order by instant.)
        for chunk in rows.chunks {
            for mut entry in chunk {
                let c = entry.group() as usize;
                entry.set_group(0);
                if let (Some(conversation), Some(n)) = (conversations.get_mut(c), counts.get(c)) {
                    if conversation.entries.capacity() == 0 {
                        conversation.entries.reserve_exact(*n);
                    }
                    conversation.entries.push(entry);
                }
            }
        }
        for c in &mut conversations {
            // No two entries have the same sort key: as a stable sort would.
            c.entries.sort_unstable_by_key(Entry::order);
            number_occurrences(&mut c.entries);
        }
        // Longest first: the longest chains bound the run's duration, so they
        // start first (list scheduling). Ties by id keep runs reproducible.
        conversations.sort_by(|a, b| {
            b.entries
                .len()
                .cmp(&a.entries.len())
                .then_with(|| a.id.cmp(&b.id))
        });
        conversations
    }
}

/// Number identical messages of a conversation sorted by instant: the
/// first 0, the next 1, and so on. The content key covers the instant, so
/// identical messages are among the entries of one instant: most instants
/// have one, and only those with more are looked at.
fn number_occurrences(entries: &mut [Entry]) {
    let instant = |e: &Entry| (e.order().0, e.order().1);
    for same in entries.chunk_by_mut(|a, b| instant(a) == instant(b)) {
        if same.len() > 1 {
            let mut seen: HashMap<ContentKey, u32, foldhash::fast::RandomState> =
                HashMap::default();
            for e in same {
                let n = seen.entry(e.key().content).or_insert(0);
                e.set_occurrence(*n);
                *n += 1;
            }
        }
    }
}

/// What the plan holds once earlier runs are taken into account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decided {
    /// Messages to send now.
    pub to_send: u64,
    /// Messages an earlier run stored: reported, not sent.
    pub already_imported: u64,
    /// Messages an earlier run sent without an answer: reported, not sent.
    pub uncertain: u64,
}

/// What earlier runs left, as the ledger answers.
pub trait Earlier {
    type Error;
    /// What an earlier run did with this message of this conversation,
    /// if anything.
    fn prior(&self, conversation_id: &str, key: &MessageKey) -> Result<Option<Prior>, Self::Error>;
    /// The API's id of the conversation an earlier run created for this
    /// external id (`--conversations create`).
    fn conversation(&self, external_id: &str) -> Result<Option<String>, Self::Error>;
}

/// Decide per message from what an earlier run left for it: stored ones
/// are not sent again, uncertain ones only when `resend_uncertain` says
/// so, everything else is sent. In create mode, conversations an earlier
/// run created get their API id back.
pub fn decide<E: Earlier>(
    conversations: &mut [Conversation],
    resend_uncertain: bool,
    earlier: &E,
) -> Result<Decided, E::Error> {
    let mut decided = Decided::default();
    for conversation in conversations.iter_mut().filter(|c| c.api.is_none()) {
        // An id the ledger holds was the API's answer; one that is not
        // path-safe is created (found) again rather than used.
        conversation.api = earlier
            .conversation(&conversation.id)?
            .and_then(|id| ConversationId::try_from(id.as_str()).ok());
    }
    for conversation in conversations.iter_mut() {
        for (i, entry) in conversation.entries.iter_mut().enumerate() {
            entry.todo = match earlier.prior(&conversation.id, &entry.key())? {
                Some(Prior::Stored { message_id }) => {
                    if let Some(id) = message_id {
                        conversation.imported.push((i as u32, id));
                    }
                    Todo::AlreadyImported
                }
                Some(Prior::Uncertain) if !resend_uncertain => Todo::Uncertain,
                _ => Todo::Send,
            };
            match entry.todo {
                Todo::Send => decided.to_send += 1,
                Todo::AlreadyImported => decided.already_imported += 1,
                Todo::Uncertain => decided.uncertain += 1,
            }
        }
    }
    Ok(decided)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Role, RowRef, SourceId, Timestamp};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    fn row(conv: &str, record: u64, secs: i64, text: &str) -> Row {
        Row {
            pos: RowRef {
                source: SourceId(0),
                record,
                line: record + 1,
                offset: record * 10,
            },
            conversation_id: conv.into(),
            timestamp: Timestamp::new(Utc.timestamp_opt(secs, 0).unwrap(), 0),
            role: Role::Customer,
            sender_id: "c1".into(),
            text: text.into(),
        }
    }

    #[test]
    fn sorts_by_instant_and_ties_keep_input_order() {
        let mut b = Builder::new(None, ConversationMode::Existing);
        b.add(&row("A", 1, 30, "x")).unwrap();
        b.add(&row("A", 2, 10, "y")).unwrap();
        b.add(&row("A", 3, 10, "z")).unwrap();
        b.add(&row("B", 4, 5, "w")).unwrap();
        let plan = b.finish();
        assert_eq!(&*plan[0].id, "A");
        let records: Vec<u64> = plan[0].entries.iter().map(|e| e.pos().record).collect();
        assert_eq!(records, vec![2, 3, 1]);
        assert_eq!(&*plan[1].id, "B");
    }

    #[test]
    fn identical_messages_get_occurrence_numbers() {
        let mut b = Builder::new(None, ConversationMode::Existing);
        b.add(&row("A", 1, 10, "ok")).unwrap();
        b.add(&row("A", 2, 10, "ok")).unwrap();
        b.add(&row("A", 3, 11, "ok")).unwrap();
        let plan = b.finish();
        let occ: Vec<u32> = plan[0].entries.iter().map(|e| e.key().occurrence).collect();
        assert_eq!(occ, vec![0, 1, 0]);
        let content: Vec<ContentKey> = plan[0].entries.iter().map(|e| e.key().content).collect();
        assert_eq!(content[0], content[1]);
        assert_ne!(content[0], content[2]);
    }

    #[test]
    fn content_key_ignores_the_row_number() {
        assert_eq!(
            row("A", 1, 10, "hello").key(),
            row("A", 99, 10, "hello").key()
        );
        assert_eq!(
            row("A", 1, 10, "hello").key().to_string(),
            "b9367a8c7cb88f72fd36eda71020f9e8"
        );
    }

    #[test]
    fn decide_follows_what_earlier_runs_left() {
        let mut b = Builder::new(None, ConversationMode::Existing);
        for (i, text) in ["a", "b", "c", "d"].iter().enumerate() {
            b.add(&row("A", i as u64 + 1, i as i64, text)).unwrap();
        }
        let mut plan = b.finish();
        struct Ledger(Vec<MessageKey>);
        impl Earlier for Ledger {
            type Error = ();
            fn prior(&self, _: &str, k: &MessageKey) -> Result<Option<Prior>, ()> {
                Ok(match self.0.iter().position(|x| x == k) {
                    Some(0) => Some(Prior::Stored {
                        message_id: Some("M1".into()),
                    }),
                    Some(1) => Some(Prior::Uncertain),
                    Some(2) => Some(Prior::Failed),
                    _ => None,
                })
            }
            fn conversation(&self, _: &str) -> Result<Option<String>, ()> {
                Ok(None)
            }
        }
        let ledger = Ledger(plan[0].entries.iter().map(|e| e.key()).collect());
        let d = decide(&mut plan, false, &ledger).unwrap();
        assert_eq!(
            d,
            Decided {
                to_send: 2,
                already_imported: 1,
                uncertain: 1
            }
        );
        assert_eq!(plan[0].entries[0].todo, Todo::AlreadyImported);
        assert_eq!(plan[0].imported_id(0), Some("M1"));
        assert_eq!(plan[0].entries[1].todo, Todo::Uncertain);
        let d = decide(&mut plan, true, &ledger).unwrap();
        assert_eq!((d.to_send, d.uncertain), (3, 0));
    }

    #[test]
    fn create_mode_keeps_the_first_customer_and_agent_by_instant() {
        let mut b = Builder::new(None, ConversationMode::Create);
        let mut r = |record, secs, role, sender: &str| {
            let mut x = row("chat-1", record, secs, &format!("m{record}"));
            x.role = role;
            x.sender_id = sender.into();
            b.add(&x).unwrap();
        };
        r(1, 30, Role::Customer, "late-customer");
        r(2, 10, Role::Agent, "first-agent");
        r(3, 20, Role::Customer, "first-customer");
        r(4, 20, Role::Customer, "same-instant-later-row");
        r(5, 5, Role::System, "bot");
        let plan = b.finish();
        assert_eq!(
            plan[0].participants,
            Participants {
                customer: Some("first-customer".into()),
                agent: Some("first-agent".into()),
            }
        );
        assert_eq!(plan[0].api, None);
    }

    #[test]
    fn rows_without_an_id_belong_to_shard_one() {
        let one = Shard::new(1, 3).unwrap();
        let two = Shard::new(2, 3).unwrap();
        assert!(one.owns(None) && !two.owns(None));
        let id = "CONV7";
        let owners = (1..=3)
            .filter(|k| Shard::new(*k, 3).unwrap().owns(Some(id)))
            .count();
        assert_eq!(owners, 1);
    }

    #[test]
    fn shard_parses_and_splits_without_overlap() {
        assert!("0/4".parse::<Shard>().is_err());
        assert!("5/4".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        let shards: Vec<Shard> = (1..=4).map(|k| Shard::new(k, 4).unwrap()).collect();
        for i in 0..1000 {
            let id = format!("CONV{i}");
            assert_eq!(shards.iter().filter(|s| s.contains(&id)).count(), 1);
        }
        // Documented hash: FNV-1a 64; the reference value for "a".
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    proptest! {
        #[test]
        fn any_shuffle_gives_the_same_order_within_each_conversation(
            seed in any::<u64>(),
            times in proptest::collection::vec((0u8..4, 0i64..20), 1..60),
        ) {
            let rows: Vec<Row> = times
                .iter()
                .enumerate()
                .map(|(i, (c, t))| row(&format!("C{c}"), i as u64, *t, &format!("m{i}")))
                .collect();
            let order = |rows: &[Row]| {
                let mut b = Builder::new(None, ConversationMode::Existing);
                for r in rows {
                    b.add(r).unwrap();
                }
                let mut plan = b.finish();
                plan.sort_by(|a, b| a.id.cmp(&b.id));
                plan.iter()
                    .map(|c| c.entries.iter().map(|e| e.timestamp()).collect::<Vec<_>>())
                    .collect::<Vec<_>>()
            };
            let mut shuffled = rows.clone();
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(order(&rows), order(&shuffled));
        }
    }
}
