//! istio.io's "Mutual TLS Migration" task: httpbin and sleep in foo and bar (with sidecars) and
//! in legacy (without). Everything reaches everything in PERMISSIVE mode; STRICT in foo refuses
//! legacy's plain text to foo (curl exit 56, connection reset) and nothing else; STRICT for the
//! whole mesh refuses legacy to foo and bar.

mod tasks_support;

use std::time::Duration;

use tasks_support::*;

const NAMESPACES: [&str; 3] = ["foo", "bar", "legacy"];

/// curl's exit code (0 when the answer was 200) for every client → server pair.
fn matrix() -> Vec<(String, String, i32)> {
    let mut out = Vec::new();
    for from in NAMESPACES {
        for to in NAMESPACES {
            let c = curl_in(from, "sleep", &format!("http://httpbin.{to}:8000/ip"), &[]);
            let code = if c.exit == 0 && c.status == 200 {
                0
            } else if c.exit == 0 {
                -(c.status as i32)
            } else {
                c.exit
            };
            out.push((from.to_string(), to.to_string(), code));
        }
    }
    out
}

fn expect(refused: &[(&str, &str)]) -> Vec<(String, String, i32)> {
    let mut out = Vec::new();
    for from in NAMESPACES {
        for to in NAMESPACES {
            let code = if refused.contains(&(from, to)) { 56 } else { 0 };
            out.push((from.to_string(), to.to_string(), code));
        }
    }
    out
}

#[test]
fn mtls_migration_permissive_then_strict() {
    if !can_run() {
        return;
    }
    let mut mesh = Mesh::up();
    for ns in NAMESPACES {
        let sidecar = ns != "legacy";
        mesh.run_app(ns, "httpbin", "httpbin", "v1", "8000/http", sidecar);
        mesh.run_sleep(ns, sidecar);
    }
    let all_ok = expect(&[]);
    eventually("every pair answers 200", Duration::from_secs(30), || {
        matrix() == all_ok
    });

    mesh.apply(&task("peer-authentication-foo-strict.yaml"));
    let foo_strict = expect(&[("legacy", "foo")]);
    eventually("legacy to foo refused", Duration::from_secs(30), || {
        matrix() == foo_strict
    });

    mesh.apply(&task("peer-authentication-mesh-strict.yaml"));
    let mesh_strict = expect(&[("legacy", "foo"), ("legacy", "bar")]);
    eventually(
        "legacy to foo and bar refused",
        Duration::from_secs(30),
        || {
            let m = matrix();
            if m != mesh_strict {
                eprintln!("{m:?}");
            }
            m == mesh_strict
        },
    );
}
