//! `bowline up`: the local mesh in the foreground (control plane, ingress gateway, node
//! network, DNS relay) until Ctrl-C or SIGTERM, then everything it made is removed. The work is
//! in the `mesh` crate; this module parses flags, prints and waits for signals.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use mesh::{Mesh, MeshOptions};

#[derive(clap::Args)]
pub struct UpArgs {
    /// Directory the control plane keeps the mesh's configuration in (created if missing)
    #[arg(long, default_value = "mesh", value_name = "DIR")]
    pub config_dir: PathBuf,
    /// Pod addresses (never routed off this machine)
    #[arg(long, value_name = "CIDR")]
    pub pod_cidr: Option<Ipv4Net>,
}

pub fn run(args: UpArgs) -> Result<ExitCode> {
    super::run_mesh::init_logging();
    let runtime = super::run_mesh::runtime()?;
    runtime.block_on(async move {
        let mesh = start(&args).await?;
        let code = super::run_mesh::serve(mesh, Vec::new()).await;
        Ok(code)
    })
}

/// Starts the mesh and prints what runs where.
pub async fn start(args: &UpArgs) -> Result<Mesh> {
    let mut opts = MeshOptions::new(
        &args.config_dir,
        std::env::current_exe().context("finding the bowline binary")?,
    );
    opts.pod_cidr = args.pod_cidr;
    let mesh = Mesh::up(opts).await?;
    let s = &mesh.state;
    println!("bowline mesh up (pid {})", s.pid);
    println!(
        "  control plane   http://{}  (config in {})",
        s.control,
        s.config_dir.display()
    );
    if let Some(xds) = s.xds {
        println!("  discovery       {xds}  (xDS and CA over TLS; `bowline proxy-status` lists the proxies)");
    }
    println!("  ingress gateway 127.0.0.1: Gateway port 80 on 8080, 443 on 8443, others as is");
    println!(
        "  pod network     {} on bridge {}",
        s.pod_cidr,
        mesh.node.bridge()
    );
    match s.dns_relay {
        Some(r) => println!("  DNS relay       {r} (pods' sidecars forward non-mesh names here)"),
        None => println!("  DNS relay       none (pods resolve mesh names only)"),
    }
    println!("  add workloads:  sudo bowline run --name NAME --labels app=NAME --port 9080/http -- CMD...");
    Ok(mesh)
}
