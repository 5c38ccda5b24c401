//! rustls configs for mesh traffic, and Istio's ALPN vocabulary that marks a connection as mesh
//! mTLS (and says which application protocol rides inside).
//!
//! Session resumption is off on both sides: a resumed session carries the identity proven under
//! the certificate and roots of its first handshake, so it would outlive a rotation or a trust
//! bundle change. Mesh connections are pooled and long-lived; full handshakes are cheap enough.

use std::sync::Arc;

use ca::Identity;
use rustls::client::Resumption;
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ServerConfig};

use crate::store::{CertStore, StoreResolver};
use crate::verify::{MeshClientVerifier, MeshServerVerifier};

/// ALPN protocol IDs Istio's sidecars use on mesh mTLS connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeshAlpn {
    /// `istio-peer-exchange`: TCP with Istio's metadata exchange.
    PeerExchange,
    /// `istio`: plain TCP.
    Istio,
    /// `istio-http/1.0`
    IstioHttp10,
    /// `istio-http/1.1`
    IstioHttp11,
    /// `istio-h2`
    IstioH2,
}

impl MeshAlpn {
    pub const ALL: [MeshAlpn; 5] = [
        MeshAlpn::PeerExchange,
        MeshAlpn::Istio,
        MeshAlpn::IstioHttp10,
        MeshAlpn::IstioHttp11,
        MeshAlpn::IstioH2,
    ];
    /// What an Istio client offers for TCP destinations.
    pub const TCP: [MeshAlpn; 2] = [MeshAlpn::PeerExchange, MeshAlpn::Istio];
    /// What an Istio client offers for HTTP destinations.
    pub const HTTP: [MeshAlpn; 3] = [
        MeshAlpn::IstioHttp10,
        MeshAlpn::IstioHttp11,
        MeshAlpn::IstioH2,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MeshAlpn::PeerExchange => "istio-peer-exchange",
            MeshAlpn::Istio => "istio",
            MeshAlpn::IstioHttp10 => "istio-http/1.0",
            MeshAlpn::IstioHttp11 => "istio-http/1.1",
            MeshAlpn::IstioH2 => "istio-h2",
        }
    }

    pub fn parse(id: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str().as_bytes() == id)
    }

    /// The ALPN a connection negotiated, when it is one of the mesh's.
    pub fn negotiated(conn: &rustls::CommonState) -> Option<Self> {
        conn.alpn_protocol().and_then(Self::parse)
    }

    /// The application protocol inside: `None` for TCP, else the HTTP version.
    pub fn http_version(self) -> Option<&'static str> {
        match self {
            MeshAlpn::PeerExchange | MeshAlpn::Istio => None,
            MeshAlpn::IstioHttp10 => Some("HTTP/1.0"),
            MeshAlpn::IstioHttp11 => Some("HTTP/1.1"),
            MeshAlpn::IstioH2 => Some("HTTP/2"),
        }
    }
}

fn alpn_ids(alpn: &[MeshAlpn]) -> Vec<Vec<u8>> {
    alpn.iter()
        .map(|a| a.as_str().as_bytes().to_vec())
        .collect()
}

/// Inbound mesh listener: requires a client certificate chaining to the mesh roots with a
/// SPIFFE identity, presents the store's current certificate, and accepts the given ALPN IDs
/// (in preference order; a client offering none of them is refused by rustls).
pub fn server_config(
    store: Arc<CertStore>,
    alpn: &[MeshAlpn],
) -> Result<ServerConfig, rustls::Error> {
    let provider = crate::provider();
    let verifier = Arc::new(MeshClientVerifier {
        store: store.clone(),
        provider: provider.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(StoreResolver(store)));
    config.alpn_protocols = alpn_ids(alpn);
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// Outbound to one destination: presents the store's current certificate and accepts only a
/// server whose SPIFFE identity is in `allowed` (the destination's service accounts); an empty
/// `allowed` accepts any identity chaining to the mesh roots.
pub fn client_config(
    store: Arc<CertStore>,
    allowed: Vec<Identity>,
    alpn: &[MeshAlpn],
) -> Result<ClientConfig, rustls::Error> {
    let provider = crate::provider();
    let verifier = Arc::new(MeshServerVerifier {
        store: store.clone(),
        allowed,
        provider: provider.clone(),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(StoreResolver(store)));
    config.alpn_protocols = alpn_ids(alpn);
    config.resumption = Resumption::disabled();
    Ok(config)
}
