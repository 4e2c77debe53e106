//! The `run` and `check` commands: the pipeline from inputs to report.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::RunConfig;
use crate::emulator::{self, Emulator};
use crate::exit::ExitCode;
use crate::model::{SourceId, Status};
use crate::plan::{self, Conversation};
use crate::read::{self, ReadOptions, Source};
use crate::record::{Ledger, Outcome, Prior};
use crate::report::{self, progress::Progress, ReportFormat, Spool, Summary};
use crate::send::client::{ApiUrl, Client, Credentials};
use crate::send::pool::{self, Context as SendContext, Settings, Todo, Work};
use crate::send::rate::RateLimiter;
use crate::send::{Counters, Stop, StopReason};
use crate::validate::{self, ValidateOptions};

/// What reading and validating every input yields.
pub struct Read {
    pub sources: Vec<Source>,
    pub conversations: Vec<Conversation>,
    pub rows: u64,
    pub invalid: u64,
    pub other_shards: u64,
}

/// Read and validate every input; invalid rows go to `on_invalid`, valid
/// ones to the plan. A fatal reading error (unreadable file, missing
/// column) is an error: nothing has been sent.
pub fn read_all(
    inputs: &[String],
    read_opts: &ReadOptions,
    validate_opts: &ValidateOptions,
    shard: Option<plan::Shard>,
    mut on_valid: impl FnMut(&validate::Row),
    mut on_invalid: impl FnMut(Outcome) -> anyhow::Result<()>,
) -> anyhow::Result<Read> {
    let mut sources = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        sources.push(read::open(SourceId(i as u32), input, read_opts)?);
    }
    let mut builder = plan::Builder::new(shard);
    let (mut rows, mut invalid) = (0u64, 0u64);
    for source in &sources {
        for record in source.records()? {
            let record = record?;
            rows += 1;
            // Keep the conversation id aside (small) for the report of an
            // invalid row; the fields themselves move into validation.
            let mut conversation = String::new();
            let checked = record.fields.and_then(|fields| {
                if let Some(id) = &fields.conversation_id {
                    conversation.clone_from(id);
                }
                validate::row(record.pos, fields, validate_opts)
            });
            match checked {
                Ok(row) => {
                    if builder.add(&row) {
                        on_valid(&row);
                    }
                }
                Err(reason) => {
                    invalid += 1;
                    let mut o =
                        Outcome::bare(record.pos, &conversation, String::new(), Status::Invalid);
                    o.error_message = Some(reason.to_string());
                    on_invalid(o)?;
                }
            }
        }
    }
    let other_shards = builder.other_shards;
    Ok(Read {
        sources,
        conversations: builder.finish(),
        rows,
        invalid,
        other_shards,
    })
}

