//! The HTTP client: one ureq agent (connection pool) shared by all workers,
//! and a classification of every answer as DESIGN.md's table says.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use serde::Deserialize;
use ureq::http::header::CONTENT_TYPE;
use ureq::http::{HeaderName, HeaderValue};
use ureq::RequestBuilder;

use crate::model::{ConversationBody, MessageBody, StoredItem};

pub mod proxy;
pub mod tls;
mod transport;

pub use proxy::ProxyUrl;
use transport::{describe, Progress};

/// API credentials. `Debug` never prints them.
#[derive(Clone)]
pub struct Credentials {
    pub id: String,
    pub secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials { id: ***, secret: *** }")
    }
}

/// Why a string is not a usable API URL. Each holds the URL with any
/// `user:password@` shown as `***@`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{0:?}: expected a URL such as https://api.sandbox.asapp.com")]
    NotAUrl(String),
    #[error("{0:?}: no host")]
    NoHost(String),
    #[error("{0:?}: plain http is allowed only on loopback; use https so credentials and transcripts are encrypted (or --allow-insecure-http)")]
    PlainHttp(String),
    #[error("{url:?}: unsupported scheme {scheme:?}")]
    Scheme { url: String, scheme: String },
    #[error("{0:?}: no user:password@ here: credentials come from ASAPP_API_ID / ASAPP_API_SECRET or --credentials-file")]
    Userinfo(String),
}

/// A base URL that is HTTPS, or plain HTTP only on loopback (or when
/// allowed in so many words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUrl {
    base: String,
    https: bool,
    host: String,
    loopback: bool,
}

impl ApiUrl {
    /// HTTPS, or plain HTTP on loopback.
    pub fn parse(url: &str) -> Result<ApiUrl, UrlError> {
        ApiUrl::parse_with(url, false)
    }

    /// As [`ApiUrl::parse`]; `insecure_http` also takes plain HTTP to any
    /// host (`--allow-insecure-http`).
    pub fn parse_with(url: &str, insecure_http: bool) -> Result<ApiUrl, UrlError> {
        let url = url.trim().trim_end_matches('/');
        let shown = || proxy::redact(url);
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| UrlError::NotAUrl(shown()))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(UrlError::Userinfo(shown()));
        }
        if authority.is_empty() {
            return Err(UrlError::NoHost(shown()));
        }
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next().unwrap_or_default()
        } else {
            authority.rsplit_once(':').map_or(authority, |(h, _)| h)
        };
        if host.is_empty() {
            return Err(UrlError::NoHost(shown()));
        }
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false);
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" if loopback || insecure_http => false,
            "http" => return Err(UrlError::PlainHttp(shown())),
            other => {
                return Err(UrlError::Scheme {
                    url: shown(),
                    scheme: other.to_string(),
                })
            }
        };
        Ok(ApiUrl {
            base: url.to_string(),
            https,
            host: host.to_string(),
            loopback,
        })
    }

    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// The host, without brackets or port.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn as_str(&self) -> &str {
        &self.base
    }
}

/// How the client reaches the API: the certificate authorities it trusts
/// besides the system's roots (`--ca-cert`), and the proxy it goes
/// through, if any.
#[derive(Clone, Default)]
pub struct Network {
    pub extra_roots: Vec<ureq::tls::Certificate<'static>>,
    pub proxy: Option<ProxyUrl>,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("extra_roots", &self.extra_roots.len())
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// What an answer means for the message, per DESIGN.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200: stored (a message, or a conversation created or found), with its id.
    Created { id: String },
    /// 200 to a batch: every message stored; the answer has no ids.
    Accepted,
    /// 200 to a read-back: what the server holds of the conversation.
    Found { items: Vec<StoredItem> },
    /// 409: already persisted.
    Exists,
    /// 400, 404, 413, 422 and other 4xx: refused for good.
    Refused,
    /// 401, 403: the credentials are refused; stop the run.
    Unauthorized,
    /// 429: slow down and retry.
    Throttled { retry_after: Option<Duration> },
    /// 503: retried as 429 is, but a 5xx: never a sign of a spent quota.
    Unavailable { retry_after: Option<Duration> },
    /// 500 and other 5xx: retry a bounded number of times.
    ServerError,
    /// Provably not stored: no connection (connect, DNS, TLS, refused, a
    /// refused certificate), or the request was not completely written, so
    /// the server never had a whole body to store. Retry (DESIGN.md: a
    /// server that keeps failing so is down, exit 3).
    NotSent,
    /// The request went out and no answer came back: it may be stored.
    Lost,
}

