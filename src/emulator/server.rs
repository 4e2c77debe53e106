//! The HTTP side: routing, the order in which checks and faults apply, and
//! the answers, every one with an `x-request-id` header and errors in the
//! spec's envelope.
//!
//! An API request goes through, in this order: in-flight counting (message
//! endpoints), latency, the body limit (413), routing (404, 405), auth (401),
//! the daily quota and the rate limit (429), injected faults (429, 503, 500,
//! drop before storing), then the endpoint itself (400, 404, 422, 409, 200,
//! drop after storing). `/_emulator/*` skips latency, limits and faults.
//!
//! A dropped connection is a service future that returns `Err`: hyper then
//! closes the connection without writing a byte of response.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use ulid::Ulid;

use super::limits::{retry_after_secs, DailyQuota, TokenBucket};
use super::schema::{self, BodyError};
use super::state::{State, Stored, StoredMessage};
use super::Config;
use crate::model::Sender;

/// How long a client may take to send its body once the head is in.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// After a 413, how long and how much of the rest of the body is read and
/// discarded before the connection closes (a lingering close, as HTTP
/// servers do it). A socket closed with unread data sends a reset instead
/// of a plain close, and a reset can make the client's kernel drop the
/// answer before the client, still writing its body, ever reads it.
const LINGER_TIME: Duration = Duration::from_secs(10);
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// The service's error: hyper closes the connection without an answer.
#[derive(Debug)]
pub struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

type Answer = Result<Response<Full<Bytes>>, Dropped>;

/// Everything a request needs, shared by all connections.
pub struct Shared {
    pub state: State,
    config: Config,
    unknown: HashSet<String>,
    rng: Option<Mutex<StdRng>>,
    bucket: Option<Mutex<TokenBucket>>,
    quota: Option<Mutex<DailyQuota>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The time of day the daily quota goes by.
fn quota_now(config: &Config) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + config.quota_clock_offset
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        let random = config.jitter > Duration::ZERO
            || config.error_429 > 0.0
            || config.error_503 > 0.0
            || config.error_500 > 0.0
            || config.drop_before > 0.0
            || config.drop_after > 0.0;
        let rng = random.then(|| {
            Mutex::new(match config.seed {
                Some(seed) => StdRng::seed_from_u64(seed),
                None => rand::make_rng(),
            })
        });
        Shared {
            state: State::default(),
            unknown: config.unknown.iter().cloned().collect(),
            rng,
            bucket: config
                .rate_limit
                .map(|r| Mutex::new(TokenBucket::new(r, Instant::now()))),
            quota: config
                .daily_quota
                .map(|q| Mutex::new(DailyQuota::new(q, quota_now(&config)))),
            config,
        }
    }

    /// `POST /_emulator/reset-quota`: start the day over.
    pub fn reset_quota(&self) {
        if let Some(q) = &self.quota {
            lock(q).reset(quota_now(&self.config));
        }
    }
}

