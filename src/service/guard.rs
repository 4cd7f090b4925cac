//! What keeps a store, a limiter or a refused body from taking a request down: a panic
//! becomes a [`Failure::Panic`], a missed deadline a [`Failure::Timeout`].
//!
//! Deadlines use tokio's timer. A tokio runtime may be built without timers; whether the
//! runtime a service runs on has them is found out once, the first time the service needs a
//! deadline ([`Timers`]), not per request.

use std::cell::Cell;
use std::future::Future;
use std::panic::{self, catch_unwind, AssertUnwindSafe, PanicHookInfo};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;

use crate::chain::{AsError, Chain};

/// Why the store or the limiter did not answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failure<E> {
    Error(E),
    Timeout,
    Panic,
}

impl<E: AsError> std::fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Error(e) => Chain(e.as_error()).fmt(f),
            Failure::Timeout => f.write_str("timed out"),
            Failure::Panic => f.write_str("panicked"),
        }
    }
}

impl<E> Failure<E> {
    /// `error`, `timeout` or `panic`.
    #[cfg(feature = "metrics")]
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Failure::Error(_) => "error",
            Failure::Timeout => "timeout",
            Failure::Panic => "panic",
        }
    }
}

/// Runs a store's or a limiter's synchronous part: its answer, or `None` if it panicked.
pub(crate) fn catch_panic<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

/// Whether a service's runtime has timers: not known yet, yes, or no.
#[derive(Debug)]
pub(crate) struct Timers(AtomicU8);

impl Default for Timers {
    fn default() -> Self {
        Timers(AtomicU8::new(UNKNOWN))
    }
}

const UNKNOWN: u8 = 0;
const TOKIO: u8 = 1;
const NONE: u8 = 2;

/// The clock a deadline runs on, as found by [`Timers::clock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// The current tokio runtime's timer.
    Tokio,
    /// No timer (no runtime, or one built without timers): no deadline applies.
    None,
}

impl Timers {
    /// The clock of the runtime this thread runs in: probed the first time, inside a
    /// runtime, and remembered from then on.
    pub(crate) fn clock(&self) -> Clock {
        match self.0.load(Ordering::Relaxed) {
            TOKIO => Clock::Tokio,
            NONE => Clock::None,
            _ => {
                if tokio::runtime::Handle::try_current().is_err() {
                    // Not in a runtime (yet): nothing to remember.
                    return Clock::None;
                }
                let found = if runtime_has_timers() { TOKIO } else { NONE };
                self.0.store(found, Ordering::Relaxed);
                self.clock()
            }
        }
    }
}

impl Clock {
    /// A deadline `timeout` from now, if there is a clock.
    pub(crate) fn deadline(self, timeout: Duration) -> Option<Pin<Box<Sleep>>> {
        match self {
            Clock::Tokio => Some(Box::pin(tokio::time::sleep(timeout))),
            Clock::None => None,
        }
    }
}

/// Whether the current tokio runtime has timers.
///
/// Tokio has no query for it: making a `Sleep` in a runtime without timers panics. So this
/// makes one, once per service, with the panic hook silenced for this thread meanwhile (the
/// probe prints nothing; a panic on any other thread is reported as usual, and the hook in
/// place before is put back).
fn runtime_has_timers() -> bool {
    thread_local! {
        static PROBING: Cell<bool> = const { Cell::new(false) };
    }
    // One probe at a time, so that two never swap the hook over each other.
    static PROBE: Mutex<()> = Mutex::new(());
    let _one = PROBE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let previous: Arc<dyn Fn(&PanicHookInfo<'_>) + Send + Sync> = Arc::from(panic::take_hook());
    let forward = Arc::clone(&previous);
    panic::set_hook(Box::new(move |info| {
        if !PROBING.with(Cell::get) {
            forward(info)
        }
    }));
    PROBING.with(|p| p.set(true));
    let has = catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO))).is_ok();
    PROBING.with(|p| p.set(false));
    drop(panic::take_hook());
    panic::set_hook(Box::new(move |info| previous(info)));
    has
}

