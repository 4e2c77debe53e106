//! A local stand-in for the ASAPP Conversations API: `createMessage` exactly as
//! `create-message.openapi.yaml` says, the importer's companion endpoints, and
//! knobs (latency, rate limit, injected errors, dropped connections) for
//! rehearsals and tests. Counters and stored messages are exposed under
//! `/_emulator/`.
//!
//! [`Emulator::start`] binds synchronously, serves on its own tokio runtime
//! thread, and stops when the handle is dropped; [`run`] is the foreground
//! `transcript-import emulator` command.

pub mod config;
mod limits;
mod schema;
mod server;
mod state;
mod tls;

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

pub use config::emulator_config;
pub use state::{Stats, StoredMessage};
pub use tls::Tls;

use server::Shared;

/// Default `max_body`: 64 KiB.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// Default `header_read_timeout`: 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the emulator can be told at start.
#[derive(Clone)]
pub struct Config {
    /// Where to listen; `None` is `127.0.0.1:0` (a free port).
    pub addr: Option<SocketAddr>,
    /// The accepted `(asapp-api-id, asapp-api-secret)`; `None` accepts any non-empty pair.
    pub credentials: Option<(String, String)>,
    /// Added to every API answer.
    pub latency: Duration,
    /// A further random delay, uniform in `[0, jitter]`.
    pub jitter: Duration,
    /// Requests per second over all API endpoints (token bucket, one second of burst).
    pub rate_limit: Option<u32>,
    /// Share of API requests answered 429 at random (0.0 to 1.0).
    pub error_429: f64,
    /// Share of API requests answered 503 at random.
    pub error_503: f64,
    /// Share of API requests answered 500 at random.
    pub error_500: f64,
    /// Share of API requests whose connection is closed before storing, without an answer.
    pub drop_before: f64,
    /// Share of storing requests whose connection is closed after storing, without an answer.
    pub drop_after: f64,
    /// Seed for latency jitter and the random faults, so a run can be repeated.
    pub seed: Option<u64>,
    /// Largest request body accepted; larger ones get 413.
    pub max_body: usize,
    /// After a 413, read and discard the rest of the body before closing,
    /// as HTTP servers do (the default). Off, the connection closes right
    /// after the answer, as some servers and proxies do: the client, still
    /// writing, then meets a reset.
    pub linger: bool,
    /// Conversation ids answered 404.
    pub unknown: Vec<String>,
    /// API requests allowed per UTC day; then every call gets 429 until 00:00 UTC.
    pub daily_quota: Option<u64>,
    /// How far the daily quota's clock is ahead of the real one: a test of
    /// the quota moves it to midday ([`Config::quota_at_midday`]), so that
    /// 00:00 UTC never passes during the test and resets it.
    pub quota_clock_offset: chrono::TimeDelta,
    /// Answer 409 to a message already stored instead of storing it again.
    pub conflict_on_duplicate: bool,
    /// Answer 404 to createMessage and createBatchMessages for a
    /// conversation id that createOrUpdateConversation did not give out,
    /// as the real API does. Off: any id of the API's pattern is taken.
    pub known_conversations_only: bool,
    /// Send `Retry-After` as an HTTP date (the wait rounded up to the next
    /// whole second of the clock) instead of delta-seconds.
    pub retry_after_http_date: bool,
    /// Write the stats JSON here when the emulator stops.
    pub stats_file: Option<PathBuf>,
    /// How long a client may take to send a request head before the
    /// connection is closed (slow clients never hold a connection forever).
    /// The TLS handshake, with `tls`, has as long again.
    pub header_read_timeout: Duration,
    /// Serve HTTPS with a certificate made at start for these names, signed
    /// by a CA made with it ([`Emulator::ca_pem`]). `None`: plain HTTP.
    pub tls: Option<Tls>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: None,
            credentials: None,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_limit: None,
            error_429: 0.0,
            error_503: 0.0,
            error_500: 0.0,
            drop_before: 0.0,
            drop_after: 0.0,
            seed: None,
            max_body: DEFAULT_MAX_BODY,
            linger: true,
            unknown: Vec::new(),
            daily_quota: None,
            quota_clock_offset: chrono::TimeDelta::zero(),
            conflict_on_duplicate: false,
            known_conversations_only: false,
            retry_after_http_date: false,
            stats_file: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            tls: None,
        }
    }
}

impl Config {
    /// A daily quota of `requests` whose clock stands at 12:00 UTC today
    /// as it starts: however long a test takes, its day does not end.
    pub fn quota_at_midday(requests: u64) -> Config {
        let now = chrono::Utc::now();
        let midday = now
            .date_naive()
            .and_hms_opt(12, 0, 0)
            .map_or(now, |t| t.and_utc());
        Config {
            daily_quota: Some(requests),
            quota_clock_offset: midday - now,
            ..Config::default()
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(id, _)| (id, "***")),
            )
            .field("latency", &self.latency)
            .field("jitter", &self.jitter)
            .field("rate_limit", &self.rate_limit)
            .field("error_429", &self.error_429)
            .field("error_503", &self.error_503)
            .field("error_500", &self.error_500)
            .field("drop_before", &self.drop_before)
            .field("drop_after", &self.drop_after)
            .field("seed", &self.seed)
            .field("max_body", &self.max_body)
            .field("linger", &self.linger)
            .field("unknown", &self.unknown)
            .field("daily_quota", &self.daily_quota)
            .field("quota_clock_offset", &self.quota_clock_offset)
            .field("conflict_on_duplicate", &self.conflict_on_duplicate)
            .field("known_conversations_only", &self.known_conversations_only)
            .field("retry_after_http_date", &self.retry_after_http_date)
            .field("stats_file", &self.stats_file)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

/// A running emulator on its own runtime thread; stops when dropped or shut down.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    stats_file: Option<PathBuf>,
    /// The CA that signed the HTTPS certificate, PEM; `None` for plain HTTP.
    ca_pem: Option<String>,
}

