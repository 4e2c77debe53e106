//! ureq's own connector, transport and resolver, wrapped.
//!
//! The transport counts how much of each request it has written, so that a
//! failure is known to be one of two kinds (see [`Progress`]):
//!
//! - the request was not written whole (no connection, or a write failed or
//!   ran out of time): the server never had a whole body, so it cannot have
//!   stored one. Not sent; retried.
//! - it was written whole, and no answer came: it may be stored. Lost.
//!
//! ureq's own errors do not say which: a deadline that passes between two
//! writes of a body, or a reset read after a failed write, look like any
//! other timeout or reset.
//!
//! A server may also answer before it has read the body, then close: a 413
//! for a body over its limit. The client, still writing, then gets a broken
//! pipe or a reset, and ureq would report that and never look at the
//! answer. So the transport keeps a failed write to itself, discards the
//! rest of the request and lets ureq read: the answer is honoured if it is
//! there.
//!
//! The transport also sends a request's head and body in one write, and the
//! [`Resolver`] remembers addresses for a while: ureq resolves the host before
//! every request, a pooled connection or not, and with a timeout set it does
//! so on a thread of its own, one thread per request.
//!
//! ureq's transport API is outside its semver promise (changes come only in
//! minor versions), which is why Cargo.toml holds ureq to one minor version.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use ureq::http::uri::{Authority, Scheme};
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, DefaultConnector, NextTimeout, Transport,
};

/// How long resolved addresses are used before the host is looked up again:
/// a DNS change is followed within this time.
const RESOLVED_TTL: Duration = Duration::from_secs(30);

/// ureq's default resolver, its answers kept for [`RESOLVED_TTL`]. Clones
/// share what they have looked up: every worker's client asks one cache.
#[derive(Debug, Default, Clone)]
pub struct Resolver(Arc<Resolving>);

#[derive(Debug, Default)]
struct Resolving {
    inner: DefaultResolver,
    /// Addresses by scheme and authority, and when they were looked up. A
    /// read lock, and no allocation, on every request: the workers share it.
    cache: RwLock<Vec<Resolved>>,
}

#[derive(Debug)]
struct Resolved {
    scheme: Option<Scheme>,
    authority: Option<Authority>,
    at: Instant,
    addrs: ResolvedSocketAddrs,
}

impl Resolved {
    fn is_for(&self, uri: &Uri) -> bool {
        self.scheme.as_ref() == uri.scheme() && self.authority.as_ref() == uri.authority()
    }
}

impl ureq::unversioned::resolver::Resolver for Resolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let this = &self.0;
        let now = Instant::now();
        {
            let cache = this.cache.read().unwrap_or_else(|p| p.into_inner());
            let fresh = cache
                .iter()
                .find(|r| r.is_for(uri) && now.duration_since(r.at) < RESOLVED_TTL);
            if let Some(r) = fresh {
                return Ok(r.addrs.clone());
            }
        }
        // Looked up outside the lock: a slow DNS answer holds up no one
        // whose addresses are known.
        let addrs = this.inner.resolve(uri, config, timeout)?;
        let mut cache = this.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.retain(|r| !r.is_for(uri));
        cache.push(Resolved {
            scheme: uri.scheme().cloned(),
            authority: uri.authority().cloned(),
            at: now,
            addrs: addrs.clone(),
        });
        Ok(addrs)
    }
}

/// ureq's default connector (TCP, a CONNECT tunnel through a proxy, then
/// TLS for https), its transports to the API [`Tracked`].
///
/// Through a proxy, ureq's CONNECT step opens its connection to the proxy
/// by calling the agent's connector again, from inside this one, on the
/// same thread. That inner leg carries the `CONNECT` request and, once the
/// tunnel is up, the TLS records of the connection to the API: none of its
/// bytes are the request's. So only the outermost call is tracked; the
/// transport it returns sees the request in plain text, as without a proxy.
///
/// Clones share one connector, and with it the TLS configuration built on
/// the first connection (from a certificate store read once).
#[derive(Debug, Default, Clone)]
pub struct Connector(Arc<DefaultConnector>);

