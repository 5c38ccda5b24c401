//! Signing: workload certificates for a proven SPIFFE identity, and the control plane's own
//! serving certificate.
//!
//! The CSR contributes its public key and nothing else. Its SAN is only compared with the
//! identity the caller proved; every field of the issued certificate (SAN, lifetime, usages,
//! CA:FALSE) is chosen here, so a crafted CSR cannot ask for more than an identity.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use tracing::{debug, info};

use crate::auth::{AuthError, Authenticator};
use crate::files::{cert_to_pem, certs_to_pem};
use crate::identity::{Identity, TrustDomain};
use crate::{plugin, random_serial, selfsigned, CaError, SigningMaterial};

/// Where the CA's signing key comes from.
#[derive(Debug, Clone, Copy)]
pub enum CaSource<'a> {
    /// Bowline's own root, created in (then always loaded from) this directory.
    SelfSigned { state_dir: &'a Path },
    /// An operator's intermediate, laid out as Istio's `cacerts` secret.
    PlugIn { cacerts_dir: &'a Path },
}

#[derive(Debug, Clone)]
pub struct CaConfig {
    pub trust_domain: TrustDomain,
    /// Lifetime of a workload certificate when the request names none (Istio: 24 h).
    pub default_ttl: Duration,
    /// Longest lifetime a request may ask for (Istio's MAX_WORKLOAD_CERT_TTL: 90 days).
    pub max_ttl: Duration,
    /// Lifetime of a newly created self-signed root.
    pub root_ttl: Duration,
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            trust_domain: TrustDomain::default(),
            default_ttl: Duration::from_secs(24 * 3600),
            max_ttl: Duration::from_secs(90 * 24 * 3600),
            root_ttl: selfsigned::DEFAULT_ROOT_TTL,
        }
    }
}

/// Why a certificate was not issued.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the caller is not authenticated: {0}")]
    Unauthenticated(#[from] AuthError),
    #[error("the CSR cannot be parsed: {0}")]
    Csr(String),
    #[error("the CSR's signature does not verify: it was not signed by the key it carries")]
    CsrSignature,
    #[error(
        "the CSR asks for {requested:?} but the caller proved {proven}; a CSR must carry exactly \
         that SPIFFE ID as its only subject alternative name"
    )]
    IdentityMismatch {
        proven: Identity,
        requested: Vec<String>,
    },
    #[error("{identity} is outside this CA's trust domain {trust_domain}")]
    ForeignTrustDomain {
        identity: Identity,
        trust_domain: TrustDomain,
    },
    #[error("requested lifetime {requested:?} exceeds the maximum {max:?}")]
    TtlTooLong { requested: Duration, max: Duration },
    #[error("{0:?} is not a valid DNS name for a server certificate")]
    DnsName(String),
    #[error("signing failed: {0}")]
    Issue(#[from] rcgen::Error),
    #[error("signing failed: {0}")]
    Ca(#[from] CaError),
}

/// A certificate the CA issued, with what a workload needs to use and verify it.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub leaf: CertificateDer<'static>,
    /// The leaf's issuer first, the root last.
    pub chain: Vec<CertificateDer<'static>>,
    /// The trust bundle: every root a workload should accept peers under.
    pub roots: Vec<CertificateDer<'static>>,
    pub not_after: OffsetDateTime,
}

impl IssuedCert {
    /// Leaf then chain up to the root, as Istio's CA answers `CreateCertificate`.
    pub fn cert_chain_pem(&self) -> String {
        let mut out = cert_to_pem(&self.leaf);
        out.push_str(&certs_to_pem(&self.chain));
        out
    }

    pub fn roots_pem(&self) -> String {
        certs_to_pem(&self.roots)
    }

    /// What a TLS endpoint presents: the leaf and its intermediates, without the root the peer
    /// already has.
    pub fn presented_chain(&self) -> Vec<CertificateDer<'static>> {
        let mut out = vec![self.leaf.clone()];
        out.extend(
            self.chain
                .iter()
                .take(self.chain.len().saturating_sub(1))
                .cloned(),
        );
        out
    }
}

/// A serving certificate with the private key generated for it.
pub struct ServerCert {
    pub cert: IssuedCert,
    /// PKCS#8 PEM.
    pub key_pem: String,
}

pub struct CertificateAuthority {
    config: CaConfig,
    signer: SigningMaterial,
}

