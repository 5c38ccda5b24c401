//! The names of everything this crate creates, all derived from one short tag so that cleanup can
//! find every object by prefix, even after a crash lost every record of what was made.
//!
//! For the default tag `bowline`: bridge `bowline0`, pod namespace `bowline-<ns>.<name>`, host
//! side of a pod's veth `bowline-<hex address index>`, host iptables chain `BOWLINE-FORWARD`.
//! The tag has no `-` and `.` separates the Kubernetes namespace (a DNS label, so never a `.`)
//! from the pod name (which may hold dots), so every namespace name parses back unambiguously.

/// Errors in names.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("tag {0:?} must be 1 to 8 characters of a-z and 0-9, starting with a letter (it prefixes link names, which Linux caps at 15 characters)")]
    Tag(String),
    #[error("namespace {0:?} must be a DNS label: 1 to 63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit")]
    Namespace(String),
    #[error("pod name {0:?} must be a DNS subdomain: dot-separated labels of a-z, 0-9 and '-', at most 253 characters")]
    PodName(String),
    #[error(
        "pod name {0:?} is too long for a network namespace name (at most {1} characters here)"
    )]
    TooLong(String, usize),
}

/// Linux allows at most this many bytes in an interface name (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;
/// A named network namespace is a file under /run/netns.
const FILE_NAME_MAX: usize = 255;

/// The tag that prefixes every object one node network owns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn new(tag: &str) -> Result<Tag, NameError> {
        let ok = (1..=8).contains(&tag.len())
            && tag.starts_with(|c: char| c.is_ascii_lowercase())
            && tag
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if ok {
            Ok(Tag(tag.to_string()))
        } else {
            Err(NameError::Tag(tag.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bridge every pod's veth is attached to.
    pub fn bridge(&self) -> String {
        format!("{}0", self.0)
    }

    /// Prefix of pod namespaces and of the host ends of pod veths.
    pub fn prefix(&self) -> String {
        format!("{}-", self.0)
    }

    /// The host end of the veth of the pod at `index` in the address pool. Hex keeps a /8's
    /// 24-bit index within six characters, so that tag + '-' + index fits in 15.
    pub fn host_link(&self, index: u32) -> String {
        let name = format!("{}-{index:x}", self.0);
        debug_assert!(name.len() <= IFNAME_MAX);
        name
    }

    /// The pool index encoded in a host link name of ours.
    pub fn parse_host_link(&self, link: &str) -> Option<u32> {
        let hex = link.strip_prefix(&self.prefix())?;
        if hex.is_empty() || hex.len() > 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(hex, 16).ok()
    }

    /// The network namespace of pod `name` in Kubernetes namespace `namespace`.
    pub fn netns(&self, namespace: &str, name: &str) -> Result<String, NameError> {
        check_namespace(namespace)?;
        check_pod_name(name)?;
        let netns = format!("{}{namespace}.{name}", self.prefix());
        if netns.len() > FILE_NAME_MAX {
            let room = FILE_NAME_MAX - (netns.len() - name.len());
            return Err(NameError::TooLong(name.to_string(), room));
        }
        Ok(netns)
    }

    /// `(namespace, name)` of a network namespace of ours, `None` for anyone else's.
    pub fn parse_netns(&self, netns: &str) -> Option<(String, String)> {
        let rest = netns.strip_prefix(&self.prefix())?;
        let (namespace, name) = rest.split_once('.')?;
        (check_namespace(namespace).is_ok() && check_pod_name(name).is_ok())
            .then(|| (namespace.to_string(), name.to_string()))
    }

    /// The host iptables chain holding this node's forwarding rules.
    pub fn forward_chain(&self) -> String {
        format!("{}-FORWARD", self.0.to_ascii_uppercase())
    }

    /// Written into the alias of every host link, for whoever reads `ip link`.
    pub fn link_alias(&self, namespace: &str, name: &str) -> String {
        format!("{}:{namespace}/{name}", self.0)
    }
}

fn is_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn check_namespace(namespace: &str) -> Result<(), NameError> {
    if is_label(namespace) {
        Ok(())
    } else {
        Err(NameError::Namespace(namespace.to_string()))
    }
}

fn check_pod_name(name: &str) -> Result<(), NameError> {
    if name.len() <= 253 && name.split('.').all(is_label) {
        Ok(())
    } else {
        Err(NameError::PodName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_short_lowercase_and_dashless() {
        assert!(Tag::new("bowline").is_ok());
        assert!(Tag::new("blt1").is_ok());
        for bad in ["", "Bowline", "bow-line", "1abc", "toolongtag", "a.b"] {
            assert_eq!(Tag::new(bad), Err(NameError::Tag(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn names_derive_from_the_tag_and_parse_back() {
        let tag = Tag::new("bowline").unwrap();
        assert_eq!(tag.bridge(), "bowline0");
        assert_eq!(tag.forward_chain(), "BOWLINE-FORWARD");
        let netns = tag.netns("default", "reviews-v1.x").unwrap();
        assert_eq!(netns, "bowline-default.reviews-v1.x");
        assert_eq!(
            tag.parse_netns(&netns),
            Some(("default".to_string(), "reviews-v1.x".to_string()))
        );
        assert_eq!(tag.parse_netns("bowline0"), None);
        assert_eq!(tag.parse_netns("other-default.x"), None);
        assert_eq!(tag.parse_netns("bowlinex-default.x"), None);
    }

    #[test]
    fn host_links_fit_in_an_interface_name_for_a_slash_8() {
        let tag = Tag::new("abcdefgh").unwrap();
        let link = tag.host_link(0xff_ff_fe);
        assert_eq!(link, "abcdefgh-fffffe");
        assert!(link.len() <= IFNAME_MAX);
        assert_eq!(tag.parse_host_link(&link), Some(0xff_ff_fe));
        assert_eq!(tag.parse_host_link("abcdefgh-zz"), None);
        assert_eq!(tag.parse_host_link("abcdefgh0"), None);
    }

    #[test]
    fn kubernetes_names_are_checked() {
        let tag = Tag::new("bowline").unwrap();
        assert!(tag.netns("Default", "a").is_err());
        assert!(tag.netns("a.b", "a").is_err());
        assert!(tag.netns("ns", "a/b").is_err());
        assert!(tag.netns("ns", "-a").is_err());
        assert!(tag.netns("ns", "").is_err());
        // /run/netns/<name> is a file name: at most 255 bytes, fewer than Kubernetes allows.
        let long = vec!["a".repeat(63); 3].join(".");
        assert_eq!(
            tag.netns(&"n".repeat(63), &long),
            Err(NameError::TooLong(long.clone(), 183))
        );
        assert!(tag.netns(&"n".repeat(63), &long[..183]).is_ok());
    }
}
