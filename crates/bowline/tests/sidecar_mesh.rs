//! Sidecars in real pods with Istio's capture rules: `bowline proxy --capture` as uid 1337 in
//! each pod, applications that know nothing of the mesh, and what arrives where. Root only;
//! see `mesh_support`.

mod mesh_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use mesh_support::*;

const VIP_B: &str = "10.96.77.10";

fn vip(port: u16) -> SocketAddr {
    SocketAddr::new(VIP_B.parse().expect("vip"), port)
}

/// A relay in `pod` on `port` to `to`, recording the first bytes each connection sends: what an
/// observer on the wire between the two sidecars sees.
fn tap(pod: &node::Pod, port: u16, to: SocketAddr) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = node::in_pod(pod, move || TcpListener::bind(("0.0.0.0", port)))
        .expect("enter pod")
        .expect("tap listen");
    let pod = pod.clone();
    let record = seen.clone();
    std::thread::spawn(move || {
        for down in listener.incoming() {
            let Ok(mut down) = down else { return };
            let record = record.clone();
            let pod = pod.clone();
            std::thread::spawn(move || {
                let mut first = [0u8; 16];
                let Ok(n) = down.read(&mut first) else { return };
                record.lock().expect("lock").push(first[..n].to_vec());
                let Ok(Ok(mut up)) = node::in_pod(&pod, move || TcpStream::connect(to)) else {
                    return;
                };
                if up.write_all(&first[..n]).is_err() {
                    return;
                }
                let (mut d2, mut u2) = (
                    down.try_clone().expect("clone"),
                    up.try_clone().expect("clone"),
                );
                let back = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut d2);
                    let _ = d2.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut down, &mut up);
                let _ = up.shutdown(std::net::Shutdown::Write);
                let _ = back.join();
            });
        }
    });
    seen
}

#[test]
fn sidecar_to_sidecar_is_mutual_tls_on_the_wire_and_the_app_sees_the_caller() {
    let Some(mut m) = mesh("blsc1", 41) else {
        return;
    };
    let a = m.pod("a", true);
    let b = m.pod("b", true);
    let t = m.pod("t", false);
    // The registry says b's endpoint is the tap's address; the tap relays to b, whose capture
    // sends it to b's sidecar.
    m.write(
        "b.yaml",
        &service(
            "b",
            VIP_B,
            &[("http", 80, 8080), ("http2", 81, 9090)],
            &t.ip.to_string(),
            "sa-b",
        ),
    );
    let seen = tap(&t, 8080, SocketAddr::new(b.ip.into(), 8080));
    let seen_h2 = tap(&t, 9090, SocketAddr::new(b.ip.into(), 9090));
    m.app("httpbin", &b, "httpbin", &[8080, 9090]);
    m.sidecar("proxy-b", &b, "b", "sa-b");
    m.sidecar("proxy-a", &a, "a", "sa-a");

    // The application's own XFCC is dropped by its sidecar: only sidecars vouch for callers.
    let (status, body) = http_with(
        &a,
        vip(80),
        "b",
        "/headers",
        "X-Forwarded-Client-Cert: URI=spiffe://cluster.local/ns/default/sa/forged\r\n",
    )
    .expect("a -> b");
    assert_eq!(status, 200, "{body}");
    let first = seen.lock().expect("lock").clone();
    assert!(!first.is_empty(), "nothing crossed the tap");
    for bytes in &first {
        assert_eq!(
            &bytes[..2],
            [0x16, 0x03],
            "a TLS handshake record on the wire, not {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    // The application learns who called from the XFCC header b's sidecar set.
    let xfcc = body
        .lines()
        .find(|l| l.contains("X-Forwarded-Client-Cert"))
        .unwrap_or_else(|| panic!("no XFCC in {body}"));
    assert!(
        xfcc.contains("By=spiffe://cluster.local/ns/default/sa/sa-b;Hash="),
        "{xfcc}"
    );
    assert!(
        xfcc.contains("Subject=\\\"\\\";URI=spiffe://cluster.local/ns/default/sa/sa-a"),
        "{xfcc}"
    );
    assert!(!body.contains("forged"), "{body}");

    // HTTP/2 between the sidecars (an `http2` port) is mesh mTLS too, and reaches the app.
    let (status, body) = http(&a, vip(81), "b", "/headers").expect("a -> b over h2");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("URI=spiffe://cluster.local/ns/default/sa/sa-a"),
        "{body}"
    );
    let first = seen_h2.lock().expect("lock").clone();
    assert!(
        !first.is_empty() && first.iter().all(|b| b[..2] == [0x16, 0x03]),
        "{first:?}"
    );

    // Each sidecar's certificate names its workload and chains to the mesh root.
    let root = ca::CertificateAuthority::open(
        ca::CaSource::SelfSigned { state_dir: &m.ca },
        ca::CaConfig::default(),
    )
    .expect("ca")
    .roots()[0]
        .clone();
    for (pod, sa) in [(&a, "sa-a"), (&b, "sa-b")] {
        let (status, certs) = admin(pod, "GET", "/certs").expect("certs");
        assert_eq!(status, 200);
        let certs: serde_json::Value = serde_json::from_str(&certs).expect("json");
        assert_eq!(
            certs["subject_alt_names"],
            serde_json::json!([format!("URI:spiffe://cluster.local/ns/default/sa/{sa}")])
        );
        assert_eq!(
            certs["root_fingerprints"][0],
            tls::info::fingerprint(&root).as_str()
        );
    }
}

fn peer_auth(name: &str, selector: Option<&str>, mode: &str, ports: &[(u16, &str)]) -> String {
    let selector = selector
        .map(|app| format!("  selector: {{matchLabels: {{app: {app}}}}}\n"))
        .unwrap_or_default();
    let ports = if ports.is_empty() {
        String::new()
    } else {
        let entries: Vec<String> = ports
            .iter()
            .map(|(p, m)| format!("    {p}: {{mode: {m}}}\n"))
            .collect();
        format!("  portLevelMtls:\n{}", entries.join(""))
    };
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: {name}, namespace: default}}\nspec:\n{selector}  mtls: {{mode: {mode}}}\n{ports}"
    )
}

