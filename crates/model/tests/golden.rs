//! Golden files: Bookinfo (examples/bookinfo plus tests/fixtures) compiled for the ingress
//! gateway and for a sidecar in `default`. The JSON under tests/golden is the expected output;
//! after an intended change, rerun with `BLESS=1` and review the diff.

use std::path::{Path, PathBuf};

use api::types::mesh::MeshConfig;
use api::{Decoded, Resource};
use model::{compile, ProxyIdentity, Role};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(dirs: &[PathBuf]) -> Vec<Resource> {
    let mut files = Vec::new();
    for d in dirs {
        for e in std::fs::read_dir(d).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for d in api::load_str(&f.display().to_string(), &text) {
            match d {
                Decoded::Resource(r) => {
                    assert!(!r.validate().has_errors(), "{}: invalid", r.id());
                    out.push(*r);
                }
                Decoded::Other(_) => {}
                Decoded::Invalid(p) => panic!("{p:?}"),
            }
        }
    }
    out
}

fn bookinfo() -> Vec<Resource> {
    load(&[
        root().join("examples/bookinfo"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
    ])
}

fn check(name: &str, proxy: &ProxyIdentity) {
    let compiled = compile(&bookinfo(), &MeshConfig::istio_default(), proxy).unwrap();
    let warnings: Vec<String> = compiled.warnings.iter().map(|w| w.to_string()).collect();
    let actual = serde_json::to_string_pretty(&serde_json::json!({
        "warnings": warnings,
        "snapshot": compiled.snapshot,
    }))
    .unwrap()
        + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.json"));
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with BLESS=1 to create it)", path.display()));
    assert!(
        expected == actual,
        "{} differs from the compiled output (BLESS=1 to accept):\n{actual}",
        path.display()
    );
}

#[test]
fn bookinfo_ingress_gateway() {
    let mut proxy = ProxyIdentity::new(Role::Gateway, "istio-system");
    proxy.labels.insert("istio".into(), "ingressgateway".into());
    proxy.version = "golden".into();
    check("bookinfo-gateway", &proxy);
}

#[test]
fn bookinfo_sidecar_in_default() {
    let mut proxy = ProxyIdentity::new(Role::Sidecar, "default");
    proxy.labels.insert("app".into(), "productpage".into());
    proxy.version = "golden".into();
    check("bookinfo-sidecar", &proxy);
}

#[test]
fn compiling_twice_gives_the_same_snapshot_whatever_the_input_order() {
    let mut resources = bookinfo();
    let mut proxy = ProxyIdentity::new(Role::Sidecar, "default");
    proxy.version = "x".into();
    let a = compile(&resources, &MeshConfig::istio_default(), &proxy).unwrap();
    resources.reverse();
    let b = compile(&resources, &MeshConfig::istio_default(), &proxy).unwrap();
    assert_eq!(a, b);
}
