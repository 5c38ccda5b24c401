//! HTTP/1.1 `CONNECT`: the request is routed like any other (by its `host:port` authority), and
//! the proxy terminates it: it opens a TCP connection to an endpoint of the routed cluster,
//! answers `200`, and copies bytes both ways (Envoy's CONNECT termination).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::ProxyBody;
use crate::drain::{DrainWatch, Phase};
use crate::error::{RequestError, ResponseFlag};
use crate::metrics::ClusterBytes;

/// Connects to `endpoint`, then answers 200 and tunnels once the client's side is upgraded.
pub async fn terminate(
    mut req: Request<Incoming>,
    endpoint: SocketAddr,
    connect_timeout: Duration,
    bytes: ClusterBytes,
    drain: DrainWatch,
) -> Result<Response<ProxyBody>, RequestError> {
    let up = match tokio::time::timeout(connect_timeout, TcpStream::connect(endpoint)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(RequestError::new(
                ResponseFlag::UF,
                format!("{endpoint}: {e}"),
            ))
        }
        Err(_) => {
            return Err(RequestError::new(
                ResponseFlag::UF,
                format!("{endpoint}: connect timeout"),
            ))
        }
    };
    let _ = up.set_nodelay(true);
    let downstream = hyper::upgrade::on(&mut req);
    tokio::spawn(tunnel(downstream, up, bytes, drain));
    Ok(super::local(StatusCode::OK, Bytes::new()))
}

async fn tunnel(
    downstream: hyper::upgrade::OnUpgrade,
    mut up: TcpStream,
    bytes: ClusterBytes,
    mut drain: DrainWatch,
) {
    let Ok(down) = downstream.await else {
        return;
    };
    let mut down = TokioIo::new(down);
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut down, &mut up) => match r {
            Ok((sent, received)) => {
                bytes.sent.inc_by(sent);
                bytes.received.inc_by(received);
            }
            Err(e) => tracing::debug!(error = %e, "CONNECT tunnel ended with an error"),
        },
        _ = drain.reached(Phase::Forced) => {}
    }
}