#[test]
fn peer_authentication_strict_permissive_disable_and_port_level_in_real_pods() {
    let Some(mut m) = mesh("blsc2", 42) else {
        return;
    };
    let a = m.pod("a", true);
    let b = m.pod("b", true);
    // A workload without a sidecar: plain text straight to b's pod address.
    let c = m.pod("c", false);
    m.write(
        "b.yaml",
        &service(
            "b",
            VIP_B,
            &[("http", 80, 8080), ("http-alt", 90, 9090)],
            &b.ip.to_string(),
            "sa-b",
        ),
    );
    m.app("httpbin", &b, "httpbin", &[8080, 9090]);
    // A port no Service names: InboundPassthroughCluster.
    m.app("echo", &b, "tcp-echo", &[7000]);
    m.sidecar("proxy-b", &b, "b", "sa-b");
    m.sidecar("proxy-a", &a, "a", "sa-a");
    let direct = |port| SocketAddr::new(b.ip.into(), port);
    for from in [&c, &a] {
        let echoed = tcp_line(from, direct(7000), "hi").expect("inbound passthrough");
        assert!(echoed.ends_with(" hi"), "{echoed}");
    }
    let plain = |port| http(&c, direct(port), "b", "/headers");
    let meshed = |port| http(&a, vip(port), "b", "/headers");

    // No policy: PERMISSIVE. Plain text reaches the app without an XFCC; the sidecar's call
    // arrives over mTLS on the same port.
    let (status, body) = plain(8080).expect("plain under PERMISSIVE");
    assert_eq!(status, 200);
    assert!(!body.contains("X-Forwarded-Client-Cert"), "{body}");
    let (status, body) = meshed(80).expect("mesh under PERMISSIVE");
    assert_eq!(status, 200);
    assert!(
        body.contains("URI=spiffe://cluster.local/ns/default/sa/sa-a"),
        "{body}"
    );

    // Namespace STRICT: plain text is reset (curl's exit 56), the sidecar still gets through.
    m.write("pa-ns.yaml", &peer_auth("default", None, "STRICT", &[]));
    eventually("STRICT refuses plain text", || {
        plain(8080).is_err_and(|e| is_reset(&e))
    });
    assert!(plain(9090).is_err_and(|e| is_reset(&e)));
    assert!(tcp_line(&c, direct(7000), "hi").is_err_and(|e| is_reset(&e)));
    // What users see: curl's "failure receiving network data".
    let curl = node::pod_command(&c, "curl", None)
        .expect("pod command")
        .args(["-s", "-o", "/dev/null", "--max-time", "5"])
        .arg(format!("http://{}/headers", direct(8080)))
        .status()
        .expect("curl (scripts/test.sh installs it)");
    assert_eq!(curl.code(), Some(56));
    assert_eq!(meshed(80).expect("mesh under STRICT").0, 200);

    // A workload-level DISABLE overrides the namespace's STRICT.
    m.write("pa-b.yaml", &peer_auth("b", Some("b"), "DISABLE", &[]));
    eventually("workload DISABLE beats namespace STRICT", || {
        plain(8080).is_ok_and(|(s, _)| s == 200)
    });

    // Port level: STRICT for the workload, PERMISSIVE on 9090 only.
    m.write(
        "pa-b.yaml",
        &peer_auth("b", Some("b"), "STRICT", &[(9090, "PERMISSIVE")]),
    );
    eventually("port 8080 STRICT again", || {
        plain(8080).is_err_and(|e| is_reset(&e))
    });
    assert_eq!(plain(9090).expect("9090 is PERMISSIVE").0, 200);
    assert_eq!(meshed(90).expect("mesh to 9090").0, 200);
    assert_eq!(meshed(80).expect("mesh to 8080").0, 200);
}

