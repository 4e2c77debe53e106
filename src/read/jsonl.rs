//! JSONL: one JSON object per line, flat
//! (`{"conversation_id", "timestamp", "sender_role", "sender_id", "text"}`)
//! or in the API's own shape (`{"conversationId", "text", "timestamp",
//! "sender": {"role", "externalId"}}`). Keys are matched like CSV columns
//! (`columns`). Blank lines are skipped and are not records. A line that is
//! not a JSON object is that record's problem, not the file's.
//!
//! Values: strings as they are; numbers as their JSON text (a numeric
//! sender or conversation id, an epoch timestamp); `null` as absent;
//! booleans, arrays and objects are a per-record problem.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use encoding_rs::Encoding;
use serde_json::{Map, Value};

use super::columns::{self, index};
use super::window::Window;
use super::{RawFields, RawRecord, ReadError, Source, Unreadable, BOM, LONGEST_RECORD};
use crate::model::{json_kind as kind, Field, Invalid, RowRef};

/// One line (without its line break) to fields, or why they cannot be read
/// (with the conversation id when its own key can be read).
///
/// JSON text is UTF-8 (RFC 8259): a line with other bytes is invalid. Its
/// reason names the field holding them when one does, and the conversation
/// id is still taken when its value is clean: the line is read once more
/// with the bad bytes replaced, only to learn that.
pub(crate) fn fields(
    line: &[u8],
    map: &[(Field, String)],
    decoded: Option<&'static Encoding>,
) -> Result<RawFields, Unreadable> {
    let text = match std::str::from_utf8(line) {
        Ok(text) => text,
        Err(e) => return Err(not_utf8(line, e.valid_up_to(), map, decoded)),
    };
    from_object(&object(text)?, map)
}

fn object(text: &str) -> Result<Map<String, Value>, Invalid> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let what = message
            .rsplit_once(" at line ")
            .map(|(m, _)| m.to_string())
            .unwrap_or(message);
        Invalid::record(format!(
            "not a JSON object: {what} at column {}",
            e.column()
        ))
    })?;
    match value {
        Value::Object(object) => Ok(object),
        other => Err(Invalid::record(format!(
            "not a JSON object: found {}",
            kind(&other)
        ))),
    }
}

/// The reason for a line that is not UTF-8 (`at` is 0-based).
fn not_utf8(
    line: &[u8],
    at: usize,
    map: &[(Field, String)],
    decoded: Option<&'static Encoding>,
) -> Unreadable {
    let problem = super::encoding::not_utf8(line, at, "the line", decoded);
    let lossy = String::from_utf8_lossy(line);
    let Ok(object) = object(&lossy) else {
        return Invalid::record(problem).into();
    };
    let bad = |v: &Option<String>| v.as_deref().is_some_and(|s| s.contains('\u{FFFD}'));
    let (values, _) = values(&object, map);
    let conversation_id = values
        .first()
        .and_then(|v| v.as_ref().ok())
        .filter(|v| !bad(v))
        .cloned()
        .flatten();
    let field = Field::ALL.into_iter().find(|f| {
        values
            .get(index(*f))
            .and_then(|v| v.as_ref().ok())
            .is_some_and(bad)
    });
    Unreadable {
        reason: match field {
            Some(field) => Invalid::field(field, problem),
            None => Invalid::record(problem),
        },
        conversation_id,
    }
}

type Values = [Result<Option<String>, Invalid>; 5];

fn from_object(
    object: &Map<String, Value>,
    map: &[(Field, String)],
) -> Result<RawFields, Unreadable> {
    let (values, ambiguous) = values(object, map);
    let [conversation_id, timestamp, sender_role, sender_id, text] = values;
    if let Some(reason) = ambiguous {
        return Err(reason.into());
    }
    // The conversation id first: it names the row even when another field
    // cannot be read.
    let conversation_id = conversation_id?;
    let rest = (|| {
        Ok::<_, Invalid>(RawFields {
            conversation_id: None,
            timestamp: timestamp?,
            sender_role: sender_role?,
            sender_id: sender_id?,
            text: text?,
        })
    })();
    Unreadable::with_id(rest, conversation_id)
}

