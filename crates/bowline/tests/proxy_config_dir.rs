//! `bowline proxy --config-dir` end to end: the real binary compiles Istio YAML for the ingress
//! gateway role and routes to real backends listening on the loopback addresses the workloads
//! declare (`bowline.io/address`).
//!
//! Each test moves the example workloads to its own 127.N.0.0/16-style block so tests (and
//! concurrent runs) do not fight over port 9080.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::client::{self, get};
use testkit::Backend;

const EXAMPLE_BLOCK: &str = "127.0.10.";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    testkit::free_port()
}

/// A loopback block of this test in this process: `127.0.N.`.
fn block(test: u32) -> String {
    format!("127.0.{}.", 20 + (std::process::id() % 50) * 4 + test)
}

/// A fresh config directory holding `files` (name, text).
fn config_dir(test: &str, files: &[(&str, String)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bowline-cfg-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

/// Our example workloads with their addresses moved to `block`.
fn workloads(block: &str) -> String {
    std::fs::read_to_string(repo().join("examples/bookinfo/workloads.yaml"))
        .unwrap()
        .replace(EXAMPLE_BLOCK, block)
}

fn addr(block: &str, host: u8) -> SocketAddr {
    format!("{block}{host}:9080").parse().unwrap()
}

/// The running binary and everything it logged before it was ready.
struct Proxy {
    child: Child,
    port: u16,
    log: String,
    /// Everything it logged after it was ready, as it arrives.
    later: Arc<Mutex<String>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `bowline proxy --config-dir DIR --role gateway` with the Gateway's port 8080 moved to a
/// free port.
fn gateway(dir: &Path, seed: u64) -> Proxy {
    serve(
        dir,
        &["--role", "gateway", "--labels", "istio=ingressgateway"],
        "istio-system",
        8080,
        seed,
    )
}

/// Runs `bowline proxy --config-dir DIR` with `role_args`, moving `config_port` to a free port.
fn serve(dir: &Path, role_args: &[&str], namespace: &str, config_port: u16, seed: u64) -> Proxy {
    let port = free_port();
    let offset = i32::from(port) - i32::from(config_port);
    let mut child = Command::new(env!("CARGO_BIN_EXE_bowline"))
        .args(["proxy", "--config-dir"])
        .arg(dir)
        .args(role_args)
        .args(["--namespace", namespace])
        .arg(format!("--port-offset={offset}"))
        .args(["--admin-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--health-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--concurrency", "1", "--seed", &seed.to_string()])
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("bowline runs");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.contains("proxy ready") {
        assert!(Instant::now() < deadline, "no ready line:\n{log}");
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "bowline exited early:\n{log}"
        );
        log.push_str(&line);
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    let later = Arc::new(Mutex::new(String::new()));
    let sink = later.clone();
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
        log,
        later,
    }
}

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_bookinfo_gateway_sample_reaches_productpage() {
    // Beside the repo in CI; beside the worktree's parent when working in a git worktree.
    let candidates = [
        "../../../shared/istio-samples/samples/bookinfo/networking/bookinfo-gateway.yaml",
        "../../../../shared/istio-samples/samples/bookinfo/networking/bookinfo-gateway.yaml",
    ];
    let Some(sample) = candidates
        .iter()
        .map(|c| Path::new(env!("CARGO_MANIFEST_DIR")).join(c))
        .find(|p| p.exists())
    else {
        assert!(
            std::env::var("CI").is_err(),
            "CI is set but Istio's samples are not beside the repo (../shared/istio-samples)"
        );
        eprintln!("note: Istio's samples are not beside the repo; this test did not run");
        return;
    };
    let block = block(0);
    let productpage = Backend::start_at("productpage", addr(&block, 1)).await;
    let details = Backend::start_at("details", addr(&block, 2)).await;
    // Istio's file as written, next to our workloads: never copied into the repo.
    let dir = config_dir(
        "istio-sample",
        &[
            (
                "bookinfo-gateway.yaml",
                std::fs::read_to_string(&sample).unwrap(),
            ),
            ("workloads.yaml", workloads(&block)),
        ],
    );
    let proxy = gateway(&dir, 1);

    let r = client::send(at(proxy.port), get("bookinfo.example", "/productpage")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "productpage");
    assert_eq!(productpage.last().uri.path(), "/productpage");
    let r = client::send(at(proxy.port), get("x", "/api/v1/products/1")).await;
    assert_eq!(r.text(), "productpage");
    // Every match of the sample, as written: exact, prefix; and what falls outside them.
    for path in ["/static/css/x.css", "/login", "/logout", "/api/v1/products"] {
        let r = client::send(at(proxy.port), get("bookinfo.example:8080", path)).await;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (200, "productpage".into()),
            "{path}"
        );
    }
    for path in ["/productpage/x", "/login/x", "/"] {
        let r = client::send(at(proxy.port), get("bookinfo.example", path)).await;
        assert_eq!(r.status, 404, "{path}");
    }

    // Nothing routes /details through the gateway: Envoy's 404 (NR), and no backend sees it.
    let r = client::send(at(proxy.port), get("bookinfo.example", "/details/0")).await;
    assert_eq!(r.status, 404);
    assert_eq!(details.count(), 0);
    assert_eq!(productpage.count(), 6);
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Our examples plus the routing fixture of the model's golden tests, and one invalid document.
fn routing_dir(block: &str) -> PathBuf {
    let example =
        |f: &str| std::fs::read_to_string(repo().join("examples/bookinfo").join(f)).unwrap();
    config_dir(
        "routing",
        &[
            ("gateway.yaml", example("gateway.yaml")),
            ("destination-rules.yaml", example("destination-rules.yaml")),
            ("workloads.yaml", workloads(block)),
            (
                "reviews-routing.yaml",
                std::fs::read_to_string(repo().join("crates/model/tests/fixtures/reviews-routing.yaml"))
                    .unwrap(),
            ),
            (
                "broken.yaml",
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: broken\nspec:\n  hosts: [\"*\"]\n  gateways: [bookinfo-gateway]\n  http:\n  - route:\n    - destination:\n        host: reviews\n      weight: -5\n"
                    .to_string(),
            ),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_service_header_match_and_weighted_split_through_the_gateway() {
    let block = block(1);
    let v1 = Backend::start_at("reviews-v1", addr(&block, 3)).await;
    let v2 = Backend::start_at("reviews-v2", addr(&block, 4)).await;
    let v3 = Backend::start_at("reviews-v3", addr(&block, 5)).await;
    let dir = routing_dir(&block);
    let proxy = gateway(&dir, 7);
    // The invalid document is reported with its file and line, and the rest is served.
    assert!(
        proxy.log.contains("broken.yaml:") && proxy.log.contains("VirtualService default/broken"),
        "{}",
        proxy.log
    );

    let mut conn = client::Conn::open(at(proxy.port)).await;
    for _ in 0..20 {
        let mut req = get("bookinfo.example", "/reviews/0");
        req.headers_mut()
            .insert("end-user", http::HeaderValue::from_static("jason"));
        assert_eq!(conn.send(req).await.text(), "reviews-v2");
    }
    assert_eq!((v1.count(), v3.count()), (0, 0));

    let n = 400;
    for _ in 0..n {
        let r = conn.send(get("bookinfo.example", "/reviews/0")).await;
        assert!(r.status == 200, "{}", r.text());
    }
    let (ones, threes) = (v1.count(), v3.count());
    assert_eq!(ones + threes, n);
    assert_eq!(v2.count(), 20);
    let share = ones as f64 / n as f64;
    assert!((0.73..=0.87).contains(&share), "v1 got {ones} of {n}");
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_routes_by_service_name_with_mesh_virtual_services() {
    let block = block(2);
    let v1 = Backend::start_at("reviews-v1", addr(&block, 3)).await;
    let v2 = Backend::start_at("reviews-v2", addr(&block, 4)).await;
    let ratings = Backend::start_at("ratings", addr(&block, 6)).await;
    let dir = routing_dir(&block);
    let proxy = serve(
        &dir,
        &[
            "--role",
            "sidecar",
            "--labels",
            "app=productpage,version=v1",
        ],
        "default",
        9080,
        3,
    );
    let at = at(proxy.port);

    // No VirtualService for ratings: the default route to its only endpoint.
    let r = client::send(at, get("ratings:9080", "/ratings/0")).await;
    assert_eq!(r.text(), "ratings");
    assert_eq!(ratings.last().uri.path(), "/ratings/0");

    // reviews has a mesh VirtualService: header match to v2 with a destination header...
    let mut req = get("reviews.default.svc.cluster.local", "/reviews/0");
    req.headers_mut()
        .insert("end-user", http::HeaderValue::from_static("jason"));
    assert_eq!(client::send(at, req).await.text(), "reviews-v2");
    assert_eq!(
        v2.last().headers.get("x-routed").map(|v| v.as_bytes()),
        Some(&b"jason"[..])
    );
    // ...a regex redirect (ignoreUriCase does not apply to regexes, as in Istio), a direct
    // response, and a catch-all to v1.
    let r = client::send(at, get("reviews", "/API/v1/legacy/x")).await;
    assert_eq!(r.text(), "reviews-v1");
    let r = client::send(at, get("reviews", "/api/v1/legacy/x")).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").map(|l| l.ends_with("/reviews/")),
        Some(true)
    );
    let r = client::send(at, get("reviews.default:9080", "/x?maintenance=1")).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (503, "down for maintenance")
    );
    assert_eq!(
        client::send(at, get("reviews", "/other")).await.text(),
        "reviews-v1"
    );
    assert_eq!(v1.last().uri.path(), "/other");

    // A name no service has: no virtual host.
    let r = client::send(at, get("unknown.default.svc.cluster.local", "/")).await;
    assert_eq!(r.status, 404);
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A VirtualService sending `/switch` through the gateway to `host`, with `extra` appended to its
/// route destination (to make it invalid).
fn switch_vs(host: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: switch\nspec:\n  hosts: [\"*\"]\n  gateways: [bookinfo-gateway]\n  http:\n  - match:\n    - uri:\n        prefix: /switch\n    route:\n    - destination:\n        host: {host}\n        port:\n          number: 9080\n{extra}"
    )
}

/// Replaces `name` in `dir` in one rename, as editors and `kubectl cp` tools do, so the watcher
/// never sees a half-written file (hidden files are not config).
fn replace(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// Sends `/switch` until the answer is `want` or `within` passes; returns the last answer.
async fn until_reaches(port: u16, want: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let r = client::send(at(port), get("bookinfo.example", "/switch")).await;
        let text = r.text();
        if text == want || Instant::now() >= deadline {
            return format!("{} {text}", r.status.as_u16());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How much the proxy has logged since it was ready: a mark for [`until_logged`].
fn log_mark(proxy: &Proxy) -> usize {
    proxy.later.lock().unwrap().len()
}

/// Waits until the proxy has logged `needle` after `mark`; returns what it logged since.
fn until_logged(proxy: &Proxy, mark: usize, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let since = proxy.later.lock().unwrap()[mark..].to_string();
        if since.contains(needle) {
            return since;
        }
        assert!(Instant::now() < deadline, "no `{needle}` in:\n{since}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ten requests to `/switch`, every one answered by `want`.
async fn all_reach(proxy: &mut Proxy, want: &str) {
    for _ in 0..10 {
        let r = client::send(at(proxy.port), get("bookinfo.example", "/switch")).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, want));
    }
    assert!(
        proxy.child.try_wait().unwrap().is_none(),
        "the proxy exited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_dir_changes_apply_live_and_a_broken_one_keeps_the_last_good() {
    let block = block(3);
    let a = Backend::start_at("details", addr(&block, 2)).await;
    let b = Backend::start_at("ratings", addr(&block, 6)).await;
    let gateway_yaml =
        std::fs::read_to_string(repo().join("examples/bookinfo/gateway.yaml")).unwrap();
    let dir = config_dir(
        "reload",
        &[
            ("gateway.yaml", gateway_yaml),
            ("workloads.yaml", workloads(&block)),
            ("switch.yaml", switch_vs("details", "")),
        ],
    );
    let mut proxy = gateway(&dir, 5);
    all_reach(&mut proxy, "details").await;

    // A route change is in force within 2 s. Routes are looked up per request (Envoy's RDS), so
    // a connection opened before the change sees it on its next request.
    let mut conn = client::Conn::open(at(proxy.port)).await;
    let r = conn.send(get("bookinfo.example", "/switch")).await;
    assert_eq!(r.text(), "details");
    let mark = log_mark(&proxy);
    replace(&dir, "switch.yaml", &switch_vs("ratings", ""));
    assert_eq!(
        until_reaches(proxy.port, "ratings", Duration::from_secs(2)).await,
        "200 ratings"
    );
    let r = conn.send(get("bookinfo.example", "/switch")).await;
    assert_eq!(r.text(), "ratings");
    until_logged(&proxy, mark, "config applied", Duration::from_secs(2));

    // An invalid field: the document is rejected with file, line and reason, and the last good
    // version of the VirtualService stays.
    let before = b.count();
    let mark = log_mark(&proxy);
    replace(
        &dir,
        "switch.yaml",
        &switch_vs("details", "      weight: -5\n"),
    );
    let log = until_logged(
        &proxy,
        mark,
        "VirtualService default/switch",
        Duration::from_secs(5),
    );
    assert!(log.contains("switch.yaml:"), "{log}");
    all_reach(&mut proxy, "ratings").await;
    assert_eq!(b.count(), before + 10);

    // Not YAML at all: same.
    let mark = log_mark(&proxy);
    replace(
        &dir,
        "switch.yaml",
        "kind: VirtualService\nspec: [unclosed\n",
    );
    until_logged(&proxy, mark, "switch.yaml:", Duration::from_secs(5));
    all_reach(&mut proxy, "ratings").await;

    // Valid documents that do not compile for this proxy (a listener port past 65535 once the
    // offset is added): the whole version is refused with the reason, nothing of it applies.
    let mark = log_mark(&proxy);
    let far = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: far\nspec:\n  selector:\n    istio: ingressgateway\n  servers:\n  - port:\n      number: 65535\n      name: http\n      protocol: HTTP\n    hosts: [\"*\"]\n";
    replace(&dir, "far.yaml", far);
    replace(&dir, "switch.yaml", &switch_vs("details", ""));
    let log = until_logged(&proxy, mark, "does not compile", Duration::from_secs(5));
    assert!(log.contains("65535"), "{log}");
    all_reach(&mut proxy, "ratings").await;

    // Fixed: it applies.
    let sent_to_a = a.count();
    std::fs::remove_file(dir.join("far.yaml")).unwrap();
    assert_eq!(
        until_reaches(proxy.port, "details", Duration::from_secs(2)).await,
        "200 details"
    );
    assert!(a.count() > sent_to_a);
    all_reach(&mut proxy, "details").await;
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_applies_faults_mirrors_and_the_mesh_retry_policy_from_the_config_dir() {
    use testkit::Behavior;
    // Backends on OS ports: the pods name their container port and the Service targets it.
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let v1 = Backend::start_with(
        "reviews-v1",
        any,
        Behavior {
            fail_first: Some((3, 500)),
            ..Default::default()
        },
    )
    .await;
    let v2 = Backend::start_at("reviews-v2", any).await;
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    fault:
      abort:
        percentage:
          value: 100.0
        httpStatus: 500
    route:
    - destination:
        host: reviews
        subset: v1
  - route:
    - destination:
        host: reviews
        subset: v1
    mirror:
      host: reviews
      subset: v2
";
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
";
    let dir = config_dir(
        "traffic",
        &[
            (
                "workloads.yaml",
                testkit::istio::service("reviews", 9080, &[("v1", v1.addr), ("v2", v2.addr)]),
            ),
            ("reviews.yaml", format!("{vs}---\n{dr}")),
            // Istio's default would not retry a 500; the mesh-wide policy does, three times.
            (
                "mesh.yaml",
                "defaultHttpRetryPolicy:\n  attempts: 3\n  retryOn: 5xx\n".to_string(),
            ),
        ],
    );
    let proxy = serve(
        &dir,
        &["--role", "sidecar", "--labels", "app=productpage"],
        "default",
        9080,
        11,
    );
    let at = at(proxy.port);

    let mut req = get("reviews:9080", "/reviews/0");
    req.headers_mut()
        .insert("end-user", http::HeaderValue::from_static("jason"));
    let r = client::send(at, req).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (500, "fault filter abort")
    );
    assert_eq!(v1.count(), 0);

    let r = client::send(at, get("reviews:9080", "/reviews/0")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "reviews-v1"));
    assert_eq!(v1.count(), 4, "three 500s retried under the mesh policy");
    assert_eq!(v1.last().headers["x-envoy-attempt-count"], "4");
    let deadline = Instant::now() + Duration::from_secs(2);
    while v2.count() == 0 {
        assert!(Instant::now() < deadline, "the mirror saw nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(v2.last().headers["host"], "reviews-shadow:9080");
    assert_eq!(
        v2.count(),
        1,
        "the mirror gets one copy, not one per attempt"
    );
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}
