//! Conversation ids: the API's own (`ConversationId`), which go into URL
//! paths, and the caller's own (external ids), which never do.

use std::fmt;

/// The API's id of a conversation: `^[A-Z0-9]+$` (a ULID), at most
/// [`ConversationId::MAX_LEN`] characters. It goes into request paths
/// unescaped, so this constructor is the only place that rule lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationId(Box<str>);

/// Why a string is not a [`ConversationId`], or not an external id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdProblem {
    Empty,
    /// Not `^[A-Z0-9]+$`.
    Pattern,
    /// Longer than the limit, in bytes.
    TooLong {
        len: usize,
        max: usize,
    },
}

impl fmt::Display for IdProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdProblem::Empty => f.write_str("empty"),
            IdProblem::Pattern => f.write_str(
                "not an API conversation id (A-Z, 0-9 only; use --conversations create for your own ids)",
            ),
            IdProblem::TooLong { len, max } => {
                write!(f, "{len} bytes long, longer than the {max} a request can carry")
            }
        }
    }
}

impl ConversationId {
    /// Far above a ULID's 26 characters, far below what breaks a URL.
    pub const MAX_LEN: usize = 128;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `id` is an API conversation id, without keeping it.
    pub fn check(id: &str) -> Result<(), IdProblem> {
        if id.is_empty() {
            return Err(IdProblem::Empty);
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(IdProblem::Pattern);
        }
        if id.len() > Self::MAX_LEN {
            return Err(IdProblem::TooLong {
                len: id.len(),
                max: Self::MAX_LEN,
            });
        }
        Ok(())
    }
}

impl TryFrom<&str> for ConversationId {
    type Error = IdProblem;

    fn try_from(id: &str) -> Result<Self, IdProblem> {
        ConversationId::check(id)?;
        Ok(ConversationId(id.into()))
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest external id (`--conversations create`) accepted, in bytes:
/// it travels in request bodies and in the read-back's query string.
pub const EXTERNAL_ID_MAX_LEN: usize = 256;

/// Check a caller's own conversation id: any non-empty text up to
/// [`EXTERNAL_ID_MAX_LEN`] bytes.
pub fn check_external_id(id: &str) -> Result<(), IdProblem> {
    if id.is_empty() {
        Err(IdProblem::Empty)
    } else if id.len() > EXTERNAL_ID_MAX_LEN {
        Err(IdProblem::TooLong {
            len: id.len(),
            max: EXTERNAL_ID_MAX_LEN,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_api_pattern_goes_into_a_path() {
        assert_eq!(
            ConversationId::try_from("01HABC9").unwrap().as_str(),
            "01HABC9"
        );
        for bad in ["abc", "AB-12", "AB 12", "ÄB", "01habc", "A/B", "A%2F"] {
            assert_eq!(
                ConversationId::try_from(bad),
                Err(IdProblem::Pattern),
                "{bad}"
            );
        }
        assert_eq!(ConversationId::try_from(""), Err(IdProblem::Empty));
        let long = "A".repeat(ConversationId::MAX_LEN + 1);
        assert!(matches!(
            ConversationId::try_from(long.as_str()),
            Err(IdProblem::TooLong { .. })
        ));
    }

    #[test]
    fn external_ids_are_any_bounded_text() {
        assert!(check_external_id("chat-000123 / ünïcode").is_ok());
        assert_eq!(check_external_id(""), Err(IdProblem::Empty));
        assert!(check_external_id(&"x".repeat(EXTERNAL_ID_MAX_LEN + 1)).is_err());
    }
}
