//! Mesh mTLS on the data path: terminating it on the inbound side per PeerAuthentication mode,
//! originating it to endpoints that run a sidecar (auto mTLS) or to every endpoint
//! (`ISTIO_MUTUAL`), and the upstream connections that need more than a plain connect (mTLS,
//! or the 127.0.0.6 source Istio's inbound clusters use so captured pods do not loop).
//!
//! The rustls configs read the [`CertStore`] at every handshake, so a rotation applies to the
//! next connection while established ones keep going.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ca::Identity;
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use model::snapshot::PeerMtls;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tls::{CertStore, MeshAlpn};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::{RequestError, ResponseFlag};
use crate::http::body::UpstreamBody;
use crate::state::State;

/// Source address of the proxy's connections to its own application (Istio's
/// InboundPassthroughBindIpv4): the capture rules let it through instead of re-capturing it.
pub const INBOUND_BIND: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6));

/// How long the inbound side waits for a client's first bytes before deciding it is not TLS
/// (server-first protocols send nothing).
const DETECT_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a STRICT port waits for a ClientHello (Envoy's TLS inspector's default).
const HELLO_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum MtlsError {
    #[error("mesh TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("mesh mTLS is required but this proxy has no workload certificate")]
    NoCertificate,
    #[error("TLS handshake: {0}")]
    Handshake(io::Error),
    #[error("peer identity: {0}")]
    Peer(#[from] tls::PeerError),
}

/// The workload's certificate and the TLS configs made from it.
pub struct MeshTls {
    pub store: Arc<CertStore>,
    server: Arc<ServerConfig>,
    clients: Mutex<HashMap<ClientConfigKey, Arc<ClientConfig>>>,
}

/// The allowed server identities and whether the ALPN markers are HTTP's.
type ClientConfigKey = (Vec<String>, bool);

/// Who the peer of an inbound mesh mTLS connection is.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub identity: Identity,
    /// This hop's `x-forwarded-client-cert` element.
    pub xfcc: String,
    pub alpn: Option<MeshAlpn>,
}

impl MeshTls {
    pub fn new(store: Arc<CertStore>) -> Result<Arc<Self>, MtlsError> {
        let server = tls::server_config(store.clone(), &MeshAlpn::ALL)?;
        Ok(Arc::new(MeshTls {
            store,
            server: Arc::new(server),
            clients: Mutex::new(HashMap::new()),
        }))
    }

    pub fn identity(&self) -> Identity {
        self.store.current().identity().clone()
    }

    /// The client config for a destination whose server may be any of `sans` (SPIFFE IDs; an
    /// empty list accepts any mesh identity); `http` picks Istio's HTTP ALPN markers, else TCP's.
    pub fn client_config(
        &self,
        sans: &[String],
        http: bool,
    ) -> Result<Arc<ClientConfig>, MtlsError> {
        let key = (sans.to_vec(), http);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let allowed = sans
            .iter()
            .filter_map(|s| s.parse::<Identity>().ok())
            .collect();
        let alpn: &[MeshAlpn] = if http {
            &MeshAlpn::HTTP
        } else {
            &MeshAlpn::TCP
        };
        let config = Arc::new(tls::client_config(self.store.clone(), allowed, alpn)?);
        clients.insert(key, config.clone());
        Ok(config)
    }

    /// Terminates mesh mTLS on an accepted connection.
    pub async fn accept<S>(
        &self,
        sock: S,
    ) -> Result<(tokio_rustls::server::TlsStream<S>, PeerInfo), MtlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = TlsAcceptor::from(self.server.clone())
            .accept(sock)
            .await
            .map_err(MtlsError::Handshake)?;
        let conn = stream.get_ref().1;
        let identity = tls::peer_identity(conn)?;
        let own = self.identity();
        let xfcc = tls::xfcc::xfcc_for(&own, conn)?;
        let alpn = MeshAlpn::negotiated(conn);
        Ok((
            stream,
            PeerInfo {
                identity,
                xfcc,
                alpn,
            },
        ))
    }
}

/// `x-forwarded-client-cert` on requests a sidecar forwards: over mesh mTLS this hop's element
/// is appended to what the caller sent (Envoy's APPEND_FORWARD, Istio's inbound setting);
/// without mTLS (plain text in, or the application's own outbound requests) nobody vouches for
/// the header, so it is removed and cannot be forged.
pub fn forward_client_cert(headers: &mut http::HeaderMap, peer: Option<&PeerInfo>) {
    const XFCC: &str = "x-forwarded-client-cert";
    let Some(peer) = peer else {
        headers.remove(XFCC);
        return;
    };
    let value = match headers.get(XFCC).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.is_empty() => format!("{prev},{}", peer.xfcc),
        _ => peer.xfcc.clone(),
    };
    if let Ok(v) = http::HeaderValue::from_str(&value) {
        headers.insert(XFCC, v);
    }
}

