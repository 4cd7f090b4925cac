//! [`Either`]: one of two stores or limiters, chosen at run time.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::answer::Answer;
use crate::key::{KeyHash, KeyRecord};
use crate::limit::{LimitResult, Quotas, RateLimiter};
use crate::store::{KeyStore, LookupResult};

/// One of two key stores, or one of two rate limiters: the back-end a deployment picks when
/// it starts (from its configuration), with no dispatch code of its own.
///
/// `Either<L, R>` is a [`KeyStore`] when both sides are, and a [`RateLimiter`] when both
/// sides are. It answers exactly as the side it holds: an [`Answer::Now`] stays now (no
/// allocation), an [`Answer::Later`] is that side's future inside an [`EitherFuture`].
///
/// ```
/// use ark_auth::key::KeyHash;
/// use ark_auth::store::{Answer, BoxLookup, KeyStore, LookupResult};
/// use ark_auth::{ArkAuthLayer, Either, MemoryKeyStore};
///
/// /// A store asking a remote key service (here, one that knows no key).
/// #[derive(Clone)]
/// struct Remote;
///
/// impl KeyStore for Remote {
///     type Future = BoxLookup;
///     fn lookup(&self, _hash: &KeyHash) -> Answer<LookupResult, BoxLookup> {
///         Answer::Later(Box::pin(async { Ok(None) }))
///     }
/// }
///
/// let remote = std::env::var("KEY_SERVICE_URL").is_ok();
/// let store = if remote {
///     Either::Right(Remote)
/// } else {
///     Either::Left(MemoryKeyStore::new())
/// };
/// let layer = ArkAuthLayer::new(store);
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Either<L, R> {
    /// The first back-end.
    Left(L),
    /// The second back-end.
    Right(R),
}

pin_project! {
    /// The future of an [`Either`] store or limiter that answered later: the future of the
    /// side it holds.
    #[derive(Debug)]
    pub struct EitherFuture<L, R> {
        #[pin]
        side: Side<L, R>,
    }
}

