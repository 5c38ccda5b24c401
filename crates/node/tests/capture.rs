//! Istio-style capture in real pods, as root: where connections and DNS queries actually land,
//! and what `original_dst` says about them. Each test has its own tag and /24; see `common`.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::{accept_any, assert_idle, connect, echo_once, listen, round_trip, sh, udp};
use node::{original_dst, Capture};

fn addr(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

#[test]
fn outbound_tcp_lands_on_15001_with_the_original_destination() {
    let Some(t) = common::node("bltout", 11) else {
        return;
    };
    let a = t
        .node
        .create_pod("a", "default", Some(&Capture::default()))
        .expect("pod a");
    let b = t.node.create_pod("b", "default", None).expect("pod b");
    let outbound = listen(&a, "0.0.0.0:15001");
    let app_b = listen(&b, "0.0.0.0:7000");

    let mut client = connect(&a, addr(b.ip, 7000), None).expect("connect");
    let (at, proxied) = accept_any(&[("a:15001", &outbound), ("b:7000", &app_b)]);
    assert_eq!(at, "a:15001");
    assert_eq!(
        original_dst(&proxied).expect("original dst"),
        addr(b.ip, 7000)
    );
    let echo = std::thread::spawn(move || echo_once(proxied));
    assert_eq!(round_trip(&mut client, "via proxy"), "via proxy");
    echo.join().expect("echo");
    assert_idle("b:7000", &app_b);

    // Removing capture lets the same connection through to b.
    t.node.set_capture(&a, None).expect("uncapture");
    let _direct = connect(&a, addr(b.ip, 7000), None).expect("connect");
    assert_eq!(
        accept_any(&[("a:15001", &outbound), ("b:7000", &app_b)]).0,
        "b:7000"
    );
}

#[test]
fn inbound_tcp_lands_on_15006_except_excluded_ports() {
    let Some(t) = common::node("bltin", 12) else {
        return;
    };
    let capture = Capture {
        exclude_inbound_ports: vec![9090],
        ..Capture::default()
    };
    let a = t.node.create_pod("a", "default", None).expect("pod a");
    let b = t
        .node
        .create_pod("b", "default", Some(&capture))
        .expect("pod b");
    let inbound = listen(&b, "0.0.0.0:15006");
    let app = listen(&b, "0.0.0.0:7000");
    let health = listen(&b, "0.0.0.0:15021");
    let excluded = listen(&b, "0.0.0.0:9090");
    let all = [
        ("b:15006", &inbound),
        ("b:7000", &app),
        ("b:15021", &health),
        ("b:9090", &excluded),
    ];

    let _c = connect(&a, addr(b.ip, 7000), None).expect("connect 7000");
    let (at, captured) = accept_any(&all);
    assert_eq!(at, "b:15006");
    assert_eq!(
        original_dst(&captured).expect("original dst"),
        addr(b.ip, 7000)
    );
    assert_eq!(captured.peer_addr().expect("peer").ip(), IpAddr::V4(a.ip));

    for (port, want) in [(15021, "b:15021"), (9090, "b:9090")] {
        let _c = connect(&a, addr(b.ip, port), None).expect("connect excluded");
        assert_eq!(accept_any(&all).0, want, "port {port}");
    }
}

#[test]
fn the_proxy_uid_is_not_captured_and_other_uids_are() {
    let Some(t) = common::node("bltuid", 13) else {
        return;
    };
    let a = t
        .node
        .create_pod("a", "default", Some(&Capture::default()))
        .expect("pod a");
    let b = t.node.create_pod("b", "default", None).expect("pod b");
    let outbound = listen(&a, "0.0.0.0:15001");
    let app_b = listen(&b, "0.0.0.0:7000");
    let all = [("a:15001", &outbound), ("b:7000", &app_b)];
    let script = format!(
        "exec 3<>/dev/tcp/{}/7000; echo hello >&3; read -r line <&3; echo \"$line\"",
        b.ip
    );

    for (uid, want) in [
        (Some(1337), "b:7000"),
        (Some(1000), "a:15001"),
        (None, "a:15001"),
    ] {
        let script = script.clone();
        let a2 = a.clone();
        let client = std::thread::spawn(move || sh(&a2, uid, &script));
        let (at, server) = accept_any(&all);
        assert_eq!(at, want, "uid {uid:?}");
        echo_once(server);
        assert_eq!(client.join().expect("client").trim(), "hello");
    }
}

#[test]
fn loopback_is_handled_as_istio_does() {
    let Some(t) = common::node("bltlo", 14) else {
        return;
    };
    let b = t
        .node
        .create_pod("b", "default", Some(&Capture::default()))
        .expect("pod b");
    let inbound = listen(&b, "0.0.0.0:15006");
    let outbound = listen(&b, "0.0.0.0:15001");
    let app = listen(&b, "0.0.0.0:7000");
    let all = [("15006", &inbound), ("15001", &outbound), ("7000", &app)];
    let pod_app = addr(b.ip, 7000);
    let passthrough: SocketAddr = "127.0.0.6:0".parse().expect("addr");

    // The proxy's inbound passthrough connects from 127.0.0.6: straight to the app.
    let _c = connect(&b, pod_app, Some(passthrough)).expect("passthrough");
    assert_eq!(accept_any(&all).0, "7000");
    // The app calling its own pod address or localhost: straight to the app.
    let _c = connect(&b, pod_app, None).expect("self");
    assert_eq!(accept_any(&all).0, "7000");
    let _c = connect(&b, "127.0.0.1:7000".parse().expect("addr"), None).expect("localhost");
    assert_eq!(accept_any(&all).0, "7000");
    // The proxy calling its own pod's address (a VIP that resolved here) goes through inbound.
    let script = format!("exec 3<>/dev/tcp/{}/7000; echo hi >&3", b.ip);
    let b2 = b.clone();
    let client = std::thread::spawn(move || sh(&b2, Some(1337), &script));
    let (at, captured) = accept_any(&all);
    assert_eq!(at, "15006");
    assert_eq!(original_dst(&captured).expect("original dst"), pod_app);
    client.join().expect("client");
}

#[test]
fn dns_to_any_server_goes_to_15053_except_from_the_proxy() {
    let Some(t) = common::node("bltdns", 15) else {
        return;
    };
    let a = t
        .node
        .create_pod("a", "default", Some(&Capture::default()))
        .expect("pod a");
    let b = t.node.create_pod("b", "default", None).expect("pod b");
    // Istio's DNS proxy runs as the proxy uid, and only its replies go back through the
    // conntrack zone (2) that un-NATs them for the app.
    let dns_udp = udp(&a, "127.0.0.1:15053", Some(1337));
    let dns_tcp = listen(&a, "127.0.0.1:15053");
    let real_dns = udp(&b, "0.0.0.0:53", None);
    // b's address and one no pod has: the rules match port 53, whatever the server.
    let nobody = Ipv4Addr::new(10, 89, 15, 200);

    for server in [b.ip, nobody] {
        let query = format!("query for {server}");
        let client = udp(&a, "0.0.0.0:0", None);
        client
            .send_to(query.as_bytes(), addr(server, 53))
            .expect("send");
        let mut buf = [0u8; 64];
        let (n, from) = dns_udp.recv_from(&mut buf).expect("captured query");
        assert_eq!(&buf[..n], query.as_bytes());
        // The answer goes back through the reverse NAT: the client sees it come from the server.
        dns_udp.send_to(b"answer", from).expect("answer");
        let (n, answered_by) = client.recv_from(&mut buf).expect("answer");
        assert_eq!((&buf[..n], answered_by), (&b"answer"[..], addr(server, 53)));

        let _c = connect(&a, addr(server, 53), None).expect("tcp dns");
        let (_, captured) = accept_any(&[("a:15053", &dns_tcp)]);
        assert_eq!(
            original_dst(&captured).expect("original dst"),
            addr(server, 53)
        );
    }

    // The proxy's own queries go to the real server.
    sh(
        &a,
        Some(1337),
        &format!("echo upstream > /dev/udp/{}/53", b.ip),
    );
    let mut buf = [0u8; 64];
    let (n, from) = real_dns.recv_from(&mut buf).expect("upstream query");
    assert_eq!(
        (&buf[..n], from.ip()),
        (&b"upstream\n"[..], IpAddr::V4(a.ip))
    );
}

#[test]
fn capture_rules_are_istios_chains_and_reapplying_is_idempotent() {
    let Some(t) = common::node("bltrules", 16) else {
        return;
    };
    let capture = Capture::default();
    let a = t
        .node
        .create_pod("a", "default", Some(&capture))
        .expect("pod a");
    t.node.set_capture(&a, Some(&capture)).expect("again");
    let again = t
        .node
        .create_pod("a", "default", Some(&capture))
        .expect("create again");
    assert_eq!(again, a);
    let saved = node::capture::save(&a.netns).expect("save");
    for chain in [
        "ISTIO_INBOUND",
        "ISTIO_IN_REDIRECT",
        "ISTIO_OUTPUT",
        "ISTIO_REDIRECT",
    ] {
        assert!(
            saved.contains(&format!(":{chain} - ")),
            "{chain} in\n{saved}"
        );
    }
    assert_eq!(
        saved.matches("-A OUTPUT -j ISTIO_OUTPUT\n").count(),
        1,
        "{saved}"
    );
    assert_eq!(
        saved
            .matches("-A PREROUTING -p tcp -j ISTIO_INBOUND")
            .count(),
        1
    );
    assert!(saved.contains("--to-ports 15001") && saved.contains("--to-ports 15006"));

    t.node.set_capture(&a, None).expect("remove");
    let saved = node::capture::save(&a.netns).expect("save");
    assert!(!saved.contains("ISTIO"), "{saved}");
}

#[test]
fn original_dst_reads_ipv6_and_v4_mapped_connections() {
    let Some(t) = common::node("bltodst", 17) else {
        return;
    };
    let a = t
        .node
        .create_pod("a", "default", Some(&Capture::default()))
        .expect("pod a");
    let b = t.node.create_pod("b", "default", None).expect("pod b");

    // A dual-stack listener sees a captured IPv4 connection as v4-mapped; the answer is IPv4.
    let dual = listen(&a, "[::]:15001");
    let _c = connect(&a, addr(b.ip, 7000), None).expect("connect");
    let (_, captured) = accept_any(&[("a:[::]:15001", &dual)]);
    assert!(captured.local_addr().expect("local").is_ipv6());
    assert_eq!(
        original_dst(&captured).expect("original dst"),
        addr(b.ip, 7000)
    );

    // IPv6: the pod network is IPv4 only, so redirect on the pod's own ::1 with ip6tables.
    sh(
        &b,
        None,
        "ip6tables -w -t nat -A OUTPUT -p tcp -d ::1 --dport 7000 -j REDIRECT --to-ports 15001",
    );
    let v6 = listen(&b, "[::1]:15001");
    let _c = connect(&b, "[::1]:7000".parse().expect("addr"), None).expect("connect v6");
    let (_, captured) = accept_any(&[("b:[::1]:15001", &v6)]);
    assert_eq!(
        original_dst(&captured).expect("original dst"),
        "[::1]:7000".parse::<SocketAddr>().expect("addr")
    );
}
