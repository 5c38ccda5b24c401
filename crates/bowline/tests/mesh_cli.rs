//! `bowline up`, `run`, `exec` and `demo` as a user drives them: pods come and go with their
//! registrations, exec passes exit codes through, the DNS proxy answers mesh names, a stopped
//! mesh leaves nothing behind, and a mesh killed outright is cleaned up by the next `up`.
//! Root only (see `tasks_support`).

mod tasks_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use tasks_support::*;

fn netns_list() -> String {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip")
            .stdout,
    )
    .to_string()
}

fn bridge_exists() -> bool {
    Command::new("ip")
        .args(["link", "show", "bowline0"])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn up_run_exec_and_a_clean_stop() {
    if !can_run() {
        return;
    }
    let mut mesh = Mesh::up();
    mesh.run_app("default", "httpbin", "httpbin", "v1", "8000/http", true);
    mesh.run_sleep("default", true);
    mesh.run_app("legacy", "httpbin", "httpbin", "v1", "8000/http", false);

    // Registered through the control plane: the Pod with its address and tlsMode, the Service.
    let pods = bowline(&["get", "pods", "-A"]);
    let pods = text(&pods);
    assert!(pods.contains("httpbin") && pods.contains("sleep"), "{pods}");
    let svc = text(&bowline(&[
        "get", "services", "httpbin", "-n", "default", "-o", "yaml",
    ]));
    assert!(svc.contains("app: httpbin"), "{svc}");

    // exec: exit codes pass through; the pod's own view of the network.
    assert_eq!(
        bowline(&["exec", "sleep", "--", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    let addr = text(&bowline(&[
        "exec", "sleep", "--", "ip", "-4", "-o", "addr", "show", "eth0",
    ]));
    assert!(addr.contains("10.88."), "{addr}");
    assert!(!bowline(&["exec", "nope", "--", "true"]).status.success());

    // The DNS proxy: Kubernetes names to the service VIP (10.96/16), other namespaces by
    // `<svc>.<ns>`; a pod without a sidecar resolves through the bridge relay to endpoints.
    let vip = text(&bowline(&[
        "exec", "sleep", "--", "getent", "hosts", "httpbin",
    ]));
    assert!(vip.starts_with("10.96."), "{vip}");
    let fqdn = text(&bowline(&[
        "exec",
        "sleep",
        "--",
        "getent",
        "hosts",
        "httpbin.default.svc.cluster.local",
    ]));
    assert_eq!(
        fqdn.split_whitespace().next(),
        vip.split_whitespace().next()
    );
    let other = text(&bowline(&[
        "exec",
        "sleep",
        "--",
        "getent",
        "hosts",
        "httpbin.legacy",
    ]));
    assert!(other.starts_with("10.96."), "{other}");
    let legacy = text(&bowline(&[
        "exec",
        "httpbin",
        "-n",
        "legacy",
        "--",
        "getent",
        "hosts",
        "httpbin.default",
    ]));
    assert!(
        legacy.starts_with("10.88."),
        "a pod address for a pod without a sidecar: {legacy}"
    );

    // Traffic through the sidecars.
    eventually("sleep reaches httpbin", Duration::from_secs(20), || {
        curl_in("default", "sleep", "http://httpbin:8000/get", &[]).status == 200
    });
    assert_eq!(
        curl_in("default", "sleep", "http://httpbin.legacy:8000/get", &[]).status,
        200
    );

    // Every proxy follows the control plane: the gateway and both sidecars are connected with
    // every type acknowledged; the pod without a sidecar is not a proxy.
    let status = text(&bowline(&["proxy-status"]));
    for proxy in [
        "istio-ingressgateway.istio-system",
        "httpbin.default",
        "sleep.default",
    ] {
        let row = status
            .lines()
            .find(|l| l.starts_with(proxy))
            .unwrap_or_else(|| panic!("{proxy} missing from proxy-status:\n{status}"));
        let states: Vec<&str> = row.split_whitespace().skip(2).take(6).collect();
        assert!(
            states.len() == 6 && states.iter().all(|s| *s == "SYNCED"),
            "{proxy} not synced:\n{status}"
        );
    }
    assert!(!status.contains("httpbin.legacy"), "{status}");
    // The sidecar's own copy of its token is the proxy uid's alone; the control plane's state
    // (CA key, tokens) stays root's.
    use std::os::unix::fs::MetadataExt;
    let token = std::fs::metadata("/run/bowline/mesh/secrets/default.sleep/istio-token")
        .expect("the sleep sidecar's token");
    assert_eq!((token.uid(), token.mode() & 0o777), (1337, 0o600));
    let state = std::fs::metadata("/run/bowline/mesh/control").expect("the control plane state");
    assert_eq!(state.uid(), 0);

    // A second run of the same pod name is refused while the first owns it.
    let dup = bowline(&["run", "--name", "sleep", "--", "sleep", "1"]);
    assert!(!dup.status.success());
    assert!(text(&dup).contains("already exists"), "{}", text(&dup));

    drop(mesh);
    assert_eq!(
        netns_list().matches("bowline-").count(),
        0,
        "{}",
        netns_list()
    );
    assert!(!bridge_exists(), "the bridge outlived the mesh");
    assert!(!std::path::Path::new("/run/bowline/mesh/mesh.json").exists());
    let no_mesh = bowline(&["run", "--name", "x", "--", "true"]);
    assert!(
        text(&no_mesh).contains("no mesh is running"),
        "{}",
        text(&no_mesh)
    );
}

#[test]
fn a_killed_mesh_is_cleaned_up_by_the_next_up() {
    if !can_run() {
        return;
    }
    let mut first = Mesh::up();
    first.run_sleep("default", true);
    first.kill_hard();
    assert!(netns_list().contains("bowline-default.sleep"));
    drop(first);
    // The lock was released with the dead process; the next mesh starts and owns the ports.
    let mut second = Mesh::up();
    assert!(
        !netns_list().contains("bowline-default.sleep"),
        "{}",
        netns_list()
    );
    second.run_sleep("default", true);
    assert_eq!(
        bowline(&["exec", "sleep", "--", "true"]).status.code(),
        Some(0)
    );
}

#[test]
fn without_root_one_line_says_what_to_do() {
    if !can_run() {
        return;
    }
    // As the proxy's uid: no CAP_NET_ADMIN. Nothing is touched, so no mesh lock is needed.
    for args in [
        &["up"][..],
        &["run", "--name", "x", "--", "true"],
        &["exec", "x", "--", "true"],
    ] {
        let out = Command::new("setpriv")
            .args(["--reuid=1337", "--regid=1337", "--clear-groups", BOWLINE])
            .args(args)
            .output()
            .expect("setpriv");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("needs root") && err.contains("sudo"),
            "{args:?}: {err}"
        );
    }
}

fn children() -> Vec<i32> {
    let text = std::fs::read_to_string("/run/bowline/mesh/mesh.json").unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["children"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_i64())
                .map(|p| p as i32)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_crashed_control_plane_or_gateway_is_started_again() {
    if !can_run() {
        return;
    }
    let _mesh = Mesh::up();
    let before = children();
    assert_eq!(before.len(), 2, "{before:?}");
    for (i, what) in [(0, "control plane"), (1, "gateway")] {
        let old = children()[i];
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(old),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
        eventually(&format!("a new {what}"), Duration::from_secs(20), || {
            let now = children();
            now.len() == 2
                && now[i] != old
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(now[i]), None).is_ok()
        });
    }
    eventually(
        "the control plane answers again",
        Duration::from_secs(20),
        || bowline(&["get", "pods", "-A"]).status.success(),
    );
    // The new gateway follows the new control plane.
    eventually(
        "the gateway is synced again",
        Duration::from_secs(20),
        || {
            let status = text(&bowline(&["proxy-status"]));
            status
                .lines()
                .any(|l| l.starts_with("istio-ingressgateway.istio-system") && l.contains("SYNCED"))
        },
    );
}
