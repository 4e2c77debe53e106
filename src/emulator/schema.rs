//! Request bodies as the spec defines them, and the rules that check them.
//!
//! Valid bodies take a fast path: serde_json straight into borrowed structs.
//! Only a body that fails there is looked at again, as a `Value`, to find
//! which field breaks the schema, so that a 422 names it (`sender.role`,
//! `messages[3].text`). Pure functions, tested below.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime};
use serde::Deserialize;
use serde_json::Value;

use crate::model::{json_kind as kind, Role};

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON at all (400).
    Syntax(String),
    /// JSON that breaks the schema (422); the message names the field.
    Schema(String),
}

/// A `createMessage` body (also one item of a batch), borrowed from the request.
#[derive(Debug, Deserialize)]
pub struct MessageIn<'a> {
    #[serde(borrow)]
    pub text: Cow<'a, str>,
    #[serde(borrow)]
    pub sender: SenderIn<'a>,
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
pub struct SenderIn<'a> {
    pub role: Role,
    #[serde(borrow, rename = "externalId")]
    pub external_id: Cow<'a, str>,
}

/// A checked message: its timestamp instant as (seconds, nanoseconds) since the epoch.
#[derive(Debug)]
pub struct Message<'a> {
    pub body: MessageIn<'a>,
    pub instant: i128,
}

#[derive(Debug, Deserialize)]
struct BatchIn<'a> {
    #[serde(borrow)]
    messages: Vec<MessageIn<'a>>,
}

/// A `createOrUpdateConversation` body; only the fields the emulator keeps.
#[derive(Debug, Deserialize)]
pub struct ConversationIn<'a> {
    #[serde(borrow, rename = "externalId")]
    pub external_id: Cow<'a, str>,
}

/// Most messages a batch may hold.
pub const MAX_BATCH: usize = 300;

/// Parse an RFC 3339 date-time; one without a zone is UTC (the spec's rule).
/// Returns nanoseconds since the epoch.
pub fn parse_instant(s: &str) -> Option<i128> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(nanos(t.timestamp(), t.timestamp_subsec_nanos()));
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    let t = naive.and_utc();
    Some(nanos(t.timestamp(), t.timestamp_subsec_nanos()))
}

fn nanos(secs: i64, sub: u32) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(sub)
}

/// Check a `createMessage` body.
pub fn message(body: &[u8]) -> Result<Message<'_>, BodyError> {
    match serde_json::from_slice::<MessageIn>(body) {
        Ok(m) => check_message(m, "").map_err(BodyError::Schema),
        Err(e) => Err(explain(e, body, |v| message_value(v, ""))),
    }
}

/// Check a `createBatchMessages` body: 1 to 300 messages, each like `createMessage`.
pub fn batch(body: &[u8]) -> Result<Vec<Message<'_>>, BodyError> {
    match serde_json::from_slice::<BatchIn>(body) {
        Ok(b) => {
            if b.messages.is_empty() || b.messages.len() > MAX_BATCH {
                return Err(BodyError::Schema(format!(
                    "`messages` must hold 1 to {MAX_BATCH} items, not {}",
                    b.messages.len()
                )));
            }
            b.messages
                .into_iter()
                .enumerate()
                .map(|(i, m)| check_message(m, &format!("messages[{i}].")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(BodyError::Schema)
        }
        Err(e) => Err(explain(e, body, batch_value)),
    }
}

/// Check a `createOrUpdateConversation` body.
pub fn conversation(body: &[u8]) -> Result<ConversationIn<'_>, BodyError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| syntax(&e))?;
    conversation_value(&value).map_err(BodyError::Schema)?;
    serde_json::from_slice(body).map_err(|e| BodyError::Schema(e.to_string()))
}

fn syntax(e: &serde_json::Error) -> BodyError {
    BodyError::Syntax(format!("body is not valid JSON: {e}"))
}

