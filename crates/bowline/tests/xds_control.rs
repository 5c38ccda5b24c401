//! The control plane's push path end to end with real processes: `bowline control --state-dir`
//! serving Istio YAML over the discovery stream (TLS, bootstrap tokens) to `bowline proxy
//! --xds-address`, changes through `bowline apply`, `bowline proxy-status`, NACKs from a proxy
//! that cannot bind a pushed listener, a control-plane restart under traffic, WorkloadGroup
//! auto-registration with a workload certificate from the control plane, and refused callers.
//!
//! Backends listen on a loopback block of their own per test (as in `proxy_config_dir.rs`);
//! every port comes from the OS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::client::{self, get};
use testkit::Backend;

const BIN: &str = env!("CARGO_BIN_EXE_bowline");
const EXAMPLE_BLOCK: &str = "127.0.10.";
const GATEWAY_SA: &str = "istio-ingressgateway-service-account";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    testkit::free_port()
}

/// A loopback block of this test in this process: `127.0.N.` (apart from proxy_config_dir's).
fn block(test: u32) -> String {
    format!("127.{}.{}.", 100 + test, 20 + std::process::id() % 200)
}

fn addr(block: &str, host: u8) -> SocketAddr {
    format!("{block}{host}:9080").parse().unwrap()
}

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A fresh directory with Bookinfo's gateway, destination rules and workloads moved to `block`.
fn bookinfo_dir(test: &str, block: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bowline-xds-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("config")).unwrap();
    for f in ["gateway.yaml", "destination-rules.yaml", "workloads.yaml"] {
        let text = std::fs::read_to_string(repo().join("examples/bookinfo").join(f)).unwrap();
        std::fs::write(
            dir.join("config").join(f),
            text.replace(EXAMPLE_BLOCK, block),
        )
        .unwrap();
    }
    dir
}

/// Collects a child's stderr as it arrives, so the pipe never fills.
fn drain(stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    log
}

