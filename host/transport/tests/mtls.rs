//! Two members on loopback: mutual TLS against the cluster CA, the peer's id from its
//! certificate, and members of another cluster refused.

use std::net::SocketAddr;
use std::time::Duration;

use luciole_proto::MemberId;
use luciole_transport::{ClusterCa, Endpoint, TransportError, member_id_of};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn a_certificate_carries_its_member_id() {
    let ca = ClusterCa::generate("test").unwrap();
    let id = MemberId(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
    let member = ca.issue(id).unwrap();
    assert_eq!(member_id_of(&member.cert), Some(id));
    assert_eq!(member_id_of(ca.cert()), None, "the CA is no member");
}

#[tokio::test]
async fn members_of_one_cluster_connect_and_know_each_other_by_certificate() {
    let ca = ClusterCa::generate("test").unwrap();
    let (a, b) = (MemberId(1), MemberId(u128::MAX));
    let server = Endpoint::bind(loopback(), &ca.issue(a).unwrap()).unwrap();
    let client = Endpoint::bind(loopback(), &ca.issue(b).unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let accepted = tokio::spawn({
        let server = server.clone();
        async move {
            let conn = server.accept().await.expect("a connection");
            let (mut send, mut recv) = conn.quic().accept_bi().await.unwrap();
            let got = recv.read_to_end(64).await.unwrap();
            send.write_all(&got).await.unwrap();
            send.finish().unwrap();
            send.stopped().await.ok();
            conn.peer()
        }
    });
    let conn = client.connect(addr).await.expect("connects");
    assert_eq!(conn.peer(), a, "the server's id, from its certificate");
    let (mut send, mut recv) = conn.quic().open_bi().await.unwrap();
    send.write_all(b"probe").await.unwrap();
    send.finish().unwrap();
    assert_eq!(recv.read_to_end(64).await.unwrap(), b"probe");
    assert_eq!(accepted.await.unwrap(), b, "the client's id, from its certificate");
    client.close();
    server.close();
}

#[tokio::test]
async fn a_member_of_another_cluster_cannot_connect() {
    let ours = ClusterCa::generate("ours").unwrap();
    let theirs = ClusterCa::generate("theirs").unwrap();
    let server = Endpoint::bind(loopback(), &ours.issue(MemberId(1)).unwrap()).unwrap();
    let stranger = Endpoint::bind(loopback(), &theirs.issue(MemberId(2)).unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let served = tokio::spawn({
        let server = server.clone();
        async move { tokio::time::timeout(Duration::from_secs(3), server.accept()).await }
    });
    let err = stranger.connect(addr).await.expect_err("refused");
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    // The server accepted nobody: the handshake failed on its side too.
    assert!(served.await.unwrap().is_err(), "no connection was accepted");
    // And it still serves its own members.
    let friend = Endpoint::bind(loopback(), &ours.issue(MemberId(3)).unwrap()).unwrap();
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.accept().await.map(|c| c.peer()) }
    });
    let conn = friend.connect(addr).await.expect("a member connects");
    assert_eq!(conn.peer(), MemberId(1));
    assert_eq!(serving.await.unwrap(), Some(MemberId(3)));
}

