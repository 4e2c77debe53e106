//! ureq's own connector and transport, wrapped to know how far a request got
//! when it failed. A failure is [`Unsent`] (retried, never `uncertain`) only
//! when the server provably never had the whole request:
//!
//! - the connection could not be made (refused, connect timeout, TLS);
//! - writing the request failed, and no answer could be read after it.
//!
//! A server may answer before it has read the body, then close: a 413 for a
//! body over its limit. The client, still writing, then gets a broken pipe
//! or a reset. ureq would report that write error and never look at the
//! answer, so the transport keeps the error to itself, discards the rest of
//! the request and lets ureq read: the answer is honoured if it is there.
//! If none comes, the server never received a whole body, so it cannot have
//! stored one: not sent.
//!
//! The [`Resolver`] remembers addresses for a while: ureq resolves the host
//! before every request, a pooled connection or not, and with a timeout set
//! it does so on a thread of its own, one thread per request.
//!
//! ureq's transport API is outside its semver promise (changes come only in
//! minor versions), which is why Cargo.toml holds ureq to one minor version.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, DefaultConnector, NextTimeout, Transport,
};

/// How long resolved addresses are used before the host is looked up again:
/// a DNS change is followed within this time.
const RESOLVED_TTL: Duration = Duration::from_secs(30);

/// ureq's default resolver, its answers kept for [`RESOLVED_TTL`].
#[derive(Debug, Default)]
pub struct Resolver {
    inner: DefaultResolver,
    /// By `scheme://authority`: the addresses and when they were looked up.
    cache: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl ureq::unversioned::resolver::Resolver for Resolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or_default(),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        let now = Instant::now();
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, addrs)) = cache.get(&key) {
            if now.duration_since(*at) < RESOLVED_TTL {
                return Ok(addrs.clone());
            }
        }
        // Looked up outside the lock: a slow DNS answer holds up no one
        // whose addresses are known.
        drop(cache);
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(key, (now, addrs.clone()));
        Ok(addrs)
    }
}

/// ureq's default connector (TCP, then TLS for https), its failures marked
/// as [`Unsent`] and its transports [`Tracked`].
#[derive(Debug, Default)]
pub struct Connector(DefaultConnector);

impl ureq::unversioned::transport::Connector for Connector {
    type Out = Tracked;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Tracked>, ureq::Error> {
        match self.0.connect(details, None) {
            Ok(transport) => Ok(transport.map(Tracked::new)),
            // No connection: not one byte of the request was written.
            Err(e) => Err(Unsent::Connect(describe(&e)).into()),
        }
    }
}

/// A failure that proves the server never had the whole request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsent {
    /// The connection could not be made.
    Connect(String),
    /// Writing the request failed, then no answer came.
    Write { write: String, read: String },
}

impl Unsent {
    /// The `Unsent` inside a ureq error, if that is what it is.
    pub fn find(e: &ureq::Error) -> Option<&Unsent> {
        match e {
            ureq::Error::Other(inner) => inner.downcast_ref::<Unsent>(),
            _ => None,
        }
    }
}

impl fmt::Display for Unsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsent::Connect(e) => write!(f, "not sent: cannot connect: {e}"),
            Unsent::Write { write, read } => write!(
                f,
                "not sent: the request could not be written whole ({write}) and no answer came ({read})"
            ),
        }
    }
}

impl std::error::Error for Unsent {}

impl From<Unsent> for ureq::Error {
    fn from(u: Unsent) -> ureq::Error {
        ureq::Error::Other(Box::new(u))
    }
}

