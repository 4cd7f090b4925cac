//! `X-Request-Id` for the reference pipeline, so that it writes what ark-auth's layer writes
//! by default on the responses it passes on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ark_auth::response::X_REQUEST_ID;
use ark_auth::RequestId;
use http::header::{Entry, HeaderValue};
use http::{Request, Response};
use tower::{Layer, Service};

/// The reference's `X-Request-Id`: what ark-auth's layer writes by default on the responses
/// it passes on (the request's valid `X-Request-Id`, otherwise a fresh `req_` id, through
/// ark-auth's own `RequestId`), on responses without one.
#[derive(Clone)]
pub struct EchoRequestIdLayer;

impl<S> Layer<S> for EchoRequestIdLayer {
    type Service = EchoRequestId<S>;
    fn layer(&self, inner: S) -> EchoRequestId<S> {
        EchoRequestId(inner)
    }
}

#[derive(Clone)]
pub struct EchoRequestId<S>(S);

impl<S, B, RB> Service<Request<B>> for EchoRequestId<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = EchoFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let id = RequestId::from_headers(req.headers()).header_value();
        EchoFuture {
            fut: self.0.call(req),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct EchoFuture<F> {
        #[pin]
        fut: F,
        id: Option<HeaderValue>,
    }
}

impl<F, RB, E> Future for EchoFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.fut.poll(cx))?;
        if let (Entry::Vacant(slot), Some(id)) =
            (res.headers_mut().entry(&X_REQUEST_ID), this.id.take())
        {
            slot.insert(id);
        }
        Poll::Ready(Ok(res))
    }
}
