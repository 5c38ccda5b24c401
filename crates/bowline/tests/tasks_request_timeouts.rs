//! istio.io's "Request Timeouts" task: reviews to v2, a 2 s delay on every ratings call, then a
//! 0.5 s timeout on reviews: the page comes back in about 1 s (one retry by productpage) saying
//! reviews are unavailable.

mod tasks_support;

use std::time::Duration;

use tasks_support::*;

const REVIEWS_DOWN: &str = "Sorry, product reviews are currently unavailable for this book.";

#[test]
fn request_timeouts_on_reviews() {
    if !can_run() {
        return;
    }
    let mesh = Mesh::demo("bookinfo");
    mesh.apply(&task("virtual-service-all-v1.yaml"));
    mesh.apply(&task("virtual-service-reviews-v2.yaml"));
    mesh.apply(&task("virtual-service-ratings-delay-2s.yaml"));
    eventually(
        "the page waits about 2 s for ratings",
        Duration::from_secs(30),
        || {
            let p = productpage(None);
            p.status == 200 && reviews_version(&p.body) == "v2" && p.seconds >= 1.8
        },
    );
    mesh.apply(&task("virtual-service-reviews-v2-timeout.yaml"));
    eventually("reviews time out", Duration::from_secs(30), || {
        productpage(None).body.contains(REVIEWS_DOWN)
    });
    for _ in 0..3 {
        let p = productpage(None);
        assert_eq!(p.status, 200);
        assert!(p.body.contains(REVIEWS_DOWN), "{}", p.body);
        assert!(
            (0.8..1.8).contains(&p.seconds),
            "took {} s, expected about 1",
            p.seconds
        );
    }
}
