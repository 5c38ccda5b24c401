//! The whole configuration of one proxy at one version, and its listeners.
//!
//! A snapshot refers to route tables and clusters by name, as Envoy's LDS/RDS/CDS do, so each
//! table can later be pushed and replaced on its own; [`crate::Runtime::build`] checks every
//! reference resolves.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::dns::DnsName;
use crate::route::{RouteTable, WeightedCluster};

/// Everything one proxy serves. Immutable once built: the proxy swaps whole snapshots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySnapshot {
    /// Opaque version label, shown in `/config_dump` and logs (the control plane's nonce later).
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub route_tables: Vec<RouteTable>,
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Names the sidecar's DNS proxy answers, sorted (see [`crate::dns`]); empty for gateways.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<DnsName>,
    /// Clusters whose connections carry mesh mTLS (Istio's auto mTLS / `ISTIO_MUTUAL`), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mesh_tls: Vec<MeshTlsOrigination>,
}

/// How a cluster's connections originate mesh mTLS with the workload's certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshTlsOrigination {
    pub cluster: String,
    /// `true` for DestinationRule `ISTIO_MUTUAL`: every endpoint. `false` is auto mTLS: only
    /// endpoints labelled `security.istio.io/tlsMode: istio` (they run a sidecar).
    #[serde(default)]
    pub all_endpoints: bool,
    /// SPIFFE identities the server may present (the destination's service accounts).
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    /// SNI sent, Istio's `outbound_.<port>_.<subset>_.<host>`.
    #[serde(default)]
    pub sni: String,
}

/// The label Istio puts on workloads that run a sidecar; auto mTLS keys on it.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// One socket the proxy accepts on, and what it does with each connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Unique within the snapshot, e.g. `0.0.0.0_9080`. Metrics and logs use it.
    pub name: String,
    pub address: IpAddr,
    /// `0` asks the OS for a free port (tests); the proxy reports the port it bound.
    pub port: u16,
    pub kind: ListenerKind,
    /// The server side of TLS on this listener (a Gateway server's `tls`): `None` for plaintext.
    /// Passthrough listeners carry it for the record; terminating modes need the proxy to
    /// terminate with these certificates before `kind` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTls>,
}

/// Istio's ServerTLSSettings, as a listener needs them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    pub mode: TlsMode,
    /// Certificates by SNI, one per Gateway server sharing the port; the first is the default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<TlsCertificate>,
    /// CA bundle (file path) verifying client certificates in MUTUAL mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Client certificate SANs accepted in MUTUAL mode; empty accepts any the CA signed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// `TLSV1_2`, `TLSV1_3`; `None` for the proxy's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_protocol_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_protocol_version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// ALPN offered when terminating (`h2`, `http/1.1` for HTTPS servers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
}

/// How a listener treats TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsMode {
    /// Routed by SNI, not terminated.
    Passthrough,
    /// Terminated with a server certificate.
    Simple,
    /// Terminated; the client must present a certificate the CA signed.
    Mutual,
    /// Terminated; a client certificate is verified when presented.
    OptionalMutual,
    /// Terminated with the mesh's own certificates (Istio mTLS).
    IstioMutual,
}

impl TlsMode {
    /// Whether the proxy must terminate TLS on the listener.
    pub fn terminates(self) -> bool {
        self != TlsMode::Passthrough
    }
}

/// One server certificate and the SNI names it serves (empty: any).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificate {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni_hosts: Vec<String>,
    /// Istio's `credentialName`: a secret name, resolved by the proxy to a certificate directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// File paths, when given inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

/// The protocol a listener speaks and where its traffic goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "snake_case", deny_unknown_fields)]
pub enum ListenerKind {
    /// HTTP/1.1 and h2c (HTTP/2 with prior knowledge), detected per connection.
    Http { route_table: String },
    /// HTTP/2 only (h2c prior knowledge); HTTP/1 connections are refused.
    Http2 { route_table: String },
    /// Opaque TCP: each connection goes to one cluster picked by weight.
    Tcp { clusters: Vec<WeightedCluster> },
    /// TLS passed through unterminated, routed by the ClientHello's SNI.
    TlsPassthrough { routes: Vec<SniRoute> },
    /// Istio's protocol sniffing: connections whose first bytes are HTTP go to `route_table`,
    /// anything else is proxied as TCP to `tcp_clusters`.
    AutoSniff {
        route_table: String,
        tcp_clusters: Vec<WeightedCluster>,
    },
    /// Istio's virtual outbound listener (15001): iptables redirected the connection here and
    /// its original destination picks the chain: an exact `address:port` first, then a chain
    /// with no address on that port; else `fallback` (PassthroughCluster or BlackHoleCluster).
    OutboundCapture {
        chains: Vec<CaptureChain>,
        fallback: Vec<WeightedCluster>,
    },
    /// Istio's virtual inbound listener (15006): the original destination port picks the
    /// workload's chain; other ports go to `fallback` (InboundPassthroughCluster) under
    /// `fallback_mtls`.
    InboundCapture {
        chains: Vec<CaptureChain>,
        fallback: Vec<WeightedCluster>,
        #[serde(default)]
        fallback_mtls: PeerMtls,
    },
}

/// One destination of a capture listener and how its connections are served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureChain {
    /// `None` matches any address on the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    pub port: u16,
    /// Inbound only: whether the mesh mTLS is required, accepted or not terminated.
    #[serde(default)]
    pub mtls: PeerMtls,
    /// Http, Http2, Tcp or AutoSniff (capture kinds do not nest).
    pub kind: ListenerKind,
}

/// What an inbound port does with mesh mTLS, PeerAuthentication's modes once inherited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerMtls {
    /// Mesh mTLS and plain text on the same port, told apart per connection.
    #[default]
    Permissive,
    /// Mesh mTLS only; plain text is refused (connection reset).
    Strict,
    /// Nothing is terminated: bytes go to the application as they came.
    Disable,
}

impl ListenerKind {
    /// The route table this listener serves HTTP from, if it serves HTTP.
    pub fn route_table(&self) -> Option<&str> {
        match self {
            ListenerKind::Http { route_table }
            | ListenerKind::Http2 { route_table }
            | ListenerKind::AutoSniff { route_table, .. } => Some(route_table),
            ListenerKind::Tcp { .. }
            | ListenerKind::TlsPassthrough { .. }
            | ListenerKind::OutboundCapture { .. }
            | ListenerKind::InboundCapture { .. } => None,
        }
    }
}

/// A TLS passthrough route: ClientHellos whose SNI matches one of `sni_hosts` (exact or
/// `*.suffix`; empty matches any, including no SNI) go to `clusters`. First match wins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniRoute {
    #[serde(default)]
    pub sni_hosts: Vec<String>,
    pub clusters: Vec<WeightedCluster>,
}