thread_local! {
    /// Whether this thread is inside [`Connector::connect`].
    static CONNECTING: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as connecting until dropped (also on a panic, which
/// would otherwise leave every later request of the thread untracked).
struct Connecting;

impl Connecting {
    /// `None` when the thread is already connecting: a nested call.
    fn enter() -> Option<Connecting> {
        (!CONNECTING.with(|c| c.replace(true))).then_some(Connecting)
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        CONNECTING.with(|c| c.set(false));
    }
}

impl ureq::unversioned::transport::Connector for Connector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Box<dyn Transport>>, ureq::Error> {
        let Some(_outer) = Connecting::enter() else {
            // The leg to the proxy, inside the outer call.
            let connected = self.0.connect(details, None);
            if connected.is_err() {
                PROGRESS.with(|p| p.borrow_mut().proxy_failed = true);
            }
            return connected;
        };
        let connected = self.0.connect(details, None);
        if connected.is_err() {
            PROGRESS.with(|p| p.borrow_mut().connect_failed = true);
        }
        Ok(connected?.map(|t| Box::new(Tracked::new(t)) as Box<dyn Transport>))
    }
}

/// How much of the request this thread is making has been written. ureq
/// does all of a request's I/O on the thread that makes it, so the
/// transport leaves its count here for the caller to read after the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Head plus `content-length`, once the head has been seen.
    expected: Option<u64>,
    /// Bytes handed to the connection.
    written: u64,
    /// Why a write failed, if one did.
    pub write_error: Option<String>,
    /// No connection could be made (refused, connect timeout, TLS, a
    /// proxy that refused the tunnel).
    pub connect_failed: bool,
    /// Of those: the connection to the proxy itself failed.
    pub proxy_failed: bool,
}

impl Progress {
    /// Whether any byte of the request was written.
    pub fn started(&self) -> bool {
        self.written > 0
    }

    /// Whether every byte of the request was written. Without a
    /// `content-length` (never the case here) any byte counts as all.
    pub fn whole(&self) -> bool {
        match self.expected {
            Some(n) => self.written >= n,
            None => self.written > 0,
        }
    }
}

thread_local! {
    static PROGRESS: RefCell<Progress> = RefCell::new(Progress::default());
}

/// Start counting a new request on this thread.
pub fn begin() {
    PROGRESS.with(|p| *p.borrow_mut() = Progress::default());
}

/// How far this thread's last request got.
pub fn progress() -> Progress {
    PROGRESS.with(|p| p.borrow().clone())
}

/// The head's length plus its `content-length`, if `bytes` start with a
/// whole head that has one.
fn expected_length(bytes: &[u8]) -> Option<u64> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let body = head.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<u64>().ok())
            .flatten()
    })?;
    Some(end as u64 + body)
}

/// A ureq error in words, without ureq's `io:`-style prefixes. Neither the
/// URL's credentials (there are none) nor headers appear in ureq's errors,
/// nor a proxy's URL. A TLS failure says what is wrong with the
/// certificate, and a proxy's refusal says it was the proxy.
pub fn describe(e: &ureq::Error) -> String {
    if let Some(tls) = super::tls::rustls_error(e) {
        return super::tls::describe(tls);
    }
    match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectProxyFailed(why) => super::proxy::describe_refusal(why),
        other => other.to_string(),
    }
}

/// The longest request head held back to go out with the body.
const HOLD_MAX: usize = 8 * 1024;

/// ureq's transport, counting what it writes into [`Progress`], sending a
/// request's head and body in one write, and reading on after a failed
/// write.
#[derive(Debug)]
pub struct Tracked {
    inner: Box<dyn Transport>,
    /// The request head, held back: ureq writes the head and the body
    /// separately, which costs a second write and a second packet, and the
    /// server a second wake-up, on every request.
    held: Vec<u8>,
    /// A write failed: the rest of this request goes nowhere, and the
    /// connection is not reused.
    write_failed: bool,
    /// Bytes went either way since ureq last asked whether the connection
    /// is open (see `is_open`).
    busy: bool,
}

impl Tracked {
    fn new(inner: Box<dyn Transport>) -> Tracked {
        Tracked {
            inner,
            held: Vec::new(),
            write_failed: false,
            busy: false,
        }
    }

    /// Write what is held, then the first `amount` bytes of the output
    /// buffer: in one write when they fit in the buffer together.
    fn write(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = coarse(timeout);
        let held = self.held.len();
        if held == 0 {
            self.inner.transmit_output(amount, timeout)?;
            count(amount);
            return Ok(());
        }
        let out = self.inner.buffers().output();
        if held + amount <= out.len() {
            out.copy_within(..amount, held);
            out[..held].copy_from_slice(&self.held);
            self.held.clear();
            self.inner.transmit_output(held + amount, timeout)?;
            count(held + amount);
            return Ok(());
        }
        // A body chunk that fills the buffer: the head goes first.
        let chunk = out[..amount].to_vec();
        out[..held].copy_from_slice(&self.held);
        self.held.clear();
        self.inner.transmit_output(held, timeout)?;
        count(held);
        self.inner.buffers().output()[..amount].copy_from_slice(&chunk);
        self.inner.transmit_output(amount, timeout)?;
        count(amount);
        Ok(())
    }

    /// A write's result. A timeout ends the request; any other failure (the
    /// peer closed or reset) is kept, and the rest of the request is
    /// discarded, so that ureq goes on to read an answer sent before it.
    fn wrote(&mut self, result: Result<(), ureq::Error>) -> Result<(), ureq::Error> {
        match result {
            Ok(()) => Ok(()),
            // The server is not reading and has not answered: waiting
            // longer for an answer would only run past the deadline.
            Err(e @ ureq::Error::Timeout(_)) => Err(e),
            Err(e) => {
                self.write_failed = true;
                let why = describe(&e);
                PROGRESS.with(|p| p.borrow_mut().write_error = Some(why));
                Ok(())
            }
        }
    }

