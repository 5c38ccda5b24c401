//! istio.io's "Fault Injection" task: with jason on reviews v2, a 7 s delay on ratings for jason
//! makes the page say reviews are unavailable after about 6 s (productpage's 3 s timeout and one
//! retry); a 500 abort for jason makes it say ratings are unavailable. Others are unaffected.

mod tasks_support;

use std::path::Path;
use std::time::Duration;

use tasks_support::*;

const REVIEWS_DOWN: &str = "Sorry, product reviews are currently unavailable for this book.";
const RATINGS_DOWN: &str = "Ratings service is currently unavailable";

fn check(mesh: &Mesh, all_v1: &Path, test_v2: &Path, delay: &Path, abort: &Path) {
    mesh.apply(all_v1);
    mesh.apply(test_v2);
    eventually("jason sees reviews v2", Duration::from_secs(20), || {
        reviews_version(&productpage(Some("jason")).body) == "v2"
    });
    mesh.apply(delay);
    eventually(
        "jason's page waits for ratings and gives up",
        Duration::from_secs(60),
        || {
            let p = productpage(Some("jason"));
            p.body.contains(REVIEWS_DOWN)
        },
    );
    let p = productpage(Some("jason"));
    assert_eq!(p.status, 200);
    assert!(p.body.contains(REVIEWS_DOWN), "{}", p.body);
    assert!(
        (5.0..9.0).contains(&p.seconds),
        "took {} s, expected about 6",
        p.seconds
    );
    let anon = productpage(None);
    assert!(
        anon.seconds < 2.0 && !anon.body.contains(REVIEWS_DOWN),
        "{anon:?}"
    );

    mesh.apply(abort);
    eventually(
        "jason's ratings fail with 500",
        Duration::from_secs(20),
        || productpage(Some("jason")).body.contains(RATINGS_DOWN),
    );
    let p = productpage(Some("jason"));
    assert!(p.seconds < 2.0, "an abort is immediate: {} s", p.seconds);
    assert_eq!(
        reviews_version(&p.body),
        "v1",
        "v2 without ratings shows no stars"
    );
    assert!(!productpage(None).body.contains(RATINGS_DOWN));
}

#[test]
fn fault_injection_delay_and_abort_for_jason() {
    if !can_run() {
        return;
    }
    let mesh = Mesh::demo("bookinfo");
    check(
        &mesh,
        &task("virtual-service-all-v1.yaml"),
        &task("virtual-service-reviews-test-v2.yaml"),
        &task("virtual-service-ratings-test-delay.yaml"),
        &task("virtual-service-ratings-test-abort.yaml"),
    );
    if let Some(samples) = istio_samples() {
        let net = samples.join("bookinfo/networking");
        check(
            &mesh,
            &net.join("virtual-service-all-v1.yaml"),
            &net.join("virtual-service-reviews-test-v2.yaml"),
            &net.join("virtual-service-ratings-test-delay.yaml"),
            &net.join("virtual-service-ratings-test-abort.yaml"),
        );
    }
}
