//! Progress on stderr: a bar on a terminal; without one (cron, CI, a pipe),
//! a plain log line now and then, so logs stay readable.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::send::Counters;

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
                    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(log_every) {
                        let done = counters.done.load(Ordering::Relaxed);
                        eprintln!(
                            "progress: {done}/{total} rows ({:.0}%), {}",
                            done as f64 * 100.0 / total as f64,
                            line(&counters, started)
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
