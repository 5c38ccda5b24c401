//! What `up` and `demo` share: logging, the runtime, and staying in the foreground until a
//! signal or a crashed child, then stopping pods and the mesh.

use std::process::ExitCode;

use anyhow::{Context, Result};
use mesh::{Mesh, RunningPod};

pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Waits for Ctrl-C, SIGTERM or a dead control plane or gateway, then stops `pods` and `mesh`.
/// Exit 0 on a signal, 1 when a child died.
pub async fn serve(mut mesh: Mesh, pods: Vec<RunningPod>) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => eprintln!("SIGTERM: stopping the mesh"),
                _ = tokio::signal::ctrl_c() => eprintln!("stopping the mesh"),
                why = mesh.child_exited() => {
                    eprintln!("{why}: stopping the mesh");
                    code = ExitCode::from(1);
                }
            }
        }
        Err(e) => eprintln!("cannot wait for SIGTERM ({e}); stopping"),
    }
    stop(mesh, pods).await;
    code
}

/// Stops the pods (in parallel), then the mesh; failures are reported, not fatal.
pub async fn stop(mesh: Mesh, pods: Vec<RunningPod>) {
    let mut set = tokio::task::JoinSet::new();
    for p in pods {
        set.spawn(p.stop());
    }
    while let Some(r) = set.join_next().await {
        if let Ok(Err(e)) = r {
            eprintln!("warning: {e}");
        }
    }
    if let Err(e) = mesh.shutdown().await {
        eprintln!("warning: {e}");
    }
}
