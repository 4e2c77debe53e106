//! From command-line arguments to typed configuration, in one place.
//! Stages receive these types and never see clap. `run` and `check` share
//! [`InputConfig`] and the pace flags, so a flag means (and is refused)
//! the same in both.

pub mod credentials;
pub mod network;
pub mod paths;
pub mod settings;

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::values::{self, Rate};
use crate::cli::{CheckArgs, InputArgs, JournalSync, PaceArgs, ReportArgs, RunArgs};
use crate::error::Error;
pub use crate::plan::InputConfig;
use crate::read::ReadOptions;
use crate::report::ReportFormat;
use crate::send::client::proxy::ProxyChoice;
use crate::send::client::{ApiUrl, Credentials, Network};
use crate::send::retry::RetryPolicy;
use crate::validate::ValidateOptions;

/// Reading and validation options from the input flags. A bad value here is
/// a usage error (exit 2) whose message names the flag.
pub fn input_config(args: &InputArgs) -> Result<InputConfig, Error> {
    let read = ReadOptions {
        format: args.format,
        delimiter: args
            .delimiter
            .as_deref()
            .map(values::delimiter)
            .transpose()
            .map_err(Error::usage)?,
        columns: values::map(&args.map).map_err(Error::usage)?,
        encoding: args
            .encoding
            .as_deref()
            .map(values::encoding)
            .transpose()
            .map_err(Error::usage)?,
        sheet: args
            .sheet
            .as_deref()
            .map(values::sheet)
            .transpose()
            .map_err(Error::usage)?,
        // Set by `run` where the open-file limit has room for it.
        hold_open: false,
    };
    let validate = ValidateOptions {
        mode: args.conversations,
        timezone: values::timezone(&args.timezone).map_err(Error::usage)?,
        timestamp_formats: args
            .timestamp_formats
            .iter()
            .map(|f| values::timestamp_format(f))
            .collect::<Result<_, _>>()
            .map_err(Error::usage)?,
        roles: values::role_map(&args.role_map).map_err(Error::usage)?,
    };
    Ok(InputConfig {
        inputs: args.inputs.clone(),
        read,
        validate,
        shard: args.shard,
        allow_duplicates: args.allow_duplicate_input,
    })
}

/// How fast, and how much.
#[derive(Debug, Clone)]
pub struct Pace {
    pub concurrency: usize,
    /// `None`: no ceiling (loopback without `--rate`).
    pub rate: Option<Rate>,
    pub daily_quota: Option<u64>,
    /// `--batch N`.
    pub batch: Option<usize>,
}

fn pace(args: &PaceArgs, loopback: bool) -> Pace {
    // The API's documented spike limit applies to the real API; loopback
    // (the emulator, a local proxy) has none unless one is asked for.
    let default = (!loopback).then_some(Rate::API_SPIKE_LIMIT);
    Pace {
        concurrency: usize::from(args.concurrency),
        rate: args.rate.or(default),
        daily_quota: args.daily_quota,
        batch: args.batch.map(usize::from),
    }
}

/// Everything `run` needs, checked.
#[derive(Debug)]
pub struct RunConfig {
    pub input: InputConfig,
    /// `None` with `--emulator`: the emulator's URL is known once it listens.
    pub api_url: Option<ApiUrl>,
    pub credentials: Option<Credentials>,
    pub report: Option<PathBuf>,
    /// `--rejects`: the rows that did not make it, in the input's format.
    pub rejects: Option<PathBuf>,
    /// `--html`.
    pub html: Option<PathBuf>,
    /// `--summary-json`.
    pub summary_json: Option<PathBuf>,
    /// `--report-text`: the report's last column is the message text.
    pub report_text: bool,
    /// The settings as the HTML report shows them (no credentials).
    pub settings: Vec<(String, String)>,
    pub state: PathBuf,
    /// `--journal-sync disk`, or its default against a remote API: what
    /// is sent survives the machine going down (`Ledger::sync_to_disk`).
    pub journal_to_disk: bool,
    pub pace: Pace,
    pub resend_uncertain: bool,
    pub timeout: Duration,
    pub quiet: bool,
    pub progress_every: Duration,
    pub policy: RetryPolicy,
    /// Off only in the end-to-end benchmark, to measure what the ledger's
    /// bookkeeping costs; no flag reaches it (see `Ledger::without_bookkeeping`).
    pub bookkeeping: bool,
    /// Conversations in input order instead of longest first (`--input-order`,
    /// hidden: for the scale benchmark).
    pub input_order: bool,
    /// A panic injected after this many outcomes (0: before sending), from
    /// `TRANSCRIPT_IMPORT_PANIC_AFTER`: how the test of the panic path
    /// reaches it in the real binary. No flag.
    pub panic_after: Option<u64>,
    /// The roots trusted besides the built-in ones, and the proxy.
    pub network: Network,
    /// Which proxy, and why: for the summary.
    pub proxy: ProxyChoice,
    /// Said on stderr before anything else happens (a credentials file
    /// others may read, plain HTTP off loopback).
    pub warnings: Vec<String>,
}

