//! Port protocols as Istio decides them: from the port's `appProtocol`, else the prefix of its
//! name before the first `-` (`http-web`, `grpc`, `tcp-db`), else well-known port numbers, else
//! unknown, which the proxy sniffs.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    Http,
    Http2,
    Https,
    Grpc,
    GrpcWeb,
    HttpProxy,
    Tcp,
    Tls,
    Udp,
    Mongo,
    Redis,
    Mysql,
    /// Istio's "UnsupportedProtocol": the proxy detects the protocol from the first bytes.
    Unknown,
}

/// Ports whose protocol Istio knows without a name: SMTP, DNS, MySQL, MongoDB.
const WELL_KNOWN_TCP: [i64; 4] = [25, 53, 3306, 27017];

impl Protocol {
    /// Istio's protocol names (`HTTP`, `GRPC-Web`, `TCP`...), case-insensitive.
    pub fn parse(s: &str) -> Protocol {
        match s.to_ascii_lowercase().as_str() {
            "http" => Protocol::Http,
            "http2" => Protocol::Http2,
            "https" => Protocol::Https,
            "grpc" => Protocol::Grpc,
            "grpc-web" => Protocol::GrpcWeb,
            "http_proxy" => Protocol::HttpProxy,
            "tcp" => Protocol::Tcp,
            "tls" => Protocol::Tls,
            "udp" => Protocol::Udp,
            "mongo" => Protocol::Mongo,
            "redis" => Protocol::Redis,
            "mysql" => Protocol::Mysql,
            _ => Protocol::Unknown,
        }
    }

    /// The protocol of a Kubernetes Service port (or a named container port).
    pub fn of_port(
        port: i64,
        name: &str,
        l4: Option<&str>,
        app_protocol: Option<&str>,
    ) -> Protocol {
        if l4.is_some_and(|p| p.eq_ignore_ascii_case("UDP")) {
            return Protocol::Udp;
        }
        let mut name = name;
        if let Some(app) = app_protocol {
            match app {
                "kubernetes.io/h2c" => return Protocol::Http2,
                "kubernetes.io/ws" => return Protocol::Http,
                "kubernetes.io/wss" => return Protocol::Https,
                _ => name = app,
            }
        }
        if name.len() >= 8 && name[..8].eq_ignore_ascii_case("grpc-web") {
            return Protocol::GrpcWeb;
        }
        let prefix = name.split('-').next().unwrap_or("");
        match Protocol::parse(prefix) {
            Protocol::Unknown if WELL_KNOWN_TCP.contains(&port) => Protocol::Tcp,
            p => p,
        }
    }

    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http
                | Protocol::Http2
                | Protocol::HttpProxy
                | Protocol::Grpc
                | Protocol::GrpcWeb
        )
    }
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc | Protocol::GrpcWeb)
    }
    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            Protocol::Tcp
                | Protocol::Https
                | Protocol::Tls
                | Protocol::Mongo
                | Protocol::Redis
                | Protocol::Mysql
        )
    }
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Http2 => "HTTP2",
            Protocol::Https => "HTTPS",
            Protocol::Grpc => "GRPC",
            Protocol::GrpcWeb => "GRPC-Web",
            Protocol::HttpProxy => "HTTP_PROXY",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
            Protocol::Udp => "UDP",
            Protocol::Mongo => "Mongo",
            Protocol::Redis => "Redis",
            Protocol::Mysql => "MySQL",
            Protocol::Unknown => "UnsupportedProtocol",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_protocols_follow_istio() {
        assert_eq!(Protocol::of_port(9080, "http", None, None), Protocol::Http);
        assert_eq!(
            Protocol::of_port(9080, "http-web", None, None),
            Protocol::Http
        );
        assert_eq!(
            Protocol::of_port(9080, "grpc-web-x", None, None),
            Protocol::GrpcWeb
        );
        assert_eq!(
            Protocol::of_port(9080, "web", None, Some("http2")),
            Protocol::Http2
        );
        assert_eq!(
            Protocol::of_port(9080, "x", None, Some("kubernetes.io/h2c")),
            Protocol::Http2
        );
        assert_eq!(Protocol::of_port(3306, "", None, None), Protocol::Tcp);
        assert_eq!(Protocol::of_port(8080, "", None, None), Protocol::Unknown);
        assert_eq!(
            Protocol::of_port(53, "dns", Some("UDP"), None),
            Protocol::Udp
        );
        assert_eq!(Protocol::of_port(80, "HTTP", None, None), Protocol::Http);
    }
}
