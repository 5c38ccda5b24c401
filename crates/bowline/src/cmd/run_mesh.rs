//! What `up` and `demo` share: logging, the runtime, and staying in the foreground until a
//! signal (restarting a crashed control plane or gateway meanwhile), then stopping pods and the
//! mesh.

use std::process::ExitCode;
use std::time::{Duration, Instant};

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

/// Waits for Ctrl-C or SIGTERM, then stops `pods` and `mesh`. A control plane or gateway that
/// dies is started again (the pods keep running); one that keeps dying (5 times within a minute)
/// stops the mesh with exit code 1.
pub async fn serve(mut mesh: Mesh, pods: Vec<RunningPod>) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot wait for SIGTERM ({e}); stopping");
            stop(mesh, pods).await;
            return ExitCode::from(1);
        }
    };
    let mut restarts: Vec<Instant> = Vec::new();
    loop {
        tokio::select! {
            _ = term.recv() => { eprintln!("SIGTERM: stopping the mesh"); break }
            _ = tokio::signal::ctrl_c() => { eprintln!("stopping the mesh"); break }
            (which, how) = mesh.child_exited() => {
                restarts.retain(|t| t.elapsed() < Duration::from_secs(60));
                if restarts.len() >= 5 {
                    eprintln!("{which} exited ({how}) 5 times within a minute: stopping the mesh");
                    code = ExitCode::from(1);
                    break;
                }
                restarts.push(Instant::now());
                eprintln!("{which} exited ({how}): starting it again");
                if let Err(e) = mesh.restart(which).await {
                    eprintln!("could not start {which} again ({e}): stopping the mesh");
                    code = ExitCode::from(1);
                    break;
                }
            }
        }
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