/// Turn `run`'s flags into a [`RunConfig`]. Errors name the flag or file to fix.
pub fn run_config(args: &RunArgs) -> Result<RunConfig, Error> {
    let input = input_config(&args.input)?;
    if let Some(report) = &args.report {
        ReportFormat::from_path(report).map_err(|e| Error::usage(format!("--report {e}")))?;
    }
    if let Some(rejects) = &args.rejects {
        rejects_format(rejects)?;
    }
    let mut warnings = Vec::new();
    let (api_url, credentials) = if args.emulator {
        (None, None)
    } else {
        let url = ApiUrl::parse_with(&args.api_url, args.network.allow_insecure_http)
            .map_err(|e| Error::usage(format!("--api-url {e}")))?;
        if url.scheme() == "http" && !url.is_loopback() {
            warnings.push(format!(
                "--allow-insecure-http: credentials and transcripts go to {} unencrypted",
                url.as_str()
            ));
        }
        let loaded = credentials::load(args.credentials_file.as_deref())?;
        warnings.extend(loaded.warning);
        (Some(url), Some(loaded.credentials))
    };
    let (network, proxy) = network::network_config(&args.network, api_url.as_ref())?;
    let outputs: Vec<(&str, &std::path::Path)> = [
        ("--report", &args.report),
        ("--rejects", &args.rejects),
        ("--html", &args.html),
        ("--summary-json", &args.summary_json),
    ]
    .into_iter()
    .filter_map(|(flag, path)| path.as_deref().map(|p| (flag, p)))
    .collect();
    paths::check_outputs(&outputs, &input.inputs, Some(&args.state))?;
    paths::check_inputs(&input.inputs, input.allow_duplicates)?;
    let loopback = api_url.as_ref().is_none_or(ApiUrl::is_loopback);
    Ok(RunConfig {
        input,
        api_url,
        credentials,
        report: args.report.clone(),
        rejects: args.rejects.clone(),
        html: args.html.clone(),
        summary_json: args.summary_json.clone(),
        report_text: args.report_text,
        settings: settings::of_run(args),
        state: args.state.clone(),
        journal_to_disk: args.journal_sync.unwrap_or(if loopback {
            JournalSync::Memory
        } else {
            JournalSync::Disk
        }) == JournalSync::Disk,
        pace: pace(&args.pace, loopback),
        resend_uncertain: args.resend_uncertain,
        timeout: Duration::from_secs(args.timeout),
        quiet: args.quiet,
        progress_every: Duration::from_secs(args.progress_every),
        policy: RetryPolicy {
            scale: args.backoff_scale,
            ..RetryPolicy::default()
        },
        bookkeeping: true,
        input_order: args.input_order,
        panic_after: std::env::var("TRANSCRIPT_IMPORT_PANIC_AFTER")
            .ok()
            .and_then(|v| v.parse().ok()),
        network,
        proxy,
        warnings,
    })
}

/// A rejects file must say its format by its name, so that it can be fed
/// back: `.csv` (`.tsv`, `.txt`) or `.jsonl` (`.ndjson`, `.json`).
fn rejects_format(path: &std::path::Path) -> Result<crate::read::Format, Error> {
    crate::report::rejects::format_of(path).ok_or_else(|| {
        Error::usage_with_hint(
            format!(
                "--rejects {}: the name must end in .csv or .jsonl, the inputs' format",
                path.display()
            ),
            "the rejects file is an input to feed back: its extension says its format",
        )
    })
}

/// What a report is rendered as, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Rows(ReportFormat),
    Html,
}

impl OutputKind {
    pub fn of(path: &std::path::Path) -> Result<OutputKind, Error> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("html" | "htm") => Ok(OutputKind::Html),
            _ => ReportFormat::from_path(path)
                .map(OutputKind::Rows)
                .map_err(|_| {
                    Error::usage(format!(
                        "--out {}: the report must end in .csv, .jsonl or .html",
                        path.display()
                    ))
                }),
        }
    }
}

/// Everything `report` needs, checked. Its inputs may be the ledger's,
/// known only once it is open.
#[derive(Debug)]
pub struct ReportConfig {
    pub state: PathBuf,
    pub outputs: Vec<(PathBuf, OutputKind)>,
    pub rejects: Option<PathBuf>,
    pub summary_json: Option<PathBuf>,
    pub report_text: bool,
    pub quiet: bool,
    /// Inputs given on the command line, with their flags; `None`: the
    /// ledger's last run's, with that run's flags.
    pub input: Option<InputConfig>,
    /// The input flags as the HTML report shows them, when given.
    pub settings: Vec<(String, String)>,
}