/// Each field's value (by `index`), and whether two keys named one field.
/// Duplicate keys: the last one wins (serde_json keeps the last).
fn values(object: &Map<String, Value>, map: &[(Field, String)]) -> (Values, Option<Invalid>) {
    let mut out: Values = [Ok(None), Ok(None), Ok(None), Ok(None), Ok(None)];
    // The API's shape: `sender` is an object holding role and externalId.
    // Such a key is not a candidate for `sender_id` itself.
    let nested_sender = object
        .iter()
        .find(|(k, v)| v.is_object() && columns::normalize(k) == "sender")
        .and_then(|(k, v)| Some((k.as_str(), v.as_object()?)));
    let keys: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|k| Some(*k) != nested_sender.map(|(n, _)| n))
        .collect();
    let found = match columns::resolve(&keys, map) {
        Ok(found) => found,
        Err(a) => {
            return (
                out,
                Some(Invalid::record(format!(
                    "keys `{}` and `{}` both name `{}`; choose one with --map {}=KEY",
                    crate::model::excerpt(&a.first),
                    crate::model::excerpt(&a.second),
                    a.field.name(),
                    a.field.name()
                ))),
            )
        }
    };
    for field in Field::ALL {
        let key = found
            .get(index(field))
            .copied()
            .flatten()
            .and_then(|i| keys.get(i));
        if let (Some(key), Some(slot)) = (key, out.get_mut(index(field))) {
            *slot = text(field, object.get(*key));
        }
    }
    if let Some((_, sender)) = nested_sender {
        let inner: Vec<&str> = sender.keys().map(String::as_str).collect();
        let pick = |names: &[&str]| {
            inner
                .iter()
                .find(|k| names.contains(&columns::normalize(k).as_str()))
                .and_then(|k| sender.get(*k))
        };
        let slots = [
            (Field::SenderRole, pick(&["role", "senderrole"])),
            (Field::SenderId, pick(&["externalid", "id", "senderid"])),
        ];
        for (field, value) in slots {
            if let Some(slot) = out.get_mut(index(field)) {
                if matches!(slot, Ok(None)) {
                    *slot = text(field, value);
                }
            }
        }
    }
    (out, None)
}

fn text(field: Field, value: Option<&Value>) -> Result<Option<String>, Invalid> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(v) => Err(Invalid::field(
            field,
            format!("expected a string, found {}", kind(v)),
        )),
    }
}

/// The line without its line break; `None` when blank.
fn content(buf: &[u8], first: bool) -> Option<&[u8]> {
    let mut line = buf.strip_suffix(b"\n").unwrap_or(buf);
    line = line.strip_suffix(b"\r").unwrap_or(line);
    if first {
        line = line.strip_prefix(BOM).unwrap_or(line);
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(line)
    }
}

/// Streams a JSONL source's records, one reused line buffer.
pub(crate) struct Records<'a> {
    source: &'a Source,
    map: &'a [(Field, String)],
    decoded: Option<&'static Encoding>,
    rdr: Option<BufReader<File>>,
    buf: Vec<u8>,
    offset: u64,
    line: u64,
    record: u64,
}

impl<'a> Records<'a> {
    pub(crate) fn new(
        source: &'a Source,
        map: &'a [(Field, String)],
        decoded: Option<&'static Encoding>,
    ) -> Result<Self, ReadError> {
        let file = File::open(&source.path).map_err(|e| source.open_error(e))?;
        Ok(Records {
            source,
            map,
            decoded,
            rdr: Some(BufReader::with_capacity(64 * 1024, file)),
            buf: Vec::new(),
            offset: 0,
            line: 0,
            record: 0,
        })
    }
}

impl Iterator for Records<'_> {
    type Item = Result<RawRecord, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rdr = self.rdr.as_mut()?;
            self.buf.clear();
            // What a line too long to keep left is not kept for the rest.
            if self.buf.capacity() > 1 << 20 {
                self.buf.shrink_to(64 << 10);
            }
            let (n, whole) = match read_line(rdr, &mut self.buf, LONGEST_RECORD) {
                Ok((0, _)) => {
                    self.rdr = None;
                    return None;
                }
                Ok(read) => read,
                Err(e) => {
                    self.rdr = None;
                    return Some(Err(ReadError::At {
                        path: self.source.name.clone(),
                        line: self.line + 1,
                        message: e.to_string(),
                    }));
                }
            };
            let start = self.offset;
            self.offset += n;
            self.line += 1;
            let Some(line) = content(&self.buf, start == 0) else {
                continue;
            };
            self.record += 1;
            let pos = RowRef {
                source: self.source.id,
                record: self.record,
                line: self.line,
                offset: start,
            };
            let read = if whole {
                fields(line, self.map, self.decoded)
            } else {
                Err(too_long(n).into())
            };
            return Some(Ok(RawRecord::new(pos, read)));
        }
    }
}

