//! `report`: render the report again from a ledger, a killed run's
//! included. The ledger keeps every sent message's state by content, not
//! report rows, so the inputs are read, validated and planned again as a
//! run would, and each planned message is looked up in the ledger. The
//! rows go through the same lanes as a run's outcomes (report, statistics,
//! rejects), so every output looks as a run's does.
//!
//! What each status means in a re-rendered report (also in the README):
//!
//! - `created` / `exists`: the ledger holds the message as stored (200 /
//!   409) by the ledger's last run; `message_id` is the one recorded.
//! - `already_imported`: stored by an earlier run than the last.
//! - `failed`: the ledger records a refusal for good, or retries that ran
//!   out (the ledger keeps no reason: the run's own report has it).
//! - `uncertain`: sent, and no answer recorded: the answer was lost, or the
//!   run was killed while the request was in flight. It may be stored.
//! - `skipped`: not in the ledger, after a `failed` or `uncertain` message
//!   of its conversation (as the run would have skipped it).
//! - `not_attempted`: not in the ledger otherwise: no run sent it (the run
//!   stopped before it, or its conversation could not be created).
//! - `invalid`: the row fails validation, as in a run.
//!
//! `attempts` is the requests the ledger counts for the message across
//! runs; `http_status`, `error_code` and `request_id` are empty.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;

use super::fanout::Fanout;
use super::{invalid_outcome, summary};
use crate::cli::{Cli, Command};
use crate::config::{self, paths, settings, InputConfig, OutputKind, ReportConfig};
use crate::error::Error;
use crate::exit::ExitCode;
use crate::model::{ConversationId, Outcome, Status};
use crate::plan;
use crate::record::{LastRun, Reader, State};
use crate::report::progress::Counters;
use crate::report::rejects::{self, Rejects};
use crate::report::summary::{Output, OutputFile, RunInfo};
use crate::report::{self, Spool, Stats};
use crate::send::SinkHandle;

/// Where the inputs to read again come from, and what they are called.
struct Inputs {
    input: InputConfig,
    /// The names rows are reported under (the run's, as it named them).
    names: Vec<String>,
    settings: Vec<(String, String)>,
    notes: Vec<String>,
}

