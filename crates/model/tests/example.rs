//! The example snapshot in `examples/` is the format's documentation: it must parse, build and
//! route as its route names say.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderValue, Method};
use model::runtime::RuntimeAction;
use model::{ProxySnapshot, RequestView, Runtime};

#[test]
fn bookinfo_example_builds_and_routes() {
    let snapshot: ProxySnapshot =
        serde_json::from_str(include_str!("../examples/bookinfo.json")).expect("parses");
    let rt = Runtime::build(snapshot).expect("builds");
    let labels = BTreeMap::new();
    let mut headers = HeaderMap::new();
    let route = |authority: &str, path: &str, query: Option<&str>, headers: &HeaderMap| {
        let view = RequestView {
            method: &Method::GET,
            scheme: "http",
            authority,
            path,
            query,
            headers,
            port: 9080,
            source_labels: &labels,
            source_namespace: None,
        };
        rt.route(0, &view).map(|h| h.route.name.clone())
    };
    assert_eq!(
        route("reviews:9080", "/reviews/1", None, &headers).as_deref(),
        Some("canary")
    );
    assert_eq!(
        route("reviews", "/api/v2/legacy/x", None, &headers).as_deref(),
        Some("old-api")
    );
    assert_eq!(
        route("reviews", "/", Some("maintenance"), &headers).as_deref(),
        Some("maintenance")
    );
    assert_eq!(route("ratings", "/", None, &headers), None);
    headers.insert("end-user", HeaderValue::from_static("jason"));
    assert_eq!(
        route("reviews", "/reviews/1", None, &headers).as_deref(),
        Some("jason")
    );

    let v2 = rt
        .cluster("outbound|9080|v2|reviews.default.svc.cluster.local")
        .unwrap();
    assert_eq!(
        v2.endpoints.len(),
        1,
        "the draining endpoint gets no traffic"
    );
    let canary = &rt.tables[0].vhosts[0].routes[1];
    let RuntimeAction::Forward(f) = &canary.action else {
        panic!("canary forwards")
    };
    assert_eq!(f.clusters.total(), 100);
    assert_eq!(f.timeout, Some(std::time::Duration::from_secs(3)));
}
