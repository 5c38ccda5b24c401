//! `bowline get KIND [NAME]`: the accepted resources of the running control plane, printed as
//! `kubectl get` prints them: a table with the columns Istio's CRDs declare (`kubectl get vs`
//! shows GATEWAYS and HOSTS), or the objects as YAML or JSON.
//!
//! AGE is the time since the resource's file was last written: the directory store keeps no
//! creation timestamp, so an edit resets it.

use std::process::ExitCode;

use anyhow::{bail, Result};
use api::Kind;
use http::Method;
use serde_json::{json, Value};

use super::client::{call_json, ControlPlaneArg};

#[derive(Clone, Copy, clap::ValueEnum)]
enum Output {
    Yaml,
    Json,
    /// The table plus ORIGIN, the file and line the resource was read from
    Wide,
}

#[derive(clap::Args)]
pub struct Args {
    /// Kind, as kubectl names it: virtualservice, virtualservices, vs, dr, gw, se, ap, pa, ra,
    /// svc, deploy, ns...
    kind: String,
    /// Only this resource
    name: Option<String>,
    /// Namespace
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// All namespaces
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output format (a table by default)
    #[arg(short, long, value_enum)]
    output: Option<Output>,
    #[command(flatten)]
    control_plane: ControlPlaneArg,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let Some(kind) = kind_of(&args.kind) else {
        bail!("the server doesn't have a resource type \"{}\"", args.kind);
    };
    let mut path = format!("/apis/get?kind={}", kind.name());
    if let Some(name) = &args.name {
        path.push_str(&format!("&name={}", control::server::percent_encode(name)));
    }
    if !args.all_namespaces {
        path.push_str(&format!(
            "&namespace={}",
            control::server::percent_encode(&args.namespace)
        ));
    }
    let answer = call_json(
        &args.control_plane.addr(),
        Method::GET,
        &path,
        String::new(),
    )?;
    let items = answer
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if items.is_empty() {
        if let Some(name) = &args.name {
            let group = match kind.group() {
                "" => String::new(),
                g => format!(".{g}"),
            };
            eprintln!(
                "Error from server (NotFound): {}{group} \"{name}\" not found",
                kind.plural()
            );
            return Ok(ExitCode::from(1));
        }
    }
    match args.output {
        Some(Output::Json) => {
            let doc = objects_doc(&items, args.name.is_some());
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Some(Output::Yaml) => {
            let doc = objects_doc(&items, args.name.is_some());
            let yaml = control::store::to_yaml(&doc);
            // kubectl prints one document without a leading separator.
            print!("{}", yaml.strip_prefix("---\n").unwrap_or(&yaml));
        }
        None | Some(Output::Wide) => {
            if items.is_empty() {
                if args.all_namespaces || kind == Kind::Namespace {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {} namespace.", args.namespace);
                }
            } else {
                let wide = matches!(args.output, Some(Output::Wide));
                print!("{}", table(kind, &items, args.all_namespaces, wide));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// kubectl's names for a kind: singular, plural, short name, or `plural.group`.
fn kind_of(name: &str) -> Option<Kind> {
    let name = name.to_ascii_lowercase();
    let (name, group) = match name.split_once('.') {
        Some((n, g)) => (n.to_string(), Some(g.to_string())),
        None => (name, None),
    };
    let short = match name.as_str() {
        "vs" => Some(Kind::VirtualService),
        "dr" => Some(Kind::DestinationRule),
        "gw" => Some(Kind::Gateway),
        "se" => Some(Kind::ServiceEntry),
        "we" => Some(Kind::WorkloadEntry),
        "wg" => Some(Kind::WorkloadGroup),
        "ap" => Some(Kind::AuthorizationPolicy),
        "pa" => Some(Kind::PeerAuthentication),
        "ra" => Some(Kind::RequestAuthentication),
        "svc" => Some(Kind::Service),
        "po" => Some(Kind::Pod),
        "deploy" => Some(Kind::Deployment),
        "ns" => Some(Kind::Namespace),
        "sa" => Some(Kind::ServiceAccount),
        "cm" => Some(Kind::ConfigMap),
        _ => None,
    };
    let kind = short.or_else(|| {
        Kind::ALL.into_iter().find(|k| {
            let singular = k.name().to_ascii_lowercase();
            name == singular || name == k.plural()
        })
    })?;
    match group {
        Some(g) if g != kind.group() => None,
        _ => Some(kind),
    }
}

/// One object by name prints alone; anything else as kubectl's `List`.
fn objects_doc(items: &[Value], by_name: bool) -> Value {
    let objects: Vec<Value> = items
        .iter()
        .map(|i| i.get("object").cloned().unwrap_or(Value::Null))
        .collect();
    match objects.as_slice() {
        [one] if by_name => one.clone(),
        _ => json!({"apiVersion": "v1", "kind": "List", "items": objects, "metadata": {}}),
    }
}

type Column = (&'static str, fn(&Value) -> String);

/// The columns between NAME and AGE, as Istio's CRDs and kubectl's built-in printers declare.
fn columns(kind: Kind) -> Vec<Column> {
    match kind {
        Kind::VirtualService => vec![
            ("GATEWAYS", |o| list(o, "/spec/gateways")),
            ("HOSTS", |o| list(o, "/spec/hosts")),
        ],
        Kind::DestinationRule => vec![("HOST", |o| field(o, "/spec/host"))],
        Kind::ServiceEntry => vec![
            ("HOSTS", |o| list(o, "/spec/hosts")),
            ("LOCATION", |o| field(o, "/spec/location")),
            ("RESOLUTION", |o| field(o, "/spec/resolution")),
        ],
        Kind::WorkloadEntry => vec![("ADDRESS", |o| field(o, "/spec/address"))],
        Kind::AuthorizationPolicy => vec![("ACTION", |o| field(o, "/spec/action"))],
        Kind::PeerAuthentication => vec![("MODE", |o| field(o, "/spec/mtls/mode"))],
        Kind::Service => vec![
            ("TYPE", |o| or(field(o, "/spec/type"), "ClusterIP")),
            ("CLUSTER-IP", |o| or(field(o, "/spec/clusterIP"), "<none>")),
            ("PORT(S)", service_ports),
        ],
        Kind::Namespace => vec![("STATUS", |_| "Active".to_string())],
        _ => Vec::new(),
    }
}

fn table(kind: Kind, items: &[Value], all_namespaces: bool, wide: bool) -> String {
    let extra = columns(kind);
    let mut header: Vec<&str> = Vec::new();
    if all_namespaces && kind != Kind::Namespace {
        header.push("NAMESPACE");
    }
    header.push("NAME");
    header.extend(extra.iter().map(|c| c.0));
    header.push("AGE");
    if wide {
        header.push("ORIGIN");
    }
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(ToString::to_string).collect()];
    for item in items {
        let o = item.get("object").unwrap_or(&Value::Null);
        let mut row = Vec::new();
        if all_namespaces && kind != Kind::Namespace {
            row.push(field(o, "/metadata/namespace"));
        }
        row.push(field(o, "/metadata/name"));
        row.extend(extra.iter().map(|c| (c.1)(o)));
        row.push(
            item.get("ageSeconds")
                .and_then(Value::as_u64)
                .map_or_else(|| "<unknown>".to_string(), age),
        );
        if wide {
            row.push(field(item, "/origin"));
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let last = row.len() - 1;
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 3;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

fn field(o: &Value, pointer: &str) -> String {
    match o.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

/// Arrays print as kubectl prints a JSONPath array column: `["a","b"]`.
fn list(o: &Value, pointer: &str) -> String {
    o.pointer(pointer)
        .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        .map(Value::to_string)
        .unwrap_or_default()
}

fn or(s: String, default: &str) -> String {
    if s.is_empty() {
        default.to_string()
    } else {
        s
    }
}

fn service_ports(o: &Value) -> String {
    let ports = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let shown: Vec<String> = ports
        .iter()
        .map(|p| {
            let port = field(p, "/port");
            let proto = or(field(p, "/protocol"), "TCP");
            format!("{port}/{proto}")
        })
        .collect();
    or(shown.join(","), "<none>")
}

/// kubectl's short human durations: `45s`, `3m20s`, `42m`, `5h10m`, `20h`, `3d4h`, `12d`.
fn age(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{m}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 => format!("{h}h{}m", m % 60),
        s if s < 48 * 3600 => format!("{h}h"),
        s if s < 8 * 86_400 => format!("{d}d{}h", h % 24),
        _ => format!("{d}d"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_kind_names() {
        for (name, kind) in [
            ("vs", Kind::VirtualService),
            ("virtualservice", Kind::VirtualService),
            ("VirtualServices", Kind::VirtualService),
            ("virtualservices.networking.istio.io", Kind::VirtualService),
            ("dr", Kind::DestinationRule),
            ("gw", Kind::Gateway),
            ("se", Kind::ServiceEntry),
            ("sidecar", Kind::Sidecar),
            ("we", Kind::WorkloadEntry),
            ("wg", Kind::WorkloadGroup),
            ("ap", Kind::AuthorizationPolicy),
            ("authorizationpolicies", Kind::AuthorizationPolicy),
            ("pa", Kind::PeerAuthentication),
            ("ra", Kind::RequestAuthentication),
            ("telemetry", Kind::Telemetry),
            ("envoyfilter", Kind::EnvoyFilter),
            ("svc", Kind::Service),
            ("service", Kind::Service),
            ("pod", Kind::Pod),
            ("deploy", Kind::Deployment),
            ("deployment", Kind::Deployment),
            ("ns", Kind::Namespace),
            ("namespaces", Kind::Namespace),
        ] {
            assert_eq!(kind_of(name), Some(kind), "{name}");
        }
        assert_eq!(kind_of("virtualservices.security.istio.io"), None);
        assert_eq!(kind_of("widget"), None);
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(200), "3m20s");
        assert_eq!(age(42 * 60), "42m");
        assert_eq!(age(5 * 3600 + 600), "5h10m");
        assert_eq!(age(20 * 3600), "20h");
        assert_eq!(age(3 * 86_400 + 4 * 3600), "3d4h");
        assert_eq!(age(12 * 86_400), "12d");
    }

    #[test]
    fn virtual_service_table() {
        let items = vec![json!({
            "object": {"metadata": {"name": "reviews", "namespace": "default"},
                       "spec": {"hosts": ["reviews"], "gateways": ["gw"]}},
            "origin": "d/vs.yaml:1",
            "ageSeconds": 7,
        })];
        let t = table(Kind::VirtualService, &items, false, false);
        assert_eq!(
            t,
            "NAME      GATEWAYS   HOSTS         AGE\nreviews   [\"gw\"]     [\"reviews\"]   7s\n"
        );
        let wide = table(Kind::VirtualService, &items, true, true);
        assert!(wide.starts_with("NAMESPACE   NAME"), "{wide}");
        assert!(wide.contains("d/vs.yaml:1"), "{wide}");
    }
}
