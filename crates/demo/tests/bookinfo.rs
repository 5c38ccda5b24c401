//! Bookinfo end to end on loopback: real productpage, details, reviews and ratings servers, with
//! recording middlemen between them to see what each sends the next.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{closed_port, get, send, Recorder};
use demo::bookinfo::Upstreams;
use demo::server::Server;
use demo::{Kind, Running, Spec};
use http::{Method, StatusCode};
use serde_json::json;

const SORRY_REVIEWS: &str = "Sorry, product reviews are currently unavailable for this book.";
const RATINGS_DOWN: &str = "Ratings service is currently unavailable";

async fn run(kind: Kind, version: &str, up: &Upstreams) -> (Running, SocketAddr) {
    let mut spec = Spec::new(kind);
    spec.version = Some(version.to_owned());
    spec.ports = vec![0];
    spec.bind = "127.0.0.1".parse().expect("ip");
    let running = demo::start(&spec, up).await.expect("start app");
    let addr = running.local_addrs()[0];
    (running, addr)
}

fn upstreams(details: SocketAddr, reviews: SocketAddr, ratings: SocketAddr) -> Upstreams {
    Upstreams {
        details: details.to_string(),
        reviews: reviews.to_string(),
        ratings: ratings.to_string(),
    }
}

#[derive(Default)]
struct Faults {
    details_down: bool,
    reviews_down: bool,
    ratings_down: bool,
    reviews_fail_first: usize,
    reviews_delay: Duration,
    ratings_delay: Duration,
}

/// The four services, each call going through a recorder: productpage -> details,
/// productpage -> reviews -> ratings.
struct Stack {
    page: SocketAddr,
    details: Arc<Recorder>,
    reviews: Arc<Recorder>,
    ratings: Arc<Recorder>,
    apps: Vec<Running>,
    /// In start order: ratings', reviews', details' recorder.
    recorders: Vec<Server>,
}

impl Stack {
    async fn start(reviews_version: &str, f: Faults) -> Stack {
        let none = closed_port().await;
        let mut apps = Vec::new();
        let mut recorders = Vec::new();

        let (ratings_app, ratings_addr) =
            run(Kind::Ratings, "v1", &upstreams(none, none, none)).await;
        apps.push(ratings_app);
        let (ratings, srv) = Recorder {
            delay: f.ratings_delay,
            ..Recorder::to(ratings_addr)
        }
        .start()
        .await;
        let ratings_front = if f.ratings_down {
            none
        } else {
            srv.local_addr()
        };
        recorders.push(srv);

        let (reviews_app, reviews_addr) = run(
            Kind::Reviews,
            reviews_version,
            &upstreams(none, none, ratings_front),
        )
        .await;
        apps.push(reviews_app);
        let (reviews, srv) = Recorder {
            fail_first: AtomicUsize::new(f.reviews_fail_first),
            delay: f.reviews_delay,
            ..Recorder::to(reviews_addr)
        }
        .start()
        .await;
        let reviews_front = if f.reviews_down {
            none
        } else {
            srv.local_addr()
        };
        recorders.push(srv);

        let (details_app, details_addr) =
            run(Kind::Details, "v1", &upstreams(none, none, none)).await;
        apps.push(details_app);
        let (details, srv) = Recorder::to(details_addr).start().await;
        let details_front = if f.details_down {
            none
        } else {
            srv.local_addr()
        };
        recorders.push(srv);

        let (page_app, page) = run(
            Kind::ProductPage,
            "v1",
            &upstreams(details_front, reviews_front, ratings_front),
        )
        .await;
        apps.push(page_app);
        Stack {
            page,
            details,
            reviews,
            ratings,
            apps,
            recorders,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.page)
    }

    async fn product_page(&self) -> String {
        let r = get(&self.url("/productpage")).await;
        assert_eq!(r.status, StatusCode::OK);
        r.body
    }

    async fn stop(self) {
        for a in self.apps {
            a.shutdown().await;
        }
        for s in self.recorders {
            s.shutdown().await;
        }
    }
}

fn full_stars(page: &str) -> usize {
    page.matches("glyphicon glyphicon-star\"").count()
}

#[tokio::test]
async fn v1_shows_details_and_reviews_without_stars() {
    let s = Stack::start("v1", Faults::default()).await;
    let page = s.product_page().await;
    assert!(page.contains("The Comedy of Errors"));
    assert!(page.contains("Book Details"));
    assert!(page.contains("PublisherA"));
    assert!(page.contains("Reviewer1") && page.contains("Reviewer2"));
    assert!(!page.contains("glyphicon-star"), "v1 has no stars");
    assert!(s.ratings.requests().is_empty(), "v1 never calls ratings");
    s.stop().await;
}

