//! Reading a refused request's body before answering, so that an HTTP/1.1 keep-alive
//! connection can carry the next request.
//!
//! A server that answers without reading the request's body leaves those bytes on the
//! connection: it must then close it, and a client that already reused the connection loses
//! its next request. Like Go's `net/http` (which reads up to 256 KiB of an unread body) and
//! nginx (which discards it), the layer reads and discards a bounded amount, within a
//! deadline; past either bound it answers with `Connection: close` instead.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::EXPECT;
use http::{HeaderMap, Version};
use http_body::Body;
use pin_project_lite::pin_project;

use super::guard::{Clock, Deadline};

/// Default for the bytes of a refused request's body the layer reads to keep the connection
/// (as Go's `net/http` does): 256 KiB.
pub const DEFAULT_DRAIN_LIMIT: u64 = 256 * 1024;

/// Default for how long the layer waits for a refused request's body to arrive before it
/// answers with `Connection: close` instead: 1 second.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// How much of a refused body the layer reads, and for how long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DrainBound {
    pub(crate) max_bytes: u64,
    pub(crate) timeout: Duration,
}

impl DrainBound {
    pub(crate) const DEFAULT: DrainBound = DrainBound {
        max_bytes: DEFAULT_DRAIN_LIMIT,
        timeout: DEFAULT_DRAIN_TIMEOUT,
    };
}

/// What to do with a refused request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing to read (no body left, or HTTP/2 and HTTP/3, where dropping the body resets
    /// only its own stream): answer now.
    Answer,
    /// Read the body within the bound, then answer.
    Drain,
    /// Answer now with `Connection: close`: the body is announced above the bound, or the
    /// client waits for `100 Continue` before sending it.
    Close,
}

/// The plan for a refused request: its version, headers and what its body says of itself.
pub(crate) fn plan(
    version: Version,
    headers: &HeaderMap,
    end_stream: bool,
    announced: u64,
    bound: DrainBound,
) -> Plan {
    let http1 = matches!(
        version,
        Version::HTTP_09 | Version::HTTP_10 | Version::HTTP_11
    );
    if !http1 || end_stream {
        return Plan::Answer;
    }
    let expects_continue = headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue || announced > bound.max_bytes {
        Plan::Close
    } else {
        Plan::Drain
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// The whole body was read: the connection can carry the next request.
    Whole,
    /// Over the bound, past the deadline, or the body failed: close the connection.
    Close,
}

pin_project! {
    /// Reads and discards a body up to a bound and a deadline.
    pub(crate) struct Drain<B> {
        #[pin]
        body: B,
        left: u64,
        deadline: Deadline,
        // Set when there is nothing to read (the `Close` plan).
        done: Option<Drained>,
    }
}

impl<B> Drain<B> {
    /// A drain of `body` within `bound`, its deadline on `clock`; `plan` is [`Plan::Drain`]
    /// or [`Plan::Close`].
    pub(crate) fn new(body: B, plan: Plan, bound: DrainBound, clock: Clock) -> Self {
        Drain {
            body,
            left: bound.max_bytes,
            deadline: Deadline::new(bound.timeout, clock),
            done: (plan != Plan::Drain).then_some(Drained::Close),
        }
    }
}

impl<B: Body> Future for Drain<B> {
    type Output = Drained;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Drained> {
        let mut this = self.project();
        if let Some(done) = *this.done {
            return Poll::Ready(done);
        }
        loop {
            let frame = catch_unwind(AssertUnwindSafe(|| this.body.as_mut().poll_frame(cx)));
            let end = match frame {
                Ok(Poll::Ready(None)) => Drained::Whole,
                Ok(Poll::Ready(Some(Ok(frame)))) => {
                    // A frame without data (trailers) counts one byte, so that a body of
                    // endless empty frames is bounded too.
                    let len = frame
                        .data_ref()
                        .map_or(1, |d| bytes::Buf::remaining(d).max(1));
                    match this.left.checked_sub(len as u64) {
                        Some(left) => {
                            *this.left = left;
                            continue;
                        }
                        None => Drained::Close,
                    }
                }
                Ok(Poll::Ready(Some(Err(_)))) | Err(_) => Drained::Close,
                Ok(Poll::Pending) => {
                    if this.deadline.has_clock() {
                        match this.deadline.poll_expired(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(()) => Drained::Close,
                        }
                    } else {
                        // No timer to bound the wait: do not wait.
                        Drained::Close
                    }
                }
            };
            *this.done = Some(end);
            return Poll::Ready(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const B: DrainBound = DrainBound::DEFAULT;

    #[test]
    fn plans() {
        let none = HeaderMap::new();
        let mut expect = HeaderMap::new();
        expect.insert(EXPECT, HeaderValue::from_static("100-Continue"));
        let v11 = Version::HTTP_11;
        assert_eq!(plan(v11, &none, true, 0, B), Plan::Answer);
        assert_eq!(plan(v11, &none, false, 0, B), Plan::Drain);
        assert_eq!(plan(v11, &none, false, B.max_bytes, B), Plan::Drain);
        assert_eq!(plan(v11, &none, false, B.max_bytes + 1, B), Plan::Close);
        assert_eq!(plan(Version::HTTP_10, &none, false, 10, B), Plan::Drain);
        assert_eq!(plan(v11, &expect, false, 10, B), Plan::Close);
        assert_eq!(plan(v11, &expect, true, 0, B), Plan::Answer);
        for v in [Version::HTTP_2, Version::HTTP_3] {
            assert_eq!(plan(v, &none, false, u64::MAX, B), Plan::Answer);
        }
    }

    fn drain_now(body: String, max_bytes: u64) -> Poll<Drained> {
        let bound = DrainBound {
            max_bytes,
            timeout: Duration::from_secs(1),
        };
        let mut d = Box::pin(Drain::new(body, Plan::Drain, bound, Clock::None));
        d.as_mut()
            .poll(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[test]
    fn drains_up_to_the_bound() {
        assert_eq!(drain_now("x".repeat(10), 10), Poll::Ready(Drained::Whole));
        assert_eq!(drain_now("x".repeat(11), 10), Poll::Ready(Drained::Close));
        assert_eq!(drain_now(String::new(), 0), Poll::Ready(Drained::Whole));
    }

    #[test]
    fn a_pending_body_without_a_timer_is_not_waited_for() {
        struct Never;
        impl Body for Never {
            type Data = bytes::Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
                Poll::Pending
            }
        }
        let mut d = Box::pin(Drain::new(Never, Plan::Drain, B, Clock::None));
        let cx = &mut Context::from_waker(std::task::Waker::noop());
        assert_eq!(d.as_mut().poll(cx), Poll::Ready(Drained::Close));
    }

    #[test]
    fn a_panicking_body_closes() {
        struct Panics;
        impl Body for Panics {
            type Data = bytes::Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
                panic!("body panicked")
            }
        }
        let mut d = Box::pin(Drain::new(Panics, Plan::Drain, B, Clock::None));
        let cx = &mut Context::from_waker(std::task::Waker::noop());
        assert_eq!(d.as_mut().poll(cx), Poll::Ready(Drained::Close));
    }
}
