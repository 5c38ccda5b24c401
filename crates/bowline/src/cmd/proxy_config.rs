//! `bowline proxy-config`: what a running proxy is serving, read from its admin API, printed as
//! `istioctl proxy-config` prints Envoy's (tables by default, `-o json|yaml` for the data).
//! `log` reads or changes the proxy's log levels (`--level http:debug,tcp:info` or `--level
//! debug`).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use model::{ClusterName, ListenerKind, ProxySnapshot, RouteAction, StringMatch};
use std::process::ExitCode;

const DEFAULT_ADMIN: &str = "127.0.0.1:15000";
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    Listeners,
    Routes,
    Clusters,
    Endpoints,
    Secret,
    All,
    Log,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Short,
    Json,
    Yaml,
}

#[derive(clap::Args)]
pub struct Args {
    /// What to show
    #[arg(value_enum)]
    what: What,
    /// The proxy: its admin address (`127.0.0.1:15000`); pod names need the local mesh
    #[arg(value_name = "PROXY")]
    proxy: Option<String>,
    /// The proxy's admin address (overrides PROXY)
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Output format: a table (short), or the configuration as JSON or YAML
    #[arg(short = 'o', long, value_enum, default_value = "short")]
    output: Output,
    /// With `log`: `LEVEL` for every logger, or `logger:LEVEL[,logger:LEVEL...]`
    #[arg(long)]
    level: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let addr = admin_addr(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        if args.what == What::Log {
            return log(&addr, args.level.as_deref()).await;
        }
        if args.level.is_some() {
            bail!("--level goes with `proxy-config log`");
        }
        if args.what == What::Secret {
            let (status, body) = call(&addr, Method::GET, "/certs").await?;
            if status == StatusCode::NOT_FOUND {
                println!("the proxy at {addr} has no certificates endpoint (no mTLS yet)");
                return Ok(ExitCode::SUCCESS);
            }
            let value: serde_json::Value = serde_json::from_slice(&body)
                .with_context(|| format!("{addr}/certs is not JSON"))?;
            match args.output {
                Output::Yaml => print!("{}", super::analyze::to_yaml(&value)),
                _ => println!("{}", serde_json::to_string_pretty(&value)?),
            }
            return Ok(ExitCode::SUCCESS);
        }
        let (status, body) = call(&addr, Method::GET, "/config_dump").await?;
        if !status.is_success() {
            bail!("{addr}/config_dump answered {status}");
        }
        let snapshot: ProxySnapshot = serde_json::from_slice(&body)
            .with_context(|| format!("{addr}/config_dump is not a proxy snapshot"))?;
        print!("{}", render(&snapshot, args.what, args.output)?);
        Ok(ExitCode::SUCCESS)
    })
}

fn admin_addr(args: &Args) -> Result<String> {
    let raw = args
        .admin
        .clone()
        .or_else(|| args.proxy.clone())
        .unwrap_or_else(|| DEFAULT_ADMIN.to_string());
    let raw = raw.trim_start_matches("http://").trim_end_matches('/');
    if raw.parse::<std::net::SocketAddr>().is_ok()
        || raw
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        return Ok(raw.to_string());
    }
    bail!("`{raw}` is not an admin address (host:port); pod names need the local mesh, use --admin ADDR")
}

/// The table or document for `what`.
pub fn render(s: &ProxySnapshot, what: What, output: Output) -> Result<String> {
    if output != Output::Short {
        let value = match what {
            What::Listeners => serde_json::to_value(&s.listeners)?,
            What::Routes => serde_json::to_value(&s.route_tables)?,
            What::Clusters | What::Endpoints => serde_json::to_value(&s.clusters)?,
            _ => serde_json::to_value(s)?,
        };
        return Ok(match output {
            Output::Yaml => super::analyze::to_yaml(&value),
            _ => format!("{}\n", serde_json::to_string_pretty(&value)?),
        });
    }
    Ok(match what {
        What::Listeners => listeners(s),
        What::Routes => routes(s),
        What::Clusters => clusters(s),
        What::Endpoints => endpoints(s),
        _ => [listeners(s), routes(s), clusters(s), endpoints(s)].join("\n"),
    })
}