/// `run`: import, and say how it went.
pub fn run(cfg: RunConfig) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // The emulator, when asked for, lives as long as the run.
    let (emulator, api_url, credentials) = match (&cfg.api_url, &cfg.credentials) {
        (Some(url), Some(creds)) => (None, url.clone(), creds.clone()),
        _ => {
            let emu = Emulator::start(emulator::Config::default())
                .context("cannot start the built-in emulator")?;
            let url = ApiUrl::parse(&emu.url()).map_err(anyhow::Error::msg)?;
            let creds = Credentials {
                id: "emulator".into(),
                secret: "emulator".into(),
            };
            (Some(emu), url, creds)
        }
    };
    let target = if emulator.is_some() {
        "emulator".to_string()
    } else {
        api_url.as_str().to_string()
    };

    // Before the ledger: a report that cannot be written fails the run
    // before anything is sent.
    let spool = match &cfg.report {
        Some(path) => {
            let format = ReportFormat::from_path(path).map_err(anyhow::Error::msg)?;
            let dir = report::report_dir(path);
            Spool::for_report(format, cfg.inputs.clone(), &dir).with_context(|| {
                format!(
                    "--report {}: cannot write in {}",
                    path.display(),
                    dir.display()
                )
            })?
        }
        None => Spool::counting(cfg.inputs.clone()),
    };
    let mut ledger = Ledger::open(&cfg.state, &target)?;
    if !cfg.bookkeeping {
        ledger.without_bookkeeping();
    }
    ledger.add_sources(&cfg.inputs)?;
    let lookup = ledger.lookup()?;
    let requests_today = ledger.requests_today()?;
    if ledger.recovered_in_flight > 0 && !cfg.quiet {
        eprintln!(
            "note: {} message(s) were in flight when an earlier run stopped; they are `uncertain`{}",
            ledger.recovered_in_flight,
            if cfg.resend_uncertain { " and will be sent again (--resend-uncertain)" } else { " and will not be re-sent" }
        );
    }
    let writer = ledger.into_writer();

    let stop = Arc::new(Stop::default());
    install_signal_handler(stop.clone());

    // Read, validate, plan. Invalid rows are recorded as they are found.
    let mut invalid_rows = spool.writer();
    let read = read_all(
        &cfg.inputs,
        &cfg.read,
        &cfg.validate,
        cfg.shard,
        |_| {},
        |o| invalid_rows.outcome(o).map_err(anyhow::Error::msg),
    );
    let read = match read {
        Ok(r) => r,
        Err(e) => {
            // Nothing was sent; close the ledger cleanly before reporting.
            if let Ok(ledger) = writer.close() {
                let _ = ledger.finish(ExitCode::Usage.code());
            }
            return Err(e);
        }
    };

    // Drop what earlier runs already did.
    let mut work = Vec::with_capacity(read.conversations.len());
    let mut to_send = 0u64;
    for conversation in read.conversations {
        let mut todo = Vec::with_capacity(conversation.entries.len());
        for e in &conversation.entries {
            let t = match lookup.prior(&e.key, e.occurrence)? {
                Some(Prior::Stored { message_id }) => Todo::AlreadyImported { message_id },
                Some(Prior::Uncertain { .. }) if !cfg.resend_uncertain => Todo::Uncertain,
                _ => Todo::Send,
            };
            if t == Todo::Send {
                to_send += 1;
            }
            todo.push(t);
        }
        work.push(Work { conversation, todo });
    }
    drop(lookup);
    let planned: u64 = work.iter().map(|w| w.todo.len() as u64).sum();
    if !cfg.quiet {
        eprintln!(
            "{} rows in {} conversations from {} input(s): {} to send, {} already imported or uncertain, {} invalid{}",
            read.rows,
            work.len(),
            read.sources.len(),
            to_send,
            planned - to_send,
            read.invalid,
            if read.other_shards > 0 { format!(", {} in other shards", read.other_shards) } else { String::new() }
        );
    }

    let counters = Arc::new(Counters::default());
    Counters::add(&counters.done, read.invalid);
    let progress = Progress::start(
        counters.clone(),
        read.rows - read.other_shards,
        cfg.quiet,
        cfg.progress_every,
    );
    let client = Client::new(api_url, credentials, cfg.concurrency, cfg.timeout);
    let limiter = RateLimiter::new(cfg.rate);
    let settings = Settings {
        concurrency: cfg.concurrency,
        policy: cfg.policy,
        daily_quota: cfg.daily_quota,
    };
    let requests_today = AtomicU64::new(requests_today);
    let ctx = SendContext {
        sources: &read.sources,
        validate: &cfg.validate,
        client: &client,
        limiter: &limiter,
        writer: &writer,
        spool: &spool,
        stop: &stop,
        counters: &counters,
        settings: &settings,
        requests_today: &requests_today,
    };
    let sent = pool::run(&work, &ctx);
    progress.finish();
    let flushed = invalid_rows.flush();
    let mut stopped = match sent.and_then(|stopped| flushed.map(|()| stopped)) {
        Ok(stopped) => stopped,
        Err(e) => {
            // The ledger's errors, and the report spool's: both say which file.
            eprintln!("error: the run stopped: {e}");
            Some(StopReason::Ledger)
        }
    };
    // Requests were made: a ledger that cannot fold now is reported (exit
    // 3), not taken for a usage error. What was sent is in its journal,
    // which the next run folds before it plans anything.
    let ledger = match writer.close() {
        Ok(ledger) => Some(ledger),
        Err(e) => {
            eprintln!(
                "error: {:#}\n  the journal beside the ledger keeps what was sent; the next run with this --state folds it",
                anyhow::Error::from(e)
            );
            stopped = Some(StopReason::Ledger);
            None
        }
    };

    // From here on requests were made: a failure to report is not a usage
    // error (exit 2 says nothing was sent), the ledger holds the truth.
    let finish = || -> anyhow::Result<ExitCode> {
        let summary = spool.summary();
        let code = exit_code(stopped, &summary);
        if let Some(path) = &cfg.report {
            let n = report::write(&spool, path)?;
            if !cfg.quiet {
                eprintln!("report: {} ({n} rows)", path.display());
            }
        }
        print_summary(&summary, stopped, started.elapsed(), cfg.report.is_none());
        if let Some(ledger) = &ledger {
            ledger.finish(code.code())?;
        }
        Ok(code)
    };
    let code = finish().unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::Aborted
    });
    drop(emulator);
    Ok(code)
}