/// Accept connections until `shutdown` fires; with `tls`, each completes
/// a TLS handshake first (within the head's timeout) or is closed.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::clone(&shared);
                    let builder = Arc::clone(&builder);
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let timeout = shared.config.header_read_timeout;
                        let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                        // Errors here are the client's (reset, timeout, a
                        // certificate it refused) or our own drops: the
                        // connection is closed either way.
                        match tls {
                            None => {
                                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                            }
                            Some(tls) => {
                                let accepted = tokio::time::timeout(timeout, tls.accept(stream)).await;
                                if let Ok(Ok(stream)) = accepted {
                                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                                }
                            }
                        }
                    });
                }
                // Out of file descriptors and the like: wait, then accept again.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    CreateMessage(&'a str),
    CreateBatch(&'a str),
    CreateConversation,
    MessagesByExternalId,
    Stats,
    Messages,
    ResetQuota,
    NotFound,
    MethodNotAllowed(&'static str),
}

fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    let (route, allow) = match path {
        "/conversation/v1/conversations" => (Route::CreateConversation, "POST"),
        "/conversation/v1/conversation/messages" => (Route::MessagesByExternalId, "GET"),
        "/_emulator/stats" => (Route::Stats, "GET"),
        "/_emulator/messages" => (Route::Messages, "GET"),
        "/_emulator/reset-quota" => (Route::ResetQuota, "POST"),
        _ => match path.strip_prefix("/conversation/v1/conversations/") {
            Some(rest) => {
                if let Some(id) = rest.strip_suffix("/messages") {
                    (Route::CreateMessage(id), "POST")
                } else if let Some(id) = rest.strip_suffix("/messages/batch") {
                    (Route::CreateBatch(id), "POST")
                } else {
                    return Route::NotFound;
                }
            }
            None => return Route::NotFound,
        },
    };
    if method.as_str() == allow {
        route
    } else {
        Route::MethodNotAllowed(allow)
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Answer {
    let rid = Ulid::new().to_string();
    let (parts, body) = req.into_parts();
    let route = route(&parts.method, parts.uri.path());
    if parts.uri.path().starts_with("/_emulator/") {
        return Ok(admin(&shared, route, body, &rid).await);
    }
    shared.state.requests_total.fetch_add(1, Ordering::Relaxed);
    let answer = api(
        &shared,
        route,
        &parts.headers,
        parts.uri.query(),
        body,
        &rid,
    )
    .await;
    if let Ok(resp) = &answer {
        shared.state.answered(resp.status().as_u16());
    }
    answer
}

async fn admin(
    shared: &Shared,
    route: Route<'_>,
    body: Incoming,
    rid: &str,
) -> Response<Full<Bytes>> {
    // Drain whatever was sent so the connection stays usable.
    let mut body = body;
    let _ = read_body(&mut body, 64 * 1024).await;
    match route {
        Route::Stats => json(StatusCode::OK, rid, &shared.state.stats()),
        Route::Messages => {
            let mut out = Vec::new();
            for m in shared.state.messages() {
                if serde_json::to_writer(&mut out, &m).is_ok() {
                    out.push(b'\n');
                }
            }
            let mut resp = answer(StatusCode::OK, rid, out);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
            resp
        }
        Route::ResetQuota => {
            shared.reset_quota();
            answer(StatusCode::OK, rid, b"{}".to_vec())
        }
        Route::MethodNotAllowed(allow) => method_not_allowed(rid, allow),
        _ => error(StatusCode::NOT_FOUND, rid, "no such emulator endpoint"),
    }
}

enum BodyProblem {
    TooLarge,
    TimedOut,
    /// The client went away mid-body: nobody to answer.
    Broken,
}

/// Read a whole body of at most `max` bytes. On `TooLarge` the rest is
/// still in `body`, for [`linger`].
async fn read_body(body: &mut Incoming, max: usize) -> Result<Bytes, BodyProblem> {
    let read = async {
        // One frame is the usual case: keep it without a copy.
        let mut frames: Vec<Bytes> = Vec::new();
        let mut len = 0;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(|_| BodyProblem::Broken)?.into_data() else {
                continue;
            };
            len += data.len();
            if len > max {
                return Err(BodyProblem::TooLarge);
            }
            frames.push(data);
        }
        Ok(match frames.len() {
            0 => Bytes::new(),
            1 => frames.swap_remove(0),
            _ => Bytes::from(frames.concat()),
        })
    };
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Err(_) => Err(BodyProblem::TimedOut),
        Ok(read) => read,
    }
}