#[test]
fn outbound_traffic_policy_passes_unknown_destinations_through_or_blackholes_them() {
    let Some(mut m) = mesh("blsc3", 43) else {
        return;
    };
    let a = m.pod("a", true);
    // Outside the registry: no sidecar, not in any Service.
    let e = m.pod("e", false);
    // b gives port 8080 an HTTP route table, so unknown hosts on it take the HTTP path.
    m.write(
        "b.yaml",
        &service("b", VIP_B, &[("http", 8080, 8080)], "10.89.43.250", "sa-b"),
    );
    m.app("httpbin", &e, "httpbin", &[8080]);
    m.app("echo", &e, "tcp-echo", &[7000]);
    m.sidecar("proxy-a", &a, "a", "sa-a");
    let e_http = SocketAddr::new(e.ip.into(), 8080);
    let e_tcp = SocketAddr::new(e.ip.into(), 7000);

    // ALLOW_ANY (the default): both reach e at the address dialed.
    let (status, _) = http(&a, e_http, "e.example", "/status/200").expect("http passthrough");
    assert_eq!(status, 200);
    let echoed = tcp_line(&a, e_tcp, "hello").expect("tcp passthrough");
    assert!(echoed.ends_with(" hello"), "{echoed}");

    m.write(
        "mesh.yaml",
        "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n",
    );
    eventually("REGISTRY_ONLY answers 502 for an unknown host", || {
        http(&a, e_http, "e.example", "/status/200").is_ok_and(|(s, _)| s == 502)
    });
    let err = tcp_line(&a, e_tcp, "hello").expect_err("BlackHoleCluster");
    assert!(is_reset(&err), "{err}");
}

fn serial(pod: &node::Pod) -> String {
    let (status, body) = admin(pod, "GET", "/certs").expect("certs");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["serial"].as_str().expect("serial").to_string()
}

#[test]
fn certificate_rotation_under_steady_load_fails_no_request() {
    let Some(mut m) = mesh("blsc4", 44) else {
        return;
    };
    let a = m.pod("a", true);
    let b = m.pod("b", true);
    m.write(
        "b.yaml",
        &service(
            "b",
            VIP_B,
            &[("http", 80, 8080), ("tcp-echo", 7000, 7000)],
            &b.ip.to_string(),
            "sa-b",
        ),
    );
    m.write("pa.yaml", &peer_auth("default", None, "STRICT", &[]));
    m.app("httpbin", &b, "httpbin", &[8080]);
    m.app("echo", &b, "tcp-echo", &[7000]);
    m.sidecar("proxy-b", &b, "b", "sa-b");
    m.sidecar("proxy-a", &a, "a", "sa-a");

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for i in 0..4 {
        let (a, stop) = (a.clone(), stop.clone());
        load.push(std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Half HTTP (pooled upstream connections), half TCP (a handshake each).
                let result = if i % 2 == 0 {
                    http(&a, vip(80), "b", "/status/200")
                        .map_err(|e| e.to_string())
                        .and_then(|(s, _)| {
                            if s == 200 {
                                Ok(())
                            } else {
                                Err(format!("status {s}"))
                            }
                        })
                } else {
                    tcp_line(&a, vip(7000), "ping")
                        .map_err(|e| e.to_string())
                        .and_then(|l| if l.ends_with(" ping") { Ok(()) } else { Err(l) })
                };
                match result {
                    Ok(()) => ok += 1,
                    Err(e) => failed.push(e),
                }
            }
            (ok, failed)
        }));
    }
    // One connection opened before the first rotation carries lines across all of them: a
    // rotation never touches established connections.
    let to = vip(7000);
    let mut held = node::in_pod(&a, move || TcpStream::connect_timeout(&to, TIMEOUT))
        .expect("enter pod")
        .expect("long-lived connection");
    held.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut held_reader = std::io::BufReader::new(held.try_clone().expect("clone"));
    let mut held_line = |n: u32| {
        use std::io::BufRead;
        held.write_all(format!("held {n}\n").as_bytes())
            .expect("write on the held connection");
        let mut line = String::new();
        held_reader
            .read_line(&mut line)
            .expect("read on the held connection");
        assert!(line.trim_end().ends_with(&format!(" held {n}")), "{line:?}");
    };
    held_line(0);
    for round in 0..3 {
        held_line(round + 1);
        for pod in [&a, &b] {
            let before = serial(pod);
            let (status, _) = admin(pod, "POST", "/certs/rotate").expect("rotate");
            assert_eq!(status, 202);
            eventually(&format!("rotation {round} on {}", pod.name), || {
                serial(pod) != before
            });
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
    }
    held_line(99);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for t in load {
        let (o, f) = t.join().expect("load thread");
        ok += o;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 20, "only {ok} requests ran during the rotations");
}

