//! Times `model::compile` for a generated mesh, to see how compile cost grows with the service
//! count: `cargo run --release -p bowline-model --example compile_scale -- 10000 5`. The mesh is
//! `xds-load`'s (ServiceEntries with static endpoints in namespace `bench`), plus one
//! DestinationRule for every tenth service so rule lookup is exercised too.

use std::time::Instant;

use api::types::mesh::MeshConfig;
use api::{Decoded, Resource};
use model::{compile, ProxyIdentity, Role};

fn service(i: usize, endpoints: usize) -> String {
    let mut s = format!(
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: svc-{i}, namespace: bench}}\nspec:\n  hosts: [svc-{i}.bench.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints:\n"
    );
    for e in 0..endpoints {
        let n = i * endpoints + e;
        s.push_str(&format!(
            "  - {{address: 10.{}.{}.{}, ports: {{http: 8080}}}}\n",
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        ));
    }
    if i.is_multiple_of(10) {
        s.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: dr-{i}, namespace: bench}}\nspec:\n  host: svc-{i}\n  trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}\n"
        ));
    }
    s
}

fn main() {
    let mut args = std::env::args().skip(1);
    let services: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let endpoints: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let text: String = (0..services).map(|i| service(i, endpoints)).collect();
    let started = Instant::now();
    let resources: Vec<Resource> = api::load_str("generated.yaml", &text)
        .into_iter()
        .filter_map(|d| match d {
            Decoded::Resource(r) => Some(*r),
            _ => None,
        })
        .collect();
    println!(
        "parsed {} resources in {:.1} ms",
        resources.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    let mesh = MeshConfig::istio_default();
    let proxy = ProxyIdentity::new(Role::Sidecar, "bench");
    for round in 0..3 {
        let started = Instant::now();
        let compiled = match compile(&resources, &mesh, &proxy) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("compile failed: {e}");
                std::process::exit(1);
            }
        };
        println!(
            "round {round}: compile {:.1} ms ({} clusters, {} warnings)",
            started.elapsed().as_secs_f64() * 1e3,
            compiled.snapshot.clusters.len(),
            compiled.warnings.len()
        );
    }
}
