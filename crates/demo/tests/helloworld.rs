//! helloworld over loopback.

mod common;

use common::{closed_port, get};
use demo::bookinfo::Upstreams;
use demo::{Kind, Spec};
use http::StatusCode;

#[tokio::test]
async fn hello_names_version_and_instance() {
    let none = closed_port().await.to_string();
    let up = Upstreams {
        details: none.clone(),
        reviews: none.clone(),
        ratings: none,
    };
    for version in [None, Some("v2")] {
        let mut spec = Spec::new(Kind::Helloworld);
        spec.version = version.map(str::to_owned);
        spec.ports = vec![0];
        spec.bind = "127.0.0.1".parse().expect("ip");
        let app = demo::start(&spec, &up).await.expect("start");
        let base = format!("http://{}", app.local_addrs()[0]);
        let r = get(&format!("{base}/hello")).await;
        assert_eq!(r.status, StatusCode::OK);
        let want = format!(
            "Hello version: {}, instance: {}\n",
            version.unwrap_or("v1"),
            demo::hostname()
        );
        assert_eq!(r.body, want);
        let h = get(&format!("{base}/health")).await;
        assert_eq!(
            (h.status, h.body.as_str()),
            (StatusCode::OK, "Helloworld is healthy")
        );
        assert_eq!(
            get(&format!("{base}/other")).await.status,
            StatusCode::NOT_FOUND
        );
        app.shutdown().await;
    }
}
