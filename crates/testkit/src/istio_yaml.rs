//! Istio YAML to a running proxy: parse and validate with `api`, compile for one proxy with
//! `model`, and serve the result on loopback ports the OS picks.
//!
//! Compiled listeners keep their names (`0.0.0.0_9080`) so tests find them with
//! [`crate::TestProxy::addr`]; routing still sees the configured ports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use model::{ProxyIdentity, ProxySnapshot, Role};

use crate::{Backend, TcpEcho, TestProxy};

/// Parses `yaml` (several documents), failing the test on any invalid resource.
pub fn resources(yaml: &str) -> Vec<api::Resource> {
    api::load_str("test.yaml", yaml)
        .into_iter()
        .filter_map(|d| match d {
            api::Decoded::Resource(r) => {
                let problems: Vec<_> = r
                    .problems()
                    .into_iter()
                    .filter(|p| p.severity == api::Severity::Error)
                    .collect();
                assert!(problems.is_empty(), "{} is invalid: {problems:?}", r.id());
                Some(*r)
            }
            api::Decoded::Other(_) => None,
            api::Decoded::Invalid(p) => panic!("invalid document: {p:?}"),
        })
        .collect()
}

/// A sidecar in `namespace` with `labels` (`k=v` pairs).
pub fn sidecar(namespace: &str, labels: &[(&str, &str)]) -> ProxyIdentity {
    let mut p = ProxyIdentity::new(Role::Sidecar, namespace);
    p.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    p
}

/// Istio's default ingress gateway: `istio=ingressgateway` in `istio-system`.
pub fn ingress() -> ProxyIdentity {
    let mut p = ProxyIdentity::new(Role::Gateway, "istio-system");
    p.labels.insert("istio".into(), "ingressgateway".into());
    p
}

/// Compiles `yaml` for `proxy`; listeners move to 127.0.0.1 on OS-picked ports.
pub fn compile(yaml: &str, proxy: &ProxyIdentity) -> (ProxySnapshot, Vec<String>) {
    let rs = resources(yaml);
    let compiled = model::compile(&rs, &api::types::mesh::MeshConfig::istio_default(), proxy)
        .expect("compiles");
    let mut snapshot = compiled.snapshot;
    for l in &mut snapshot.listeners {
        l.address = IpAddr::V4(Ipv4Addr::LOCALHOST);
        l.port = 0;
    }
    let warnings = compiled.warnings.iter().map(|w| w.to_string()).collect();
    (snapshot, warnings)
}

/// [`compile`] and start a [`TestProxy`] on the result.
pub async fn serve(yaml: &str, proxy: &ProxyIdentity) -> (TestProxy, Vec<String>) {
    let (snapshot, warnings) = compile(yaml, proxy);
    (TestProxy::start(snapshot).await, warnings)
}

/// Backends named `names` on one port at 127.0.0.1, 127.0.0.2, ... (pods of one Service share
/// a targetPort), returned in order with the port.
pub async fn backends(names: &[&str]) -> (Vec<Backend>, u16) {
    'retry: for _ in 0..20 {
        let first = Backend::start(names[0]).await;
        let port = first.addr.port();
        let mut out = vec![first];
        for (i, name) in names.iter().enumerate().skip(1) {
            let host = u8::try_from(i + 1).expect("under 255 backends");
            let addr = SocketAddr::from(([127, 0, 0, host], port));
            if std::net::TcpListener::bind(addr).is_err() {
                continue 'retry;
            }
            out.push(Backend::start_at(name, addr).await);
        }
        return (out, port);
    }
    panic!("no port free on every loopback address");
}

/// TCP echo servers named `names` on one port at 127.0.0.1, 127.0.0.2, ..., with the port.
pub async fn tcp_backends(names: &[&str]) -> (Vec<TcpEcho>, u16) {
    'retry: for _ in 0..20 {
        let first = TcpEcho::start(names[0]).await;
        let port = first.addr.port();
        let mut out = vec![first];
        for (i, name) in names.iter().enumerate().skip(1) {
            let host = u8::try_from(i + 1).expect("under 255 backends");
            let addr = SocketAddr::from(([127, 0, 0, host], port));
            if std::net::TcpListener::bind(addr).is_err() {
                continue 'retry;
            }
            out.push(TcpEcho::start_at(name, addr).await);
        }
        return (out, port);
    }
    panic!("no port free on every loopback address");
}

/// A Kubernetes Service `name` in `ns` on `port` (named `port_name`) with one Pod per
/// (address, labels) at `target_port`.
pub fn service(
    name: &str,
    ns: &str,
    port_name: &str,
    port: u16,
    target_port: u16,
    pods: &[(IpAddr, &str)],
) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{name: {port_name}, port: {port}, targetPort: {target_port}}}]\n"
    );
    for (i, (addr, labels)) in pods.iter().enumerate() {
        let extra = if labels.is_empty() {
            String::new()
        } else {
            format!(", {labels}")
        };
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}-{i}, namespace: {ns}, labels: {{app: {name}{extra}}}, annotations: {{bowline.io/address: \"{addr}\"}}}}\nspec: {{}}\n"
        ));
    }
    out
}
