//! `bowline proxy`: serve a proxy snapshot until SIGTERM, SIGINT or `POST /quitquitquit`, then
//! drain. The snapshot is either a JSON file (`--snapshot`, read once) or Istio YAML compiled
//! through the model for one proxy (`--config-dir` with `--role`, `--labels`, `--namespace`).
//!
//! A config directory is followed as istiod follows its sources: the control crate's store
//! watches it and publishes validated versions, each is compiled for this proxy off the async
//! workers and swapped in atomically, and a version that does not compile (or that the proxy
//! rejects) is logged with its reason while the last good one keeps serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use control::store::{ConfigSnapshot, DirSource, Store, DEFAULT_DEBOUNCE};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["snapshot", "config_dir", "xds_address"])))]
#[command(group(clap::ArgGroup::new("compiled").args(["config_dir", "xds_address"])))]
pub struct Args {
    /// Proxy snapshot (listeners, route tables, clusters) as JSON
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Directory of Istio and Kubernetes YAML/JSON (read recursively, `mesh.yaml` at its root as
    /// the mesh config), compiled for this proxy and watched: changes are compiled and applied
    /// without dropping connections; a change that does not compile is logged and the last good
    /// config keeps serving
    #[arg(long)]
    config_dir: Option<PathBuf>,
    /// With --config-dir: gateway (listeners from Gateways selecting --labels) or sidecar
    /// (outbound listeners for every visible service)
    #[arg(long, value_enum, default_value = "sidecar", requires = "compiled")]
    role: RoleArg,
    /// With --config-dir: the proxy's labels, `k=v,k=v` (e.g. istio=ingressgateway)
    #[arg(long, default_value = "", requires = "compiled")]
    labels: String,
    /// With --config-dir: the proxy's namespace
    #[arg(long, default_value = "default", requires = "compiled")]
    namespace: String,
    /// With --config-dir: added to every listener port (serve a Gateway's port 80 as 8080 with 8000)
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        requires = "compiled"
    )]
    port_offset: i32,
    /// The proxy's locality `region/zone/subzone` (Envoy's node locality), for locality load
    /// balancing and failover
    #[arg(long, default_value = "", requires = "compiled")]
    locality: String,
    /// With --config-dir or --xds-address: listener ports served on another port,
    /// `80=8080,443=8443` (before --port-offset, which applies to the other ports)
    #[arg(long, default_value = "", requires = "compiled")]
    port_map: String,
    /// Run the DNS proxy here (UDP and TCP), answering the mesh's service names from this proxy's
    /// config and relaying the rest (a sidecar's 127.0.0.1:15053)
    #[arg(long, value_name = "ADDR")]
    dns_addr: Option<SocketAddr>,
    /// Resolver the DNS proxy relays other names to (repeatable) [default: the nameservers of
    /// /etc/resolv.conf as read at start]
    #[arg(long, value_name = "ADDR", requires = "dns_addr")]
    dns_upstream: Vec<SocketAddr>,
    /// With --config-dir and --role sidecar: traffic is captured by iptables (Istio's
    /// istio-iptables rules in the pod), so serve the virtual outbound (15001) and inbound (15006)
    /// listeners, dispatching by original destination; run as uid 1337 in the pod's network
    /// namespace so the proxy's own connections are not captured
    #[arg(long, requires = "compiled", conflicts_with = "port_offset")]
    capture: bool,
    /// The workload's service account: its mesh identity is
    /// spiffe://<trust domain>/ns/<namespace>/sa/<service account> (default: `default`, or
    /// `istio-ingressgateway-service-account` for gateways)
    #[arg(long, requires = "compiled")]
    service_account: Option<String>,
    /// The workload's (pod's) IP: which service endpoints are this workload
    #[arg(long, requires = "compiled")]
    pod_ip: Option<std::net::IpAddr>,
    /// Mesh CA state directory (`bowline control`'s, or any: a root is created when missing):
    /// the proxy makes its key, signs its workload certificate with this CA, and speaks mesh
    /// mTLS; without it the proxy serves plain text only
    #[arg(long, requires = "config_dir")]
    ca_dir: Option<PathBuf>,
    /// Lifetime of the workload certificate (default: the CA's, 24 h); rotation starts when half
    /// of it is left
    #[arg(long, value_name = "SECONDS")]
    cert_ttl_secs: Option<u64>,
    /// Admin server address (/config_dump, /stats/prometheus, /clusters, /ready, /certs, /quitquitquit)
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin_addr: SocketAddr,
    /// Health server address (/healthz/ready)
    #[arg(long, default_value = "0.0.0.0:15021")]
    health_addr: SocketAddr,
    /// Data-plane worker threads (Envoy's --concurrency)
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// How long in-flight requests may finish after SIGTERM before connections are closed
    #[arg(long, default_value = "5", value_name = "SECONDS")]
    drain_secs: u64,
    /// Seed traffic splits and load balancing (reproducible runs)
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    xds: super::proxy_xds::XdsArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let log_levels = init_logging();
    // Checked before anything starts so a typo fails fast rather than on the first reload.
    let identity = identity(&args)?;
    let dns = dns_config(&args)?;
    if args.capture && matches!(args.role, RoleArg::Gateway) {
        anyhow::bail!("--capture is for sidecars: gateways are not behind traffic capture");
    }
    let file_snapshot = match (&args.snapshot, &args.config_dir) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a proxy snapshot", file.display()))?,
            )
        }
        (None, Some(_)) => None,
        // Served empty until the control plane's first push arrives.
        (None, None) if args.xds.xds_address.is_some() => Some(model::ProxySnapshot::default()),
        (None, None) => {
            anyhow::bail!("one of --snapshot, --config-dir and --xds-address is required")
        }
    };
    // One worker runs as a plain event loop, as Envoy's and nginx's workers do: no work
    // stealing, no cross-thread wakeups.
    let mut builder = if args.concurrency <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.concurrency);
        b
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let (snapshot, follow) = match (file_snapshot, &args.config_dir) {
            (Some(snapshot), _) => (snapshot, None),
            (None, Some(dir)) => {
                let source = DirSource::new(dir, DEFAULT_DEBOUNCE)
                    .with_context(|| format!("watching {}", dir.display()))?;
                let store = Store::start(source)
                    .await
                    .with_context(|| format!("loading {}", dir.display()))?;
                // Subscribed before the first load, so a change made while the first version
                // compiles is not missed.
                let versions = store.handle().subscribe();
                let first = store.handle().load();
                let applied = first.version;
                let snapshot = compile_off_thread(first, identity.clone())
                    .await?
                    .with_context(|| format!("compiling {}", dir.display()))?;
                (snapshot, Some((store, versions, applied)))
            }
            (None, None) => anyhow::bail!("one of --snapshot and --config-dir is required"),
        };
        let certs = match (&args.ca_dir, &follow) {
            (Some(dir), Some((store, _, _))) => {
                let mesh = store.handle().load().mesh.clone();
                let manager = start_certs(dir, &mesh, &identity, args.cert_ttl_secs).await?;
                Some(manager)
            }
            _ => {
                super::proxy_xds::certs(
                    &args.xds,
                    &identity.proxy,
                    args.cert_ttl_secs.map(Duration::from_secs),
                )
                .await?
            }
        };
        let rotation = certs.as_ref().map(|c| c.spawn_rotation());
        let config = proxy::ProxyConfig {
            admin_addr: args.admin_addr,
            health_addr: args.health_addr,
            seed: args.seed,
            dns,
            certs,
            ..Default::default()
        };
        let handle = std::sync::Arc::new(proxy::start(config, snapshot).await?);
        handle.set_log_levels(log_levels);
        tracing::info!(admin = %handle.admin_addr(), health = %handle.health_addr(), "proxy ready");
        let discovery = match args.xds.xds_address {
            Some(_) => Some(super::proxy_xds::spawn(
                &args.xds,
                identity.proxy.clone(),
                handle.clone(),
            )?),
            None => None,
        };
        let follower = follow.map(|(store, versions, applied)| {
            let handle = handle.clone();
            tokio::spawn(async move {
                // The store moves here: it watches the directory for as long as this task runs,
                // and dropping it (abort on drain) stops the watch.
                follow_store(&store, versions, applied, &handle, identity).await;
            })
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
            _ = handle.quit_requested() => tracing::info!("quitquitquit: draining"),
        }
        // No new config while draining: the connections left finish on what they started with.
        if let Some(f) = follower {
            f.abort();
        }
        if let Some(d) = discovery {
            d.abort();
        }
        if let Some(r) = rotation {
            r.abort();
        }
        let left = handle.drain(Duration::from_secs(args.drain_secs)).await;
        if left > 0 {
            tracing::warn!(connections = left, "drain period over, closing the rest");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Logs to stderr with `RUST_LOG` (default `info`) as the starting filter, behind a reload handle
/// so the admin API's `/logging` can change levels while the proxy runs.
fn init_logging() -> std::sync::Arc<proxy::logging::LogLevels> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::EnvFilter;
    let start = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| EnvFilter::try_new(s).is_ok())
        .unwrap_or_else(|| "info".to_string());
    let (filter, reload) = tracing_subscriber::reload::Layer::new(EnvFilter::new(&start));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    std::sync::Arc::new(proxy::logging::LogLevels::new(&start, move |directives| {
        let f = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        reload.reload(f).map_err(|e| e.to_string())
    }))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Gateway,
    Sidecar,
}

