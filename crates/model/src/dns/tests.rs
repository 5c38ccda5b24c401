use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::registry::tests::resources;
use crate::registry::vips::{KUBE_SERVICE_CIDR, SERVICE_ENTRY_CIDR};
use api::Resource;

fn registry(yaml: &str) -> Registry {
    let rs = resources(yaml);
    let refs: Vec<&Resource> = rs.iter().collect();
    let mut warnings = Vec::new();
    Registry::build(&refs, "cluster.local", &mut warnings)
}

fn service(name: &str, ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 9080}}]\n---\n"
    )
}

const MIXED: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: fixed, namespace: default}
spec:
  clusterIP: 10.96.0.7
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com, "*.wild.example.com"]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static, namespace: default}
spec:
  hosts: [db.internal]
  addresses: [192.0.2.10]
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.88.0.9}]
"#;

fn in_range(ip: IpAddr, (net, len): (Ipv4Addr, u8)) -> bool {
    let IpAddr::V4(v4) = ip else { return false };
    u32::from(v4) >> (32 - len) == u32::from(net) >> (32 - len)
}

#[test]
fn services_without_addresses_get_vips_from_their_range_and_others_keep_theirs() {
    let r = registry(&format!("{}{}", service("reviews", "default"), MIXED));
    let get = |h: &str| r.services.iter().find(|s| s.hostname == h).unwrap();
    let reviews = get("reviews.default.svc.cluster.local");
    assert!(
        in_range(reviews.vip.unwrap(), KUBE_SERVICE_CIDR),
        "{reviews:?}"
    );
    assert_eq!(reviews.cluster_ip(), reviews.vip);
    let ext = get("api.example.com");
    assert!(in_range(ext.vip.unwrap(), SERVICE_ENTRY_CIDR), "{ext:?}");
    assert_eq!(get("*.wild.example.com").vip, None);
    assert_eq!(get("fixed.default.svc.cluster.local").vip, None);
    assert_eq!(
        get("fixed.default.svc.cluster.local").cluster_ip(),
        Some("10.96.0.7".parse().unwrap())
    );
    assert_eq!(get("db.internal").vip, None);
}

#[test]
fn vips_are_stable_when_services_come_and_go() {
    let names: Vec<String> = (0..40).map(|i| format!("svc{i}")).collect();
    let all: String = names.iter().map(|n| service(n, "shop")).collect();
    let half: String = names
        .iter()
        .step_by(2)
        .map(|n| service(n, "shop"))
        .collect();
    let (a, b) = (registry(&all), registry(&half));
    let mut seen = std::collections::BTreeSet::new();
    for s in &a.services {
        assert!(seen.insert(s.vip.unwrap()), "duplicate VIP {:?}", s.vip);
    }
    for s in &b.services {
        let before = a
            .services
            .iter()
            .find(|o| o.hostname == s.hostname)
            .unwrap();
        assert_eq!(s.vip, before.vip, "{} moved", s.hostname);
    }
    // Computed twice, the same: every proxy agrees.
    assert_eq!(registry(&all), a);
}

#[test]
fn a_taken_address_is_never_handed_out() {
    // Whatever slot `reviews` hashes to, a fixed service holding it pushes it elsewhere.
    let free = registry(&service("reviews", "default"));
    let slot = free.services[0].vip.unwrap();
    let yaml = format!(
        "{}apiVersion: v1\nkind: Service\nmetadata: {{name: holder, namespace: default}}\nspec:\n  clusterIP: {slot}\n  ports: [{{port: 80}}]\n",
        service("reviews", "default")
    );
    let r = registry(&yaml);
    let reviews = r
        .services
        .iter()
        .find(|s| s.kube_name.as_deref() == Some("reviews"))
        .unwrap();
    assert_ne!(reviews.vip, Some(slot));
    assert!(reviews.vip.is_some());
}

#[test]
fn the_table_has_kubernetes_short_names_relative_to_the_proxy_namespace() {
    let r = registry(&format!(
        "{}{}{}",
        service("reviews", "default"),
        service("ratings", "other"),
        MIXED
    ));
    let t = name_table(&r, "default");
    let names: Vec<&str> = t.iter().map(|e| e.name.as_str()).collect();
    for want in [
        "reviews",
        "reviews.default",
        "reviews.default.svc",
        "reviews.default.svc.cluster.local",
        "ratings.other",
        "ratings.other.svc",
        "ratings.other.svc.cluster.local",
        "fixed",
        "api.example.com",
        "db.internal",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(
        !names.contains(&"ratings"),
        "short name of another namespace"
    );
    assert!(!names.iter().any(|n| n.contains('*')));
    let reviews = lookup(&t, "Reviews.default.svc.cluster.local.").unwrap();
    assert_eq!(lookup(&t, "reviews").unwrap().addresses, reviews.addresses);
    assert_eq!(
        lookup(&t, "db.internal").unwrap().addresses,
        ["192.0.2.10".parse::<IpAddr>().unwrap()]
    );
    assert!(lookup(&t, "nothing.example.com").is_none());
    // From `other`, `ratings` is short and `reviews` is not.
    let t = name_table(&r, "other");
    assert!(lookup(&t, "ratings").is_some());
    assert!(lookup(&t, "reviews").is_none());
}
