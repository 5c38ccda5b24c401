//! istio.io's "Ingress Gateways" task: httpbin behind the ingress gateway for the host
//! httpbin.example.com, paths /status and /delay only; other paths 404, other hosts 404.

mod tasks_support;

use std::time::Duration;

use tasks_support::*;

fn ingress(path: &str, host: &str) -> Curl {
    let h = format!("Host: {host}");
    curl_host(&format!("http://{INGRESS}{path}"), &["-H", &h])
}

#[test]
fn ingress_host_and_path_routing_to_httpbin() {
    if !can_run() {
        return;
    }
    let mesh = Mesh::demo("httpbin");
    mesh.apply(&task("httpbin-gateway.yaml"));
    eventually(
        "the gateway routes to httpbin",
        Duration::from_secs(20),
        || ingress("/status/200", "httpbin.example.com").status == 200,
    );
    assert_eq!(ingress("/status/418", "httpbin.example.com").status, 418);
    let d = ingress("/delay/1", "httpbin.example.com");
    assert_eq!(d.status, 200);
    assert!(d.seconds >= 0.9, "{d:?}");
    assert_eq!(ingress("/headers", "httpbin.example.com").status, 404);
    assert_eq!(ingress("/status/200", "other.example.com").status, 404);
    if let Some(samples) = istio_samples() {
        mesh.delete(&task("httpbin-gateway.yaml"));
        mesh.apply(&samples.join("httpbin/httpbin-gateway.yaml"));
        eventually(
            "Istio's httpbin gateway routes",
            Duration::from_secs(20),
            || ingress("/headers", "anything.example").status == 200,
        );
    }
}
