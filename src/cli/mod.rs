//! The command line: clap derive structs and their help text, and
//! ([`values`]) the parsers that check each flag's value where it is read.
//! `config` turns these into typed configuration; no stage sees clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub mod values;

use crate::model::ConversationMode;
use crate::plan::Shard;
use crate::read::Format;
use values::Rate;

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
    /// Render the report again from a ledger (a killed run's included).
    #[command(mut_arg("inputs", |a| a.required(false)))]
    Report(ReportArgs),
    /// Print a shell completion script for this command line.
    ///
    /// bash: `transcript-import completions bash > /etc/bash_completion.d/transcript-import`;
    /// zsh: `transcript-import completions zsh > "${fpath[1]}/_transcript-import"`;
    /// fish: `transcript-import completions fish > ~/.config/fish/completions/transcript-import.fish`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one page per command to a directory.
    ///
    /// `transcript-import man | man -l -` reads it now;
    /// `transcript-import man --dir /usr/local/share/man/man1` installs
    /// transcript-import.1, transcript-import-run.1 and the others.
    Man(ManArgs),
}

/// How the inputs are read and checked; shared by `run` and `check`.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Transcript files (CSV, JSONL or a workbook; optionally .gz); `-` reads stdin.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,

    /// Input format, instead of guessing from the file extension.
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Text encoding of inputs without a byte order mark: utf-8 (default),
    /// windows-1252, iso-8859-2, utf-16le, shift_jis, ...
    ///
    /// Any WHATWG encoding name (what browsers accept; `latin1` and
    /// `iso-8859-1` read as windows-1252). The whole file is decoded once.
    /// A byte order mark (UTF-8, UTF-16LE, UTF-16BE) wins over this flag.
    #[arg(long, value_name = "NAME")]
    pub encoding: Option<String>,

    /// Read timestamps with this chrono strftime format, e.g. '%d.%m.%Y %H:%M'
    /// or '%m/%d/%Y %I:%M %p' (repeatable).
    ///
    /// Formats are tried in order, then the built-in forms (RFC 3339, epoch
    /// numbers); the first that reads the whole value wins. A time with no
    /// offset in it is taken in --timezone. Local dates such as 03/04/2021
    /// are never read without a format: the day and month order is not
    /// guessed.
    #[arg(long = "timestamp-format", value_name = "FMT")]
    pub timestamp_formats: Vec<String>,

    /// The sheet of a workbook (.xlsx, .xls, .ods) to read: its name, or its
    /// number counting from 1; the first sheet when unset.
    #[arg(long, value_name = "NAME|N")]
    pub sheet: Option<String>,

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
    ///
    /// COLUMN may also be `#N`, the N-th column of a CSV header, counting
    /// from 1: `--map text=#5`. That is how to pick one of two columns with
    /// the same name (JSONL keys have no order: name them).
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

    /// Keep only the conversations of shard K of N (`2/4`), or `index/N`: K from JOB_COMPLETION_INDEX.
    ///
    /// The shard is FNV-1a 64 of the conversation id, modulo N, plus one: N
    /// hosts can split one backfill with no overlap and no coordination,
    /// each with its own ledger. A row with no readable conversation id
    /// belongs to shard 1. `index/N` takes K from JOB_COMPLETION_INDEX,
    /// plus one (it is 0-based, as a Kubernetes Indexed Job sets it in
    /// each pod): `--shard index/4` in pods 0 to 3 is shards 1/4 to 4/4.
    #[arg(long, value_name = "K/N", value_parser = values::shard)]
    pub shard: Option<Shard>,

    /// Accept an input named twice (the same file, or the same content
    /// under another name). Without it such a run is refused: every
    /// message would go twice.
    #[arg(long)]
    pub allow_duplicate_input: bool,
}

/// How fast, and how much: shared by `run` (to send) and `check` (to estimate).
#[derive(Debug, Args)]
pub struct PaceArgs {
    /// Conversations sent at once (1 to 1024).
    ///
    /// Messages inside one conversation are always sent one after another.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024), allow_negative_numbers = true)]
    pub concurrency: u16,

