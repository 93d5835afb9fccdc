//! The mesh between members on loopback: messages both ways in order, and hostile members —
//! a bad frame, an oversized one, a flood of connections — cost only their own connections.

use std::net::SocketAddr;
use std::time::Duration;

use luciole_proto::MemberId;
use luciole_transport::frame::{self, FRAME_VERSION};
use luciole_transport::mesh::CONNECTIONS_PER_PEER_MAX;
use luciole_transport::{ClusterCa, Endpoint, Inbound, Mesh};
use tokio::sync::mpsc::Receiver;

type Msg = (u32, String);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn mesh(ca: &ClusterCa, id: u128) -> (Mesh<Msg>, Receiver<Inbound<Msg>>, SocketAddr) {
    let endpoint = Endpoint::bind(loopback(), &ca.issue(MemberId(id)).unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (mesh, inbox) = Mesh::start(endpoint, 1024);
    (mesh, inbox, addr)
}

async fn next(inbox: &mut Receiver<Inbound<Msg>>) -> Inbound<Msg> {
    tokio::time::timeout(Duration::from_secs(5), inbox.recv())
        .await
        .expect("in time")
        .expect("open")
}

/// Waits until `f` holds for `mesh`'s stats.
async fn until(mesh: &Mesh<Msg>, what: &str, f: impl Fn(&luciole_transport::MeshStats) -> bool) {
    for _ in 0..250 {
        if f(&mesh.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: {:?}", mesh.stats());
}

#[tokio::test]
async fn members_exchange_messages_in_order_over_one_connection_each_way() {
    let ca = ClusterCa::generate("test").unwrap();
    let (a, mut a_in, a_addr) = mesh(&ca, 1);
    let (b, mut b_in, b_addr) = mesh(&ca, 2);
    for i in 0..100 {
        assert!(a.send(MemberId(2), Some(b_addr), &(i, format!("to b {i}"))).is_some());
    }
    for i in 0..100 {
        let m = next(&mut b_in).await;
        assert_eq!((m.from, m.message.0), (MemberId(1), i), "in order, from a's certificate");
        assert_eq!(m.bytes, frame::encode(&m.message, 1024).unwrap().len());
    }
    // b answers without an address: a's own connection carries it.
    assert!(b.send(MemberId(1), None, &(7, "back".into())).is_some());
    assert_eq!(next(&mut a_in).await.message, (7, "back".to_string()));
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.messages_out, sb.messages_in), (100, 100));
    assert_eq!(sa.bytes_out, sb.bytes_in);
    assert_eq!(sb.dial_failures, 0);
    let _ = a_addr;
}

#[tokio::test]
async fn a_member_that_cannot_be_reached_costs_dropped_messages_not_a_stall() {
    let ca = ClusterCa::generate("test").unwrap();
    let (a, _a_in, _) = mesh(&ca, 1);
    let (_b, mut b_in, b_addr) = mesh(&ca, 2);
    // Nobody listens there (a socket bound and dropped): dialling it times out.
    let dead = std::net::UdpSocket::bind(loopback()).unwrap().local_addr().unwrap();
    for i in 0..10 {
        a.send(MemberId(3), Some(dead), &(i, "lost".into()));
        assert!(a.send(MemberId(2), Some(b_addr), &(i, "kept".into())).is_some());
    }
    for i in 0..10 {
        assert_eq!(next(&mut b_in).await.message.0, i, "the live member is not held up");
    }
    // No address, no connection: dropped and counted at once.
    assert!(a.send(MemberId(4), None, &(0, "nowhere".into())).is_some());
    until(&a, "unreachable counted", |s| s.dropped_unreachable >= 1).await;
}

#[tokio::test]
async fn a_bad_or_oversized_frame_closes_only_its_connection_and_is_counted() {
    let ca = ClusterCa::generate("test").unwrap();
    let (server, mut inbox, addr) = mesh(&ca, 1);
    let (honest, _h_in, _) = mesh(&ca, 3);
    for (i, bad) in [
        vec![FRAME_VERSION + 1, 1, 0, 0, 0, 0], // another frame version
        vec![FRAME_VERSION, 0xff, 0xff, 0xff, 0xff], // 4 GiB announced
        vec![FRAME_VERSION, 2, 0, 0, 0, 0xff, 0xff], // a payload that does not decode
    ]
    .into_iter()
    .enumerate()
    {
        let liar = Endpoint::bind(loopback(), &ca.issue(MemberId(2)).unwrap()).unwrap();
        let conn = liar.connect(addr).await.unwrap();
        let mut send = conn.quic().open_uni().await.unwrap();
        send.write_all(&bad).await.unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(5), conn.quic().closed()).await;
        assert!(closed.is_ok(), "case {i}: the server closed the liar's connection");
        until(&server, "refused counted", |s| s.frames_refused == i as u64 + 1).await;
        // Everyone else is still served.
        honest.send(MemberId(1), Some(addr), &(i as u32, "still here".into()));
        let m = next(&mut inbox).await;
        assert_eq!((m.from, m.message.0), (MemberId(3), i as u32));
    }
}

#[tokio::test]
async fn a_member_opening_connection_after_connection_is_cut_off_at_the_limit() {
    let ca = ClusterCa::generate("test").unwrap();
    let (server, mut inbox, addr) = mesh(&ca, 1);
    let flooder = Endpoint::bind(loopback(), &ca.issue(MemberId(2)).unwrap()).unwrap();
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS_PER_PEER_MAX + 6 {
        conns.push(flooder.connect(addr).await.unwrap());
    }
    until(&server, "over-limit connections counted", |s| s.connections_over_limit == 6).await;
    assert_eq!(server.stats().connections_open, CONNECTIONS_PER_PEER_MAX as u64);
    // Another member still gets in, and through.
    let (other, _o_in, _) = mesh(&ca, 3);
    other.send(MemberId(1), Some(addr), &(1, "hello".into()));
    assert_eq!(next(&mut inbox).await.from, MemberId(3));
}

#[tokio::test]
async fn unreliable_messages_go_as_datagrams_and_a_bad_datagram_is_refused() {
    let ca = ClusterCa::generate("test").unwrap();
    let (a, _a_in, _) = mesh(&ca, 1);
    let (_b, mut b_in, b_addr) = mesh(&ca, 2);
    // No connection yet: the first goes on the stream (and dials); then datagrams.
    assert!(a.send_unreliable(MemberId(2), Some(b_addr), &(0, "first".into())).is_some());
    assert_eq!(next(&mut b_in).await.message.0, 0);
    let mut got = std::collections::BTreeSet::new();
    for i in 1..=20 {
        assert!(a.send_unreliable(MemberId(2), Some(b_addr), &(i, "probe".into())).is_some());
    }
    while got.len() < 20 {
        let m = next(&mut b_in).await;
        assert_eq!(m.from, MemberId(1));
        got.insert(m.message.0);
    }
    // A member sending a datagram that is not a frame loses that connection.
    let (server, mut inbox, addr) = mesh(&ca, 5);
    let liar = Endpoint::bind(loopback(), &ca.issue(MemberId(6)).unwrap()).unwrap();
    let conn = liar.connect(addr).await.unwrap();
    conn.quic().send_datagram(vec![FRAME_VERSION, 200, 0, 0, 0, 1].into()).unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.quic().closed()).await;
    assert!(closed.is_ok(), "closed");
    until(&server, "refused counted", |s| s.frames_refused == 1).await;
    let (honest, _h, _) = mesh(&ca, 7);
    honest.send(MemberId(5), Some(addr), &(9, "still".into()));
    assert_eq!(next(&mut inbox).await.from, MemberId(7));
}
