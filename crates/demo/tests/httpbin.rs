//! httpbin over loopback: each endpoint's contract as httpbin.org has it.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{closed_port, get, send};
use demo::bookinfo::Upstreams;
use demo::{Kind, Running, Spec};
use http::{Method, StatusCode};
use serde_json::json;

async fn httpbin() -> (Running, String) {
    let none = closed_port().await.to_string();
    let up = Upstreams {
        details: none.clone(),
        reviews: none.clone(),
        ratings: none,
    };
    let mut spec = Spec::new(Kind::Httpbin);
    spec.ports = vec![0];
    spec.bind = "127.0.0.1".parse().expect("ip");
    let running = demo::start(&spec, &up).await.expect("start httpbin");
    let base = format!("http://{}", running.local_addrs()[0]);
    (running, base)
}

#[tokio::test]
async fn get_echoes_args_headers_origin_and_url() {
    let (app, base) = httpbin().await;
    let r = send(
        Method::GET,
        &format!("{base}/get?a=1&b=two%20words&a=3"),
        &[
            ("x-custom", "v1"),
            ("user-agent", "curl/8"),
            ("x-custom", "v2"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    let v = r.json();
    assert_eq!(v["args"], json!({"a": ["1", "3"], "b": "two words"}));
    assert_eq!(v["headers"]["X-Custom"], "v1,v2");
    assert_eq!(v["headers"]["User-Agent"], "curl/8");
    assert!(v["headers"]["Host"]
        .as_str()
        .is_some_and(|h| h.starts_with("127.0.0.1:")));
    assert_eq!(v["origin"], "127.0.0.1");
    assert_eq!(v["url"], format!("{base}/get?a=1&b=two%20words&a=3"));
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["args", "headers", "origin", "url"]);
    assert!(v.get("data").is_none());

    assert_eq!(
        send(Method::POST, &format!("{base}/get"), &[], Bytes::new())
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    app.shutdown().await;
}

#[tokio::test]
async fn post_reports_json_form_and_raw_data() {
    let (app, base) = httpbin().await;
    let url = format!("{base}/post?q=1");
    let j = send(
        Method::POST,
        &url,
        &[("content-type", "application/json")],
        Bytes::from_static(br#"{"name":"bowline","n":[1,2]}"#),
    )
    .await
    .json();
    assert_eq!(j["json"], json!({"name": "bowline", "n": [1, 2]}));
    assert_eq!(j["data"], r#"{"name":"bowline","n":[1,2]}"#);
    assert_eq!(j["form"], json!({}));
    assert_eq!(j["files"], json!({}));
    assert_eq!(j["args"], json!({"q": "1"}));
    let keys: Vec<&str> = j
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["args", "data", "files", "form", "headers", "json", "origin", "url"]
    );

    let f = send(
        Method::POST,
        &url,
        &[("content-type", "application/x-www-form-urlencoded")],
        Bytes::from_static(b"user=jason&tag=a&tag=b"),
    )
    .await
    .json();
    assert_eq!(f["form"], json!({"tag": ["a", "b"], "user": "jason"}));
    assert_eq!(f["data"], "");
    assert_eq!(f["json"], json!(null));

    let raw = send(Method::POST, &url, &[], Bytes::from_static(b"\xff\x00hi"))
        .await
        .json();
    assert_eq!(raw["data"], "data:application/octet-stream;base64,/wBoaQ==");

    assert_eq!(
        get(&format!("{base}/post")).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    for (m, path) in [
        (Method::PUT, "/put"),
        (Method::PATCH, "/patch"),
        (Method::DELETE, "/delete"),
    ] {
        let r = send(
            m.clone(),
            &format!("{base}{path}"),
            &[],
            Bytes::from_static(b"x"),
        )
        .await;
        assert_eq!(
            (r.status, r.json()["data"].clone()),
            (StatusCode::OK, json!("x")),
            "{m}"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn anything_reports_the_method_for_any_path() {
    let (app, base) = httpbin().await;
    let v = send(
        Method::DELETE,
        &format!("{base}/anything/a/b"),
        &[],
        Bytes::new(),
    )
    .await
    .json();
    assert_eq!(v["method"], "DELETE");
    assert_eq!(v["url"], format!("{base}/anything/a/b"));
    assert_eq!(
        get(&format!("{base}/anything")).await.json()["method"],
        "GET"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn status_codes_single_list_and_invalid() {
    let (app, base) = httpbin().await;
    for code in [200u16, 201, 204, 400, 404, 500, 503] {
        let r = get(&format!("{base}/status/{code}")).await;
        assert_eq!(r.status.as_u16(), code);
    }
    let tea = send(
        Method::POST,
        &format!("{base}/status/418"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(tea.status, StatusCode::IM_A_TEAPOT);
    assert!(tea.body.contains("teapot"));
    let redirect = get(&format!("{base}/status/302")).await;
    assert_eq!(redirect.headers["location"], "/redirect/1");
    let auth = get(&format!("{base}/status/401")).await;
    assert!(auth.headers.contains_key("www-authenticate"));

    let mut seen = HashSet::new();
    for _ in 0..60 {
        seen.insert(get(&format!("{base}/status/200,503")).await.status.as_u16());
    }
    assert_eq!(seen, HashSet::from([200, 503]));
    for _ in 0..10 {
        assert_eq!(
            get(&format!("{base}/status/200:0,504:1"))
                .await
                .status
                .as_u16(),
            504
        );
    }
    for bad in ["abc", "99", "1000", "200,x"] {
        let r = get(&format!("{base}/status/{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.body, "Invalid status code");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn delay_waits_then_echoes() {
    let (app, base) = httpbin().await;
    let t = Instant::now();
    let r = get(&format!("{base}/delay/1?x=y")).await;
    let took = t.elapsed();
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let v = r.json();
    assert_eq!(v["args"], json!({"x": "y"}));
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["args", "data", "files", "form", "headers", "origin", "url"]
    );

    let t = Instant::now();
    let frac = get(&format!("{base}/delay/0.3")).await;
    assert_eq!(frac.status, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        get(&format!("{base}/delay/soon")).await.status,
        StatusCode::BAD_REQUEST
    );
    app.shutdown().await;
}

#[tokio::test]
async fn small_endpoints() {
    let (app, base) = httpbin().await;
    let h = send(
        Method::GET,
        &format!("{base}/headers"),
        &[("x-b3-traceid", "abc")],
        Bytes::new(),
    )
    .await;
    assert_eq!(h.json()["headers"]["X-B3-Traceid"], "abc");

    assert_eq!(
        get(&format!("{base}/ip")).await.json(),
        json!({"origin": "127.0.0.1"})
    );
    let xff = send(
        Method::GET,
        &format!("{base}/ip"),
        &[("x-forwarded-for", "10.1.2.3")],
        Bytes::new(),
    )
    .await;
    assert_eq!(xff.json()["origin"], "10.1.2.3");

    let ua = send(
        Method::GET,
        &format!("{base}/user-agent"),
        &[("user-agent", "bowline-test")],
        Bytes::new(),
    )
    .await;
    assert_eq!(ua.json(), json!({"user-agent": "bowline-test"}));

    let a = get(&format!("{base}/uuid")).await.json()["uuid"].clone();
    let b = get(&format!("{base}/uuid")).await.json()["uuid"].clone();
    let a = a.as_str().expect("string");
    assert_eq!(a.len(), 36);
    assert_eq!(a.matches('-').count(), 4);
    assert_ne!(Some(a), b.as_str());

    assert_eq!(
        get(&format!("{base}/nope")).await.status,
        StatusCode::NOT_FOUND
    );
    app.shutdown().await;
}

#[tokio::test]
async fn response_headers_are_set_and_reported() {
    let (app, base) = httpbin().await;
    let r = get(&format!(
        "{base}/response-headers?x-test=one&x-test=two&server=httpbin"
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let got: Vec<_> = r.headers.get_all("x-test").iter().collect();
    assert_eq!(got, ["one", "two"]);
    assert_eq!(r.headers["server"], "httpbin");
    let v = r.json();
    assert_eq!(v["x-test"], json!(["one", "two"]));
    assert_eq!(v["Content-Length"], r.body.len().to_string());
    assert_eq!(r.headers["content-length"], r.body.len().to_string());
    let bad = get(&format!("{base}/response-headers?bad%20name=x")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    app.shutdown().await;
}

#[tokio::test]
async fn bytes_are_bounded_and_seedable() {
    let (app, base) = httpbin().await;
    let r = get(&format!("{base}/bytes/64")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    assert_eq!(r.headers["content-length"], "64");
    let big = get(&format!("{base}/bytes/100000000")).await;
    assert_eq!(
        big.headers["content-length"],
        demo::httpbin::MAX_BYTES.to_string()
    );
    let s1 = get(&format!("{base}/bytes/32?seed=42")).await;
    let s2 = get(&format!("{base}/bytes/32?seed=42")).await;
    assert_eq!(s1.body, s2.body);
    assert_eq!(
        get(&format!("{base}/bytes/-1")).await.status,
        StatusCode::BAD_REQUEST
    );
    app.shutdown().await;
}
