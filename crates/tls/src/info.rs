//! Facts about a workload certificate for an admin page: what `istioctl proxy-config secret`
//! shows, with the root fingerprint in the form `openssl x509 -fingerprint -sha256` prints.

use std::time::{Duration, SystemTime};

use rustls::pki_types::CertificateDer;
use serde::Serialize;
use x509_parser::extensions::GeneralName;

use crate::verify::PeerError;

#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    /// Lowercase hex, without separators.
    pub serial: String,
    /// Every SAN, as `URI:...`, `DNS:...` or `IP:...`.
    pub sans: Vec<String>,
    #[serde(with = "unix_seconds")]
    pub not_before: SystemTime,
    #[serde(with = "unix_seconds")]
    pub not_after: SystemTime,
    /// SHA-256 of each trusted root's DER, `AB:CD:...`.
    pub root_fingerprints: Vec<String>,
}

impl CertInfo {
    pub fn new(leaf: &CertificateDer<'_>, roots: &[CertificateDer<'_>]) -> Result<Self, PeerError> {
        let (_, cert) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| PeerError::Unparseable(e.to_string()))?;
        let sans = match cert.subject_alternative_name() {
            Ok(Some(san)) => san.value.general_names.iter().map(describe).collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(PeerError::Unparseable(e.to_string())),
        };
        let unix = |t: x509_parser::time::ASN1Time| {
            let secs = t.timestamp();
            if secs >= 0 {
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
            } else {
                SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            }
        };
        Ok(Self {
            serial: hex(cert.raw_serial()),
            sans,
            not_before: unix(cert.validity().not_before),
            not_after: unix(cert.validity().not_after),
            root_fingerprints: roots.iter().map(|r| fingerprint(r)).collect(),
        })
    }
}

/// SHA-256 of a certificate's DER as colon-separated uppercase hex.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::URI(u) => format!("URI:{u}"),
        GeneralName::DNSName(d) => format!("DNS:{d}"),
        GeneralName::IPAddress(b) => match b.len() {
            4 => format!("IP:{}", std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])),
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                format!("IP:{}", std::net::Ipv6Addr::from(a))
            }
            _ => format!("IP:{}", hex(b)),
        },
        other => other.to_string(),
    }
}

mod unix_seconds {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        s.serialize_u64(secs)
    }
}
