//! `run`: wire the stages (read and plan, send, record, report) and map
//! how the run ended to an exit code. Read it top to bottom: that is the
//! order things happen in.

mod fanout;
pub mod rerender;
mod summary;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::RunConfig;
use crate::emulator::{self, Emulator};
use crate::error::Error;
use crate::exit::ExitCode;
use crate::model::{ConversationMode, Outcome, Status};
use crate::plan::{self, inputs::InvalidRow, Texts};
use crate::record::{Ledger, LOOPBACK};
use crate::report::rejects::{self, Rejects};
use crate::report::summary::{Output, OutputFile, RunInfo, Stopped};
use crate::report::{self, progress::Counters, progress::Progress, ReportFormat, Spool, Stats};
use crate::send::client::{ApiUrl, Client, Credentials};
use crate::send::rate::RateLimiter;
use crate::send::{self, SinkHandle, Stop, StopReason};
use fanout::Fanout;

/// With no good answer for this long while requests keep failing, the API
/// is taken as down (scaled with `--backoff-scale` in rehearsals).
const DOWN_AFTER: Duration = Duration::from_secs(15);
/// However short rehearsals make the waits: a busy machine can stall a
/// run for a moment without the API being down.
const MIN_DOWN_AFTER: Duration = Duration::from_secs(2);

/// `run`: import, and say how it went. With `--summary-json`, a run that
/// fails before its end (an unreadable input, a held ledger) still writes
/// one, saying so: monitoring never reads yesterday's file as today's.
pub fn run(cfg: RunConfig) -> Result<ExitCode, Error> {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    for warning in &cfg.warnings {
        say!("warning: {warning}");
    }
    let result = import(&cfg, started_at, started);
    // Not where it cannot be written: the error has said so already. Nor
    // after sending: `import` wrote what was sent (or said why it could
    // not), and an empty summary over it said a run that created messages
    // had made no request.
    let before_sending = matches!(&result, Err(e) if !matches!(e, Error::AfterSending(_)));
    let summary_json = (cfg.summary_json.as_deref())
        .filter(|p| before_sending && report::output::writable(p).is_ok());
    if let (Err(e), Some(path)) = (&result, summary_json) {
        let info = RunInfo {
            command: "run",
            started_at,
            finished_at: chrono::Utc::now(),
            duration: started.elapsed(),
            sending: None,
            exit_code: e.exit_code().code(),
            stopped: Some(Stopped {
                kind: "error",
                message: format!("error: {e}"),
            }),
            fewest_requests: None,
            settings: cfg.settings.clone(),
            notes: Vec::new(),
            proxy: cfg.proxy.describe(),
            outputs: asked(&cfg),
        };
        let empty = Stats::new(Vec::new()).summary();
        if let Err(write) = report::summary::write_json(path, &empty, &info) {
            say!(
                "warning: --summary-json {}: cannot write: {write}",
                path.display()
            );
        }
    }
    result
}

