//! Peer verification for mesh mTLS: the peer's chain must reach the mesh roots, and its
//! certificate must name exactly one SPIFFE identity.
//!
//! Outbound, the server's identity must also be one the destination may run as (its service
//! accounts); this replaces hostname verification, as in Istio, because a pod's certificate names
//! its service account, not the host the client dialled. Roots are read from the [`CertStore`] at
//! every handshake, so a trust-bundle change applies to the next connection.

use std::sync::Arc;

use ca::{Identity, IdentityError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};
use x509_parser::extensions::GeneralName;

use crate::store::CertStore;

/// Why a peer has no usable mesh identity.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    #[error("the peer presented no certificate")]
    NoCertificate,
    #[error("the peer certificate cannot be parsed: {0}")]
    Unparseable(String),
    #[error("the peer certificate has no SPIFFE URI SAN")]
    NoSpiffeId,
    #[error("the peer certificate has several SPIFFE IDs ({0:?}); a mesh certificate has one")]
    SeveralSpiffeIds(Vec<String>),
    #[error("the peer's SPIFFE ID is not an Istio workload identity: {0}")]
    Invalid(#[from] IdentityError),
    #[error("the peer is {peer}, which is not among the destination's identities {allowed:?}")]
    NotAllowed {
        peer: Identity,
        allowed: Vec<String>,
    },
}

/// The SPIFFE identity a certificate carries in its URI SANs.
pub fn spiffe_identity(cert: &CertificateDer<'_>) -> Result<Identity, PeerError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| PeerError::Unparseable(e.to_string()))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| PeerError::Unparseable(e.to_string()))?
        .ok_or(PeerError::NoSpiffeId)?;
    let ids: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) if u.starts_with("spiffe://") => Some(*u),
            _ => None,
        })
        .collect();
    match ids.as_slice() {
        [] => Err(PeerError::NoSpiffeId),
        [one] => Ok(one.parse()?),
        many => Err(PeerError::SeveralSpiffeIds(
            many.iter().map(|s| s.to_string()).collect(),
        )),
    }
}

/// The verified identity of the peer of an established connection (for tokio-rustls streams:
/// `stream.get_ref().1`, which derefs to the `CommonState`).
pub fn peer_identity(conn: &rustls::CommonState) -> Result<Identity, PeerError> {
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or(PeerError::NoCertificate)?;
    spiffe_identity(leaf)
}

fn reject(e: PeerError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// Inbound: a client certificate is mandatory, must chain to the mesh roots and name a SPIFFE
/// identity. Which identities may call what is authorization's job, after the handshake.
#[derive(Debug)]
pub(crate) struct MeshClientVerifier {
    pub(crate) store: Arc<CertStore>,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for MeshClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints would have to borrow from a snapshot that rotation may drop; mesh clients have
        // exactly one certificate, so they need no hint to pick it.
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let current = self.store.current();
        current
            .client_verifier()
            .verify_client_cert(end_entity, intermediates, now)?;
        spiffe_identity(end_entity).map_err(reject)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Outbound: the server must chain to the mesh roots and be one of `allowed`.
#[derive(Debug)]
pub(crate) struct MeshServerVerifier {
    pub(crate) store: Arc<CertStore>,
    pub(crate) allowed: Vec<Identity>,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let current = self.store.current();
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            current.roots(),
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let peer = spiffe_identity(end_entity).map_err(reject)?;
        // No service account known for the destination: any mesh identity (the chain to the
        // mesh root is still required), as Istio does without subjectAltNames.
        if !self.allowed.is_empty() && !self.allowed.contains(&peer) {
            return Err(reject(PeerError::NotAllowed {
                peer,
                allowed: self.allowed.iter().map(|i| i.to_string()).collect(),
            }));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
