//! The worker pool: `--concurrency` workers on one shared cursor over the
//! plan (longest conversations first: list scheduling).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
    let pool = threads(settings.concurrency.max(1))?;
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
    let last_stretch = last_stretch(job.plan.iter().map(|c| c.entries.len()));
    let handed_out = AtomicBool::new(false);
    let errors = Mutex::new(Vec::new());
    // One worker on each thread of the pool: none waits for an idle thread
    // to steal its job.
    pool.broadcast(|_| {
        let mut worker = Worker::new(&shared, job.sink.handle(), job.bodies.reader());
        let mut result = Ok(());
        loop {
            let i = cursor.fetch_add(1, Ordering::SeqCst);
            let Some(conv) = job.plan.get(i) else { break };
            if Some(i) == last_stretch {
                job.sink.nearing_end();
            }
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
            job.sink.nearing_end();
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

/// A pool of `workers` threads, kept for the process's life and reused by
/// its later runs of that size. A rayon pool that is dropped lets its
/// threads exit on their own time, each unmapping its stack: 256 of them
/// doing so while the ledger thread sealed and folded the last of the
/// journal (unmapping its files too) held that up for 50-120 ms at 50 ms
/// and 256 workers, against under a millisecond with 16; dropped later,
/// they held up the exit instead. Kept, they sleep until the process
/// exits, which ends them at once.
fn threads(workers: usize) -> Result<Arc<rayon::ThreadPool>, SendError> {
    static POOL: Mutex<Option<Arc<rayon::ThreadPool>>> = Mutex::new(None);
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pool) = pool.as_ref().filter(|p| p.current_num_threads() == workers) {
        return Ok(Arc::clone(pool));
    }
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("send-{i}"))
        .build()
        .map_err(|source| SendError::Start { workers, source })?;
    // One of another size, from an earlier run in this process, goes.
    Ok(Arc::clone(pool.insert(Arc::new(built))))
}

/// The share of the plan's rows left to hand out at which the run is in
/// its last stretch (see [`Sink::nearing_end`](super::Sink::nearing_end)).
const LEFT_SHARE: usize = 8;

/// The index of the conversation whose taking leaves at most a
/// [`LEFT_SHARE`]th of the plan's rows to hand out, given each one's
/// rows; `None` for an empty plan.
fn last_stretch(sizes: impl Iterator<Item = usize> + Clone) -> Option<usize> {
    let total: usize = sizes.clone().sum();
    let mut left = total;
    sizes.enumerate().find_map(|(i, size)| {
        left -= size;
        (left * LEFT_SHARE <= total).then_some(i)
    })
}

#[cfg(test)]
mod tests {
    use super::{last_stretch, threads};

    #[test]
    fn the_last_stretch_starts_where_an_eighth_of_the_rows_is_left() {
        // 16 rows: taking the third leaves 2 (an eighth), the second 4.
        assert_eq!(last_stretch([8, 4, 2, 1, 1].into_iter()), Some(2));
        // 100 conversations of one row: 13 left after the 87th is more
        // than an eighth (12.5), 12 after the 88th (index 87) is not.
        assert_eq!(last_stretch(std::iter::repeat_n(1, 100)), Some(87));
        assert_eq!(last_stretch([5].into_iter()), Some(0));
        assert_eq!(last_stretch(std::iter::empty()), None);
    }

    #[test]
    fn a_later_run_of_the_same_size_reuses_the_threads() {
        let first = threads(3).unwrap();
        assert!(std::sync::Arc::ptr_eq(&first, &threads(3).unwrap()));
        let other = threads(5).unwrap();
        assert_eq!(other.current_num_threads(), 5);
        assert!(!std::sync::Arc::ptr_eq(&first, &other));
    }
}
