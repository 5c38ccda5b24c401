//! istio.io's "Traffic Shifting" task: reviews 100% v1, then 50% v3, then 100% v3, counted over
//! 100 product pages each, and the split over 400 (within ±40: four standard deviations of a
//! fair coin, so a correct split fails about once in 16 000 runs, and 60/40 is still caught).

mod tasks_support;

use std::path::Path;
use std::time::Duration;

use tasks_support::*;

fn v3_share(n: usize) -> usize {
    (0..n)
        .filter(|_| {
            let p = productpage(None);
            assert_eq!(p.status, 200);
            reviews_version(&p.body) == "v3"
        })
        .count()
}

fn check(mesh: &Mesh, all_v1: &Path, fifty: &Path, all_v3: &Path) {
    mesh.apply(all_v1);
    eventually("all v1", Duration::from_secs(20), || {
        v3_share(5) == 0 && { (0..5).all(|_| reviews_version(&productpage(None).body) == "v1") }
    });
    assert_eq!(v3_share(100), 0);
    mesh.apply(fifty);
    eventually("some v3", Duration::from_secs(20), || v3_share(10) > 0);
    let n = v3_share(400);
    assert!(
        (160..=240).contains(&n),
        "{n} of 400 pages from v3, expected 200 ± 40"
    );
    mesh.apply(all_v3);
    eventually("all v3", Duration::from_secs(20), || v3_share(10) == 10);
    assert_eq!(v3_share(100), 100);
}

#[test]
fn traffic_shifting_reviews_v1_to_v3() {
    if !can_run() {
        return;
    }
    let mesh = Mesh::demo("bookinfo");
    check(
        &mesh,
        &task("virtual-service-all-v1.yaml"),
        &task("virtual-service-reviews-50-v3.yaml"),
        &task("virtual-service-reviews-v3.yaml"),
    );
    if let Some(samples) = istio_samples() {
        let net = samples.join("bookinfo/networking");
        check(
            &mesh,
            &net.join("virtual-service-all-v1.yaml"),
            &net.join("virtual-service-reviews-50-v3.yaml"),
            &net.join("virtual-service-reviews-v3.yaml"),
        );
    }
}
