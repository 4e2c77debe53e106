//! Integration tests: how `run` reaches the API. HTTPS against the
//! emulator's own certificate (`emulator --tls`, `--ca-cert`), a
//! certificate no root trusts, plain HTTP off loopback
//! (`--allow-insecure-http`), and proxies: a small CONNECT proxy on
//! loopback, written here, relays to the emulator or refuses the tunnel;
//! `--proxy` and `HTTPS_PROXY` lead there, never for loopback from the
//! environment, never for the rehearsal (`--emulator`).
//!
//! Everything stays on 127.0.0.1: a name such as `api.example.test` is
//! only ever given to the test proxy, which maps it to the emulator (the
//! importer does not resolve what a proxy reaches).

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use transcript_import::emulator::{Config, Emulator, Stats, Tls};

use crate::util::{self, Dir, Ran};

/// Every variable a proxy could come from: removed from each run, then
/// set as a test means.
pub const PROXY_VARS: [&str; 8] = [
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// What the test proxy does with a CONNECT.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Dial the host and port asked for, and relay.
    Relay,
    /// Dial this address whatever was asked for, and relay.
    RelayTo(SocketAddr),
    /// Answer this status and close.
    Refuse(u16),
}

/// One CONNECT the proxy was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub target: String,
    pub authorization: Option<String>,
}

/// A CONNECT proxy on loopback: a thread accepts, reads the CONNECT head,
/// answers, and (relaying) copies bytes both ways until either side closes.
pub struct ConnectProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Connect>>>,
}

impl ConnectProxy {
    pub fn start(behaviour: Behaviour) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                std::thread::spawn(move || tunnel(client, behaviour, &log));
            }
        });
        ConnectProxy { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The CONNECTs asked for so far.
    pub fn seen(&self) -> Vec<Connect> {
        self.seen.lock().unwrap().clone()
    }
}

fn tunnel(client: TcpStream, behaviour: Behaviour, log: &Mutex<Vec<Connect>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_string());
    }
    let target = head
        .first()
        .and_then(|l| l.strip_prefix("CONNECT "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_default()
        .to_string();
    let authorization = head.iter().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_string())
    });
    log.lock().unwrap().push(Connect {
        target: target.clone(),
        authorization,
    });
    let mut client = client;
    let upstream = match behaviour {
        Behaviour::Refuse(status) => {
            let _ = write!(
                client,
                "HTTP/1.1 {status} Refused\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            return;
        }
        Behaviour::Relay => TcpStream::connect(&target),
        Behaviour::RelayTo(addr) => TcpStream::connect(addr),
    };
    let Ok(upstream) = upstream else {
        let _ = write!(client, "HTTP/1.1 502 Bad Gateway\r\n\r\n");
        return;
    };
    let _ = write!(client, "HTTP/1.1 200 Connection established\r\n\r\n");
    let mut up_write = upstream.try_clone().unwrap();
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut up_write);
        let _ = up_write.shutdown(Shutdown::Write);
    });
    let mut up_read = upstream;
    let _ = std::io::copy(&mut up_read, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.join();
}

/// An in-process emulator serving HTTPS for the loopback names and
/// `extra` names, and its CA written to `dir/ca.pem`.
pub fn tls_emulator(dir: &Dir, extra: &[&str]) -> (Emulator, String) {
    let mut tls = Tls::default();
    tls.names.extend(extra.iter().map(|n| n.to_string()));
    let emu = Emulator::start(Config {
        tls: Some(tls),
        ..Config::default()
    })
    .unwrap();
    let ca = dir.write("ca.pem", emu.ca_pem().unwrap());
    (emu, ca)
}

