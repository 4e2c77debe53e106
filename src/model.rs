//! The nouns every stage shares: where a row came from, what a message is,
//! what happened to it. Checked once at the edge, then trusted.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Index of an input in the order given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub u32);

/// Where a record sits in its source: enough to report it and to read it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowRef {
    pub source: SourceId,
    /// 1-based index of the data record in its source (a CSV header is not a record).
    pub record: u64,
    /// 1-based physical line where the record starts.
    pub line: u64,
    /// Byte offset of the record's start in the (possibly spooled) re-readable file.
    pub offset: u64,
}

/// A sender's role, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Customer,
    System,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Customer => "customer",
            Role::System => "system",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

/// What the input's `conversation_id` is (`--conversations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ConversationMode {
    /// The API's own conversation id (`^[A-Z0-9]+$`).
    #[default]
    Existing,
    /// The caller's own id; the conversation is created by `externalId`.
    Create,
}

/// What happened to one input row. Serialized exactly as DESIGN.md's report spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Created,
    AlreadyImported,
    Exists,
    Invalid,
    Failed,
    Skipped,
    Uncertain,
    NotAttempted,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Created,
        Status::AlreadyImported,
        Status::Exists,
        Status::Invalid,
        Status::Failed,
        Status::Skipped,
        Status::Uncertain,
        Status::NotAttempted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::AlreadyImported => "already_imported",
            Status::Exists => "exists",
            Status::Invalid => "invalid",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Uncertain => "uncertain",
            Status::NotAttempted => "not_attempted",
        }
    }

    /// Rows with these statuses are in the API: the run counts as clean.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Status::Created | Status::AlreadyImported | Status::Exists
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
    fn status_serializes_as_the_report_spells_it() {
        for s in Status::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
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