/// A deadline that starts the first time what it guards is not ready.
#[derive(Debug)]
pub(crate) struct Deadline {
    timeout: Duration,
    clock: Clock,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    pub(crate) fn new(timeout: Duration, clock: Clock) -> Self {
        Deadline {
            timeout,
            clock,
            sleep: None,
        }
    }

    /// Whether the deadline can pass at all.
    pub(crate) fn has_clock(&self) -> bool {
        self.clock == Clock::Tokio
    }

    /// Ready once the deadline has passed; never ready without a clock.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.sleep.is_none() {
            self.sleep = self.clock.deadline(self.timeout);
        }
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

/// Polls a store or limiter future, turning a panic into [`Failure::Panic`] and a missed
/// deadline into [`Failure::Timeout`].
pub(crate) fn poll_guarded<F, T, E>(
    fut: Pin<&mut F>,
    deadline: &mut Deadline,
    cx: &mut Context<'_>,
) -> Poll<Result<T, Failure<E>>>
where
    F: Future<Output = Result<T, E>>,
{
    match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
        Ok(Poll::Ready(r)) => Poll::Ready(r.map_err(Failure::Error)),
        Err(_) => Poll::Ready(Err(Failure::Panic)),
        Ok(Poll::Pending) => match deadline.poll_expired(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Failure::Timeout)),
            Poll::Pending => Poll::Pending,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn outside_a_runtime_there_is_no_clock_and_nothing_is_remembered() {
        let timers = Timers::default();
        assert_eq!(timers.clock(), Clock::None);
        assert_eq!(timers.0.load(Ordering::Relaxed), UNKNOWN);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async { assert_eq!(timers.clock(), Clock::Tokio) });
    }

    #[test]
    fn a_runtime_without_timers_is_found_once_and_silently() {
        static PRINTED: AtomicUsize = AtomicUsize::new(0);
        // Counts tokio's panic if it ever reaches the hook; every other panic passes on to
        // the hook that was there.
        let before: Arc<dyn Fn(&PanicHookInfo<'_>) + Send + Sync> = Arc::from(panic::take_hook());
        let forward = Arc::clone(&before);
        panic::set_hook(Box::new(move |info| {
            if info.to_string().contains("timers are disabled") {
                PRINTED.fetch_add(1, Ordering::SeqCst);
            }
            forward(info)
        }));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let timers = Timers::default();
        rt.block_on(async {
            for _ in 0..3 {
                assert_eq!(timers.clock(), Clock::None);
            }
            let mut deadline = Deadline::new(Duration::ZERO, timers.clock());
            let cx = &mut Context::from_waker(std::task::Waker::noop());
            assert_eq!(deadline.poll_expired(cx), Poll::Pending);
        });
        assert_eq!(timers.0.load(Ordering::Relaxed), NONE);
        assert_eq!(PRINTED.load(Ordering::SeqCst), 0);
        drop(panic::take_hook());
        panic::set_hook(Box::new(move |info| before(info)));
    }

    #[test]
    fn panics_and_deadlines_become_failures() {
        let cx = &mut Context::from_waker(std::task::Waker::noop());
        let mut none = Deadline::new(Duration::ZERO, Clock::None);
        let mut panics = std::pin::pin!(async { panic!("store panicked") });
        let polled: Poll<Result<(), Failure<()>>> = poll_guarded(panics.as_mut(), &mut none, cx);
        assert_eq!(polled, Poll::Ready(Err(Failure::Panic)));
        let mut fails = std::pin::pin!(async { Err::<(), _>("down") });
        assert_eq!(
            poll_guarded(fails.as_mut(), &mut none, cx),
            Poll::Ready(Err(Failure::Error("down")))
        );
        let mut hangs = std::pin::pin!(std::future::pending::<Result<(), ()>>());
        assert_eq!(poll_guarded(hangs.as_mut(), &mut none, cx), Poll::Pending);
        assert_eq!(catch_panic(|| 7), Some(7));
        assert_eq!(catch_panic(|| -> u8 { panic!("lookup panicked") }), None);
    }
}
