//! `bowline proxy --snapshot FILE`: serve a proxy snapshot (JSON) until SIGTERM, SIGINT or
//! `POST /quitquitquit`, then drain. Later the same command takes `--config-dir` of Istio
//! YAML compiled through the model.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Proxy snapshot (listeners, route tables, clusters) as JSON
    #[arg(long)]
    snapshot: PathBuf,
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
    let text = std::fs::read_to_string(&args.snapshot)
        .with_context(|| format!("reading {}", args.snapshot.display()))?;
    let snapshot: model::ProxySnapshot = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a proxy snapshot", args.snapshot.display()))?;
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