#[test]
fn destination_rules_force_or_disable_mesh_mtls_against_auto_mtls() {
    let Some(mut m) = mesh("blsc5", 45) else {
        return;
    };
    let a = m.pod("a", true);
    let b = m.pod("b", true);
    // b runs a sidecar but is not labelled as running one: auto mTLS sends plain text.
    let unlabelled = service("b", VIP_B, &[("http", 80, 8080)], &b.ip.to_string(), "sa-b")
        .replace(", security.istio.io/tlsMode: istio", "");
    m.write("b.yaml", &unlabelled);
    m.write("pa.yaml", &peer_auth("default", None, "STRICT", &[]));
    m.app("httpbin", &b, "httpbin", &[8080]);
    m.sidecar("proxy-b", &b, "b", "sa-b");
    m.sidecar("proxy-a", &a, "a", "sa-a");
    let call = || http(&a, vip(80), "b", "/headers");

    // Plain text meets STRICT: b's sidecar resets, a's answers the app with a 503.
    assert_eq!(call().expect("a answers").0, 503);
    let dr = |mode: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: b, namespace: default}}\nspec: {{host: b, trafficPolicy: {{tls: {{mode: {mode}}}}}}}\n"
        )
    };
    m.write("dr.yaml", &dr("ISTIO_MUTUAL"));
    eventually("ISTIO_MUTUAL reaches the STRICT workload", || {
        call().is_ok_and(|(s, body)| s == 200 && body.contains("sa/sa-a"))
    });

    // Labelled again (auto mTLS would apply), but the DestinationRule turns it off.
    m.write(
        "b.yaml",
        &service("b", VIP_B, &[("http", 80, 8080)], &b.ip.to_string(), "sa-b"),
    );
    m.write("dr.yaml", &dr("DISABLE"));
    eventually("DISABLE sends plain text again", || {
        call().is_ok_and(|(s, _)| s == 503)
    });
    m.remove("dr.yaml");
    eventually("auto mTLS without the DestinationRule", || {
        call().is_ok_and(|(s, _)| s == 200)
    });
}

#[test]
fn the_ingress_gateway_calls_sidecars_over_mesh_mtls_as_its_own_identity() {
    let Some(mut m) = mesh("blsc6", 46) else {
        return;
    };
    let g = m.pod("gw", false);
    let b = m.pod("b", true);
    let client = m.pod("client", false);
    m.write(
        "b.yaml",
        &service("b", VIP_B, &[("http", 80, 8080)], &b.ip.to_string(), "sa-b"),
    );
    m.write("pa.yaml", &peer_auth("default", None, "STRICT", &[]));
    m.write(
        "gw.yaml",
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8000, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: default}
spec:
  hosts: ["*"]
  gateways: [gw]
  http: [{route: [{destination: {host: b, port: {number: 80}}}]}]
"#,
    );
    m.app("httpbin", &b, "httpbin", &[8080]);
    m.sidecar("proxy-b", &b, "b", "sa-b");
    m.gateway("gateway", &g);

    let (status, body) = http(
        &client,
        SocketAddr::new(g.ip.into(), 8000),
        "b.example",
        "/headers",
    )
    .expect("through the gateway");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(
            "URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
        ),
        "{body}"
    );
}

#[test]
fn ports_of_unknown_protocol_are_sniffed_on_both_sides() {
    let Some(mut m) = mesh("blsc7", 47) else {
        return;
    };
    let a = m.pod("a", true);
    let b = m.pod("b", true);
    // Port names that say nothing: Istio detects the protocol per connection.
    m.write(
        "b.yaml",
        &service(
            "b",
            VIP_B,
            &[("web", 8080, 8080), ("echo", 7000, 7000)],
            &b.ip.to_string(),
            "sa-b",
        ),
    );
    m.write("pa.yaml", &peer_auth("default", None, "STRICT", &[]));
    m.app("httpbin", &b, "httpbin", &[8080]);
    m.app("echo", &b, "tcp-echo", &[7000]);
    m.sidecar("proxy-b", &b, "b", "sa-b");
    m.sidecar("proxy-a", &a, "a", "sa-a");

    let (status, body) = http(&a, vip(8080), "b", "/headers").expect("HTTP, detected");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("URI=spiffe://cluster.local/ns/default/sa/sa-a"),
        "{body}"
    );
    let echoed = tcp_line(&a, vip(7000), "not http").expect("TCP, detected");
    assert!(echoed.ends_with(" not http"), "{echoed}");
}
