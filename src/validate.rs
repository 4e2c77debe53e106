//! Validate: a raw record becomes a `Row` the API will accept, or an
//! `Invalid` with a precise reason. A bad row is data, never an error: it is
//! reported and never sent. Reasons never carry a whole message text.

use std::fmt;

use crate::model::{ConversationMode, Role, RowRef, Timestamp};
use crate::read::{Field, RawFields};

/// Why a row cannot be sent. `field` and `problem` group reasons (for
/// `check`); `excerpt` is a short, truncated piece of the offending value.
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
            write!(f, ": {excerpt:?}")?;
        }
        Ok(())
    }
}

/// Maps the input's role vocabulary onto the API's roles.
#[derive(Debug, Clone, Default)]
pub struct RoleMap {
    /// Extra names (lowercased) from `--role-map`.
    pub extra: Vec<(String, Role)>,
}

#[derive(Debug, Clone)]
pub struct ValidateOptions {
    pub mode: ConversationMode,
    /// Zone for timestamps that carry none.
    pub timezone: chrono_tz::Tz,
    pub roles: RoleMap,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            mode: ConversationMode::Existing,
            timezone: chrono_tz::UTC,
            roles: RoleMap::default(),
        }
    }
}

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

/// Check one record's fields.
pub fn row(_pos: RowRef, _fields: RawFields, _opts: &ValidateOptions) -> Result<Row, Invalid> {
    unimplemented!("validate::row")
}