/// Columns padded to their widest cell, two spaces apart, as istioctl's tables.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                let _ = write!(out, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

fn weighted(c: &[model::WeightedCluster]) -> String {
    match c {
        [one] => format!("Cluster: {}", one.cluster),
        many => format!(
            "WeightedClusters: {}",
            many.iter()
                .map(|c| format!("{}({})", c.cluster, c.weight))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn listeners(s: &ProxySnapshot) -> String {
    let mut rows = Vec::new();
    for l in &s.listeners {
        let tls = match &l.tls {
            Some(t) if t.mode.terminates() => format!("; TLS {:?}", t.mode),
            _ => String::new(),
        };
        let (m, d) = match &l.kind {
            ListenerKind::Http { route_table } => {
                ("ALL".to_string(), format!("Route: {route_table}"))
            }
            ListenerKind::Http2 { route_table } => {
                ("App: h2c".into(), format!("Route: {route_table}"))
            }
            ListenerKind::Tcp { clusters } => ("ALL".into(), weighted(clusters)),
            ListenerKind::AutoSniff {
                route_table,
                tcp_clusters,
            } => {
                rows.push(vec![
                    l.address.to_string(),
                    l.port.to_string(),
                    "Trans: raw_buffer; App: http/1.1,h2c".into(),
                    format!("Route: {route_table}"),
                ]);
                ("ALL".into(), weighted(tcp_clusters))
            }
            ListenerKind::OutboundCapture { chains, fallback }
            | ListenerKind::InboundCapture {
                chains, fallback, ..
            } => {
                // One row per chain, as istioctl lists the filter chains of Istio's virtual
                // listeners; the listener's own row is where unmatched connections go.
                for c in chains {
                    let dst = match c.address {
                        Some(a) => format!("{a}:{}", c.port),
                        None => format!("0.0.0.0:{}", c.port),
                    };
                    let to = match &c.kind {
                        ListenerKind::Tcp { clusters } => weighted(clusters),
                        other => match other.route_table() {
                            Some(t) => format!("Route: {t}"),
                            None => "-".into(),
                        },
                    };
                    rows.push(vec![
                        l.address.to_string(),
                        l.port.to_string(),
                        format!("Dst: {dst}; mTLS: {:?}", c.mtls),
                        to,
                    ]);
                }
                ("ALL".into(), weighted(fallback))
            }
            ListenerKind::TlsPassthrough { routes } => {
                for r in routes.iter().take(routes.len().saturating_sub(1)) {
                    rows.push(vec![
                        l.address.to_string(),
                        l.port.to_string(),
                        sni(&r.sni_hosts),
                        weighted(&r.clusters),
                    ]);
                }
                match routes.last() {
                    Some(r) => (sni(&r.sni_hosts), weighted(&r.clusters)),
                    None => ("ALL".into(), "none".into()),
                }
            }
        };
        rows.push(vec![
            l.address.to_string(),
            l.port.to_string(),
            format!("{m}{tls}"),
            d,
        ]);
    }
    table(&["ADDRESSES", "PORT", "MATCH", "DESTINATION"], rows)
}

fn sni(hosts: &[String]) -> String {
    if hosts.is_empty() {
        "ALL".into()
    } else {
        format!("SNI: {}", hosts.join(","))
    }
}

fn routes(s: &ProxySnapshot) -> String {
    let mut rows = Vec::new();
    for t in &s.route_tables {
        for vh in &t.virtual_hosts {
            let domains = match vh.domains.as_slice() {
                [one] => one.clone(),
                [first, rest @ ..] => format!("{first} + {} more...", rest.len()),
                [] => String::new(),
            };
            for r in &vh.routes {
                let path = match r.matches.first().and_then(|m| m.path.as_ref()) {
                    _ if r.matches.is_empty() => "/*".to_string(),
                    Some(StringMatch::Prefix(p)) => format!("{p}*"),
                    Some(StringMatch::Exact(p)) => p.clone(),
                    Some(StringMatch::Regex(p)) => format!("~{p}"),
                    None => "/*".to_string(),
                };
                let extra = if r.matches.len() > 1 {
                    format!(" (+{} more)", r.matches.len() - 1)
                } else {
                    String::new()
                };
                let action = match &r.action {
                    RouteAction::Forward(f) => weighted(&f.clusters),
                    RouteAction::Redirect(_) => "Redirect".into(),
                    RouteAction::DirectResponse(d) => format!("DirectResponse: {}", d.status),
                };
                rows.push(vec![
                    t.name.clone(),
                    vh.name.clone(),
                    domains.clone(),
                    format!("{path}{extra}"),
                    r.name.clone(),
                    action,
                ]);
            }
        }
    }
    table(
        &[
            "NAME",
            "VHOST NAME",
            "DOMAINS",
            "MATCH",
            "ROUTE",
            "DESTINATION",
        ],
        rows,
    )
}

fn clusters(s: &ProxySnapshot) -> String {
    let rows = s
        .clusters
        .iter()
        .map(|c| match c.name.parse::<ClusterName>() {
            Ok(n) => vec![
                n.host,
                n.port.to_string(),
                if n.subset.is_empty() {
                    "-".into()
                } else {
                    n.subset
                },
                format!("{:?}", n.direction).to_ascii_lowercase(),
                "EDS".into(),
                c.endpoints.len().to_string(),
            ],
            Err(_) => vec![
                c.name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "STATIC".into(),
                c.endpoints.len().to_string(),
            ],
        })
        .collect();
    table(
        &[
            "SERVICE FQDN",
            "PORT",
            "SUBSET",
            "DIRECTION",
            "TYPE",
            "ENDPOINTS",
        ],
        rows,
    )
}

fn endpoints(s: &ProxySnapshot) -> String {
    let mut rows = Vec::new();
    for c in &s.clusters {
        for e in &c.endpoints {
            rows.push(vec![
                std::net::SocketAddr::new(e.address, e.port).to_string(),
                format!("{:?}", e.health).to_ascii_uppercase(),
                e.weight.to_string(),
                c.name.clone(),
            ]);
        }
    }
    table(&["ENDPOINT", "STATUS", "WEIGHT", "CLUSTER"], rows)
}

/// Shows the levels, or sets them first.
async fn log(addr: &str, level: Option<&str>) -> Result<ExitCode> {
    let path = match level {
        None => "/logging".to_string(),
        Some(spec) => {
            let mut q = Vec::new();
            for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.split_once(':') {
                    Some((logger, lvl)) => q.push(format!("{logger}={lvl}")),
                    None => q.push(format!("level={part}")),
                }
            }
            if q.is_empty() {
                bail!("--level needs LEVEL or logger:LEVEL");
            }
            format!("/logging?{}", q.join("&"))
        }
    };
    let method = if level.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    let (status, body) = call(addr, method, &path).await?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        bail!("{addr}{path} answered {status}: {}", text.trim());
    }
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

async fn call(addr: &str, method: Method, path: &str) -> Result<(StatusCode, Bytes)> {
    let fut = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot reach the proxy's admin API at {addr}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("talking to the proxy at {addr}"))?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, addr)
            .body(Full::new(Bytes::new()))
            .context("building the request")?;
        let resp = sender
            .send_request(req)
            .await
            .with_context(|| format!("talking to the proxy at {addr}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer from {addr}"))?
            .to_bytes();
        Ok::<_, anyhow::Error>((status, body))
    };
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => bail!(
            "the proxy at {addr} did not answer within {}s",
            TIMEOUT.as_secs()
        ),
    }
}