/// Who this proxy is, for the model; `version` is filled in per config version.
#[derive(Clone)]
struct Identity {
    proxy: model::ProxyIdentity,
    dir: String,
}

/// Opens the mesh CA in `dir` and issues this workload's first certificate.
async fn start_certs(
    dir: &std::path::Path,
    mesh: &api::types::mesh::MeshConfig,
    identity: &Identity,
    ttl_secs: Option<u64>,
) -> Result<std::sync::Arc<proxy::certs::CertManager>> {
    let trust_domain = ca::TrustDomain::new(mesh.trust_domain())
        .with_context(|| format!("trust domain `{}`", mesh.trust_domain()))?;
    let workload = ca::Identity::new(
        trust_domain.clone(),
        &identity.proxy.namespace,
        &identity.proxy.service_account,
    )
    .context("the workload identity")?;
    let authority = ca::CertificateAuthority::open(
        ca::CaSource::SelfSigned { state_dir: dir },
        ca::CaConfig {
            trust_domain,
            ..Default::default()
        },
    )
    .with_context(|| format!("opening the mesh CA in {}", dir.display()))?;
    let provider = std::sync::Arc::new(proxy::certs::LocalCa::new(authority, workload.clone()));
    let manager = proxy::certs::CertManager::start(
        workload.clone(),
        provider,
        ttl_secs.map(Duration::from_secs),
        tls::DEFAULT_GRACE_PERIOD_RATIO,
    )
    .await
    .with_context(|| format!("issuing the workload certificate for {workload}"))?;
    tracing::info!(identity = %workload, cert = %manager.describe(), "workload certificate issued");
    Ok(manager)
}

