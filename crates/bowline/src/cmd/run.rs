//! `bowline run --name NAME [-n NS] ... -- CMD...`: one workload in the running mesh: a pod with
//! its sidecar and CMD, staying in the foreground. The pod is removed when CMD exits or on
//! Ctrl-C/SIGTERM; the exit code is CMD's.

use std::process::ExitCode;

use anyhow::{Context, Result};
use mesh::rundir::RunDir;
use mesh::{PodSpec, PortSpec, RunningPod};

#[derive(clap::Args)]
pub struct Args {
    /// Pod name
    #[arg(long)]
    name: String,
    /// Namespace
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Pod labels, `k=v,...` (`app` names the Service created when there is none)
    #[arg(long, default_value = "")]
    labels: String,
    /// Service account (the workload's mTLS identity)
    #[arg(long, default_value = "default")]
    service_account: String,
    /// Container port, `PORT[/NAME]` (repeatable; the name picks the protocol as in Istio)
    #[arg(long = "port", value_name = "PORT[/NAME]")]
    ports: Vec<PortSpec>,
    /// No sidecar and no capture: a workload outside the mesh (Istio's un-injected pods)
    #[arg(long)]
    no_sidecar: bool,
    /// The command, run in the pod as root
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    super::run_mesh::init_logging();
    mesh::require_privileges()?;
    let run_dir = RunDir::default();
    let state = run_dir.mesh()?;
    let mut spec = PodSpec::new(&args.name, &args.namespace, args.command);
    spec.labels = parse_labels(&args.labels)?;
    spec.service_account = args.service_account;
    spec.ports = args.ports;
    spec.sidecar = !args.no_sidecar;
    let config = node::NodeConfig {
        cidr: state.pod_cidr.parse().context("the mesh's pod CIDR")?,
        ..Default::default()
    };
    let node = node::Node::new(&config)?;
    let runtime = super::run_mesh::runtime()?;
    runtime.block_on(async move {
        let mut pod = RunningPod::start(&state, &node, &run_dir, spec).await?;
        eprintln!(
            "pod {}/{} running at {}{}",
            args.namespace,
            args.name,
            pod.ip(),
            if args.no_sidecar { " (no sidecar)" } else { "" }
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let code = tokio::select! {
            r = pod.wait() => match r {
                Ok(status) => status.code().map_or(ExitCode::from(1), |c| ExitCode::from(c as u8)),
                Err(why) => {
                    eprintln!("{why}");
                    ExitCode::from(1)
                }
            },
            _ = term.recv() => ExitCode::SUCCESS,
            _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        };
        pod.stop().await?;
        Ok(code)
    })
}

pub fn parse_labels(text: &str) -> Result<std::collections::BTreeMap<String, String>> {
    let mut labels = std::collections::BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("--labels: `{pair}` is not k=v"))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(labels)
}
