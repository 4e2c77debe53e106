//! Validate: a raw record becomes a `Row` the API will accept, or an
//! `Invalid` with a precise reason. A bad row is data, never an error: it is
//! reported and never sent. Reasons never carry a whole message text.

use crate::model::{
    check_external_id, ContentKey, ConversationId, ConversationMode, Field, Invalid, MessageBody,
    Role, RowRef, Sender, Timestamp,
};
use crate::read::RawFields;

/// Maps the input's role vocabulary onto the API's roles.
#[derive(Debug, Clone, Default)]
pub struct RoleMap {
    /// Extra names (lowercased) from `--role-map`.
    pub extra: Vec<(String, Role)>,
}

impl RoleMap {
    /// The API role for an input role value: `--role-map` names first, then
    /// the API's own names; case-insensitive, surrounding space ignored.
    pub fn get(&self, value: &str) -> Option<Role> {
        let v = trim(value);
        // ASCII (nearly every value) is compared ignoring its case, with no
        // lowercased copy; against names that are lowercase, that is
        // comparing its lowercase form, which other text is made into.
        let lower;
        let v = if v.is_ascii() {
            v
        } else {
            lower = v.to_lowercase();
            lower.as_str()
        };
        self.extra
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(v))
            .map(|(_, role)| *role)
            .or_else(|| {
                Role::ALL
                    .iter()
                    .copied()
                    .find(|r| r.as_str().eq_ignore_ascii_case(v))
            })
    }
}

#[derive(Debug, Clone)]
pub struct ValidateOptions {
    pub mode: ConversationMode,
    /// Zone for timestamps that carry none.
    pub timezone: chrono_tz::Tz,
    /// `--timestamp-format`s, tried in order before the built-in forms.
    pub timestamp_formats: Vec<crate::timestamp::Pattern>,
    pub roles: RoleMap,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            mode: ConversationMode::Existing,
            timezone: chrono_tz::UTC,
            timestamp_formats: Vec::new(),
            roles: RoleMap::default(),
        }
    }
}

/// The largest request body a message may make, in bytes: the emulator's
/// default limit, which the API's 413 answers are modelled on. A row past
/// it is refused before sending rather than sent to be refused.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A row ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub pos: RowRef,
    pub conversation_id: String,
    pub timestamp: Timestamp,
    pub role: Role,
    pub sender_id: String,
    pub text: String,
}

impl Row {
    /// The message's identity in the ledger.
    pub fn key(&self) -> ContentKey {
        self.as_valid().key()
    }

    /// The row, borrowed.
    pub fn as_valid(&self) -> Valid<'_> {
        Valid {
            pos: self.pos,
            conversation_id: &self.conversation_id,
            timestamp: self.timestamp,
            role: self.role,
            sender_id: &self.sender_id,
            text: &self.text,
        }
    }

    /// The request body that sends this row.
    pub fn into_body(self) -> MessageBody {
        MessageBody {
            timestamp: self.timestamp.to_rfc3339(),
            text: self.text,
            sender: Sender {
                role: self.role,
                external_id: self.sender_id,
            },
        }
    }
}

/// A valid row borrowed from the fields it was read from: what planning
/// needs, with nothing copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Valid<'a> {
    pub pos: RowRef,
    /// Trimmed.
    pub conversation_id: &'a str,
    pub timestamp: Timestamp,
    pub role: Role,
    /// Trimmed.
    pub sender_id: &'a str,
    /// Exactly as given.
    pub text: &'a str,
}

impl<'a> Valid<'a> {
    /// The row [`check`] found valid in `fields`, from what it parsed there:
    /// nothing is checked again.
    pub fn from_checked(
        pos: RowRef,
        fields: &'a RawFields,
        timestamp: Timestamp,
        role: Role,
    ) -> Valid<'a> {
        let text = |v: &'a Option<String>| v.as_deref().unwrap_or_default();
        Valid {
            pos,
            conversation_id: trim(text(&fields.conversation_id)),
            timestamp,
            role,
            sender_id: trim(text(&fields.sender_id)),
            text: text(&fields.text),
        }
    }

    /// The message's identity in the ledger.
    pub fn key(&self) -> ContentKey {
        ContentKey::of(
            self.conversation_id,
            self.role,
            self.sender_id,
            self.text,
            self.timestamp.instant,
        )
    }
}

