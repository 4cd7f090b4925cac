//! [`IdleTimeout`]: a body that fails when its source sends nothing for too long, so that a
//! client trickling a request body or an upstream stalling a response cannot hold a
//! gateway connection (and its slot) forever. A body that keeps moving may last as long as
//! it likes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// What an [`IdleTimeout`] body fails with.
#[derive(Debug)]
pub struct Stalled(pub Duration);

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "body stalled: no data for {:?}", self.0)
    }
}

impl std::error::Error for Stalled {}

/// `inner`, failing with [`Stalled`] when no frame comes for `idle`.
pub struct IdleTimeout {
    inner: Body,
    idle: Duration,
    // Armed while the inner body is pending; reset by every frame.
    timer: Pin<Box<Sleep>>,
    armed: bool,
}

impl IdleTimeout {
    /// Wraps `inner`.
    pub fn new(inner: Body, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            armed: false,
        }
    }

    /// As an axum body.
    pub fn wrap(inner: Body, idle: Duration) -> Body {
        Body::new(IdleTimeout::new(inner, idle))
    }
}

impl http_body::Body for IdleTimeout {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.armed {
                    let deadline = Instant::now() + this.idle;
                    this.timer.as_mut().reset(deadline);
                    this.armed = true;
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Stalled(this.idle))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
