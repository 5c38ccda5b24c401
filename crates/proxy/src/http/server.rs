//! Downstream HTTP connections: HTTP/1.1 and h2c prior knowledge on one socket, with the
//! hardening limits, and graceful close on drain.

use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::{handle, ConnInfo};
use crate::drain::{DrainWatch, Phase};
use crate::h1guard::H1Guard;
use crate::{Limits, Shared};

/// Connection builders, made once: one that detects HTTP/1 or h2c, one for h2c only.
#[derive(Clone)]
pub struct Builders {
    auto: auto::Builder<TokioExecutor>,
    h2_only: auto::Builder<TokioExecutor>,
}

impl Builders {
    pub fn new(limits: &Limits) -> Builders {
        let configure = |mut b: auto::Builder<TokioExecutor>| {
            b.http1()
                .timer(TokioTimer::new())
                .keep_alive(true)
                // Over either limit hyper answers 431, as Envoy does.
                .max_headers(limits.max_headers)
                .max_buf_size(limits.max_header_bytes.max(8192))
                .header_read_timeout(limits.header_read_timeout);
            b.http2()
                .timer(TokioTimer::new())
                .max_header_list_size(limits.max_header_bytes as u32)
                .max_concurrent_streams(limits.h2_max_concurrent_streams);
            b
        };
        Builders {
            auto: configure(auto::Builder::new(TokioExecutor::new())),
            h2_only: configure(auto::Builder::new(TokioExecutor::new()).http2_only()),
        }
    }
}

/// Serves HTTP on `sock` until the client closes, or the drain or the removal of its listener
/// (`removed` turns true) closes it gracefully; a forced drain drops it.
pub async fn serve<S>(
    shared: Arc<Shared>,
    info: ConnInfo,
    sock: S,
    h2_only: bool,
    removed: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let info = Arc::new(info);
    let svc_shared = shared.clone();
    let svc = service_fn(move |req| handle(svc_shared.clone(), info.clone(), req));
    let io = TokioIo::new(H1Guard::new(sock));
    let drain = shared.drain.watch();
    if h2_only {
        // hyper-util ignores `http2_only` for upgradeable connections; h2 has no upgrades.
        drive(
            shared.builders.h2_only.serve_connection(io, svc),
            drain,
            removed,
        )
        .await;
    } else {
        drive(
            shared.builders.auto.serve_connection_with_upgrades(io, svc),
            drain,
            removed,
        )
        .await;
    }
}

async fn drive<C>(conn: C, mut drain: DrainWatch, mut removed: watch::Receiver<bool>)
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "downstream connection error");
            }
            return;
        }
        _ = drain.reached(Phase::Draining) => {}
        // An error means the listener is gone too.
        _ = removed.wait_for(|r| *r) => {}
    }
    // Finish what is in flight; HTTP/1 answers with `Connection: close`, HTTP/2 sends GOAWAY.
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = drain.reached(Phase::Forced) => {}
    }
}
