//! Port-level helpers shared by Sidecar and ServiceEntry: protocol names as Istio parses them, port
//! names, Unix socket addresses and `host:port` splitting with Go's rules.

use super::super::fields;

/// A port protocol, parsed case-insensitively as Istio does; anything else is `Unsupported`
/// (which for an empty string means "sniff").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Grpc,
    GrpcWeb,
    Http,
    HttpProxy,
    Http2,
    Https,
    Tls,
    Mongo,
    Redis,
    Mysql,
    Unsupported,
}

impl Protocol {
    pub fn parse(s: &str) -> Protocol {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "grpc" => Protocol::Grpc,
            "grpc-web" => Protocol::GrpcWeb,
            "http" => Protocol::Http,
            "http_proxy" => Protocol::HttpProxy,
            "http2" => Protocol::Http2,
            "https" => Protocol::Https,
            "tls" => Protocol::Tls,
            "mongo" => Protocol::Mongo,
            "redis" => Protocol::Redis,
            "mysql" => Protocol::Mysql,
            _ => Protocol::Unsupported,
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
}

/// A known protocol name, or empty (sniffed).
pub fn protocol(p: &str) -> Result<(), String> {
    if !p.is_empty() && Protocol::parse(p) == Protocol::Unsupported {
        return Err(format!("unsupported protocol: {p}"));
    }
    Ok(())
}

/// Port names are DNS-1123 labels.
pub fn port_name(name: &str) -> Result<(), String> {
    if fields::is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!("invalid port name: {name}"))
    }
}

/// The part after `unix://`: an absolute file path, or `@name` for an abstract socket.
pub fn unix_address(addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Err("unix address must not be empty".into());
    }
    if addr.starts_with('@') {
        return Ok(());
    }
    if !addr.starts_with('/') || addr.ends_with('/') {
        return Err(format!("{addr} is not an absolute path to a file"));
    }
    Ok(())
}

/// Go's `net.SplitHostPort`: `host:port` or `[host]:port`, with its error wording.
pub fn split_host_port(hp: &str) -> Result<(&str, &str), String> {
    let err = |why: &str| Err(format!("address {hp}: {why}"));
    let Some(colon) = hp.rfind(':') else {
        return err("missing port in address");
    };
    let (host, j, k) = if hp.starts_with('[') {
        let Some(end) = hp.find(']') else {
            return err("missing ']' in address");
        };
        if end + 1 == hp.len() {
            return err("missing port in address");
        }
        if end + 1 != colon {
            if hp.as_bytes()[end + 1] == b':' {
                return err("too many colons in address");
            }
            return err("missing port in address");
        }
        (&hp[1..end], 1, end + 1)
    } else {
        let host = &hp[..colon];
        if host.contains(':') {
            return err("too many colons in address");
        }
        (host, 0, 0)
    };
    if hp[j..].contains('[') {
        return err("unexpected '[' in address");
    }
    if hp[k..].contains(']') {
        return err("unexpected ']' in address");
    }
    Ok((host, &hp[colon + 1..]))
}

/// An IP address as Istio's `ValidateIPAddress` takes it (IPv6 zones allowed).
pub fn ip_address(addr: &str) -> Result<(), String> {
    if is_ip(addr) {
        Ok(())
    } else {
        Err(format!("{addr} is not a valid IP"))
    }
}

/// Go's `netip.ParseAddr`: an IPv4 or IPv6 address, IPv6 possibly with a `%zone`.
pub fn is_ip(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    match s.split_once('%') {
        Some((a, zone)) if !zone.is_empty() && a.contains(':') => {
            a.parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("127.0.0.1:80"), Ok(("127.0.0.1", "80")));
        assert_eq!(split_host_port("[::1]:80"), Ok(("::1", "80")));
        assert_eq!(split_host_port(":80"), Ok(("", "80")));
        assert!(split_host_port("127.0.0.1").is_err());
        assert!(split_host_port("::1:80").is_err());
        assert!(split_host_port("[::1]80").is_err());
        assert!(split_host_port("[::1]").is_err());
    }

    #[test]
    fn protocols_and_names() {
        assert!(Protocol::parse("Http").is_http());
        assert!(Protocol::parse("https").is_tls());
        assert_eq!(Protocol::parse(""), Protocol::Unsupported);
        assert!(protocol("").is_ok());
        assert!(protocol("quic").is_err());
        assert!(port_name("http-1").is_ok());
        assert!(port_name("Http_1").is_err());
        assert!(unix_address("@abstract").is_ok());
        assert!(unix_address("/var/run/sock").is_ok());
        assert!(unix_address("relative").is_err());
        assert!(unix_address("/dir/").is_err());
        assert!(is_ip("fe80::1%eth0"));
        assert!(!is_ip("1.2.3.4%eth0"));
    }
}