/// A ureq error in words, without ureq's `io:`-style prefixes. Neither the
/// URL's credentials (there are none) nor headers appear in ureq's errors.
pub fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::Other(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

/// The longest request head held back to go out with the body.
const HOLD_MAX: usize = 8 * 1024;

/// A transport that sends a request's head and body in one write, and,
/// once a write has failed, discards the rest of the request and turns a
/// missing answer into [`Unsent`].
#[derive(Debug)]
pub struct Tracked {
    inner: Box<dyn Transport>,
    /// The request head, held back: ureq writes the head and the body
    /// separately, which costs a second write and a second packet, and the
    /// server a second wake-up, on every request.
    held: Vec<u8>,
    /// Why writing this request failed, if it did.
    write_failed: Option<String>,
    /// Whether any byte of an answer arrived after the write failed.
    answered: bool,
}

impl Tracked {
    fn new(inner: Box<dyn Transport>) -> Tracked {
        Tracked {
            inner,
            held: Vec::new(),
            write_failed: None,
            answered: false,
        }
    }

    /// Write what is held, then the first `amount` bytes of the output
    /// buffer: in one write when they fit in the buffer together.
    fn write(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let held = self.held.len();
        if held == 0 {
            return self.inner.transmit_output(amount, timeout);
        }
        let out = self.inner.buffers().output();
        if held + amount <= out.len() {
            out.copy_within(..amount, held);
            out[..held].copy_from_slice(&self.held);
            self.held.clear();
            return self.inner.transmit_output(held + amount, timeout);
        }
        // A body chunk that fills the buffer: the head goes first.
        let chunk = out[..amount].to_vec();
        out[..held].copy_from_slice(&self.held);
        self.held.clear();
        self.inner.transmit_output(held, timeout)?;
        self.inner.buffers().output()[..amount].copy_from_slice(&chunk);
        self.inner.transmit_output(amount, timeout)
    }

    /// A write's result: a timeout is [`Unsent`] at once; any other failure
    /// (the peer closed or reset) is kept, and the rest of the request is
    /// discarded, so that ureq goes on to read an answer sent before.
    fn wrote(&mut self, result: Result<(), ureq::Error>) -> Result<(), ureq::Error> {
        match result {
            Ok(()) => Ok(()),
            // The server is not reading and has not answered: waiting
            // longer for an answer would only run past the deadline.
            Err(e @ ureq::Error::Timeout(_)) => Err(Unsent::Write {
                write: describe(&e),
                read: "not tried".into(),
            }
            .into()),
            Err(e) => {
                self.write_failed = Some(describe(&e));
                Ok(())
            }
        }
    }

    /// Before reading: the held head goes out.
    fn flush(&mut self, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if self.held.is_empty() || self.write_failed.is_some() {
            return Ok(());
        }
        let result = self.write(0, timeout);
        self.wrote(result)
    }

    /// What reading gave, after a failed write: no answer at all is
    /// [`Unsent`]; an answer, once it has begun, is left to ureq.
    fn after_failed_write(&mut self, read: Result<bool, ureq::Error>) -> Result<bool, ureq::Error> {
        let Some(write) = &self.write_failed else {
            return read;
        };
        match read {
            Ok(true) => {
                self.answered = true;
                Ok(true)
            }
            Ok(false) if self.answered => Ok(false),
            Ok(false) => Err(Unsent::Write {
                write: write.clone(),
                read: "the connection was closed".into(),
            }
            .into()),
            Err(e) => Err(Unsent::Write {
                write: write.clone(),
                read: describe(&e),
            }
            .into()),
        }
    }
}

impl Transport for Tracked {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if self.write_failed.is_some() {
            // The server stopped taking the request; the rest goes nowhere.
            return Ok(());
        }
        if self.held.is_empty() && amount <= HOLD_MAX {
            let out = &self.inner.buffers().output()[..amount];
            self.held.extend_from_slice(out);
            return Ok(());
        }
        let result = self.write(amount, timeout);
        self.wrote(result)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush(timeout)?;
        let read = self.inner.maybe_await_input(timeout);
        self.after_failed_write(read)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush(timeout)?;
        let read = self.inner.await_input(timeout);
        self.after_failed_write(read)
    }

    fn is_open(&mut self) -> bool {
        // A connection whose request was cut short is never reused.
        self.write_failed.is_none() && self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn unsent_is_found_through_ureq_errors() {
        let e: ureq::Error = Unsent::Connect("Connection refused".into()).into();
        assert_eq!(
            Unsent::find(&e),
            Some(&Unsent::Connect("Connection refused".into()))
        );
        assert_eq!(describe(&e), "not sent: cannot connect: Connection refused");
        let io = ureq::Error::Io(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(Unsent::find(&io).is_none());
    }
}
