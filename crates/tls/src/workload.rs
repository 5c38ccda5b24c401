//! The workload side of issuance: a fresh key and a CSR for its identity, then the answer turned
//! into a [`Certified`], checked before anything serves it.
//!
//! A CA answer is checked here (key matches, chain reaches the roots, exactly one SPIFFE ID, the
//! one we asked for) because a bad answer installed in a [`crate::CertStore`] would fail every
//! handshake until the next rotation.

use std::sync::Arc;
use std::time::SystemTime;

use ca::{Identity, IssuedCert};
use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use crate::info::CertInfo;
use crate::verify::spiffe_identity;

/// Why a key, certificate chain and roots cannot be used together.
#[derive(Debug, thiserror::Error)]
pub enum CertifiedError {
    #[error("cannot generate the key or CSR: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("malformed PEM in the {what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("the certificate chain is empty")]
    NoCertificate,
    #[error("no mesh root certificate was given")]
    NoRoots,
    #[error("a root certificate is unusable: {0}")]
    Root(rustls::Error),
    #[error("the private key is unusable: {0}")]
    Key(rustls::Error),
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error("the certificate does not chain to the mesh roots: {0}")]
    Chain(rustls::Error),
    #[error("the certificate's identity is unusable: {0}")]
    Identity(#[from] crate::PeerError),
    #[error("the certificate is for {got}, not {expected}")]
    WrongIdentity {
        expected: Box<Identity>,
        got: Box<Identity>,
    },
}

/// A workload's private key: ECDSA P-256, as Istio's agents generate by default.
pub struct WorkloadKey(KeyPair);

impl WorkloadKey {
    pub fn generate() -> Result<Self, CertifiedError> {
        Ok(Self(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?))
    }

    /// PKCS#8 PEM, for writing where a sidecar expects `key.pem`.
    pub fn pem(&self) -> String {
        self.0.serialize_pem()
    }

    fn der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.0.serialize_der()))
    }
}

/// A new key and the PEM CSR asking the CA to certify it as `identity`: the SPIFFE ID as the
/// only SAN and an empty subject, which is what the CA accepts.
pub fn generate_csr(identity: &Identity) -> Result<(WorkloadKey, String), CertifiedError> {
    let key = WorkloadKey::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(identity.to_string().as_str().try_into()?)];
    let csr = params.serialize_request(&key.0)?.pem()?;
    Ok((key, csr))
}

/// A certificate with its key and the roots its peers must chain to, checked to belong together.
pub struct Certified {
    identity: Identity,
    key: Arc<CertifiedKey>,
    roots: Arc<RootCertStore>,
    root_certs: Vec<CertificateDer<'static>>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    info: CertInfo,
}

impl Certified {
    /// `chain` is leaf first, then intermediates (a trailing root is harmless).
    pub fn new(
        key: &WorkloadKey,
        chain: Vec<CertificateDer<'static>>,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, CertifiedError> {
        Self::from_der(key.der(), chain, roots)
    }

    /// From the CA's answer to our CSR; refuses a certificate for any other identity.
    pub fn from_issued(
        key: &WorkloadKey,
        issued: &IssuedCert,
        expected: &Identity,
    ) -> Result<Self, CertifiedError> {
        let certified = Self::new(key, issued.presented_chain(), issued.roots.clone())?;
        if &certified.identity != expected {
            return Err(CertifiedError::WrongIdentity {
                expected: Box::new(expected.clone()),
                got: Box::new(certified.identity),
            });
        }
        Ok(certified)
    }

    /// From PEM text as files hold it: a key, a chain (leaf first) and a root bundle.
    pub fn from_pem(key: &str, chain: &str, roots: &str) -> Result<Self, CertifiedError> {
        let pem_err = |what| {
            move |e: rustls::pki_types::pem::Error| CertifiedError::Pem {
                what,
                reason: e.to_string(),
            }
        };
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(pem_err("key"))?;
        let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err("certificate chain"))?;
        let roots = CertificateDer::pem_slice_iter(roots.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err("root bundle"))?;
        Self::from_der(key, chain, roots)
    }

    fn from_der(
        key: PrivateKeyDer<'static>,
        chain: Vec<CertificateDer<'static>>,
        root_certs: Vec<CertificateDer<'static>>,
    ) -> Result<Self, CertifiedError> {
        let provider = crate::provider();
        if chain.is_empty() {
            return Err(CertifiedError::NoCertificate);
        }
        if root_certs.is_empty() {
            return Err(CertifiedError::NoRoots);
        }
        let mut roots = RootCertStore::empty();
        for r in &root_certs {
            roots.add(r.clone()).map_err(CertifiedError::Root)?;
        }
        let roots = Arc::new(roots);
        // Peers already hold the root; sending it only costs bytes in every handshake.
        let leaf = chain[0].clone();
        let chain: Vec<_> = std::iter::once(leaf.clone())
            .chain(
                chain
                    .into_iter()
                    .skip(1)
                    .filter(|c| !root_certs.contains(c)),
            )
            .collect();
        let parsed = ParsedCertificate::try_from(&leaf).map_err(CertifiedError::Chain)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &chain[1..],
            UnixTime::now(),
            provider.signature_verification_algorithms.all,
        )
        .map_err(CertifiedError::Chain)?;
        let identity = spiffe_identity(&leaf)?;

        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(CertifiedError::Key)?;
        let key = CertifiedKey::new(chain, signing_key);
        key.keys_match().map_err(|_| CertifiedError::KeyMismatch)?;

        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider)
            .build()
            .map_err(|e| CertifiedError::Root(rustls::Error::General(e.to_string())))?;
        let info = CertInfo::new(&leaf, &root_certs)?;
        Ok(Self {
            identity,
            key: Arc::new(key),
            roots,
            root_certs,
            client_verifier,
            info,
        })
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.key
    }

    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.key.cert[0]
    }

    pub fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }

    pub fn root_certs(&self) -> &[CertificateDer<'static>] {
        &self.root_certs
    }

    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    pub fn not_before(&self) -> SystemTime {
        self.info.not_before
    }

    pub fn not_after(&self) -> SystemTime {
        self.info.not_after
    }

    pub(crate) fn client_verifier(&self) -> &Arc<dyn ClientCertVerifier> {
        &self.client_verifier
    }
}

impl std::fmt::Debug for Certified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certified")
            .field("identity", &self.identity.to_string())
            .field("serial", &self.info.serial)
            .field("not_after", &self.info.not_after)
            .finish_non_exhaustive()
    }
}
