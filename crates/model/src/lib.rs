//! The proxy's runtime tables: what a Bowline proxy serves, as plain data, and the precompiled
//! form the data path matches requests against.
//!
//! - [`snapshot`]: [`ProxySnapshot`], the whole configuration of one proxy at one version, and its
//!   [`Listener`]s. Serializable, so it can be dumped (`/config_dump`), read from a file, and later
//!   pushed over the wire by the control plane.
//! - [`route`]: route tables as Istio's VirtualService compiles to Envoy's: virtual hosts, ordered
//!   routes, matches and actions.
//! - [`cluster`]: upstream clusters, their endpoints and load-balancing policy, and
//!   [`ClusterName`] for Istio's `outbound|port|subset|host` names.
//! - [`policy`]: a cluster's compiled DestinationRule traffic policy (hashing, connection
//!   limits, outlier detection, upstream TLS).
//! - [`runtime`]: [`Runtime`], a validated snapshot with regexes compiled, domains indexed and
//!   cluster references resolved to indexes, built once per snapshot, never per request; and the
//!   request matching ([`Runtime::route`]).
//!
//! - [`registry`]: services and endpoints from ServiceEntries, WorkloadEntries and Kubernetes
//!   Services with their Pods and Deployments.
//! - [`dns`]: the per-proxy name table a sidecar's DNS proxy answers from.
//! - [`compile`]: Istio resources seen from one proxy (gateway or sidecar) to its
//!   [`ProxySnapshot`], with warnings for what is not supported yet.
//!
//! No IO and no async runtime: the control plane, the `bowline proxy --config-dir` command and
//! the proxy all depend on this crate, and tests build tables in memory.

pub mod cluster;
pub mod compile;
pub mod dns;
pub mod policy;
pub mod registry;
pub mod route;
pub mod runtime;
pub mod snapshot;

pub use cluster::{Cluster, ClusterName, Endpoint, HealthStatus, LbPolicy, UpstreamProtocol};
pub use compile::{
    build_registry, compile, compile_with, recompile_clusters, CompileError, Compiled,
    ProxyIdentity, Recompiled, Role, SharedRegistry, Warning,
};
pub use dns::DnsName;
pub use policy::{
    ClusterPolicy, ConnectionPool, ConsistentHash, HashAlgorithm, HashKey, OutlierDetection,
    TlsFiles, UpstreamTls, Warmup,
};
pub use registry::Registry;
pub use route::{
    AbortStatus, CorsPolicy, DirectResponse, FaultAbort, FaultDelay, FaultPolicy, ForwardAction,
    HeaderMatch, HeaderOps, MirrorPolicy, QueryParamMatch, Redirect, RegexRewrite, RetryPolicy,
    Rewrite, Route, RouteAction, RouteMatch, RouteTable, StringMatch, VirtualHost, WeightedCluster,
    PER_MILLION,
};
pub use runtime::{BuildError, RequestView, RouteHit, Runtime};
pub use snapshot::{
    Listener, ListenerKind, ProxySnapshot, ServerTls, SniRoute, TlsCertificate, TlsMode,
};