impl Emulator {
    /// Bind (port 0 picks a free one) and serve in the background. Returns
    /// once the socket is listening.
    pub fn start(config: Config) -> io::Result<Emulator> {
        let addr = config
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("emulator-worker")
            .enable_all()
            .build()?;
        let listener = {
            // A tokio listener registers with the runtime it is made in.
            let _runtime = runtime.enter();
            listen(addr)?
        };
        let addr = listener.local_addr()?;
        let certified = config.tls.as_ref().map(tls::certify).transpose()?;
        let (ca_pem, acceptor) = match certified {
            Some(c) => (Some(c.ca_pem), Some(c.acceptor)),
            None => (None, None),
        };
        let stats_file = config.stats_file.clone();
        let shared = Arc::new(Shared::new(config));
        let (stop, stopped) = oneshot::channel();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("emulator".into())
            .spawn(move || {
                runtime.block_on(server::serve(listener, acceptor, serving, stopped));
                // Connections still open are cut here.
                runtime.shutdown_timeout(Duration::from_millis(200));
            })?;
        Ok(Emulator {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
            stats_file,
            ca_pem,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT`, or `https://` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// With TLS, the PEM of the CA that signed the server's certificate:
    /// what a client must trust (`--ca-cert`).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The counters, as `GET /_emulator/stats` shows them.
    pub fn stats(&self) -> Stats {
        self.shared.state.stats()
    }

    /// Every stored message in arrival order, as `GET /_emulator/messages` shows them.
    pub fn messages(&self) -> Vec<StoredMessage> {
        self.shared.state.messages()
    }

    /// Start the quota's day over, as `POST /_emulator/reset-quota` does.
    pub fn reset_quota(&self) {
        self.shared.reset_quota();
    }

    /// Stop serving and write the stats file, if one was asked for.
    pub fn shutdown(self) {
        drop(self);
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(path) = self.stats_file.take() {
            if let Err(e) = write_stats(&path, &self.stats()) {
                say!("emulator: cannot write {}: {e}", path.display());
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Connections the kernel queues for the emulator before it accepts them.
/// std's `TcpListener::bind` asks for 128. When a thousand workers connect at
/// once, the kernel then answers the connections past it with SYN cookies,
/// and resets those it cannot take while the accept queue is full: after
/// the client has counted them open and written its request, which it can
/// only report as lost without an answer (`uncertain`, at 1,024 workers,
/// one reset per `TcpExtSyncookiesFailed`). The kernel caps this at
/// `net.core.somaxconn` (4096 by default since Linux 5.4).
const BACKLOG: u32 = 4096;

/// Bind and listen, with SO_REUSEADDR as std and tokio set it on Unix.
fn listen(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The CA certificate in `ca.pem` in a new private temporary directory
/// (under `TMPDIR`).
fn write_ca(pem: &str) -> io::Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("transcript-import-emulator-")
        .tempdir()?;
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, pem)?;
    Ok((dir, path))
}

fn write_stats(path: &std::path::Path, stats: &Stats) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(stats)?;
    json.push(b'\n');
    std::fs::write(path, json)
}

/// `transcript-import emulator`: serve in the foreground, print
/// `listening on ADDR` as the first line of stdout (then, with TLS,
/// `ca: PATH`, the CA certificate to trust, in a private temporary
/// directory removed when the emulator stops), stop on SIGINT/SIGTERM
/// (writing the stats file, if any).
pub fn run(config: Config) -> Result<(), crate::error::Error> {
    use crate::error::Error;

    let (signal, signalled) = std::sync::mpsc::channel();
    crate::signals::on_stop(move || {
        let _ = signal.send(());
    })
    .map_err(Error::Output)?;
    let addr = config.addr;
    let emulator = Emulator::start(config).map_err(|e| {
        Error::usage(match addr {
            Some(addr) => format!("cannot listen on {addr}: {e}"),
            None => format!("cannot listen: {e}"),
        })
    })?;
    // Kept until the emulator stops; removed with it.
    let ca_dir = match emulator.ca_pem() {
        Some(pem) => Some(write_ca(pem).map_err(Error::Output)?),
        None => None,
    };
    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {}", emulator.addr())
            .and_then(|()| match &ca_dir {
                Some((_, path)) => writeln!(out, "ca: {}", path.display()),
                None => Ok(()),
            })
            .and_then(|()| out.flush())
            .map_err(Error::Output)?;
    }
    let _ = signalled.recv();
    emulator.shutdown();
    drop(ca_dir);
    Ok(())
}