/// The reason of a line longer than [`LONGEST_RECORD`], of `n` bytes.
fn too_long(n: u64) -> Invalid {
    Invalid::record(format!(
        "line of {n} bytes, over the {} MiB a record may have: JSON Lines \
         holds one object per line (is this file one JSON array?)",
        LONGEST_RECORD >> 20
    ))
}

/// Read a line into `buf`, at most `most` bytes of it: the bytes the line
/// took in the file, and whether `buf` holds all of it. The rest of a
/// longer line is read through and dropped.
fn read_line(rdr: &mut impl BufRead, buf: &mut Vec<u8>, most: u64) -> std::io::Result<(u64, bool)> {
    let n = rdr.by_ref().take(most).read_until(b'\n', buf)? as u64;
    if n < most || buf.last() == Some(&b'\n') {
        return Ok((n, true));
    }
    let mut skipped = 0u64;
    loop {
        let chunk = rdr.fill_buf()?;
        if chunk.is_empty() {
            // The file ended: at the limit exactly, the line is whole.
            return Ok((n + skipped, skipped == 0));
        }
        let (used, end) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        rdr.consume(used);
        skipped += used as u64;
        if end {
            return Ok((n + skipped, false));
        }
    }
}

/// Reads JSONL records back by offset.
pub(crate) struct At {
    name: String,
    map: Vec<(Field, String)>,
    decoded: Option<&'static Encoding>,
    rdr: Window,
    buf: Vec<u8>,
}

impl At {
    pub(crate) fn new(
        source: &Source,
        map: Vec<(Field, String)>,
        decoded: Option<&'static Encoding>,
    ) -> Result<Self, ReadError> {
        let file = File::open(&source.path).map_err(|e| source.open_error(e))?;
        Ok(At {
            name: source.name.clone(),
            map,
            decoded,
            rdr: Window::new(file),
            buf: Vec::new(),
        })
    }

