//! Server-side TLS settings (`ServerTLSSettings`) on Sidecar ingress listeners: Gateway's checks
//! (Istio's `validateTLSOptions` and the CRD's rules), plus the CRD's cap of two
//! `tlsCertificates`, which Sidecar enforces (Gateway follows Istio's tests, which only warn).

use super::super::{at, gateway, Report};
use crate::types::sidecar::IngressServerTlsSettings;

pub use super::super::gateway::is_valid_cipher_suite;

/// The CRD's `maxItems: 2` on `tlsCertificates`; the rest of the schema is in
/// [`server_tls_options`].
pub fn server_tls_schema(r: &mut Report, path: &str, t: &IngressServerTlsSettings) {
    if let Some(n) = t.tls_certificates.as_ref().map(Vec::len).filter(|n| *n > 2) {
        r.error(
            at(path, "tlsCertificates"),
            format!("Too many: {n}: must have at most 2 items"),
        );
    }
}

/// Istio's `validateTLSOptions` and the CRD's rules on the settings, as for a Gateway server.
pub fn server_tls_options(r: &mut Report, path: &str, t: &IngressServerTlsSettings) {
    gateway::validate_tls_options(r, path, t);
}
