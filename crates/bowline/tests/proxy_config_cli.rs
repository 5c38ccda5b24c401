//! `bowline proxy-config` against a real `bowline proxy --config-dir`: tables, JSON and YAML
//! read from the admin API, and `log` changing the running proxy's log levels.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::client::{self, get};

const CONFIG: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: istio-system}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: 9}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: istio-system}
spec:
  hosts: [api.example.com]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /hello}}]
    directResponse: {status: 200, body: {string: hi}}
  - route: [{destination: {host: api.example.com}}]
"#;

struct Proxy {
    child: Child,
    port: u16,
    admin: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    testkit::free_port()
}

fn start() -> Proxy {
    let dir = std::env::temp_dir().join(format!("bowline-pc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.yaml"), CONFIG).unwrap();
    let port = free_port();
    let admin = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_bowline"))
        .args(["proxy", "--config-dir"])
        .arg(&dir)
        .args(["--role", "gateway", "--labels", "istio=ingressgateway"])
        .args(["--namespace", "istio-system"])
        .arg(format!("--port-offset={}", i32::from(port) - 8080))
        .args(["--admin-addr", &admin])
        .args(["--health-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--concurrency", "1"])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("bowline runs");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let log = Arc::new(Mutex::new(String::new()));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "no ready line:\n{}",
            log.lock().unwrap()
        );
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "bowline exited early"
        );
        log.lock().unwrap().push_str(&line);
        if line.contains("proxy ready") {
            break;
        }
    }
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    Proxy {
        child,
        port,
        admin,
        log,
    }
}

fn proxy_config(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bowline"))
        .arg("proxy-config")
        .args(args)
        .output()
        .expect("bowline runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_documents_and_log_levels_from_a_running_proxy() {
    let proxy = start();
    let admin = proxy.admin.as_str();

    let (ok, out, err) = proxy_config(&["listeners", admin]);
    assert!(ok, "{err}");
    assert!(out.starts_with("ADDRESSES"), "{out}");
    assert!(
        out.contains(&format!(
            "0.0.0.0    {}  ALL    Route: http.8080",
            proxy.port
        )),
        "{out}"
    );

    let (ok, out, err) = proxy_config(&["routes", "--admin", admin]);
    assert!(ok, "{err}");
    assert!(out.contains("api.example.com:8080"), "{out}");
    assert!(
        out.contains("/hello*") && out.contains("DirectResponse: 200"),
        "{out}"
    );
    assert!(
        out.contains("Cluster: outbound|80||api.example.com"),
        "{out}"
    );

    let (ok, out, _) = proxy_config(&["clusters", admin]);
    assert!(ok);
    assert!(
        out.contains("api.example.com  80    -       outbound   EDS   1"),
        "{out}"
    );
    let (ok, out, _) = proxy_config(&["endpoints", admin]);
    assert!(ok);
    assert!(out.contains("127.0.0.1:9  HEALTHY  1"), "{out}");

    let (ok, out, _) = proxy_config(&["clusters", admin, "-o", "json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v[0]["name"], "outbound|80||api.example.com");
    let (ok, out, _) = proxy_config(&["all", admin, "-o", "yaml"]);
    assert!(ok);
    assert!(out.contains("route_tables:"), "{out}");
    let (ok, out, _) = proxy_config(&["all", admin]);
    assert!(
        ok && out.contains("ADDRESSES") && out.contains("ENDPOINT"),
        "{out}"
    );
    let (ok, out, _) = proxy_config(&["secret", admin]);
    assert!(ok, "{out}");

    // Debug lines of the HTTP path appear only once `log` turns them on.
    let addr = SocketAddr::from(([127, 0, 0, 1], proxy.port));
    let r = client::send(addr, get("nothing.example.com", "/")).await;
    assert_eq!(r.status, 404);
    let (ok, out, err) = proxy_config(&["log", admin]);
    assert!(ok, "{err}");
    assert!(out.contains("  http: info"), "{out}");
    let (ok, out, err) = proxy_config(&["log", admin, "--level", "http:debug"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("  http: debug") && out.contains("  tcp: info"),
        "{out}"
    );
    let r = client::send(addr, get("nothing.example.com", "/")).await;
    assert_eq!(r.status, 404);
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.log.lock().unwrap().matches("request failed").count() < 1 {
        assert!(
            Instant::now() < deadline,
            "no debug line after the change:\n{}",
            proxy.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        proxy.log.lock().unwrap().matches("request failed").count(),
        1
    );
    let (ok, _, err) = proxy_config(&["log", admin, "--level", "loud"]);
    assert!(!ok && err.contains("unknown level"), "{err}");

    let (ok, _, err) = proxy_config(&["listeners", "productpage-v1-123"]);
    assert!(!ok && err.contains("--admin"), "{err}");
}