pub fn report(cfg: ReportConfig) -> Result<ExitCode, Error> {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let rows_out: Vec<&(PathBuf, OutputKind)> = cfg
        .outputs
        .iter()
        .filter(|(_, k)| matches!(k, OutputKind::Rows(_)))
        .collect();
    let html_out: Vec<&PathBuf> = cfg
        .outputs
        .iter()
        .filter(|(_, k)| *k == OutputKind::Html)
        .map(|(p, _)| p)
        .collect();
    if rows_out.len() > 1 || html_out.len() > 1 {
        return Err(Error::usage(
            "--out: one .csv or .jsonl report and one .html report at most",
        ));
    }

    let reader = Reader::open(&cfg.state)?;
    let last = reader.last_run()?;
    let Inputs {
        input,
        names,
        settings,
        mut notes,
    } = match &cfg.input {
        Some(input) => Inputs {
            input: input.clone(),
            names: input.inputs.clone(),
            settings: cfg.settings.clone(),
            notes: Vec::new(),
        },
        None => match &last {
            Some(run) => ledger_inputs(run)?,
            None => {
                return Err(Error::usage_with_hint(
                    format!(
                        "{}: the ledger records no run that read its inputs",
                        cfg.state.display()
                    ),
                    "name the inputs on the command line",
                ))
            }
        },
    };
    let mut outputs: Vec<(&str, &Path)> = cfg
        .outputs
        .iter()
        .map(|(p, _)| ("--out", p.as_path()))
        .collect();
    if let Some(p) = &cfg.rejects {
        outputs.push(("--rejects", p));
    }
    if let Some(p) = &cfg.summary_json {
        outputs.push(("--summary-json", p));
    }
    paths::check_outputs(&outputs, &input.inputs, Some(&cfg.state))?;
    notes.insert(0, origin(&cfg.state, last.as_ref()));
    if reader.recovered_in_flight > 0 {
        notes.push(format!(
            "{} message(s) were in flight when the run was killed: they are uncertain (may be stored).",
            reader.recovered_in_flight
        ));
    }

    let spool = match rows_out.first() {
        Some((path, OutputKind::Rows(format))) => {
            let dir = report::output::scratch_dir(path);
            Spool::for_report(*format, names.clone(), &dir).map_err(|e| {
                Error::usage(format!(
                    "--out {}: cannot write in {}: {e}",
                    path.display(),
                    dir.display()
                ))
            })?
        }
        _ => Spool::counting(names.clone()),
    };
    let stats = Stats::new(names.clone());
    let counters = Counters::default();
    let rejected = cfg.rejects.as_ref().map(|_| Rejects::new());
    let fanout = Fanout {
        ledger: None,
        report: &spool,
        stats: &stats,
        rejects: rejected.as_ref(),
        counters: &counters,
        panic_after: None,
        outcomes: Default::default(),
    };
    let mode = input.validate.mode;
    let output = |e: crate::send::BoxError| Error::Output(std::io::Error::other(e));
    let mut lane = fanout.lane();
    let read = plan::read_all::<Error>(
        &input,
        |_| {},
        |row| lane.outcome(invalid_outcome(&row, mode)).map_err(output),
    )?;
    let layout = match &cfg.rejects {
        Some(path) => Some(rejects::layout(path, &read.sources, input.read.delimiter)?),
        None => None,
    };
    let last_id = last.as_ref().map(|r| r.id);
    for conv in &read.conversations {
        let looked_up;
        let api = match &conv.api {
            Some(api) => Some(api),
            None => {
                looked_up = reader
                    .conversation(&conv.id)?
                    .and_then(|id| ConversationId::try_from(id.as_str()).ok());
                looked_up.as_ref()
            }
        };
        let mut blocked: Option<(u64, Status)> = None;
        for entry in &conv.entries {
            let mut o = Outcome::bare(entry.pos(), &conv.id, Status::NotAttempted);
            o.api_conversation_id = api.map(ConversationId::as_str);
            o.timestamp = entry.timestamp();
            match reader.entry(&conv.id, &entry.key())? {
                Some(recorded) => {
                    let this_run = Some(recorded.run_id) == last_id;
                    o.attempts = recorded.attempts;
                    o.message_id = recorded.message_id;
                    o.status = match recorded.state {
                        State::Created if this_run => Status::Created,
                        State::Exists if this_run => Status::Exists,
                        State::Created | State::Exists => Status::AlreadyImported,
                        State::Failed => Status::Failed,
                        State::Uncertain | State::InFlight => Status::Uncertain,
                    };
                    o.error_message = match o.status {
                        Status::Failed => Some(format!(
                            "the API refused it, or retries ran out (run {}); the ledger keeps no reason: that run's report has it",
                            recorded.run_id
                        )),
                        Status::Uncertain => Some(
                            "sent without an answer (lost, or in flight when the run was killed): it may be stored".into(),
                        ),
                        _ => None,
                    };
                    if blocked.is_none() && matches!(o.status, Status::Failed | Status::Uncertain) {
                        blocked = Some((entry.pos().record, o.status));
                    }
                }
                None => match blocked {
                    Some((record, status)) => {
                        o.status = Status::Skipped;
                        o.error_message = Some(format!(
                            "not sent: an earlier message of this conversation (record {record}) is {status}"
                        ));
                    }
                    None => {
                        o.error_message = Some(
                            "not in the ledger: no run sent it (the run stopped before it, or its conversation could not be created)".into(),
                        );
                    }
                },
            }
            lane.outcome(o).map_err(output)?;
        }
    }
    lane.flush().map_err(output)?;
    drop(lane);

    let summary = stats.summary();
    let code = if summary.all_success() {
        ExitCode::Success
    } else {
        ExitCode::RowsNotCreated
    };
    // In the order they are written below.
    let mut outputs: Vec<OutputFile> = cfg
        .outputs
        .iter()
        .map(|(path, kind)| match kind {
            OutputKind::Rows(_) => OutputFile::asked(Output::Report, path),
            OutputKind::Html => OutputFile::asked(Output::Html, path),
        })
        .collect();
    outputs.extend(
        cfg.rejects
            .as_deref()
            .map(|p| OutputFile::asked(Output::Rejects, p)),
    );
    let mut info = RunInfo {
        proxy: None,
        command: "report",
        started_at,
        finished_at: chrono::Utc::now(),
        duration: started.elapsed(),
        sending: None,
        exit_code: code.code(),
        stopped: None,
        fewest_requests: None,
        settings,
        notes,
        outputs,
    };
    for (path, kind) in &cfg.outputs {
        match kind {
            OutputKind::Rows(_) => {
                let n = report::write(&spool, path, cfg.report_text.then_some(&read.sources[..]))?;
                report::summary::wrote(&mut info.outputs, Output::Report, Some(n));
                if !cfg.quiet {
                    say!("report: {} ({n} rows)", path.display());
                }
            }
            OutputKind::Html => {
                let page = report::html::render(&summary, &info);
                report::summary::write_atomically(path, page.as_bytes())
                    .map_err(|source| report::ReportError::write(path, source))?;
                report::summary::wrote(&mut info.outputs, Output::Html, None);
                if !cfg.quiet {
                    say!("html: {}", path.display());
                }
            }
        }
    }
    if let (Some(path), Some(rejected), Some(layout)) = (&cfg.rejects, &rejected, &layout) {
        let n = rejected.write(layout, &read.sources, path)?;
        report::summary::wrote(&mut info.outputs, Output::Rejects, Some(n));
        if !cfg.quiet {
            say!("rejects: {} ({n} rows)", path.display());
        }
    }
    if let Some(path) = &cfg.summary_json {
        report::summary::write_json(path, &summary, &info)
            .map_err(|source| report::ReportError::write(path, source))?;
    }
    if !cfg.quiet {
        for note in &info.notes {
            say!("note: {note}");
        }
        summary::print(&summary, &info, false);
    }
    Ok(code)
}