fn import(
    cfg: &RunConfig,
    started_at: chrono::DateTime<chrono::Utc>,
    started: Instant,
) -> Result<ExitCode, Error> {
    // Outputs other than the report (checked with its spool, below): a
    // directory that is not there, or that this process may not write in,
    // used to be found once every message was sent (exit 3). First, while
    // the only descriptors open are the ones this process was given.
    for (flag, path) in [
        ("--html", &cfg.html),
        ("--summary-json", &cfg.summary_json),
        ("--rejects", &cfg.rejects),
    ] {
        if let Some(path) = path {
            report::output::writable(path)
                .map_err(|e| Error::usage(format!("{flag} {}: {e}", path.display())))?;
        }
    }
    let stop = Arc::new(Stop::default());
    let watching = Arc::clone(&stop);
    crate::signals::on_stop(move || {
        say!("\ninterrupted: finishing requests in flight (again to quit at once)");
        watching.set(StopReason::Interrupted);
    })
    .map_err(Error::Output)?;

    let inputs = cfg.input.inputs.len();
    let hold_open = match open_files(cfg.pace.concurrency, cfg.api_url.is_none(), inputs)? {
        Some(room) if room.allowed - room.needed >= inputs as u64 => true,
        // Only Linux reads a held input again through its handle: elsewhere
        // inputs are always opened by name, and there is nothing to say.
        Some(room) if cfg!(target_os = "linux") => {
            say!(
                "warning: the open-file limit ({}) leaves no room to hold {inputs} inputs open as well: each is opened again by its name, and one replaced or deleted during the run stops it (exit 3); `ulimit -n {}` holds them",
                room.allowed,
                room.needed + inputs as u64
            );
            false
        }
        _ => false,
    };
    // Each input held open while it is imported, where the limit has room.
    let input_cfg = plan::InputConfig {
        read: crate::read::ReadOptions {
            hold_open,
            ..cfg.input.read.clone()
        },
        ..cfg.input.clone()
    };

    // Where to send. The emulator, when asked for, lives as long as the run.
    let (emulator, api_url, credentials) = match (&cfg.api_url, &cfg.credentials) {
        (Some(url), Some(creds)) => (None, url.clone(), creds.clone()),
        _ => {
            let emu = Emulator::start(emulator::Config::default()).map_err(Error::Emulator)?;
            let url = ApiUrl::parse(&emu.url()).map_err(|e| Error::usage(e.to_string()))?;
            let creds = Credentials {
                id: "emulator".into(),
                secret: "emulator".into(),
            };
            (Some(emu), url, creds)
        }
    };
    let target = if api_url.is_loopback() {
        LOOPBACK
    } else {
        api_url.as_str()
    };

    // Before the ledger: a report that cannot be written fails the run
    // before anything is sent.
    let inputs = &cfg.input.inputs;
    let spool = match &cfg.report {
        Some(path) => {
            let format = ReportFormat::from_path(path)?;
            let dir = report::output::scratch_dir(path);
            Spool::for_report(format, inputs.clone(), &dir).map_err(|e| {
                Error::usage(format!(
                    "--report {}: cannot write in {}: {e}",
                    path.display(),
                    dir.display()
                ))
            })?
        }
        None => Spool::counting(inputs.clone()),
    };
    let mut ledger = Ledger::open(&cfg.state, target)?;
    if !cfg.bookkeeping {
        ledger.without_bookkeeping();
    }
    if cfg.journal_to_disk {
        ledger.sync_to_disk()?;
    }
    ledger.add_sources(inputs)?;
    let argv: Vec<String> = std::env::args_os()
        .map(|a| without_password(&a.to_string_lossy()))
        .collect();
    ledger.describe_run(&argv, &std::env::current_dir().unwrap_or_default())?;
    let lookup = ledger.lookup()?;
    let requests_today = ledger.requests_today()?;
    if ledger.recovered_in_flight > 0 && !cfg.quiet {
        say!(
            "note: {} message(s) were in flight when an earlier run stopped; they are `uncertain`{}",
            ledger.recovered_in_flight,
            if cfg.resend_uncertain { " and will be sent again (--resend-uncertain)" } else { " and will not be re-sent" }
        );
    }
    let writer = ledger.into_writer()?;
    let counters = Arc::new(Counters::default());
    let stats = Stats::new(inputs.clone());
    let rejects = cfg.rejects.as_ref().map(|_| Rejects::new());
    let fanout = Fanout {
        ledger: Some(&writer),
        report: &spool,
        stats: &stats,
        rejects: rejects.as_ref(),
        counters: &counters,
        panic_after: cfg.panic_after,
        outcomes: Default::default(),
    };

    // Read, validate, plan. Invalid rows are reported as they are found.
    let mode = cfg.input.validate.mode;
    let mut invalid_rows = fanout.lane();
    let planned = plan::read_all::<Error>(
        &input_cfg,
        |_| {},
        |row| {
            invalid_rows
                .outcome(invalid_outcome(&row, mode))
                .map_err(|e| Error::Output(std::io::Error::other(e)))
        },
    )
    .and_then(|mut inputs| {
        if cfg.input_order {
            inputs
                .conversations
                .sort_by_key(|c| c.entries.iter().map(|e| e.pos()).min());
        }
        let decided = plan::decide(&mut inputs.conversations, cfg.resend_uncertain, &lookup)?;
        // The rejects file holds one format: checked before anything is sent.
        let layout = match &cfg.rejects {
            Some(path) => Some(rejects::layout(
                path,
                &inputs.sources,
                cfg.input.read.delimiter,
            )?),
            None => None,
        };
        Ok((inputs, decided, layout))
    });
    drop(lookup);
    let (inputs_read, decided, rejects_layout) = match planned {
        Ok(planned) => planned,
        Err(e) => {
            // Nothing was sent; close the ledger cleanly before reporting.
            drop(invalid_rows);
            if let Ok(ledger) = writer.close() {
                let _ = ledger.finish(ExitCode::Usage.code());
            }
            return Err(e);
        }
    };
    spool.reserve(&inputs_read.rows_per_source);
    if !cfg.quiet {
        say!(
            "{} rows in {} conversations from {} input(s): {} to send, {} already imported, {} uncertain, {} invalid{}",
            inputs_read.rows,
            inputs_read.conversations.len(),
            inputs_read.sources.len(),
            decided.to_send,
            decided.already_imported,
            decided.uncertain,
            inputs_read.invalid,
            if inputs_read.other_shards > 0 { format!(", {} in other shards", inputs_read.other_shards) } else { String::new() }
        );
    }
    // Even with --quiet: an input that gave no rows is never passed over
    // in silence (a drained pipe, a failed export upstream).
    for warning in inputs_read.empty_sources() {
        say!("warning: {warning}");
    }

    let fewest: u64 = inputs_read
        .conversations
        .iter()
        .map(|c| c.fewest_requests(mode, cfg.pace.batch))
        .sum();
    let totals = counters.plan(&inputs_read.conversations);

    // Send.
    if cfg.panic_after == Some(0) {
        panic!("injected failure before sending (TRANSCRIPT_IMPORT_PANIC_AFTER=0)");
    }
    crate::failure::sending(&cfg.state);
    let progress = Progress::start(Arc::clone(&counters), totals, cfg.quiet, cfg.progress_every);
    let client = Client::with_network(
        api_url,
        credentials,
        cfg.pace.concurrency,
        cfg.timeout,
        &cfg.network,
    );
    let limiter = RateLimiter::new(cfg.pace.rate.map(|r| r.per_second()));
    let settings = send::Settings {
        concurrency: cfg.pace.concurrency,
        policy: cfg.policy,
        daily_quota: cfg.pace.daily_quota,
        requests_today,
        mode: cfg.input.validate.mode,
        batch: cfg.pace.batch,
        max_body: crate::validate::MAX_BODY_BYTES,
        down_after: DOWN_AFTER
            .mul_f64(cfg.policy.scale.min(1.0))
            .max(MIN_DOWN_AFTER),
    };
    let texts = Texts::new(&inputs_read.sources, &cfg.input.validate);
    let job = send::Job {
        plan: &inputs_read.conversations,
        bodies: &texts,
        sink: &fanout,
    };
    let sending_started = Instant::now();
    let sent = send::run(&job, &client, &limiter, &settings, &stop);
    let sending = sending_started.elapsed();
    progress.finish();
    let flushed = invalid_rows.flush();
    drop(invalid_rows);

    // From here on requests were made: a failure is not a usage error
    // (exit 2 says nothing was sent); the ledger holds the truth.
    let mut failure = None;
    let mut stopped = match sent {
        Ok(stopped) => stopped,
        Err(e) => {
            failure = Some(Error::from(e));
            Some(StopReason::Sink)
        }
    };
    if let Err(e) = flushed {
        failure.get_or_insert(Error::Output(std::io::Error::other(e)));
        stopped = Some(StopReason::Sink);
    }
    // The ledger thread folds the last of the journal while the report is
    // written; nothing below reads the ledger until it is back.
    let closing = writer.closing();
    let summary = stats.summary();

    // The outputs, each on its own: one that cannot be written does not
    // keep the others from being written.
    let mut outputs = asked(cfg);
    let mut written: Result<(), Error> = Ok(());
    let mut keep = |result: Result<(), Error>| {
        if let Err(e) = result {
            if written.is_ok() {
                written = Err(e);
            } else {
                say!("error: {e}");
            }
        }
    };
    if let Some(path) = &cfg.report {
        keep(
            match report::write(
                &spool,
                path,
                cfg.report_text.then_some(&inputs_read.sources[..]),
            ) {
                Ok(n) => {
                    report::summary::wrote(&mut outputs, Output::Report, Some(n));
                    if !cfg.quiet {
                        say!("report: {} ({n} rows)", path.display());
                    }
                    Ok(())
                }
                Err(e) => Err(Error::Report(e)),
            },
        );
    }
    if let (Some(path), Some(rejects), Some(layout)) = (&cfg.rejects, &rejects, &rejects_layout) {
        keep(match rejects.write(layout, &inputs_read.sources, path) {
            Ok(n) => {
                report::summary::wrote(&mut outputs, Output::Rejects, Some(n));
                if !cfg.quiet {
                    say!("rejects: {} ({n} rows)", path.display());
                }
                Ok(())
            }
            Err(e) => Err(Error::Rejects(e)),
        });
    }
    let ledger = match closing.wait() {
        Ok(ledger) => Some(ledger),
        Err(e) => {
            // What was sent is in its journal, which the next run folds
            // before it plans anything.
            failure.get_or_insert(Error::Ledger(e));
            stopped = Some(StopReason::Sink);
            None
        }
    };
    let code = exit_code(stopped.as_ref(), summary.all_success());
    // What the outputs say the run ended with: a failure to record or to
    // write makes it exit 3.
    let final_code = if failure.is_some() || written.is_err() {
        ExitCode::Aborted
    } else {
        code
    };
    let mut info = RunInfo {
        command: "run",
        started_at,
        finished_at: chrono::Utc::now(),
        duration: started.elapsed(),
        sending: Some(sending),
        exit_code: final_code.code(),
        stopped: stopped
            .as_ref()
            .map(summary::stopped)
            .or_else(|| written.as_ref().err().map(|e| summary::output_failed(e))),
        fewest_requests: Some(fewest),
        settings: cfg.settings.clone(),
        notes: Vec::new(),
        proxy: cfg.proxy.describe(),
        outputs,
    };
    if let Some(path) = &cfg.html {
        let page = report::html::render(&summary, &info);
        let result = report::summary::write_atomically(path, page.as_bytes())
            .map_err(|source| report::ReportError::write(path, source));
        match result {
            Ok(()) => {
                report::summary::wrote(&mut info.outputs, Output::Html, None);
                if !cfg.quiet {
                    say!("html: {}", path.display());
                }
            }
            Err(e) => {
                say!("error: {e:#}");
                // The summary JSON, written next, says how the run ends.
                info.exit_code = ExitCode::Aborted.code();
                info.stopped
                    .get_or_insert_with(|| summary::output_failed(&e));
                failure.get_or_insert(Error::Report(e));
            }
        }
    }
    if let Some(path) = &cfg.summary_json {
        if let Err(source) = report::summary::write_json(path, &summary, &info) {
            let e = report::ReportError::write(path, source);
            say!("error: {e}");
            failure.get_or_insert(Error::Report(e));
        }
    }
    summary::print(&summary, &info, cfg.report.is_none());
    if let Some(ledger) = &ledger {
        let code = if failure.is_some() || written.is_err() {
            ExitCode::Aborted
        } else {
            code
        };
        if let Err(e) = ledger.finish(code.code()) {
            failure.get_or_insert(Error::Ledger(e));
        }
    }
    drop(emulator);
    match (failure, written) {
        (Some(e), Err(output)) => {
            // Both said: the failure is what `main` prints as the run's
            // error, and an output it kept from being written is named too.
            say!("error: {}", crate::error::chain(&output));
            Err(Error::AfterSending(Box::new(e)))
        }
        (Some(e), Ok(())) | (None, Err(e)) => Err(Error::AfterSending(Box::new(e))),
        (None, Ok(())) => Ok(code),
    }
}

