//! `bowline control --config-dir DIR`: the control plane. Runs the config store over DIR and the
//! monitoring endpoint (configz, ready, metrics, and the API `bowline apply/delete/get` use) until
//! SIGTERM or Ctrl-C.
//!
//! Once the endpoint is bound, one line goes to standard output, `control plane: monitoring on
//! ADDR`, with the port actually bound: scripts and tests that pass port 0 read it from there.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use control::server::{
    ControlPlane, Metrics, Server, DEFAULT_MONITORING_ADDR, DEFAULT_WRITE_VISIBLE_WITHIN,
};
use control::store::{ConfigWriter, DirSource, Store};

#[derive(clap::Args)]
pub struct Args {
    /// Directory of Istio and Kubernetes YAML to serve (created if missing); `mesh.yaml` at its
    /// root is the MeshConfig
    #[arg(long, value_name = "DIR")]
    config_dir: PathBuf,
    /// Address of the monitoring endpoint (/debug/configz, /ready, /metrics) and of the API that
    /// `bowline apply`, `delete` and `get` call. It has NO AUTHENTICATION yet: anyone who can
    /// connect can change the mesh's configuration, so keep it on loopback
    #[arg(long, default_value = DEFAULT_MONITORING_ADDR, value_name = "ADDR")]
    monitoring_addr: SocketAddr,
    /// How long the directory must stay quiet before a change is loaded
    #[arg(long, default_value_t = 100, value_name = "N")]
    debounce_ms: u64,
}

pub fn run(args: Args) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    std::fs::create_dir_all(&args.config_dir)
        .with_context(|| format!("creating {}", args.config_dir.display()))?;
    // The control plane is not on any data path: two workers serve the endpoint while the store's
    // rebuilds run on the blocking pool.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> Result<ExitCode> {
    let source = DirSource::new(&args.config_dir, Duration::from_millis(args.debounce_ms))?;
    let metrics = Metrics::default();
    let reloads = metrics.reload_seconds.clone();
    // Rejected documents are logged by the store itself, with file, line and reason.
    let store = Store::start_observed(source, move |d| reloads.observe(d.as_secs_f64())).await?;
    let writer = ConfigWriter::new(&args.config_dir, store.handle());
    // The store may hold a busy directory's change back for ten debounce periods.
    let debounce = Duration::from_millis(args.debounce_ms);
    let plane = ControlPlane::new(store.handle(), writer, metrics)
        .with_write_visible_within(DEFAULT_WRITE_VISIBLE_WITHIN.max(debounce * 12));
    let server = Server::bind(args.monitoring_addr, plane).await?;
    let addr = server.local_addr();
    tracing::info!(%addr, config_dir = %args.config_dir.display(), "control plane ready");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "control plane: monitoring on {addr}")
        .and_then(|()| stdout.flush())
        .context("writing to standard output")?;
    drop(stdout);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    server
        .run(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            }
        })
        .await;
    drop(store);
    tracing::info!("control plane stopped");
    Ok(ExitCode::SUCCESS)
}
