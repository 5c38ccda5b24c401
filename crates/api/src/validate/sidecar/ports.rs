//! Port-level helpers shared by Sidecar and ServiceEntry: protocol and port names as Istio checks
//! them. The address helpers (`ip_address`, `split_host_port`, `unix_address`) live in
//! [`fields`] and are re-exported here for existing callers.

use super::super::fields;

pub use crate::protocol::Protocol;
pub use crate::validate::fields::{ip_address, is_ip, split_host_port, unix_address};

/// A known protocol name, or empty (sniffed).
pub fn protocol(p: &str) -> Result<(), String> {
    if !p.is_empty() && Protocol::parse(p) == Protocol::Unknown {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_names() {
        assert!(Protocol::parse("Http").is_http());
        assert!(Protocol::parse("https").is_tls());
        assert_eq!(Protocol::parse(""), Protocol::Unknown);
        assert!(protocol("").is_ok());
        assert!(protocol("quic").is_err());
        assert!(port_name("http-1").is_ok());
        assert!(port_name("Http_1").is_err());
    }
}
