//! The layer's response body: the inner service's body, or the layer's own JSON.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// Response body of [`ArkAuth`](crate::ArkAuth): either the inner service's body,
    /// untouched, or the JSON of a rejection.
    ///
    /// Works with any inner body whose data type can be made from [`Bytes`] (axum's `Body`,
    /// hyper's `Incoming`, `http_body_util` bodies, tonic's bodies).
    pub struct ArkAuthBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        // The JSON of a rejection in two frames: the part shared by every refusal of its kind,
        // then the request id and closing braces.
        Rejection { head: Option<Bytes>, tail: Option<Bytes> },
    }
}

impl<B> ArkAuthBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        ArkAuthBody {
            kind: Kind::Inner { body },
        }
    }

    /// A body with no data (the layer's gRPC answers).
    pub(crate) fn empty() -> Self {
        ArkAuthBody {
            kind: Kind::Rejection {
                head: None,
                tail: None,
            },
        }
    }

    pub(crate) fn rejection(head: Bytes, tail: Bytes) -> Self {
        ArkAuthBody {
            kind: Kind::Rejection {
                head: Some(head),
                tail: Some(tail),
            },
        }
    }
}

impl<B: Default> Default for ArkAuthBody<B> {
    fn default() -> Self {
        ArkAuthBody::inner(B::default())
    }
}

impl<B> std::fmt::Debug for ArkAuthBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("ArkAuthBody::Inner"),
            Kind::Rejection { .. } => f.write_str("ArkAuthBody::Rejection"),
        }
    }
}

impl<B> Body for ArkAuthBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { head, tail } => Poll::Ready(
                head.take()
                    .or_else(|| tail.take())
                    .map(|d| Ok(Frame::data(B::Data::from(d)))),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { head, tail } => head.is_none() && tail.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { head, tail } => {
                let len = |d: &Option<Bytes>| d.as_ref().map_or(0, |d| d.len() as u64);
                SizeHint::with_exact(len(head) + len(tail))
            }
        }
    }
}
