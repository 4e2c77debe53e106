//! The nouns every stage shares: where a row came from, what a message is,
//! what happened to it. Checked once at the edge, then trusted.
//!
//! Stages meet here and only here: `read`, `validate`, `plan`, `send`,
//! `record` and `report` each depend on `model`, never on each other's
//! types for what they exchange.

mod conversation;
mod field;
mod message;
mod outcome;
mod planned;

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

pub use conversation::{check_external_id, ConversationId, IdProblem, EXTERNAL_ID_MAX_LEN};
pub use field::{excerpt, Field, Invalid, EXCERPT_CHARS};
pub use message::{
    ContentKey, ConversationBody, MessageBody, MessageKey, Participant, Sender, StoredItem,
};
pub use outcome::{Exchange, Outcome};
pub use planned::{Conversation, Entry, Participants, Prior, Todo, TooMany};

/// An enum with exactly one string form per variant: `as_str`, `Display`,
/// `FromStr` and serde all read the same table, so a contract's spelling
/// (a status in the report, a role in a request) is written once.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one string form of this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// Every string form, for messages that list what is allowed.
            pub fn names() -> String {
                [$($text),+].join(", ")
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            /// Exactly the string form (callers trim or lowercase first where
            /// the input may vary).
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(format!("`{s}` is not one of {}", $name::names())),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use string_enum;

/// Index of an input in the order given on the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub u32);

/// Where a record sits in its source: enough to report it and to read it again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowRef {
    pub source: SourceId,
    /// 1-based index of the data record in its source (a CSV header is not a record).
    pub record: u64,
    /// 1-based physical line where the record starts.
    pub line: u64,
    /// Byte offset of the record's start in the (possibly spooled) re-readable file.
    pub offset: u64,
}

string_enum! {
    /// A sender's role, as the API spells it.
    pub enum Role {
        Agent = "agent",
        Customer = "customer",
        System = "system",
    }
}

string_enum! {
    /// What happened to one input row, as DESIGN.md's report spells it.
    pub enum Status {
        /// The API answered 200; `message_id` holds its id.
        Created = "created",
        /// An earlier run created it.
        AlreadyImported = "already_imported",
        /// The API answered 409, "already persisted".
        Exists = "exists",
        /// Rejected before sending.
        Invalid = "invalid",
        /// The API refused it for good, or retries ran out.
        Failed = "failed",
        /// Not sent: an earlier message of its conversation failed or is uncertain.
        Skipped = "skipped",
        /// The request went out and no answer came back.
        Uncertain = "uncertain",
        /// The run stopped before reaching it.
        NotAttempted = "not_attempted",
    }
}

impl Status {
    /// Rows with these statuses are in the API: the run counts as clean.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Status::Created | Status::AlreadyImported | Status::Exists
        )
    }
}

/// A message instant plus the fractional precision the input gave, so that
/// what is sent keeps the input's precision (`.5` stays at millisecond form,
/// `.123456` at microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    pub instant: DateTime<Utc>,
    /// Number of fractional-second digits in the input (0..=9).
    pub digits: u8,
}

impl Timestamp {
    pub fn new(instant: DateTime<Utc>, digits: u8) -> Self {
        Timestamp {
            instant,
            digits: digits.min(9),
        }
    }

    /// Nanoseconds since the epoch: a total order on instants.
    pub fn nanos(&self) -> i128 {
        i128::from(self.instant.timestamp()) * 1_000_000_000
            + i128::from(self.instant.timestamp_subsec_nanos())
    }

    /// RFC 3339 in UTC with a `Z`, as the API is sent it.
    pub fn to_rfc3339(&self) -> String {
        let format = match self.digits {
            0 => SecondsFormat::Secs,
            1..=3 => SecondsFormat::Millis,
            4..=6 => SecondsFormat::Micros,
            _ => SecondsFormat::Nanos,
        };
        self.instant.to_rfc3339_opts(format, true)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// What the input's `conversation_id` is (`--conversations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ConversationMode {
    /// The API's own conversation id (`^[A-Z0-9]+$`).
    #[default]
    Existing,
    /// The caller's own id; the conversation is created by `externalId`.
    Create,
}

/// What a JSON value is, for messages about input that has the wrong shape
/// (the reader's and the emulator's alike).
pub fn json_kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn one_spelling_for_every_form() {
        for s in Status::ALL {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), *s);
            assert_eq!(s.as_str().parse::<Status>().unwrap(), *s);
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(Status::AlreadyImported.as_str(), "already_imported");
        assert_eq!("customer".parse::<Role>(), Ok(Role::Customer));
        assert!("Customer".parse::<Role>().is_err());
        assert!(serde_json::from_str::<Role>("\"bot\"").is_err());
    }

    #[test]
    fn timestamp_keeps_input_precision() {
        let t = Utc.with_ymd_and_hms(2021, 11, 23, 12, 13, 14).unwrap()
            + chrono::Duration::milliseconds(555);
        assert_eq!(
            Timestamp::new(t, 3).to_rfc3339(),
            "2021-11-23T12:13:14.555Z"
        );
        assert_eq!(
            Timestamp::new(t, 6).to_rfc3339(),
            "2021-11-23T12:13:14.555000Z"
        );
        let whole = Utc.with_ymd_and_hms(2021, 11, 23, 12, 13, 14).unwrap();
        assert_eq!(
            Timestamp::new(whole, 0).to_rfc3339(),
            "2021-11-23T12:13:14Z"
        );
    }
}
