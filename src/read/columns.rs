//! Which column (CSV header name or JSONL key) holds which field.
//!
//! Names are compared after trimming, lowercasing and dropping everything
//! but letters and digits, so `sender_id`, `senderId` and `Sender ID` are the
//! same name. Per field, the first rule that matches decides:
//!
//! 1. `--map field=column` (the column compared trimmed, case-insensitively),
//!    or `--map field=#N`, the N-th column (1-based) of a CSV header: the
//!    only way to pick one of two columns with the same name;
//! 2. the canonical name;
//! 3. one of the field's aliases.
//!
//! Two columns matching at the same rule are ambiguous: an error naming
//! both, which `--map` resolves. Columns named by `--map` are not
//! considered for any other field. Other columns are ignored.

use crate::model::Field;

/// Accepted names per field, normalized (see `normalize`), canonical first.
pub fn aliases(field: Field) -> &'static [&'static str] {
    match field {
        Field::ConversationId => &["conversationid", "conversation", "chatid", "threadid"],
        Field::Timestamp => &[
            "timestamp",
            "createdat",
            "sentat",
            "time",
            "date",
            "datetime",
        ],
        Field::SenderRole => &["senderrole", "role", "authorrole", "participantrole"],
        Field::SenderId => &[
            "senderid",
            "externalid",
            "senderexternalid",
            "sender",
            "authorid",
            "participantid",
        ],
        Field::Text => &["text", "message", "body", "content", "messagetext"],
    }
}

/// The aliases as a user would write them, for hints and docs.
pub fn alias_list(field: Field) -> &'static str {
    match field {
        Field::ConversationId => "conversationId, conversation, chat_id, thread_id",
        Field::Timestamp => "created_at, sent_at, time, date, datetime",
        Field::SenderRole => "role, author_role, participant_role",
        Field::SenderId => {
            "external_id, externalId, sender_external_id, sender, author_id, participant_id"
        }
        Field::Text => "message, body, content, message_text",
    }
}

/// Lowercase letters and digits only.
pub fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

pub(crate) fn index(field: Field) -> usize {
    match field {
        Field::ConversationId => 0,
        Field::Timestamp => 1,
        Field::SenderRole => 2,
        Field::SenderId => 3,
        Field::Text => 4,
    }
}

/// Two names matched one field at the same rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ambiguous {
    pub field: Field,
    pub first: String,
    pub second: String,
    /// 0-based positions of the two names (a CSV header's column numbers, minus one).
    pub at: (usize, usize),
}