/// The first thing a re-rendered report says: where it comes from, and
/// how the run it shows ended.
fn origin(state: &Path, last: Option<&LastRun>) -> String {
    let Some(run) = last else {
        return format!(
            "Re-rendered from the ledger {}, which records no run.",
            state.display()
        );
    };
    let ended = match (run.exit_code, &run.finished_at) {
        (Some(code), Some(at)) => format!("ended {at} with exit code {code}"),
        _ => "never finished (killed, or its machine went down)".to_string(),
    };
    format!(
        "Re-rendered from the ledger {}: its last run (run {}, started {}) {ended}.",
        state.display(),
        run.id,
        run.started_at
    )
}

/// The last run's inputs, read as it read them: its input flags come from
/// its recorded command line, and relative paths from the directory it ran
/// in. Standard input cannot be read again.
fn ledger_inputs(run: &LastRun) -> Result<Inputs, Error> {
    let hint = "name the inputs (and their flags) on the command line";
    if run.sources.is_empty() {
        return Err(Error::usage_with_hint(
            format!("the ledger's last run (run {}) names no inputs", run.id),
            hint,
        ));
    }
    if run.sources.iter().any(|s| s == "-") {
        return Err(Error::usage_with_hint(
            format!(
                "the ledger's last run (run {}) read standard input, which cannot be read again",
                run.id
            ),
            hint,
        ));
    }
    let mut notes = Vec::new();
    let parsed = run.argv.as_ref().map(Cli::try_parse_from);
    let (mut input, settings) = match parsed {
        Some(Ok(Cli {
            command: Command::Run(args),
        })) => (config::input_config(&args.input)?, settings::of_run(&args)),
        Some(_) => {
            return Err(Error::usage_with_hint(
                format!(
                    "the ledger's last run (run {}) has a command line this version cannot read",
                    run.id
                ),
                hint,
            ))
        }
        None => {
            notes.push(
                "The ledger does not record how its run read the inputs (it predates recording it): they were read with the default input flags."
                    .to_string(),
            );
            let mut argv = vec!["transcript-import".to_string(), "check".into(), "--".into()];
            argv.extend(run.sources.iter().cloned());
            let Ok(Cli {
                command: Command::Check(args),
            }) = Cli::try_parse_from(&argv)
            else {
                return Err(Error::usage_with_hint(
                    "the ledger's inputs cannot be named again",
                    hint,
                ));
            };
            (
                config::input_config(&args.input)?,
                settings::of_input(&args.input),
            )
        }
    };
    let here = std::env::current_dir().ok();
    input.inputs = run
        .sources
        .iter()
        .map(|name| match &run.cwd {
            Some(cwd) if Path::new(name).is_relative() && here.as_ref() != Some(cwd) => {
                cwd.join(name).to_string_lossy().into_owned()
            }
            _ => name.clone(),
        })
        .collect();
    Ok(Inputs {
        input,
        names: run.sources.clone(),
        settings,
        notes,
    })
}