/// Read and discard the rest of a refused body, within [`LINGER_TIME`] and
/// [`LINGER_BYTES`], while hyper writes the answer; the connection then
/// closes cleanly once the body has ended (the answer says `close`).
fn linger(mut body: Incoming) {
    tokio::spawn(async move {
        let drain = async {
            let mut len = 0;
            while let Some(Ok(frame)) = body.frame().await {
                len += frame.data_ref().map_or(0, Bytes::len);
                if len > LINGER_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}

/// Draws for one request: jitter, fault, drop-after.
struct Draws {
    jitter: Duration,
    fault: f64,
    after: f64,
}

async fn api(
    shared: &Shared,
    route: Route<'_>,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Incoming,
    rid: &str,
) -> Answer {
    let config = &shared.config;
    let endpoint = match route {
        Route::CreateMessage(_) => Some(0),
        Route::CreateBatch(_) => Some(1),
        Route::CreateConversation => Some(2),
        Route::MessagesByExternalId => Some(3),
        _ => None,
    };
    if let Some(i) = endpoint {
        shared.state.reached(i);
    }
    let _in_flight = match route {
        Route::CreateMessage(id) | Route::CreateBatch(id) if schema::is_conversation_id(id) => {
            Some(shared.state.enter(id))
        }
        _ => None,
    };
    let draws = shared.rng.as_ref().map(|rng| {
        let mut rng = lock(rng);
        Draws {
            jitter: if config.jitter > Duration::ZERO {
                config.jitter.mul_f64(rng.random::<f64>())
            } else {
                Duration::ZERO
            },
            fault: rng.random(),
            after: rng.random(),
        }
    });
    let latency = config.latency + draws.as_ref().map_or(Duration::ZERO, |d| d.jitter);
    if latency > Duration::ZERO {
        tokio::time::sleep(latency).await;
    }

    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = body;
    if declared.is_some_and(|n| n > config.max_body as u64) {
        if config.linger {
            linger(body);
        }
        return Ok(closing(too_large(rid, config.max_body)));
    }
    let body = match read_body(&mut body, config.max_body).await {
        Ok(b) => b,
        Err(BodyProblem::TooLarge) => {
            if config.linger {
                linger(body);
            }
            return Ok(closing(too_large(rid, config.max_body)));
        }
        Err(BodyProblem::TimedOut) => {
            return Ok(closing(error(
                StatusCode::REQUEST_TIMEOUT,
                rid,
                "the request body did not arrive in time",
            )))
        }
        Err(BodyProblem::Broken) => return Err(Dropped),
    };

    match route {
        Route::NotFound => return Ok(error(StatusCode::NOT_FOUND, rid, "no such endpoint")),
        Route::MethodNotAllowed(allow) => return Ok(method_not_allowed(rid, allow)),
        _ => {}
    }
    if !authorized(config, headers) {
        return Ok(error(
            StatusCode::UNAUTHORIZED,
            rid,
            "missing or wrong asapp-api-id / asapp-api-secret",
        ));
    }
    if let Some(q) = &shared.quota {
        let taken = lock(q).take(quota_now(config));
        if let Err(wait) = taken {
            shared.state.quota_exceeded.fetch_add(1, Ordering::Relaxed);
            return Ok(retry_after(
                config,
                error(StatusCode::TOO_MANY_REQUESTS, rid, "daily quota exceeded"),
                wait,
            ));
        }
    }
    if let Some(b) = &shared.bucket {
        let taken = lock(b).take(Instant::now());
        if let Err(wait) = taken {
            shared.state.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Ok(retry_after(
                config,
                error(StatusCode::TOO_MANY_REQUESTS, rid, "rate limit exceeded"),
                wait,
            ));
        }
    }
    let mut drop_after = false;
    if let Some(d) = &draws {
        let faults = [
            (config.error_429, StatusCode::TOO_MANY_REQUESTS),
            (config.error_503, StatusCode::SERVICE_UNAVAILABLE),
            (config.error_500, StatusCode::INTERNAL_SERVER_ERROR),
        ];
        let mut edge = 0.0;
        for (rate, status) in faults {
            edge += rate;
            if d.fault < edge {
                shared.state.injected_errors.fetch_add(1, Ordering::Relaxed);
                let resp = error(status, rid, "injected by the emulator");
                return Ok(if status == StatusCode::INTERNAL_SERVER_ERROR {
                    resp
                } else {
                    retry_after(config, resp, Duration::from_secs(1))
                });
            }
        }
        if d.fault < edge + config.drop_before {
            shared.state.dropped_before.fetch_add(1, Ordering::Relaxed);
            return Err(Dropped);
        }
        drop_after = d.after < config.drop_after;
    }

    match route {
        Route::CreateMessage(id) => create_message(shared, id, headers, &body, drop_after, rid),
        Route::CreateBatch(id) => create_batch(shared, id, headers, &body, drop_after, rid),
        Route::CreateConversation => Ok(create_conversation(shared, headers, &body, rid)),
        Route::MessagesByExternalId => Ok(messages_by_external_id(shared, query, rid)),
        _ => Ok(error(StatusCode::NOT_FOUND, rid, "no such endpoint")),
    }
}

fn authorized(config: &Config, headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match (get("asapp-api-id"), get("asapp-api-secret")) {
        (Some(id), Some(secret)) => match &config.credentials {
            Some((want_id, want_secret)) => id == want_id && secret == want_secret,
            None => !id.is_empty() && !secret.is_empty(),
        },
        _ => false,
    }
}

/// `application/json`, parameters such as `; charset=utf-8` allowed.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// The checks every message endpoint makes before reading its body: the
/// refusal, if any.
fn check_target(
    shared: &Shared,
    id: &str,
    headers: &HeaderMap,
    rid: &str,
) -> Option<Response<Full<Bytes>>> {
    if !schema::is_conversation_id(id) {
        return Some(error(
            StatusCode::BAD_REQUEST,
            rid,
            "conversationId must match ^[A-Z0-9]+$",
        ));
    }
    if shared.unknown.contains(id)
        || (shared.config.known_conversations_only && !shared.state.issued(id))
    {
        return Some(error(StatusCode::NOT_FOUND, rid, "conversation not found"));
    }
    if !is_json(headers) {
        return Some(wrong_content_type(rid));
    }
    None
}

fn wrong_content_type(rid: &str) -> Response<Full<Bytes>> {
    error(
        StatusCode::BAD_REQUEST,
        rid,
        "Content-Type must be application/json",
    )
}

fn body_error(e: BodyError, rid: &str) -> Response<Full<Bytes>> {
    match e {
        BodyError::Syntax(m) => error(StatusCode::BAD_REQUEST, rid, &m),
        BodyError::Schema(m) => error(StatusCode::UNPROCESSABLE_ENTITY, rid, &m),
    }
}

fn conflict(rid: &str) -> Response<Full<Bytes>> {
    error(StatusCode::CONFLICT, rid, "message already persisted")
}

fn create_message(
    shared: &Shared,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
    drop_after: bool,
    rid: &str,
) -> Answer {
    let parsed = schema::message(body).map(|m| vec![m]);
    store(shared, id, headers, parsed, drop_after, rid, |ids| {
        let id = ids.first().copied().unwrap_or_default();
        format!(r#"{{"id":"{id}"}}"#).into_bytes()
    })
}

fn create_batch(
    shared: &Shared,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
    drop_after: bool,
    rid: &str,
) -> Answer {
    let parsed = schema::batch(body);
    store(shared, id, headers, parsed, drop_after, rid, |_| {
        b"{}".to_vec()
    })
}

/// What createMessage and createBatchMessages share: the target checks,
/// the schema answer, storing, the dropped answer, and a 200 whose body
/// `ok` makes from the stored ids.
fn store(
    shared: &Shared,
    id: &str,
    headers: &HeaderMap,
    parsed: Result<Vec<schema::Message<'_>>, schema::BodyError>,
    drop_after: bool,
    rid: &str,
    ok: impl FnOnce(&[ulid::Ulid]) -> Vec<u8>,
) -> Answer {
    if let Some(resp) = check_target(shared, id, headers, rid) {
        return Ok(resp);
    }
    let messages = match parsed {
        Ok(m) => m,
        Err(e) => return Ok(body_error(e, rid)),
    };
    let stored = shared.state.store_messages(
        id,
        &messages,
        shared.config.conflict_on_duplicate,
        drop_after,
    );
    match stored {
        Stored::Conflict => Ok(conflict(rid)),
        Stored::Ids(_) if drop_after => {
            shared.state.dropped_after.fetch_add(1, Ordering::Relaxed);
            Err(Dropped)
        }
        Stored::Ids(ids) => Ok(answer(StatusCode::OK, rid, ok(&ids))),
    }
}

fn create_conversation(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    rid: &str,
) -> Response<Full<Bytes>> {
    if !is_json(headers) {
        return wrong_content_type(rid);
    }
    match schema::conversation(body) {
        Ok(c) => {
            let id = shared.state.conversation_for(&c.external_id);
            answer(
                StatusCode::OK,
                rid,
                format!(r#"{{"id":"{id}"}}"#).into_bytes(),
            )
        }
        Err(e) => body_error(e, rid),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    text: String,
    sender: Sender,
    message_id: String,
    created_timestamp: chrono::DateTime<chrono::Utc>,
    client_timestamp: String,
}

#[derive(Serialize)]
struct Items {
    items: Vec<Item>,
}

fn messages_by_external_id(
    shared: &Shared,
    query: Option<&str>,
    rid: &str,
) -> Response<Full<Bytes>> {
    let Some(external_id) = query.and_then(|q| query_param(q, "externalId")) else {
        return error(
            StatusCode::BAD_REQUEST,
            rid,
            "query parameter externalId is required",
        );
    };
    match shared.state.messages_by_external(&external_id) {
        None => error(
            StatusCode::NOT_FOUND,
            rid,
            "no conversation with this externalId",
        ),
        Some(messages) => {
            let items = messages
                .into_iter()
                .map(|m: StoredMessage| Item {
                    text: m.text,
                    sender: m.sender,
                    message_id: m.id,
                    created_timestamp: m.received_at,
                    client_timestamp: m.timestamp,
                })
                .collect();
            json(StatusCode::OK, rid, &Items { items })
        }
    }
}

/// The first value of `name` in a query string, percent-decoded (`+` is a space).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == name)
            .then(|| percent_decode(v))
            .flatten()
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn answer(status: StatusCode, rid: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(rid) {
        h.insert("x-request-id", v);
    }
    resp
}

fn json<T: Serialize>(status: StatusCode, rid: &str, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => answer(status, rid, body),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            rid,
            "could not encode the answer",
        ),
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    request_id: &'a str,
    code: String,
    message: &'a str,
}

/// An error in the spec's envelope; the code is `<status>-01`.
fn error(status: StatusCode, rid: &str, message: &str) -> Response<Full<Bytes>> {
    let envelope = Envelope {
        error: ErrorBody {
            request_id: rid,
            code: format!("{}-01", status.as_u16()),
            message,
        },
    };
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    answer(status, rid, body)
}

fn too_large(rid: &str, max: usize) -> Response<Full<Bytes>> {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        rid,
        &format!("request body over {max} bytes"),
    )
}

fn method_not_allowed(rid: &str, allow: &'static str) -> Response<Full<Bytes>> {
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        rid,
        "method not allowed here",
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn retry_after(
    config: &Config,
    mut resp: Response<Full<Bytes>>,
    wait: Duration,
) -> Response<Full<Bytes>> {
    let value = if config.retry_after_http_date {
        // Whole seconds of the clock: the next one, plus the wait.
        let now = chrono::Utc::now().timestamp();
        let at = now + 1 + retry_after_secs(wait) as i64;
        let date = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default();
        let text = date.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from(retry_after_secs(wait)))
    } else {
        HeaderValue::from(retry_after_secs(wait))
    };
    resp.headers_mut().insert(header::RETRY_AFTER, value);
    resp
}

/// Close the connection after this answer: the rest of the body, if any, is
/// not read as a request.
fn closing(mut resp: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_at_midday_goes_by_a_clock_at_midday() {
        use chrono::Timelike;
        let config = Config::quota_at_midday(5);
        assert_eq!(config.daily_quota, Some(5));
        let now = quota_now(&config);
        assert_eq!(now.date_naive(), chrono::Utc::now().date_naive());
        let from_midday = i64::from(now.num_seconds_from_midnight()) - 12 * 3600;
        assert!(from_midday.abs() < 60, "{now}");
    }

    #[test]
    fn routes() {
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(
            route(&post, "/conversation/v1/conversations/ABC/messages"),
            Route::CreateMessage("ABC")
        );
        assert_eq!(
            route(&post, "/conversation/v1/conversations/abc/messages/batch"),
            Route::CreateBatch("abc")
        );
        assert_eq!(
            route(&get, "/conversation/v1/conversations/ABC/messages"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(
            route(&post, "/conversation/v1/conversations"),
            Route::CreateConversation
        );
        assert_eq!(
            route(&get, "/conversation/v1/conversation/messages"),
            Route::MessagesByExternalId
        );
        assert_eq!(route(&get, "/nope"), Route::NotFound);
        assert_eq!(
            route(&post, "/conversation/v1/conversations/ABC/other"),
            Route::NotFound
        );
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param("externalId=a%20b+c", "externalId").as_deref(),
            Some("a b c")
        );
        assert_eq!(
            query_param("x=1&externalId=z", "externalId").as_deref(),
            Some("z")
        );
        assert_eq!(query_param("x=1", "externalId"), None);
        assert_eq!(query_param("externalId=%zz", "externalId"), None);
    }

    #[test]
    fn content_type_allows_parameters() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(is_json(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json(&h));
    }
}