/// The files a run was asked to write besides the summary JSON, none
/// written yet.
fn asked(cfg: &RunConfig) -> Vec<OutputFile> {
    [
        (Output::Report, &cfg.report),
        (Output::Rejects, &cfg.rejects),
        (Output::Html, &cfg.html),
    ]
    .into_iter()
    .filter_map(|(kind, path)| Some(OutputFile::asked(kind, path.as_deref()?)))
    .collect()
}

/// Files a run of `workers` over `inputs` keeps open: per worker its
/// connection (and the built-in emulator's end of it), two handles for
/// each input it reads (at most `OPEN_PER_WORKER` at once) and its
/// journal lane (64 lanes at most), and some 32 more (the ledger's, the
/// report's, the standard streams). Measured with one input: 77 at 16
/// workers and 845 at 256 against a server of its own, 1,147 at 256 with
/// `--emulator`.
fn open_files_needed(workers: usize, emulator: bool, inputs: usize) -> u64 {
    let workers = workers as u64;
    let inputs = inputs.clamp(1, plan::OPEN_PER_WORKER) as u64;
    let per_worker = 1 + u64::from(emulator) + 2 * inputs;
    32 + workers.min(64) + workers * per_worker
}

/// The files a run may open and the files its workers need.
struct OpenFiles {
    allowed: u64,
    needed: u64,
}

