//! The sidecar's DNS proxy (Istio's `ISTIO_META_DNS_CAPTURE`): UDP and TCP on one address
//! (127.0.0.1:15053 in a pod, where the capture rules send every port-53 query of the app).
//!
//! Names in the proxy's name table (the snapshot's `dns`, compiled per proxy from the service
//! registry) are answered here: `A` with the service's addresses, `AAAA` and every other type
//! with an empty NOERROR answer (the name exists, the mesh has no IPv6 for it), as Istio's proxy
//! does. Every other query is relayed unchanged to the upstream resolvers, one after the other;
//! when none answers the client gets SERVFAIL (a pod without a reachable resolver still resolves
//! every mesh name).
//!
//! The table is read per query from a [`Names`] source (the proxy's live snapshot), so a new
//! config changes answers without restarting anything. The same server with an empty table is a
//! plain relay, which `bowline up` runs on the pod bridge so pods can reach the host's resolver.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{rdata, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::drain::Phase;
use crate::Shared;

/// How long one upstream may take before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// TTL of mesh answers: short, since VIPs follow the configuration.
const TTL: u32 = 30;
/// The largest DNS message over TCP (two-byte length prefix).
const MAX_TCP: usize = 65535;

/// Errors starting the DNS proxy.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("could not bind the DNS proxy on {addr} ({proto}): {source}")]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        source: std::io::Error,
    },
    #[error("could not read {path}: {source}")]
    ResolvConf {
        path: String,
        source: std::io::Error,
    },
}

/// Where the names answered locally come from.
pub trait Names: Send + Sync + 'static {
    /// The addresses of `name` (lowercase, no trailing dot) when the mesh knows it.
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>>;

    /// Whether a name this source does not know is answered NXDOMAIN here rather than relayed
    /// (a resolver authoritative for the mesh's domain).
    fn authoritative_for(&self, _name: &str) -> bool {
        false
    }
}

/// No local names: the server only relays.
pub struct RelayOnly;

impl Names for RelayOnly {
    fn lookup(&self, _: &str) -> Option<Vec<IpAddr>> {
        None
    }
}

/// The proxy's live snapshot.
impl Names for Arc<Shared> {
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        let state = self.store.load();
        model::dns::lookup(&state.runtime.dns, name).map(|e| e.addresses.clone())
    }
}

/// Where the DNS proxy listens and where it relays.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    pub addr: SocketAddr,
    pub upstreams: Vec<SocketAddr>,
}

