//! Istio's demo applications, with the contracts of Istio's samples, so Istio's tasks (traffic
//! shifting, fault injection, header routing, TCP routing) can run against Bowline unchanged.
//!
//! - [`bookinfo`]: productpage, details, reviews (v1/v2/v3) and ratings.
//! - [`httpbin`]: the request-echo service.
//! - [`tcp_echo`]: the line-echo TCP service.
//! - [`helloworld`]: the version-and-instance greeter.
//! - [`server`]: the HTTP server they all run on; [`client`]: the client Bookinfo calls with.
//! - [`propagate`]: which headers each app carries from its request to its calls.
//! - [`form`]: decoding of query strings, forms and cookies.
//!
//! [`start`] runs one app described by a [`Spec`]; the `bowline demo-app` subcommand wraps it.

pub mod bookinfo;
pub mod client;
pub mod form;
pub mod helloworld;
pub mod httpbin;
pub mod propagate;
pub mod server;
pub mod tcp_echo;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use server::Server;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown demo app {0:?} (known: {known})", known = Kind::NAMES.join(", "))]
    UnknownKind(String),
    #[error("{kind} has no version {version:?} (known: {known})")]
    UnknownVersion {
        kind: Kind,
        version: String,
        known: &'static str,
    },
    #[error(transparent)]
    Bookinfo(#[from] bookinfo::Error),
    #[error(transparent)]
    Server(#[from] server::Error),
}

/// Which demo app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ProductPage,
    Details,
    Reviews,
    Ratings,
    Httpbin,
    TcpEcho,
    Helloworld,
}

impl Kind {
    pub const NAMES: &'static [&'static str] = &[
        "productpage",
        "details",
        "reviews",
        "ratings",
        "httpbin",
        "tcp-echo",
        "helloworld",
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::ProductPage => "productpage",
            Kind::Details => "details",
            Kind::Reviews => "reviews",
            Kind::Ratings => "ratings",
            Kind::Httpbin => "httpbin",
            Kind::TcpEcho => "tcp-echo",
            Kind::Helloworld => "helloworld",
        }
    }

    /// The port Istio's sample listens on.
    pub fn default_port(self) -> u16 {
        match self {
            Kind::ProductPage | Kind::Details | Kind::Reviews | Kind::Ratings => bookinfo::PORT,
            Kind::Httpbin => httpbin::PORT,
            Kind::TcpEcho => tcp_echo::PORT,
            Kind::Helloworld => helloworld::PORT,
        }
    }

    fn default_version(self) -> &'static str {
        "v1"
    }
}

impl FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Kind, Error> {
        Ok(match s {
            "productpage" => Kind::ProductPage,
            "details" => Kind::Details,
            "reviews" => Kind::Reviews,
            "ratings" => Kind::Ratings,
            "httpbin" => Kind::Httpbin,
            "tcp-echo" => Kind::TcpEcho,
            "helloworld" => Kind::Helloworld,
            _ => return Err(Error::UnknownKind(s.to_owned())),
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One app to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub kind: Kind,
    /// The sample's version label (`v1`...); None for the app's default.
    pub version: Option<String>,
    /// Ports to listen on; empty for the app's default port.
    pub ports: Vec<u16>,
    /// tcp-echo's prefix; None for the version's word (`v1` "one", `v2` "two", else "hello").
    pub word: Option<String>,
    pub bind: IpAddr,
}

impl Spec {
    pub fn new(kind: Kind) -> Spec {
        Spec {
            kind,
            version: None,
            ports: Vec::new(),
            word: None,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }

    fn version(&self) -> &str {
        self.version
            .as_deref()
            .unwrap_or_else(|| self.kind.default_version())
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        let ports = if self.ports.is_empty() {
            vec![self.kind.default_port()]
        } else {
            self.ports.clone()
        };
        ports
            .into_iter()
            .map(|p| SocketAddr::new(self.bind, p))
            .collect()
    }

    fn only_v1(&self) -> Result<(), Error> {
        match self.version() {
            "v1" => Ok(()),
            v => Err(Error::UnknownVersion {
                kind: self.kind,
                version: v.to_owned(),
                known: "v1",
            }),
        }
    }
}

/// One bound port of a running app.
enum Listener {
    Http(Server),
    Tcp(tcp_echo::EchoServer),
}

impl Listener {
    fn local_addr(&self) -> SocketAddr {
        match self {
            Listener::Http(s) => s.local_addr(),
            Listener::Tcp(s) => s.local_addr(),
        }
    }

    async fn shutdown(self) {
        match self {
            Listener::Http(s) => s.shutdown().await,
            Listener::Tcp(s) => s.shutdown().await,
        }
    }
}

/// A running app: its listeners, until [`Running::shutdown`].
pub struct Running {
    listeners: Vec<Listener>,
}

impl Running {
    /// The bound addresses, in the order of [`Spec::ports`].
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(Listener::local_addr).collect()
    }

    /// Stops accepting and drains in-flight work.
    pub async fn shutdown(self) {
        for l in self.listeners {
            l.shutdown().await;
        }
    }
}

/// Starts the app `spec` describes, with Bookinfo's upstreams taken from `upstreams`. If any
/// port cannot be bound, the ones already bound are closed again.
pub async fn start(spec: &Spec, upstreams: &bookinfo::Upstreams) -> Result<Running, Error> {
    let mut running = Running {
        listeners: Vec::new(),
    };
    for addr in spec.addrs() {
        match start_one(spec, upstreams, addr).await {
            Ok(l) => running.listeners.push(l),
            Err(e) => {
                running.shutdown().await;
                return Err(e);
            }
        }
    }
    Ok(running)
}

async fn start_one(
    spec: &Spec,
    upstreams: &bookinfo::Upstreams,
    addr: SocketAddr,
) -> Result<Listener, Error> {
    let http = match spec.kind {
        Kind::ProductPage => {
            spec.only_v1()?;
            let app = bookinfo::productpage::ProductPage::new(upstreams.clone());
            Server::start(addr, app).await?
        }
        Kind::Details => {
            spec.only_v1()?;
            Server::start(addr, bookinfo::details::Details).await?
        }
        Kind::Reviews => {
            let version = spec.version().parse()?;
            let app = bookinfo::reviews::Reviews::new(version, upstreams.ratings.clone());
            Server::start(addr, app).await?
        }
        Kind::Ratings => {
            spec.only_v1()?;
            Server::start(addr, bookinfo::ratings::Ratings::new()).await?
        }
        // Istio's mirroring task runs the same httpbin as v1 and v2: the version is a label.
        Kind::Httpbin => Server::start(addr, httpbin::Httpbin).await?,
        Kind::Helloworld => {
            Server::start(addr, helloworld::Helloworld::new(spec.version())).await?
        }
        Kind::TcpEcho => {
            let word = match (
                &spec.word,
                tcp_echo::word_for_version(spec.version.as_deref()),
            ) {
                (Some(w), _) => w.as_str(),
                (None, Some(w)) => w,
                (None, None) => {
                    return Err(Error::UnknownVersion {
                        kind: spec.kind,
                        version: spec.version().to_owned(),
                        known: "v1, v2 (or give --word)",
                    })
                }
            };
            return Ok(Listener::Tcp(
                tcp_echo::EchoServer::start(addr, word).await?,
            ));
        }
    };
    Ok(Listener::Http(http))
}

/// This machine's name, as the samples report it (they read `HOSTNAME`, which Kubernetes sets
/// to the pod name).
pub fn hostname() -> String {
    if let Ok(h) = std::env::var("HOSTNAME") {
        if !h.is_empty() {
            return h;
        }
    }
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