/// [`str::trim`], at once for a value with nothing to trim: one that
/// starts and ends with a visible ASCII character, as ids and roles
/// nearly always do (`str::trim` decodes characters from both ends).
pub fn trim(value: &str) -> &str {
    match value.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => value,
        [only] if only.is_ascii_graphic() => value,
        _ => value.trim(),
    }
}

/// Check one record's fields. The first problem found is the reason, in
/// the order conversation_id, timestamp, sender_role, sender_id, text.
/// Ids and roles are trimmed; the text is kept exactly as given.
pub fn row(pos: RowRef, fields: RawFields, opts: &ValidateOptions) -> Result<Row, Invalid> {
    let (conversation_id, timestamp, role, sender_id) = {
        let v = check(pos, &fields, opts)?;
        (
            v.conversation_id.to_string(),
            v.timestamp,
            v.role,
            v.sender_id.to_string(),
        )
    };
    Ok(Row {
        pos,
        conversation_id,
        timestamp,
        role,
        sender_id,
        // `check` has found it present.
        text: fields.text.unwrap_or_default(),
    })
}

/// [`row`], borrowing the fields rather than taking them.
pub fn check<'a>(
    pos: RowRef,
    fields: &'a RawFields,
    opts: &ValidateOptions,
) -> Result<Valid<'a>, Invalid> {
    let present = |field: Field, v: &'a Option<String>| {
        v.as_deref().ok_or_else(|| Invalid::field(field, "missing"))
    };

    let conversation = present(Field::ConversationId, &fields.conversation_id)?;
    let conversation_id = trim(conversation);
    let checked = match opts.mode {
        ConversationMode::Existing => ConversationId::check(conversation_id),
        ConversationMode::Create => check_external_id(conversation_id),
    };
    if let Err(problem) = checked {
        return Err(if conversation_id.is_empty() {
            Invalid::field(Field::ConversationId, problem.to_string())
        } else {
            Invalid::value(Field::ConversationId, problem.to_string(), conversation_id)
        });
    }

    let timestamp = present(Field::Timestamp, &fields.timestamp)?;
    let timestamp =
        crate::timestamp::parse_with(timestamp, &opts.timestamp_formats, opts.timezone)?;

    let role = present(Field::SenderRole, &fields.sender_role)?;
    if trim(role).is_empty() {
        return Err(Invalid::field(Field::SenderRole, "empty"));
    }
    let role = opts.roles.get(role).ok_or_else(|| {
        Invalid::value(
            Field::SenderRole,
            "unknown role (expected agent, customer or system; see --role-map)",
            role.trim(),
        )
    })?;

    let sender = present(Field::SenderId, &fields.sender_id)?;
    let sender_id = trim(sender);
    if sender_id.is_empty() {
        return Err(Invalid::field(Field::SenderId, "empty"));
    }

    let text = present(Field::Text, &fields.text)?;
    if text.is_empty() {
        return Err(Invalid::field(Field::Text, "empty"));
    }

    let row = Valid::from_checked(pos, fields, timestamp, role);
    let size = body_len(&row);
    if size > MAX_BODY_BYTES {
        return Err(Invalid::field(
            Field::Text,
            format!(
                "too long: the request would be {size} bytes, over the API's limit of {MAX_BODY_BYTES}"
            ),
        ));
    }
    Ok(row)
}

