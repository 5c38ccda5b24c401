//! The control plane's mesh side, started together: the CA (self-signed root in the state
//! directory, or Istio's plug-in `cacerts`), the per-workload bootstrap tokens in
//! `<state-dir>/tokens/<ns>/<sa>.token` (0600), the control plane's own serving certificate,
//! and the discovery and certificate services on one TLS listener (istiod's :15012).
//!
//! [`MeshState`] is what the monitoring endpoint reads: `/debug/syncz`, `/debug/registryz`, and
//! `POST /apis/token`, which hands out the token of a (namespace, service account), issuing it
//! the first time, for whoever starts that workload's proxy (`bowline run`).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ca::{Authenticator, BootstrapTokens, CaConfig, CaSource, CertificateAuthority, TrustDomain};
use tokio::net::TcpListener;
use tracing::info;
use xds::{SyncTable, XdsMetrics};

use crate::push::{PushOptions, Pusher};
use crate::store::StoreHandle;

/// istiod's discovery port, on every interface: proxies in pods connect from their own
/// addresses.
pub const DEFAULT_XDS_ADDR: &str = "0.0.0.0:15012";
/// Istio's PILOT_PUSH_THROTTLE.
pub const DEFAULT_MAX_CONCURRENT_PUSHES: usize = 100;
/// Names the serving certificate always carries: istiod's service names and loopback.
const SERVING_NAMES: &[&str] = &[
    "istiod.istio-system.svc",
    "istiod.istio-system.svc.cluster.local",
    "istiod",
    "localhost",
];
/// The serving certificate is issued at start and not rotated yet: restart within this.
const SERVING_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    // The cause is the source, not part of this message: `bowline control` prints the whole
    // chain, and the CA's reason (which names the file) should read once.
    #[error("opening the CA")]
    Ca(#[from] ca::CaError),
    #[error("trust domain: {0}")]
    TrustDomain(#[from] ca::IdentityError),
    #[error("bootstrap tokens: {0}")]
    Tokens(#[from] ca::auth::TokenError),
    #[error("issuing the control plane's serving certificate")]
    Serving(#[from] ca::SignError),
    #[error("creating the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("binding the discovery address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Serve(#[from] xds::ServeError),
}

#[derive(Clone, Debug)]
pub struct MeshOptions {
    pub state_dir: PathBuf,
    /// Istio's plug-in CA layout (`ca-cert.pem`, `ca-key.pem`, `root-cert.pem`,
    /// `cert-chain.pem`); `None` for the self-signed root in `state_dir`.
    pub cacerts: Option<PathBuf>,
    pub xds_addr: SocketAddr,
    /// Extra DNS names or IPs for the serving certificate (how proxies address this host).
    pub extra_sans: Vec<String>,
    pub control_plane_id: String,
    pub max_concurrent_pushes: usize,
    pub push: PushOptions,
}

/// A token handed out for one workload identity.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenGrant {
    pub identity: String,
    pub token_file: PathBuf,
    pub root_cert_file: PathBuf,
    /// Whether this call issued it (false: the existing token was returned).
    pub issued: bool,
}

/// What the monitoring endpoint reads.
pub struct MeshState {
    pub tokens: Arc<BootstrapTokens>,
    pub root_cert_file: PathBuf,
    pub table: SyncTable,
    pub metrics: XdsMetrics,
    pub pusher: Arc<Pusher>,
    pub control_plane_id: String,
    trust_domain: TrustDomain,
    /// One grant at a time: two first requests for one identity must not both issue, or the
    /// second revokes the token the first handed out (replicas of a workload start together).
    grants: tokio::sync::Mutex<()>,
}

impl MeshState {
    /// The token of `namespace`/`service_account`: the one already issued when its file is
    /// intact (so replicas of one workload share it), else a new one.
    pub async fn token(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> Result<TokenGrant, MeshError> {
        let identity = ca::Identity::new(self.trust_domain.clone(), namespace, service_account)?;
        let _one_at_a_time = self.grants.lock().await;
        let path = self.tokens.token_path(&identity);
        let existing = std::fs::read_to_string(&path).unwrap_or_default();
        let valid = !existing.is_empty()
            && self
                .tokens
                .authenticate(existing.trim())
                .await
                .is_ok_and(|proven| proven == identity);
        let issued = if valid {
            false
        } else {
            self.tokens.issue(&identity)?;
            true
        };
        Ok(TokenGrant {
            identity: identity.to_string(),
            token_file: path,
            root_cert_file: self.root_cert_file.clone(),
            issued,
        })
    }
}

/// The discovery server, bound and ready to run.
pub struct Mesh {
    pub state: Arc<MeshState>,
    listener: TcpListener,
    local_addr: SocketAddr,
    opts: xds::ServeOptions<Pusher>,
}

impl Mesh {
    pub async fn open(opts: MeshOptions, store: StoreHandle) -> Result<Mesh, MeshError> {
        let trust_domain = TrustDomain::new(store.load().mesh.trust_domain())?;
        let config = CaConfig {
            trust_domain: trust_domain.clone(),
            ..CaConfig::default()
        };
        std::fs::create_dir_all(&opts.state_dir).map_err(|source| MeshError::StateDir {
            path: opts.state_dir.clone(),
            source,
        })?;
        let (source, root_cert_file) = match &opts.cacerts {
            Some(dir) => (
                CaSource::PlugIn { cacerts_dir: dir },
                dir.join(ca::ROOT_CERT_FILE),
            ),
            None => (
                CaSource::SelfSigned {
                    state_dir: &opts.state_dir,
                },
                opts.state_dir.join(ca::ROOT_CERT_FILE),
            ),
        };
        let authority = Arc::new(CertificateAuthority::open(source, config)?);
        let tokens = Arc::new(BootstrapTokens::open(
            &opts.state_dir.join("tokens"),
            trust_domain.clone(),
        )?);
        let serving = serving_cert(&authority, &opts)?;
        let listener =
            TcpListener::bind(opts.xds_addr)
                .await
                .map_err(|source| MeshError::Bind {
                    addr: opts.xds_addr,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| MeshError::Bind {
            addr: opts.xds_addr,
            source,
        })?;
        let pusher = Pusher::new(store, opts.push.clone());
        let table = SyncTable::default();
        let metrics = XdsMetrics::default();
        let authenticator: Arc<dyn Authenticator> = tokens.clone();
        let serve = xds::ServeOptions {
            provider: pusher.clone(),
            authenticator,
            ca: authority,
            cert_chain_pem: serving.cert.cert_chain_pem(),
            key_pem: serving.key_pem,
            control_plane: opts.control_plane_id.clone(),
            max_concurrent_pushes: opts.max_concurrent_pushes,
            table: table.clone(),
            metrics: metrics.clone(),
        };
        info!(addr = %local_addr, root = %root_cert_file.display(), "discovery server bound");
        Ok(Mesh {
            state: Arc::new(MeshState {
                tokens,
                root_cert_file,
                table,
                metrics,
                pusher,
                control_plane_id: opts.control_plane_id,
                trust_domain,
                grants: tokio::sync::Mutex::new(()),
            }),
            listener,
            local_addr,
            opts: serve,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Pushes and serves until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), MeshError> {
        let debouncer = self.state.pusher.spawn();
        let result = xds::serve(self.listener, self.opts, shutdown).await;
        debouncer.abort();
        Ok(result?)
    }
}

fn serving_cert(
    authority: &CertificateAuthority,
    opts: &MeshOptions,
) -> Result<ca::ServerCert, MeshError> {
    let mut names: Vec<&str> = SERVING_NAMES.to_vec();
    let mut ips: Vec<IpAddr> = vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    if !opts.xds_addr.ip().is_unspecified() && !ips.contains(&opts.xds_addr.ip()) {
        ips.push(opts.xds_addr.ip());
    }
    for san in &opts.extra_sans {
        match san.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => names.push(san),
        }
    }
    Ok(authority.issue_server_cert(&names, &ips, Some(SERVING_TTL))?)
}