    /// Requests per second, all workers together (a positive number).
    ///
    /// Default: 100 (the API's documented spike limit) for remote URLs, none
    /// for loopback. Either way the rate adapts down on 429 and probes back up.
    #[arg(long, value_name = "N", value_parser = values::rate, allow_negative_numbers = true)]
    pub rate: Option<Rate>,

    /// Stop (exit 4) before today's requests, counted in the ledger across
    /// runs, reach N; the next run after 00:00 UTC continues.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub daily_quota: Option<u64>,

    /// Send a conversation's messages N at a time (2 to 300) with one
    /// request each (`createBatchMessages`): far fewer requests against a
    /// daily quota.
    ///
    /// A batch never mixes conversations and is split when its body would
    /// pass the API's size limit. Its answer has no message ids: with
    /// `--conversations create` they are read back from the API; with
    /// `existing`, `message_id` stays empty in the report.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(2..=300), allow_negative_numbers = true)]
    pub batch: Option<u16>,
}

/// `--journal-sync`: see its help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JournalSync {
    /// Each record on the disk before its request leaves.
    Disk,
    /// Records in the system's page cache; written back in its time.
    Memory,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Base URL of the Conversations API.
    ///
    /// Must be https, except on loopback (127.0.0.1, ::1, localhost).
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://api.sandbox.asapp.com",
        conflicts_with = "emulator"
    )]
    pub api_url: String,

    /// Start the built-in emulator on a free loopback port and import into it.
    ///
    /// No credentials needed. A rehearsal: the whole pipeline runs, nothing
    /// leaves the machine. The ledger remembers it was used with the
    /// emulator and will refuse to be reused against a real API.
    #[arg(long)]
    pub emulator: bool,

    /// Write the results report here (`.csv` or `.jsonl`).
    ///
    /// One line per input row, in input order, with its status and message id
    /// or the reason it was not created. Written atomically at the end of the
    /// run, also when the run stops early.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,

    /// Write the rows that were not imported to PATH, in the input's own format, to fix and feed back.
    ///
    /// Invalid, failed, skipped, uncertain and not attempted rows, byte for
    /// byte as the input has them (CSV: its header and records; JSONL: its
    /// lines), plus `status` and `reason` columns (JSONL: keys). Name it
    /// like the inputs (`.csv` or `.jsonl`); several inputs must share a
    /// format and a header. Fed back with the same --state, it imports the
    /// rows fixed in it.
    #[arg(long, value_name = "PATH")]
    pub rejects: Option<PathBuf>,

    /// Write a self-contained HTML report for analysts here.
    ///
    /// Rows by status, reasons with their first rows, throughput over time,
    /// latency, the slowest and most failed conversations, the settings.
    /// One file: no script, nothing fetched.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,

    /// Write the end-of-run summary here as JSON, for monitoring.
    ///
    /// The same figures as the summary on stderr, with stable keys (the
    /// README has the schema). Written at the end of every run that gets
    /// past its flags, also when it stops early or fails (`exit_code`).
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,

    /// Add each row's message text to the report, as a last column `text`.
    ///
    /// Without it the report holds no message text (only the columns
    /// DESIGN.md lists), so it can be shared with people who may see the
    /// outcome of an import but not the conversations. The text is read
    /// back from the input when the report is written.
    #[arg(long)]
    pub report_text: bool,

    /// The ledger (SQLite file) that records every send; reuse it to resume.
    ///
    /// Rows it shows as created are never sent again (`already_imported`).
    /// One run at a time per ledger.
    #[arg(long, value_name = "PATH", default_value = "transcript-import.db")]
    pub state: PathBuf,

    /// When the ledger's record of each request reaches the disk: `disk`
    /// (before the request leaves) or `memory` (the system writes it back
    /// in its own time).
    ///
    /// `disk` survives the machine going down (power lost, a kernel panic,
    /// a VM's host failing) without sending anything twice. `memory`
    /// survives the process being killed (SIGKILL, out of memory), not the
    /// machine: after a crash of the machine, messages sent in its last
    /// seconds may be sent again. Default: disk against a remote API,
    /// memory against a loopback one (a rehearsal, where the disk would
    /// set the pace).
    #[arg(long, value_name = "WHEN", value_enum)]
    pub journal_sync: Option<JournalSync>,

    #[command(flatten)]
    pub pace: PaceArgs,

    /// Send again the messages an earlier run left `uncertain`.
    ///
    /// Their answer was lost: they may already be stored, so this can
    /// duplicate them. Check first (e.g. in the API's UI) that they are not.
    #[arg(long)]
    pub resend_uncertain: bool,

    #[command(flatten)]
    pub network: NetworkArgs,

    /// Per-request timeout in seconds (1 to 3600). A request that times
    /// out after being sent is `uncertain`.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), allow_negative_numbers = true)]
    pub timeout: u64,

    /// Read credentials from this file instead of the environment.
    ///
    /// Lines `ASAPP_API_ID=...` and `ASAPP_API_SECRET=...`. Credentials are
    /// never taken from a flag: flags show in `ps`. A file that group or
    /// others may read gets a warning (`chmod 600` it).
    #[arg(long, value_name = "PATH")]
    pub credentials_file: Option<PathBuf>,

    /// No progress output; errors and the final summary only.
    #[arg(long, short)]
    pub quiet: bool,

    /// Without a terminal, log a progress line this often (seconds, at least 1).
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub progress_every: u64,

    /// Multiply every retry wait by this (rehearsals and tests; 1 in production).
    #[arg(long, value_name = "X", default_value_t = 1.0, hide = true, value_parser = values::scale)]
    pub backoff_scale: f64,

    /// Start conversations in the order they first appear in the input, not
    /// longest first (the scale benchmark measures what longest first gains).
    #[arg(long, hide = true)]
    pub input_order: bool,
}

