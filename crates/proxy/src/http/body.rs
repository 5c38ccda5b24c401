//! The request body as sent upstream: streamed through as it arrives while a bounded copy is
//! kept, so a retry can replay it and a mirror can send it once it is complete.
//!
//! Nothing waits for the whole body before the first attempt starts (a gRPC stream would
//! deadlock): the first attempt pulls from the client and every frame is copied aside until the
//! copy would exceed [`REPLAY_LIMIT`]. Past that the body streams on for the current attempt
//! only, and retries and mirrors are off for this request, as with Envoy's buffer limit.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::BoxError;

/// Largest request body kept for retries and mirrors.
pub const REPLAY_LIMIT: usize = 64 * 1024;

enum Stored {
    Data(Bytes),
    Trailers(HeaderMap),
}

impl Stored {
    fn frame(&self) -> Frame<Bytes> {
        match self {
            Stored::Data(b) => Frame::data(b.clone()),
            Stored::Trailers(t) => Frame::trailers(t.clone()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Frames are still arriving and every one so far is kept.
    Streaming,
    /// The client sent the whole body and it is all kept.
    Complete,
    /// The body outgrew the limit: only the attempt that read it all may continue.
    Overflowed,
    /// The client's body failed.
    Failed,
}

struct Inner {
    source: Option<Incoming>,
    frames: Vec<Stored>,
    bytes: usize,
    /// Frames taken from the client so far.
    pulled: usize,
    limit: usize,
    phase: Phase,
    /// The attempt allowed to pull from the client; older attempts are cut off.
    active: u64,
    /// Attempt bodies alive that may still pull.
    pullers: usize,
    /// The [`Replay`] is alive, so another attempt may come.
    owner: bool,
    /// Mirrors waiting for more of the body.
    waiters: Vec<Waker>,
    /// The client's size hint, for attempts that start from the first frame.
    hint: SizeHint,
}

impl Inner {
    fn wake(&mut self) {
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// The request body of one downstream request, shared by its attempts and mirrors.
pub struct Replay {
    inner: Arc<Mutex<Inner>>,
    generation: u64,
}

impl Replay {
    pub fn new(body: Incoming, limit: usize) -> Replay {
        let empty = body.is_end_stream();
        let hint = body.size_hint();
        Replay {
            inner: Arc::new(Mutex::new(Inner {
                source: (!empty).then_some(body),
                frames: Vec::new(),
                bytes: 0,
                pulled: 0,
                limit,
                phase: if empty {
                    Phase::Complete
                } else {
                    Phase::Streaming
                },
                active: 0,
                pullers: 0,
                owner: true,
                waiters: Vec::new(),
                hint,
            })),
            generation: 0,
        }
    }

    /// The body for the next attempt: it replays what was kept, then continues from the client.
    /// Any earlier attempt's body fails from now on.
    pub fn attempt(&mut self) -> UpstreamBody {
        self.generation += 1;
        let mut g = lock(&self.inner);
        g.active = self.generation;
        g.pullers += 1;
        UpstreamBody {
            inner: self.inner.clone(),
            pos: 0,
            generation: self.generation,
        }
    }

    /// Whether another attempt can still send the whole body.
    pub fn replayable(&self) -> bool {
        matches!(lock(&self.inner).phase, Phase::Streaming | Phase::Complete)
    }

    /// A copy of the whole body once the client has sent it, for a mirror; `None` if it
    /// outgrew the limit, failed, or nobody is left to read it.
    pub fn copy(&self) -> impl Future<Output = Option<UpstreamBody>> + Send + 'static {
        let inner = self.inner.clone();
        std::future::poll_fn(move |cx| {
            let mut g = lock(&inner);
            match g.phase {
                Phase::Complete => Poll::Ready(Some(UpstreamBody {
                    inner: inner.clone(),
                    pos: 0,
                    generation: 0,
                })),
                Phase::Overflowed | Phase::Failed => Poll::Ready(None),
                Phase::Streaming if !g.owner && g.pullers == 0 => Poll::Ready(None),
                Phase::Streaming => {
                    g.waiters.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        let mut g = lock(&self.inner);
        g.owner = false;
        g.wake();
    }
}

/// One attempt's (or one mirror's) view of the request body.
pub struct UpstreamBody {
    inner: Arc<Mutex<Inner>>,
    /// Frames this body has yielded.
    pos: usize,
    /// The attempt it belongs to; 0 for a mirror's copy, which never pulls from the client.
    generation: u64,
}

impl UpstreamBody {
    /// An empty body (for requests built by the proxy itself).
    pub fn empty() -> UpstreamBody {
        let mut replay = Replay {
            inner: Arc::new(Mutex::new(Inner {
                source: None,
                frames: Vec::new(),
                bytes: 0,
                pulled: 0,
                limit: 0,
                phase: Phase::Complete,
                active: 0,
                pullers: 0,
                owner: true,
                waiters: Vec::new(),
                hint: SizeHint::with_exact(0),
            })),
            generation: 0,
        };
        replay.attempt()
    }

    /// Takes the next frame from the client, keeping a copy while within the limit.
    fn pull(
        &mut self,
        g: &mut Inner,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(source) = g.source.as_mut() else {
            if g.phase == Phase::Streaming {
                g.phase = Phase::Complete;
            }
            g.wake();
            return Poll::Ready(None);
        };
        match Pin::new(source).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                g.source = None;
                if g.phase == Phase::Streaming {
                    g.phase = Phase::Complete;
                }
                g.wake();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                g.source = None;
                g.phase = Phase::Failed;
                g.wake();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                g.pulled += 1;
                self.pos += 1;
                // A sender framed by Content-Length stops polling after the last byte, so the
                // end is taken from the client's body rather than from a final `None`.
                let ended = g.source.as_ref().is_some_and(|s| s.is_end_stream());
                if ended {
                    g.source = None;
                }
                if g.phase == Phase::Streaming {
                    let size = frame.data_ref().map_or(0, |d| d.len());
                    if g.bytes + size > g.limit {
                        g.phase = Phase::Overflowed;
                        g.frames = Vec::new();
                    } else if let Some(d) = frame.data_ref() {
                        g.bytes += size;
                        g.frames.push(Stored::Data(d.clone()));
                    } else if let Some(t) = frame.trailers_ref() {
                        g.frames.push(Stored::Trailers(t.clone()));
                    }
                    if ended && g.phase == Phase::Streaming {
                        g.phase = Phase::Complete;
                    }
                    g.wake();
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let inner = this.inner.clone();
        let mut g = lock(&inner);
        if this.generation != 0 && g.active != this.generation {
            return Poll::Ready(Some(Err("request body superseded by a retry".into())));
        }
        if g.phase != Phase::Overflowed {
            if let Some(f) = g.frames.get(this.pos) {
                let frame = f.frame();
                this.pos += 1;
                return Poll::Ready(Some(Ok(frame)));
            }
        }
        match g.phase {
            Phase::Complete => Poll::Ready(None),
            Phase::Failed => Poll::Ready(Some(Err("the client's request body failed".into()))),
            Phase::Overflowed if this.generation != 0 && this.pos == g.pulled => {
                this.pull(&mut g, cx)
            }
            Phase::Overflowed => {
                Poll::Ready(Some(Err("request body too large to send again".into())))
            }
            Phase::Streaming if this.generation == 0 => {
                g.waiters.push(cx.waker().clone());
                Poll::Pending
            }
            Phase::Streaming => this.pull(&mut g, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        let g = lock(&self.inner);
        g.phase == Phase::Complete && self.pos >= g.frames.len()
    }

    fn size_hint(&self) -> SizeHint {
        let g = lock(&self.inner);
        match g.phase {
            Phase::Complete => {
                let left: usize = g
                    .frames
                    .iter()
                    .skip(self.pos)
                    .map(|f| match f {
                        Stored::Data(d) => d.len(),
                        Stored::Trailers(_) => 0,
                    })
                    .sum();
                SizeHint::with_exact(left as u64)
            }
            _ if self.pos == 0 => g.hint,
            _ => SizeHint::default(),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.generation != 0 {
            let mut g = lock(&self.inner);
            g.pullers = g.pullers.saturating_sub(1);
            g.wake();
        }
    }
}
