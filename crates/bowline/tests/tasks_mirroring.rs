//! istio.io's "Mirroring" task: httpbin v1 and v2, all traffic to v1, then each request also
//! mirrored to v2 (which logs it; its answers are dropped).

mod tasks_support;

use std::time::Duration;

use tasks_support::*;

fn served(log: &str, path: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("served") && l.contains(path))
        .count()
}

#[test]
fn mirroring_httpbin_v1_to_v2() {
    if !can_run() {
        return;
    }
    let mut mesh = Mesh::up();
    mesh.run_app("default", "httpbin-v1", "httpbin", "v1", "8000/http", true);
    mesh.run_app("default", "httpbin-v2", "httpbin", "v2", "8000/http", true);
    mesh.run_sleep("default", true);
    mesh.apply(&task("httpbin-mirror.yaml"));
    let get = |path: &str| {
        curl_in(
            "default",
            "sleep",
            &format!("http://httpbin:8000{path}"),
            &[],
        )
    };
    eventually("requests mirrored to v2", Duration::from_secs(20), || {
        get("/headers").status == 200 && served(&mesh.log("default", "httpbin-v2"), "/headers") > 0
    });
    // Every request now reaches v1 and a copy reaches v2.
    let (v1, v2) = (
        served(&mesh.log("default", "httpbin-v1"), "/uuid"),
        served(&mesh.log("default", "httpbin-v2"), "/uuid"),
    );
    for _ in 0..5 {
        assert_eq!(get("/uuid").status, 200);
    }
    eventually(
        "v2 saw every mirrored request",
        Duration::from_secs(10),
        || served(&mesh.log("default", "httpbin-v2"), "/uuid") >= v2 + 5,
    );
    assert_eq!(served(&mesh.log("default", "httpbin-v1"), "/uuid"), v1 + 5);
}
