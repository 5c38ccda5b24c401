//! Types of `Gateway` (networking.istio.io): the servers a gateway proxy exposes, each a port,
//! the hosts it serves and its TLS settings, as `networking/v1alpha3/gateway.proto` defines them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::is_default;

/// A load balancer at the mesh edge: which proxies (`selector`) listen on which ports (`servers`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Gateway {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Server>,
    /// Labels of the gateway pods this configuration applies to. A plain label map, not a
    /// `WorkloadSelector`; looked up in all namespaces unless the mesh restricts it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
}

/// One listener of the gateway.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Server {
    /// Required by the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    /// An IP address or `unix://` socket path to listen on instead of all addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// `namespace/dnsName` (or a bare `dnsName`, meaning `*/dnsName`); required by the schema.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// `127.0.0.1:PORT` or `unix:///path`: where traffic goes by default. Reserved by Istio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The port a server listens on. `number`, `protocol` and `name` are all required by the schema;
/// `number` is an `Option` because an explicit `0` (with a `unix://` bind) is valid but a missing
/// one is not.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Port {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// `HTTP|HTTPS|GRPC|GRPC-WEB|HTTP2|MONGO|TCP|TLS`, any case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Deprecated and without effect on gateways (validation refuses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

impl Port {
    /// The port number, 0 when unset.
    pub fn number_or_zero(&self) -> u32 {
        self.number.unwrap_or(0)
    }
}

/// How a server terminates (or passes through) TLS.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerTlsSettings {
    /// Answer plain HTTP with a 301 to HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: ServerTlsMode,
    /// File path of the server certificate (file mounted certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// File path of the CA bundle used to verify client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
    /// Secret holding the certificates (fetched over SDS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// One or two secrets (e.g. an RSA and an ECDSA certificate). `Option` because the schema
    /// refuses an empty list but not a missing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_names: Option<Vec<String>>,
    /// Secret or ConfigMap holding only the CA certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_credential_name: Option<String>,
    /// File mounted certificate pairs. `Option` for the same reason as `credential_names`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificates: Option<Vec<ServerTlsCertificate>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_spki: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_hash: Vec<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub min_protocol_version: ServerTlsProtocol,
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_protocol_version: ServerTlsProtocol,
    /// OpenSSL-style cipher names; `-`/`+`/`!` expressions are passed through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

impl ServerTlsSettings {
    /// The credential names, empty when unset.
    pub fn credential_names(&self) -> &[String] {
        self.credential_names.as_deref().unwrap_or_default()
    }
    /// The certificate pairs, empty when unset.
    pub fn tls_certificates(&self) -> &[ServerTlsCertificate] {
        self.tls_certificates.as_deref().unwrap_or_default()
    }
}

/// One file mounted certificate pair of a server.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerTlsCertificate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
}

/// `ServerTLSSettings.TLSmode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    /// Forward the TLS connection as is, routed by SNI.
    #[default]
    Passthrough,
    Simple,
    Mutual,
    /// Passthrough where the SNI alone names the destination (east-west gateways); no
    /// VirtualService needed.
    AutoPassthrough,
    /// Mutual TLS with the mesh's own certificates.
    IstioMutual,
    /// Like `MUTUAL`, but a client certificate is optional.
    OptionalMutual,
}

impl ServerTlsMode {
    /// The proto's name of the mode (`AUTO_PASSTHROUGH`), for messages.
    pub fn name(self) -> &'static str {
        match self {
            ServerTlsMode::Passthrough => "PASSTHROUGH",
            ServerTlsMode::Simple => "SIMPLE",
            ServerTlsMode::Mutual => "MUTUAL",
            ServerTlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
            ServerTlsMode::IstioMutual => "ISTIO_MUTUAL",
            ServerTlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
        }
    }
}

/// `ServerTLSSettings.TLSProtocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum ServerTlsProtocol {
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    #[serde(rename = "TLSV1_0")]
    TlsV1_0,
    #[serde(rename = "TLSV1_1")]
    TlsV1_1,
    #[serde(rename = "TLSV1_2")]
    TlsV1_2,
    #[serde(rename = "TLSV1_3")]
    TlsV1_3,
}
