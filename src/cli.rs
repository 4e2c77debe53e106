//! The command line: clap derive structs and their help text, nothing else.
//! `main` turns these into typed configuration; no stage sees clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::ConversationMode;
use crate::read::Format;

/// Backfill historical chat transcripts into the ASAPP Conversations API.
#[derive(Debug, Parser)]
#[command(name = "transcript-import", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import transcripts: read, validate, plan, send, record, report.
    Run(RunArgs),
    /// Read, validate and plan as `run` would, and send nothing.
    Check(CheckArgs),
    /// Serve a local Conversations API for rehearsals and tests.
    Emulator(EmulatorArgs),
}

/// How the inputs are read and checked; shared by `run` and `check`.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Transcript files (CSV or JSONL, optionally .gz); `-` reads stdin.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,

    /// Input format, instead of guessing from the file extension.
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// What the input's conversation_id is.
    ///
    /// `existing`: the API's own conversation id (^[A-Z0-9]+$).
    /// `create`: your own id; each conversation is created by its externalId.
    #[arg(long, value_enum, default_value = "existing")]
    pub conversations: ConversationMode,

    /// Take a field from a column (or JSONL key) of another name: FIELD=COLUMN.
    ///
    /// FIELD is one of conversation_id, timestamp, sender_role, sender_id,
    /// text. Repeat the flag or separate pairs with commas:
    /// `--map text=msg,sender_id=agent_ref`. Columns are matched
    /// case-insensitively; a mapped column wins over the built-in aliases.
    #[arg(long, value_name = "FIELD=COLUMN", value_delimiter = ',')]
    pub map: Vec<String>,

    /// Map other role names onto agent, customer or system: NAME=ROLE.
    ///
    /// Names are matched case-insensitively. Repeat the flag or separate
    /// pairs with commas: `--role-map bot=system,user=customer`.
    #[arg(long, value_name = "NAME=ROLE", value_delimiter = ',')]
    pub role_map: Vec<String>,

    /// CSV delimiter: `,` `;` `tab` (or `\t`) `|`; detected from the header line when unset.
    ///
    /// Detection counts each candidate outside quotes in the header line and
    /// takes the most frequent (a comma on a tie or when none occurs).
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,

    /// IANA zone for timestamps without a zone, e.g. America/New_York.
    ///
    /// Daylight saving time is applied per timestamp. A local time that does
    /// not exist (spring forward) or occurs twice (fall back) in the zone
    /// makes its row invalid rather than guessed. Timestamps with `Z`, an
    /// offset, or epoch numbers are not affected.
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    pub timezone: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Base URL of the Conversations API.
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://api.sandbox.asapp.com"
    )]
    pub api_url: String,

    /// Start the built-in emulator on a free loopback port and import into it.
    ///
    /// No credentials needed. Useful for rehearsals: the whole pipeline runs,
    /// nothing leaves the machine.
    #[arg(long, conflicts_with = "api_url")]
    pub emulator: bool,

    /// Write the results report here (`.csv` or `.jsonl`).
    ///
    /// One line per input row, in input order, with its status and message id.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,

    /// The ledger (SQLite file) that records every send; reuse it to resume.
    #[arg(long, value_name = "PATH", default_value = "transcript-import.db")]
    pub state: PathBuf,

    /// Conversations sent at once (messages inside one conversation are always sequential).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,

    /// Read credentials from this file instead of the environment.
    ///
    /// Two lines `ASAPP_API_ID=...` and `ASAPP_API_SECRET=...`. Credentials are
    /// never taken from a flag: flags show in `ps`.
    #[arg(long, value_name = "PATH")]
    pub credentials_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub addr: std::net::SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
