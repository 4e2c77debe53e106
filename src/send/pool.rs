//! The worker pool: `--concurrency` workers on one shared cursor over the
//! plan (longest conversations first: list scheduling).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::client::Client;
use super::rate::RateLimiter;
use super::verdict::Verdict;
use super::worker::{Shared, Worker};
use super::{Job, SendError, Settings, Stop, StopReason};

/// Send every conversation of `job`. Returns why the run stopped early, if
/// it did; an error only when the pool could not start or a sink failed.
pub fn run(
    job: &Job<'_>,
    client: &Client,
    limiter: &RateLimiter,
    settings: &Settings,
    stop: &Stop,
) -> Result<Option<StopReason>, SendError> {
    let workers = settings.concurrency.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("send-{i}"))
        .build()
        .map_err(|source| SendError::Start { workers, source })?;
    let shared = Shared {
        client,
        limiter,
        settings,
        stop,
        verdict: Verdict::new(settings.down_after),
        used_today: AtomicU64::new(settings.requests_today),
        deferred: AtomicU64::new(0),
    };
    let cursor = AtomicUsize::new(0);
    let handed_out = AtomicBool::new(false);
    let errors = Mutex::new(Vec::new());
    // One worker on each thread of the pool: none waits for an idle thread
    // to steal its job.
    pool.broadcast(|_| {
        let mut worker = Worker::new(&shared, job.sink.handle(), job.bodies.reader());
        let mut result = Ok(());
        while let Some(conv) = job.plan.get(cursor.fetch_add(1, Ordering::SeqCst)) {
            result = worker.conversation(conv);
            if result.is_err() {
                // Whatever this worker cannot record, no other may send
                // past: the run stops.
                stop.set(StopReason::Sink);
                break;
            }
        }
        // The first worker out of work says so, once.
        if !handed_out.swap(true, Ordering::SeqCst) {
            job.sink.all_handed_out();
        }
        if let Err(e) = result.and_then(|()| worker.finish()) {
            errors.lock().unwrap_or_else(|e| e.into_inner()).push(e);
        }
    });
    // Conversations left for another day: the run pauses at the quota.
    if shared.deferred.load(Ordering::SeqCst) > 0 {
        stop.set(StopReason::Quota { flag: true });
    }
    let errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
    match errors.into_iter().next() {
        Some(e) => Err(SendError::Sink(e)),
        None => Ok(stop.get().cloned()),
    }
}