    pub(crate) fn read_at(&mut self, at: &RowRef) -> Result<RawRecord, ReadError> {
        let err = |message: String| ReadError::At {
            path: self.name.clone(),
            line: at.line,
            message,
        };
        self.rdr
            .seek(SeekFrom::Start(at.offset))
            .map_err(|e| err(format!("cannot seek to byte {}: {e}", at.offset)))?;
        self.buf.clear();
        let (n, whole) = read_line(&mut self.rdr, &mut self.buf, LONGEST_RECORD)
            .map_err(|e| err(e.to_string()))?;
        if !whole {
            return Ok(RawRecord::new(*at, Err(too_long(n).into())));
        }
        let line = content(&self.buf, at.offset == 0).ok_or_else(|| {
            err(format!(
                "no record at byte {} (did the file change?)",
                at.offset
            ))
        })?;
        Ok(RawRecord::new(*at, fields(line, &self.map, self.decoded)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_over_the_limit_is_read_through_not_kept() {
        let mut input = &b"short\nthe long line\n\nlast"[..];
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        loop {
            buf.clear();
            let (n, whole) = read_line(&mut input, &mut buf, 8).unwrap();
            if n == 0 {
                break;
            }
            lines.push((n, whole, String::from_utf8(buf.clone()).unwrap()));
        }
        assert_eq!(
            lines,
            [
                (6, true, "short\n".to_string()),
                (14, false, "the long".to_string()),
                (1, true, "\n".to_string()),
                (4, true, "last".to_string()),
            ]
        );
        // Exactly the limit, its line break included, is whole.
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut &b"1234567\nx"[..], &mut buf, 8).unwrap(),
            (8, true)
        );
        // The limit reached just as the file ends: whole; past it, not.
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut &b"12345678"[..], &mut buf, 8).unwrap(),
            (8, true)
        );
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut &b"123456789"[..], &mut buf, 8).unwrap(),
            (9, false)
        );
    }

    fn f(line: &str) -> Result<RawFields, String> {
        fields(line.as_bytes(), &[], None).map_err(|e| e.reason.to_string())
    }

    #[test]
    fn flat_shape() {
        let r = f(r#"{"conversation_id":"AB1","timestamp":"2021-11-23T12:13:14Z","sender_role":"agent","sender_id":"7","text":"hi"}"#).unwrap();
        assert_eq!(r.conversation_id.as_deref(), Some("AB1"));
        assert_eq!(r.timestamp.as_deref(), Some("2021-11-23T12:13:14Z"));
        assert_eq!(r.sender_role.as_deref(), Some("agent"));
        assert_eq!(r.sender_id.as_deref(), Some("7"));
        assert_eq!(r.text.as_deref(), Some("hi"));
    }

    #[test]
    fn api_shape() {
        let r = f(r#"{"conversationId":"AB1","text":"hi","sender":{"role":"agent","externalId":123},"timestamp":"2021-11-23T12:13:14.555Z"}"#).unwrap();
        assert_eq!(r.conversation_id.as_deref(), Some("AB1"));
        assert_eq!(r.sender_role.as_deref(), Some("agent"));
        assert_eq!(r.sender_id.as_deref(), Some("123"));
        assert_eq!(r.text.as_deref(), Some("hi"));
    }

    #[test]
    fn numbers_are_their_text_and_null_is_absent() {
        let r = f(r#"{"conversation_id":42,"timestamp":1637669594555,"sender_id":7,"text":null}"#)
            .unwrap();
        assert_eq!(r.conversation_id.as_deref(), Some("42"));
        assert_eq!(r.timestamp.as_deref(), Some("1637669594555"));
        assert_eq!(r.sender_id.as_deref(), Some("7"));
        assert_eq!(r.text, None);
        assert_eq!(r.sender_role, None);
        let r = f(r#"{"timestamp":1637669594.555}"#).unwrap();
        assert_eq!(r.timestamp.as_deref(), Some("1637669594.555"));
    }

    #[test]
    fn a_sender_string_is_the_sender_id() {
        let r = f(r#"{"sender":"u1","role":"customer"}"#).unwrap();
        assert_eq!(r.sender_id.as_deref(), Some("u1"));
        assert_eq!(r.sender_role.as_deref(), Some("customer"));
    }

    #[test]
    fn wrong_value_types_are_reasons() {
        assert_eq!(
            f(r#"{"sender_id":true}"#).unwrap_err(),
            "sender_id: expected a string, found a boolean"
        );
        assert_eq!(
            f(r#"{"text":["a"]}"#).unwrap_err(),
            "text: expected a string, found an array"
        );
        assert_eq!(
            f(r#"{"sender":{"role":{"x":1}}}"#).unwrap_err(),
            "sender_role: expected a string, found an object"
        );
    }

    #[test]
    fn malformed_lines_are_reasons() {
        assert_eq!(
            f("conversation_id,text").unwrap_err(),
            "not a JSON object: expected value at column 1"
        );
        assert_eq!(
            f(r#"{"text": ?}"#).unwrap_err(),
            "not a JSON object: expected value at column 10"
        );
        assert_eq!(f("[1,2]").unwrap_err(), "not a JSON object: found an array");
        assert_eq!(f("\"x\"").unwrap_err(), "not a JSON object: found a string");
        assert_eq!(
            f(r#"{"text":"a"} x"#).unwrap_err(),
            "not a JSON object: trailing characters at column 14"
        );
        assert_eq!(
            fields(b"{\"text\":\"\xff\"}", &[], None)
                .unwrap_err()
                .reason
                .to_string(),
            "text: invalid UTF-8 at byte 10 of the line; the bytes look like windows-1252 \
             (Latin-1): read the file with --encoding windows-1252"
        );
    }

    #[test]
    fn aliases_conflicts_and_map() {
        let r =
            f(r#"{"chat_id":"A","created_at":"t","role":"agent","author_id":"u","message":"m"}"#)
                .unwrap();
        assert_eq!(r.conversation_id.as_deref(), Some("A"));
        assert_eq!(r.text.as_deref(), Some("m"));
        assert_eq!(
            f(r#"{"message":"a","body":"b"}"#).unwrap_err(),
            "keys `body` and `message` both name `text`; choose one with --map text=KEY"
        );
        let map = vec![(Field::Text, "body".to_string())];
        let r = fields(br#"{"message":"a","Body":"b"}"#, &map, None).unwrap();
        assert_eq!(r.text.as_deref(), Some("b"));
    }
}
