//! `bowline`: the one binary. It parses arguments and calls the libraries; every subcommand's
//! work lives in a crate, and the modules under `cmd` only read files, print and pick exit codes.

mod cmd;

/// With `--features mimalloc`, mimalloc rather than glibc's malloc. Off by default because the
/// binary is also the proxy, and the two roles pull opposite ways (measured on one commit):
/// - the control plane at 1000 proxies x 10 000 services: mimalloc took 31 s of CPU instead of
///   46 s, endpoint-change p99 67 ms instead of 84 ms, peak RSS 385 MB instead of 444 MB;
/// - an idle sidecar holding 10 000 services: 142 MB with mimalloc, 102 MB with glibc (and
///   22 MB under benchmark load, where glibc measured about 10 MB in earlier runs). A sidecar
///   runs next to every workload, so its memory decides.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bowline",
    about = "A service mesh that speaks Istio's configuration API",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version of this binary
    Version,
    /// Check Istio resources the way Istio's admission webhook does (exit 1 when any is invalid)
    Validate(cmd::validate::Args),
    /// Run Istio's cross-resource analyzers over files and directories (istioctl analyze)
    Analyze(cmd::analyze::Args),
    /// Run one of Istio's demo apps (Bookinfo, httpbin, tcp-echo, helloworld) in the foreground
    DemoApp(cmd::demo_app::Args),
    /// Run the control plane over a directory of Istio YAML (istiod's job)
    Control(cmd::control::Args),
    /// Create or update resources in the running control plane (kubectl apply -f)
    Apply(cmd::apply::ApplyArgs),
    /// Delete the resources named in files from the running control plane (kubectl delete -f)
    Delete(cmd::apply::DeleteArgs),
    /// List resources of the running control plane (kubectl get)
    Get(cmd::get::Args),
    /// Run the proxy, serving a snapshot file or Istio YAML compiled for a gateway or sidecar
    Proxy(Box<cmd::proxy::Args>),
    /// Show what a running proxy serves, from its admin API (istioctl proxy-config), or change
    /// its log levels
    ProxyConfig(cmd::proxy_config::Args),
    /// Show each connected proxy's sync state per config type (istioctl proxy-status)
    ProxyStatus(cmd::proxy_status::Args),
    /// Run the local mesh in the foreground: control plane, ingress gateway, pod network (root)
    Up(cmd::up::UpArgs),
    /// Run a workload in the running mesh: a pod with a sidecar and CMD (root)
    Run(cmd::run::Args),
    /// Run a command inside a pod of the running mesh (root)
    Exec(cmd::exec::Args),
    /// The local mesh with Istio's samples (Bookinfo, httpbin, tcp-echo) and a sleep client (root)
    Demo(cmd::demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => {
            println!("bowline {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(a) => cmd::validate::run(a),
        Command::Analyze(a) => cmd::analyze::run(a),
        Command::DemoApp(a) => cmd::demo_app::run(a),
        Command::Control(a) => cmd::control::run(a),
        Command::Apply(a) => cmd::apply::apply(a),
        Command::Delete(a) => cmd::apply::delete(a),
        Command::Get(a) => cmd::get::run(a),
        Command::Proxy(a) => cmd::proxy::run(*a),
        Command::ProxyConfig(a) => cmd::proxy_config::run(a),
        Command::ProxyStatus(a) => cmd::proxy_status::run(a),
        Command::Up(a) => cmd::up::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Exec(a) => cmd::exec::run(a),
        Command::Demo(a) => cmd::demo::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks argument definitions (unique names, valid `requires`) only when a command is
    /// built; this catches two modules adding the same flag before a user does.
    #[test]
    fn every_subcommands_arguments_are_well_formed() {
        super::Cli::command().debug_assert();
    }
}
