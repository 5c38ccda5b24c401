//! Where a captured connection was going before iptables redirected it to the proxy.
//!
//! REDIRECT rewrites the destination to the proxy's port, and conntrack keeps the original; the
//! kernel hands it back through the SO_ORIGINAL_DST socket option (IP6T_SO_ORIGINAL_DST for IPv6),
//! which is how Envoy's `original_dst` listener filter and ztunnel learn it.

use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{
    getsockname, getsockopt, sockopt, SockaddrIn, SockaddrIn6, SockaddrStorage,
};

/// Errors reading the original destination.
#[derive(Debug, thiserror::Error)]
pub enum OriginalDstError {
    #[error("could not read the socket's local address: {0}")]
    LocalAddr(nix::Error),
    #[error("the socket is not an IPv4 or IPv6 socket")]
    Family,
    /// ENOENT: the connection has no conntrack entry, so it was not redirected by NAT (or
    /// conntrack is not tracking this namespace).
    #[error("no original destination for this connection: {0}")]
    Unavailable(nix::Error),
}

/// The destination an accepted, REDIRECT-captured TCP connection was originally sent to.
///
/// Takes anything holding a socket (std's or tokio's `TcpStream`). For a connection that was not
/// NAT-ed but is tracked, the kernel answers with the socket's own local address; the caller
/// should treat "original destination == my listener" as "not captured" (Envoy does the same).
pub fn original_dst<S: AsFd>(socket: &S) -> Result<SocketAddr, OriginalDstError> {
    let fd = socket.as_fd();
    // getsockname in nix 0.31 still takes a raw fd; `fd` borrows `socket`, so it stays open.
    let local: SockaddrStorage =
        getsockname(fd.as_raw_fd()).map_err(OriginalDstError::LocalAddr)?;
    // A dual-stack IPv6 socket carries IPv4 connections as v4-mapped addresses; their NAT
    // state is IPv4's, so they are asked with the IPv4 option.
    let is_v4 = if let Some(v6) = local.as_sockaddr_in6() {
        v6.ip().to_ipv4_mapped().is_some()
    } else if local.as_sockaddr_in().is_some() {
        true
    } else {
        return Err(OriginalDstError::Family);
    };
    if is_v4 {
        let raw = getsockopt(&fd, sockopt::OriginalDst).map_err(OriginalDstError::Unavailable)?;
        let addr = SocketAddrV4::from(SockaddrIn::from(raw));
        Ok(SocketAddr::new(IpAddr::V4(*addr.ip()), addr.port()))
    } else {
        let raw =
            getsockopt(&fd, sockopt::Ip6tOriginalDst).map_err(OriginalDstError::Unavailable)?;
        let addr = SocketAddrV6::from(SockaddrIn6::from(raw));
        Ok(SocketAddr::V6(addr))
    }
}