/// A fast-path failure: bad JSON (400), or find the field that breaks the schema (422).
fn explain(
    e: serde_json::Error,
    body: &[u8],
    find: impl Fn(&Value) -> Result<(), String>,
) -> BodyError {
    // serde_json calls some type mismatches syntax errors (`null` where an
    // enum goes), so only a failed parse as a plain value means "not JSON".
    match serde_json::from_slice::<Value>(body) {
        Err(e) => syntax(&e),
        Ok(v) => BodyError::Schema(match find(&v) {
            Err(msg) => msg,
            Ok(()) => format!("body breaks the schema: {e}"),
        }),
    }
}

fn check_message<'a>(m: MessageIn<'a>, prefix: &str) -> Result<Message<'a>, String> {
    if m.text.is_empty() {
        return Err(format!("`{prefix}text` must not be empty"));
    }
    let instant = parse_instant(&m.timestamp).ok_or_else(|| bad_timestamp(prefix))?;
    Ok(Message { body: m, instant })
}

fn bad_timestamp(prefix: &str) -> String {
    format!("`{prefix}timestamp` must be an RFC 3339 date-time")
}

/// The string at `key` of `obj`, or a message naming `{prefix}{key}`.
fn string_field<'v>(
    obj: &'v serde_json::Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<&'v str, String> {
    match obj.get(key) {
        None => Err(format!("`{prefix}{key}` is required")),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "`{prefix}{key}` must be a string, not {}",
            kind(other)
        )),
    }
}

fn object_field<'v>(
    obj: &'v serde_json::Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<&'v serde_json::Map<String, Value>, String> {
    match obj.get(key) {
        None => Err(format!("`{prefix}{key}` is required")),
        Some(Value::Object(o)) => Ok(o),
        Some(other) => Err(format!(
            "`{prefix}{key}` must be an object, not {}",
            kind(other)
        )),
    }
}

fn as_object<'v>(v: &'v Value, what: &str) -> Result<&'v serde_json::Map<String, Value>, String> {
    match v {
        Value::Object(o) => Ok(o),
        other => Err(format!("{what} must be a JSON object, not {}", kind(other))),
    }
}

/// Field-by-field check of one message, in the spec's order.
fn message_value(v: &Value, prefix: &str) -> Result<(), String> {
    let what = if prefix.is_empty() {
        "the body".to_string()
    } else {
        format!("`{}`", prefix.trim_end_matches('.'))
    };
    let obj = as_object(v, &what)?;
    let text = string_field(obj, prefix, "text")?;
    if text.is_empty() {
        return Err(format!("`{prefix}text` must not be empty"));
    }
    let sender = object_field(obj, prefix, "sender")?;
    let sender_prefix = format!("{prefix}sender.");
    let role = string_field(sender, &sender_prefix, "role")?;
    if !matches!(role, "agent" | "customer" | "system") {
        return Err(format!(
            "`{sender_prefix}role` must be one of agent, customer, system"
        ));
    }
    string_field(sender, &sender_prefix, "externalId")?;
    let ts = string_field(obj, prefix, "timestamp")?;
    parse_instant(ts).ok_or_else(|| bad_timestamp(prefix))?;
    Ok(())
}

fn batch_value(v: &Value) -> Result<(), String> {
    let obj = as_object(v, "the body")?;
    let messages = match obj.get("messages") {
        None => return Err("`messages` is required".into()),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(format!("`messages` must be an array, not {}", kind(other)));
        }
    };
    if messages.is_empty() || messages.len() > MAX_BATCH {
        return Err(format!(
            "`messages` must hold 1 to {MAX_BATCH} items, not {}",
            messages.len()
        ));
    }
    for (i, m) in messages.iter().enumerate() {
        message_value(m, &format!("messages[{i}]."))?;
    }
    Ok(())
}

