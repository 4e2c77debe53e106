//! A local stand-in for the ASAPP Conversations API: `createMessage` exactly as
//! `create-message.openapi.yaml` says, the importer's companion endpoints, and
//! knobs (latency, rate limit, injected errors, dropped connections) for
//! rehearsals and tests. Counters and stored messages are exposed under
//! `/_emulator/`.

use std::net::SocketAddr;

/// Everything the emulator can be told at start.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub addr: Option<SocketAddr>,
}

/// A running emulator on its own runtime thread; stops when dropped or shut down.
pub struct Emulator {
    addr: SocketAddr,
}

impl Emulator {
    /// Bind (port 0 picks a free one) and serve in the background.
    pub fn start(_config: Config) -> std::io::Result<Emulator> {
        unimplemented!("emulator::start")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