/// Make room for the files a run keeps open, before anything is sent.
/// The soft limit on open files is raised to the hard one (the usual soft
/// limit, 1,024, is a default for programs that `select()`, which this one
/// does not): at that soft limit, 512 workers ran out of files after 533
/// requests and stopped with exit 3. Where even the hard limit is too
/// low, the run is refused (exit 2), naming both numbers. What is left
/// beyond the workers' need decides whether every input can be held open
/// for the whole run (one file each; see `read::ReadOptions::hold_open`);
/// `None` where the limit cannot be read.
#[cfg(unix)]
fn open_files(workers: usize, emulator: bool, inputs: usize) -> Result<Option<OpenFiles>, Error> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write this struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Ok(None);
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let needed = open_files_needed(workers, emulator, inputs);
    // rlim_t is u64 on Linux, and no wider elsewhere.
    #[allow(clippy::useless_conversion)]
    let allowed = u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX);
    if allowed < needed {
        return Err(Error::usage_with_hint(
            format!(
                "--concurrency {workers} needs about {needed} open files, and this process may open {allowed}"
            ),
            format!("lower --concurrency, or raise the limit (`ulimit -n {needed}`, or LimitNOFILE= in a systemd unit)"),
        ));
    }
    Ok(Some(OpenFiles { allowed, needed }))
}

