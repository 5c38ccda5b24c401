//! TLS from the proxy to non-mesh upstreams (DestinationRule `tls` `SIMPLE` and `MUTUAL`):
//! rustls client configs from PEM files, SNI, `subjectAltNames` and `insecureSkipVerify`.
//!
//! `ISTIO_MUTUAL` is the mesh's own mTLS and is not built here: [`connector`] answers `None`
//! for it (plain text, as before mesh mTLS exists) so the mesh TLS code can take that variant
//! over without touching the rest.

use std::sync::Arc;

use model::{TlsFiles, UpstreamTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Why a cluster's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Pem { path: String, reason: String },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("`{0}` is not a valid SNI name")]
    Sni(String),
}

/// What a pool needs to start TLS on a new connection.
#[derive(Clone)]
pub struct Connector {
    pub config: Arc<ClientConfig>,
    pub connector: tokio_rustls::TlsConnector,
    /// Sent as SNI and used for verification unless `subjectAltNames` says otherwise.
    pub server_name: ServerName<'static>,
}

/// The TLS connector for a cluster, `None` for plain text. `alpn` is offered in the handshake.
pub fn connector(tls: &UpstreamTls, alpn: &[&[u8]]) -> Result<Option<Connector>, TlsError> {
    let files = match tls {
        UpstreamTls::Disable => return Ok(None),
        UpstreamTls::IstioMutual { .. } => {
            tracing::debug!(
                "ISTIO_MUTUAL upstream: mesh mTLS not configured in this proxy, plain text"
            );
            return Ok(None);
        }
        UpstreamTls::Simple(f) | UpstreamTls::Mutual(f) => f,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let verifier: Arc<dyn ServerCertVerifier> = if files.insecure_skip_verify {
        Arc::new(SkipVerify(provider))
    } else {
        let mut roots = RootCertStore::empty();
        if files.ca_certificates.is_empty() {
            // No system trust store is bundled: an empty CA means nothing verifies.
            tracing::warn!(
                "upstream TLS without caCertificates: no server certificate will verify"
            );
        } else {
            for cert in certs(&files.ca_certificates)? {
                roots.add(cert)?;
            }
        }
        let inner =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Pem {
                    path: files.ca_certificates.clone(),
                    reason: e.to_string(),
                })?;
        Arc::new(SanVerifier {
            inner,
            sans: files.subject_alt_names.clone(),
        })
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match tls {
        UpstreamTls::Mutual(_) => {
            builder.with_client_auth_cert(certs(&files.client_certificate)?, key(files)?)?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = if files.sni.is_empty() {
        "localhost".to_string()
    } else {
        files.sni.clone()
    };
    let server_name = ServerName::try_from(name.clone()).map_err(|_| TlsError::Sni(name))?;
    let config = Arc::new(config);
    Ok(Some(Connector {
        connector: tokio_rustls::TlsConnector::from(config.clone()),
        config,
        server_name,
    }))
}

fn read(path: &str) -> Result<Vec<pem::Pem>, TlsError> {
    let text = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_string(),
        source,
    })?;
    pem::parse_many(text).map_err(|e| TlsError::Pem {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

fn certs(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let out: Vec<_> = read(path)?
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| CertificateDer::from(p.into_contents()))
        .collect();
    if out.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_string(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(out)
}

fn key(files: &TlsFiles) -> Result<PrivateKeyDer<'static>, TlsError> {
    let path = &files.private_key;
    for p in read(path)? {
        let der = p.contents().to_vec();
        match p.tag() {
            "PRIVATE KEY" => return Ok(PrivateKeyDer::Pkcs8(der.into())),
            "RSA PRIVATE KEY" => return Ok(PrivateKeyDer::Pkcs1(der.into())),
            "EC PRIVATE KEY" => return Ok(PrivateKeyDer::Sec1(der.into())),
            _ => {}
        }
    }
    Err(TlsError::Pem {
        path: path.to_string(),
        reason: "no private key block".into(),
    })
}

/// WebPKI chain verification, with the name checked against `subjectAltNames` when given
/// (any one must match) instead of the SNI.
#[derive(Debug)]
struct SanVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    sans: Vec<String>,
}

impl ServerCertVerifier for SanVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.sans.is_empty() {
            return self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp,
                now,
            );
        }
        let mut last = rustls::Error::General("no subjectAltNames".into());
        for san in &self.sans {
            let Ok(name) = ServerName::try_from(san.as_str()) else {
                continue;
            };
            match self
                .inner
                .verify_server_cert(end_entity, intermediates, &name, ocsp, now)
            {
                Ok(v) => return Ok(v),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecureSkipVerify`: any certificate is accepted, but handshake signatures still are
/// checked, so the peer must hold the key of the certificate it sent.
#[derive(Debug)]
struct SkipVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
