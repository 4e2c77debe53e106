//! The proxy requests go through, chosen as curl chooses it, and shown
//! without its credentials.
//!
//! - `--proxy URL` is used whatever the environment says; `--proxy ''`
//!   goes direct.
//! - Otherwise, for an `https` API: `https_proxy`, then `HTTPS_PROXY`; for
//!   `http`: `http_proxy` only (curl ignores `HTTP_PROXY`: a CGI program
//!   gets it from a request's `Proxy:` header); then `all_proxy`,
//!   `ALL_PROXY`. An empty variable is unset.
//! - `no_proxy` (else `NO_PROXY`) lists hosts reached directly: `*` for
//!   all; a name matches itself and its subdomains, with or without a
//!   leading dot (`example.com`, `.example.com`; `*.example.com` too); an
//!   IP address or CIDR range (`10.0.0.0/8`) matches addresses in it.
//! - Unlike curl, a loopback API (`localhost`, `127.0.0.0/8`, `::1`) is
//!   never sent to a proxy from the environment: a proxy on another
//!   machine would reach its own loopback, not ours. `--proxy` still
//!   applies to it, and the built-in emulator (`--emulator`) is always
//!   reached directly.
//!
//! Only HTTP proxies that tunnel with `CONNECT` (`http://` or `https://`)
//! are supported. A URL with no scheme is `http://`; with no port, 1080
//! (443 for `https://`), as in curl.

use std::fmt;
use std::net::IpAddr;

/// A proxy's URL, checked. `Display` and `Debug` never show its
/// `user:password@`.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    scheme: &'static str,
    userinfo: Option<String>,
    host: String,
    port: u16,
}

impl ProxyUrl {
    /// A proxy URL as curl reads one. The error never holds the userinfo.
    pub fn parse(url: &str) -> Result<ProxyUrl, String> {
        let url = url.trim();
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("http".to_string(), url),
        };
        let scheme = match scheme.as_str() {
            "http" => "http",
            "https" => "https",
            s if s.starts_with("socks") => {
                return Err(
                    "SOCKS proxies are not supported; use an HTTP proxy (http://HOST:PORT)".into(),
                )
            }
            other => {
                return Err(format!(
                    "unsupported scheme {other:?} (expected http or https)"
                ))
            }
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((user, host)) => (Some(user.to_string()), host),
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            (format!("[{host}]"), after.strip_prefix(':'))
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (host_port.to_string(), None),
            }
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("no host".into());
        }
        let port = match port {
            None | Some("") => {
                if scheme == "https" {
                    443
                } else {
                    1080
                }
            }
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("bad port {p:?}"))?,
        };
        let proxy = ProxyUrl {
            scheme,
            userinfo,
            host,
            port,
        };
        // What ureq will be given must be what was checked here.
        ureq::Proxy::new(&proxy.full()).map_err(|_| "not a proxy URL".to_string())?;
        Ok(proxy)
    }

    /// The URL with its credentials: for ureq only.
    fn full(&self) -> String {
        match &self.userinfo {
            Some(user) => format!("{}://{user}@{}:{}", self.scheme, self.host, self.port),
            None => self.to_string(),
        }
    }

    /// Whether the connection to the proxy itself is TLS.
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// The proxy for ureq.
    pub fn to_ureq(&self) -> ureq::Proxy {
        // Parsed by the same call in `parse`.
        ureq::Proxy::new(&self.full()).expect("checked when parsed")
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = if self.userinfo.is_some() { "***@" } else { "" };
        write!(f, "{}://{user}{}:{}", self.scheme, self.host, self.port)
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

/// A URL with what is between `://` and the last `@` of its authority
/// shown as `***`: for messages about URLs that may carry credentials.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{authority}{path}"),
        None => format!("{authority}{path}"),
    }
}