/// What an inbound connection gets, from its port's mode and its first bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Mesh mTLS: terminate it.
    Terminate,
    /// Plain text (or TLS that is not the mesh's): pass it to the application as it is.
    Plain,
    /// STRICT and not mesh mTLS: reset.
    Refuse,
}

/// Decides per connection, as Istio's inbound filter chains do: STRICT takes only TLS; PERMISSIVE
/// terminates TLS offering Istio's ALPN markers and passes everything else; DISABLE passes all.
pub async fn classify(mode: PeerMtls, sock: &TcpStream, have_cert: bool) -> Inbound {
    match mode {
        PeerMtls::Disable => Inbound::Plain,
        PeerMtls::Strict => match peek_hello(sock, HELLO_TIMEOUT).await {
            Some(_) if have_cert => Inbound::Terminate,
            _ => Inbound::Refuse,
        },
        PeerMtls::Permissive => match peek_hello(sock, DETECT_TIMEOUT).await {
            Some(alpn)
                if have_cert && alpn.iter().any(|a| MeshAlpn::parse(a.as_bytes()).is_some()) =>
            {
                Inbound::Terminate
            }
            _ => Inbound::Plain,
        },
    }
}

/// The ALPN list of the ClientHello the client sent first, `None` when the first bytes are not
/// a TLS handshake (or nothing came in time).
async fn peek_hello(sock: &TcpStream, wait: Duration) -> Option<Vec<String>> {
    let mut buf = vec![0u8; 8192];
    tokio::time::timeout(wait, async {
        loop {
            let n = sock.peek(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            if buf[0] != 22 {
                return None;
            }
            if let Some(alpn) = crate::sni::alpn(&buf[..n]) {
                return Some(alpn);
            }
            if n == buf.len() {
                // A hello larger than the buffer: TLS, with no ALPN we could read.
                return Some(Vec::new());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .ok()
    .flatten()
}

/// Closes with a reset (RST), as Envoy does for a connection no filter chain matches.
pub fn reset(sock: TcpStream) {
    let _ = sock.set_zero_linger();
    drop(sock);
}

/// How to reach one upstream address: from which source, with which TLS.
#[derive(Clone)]
pub struct UpstreamSecurity {
    pub bind: Option<IpAddr>,
    pub tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl UpstreamSecurity {
    pub fn is_plain(&self) -> bool {
        self.bind.is_none() && self.tls.is_none()
    }
}

/// The source and TLS for a connection from cluster `ci` to `addr` (endpoint `ei`, or the
/// original destination when `None`).
pub fn upstream_security(
    mesh: Option<&Arc<MeshTls>>,
    state: &State,
    ci: usize,
    ei: Option<usize>,
    addr: SocketAddr,
    http: bool,
) -> Result<UpstreamSecurity, RequestError> {
    let cluster = &state.runtime.clusters[ci];
    let inbound = cluster.name.starts_with("inbound|")
        || cluster.name == model::compile::INBOUND_PASSTHROUGH_CLUSTER;
    let bind = (inbound && !addr.ip().is_loopback() && addr.is_ipv4()).then_some(INBOUND_BIND);
    let tls = match state.runtime.mesh_tls.get(ci).and_then(Option::as_ref) {
        Some(m)
            if ei.map_or(m.all_endpoints, |i| {
                m.endpoints.get(i).copied().unwrap_or(false)
            }) =>
        {
            let mesh = mesh.ok_or_else(|| {
                RequestError::new(ResponseFlag::UF, MtlsError::NoCertificate.to_string())
            })?;
            let config = mesh
                .client_config(&m.subject_alt_names, http)
                .map_err(|e| RequestError::new(ResponseFlag::UF, e.to_string()))?;
            let name = ServerName::try_from(m.sni.clone())
                .unwrap_or_else(|_| ServerName::IpAddress(addr.ip().into()));
            Some((config, name))
        }
        _ => None,
    };
    Ok(UpstreamSecurity { bind, tls })
}

/// A plain or mesh-mTLS upstream stream.
pub enum MeshIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Connects to `addr` as `sec` says, within `timeout`.
pub async fn connect(
    addr: SocketAddr,
    sec: &UpstreamSecurity,
    timeout: Duration,
) -> io::Result<MeshIo> {
    let work = async {
        let tcp = match sec.bind {
            Some(ip) => {
                let socket = if addr.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(addr).await?
            }
            None => TcpStream::connect(addr).await?,
        };
        let _ = tcp.set_nodelay(true);
        match &sec.tls {
            None => Ok(MeshIo::Plain(tcp)),
            Some((config, name)) => {
                let tls = TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await?;
                Ok(MeshIo::Tls(Box::new(tls)))
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timeout"))?
}

impl AsyncRead for MeshIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MeshIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MeshIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MeshIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MeshIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MeshIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MeshIo::Plain(s) => Pin::new(s).poll_flush(cx),
            MeshIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MeshIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MeshIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// [`MeshIo`] for hyper's client.
pub struct HyperMeshIo(TokioIo<MeshIo>);

impl Connection for HyperMeshIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for HyperMeshIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for HyperMeshIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// hyper's connector for one [`UpstreamSecurity`]: the URI's authority is the endpoint.
#[derive(Clone)]
pub struct MeshConnector {
    sec: UpstreamSecurity,
    timeout: Duration,
}

impl tower_service::Service<http::Uri> for MeshConnector {
    type Response = HyperMeshIo;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<HyperMeshIo>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let sec = self.sec.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let addr: SocketAddr = uri
                .authority()
                .and_then(|a| a.as_str().parse().ok())
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "endpoint is not an address")
                })?;
            Ok(HyperMeshIo(TokioIo::new(
                connect(addr, &sec, timeout).await?,
            )))
        })
    }
}

pub type MeshClient = Client<MeshConnector, UpstreamBody>;

/// Pooled HTTP/1 clients for upstreams that need a source address or mesh mTLS, one per
/// distinct way of connecting, shared across snapshots so a config swap keeps warm connections.
#[derive(Default)]
pub struct MeshClients {
    h1: Mutex<HashMap<ClientKey, MeshClient>>,
    h2: Mutex<HashMap<(SocketAddr, ClientKey), H2Slot>>,
}

#[derive(Default)]
struct H2Slot {
    sender: Option<http2::SendRequest<UpstreamBody>>,
    /// Held while connecting, so concurrent first requests share one connection.
    connecting: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Hash, PartialEq, Eq, Clone)]
struct ClientKey {
    timeout: Duration,
    bind: Option<IpAddr>,
    /// The client config's address (configs are cached per SAN set, so equal settings share
    /// one) and the SNI.
    tls: Option<(usize, String)>,
}

impl ClientKey {
    fn new(sec: &UpstreamSecurity, timeout: Duration) -> Self {
        ClientKey {
            timeout,
            bind: sec.bind,
            tls: sec
                .tls
                .as_ref()
                .map(|(c, n)| (Arc::as_ptr(c) as usize, n.to_str().into_owned())),
        }
    }
}

impl MeshClients {
    pub fn h1(&self, sec: &UpstreamSecurity, timeout: Duration) -> MeshClient {
        let key = ClientKey::new(sec, timeout);
        let mut map = self.h1.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key)
            .or_insert_with(|| {
                Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .build(MeshConnector {
                        sec: sec.clone(),
                        timeout,
                    })
            })
            .clone()
    }
}

impl MeshClients {
    /// Sends `req` on the one HTTP/2 connection kept per endpoint and way of connecting.
    pub async fn h2_send(
        &self,
        addr: SocketAddr,
        sec: &UpstreamSecurity,
        timeout: Duration,
        req: http::Request<UpstreamBody>,
    ) -> Result<http::Response<Incoming>, RequestError> {
        let key = (addr, ClientKey::new(sec, timeout));
        let mut sender = self.h2_sender(&key, sec).await?;
        let upstream = |e: hyper::Error| crate::upstream::classify_hyper_chain(&e);
        sender.ready().await.map_err(upstream)?;
        sender.send_request(req).await.map_err(upstream)
    }

    fn h2_live(
        &self,
        key: &(SocketAddr, ClientKey),
    ) -> Result<http2::SendRequest<UpstreamBody>, Arc<tokio::sync::Mutex<()>>> {
        let mut conns = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        let slot = conns.entry(key.clone()).or_default();
        match slot.sender.as_ref().filter(|s| !s.is_closed()) {
            Some(s) => Ok(s.clone()),
            None => Err(slot.connecting.clone()),
        }
    }

    async fn h2_sender(
        &self,
        key: &(SocketAddr, ClientKey),
        sec: &UpstreamSecurity,
    ) -> Result<http2::SendRequest<UpstreamBody>, RequestError> {
        let connecting = match self.h2_live(key) {
            Ok(s) => return Ok(s),
            Err(lock) => lock,
        };
        let _connecting = connecting.lock().await;
        if let Ok(s) = self.h2_live(key) {
            return Ok(s);
        }
        let (addr, k) = key;
        let io = connect(*addr, sec, k.timeout)
            .await
            .map_err(|e| RequestError::new(ResponseFlag::UF, format!("{addr}: {e}")))?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| RequestError::new(ResponseFlag::UF, e.to_string()))?;
        let addr = *addr;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "upstream h2 connection closed");
            }
        });
        self.h2
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .sender = Some(sender.clone());
        Ok(sender)
    }
}
