//! Pods on the bridge, as root: real namespaces, veths and a bridge. Each test has its own tag
//! and /24; see `common`.

mod common;

use std::net::SocketAddr;

use common::{accept_any, connect, echo_once, host, listen, round_trip, sh};
use node::{Capture, Error};

#[test]
fn two_pods_reach_each_other_over_the_bridge() {
    let Some(t) = common::node("bltecho", 1) else {
        return;
    };
    let a = t.node.create_pod("a", "default", None).expect("pod a");
    let b = t.node.create_pod("b", "shop", None).expect("pod b");
    assert_ne!(a.ip, b.ip);
    assert!(t.node.cidr().contains(&a.ip) && t.node.cidr().contains(&b.ip));
    assert_eq!(a.gateway.to_string(), "10.89.1.1");
    assert_eq!(a.netns, "bltecho-default.a");

    let app = listen(&b, "0.0.0.0:7000");
    let mut client = connect(&a, SocketAddr::new(b.ip.into(), 7000), None).expect("connect");
    let (_, server) = accept_any(&[("b:7000", &app)]);
    assert_eq!(server.peer_addr().expect("peer").ip(), a.ip);
    let echo = std::thread::spawn(move || echo_once(server));
    assert_eq!(round_trip(&mut client, "ping"), "ping");
    echo.join().expect("echo");

    // Inside: loopback up, eth0 with the pod address, default route via the bridge.
    let inside = sh(&a, None, "ip -4 -o addr show; ip route show default");
    assert!(inside.contains("lo    inet 127.0.0.1/8"), "{inside}");
    assert!(
        inside.contains(&format!("eth0    inet {}/24", a.ip)),
        "{inside}"
    );
    assert!(
        inside.contains("default via 10.89.1.1 dev eth0"),
        "{inside}"
    );
}

#[test]
fn run_in_pod_runs_as_the_given_uid_inside_the_namespace() {
    let Some(t) = common::node("bltrun", 2) else {
        return;
    };
    let a = t.node.create_pod("a", "default", None).expect("pod a");
    let out = sh(
        &a,
        Some(1337),
        "id -u; id -g; id -G; ip -4 -o addr show dev eth0",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["1337", "1337", "1337"], "{out}");
    assert!(lines[3].contains(&a.ip.to_string()), "{out}");

    let child = node::run_in_pod(&a, &["true"], None).expect("spawn");
    assert!(child.wait_with_output().expect("wait").status.success());
    assert!(node::run_in_pod(&a, &[], None).is_err());
}

#[test]
fn addresses_are_found_again_after_a_restart_and_reused_lowest_first() {
    let Some(t) = common::node("bltipam", 3) else {
        return;
    };
    let a = t.node.create_pod("a", "default", None).expect("pod a");
    let b = t.node.create_pod("b", "default", None).expect("pod b");
    assert_eq!(
        (a.ip.to_string(), b.ip.to_string()),
        ("10.89.3.2".into(), "10.89.3.3".into())
    );

    // A new process knows nothing but the kernel: same config, same pods.
    let again = node::Node::new(&node::NodeConfig {
        tag: "bltipam".into(),
        cidr: "10.89.3.0/24".parse().expect("cidr"),
    })
    .expect("node");
    let mut pods = again.pods().expect("pods");
    pods.sort_by_key(|p| p.ip);
    assert_eq!(pods, vec![a.clone(), b.clone()]);
    assert_eq!(again.pod("b", "default").expect("lookup"), Some(b.clone()));
    assert_eq!(again.pod("zz", "default").expect("lookup"), None);
    // Creating an existing pod returns it unchanged.
    assert_eq!(again.create_pod("b", "default", None).expect("again"), b);

    assert!(again.delete_pod("a", "default").expect("delete"));
    assert!(!again.delete_pod("a", "default").expect("delete twice"));
    let c = again.create_pod("c", "default", None).expect("pod c");
    assert_eq!(c.ip, a.ip, "the freed address is reused");
    let d = again.create_pod("d", "default", None).expect("pod d");
    assert_eq!(d.ip.to_string(), "10.89.3.4");
}

