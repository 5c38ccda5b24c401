//! Istio's certificate service: `CreateCertificate(csr, validity_duration) -> cert_chain`,
//! signed by the mesh CA for exactly the identity the caller's bearer token proves.

use std::sync::Arc;
use std::time::Duration;

use ca::{Authenticator, CertificateAuthority, SignError};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::istio_auth::istio_certificate_service_server::IstioCertificateService;
use crate::istio_auth::{IstioCertificateRequest, IstioCertificateResponse};
use crate::server::authenticate;

pub struct CertService {
    ca: Arc<CertificateAuthority>,
    auth: Arc<dyn Authenticator>,
}

impl CertService {
    pub fn new(ca: Arc<CertificateAuthority>, auth: Arc<dyn Authenticator>) -> Self {
        CertService { ca, auth }
    }
}

#[tonic::async_trait]
impl IstioCertificateService for CertService {
    async fn create_certificate(
        &self,
        req: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        let proven = authenticate(self.auth.as_ref(), &req, "CreateCertificate").await?;
        let peer = req.remote_addr();
        let body = req.into_inner();
        let ttl = u64::try_from(body.validity_duration)
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        let issued = self.ca.sign_csr(&body.csr, &proven, ttl).map_err(|e| {
            warn!(?peer, %proven, reason = %e, "refused a certificate request");
            match e {
                SignError::IdentityMismatch { .. } | SignError::ForeignTrustDomain { .. } => {
                    Status::permission_denied(e.to_string())
                }
                SignError::Unauthenticated(_) => Status::unauthenticated(e.to_string()),
                SignError::Csr(_) | SignError::CsrSignature | SignError::TtlTooLong { .. } => {
                    Status::invalid_argument(e.to_string())
                }
                _ => Status::internal(e.to_string()),
            }
        })?;
        info!(%proven, not_after = %issued.not_after, "issued a workload certificate");
        Ok(Response::new(IstioCertificateResponse {
            cert_chain: split_pem(&issued.cert_chain_pem()),
        }))
    }
}

/// One string per certificate, as Istio's CA answers.
fn split_pem(pem: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    pem.split_inclusive(END)
        .map(str::trim)
        .filter(|b| b.ends_with(END))
        .map(|b| format!("{b}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn pem_blocks_split_one_per_certificate() {
        let two = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBB==\n-----END CERTIFICATE-----\n";
        let parts = super::split_pem(two);
        assert_eq!(parts.len(), 2);
        assert!(parts[1].contains("BB=="));
    }
}