fn exit_code(stopped: Option<StopReason>, summary: &Summary) -> ExitCode {
    match stopped {
        Some(StopReason::Interrupted) => ExitCode::Interrupted,
        Some(StopReason::Unauthorized | StopReason::ApiDown | StopReason::Ledger) => {
            ExitCode::Aborted
        }
        Some(StopReason::Quota) => ExitCode::QuotaPaused,
        None if summary.all_success() => ExitCode::Success,
        None => ExitCode::RowsNotCreated,
    }
}

fn print_summary(
    summary: &Summary,
    stopped: Option<StopReason>,
    elapsed: Duration,
    no_report: bool,
) {
    let counts: Vec<String> = summary
        .by_status
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    eprintln!(
        "done in {:.1}s: {} rows: {}",
        elapsed.as_secs_f64(),
        summary.total(),
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        }
    );
    for (reason, n) in &summary.reasons {
        eprintln!("  {n:>8}  {reason}");
    }
    match stopped {
        Some(StopReason::Interrupted) => eprintln!("stopped: interrupted; run again with the same --state to continue"),
        Some(StopReason::Unauthorized) => eprintln!("stopped: the API refused the credentials (401/403); check ASAPP_API_ID / ASAPP_API_SECRET"),
        Some(StopReason::ApiDown) => eprintln!("stopped: nearly every recent request failed; the API looks down. Run again later with the same --state"),
        Some(StopReason::Quota) => eprintln!("paused: the daily request quota is spent; run again after 00:00 UTC with the same --state"),
        Some(StopReason::Ledger) => eprintln!("stopped: the ledger or the report could not record; nothing more was sent"),
        None => {}
    }
    if no_report
        && summary.total() > summary.count(Status::Created) + summary.count(Status::AlreadyImported)
    {
        eprintln!("hint: --report PATH writes every row's status and reason");
    }
}

/// First SIGINT/SIGTERM: stop dispatching, finish what is in flight, write
/// the report. A second one: exit at once (the ledger stays consistent:
/// every commit is atomic, and in-flight messages are found on the next run).
fn install_signal_handler(stop: Arc<Stop>) {
    let count = AtomicU64::new(0);
    // Only one handler per process; a second run in the same process (tests) keeps the first.
    let _ = ctrlc::try_set_handler(move || {
        if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            eprintln!("\ninterrupted: finishing requests in flight (again to quit at once)");
            stop.set(StopReason::Interrupted);
        } else {
            std::process::exit(ExitCode::Interrupted.code());
        }
    });
}
