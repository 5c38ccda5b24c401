//! `bowline proxy --xds-address HOST:PORT`: the proxy follows the control plane instead of a
//! local directory. The discovery client (xds crate) reassembles snapshots from the stream and
//! applies them through the proxy's store, which rejects a bad one (the reason goes back as a
//! NACK) while the last good one keeps serving; when the control plane is away the proxy keeps
//! serving and reconnects with backoff.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use proxy::{ProxyError, ProxyHandle};
use xds::client::{Backoff, Connection, Rejection};
use xds::server::BoxFuture;

#[derive(clap::Args)]
pub struct XdsArgs {
    /// The control plane's discovery address (`bowline control --state-dir`): the proxy gets
    /// its config from there and follows it
    #[arg(long, value_name = "HOST:PORT")]
    pub xds_address: Option<String>,
    /// The mesh root certificate the control plane's serving certificate must chain to
    /// (`<state-dir>/root-cert.pem`)
    #[arg(long, value_name = "FILE", requires = "xds_address")]
    root_cert: Option<PathBuf>,
    /// This workload's bootstrap token (`POST /apis/token` on the control plane's monitoring
    /// endpoint hands out its path)
    #[arg(long, value_name = "FILE", requires = "xds_address")]
    token_file: Option<PathBuf>,
    /// Name the control plane's certificate must carry, when it is not the address's host
    #[arg(long, value_name = "NAME", requires = "xds_address")]
    xds_server_name: Option<String>,
    /// The workload's addresses (Istio's INSTANCE_IPS; repeatable; --pod-ip is added)
    #[arg(long = "ip", value_name = "IP", requires = "xds_address")]
    ips: Vec<IpAddr>,
    /// The pod (or VM) name, for the node id `sidecar~IP~NAME.NS~NS.svc.cluster.local`
    #[arg(long, value_name = "NAME", requires = "xds_address")]
    node_name: Option<String>,
    /// Join this WorkloadGroup of the namespace: the control plane registers a WorkloadEntry
    /// for this proxy while it is connected
    #[arg(long, value_name = "NAME", requires = "xds_address")]
    workload_group: Option<String>,
    /// The cluster this proxy belongs to, as Istio's CLUSTER_ID
    #[arg(long, default_value = "Kubernetes", requires = "xds_address")]
    cluster_id: String,
    /// Get the workload certificate from the control plane (`CreateCertificate`, authenticated
    /// by the token) and speak mesh mTLS, rotating it before it expires
    #[arg(long, requires = "xds_address")]
    workload_cert: bool,
    /// The mesh's trust domain, for the workload's SPIFFE identity
    #[arg(long, default_value = "cluster.local", requires = "workload_cert")]
    trust_domain: String,
}

impl XdsArgs {
    fn connection(&self) -> Result<Connection> {
        let address = self
            .xds_address
            .clone()
            .context("--xds-address is required")?;
        let root = self
            .root_cert
            .as_ref()
            .context("--root-cert is required with --xds-address")?;
        let token = self
            .token_file
            .as_ref()
            .context("--token-file is required with --xds-address")?;
        Ok(Connection {
            address,
            server_name: self.xds_server_name.clone(),
            root_cert_pem: std::fs::read_to_string(root)
                .with_context(|| format!("reading {}", root.display()))?,
            token: std::fs::read_to_string(token)
                .with_context(|| format!("reading {}", token.display()))?
                .trim()
                .to_string(),
        })
    }
}

/// With `--workload-cert`: the workload certificate from the control plane's CA, issued before
/// the proxy serves (as Istio's agent does before Envoy starts).
pub async fn certs(
    args: &XdsArgs,
    proxy: &model::ProxyIdentity,
    ttl: Option<std::time::Duration>,
) -> Result<Option<Arc<proxy::certs::CertManager>>> {
    if !args.workload_cert || args.xds_address.is_none() {
        return Ok(None);
    }
    let conn = Arc::new(args.connection()?);
    let trust_domain = ca::TrustDomain::new(&args.trust_domain)
        .with_context(|| format!("--trust-domain `{}`", args.trust_domain))?;
    let workload = ca::Identity::new(trust_domain, &proxy.namespace, &proxy.service_account)
        .context("the workload identity")?;
    let roots = Some(conn.root_cert_pem.clone());
    let call = move |csr: String, ttl: Option<std::time::Duration>| {
        let conn = conn.clone();
        let fut: BoxFuture<'static, proxy::certs::RemoteAnswer> = Box::pin(async move {
            xds::client::create_certificate(&conn, &csr, ttl)
                .await
                .map_err(|e| e.to_string())
        });
        fut
    };
    let provider = Arc::new(proxy::certs::RemoteCa::new(call, roots));
    let manager = proxy::certs::CertManager::start(
        workload.clone(),
        provider,
        ttl,
        tls::DEFAULT_GRACE_PERIOD_RATIO,
    )
    .await
    .with_context(|| {
        format!("getting the workload certificate for {workload} from the control plane")
    })?;
    tracing::info!(identity = %workload, "workload certificate issued by the control plane");
    Ok(Some(manager))
}

/// Fills in what the control plane learns from the node metadata.
pub fn node(args: &XdsArgs, mut proxy: model::ProxyIdentity) -> model::ProxyIdentity {
    let kind = match proxy.role {
        model::Role::Sidecar => "sidecar",
        model::Role::Gateway => "router",
    };
    proxy.ips = args.ips.clone();
    if let Some(ip) = proxy.pod_ip.filter(|ip| !proxy.ips.contains(ip)) {
        proxy.ips.insert(0, ip);
    }
    let ip = proxy
        .ips
        .first()
        .map(ToString::to_string)
        .unwrap_or_else(|| "127.0.0.1".into());
    let name = args
        .node_name
        .clone()
        .unwrap_or_else(|| format!("bowline-proxy-{}", std::process::id()));
    let ns = proxy.namespace.clone();
    proxy.id = format!("{kind}~{ip}~{name}.{ns}~{ns}.svc.cluster.local");
    proxy.workload_group = args.workload_group.clone().unwrap_or_default();
    proxy
}

/// Reads the root and token files and starts following the control plane.
pub fn spawn(
    args: &XdsArgs,
    proxy: model::ProxyIdentity,
    handle: Arc<ProxyHandle>,
) -> Result<tokio::task::JoinHandle<()>> {
    let conn = args.connection()?;
    let node = node(args, proxy);
    tracing::info!(node = %node.id, address = %conn.address, "following the control plane");
    let client = xds::Client::new(conn, node, &args.cluster_id, Arc::new(Apply(handle)))
        .with_backoff(Backoff::default());
    Ok(tokio::spawn(client.run()))
}

struct Apply(Arc<ProxyHandle>);

impl xds::Applier for Apply {
    fn apply(&self, snapshot: model::ProxySnapshot) -> BoxFuture<'_, Result<(), Rejection>> {
        Box::pin(async move {
            match self.0.apply(snapshot).await {
                Ok(()) => Ok(()),
                // A reference to a table of the same push that has not arrived yet.
                Err(e @ ProxyError::Snapshot(model::BuildError::UnknownRef { .. })) => {
                    Err(Rejection::Incomplete(e.to_string()))
                }
                Err(e) => Err(Rejection::Invalid(e.to_string())),
            }
        })
    }
}
