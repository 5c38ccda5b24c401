//! `bowline proxy-status [PROXY]`: istioctl's proxy-status, from the control plane's
//! `/debug/syncz`. One row per connected proxy: each type SYNCED (the last response sent was
//! acknowledged), NOT SENT, or STALE (in flight, or rejected: the NACK's reason is printed
//! under the table).

use std::process::ExitCode;

use anyhow::{Context, Result};
use http::Method;
use xds::TypeSync;

use super::client::{call_json, ControlPlaneArg};

#[derive(clap::Args)]
pub struct Args {
    /// Only this proxy (its NAME as printed, `pod.namespace`, or its node id); prints every
    /// type's versions and nonces
    proxy: Option<String>,
    #[command(flatten)]
    control_plane: ControlPlaneArg,
}

/// Types in istioctl's column order, then any others by name.
const ORDER: [&str; 4] = ["CDS", "LDS", "EDS", "RDS"];

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    proxy: String,
    cluster_id: String,
    control_plane: String,
    connected_at: u64,
    types: std::collections::BTreeMap<String, Type>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Type {
    sent_version: String,
    sent_nonce: String,
    acked_version: String,
    acked_nonce: String,
    nack: Option<String>,
}

impl Type {
    fn state(&self) -> &'static str {
        // The same rule as the server's, on the same fields.
        TypeSync {
            sent_nonce: self.sent_nonce.clone(),
            acked_nonce: self.acked_nonce.clone(),
            nack: self.nack.clone(),
            ..Default::default()
        }
        .state()
    }
}

/// `pod.namespace` from Istio's node id `TYPE~IP~POD.NS~DOMAIN`.
fn name(id: &str) -> &str {
    id.split('~').nth(2).unwrap_or(id)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let addr = args.control_plane.addr();
    let value = call_json(&addr, Method::GET, "/debug/syncz", String::new())?;
    let mut rows: Vec<Row> = serde_json::from_value(value)
        .context("the control plane's /debug/syncz is not a list of proxies")?;
    rows.sort_by(|a, b| name(&a.proxy).cmp(name(&b.proxy)));
    if let Some(wanted) = &args.proxy {
        rows.retain(|r| r.proxy == *wanted || name(&r.proxy) == wanted);
        let Some(row) = rows.first() else {
            eprintln!("error: no connected proxy named {wanted}");
            return Ok(ExitCode::from(1));
        };
        println!(
            "Proxy {} ({}) on {}",
            name(&row.proxy),
            row.proxy,
            row.control_plane
        );
        for (short, t) in ordered(&row.types) {
            println!(
                "  {short:<5} {:<9} sent {} (nonce {}), acked {} (nonce {}){}",
                t.state(),
                dash(&t.sent_version),
                dash(&t.sent_nonce),
                dash(&t.acked_version),
                dash(&t.acked_nonce),
                t.nack
                    .as_ref()
                    .map(|n| format!("\n        NACK: {n}"))
                    .unwrap_or_default()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut types: Vec<String> = ORDER.iter().map(|s| s.to_string()).collect();
    for r in &rows {
        for t in r.types.keys() {
            if !types.contains(t) {
                types.push(t.clone());
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut table = vec![{
        let mut h = vec!["NAME".to_string(), "CLUSTER".into()];
        h.extend(types.iter().cloned());
        h.extend(["ISTIOD".into(), "VERSION".into(), "AGE".into()]);
        h
    }];
    let mut nacks = Vec::new();
    for r in &rows {
        let mut line = vec![name(&r.proxy).to_string(), r.cluster_id.clone()];
        for t in &types {
            let entry = r.types.get(t);
            line.push(entry.map_or("NOT SENT", Type::state).to_string());
            if let Some(reason) = entry.and_then(|e| e.nack.as_ref()) {
                nacks.push(format!("{} {t} STALE (NACK): {reason}", name(&r.proxy)));
            }
        }
        let version = r
            .types
            .values()
            .map(|t| t.acked_version.as_str())
            .max_by_key(|v| v.parse::<u64>().unwrap_or(0))
            .unwrap_or("");
        line.push(r.control_plane.clone());
        line.push(dash(version).to_string());
        line.push(age(now.saturating_sub(r.connected_at)));
        table.push(line);
    }
    print_table(&table);
    for n in nacks {
        println!("{n}");
    }
    Ok(ExitCode::SUCCESS)
}

fn ordered(types: &std::collections::BTreeMap<String, Type>) -> Vec<(&str, &Type)> {
    let mut out: Vec<(&str, &Type)> = ORDER
        .iter()
        .filter_map(|s| types.get(*s).map(|t| (*s, t)))
        .collect();
    out.extend(
        types
            .iter()
            .filter(|(k, _)| !ORDER.contains(&k.as_str()))
            .map(|(k, t)| (k.as_str(), t)),
    );
    out
}

fn dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// kubectl's ages: `45s`, `3m12s`, `2h5m`, `4d`.
fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d", s / 86400),
    }
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}