pin_project! {
    #[project = SideProj]
    #[derive(Debug)]
    enum Side<L, R> {
        Left { #[pin] fut: L },
        Right { #[pin] fut: R },
    }
}

impl<L, R> EitherFuture<L, R> {
    fn left(fut: L) -> Self {
        EitherFuture {
            side: Side::Left { fut },
        }
    }

    fn right(fut: R) -> Self {
        EitherFuture {
            side: Side::Right { fut },
        }
    }
}

impl<L, R> Future for EitherFuture<L, R>
where
    L: Future,
    R: Future<Output = L::Output>,
{
    type Output = L::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<L::Output> {
        match self.project().side.project() {
            SideProj::Left { fut } => fut.poll(cx),
            SideProj::Right { fut } => fut.poll(cx),
        }
    }
}

/// `answer` with its future, if any, wrapped by `wrap`.
fn wrapped<T, F, G>(answer: Answer<T, F>, wrap: impl FnOnce(F) -> G) -> Answer<T, G> {
    match answer {
        Answer::Now(value) => Answer::Now(value),
        Answer::Later(fut) => Answer::Later(wrap(fut)),
    }
}

impl<L: KeyStore, R: KeyStore> KeyStore for Either<L, R> {
    type Future = EitherFuture<L::Future, R::Future>;

    fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, Self::Future> {
        match self {
            Either::Left(store) => wrapped(store.lookup(hash), EitherFuture::left),
            Either::Right(store) => wrapped(store.lookup(hash), EitherFuture::right),
        }
    }
}

impl<L: RateLimiter, R: RateLimiter> RateLimiter for Either<L, R> {
    type Future = EitherFuture<L::Future, R::Future>;

    fn acquire(&self, key: &KeyRecord, quota: &Quotas) -> Answer<LimitResult, Self::Future> {
        match self {
            Either::Left(limiter) => wrapped(limiter.acquire(key, quota), EitherFuture::left),
            Either::Right(limiter) => wrapped(limiter.acquire(key, quota), EitherFuture::right),
        }
    }

    fn peek(&self, key: &KeyRecord, quota: &Quotas) -> Answer<LimitResult, Self::Future> {
        match self {
            Either::Left(limiter) => wrapped(limiter.peek(key, quota), EitherFuture::left),
            Either::Right(limiter) => wrapped(limiter.peek(key, quota), EitherFuture::right),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::{ready, Ready};
    use std::num::NonZeroU32;
    use std::sync::Arc;

    use super::*;
    use crate::key::generate_key;
    use crate::limit::{LimiterError, MemoryRateLimiter, Quota};
    use crate::store::MemoryKeyStore;
    use crate::token::Environment;

    /// A store answering later what its inner store knows.
    #[derive(Clone, Default)]
    struct LaterStore(MemoryKeyStore);

    impl KeyStore for LaterStore {
        type Future = Ready<LookupResult>;
        fn lookup(&self, hash: &KeyHash) -> Answer<LookupResult, Self::Future> {
            Answer::Later(ready(match self.0.lookup(hash) {
                Answer::Now(r) => r,
                Answer::Later(_) => unreachable!("the in-memory store answers now"),
            }))
        }
    }

    /// A limiter that always fails, later.
    #[derive(Clone)]
    struct Down;

    impl RateLimiter for Down {
        type Future = Ready<LimitResult>;
        fn acquire(&self, _: &KeyRecord, _: &Quotas) -> Answer<LimitResult, Self::Future> {
            Answer::Later(ready(Err(LimiterError::new("down"))))
        }
        fn peek(&self, _: &KeyRecord, _: &Quotas) -> Answer<LimitResult, Self::Future> {
            Answer::Later(ready(Err(LimiterError::new("down"))))
        }
    }

    fn record() -> KeyRecord {
        generate_key(Environment::Test).unwrap().record
    }

    fn quota(n: u32) -> Quotas {
        Quota::per_second(NonZeroU32::new(n).unwrap()).into()
    }

    /// `answer` and whether it was answered now.
    async fn settle<T, F: Future<Output = T>>(answer: Answer<T, F>) -> (T, bool) {
        match answer {
            Answer::Now(value) => (value, true),
            Answer::Later(fut) => (fut.await, false),
        }
    }

    #[tokio::test]
    async fn a_store_answers_as_the_side_it_holds() {
        let (kept, other) = (record(), record());
        let memory = MemoryKeyStore::from_records([kept.clone()]).unwrap();
        let later = LaterStore(memory.clone());
        let left: Either<MemoryKeyStore, LaterStore> = Either::Left(memory);
        let right: Either<MemoryKeyStore, LaterStore> = Either::Right(later);
        for (store, now) in [(left, true), (right, false)] {
            let (found, was_now) = settle(store.lookup(kept.hash())).await;
            assert_eq!(was_now, now);
            assert_eq!(found.unwrap().unwrap().id(), kept.id());
            let (missing, was_now) = settle(store.lookup(other.hash())).await;
            assert_eq!(was_now, now);
            assert!(missing.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn a_limiter_answers_as_the_side_it_holds() {
        let key = record();
        let memory: Either<MemoryRateLimiter, Down> = Either::Left(MemoryRateLimiter::new());
        let (peeked, now) = settle(memory.peek(&key, &quota(2))).await;
        assert!(now);
        assert_eq!(peeked.unwrap().remaining, 2, "peek counts nothing");
        for remaining in [1, 0] {
            let (d, _) = settle(memory.acquire(&key, &quota(2))).await;
            let d = d.unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, remaining);
        }
        let (d, _) = settle(memory.acquire(&key, &quota(2))).await;
        assert!(!d.unwrap().allowed);

        let down: Either<MemoryRateLimiter, Down> = Either::Right(Down);
        for answer in [down.acquire(&key, &quota(2)), down.peek(&key, &quota(2))] {
            let (failed, now) = settle(answer).await;
            assert!(!now);
            assert!(failed.is_err());
        }
    }

    #[tokio::test]
    async fn either_serves_behind_the_layer() {
        use crate::service::ArkAuthLayer;
        use tower::{ServiceBuilder, ServiceExt};

        let key = generate_key(Environment::Test).unwrap();
        let token = key.plaintext.expose_secret().to_owned();
        let store = LaterStore(MemoryKeyStore::from_records([key.record]).unwrap());
        let store: Either<MemoryKeyStore, Arc<LaterStore>> = Either::Right(Arc::new(store));
        let limiter: Either<Down, MemoryRateLimiter> = Either::Right(MemoryRateLimiter::new());
        let app = ServiceBuilder::new()
            .layer(ArkAuthLayer::new(store).rate_limiter(limiter))
            .service_fn(|_req: http::Request<String>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            });
        let req = |token: &str| {
            http::Request::get("/")
                .header("authorization", format!("Bearer {token}"))
                .body(String::new())
                .unwrap()
        };
        let ok = app.clone().oneshot(req(&token)).await.unwrap();
        assert_eq!(ok.status(), http::StatusCode::OK);
        assert_eq!(ok.headers()["x-ratelimit-remaining"], "9");
        let unknown = app
            .oneshot(req("ark_test_0000000000000000000000"))
            .await
            .unwrap();
        assert_eq!(unknown.status(), http::StatusCode::UNAUTHORIZED);
    }
}
