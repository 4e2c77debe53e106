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
//! ureq's transport API is outside its semver promise (changes come only in
//! minor versions), which is why Cargo.toml holds ureq to one minor version.

use std::fmt;

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, DefaultConnector, NextTimeout, Transport,
};

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
            Ok(transport) => Ok(transport.map(|inner| Tracked {
                inner,
                write_failed: None,
                answered: false,
            })),
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

/// A transport that, once a write has failed, discards the rest of the
/// request and turns a missing answer into [`Unsent`].
#[derive(Debug)]
pub struct Tracked {
    inner: Box<dyn Transport>,
    /// Why writing this request failed, if it did.
    write_failed: Option<String>,
    /// Whether any byte of an answer arrived after the write failed.
    answered: bool,
}

impl Tracked {
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
        match self.inner.transmit_output(amount, timeout) {
            Ok(()) => Ok(()),
            // A write that ran out of time: the server is not reading and
            // has not answered either. Waiting longer for an answer would
            // only run past the deadline.
            Err(e @ ureq::Error::Timeout(_)) => Err(Unsent::Write {
                write: describe(&e),
                read: "not tried".into(),
            }
            .into()),
            Err(e) => {
                // The peer closed or reset: it may have answered first.
                self.write_failed = Some(describe(&e));
                Ok(())
            }
        }
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let read = self.inner.maybe_await_input(timeout);
        self.after_failed_write(read)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
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