fn identity(args: &Args) -> Result<Identity> {
    let mut labels = std::collections::BTreeMap::new();
    for pair in args
        .labels
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("--labels: `{pair}` is not k=v"))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(Identity {
        proxy: model::ProxyIdentity {
            role: match args.role {
                RoleArg::Gateway => model::Role::Gateway,
                RoleArg::Sidecar => model::Role::Sidecar,
            },
            namespace: args.namespace.clone(),
            labels,
            port_offset: args.port_offset,
            locality: args.locality.clone(),
            port_map: port_map(&args.port_map)?,
            version: String::new(),
            capture: args.capture,
            pod_ip: args.pod_ip,
            service_account: args.service_account.clone().unwrap_or_else(|| {
                match args.role {
                    RoleArg::Gateway => "istio-ingressgateway-service-account",
                    RoleArg::Sidecar => "default",
                }
                .to_string()
            }),
            ..model::ProxyIdentity::new(model::Role::Sidecar, &args.namespace)
        },
        dir: args
            .config_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
    })
}

fn port_map(text: &str) -> Result<std::collections::BTreeMap<u16, u16>> {
    let mut map = std::collections::BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair
            .split_once('=')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
        let (from, to) =
            parsed.with_context(|| format!("--port-map: `{pair}` is not PORT=PORT"))?;
        map.insert(from, to);
    }
    Ok(map)
}