/// `transcript-import report`: the report rendered again from a ledger.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Inputs and how to read them, when not the last run's.
    ///
    /// Without INPUT, the inputs the ledger names for its last run are
    /// read again (relative paths from the directory it ran in), with the
    /// input flags that run had.
    #[command(flatten)]
    pub input: InputArgs,

    /// The ledger to report on.
    #[arg(long, value_name = "PATH", default_value = "transcript-import.db")]
    pub state: PathBuf,

    /// Write the report here: `.csv`, `.jsonl` or `.html` (repeatable).
    #[arg(long, value_name = "PATH", required = true)]
    pub out: Vec<PathBuf>,

    /// Write the rows not in the API here, in the input's format (see `run --rejects`).
    #[arg(long, value_name = "PATH")]
    pub rejects: Option<PathBuf>,

    /// Write the summary here as JSON (see `run --summary-json`).
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,

    /// Add each row's message text to the CSV or JSONL report (see `run --report-text`).
    #[arg(long)]
    pub report_text: bool,

    /// No summary on stderr; errors only.
    #[arg(long, short)]
    pub quiet: bool,
}

/// How `run` reaches the API: certificates, proxy, plain HTTP.
#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// Also trust the certificate authorities in this PEM file (repeatable).
    ///
    /// Added to the system's roots (SSL_CERT_FILE, SSL_CERT_DIR, else the
    /// distribution's bundle; Mozilla's, built in, where there is none),
    /// never replacing them: for an API whose certificate a private CA
    /// signed (a TLS-inspecting corporate proxy, `transcript-import
    /// emulator --tls`).
    #[arg(long, value_name = "PATH")]
    pub ca_cert: Vec<PathBuf>,

    /// Send through this HTTP proxy (CONNECT), whatever the environment says.
    ///
    /// `http://[USER:PASSWORD@]HOST[:PORT]` (or `https://`; no scheme is
    /// http, no port is 1080, as in curl); `''` goes direct. Without it,
    /// `https_proxy`/`HTTPS_PROXY` (`http_proxy` for an http API), then
    /// `all_proxy`/`ALL_PROXY`, and `no_proxy`/`NO_PROXY` are read as curl
    /// reads them, except that a loopback API is never sent to a proxy
    /// from the environment. The summary names the proxy used, never its
    /// credentials.
    #[arg(long, value_name = "URL", conflicts_with = "emulator")]
    pub proxy: Option<String>,

    /// Allow a plain `http://` --api-url on a host other than loopback.
    ///
    /// Credentials and transcripts then cross the network unencrypted:
    /// only for a trusted network (an internal gateway that adds TLS).
    #[arg(long)]
    pub allow_insecure_http: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub pace: PaceArgs,

    /// Assumed API latency in milliseconds, for the duration estimate.
    #[arg(long, value_name = "MS", default_value_t = 150)]
    pub latency_ms: u64,
}