/// One request's result with everything the report wants to say about it.
#[derive(Debug, Clone)]
pub struct Response {
    pub answer: Answer,
    pub http_status: Option<u16>,
    pub request_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "requestId")]
    request_id: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct Items {
    items: Vec<StoredItem>,
}

/// A 200 that carries a created thing's id.
fn created(body: &str) -> Option<Answer> {
    serde_json::from_str::<Created>(body)
        .ok()
        .map(|c| Answer::Created { id: c.id })
}

/// The longest answer body read: the API's answers are a few hundred
/// bytes, but a read-back holds a whole conversation.
const MAX_ANSWER: u64 = 64 * 1024;
const MAX_READ_BACK: u64 = 256 * 1024 * 1024;

/// Each connection's input and output buffers. ureq's default, 128 KiB each,
/// is a quarter of a gigabyte at 1,024 workers; the API's answers are a few
/// hundred bytes, and a larger message goes out in several writes.
const BUFFER: usize = 16 * 1024;

/// How long an idle connection is kept for reuse: shorter than the usual
/// server keep-alive timeouts (5 s in Node.js, 10 s in the emulator), so a
/// request is never written into a connection the server is closing just
/// then: that request would be lost without an answer, hence `uncertain`.
const MAX_IDLE_AGE: Duration = Duration::from_secs(4);

pub struct Client {
    agent: ureq::Agent,
    connector: transport::Connector,
    resolver: transport::Resolver,
    base: ApiUrl,
    credentials: Credentials,
    auth: Option<Auth>,
    proxy: Option<ProxyUrl>,
}

