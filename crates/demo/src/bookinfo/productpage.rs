//! productpage v1: the web front of Bookinfo. It renders one book from details and reviews,
//! keeps a signed-in user in a `session` cookie, and offers the same data as a JSON API.
//!
//! Calls are bounded at 3 s, and reviews is tried twice: the sample's own retry, which Istio's
//! fault-injection task counts on (a 7 s injected delay shows up as ~6 s, not 3 s).

use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};
use tracing::warn;

use super::page;
use super::Upstreams;
use crate::client::Client;
use crate::form;
use crate::propagate::{self, Forwarder};
use crate::server::{self, Request, Response, Service};

const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
const REVIEWS_ATTEMPTS: usize = 2;

/// The cookie holding the signed-in user.
pub const SESSION_COOKIE: &str = "session";

pub const DETAILS_UNAVAILABLE: &str =
    "Sorry, product details are currently unavailable for this book.";
pub const REVIEWS_UNAVAILABLE: &str =
    "Sorry, product reviews are currently unavailable for this book.";
pub const RATINGS_UNAVAILABLE: &str =
    "Sorry, product ratings are currently unavailable for this book.";

/// What an upstream answered, or the error object standing in for it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: StatusCode,
    pub body: Value,
}

impl Fetched {
    pub fn ok(&self) -> bool {
        self.status == StatusCode::OK
    }
}

pub struct ProductPage {
    upstreams: Upstreams,
    client: Client,
}

impl ProductPage {
    pub fn new(upstreams: Upstreams) -> ProductPage {
        ProductPage {
            upstreams,
            client: Client::new(),
        }
    }

