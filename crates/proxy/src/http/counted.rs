//! A response body that counts the bytes it passes into a cluster's counter.
//!
//! The count is kept locally and added once when the body ends or is dropped, so streaming a
//! body costs no atomic operation per frame.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;

pub struct Counted<B> {
    inner: B,
    bytes: u64,
    counter: Counter,
}

impl<B> Counted<B> {
    pub fn new(inner: B, counter: Counter) -> Self {
        Counted {
            inner,
            bytes: 0,
            counter,
        }
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.counter.inc_by(self.bytes);
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.bytes += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