impl CertificateAuthority {
    pub fn open(source: CaSource<'_>, config: CaConfig) -> Result<Self, CaError> {
        let signer = match source {
            CaSource::SelfSigned { state_dir } => {
                selfsigned::load_or_create(state_dir, &config.trust_domain, config.root_ttl)?
            }
            CaSource::PlugIn { cacerts_dir } => plugin::load(cacerts_dir)?,
        };
        Ok(Self { config, signer })
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.config.trust_domain
    }

    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.signer.roots
    }

    pub fn roots_pem(&self) -> String {
        certs_to_pem(&self.signer.roots)
    }

    /// The certificate whose key signs: the root itself, or the plug-in intermediate.
    pub fn signing_cert(&self) -> &CertificateDer<'static> {
        &self.signer.issuing_chain[0]
    }

    /// Authenticates the caller, then signs its CSR for the identity it proved.
    pub async fn authenticate_and_sign(
        &self,
        authenticator: &dyn Authenticator,
        credential: &str,
        csr_pem: &str,
        ttl: Option<Duration>,
    ) -> Result<IssuedCert, SignError> {
        let proven = authenticator.authenticate(credential).await?;
        self.sign_csr(csr_pem, &proven, ttl)
    }

    /// Signs a workload CSR for `proven_identity`, which the caller must already have
    /// authenticated; the CSR must ask for exactly that identity.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        proven_identity: &Identity,
        ttl: Option<Duration>,
    ) -> Result<IssuedCert, SignError> {
        if proven_identity.trust_domain() != &self.config.trust_domain {
            return Err(SignError::ForeignTrustDomain {
                identity: proven_identity.clone(),
                trust_domain: self.config.trust_domain.clone(),
            });
        }
        let ttl = self.check_ttl(ttl)?;
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| match e {
            rcgen::Error::InvalidCertificationRequestSignature => SignError::CsrSignature,
            rcgen::Error::UnsupportedExtension => SignError::Csr(
                "it requests an extension other than SAN, key usage, EKU or basic constraints"
                    .into(),
            ),
            other => SignError::Csr(other.to_string()),
        })?;
        let requested: Vec<String> = csr
            .params
            .subject_alt_names
            .iter()
            .map(describe_san)
            .collect();
        let expected = proven_identity.to_string();
        if requested.len() != 1 || requested[0] != format!("URI:{expected}") {
            return Err(SignError::IdentityMismatch {
                proven: proven_identity.clone(),
                requested,
            });
        }

        let mut params = self.leaf_params(ttl)?;
        params.subject_alt_names = vec![SanType::URI(expected.as_str().try_into()?)];
        let cert = params.signed_by(&csr.public_key, &self.signer.issuer)?;
        debug!(identity = %expected, not_after = %params.not_after, "issued workload certificate");
        Ok(self.issued(cert.der().clone(), params.not_after))
    }

    /// A serving certificate for the control plane itself (for example
    /// `istiod.istio-system.svc`, `localhost`, `127.0.0.1`), with a fresh P-256 key.
    pub fn issue_server_cert(
        &self,
        dns_names: &[&str],
        ips: &[IpAddr],
        ttl: Option<Duration>,
    ) -> Result<ServerCert, SignError> {
        let ttl = self.check_ttl(ttl)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = self.leaf_params(ttl)?;
        let mut dn = DistinguishedName::new();
        if let Some(first) = dns_names.first() {
            dn.push(DnType::CommonName, *first);
        }
        params.distinguished_name = dn;
        for name in dns_names {
            let name = (*name)
                .try_into()
                .map_err(|_| SignError::DnsName(name.to_string()))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let cert = params.signed_by(&key, &self.signer.issuer)?;
        info!(names = ?dns_names, ips = ?ips, not_after = %params.not_after, "issued control-plane serving certificate");
        Ok(ServerCert {
            cert: self.issued(cert.der().clone(), params.not_after),
            key_pem: key.serialize_pem(),
        })
    }

    fn check_ttl(&self, ttl: Option<Duration>) -> Result<Duration, SignError> {
        let ttl = ttl.unwrap_or(self.config.default_ttl);
        if ttl > self.config.max_ttl {
            return Err(SignError::TtlTooLong {
                requested: ttl,
                max: self.config.max_ttl,
            });
        }
        Ok(ttl)
    }

    /// Everything a leaf carries apart from its names.
    fn leaf_params(&self, ttl: Duration) -> Result<CertificateParams, SignError> {
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        // Workload certificates have an empty subject, as Istio's do: the identity is the URI
        // SAN, and an empty subject makes that SAN critical (RFC 5280 4.2.1.6).
        params.distinguished_name = DistinguishedName::new();
        // A minute of backdating absorbs clock skew between the CA and a fresh node.
        params.not_before = now - time::Duration::minutes(1);
        // Never outlive the signer: a chain is only as valid as its shortest link.
        params.not_after = (now + ttl).min(self.signer.signer_not_after);
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }

    fn issued(&self, leaf: CertificateDer<'static>, not_after: OffsetDateTime) -> IssuedCert {
        IssuedCert {
            leaf,
            chain: self.signer.issuing_chain.clone(),
            roots: self.signer.roots.clone(),
            not_after,
        }
    }
}

fn describe_san(san: &SanType) -> String {
    match san {
        SanType::URI(u) => format!("URI:{}", u.as_str()),
        SanType::DnsName(d) => format!("DNS:{}", d.as_str()),
        SanType::IpAddress(ip) => format!("IP:{ip}"),
        SanType::Rfc822Name(e) => format!("email:{}", e.as_str()),
        other => format!("{other:?}"),
    }
}