#[tokio::test]
async fn frames_cross_a_stream_and_an_oversized_or_foreign_one_is_refused_from_its_header() {
    use luciole_transport::frame::{self, FRAME_BYTES_MAX_DEFAULT, FrameError};
    let ca = ClusterCa::generate("test").unwrap();
    let server = Endpoint::bind(loopback(), &ca.issue(MemberId(1)).unwrap()).unwrap();
    let client = Endpoint::bind(loopback(), &ca.issue(MemberId(2)).unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let reader = tokio::spawn({
        let server = server.clone();
        async move {
            let conn = server.accept().await.expect("a connection");
            let mut results = Vec::new();
            for _ in 0..3 {
                let mut recv = conn.quic().accept_uni().await.unwrap();
                let mut got: Vec<Result<Option<(u64, String)>, String>> = Vec::new();
                loop {
                    match frame::read(&mut recv, FRAME_BYTES_MAX_DEFAULT).await {
                        Ok(Some(v)) => got.push(Ok(Some(v))),
                        Ok(None) => break,
                        Err(e) => {
                            got.push(Err(match e {
                                FrameError::TooLarge { .. } => "too large".into(),
                                FrameError::Version(_) => "version".into(),
                                other => other.to_string(),
                            }));
                            break;
                        }
                    }
                }
                results.push(got);
            }
            results
        }
    });
    let conn = client.connect(addr).await.unwrap();
    let mut good = conn.quic().open_uni().await.unwrap();
    for i in 0..3u64 {
        frame::write(&mut good, &(i, format!("message {i}")), 1024).await.unwrap();
    }
    good.finish().unwrap();
    // A header announcing 4 GiB, and nothing after it: refused without waiting for the payload.
    let mut huge = conn.quic().open_uni().await.unwrap();
    huge.write_all(&[frame::FRAME_VERSION, 0xff, 0xff, 0xff, 0xff]).await.unwrap();
    let mut foreign = conn.quic().open_uni().await.unwrap();
    foreign.write_all(&[9, 1, 0, 0, 0, 0]).await.unwrap();
    foreign.finish().unwrap();
    let results = tokio::time::timeout(Duration::from_secs(5), reader).await.unwrap().unwrap();
    assert_eq!(results[0].len(), 3);
    assert_eq!(results[0][2], Ok(Some((2, "message 2".to_string()))));
    assert_eq!(results[1], vec![Err("too large".to_string())]);
    assert_eq!(results[2], vec![Err("version".to_string())]);
}

#[tokio::test]
async fn garbage_datagrams_and_a_client_without_a_certificate_leave_the_endpoint_serving() {
    let ca = ClusterCa::generate("test").unwrap();
    let server = Endpoint::bind(loopback(), &ca.issue(MemberId(1)).unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    // The server accepts all along, as a node does; only authenticated members come out.
    let (accepted, mut peers) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn({
        let server = server.clone();
        async move {
            while let Some(c) = server.accept().await {
                let _ = accepted.send(c.peer());
            }
        }
    });
    // Plain UDP garbage, including things shaped like QUIC long headers.
    let udp = std::net::UdpSocket::bind(loopback()).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..2_000 {
        let mut datagram = vec![0u8; 1 + i % 1_300];
        for b in &mut datagram {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        if i % 3 == 0 {
            datagram[0] = 0xc0; // a long header
        }
        udp.send_to(&datagram, addr).unwrap();
    }
    // A QUIC client with no certificate at all: the handshake fails.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert().clone()).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![luciole_transport::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut anonymous = quinn::Endpoint::client(loopback()).unwrap();
    anonymous.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(crypto)));
    let attempt = anonymous.connect(addr, "member.luciole").unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(3), async {
        let conn = attempt.await?;
        // TLS 1.3: the client may finish first; the server's refusal then closes it.
        conn.accept_uni().await.map(|_| ())
    })
    .await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "a client without a certificate must be closed with an error: {refused:?}"
    );
    // A client with a member's certificate but another protocol version (ALPN): refused too.
    let identity = ca.issue(MemberId(9)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert().clone()).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![identity.cert.clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(identity.key.clone_key()),
    )
    .unwrap();
    tls.alpn_protocols = vec![b"luciole/2".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut other = quinn::Endpoint::client(loopback()).unwrap();
    other.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(crypto)));
    let attempt = other.connect(addr, "member.luciole").unwrap();
    let version = tokio::time::timeout(Duration::from_secs(3), attempt).await;
    assert!(matches!(version, Ok(Err(_))), "another ALPN must be refused: {version:?}");
    // Members are still served, and the member is the first (only) peer to come out.
    let member = Endpoint::bind(loopback(), &ca.issue(MemberId(7)).unwrap()).unwrap();
    assert_eq!(member.connect(addr).await.unwrap().peer(), MemberId(1));
    assert_eq!(peers.recv().await, Some(MemberId(7)));
    let stats = server.stats();
    assert_eq!(stats.accepted, 1);
    assert!(stats.refused >= 1, "the refused handshakes are counted: {stats:?}");
}
