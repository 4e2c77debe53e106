//! The floor of any ureq-based importer: one agent whose idle pool holds a
//! connection per thread, THREADS threads posting createMessage bodies as
//! fast as answers come, nothing else (no timeout: with one, ureq resolves
//! the host on a thread of its own for every request). For
//! `benches/scale.sh`.
//!
//! cargo run --release --example bare_client -- BASE_URL THREADS MESSAGES
//! prints: messages, seconds, messages/s, non-2xx answers

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: bare_client BASE_URL THREADS MESSAGES");
        std::process::exit(2);
    }
    let base = args[1].trim_end_matches('/').to_string();
    let threads: usize = args[2].parse().expect("THREADS");
    let total: u64 = args[3].parse().expect("MESSAGES");
    let config = ureq::Agent::config_builder()
        .max_idle_connections(threads)
        .max_idle_connections_per_host(threads)
        .http_status_as_error(false)
        .build();
    let agent: ureq::Agent = config.into();
    let next = AtomicU64::new(0);
    let refused = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (agent, next, refused, base) = (&agent, &next, &refused, &base);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                // One conversation per thread: in order, as an importer sends.
                let url = format!("{base}/conversation/v1/conversations/BARE{t:04}/messages");
                let body = format!(
                    "{{\"text\":\"Message {i}: thanks for your patience, let me check the order status.\",\
                     \"sender\":{{\"role\":\"agent\",\"externalId\":\"agent-{t}\"}},\
                     \"timestamp\":\"2021-11-23T12:13:14.{:03}Z\"}}",
                    i % 1000
                );
                let answer = agent
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header("asapp-api-id", "bench")
                    .header("asapp-api-secret", "bench")
                    .send(body.as_bytes());
                match answer {
                    Ok(mut r) => {
                        let ok = r.status().is_success();
                        let _ = r.body_mut().read_to_vec();
                        if !ok {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => panic!("request {i}: {e}"),
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{total} {secs:.3} {:.0} {}",
        total as f64 / secs,
        refused.load(Ordering::Relaxed)
    );
}
