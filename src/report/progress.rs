//! Progress on stderr: a bar on a terminal; without one (cron, CI, a pipe),
//! a plain log line now and then, with the time of day and an estimate of
//! the end, so logs stay readable.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::model::{Outcome, Status};

/// Live counts, fed by outcomes as they arrive.
#[derive(Debug, Default)]
pub struct Counters {
    /// Rows with an outcome so far (sent or not).
    pub done: AtomicU64,
    pub created: AtomicU64,
    pub failed: AtomicU64,
    pub uncertain: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
}

impl Counters {
    /// Count one row's outcome.
    pub fn outcome(&self, o: &Outcome<'_>) {
        let add = |c: &AtomicU64, n: u64| {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.done, 1);
        match o.status {
            Status::Created => add(&self.created, 1),
            Status::Failed => add(&self.failed, 1),
            Status::Uncertain => add(&self.uncertain, 1),
            _ => {}
        }
        add(&self.requests, u64::from(o.requests));
        add(&self.retries, u64::from(o.requests.saturating_sub(1)));
    }

    /// Requests that belong to no one row (a batch, creating or reading
    /// back a conversation).
    pub fn requests(&self, n: u32) {
        self.requests.fetch_add(u64::from(n), Ordering::Relaxed);
    }

    /// Rows accounted for before sending (invalid ones).
    pub fn add_done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
}

pub struct Progress {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Progress {
    /// Start drawing. `total` is the number of rows to account for; `quiet`
    /// draws nothing.
    pub fn start(
        counters: std::sync::Arc<Counters>,
        total: u64,
        quiet: bool,
        log_every: Duration,
    ) -> Progress {
        if quiet || total == 0 {
            return Progress {
                stop: None,
                handle: None,
            };
        }
        let (tx, rx) = mpsc::channel::<()>();
        let terminal = std::io::stderr().is_terminal();
        let handle = thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let started = Instant::now();
                if terminal {
                    let bar = indicatif::ProgressBar::new(total);
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{elapsed_precise} [{bar:30}] {pos}/{len} rows  {msg}  eta {eta}",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    loop {
                        bar.set_position(counters.done.load(Ordering::Relaxed));
                        bar.set_message(line(&counters, started));
                        if rx.recv_timeout(Duration::from_millis(200)).is_ok()
                            || matches!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected))
                        {
                            break;
                        }
                    }
                    bar.set_position(counters.done.load(Ordering::Relaxed));
                    bar.finish_and_clear();
                } else {
                    let first_done = counters.done.load(Ordering::Relaxed);
                    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(log_every) {
                        let done = counters.done.load(Ordering::Relaxed);
                        eprintln!(
                            "{} progress: {done}/{total} rows ({:.0}%), {}, eta {}",
                            chrono::Utc::now().format("%H:%M:%SZ"),
                            done as f64 * 100.0 / total as f64,
                            line(&counters, started),
                            eta(done - first_done, total - done, started.elapsed())
                        );
                    }
                }
            })
            .ok();
        Progress {
            stop: Some(tx),
            handle,
        }
    }

    pub fn finish(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn line(c: &Counters, started: Instant) -> String {
    let requests = c.requests.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64().max(0.001);
    format!(
        "{} created, {} failed, {} uncertain, {} retries, {:.0} req/s",
        c.created.load(Ordering::Relaxed),
        c.failed.load(Ordering::Relaxed),
        c.uncertain.load(Ordering::Relaxed),
        c.retries.load(Ordering::Relaxed),
        requests as f64 / secs
    )
}

/// When the rest will be done at the rate rows got done so far.
fn eta(done: u64, left: u64, elapsed: Duration) -> String {
    if left == 0 {
        return "now".into();
    }
    if done == 0 {
        return "unknown".into();
    }
    let secs = (elapsed.as_secs_f64() * left as f64 / done as f64).round() as u64;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_follows_the_rate_so_far() {
        assert_eq!(eta(100, 100, Duration::from_secs(10)), "10s");
        assert_eq!(eta(10, 600, Duration::from_secs(10)), "10m00s");
        assert_eq!(eta(1, 7200, Duration::from_secs(1)), "2h00m");
        assert_eq!(eta(0, 5, Duration::from_secs(1)), "unknown");
        assert_eq!(eta(5, 0, Duration::from_secs(1)), "now");
    }
}
