//! The workload certificate: the key is made here and never leaves the proxy; a
//! [`CertProvider`] signs the CSR. Istio's agent does the same with istiod's `CreateCertificate`.
//!
//! - [`LocalCa`]: signs with the `ca` crate directly from a CA state directory (config-dir mode
//!   and tests).
//! - [`RemoteCa`]: the control plane's `CreateCertificate`, through a function the transport
//!   (gRPC, in the xds crate) supplies; this crate never speaks gRPC.
//!
//! [`CertManager`] issues the first certificate before the proxy serves, then rotates once the
//! grace-period fraction of the lifetime is left (and on demand: `POST /certs/rotate`). A rotation
//! is one swap in the [`CertStore`]: handshakes from then on use the new certificate, open
//! connections keep theirs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ca::{CertificateAuthority, Identity};
use rustls::pki_types::CertificateDer;
use serde_json::json;
use tls::{CertStore, Certified};
use tokio::sync::Notify;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A signed answer: the chain to present (leaf first) and the roots peers chain to.
#[derive(Debug, Clone)]
pub struct IssuedChain {
    pub chain: Vec<CertificateDer<'static>>,
    pub roots: Vec<CertificateDer<'static>>,
}

impl IssuedChain {
    /// From Istio's `IstioCertificateResponse.cert_chain`: PEM strings, leaf first, root last
    /// (the root becomes the trust anchor unless `roots` are given separately).
    pub fn from_pem_chain(
        chain: &[String],
        roots_pem: Option<&str>,
    ) -> Result<Self, ProviderError> {
        use rustls::pki_types::pem::PemObject;
        let parse = |text: &str| {
            CertificateDer::pem_slice_iter(text.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ProviderError::Answer(e.to_string()))
        };
        let mut certs = Vec::new();
        for pem in chain {
            certs.extend(parse(pem)?);
        }
        let roots = match roots_pem {
            Some(r) => parse(r)?,
            None if certs.len() > 1 => certs.last().cloned().into_iter().collect(),
            None => Vec::new(),
        };
        if certs.is_empty() || roots.is_empty() {
            return Err(ProviderError::Answer(
                "the answer holds no certificate or no root".into(),
            ));
        }
        Ok(IssuedChain {
            chain: certs,
            roots,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the CA refused: {0}")]
    Refused(String),
    #[error("the CA is unreachable: {0}")]
    Unavailable(String),
    #[error("the CA's answer is unusable: {0}")]
    Answer(String),
}

/// Who signs the workload's CSRs.
pub trait CertProvider: Send + Sync {
    /// Signs `csr_pem` (a CSR for exactly this workload's SPIFFE ID) for `ttl` (the CA's default
    /// when `None`).
    fn create_certificate<'a>(
        &'a self,
        csr_pem: &'a str,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<IssuedChain, ProviderError>>;
}

/// Signs with the mesh CA in-process, for the identity this proxy was started as.
pub struct LocalCa {
    ca: CertificateAuthority,
    identity: Identity,
}

impl LocalCa {
    pub fn new(ca: CertificateAuthority, identity: Identity) -> Self {
        LocalCa { ca, identity }
    }
}

impl CertProvider for LocalCa {
    fn create_certificate<'a>(
        &'a self,
        csr_pem: &'a str,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<IssuedChain, ProviderError>> {
        Box::pin(async move {
            let issued = self
                .ca
                .sign_csr(csr_pem, &self.identity, ttl)
                .map_err(|e| ProviderError::Refused(e.to_string()))?;
            Ok(IssuedChain {
                chain: issued.presented_chain(),
                roots: issued.roots.clone(),
            })
        })
    }
}

/// A remote CA reached through a function answering as Istio's `CreateCertificate` does: PEM
/// strings, leaf first (the root last). The transport (the xds crate's gRPC client) supplies
/// the function; `roots_pem` is the mesh root the proxy was given (`--root-cert`), or `None` to
/// trust the last certificate of each answer.
pub struct RemoteCa<F> {
    call: F,
    roots_pem: Option<String>,
}

/// What the transport answers: the PEM chain, or why there is none.
pub type RemoteAnswer = Result<Vec<String>, String>;

impl<F> RemoteCa<F>
where
    F: Fn(String, Option<Duration>) -> BoxFuture<'static, RemoteAnswer> + Send + Sync,
{
    pub fn new(call: F, roots_pem: Option<String>) -> Self {
        RemoteCa { call, roots_pem }
    }
}

impl<F> CertProvider for RemoteCa<F>
where
    F: Fn(String, Option<Duration>) -> BoxFuture<'static, RemoteAnswer> + Send + Sync,
{
    fn create_certificate<'a>(
        &'a self,
        csr_pem: &'a str,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<IssuedChain, ProviderError>> {
        let call = (self.call)(csr_pem.to_string(), ttl);
        Box::pin(async move {
            let chain = call.await.map_err(ProviderError::Unavailable)?;
            IssuedChain::from_pem_chain(&chain, self.roots_pem.as_deref())
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("the issued certificate is unusable: {0}")]
    Certified(#[from] tls::CertifiedError),
    #[error(transparent)]
    Rotate(#[from] tls::RotateError),
    #[error(transparent)]
    Mtls(#[from] crate::mtls::MtlsError),
}

/// The workload's certificate over its lifetime.
pub struct CertManager {
    identity: Identity,
    provider: Arc<dyn CertProvider>,
    ttl: Option<Duration>,
    pub store: Arc<CertStore>,
    pub mesh: Arc<crate::mtls::MeshTls>,
    rotate_now: Notify,
    grace_period_ratio: f64,
    /// When the current certificate arrived. Rotation is timed from here rather than from
    /// `notBefore`, which the CA backdates: from `notBefore` a short-lived certificate would be
    /// due the moment it arrives.
    received: std::sync::Mutex<SystemTime>,
}

impl std::fmt::Debug for CertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertManager")
            .field("identity", &self.identity.to_string())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl CertManager {
    /// Issues the first certificate; the proxy serves mesh traffic only once this returns.
    pub async fn start(
        identity: Identity,
        provider: Arc<dyn CertProvider>,
        ttl: Option<Duration>,
        grace_period_ratio: f64,
    ) -> Result<Arc<Self>, CertError> {
        let first = issue(&identity, provider.as_ref(), ttl).await?;
        let received = std::sync::Mutex::new(SystemTime::now());
        let store = CertStore::with_grace_period_ratio(first, grace_period_ratio)?;
        let mesh = crate::mtls::MeshTls::new(store.clone())?;
        Ok(Arc::new(CertManager {
            identity,
            provider,
            ttl,
            store,
            mesh,
            rotate_now: Notify::new(),
            grace_period_ratio,
            received,
        }))
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Gets a new certificate for a new key and swaps it in.
    pub async fn rotate(&self) -> Result<(), CertError> {
        let next = issue(&self.identity, self.provider.as_ref(), self.ttl).await?;
        self.store.rotate(next)?;
        *self.received.lock().unwrap_or_else(|p| p.into_inner()) = SystemTime::now();
        Ok(())
    }

    /// When the current certificate is due for rotation: once `grace_period_ratio` of its
    /// remaining life at arrival is left.
    pub fn rotation_due_at(&self) -> SystemTime {
        let received = *self.received.lock().unwrap_or_else(|p| p.into_inner());
        let not_after = self.store.current().not_after();
        let life = not_after.duration_since(received).unwrap_or_default();
        not_after - life.mul_f64(self.grace_period_ratio)
    }

    /// Asks the rotation task to rotate now.
    pub fn request_rotation(&self) {
        self.rotate_now.notify_one();
    }

    /// Rotates when due or asked, until the task is dropped. A failed attempt is retried with
    /// backoff while the current certificate keeps serving.
    pub fn spawn_rotation(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                let wait = me
                    .rotation_due_at()
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = me.rotate_now.notified() => {}
                }
                match me.rotate().await {
                    Ok(()) => backoff = Duration::from_millis(200),
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "certificate rotation failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        })
    }

    /// What `/certs` shows, as `istioctl proxy-config secret` does.
    pub fn describe(&self) -> serde_json::Value {
        let current = self.store.current();
        let info = current.info();
        let unix = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        json!({
            "identity": self.identity.to_string(),
            "serial": info.serial,
            "subject_alt_names": info.sans,
            "not_before": unix(info.not_before),
            "not_after": unix(info.not_after),
            "rotation_due": unix(self.rotation_due_at()),
            "root_fingerprints": info.root_fingerprints,
        })
    }
}

async fn issue(
    identity: &Identity,
    provider: &dyn CertProvider,
    ttl: Option<Duration>,
) -> Result<Certified, CertError> {
    let (key, csr) = tls::generate_csr(identity)?;
    let answer = provider.create_certificate(&csr, ttl).await?;
    let certified = Certified::new(&key, answer.chain, answer.roots)?;
    if certified.identity() != identity {
        return Err(CertError::Certified(tls::CertifiedError::WrongIdentity {
            expected: Box::new(identity.clone()),
            got: Box::new(certified.identity().clone()),
        }));
    }
    Ok(certified)
}
