//! `bowline exec NAME [-n NS] -- CMD...`: runs CMD inside a pod's network namespace (its traffic
//! captured by the pod's sidecar, as `kubectl exec` into an injected pod), with this terminal's
//! stdio; the exit code is CMD's.

use std::process::ExitCode;

use anyhow::{Context, Result};
use mesh::rundir::RunDir;

#[derive(clap::Args)]
pub struct Args {
    /// Pod name
    name: String,
    /// Namespace
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// The command
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    mesh::require_privileges()?;
    let mut config = node::NodeConfig::default();
    if let Ok(state) = RunDir::default().mesh() {
        config.cidr = state.pod_cidr.parse().context("the mesh's pod CIDR")?;
    }
    let node = node::Node::new(&config)?;
    let Some(pod) = node.pod(&args.name, &args.namespace)? else {
        anyhow::bail!(
            "no pod {}/{} (see `bowline run`, `bowline demo`)",
            args.namespace,
            args.name
        );
    };
    let mut cmd = node::pod_command(&pod, &args.command[0], None)?;
    cmd.args(&args.command[1..]);
    let status = cmd
        .status()
        .with_context(|| format!("running {} in {}", args.command[0], pod.netns))?;
    Ok(match status.code() {
        Some(c) => ExitCode::from(c as u8),
        // Killed by a signal: the shell's convention, 128 + signal.
        None => {
            use std::os::unix::process::ExitStatusExt;
            ExitCode::from(128u8.wrapping_add(status.signal().unwrap_or(0) as u8))
        }
    })
}