pub fn report_config(args: &ReportArgs) -> Result<ReportConfig, Error> {
    let outputs = args
        .out
        .iter()
        .map(|p| OutputKind::of(p).map(|k| (p.clone(), k)))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(rejects) = &args.rejects {
        rejects_format(rejects)?;
    }
    let input = if args.input.inputs.is_empty() {
        if let Some(flag) = input_flag_given(&args.input) {
            return Err(Error::usage_with_hint(
                format!("{flag}: input flags apply to inputs given on the command line"),
                "name the inputs again after the flags, or leave the flags out to read the last run's inputs as it read them",
            ));
        }
        None
    } else {
        Some(input_config(&args.input)?)
    };
    Ok(ReportConfig {
        state: args.state.clone(),
        outputs,
        rejects: args.rejects.clone(),
        summary_json: args.summary_json.clone(),
        report_text: args.report_text,
        quiet: args.quiet,
        settings: if input.is_some() {
            settings::of_input(&args.input)
        } else {
            Vec::new()
        },
        input,
    })
}

/// An input flag given with another value than its default, if any.
fn input_flag_given(a: &InputArgs) -> Option<&'static str> {
    [
        (a.format.is_some(), "--format"),
        (
            a.conversations != crate::model::ConversationMode::Existing,
            "--conversations",
        ),
        (!a.map.is_empty(), "--map"),
        (!a.role_map.is_empty(), "--role-map"),
        (a.delimiter.is_some(), "--delimiter"),
        (a.timezone != "UTC", "--timezone"),
        (a.encoding.is_some(), "--encoding"),
        (!a.timestamp_formats.is_empty(), "--timestamp-format"),
        (a.sheet.is_some(), "--sheet"),
        (a.shard.is_some(), "--shard"),
        (a.allow_duplicate_input, "--allow-duplicate-input"),
    ]
    .into_iter()
    .find(|(given, _)| *given)
    .map(|(_, flag)| flag)
}

/// Everything `check` needs, checked as `run` checks it.
#[derive(Debug)]
pub struct CheckConfig {
    pub input: InputConfig,
    /// The pace a remote run would have.
    pub pace: Pace,
    pub latency: Duration,
}

pub fn check_config(args: &CheckArgs) -> Result<CheckConfig, Error> {
    Ok(CheckConfig {
        input: input_config(&args.input)?,
        pace: pace(&args.pace, false),
        latency: Duration::from_millis(args.latency_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn check(extra: &[&str]) -> Result<CheckConfig, String> {
        let mut argv = vec!["transcript-import", "check", "in.csv"];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Command::Check(args) = cli.command else {
            unreachable!()
        };
        check_config(&args).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = check(&[]).unwrap();
        assert_eq!(c.input.read.delimiter, None);
        assert!(c.input.read.columns.is_empty());
        assert_eq!(c.input.validate.timezone, chrono_tz::UTC);
        assert_eq!(c.pace.concurrency, 8);
        assert_eq!(c.pace.rate, Some(Rate::API_SPIKE_LIMIT));
    }

    /// `run`'s config for `in.csv` (and a credentials file) in a
    /// temporary directory, with `extra` flags.
    fn run(extra: &[&str]) -> RunConfig {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        std::fs::write(
            &input,
            "conversation_id,timestamp,sender_role,sender_id,text\n",
        )
        .unwrap();
        // Readable by others: used, with a warning.
        let creds = dir.path().join("creds");
        std::fs::write(&creds, "ASAPP_API_ID=id\nASAPP_API_SECRET=secret\n").unwrap();
        let state = dir.path().join("state.db");
        let mut argv = vec![
            "transcript-import",
            "run",
            input.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--credentials-file",
            creds.to_str().unwrap(),
        ];
        argv.extend_from_slice(extra);
        let Command::Run(args) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        run_config(&args).unwrap()
    }

    #[test]
    fn the_journal_reaches_the_disk_before_each_request_to_a_remote_api() {
        assert!(run(&[]).journal_to_disk);
        assert!(run(&["--api-url", "https://api.example.com"]).journal_to_disk);
        assert!(!run(&["--journal-sync", "memory"]).journal_to_disk);
        assert!(!run(&["--api-url", "http://127.0.0.1:9"]).journal_to_disk);
        assert!(
            run(&["--api-url", "http://127.0.0.1:9", "--journal-sync", "disk"]).journal_to_disk
        );
    }

    #[test]
    fn check_refuses_what_run_refuses_naming_the_flag() {
        for (flag, value) in [
            ("--concurrency", "0"),
            ("--concurrency", "-3"),
            ("--concurrency", "5000"),
            ("--rate", "-1"),
            ("--rate", "0"),
            ("--daily-quota", "0"),
        ] {
            let e = check(&[flag, value]).unwrap_err();
            assert!(e.contains(flag) && e.contains(value), "{flag} {value}: {e}");
        }
        let e = check(&["--delimiter", "::"]).unwrap_err();
        assert!(e.starts_with("invalid value for --delimiter"), "{e}");
        let e = check(&["--encoding", "ebcdic-ish"]).unwrap_err();
        assert!(e.starts_with("invalid value for --encoding"), "{e}");
        let e = check(&["--timestamp-format", "%H:%M"]).unwrap_err();
        assert!(e.starts_with("invalid value for --timestamp-format"), "{e}");
    }
}
