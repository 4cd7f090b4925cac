//! [`Answer`]: what a store or a limiter says, now or later; [`Answer::map`] and
//! [`Answer::boxed`] to adapt one store's or limiter's answer into another's.

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

impl<T, F: Future<Output = T>> Answer<T, F> {
    /// Applies `f` to the result: at once for [`Answer::Now`], when the future completes for
    /// [`Answer::Later`] (no allocation either way). For a store or a limiter that wraps
    /// another and changes what it says.
    ///
    /// ```
    /// use ark_auth::store::Answer;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let now: Answer<u32, std::future::Ready<u32>> = Answer::Now(2);
    /// assert!(matches!(now.map(|n| n * 10), Answer::Now(20)));
    ///
    /// let later: Answer<u32, _> = Answer::Later(async { 3 });
    /// assert_eq!(later.map(|n| n * 10).await, 30);
    /// # }
    /// ```
    pub fn map<U, G: FnOnce(T) -> U>(self, f: G) -> Answer<U, MapFuture<F, G>> {
        match self {
            Answer::Now(value) => Answer::Now(f(value)),
            Answer::Later(fut) => Answer::Later(MapFuture { fut, f: Some(f) }),
        }
    }

    /// The same answer with its future boxed: one type for any store's or limiter's answer
    /// ([`BoxLookup`](crate::store::BoxLookup), [`BoxLimit`](crate::limit::BoxLimit)), for
    /// a store or a limiter that picks among others at run time.
    ///
    /// ```
    /// use ark_auth::key::KeyHash;
    /// use ark_auth::store::{Answer, BoxLookup, KeyStore, LookupResult};
    /// use ark_auth::MemoryKeyStore;
    ///
    /// fn lookup(store: &MemoryKeyStore, hash: &KeyHash) -> Answer<LookupResult, BoxLookup> {
    ///     store.lookup(hash).boxed()
    /// }
    /// # let store = MemoryKeyStore::new();
    /// # assert!(matches!(lookup(&store, &KeyHash::from_bytes([1; 32])), Answer::Now(Ok(None))));
    /// ```
    pub fn boxed(self) -> Answer<T, Pin<Box<dyn Future<Output = T> + Send>>>
    where
        F: Send + 'static,
    {
        match self {
            Answer::Now(value) => Answer::Now(value),
            Answer::Later(fut) => Answer::Later(Box::pin(fut)),
        }
    }
}

pin_project! {
    /// The future of a [mapped](Answer::map) [`Answer::Later`].
    pub struct MapFuture<F, G> {
        #[pin]
        fut: F,
        f: Option<G>,
    }
}

impl<F: Future, G: FnOnce(F::Output) -> U, U> Future for MapFuture<F, G> {
    type Output = U;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<U> {
        let this = self.project();
        let value = std::task::ready!(this.fut.poll(cx));
        let f = this.f.take().expect("polled after completion");
        Poll::Ready(f(value))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A future that is pending on its first poll, so a mapped answer must wait for it.
    fn pending_once(value: u32) -> impl Future<Output = u32> + Send {
        let mut polled = false;
        std::future::poll_fn(move |cx| {
            if polled {
                Poll::Ready(value)
            } else {
                polled = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
    }

    #[tokio::test]
    async fn map_applies_now_and_later_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let count = |n: u32| {
            calls.fetch_add(1, Ordering::SeqCst);
            n + 1
        };
        let now: Answer<u32, std::future::Ready<u32>> = Answer::Now(1);
        assert!(matches!(now.map(count), Answer::Now(2)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let later = Answer::Later(pending_once(41)).map(count);
        assert!(matches!(later, Answer::Later(_)));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "not before the future completes"
        );
        assert_eq!(later.await, 42);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn boxed_keeps_now_and_the_later_value() {
        let now: Answer<u32, std::future::Ready<u32>> = Answer::Now(7);
        assert!(matches!(now.boxed(), Answer::Now(7)));
        let later = Answer::Later(pending_once(8)).boxed();
        assert!(matches!(later, Answer::Later(_)));
        assert_eq!(later.await, 8);
        // One type for answers of different futures.
        type Boxed = Pin<Box<dyn Future<Output = u32> + Send>>;
        let both: [Answer<u32, Boxed>; 2] = [
            Answer::Later(pending_once(1)).boxed(),
            Answer::Later(std::future::ready(2)).boxed(),
        ];
        let mut sum = 0;
        for a in both {
            sum += a.await;
        }
        assert_eq!(sum, 3);
    }
}