struct Control {
    child: Child,
    mon: String,
    xds: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Control {
    fn start(dir: &Path, xds_addr: &str, extra: &[&str]) -> Control {
        let mut child = Command::new(BIN)
            .args(["control", "--config-dir"])
            .arg(dir.join("config"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--monitoring-addr", "127.0.0.1:0", "--xds-addr", xds_addr])
            .args(["--debounce-ms", "20"])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bowline runs");
        let log = drain(child.stderr.take().unwrap());
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut read = |prefix: &str| {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line.trim()
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("unexpected line {line:?}: {}", log.lock().unwrap()))
                .to_string()
        };
        let mon = read("control plane: monitoring on ");
        let xds = read("control plane: xds on ");
        // Kept reading so the control plane never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Control {
            child,
            mon,
            xds,
            log,
        }
    }

    fn http(&self, method: &str, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.mon).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text[9..12].parse().unwrap();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, body.to_string())
    }

    /// The token and root files of a workload identity, via `POST /apis/token`.
    fn token(&self, ns: &str, sa: &str) -> (String, String) {
        let (status, body) = self.http(
            "POST",
            &format!("/apis/token?namespace={ns}&serviceAccount={sa}"),
        );
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        (
            v["tokenFile"].as_str().unwrap().to_string(),
            v["rootCertFile"].as_str().unwrap().to_string(),
        )
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("BOWLINE_CONTROL_PLANE", &self.mon)
            .output()
            .expect("bowline runs")
    }

    fn proxy_status(&self, args: &[&str]) -> String {
        let mut all = vec!["proxy-status"];
        all.extend(args);
        let o = self.cli(&all);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    /// Polls proxy-status until `cond` holds.
    fn wait_status(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.proxy_status(&[]);
            if cond(&out) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "proxy-status never showed {what}:\n{out}\n{}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

struct Proxy {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ingress gateway of Bookinfo following `control`, its port 8080 moved to a free port.
fn gateway(control: &Control, name: &str) -> Proxy {
    let (token, root) = control.token("istio-system", GATEWAY_SA);
    let port = free_port();
    let offset = i32::from(port) - 8080;
    proxy(
        control,
        &token,
        &root,
        &[
            "--role",
            "gateway",
            "--labels",
            "istio=ingressgateway",
            "--namespace",
            "istio-system",
            "--service-account",
            GATEWAY_SA,
            "--node-name",
            name,
            &format!("--port-offset={offset}"),
        ],
        port,
    )
}

fn proxy(control: &Control, token: &str, root: &str, args: &[&str], port: u16) -> Proxy {
    let mut child = Command::new(BIN)
        .args(["proxy", "--xds-address", &control.xds])
        .args(["--root-cert", root, "--token-file", token])
        .args(args)
        .args(["--admin-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--health-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--concurrency", "1", "--seed", "1"])
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("bowline runs");
    let log = drain(child.stderr.take().unwrap());
    Proxy { child, port, log }
}

/// Polls the gateway until `path` answers `body`.
async fn wait_route(p: &Proxy, path: &str, body: &str) -> Duration {
    wait_host_route(p, "bookinfo.example", path, body).await
}

async fn wait_host_route(p: &Proxy, host: &str, path: &str, body: &str) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(20);
    loop {
        if TcpStream::connect(at(p.port)).is_ok() {
            let r = client::send(at(p.port), get(host, path)).await;
            if r.status == 200 && r.text() == body {
                return started.elapsed();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{path} never answered {body:?}:\n{}",
            p.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn row<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{status}"))
}

fn synced(status: &str, name: &str) -> bool {
    status
        .lines()
        .find(|l| l.starts_with(name))
        .is_some_and(|r| {
            r.matches("SYNCED").count() >= 4 && !r.contains("STALE") && !r.contains("NOT SENT")
        })
}

const DETAILS_ROUTE: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: details-gateway
spec:
  hosts: [details.example]
  gateways: [bookinfo-gateway]
  http:
  - match:
    - uri: {prefix: /details}
    route:
    - destination: {host: details, port: {number: 9080}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: broken
spec:
  hosts: ["*"]
  gateways: [bookinfo-gateway]
  http:
  - route:
    - destination: {host: reviews}
      weight: -5
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_serves_bookinfo_from_the_control_plane_and_follows_apply() {
    let block = block(0);
    let productpage = Backend::start_at("productpage", addr(&block, 1)).await;
    let _details = Backend::start_at("details", addr(&block, 2)).await;
    let dir = bookinfo_dir("apply", &block);
    let control = Control::start(&dir, "127.0.0.1:0", &[]);
    let gw = gateway(&control, "gw-apply");

    wait_route(&gw, "/productpage", "productpage").await;
    assert_eq!(productpage.last().uri.path(), "/productpage");
    let r = client::send(at(gw.port), get("details.example", "/details/0")).await;
    assert_eq!(r.status, 404, "not routed yet");
    let status = control.wait_status("the gateway in sync", |s| synced(s, "gw-apply"));
    let header = status.lines().next().unwrap();
    for col in [
        "NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ISTIOD", "VERSION",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(row(&status, "gw-apply.istio-system").contains("Kubernetes"));

    // One valid change and one invalid document: the invalid one is refused with its reason,
    // the valid one reaches the proxy.
    let file = dir.join("change.yaml");
    std::fs::write(&file, DETAILS_ROUTE).unwrap();
    let o = control.cli(&["apply", "-f", file.to_str().unwrap()]);
    let applied = Instant::now();
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "an invalid document fails the apply: {out}"
    );
    assert!(
        out.contains("virtualservice.networking.istio.io/details-gateway created"),
        "{out}"
    );
    assert!(out.contains("broken") && out.contains("weight"), "{out}");
    let took = wait_host_route(&gw, "details.example", "/details/0", "details").await;
    let since_apply = applied.elapsed();
    eprintln!("VirtualService change in effect {since_apply:?} after apply returned");
    assert!(
        since_apply < Duration::from_secs(1),
        "the change took {since_apply:?} (polled {took:?})"
    );
    control.wait_status("the gateway in sync again", |s| synced(s, "gw-apply"));
    // The metrics count pushes by type and the connected proxy.
    let (_, metrics) = control.http("GET", "/metrics");
    assert!(metrics.contains("pilot_xds 1"), "{metrics}");
    assert!(
        metrics.contains("pilot_xds_pushes_total{type=\"rds\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pilot_proxy_convergence_time_count"),
        "{metrics}"
    );
    let (_, registryz) = control.http("GET", "/debug/registryz");
    assert!(
        registryz.contains("reviews.default.svc.cluster.local"),
        "{registryz}"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_the_proxy_cannot_bind_is_nacked_and_shown_stale() {
    let block = block(1);
    let _productpage = Backend::start_at("productpage", addr(&block, 1)).await;
    let dir = bookinfo_dir("nack", &block);
    let control = Control::start(&dir, "127.0.0.1:0", &[]);
    let gw = gateway(&control, "gw-nack");
    wait_route(&gw, "/productpage", "productpage").await;
    control.wait_status("the gateway in sync", |s| synced(s, "gw-nack"));

    // Another process holds a port; a Gateway asks the proxy to listen there.
    let offset = i32::from(gw.port) - 8080;
    let (held, config_port) = loop {
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let q = i32::from(l.local_addr().unwrap().port()) - offset;
        if (1..=65535).contains(&q) && q != 8080 {
            break (l, q);
        }
    };
    let blocked = format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: blocked\n  namespace: istio-system\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {config_port}, name: http-blocked, protocol: HTTP}}\n    hosts: [\"*\"]\n"
    );
    std::fs::write(dir.join("blocked.yaml"), blocked).unwrap();
    let o = control.cli(&["apply", "-f", dir.join("blocked.yaml").to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let status = control.wait_status("LDS stale", |s| {
        s.lines()
            .any(|l| l.starts_with("gw-nack") && l.contains("STALE"))
    });
    let r = row(&status, "gw-nack.istio-system");
    let cells: Vec<&str> = r.split_whitespace().collect();
    assert_eq!(
        &cells[2..6],
        ["SYNCED", "STALE", "SYNCED", "SYNCED"],
        "CDS LDS EDS RDS:\n{status}"
    );
    let reason = status
        .lines()
        .find(|l| l.contains("LDS STALE (NACK)"))
        .unwrap_or_else(|| panic!("no NACK reason:\n{status}"));
    assert!(reason.contains("cannot bind"), "{reason}");
    let detail = control.proxy_status(&["gw-nack.istio-system"]);
    assert!(
        detail.contains("NACK:") && detail.contains("LDS"),
        "{detail}"
    );
    assert!(
        control
            .log
            .lock()
            .unwrap()
            .contains("proxy rejected a response (NACK)"),
        "the control plane logs the NACK"
    );
    // The proxy keeps serving what it had.
    wait_route(&gw, "/productpage", "productpage").await;
    let (_, metrics) = control.http("GET", "/metrics");
    assert!(
        metrics.contains("pilot_total_xds_rejects_total{type=\"lds\"} 1"),
        "{metrics}"
    );
    drop(held);
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_control_plane_under_traffic_fails_no_request() {
    let block = block(2);
    let productpage = Backend::start_at("productpage", addr(&block, 1)).await;
    let dir = bookinfo_dir("restart", &block);
    let xds = format!("127.0.0.1:{}", free_port());
    let mut control = Control::start(&dir, &xds, &[]);
    let gw = gateway(&control, "gw-restart");
    wait_route(&gw, "/productpage", "productpage").await;
    control.wait_status("the gateway in sync", |s| synced(s, "gw-restart"));

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic = {
        let (stop, sent, failed, port) = (stop.clone(), sent.clone(), failed.clone(), gw.port);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                // A new connection each time: new connections are what a listener change breaks.
                let r = tokio::spawn(client::send(
                    at(port),
                    get("bookinfo.example", "/productpage"),
                ))
                .await;
                sent.fetch_add(1, Ordering::Relaxed);
                if !matches!(&r, Ok(r) if r.status == 200) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let before = productpage.count();
    // Killed without a chance to say goodbye; the proxy notices the stream break.
    let _ = control.child.kill();
    let _ = control.child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.log.lock().unwrap().contains("control plane unavailable") {
        assert!(Instant::now() < deadline, "{}", gw.log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let applied_before = gw.log.lock().unwrap().matches("config applied").count();
    control = Control::start(&dir, &xds, &[]);
    control.wait_status("the gateway resynced", |s| synced(s, "gw-restart"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();

    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(
        productpage.count() > before + 20,
        "traffic flowed throughout"
    );
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
    let log = gw.log.lock().unwrap().clone();
    assert_eq!(
        log.matches("connected to the control plane").count(),
        2,
        "{log}"
    );
    // Nothing changed, so the resync applied nothing: the proxy kept its running config.
    assert_eq!(
        log.matches("config applied").count(),
        applied_before,
        "{log}"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

const GROUP: &str = r#"apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: vm-ratings
  namespace: default
spec:
  metadata:
    labels: {app: ratings-vm}
  template:
    serviceAccount: bookinfo-ratings
    ports: {http: 9080}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_group_member_is_registered_while_connected_and_gets_its_certificate() {
    let dir = bookinfo_dir("autoreg", &block(3));
    std::fs::write(dir.join("config/group.yaml"), GROUP).unwrap();
    let control = Control::start(&dir, "127.0.0.1:0", &["--workload-entry-grace", "200ms"]);
    let (token, root) = control.token("default", "bookinfo-ratings");
    let vm = proxy(
        &control,
        &token,
        &root,
        &[
            "--namespace",
            "default",
            "--service-account",
            "bookinfo-ratings",
            "--workload-group",
            "vm-ratings",
            "--ip",
            "127.0.99.7",
            "--labels",
            "app=ratings-vm,version=v9",
            "--node-name",
            "vm-1",
            "--workload-cert",
        ],
        0,
    );
    let entry = "default/vm-ratings-127-0-99-7";
    let registryz = |want: bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = control.http("GET", "/debug/registryz");
            let v: Value = serde_json::from_str(&body).unwrap();
            let has = v["autoRegisteredWorkloadEntries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == entry);
            if has == want {
                return;
            }
            assert!(Instant::now() < deadline, "{entry} present={has}: {body}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    registryz(true);
    // Its workload certificate came from the control plane's CA, over the same TLS port.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !vm
        .log
        .lock()
        .unwrap()
        .contains("workload certificate issued by the control plane")
    {
        assert!(Instant::now() < deadline, "{}", vm.log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(control
        .log
        .lock()
        .unwrap()
        .contains("spiffe://cluster.local/ns/default/sa/bookinfo-ratings"));
    drop(vm);
    registryz(false);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_a_token_or_for_another_identity_are_refused() {
    let dir = bookinfo_dir("refused", &block(4));
    let control = Control::start(&dir, "127.0.0.1:0", &[]);
    // Replicas of one workload ask for their first token together: all get the same one (a
    // second issue would revoke the token handed to the first).
    let grants: Vec<String> = std::thread::scope(|scope| {
        let asks: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    let (file, _) = control.token("default", "bookinfo-ratings");
                    std::fs::read_to_string(file).unwrap()
                })
            })
            .collect();
        asks.into_iter().map(|a| a.join().unwrap()).collect()
    });
    assert!(grants.iter().all(|g| *g == grants[0]), "{grants:?}");
    let (token, root) = control.token("default", "bookinfo-reviews");
    let conn = xds::Connection {
        address: control.xds.clone(),
        server_name: None,
        root_cert_pem: std::fs::read_to_string(&root).unwrap(),
        token: std::fs::read_to_string(&token).unwrap().trim().to_string(),
    };
    let td = ca::TrustDomain::default();
    // A CSR for its own identity is signed; one for another is refused.
    let own = ca::Identity::new(td.clone(), "default", "bookinfo-reviews").unwrap();
    let (_key, csr) = tls::generate_csr(&own).unwrap();
    let chain = xds::client::create_certificate(&conn, &csr, None)
        .await
        .unwrap();
    assert!(chain.len() >= 2, "{chain:?}");
    let other = ca::Identity::new(td, "default", "bookinfo-productpage").unwrap();
    let (_key, csr) = tls::generate_csr(&other).unwrap();
    let err = xds::client::create_certificate(&conn, &csr, None)
        .await
        .expect_err("another identity's CSR is refused");
    assert!(err.to_string().contains("bookinfo-productpage"), "{err}");

    // A proxy with a bad token never connects, and the control plane logs why.
    std::fs::write(dir.join("bad.token"), "bowline-bt.0000").unwrap();
    let p = proxy(
        &control,
        dir.join("bad.token").to_str().unwrap(),
        &root,
        &["--namespace", "default", "--node-name", "intruder"],
        0,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.log.lock().unwrap().contains("control plane unavailable") {
        assert!(Instant::now() < deadline, "{}", p.log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        p.log.lock().unwrap().contains("Unauthenticated")
            || p.log.lock().unwrap().contains("not a bootstrap token"),
        "{}",
        p.log.lock().unwrap()
    );
    assert!(control
        .log
        .lock()
        .unwrap()
        .contains("refused a call with a bad credential"));
    assert!(!control.proxy_status(&[]).contains("intruder"));
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}
