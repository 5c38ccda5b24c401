use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::str::FromStr;

use hickory_proto::op::Query;
use hickory_proto::rr::Name;

use super::*;

struct Table(BTreeMap<String, Vec<IpAddr>>);

impl Names for Table {
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        self.0.get(name).cloned()
    }
}

fn table(entries: &[(&str, &str)]) -> Arc<dyn Names> {
    Arc::new(Table(
        entries
            .iter()
            .map(|(n, ip)| (n.to_string(), vec![ip.parse().unwrap()]))
            .collect(),
    ))
}

async fn server(names: Arc<dyn Names>, upstreams: Vec<SocketAddr>) -> DnsServer {
    let config = DnsConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        upstreams,
    };
    DnsServer::start(config, names).await.unwrap()
}

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_str(name).unwrap(), rtype));
    m.to_vec().unwrap()
}

async fn ask_udp(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&query(name, rtype), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn mesh_names_are_answered_locally_in_any_case() {
    let s = server(
        table(&[("reviews.default.svc.cluster.local", "10.96.0.9")]),
        vec![],
    )
    .await;
    let m = ask_udp(
        s.local_addr(),
        "Reviews.Default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(a_records(&m), [Ipv4Addr::new(10, 96, 0, 9)]);
    // The name exists but has no IPv6 address: NOERROR without answers, not NXDOMAIN.
    let m = ask_udp(
        s.local_addr(),
        "reviews.default.svc.cluster.local.",
        RecordType::AAAA,
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
}

#[tokio::test]
async fn other_names_are_relayed_and_servfail_when_no_upstream_answers() {
    let upstream = server(table(&[("example.org", "192.0.2.1")]), vec![]).await;
    // A port nobody listens on first: the relay moves on to the next upstream.
    let dead = {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.local_addr().unwrap()
    };
    let s = server(table(&[]), vec![dead, upstream.local_addr()]).await;
    let m = ask_udp(s.local_addr(), "example.org.", RecordType::A).await;
    assert_eq!(a_records(&m), [Ipv4Addr::new(192, 0, 2, 1)]);
    let m = ask_udp(s.local_addr(), "nothing.example.", RecordType::A).await;
    // The upstream (whose table lacks it and which has no upstream itself) says SERVFAIL.
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);

    let alone = server(table(&[]), vec![dead]).await;
    let m = ask_udp(alone.local_addr(), "example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(m.metadata.id, 0x1234);
}

#[tokio::test]
async fn tcp_carries_several_queries_on_one_connection_and_relays_over_tcp() {
    let upstream = server(table(&[("example.org", "192.0.2.1")]), vec![]).await;
    let s = server(
        table(&[("details", "10.96.0.3")]),
        vec![upstream.local_addr()],
    )
    .await;
    let mut conn = TcpStream::connect(s.local_addr()).await.unwrap();
    for (name, want) in [
        ("details.", [10, 96, 0, 3]),
        ("example.org.", [192, 0, 2, 1]),
    ] {
        write_framed(&mut conn, &query(name, RecordType::A))
            .await
            .unwrap();
        let m = Message::from_vec(&read_framed(&mut conn).await.unwrap()).unwrap();
        assert_eq!(a_records(&m), [Ipv4Addr::from(want)], "{name}");
    }
}

#[test]
fn resolv_conf_nameservers_become_upstreams() {
    let dir = std::env::temp_dir().join(format!("bowline-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("resolv.conf");
    std::fs::write(
        &path,
        "# comment\nsearch example.internal\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\noptions ndots:5\nnameserver bogus\n",
    )
    .unwrap();
    let got = upstreams_from_resolv_conf(path.to_str().unwrap()).unwrap();
    assert_eq!(
        got,
        [
            "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
            "[fe80::1]:53".parse().unwrap()
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
