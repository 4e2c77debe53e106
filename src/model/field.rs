//! The five fields a message is made of, and why a row's fields cannot be
//! sent (`Invalid`): shared by the readers, validation and timestamp parsing.

use std::fmt;

/// The five fields a message is made of, by their canonical column names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    ConversationId,
    Timestamp,
    SenderRole,
    SenderId,
    Text,
}

impl Field {
    pub const ALL: [Field; 5] = [
        Field::ConversationId,
        Field::Timestamp,
        Field::SenderRole,
        Field::SenderId,
        Field::Text,
    ];

    /// The canonical column name.
    pub fn name(self) -> &'static str {
        match self {
            Field::ConversationId => "conversation_id",
            Field::Timestamp => "timestamp",
            Field::SenderRole => "sender_role",
            Field::SenderId => "sender_id",
            Field::Text => "text",
        }
    }

    /// The field of a canonical name, compared case-insensitively.
    pub fn from_name(name: &str) -> Option<Field> {
        let name = name.trim();
        Field::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a row cannot be sent. `field` and `problem` group reasons (for
/// `check`); `excerpt` is a short, truncated piece of the offending value,
/// escaped (see [`excerpt`]), shown in quotes.
/// A bad row is data, never an error: it is reported and never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: Option<Field>,
    pub problem: String,
    pub excerpt: Option<String>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(field) = self.field {
            write!(f, "{}: ", field.name())?;
        }
        f.write_str(&self.problem)?;
        if let Some(excerpt) = &self.excerpt {
            write!(f, ": \"{excerpt}\"")?;
        }
        Ok(())
    }
}

impl Invalid {
    /// A reason about one field, without an excerpt.
    pub fn field(field: Field, problem: impl Into<String>) -> Self {
        Invalid {
            field: Some(field),
            problem: problem.into(),
            excerpt: None,
        }
    }

    /// A reason about one field, showing a short excerpt of its value.
    pub fn value(field: Field, problem: impl Into<String>, value: &str) -> Self {
        Invalid {
            field: Some(field),
            problem: problem.into(),
            excerpt: Some(excerpt(value)),
        }
    }

    /// A reason about the record as a whole (ragged row, malformed line).
    pub fn record(problem: impl Into<String>) -> Self {
        Invalid {
            field: None,
            problem: problem.into(),
            excerpt: None,
        }
    }

    /// The reason without its excerpt: what `check` groups rows by.
    pub fn kind(&self) -> String {
        match self.field {
            Some(field) => format!("{}: {}", field.name(), self.problem),
            None => self.problem.clone(),
        }
    }
}

/// At most this many characters of a bad value are shown in a reason.
pub const EXCERPT_CHARS: usize = 32;

/// A short piece of a value for a reason: at most `EXCERPT_CHARS` characters
/// of it, `…` when cut, escaped as Rust escapes a string literal (`\"`,
/// `\\`, `\0`, `\n`, `\u{1b}`, ...): a reason never carries a raw control
/// character (a NUL, a terminal escape) into a report, a terminal or a log.
/// Message texts are never excerpted.
pub fn excerpt(value: &str) -> String {
    let mut chars = value.char_indices();
    let (shown, cut) = match chars.nth(EXCERPT_CHARS) {
        Some((cut, _)) => (value.get(..cut).unwrap_or_default(), true),
        None => (value, false),
    };
    let mut out: String = shown.escape_debug().collect();
    if cut {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_by_name() {
        assert_eq!(Field::from_name(" Sender_ID "), Some(Field::SenderId));
        assert_eq!(Field::from_name("body"), None);
        for f in Field::ALL {
            assert_eq!(Field::from_name(f.name()), Some(f));
        }
    }

    #[test]
    fn reasons_read_and_group() {
        let i = Invalid::value(Field::Timestamp, "not a date-time", "yesterday");
        assert_eq!(i.to_string(), "timestamp: not a date-time: \"yesterday\"");
        assert_eq!(i.kind(), "timestamp: not a date-time");
        assert_eq!(
            Invalid::record("row has 4 fields").kind(),
            "row has 4 fields"
        );
        let long = "x".repeat(40);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 1);
    }

    #[test]
    fn excerpts_never_carry_control_characters() {
        assert_eq!(
            excerpt("a\0b\u{1b}[31m\t\r\n\u{7f}"),
            "a\\0b\\u{1b}[31m\\t\\r\\n\\u{7f}"
        );
        assert_eq!(excerpt("say \"hi\" \\o/"), "say \\\"hi\\\" \\\\o/");
        let i = Invalid::value(Field::ConversationId, "bad", "A\0B");
        assert_eq!(i.to_string(), "conversation_id: bad: \"A\\0B\"");
        // As the Debug form of the value, which reasons used before.
        for v in ["café", "\u{301}x", "tab\there", "\u{202e}rtl", "\u{85}"] {
            assert_eq!(format!("\"{}\"", excerpt(v)), format!("{v:?}"), "{v:?}");
        }
        let long = format!("{}\0", "x".repeat(40));
        assert!(!excerpt(&long).contains('\0'));
        assert!(excerpt(&"\0".repeat(40)).chars().all(|c| !c.is_control()));
    }
}
