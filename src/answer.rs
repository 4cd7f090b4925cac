//! [`Answer`]: what a store or a limiter says, now or later.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

/// The answer of a store or a limiter: available now, or a future that yields it.
///
/// A store that can answer synchronously (the in-memory store, a cache hit) says
/// [`Answer::Now`] and the layer decides the request inside `Service::call`, with no
/// state machine, no allocation and no extra poll; one that must do I/O says
/// [`Answer::Later`] with its future.
#[derive(Debug)]
pub enum Answer<T, F> {
    /// The result, already known.
    Now(T),
    /// A future that yields the result.
    Later(F),
}

impl<T, F: Future<Output = T>> IntoFuture for Answer<T, F> {
    type Output = T;
    type IntoFuture = AnswerFuture<T, F>;

    /// Awaiting an answer yields its result, now or later: handy for a store that wraps
    /// another (`inner.lookup(&hash).await`).
    fn into_future(self) -> AnswerFuture<T, F> {
        AnswerFuture {
            inner: match self {
                Answer::Now(value) => AnswerInner::Now { value: Some(value) },
                Answer::Later(fut) => AnswerInner::Later { fut },
            },
        }
    }
}

pin_project! {
    /// The future of an awaited [`Answer`].
    pub struct AnswerFuture<T, F> {
        #[pin]
        inner: AnswerInner<T, F>,
    }
}

pin_project! {
    #[project = AnswerProj]
    enum AnswerInner<T, F> {
        Now { value: Option<T> },
        Later { #[pin] fut: F },
    }
}

impl<T, F: Future<Output = T>> Future for AnswerFuture<T, F> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.project().inner.project() {
            AnswerProj::Now { value } => {
                Poll::Ready(value.take().expect("polled after completion"))
            }
            AnswerProj::Later { fut } => fut.poll(cx),
        }
    }
}