    /// Before reading: the held head goes out.
    fn flush(&mut self, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if self.held.is_empty() || self.write_failed {
            return Ok(());
        }
        let result = self.write(0, timeout);
        self.wrote(result)
    }
}

/// Remaining times from this long on are passed down in whole seconds.
const COARSE_FROM: Duration = Duration::from_secs(2);

/// `timeout` rounded down to a whole second when there is time left.
/// ureq's TCP transport sets the socket's timeout whenever the value it is
/// given changes, and with a deadline the time left changes on every call:
/// two `setsockopt` calls a request. Whole seconds repeat from one request
/// to the next, so the socket keeps its setting; the deadline is kept to
/// within a second, never passed, and exactly in its last two seconds.
fn coarse(mut timeout: NextTimeout) -> NextTimeout {
    use ureq::unversioned::transport::time::Duration as Left;
    if let Left::Exact(left) = timeout.after {
        if left >= COARSE_FROM {
            timeout.after = Left::Exact(Duration::from_secs(left.as_secs()));
        }
    }
    timeout
}

/// Count `n` bytes written for this thread's request.
fn count(n: usize) {
    PROGRESS.with(|p| p.borrow_mut().written += n as u64);
}

impl Transport for Tracked {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.busy = true;
        if self.write_failed {
            // The server stopped taking the request; the rest goes nowhere.
            return Ok(());
        }
        PROGRESS.with(|p| {
            let mut p = p.borrow_mut();
            if p.expected.is_none() {
                // The first write of a request is its head.
                p.expected = expected_length(&self.inner.buffers().output()[..amount]);
            }
        });
        if self.held.is_empty() && amount <= HOLD_MAX {
            let out = &self.inner.buffers().output()[..amount];
            self.held.extend_from_slice(out);
            return Ok(());
        }
        let result = self.write(amount, timeout);
        self.wrote(result)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.busy = true;
        self.flush(timeout)?;
        self.inner.maybe_await_input(coarse(timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.busy = true;
        self.flush(timeout)?;
        self.inner.await_input(coarse(timeout))
    }

    /// ureq asks twice a request: as the answer's connection goes back to
    /// the pool, and as it is taken out for the next request. Each time its
    /// TCP transport probes the socket (three system calls). Only the
    /// second probe is made: it sees all the first would (bytes after the
    /// answer, or the server's close), and it is the one made just before
    /// the connection is written to again.
    fn is_open(&mut self) -> bool {
        // A connection whose request was cut short is never reused.
        if self.write_failed {
            return false;
        }
        if std::mem::take(&mut self.busy) {
            return true;
        }
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_length_is_head_plus_content_length() {
        let head = b"POST /x HTTP/1.1\r\nhost: h\r\nContent-Length: 12\r\n\r\n";
        assert_eq!(expected_length(head), Some(head.len() as u64 + 12));
        let mut with_body = head.to_vec();
        with_body.extend_from_slice(b"{\"a\":\"b\"}");
        assert_eq!(expected_length(&with_body), Some(head.len() as u64 + 12));
        assert_eq!(
            expected_length(b"POST /x HTTP/1.1\r\nhost: h\r\n\r\n"),
            None
        );
        assert_eq!(
            expected_length(b"POST /x HTTP/1.1\r\ncontent-length: 3"),
            None
        );
    }

    #[test]
    fn time_left_goes_down_in_whole_seconds_until_the_last_two() {
        use ureq::unversioned::transport::time::Duration as Left;
        let left = |d: Duration| {
            coarse(NextTimeout {
                after: Left::Exact(d),
                ..NextTimeout::default()
            })
            .after
        };
        assert_eq!(left(Duration::from_millis(29_999)), Left::from_secs(29));
        assert_eq!(left(Duration::from_millis(29_001)), Left::from_secs(29));
        assert_eq!(left(Duration::from_millis(2_000)), Left::from_secs(2));
        assert_eq!(left(Duration::from_millis(1_999)), Left::from_millis(1_999));
        assert_eq!(left(Duration::ZERO), Left::from_millis(0));
        assert_eq!(
            coarse(NextTimeout::default()).after,
            Left::NotHappening,
            "no deadline stays none"
        );
    }

    #[test]
    fn progress_is_whole_only_when_every_byte_is_written() {
        let mut p = Progress::default();
        assert!(!p.whole());
        p.expected = Some(10);
        p.written = 9;
        assert!(!p.whole());
        p.written = 10;
        assert!(p.whole());
        // Without a length, anything written may be everything.
        let p = Progress {
            written: 1,
            ..Progress::default()
        };
        assert!(p.whole());
    }
}