/// Why requests go, or do not go, through a proxy: said in the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Nothing asks for a proxy.
    Unset,
    /// `--proxy URL`.
    Flag,
    /// `--proxy ''`.
    FlagOff,
    /// This environment variable.
    Env(&'static str),
    /// The environment's proxy, not used: `NO_PROXY` (or `no_proxy`) lists the host.
    NoProxy {
        proxy_var: &'static str,
        list_var: &'static str,
    },
    /// The environment's proxy, not used: the API is on loopback.
    Loopback { proxy_var: &'static str },
    /// The built-in emulator is always reached directly.
    Emulator,
}

/// The proxy chosen for the API, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyChoice {
    pub proxy: Option<ProxyUrl>,
    pub why: Why,
}

impl ProxyChoice {
    /// No proxy, as for the built-in emulator.
    pub fn direct(why: Why) -> ProxyChoice {
        ProxyChoice { proxy: None, why }
    }

    /// One line for the end-of-run summary, when a proxy was used or one
    /// that was set was not; `None` when nothing mentions a proxy.
    pub fn describe(&self) -> Option<String> {
        let proxy = self.proxy.as_ref().map(ToString::to_string);
        Some(match (&self.why, proxy) {
            (Why::Flag, Some(p)) => format!("proxy: {p} (--proxy)"),
            (Why::Env(var), Some(p)) => format!("proxy: {p} (from {var})"),
            (Why::FlagOff, _) => "proxy: none (--proxy '')".to_string(),
            (
                Why::NoProxy {
                    proxy_var,
                    list_var,
                },
                _,
            ) => {
                format!("proxy: none ({list_var} lists the API's host; {proxy_var} not used)")
            }
            (Why::Loopback { proxy_var }, _) => {
                format!("proxy: none (the API is on loopback; {proxy_var} not used)")
            }
            _ => return None,
        })
    }
}

/// The proxy for an API at `scheme://host`: `--proxy` (`flag`), else the
/// environment (`env` looks a variable up), as the module says. An error
/// names the flag or variable, never the URL's credentials.
pub fn choose(
    scheme: &str,
    host: &str,
    loopback: bool,
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ProxyChoice, String> {
    if let Some(flag) = flag {
        if flag.trim().is_empty() {
            return Ok(ProxyChoice::direct(Why::FlagOff));
        }
        let proxy = ProxyUrl::parse(flag).map_err(|e| format!("--proxy {}: {e}", redact(flag)))?;
        return Ok(ProxyChoice {
            proxy: Some(proxy),
            why: Why::Flag,
        });
    }
    let set = |name: &'static str| {
        env(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (name, v))
    };
    let by_scheme: &[&'static str] = if scheme.eq_ignore_ascii_case("https") {
        &["https_proxy", "HTTPS_PROXY"]
    } else {
        &["http_proxy"]
    };
    let found = by_scheme
        .iter()
        .chain(&["all_proxy", "ALL_PROXY"])
        .find_map(|name| set(name));
    let Some((proxy_var, value)) = found else {
        return Ok(ProxyChoice::direct(Why::Unset));
    };
    if loopback {
        return Ok(ProxyChoice::direct(Why::Loopback { proxy_var }));
    }
    if let Some((list_var, list)) = set("no_proxy").or_else(|| set("NO_PROXY")) {
        if no_proxy_matches(&list, host) {
            return Ok(ProxyChoice::direct(Why::NoProxy {
                proxy_var,
                list_var,
            }));
        }
    }
    let proxy =
        ProxyUrl::parse(&value).map_err(|e| format!("{proxy_var}={}: {e}", redact(&value)))?;
    Ok(ProxyChoice {
        proxy: Some(proxy),
        why: Why::Env(proxy_var),
    })
}

/// Whether a `NO_PROXY` list names `host`.
pub fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok();
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            match ip {
                Some(ip) => ip_matches(entry, ip),
                None => {
                    let entry = entry.trim_start_matches("*.").trim_start_matches('.');
                    let entry = entry.trim_end_matches('.').to_ascii_lowercase();
                    !entry.is_empty()
                        && (host == entry
                            || host
                                .strip_suffix(entry.as_str())
                                .is_some_and(|head| head.ends_with('.')))
                }
            }
        })
}