/// The importer: `run --state DIR/state.db --report DIR/report.csv`, then
/// `args`, credentials `x` / `y`, and no proxy variable but `env`.
pub fn importer(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(util::bin());
    cmd.args(["run", "--state"])
        .arg(dir.path("state.db"))
        .arg("--report")
        .arg(dir.path("report.csv"))
        .args(args)
        .env("ASAPP_API_ID", "x")
        .env("ASAPP_API_SECRET", "y")
        .stdin(Stdio::null());
    for var in PROXY_VARS.iter().chain(&["SSL_CERT_FILE", "SSL_CERT_DIR"]) {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn ran(mut cmd: Command) -> Ran {
    cmd.output().unwrap().into()
}

/// An input of `n` rows in a few conversations, all valid.
fn write_input(dir: &Dir, n: usize) -> (usize, String) {
    conversations(dir, 11, 4, n)
}

/// An input of `n` rows in `conversations` conversations, all valid.
fn conversations(dir: &Dir, seed: u64, conversations: usize, n: usize) -> (usize, String) {
    let rows = util::transcripts(seed, conversations, n, 0);
    (
        rows.len(),
        dir.write(&format!("in-{seed}.csv"), util::csv(&rows)),
    )
}

fn assert_all_created(dir: &Dir, rows: usize) {
    let report = util::report(&dir.path("report.csv"));
    assert_eq!(report.len(), rows);
    let statuses = util::statuses(&report);
    assert_eq!(statuses.get("created"), Some(&rows), "{statuses:?}");
}

fn assert_sent_once(stats: &Stats, rows: usize) {
    assert_eq!(stats.stored as usize, rows);
    assert_eq!(stats.duplicates, 0);
    assert_eq!(stats.order_violations, 0);
}

/// `transcript-import emulator --tls` as a process: its address and the
/// CA path from its first two lines; SIGTERM when dropped.
struct EmulatorProcess {
    child: Child,
    port: u16,
    ca: PathBuf,
    stats_file: PathBuf,
}

impl EmulatorProcess {
    fn start(dir: &Dir) -> EmulatorProcess {
        let stats_file = dir.path("stats.json");
        let mut child = Command::new(util::bin())
            .args(["emulator", "--tls", "--addr", "127.0.0.1:0", "--stats-file"])
            .arg(&stats_file)
            .env_remove("ASAPP_API_ID")
            .env_remove("ASAPP_API_SECRET")
            .env("TMPDIR", dir.root())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let port = first
            .trim_end()
            .strip_prefix("listening on 127.0.0.1:")
            .unwrap_or_else(|| panic!("first line: {first:?}"))
            .parse()
            .unwrap();
        let mut second = String::new();
        stdout.read_line(&mut second).unwrap();
        let ca = PathBuf::from(
            second
                .trim_end()
                .strip_prefix("ca: ")
                .unwrap_or_else(|| panic!("second line: {second:?}")),
        );
        EmulatorProcess {
            child,
            port,
            ca,
            stats_file,
        }
    }

    /// SIGTERM, wait, and the stats it wrote.
    fn stop(mut self) -> Stats {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        assert!(self.child.wait().unwrap().success());
        let json = std::fs::read_to_string(&self.stats_file).unwrap();
        serde_json::from_str(&json).unwrap()
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn file_exists(path: &Path) -> bool {
    std::fs::metadata(path).is_ok()
}

// ------------------------------------------------------------------ HTTPS

/// `emulator --tls` prints its CA's path; the importer, given it with
/// `--ca-cert`, imports everything over HTTPS, by IP address and by name;
/// the CA file goes when the emulator stops.
#[test]
fn https_import_into_the_emulator_with_its_ca() {
    let dir = Dir::new();
    let emu = EmulatorProcess::start(&dir);
    assert!(file_exists(&emu.ca), "{}", emu.ca.display());
    let pem = std::fs::read_to_string(&emu.ca).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let ca = emu.ca.to_str().unwrap().to_string();

    let (rows, input) = write_input(&dir, 40);
    let url = format!("https://127.0.0.1:{}", emu.port);
    let run = ran(importer(
        &dir,
        &["--api-url", &url, "--ca-cert", &ca, &input],
        &[],
    ));
    assert_eq!(run.code, 0, "{run:?}");
    assert_all_created(&dir, rows);
    assert!(!run.stderr.contains("proxy:"), "{}", run.stderr);

    // Other conversations by name: the certificate is valid for
    // `localhost` too.
    let again = Dir::new();
    let (more, input) = conversations(&again, 12, 4, 40);
    let url = format!("https://localhost:{}", emu.port);
    let run = ran(importer(
        &again,
        &["--api-url", &url, "--ca-cert", &ca, &input],
        &[],
    ));
    assert_eq!(run.code, 0, "{run:?}");
    assert_all_created(&again, more);

    let ca_path = emu.ca.clone();
    let stats = emu.stop();
    assert_sent_once(&stats, rows + more);
    assert!(!file_exists(&ca_path), "the CA file outlived the emulator");
}

/// A certificate no trusted root signed (the emulator's own, without
/// `--ca-cert`) is a connection that fails: retried, and the run is down
/// (exit 3) when it keeps failing, with one line naming the certificate
/// problem and the flag; every row is `not_attempted`, to send next time,
/// and those that were tried say what the last answer was.
#[test]
fn a_certificate_from_an_unknown_ca_stops_the_run_naming_it() {
    let dir = Dir::new();
    let (emu, _ca) = tls_emulator(&dir, &[]);
    let (rows, input) = conversations(&dir, 13, 40, 80);
    let run = ran(importer(
        &dir,
        &[
            "--api-url",
            &emu.url(),
            "--concurrency",
            "4",
            "--backoff-scale",
            "0.01",
            &input,
        ],
        // No system root signed it either.
        &[("SSL_CERT_FILE", "/nonexistent/ca.pem")],
    ));
    // Retried like any failed connection, then down (DESIGN.md).
    assert_eq!(run.code, 3, "{run:?}");
    let stopped: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("stopped:"))
        .collect();
    assert_eq!(stopped.len(), 1, "{}", run.stderr);
    assert!(
        stopped[0].contains("the server's certificate is not trusted")
            && stopped[0].contains("--ca-cert"),
        "{}",
        stopped[0]
    );
    assert_eq!(emu.stats().requests_total, 0, "nothing reached the API");
    let report = util::report(&dir.path("report.csv"));
    assert_eq!(report.len(), rows);
    // Rows whose retries ran out before the run stopped are `failed` (and
    // their conversations' later rows `skipped`), as with any server that
    // keeps failing; the rest `not_attempted`. Each tried row names the
    // certificate problem.
    let cert = "not sent: cannot connect: TLS: the server's certificate is not trusted: its issuer is not a known certificate authority (if a private CA signed it, pass that CA with --ca-cert)";
    let mut not_attempted = 0;
    for r in &report {
        match r.status.as_str() {
            "not_attempted" => {
                not_attempted += 1;
                assert!(
                    r.error_message
                        .starts_with("not sent: the API kept failing"),
                    "{r:?}"
                );
            }
            "failed" => assert!(r.error_message.contains(cert), "{r:?}"),
            "skipped" => assert!(r.error_message.contains("is failed"), "{r:?}"),
            _ => panic!("{r:?}"),
        }
        if r.attempts > 0 {
            assert!(r.error_message.contains(cert), "{r:?}");
        }
    }
    assert!(
        not_attempted > 0,
        "the run stopped before every row was tried"
    );
}

/// The system's roots are trusted: the emulator's CA named by
/// `SSL_CERT_FILE`, as openssl and curl read it, is enough without
/// `--ca-cert`.
#[test]
fn a_ca_in_the_system_store_is_trusted() {
    let dir = Dir::new();
    let (emu, ca) = tls_emulator(&dir, &[]);
    let (rows, input) = write_input(&dir, 12);
    let run = ran(importer(
        &dir,
        &["--api-url", &emu.url(), &input],
        &[("SSL_CERT_FILE", &ca), ("SSL_CERT_DIR", "/nonexistent")],
    ));
    assert_eq!(run.code, 0, "{run:?}");
    assert_all_created(&dir, rows);
    assert_sent_once(&emu.stats(), rows);
}

/// `http://` to a host other than loopback is refused before anything
/// happens, naming the flag that would allow it.
#[test]
fn plain_http_off_loopback_is_refused_unless_allowed() {
    let dir = Dir::new();
    let (_, input) = write_input(&dir, 4);
    let run = ran(importer(
        &dir,
        &["--api-url", "http://api.example.test", &input],
        &[],
    ));
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("plain http is allowed only on loopback")
            && run.stderr.contains("--allow-insecure-http"),
        "{}",
        run.stderr
    );
    assert!(!file_exists(&dir.path("state.db")), "no ledger was made");
}

/// `--allow-insecure-http` takes a plain-HTTP API on another host, with a
/// warning. (The host is reached through the test proxy, which maps it to
/// the emulator: nothing leaves loopback.)
#[test]
fn allow_insecure_http_sends_with_a_warning() {
    let dir = Dir::new();
    let emu = Emulator::start(Config::default()).unwrap();
    let proxy = ConnectProxy::start(Behaviour::RelayTo(emu.addr()));
    let (rows, input) = write_input(&dir, 12);
    let url = format!("http://api.example.test:{}", emu.addr().port());
    let run = ran(importer(
        &dir,
        &[
            "--api-url",
            &url,
            "--allow-insecure-http",
            "--proxy",
            &proxy.url(),
            &input,
        ],
        &[],
    ));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.lines().next().is_some_and(|l| l
            == format!(
            "warning: --allow-insecure-http: credentials and transcripts go to {url} unencrypted"
        )),
        "{}",
        run.stderr
    );
    assert_all_created(&dir, rows);
    assert_sent_once(&emu.stats(), rows);
    assert!(proxy
        .seen()
        .iter()
        .all(|c| c.target == format!("api.example.test:{}", emu.addr().port())));
}

// ---------------------------------------------------------------- proxies

/// `--proxy` with credentials: every request goes through the tunnel, TLS
/// end to end inside it; the proxy gets the credentials, the summary names
/// the proxy without them.
#[test]
fn https_import_through_a_connect_proxy() {
    let dir = Dir::new();
    let (emu, ca) = tls_emulator(&dir, &[]);
    let proxy = ConnectProxy::start(Behaviour::Relay);
    let (rows, input) = write_input(&dir, 40);
    let with_user = proxy.url().replace("http://", "http://alice:pr0xy-pass@");
    let run = ran(importer(
        &dir,
        &[
            "--api-url",
            &emu.url(),
            "--ca-cert",
            &ca,
            "--proxy",
            &with_user,
            "--concurrency",
            "4",
            &input,
        ],
        // --proxy wins over the environment, NO_PROXY included.
        &[("HTTPS_PROXY", "http://127.0.0.1:9"), ("NO_PROXY", "*")],
    ));
    assert_eq!(run.code, 0, "{run:?}");
    assert_all_created(&dir, rows);
    assert_sent_once(&emu.stats(), rows);
    let seen = proxy.seen();
    assert!(
        !seen.is_empty() && seen.len() <= 4,
        "one tunnel a worker: {seen:?}"
    );
    for c in &seen {
        assert_eq!(c.target, emu.addr().to_string());
        // base64("alice:pr0xy-pass")
        assert_eq!(
            c.authorization.as_deref(),
            Some("Basic YWxpY2U6cHIweHktcGFzcw==")
        );
    }
    let line = format!(
        "proxy: {} (--proxy)",
        proxy.url().replace("http://", "http://***@")
    );
    assert!(
        run.stderr.lines().any(|l| l == line),
        "{line}\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("pr0xy-pass") && !run.stderr.contains("alice"));
}

/// `HTTPS_PROXY` (no `--proxy`) for an API on another host: the proxy is
/// asked for that host, and the summary says where the proxy came from.
#[test]
fn https_proxy_from_the_environment() {
    let dir = Dir::new();
    let (emu, ca) = tls_emulator(&dir, &["api.example.test"]);
    let proxy = ConnectProxy::start(Behaviour::RelayTo(emu.addr()));
    let (rows, input) = write_input(&dir, 12);
    let url = format!("https://api.example.test:{}", emu.addr().port());
    let run = ran(importer(
        &dir,
        &["--api-url", &url, "--ca-cert", &ca, &input],
        &[
            ("HTTPS_PROXY", &proxy.url()),
            ("NO_PROXY", "localhost,127.0.0.1,.internal.example"),
        ],
    ));
    assert_eq!(run.code, 0, "{run:?}");
    assert_all_created(&dir, rows);
    assert_sent_once(&emu.stats(), rows);
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    assert!(seen
        .iter()
        .all(|c| c.target == format!("api.example.test:{}", emu.addr().port())));
    let line = format!("proxy: {} (from HTTPS_PROXY)", proxy.url());
    assert!(
        run.stderr.lines().any(|l| l == line),
        "{line}\n{}",
        run.stderr
    );
}

/// A proxy from the environment is never used for a loopback API, nor for
/// the rehearsal: a proxy elsewhere would reach its own loopback. (This
/// one would refuse every tunnel, and sees none.)
#[test]
fn proxies_from_the_environment_leave_loopback_and_the_rehearsal_alone() {
    let proxy = ConnectProxy::start(Behaviour::Refuse(403));
    let env = [
        ("https_proxy", proxy.url()),
        ("http_proxy", proxy.url()),
        ("ALL_PROXY", proxy.url()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let dir = Dir::new();
    let (emu, ca) = tls_emulator(&dir, &[]);
    let (rows, input) = write_input(&dir, 8);
    let run = ran(importer(
        &dir,
        &["--api-url", &emu.url(), "--ca-cert", &ca, &input],
        &env,
    ));
    assert_eq!(run.code, 0, "{run:?}");
    assert_all_created(&dir, rows);
    assert!(
        run.stderr
            .lines()
            .any(|l| l == "proxy: none (the API is on loopback; https_proxy not used)"),
        "{}",
        run.stderr
    );

    let dir = Dir::new();
    let (rows, input) = write_input(&dir, 8);
    let run = ran(importer(&dir, &["--emulator", &input], &env));
    assert_eq!(run.code, 0, "{run:?}");
    assert_all_created(&dir, rows);
    assert!(!run.stderr.contains("proxy:"), "{}", run.stderr);

    assert_eq!(proxy.seen(), [], "the proxy was never asked");
}

/// A proxy that refuses the tunnel (403 to CONNECT): nothing reaches the
/// API; each request is `not sent`, and the run stops (exit 3) with one
/// line saying the proxy refused.
#[test]
fn a_proxy_that_refuses_the_tunnel_stops_the_run_saying_so() {
    let dir = Dir::new();
    let (emu, ca) = tls_emulator(&dir, &[]);
    let proxy = ConnectProxy::start(Behaviour::Refuse(403));
    let (_, input) = conversations(&dir, 13, 40, 80);
    let run = ran(importer(
        &dir,
        &[
            "--api-url",
            &emu.url(),
            "--ca-cert",
            &ca,
            "--proxy",
            &proxy.url(),
            "--backoff-scale",
            "0.01",
            &input,
        ],
        &[],
    ));
    assert_eq!(run.code, 3, "{run:?}");
    let stopped: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("stopped:"))
        .collect();
    assert_eq!(stopped.len(), 1, "{}", run.stderr);
    let want = format!(
        "not sent: cannot connect through the proxy {}: the proxy refused the tunnel to the API (CONNECT answered HTTP 403)",
        proxy.url()
    );
    assert!(stopped[0].contains(&want), "{}", stopped[0]);
    assert!(!proxy.seen().is_empty());
    assert_eq!(emu.stats().requests_total, 0);
    let report = util::report(&dir.path("report.csv"));
    assert!(report
        .iter()
        .all(|r| r.status != "uncertain" && r.status != "created"));
}

/// A proxy or CA that cannot be used is refused before anything is sent
/// (exit 2), naming the flag or variable, never a proxy's password.
#[test]
fn a_bad_proxy_or_ca_is_refused_before_anything_is_sent() {
    let dir = Dir::new();
    let (_, input) = write_input(&dir, 4);
    let not_pem = dir.write("not-a-ca.pem", "hunter2\n");
    let url = "https://127.0.0.1:9";
    for (args, env, says) in [
        (
            vec!["--proxy", "socks5://127.0.0.1:1080"],
            vec![],
            "--proxy socks5://127.0.0.1:1080: SOCKS proxies are not supported",
        ),
        (
            vec!["--api-url", "https://api.example.test"],
            vec![("HTTPS_PROXY", "socks5://bob:hunter2@127.0.0.1:1080")],
            "HTTPS_PROXY=socks5://***@127.0.0.1:1080: SOCKS",
        ),
        (
            vec!["--ca-cert", "/nonexistent/ca.pem"],
            vec![],
            "--ca-cert /nonexistent/ca.pem: cannot read",
        ),
        (
            vec!["--ca-cert", not_pem.as_str()],
            vec![],
            "no certificate in it",
        ),
        (
            vec!["--api-url", "https://bob:hunter2@api.example.test"],
            vec![],
            "\"https://***@api.example.test\": no user:password@ here",
        ),
        (
            vec!["--emulator", "--proxy", "http://127.0.0.1:9"],
            vec![],
            "cannot be used with",
        ),
    ] {
        let mut full = vec!["--api-url", url];
        if args.contains(&"--api-url") || args.contains(&"--emulator") {
            full.clear();
        }
        full.extend(args.iter().copied());
        full.push(&input);
        let run = ran(importer(&dir, &full, &env));
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
        assert!(
            !file_exists(&dir.path("state.db")),
            "{args:?}: a ledger was made"
        );
    }
}