#[cfg(not(unix))]
fn open_files(_: usize, _: bool, _: usize) -> Result<Option<OpenFiles>, Error> {
    Ok(None)
}

/// What earlier runs left: the ledger's answers for planning.
impl plan::Earlier for crate::record::Lookup {
    type Error = Error;
    fn prior(
        &self,
        conversation_id: &str,
        key: &crate::model::MessageKey,
    ) -> Result<Option<crate::model::Prior>, Error> {
        Ok(crate::record::Lookup::prior(self, conversation_id, key)?)
    }
    fn conversation(&self, external_id: &str) -> Result<Option<String>, Error> {
        Ok(crate::record::Lookup::conversation(self, external_id)?)
    }
}

/// Planned messages' bodies, read back from the inputs by the workers.
impl send::Bodies for Texts<'_> {
    fn reader(&self) -> Box<dyn send::BodyReader + '_> {
        Box::new(Texts::reader(self))
    }
}

impl send::BodyReader for plan::TextReader<'_> {
    fn body(
        &mut self,
        entry: &crate::model::Entry,
    ) -> Result<crate::model::MessageBody, send::BoxError> {
        Ok(plan::TextReader::body(self, entry)?)
    }
}

/// The report line of a row that failed validation. In `existing` mode the
/// input's conversation id is the API's, by definition.
pub(crate) fn invalid_outcome<'a>(row: &'a InvalidRow<'a>, mode: ConversationMode) -> Outcome<'a> {
    let id = row.conversation_id.unwrap_or_default();
    let mut o = Outcome::bare(row.pos, id, Status::Invalid).because(row.reason.to_string());
    o.invalid = Some(&row.reason);
    if mode == ConversationMode::Existing {
        o.api_conversation_id = Some(id);
    }
    o
}

