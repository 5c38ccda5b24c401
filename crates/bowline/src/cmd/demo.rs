//! `bowline demo [bookinfo|httpbin|tcp-echo|all]`: `bowline up` plus Istio's sample workloads
//! (each a pod with a sidecar), the `sleep` client and the samples' base configuration; prints
//! where to go once the first page answers through the ingress gateway, then stays in the
//! foreground like `up`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mesh::demo::Sample;
use mesh::RunningPod;

#[derive(clap::Args)]
pub struct Args {
    /// Which samples: bookinfo, httpbin, tcp-echo or all
    #[arg(default_value = "bookinfo")]
    sample: Sample,
    #[command(flatten)]
    up: super::up::UpArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    super::run_mesh::init_logging();
    let started = Instant::now();
    let runtime = super::run_mesh::runtime()?;
    runtime.block_on(async move {
        let mesh = super::up::start(&args.up).await?;
        let client = mesh.client();
        let bowline = mesh.state.bowline.clone();
        let mut set = tokio::task::JoinSet::new();
        for spec in args.sample.pods(&bowline) {
            let (state, node, run_dir) = (
                mesh.state.clone(),
                mesh.node.clone(),
                mesh.run_dir().clone(),
            );
            set.spawn(async move { RunningPod::start(&state, &node, &run_dir, spec).await });
        }
        let mut pods = Vec::new();
        let mut failed = None;
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(p)) => {
                    println!("  pod {}/{} at {}", p.spec.namespace, p.spec.name, p.ip());
                    pods.push(p);
                }
                Ok(Err(e)) => failed = Some(anyhow::Error::from(e)),
                Err(e) => failed = Some(anyhow::anyhow!("starting a pod: {e}")),
            }
        }
        if let Some(e) = failed {
            super::run_mesh::stop(mesh, pods).await;
            return Err(e);
        }
        let apply = tokio::task::spawn_blocking(move || -> Result<()> {
            for (name, yaml) in args.sample.base_config() {
                client
                    .apply(name, yaml)
                    .with_context(|| format!("applying {name}"))?;
            }
            Ok(())
        })
        .await
        .context("applying the base config")?;
        if let Err(e) = apply {
            super::run_mesh::stop(mesh, pods).await;
            return Err(e);
        }
        if matches!(args.sample, Sample::Bookinfo | Sample::All) {
            let url = "127.0.0.1:8080";
            let ok = tokio::task::spawn_blocking(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline {
                    if mesh::pod::http_status(url.parse().expect("address"), "/productpage")
                        == Some(200)
                    {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                false
            })
            .await
            .unwrap_or(false);
            if ok {
                println!("ready in {:.1} s", started.elapsed().as_secs_f64());
                println!("Bookinfo: http://127.0.0.1:8080/productpage");
            } else {
                eprintln!(
                    "warning: http://127.0.0.1:8080/productpage did not answer 200 within 60 s"
                );
            }
        } else {
            println!("ready in {:.1} s", started.elapsed().as_secs_f64());
        }
        match args.sample {
            Sample::Httpbin => {
                println!("Client: sudo bowline exec sleep -- curl -s http://httpbin:8000/get")
            }
            Sample::TcpEcho => println!(
                "TCP: apply examples/mesh/tasks/tcp-echo-all-v1.yaml, then 127.0.0.1:31400 echoes"
            ),
            Sample::Bookinfo | Sample::All => println!(
                "Client: sudo bowline exec sleep -- curl -s http://productpage:9080/productpage"
            ),
        }
        println!("Press Ctrl-C to stop.");
        Ok(super::run_mesh::serve(mesh, pods).await)
    })
}