/// The DNS proxy's upstreams are read now, before anything else: a sidecar started in a pod
/// still sees the resolv.conf it was started with.
fn dns_config(args: &Args) -> Result<Option<proxy::dns::DnsConfig>> {
    let Some(addr) = args.dns_addr else {
        return Ok(None);
    };
    let upstreams = if args.dns_upstream.is_empty() {
        proxy::dns::upstreams_from_resolv_conf("/etc/resolv.conf")?
    } else {
        args.dns_upstream.clone()
    };
    Ok(Some(proxy::dns::DnsConfig { addr, upstreams }))
}

/// Applies every new config version until the store stops. Versions that pile up while one
/// compiles are skipped to the newest: only the latest config matters.
async fn follow_store(
    store: &Store,
    mut versions: tokio::sync::watch::Receiver<u64>,
    mut applied: u64,
    handle: &proxy::ProxyHandle,
    identity: Identity,
) {
    while versions.changed().await.is_ok() {
        let config = store.handle().load();
        let version = config.version;
        if version <= applied {
            continue;
        }
        let compiled = match compile_off_thread(config, identity.clone()).await {
            Ok(Ok(snapshot)) => snapshot,
            Ok(Err(e)) => {
                tracing::warn!(version, error = %e, "config does not compile; the last good one keeps serving");
                continue;
            }
            Err(e) => {
                tracing::warn!(version, error = %e, "config compile failed; the last good one keeps serving");
                continue;
            }
        };
        let (listeners, clusters) = (compiled.listeners.len(), compiled.clusters.len());
        match handle.apply(compiled).await {
            Ok(()) => {
                applied = version;
                tracing::info!(version, listeners, clusters, "config applied");
            }
            Err(e) => {
                tracing::warn!(version, error = %e, "config rejected by the proxy; the last good one keeps serving");
            }
        }
    }
    tracing::info!(
        version = applied,
        "config store stopped; the last applied config keeps serving"
    );
}

/// Runs [`compile`] on the blocking pool: compiling is CPU work and must not stall the workers
/// that serve traffic. The outer error is the job itself failing (a panic).
async fn compile_off_thread(
    config: std::sync::Arc<ConfigSnapshot>,
    identity: Identity,
) -> Result<Result<model::ProxySnapshot, model::CompileError>> {
    tokio::task::spawn_blocking(move || compile(&config, identity))
        .await
        .context("the compile job stopped")
}

/// Compiles one store version for this proxy. Rejected documents were already logged by the
/// store (file:line and reason); the last good version of each of them is among the resources.
fn compile(
    config: &ConfigSnapshot,
    mut identity: Identity,
) -> Result<model::ProxySnapshot, model::CompileError> {
    identity.proxy.version = format!("{}@{}", identity.dir, config.version);
    let resources: Vec<api::Resource> = config
        .resources
        .values()
        .flat_map(|by_name| by_name.values())
        .map(|entry| entry.resource.clone())
        .collect();
    for w in &config.warnings {
        tracing::warn!(version = config.version, "{w}");
    }
    let compiled = model::compile(&resources, &config.mesh, &identity.proxy)?;
    for w in &compiled.warnings {
        tracing::warn!(version = config.version, "{w}");
    }
    tracing::info!(
        version = config.version,
        resources = resources.len(),
        rejected = config.rejected.len(),
        listeners = compiled.snapshot.listeners.len(),
        clusters = compiled.snapshot.clusters.len(),
        "compiled {}",
        identity.dir
    );
    Ok(compiled.snapshot)
}