const API_ID: HeaderName = HeaderName::from_static("asapp-api-id");
const API_SECRET: HeaderName = HeaderName::from_static("asapp-api-secret");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The credentials as header values, made once per client (each worker's
/// fork makes its own): a request clones them, which counts a reference,
/// instead of checking and copying both strings. The secret is marked
/// sensitive, so that nothing that prints headers shows it.
struct Auth {
    id: HeaderValue,
    secret: HeaderValue,
}

impl Auth {
    /// `None` when a credential holds a character no header may carry
    /// (the command line refuses such credentials before any client).
    fn new(credentials: &Credentials) -> Option<Auth> {
        let id = HeaderValue::from_str(&credentials.id).ok()?;
        let mut secret = HeaderValue::from_str(&credentials.secret).ok()?;
        secret.set_sensitive(true);
        Some(Auth { id, secret })
    }

    /// `request` with the credentials in it; refused when they cannot go.
    fn add<B>(
        auth: Option<&Auth>,
        request: RequestBuilder<B>,
    ) -> Result<RequestBuilder<B>, Response> {
        match auth {
            Some(auth) => Ok(request
                .header(API_ID, &auth.id)
                .header(API_SECRET, &auth.secret)),
            None => Err(refused_locally(
                "the API credentials hold a control character, which no HTTP header may carry"
                    .into(),
            )),
        }
    }
}

impl Client {
    /// A client with the system's roots and no proxy. `pool` is how many
    /// threads send through it at once: ureq keeps only a few idle
    /// connections per host by default, and past that every request would
    /// open a new connection. (A run's workers each send through a
    /// [`Client::fork`] of their own.)
    pub fn new(base: ApiUrl, credentials: Credentials, pool: usize, timeout: Duration) -> Client {
        Client::with_network(base, credentials, pool, timeout, &Network::default())
    }

    /// As [`Client::new`], reaching the API as `network` says.
    pub fn with_network(
        base: ApiUrl,
        credentials: Credentials,
        pool: usize,
        timeout: Duration,
        network: &Network,
    ) -> Client {
        let idle = pool.max(1) * 2;
        let config = ureq::Agent::config_builder()
            // 4xx and 5xx are answers to classify, not errors.
            .http_status_as_error(false)
            .max_idle_connections(idle)
            .max_idle_connections_per_host(idle)
            .max_idle_age(MAX_IDLE_AGE)
            .input_buffer_size(BUFFER)
            .output_buffer_size(BUFFER)
            // An answer's head must fit in the input buffer.
            .max_response_header_size(BUFFER)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(Duration::from_secs(10).min(timeout)))
            .user_agent(concat!("transcript-import/", env!("CARGO_PKG_VERSION")))
            // The proxy chosen in `config` (ureq's own reading of the
            // environment differs from curl's). Through it, the connection
            // to the API is a CONNECT tunnel, TLS inside it end to end.
            .proxy(network.proxy.as_ref().map(ProxyUrl::to_ureq))
            // A POST answered with a redirect is not sent again elsewhere.
            .max_redirects(0);
        // Reading the system's certificate store takes a few milliseconds:
        // only TLS needs it, to an https API or an https proxy.
        let tls =
            base.scheme() == "https" || network.proxy.as_ref().is_some_and(ProxyUrl::is_https);
        let config = if tls {
            config.tls_config(tls::config(&network.extra_roots))
        } else {
            config
        }
        .build();
        let connector = transport::Connector::default();
        let resolver = transport::Resolver::default();
        let agent = ureq::Agent::with_parts(config, connector.clone(), resolver.clone());
        Client {
            agent,
            connector,
            resolver,
            base,
            auth: Auth::new(&credentials),
            credentials,
            proxy: network.proxy.clone(),
        }
    }

    /// The same client with idle connections of its own. Each worker sends
    /// through its own: a shared pool is a lock every request takes twice,
    /// and its upkeep under that lock scans every idle connection.
    pub fn fork(&self) -> Client {
        let agent = ureq::Agent::with_parts(
            self.agent.config().clone(),
            self.connector.clone(),
            self.resolver.clone(),
        );
        Client {
            agent,
            connector: self.connector.clone(),
            resolver: self.resolver.clone(),
            base: self.base.clone(),
            auth: Auth::new(&self.credentials),
            credentials: self.credentials.clone(),
            proxy: self.proxy.clone(),
        }
    }

    pub fn base(&self) -> &ApiUrl {
        &self.base
    }

    /// `createMessage`. The conversation id is a `ConversationId` (the API's
    /// pattern), so it needs no escaping in the path.
    pub fn create_message(&self, conversation_id: &str, body: &MessageBody) -> Response {
        let url = format!(
            "{}/conversation/v1/conversations/{}/messages",
            self.base.as_str(),
            conversation_id
        );
        self.post(&url, body, created)
    }

    /// `createBatchMessages`: up to 300 messages, stored in order, all or
    /// none. Its answer has no ids.
    pub fn create_batch(&self, conversation_id: &str, bodies: &[MessageBody]) -> Response {
        #[derive(serde::Serialize)]
        struct Batch<'a> {
            messages: &'a [MessageBody],
        }
        let url = format!(
            "{}/conversation/v1/conversations/{}/messages/batch",
            self.base.as_str(),
            conversation_id
        );
        self.post(&url, &Batch { messages: bodies }, |_| {
            Some(Answer::Accepted)
        })
    }

    /// `createOrUpdateConversation`, keyed by the external id: asking again
    /// gets the same id.
    pub fn create_conversation(&self, body: &ConversationBody) -> Response {
        let url = format!("{}/conversation/v1/conversations", self.base.as_str());
        self.post(&url, body, created)
    }

    /// `getMessagesByExternalId`: what the server holds of a conversation.
    pub fn read_back(&self, external_id: &str) -> Response {
        let url = format!(
            "{}/conversation/v1/conversation/messages",
            self.base.as_str()
        );
        let request = self.agent.get(&url).query("externalId", external_id);
        let request = match Auth::add(self.auth.as_ref(), request) {
            Ok(request) => request,
            Err(refused) => return refused,
        };
        transport::begin();
        let result = request.call();
        classify(result, self.via(), MAX_READ_BACK, |body| {
            serde_json::from_str::<Items>(body)
                .ok()
                .map(|i| Answer::Found { items: i.items })
        })
    }

    /// How far this thread's last request got, and through which proxy.
    fn via(&self) -> Via<'_> {
        Via {
            progress: transport::progress(),
            proxy: self.proxy.as_ref(),
        }
    }

    /// POST `body` as JSON; a 200 means what `ok` reads in its answer.
    fn post(
        &self,
        url: &str,
        body: &impl serde::Serialize,
        ok: impl Fn(&str) -> Option<Answer>,
    ) -> Response {
        let json = match serde_json::to_vec(body) {
            Ok(json) => json,
            Err(e) => return refused_locally(format!("cannot encode the request: {e}")),
        };
        let request = self.agent.post(url).header(CONTENT_TYPE, JSON);
        let request = match Auth::add(self.auth.as_ref(), request) {
            Ok(request) => request,
            Err(refused) => return refused,
        };
        transport::begin();
        let result = request.send(&json[..]);
        classify(result, self.via(), MAX_ANSWER, ok)
    }
}

