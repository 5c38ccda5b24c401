//! `bowline proxy`: serve a proxy snapshot until SIGTERM, SIGINT or `POST /quitquitquit`, then
//! drain. The snapshot is either a JSON file (`--snapshot`) or Istio YAML compiled through the
//! model for one proxy (`--config-dir` with `--role`, `--labels`, `--namespace`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use api::{Decoded, Severity};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["snapshot", "config_dir"])))]
pub struct Args {
    /// Proxy snapshot (listeners, route tables, clusters) as JSON
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Directory of Istio and Kubernetes YAML/JSON (read recursively), compiled for this proxy.
    /// Read once at start: changes to the files are not picked up until a restart
    #[arg(long)]
    config_dir: Option<PathBuf>,
    /// With --config-dir: gateway (listeners from Gateways selecting --labels) or sidecar
    /// (outbound listeners for every visible service)
    #[arg(long, value_enum, default_value = "sidecar", requires = "config_dir")]
    role: RoleArg,
    /// With --config-dir: the proxy's labels, `k=v,k=v` (e.g. istio=ingressgateway)
    #[arg(long, default_value = "", requires = "config_dir")]
    labels: String,
    /// With --config-dir: the proxy's namespace
    #[arg(long, default_value = "default", requires = "config_dir")]
    namespace: String,
    /// With --config-dir: added to every listener port (serve a Gateway's port 80 as 8080 with 8000)
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        requires = "config_dir"
    )]
    port_offset: i32,
    /// Admin server address (/config_dump, /stats/prometheus, /clusters, /ready, /quitquitquit)
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
}

pub fn run(args: Args) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let snapshot = match (&args.snapshot, &args.config_dir) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a proxy snapshot", file.display()))?
        }
        (None, Some(dir)) => compile_dir(dir, &args)?,
        (None, None) => anyhow::bail!("one of --snapshot and --config-dir is required"),
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
        let config = proxy::ProxyConfig {
            admin_addr: args.admin_addr,
            health_addr: args.health_addr,
            seed: args.seed,
            ..Default::default()
        };
        let handle = proxy::start(config, snapshot).await?;
        tracing::info!(admin = %handle.admin_addr(), health = %handle.health_addr(), "proxy ready");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
            _ = handle.quit_requested() => tracing::info!("quitquitquit: draining"),
        }
        let left = handle.drain(Duration::from_secs(args.drain_secs)).await;
        if left > 0 {
            tracing::warn!(connections = left, "drain period over, closing the rest");
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Gateway,
    Sidecar,
}

/// Reads and validates every document under `dir` (invalid ones are reported with file:line and
/// left out, the rest still served), then compiles them for this proxy.
fn compile_dir(dir: &std::path::Path, args: &Args) -> Result<model::ProxySnapshot> {
    let inputs = super::input::read_all(&[dir.to_path_buf()])?;
    let mut resources = Vec::new();
    let mut rejected = 0usize;
    for input in &inputs {
        for d in api::load_str(&input.name, &input.text) {
            let (resource, problems) = match d {
                Decoded::Resource(r) => {
                    let problems = r.problems();
                    (Some(*r), problems)
                }
                Decoded::Other(_) => continue,
                Decoded::Invalid(p) => (None, p),
            };
            let mut bad = resource.is_none();
            for p in &problems {
                bad |= p.severity == Severity::Error;
                tracing::warn!("{p}");
            }
            match resource {
                Some(r) if !bad => resources.push(r),
                _ => rejected += 1,
            }
        }
    }
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
    let proxy = model::ProxyIdentity {
        role: match args.role {
            RoleArg::Gateway => model::Role::Gateway,
            RoleArg::Sidecar => model::Role::Sidecar,
        },
        namespace: args.namespace.clone(),
        labels,
        port_offset: args.port_offset,
        version: format!("{}", dir.display()),
    };
    let mesh = api::types::mesh::MeshConfig::istio_default();
    let compiled = model::compile(&resources, &mesh, &proxy)
        .with_context(|| format!("compiling {}", dir.display()))?;
    for w in &compiled.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(
        resources = resources.len(),
        rejected,
        listeners = compiled.snapshot.listeners.len(),
        clusters = compiled.snapshot.clusters.len(),
        "compiled {}",
        dir.display()
    );
    Ok(compiled.snapshot)
}