/// Whether `ip` is the address, or in the CIDR range, `entry` names.
fn ip_matches(entry: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match entry.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (entry, None),
    };
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    let (a, b, width) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u128::from(u32::from(n)), u128::from(u32::from(i)), 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
        _ => return false,
    };
    let bits = bits.unwrap_or(width).min(width);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

/// ureq's words for a refused tunnel (`proxy server responded 403/403`,
/// `proxy server did not respond`), as ours.
pub fn describe_refusal(why: &str) -> String {
    let status = why
        .strip_prefix("proxy server responded ")
        .and_then(|s| s.split('/').next())
        .and_then(|s| s.trim().parse::<u16>().ok());
    match status {
        Some(407) => "the proxy asks for credentials (CONNECT answered HTTP 407): put them in \
                      the proxy URL (http://USER:PASSWORD@HOST:PORT)"
            .to_string(),
        Some(status) => {
            format!("the proxy refused the tunnel to the API (CONNECT answered HTTP {status})")
        }
        None => format!("the proxy failed: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn parse_as_curl_does() {
        let p = ProxyUrl::parse("proxy.corp:3128").unwrap();
        assert_eq!(p.to_string(), "http://proxy.corp:3128");
        assert_eq!(
            ProxyUrl::parse("http://proxy.corp").unwrap().to_string(),
            "http://proxy.corp:1080"
        );
        assert_eq!(
            ProxyUrl::parse("HTTPS://proxy.corp/").unwrap().to_string(),
            "https://proxy.corp:443"
        );
        assert_eq!(
            ProxyUrl::parse("http://[::1]:8080").unwrap().to_string(),
            "http://[::1]:8080"
        );
        assert!(ProxyUrl::parse("socks5://h:1080")
            .unwrap_err()
            .contains("SOCKS"));
        assert!(ProxyUrl::parse("ftp://h").is_err());
        assert!(ProxyUrl::parse("http://:8080").is_err());
        assert!(ProxyUrl::parse("http://h:99999").is_err());
    }

    #[test]
    fn credentials_never_show() {
        let p = ProxyUrl::parse("http://alice:pa%40ss@proxy.corp:3128").unwrap();
        assert_eq!(p.to_string(), "http://***@proxy.corp:3128");
        assert_eq!(format!("{p:?}"), "ProxyUrl(http://***@proxy.corp:3128)");
        let u = p.to_ureq();
        assert_eq!(u.username(), Some("alice"));
        assert_eq!(u.password(), Some("pa@ss"));
        let e = choose(
            "https",
            "api",
            false,
            Some("http://alice:s3cret@h:bad"),
            |_| None,
        )
        .unwrap_err();
        assert!(!e.contains("s3cret") && !e.contains("alice"), "{e}");
        assert_eq!(
            redact("https://u:p@h.example/x@y"),
            "https://***@h.example/x@y"
        );
        assert_eq!(redact("u:p@h:1"), "***@h:1");
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn chosen(scheme: &str, host: &str, vars: &[(&str, &str)]) -> ProxyChoice {
        let loopback = host == "localhost" || host == "127.0.0.1";
        choose(scheme, host, loopback, None, env(vars)).unwrap()
    }

    #[test]
    fn environment_as_curl_reads_it() {
        let p = |s: &str| Some(ProxyUrl::parse(s).unwrap());
        let c = chosen("https", "api.example.com", &[("HTTPS_PROXY", "p1:1")]);
        assert_eq!((c.proxy, c.why), (p("p1:1"), Why::Env("HTTPS_PROXY")));
        // Lowercase first.
        let c = chosen(
            "https",
            "api.example.com",
            &[("HTTPS_PROXY", "p1:1"), ("https_proxy", "p2:2")],
        );
        assert_eq!(c.why, Why::Env("https_proxy"));
        // http: http_proxy only, never HTTP_PROXY; then ALL_PROXY.
        let c = chosen("http", "api.example.com", &[("HTTP_PROXY", "p1:1")]);
        assert_eq!(c.why, Why::Unset);
        let c = chosen(
            "http",
            "api.example.com",
            &[("HTTP_PROXY", "p1:1"), ("ALL_PROXY", "p3:3")],
        );
        assert_eq!(c.why, Why::Env("ALL_PROXY"));
        // An https API ignores http_proxy.
        let c = chosen("https", "api.example.com", &[("http_proxy", "p1:1")]);
        assert_eq!(c.why, Why::Unset);
        // Empty is unset.
        let c = chosen("https", "api.example.com", &[("https_proxy", "")]);
        assert_eq!(c.why, Why::Unset);
        // --proxy wins over everything, NO_PROXY included; '' is direct.
        let c = choose(
            "https",
            "api.example.com",
            false,
            Some("p9:9"),
            env(&[("HTTPS_PROXY", "p1:1"), ("NO_PROXY", "*")]),
        )
        .unwrap();
        assert_eq!((c.proxy, c.why), (p("p9:9"), Why::Flag));
        let c = choose(
            "https",
            "h",
            false,
            Some(""),
            env(&[("HTTPS_PROXY", "p1:1")]),
        )
        .unwrap();
        assert_eq!((c.proxy, c.why), (None, Why::FlagOff));
        // A bad variable is an error naming it.
        let e = choose(
            "https",
            "h",
            false,
            None,
            env(&[("HTTPS_PROXY", "socks5://x")]),
        )
        .unwrap_err();
        assert!(e.starts_with("HTTPS_PROXY=socks5://x: SOCKS"), "{e}");
    }

    #[test]
    fn loopback_and_no_proxy_go_direct() {
        let c = chosen("https", "127.0.0.1", &[("HTTPS_PROXY", "p1:1")]);
        assert_eq!(
            (c.proxy, c.why),
            (
                None,
                Why::Loopback {
                    proxy_var: "HTTPS_PROXY"
                }
            )
        );
        let c = chosen(
            "https",
            "api.example.com",
            &[
                ("HTTPS_PROXY", "p1:1"),
                ("no_proxy", "other.org, example.com"),
            ],
        );
        assert_eq!(
            c.why,
            Why::NoProxy {
                proxy_var: "HTTPS_PROXY",
                list_var: "no_proxy"
            }
        );
        assert!(c.describe().unwrap().contains("no_proxy lists"));
    }

    #[test]
    fn no_proxy_lists() {
        for (list, host, want) in [
            ("*", "anything.example", true),
            ("example.com", "example.com", true),
            ("example.com", "api.example.com", true),
            ("example.com", "badexample.com", false),
            (".example.com", "example.com", true),
            (".example.com", "a.b.example.com", true),
            ("*.example.com", "api.example.com", true),
            ("EXAMPLE.com.", "Api.Example.COM.", true),
            ("other.org,  example.com", "api.example.com", true),
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.1.2.3", false),
            ("192.168.1.7", "192.168.1.7", true),
            ("::1", "[::1]", true),
            ("fd00::/8", "[fd12::1]", true),
            ("10.0.0.0/8", "ten.example", false),
            ("", "example.com", false),
        ] {
            assert_eq!(no_proxy_matches(list, host), want, "{list:?} {host:?}");
        }
    }

    #[test]
    fn refusals_in_words() {
        assert_eq!(
            describe_refusal("proxy server responded 403/403"),
            "the proxy refused the tunnel to the API (CONNECT answered HTTP 403)"
        );
        assert!(describe_refusal("proxy server responded 407/407").contains("credentials"));
        assert_eq!(
            describe_refusal("proxy server did not respond"),
            "the proxy failed: proxy server did not respond"
        );
    }
}