/// A request that could not be made at all, for a reason that will not
/// change by retrying.
fn refused_locally(message: String) -> Response {
    Response {
        answer: Answer::Refused,
        http_status: None,
        request_id: None,
        error_code: None,
        error_message: Some(message),
    }
}

type HttpResponse = ureq::http::Response<ureq::Body>;

fn header_request_id(r: &HttpResponse) -> Option<String> {
    header(r, "x-request-id").map(str::to_string)
}

fn header<'a>(r: &'a HttpResponse, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Read at most `max` bytes of an answer's body.
fn read_body(r: HttpResponse, max: u64) -> Result<String, ureq::Error> {
    let mut s = String::new();
    r.into_body()
        .into_reader()
        .take(max)
        .read_to_string(&mut s)
        .map_err(ureq::Error::Io)?;
    Ok(s)
}

/// How far a request got ([`Progress`]), and the proxy it went through.
struct Via<'a> {
    progress: Progress,
    proxy: Option<&'a ProxyUrl>,
}

/// What came of a request: an answer, or an error after `via.progress`.
fn classify(
    result: Result<HttpResponse, ureq::Error>,
    via: Via<'_>,
    max: u64,
    parse: impl Fn(&str) -> Option<Answer>,
) -> Response {
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            let (answer, message) = failure(&e, &via);
            return Response {
                answer,
                http_status: None,
                request_id: None,
                error_code: None,
                error_message: Some(message),
            };
        }
    };
    let status = r.status().as_u16();
    let request_id = header_request_id(&r);
    // As the API documents only 200 for success, any other status below
    // 400 counts as success only with an id in it.
    if status < 400 {
        return match read_body(r, max) {
            Ok(body) => match parse(&body) {
                Some(answer) => Response {
                    answer,
                    http_status: Some(status),
                    request_id,
                    error_code: None,
                    error_message: None,
                },
                // A success we cannot read: the message is stored, we
                // do not know its id. That is as uncertain as no answer.
                None => Response {
                    answer: Answer::Lost,
                    http_status: Some(status),
                    request_id,
                    error_code: None,
                    error_message: Some(format!(
                        "HTTP {status} with an answer that cannot be read"
                    )),
                },
            },
            Err(e) => Response {
                answer: Answer::Lost,
                http_status: Some(status),
                request_id,
                error_code: None,
                error_message: Some(format!("answer lost while reading it: {}", describe(&e))),
            },
        };
    }
    let retry_after = header(&r, "retry-after").and_then(parse_retry_after);
    let mut request_id = request_id;
    let body = read_body(r, MAX_ANSWER).unwrap_or_default();
    let (mut error_code, mut error_message) = (None, None);
    if let Ok(env) = serde_json::from_str::<Envelope>(&body) {
        request_id = env.error.request_id.or(request_id);
        error_code = env.error.code;
        error_message = env.error.message;
    }
    let answer = match status {
        409 => Answer::Exists,
        401 | 403 => Answer::Unauthorized,
        429 => Answer::Throttled { retry_after },
        503 => Answer::Unavailable { retry_after },
        500..=599 => Answer::ServerError,
        _ => Answer::Refused,
    };
    Response {
        answer,
        http_status: Some(status),
        request_id,
        error_code,
        error_message: error_message.or_else(|| Some(format!("HTTP {status}"))),
    }
}

