//! Integration tests: the emulator over loopback, in-process and as the real
//! binary. Every status the spec lists, each knob, each counter, the
//! companion endpoints and the quota.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{json, Value};
use transcript_import::emulator::{Config, Emulator, Stats};

const MSG: &str = "/conversation/v1/conversations/ABC123/messages";

fn body(text: &str, ts: &str) -> String {
    json!({"text": text, "sender": {"role": "agent", "externalId": "agent-1"}, "timestamp": ts})
        .to_string()
}

fn valid() -> String {
    body("Hello, I would like to upgrade", "2021-11-23T12:13:14.555Z")
}

fn start(config: Config) -> Emulator {
    Emulator::start(config).expect("emulator starts")
}

/// One HTTP answer, whatever its status.
#[derive(Debug)]
struct Reply {
    status: u16,
    request_id: Option<String>,
    retry_after: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Check the error envelope: code `<status>-01`, requestId as the header.
    fn error(&self) -> (String, String) {
        let v = self.json();
        let e = &v["error"];
        assert_eq!(e["code"], format!("{}-01", self.status), "{}", self.body);
        assert_eq!(
            e["requestId"].as_str(),
            self.request_id.as_deref(),
            "envelope requestId matches the header"
        );
        (
            e["code"].as_str().unwrap_or_default().to_string(),
            e["message"].as_str().unwrap_or_default().to_string(),
        )
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        // Every status is an answer to look at, not an error.
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .new_agent()
}

fn reply(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Reply, ureq::Error> {
    let mut resp = result?;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Ok(Reply {
        status: resp.status().as_u16(),
        request_id: header("x-request-id"),
        retry_after: header("retry-after"),
        body: resp.body_mut().read_to_string().unwrap_or_default(),
    })
}

/// POST with valid credentials and a JSON content type.
fn post(emu: &Emulator, path: &str, body: &str) -> Reply {
    try_post(&agent(), emu, path, body).expect("an answer")
}

fn try_post(
    agent: &ureq::Agent,
    emu: &Emulator,
    path: &str,
    body: &str,
) -> Result<Reply, ureq::Error> {
    reply(
        agent
            .post(&format!("{}{path}", emu.url()))
            .header("asapp-api-id", "id")
            .header("asapp-api-secret", "secret")
            .header("content-type", "application/json")
            .send(body),
    )
}

fn get(emu: &Emulator, path: &str) -> Reply {
    reply(
        agent()
            .get(&format!("{}{path}", emu.url()))
            .header("asapp-api-id", "id")
            .header("asapp-api-secret", "secret")
            .call(),
    )
    .expect("an answer")
}

fn http_stats(emu: &Emulator) -> Stats {
    let r = get(emu, "/_emulator/stats");
    assert_eq!(r.status, 200);
    serde_json::from_str(&r.body).unwrap()
}

fn count(stats: &Stats, status: &str) -> u64 {
    stats.requests_by_status.get(status).copied().unwrap_or(0)
}

/// Send raw bytes and read until the server closes; `Err` on a reset.
fn raw(emu: &Emulator, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(emu.addr())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

fn raw_post(body: &str) -> Vec<u8> {
    format!(
        "POST {MSG} HTTP/1.1\r\nHost: x\r\nasapp-api-id: id\r\nasapp-api-secret: secret\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn created_message_gets_a_new_ulid_and_is_recorded() {
    let emu = start(Config::default());
    let a = post(&emu, MSG, &valid());
    let b = post(&emu, MSG, &body("second", "2021-11-23T12:13:15Z"));
    assert_eq!((a.status, b.status), (200, 200));
    let (ida, idb) = (a.json()["id"].clone(), b.json()["id"].clone());
    let ida = ida.as_str().unwrap();
    assert_eq!(ida.len(), 26);
    assert!(ida.parse::<ulid::Ulid>().is_ok());
    assert_ne!(Some(ida), idb.as_str());
    assert_eq!(a.request_id.as_ref().map(String::len), Some(26));
    assert_ne!(a.request_id, b.request_id);

    let stored = emu.messages();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].id, ida);
    assert_eq!(stored[0].conversation_id, "ABC123");
    assert_eq!(stored[0].text, "Hello, I would like to upgrade");
    assert_eq!(stored[0].sender.external_id, "agent-1");
    assert_eq!(stored[0].timestamp, "2021-11-23T12:13:14.555Z");
    assert!(!stored[0].dropped_answer);

    let lines = get(&emu, "/_emulator/messages");
    assert_eq!(lines.status, 200);
    assert!(lines.request_id.is_some());
    let rows: Vec<Value> = lines
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["text"], "second");
    assert_eq!(rows[1]["sender"]["role"], "agent");
    assert_eq!(rows[1]["conversationId"], "ABC123");
    assert!(rows[1]["receivedAt"].is_string());

    let stats = http_stats(&emu);
    assert_eq!(stats, emu.stats());
    assert_eq!(stats.requests_total, 2, "/_emulator/* is not counted");
    assert_eq!(stats.stored, 2);
    assert_eq!(count(&stats, "200"), 2);
}

#[test]
fn bad_path_non_json_and_wrong_content_type_are_400() {
    let emu = start(Config::default());
    for path in [
        "/conversation/v1/conversations/abc123/messages",
        "/conversation/v1/conversations/AB-12/messages",
        "/conversation/v1/conversations//messages",
    ] {
        let r = post(&emu, path, &valid());
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.error().0, "400-01");
    }
    let r = post(&emu, MSG, "{not json");
    assert_eq!(r.status, 400);
    assert!(r.error().1.contains("JSON"));
    let r = post(&emu, MSG, r#"{"text":"a""#);
    assert_eq!(r.status, 400, "truncated JSON");

    let send = |ct: Option<&str>| {
        let mut req = agent()
            .post(&format!("{}{MSG}", emu.url()))
            .header("asapp-api-id", "id")
            .header("asapp-api-secret", "secret");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        reply(req.send(&valid())).unwrap()
    };
    let r = send(Some("text/plain"));
    assert_eq!(r.status, 400);
    assert!(r.error().1.contains("Content-Type"));
    assert_eq!(send(None).status, 400);
    assert_eq!(send(Some("application/json; charset=utf-8")).status, 200);
    assert_eq!(send(Some("Application/JSON")).status, 200);
    assert_eq!(emu.stats().stored, 2);
}

#[test]
fn credentials_are_checked() {
    let emu = start(Config {
        credentials: Some(("the-id".into(), "the-secret".into())),
        ..Config::default()
    });
    let send = |id: Option<&str>, secret: Option<&str>| {
        let mut req = agent()
            .post(&format!("{}{MSG}", emu.url()))
            .header("content-type", "application/json");
        if let Some(id) = id {
            req = req.header("asapp-api-id", id);
        }
        if let Some(secret) = secret {
            req = req.header("asapp-api-secret", secret);
        }
        reply(req.send(&valid())).unwrap()
    };
    for (id, secret) in [
        (None, None),
        (Some("the-id"), None),
        (None, Some("the-secret")),
        (Some("the-id"), Some("wrong")),
        (Some("wrong"), Some("the-secret")),
    ] {
        let r = send(id, secret);
        assert_eq!(r.status, 401, "{id:?} {secret:?}");
        assert_eq!(r.error().0, "401-01");
        assert!(!r.body.contains("the-secret"));
    }
    assert_eq!(send(Some("the-id"), Some("the-secret")).status, 200);
    assert_eq!(emu.stats().stored, 1);
    assert_eq!(count(&emu.stats(), "401"), 5);
    assert!(!format!(
        "{:?}",
        Config {
            credentials: Some(("i".into(), "the-secret".into())),
            ..Config::default()
        }
    )
    .contains("the-secret"));

    // Without configured credentials: any non-empty pair.
    let open = start(Config::default());
    let r = reply(
        agent()
            .post(&format!("{}{MSG}", open.url()))
            .header("asapp-api-id", "")
            .header("asapp-api-secret", "x")
            .header("content-type", "application/json")
            .send(&valid()),
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(post(&open, MSG, &valid()).status, 200);
}

#[test]
fn unknown_ids_paths_and_methods() {
    let emu = start(Config {
        unknown: vec!["GONE1".into()],
        ..Config::default()
    });
    let r = post(
        &emu,
        "/conversation/v1/conversations/GONE1/messages",
        &valid(),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.error().0, "404-01");
    let r = post(
        &emu,
        "/conversation/v1/conversations/GONE1/messages/batch",
        &format!(r#"{{"messages":[{}]}}"#, valid()),
    );
    assert_eq!(r.status, 404);
    assert_eq!(post(&emu, "/nowhere", "{}").status, 404);
    post(&emu, "/nowhere", "{}").error();
    let r = get(&emu, MSG);
    assert_eq!(r.status, 405);
    r.error();
    let r = reply(
        agent()
            .delete(&format!("{}/_emulator/stats", emu.url()))
            .call(),
    )
    .unwrap();
    assert_eq!(r.status, 405);
    r.error();
    let r = get(&emu, "/_emulator/nothing");
    assert_eq!(r.status, 404);
    r.error();
    assert_eq!(emu.stats().stored, 0);
}

#[test]
fn conflict_on_duplicate_answers_409_else_counts_duplicates() {
    let emu = start(Config {
        conflict_on_duplicate: true,
        ..Config::default()
    });
    assert_eq!(post(&emu, MSG, &valid()).status, 200);
    // Same instant written with another offset: still the same message.
    let same = body(
        "Hello, I would like to upgrade",
        "2021-11-23T13:13:14.555+01:00",
    );
    let r = post(&emu, MSG, &same);
    assert_eq!(r.status, 409);
    assert_eq!(r.error().0, "409-01");
    assert_eq!(
        post(&emu, MSG, &body("other text", "2021-11-23T12:13:14.555Z")).status,
        200
    );
    let s = emu.stats();
    assert_eq!((s.stored, s.duplicates), (2, 0));

    let plain = start(Config::default());
    assert_eq!(post(&plain, MSG, &valid()).status, 200);
    assert_eq!(post(&plain, MSG, &same).status, 200);
    let s = plain.stats();
    assert_eq!((s.stored, s.duplicates), (2, 1));
}

#[test]
fn bodies_over_the_limit_are_413_and_the_server_goes_on() {
    let emu = start(Config {
        max_body: 200,
        ..Config::default()
    });
    let big = body(&"x".repeat(300), "2021-11-23T12:13:14Z");
    let r = post(&emu, MSG, &big);
    assert_eq!(r.status, 413);
    assert_eq!(r.error().0, "413-01");

    // Chunked, with no Content-Length: caught while streaming.
    let chunk = "y".repeat(150);
    let req = format!(
        "POST {MSG} HTTP/1.1\r\nHost: x\r\nasapp-api-id: id\r\nasapp-api-secret: s\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n\
         {len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    let out = String::from_utf8_lossy(&raw(&emu, req.as_bytes()).unwrap()).to_string();
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(out.contains("413-01"));
    assert_eq!(post(&emu, MSG, &valid()).status, 200);
}

#[test]
fn schema_violations_are_422_naming_the_field() {
    let emu = start(Config::default());
    let cases = [
        (
            json!({"sender": {"role": "agent", "externalId": "a"}, "timestamp": "2021-01-01T00:00:00Z"}),
            "`text`",
        ),
        (
            json!({"text": "", "sender": {"role": "agent", "externalId": "a"}, "timestamp": "2021-01-01T00:00:00Z"}),
            "`text`",
        ),
        (
            json!({"text": "x", "timestamp": "2021-01-01T00:00:00Z"}),
            "`sender`",
        ),
        (
            json!({"text": "x", "sender": {"role": "robot", "externalId": "a"}, "timestamp": "2021-01-01T00:00:00Z"}),
            "`sender.role`",
        ),
        (
            json!({"text": "x", "sender": {"role": "agent"}, "timestamp": "2021-01-01T00:00:00Z"}),
            "`sender.externalId`",
        ),
        (
            json!({"text": "x", "sender": {"role": "agent", "externalId": "a"}, "timestamp": "noon"}),
            "`timestamp`",
        ),
        (
            json!({"text": "x", "sender": {"role": "agent", "externalId": "a"}}),
            "`timestamp`",
        ),
    ];
    for (b, field) in cases {
        let r = post(&emu, MSG, &b.to_string());
        assert_eq!(r.status, 422, "{b}");
        let (code, message) = r.error();
        assert_eq!(code, "422-01");
        assert!(message.contains(field), "{b}: {message}");
    }
    assert_eq!(emu.stats().stored, 0);
    assert_eq!(count(&emu.stats(), "422"), 7);
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let emu = start(Config {
        rate_limit: Some(5),
        ..Config::default()
    });
    let replies: Vec<Reply> = (0..12).map(|_| post(&emu, MSG, &valid())).collect();
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert!((5..=6).contains(&ok), "{ok} passed a 5/s bucket");
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(limited.len(), 12 - ok);
    for r in &limited {
        assert_eq!(r.error().0, "429-01");
        let secs: u64 = r.retry_after.as_deref().unwrap().parse().unwrap();
        assert!(secs >= 1);
    }
    let s = emu.stats();
    assert_eq!(s.rate_limited as usize, limited.len());
    assert_eq!(s.stored as usize, ok);
    // The emulator's own endpoints are never limited.
    for _ in 0..10 {
        assert_eq!(get(&emu, "/_emulator/stats").status, 200);
    }
}

fn statuses(config: Config, n: usize) -> (Vec<u16>, Stats) {
    let emu = start(config);
    let a = agent();
    let s = (0..n)
        .map(|_| try_post(&a, &emu, MSG, &valid()).unwrap().status)
        .collect();
    (s, emu.stats())
}

#[test]
fn injected_errors_come_at_their_rate_and_repeat_with_a_seed() {
    let config = Config {
        error_429: 0.1,
        error_503: 0.2,
        error_500: 0.1,
        seed: Some(42),
        ..Config::default()
    };
    let (first, stats) = statuses(config.clone(), 400);
    let n = |code| first.iter().filter(|&&s| s == code).count();
    assert!((20..=65).contains(&n(429)), "429: {}", n(429));
    assert!((50..=115).contains(&n(503)), "503: {}", n(503));
    assert!((20..=65).contains(&n(500)), "500: {}", n(500));
    assert_eq!(n(200) + n(429) + n(503) + n(500), 400);
    assert_eq!(stats.injected_errors as usize, 400 - n(200));
    assert_eq!(stats.stored as usize, n(200));
    let (again, _) = statuses(config.clone(), 400);
    assert_eq!(first, again, "same seed, same answers");
    let (other, _) = statuses(
        Config {
            seed: Some(7),
            ..config
        },
        400,
    );
    assert_ne!(first, other);

    // Injected 429 and 503 say when to come back; all are enveloped.
    let emu = start(Config {
        error_503: 1.0,
        ..Config::default()
    });
    let r = post(&emu, MSG, &valid());
    assert_eq!(r.status, 503);
    assert_eq!(r.error().0, "503-01");
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    let emu = start(Config {
        error_500: 1.0,
        ..Config::default()
    });
    let r = post(&emu, MSG, &valid());
    assert_eq!(r.status, 500);
    assert_eq!(r.error().0, "500-01");
}

#[test]
fn drop_before_closes_without_an_answer_and_stores_nothing() {
    let emu = start(Config {
        drop_before: 1.0,
        ..Config::default()
    });
    match raw(&emu, &raw_post(&valid())) {
        Ok(bytes) => assert!(
            bytes.is_empty(),
            "got {:?}",
            String::from_utf8_lossy(&bytes)
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(
        try_post(&agent(), &emu, MSG, &valid()).is_err(),
        "ureq sees a transport error"
    );
    let s = emu.stats();
    assert_eq!((s.dropped_before, s.dropped_after, s.stored), (2, 0, 0));
    assert!(s.requests_by_status.is_empty());
    assert_eq!(s.requests_total, 2);
    assert!(emu.messages().is_empty());
}

#[test]
fn drop_after_stores_then_closes_without_an_answer() {
    let emu = start(Config {
        drop_after: 1.0,
        ..Config::default()
    });
    match raw(&emu, &raw_post(&valid())) {
        Ok(bytes) => assert!(
            bytes.is_empty(),
            "got {:?}",
            String::from_utf8_lossy(&bytes)
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    let second = body("second", "2021-11-23T12:13:15Z");
    assert!(try_post(&agent(), &emu, MSG, &second).is_err());
    let s = emu.stats();
    assert_eq!((s.dropped_before, s.dropped_after, s.stored), (0, 2, 2));
    let stored = emu.messages();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|m| m.dropped_answer));
    assert_eq!(stored[1].text, "second");
    let lines = get(&emu, "/_emulator/messages").body;
    assert!(lines.lines().all(|l| l.contains(r#""droppedAnswer":true"#)));
    // Non-storing answers are not dropped after the fact.
    assert_eq!(post(&emu, MSG, "{}").status, 422);
}

#[test]
fn drops_at_a_rate_with_a_seed() {
    let emu = start(Config {
        drop_before: 0.2,
        drop_after: 0.2,
        seed: Some(3),
        ..Config::default()
    });
    let a = agent();
    let mut transport_errors = 0;
    for i in 0..200 {
        let b = body(&format!("m{i}"), "2021-11-23T12:13:14Z");
        if try_post(&a, &emu, MSG, &b).is_err() {
            transport_errors += 1;
        }
    }
    let s = emu.stats();
    assert_eq!(transport_errors, s.dropped_before + s.dropped_after);
    assert!((20..=65).contains(&s.dropped_before), "{s:?}");
    assert!((15..=55).contains(&s.dropped_after), "{s:?}");
    assert_eq!(s.stored, 200 - s.dropped_before);
    let marked = emu.messages().iter().filter(|m| m.dropped_answer).count() as u64;
    assert_eq!(marked, s.dropped_after);
}

#[test]
fn latency_is_observed_and_in_flight_is_counted_per_conversation() {
    let emu = start(Config {
        latency: Duration::from_millis(150),
        jitter: Duration::from_millis(50),
        seed: Some(1),
        ..Config::default()
    });
    let t = Instant::now();
    assert_eq!(post(&emu, MSG, &valid()).status, 200);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    // Generous: a loaded machine may be ten times slower.
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(emu.stats().max_in_flight_per_conversation, 1);

    // Two at once on other conversations: still 1 each.
    std::thread::scope(|s| {
        s.spawn(|| {
            post(
                &emu,
                "/conversation/v1/conversations/ONE/messages",
                &valid(),
            )
        });
        s.spawn(|| {
            post(
                &emu,
                "/conversation/v1/conversations/TWO/messages",
                &valid(),
            )
        });
    });
    assert_eq!(emu.stats().max_in_flight_per_conversation, 1);

    // Two at once on one conversation: 2. Each answer takes 5 s, and the
    // second is sent only once the first has arrived, so both are surely
    // in flight together however slow the machine is.
    let slow = start(Config {
        latency: Duration::from_secs(5),
        ..Config::default()
    });
    std::thread::scope(|s| {
        let a = s.spawn(|| post(&slow, MSG, &body("a", "2021-11-23T12:13:15Z")).status);
        let arrived = Instant::now() + Duration::from_secs(30);
        while slow.stats().requests_total < 1 && Instant::now() < arrived {
            std::thread::sleep(Duration::from_millis(5));
        }
        let b = s.spawn(|| post(&slow, MSG, &body("b", "2021-11-23T12:13:16Z")).status);
        assert_eq!((a.join().unwrap(), b.join().unwrap()), (200, 200));
    });
    assert_eq!(slow.stats().max_in_flight_per_conversation, 2);
}

#[test]
fn order_violations_and_duplicates_are_counted() {
    let emu = start(Config::default());
    let other = "/conversation/v1/conversations/OTHER/messages";
    for (path, text, ts) in [
        (MSG, "a", "2021-11-23T12:00:02Z"),
        (MSG, "b", "2021-11-23T12:00:01Z"), // earlier than "a": violation
        (other, "c", "2021-11-23T12:00:00Z"), // other conversation: fine
        (MSG, "d", "2021-11-23T12:00:02Z"), // same instant as "a": fine
        (MSG, "a", "2021-11-23T12:00:02.000Z"), // "a" again: duplicate
        (MSG, "e", "2021-11-23T12:00:01.5Z"), // still before "a": violation
    ] {
        assert_eq!(post(&emu, path, &body(text, ts)).status, 200);
    }
    let s = http_stats(&emu);
    assert_eq!(s.stored, 6);
    assert_eq!(s.order_violations, 2);
    assert_eq!(s.duplicates, 1);
}

#[test]
fn companion_endpoints() {
    let emu = start(Config::default());
    let conv = |ext: &str| {
        json!({"externalId": ext, "customer": {"externalId": "cust-1", "name": "Dana"},
               "agent": {"externalId": "agent-1"}, "timestamp": "2021-11-23T12:00:00Z"})
        .to_string()
    };
    let a = post(&emu, "/conversation/v1/conversations", &conv("chat-1"));
    assert_eq!(a.status, 200, "{}", a.body);
    let id = a.json()["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 26);
    let again = post(&emu, "/conversation/v1/conversations", &conv("chat-1"));
    assert_eq!(again.json()["id"], id.as_str(), "same externalId, same id");
    let b = post(&emu, "/conversation/v1/conversations", &conv("chat-2"));
    assert_ne!(b.json()["id"], id.as_str());
    for (bad, field) in [
        (
            json!({"customer": {"externalId": "c"}, "timestamp": "2021-11-23T12:00:00Z"}),
            "`externalId`",
        ),
        (
            json!({"externalId": "x", "timestamp": "2021-11-23T12:00:00Z"}),
            "`customer`",
        ),
        (
            json!({"externalId": "x", "customer": {"name": "n"}, "timestamp": "2021-11-23T12:00:00Z"}),
            "`customer.externalId`",
        ),
        (
            json!({"externalId": "x", "customer": {"externalId": "c"}}),
            "`timestamp`",
        ),
    ] {
        let r = post(&emu, "/conversation/v1/conversations", &bad.to_string());
        assert_eq!(r.status, 422, "{bad}");
        assert!(r.error().1.contains(field), "{bad}: {}", r.body);
    }

    let messages = format!("/conversation/v1/conversations/{id}/messages");
    assert_eq!(
        post(&emu, &messages, &body("first", "2021-11-23T12:00:01Z")).status,
        200
    );
    let batch: Vec<Value> = (2..=5)
        .map(|i| {
            json!({"text": format!("m{i}"), "sender": {"role": "customer", "externalId": "cust-1"},
                        "timestamp": format!("2021-11-23T12:00:0{i}Z")})
        })
        .collect();
    let r = post(
        &emu,
        &format!("{messages}/batch"),
        &json!({"messages": batch}).to_string(),
    );
    assert_eq!((r.status, r.json()), (200, json!({})));

    let mut bad = batch.clone();
    bad[3]["text"] = json!("");
    let r = post(
        &emu,
        &format!("{messages}/batch"),
        &json!({"messages": bad}).to_string(),
    );
    assert_eq!(r.status, 422);
    assert!(r.error().1.contains("`messages[3].text`"), "{}", r.body);
    let r = post(&emu, &format!("{messages}/batch"), r#"{"messages":[]}"#);
    assert_eq!(r.status, 422);
    let too_many: Vec<Value> = (0..301).map(|_| batch[0].clone()).collect();
    let r = post(
        &emu,
        &format!("{messages}/batch"),
        &json!({"messages": too_many}).to_string(),
    );
    assert_eq!(r.status, 422);
    assert_eq!(emu.stats().stored, 5, "a refused batch stores nothing");

    let r = get(
        &emu,
        "/conversation/v1/conversation/messages?externalId=chat-1",
    );
    assert_eq!(r.status, 200);
    let items = r.json()["items"].as_array().unwrap().clone();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["first", "m2", "m3", "m4", "m5"]);
    assert_eq!(
        items[1]["sender"],
        json!({"role": "customer", "externalId": "cust-1"})
    );
    assert_eq!(items[1]["clientTimestamp"], "2021-11-23T12:00:02Z");
    assert!(items[1]["createdTimestamp"].is_string());
    let stored = emu.messages();
    assert_eq!(items[0]["messageId"], stored[0].id.as_str());
    assert!(stored.iter().all(|m| m.conversation_id == id));

    let r = get(
        &emu,
        "/conversation/v1/conversation/messages?externalId=chat-2",
    );
    assert_eq!(r.json()["items"], json!([]));
    let r = get(
        &emu,
        "/conversation/v1/conversation/messages?externalId=nope",
    );
    assert_eq!(r.status, 404);
    r.error();
    assert_eq!(
        get(&emu, "/conversation/v1/conversation/messages").status,
        400
    );

    // Any id matching the pattern is accepted too (existing-mode imports).
    assert_eq!(
        post(
            &emu,
            "/conversation/v1/conversations/01BX5ZZKBKACTAV9WEVGEMMVS1/messages",
            &valid()
        )
        .status,
        200
    );
}

#[test]
fn daily_quota_refuses_every_call_until_reset() {
    let emu = start(Config::quota_at_midday(3));
    assert_eq!(post(&emu, MSG, &valid()).status, 200);
    assert_eq!(
        post(&emu, "/conversation/v1/conversations", "{}").status,
        422
    );
    assert_eq!(
        get(&emu, "/conversation/v1/conversation/messages?externalId=x").status,
        404
    );
    for path in [MSG, "/conversation/v1/conversations"] {
        let r = post(&emu, path, &valid());
        assert_eq!(r.status, 429);
        assert_eq!(r.error().0, "429-01");
        let secs: u64 = r.retry_after.as_deref().unwrap().parse().unwrap();
        assert!((1..=86_400).contains(&secs), "{secs}");
    }
    let r = get(&emu, "/conversation/v1/conversation/messages?externalId=x");
    assert_eq!(r.status, 429);
    assert_eq!(http_stats(&emu).quota_exceeded, 3);
    let reset = reply(
        agent()
            .post(&format!("{}/_emulator/reset-quota", emu.url()))
            .send_empty(),
    )
    .unwrap();
    assert_eq!(reset.status, 200);
    assert_eq!(post(&emu, MSG, &valid()).status, 200);
    emu.reset_quota();
    let s = emu.stats();
    assert_eq!((s.stored, count(&s, "429"), s.requests_total), (2, 3, 7));
}

#[test]
fn bad_requests_never_bring_it_down() {
    let emu = start(Config::default());
    // Not HTTP at all: hyper answers 400 and closes.
    let out = raw(&emu, b"HELLO THERE\r\n\r\n").unwrap_or_default();
    assert!(out.is_empty() || out.starts_with(b"HTTP/1.1 400"));
    // A body shorter than announced, then the client goes away.
    {
        let mut s = TcpStream::connect(emu.addr()).unwrap();
        let req = format!(
            "POST {MSG} HTTP/1.1\r\nHost: x\r\nasapp-api-id: i\r\nasapp-api-secret: s\r\n\
             content-type: application/json\r\ncontent-length: 500\r\n\r\n{{\"text\":"
        );
        s.write_all(req.as_bytes()).unwrap();
    }
    // Invalid UTF-8 and binary noise as a body.
    let mut noise = format!(
        "POST {MSG} HTTP/1.1\r\nHost: x\r\nasapp-api-id: i\r\nasapp-api-secret: s\r\n\
         content-type: application/json\r\ncontent-length: 4\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    noise.extend_from_slice(b"\xff\xfe\x00\x01");
    let out = String::from_utf8_lossy(&raw(&emu, &noise).unwrap()).to_string();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    // Huge header.
    let huge = format!(
        "GET /x HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    let _ = raw(&emu, huge.as_bytes());
    // Still serving.
    assert_eq!(post(&emu, MSG, &valid()).status, 200);
    assert_eq!(emu.stats().stored, 1);
}

#[test]
fn slow_clients_are_cut_off_and_others_still_served() {
    let emu = start(Config {
        header_read_timeout: Duration::from_millis(300),
        ..Config::default()
    });
    let mut slow = TcpStream::connect(emu.addr()).unwrap();
    // Far past the server's 300 ms: if this read times out, the server did
    // not cut the slow client off.
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    slow.write_all(b"POST /conversation/v1/conv").unwrap();
    assert_eq!(post(&emu, MSG, &valid()).status, 200, "served meanwhile");
    let mut out = Vec::new();
    // EOF or a reset: the server closed it.
    if let Err(e) = slow.read_to_end(&mut out) {
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the server never closed the connection: {e}"
        );
    }
    let out = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 408"), "{out}");
    assert_eq!(post(&emu, MSG, &valid()).status, 200);
}

#[test]
fn the_binary_prints_its_address_serves_and_writes_stats_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let stats_file = dir.path().join("stats.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_transcript-import"))
        .args([
            "emulator",
            "--addr",
            "127.0.0.1:0",
            "--unknown",
            "NOPE",
            "--stats-file",
        ])
        .arg(&stats_file)
        .env("ASAPP_API_ID", "cli-id")
        .env("ASAPP_API_SECRET", "cli-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim_end()
        .strip_prefix("listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("first line: {line:?}"));
    let port: u16 = addr.parse().unwrap();
    assert_ne!(port, 0);
    let url = format!("http://127.0.0.1:{port}");
    let send = |path: &str, secret: &str| {
        reply(
            agent()
                .post(&format!("{url}{path}"))
                .header("asapp-api-id", "cli-id")
                .header("asapp-api-secret", secret)
                .header("content-type", "application/json")
                .send(&valid()),
        )
        .unwrap()
    };
    assert_eq!(send(MSG, "cli-secret").status, 200);
    assert_eq!(send(MSG, "other").status, 401);
    assert_eq!(
        send("/conversation/v1/conversations/NOPE/messages", "cli-secret").status,
        404
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "nothing after the first line");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("cli-secret"));
    let stats: Stats =
        serde_json::from_str(&std::fs::read_to_string(&stats_file).unwrap()).unwrap();
    assert_eq!(stats.stored, 1);
    assert_eq!(stats.requests_total, 3);
    assert_eq!(count(&stats, "401"), 1);
    assert_eq!(count(&stats, "404"), 1);
}

#[test]
fn shutdown_writes_the_stats_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let emu = start(Config {
        stats_file: Some(path.clone()),
        ..Config::default()
    });
    let addr = emu.addr();
    assert_eq!(post(&emu, MSG, &valid()).status, 200);
    emu.shutdown();
    let stats: Stats = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(stats.stored, 1);
    assert!(TcpStream::connect(addr).is_err(), "no longer listening");
}

// Property: any valid body is 200; one field made invalid is 422 naming it.

fn shared_emulator() -> &'static Emulator {
    static EMU: OnceLock<Emulator> = OnceLock::new();
    EMU.get_or_init(|| start(Config::default()))
}

fn valid_body() -> impl Strategy<Value = Value> {
    let role = prop_oneof![Just("agent"), Just("customer"), Just("system")];
    let ts = (
        1970i32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        prop_oneof![Just(String::new()), "\\.[0-9]{1,9}"],
        prop_oneof![
            Just("Z".to_string()),
            Just(String::new()),
            "[+-](0[0-9]|1[0-3]):[0-5][0-9]"
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, zone)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}")
        });
    ("\\PC{1,40}", role, "\\PC{0,20}", ts).prop_map(|(text, role, ext, ts)| {
        json!({"text": text, "sender": {"role": role, "externalId": ext}, "timestamp": ts})
    })
}

#[derive(Debug, Clone)]
enum Breakage {
    Remove(&'static str),
    Set(&'static str, Value),
}

fn breakage() -> impl Strategy<Value = (Breakage, &'static str)> {
    let not_string = prop_oneof![
        Just(Value::Null),
        Just(json!(5)),
        Just(json!(true)),
        Just(json!([])),
        Just(json!({}))
    ];
    prop_oneof![
        Just((Breakage::Remove("text"), "`text`")),
        Just((Breakage::Set("text", json!("")), "`text`")),
        not_string
            .clone()
            .prop_map(|v| (Breakage::Set("text", v), "`text`")),
        Just((Breakage::Remove("sender"), "`sender`")),
        prop_oneof![Just(json!("agent")), Just(json!(1)), Just(json!([]))]
            .prop_map(|v| (Breakage::Set("sender", v), "`sender`")),
        Just((Breakage::Remove("sender.role"), "`sender.role`")),
        "[a-z]{1,10}"
            .prop_filter("not a role", |r| !["agent", "customer", "system"]
                .contains(&r.as_str()))
            .prop_map(|r| (Breakage::Set("sender.role", json!(r)), "`sender.role`")),
        not_string
            .clone()
            .prop_map(|v| (Breakage::Set("sender.role", v), "`sender.role`")),
        Just((Breakage::Remove("sender.externalId"), "`sender.externalId`")),
        not_string
            .clone()
            .prop_map(|v| (Breakage::Set("sender.externalId", v), "`sender.externalId`")),
        Just((Breakage::Remove("timestamp"), "`timestamp`")),
        not_string.prop_map(|v| (Breakage::Set("timestamp", v), "`timestamp`")),
        prop_oneof![
            Just("yesterday"),
            Just(""),
            Just("2021-02-30T00:00:00Z"),
            Just("2021-11-23"),
            Just("2021-11-23T25:00:00Z"),
            Just("23/11/2021 12:00")
        ]
        .prop_map(|t| (Breakage::Set("timestamp", json!(t)), "`timestamp`")),
    ]
}

fn apply(mut v: Value, b: &Breakage) -> Value {
    let (path, new) = match b {
        Breakage::Remove(p) => (*p, None),
        Breakage::Set(p, v) => (*p, Some(v.clone())),
    };
    let (parent, key) = match path.split_once('.') {
        Some((outer, inner)) => (&mut v[outer], inner),
        None => (&mut v, path),
    };
    let obj = parent.as_object_mut().expect("an object");
    match new {
        None => {
            obj.remove(key);
        }
        Some(new) => {
            obj.insert(key.to_string(), new);
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_valid_body_is_200(b in valid_body()) {
        let r = post(shared_emulator(), "/conversation/v1/conversations/PROP/messages", &b.to_string());
        prop_assert_eq!(r.status, 200, "{}: {}", b, r.body);
    }

    #[test]
    fn one_broken_field_is_422_naming_it(b in valid_body(), (breakage, field) in breakage()) {
        let broken = apply(b, &breakage);
        let r = post(shared_emulator(), "/conversation/v1/conversations/PROP/messages", &broken.to_string());
        prop_assert_eq!(r.status, 422, "{}: {}", broken, r.body);
        let (code, message) = r.error();
        prop_assert_eq!(code, "422-01");
        prop_assert!(message.contains(field), "{}: {}", broken, message);
    }
}