    async fn fetch(&self, url: &str, headers: &HeaderMap, unavailable: &str) -> Fetched {
        let failed = |status| Fetched {
            status,
            body: json!({"error": unavailable}),
        };
        match self.client.get(url, headers, UPSTREAM_TIMEOUT).await {
            Ok(reply) if reply.status == StatusCode::OK => match reply.json() {
                Some(body) => Fetched {
                    status: StatusCode::OK,
                    body,
                },
                None => {
                    warn!(%url, "answered 200 with a body that is not JSON");
                    failed(StatusCode::INTERNAL_SERVER_ERROR)
                }
            },
            Ok(reply) => {
                warn!(%url, status = reply.status.as_u16(), "upstream failed");
                failed(reply.status)
            }
            Err(e) => {
                warn!("{e}");
                failed(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    async fn details(&self, id: &str, headers: &HeaderMap) -> Fetched {
        let url = format!("http://{}/details/{id}", self.upstreams.details);
        self.fetch(&url, headers, DETAILS_UNAVAILABLE).await
    }

    async fn reviews(&self, id: &str, headers: &HeaderMap) -> Fetched {
        let url = format!("http://{}/reviews/{id}", self.upstreams.reviews);
        let mut last = None;
        for _ in 0..REVIEWS_ATTEMPTS {
            let got = self.fetch(&url, headers, REVIEWS_UNAVAILABLE).await;
            if got.ok() {
                return got;
            }
            last = Some(got);
        }
        last.unwrap_or_else(|| Fetched {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: json!({"error": REVIEWS_UNAVAILABLE}),
        })
    }

    async fn ratings(&self, id: &str, headers: &HeaderMap) -> Fetched {
        let url = format!("http://{}/ratings/{id}", self.upstreams.ratings);
        self.fetch(&url, headers, RATINGS_UNAVAILABLE).await
    }

    async fn front(&self, req: &Request) -> Response {
        let headers = outbound_headers(req);
        let user = session_user(req);
        let product = &products()[0];
        let id = product.0.to_string();
        let details = self.details(&id, &headers).await;
        let reviews = self.reviews(&id, &headers).await;
        let body = page::product(&page::ProductView {
            user: user.as_deref(),
            title: product.1,
            description_html: product.2,
            details: &details,
            reviews: &reviews,
        });
        server::html(StatusCode::OK, body)
    }

    async fn api(&self, rest: &str, req: &Request) -> Response {
        let headers = outbound_headers(req);
        let (id, what) = match rest.split_once('/') {
            Some((id, what)) => (id, what),
            None => (rest, ""),
        };
        if id.is_empty() {
            return server::not_found();
        }
        let got = match what {
            "" => self.details(id, &headers).await,
            "reviews" => self.reviews(id, &headers).await,
            "ratings" => self.ratings(id, &headers).await,
            _ => return server::not_found(),
        };
        server::json_compact(got.status, &got.body)
    }
}

impl Service for ProductPage {
    async fn call(self: Arc<Self>, req: Request) -> Response {
        let get = matches!(req.head.method, Method::GET | Method::HEAD);
        match (req.path(), get) {
            ("/" | "/index.html", true) => {
                server::html(StatusCode::OK, page::index(&self.upstreams))
            }
            ("/health", true) => server::text(StatusCode::OK, "Product page is healthy"),
            ("/login", _) if req.head.method == Method::POST => login(&req),
            ("/logout", true) => logout(),
            ("/productpage", true) => self.front(&req).await,
            ("/api/v1/products", true) => {
                let list: Vec<Value> = products()
                    .iter()
                    .map(|(id, title, html)| json!({"id": id, "title": title, "descriptionHtml": html}))
                    .collect();
                server::json_compact(StatusCode::OK, &Value::Array(list))
            }
            (p, true) if p.starts_with("/api/v1/products/") => {
                let rest = &p["/api/v1/products/".len()..];
                self.api(rest, &req).await
            }
            ("/" | "/index.html" | "/health" | "/login" | "/logout" | "/productpage", _) => {
                server::method_not_allowed()
            }
            _ => server::not_found(),
        }
    }
}

/// The catalogue: (id, title, description as trusted HTML).
fn products() -> &'static [(i64, &'static str, &'static str)] {
    &[(
        0,
        "The Comedy of Errors",
        "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: \
         The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his \
         shortest and one of his most farcical comedies, with a major part of the humour coming \
         from slapstick and mistaken identity, in addition to puns and word play.",
    )]
}

/// Headers for calls to details, reviews and ratings: the propagated ones, plus `end-user`
/// from the session, which is what lets a VirtualService route a signed-in user differently.
fn outbound_headers(req: &Request) -> HeaderMap {
    let mut headers = propagate::forward(&req.head.headers, Forwarder::ProductPage);
    if let Some(user) = session_user(req) {
        match HeaderValue::from_str(&user) {
            Ok(v) => {
                headers.insert("end-user", v);
            }
            Err(_) => warn!("session user is not a valid header value; not forwarding it"),
        }
    }
    headers
}

fn session_user(req: &Request) -> Option<String> {
    form::cookie(&req.head.headers, SESSION_COOKIE).filter(|u| !u.is_empty())
}

/// `POST /login` with form fields `username` and `passwd` (any password is accepted, as in the
/// sample): remember the user and go back to the product page.
fn login(req: &Request) -> Response {
    let mut fields = form::parse_urlencoded(req.query());
    let is_form = req
        .header(CONTENT_TYPE.as_str())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        fields.extend(form::parse_urlencoded(&String::from_utf8_lossy(&req.body)));
    }
    let mut resp = redirect_to_productpage();
    if let Some(user) = form::first(&fields, "username").filter(|u| !u.is_empty()) {
        let cookie = format!(
            "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax",
            form::encode(&user)
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().insert(SET_COOKIE, v);
        }
    }
    resp
}

fn logout() -> Response {
    let mut resp = redirect_to_productpage();
    resp.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("session=; Path=/; HttpOnly; Max-Age=0"),
    );
    resp
}

fn redirect_to_productpage() -> Response {
    let mut resp = server::html(
        StatusCode::FOUND,
        "<a href=\"/productpage\">/productpage</a>\n".to_owned(),
    );
    resp.headers_mut()
        .insert(LOCATION, HeaderValue::from_static("/productpage"));
    resp
}
