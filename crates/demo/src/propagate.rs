//! Which inbound headers a Bookinfo service copies onto its outbound calls.
//!
//! A mesh can only stitch a trace together, or route on `end-user`, if the application carries
//! these headers from the request it serves to the requests it makes. The lists follow Istio's
//! samples, one per app, because they differ: productpage derives `end-user` from its session
//! instead of trusting the inbound header, while reviews forwards whatever it was sent.

use http::{HeaderMap, HeaderName};

/// Trace context in every format a mesh may be configured for: Envoy's request id, B3 (multi
/// and single header), W3C, Lightstep, Google Cloud, OpenCensus binary and SkyWalking. Datadog's
/// headers are matched by prefix in [`forward`].
const TRACE: &[&str] = &[
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "traceparent",
    "tracestate",
    "x-ot-span-context",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
];

/// Application context: who is asking and with what credentials.
const SESSION: &[&str] = &["user-agent", "cookie", "authorization", "jwt"];

const DATADOG_PREFIX: &str = "x-datadog-";

/// Who is forwarding, since the lists differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarder {
    /// productpage: everything but `end-user`, which it sets from its own session.
    ProductPage,
    /// details, reviews and ratings: everything, `end-user` included.
    Backend,
}

/// The headers of `inbound` that `who` copies onto its outbound calls.
pub fn forward(inbound: &HeaderMap, who: Forwarder) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in inbound {
        if should_forward(name, who) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

fn should_forward(name: &HeaderName, who: Forwarder) -> bool {
    let n = name.as_str();
    TRACE.contains(&n)
        || SESSION.contains(&n)
        || n.starts_with(DATADOG_PREFIX)
        || (who == Forwarder::Backend && n == "end-user")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn trace_and_session_headers_pass_others_do_not() {
        let inbound = map(&[
            ("x-request-id", "r1"),
            ("x-b3-traceid", "t"),
            ("b3", "t-s-1"),
            ("traceparent", "00-aa-bb-01"),
            ("x-datadog-trace-id", "7"),
            ("x-datadog-tags", "_dd.p.dm=-0"),
            ("cookie", "session=jason"),
            ("host", "productpage:9080"),
            ("content-length", "0"),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        let out = forward(&inbound, Forwarder::Backend);
        for k in [
            "x-request-id",
            "x-b3-traceid",
            "b3",
            "traceparent",
            "x-datadog-trace-id",
            "x-datadog-tags",
            "cookie",
        ] {
            assert_eq!(out.get(k), inbound.get(k), "{k}");
        }
        for k in ["host", "content-length", "x-forwarded-for"] {
            assert!(out.get(k).is_none(), "{k} must not be forwarded");
        }
    }

    #[test]
    fn productpage_does_not_trust_inbound_end_user() {
        let inbound = map(&[("end-user", "mallory"), ("x-request-id", "r")]);
        assert!(forward(&inbound, Forwarder::ProductPage)
            .get("end-user")
            .is_none());
        assert_eq!(
            forward(&inbound, Forwarder::Backend).get("end-user"),
            inbound.get("end-user")
        );
    }

    #[test]
    fn repeated_headers_keep_every_value() {
        let inbound = map(&[("tracestate", "a=1"), ("tracestate", "b=2")]);
        let out = forward(&inbound, Forwarder::Backend);
        let vals: Vec<_> = out.get_all("tracestate").iter().collect();
        assert_eq!(vals.len(), 2);
    }
}
