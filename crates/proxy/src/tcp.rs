//! Opaque TCP proxying (to endpoints or, for passthrough clusters, the original destination;
//! with mesh mTLS where the cluster asks for it), TLS passthrough by SNI, and protocol sniffing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use model::runtime::WeightedSet;
use model::LbPolicy;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::drain::Phase;
use crate::error::{RequestError, ResponseFlag};
use crate::state::State;
use crate::Shared;

/// Proxies `down` to an endpoint of a cluster from `clusters` (or, for a passthrough cluster,
/// to `original_dst`), bytes both ways, until either side closes or the drain is forced.
/// Returns false when no upstream connection was made (the caller may reset a socket).
pub async fn proxy<S>(
    shared: &Shared,
    state: &State,
    clusters: &WeightedSet,
    down: &mut S,
    original_dst: Option<SocketAddr>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let ci = clusters.pick(shared.random.u64());
    let cluster = &state.runtime.clusters[ci];
    let cs = &state.clusters[ci];
    let (addr, ei) = if cluster.lb_policy == LbPolicy::Passthrough {
        match original_dst {
            Some(dst) => (dst, None),
            None => {
                fail(
                    shared,
                    RequestError::new(
                        ResponseFlag::UH,
                        format!("{}: no original destination", cluster.name),
                    ),
                );
                return false;
            }
        }
    } else {
        let Some(ei) = cs.pick(cluster, &shared.random) else {
            fail(
                shared,
                RequestError::new(
                    ResponseFlag::UH,
                    format!("{}: no healthy endpoint", cluster.name),
                ),
            );
            return false;
        };
        (cluster.endpoints[ei].addr, Some(ei))
    };
    let _in_flight = ei.map(|i| cs.in_flight(i));
    let mesh = shared.certs.as_ref().map(|c| &c.mesh);
    let sec = match crate::mtls::upstream_security(mesh, state, ci, ei, addr, false) {
        Ok(s) => s,
        Err(e) => {
            fail(shared, e);
            return false;
        }
    };
    let mut up = match crate::mtls::connect(addr, &sec, cluster.connect_timeout).await {
        Ok(s) => s,
        Err(e) => {
            fail(
                shared,
                RequestError::new(ResponseFlag::UF, format!("{addr}: {e}")),
            );
            return false;
        }
    };
    let mut drain = shared.drain.watch();
    tokio::select! {
        r = tokio::io::copy_bidirectional(down, &mut up) => {
            if let Err(e) = r {
                // A reset from either side ends the stream; we cannot tell which from here.
                tracing::debug!(%addr, error = %e, "tcp stream ended with an error");
            }
        }
        _ = drain.reached(Phase::Forced) => {}
    }
    true
}

fn fail(shared: &Shared, e: RequestError) {
    shared.metrics.error(e.flag);
    tracing::debug!(error = %e, "tcp connection refused");
}

/// How long a sniffing listener waits for the client's first bytes before treating the
/// connection as opaque TCP (server-first protocols such as MySQL send nothing first).
const SNIFF_TIMEOUT: Duration = Duration::from_millis(100);

/// True if the connection's first bytes look like HTTP/1 or the HTTP/2 preface.
pub async fn sniff_http(sock: &TcpStream) -> bool {
    let mut buf = [0u8; 16];
    let peeked = tokio::time::timeout(SNIFF_TIMEOUT, async {
        // Peek until a space (the end of the method) or the buffer is full.
        loop {
            match sock.peek(&mut buf).await {
                Ok(0) | Err(_) => return 0,
                Ok(n) if n == buf.len() || buf[..n].contains(&b' ') => return n,
                Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    })
    .await
    .unwrap_or(0);
    looks_like_http(&buf[..peeked])
}

fn looks_like_http(b: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"HEAD ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    b.starts_with(b"PRI * HTTP/2.0") || METHODS.iter().any(|m| b.starts_with(m))
}

/// Reads (without consuming) the ClientHello and returns its SNI, if any.
pub async fn peek_sni(sock: &TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = sock.peek(&mut buf).await.ok()?;
            match crate::sni::parse(&buf[..n]) {
                crate::sni::Parse::Incomplete if n < buf.len() && n > 0 => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                crate::sni::Parse::Sni(s) => return Some(Some(s)),
                _ => return Some(None),
            }
        }
    })
    .await;
    read.ok().flatten().flatten()
}

/// TLS passthrough: picks the route by SNI and proxies the still-encrypted stream.
pub async fn passthrough(
    shared: &Shared,
    state: Arc<State>,
    routes: &[model::runtime::RuntimeSniRoute],
    mut down: TcpStream,
) {
    let sni = peek_sni(&down).await;
    match routes.iter().find(|r| r.matches(sni.as_deref())) {
        Some(r) => {
            proxy(shared, &state, &r.clusters, &mut down, None).await;
        }
        None => fail(
            shared,
            RequestError::new(ResponseFlag::NR, format!("no route for SNI {sni:?}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_detection() {
        assert!(super::looks_like_http(b"GET / HTTP/1.1"));
        assert!(super::looks_like_http(b"PRI * HTTP/2.0\r\n"));
        assert!(!super::looks_like_http(b"\x16\x03\x01"));
        assert!(!super::looks_like_http(b"GETX"));
    }
}