/// The 1-based column number of a `--map field=#N` column, if that is
/// what `column` is (`#` and digits; `#0` is none).
pub fn number(column: &str) -> Option<usize> {
    let digits = column.trim().strip_prefix('#')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// Which of `names` holds each field (indexed by `index(field)`).
pub fn resolve<S: AsRef<str>>(
    names: &[S],
    map: &[(Field, String)],
) -> Result<[Option<usize>; 5], Ambiguous> {
    let mut found = [None; 5];
    let mut claimed = vec![false; names.len()];
    for field in Field::ALL {
        let Some((_, column)) = map.iter().rev().find(|(f, _)| *f == field) else {
            continue;
        };
        if let Some(n) = number(column) {
            if n <= names.len() {
                found[index(field)] = Some(n - 1);
                if let Some(c) = claimed.get_mut(n - 1) {
                    *c = true;
                }
            }
            continue;
        }
        let want = column.trim().to_lowercase();
        let mut hits = names
            .iter()
            .enumerate()
            .filter(|(_, n)| n.as_ref().trim().to_lowercase() == want);
        if let Some((i, _)) = hits.next() {
            if let Some((j, _)) = hits.next() {
                return Err(ambiguous(field, names, i, j));
            }
            found[index(field)] = Some(i);
            if let Some(c) = claimed.get_mut(i) {
                *c = true;
            }
        }
    }
    let normalized: Vec<String> = names.iter().map(|n| normalize(n.as_ref())).collect();
    for field in Field::ALL {
        if found[index(field)].is_some() || map.iter().any(|(f, _)| *f == field) {
            continue;
        }
        let all = aliases(field);
        let (canonical, others) = all.split_first().unwrap_or((&"", &[]));
        for rule in [std::slice::from_ref(canonical), others] {
            let mut hits = normalized.iter().enumerate().filter(|(i, n)| {
                !claimed.get(*i).copied().unwrap_or(true) && rule.contains(&n.as_str())
            });
            if let Some((i, _)) = hits.next() {
                if let Some((j, _)) = hits.next() {
                    return Err(ambiguous(field, names, i, j));
                }
                found[index(field)] = Some(i);
                break;
            }
        }
    }
    Ok(found)
}

fn ambiguous<S: AsRef<str>>(field: Field, names: &[S], i: usize, j: usize) -> Ambiguous {
    let name = |k: usize| {
        names
            .get(k)
            .map(|n| n.as_ref().to_string())
            .unwrap_or_default()
    };
    Ambiguous {
        field,
        first: name(i),
        second: name(j),
        at: (i, j),
    }
}

/// The hint shown with a missing column.
pub fn hint(column: &str) -> String {
    let aliases = Field::ALL
        .into_iter()
        .find(|f| f.name() == column)
        .map(alias_list)
        .unwrap_or("");
    format!(
        "\n  hint: the header needs conversation_id, timestamp, sender_role, sender_id, text \
         (any case); `{column}` may also be named {aliases}; or name your column with \
         --map {column}=COLUMN"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Result<[Option<usize>; 5], Ambiguous> {
        resolve(names, &[])
    }

    #[test]
    fn canonical_names_in_any_case_and_spelling() {
        let got = cols(&[
            "Text",
            " SENDER_ID ",
            "sender role",
            "timeStamp",
            "conversationId",
        ])
        .unwrap();
        assert_eq!(got, [Some(4), Some(3), Some(2), Some(1), Some(0)]);
    }

    #[test]
    fn aliases_per_field() {
        let got = cols(&[
            "chat_id",
            "created_at",
            "role",
            "author_id",
            "message",
            "extra",
        ])
        .unwrap();
        assert_eq!(got, [Some(0), Some(1), Some(2), Some(3), Some(4)]);
        for (name, field) in [
            ("thread_id", Field::ConversationId),
            ("conversation", Field::ConversationId),
            ("sent_at", Field::Timestamp),
            ("time", Field::Timestamp),
            ("date", Field::Timestamp),
            ("datetime", Field::Timestamp),
            ("external_id", Field::SenderId),
            ("externalId", Field::SenderId),
            ("sender_external_id", Field::SenderId),
            ("sender", Field::SenderId),
            ("body", Field::Text),
            ("content", Field::Text),
            ("message_text", Field::Text),
        ] {
            let got = cols(&["x", name]).unwrap();
            assert_eq!(got[index(field)], Some(1), "{name}");
        }
        // Not an alias: too ambiguous in real exports.
        assert_eq!(cols(&["user_id"]).unwrap()[index(Field::SenderId)], None);
    }

    #[test]
    fn canonical_name_wins_over_an_alias() {
        let got = cols(&["role", "sender_role"]).unwrap();
        assert_eq!(got[index(Field::SenderRole)], Some(1));
    }

    #[test]
    fn two_aliases_of_one_field_are_ambiguous() {
        let e = cols(&["message", "body"]).unwrap_err();
        assert_eq!(
            e,
            Ambiguous {
                field: Field::Text,
                first: "message".into(),
                second: "body".into(),
                at: (0, 1),
            }
        );
        let e = cols(&["text", "TEXT"]).unwrap_err();
        assert_eq!(e.field, Field::Text);
    }

    #[test]
    fn map_resolves_and_claims_its_column() {
        let map = vec![(Field::Text, "body".to_string())];
        let got = resolve(&["message", "Body "], &map).unwrap();
        assert_eq!(got[index(Field::Text)], Some(1));
        // A mapped column is not taken by another field's alias.
        let map = vec![(Field::Text, "sender".to_string())];
        let got = resolve(&["sender", "author_id"], &map).unwrap();
        assert_eq!(got[index(Field::Text)], Some(0));
        assert_eq!(got[index(Field::SenderId)], Some(1));
        // A mapped column that is absent leaves the field unmapped (no alias fallback).
        let map = vec![(Field::Text, "nope".to_string())];
        assert_eq!(resolve(&["text"], &map).unwrap()[index(Field::Text)], None);
    }

    #[test]
    fn map_by_column_number_picks_one_of_two_same_names() {
        assert_eq!(number("#5"), Some(5));
        assert_eq!(number(" #12 "), Some(12));
        for not in ["#0", "#", "#x", "5", "#-1", "#1.5", "text"] {
            assert_eq!(number(not), None, "{not}");
        }
        let names = ["conversation_id", "text", "sender_id", "text"];
        assert_eq!(cols(&names).unwrap_err().at, (1, 3));
        let map = vec![(Field::Text, "#4".to_string())];
        assert_eq!(resolve(&names, &map).unwrap()[index(Field::Text)], Some(3));
        let map = vec![(Field::Text, "#2".to_string())];
        assert_eq!(resolve(&names, &map).unwrap()[index(Field::Text)], Some(1));
        // A number past the last column maps nothing (the header reader says so).
        let map = vec![(Field::Text, "#9".to_string())];
        assert_eq!(resolve(&names, &map).unwrap()[index(Field::Text)], None);
    }

    #[test]
    fn hint_lists_the_aliases() {
        assert!(hint("timestamp").contains("created_at, sent_at"));
        assert!(hint("timestamp").contains("--map timestamp=COLUMN"));
    }
}
