//! Connections iptables redirected to the virtual outbound (15001) and inbound (15006)
//! listeners: the original destination picks the chain, as Envoy's `original_dst` listener
//! filter and filter-chain match do.
//!
//! Outbound: the chain's HTTP table or TCP clusters, else the fallback (PassthroughCluster to
//! the original destination, or BlackHoleCluster: reset). Inbound: the port's PeerAuthentication
//! mode decides per connection whether mesh mTLS is terminated, the plain bytes pass, or the
//! connection is reset; then the chain serves it towards the application.

use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsFd;
use std::sync::Arc;

use model::runtime::RuntimeListenerKind;
use nix::sys::socket::{getsockopt, sockopt, SockaddrIn, SockaddrIn6};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::http::ConnInfo;
use crate::mtls::{self, Inbound, PeerInfo};
use crate::state::State;
use crate::Shared;

/// Where a REDIRECT-captured connection was going (SO_ORIGINAL_DST from conntrack). `None`
/// when the connection was not NAT-ed.
pub fn original_dst(sock: &TcpStream) -> Option<SocketAddr> {
    let local = sock.local_addr().ok()?;
    let v4 = match local {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
    };
    let fd = sock.as_fd();
    let dst = if v4 {
        let raw = getsockopt(&fd, sockopt::OriginalDst).ok()?;
        let a = SocketAddrV4::from(SockaddrIn::from(raw));
        SocketAddr::new(IpAddr::V4(*a.ip()), a.port())
    } else {
        let raw = getsockopt(&fd, sockopt::Ip6tOriginalDst).ok()?;
        SocketAddr::V6(SocketAddrV6::from(SockaddrIn6::from(raw)))
    };
    // Tracked but not redirected: the kernel answers with our own address.
    (dst != local).then_some(dst)
}

/// Serves one connection accepted on a capture listener.
pub async fn serve(
    shared: Arc<Shared>,
    state: Arc<State>,
    info: ConnInfo,
    sock: TcpStream,
    removed: watch::Receiver<bool>,
) {
    let Some(listener) = state.runtime.listener(&info.listener) else {
        return;
    };
    let RuntimeListenerKind::Capture {
        inbound,
        fallback_mtls,
        ..
    } = &listener.kind
    else {
        return;
    };
    let Some(dst) = original_dst(&sock) else {
        // Dialled directly: serving it would connect back to this listener forever.
        tracing::debug!(listener = &*info.listener, peer = %info.peer, "not a captured connection; closed");
        mtls::reset(sock);
        return;
    };
    let info = info.captured(dst, *inbound);
    if !inbound {
        return dispatch(shared, state, info, Conn::Plain(sock), removed).await;
    }
    let mode = listener
        .kind
        .chain_for(dst)
        .map_or(*fallback_mtls, |c| c.mtls);
    let mesh = shared.certs.as_ref().map(|c| c.mesh.clone());
    match mtls::classify(mode, &sock, mesh.is_some()).await {
        Inbound::Refuse => {
            shared.metrics.error(crate::ResponseFlag::NR);
            tracing::debug!(%dst, peer = %info.peer, ?mode, "plain text refused: mesh mTLS required");
            mtls::reset(sock);
        }
        Inbound::Plain => dispatch(shared, state, info, Conn::Plain(sock), removed).await,
        Inbound::Terminate => {
            let Some(mesh) = mesh else { return };
            match mesh.accept(sock).await {
                Ok((tls, peer)) => {
                    let info = info.with_peer(peer);
                    dispatch(shared, state, info, Conn::Tls(Box::new(tls)), removed).await;
                }
                Err(e) => tracing::debug!(%dst, error = %e, "inbound mTLS handshake failed"),
            }
        }
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

async fn dispatch(
    shared: Arc<Shared>,
    state: Arc<State>,
    info: ConnInfo,
    conn: Conn,
    removed: watch::Receiver<bool>,
) {
    let Some(dst) = info.original_dst else { return };
    let Some(listener) = state.runtime.listener(&info.listener) else {
        return;
    };
    let RuntimeListenerKind::Capture { fallback, .. } = &listener.kind else {
        return;
    };
    let chain = listener.kind.chain_for(dst);
    let tls_alpn = info.mesh_peer.as_ref().map(|p: &Arc<PeerInfo>| p.alpn);
    let tcp = match chain.map(|c| &c.kind) {
        Some(RuntimeListenerKind::Http { h2_only, .. }) => {
            let h2_only = *h2_only;
            drop(state);
            return serve_http(shared, info, conn, h2_only, removed).await;
        }
        Some(RuntimeListenerKind::AutoSniff { tcp, .. }) => {
            let http = match &conn {
                Conn::Plain(s) => crate::tcp::sniff_http(s).await,
                // Inside mesh mTLS the client said what it carries.
                Conn::Tls(_) => tls_alpn.flatten().and_then(|a| a.http_version()).is_some(),
            };
            if http {
                drop(state);
                return serve_http(shared, info, conn, false, removed).await;
            }
            tcp
        }
        Some(RuntimeListenerKind::Tcp { clusters }) => clusters,
        _ => fallback,
    };
    match conn {
        Conn::Plain(mut s) => {
            if !crate::tcp::proxy(&shared, &state, tcp, &mut s, Some(dst)).await {
                mtls::reset(s);
            }
        }
        Conn::Tls(mut s) => {
            crate::tcp::proxy(&shared, &state, tcp, &mut *s, Some(dst)).await;
        }
    }
}

async fn serve_http(
    shared: Arc<Shared>,
    info: ConnInfo,
    conn: Conn,
    h2_only: bool,
    removed: watch::Receiver<bool>,
) {
    match conn {
        Conn::Plain(s) => crate::http::server::serve(shared, info, s, h2_only, removed).await,
        Conn::Tls(s) => crate::http::server::serve(shared, info, *s, h2_only, removed).await,
    }
}