/// The size of the request body that sends `row`, without building it.
fn body_len(row: &Valid) -> usize {
    // Only a long text can reach the limit; short rows skip the count.
    if row.text.len() + row.sender_id.len() < MAX_BODY_BYTES / 8 {
        return 0;
    }
    MessageBody {
        timestamp: row.timestamp.to_rfc3339(),
        text: row.text.to_string(),
        sender: Sender {
            role: row.role,
            external_id: row.sender_id.to_string(),
        },
    }
    .json_len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceId;
    use chrono::{TimeZone, Utc};

    #[test]
    fn trim_is_str_trim() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\ta\n",
            "ab",
            "a b",
            "\u{a0}a",
            "a\u{3000}",
            "é",
            "\u{85}",
            "CONV1",
            " CONV1 ",
            "~x~",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
    }

    fn pos() -> RowRef {
        RowRef {
            source: SourceId(0),
            record: 1,
            line: 2,
            offset: 10,
        }
    }

    fn good() -> RawFields {
        RawFields {
            conversation_id: Some("01HABCXYZ".into()),
            timestamp: Some("2021-11-23T12:13:14.555Z".into()),
            sender_role: Some("agent".into()),
            sender_id: Some("123".into()),
            text: Some("Hello".into()),
        }
    }

    fn check(f: RawFields) -> Result<Row, String> {
        row(pos(), f, &ValidateOptions::default()).map_err(|e| e.to_string())
    }

    fn create(f: RawFields) -> Result<Row, String> {
        let opts = ValidateOptions {
            mode: ConversationMode::Create,
            ..ValidateOptions::default()
        };
        row(pos(), f, &opts).map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_row_validates() {
        let r = check(good()).unwrap();
        assert_eq!(r.pos, pos());
        assert_eq!(r.conversation_id, "01HABCXYZ");
        assert_eq!(r.role, Role::Agent);
        assert_eq!(r.sender_id, "123");
        assert_eq!(r.text, "Hello");
        assert_eq!(r.timestamp.to_rfc3339(), "2021-11-23T12:13:14.555Z");
        assert_eq!(
            r.timestamp.instant,
            Utc.with_ymd_and_hms(2021, 11, 23, 12, 13, 14).unwrap()
                + chrono::Duration::milliseconds(555)
        );
    }

    #[test]
    fn conversation_id_existing_mode_needs_the_api_pattern() {
        for bad in ["abc", "AB-12", "AB 12", "ÄB", "01habc"] {
            let e = check(RawFields {
                conversation_id: Some(bad.into()),
                ..good()
            })
            .unwrap_err();
            assert!(
                e.starts_with("conversation_id: not an API conversation id"),
                "{e}"
            );
        }
        assert_eq!(
            check(RawFields {
                conversation_id: Some("  01HABC ".into()),
                ..good()
            })
            .unwrap()
            .conversation_id,
            "01HABC"
        );
        assert_eq!(
            check(RawFields {
                conversation_id: None,
                ..good()
            })
            .unwrap_err(),
            "conversation_id: missing"
        );
        assert_eq!(
            check(RawFields {
                conversation_id: Some(" ".into()),
                ..good()
            })
            .unwrap_err(),
            "conversation_id: empty"
        );
    }

    #[test]
    fn conversation_id_create_mode_takes_any_non_empty_id() {
        let r = create(RawFields {
            conversation_id: Some(" chat-42/a b ".into()),
            ..good()
        })
        .unwrap();
        assert_eq!(r.conversation_id, "chat-42/a b");
        assert_eq!(
            create(RawFields {
                conversation_id: Some("\t ".into()),
                ..good()
            })
            .unwrap_err(),
            "conversation_id: empty"
        );
    }

    #[test]
    fn excerpt_is_truncated() {
        let long = "X".repeat(40) + "-";
        let e = check(RawFields {
            conversation_id: Some(long),
            ..good()
        })
        .unwrap_err();
        assert!(e.ends_with(&format!("\"{}…\"", "X".repeat(32))), "{e}");
        assert_eq!(crate::model::excerpt("short"), "short");
    }

    #[test]
    fn text_must_be_non_empty_and_is_kept_as_is() {
        assert_eq!(
            check(RawFields {
                text: None,
                ..good()
            })
            .unwrap_err(),
            "text: missing"
        );
        assert_eq!(
            check(RawFields {
                text: Some(String::new()),
                ..good()
            })
            .unwrap_err(),
            "text: empty"
        );
        // Whitespace-only is a valid text (minLength 1) and is not trimmed.
        assert_eq!(
            check(RawFields {
                text: Some("  ".into()),
                ..good()
            })
            .unwrap()
            .text,
            "  "
        );
        assert_eq!(
            check(RawFields {
                text: Some(" hi, \"you\"\n".into()),
                ..good()
            })
            .unwrap()
            .text,
            " hi, \"you\"\n"
        );
    }

    #[test]
    fn role_is_one_of_three_case_insensitively() {
        for (v, want) in [
            ("Agent", Role::Agent),
            (" CUSTOMER ", Role::Customer),
            ("system", Role::System),
        ] {
            assert_eq!(
                check(RawFields {
                    sender_role: Some(v.into()),
                    ..good()
                })
                .unwrap()
                .role,
                want
            );
        }
        assert_eq!(
            check(RawFields { sender_role: Some("bot".into()), ..good() }).unwrap_err(),
            "sender_role: unknown role (expected agent, customer or system; see --role-map): \"bot\""
        );
        assert_eq!(
            check(RawFields {
                sender_role: None,
                ..good()
            })
            .unwrap_err(),
            "sender_role: missing"
        );
        assert_eq!(
            check(RawFields {
                sender_role: Some("".into()),
                ..good()
            })
            .unwrap_err(),
            "sender_role: empty"
        );
    }

    #[test]
    fn role_names_match_ignoring_case_in_any_script() {
        let map = RoleMap {
            extra: vec![("kundé".into(), Role::Customer)],
        };
        assert_eq!(map.get(" KUNDÉ "), Some(Role::Customer));
        assert_eq!(map.get("Kundé"), Some(Role::Customer));
        assert_eq!(map.get("AGENT"), Some(Role::Agent));
        assert_eq!(map.get("Agént"), None);
        assert_eq!(map.get("kunde"), None);
    }

    #[test]
    fn role_map_adds_names_and_wins() {
        let opts = ValidateOptions {
            roles: RoleMap {
                extra: vec![
                    ("bot".into(), Role::System),
                    ("user".into(), Role::Customer),
                ],
            },
            ..ValidateOptions::default()
        };
        let r = row(
            pos(),
            RawFields {
                sender_role: Some(" BOT".into()),
                ..good()
            },
            &opts,
        )
        .unwrap();
        assert_eq!(r.role, Role::System);
        let r = row(
            pos(),
            RawFields {
                sender_role: Some("User".into()),
                ..good()
            },
            &opts,
        )
        .unwrap();
        assert_eq!(r.role, Role::Customer);
        let r = row(
            pos(),
            RawFields {
                sender_role: Some("agent".into()),
                ..good()
            },
            &opts,
        )
        .unwrap();
        assert_eq!(r.role, Role::Agent);
    }

    #[test]
    fn sender_id_present_and_non_empty() {
        assert_eq!(
            check(RawFields {
                sender_id: None,
                ..good()
            })
            .unwrap_err(),
            "sender_id: missing"
        );
        assert_eq!(
            check(RawFields {
                sender_id: Some(" ".into()),
                ..good()
            })
            .unwrap_err(),
            "sender_id: empty"
        );
        assert_eq!(
            check(RawFields {
                sender_id: Some(" a@b ".into()),
                ..good()
            })
            .unwrap()
            .sender_id,
            "a@b"
        );
    }

    #[test]
    fn timestamp_must_parse_and_uses_the_timezone() {
        assert_eq!(
            check(RawFields {
                timestamp: None,
                ..good()
            })
            .unwrap_err(),
            "timestamp: missing"
        );
        assert_eq!(
            check(RawFields {
                timestamp: Some("soon".into()),
                ..good()
            })
            .unwrap_err(),
            "timestamp: not a date-time (expected e.g. 2021-11-23T12:13:14Z): \"soon\""
        );
        let opts = ValidateOptions {
            timezone: chrono_tz::Europe::Berlin,
            ..ValidateOptions::default()
        };
        let r = row(
            pos(),
            RawFields {
                timestamp: Some("2021-06-01 12:00:00".into()),
                ..good()
            },
            &opts,
        )
        .unwrap();
        assert_eq!(r.timestamp.to_rfc3339(), "2021-06-01T10:00:00Z");
    }

    #[test]
    fn a_body_over_the_limit_is_refused_before_sending() {
        let e = check(RawFields {
            text: Some("\"".repeat(MAX_BODY_BYTES / 2)),
            ..good()
        })
        .unwrap_err();
        assert!(e.starts_with("text: too long: the request would be"), "{e}");
        assert!(check(RawFields {
            text: Some("x".repeat(MAX_BODY_BYTES - 200)),
            ..good()
        })
        .is_ok());
    }

    #[test]
    fn first_problem_in_field_order_wins() {
        let e = check(RawFields {
            text: None,
            sender_id: None,
            ..good()
        })
        .unwrap_err();
        assert_eq!(e, "sender_id: missing");
        assert_eq!(
            check(RawFields::default()).unwrap_err(),
            "conversation_id: missing"
        );
    }
}
