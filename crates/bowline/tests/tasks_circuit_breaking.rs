//! istio.io's "Circuit Breaking" task: httpbin with at most one connection and one pending
//! request; concurrent requests from the sleep pod's sidecar beyond that get 503 at once.

mod tasks_support;

use std::time::Duration;

use tasks_support::*;

/// `n` concurrent slow requests from the sleep pod; their statuses.
fn burst(n: usize) -> Vec<u16> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            std::thread::spawn(|| {
                curl_in("default", "sleep", "http://httpbin:8000/delay/1", &[]).status
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("client"))
        .collect()
}

#[test]
fn circuit_breaking_httpbin() {
    if !can_run() {
        return;
    }
    let mesh = Mesh::demo("httpbin");
    eventually("httpbin answers", Duration::from_secs(20), || {
        curl_in("default", "sleep", "http://httpbin:8000/get", &[]).status == 200
    });
    mesh.apply(&task("httpbin-circuit-breaker.yaml"));
    // One at a time is always fine.
    eventually("the breaker is in place", Duration::from_secs(20), || {
        burst(3).contains(&503)
    });
    for concurrency in [2, 3] {
        let statuses = burst(concurrency);
        assert!(
            statuses.contains(&503),
            "concurrency {concurrency}: {statuses:?}"
        );
        assert!(
            statuses.contains(&200),
            "concurrency {concurrency}: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 503),
            "{statuses:?}"
        );
    }
    assert_eq!(
        curl_in("default", "sleep", "http://httpbin:8000/get", &[]).status,
        200
    );
}
