//! Istio's sample workloads as pods of the local mesh, with the samples' names, labels, service
//! accounts and ports: Bookinfo (productpage, details, reviews v1-v3, ratings; all on 9080),
//! httpbin (8000), tcp-echo v1/v2 (9000 and 9001, echoing with the words `one` and `two`) and
//! the `sleep` client (which only sleeps: `bowline exec sleep -- curl ...` runs curl in its pod).

use std::path::Path;

use crate::pod::{PodSpec, PortSpec};

/// Which samples `bowline demo` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sample {
    Bookinfo,
    Httpbin,
    TcpEcho,
    All,
}

impl std::str::FromStr for Sample {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bookinfo" => Ok(Sample::Bookinfo),
            "httpbin" => Ok(Sample::Httpbin),
            "tcp-echo" => Ok(Sample::TcpEcho),
            "all" => Ok(Sample::All),
            other => Err(format!(
                "unknown sample `{other}`: bookinfo, httpbin, tcp-echo or all"
            )),
        }
    }
}

impl Sample {
    fn includes(self, other: Sample) -> bool {
        self == other || self == Sample::All
    }

    /// The pods, in start order (backends before their callers), `sleep` last.
    pub fn pods(self, bowline: &Path) -> Vec<PodSpec> {
        let mut out = Vec::new();
        if self.includes(Sample::Bookinfo) {
            out.push(app(
                bowline,
                "details",
                "v1",
                "bookinfo-details",
                9080,
                "http",
            ));
            out.push(app(
                bowline,
                "ratings",
                "v1",
                "bookinfo-ratings",
                9080,
                "http",
            ));
            for v in ["v1", "v2", "v3"] {
                out.push(app(bowline, "reviews", v, "bookinfo-reviews", 9080, "http"));
            }
            out.push(app(
                bowline,
                "productpage",
                "v1",
                "bookinfo-productpage",
                9080,
                "http",
            ));
        }
        if self.includes(Sample::Httpbin) {
            out.push(app(bowline, "httpbin", "v1", "httpbin", 8000, "http"));
        }
        if self.includes(Sample::TcpEcho) {
            for (v, word) in [("v1", "one"), ("v2", "two")] {
                let mut p = app(bowline, "tcp-echo", v, "default", 9000, "tcp");
                p.ports.push(PortSpec {
                    port: 9001,
                    name: "tcp-other".into(),
                });
                p.command.extend(["--port".into(), "9001".into()]);
                p.command.extend(["--word".into(), word.into()]);
                out.push(p);
            }
        }
        out.push(sleep());
        out
    }

    /// Our copies of the samples' base configuration (file name, YAML), built into the binary
    /// so `bowline demo` runs from any directory.
    pub fn base_config(self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if self.includes(Sample::Bookinfo) {
            out.push((
                "examples/mesh/bookinfo-gateway.yaml",
                include_str!("../../../examples/mesh/bookinfo-gateway.yaml"),
            ));
            out.push((
                "examples/mesh/destination-rule-all.yaml",
                include_str!("../../../examples/mesh/destination-rule-all.yaml"),
            ));
        }
        out
    }
}

/// A sample app as `bowline demo-app`, pod `<app>-<version>` in `default`.
fn app(bowline: &Path, name: &str, version: &str, sa: &str, port: u16, port_name: &str) -> PodSpec {
    let command = vec![
        bowline.display().to_string(),
        "demo-app".into(),
        name.into(),
        "--version".into(),
        version.into(),
        "--port".into(),
        port.to_string(),
    ];
    let mut p = PodSpec::new(&format!("{name}-{version}"), "default", command);
    p.labels.insert("app".into(), name.into());
    p.labels.insert("version".into(), version.into());
    p.service_account = sa.into();
    p.ports.push(PortSpec {
        port,
        name: port_name.into(),
    });
    // The demo's terminal is for the mesh's own lines; RUST_LOG still wins.
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    p.env.push(("RUST_LOG".into(), level));
    p
}

/// Istio's `sleep` client: a pod whose command only sleeps.
pub fn sleep() -> PodSpec {
    let mut p = PodSpec::new("sleep", "default", vec!["sleep".into(), "infinity".into()]);
    p.labels.insert("app".into(), "sleep".into());
    p.service_account = "sleep".into();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookinfo_has_the_samples_names_accounts_and_ports() {
        let pods = Sample::Bookinfo.pods(Path::new("/b"));
        let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "details-v1",
                "ratings-v1",
                "reviews-v1",
                "reviews-v2",
                "reviews-v3",
                "productpage-v1",
                "sleep"
            ]
        );
        let r3 = &pods[4];
        assert_eq!(r3.service_account, "bookinfo-reviews");
        assert_eq!(r3.labels["version"], "v3");
        assert_eq!(
            r3.command.join(" "),
            "/b demo-app reviews --version v3 --port 9080"
        );
        assert!(pods.iter().all(|p| p.sidecar));
    }

    #[test]
    fn tcp_echo_v2_says_two_on_both_ports() {
        let pods = Sample::TcpEcho.pods(Path::new("/b"));
        let v2 = pods.iter().find(|p| p.name == "tcp-echo-v2").unwrap();
        assert_eq!(
            v2.command.join(" "),
            "/b demo-app tcp-echo --version v2 --port 9000 --port 9001 --word two"
        );
        assert_eq!(v2.ports.len(), 2);
    }
}
