//! `bowline control --config-dir DIR [--state-dir DIR]`: the control plane. Runs the config store
//! over DIR and the monitoring endpoint (configz, ready, metrics, and the API `bowline
//! apply/delete/get` use) until SIGTERM or Ctrl-C. With `--state-dir` it is also the mesh's CA
//! and pushes config to proxies: the discovery and certificate services on `--xds-addr`, with
//! `/debug/syncz`, `/debug/registryz` and `POST /apis/token` on the monitoring endpoint.
//!
//! Once the endpoint is bound, one line goes to standard output, `control plane: monitoring on
//! ADDR`, with the port actually bound, then `control plane: xds on ADDR` when the discovery
//! server runs: scripts and tests that pass port 0 read them from there.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use control::mesh::{Mesh, MeshOptions};
use control::push::PushOptions;
use control::server::{
    ControlPlane, Metrics, Server, DEFAULT_MONITORING_ADDR, DEFAULT_WRITE_VISIBLE_WITHIN,
};
use control::store::{ConfigWriter, DirSource, Store};

fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("control-{host}-{}", std::process::id())
}

#[derive(clap::Args)]
pub struct Args {
    /// Directory of Istio and Kubernetes YAML to serve (created if missing); `mesh.yaml` at its
    /// root is the MeshConfig
    #[arg(long, value_name = "DIR")]
    config_dir: PathBuf,
    /// Address of the monitoring endpoint (/debug/configz, /ready, /metrics) and of the API that
    /// `bowline apply`, `delete` and `get` call. It has NO AUTHENTICATION yet: anyone who can
    /// connect can change the mesh's configuration, so keep it on loopback
    #[arg(long, visible_alias = "monitor-addr", default_value = DEFAULT_MONITORING_ADDR, value_name = "ADDR")]
    monitoring_addr: SocketAddr,
    /// How long the directory must stay quiet before a change is loaded
    #[arg(long, default_value_t = 100, value_name = "N")]
    debounce_ms: u64,
    /// The control plane's own state: the CA's self-signed root (unless --cacerts) and the
    /// bootstrap tokens (`tokens/<ns>/<sa>.token`). Given, the control plane also serves proxies
    /// on --xds-addr
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Istio's plug-in CA directory (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem)
    #[arg(long, value_name = "DIR", requires = "state_dir")]
    cacerts: Option<PathBuf>,
    /// Address of the discovery and certificate services (gRPC over TLS)
    #[arg(long, default_value = control::mesh::DEFAULT_XDS_ADDR, value_name = "ADDR", requires = "state_dir")]
    xds_addr: SocketAddr,
    /// Extra DNS name or IP for the serving certificate, for proxies that address this host
    /// otherwise (repeatable)
    #[arg(long, value_name = "NAME", requires = "state_dir")]
    xds_san: Vec<String>,
    /// How long config changes must stay quiet before a push (at most ten times this)
    #[arg(long, default_value = "100ms", value_parser = parse_duration, value_name = "DURATION")]
    debounce: Duration,
    /// How long an auto-registered WorkloadEntry outlives its proxy's disconnection
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    workload_entry_grace: Duration,
    /// Proxies being pushed to at once
    #[arg(long, default_value_t = control::mesh::DEFAULT_MAX_CONCURRENT_PUSHES, value_name = "N")]
    max_concurrent_pushes: usize,
    /// This instance's name, shown by `bowline proxy-status` [default: control-<host>-<pid>]
    #[arg(long, value_name = "NAME")]
    id: Option<String>,
}

/// `100ms`, `2s`, `1m`, `250us`; a bare number is milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 100ms or 2s"))?;
    let secs = match unit {
        "" | "ms" => n / 1000.0,
        "us" | "µs" => n / 1e6,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (use us, ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
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
    let mut plane = ControlPlane::new(store.handle(), writer, metrics)
        .with_write_visible_within(DEFAULT_WRITE_VISIBLE_WITHIN.max(debounce * 12));
    let mesh = match &args.state_dir {
        Some(state_dir) => {
            // Absolute, because token and root paths are handed to other processes.
            let state_dir = std::path::absolute(state_dir)
                .with_context(|| format!("resolving {}", state_dir.display()))?;
            let opts = MeshOptions {
                state_dir,
                cacerts: args
                    .cacerts
                    .as_ref()
                    .map(std::path::absolute)
                    .transpose()
                    .context("resolving --cacerts")?,
                xds_addr: args.xds_addr,
                extra_sans: args.xds_san.clone(),
                control_plane_id: args.id.clone().unwrap_or_else(default_id),
                max_concurrent_pushes: args.max_concurrent_pushes,
                push: PushOptions {
                    debounce: args.debounce,
                    workload_entry_grace: args.workload_entry_grace,
                    ..PushOptions::default()
                },
            };
            let mesh = Mesh::open(opts, store.handle())
                .await
                .context("starting the discovery server")?;
            plane = plane.with_mesh(mesh.state.clone());
            Some(mesh)
        }
        None => None,
    };
    let server = Server::bind(args.monitoring_addr, plane).await?;
    let addr = server.local_addr();
    tracing::info!(%addr, config_dir = %args.config_dir.display(), "control plane ready");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "control plane: monitoring on {addr}")
        .and_then(|()| stdout.flush())
        .context("writing to standard output")?;
    if let Some(mesh) = &mesh {
        writeln!(stdout, "control plane: xds on {}", mesh.local_addr())
            .and_then(|()| stdout.flush())
            .context("writing to standard output")?;
    }
    drop(stdout);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let discovery = mesh.map(|m| tokio::spawn(m.run(wait(stopped.clone()))));
    let monitoring = tokio::spawn(server.run(wait(stopped)));
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    let _ = stop.send(true);
    let _ = monitoring.await;
    if let Some(d) = discovery {
        match d.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "discovery server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "discovery server task failed"),
            Ok(Ok(())) => {}
        }
    }
    drop(store);
    tracing::info!("control plane stopped");
    Ok(ExitCode::SUCCESS)
}
