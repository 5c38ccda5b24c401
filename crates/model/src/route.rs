//! Route tables: the shape Istio's VirtualService compiles to in Envoy's RDS.
//!
//! A [`RouteTable`] holds [`VirtualHost`]s picked by the request's authority; each holds ordered
//! [`Route`]s, and the first whose [`RouteMatch`]es accept the request wins. Regexes here are
//! source text: [`crate::Runtime::build`] compiles them once per snapshot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A named set of virtual hosts, referenced by HTTP listeners.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    pub name: String,
    #[serde(default)]
    pub virtual_hosts: Vec<VirtualHost>,
}

/// Routes for a set of domains.
///
/// Domains match the request authority case-insensitively, as Envoy's do: an exact name
/// (`reviews.default.svc.cluster.local`, or port-qualified `reviews:9080`), a suffix wildcard
/// (`*.example.com`), a prefix wildcard (`reviews.*`), or `*`. Exact beats suffix beats prefix
/// beats `*`, and among wildcards the longest wins. A domain may appear in one virtual host only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// One ordered rule: if any of `matches` accepts the request (or `matches` is empty), `action`
/// applies, with the header operations and CORS policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// For stats and logs; Istio uses the VirtualService's route name.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub matches: Vec<RouteMatch>,
    pub action: RouteAction,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub request_headers: HeaderOps,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub response_headers: HeaderOps,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
}

/// Conditions that must all hold (Istio's HTTPMatchRequest). Unset fields accept anything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Matched against the path without the query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<StringMatch>,
    /// Istio's `ignoreUriCase`: exact and prefix path matches ignore ASCII case.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_path_case: bool,
    /// Every one must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    /// Istio's `withoutHeaders`: the route is skipped if any one of these matches. A
    /// [`HeaderMatch`] with no value here means "header absent".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub without_headers: Vec<HeaderMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<QueryParamMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// `http` or `https`, as the downstream spoke it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// The `:authority` / `Host`, port included if the client sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// The listener port the request arrived on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Labels the source workload must carry (all of them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

/// Istio's StringMatch. Regexes use RE2 syntax (the `regex` crate's) and must match the whole
/// value, as Envoy's `safe_regex` does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

/// A header condition. `value: None` means "present with any value".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name; matched case-insensitively (stored lowercase by the compiler).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<StringMatch>,
}

/// A query parameter condition. `value: None` means "present".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryParamMatch {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<StringMatch>,
}

/// What a matched route does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAction {
    Forward(ForwardAction),
    Redirect(Redirect),
    DirectResponse(DirectResponse),
}

/// Send the request upstream to one of `clusters`, picked by weight per request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAction {
    pub clusters: Vec<WeightedCluster>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
    /// Whole-request timeout in milliseconds, from headers sent to the last response header,
    /// across every attempt. `None` means Istio's default: no timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retry policy as pilot resolves it (the route's, else the mesh default); `None` means
    /// no retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Box<RetryPolicy>>,
    /// Istio's `fault`: delays and aborts injected before the request goes upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Box<FaultPolicy>>,
    /// Istio's `mirror` / `mirrors`: fire-and-forget copies to other clusters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<MirrorPolicy>,
}

/// A cluster and its share of traffic. Weights are relative; Istio's add up to 100.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedCluster {
    pub cluster: String,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// Istio's HTTPRewrite. At most one of the two path rewrites.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// Replaces the part of the path the route's prefix (or exact) match matched; with a regex or
    /// no path match, replaces the whole path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_regex: Option<RegexRewrite>,
    /// Replaces the `Host`/`:authority` sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

/// Replace every match of `pattern` in the path with `substitution` (`$1`-style groups).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexRewrite {
    pub pattern: String,
    pub substitution: String,
}

/// Istio's HTTPRedirect. Unset parts keep the request's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Replaces the whole path (the query string is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// 301 by default; Istio allows 301, 302, 303, 307, 308.
    #[serde(default = "moved_permanently")]
    pub status: u16,
}

fn moved_permanently() -> u16 {
    301
}

/// Istio's HTTPDirectResponse: answer without going upstream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponse {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Header edits, applied in Envoy's order: remove, then set (overwrite), then add (append).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOps {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Istio's CorsPolicy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsPolicy {
    pub allow_origins: Vec<StringMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
}

/// Istio's HTTPRetry as pilot gives it to Envoy: `attempts` is the number of retries after
/// the first try, conditions and status codes are split out of `retryOn`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout_ms: Option<u64>,
    /// Envoy `retry_on` conditions, e.g. `connect-failure`, `5xx`, `retriable-status-codes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_on: Vec<String>,
    /// Statuses retried under `retriable-status-codes` (the numbers in Istio's `retryOn`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retriable_status_codes: Vec<u16>,
    /// Envoy's previous-hosts predicate: a retry prefers an endpoint not tried yet.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub ignore_previous_hosts: bool,
    /// Istio's `retryRemoteLocalities`; kept for locality-aware endpoint selection.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry_remote_localities: bool,
    /// Base interval of the jittered exponential backoff; Envoy's 25 ms when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_base_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A share of requests, in parts per million (Envoy's `FractionalPercent` with a MILLION
/// denominator): Istio's `percentage.value` 12.5 is 125000.
pub const PER_MILLION: u32 = 1_000_000;

/// Istio's HTTPFaultInjection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultDelay {
    pub fixed_delay_ms: u64,
    /// Requests delayed, per million.
    pub per_million: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultAbort {
    pub status: AbortStatus,
    /// Requests aborted, per million.
    pub per_million: u32,
}

/// How an aborted request is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortStatus {
    /// This HTTP status.
    Http(u16),
    /// HTTP 200 with this `grpc-status` in a trailers-only response.
    Grpc(u32),
}

/// One mirror target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorPolicy {
    pub cluster: String,
    /// Requests mirrored, per million.
    #[serde(default = "all")]
    pub per_million: u32,
}

fn all() -> u32 {
    PER_MILLION
}
