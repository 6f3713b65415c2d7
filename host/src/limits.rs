//! The two limits of one request: run time and wall time.
//!
//! - **Run time** ([`crate::HostConfig::request_deadline`]): how long the guest may be
//!   *running* — executing guest code, or host code it called that runs inline on its
//!   thread (a SQLite statement, a busy-wait on a lock). What stops a component that
//!   loops.
//! - **Wall time** ([`crate::HostConfig::request_wall_limit`]): how long the run may last
//!   at all, waits included. What bounds a request a component holds open on purpose (a
//!   long-poll, an approval waiting for a person), and a guest that waits forever.
//!
//! How run time is measured. A guest that waits — `std::thread::sleep` (a WASI clock
//! poll), a pool or write-gate wait, outbound HTTP, a self request, a response body the
//! client reads slowly — waits in an async host call: its fiber suspends and the run's
//! future returns `Pending` until the wait is over. [`metered`] wraps that future and
//! times every `Pending` stretch; run time is the run's wall time minus those stretches.
//! SQLite statements run inline (no `Pending`), so their time counts, as it should: it
//! is CPU spent for this request. Time before the first poll (waiting for a blocking
//! thread) does not count; the epoch callback's own yields are suspensions of a few
//! microseconds.
//!
//! Why not the epoch callback's gaps alone (charge each callback the time since the
//! previous one, capped at a tick or two, since a longer gap means the guest was in the
//! host)? A waiting guest wakes up after every sleep, runs a few microseconds and
//! crosses an epoch boundary each time: each wake-up would be charged up to the cap. The
//! feed's long-poll sleeps 20 ms between checks (`POLL_INTERVAL`), so a capped gap
//! (10-20 ms per wake-up) charges it 50-100 % of its wall time, and a 300 s hold would be
//! killed by a 60 s run-time deadline. Timing the suspensions themselves charges it the
//! microseconds it really runs.
//!
//! The epoch deadline callback ([`crate::instance`]) checks [`RunMeter::exceeded`] every
//! tick while guest code runs and traps when either limit is passed; the SQLite stop
//! check asks the same; the server's timeout ends a run (and answers 504 when no
//! response head was sent) at the wall limit, since a suspended guest reaches no
//! callback.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The limits one guest run gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Run time the guest may use (waits not counted).
    pub run_time: Duration,
    /// When the run must be over, waits included.
    pub wall_at: Instant,
}

/// Which limit a run passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// It ran (executed) for longer than its run-time deadline.
    RunTime(Duration),
    /// It lasted longer than its wall-time limit.
    Wall,
}

/// The run-time account of one guest run, shared by the run's future ([`metered`]), the
/// epoch callback, the SQLite stop check and outbound HTTP (a self request gets what
/// is left).
#[derive(Debug)]
pub struct RunMeter {
    started: Instant,
    limits: RunLimits,
    /// Nanoseconds spent suspended, over finished suspensions.
    suspended_ns: AtomicU64,
    /// While suspended: when that began, as nanoseconds since `started` plus one; 0
    /// while running.
    suspended_since: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl RunMeter {
    /// A meter for a run that has not started: suspended until first polled.
    pub fn new(limits: RunLimits) -> Self {
        RunMeter {
            started: Instant::now(),
            limits,
            suspended_ns: AtomicU64::new(0),
            suspended_since: AtomicU64::new(1),
        }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> RunLimits {
        self.limits
    }

    /// Run time used so far.
    pub fn run_time(&self) -> Duration {
        let now = nanos(self.started.elapsed());
        let mut waited = self.suspended_ns.load(Ordering::Relaxed);
        let since = self.suspended_since.load(Ordering::Relaxed);
        if since != 0 {
            waited = waited.saturating_add(now.saturating_sub(since - 1));
        }
        Duration::from_nanos(now.saturating_sub(waited))
    }

    /// Run time still allowed.
    pub fn run_time_left(&self) -> Duration {
        self.limits.run_time.saturating_sub(self.run_time())
    }

    /// Which limit the run has passed, if any.
    pub fn exceeded(&self) -> Option<Exceeded> {
        if Instant::now() >= self.limits.wall_at {
            return Some(Exceeded::Wall);
        }
        let used = self.run_time();
        (used >= self.limits.run_time).then_some(Exceeded::RunTime(self.limits.run_time))
    }

    fn suspend(&self) {
        let now = nanos(self.started.elapsed());
        self.suspended_since
            .store(now.saturating_add(1), Ordering::Relaxed);
    }

    fn resume(&self) {
        let since = self.suspended_since.swap(0, Ordering::Relaxed);
        if since != 0 {
            let now = nanos(self.started.elapsed());
            self.suspended_ns
                .fetch_add(now.saturating_sub(since - 1), Ordering::Relaxed);
        }
    }
}

/// Run `run` (the guest's future), counting every stretch in which it is `Pending` as
/// waiting, not running.
pub async fn metered<F: Future>(meter: &RunMeter, run: F) -> F::Output {
    let mut run = pin!(run);
    std::future::poll_fn(|cx| {
        meter.resume();
        let polled = run.as_mut().poll(cx);
        if polled.is_pending() {
            meter.suspend();
        }
        polled
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(run_time: Duration, wall: Duration) -> RunMeter {
        RunMeter::new(RunLimits {
            run_time,
            wall_at: Instant::now() + wall,
        })
    }

    #[tokio::test]
    async fn waits_are_not_run_time() {
        let m = meter(Duration::from_secs(1), Duration::from_secs(60));
        // Not started yet: suspended.
        std::thread::sleep(Duration::from_millis(30));
        metered(&m, async {
            tokio::time::sleep(Duration::from_millis(300)).await;
        })
        .await;
        // The meter is running again after the future finished, but nothing ran.
        assert!(
            m.run_time() < Duration::from_millis(100),
            "{:?}",
            m.run_time()
        );
        assert_eq!(m.exceeded(), None);
    }

    #[tokio::test]
    async fn inline_work_is_run_time() {
        let m = meter(Duration::from_millis(100), Duration::from_secs(60));
        metered(&m, async {
            // Blocking inline, as a SQLite statement does.
            std::thread::sleep(Duration::from_millis(150));
        })
        .await;
        assert!(m.run_time() >= Duration::from_millis(150));
        assert_eq!(
            m.exceeded(),
            Some(Exceeded::RunTime(Duration::from_millis(100)))
        );
        assert!(m.run_time_left().is_zero());
    }

    #[test]
    fn the_wall_limit_passes_for_a_waiting_run() {
        let m = meter(Duration::from_secs(60), Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(40));
        assert!(m.run_time() < Duration::from_millis(20));
        assert_eq!(m.exceeded(), Some(Exceeded::Wall));
    }
}
