//! `xds-load`: the control-plane benchmark's load tool (`bench/run control`). Starts `bowline
//! control` over a generated mesh of M services with K endpoints each, opens N simulated proxy
//! streams that subscribe and ACK every response as a proxy does (without building a data
//! path), and measures: time until every proxy has its full config, convergence of one endpoint
//! change and of one VirtualService change across all proxies, bytes sent per endpoint change per
//! proxy, config size per proxy with and without a Sidecar scope, and the control plane's peak
//! RSS and CPU time. Writes a JSON object on standard output.
//!
//! Usage: xds-load --bowline PATH --work DIR [--proxies N] [--services M] [--endpoints K]
//!        [--changes R]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model::{ProxyIdentity, Role};
use prost::Message;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;
use xds::client::Connection;
use xds::pb::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use xds::pb::{DeltaDiscoveryRequest, Node};
use xds::SECTIONS;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Opts {
    bowline: PathBuf,
    work: PathBuf,
    proxies: usize,
    services: usize,
    endpoints: usize,
    changes: usize,
}

fn opts() -> Result<Opts, Error> {
    let mut o = Opts {
        bowline: PathBuf::from("target/release/bowline"),
        work: PathBuf::from("target/bench/work-control"),
        proxies: 1000,
        services: 10000,
        endpoints: 5,
        changes: 10,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [k, v] = pair else {
            return Err(format!("{pair:?}: flags take a value").into());
        };
        match k.as_str() {
            "--bowline" => o.bowline = v.into(),
            "--work" => o.work = v.into(),
            "--proxies" => o.proxies = v.parse()?,
            "--services" => o.services = v.parse()?,
            "--endpoints" => o.endpoints = v.parse()?,
            "--changes" => o.changes = v.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(o)
}

/// Services are ServiceEntries with static endpoints, in 100 files; service 0 has a file of its
/// own so changing it rewrites little.
fn service(i: usize, endpoints: usize, port_base: usize) -> String {
    let mut s = format!(
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: svc-{i}, namespace: bench}}\nspec:\n  hosts: [svc-{i}.bench.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints:\n"
    );
    for e in 0..endpoints {
        let n = i * endpoints + e;
        s.push_str(&format!(
            "  - {{address: 10.{}.{}.{}, ports: {{http: {}}}}}\n",
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff,
            port_base
        ));
    }
    s
}

fn write_config(o: &Opts, dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)?;
    let per_file = o.services.div_ceil(100).max(1);
    let mut chunk = String::new();
    for i in 1..o.services {
        chunk.push_str(&service(i, o.endpoints, 8080));
        if i % per_file == 0 {
            std::fs::write(dir.join(format!("svc-{i}.yaml")), &chunk)?;
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        std::fs::write(dir.join("svc-rest.yaml"), &chunk)?;
    }
    std::fs::write(dir.join("svc-0.yaml"), service(0, o.endpoints, 8080))?;
    // A namespace whose proxies are scoped to their own services.
    let mut scoped = String::from(
        "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: scoped}\nspec:\n  egress:\n  - hosts: [\"./*\"]\n",
    );
    for i in 0..10 {
        scoped.push_str(
            &service(i, o.endpoints, 8080)
                .replace("namespace: bench", "namespace: scoped")
                .replace(&format!("svc-{i}.bench"), &format!("own-{i}.scoped"))
                .replace(&format!("name: svc-{i}"), &format!("name: own-{i}")),
        );
    }
    std::fs::write(dir.join("scoped.yaml"), scoped)?;
    Ok(())
}

/// The control plane and the lines it printed.
struct Control {
    child: Child,
    mon: String,
    xds: String,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_control(o: &Opts) -> Result<Control, Error> {
    let mut child = Command::new(&o.bowline)
        .args(["control", "--config-dir"])
        .arg(o.work.join("config"))
        .arg("--state-dir")
        .arg(o.work.join("state"))
        .args([
            "--monitoring-addr",
            "127.0.0.1:0",
            "--xds-addr",
            "127.0.0.1:0",
        ])
        // Short windows: the benchmark measures the push, not the debounce.
        .args(["--debounce-ms", "10", "--debounce", "10ms"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = |prefix: &str| -> Result<String, Error> {
        let mut l = String::new();
        out.read_line(&mut l)?;
        Ok(l.trim()
            .strip_prefix(prefix)
            .ok_or(format!("unexpected {l:?}"))?
            .to_string())
    };
    let mon = line("control plane: monitoring on ")?;
    let xds = line("control plane: xds on ")?;
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Ok(Control { child, mon, xds })
}

fn http_post(addr: &str, path: &str) -> Result<String, Error> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr)?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// (peak RSS in MB, CPU seconds) of a process.
fn usage(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (hwm / 1024.0, (ticks(11) + ticks(12)) / 100.0)
}

/// What one simulated proxy saw, by type short name.
#[derive(Default)]
struct Seen {
    /// Responses received, per type.
    responses: HashMap<&'static str, usize>,
    /// Encoded bytes received, per type.
    bytes: HashMap<&'static str, usize>,
    /// When the last response of each type arrived.
    last: HashMap<&'static str, Instant>,
}

struct Fleet {
    seen: Vec<Arc<Mutex<Seen>>>,
    changed: Arc<Notify>,
}

async fn open_proxy(
    conn: Connection,
    ns: &str,
    index: usize,
    seen: Arc<Mutex<Seen>>,
    changed: Arc<Notify>,
) -> Result<(), Error> {
    let mut client = AggregatedDiscoveryServiceClient::new(conn.channel().await?)
        .max_decoding_message_size(xds::client::MAX_MESSAGE_BYTES);
    let mut p = ProxyIdentity::new(Role::Sidecar, ns);
    p.service_account = "bench".into();
    let ip = format!("10.200.{}.{}", index / 250, index % 250 + 1);
    p.ips = vec![ip.parse()?];
    let (tx, rx) = mpsc::channel(16);
    for (i, s) in SECTIONS.iter().enumerate() {
        tx.send(DeltaDiscoveryRequest {
            node: (i == 0).then(|| Node {
                id: format!("sidecar~{ip}~load-{index}.{ns}~{ns}.svc.cluster.local"),
                cluster: "bench".into(),
                metadata_json: serde_json::to_vec(&p).unwrap_or_default(),
            }),
            type_url: s.type_url.into(),
            resource_names_subscribe: vec!["*".into()],
            ..Default::default()
        })
        .await?;
    }
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    conn.authorize(&mut req)?;
    let mut inbound = client.delta_aggregated_resources(req).await?.into_inner();
    tokio::spawn(async move {
        while let Ok(Some(r)) = inbound.message().await {
            let short = xds::resources::section(&r.type_url).map_or("?", |(_, s)| s.short);
            {
                let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                *s.responses.entry(short).or_default() += 1;
                *s.bytes.entry(short).or_default() += r.encoded_len();
                s.last.insert(short, Instant::now());
            }
            changed.notify_waiters();
            let ack = DeltaDiscoveryRequest {
                type_url: r.type_url,
                response_nonce: r.nonce,
                ..Default::default()
            };
            if tx.send(ack).await.is_err() {
                break;
            }
        }
    });
    Ok(())
}

impl Fleet {
    /// Waits until `done` holds for every proxy; `None` after `limit`.
    async fn wait(&self, limit: Duration, done: impl Fn(usize, &Seen) -> bool) -> Option<Duration> {
        let started = Instant::now();
        loop {
            let notified = self.changed.notified();
            let all = self
                .seen
                .iter()
                .enumerate()
                .all(|(i, s)| done(i, &s.lock().unwrap_or_else(|p| p.into_inner())));
            if all {
                return Some(started.elapsed());
            }
            if started.elapsed() > limit {
                return None;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }

    fn count(&self, short: &str) -> Vec<usize> {
        self.seen
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .responses
                    .get(short)
                    .copied()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn bytes(&self, short: &str) -> usize {
        self.seen
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .bytes
                    .get(short)
                    .copied()
                    .unwrap_or(0)
            })
            .sum()
    }

    fn total_bytes(&self) -> usize {
        self.seen
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .bytes
                    .values()
                    .sum::<usize>()
            })
            .sum()
    }

    /// Latency from `since` to each proxy's last response of `short`, in ms.
    fn latencies(&self, short: &str, since: Instant) -> Vec<f64> {
        self.seen
            .iter()
            .filter_map(|s| {
                s.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .last
                    .get(short)
                    .map(|t| t.duration_since(since).as_secs_f64() * 1000.0)
            })
            .collect()
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let o = opts()?;
    let _ = std::fs::remove_dir_all(&o.work);
    write_config(&o, &o.work.join("config"))?;
    let control = start_control(&o)?;
    let pid = control.child.id();
    let token_of = |ns: &str| -> Result<Connection, Error> {
        let v: serde_json::Value = serde_json::from_str(&http_post(
            &control.mon,
            &format!("/apis/token?namespace={ns}&serviceAccount=bench"),
        )?)?;
        Ok(Connection {
            address: control.xds.clone(),
            server_name: None,
            root_cert_pem: std::fs::read_to_string(v["rootCertFile"].as_str().ok_or("no root")?)?,
            token: std::fs::read_to_string(v["tokenFile"].as_str().ok_or("no token")?)?
                .trim()
                .to_string(),
        })
    };
    let conn = token_of("bench")?;
    let changed = Arc::new(Notify::new());
    let fleet = Fleet {
        seen: (0..o.proxies).map(|_| Arc::default()).collect(),
        changed: changed.clone(),
    };
    let limit = Duration::from_secs(600);

    // Full push: every proxy connects at once and gets all four types.
    let started = Instant::now();
    let mut opening = Vec::new();
    for (i, seen) in fleet.seen.iter().enumerate() {
        opening.push(tokio::spawn(open_proxy(
            conn.clone(),
            "bench",
            i,
            seen.clone(),
            changed.clone(),
        )));
    }
    for j in opening {
        j.await??;
    }
    fleet
        .wait(limit, |_, s| {
            SECTIONS.iter().all(|t| s.responses.contains_key(t.short))
        })
        .await
        .ok_or("full push timed out")?;
    let full_push_s = started.elapsed().as_secs_f64();
    let config_bytes_per_proxy = fleet.total_bytes() / o.proxies.max(1);

    // One endpoint change, repeated.
    let mut endpoint_ms = Vec::new();
    let mut eds_bytes = 0;
    for r in 0..o.changes {
        let before = fleet.count("EDS");
        let eds_before = fleet.bytes("EDS");
        let at = Instant::now();
        std::fs::write(
            o.work.join("config/svc-0.yaml"),
            service(0, o.endpoints, 9000 + r),
        )?;
        fleet
            .wait(limit, |i, s| {
                s.responses.get("EDS").copied().unwrap_or(0) > before[i]
            })
            .await
            .ok_or("endpoint change timed out")?;
        endpoint_ms.extend(fleet.latencies("EDS", at));
        eds_bytes += fleet.bytes("EDS") - eds_before;
    }
    let bytes_per_endpoint_change_per_proxy = eds_bytes / (o.changes.max(1) * o.proxies.max(1));

    // One VirtualService change, repeated.
    let mut vs_ms = Vec::new();
    for r in 0..o.changes.min(5) {
        let before = fleet.count("RDS");
        let at = Instant::now();
        std::fs::write(
            o.work.join("config/vs.yaml"),
            format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc-1, namespace: bench}}\nspec:\n  hosts: [svc-1.bench.svc.cluster.local]\n  http:\n  - timeout: {}s\n    route:\n    - destination: {{host: svc-1.bench.svc.cluster.local}}\n", r + 1),
        )?;
        fleet
            .wait(limit, |i, s| {
                s.responses.get("RDS").copied().unwrap_or(0) > before[i]
            })
            .await
            .ok_or("VirtualService change timed out")?;
        vs_ms.extend(fleet.latencies("RDS", at));
    }

    // One scoped proxy: its whole config.
    let scoped = Fleet {
        seen: vec![Arc::default()],
        changed: changed.clone(),
    };
    open_proxy(
        token_of("scoped")?,
        "scoped",
        0,
        scoped.seen[0].clone(),
        changed.clone(),
    )
    .await?;
    scoped
        .wait(limit, |_, s| {
            SECTIONS.iter().all(|t| s.responses.contains_key(t.short))
        })
        .await
        .ok_or("scoped push timed out")?;
    let config_bytes_per_proxy_scoped = scoped.total_bytes();

    let (rss_mb, cpu_s) = usage(pid);
    let out = serde_json::json!({
        "proxies": o.proxies,
        "services": o.services,
        "endpoints_per_service": o.endpoints,
        "full_push_s": full_push_s,
        "endpoint_change_p50_ms": percentile(&mut endpoint_ms.clone(), 0.5),
        "endpoint_change_p99_ms": percentile(&mut endpoint_ms, 0.99),
        "vs_change_p99_ms": percentile(&mut vs_ms, 0.99),
        "rss_mb": rss_mb,
        "cpu_s": cpu_s,
        "bytes_per_endpoint_change_per_proxy": bytes_per_endpoint_change_per_proxy,
        "config_bytes_per_proxy": config_bytes_per_proxy,
        "config_bytes_per_proxy_scoped": config_bytes_per_proxy_scoped,
        "debounce_ms": 10,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    drop(control);
    Ok(())
}
