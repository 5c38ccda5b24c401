use super::*;
use crate::analyze::selectors::testing::{m, run, run_with};
use crate::types::mesh::{IngressControllerMode, MeshConfig};

const GW_POD_AND_SERVICE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: edge-1, namespace: edge, labels: {app: edge}}
---
apiVersion: v1
kind: Service
metadata: {name: edge, namespace: edge}
spec:
  selector: {app: edge}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, protocol: UDP}
"#;

fn gateway(name: &str, selector: &str, ports: &[u32]) -> String {
    let servers: String = ports
        .iter()
        .map(|p| {
            format!("  - port: {{number: {p}, name: p{p}, protocol: HTTP}}\n    hosts: [\"*\"]\n")
        })
        .collect();
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  selector: {selector}\n  servers:\n{servers}"
    )
}

#[test]
fn port_or_target_port_of_a_tcp_service_is_enough() {
    let yaml = format!(
        "{GW_POD_AND_SERVICE}{}",
        gateway("gw", "{app: edge}", &[80, 8080])
    );
    assert_eq!(run(&IngressGatewayPort, &yaml), vec![]);
}

#[test]
fn port_not_exposed_or_only_on_udp() {
    let yaml = format!(
        "{GW_POD_AND_SERVICE}{}",
        gateway("gw", "{app: edge}", &[80, 53, 9000])
    );
    let want = vec![
        m("IST0162", "Gateway default/gw"),
        m("IST0162", "Gateway default/gw"),
    ];
    assert_eq!(run(&IngressGatewayPort, &yaml), want);
}

#[test]
fn services_of_another_namespace_do_not_count() {
    let yaml = format!(
        "{}{}",
        GW_POD_AND_SERVICE.replace(
            "name: edge, namespace: edge}\nspec",
            "name: edge, namespace: other}\nspec"
        ),
        gateway("gw", "{app: edge}", &[80])
    );
    assert_eq!(
        run(&IngressGatewayPort, &yaml),
        vec![m("IST0162", "Gateway default/gw")]
    );
}

#[test]
fn default_ingress_gateway_is_assumed_unless_ingress_is_off() {
    let yaml = gateway("gw", "{istio: ingressgateway}", &[80, 443]);
    assert_eq!(run(&IngressGatewayPort, &yaml), vec![]);
    let off = MeshConfig {
        ingress_controller_mode: Some(IngressControllerMode::Off),
        ..Default::default()
    };
    assert_eq!(
        run_with(&IngressGatewayPort, &yaml, &off),
        vec![m("IST0101", "Gateway default/gw")]
    );
}

#[test]
fn selector_matching_nothing_is_reported_once_by_all_analyzers() {
    let yaml = gateway("gw", "{istio: typo}", &[80]);
    for a in [
        &IngressGatewayPort as &dyn Analyzer,
        &SecretCheck,
        &ConflictingGateways,
    ] {
        assert_eq!(
            run(a, &yaml),
            vec![m("IST0101", "Gateway default/gw")],
            "{}",
            a.name()
        );
    }
}

const SECRET_GW: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: gw-1, namespace: gwns, labels: {app: gw}}
---
apiVersion: v1
kind: Secret
metadata: {name: broken, namespace: gwns}
type: kubernetes.io/tls
data: {tls.crt: aHVzaCBodXNoCg==, tls.key: aHVzaCBodXNoCg==}
---
apiVersion: v1
kind: Secret
metadata: {name: elsewhere, namespace: default}
type: kubernetes.io/tls
data: {tls.crt: aHVzaCBodXNoCg==, tls.key: aHVzaCBodXNoCg==}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {app: gw}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: broken}
  - port: {number: 8443, name: https2, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: elsewhere}
  - port: {number: 9443, name: https3, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: default/elsewhere}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"#;

#[test]
fn credentials_are_looked_up_in_the_workload_namespace() {
    // `broken` exists but holds no certificate; `elsewhere` is only in the Gateway's own
    // namespace, which is not where the workload reads it, unless named `namespace/name`.
    let got = run(&SecretCheck, SECRET_GW);
    assert_eq!(
        got,
        vec![
            m("IST0101", "Gateway default/gw"),
            m("IST0161", "Gateway default/gw"),
            m("IST0161", "Gateway default/gw"),
        ]
    );
}

const CONFLICT: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: a, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [foo.example.com, bar.example.com]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: b, namespace: other}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [bar.example.com]
  - port: {number: 81, name: http2, protocol: HTTP}
    hosts: [foo.example.com]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: c, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    bind: 10.0.0.1
    hosts: [foo.example.com]
"#;

#[test]
fn same_host_same_port_same_bind_conflicts() {
    assert_eq!(
        run(&ConflictingGateways, CONFLICT),
        vec![
            m("IST0145", "Gateway default/a"),
            m("IST0145", "Gateway other/b"),
        ]
    );
}

#[test]
fn different_workloads_do_not_conflict() {
    let yaml = CONFLICT.replace(
        "metadata: {name: b, namespace: other}\nspec:\n  selector: {istio: ingressgateway}",
        "metadata: {name: b, namespace: other}\nspec:\n  selector: {istio: eastwest}",
    );
    assert_eq!(
        run(&ConflictingGateways, &yaml),
        vec![m("IST0101", "Gateway other/b")]
    );
}

#[test]
fn serverless_gateway_on_a_real_workload_is_not_missing_its_selector() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: default}\n\
                spec:\n  selector: {istio: ingressgateway}\n";
    assert_eq!(run(&ConflictingGateways, yaml), vec![]);
}

const CERTS: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: a, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, credentialName: shared}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: b, namespace: other}
spec:
  selector: {istio: ingressgateway, tier: edge}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [b.example.com]
    tls: {mode: SIMPLE, credentialName: shared}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: c, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [c.example.com]
    tls: {mode: SIMPLE, serverCertificate: /etc/c.pem, privateKey: /etc/c.key}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: d, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [d.example.com]
    tls: {mode: SIMPLE, serverCertificate: /etc/c.pem, privateKey: /etc/d.key}
"#;

#[test]
fn shared_certificate_is_reported_from_the_wider_selector() {
    // `a` selects a superset of `b`'s workloads, so only `a` is told; files with the same
    // certificate but different keys are different credentials.
    assert_eq!(
        run(&DuplicateCertificate, CERTS),
        vec![m("IST0138", "Gateway default/a")]
    );
}
