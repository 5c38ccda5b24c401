//! `bowline demo-app KIND [--version V] [--port P]... [--word W]`: one of Istio's demo apps in
//! the foreground, until SIGTERM or Ctrl-C, then a graceful stop and exit 0.

use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use demo::bookinfo::Upstreams;
use tracing::info;

#[derive(clap::Args)]
pub struct Args {
    /// The app: productpage, details, reviews, ratings, httpbin, tcp-echo or helloworld
    kind: String,
    /// The sample's version (reviews: v1, v2 or v3; httpbin and helloworld: any label;
    /// tcp-echo: v1 or v2 pick the word "one" or "two"; the others: v1)
    #[arg(long)]
    version: Option<String>,
    /// Port to listen on (repeatable; default: the sample's port)
    #[arg(long = "port")]
    ports: Vec<u16>,
    /// tcp-echo: the word each echoed line is prefixed with
    #[arg(long)]
    word: Option<String>,
    /// Address to listen on
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
}

pub fn run(args: Args) -> Result<ExitCode> {
    init_logging();
    let kind: demo::Kind = args.kind.parse()?;
    let mut spec = demo::Spec::new(kind);
    spec.version = args.version;
    spec.ports = args.ports;
    spec.word = args.word;
    spec.bind = args.bind;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let running = demo::start(&spec, &Upstreams::from_env()).await?;
        for addr in running.local_addrs() {
            info!(app = %kind, %addr, "serving");
        }
        let stop = shutdown_signal().await;
        info!(app = %kind, "stopping");
        running.shutdown().await;
        stop?;
        Ok(ExitCode::SUCCESS)
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second init (only possible in tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(unix)]
async fn shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => Ok(()),
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C"),
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() -> Result<()> {
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
}