#[tokio::test]
async fn v2_shows_black_stars() {
    let s = Stack::start("v2", Faults::default()).await;
    let page = s.product_page().await;
    assert!(page.contains("<font color=\"black\">"));
    assert!(!page.contains("<font color=\"red\">"));
    assert_eq!(full_stars(&page), 5 + 4, "Reviewer1 5 stars, Reviewer2 4");
    assert_eq!(page.matches("glyphicon glyphicon-star-empty").count(), 1);
    assert_eq!(s.ratings.requests().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn v3_shows_red_stars() {
    let s = Stack::start("v3", Faults::default()).await;
    let page = s.product_page().await;
    assert!(page.contains("<font color=\"red\">"));
    assert!(!page.contains("<font color=\"black\">"));
    assert_eq!(full_stars(&page), 9);
    s.stop().await;
}

#[tokio::test]
async fn reviews_down_shows_the_sorry_marker_and_still_the_details() {
    let s = Stack::start(
        "v2",
        Faults {
            reviews_down: true,
            ..Faults::default()
        },
    )
    .await;
    let page = s.product_page().await;
    assert!(page.contains("Error fetching product reviews"));
    assert!(page.contains(SORRY_REVIEWS));
    assert!(page.contains("PublisherA"), "details still render");
    let api = get(&s.url("/api/v1/products/0/reviews")).await;
    assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(api.json(), json!({"error": SORRY_REVIEWS}));
    s.stop().await;
}

#[tokio::test]
async fn details_down_shows_the_details_error() {
    let s = Stack::start(
        "v1",
        Faults {
            details_down: true,
            ..Faults::default()
        },
    )
    .await;
    let page = s.product_page().await;
    assert!(page.contains("Error fetching product details"));
    assert!(page.contains("Sorry, product details are currently unavailable for this book."));
    assert!(page.contains("Reviewer1"), "reviews still render");
    s.stop().await;
}

#[tokio::test]
async fn reviews_are_retried_once() {
    let s = Stack::start(
        "v1",
        Faults {
            reviews_fail_first: 1,
            ..Faults::default()
        },
    )
    .await;
    let page = s.product_page().await;
    assert!(page.contains("Reviewer1"), "second attempt succeeds");
    assert_eq!(s.reviews.requests().len(), 2);
    s.stop().await;

    let s = Stack::start(
        "v1",
        Faults {
            reviews_fail_first: 5,
            ..Faults::default()
        },
    )
    .await;
    let api = get(&s.url("/api/v1/products/0/reviews")).await;
    assert_eq!(
        api.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream status passes through"
    );
    assert_eq!(s.reviews.requests().len(), 2, "exactly one retry");
    s.stop().await;
}

/// Istio's fault-injection task in miniature: a reviews call slower than productpage's 3 s
/// timeout fails twice (the built-in retry), so the page gives up after about 6 s.
#[tokio::test]
async fn slow_reviews_time_out_twice_then_the_page_says_sorry() {
    let s = Stack::start(
        "v1",
        Faults {
            reviews_delay: Duration::from_millis(3500),
            ..Faults::default()
        },
    )
    .await;
    let t = Instant::now();
    let page = s.product_page().await;
    let took = t.elapsed();
    assert!(page.contains(SORRY_REVIEWS));
    assert!(page.contains("PublisherA"));
    assert!(
        took >= Duration::from_millis(5900) && took < Duration::from_millis(7500),
        "took {took:?}"
    );
    assert_eq!(s.reviews.requests().len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn ratings_down_under_v2_shows_ratings_unavailable() {
    let s = Stack::start(
        "v2",
        Faults {
            ratings_down: true,
            ..Faults::default()
        },
    )
    .await;
    let page = s.product_page().await;
    assert!(page.contains(RATINGS_DOWN));
    assert!(!page.contains("glyphicon-star"));
    assert!(
        page.contains("Reviewer1"),
        "the reviews themselves still render"
    );
    s.stop().await;
}

#[tokio::test]
async fn v3_gives_up_on_slow_ratings_after_two_and_a_half_seconds() {
    let s = Stack::start(
        "v3",
        Faults {
            ratings_delay: Duration::from_secs(4),
            ..Faults::default()
        },
    )
    .await;
    let t = Instant::now();
    let api = get(&s.url("/api/v1/products/0/reviews")).await;
    let took = t.elapsed();
    assert_eq!(api.status, StatusCode::OK);
    assert_eq!(
        api.json()["reviews"][0]["rating"],
        json!({"error": RATINGS_DOWN})
    );
    assert!(
        took >= Duration::from_millis(2400) && took < Duration::from_millis(3900),
        "took {took:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn login_sets_the_session_cookie_and_end_user_is_forwarded() {
    let s = Stack::start("v2", Faults::default()).await;
    let login = send(
        Method::POST,
        &s.url("/login"),
        &[("content-type", "application/x-www-form-urlencoded")],
        Bytes::from_static(b"username=jason&passwd=whatever"),
    )
    .await;
    assert_eq!(login.status, StatusCode::FOUND);
    assert_eq!(login.headers["location"], "/productpage");
    let set_cookie = login.headers["set-cookie"].to_str().expect("ascii");
    assert!(set_cookie.starts_with("session=jason;"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().expect("pair");

    let page = send(
        Method::GET,
        &s.url("/productpage"),
        &[("cookie", cookie)],
        Bytes::new(),
    )
    .await;
    assert!(page.body.contains("jason"));
    assert!(page.body.contains("sign out"));
    for (who, rec) in [
        ("details", &s.details),
        ("reviews", &s.reviews),
        ("ratings", &s.ratings),
    ] {
        let seen = rec.requests();
        let last = seen.last().unwrap_or_else(|| panic!("{who} not called"));
        assert_eq!(last["end-user"], "jason", "{who}");
    }

    let anonymous = get(&s.url("/productpage")).await;
    assert!(anonymous.body.contains("Sign in"));
    assert!(s
        .reviews
        .requests()
        .last()
        .expect("called")
        .get("end-user")
        .is_none());

    let logout = send(
        Method::GET,
        &s.url("/logout"),
        &[("cookie", cookie)],
        Bytes::new(),
    )
    .await;
    assert_eq!(logout.status, StatusCode::FOUND);
    assert!(logout.headers["set-cookie"]
        .to_str()
        .expect("ascii")
        .contains("Max-Age=0"));
    s.stop().await;
}

#[tokio::test]
async fn productpage_ignores_an_inbound_end_user_header() {
    let s = Stack::start("v1", Faults::default()).await;
    send(
        Method::GET,
        &s.url("/productpage"),
        &[("end-user", "mallory")],
        Bytes::new(),
    )
    .await;
    assert!(s.reviews.requests()[0].get("end-user").is_none());
    s.stop().await;
}

#[tokio::test]
async fn trace_headers_propagate_end_to_end() {
    let s = Stack::start("v3", Faults::default()).await;
    let sent = [
        ("x-request-id", "6b1a-req"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ("x-b3-sampled", "1"),
        ("x-b3-flags", "0"),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("tracestate", "congo=t61rcWkgMzE"),
        ("x-ot-span-context", "abc;def;1"),
        ("x-datadog-trace-id", "1234"),
        ("x-datadog-parent-id", "5678"),
        ("x-datadog-sampling-priority", "1"),
        (
            "x-cloud-trace-context",
            "105445aa7843bc8bf206b120001000/1;o=1",
        ),
        ("grpc-trace-bin", "AAAB"),
        ("user-agent", "bookinfo-test/1"),
        ("cookie", "theme=dark"),
        ("x-not-propagated", "nope"),
    ];
    let page = send(Method::GET, &s.url("/productpage"), &sent, Bytes::new()).await;
    assert_eq!(page.status, StatusCode::OK);
    for (who, rec) in [
        ("details", &s.details),
        ("reviews", &s.reviews),
        ("ratings", &s.ratings),
    ] {
        let seen = rec.requests();
        assert_eq!(seen.len(), 1, "{who}");
        for (k, v) in &sent[..sent.len() - 1] {
            assert_eq!(
                seen[0].get(*k).map(|v| v.to_str().ok()),
                Some(Some(*v)),
                "{who}: {k}"
            );
        }
        assert!(seen[0].get("x-not-propagated").is_none(), "{who}");
    }
    // Each call names its upstream in Host, which is what a mesh routes on.
    for (rec, server) in [&s.ratings, &s.reviews, &s.details]
        .into_iter()
        .zip(&s.recorders)
    {
        let host = rec.requests()[0]["host"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(host, server.local_addr().to_string());
    }
    s.stop().await;
}

#[tokio::test]
async fn product_api() {
    let s = Stack::start("v2", Faults::default()).await;
    let list = get(&s.url("/api/v1/products")).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json()[0]["id"], 0);
    assert_eq!(list.json()[0]["title"], "The Comedy of Errors");

    let details = get(&s.url("/api/v1/products/0")).await;
    assert_eq!(details.json()["author"], "William Shakespeare");

    let reviews = get(&s.url("/api/v1/products/0/reviews")).await;
    assert_eq!(
        reviews.json()["reviews"][1]["rating"],
        json!({"stars": 4, "color": "black"})
    );

    let ratings = get(&s.url("/api/v1/products/0/ratings")).await;
    assert_eq!(
        ratings.json(),
        json!({"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
    );

    let bad = get(&s.url("/api/v1/products/abc")).await;
    assert_eq!(
        bad.status,
        StatusCode::BAD_REQUEST,
        "details' own refusal passes through"
    );
    assert_eq!(
        get(&s.url("/api/v1/products/0/other")).await.status,
        StatusCode::NOT_FOUND
    );
    s.stop().await;
}

#[tokio::test]
async fn productpage_pages_and_methods() {
    let s = Stack::start("v1", Faults::default()).await;
    let index = get(&s.url("/")).await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(index.body.contains("/productpage?u=normal"));
    assert_eq!(get(&s.url("/index.html")).await.status, StatusCode::OK);
    let health = get(&s.url("/health")).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "Product page is healthy")
    );
    assert_eq!(
        get(&s.url("/login")).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(get(&s.url("/nowhere")).await.status, StatusCode::NOT_FOUND);
    let no_user = send(Method::POST, &s.url("/login"), &[], Bytes::new()).await;
    assert_eq!(no_user.status, StatusCode::FOUND);
    assert!(no_user.headers.get("set-cookie").is_none());
    s.stop().await;
}

#[tokio::test]
async fn backends_answer_their_contracts() {
    let none = closed_port().await;
    let up = upstreams(none, none, none);
    let (details, d) = run(Kind::Details, "v1", &up).await;
    let (ratings, r) = run(Kind::Ratings, "v1", &up).await;
    let (reviews, v) = run(Kind::Reviews, "v1", &up).await;

    let book = get(&format!("http://{d}/details/7")).await;
    assert_eq!(book.status, StatusCode::OK);
    assert_eq!(
        book.json(),
        json!({"id": 7, "author": "William Shakespeare", "year": 1595, "type": "paperback",
               "pages": 200, "publisher": "PublisherA", "language": "English",
               "ISBN-10": "1234567890", "ISBN-13": "123-1234567890"})
    );
    let bad = get(&format!("http://{d}/details/x")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"], "please provide numeric product id");

    let rv = get(&format!("http://{v}/reviews/3")).await.json();
    assert_eq!(rv["id"], "3");
    assert_eq!(rv["reviews"][0]["reviewer"], "Reviewer1");
    assert_eq!(rv["reviews"][1]["reviewer"], "Reviewer2");
    assert!(
        rv["reviews"][0].get("rating").is_none(),
        "v1 has no ratings"
    );
    assert_eq!(
        get(&format!("http://{v}/reviews/x")).await.status,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        get(&format!("http://{r}/ratings/2")).await.json(),
        json!({"id": 2, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
    );
    let posted = send(
        Method::POST,
        &format!("http://{r}/ratings/2"),
        &[("content-type", "application/json")],
        Bytes::from_static(br#"{"Reviewer1": 1, "Reviewer2": 2}"#),
    )
    .await;
    assert_eq!(posted.status, StatusCode::OK);
    assert_eq!(
        get(&format!("http://{r}/ratings/2")).await.json()["ratings"]["Reviewer1"],
        1
    );
    let refused = send(
        Method::POST,
        &format!("http://{r}/ratings/2"),
        &[],
        Bytes::from_static(b"{\"R\": 9}"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        get(&format!("http://{r}/ratings/zz")).await.status,
        StatusCode::BAD_REQUEST
    );

    for (addr, status) in [
        (d, "Details is healthy"),
        (r, "Ratings is healthy"),
        (v, "Reviews is healthy"),
    ] {
        let h = get(&format!("http://{addr}/health")).await;
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.json()["status"], status);
    }
    for a in [details, ratings, reviews] {
        a.shutdown().await;
    }
}

#[tokio::test]
async fn unknown_versions_are_refused() {
    let none = closed_port().await;
    let up = upstreams(none, none, none);
    let mut spec = Spec::new(Kind::Reviews);
    spec.version = Some("v4".into());
    spec.ports = vec![0];
    assert!(demo::start(&spec, &up).await.is_err());
    spec.kind = Kind::Details;
    spec.version = Some("v2".into());
    assert!(demo::start(&spec, &up).await.is_err());
}
