//! How `run` reaches the API, from its flags and the environment: the
//! certificate authorities trusted besides the system's roots
//! (`--ca-cert`) and the proxy (`--proxy`, else `HTTPS_PROXY` and the
//! rest, read as `send::client::proxy` says). Errors name the flag or
//! variable, never a proxy's credentials.

use crate::cli::NetworkArgs;
use crate::error::Error;
use crate::send::client::proxy::{self, ProxyChoice, Why};
use crate::send::client::{tls, ApiUrl, Network};

/// The network settings for an import into `api_url` (`None`: the
/// built-in emulator, always reached directly).
pub fn network_config(
    args: &NetworkArgs,
    api_url: Option<&ApiUrl>,
) -> Result<(Network, ProxyChoice), Error> {
    let mut extra_roots = Vec::new();
    for path in &args.ca_cert {
        let certs = tls::load_ca(path)
            .map_err(|e| Error::usage(format!("--ca-cert {}: {e}", path.display())))?;
        extra_roots.extend(certs);
    }
    let choice = match api_url {
        None => ProxyChoice::direct(Why::Emulator),
        Some(url) => proxy::choose(
            url.scheme(),
            url.host(),
            url.is_loopback(),
            args.proxy.as_deref(),
            |name| std::env::var(name).ok(),
        )
        .map_err(Error::usage)?,
    };
    let network = Network {
        extra_roots,
        proxy: choice.proxy.clone(),
    };
    Ok((network, choice))
}
