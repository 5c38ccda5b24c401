//! Snapshots compiled from Istio YAML, as `bowline proxy --config-dir` compiles them, with
//! every listener moved to 127.0.0.1 on a port from the OS so tests never collide.

use std::net::SocketAddr;

use api::types::mesh::{load_mesh_config, MeshConfig};
use api::Decoded;
use model::{compile, ProxyIdentity, ProxySnapshot, Role};

use crate::{Backend, Behavior, TestProxy};

/// A backend on a free loopback port.
pub async fn backend(name: &str, behavior: Behavior) -> Backend {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    Backend::start_with(name, any, behavior).await
}

/// A DestinationRule for `host` in `default` with one subset per `version` label.
pub fn subsets(host: &str, versions: &[&str]) -> String {
    let mut out = format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {host}\n  namespace: default\nspec:\n  host: {host}\n  subsets:\n"
    );
    for v in versions {
        out.push_str(&format!("  - name: {v}\n    labels:\n      version: {v}\n"));
    }
    out
}

/// A proxy serving `docs` (one YAML stream) as [`sidecar_snapshot`] compiles them, and the
/// address of its listener for service port `port`. Compile warnings fail the test.
pub async fn sidecar(docs: &[String], mesh: &str, port: u16) -> (TestProxy, SocketAddr) {
    let (snapshot, warnings) = sidecar_snapshot(&docs.join("---\n"), mesh);
    assert!(warnings.is_empty(), "{warnings:?}");
    let proxy = TestProxy::start(snapshot).await;
    let addr = proxy.addr(&format!("0.0.0.0_{port}"));
    (proxy, addr)
}

/// The value of the Prometheus sample named exactly `series`; 0 when absent.
pub fn metric(stats: &str, series: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// How many requests carried response flag `flag`.
pub fn flag_count(stats: &str, flag: &str) -> u64 {
    metric(
        stats,
        &format!("bowline_errors_total{{response_flag=\"{flag}\"}}"),
    )
}

/// Istio's outbound cluster name for `host` in `default`.
pub fn cluster(subset: &str, host: &str, port: u16) -> String {
    format!("outbound|{port}|{subset}|{host}.default.svc.cluster.local")
}

/// A Kubernetes Service `name` on `port` with one Deployment per `(version, address)`: each pod
/// carries `app: name, version: V` and the loopback address and port its backend listens on
/// (a named container port the Service targets).
pub fn service(name: &str, port: u16, pods: &[(&str, SocketAddr)]) -> String {
    service_named(name, "http", port, pods)
}

/// [`service`] with the port named `port_name` (`grpc`, `http2`: HTTP/2 upstream).
pub fn service_named(
    name: &str,
    port_name: &str,
    port: u16,
    pods: &[(&str, SocketAddr)],
) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  selector:\n    app: {name}\n  ports:\n  - name: {port_name}\n    port: {port}\n    targetPort: http\n"
    );
    for (version, addr) in pods {
        out.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}-{version}\n  namespace: default\nspec:\n  selector:\n    matchLabels:\n      app: {name}\n      version: {version}\n  template:\n    metadata:\n      annotations:\n        bowline.io/address: \"{ip}\"\n      labels:\n        app: {name}\n        version: {version}\n    spec:\n      containers:\n      - name: {name}\n        image: test\n        ports:\n        - name: http\n          containerPort: {p}\n",
            ip = addr.ip(),
            p = addr.port()
        ));
    }
    out
}

/// Compiles `yaml` for a sidecar (`app: sleep` in `default`) under `mesh` (mesh config YAML;
/// empty for Istio's defaults). Panics on invalid resources; returns the snapshot with
/// listeners on 127.0.0.1:0 and the compile warnings.
pub fn sidecar_snapshot(yaml: &str, mesh: &str) -> (ProxySnapshot, Vec<String>) {
    let mesh: MeshConfig = if mesh.is_empty() {
        MeshConfig::istio_default()
    } else {
        load_mesh_config("mesh.yaml", mesh).unwrap_or_else(|p| panic!("mesh config: {p:?}"))
    };
    let mut resources = Vec::new();
    for d in api::load_str("test.yaml", yaml) {
        match d {
            Decoded::Resource(r) => {
                let report = r.validate();
                assert!(!report.has_errors(), "{}: invalid: {report:?}", r.id());
                resources.push(*r);
            }
            Decoded::Other(_) => {}
            Decoded::Invalid(p) => panic!("{p:?}"),
        }
    }
    let mut proxy = ProxyIdentity::new(Role::Sidecar, "default");
    proxy.labels.insert("app".into(), "sleep".into());
    proxy.version = "test".into();
    let compiled = compile(&resources, &mesh, &proxy).expect("compiles");
    let mut snapshot = compiled.snapshot;
    for l in &mut snapshot.listeners {
        l.address = "127.0.0.1".parse().expect("ip");
        l.port = 0;
    }
    let warnings = compiled.warnings.iter().map(|w| w.to_string()).collect();
    (snapshot, warnings)
}