fn participant(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<(), String> {
    if !required && obj.get(key).is_none() {
        return Ok(());
    }
    let p = object_field(obj, "", key)?;
    string_field(p, &format!("{key}."), "externalId")?;
    if let Some(name) = p.get("name") {
        if !name.is_string() {
            return Err(format!("`{key}.name` must be a string, not {}", kind(name)));
        }
    }
    Ok(())
}

fn conversation_value(v: &Value) -> Result<(), String> {
    let obj = as_object(v, "the body")?;
    if let Some(id) = obj.get("id") {
        if !id.is_string() {
            return Err(format!("`id` must be a string, not {}", kind(id)));
        }
    }
    string_field(obj, "", "externalId")?;
    participant(obj, "customer", true)?;
    participant(obj, "agent", false)?;
    if let Some(m) = obj.get("metadata") {
        if !m.is_object() {
            return Err(format!("`metadata` must be an object, not {}", kind(m)));
        }
    }
    let ts = string_field(obj, "", "timestamp")?;
    parse_instant(ts).ok_or_else(|| bad_timestamp(""))?;
    Ok(())
}

/// `^[A-Z0-9]+$`, the spec's pattern for a conversation id.
pub fn is_conversation_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"{"text":"hi","sender":{"role":"agent","externalId":"a1"},"timestamp":"2021-11-23T12:13:14.555Z"}"#;

    fn schema_msg(body: &str) -> String {
        match message(body.as_bytes()) {
            Err(BodyError::Schema(m)) => m,
            other => panic!("expected a schema error for {body}, got {other:?}"),
        }
    }

    #[test]
    fn valid_message_passes() {
        let m = message(VALID.as_bytes()).unwrap();
        assert_eq!(m.body.text, "hi");
        assert_eq!(m.body.sender.role, Role::Agent);
        assert_eq!(m.body.sender.external_id, "a1");
        assert_eq!(m.instant, 1_637_669_594_555_000_000);
    }

    #[test]
    fn not_json_is_syntax() {
        assert!(matches!(message(b"{nope"), Err(BodyError::Syntax(_))));
        assert!(matches!(message(b""), Err(BodyError::Syntax(_))));
        assert!(matches!(
            message(br#"{"text":"a""#),
            Err(BodyError::Syntax(_))
        ));
    }

    #[test]
    fn each_field_is_named() {
        let cases = [
            (
                r#"{"sender":{"role":"agent","externalId":"a"},"timestamp":"2021-01-01T00:00:00Z"}"#,
                "`text` is required",
            ),
            (
                r#"{"text":5,"sender":{"role":"agent","externalId":"a"},"timestamp":"2021-01-01T00:00:00Z"}"#,
                "`text` must be a string",
            ),
            (
                r#"{"text":"","sender":{"role":"agent","externalId":"a"},"timestamp":"2021-01-01T00:00:00Z"}"#,
                "`text` must not be empty",
            ),
            (
                r#"{"text":"x","timestamp":"2021-01-01T00:00:00Z"}"#,
                "`sender` is required",
            ),
            (
                r#"{"text":"x","sender":"a","timestamp":"2021-01-01T00:00:00Z"}"#,
                "`sender` must be an object",
            ),
            (
                r#"{"text":"x","sender":{"externalId":"a"},"timestamp":"2021-01-01T00:00:00Z"}"#,
                "`sender.role` is required",
            ),
            (
                r#"{"text":"x","sender":{"role":"bot","externalId":"a"},"timestamp":"2021-01-01T00:00:00Z"}"#,
                "`sender.role` must be one of",
            ),
            (
                r#"{"text":"x","sender":{"role":"agent"},"timestamp":"2021-01-01T00:00:00Z"}"#,
                "`sender.externalId` is required",
            ),
            (
                r#"{"text":"x","sender":{"role":"agent","externalId":7},"timestamp":"2021-01-01T00:00:00Z"}"#,
                "`sender.externalId` must be a string",
            ),
            (
                r#"{"text":"x","sender":{"role":"agent","externalId":"a"}}"#,
                "`timestamp` is required",
            ),
            (
                r#"{"text":"x","sender":{"role":"agent","externalId":"a"},"timestamp":"yesterday"}"#,
                "`timestamp` must be an RFC 3339",
            ),
            (
                r#"{"text":"x","sender":{"role":"agent","externalId":"a"},"timestamp":"2021-13-01T00:00:00Z"}"#,
                "`timestamp` must be an RFC 3339",
            ),
            (
                r#"{"text":"x","sender":{"role":null,"externalId":"a"},"timestamp":"2021-01-01T00:00:00Z"}"#,
                "`sender.role` must be a string",
            ),
            ("[1,2]", "the body must be a JSON object"),
        ];
        for (body, want) in cases {
            let got = schema_msg(body);
            assert!(got.starts_with(want), "{body}: {got}");
        }
    }

    #[test]
    fn timestamps_without_zone_are_utc() {
        assert_eq!(
            parse_instant("2021-11-23T12:13:14.555"),
            parse_instant("2021-11-23T12:13:14.555Z")
        );
        assert_eq!(
            parse_instant("2021-11-23T13:13:14+01:00"),
            parse_instant("2021-11-23T12:13:14Z")
        );
        assert_eq!(parse_instant("2021-11-23"), None);
    }

    #[test]
    fn batch_names_the_item() {
        let ok = format!(r#"{{"messages":[{VALID},{VALID}]}}"#);
        assert_eq!(batch(ok.as_bytes()).unwrap().len(), 2);
        let bad = format!(
            r#"{{"messages":[{VALID},{VALID},{VALID},{{"text":"","sender":{{"role":"agent","externalId":"a"}},"timestamp":"2021-01-01T00:00:00Z"}}]}}"#
        );
        match batch(bad.as_bytes()) {
            Err(BodyError::Schema(m)) => assert!(m.contains("`messages[3].text`"), "{m}"),
            other => panic!("{other:?}"),
        }
        let bad_role = format!(
            r#"{{"messages":[{VALID},{{"text":"x","sender":{{"role":"bot","externalId":"a"}},"timestamp":"2021-01-01T00:00:00Z"}}]}}"#
        );
        match batch(bad_role.as_bytes()) {
            Err(BodyError::Schema(m)) => assert!(m.contains("`messages[1].sender.role`"), "{m}"),
            other => panic!("{other:?}"),
        }
        match batch(br#"{"messages":[]}"#) {
            Err(BodyError::Schema(m)) => assert!(m.contains("`messages`"), "{m}"),
            other => panic!("{other:?}"),
        }
        let many = format!(r#"{{"messages":[{}]}}"#, vec![VALID; 301].join(","));
        assert!(matches!(batch(many.as_bytes()), Err(BodyError::Schema(_))));
    }

    #[test]
    fn conversation_fields_are_named() {
        let ok = r#"{"externalId":"c1","customer":{"externalId":"u1"},"timestamp":"2021-01-01T00:00:00Z"}"#;
        assert_eq!(conversation(ok.as_bytes()).unwrap().external_id, "c1");
        let cases = [
            (
                r#"{"customer":{"externalId":"u1"},"timestamp":"2021-01-01T00:00:00Z"}"#,
                "`externalId`",
            ),
            (
                r#"{"externalId":"c1","timestamp":"2021-01-01T00:00:00Z"}"#,
                "`customer`",
            ),
            (
                r#"{"externalId":"c1","customer":{},"timestamp":"2021-01-01T00:00:00Z"}"#,
                "`customer.externalId`",
            ),
            (
                r#"{"externalId":"c1","customer":{"externalId":"u1"}}"#,
                "`timestamp`",
            ),
            (
                r#"{"externalId":"c1","customer":{"externalId":"u1"},"agent":{"name":"x"},"timestamp":"2021-01-01T00:00:00Z"}"#,
                "`agent.externalId`",
            ),
        ];
        for (body, want) in cases {
            match conversation(body.as_bytes()) {
                Err(BodyError::Schema(m)) => assert!(m.contains(want), "{body}: {m}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn conversation_id_pattern() {
        assert!(is_conversation_id("ABC123"));
        assert!(is_conversation_id("01BX5ZZKBKACTAV9WEVGEMMVS1"));
        assert!(!is_conversation_id(""));
        assert!(!is_conversation_id("abc"));
        assert!(!is_conversation_id("AB-1"));
    }
}