/// An argument with any URL's password replaced by `***` (`--proxy
/// http://user:secret@host`): the ledger keeps the command line, never a
/// credential.
fn without_password(arg: &str) -> String {
    let Some(scheme_end) = arg.find("://") else {
        return arg.to_string();
    };
    let rest = &arg[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return arg.to_string();
    };
    match authority[..at].find(':') {
        Some(colon) => {
            let start = scheme_end + 3;
            format!("{}***{}", &arg[..start + colon + 1], &arg[start + at..])
        }
        None => arg.to_string(),
    }
}

/// How the run ended, as the process says it (DESIGN.md, "Exit codes").
fn exit_code(stopped: Option<&StopReason>, all_success: bool) -> ExitCode {
    match stopped {
        Some(StopReason::Interrupted) => ExitCode::Interrupted,
        Some(
            StopReason::Unauthorized { .. }
            | StopReason::ApiDown { .. }
            | StopReason::InputChanged { .. }
            | StopReason::Sink,
        ) => ExitCode::Aborted,
        Some(StopReason::Quota { .. }) => ExitCode::QuotaPaused,
        None if all_success => ExitCode::Success,
        None => ExitCode::RowsNotCreated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_not_kept() {
        assert_eq!(
            without_password("--proxy=http://me:s3cret@proxy:3128/x"),
            "--proxy=http://me:***@proxy:3128/x"
        );
        assert_eq!(without_password("http://me@proxy"), "http://me@proxy");
        assert_eq!(without_password("a.csv"), "a.csv");
        assert_eq!(
            without_password("https://api/x?to=a@b:c"),
            "https://api/x?to=a@b:c"
        );
    }

    #[test]
    fn each_stop_has_its_exit_code() {
        assert_eq!(exit_code(None, true), ExitCode::Success);
        assert_eq!(exit_code(None, false), ExitCode::RowsNotCreated);
        assert_eq!(
            exit_code(Some(&StopReason::Interrupted), true),
            ExitCode::Interrupted
        );
        for aborted in [
            StopReason::Unauthorized { status: 401 },
            StopReason::ApiDown {
                cause: "refused".into(),
            },
            StopReason::InputChanged { what: "x".into() },
            StopReason::Sink,
        ] {
            assert_eq!(exit_code(Some(&aborted), true), ExitCode::Aborted);
        }
        for quota in [true, false] {
            assert_eq!(
                exit_code(Some(&StopReason::Quota { flag: quota }), true),
                ExitCode::QuotaPaused
            );
        }
    }
}