#[test]
fn the_bridge_is_idempotent_and_a_clashing_cidr_is_refused() {
    let Some(t) = common::node("bltbr", 4) else {
        return;
    };
    t.node.up().expect("up");
    t.node.up().expect("up again");
    let forward = host("iptables", &["-w", "-S", "FORWARD"]);
    assert_eq!(forward.matches("-j BLTBR-FORWARD").count(), 1, "{forward}");
    let chain = host("iptables", &["-w", "-S", "BLTBR-FORWARD"]);
    assert!(
        chain.contains("-A BLTBR-FORWARD -i bltbr0 -o bltbr0 -j ACCEPT"),
        "{chain}"
    );
    assert!(
        chain.contains("-A BLTBR-FORWARD -i bltbr0 -j DROP"),
        "{chain}"
    );
    assert!(
        chain.contains("-A BLTBR-FORWARD -o bltbr0 -j DROP"),
        "{chain}"
    );
    let addr = host("ip", &["-4", "-o", "addr", "show", "dev", "bltbr0"]);
    assert!(addr.contains("inet 10.89.4.1/24"), "{addr}");

    let Some(clash) = common::node("bltclash", 4) else {
        return;
    };
    match clash.node.up() {
        Err(Error::Overlap { link, .. }) => assert_eq!(link, "bltbr0"),
        other => panic!("expected an overlap error, got {other:?}"),
    }
}

#[test]
fn cleanup_leaves_nothing_behind() {
    let Some(t) = common::node("bltclean", 5) else {
        return;
    };
    let a = t
        .node
        .create_pod("a", "default", Some(&Capture::default()))
        .expect("pod a");
    t.node.create_pod("b", "default", None).expect("pod b");
    let mut sleeper = node::run_in_pod(&a, &["sleep", "600"], Some(1337)).expect("sleep");

    let done = t.node.cleanup_all().expect("cleanup");
    let mut namespaces = done.namespaces.clone();
    namespaces.sort();
    assert_eq!(namespaces, ["bltclean-default.a", "bltclean-default.b"]);
    assert_eq!(done.chains, ["BLTCLEAN-FORWARD"]);
    assert!(done.links.contains(&"bltclean0".to_string()), "{done:?}");
    let status = sleeper.wait().expect("wait");
    assert!(!status.success(), "the pod's process was stopped");

    assert!(!host("ip", &["netns", "list"]).contains("bltclean-"));
    let links = host("ip", &["-o", "link", "show"]);
    assert!(!links.contains("bltclean"), "{links}");
    let rules = host("iptables-save", &[]);
    assert!(!rules.contains("BLTCLEAN"), "{rules}");

    // Nothing left means nothing to do the second time.
    assert!(t.node.cleanup_all().expect("cleanup again").is_empty());
}

#[test]
fn bad_names_are_refused_before_anything_is_made() {
    let Some(t) = common::node("bltname", 6) else {
        return;
    };
    for (name, ns) in [
        ("A", "default"),
        ("a", "x.y"),
        ("a/b", "default"),
        ("", "default"),
    ] {
        assert!(
            matches!(t.node.create_pod(name, ns, None), Err(Error::Name(_))),
            "{ns}/{name}"
        );
    }
    assert!(!host("ip", &["netns", "list"]).contains("bltname-"));
}

/// Set in the environment of the copy of this test binary that
/// `without_privileges_the_error_says_what_to_do` runs as an unprivileged uid.
const PROBE_ENV: &str = "BOWLINE_NODE_UNPRIVILEGED_PROBE";

/// The unprivileged side: report what `up` says without privileges.
fn unprivileged_probe() {
    // Run by hand as root, `up` would really create the default bridge: refuse.
    if node::sys::require_privileges().is_ok() {
        println!("PROBE: privileged, not probing");
        return;
    }
    let node = node::Node::new(&node::NodeConfig::default()).expect("node");
    match node.up() {
        Err(e) => println!("PROBE: {e}"),
        Ok(()) => println!("PROBE: ok"),
    }
}

#[test]
fn without_privileges_the_error_says_what_to_do() {
    if std::env::var_os(PROBE_ENV).is_some() {
        unprivileged_probe();
        return;
    }
    let Some(_t) = common::node("bltpriv", 7) else {
        return;
    };
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=1337", "--regid=1337", "--clear-groups", "--"])
        .arg(exe)
        .args([
            "--exact",
            "without_privileges_the_error_says_what_to_do",
            "--nocapture",
        ])
        .env(PROBE_ENV, "1")
        .output()
        .expect("run the probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("PROBE: "))
        .unwrap_or_else(|| panic!("probe printed nothing: {stdout}"));
    assert!(line.contains("needs root"), "{line}");
    assert!(
        line.contains("CAP_NET_ADMIN") && line.contains("setcap"),
        "{line}"
    );
}

#[test]
fn pods_created_at_once_get_distinct_addresses() {
    let Some(t) = common::node("bltmany", 8) else {
        return;
    };
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let node = t.node.clone();
            std::thread::spawn(move || node.create_pod(&format!("p{i}"), "default", None))
        })
        .collect();
    let mut ips: Vec<_> = threads
        .into_iter()
        .map(|h| h.join().expect("thread").expect("create").ip)
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 6, "{ips:?}");
    assert_eq!(t.node.pods().expect("pods").len(), 6);
}
