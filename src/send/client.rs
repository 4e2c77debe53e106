//! The HTTP client: one ureq agent (connection pool) shared by all workers,
//! and a classification of every answer as DESIGN.md's table says.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use serde::Deserialize;

use crate::model::{ConversationBody, MessageBody, StoredItem};

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

/// A base URL that is HTTPS, or plain HTTP only on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUrl {
    base: String,
    loopback: bool,
}

impl ApiUrl {
    pub fn parse(url: &str) -> Result<ApiUrl, String> {
        let url = url.trim().trim_end_matches('/');
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!("{url:?}: expected a URL such as https://api.sandbox.asapp.com")
        })?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next().unwrap_or_default()
        } else {
            authority.rsplit_once(':').map_or(authority, |(h, _)| h)
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false);
        match scheme.to_ascii_lowercase().as_str() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(format!(
                    "{url:?}: plain http is allowed only on loopback; use https so credentials and transcripts are encrypted"
                ))
            }
            other => return Err(format!("{url:?}: unsupported scheme {other:?}")),
        }
        Ok(ApiUrl {
            base: url.to_string(),
            loopback,
        })
    }

    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    pub fn as_str(&self) -> &str {
        &self.base
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
    /// 429, 503: slow down and retry.
    Throttled { retry_after: Option<Duration> },
    /// 500 and other 5xx: retry a bounded number of times.
    ServerError,
    /// Connect, DNS or TLS failure: nothing was sent; retry.
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

pub struct Client {
    agent: ureq::Agent,
    base: ApiUrl,
    credentials: Credentials,
}

impl Client {
    /// `pool` is the number of workers: ureq keeps only a few idle
    /// connections per host by default, and past that every request would
    /// open a new connection.
    pub fn new(base: ApiUrl, credentials: Credentials, pool: usize, timeout: Duration) -> Client {
        let agent = ureq::AgentBuilder::new()
            .max_idle_connections(pool.max(1) * 2)
            .max_idle_connections_per_host(pool.max(1) * 2)
            .timeout_connect(Duration::from_secs(10).min(timeout))
            .timeout(timeout)
            .user_agent(concat!("transcript-import/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent,
            base,
            credentials,
        }
    }

    pub fn base(&self) -> &ApiUrl {
        &self.base
    }

    /// `createMessage`. The conversation id has been validated against
    /// `^[A-Z0-9]+$`, so it needs no escaping in the path.
    pub fn create_message(&self, conversation_id: &str, body: &MessageBody) -> Response {
        let url = format!(
            "{}/conversation/v1/conversations/{}/messages",
            self.base.as_str(),
            conversation_id
        );
        classify(self.post(&url, body), MAX_ANSWER, created)
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
        classify(
            self.post(&url, &Batch { messages: bodies }),
            MAX_ANSWER,
            |_| Some(Answer::Accepted),
        )
    }

    /// `createOrUpdateConversation`, keyed by the external id: asking again
    /// gets the same id.
    pub fn create_conversation(&self, body: &ConversationBody) -> Response {
        let url = format!("{}/conversation/v1/conversations", self.base.as_str());
        classify(self.post(&url, body), MAX_ANSWER, created)
    }

    /// `getMessagesByExternalId`: what the server holds of a conversation.
    pub fn read_back(&self, external_id: &str) -> Response {
        let url = format!(
            "{}/conversation/v1/conversation/messages",
            self.base.as_str()
        );
        let result = self
            .agent
            .get(&url)
            .query("externalId", external_id)
            .set("asapp-api-id", &self.credentials.id)
            .set("asapp-api-secret", &self.credentials.secret)
            .call();
        classify(result, MAX_READ_BACK, |body| {
            serde_json::from_str::<Items>(body)
                .ok()
                .map(|i| Answer::Found { items: i.items })
        })
    }

    #[allow(clippy::result_large_err)] // ureq's own error type
    fn post(&self, url: &str, body: &impl serde::Serialize) -> Result<ureq::Response, ureq::Error> {
        self.agent
            .post(url)
            .set("asapp-api-id", &self.credentials.id)
            .set("asapp-api-secret", &self.credentials.secret)
            .set("content-type", "application/json")
            .send_json(body)
    }
}

fn header_request_id(r: &ureq::Response) -> Option<String> {
    r.header("x-request-id").map(str::to_string)
}

/// Read at most 64 KiB of an answer's body.
/// The longest answer read: the API's answers are a few hundred bytes,
/// but a read-back holds a whole conversation.
const MAX_ANSWER: u64 = 64 * 1024;
const MAX_READ_BACK: u64 = 256 * 1024 * 1024;

/// Read at most `max` bytes of an answer's body.
fn read_body(r: ureq::Response, max: u64) -> std::io::Result<String> {
    let mut s = String::new();
    r.into_reader().take(max).read_to_string(&mut s)?;
    Ok(s)
}

fn classify(
    result: Result<ureq::Response, ureq::Error>,
    max: u64,
    parse: impl Fn(&str) -> Option<Answer>,
) -> Response {
    match result {
        Ok(r) => {
            let status = r.status();
            let request_id = header_request_id(&r);
            match read_body(r, max) {
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
                    error_message: Some(format!("answer lost while reading it: {e}")),
                },
            }
        }
        Err(ureq::Error::Status(status, r)) => {
            let retry_after = r.header("retry-after").and_then(parse_retry_after);
            let mut request_id = header_request_id(&r);
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
                429 | 503 => Answer::Throttled { retry_after },
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
        Err(ureq::Error::Transport(t)) => {
            use ureq::ErrorKind::*;
            // Only failures before a connection exists prove nothing was sent
            // (ureq reports a TLS handshake failure as ConnectionFailed too).
            let answer = match t.kind() {
                Dns | ConnectionFailed | InvalidUrl | UnknownScheme | ProxyConnect => {
                    Answer::NotSent
                }
                _ => Answer::Lost,
            };
            Response {
                answer,
                http_status: None,
                request_id: None,
                error_code: None,
                error_message: Some(transport_message(&t)),
            }
        }
    }
}

/// ureq's transport errors include the URL; keep it (it carries no secret)
/// but not the whole error chain formatting noise.
fn transport_message(t: &ureq::Transport) -> String {
    let mut s = t.kind().to_string();
    if let Some(m) = t.message() {
        s.push_str(": ");
        s.push_str(m);
    }
    if let Some(src) = std::error::Error::source(t) {
        s.push_str(": ");
        s.push_str(&src.to_string());
    }
    s
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
}
