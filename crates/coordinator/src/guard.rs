//! Runs one handler or step future in isolation: a panic is caught (with its message and
//! location), and a future still pending at its deadline is abandoned.
//!
//! The timer is only created if the future does not finish on its first poll, so the common case
//! of a handler that enqueues work and returns costs no timer registration (and no read of the
//! runtime's clock).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// How a guarded future ended.
pub(crate) enum Guarded<T> {
    Finished(T),
    Panicked {
        message: String,
        location: Option<String>,
    },
    TimedOut,
}

pub(crate) struct Guard<F> {
    fut: F,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<F: Future + Unpin> Guard<F> {
    /// Guards `fut`, which may stay pending for at most `timeout` from its first poll.
    pub(crate) fn new(fut: F, timeout: Duration) -> Self {
        install_panic_hook();
        Self {
            fut,
            timeout,
            sleep: None,
        }
    }
}

impl<F: Future + Unpin> Future for Guard<F> {
    type Output = Guarded<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        CAPTURING.with(|c| c.set(c.get() + 1));
        let polled = panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut this.fut).poll(cx)));
        CAPTURING.with(|c| c.set(c.get() - 1));
        match polled {
            Ok(Poll::Ready(out)) => return Poll::Ready(Guarded::Finished(out)),
            Ok(Poll::Pending) => {}
            Err(payload) => {
                let (message, location) = LAST_PANIC
                    .with(|p| p.borrow_mut().take())
                    .unwrap_or_else(|| (payload_message(&*payload), None));
                return Poll::Ready(Guarded::Panicked { message, location });
            }
        }
        let timeout = this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Guarded::TimedOut),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Runs `f`, turning a panic into its message (and location) without printing it.
pub(crate) fn catch_quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_panic_hook();
    CAPTURING.with(|c| c.set(c.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CAPTURING.with(|c| c.set(c.get() - 1));
    result.map_err(|payload| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .map_or_else(|| payload_message(&*payload), |(message, _)| message)
    })
}

thread_local! {
    /// Non-zero while a guarded future is being polled on this thread.
    static CAPTURING: Cell<u32> = const { Cell::new(0) };
    /// The message and location of the last panic caught while capturing.
    static LAST_PANIC: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Chains a panic hook that records panics inside guarded futures (they are reported in the
/// dispatch report and logged at ERROR) and leaves every other panic to the previous hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) > 0 {
                let message = payload_message(info.payload());
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                LAST_PANIC.with(|p| *p.borrow_mut() = Some((message, location)));
            } else {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn guard<F: Future>(fut: F, timeout: Duration) -> Guarded<F::Output> {
        Guard::new(Box::pin(fut), timeout).await
    }

    #[tokio::test]
    async fn finished_futures_pass_their_output_through() {
        assert!(matches!(
            guard(async { 7 }, Duration::from_secs(1)).await,
            Guarded::Finished(7)
        ));
    }

    #[tokio::test]
    async fn panics_are_caught_with_message_and_location() {
        let out = guard(
            async {
                if true {
                    panic!("boom {}", 42);
                }
            },
            Duration::from_secs(1),
        )
        .await;
        let Guarded::Panicked { message, location } = out else {
            panic!("expected a panic")
        };
        assert_eq!(message, "boom 42");
        assert!(location.unwrap().contains("guard.rs"));
    }

    #[tokio::test(start_paused = true)]
    async fn pending_futures_time_out_at_the_deadline() {
        let out = guard(std::future::pending::<()>(), Duration::from_millis(50)).await;
        assert!(matches!(out, Guarded::TimedOut));
    }
}