/// `transcript-import emulator`. Credentials come from `ASAPP_API_ID` and
/// `ASAPP_API_SECRET` (any non-empty pair is accepted when both are unset).
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free one.
    ///
    /// The first line on stdout is `listening on ADDR` with the real port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub addr: std::net::SocketAddr,

    /// Delay every API answer by this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,

    /// Add a random delay of 0 to MS milliseconds on top of --latency-ms.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub jitter_ms: u64,

    /// Allow N API requests per second; past that, answer 429 with Retry-After.
    ///
    /// A token bucket holding one second of requests, shared by all clients,
    /// like the API's documented spike limit (100/s).
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,

    /// Answer this share of API requests (0 to 1) with 429 and Retry-After: 1.
    #[arg(long = "error-429", value_name = "RATE", default_value_t = 0.0)]
    pub error_429: f64,

    /// Answer this share of API requests (0 to 1) with 503 and Retry-After: 1.
    #[arg(long = "error-503", value_name = "RATE", default_value_t = 0.0)]
    pub error_503: f64,

    /// Answer this share of API requests (0 to 1) with 500.
    #[arg(long = "error-500", value_name = "RATE", default_value_t = 0.0)]
    pub error_500: f64,

    /// Close this share of connections (0 to 1) before storing, without an answer.
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    pub drop_before: f64,

    /// Store, then close this share of connections (0 to 1) without an answer.
    ///
    /// The ambiguous case: the message exists, the client never learns it.
    /// Such messages carry `"droppedAnswer": true` in /_emulator/messages.
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    pub drop_after: f64,

    /// Seed the random faults and jitter, so a run can be repeated.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub max_body: usize,

    /// Answer 404 for this conversation id (repeatable).
    #[arg(long = "unknown", value_name = "ID")]
    pub unknown: Vec<String>,

    /// Allow N API requests per UTC day; then every call gets 429 until 00:00 UTC.
    ///
    /// `POST /_emulator/reset-quota` starts the day over.
    #[arg(long, value_name = "N")]
    pub daily_quota: Option<u64>,

    /// Answer 409 to a message already stored (same conversation, sender, instant, text).
    ///
    /// Without it, the message is stored again and counted in `duplicates`.
    #[arg(long)]
    pub conflict_on_duplicate: bool,

    /// Answer 404 to messages for a conversation id that was not created
    /// here (by createOrUpdateConversation), as the real API does.
    ///
    /// Without it any id matching ^[A-Z0-9]+$ is taken, which is how
    /// `--conversations existing` is rehearsed.
    #[arg(long)]
    pub known_conversations_only: bool,

    /// Send `Retry-After` as an HTTP date instead of a number of seconds.
    #[arg(long)]
    pub retry_after_date: bool,

    /// Write the stats JSON to this file when the emulator stops (also on Ctrl-C / SIGTERM).
    #[arg(long, value_name = "PATH")]
    pub stats_file: Option<PathBuf>,

    /// Serve HTTPS, with a certificate made at start for localhost, 127.0.0.1 and ::1.
    ///
    /// A certificate authority is made with it, and its certificate written
    /// to a private temporary directory, removed when the emulator stops:
    /// the second line on stdout is `ca: PATH`. Pass it to the importer
    /// with `--ca-cert PATH`.
    #[arg(long)]
    pub tls: bool,

    /// Also make the certificate valid for this host name or IP address (repeatable).
    ///
    /// For clients that reach the emulator by another name than loopback
    /// (a container's name, with `--addr 0.0.0.0:8443`).
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub tls_name: Vec<String>,
}

/// `transcript-import completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `transcript-import man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write transcript-import.1 and one page per command (transcript-import-run.1, ...) here,
    /// instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
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