/// The `nameserver` lines of a resolv.conf, port 53. Read before a process enters a pod: the pod
/// may see another file (`/etc/netns/<pod>/resolv.conf`) or none.
pub fn upstreams_from_resolv_conf(path: &str) -> Result<Vec<SocketAddr>, DnsError> {
    let text = std::fs::read_to_string(path).map_err(|source| DnsError::ResolvConf {
        path: path.to_string(),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect())
}

/// A running DNS proxy; it stops when the drain watch (if any) reaches draining or on drop.
pub struct DnsServer {
    addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP and TCP on `config.addr` (the TCP port follows the UDP one when it is 0).
    pub async fn start(config: DnsConfig, names: Arc<dyn Names>) -> Result<DnsServer, DnsError> {
        let (udp, tcp, addr) = bind_pair(config.addr).await?;
        let upstreams: Arc<[SocketAddr]> = config.upstreams.into();
        tracing::info!(%addr, upstreams = ?upstreams, "DNS proxy listening");
        let udp = Arc::new(udp);
        let tasks = vec![
            tokio::spawn(udp_loop(udp, names.clone(), upstreams.clone())),
            tokio::spawn(tcp_loop(tcp, names, upstreams)),
        ];
        Ok(DnsServer { addr, tasks })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops when `shared`'s drain starts.
    pub fn stop_on_drain(self, shared: Arc<Shared>) {
        tokio::spawn(async move {
            shared.drain.watch().reached(Phase::Draining).await;
            drop(self);
        });
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn udp_loop(sock: Arc<UdpSocket>, names: Arc<dyn Names>, upstreams: Arc<[SocketAddr]>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "DNS receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let query = buf[..n].to_vec();
        let (sock, names, upstreams) = (sock.clone(), names.clone(), upstreams.clone());
        tokio::spawn(async move {
            if let Some(answer) = answer(&query, &*names, &upstreams, false).await {
                let _ = sock.send_to(&answer, peer).await;
            }
        });
    }
}

async fn tcp_loop(listener: TcpListener, names: Arc<dyn Names>, upstreams: Arc<[SocketAddr]>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (names, upstreams) = (names.clone(), upstreams.clone());
        tokio::spawn(async move {
            // One connection may carry several queries, each with a two-byte length.
            while let Ok(query) = read_framed(&mut conn).await {
                let Some(answer) = answer(&query, &*names, &upstreams, true).await else {
                    break;
                };
                if write_framed(&mut conn, &answer).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn read_framed(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = conn.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    conn.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_framed(conn: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len().min(MAX_TCP)).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&msg[..usize::from(len)]);
    conn.write_all(&out).await
}

/// The reply to one query: a local answer, the upstream's, or SERVFAIL. `None` for input that
/// is not a DNS query at all (dropped, as resolvers do).
async fn answer(
    query: &[u8],
    names: &dyn Names,
    upstreams: &[SocketAddr],
    tcp: bool,
) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    if msg.metadata.message_type != MessageType::Query {
        return None;
    }
    if let Some(reply) = local(&msg, names) {
        return reply.to_vec().ok();
    }
    for upstream in upstreams {
        let relayed = if tcp {
            relay_tcp(query, *upstream).await
        } else {
            relay_udp(query, *upstream).await
        };
        match relayed {
            Ok(reply) => return Some(reply),
            Err(e) => tracing::debug!(%upstream, error = %e, "upstream resolver failed"),
        }
    }
    let mut fail = reply_to(&msg);
    fail.metadata.response_code = ResponseCode::ServFail;
    fail.to_vec().ok()
}

/// The answer from the name table, when the question is about a mesh name.
fn local(msg: &Message, names: &dyn Names) -> Option<Message> {
    if msg.metadata.op_code != OpCode::Query || msg.queries.len() != 1 {
        return None;
    }
    let q = &msg.queries[0];
    let name = q.name().to_ascii();
    let key = name.trim_end_matches('.').to_ascii_lowercase();
    let mut reply = reply_to(msg);
    reply.metadata.authoritative = true;
    let Some(addresses) = names.lookup(&key) else {
        if names.authoritative_for(&key) {
            reply.metadata.response_code = ResponseCode::NXDomain;
            return Some(reply);
        }
        return None;
    };
    if q.query_type() == RecordType::A {
        for ip in &addresses {
            if let IpAddr::V4(v4) = *ip {
                reply.add_answer(Record::from_rdata(
                    q.name().clone(),
                    TTL,
                    RData::A(rdata::A(v4)),
                ));
            }
        }
    }
    if q.query_type() == RecordType::AAAA {
        for ip in &addresses {
            if let IpAddr::V6(v6) = *ip {
                reply.add_answer(Record::from_rdata(
                    q.name().clone(),
                    TTL,
                    RData::AAAA(rdata::AAAA(v6)),
                ));
            }
        }
    }
    Some(reply)
}

fn reply_to(msg: &Message) -> Message {
    let mut reply = Message::response(msg.metadata.id, msg.metadata.op_code);
    reply.metadata.recursion_desired = msg.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_queries(msg.queries.iter().cloned());
    reply
}

async fn relay_udp(query: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(upstream).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    buf.truncate(n);
    Ok(buf)
}

async fn relay_tcp(query: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let work = async {
        let mut conn = TcpStream::connect(upstream).await?;
        write_framed(&mut conn, query).await?;
        read_framed(&mut conn).await
    };
    tokio::time::timeout(UPSTREAM_TIMEOUT, work)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))?
}

#[cfg(test)]
mod tests;

/// UDP and TCP on one port. With port 0 the OS picks the UDP port, and another process may hold
/// that port for TCP: pick again rather than fail.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr), DnsError> {
    let mut attempts = if addr.port() == 0 { 16 } else { 1 };
    loop {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| DnsError::Bind {
                addr,
                proto: "udp",
                source,
            })?;
        let bound = udp.local_addr().unwrap_or(addr);
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp, bound)),
            Err(e) if attempts > 1 && e.kind() == std::io::ErrorKind::AddrInUse => attempts -= 1,
            Err(source) => {
                return Err(DnsError::Bind {
                    addr: bound,
                    proto: "tcp",
                    source,
                })
            }
        }
    }
}