/// What a failed request means, and the words for the report: lost only
/// when every byte of it was written. Before that the server cannot have
/// had a whole body to store, whatever the error (no connection, a write
/// that failed or ran out of time, a deadline between two writes). The URL
/// and headers never appear: ureq's errors carry neither credentials nor
/// paths here, and the words are our own. A proxy is named without its
/// credentials.
fn failure(e: &ureq::Error, via: &Via<'_>) -> (Answer, String) {
    let progress = &via.progress;
    let e = describe(e);
    if progress.whole() {
        return (Answer::Lost, format!("no answer: {e}"));
    }
    let message = match (&progress.write_error, via.proxy) {
        (Some(write), _) => {
            format!("not sent: the request was cut short ({write}) and no answer came ({e})")
        }
        (None, _) if progress.started() => format!("not sent: the request was cut short: {e}"),
        (None, Some(proxy)) if progress.proxy_failed => {
            format!("not sent: cannot connect to the proxy {proxy}: {e}")
        }
        (None, Some(proxy)) if progress.connect_failed => {
            format!("not sent: cannot connect through the proxy {proxy}: {e}")
        }
        (None, None) if progress.connect_failed => format!("not sent: cannot connect: {e}"),
        (None, _) => format!("not sent: {e}"),
    };
    (Answer::NotSent, message)
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs));
        }
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_print() {
        let c = Credentials {
            id: "my-id".into(),
            secret: "hunter2".into(),
        };
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2") && !s.contains("my-id"), "{s}");
    }

    #[test]
    fn api_url_requires_tls_off_loopback() {
        assert!(ApiUrl::parse("https://api.sandbox.asapp.com").is_ok());
        assert!(ApiUrl::parse("http://api.sandbox.asapp.com").is_err());
        assert!(ApiUrl::parse("http://127.0.0.1:8080/")
            .unwrap()
            .is_loopback());
        assert!(ApiUrl::parse("http://localhost:1").unwrap().is_loopback());
        assert!(ApiUrl::parse("http://[::1]:9").unwrap().is_loopback());
        assert!(ApiUrl::parse("ftp://x").is_err());
        assert!(ApiUrl::parse("nonsense").is_err());
        assert_eq!(
            ApiUrl::parse("https://h.example/").unwrap().as_str(),
            "https://h.example"
        );
    }

    #[test]
    fn retry_after_both_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let future = chrono::Utc::now() + chrono::Duration::seconds(30);
        let d = parse_retry_after(&future.to_rfc2822()).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    fn client(url: &str, timeout: Duration) -> Client {
        let credentials = Credentials {
            id: "id".into(),
            secret: "secret".into(),
        };
        Client::new(ApiUrl::parse(url).unwrap(), credentials, 1, timeout)
    }

    fn message(len: usize) -> MessageBody {
        MessageBody {
            text: "x".repeat(len),
            sender: crate::model::Sender {
                role: crate::model::Role::Agent,
                external_id: "agent-1".into(),
            },
            timestamp: "2024-03-01T10:00:00Z".into(),
        }
    }

    /// Far more than the kernel buffers for a peer that does not read (a few
    /// MB), so a write blocks or fails before the body is all out.
    const LARGER_THAN_SOCKET_BUFFERS: usize = 16 * 1024 * 1024;

    // The emulator cannot misbehave in the ways below (it always reads the
    // head and answers or drops whole requests), so these peers are plain
    // sockets on loopback.

    #[test]
    fn refused_connection_is_not_sent() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let r = client(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5))
            .create_message("ABC", &message(10));
        assert_eq!(r.answer, Answer::NotSent, "{r:?}");
        let m = r.error_message.unwrap();
        assert!(
            m.starts_with("not sent: cannot connect: Connection refused"),
            "{m}"
        );
        assert!(!m.contains("secret"), "{m}");
    }

    #[test]
    fn credentials_no_header_may_carry_are_refused_here_and_never_sent() {
        let emu = crate::emulator::Emulator::start(Default::default()).unwrap();
        let client = Client::new(
            ApiUrl::parse(&emu.url()).unwrap(),
            Credentials {
                id: "bench".into(),
                secret: "hunter2\r".into(),
            },
            1,
            Duration::from_secs(5),
        );
        for r in [
            client.create_message("ABC", &message(10)),
            client.fork().read_back("ABC"),
        ] {
            assert_eq!(r.answer, Answer::Refused, "{r:?}");
            let m = r.error_message.unwrap();
            assert!(
                m.contains("control character") && !m.contains("hunter2"),
                "{m}"
            );
        }
        assert_eq!(emu.stats().requests_total, 0);
    }

    #[test]
    fn failed_tls_handshake_is_not_sent() {
        // The emulator speaks plain HTTP: the handshake cannot succeed.
        let emu = crate::emulator::Emulator::start(Default::default()).unwrap();
        let url = emu.url().replace("http://", "https://");
        let r = client(&url, Duration::from_secs(5)).create_message("ABC", &message(10));
        assert_eq!(r.answer, Answer::NotSent, "{r:?}");
        let m = r.error_message.unwrap();
        assert!(m.starts_with("not sent: cannot connect: "), "{m}");
        assert_eq!(emu.stats().requests_total, 0);
    }

    #[test]
    fn write_cut_short_without_an_answer_is_not_sent() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let peer = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut head = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut head);
            // Closed with the body unread: the kernel resets the connection.
        });
        let r = client(&url, Duration::from_secs(20))
            .create_message("ABC", &message(LARGER_THAN_SOCKET_BUFFERS));
        peer.join().unwrap();
        assert_eq!(r.answer, Answer::NotSent, "{r:?}");
        let m = r.error_message.unwrap();
        assert!(
            m.starts_with("not sent: the request was cut short ("),
            "{m}"
        );
    }

    #[test]
    fn write_that_times_out_is_not_sent() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            // Accepts, then never reads nor answers until the client is done.
            let (_s, _) = l.accept().unwrap();
            let _ = wait.recv();
        });
        let r = client(&url, Duration::from_secs(1))
            .create_message("ABC", &message(LARGER_THAN_SOCKET_BUFFERS));
        let _ = done.send(());
        peer.join().unwrap();
        assert_eq!(r.answer, Answer::NotSent, "{r:?}");
        let m = r.error_message.unwrap();
        assert!(
            m.starts_with("not sent: the request was cut short: timed out"),
            "{m}"
        );
    }

    #[test]
    fn whole_request_without_an_answer_is_lost() {
        let emu = crate::emulator::Emulator::start(crate::emulator::Config {
            drop_before: 1.0,
            ..Default::default()
        })
        .unwrap();
        let r = client(&emu.url(), Duration::from_secs(5)).create_message("ABC", &message(10));
        assert_eq!(r.answer, Answer::Lost, "{r:?}");
        assert!(r.error_message.unwrap().starts_with("no answer:"));
    }

    #[test]
    fn answer_before_the_body_is_written_is_honoured() {
        // A server that answers 413 and closes at once, with the body unread.
        let emu = crate::emulator::Emulator::start(crate::emulator::Config {
            linger: false,
            ..Default::default()
        })
        .unwrap();
        let r = client(&emu.url(), Duration::from_secs(20))
            .create_message("ABC", &message(LARGER_THAN_SOCKET_BUFFERS));
        assert_eq!(r.answer, Answer::Refused, "{r:?}");
        assert_eq!(r.http_status, Some(413));
        assert_eq!(r.error_code.as_deref(), Some("413-01"));
        assert_eq!(
            r.error_message.as_deref(),
            Some("request body over 65536 bytes")
        );
        assert_eq!(emu.stats().stored, 0);
    }

    #[test]
    fn pooled_connection_the_server_closed_is_not_reused() {
        // The emulator closes a connection idle past its head timeout.
        let emu = crate::emulator::Emulator::start(crate::emulator::Config {
            header_read_timeout: Duration::from_millis(200),
            ..Default::default()
        })
        .unwrap();
        let c = client(&emu.url(), Duration::from_secs(5));
        for _ in 0..3 {
            let r = c.create_message("ABC", &message(10));
            assert!(matches!(r.answer, Answer::Created { .. }), "{r:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
        assert_eq!(emu.stats().stored, 3);
    }

    #[test]
    fn statuses_are_classified_from_the_answer() {
        let emu = crate::emulator::Emulator::start(crate::emulator::Config {
            unknown: vec!["GONE".into()],
            ..Default::default()
        })
        .unwrap();
        let c = client(&emu.url(), Duration::from_secs(5));
        let r = c.create_message("ABC", &message(10));
        assert!(
            matches!(r.answer, Answer::Created { ref id } if id.len() == 26),
            "{r:?}"
        );
        let r = c.create_message("GONE", &message(10));
        assert_eq!((r.answer, r.http_status), (Answer::Refused, Some(404)));
        let r = c.create_message("ABC", &message(0));
        assert_eq!((r.answer, r.http_status), (Answer::Refused, Some(422)));
        let wrong = Client::new(
            ApiUrl::parse(&emu.url()).unwrap(),
            Credentials {
                id: String::new(),
                secret: "s".into(),
            },
            1,
            Duration::from_secs(5),
        );
        let r = wrong.create_message("ABC", &message(10));
        assert_eq!((r.answer, r.http_status), (Answer::Unauthorized, Some(401)));
    }

    // ------------------------------------------------------ TLS and proxies

    fn tls_emulator(config: crate::emulator::Config) -> crate::emulator::Emulator {
        let tls = config.tls.clone().unwrap_or_default();
        crate::emulator::Emulator::start(crate::emulator::Config {
            tls: Some(tls),
            ..config
        })
        .unwrap()
    }

    /// The emulator's CA, as `--ca-cert` would load it.
    fn trusting(emu: &crate::emulator::Emulator) -> Network {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, emu.ca_pem().unwrap()).unwrap();
        Network {
            extra_roots: tls::load_ca(&path).unwrap(),
            proxy: None,
        }
    }

    fn client_with(url: &str, network: &Network) -> Client {
        let credentials = Credentials {
            id: "id".into(),
            secret: "secret".into(),
        };
        let url = ApiUrl::parse(url).unwrap();
        Client::with_network(url, credentials, 1, Duration::from_secs(5), network)
    }

    #[test]
    fn https_with_the_emulators_ca_is_trusted_by_ip_and_by_name() {
        let emu = tls_emulator(Default::default());
        let network = trusting(&emu);
        let by_name = format!("https://localhost:{}", emu.addr().port());
        for url in [emu.url(), by_name] {
            assert!(url.starts_with("https://"), "{url}");
            let r = client_with(&url, &network).create_message("ABC", &message(10));
            assert!(matches!(r.answer, Answer::Created { .. }), "{url}: {r:?}");
        }
        assert_eq!(emu.stats().stored, 2);
    }

    #[test]
    fn a_certificate_from_an_unknown_ca_is_not_sent_and_says_so() {
        let emu = tls_emulator(Default::default());
        let r = client_with(&emu.url(), &Network::default()).create_message("ABC", &message(10));
        assert_eq!(r.answer, Answer::NotSent, "{r:?}");
        let m = r.error_message.unwrap();
        assert!(
            m.starts_with("not sent: cannot connect: TLS: the server's certificate is not trusted"),
            "{m}"
        );
        assert!(m.contains("--ca-cert"), "{m}");
        // Another emulator's CA does not do either.
        let other = tls_emulator(Default::default());
        let r = client_with(&emu.url(), &trusting(&other)).create_message("ABC", &message(10));
        assert_eq!(r.answer, Answer::NotSent, "{r:?}");
        assert_eq!(emu.stats().requests_total, 0);
    }

    #[test]
    fn a_certificate_for_another_name_is_not_sent_and_says_so() {
        let emu = tls_emulator(crate::emulator::Config {
            tls: Some(crate::emulator::Tls {
                names: vec!["elsewhere.test".into()],
            }),
            ..Default::default()
        });
        let r = client_with(&emu.url(), &trusting(&emu)).create_message("ABC", &message(10));
        assert_eq!(r.answer, Answer::NotSent, "{r:?}");
        let m = r.error_message.unwrap();
        assert!(
            m.contains("TLS: the server's certificate is not valid for 127.0.0.1 (it names elsewhere.test)"),
            "{m}"
        );
    }

    /// A CONNECT proxy on loopback: answers `status` to every CONNECT,
    /// and on 200 dials the target and relays bytes both ways. What it
    /// was asked to connect to is in `connects`.
    struct TestProxy {
        url: String,
        connects: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }

    fn test_proxy(status: u16) -> TestProxy {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connects = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&connects);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let seen = std::sync::Arc::clone(&seen);
                std::thread::spawn(move || {
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
                        head.push(line);
                    }
                    let target = head[0].split(' ').nth(1).unwrap_or_default().to_string();
                    seen.lock().unwrap().push(target.clone());
                    let mut client = client;
                    if status != 200 {
                        let _ = write!(client, "HTTP/1.1 {status} No\r\ncontent-length: 0\r\n\r\n");
                        return;
                    }
                    let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                        let _ = write!(client, "HTTP/1.1 502 Bad Gateway\r\n\r\n");
                        return;
                    };
                    let _ = write!(client, "HTTP/1.1 200 Connection established\r\n\r\n");
                    let (mut up_r, mut up_w) = (upstream.try_clone().unwrap(), upstream);
                    let mut down_w = client;
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut reader, &mut up_w);
                        let _ = up_w.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut up_r, &mut down_w);
                    let _ = down_w.shutdown(std::net::Shutdown::Both);
                    let _ = up.join();
                });
            }
        });
        TestProxy { url, connects }
    }

    fn via_proxy(proxy: &TestProxy, mut network: Network) -> Network {
        network.proxy = Some(ProxyUrl::parse(&proxy.url).unwrap());
        network
    }

    #[test]
    fn https_through_a_connect_proxy() {
        let emu = tls_emulator(Default::default());
        let proxy = test_proxy(200);
        let network = via_proxy(&proxy, trusting(&emu));
        let c = client_with(&emu.url(), &network);
        for _ in 0..3 {
            let r = c.create_message("ABC", &message(10));
            assert!(matches!(r.answer, Answer::Created { .. }), "{r:?}");
        }
        assert_eq!(emu.stats().stored, 3);
        let connects = proxy.connects.lock().unwrap().clone();
        // One tunnel, kept and reused like a direct connection.
        assert_eq!(connects, [emu.addr().to_string()]);
    }

    #[test]
    fn a_proxy_that_refuses_the_tunnel_is_not_sent() {
        // The proxy read and answered the CONNECT request: bytes went out
        // on the way to the API, none of them the request's.
        let emu = tls_emulator(Default::default());
        let proxy = test_proxy(403);
        let r = client_with(&emu.url(), &via_proxy(&proxy, trusting(&emu)))
            .create_message("ABC", &message(10));
        assert_eq!(r.answer, Answer::NotSent, "{r:?}");
        let m = r.error_message.unwrap();
        assert!(
            m.starts_with("not sent: cannot connect through the proxy http://127.0.0.1:"),
            "{m}"
        );
        assert!(
            m.ends_with("the proxy refused the tunnel to the API (CONNECT answered HTTP 403)"),
            "{m}"
        );
        assert_eq!(emu.stats().requests_total, 0);
    }

    #[test]
    fn a_proxy_that_cannot_be_reached_is_named() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let network = Network {
            extra_roots: Vec::new(),
            proxy: Some(ProxyUrl::parse(&format!("http://u:hunter2@127.0.0.1:{port}")).unwrap()),
        };
        let r = client_with("https://127.0.0.1:9", &network).create_message("ABC", &message(10));
        assert_eq!(r.answer, Answer::NotSent, "{r:?}");
        let m = r.error_message.unwrap();
        assert!(
            m.starts_with(&format!(
                "not sent: cannot connect to the proxy http://***@127.0.0.1:{port}: Connection refused"
            )),
            "{m}"
        );
        assert!(!m.contains("hunter2"), "{m}");
    }

    #[test]
    fn through_a_proxy_a_whole_request_without_an_answer_is_lost() {
        // Counting goes on inside the tunnel: the request was written
        // whole, so the missing answer makes it uncertain, as direct.
        let emu = tls_emulator(crate::emulator::Config {
            drop_before: 1.0,
            ..Default::default()
        });
        let proxy = test_proxy(200);
        let r = client_with(&emu.url(), &via_proxy(&proxy, trusting(&emu)))
            .create_message("ABC", &message(10));
        assert_eq!(r.answer, Answer::Lost, "{r:?}");
        assert!(r.error_message.unwrap().starts_with("no answer:"));
    }

    #[test]
    fn through_a_proxy_a_refused_certificate_is_not_sent() {
        let emu = tls_emulator(Default::default());
        let proxy = test_proxy(200);
        let r = client_with(&emu.url(), &via_proxy(&proxy, Network::default()))
            .create_message("ABC", &message(10));
        assert_eq!(r.answer, Answer::NotSent, "{r:?}");
        let m = r.error_message.unwrap();
        assert!(
            m.contains("TLS: the server's certificate is not trusted"),
            "{m}"
        );
        assert_eq!(emu.stats().requests_total, 0);
    }
}
