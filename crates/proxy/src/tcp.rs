//! Opaque TCP proxying, TLS passthrough by SNI, and protocol sniffing.

use std::sync::Arc;
use std::time::Duration;

use model::runtime::WeightedSet;
use tokio::net::TcpStream;

use crate::drain::Phase;
use crate::error::{RequestError, ResponseFlag};
use crate::lb::LbRequest;
use crate::outlier::Outcome;
use crate::state::State;
use crate::Shared;

/// Proxies `down` to an endpoint of a cluster from `clusters`, bytes both ways, until either
/// side closes or the drain is forced.
pub async fn proxy(shared: &Shared, state: &State, clusters: &WeightedSet, mut down: TcpStream) {
    let ci = clusters.pick(shared.random.u64());
    let cluster = &state.runtime.clusters[ci];
    let cs = &state.clusters[ci];
    let lb = LbRequest::tcp(down.peer_addr().ok().map(|a| a.ip()), original_dst(&down));
    let pick = match cs.choose(cluster, &shared.random, &lb) {
        Ok(p) => p,
        Err(e) => return fail(shared, e),
    };
    let addr = pick.addr;
    // Envoy's TCP proxy honours the cluster's maxConnections circuit breaker.
    let Some(_connection) = crate::pool::Slot::acquire(
        &cs.shared.breakers,
        |b| &b.connections,
        cluster.policy.connection_pool.max_connections,
    ) else {
        return fail(
            shared,
            RequestError::new(
                ResponseFlag::UO,
                format!("{}: maxConnections reached", cluster.name),
            ),
        );
    };
    let mut up = match tokio::time::timeout(cluster.connect_timeout, TcpStream::connect(addr)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            cs.report(cluster, addr, Outcome::LocalFailure);
            return fail(
                shared,
                RequestError::new(ResponseFlag::UF, format!("{addr}: {e}")),
            );
        }
        Err(_) => {
            cs.report(cluster, addr, Outcome::LocalFailure);
            return fail(
                shared,
                RequestError::new(ResponseFlag::UF, format!("{addr}: connect timeout")),
            );
        }
    };
    let _ = up.set_nodelay(true);
    // DestinationRule `tls` on a TCP service: originate TLS to the endpoint.
    let tls = match &cs.tcp_tls {
        Ok(t) => t,
        Err(reason) => {
            return fail(
                shared,
                RequestError::new(ResponseFlag::UF, format!("{addr}: TLS settings: {reason}")),
            )
        }
    };
    if let Some(t) = tls {
        let tls = tokio::time::timeout(
            cluster.connect_timeout,
            t.connector.connect(t.server_name.clone(), up),
        )
        .await;
        return match tls {
            Ok(Ok(mut up)) => relay(shared, addr, &mut down, &mut up).await,
            Ok(Err(e)) => {
                cs.report(cluster, addr, Outcome::LocalFailure);
                fail(
                    shared,
                    RequestError::new(ResponseFlag::UF, format!("{addr}: TLS error: {e}")),
                )
            }
            Err(_) => fail(
                shared,
                RequestError::new(ResponseFlag::UF, format!("{addr}: TLS handshake timeout")),
            ),
        };
    }
    relay(shared, addr, &mut down, &mut up).await;
}

/// Copies bytes both ways until either side closes or the drain is forced.
async fn relay<U>(shared: &Shared, addr: std::net::SocketAddr, down: &mut TcpStream, up: &mut U)
where
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut drain = shared.drain.watch();
    tokio::select! {
        r = tokio::io::copy_bidirectional(down, up) => {
            if let Err(e) = r {
                // A reset from either side ends the stream; we cannot tell which from here.
                tracing::debug!(%addr, error = %e, "tcp stream ended with an error");
            }
        }
        _ = drain.reached(Phase::Forced) => {}
    }
}

/// The address the client dialed before iptables redirected it here (`SO_ORIGINAL_DST`), for
/// `PASSTHROUGH` clusters; `None` for connections that were not redirected.
pub fn original_dst(sock: &TcpStream) -> Option<std::net::SocketAddr> {
    use nix::sys::socket::{getsockopt, sockopt};
    let a = getsockopt(sock, sockopt::OriginalDst).ok()?;
    let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
    Some(std::net::SocketAddr::from((ip, u16::from_be(a.sin_port))))
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
    down: TcpStream,
) {
    let sni = peek_sni(&down).await;
    match routes.iter().find(|r| r.matches(sni.as_deref())) {
        Some(r) => proxy(shared, &state, &r.clusters, down).await,
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
