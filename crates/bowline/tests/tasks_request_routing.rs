//! istio.io's "Request Routing" task on the local mesh: Bookinfo with sidecars, all traffic to v1
//! (no stars), then the user jason to reviews v2 (black stars) while everyone else stays on v1.
//! Run with our copies of the task's config, then with Istio's own files when they are beside
//! the repo.

mod tasks_support;

use std::time::Duration;

use tasks_support::*;

fn check_routing(mesh: &Mesh, all_v1: &std::path::Path, test_v2: &std::path::Path) {
    mesh.apply(all_v1);
    eventually(
        "every page from reviews v1",
        Duration::from_secs(20),
        || {
            (0..5).all(|_| {
                let p = productpage(None);
                p.status == 200 && reviews_version(&p.body) == "v1"
            })
        },
    );
    for _ in 0..10 {
        let p = productpage(None);
        assert_eq!((p.status, reviews_version(&p.body)), (200, "v1"));
    }
    mesh.apply(test_v2);
    eventually("jason sees reviews v2", Duration::from_secs(20), || {
        let p = productpage(Some("jason"));
        p.status == 200 && reviews_version(&p.body) == "v2"
    });
    for _ in 0..10 {
        let jason = productpage(Some("jason"));
        assert_eq!((jason.status, reviews_version(&jason.body)), (200, "v2"));
        let anon = productpage(None);
        assert_eq!((anon.status, reviews_version(&anon.body)), (200, "v1"));
        let other = productpage(Some("someone"));
        assert_eq!((other.status, reviews_version(&other.body)), (200, "v1"));
    }
}

#[test]
fn request_routing_all_v1_then_jason_to_v2() {
    if !can_run() {
        return;
    }
    let mesh = Mesh::demo("bookinfo");
    check_routing(
        &mesh,
        &task("virtual-service-all-v1.yaml"),
        &task("virtual-service-reviews-test-v2.yaml"),
    );
    if let Some(samples) = istio_samples() {
        let net = samples.join("bookinfo/networking");
        check_routing(
            &mesh,
            &net.join("virtual-service-all-v1.yaml"),
            &net.join("virtual-service-reviews-test-v2.yaml"),
        );
    }
}
