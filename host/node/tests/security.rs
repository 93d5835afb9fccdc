//! Hostile peers against three real nodes: a node of another cluster, a member certificate
//! used to speak for other members, bad frames, and a flood of connection attempts. The
//! cluster's view never moves, each attack is counted, and the nodes keep answering.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Cluster, epoch, get, members};
use luciole_proto::membership::classic::Rank;
use luciole_proto::membership::cut::{Alert, Change, Cut};
use luciole_proto::membership::monitor::Incarnation;
use luciole_proto::membership::node::{Envelope, Message, ViewChange};
use luciole_proto::membership::rings::{Rings, rings_for};
use luciole_proto::migration::{self, Migration, Ownership};
use luciole_proto::wire::Wire;
use luciole_proto::{BubbleId, EntityId, Epoch, MemberId, MemberInfo, MigrationId};
use luciole_transport::frame::FRAME_VERSION;
use luciole_transport::{ClusterCa, Endpoint, MemberIdentity, Mesh};
use serde_json::Value;

/// Sums a counter over the running nodes' `/metrics`.
fn metric(c: &Cluster, name: &str) -> u64 {
    c.running()
        .iter()
        .filter_map(|&i| get(c.status[i], "/metrics"))
        .flat_map(|text| {
            text.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

fn ids(view: &Value) -> Vec<MemberId> {
    let mut ids: Vec<MemberId> =
        members(view).iter().map(|h| MemberId(u128::from_str_radix(h, 16).unwrap())).collect();
    ids.sort();
    ids
}

/// The identity of node `i` of the cluster (its certificate and key, as `cluster init` wrote).
fn identity(c: &Cluster, i: usize) -> MemberIdentity {
    let read = |p: &str| std::fs::read(c.dir.path().join("c").join(p)).unwrap();
    MemberIdentity::from_pem(
        &read("ca.pem"),
        &read(&format!("node-{}/cert.pem", i + 1)),
        &read(&format!("node-{}/key.pem", i + 1)),
    )
    .unwrap()
}

/// A node of another cluster, configured to join ours through our nodes.
fn foreign_node(c: &Cluster, status: SocketAddr, quic: SocketAddr) -> std::path::PathBuf {
    let dir = c.dir.path().join("foreign");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_luciole"))
        .args(["cluster", "init", "--nodes", "1"])
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let seeds: Vec<String> = c.quic.iter().map(|a| format!("\"{a}\"")).collect();
    let config = format!(
        "listen = \"{quic}\"\nstatus = \"{status}\"\ndata_dir = \"data\"\nseeds = [{}]\n\
         [tls]\nca = \"../ca.pem\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
        seeds.join(", ")
    );
    let path = dir.join("node-1/foreign.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Everything a holder of node 4's certificate can send to speak for others: alerts in the
/// observers' names, a vote and a classic proposal at another member's rank removing a member,
/// and a welcome to a forged newer view.
fn forgeries(view: &[MemberId], epoch: Epoch) -> Vec<Envelope> {
    let rings = Rings::new(view, rings_for(view.len()));
    let victim = view[0];
    let alerts = Alert::from_every_observer(&rings, victim, Change::Down, Incarnation(0));
    let cut = Cut { down: vec![victim], ..Cut::default() };
    let at = |message| Envelope { epoch, message };
    let info = MemberInfo { capacity: 1, labels: vec![], addr: "127.0.0.1:9".into() };
    let kept: Vec<MemberId> = view[1..].to_vec();
    let forged = ViewChange {
        info: vec![info; kept.len()],
        members: kept,
        joined: vec![],
        left: vec![victim],
    };
    vec![
        at(Message::Alerts { alerts, joiners: vec![] }),
        at(Message::Vote(cut.clone())),
        at(Message::Accept { rank: Rank { round: 7, node: 0 }, cut: cut.clone() }),
        at(Message::Accepted { rank: Rank { round: 7, node: 0 }, cut }),
        Envelope { epoch: Epoch(epoch.0 + 5), message: Message::Welcome(forged) },
    ]
}

#[test]
fn hostile_peers_move_no_view_are_counted_and_the_nodes_keep_serving() {
    // Four nodes in the founding view; node 4 never starts: its certificate is the rogue's.
    let c = Cluster::init(4, 3);
    let view = c.agreed("the view without node 4", |v| members(v).len() == 3);
    let (e, members3) = (epoch(&view), ids(&view));

    // A node of another cluster asks to join through ours.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let foreign_quic = probe.local_addr().unwrap();
    drop(probe);
    let foreign_status = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let foreign = foreign_node(&c, foreign_status, foreign_quic);
    let mut stranger = std::process::Command::new(env!("CARGO_BIN_EXE_luciole"))
        .args(["node", "run", "--config"])
        .arg(&foreign)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let rogue = identity(&c, 3);
        let endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap(), &rogue).unwrap();
        let (mesh, _inbox) = Mesh::<Wire>::start(endpoint.clone(), 1 << 20);
        for round in 0..5 {
            for &to in &members3 {
                for envelope in forgeries(&members3, Epoch(e)) {
                    mesh.send(to, Some(addr_of(&view, to)), &Wire::Membership(envelope));
                }
                // Migration messages from a member outside the view: an entity offered in
                // another member's name, commits of migrations nobody started.
                let wire = Wire::Migrations {
                    session: 1,
                    first: round + 1,
                    messages: migration_forgeries(&members3, to, Epoch(e)),
                };
                mesh.send(to, Some(addr_of(&view, to)), &wire);
            }
            if round == 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        // Bad frames on fresh connections, and a flood of handshakes from another cluster.
        let other = ClusterCa::generate("other").unwrap();
        for (k, &addr) in c.quic[..3].iter().enumerate() {
            let conn = endpoint.connect(addr).await.unwrap();
            let mut send = conn.quic().open_uni().await.unwrap();
            let bad = if k % 2 == 0 {
                vec![FRAME_VERSION, 0xff, 0xff, 0xff, 0xff]
            } else {
                vec![FRAME_VERSION + 1, 0, 0, 0, 0]
            };
            send.write_all(&bad).await.unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(3), conn.quic().closed()).await;
            let foreigner = Endpoint::bind(
                "127.0.0.1:0".parse().unwrap(),
                &other.issue(MemberId(k as u128 + 77)).unwrap(),
            )
            .unwrap();
            for _ in 0..20 {
                assert!(
                    foreigner.connect(addr).await.is_err(),
                    "another cluster's member is refused"
                );
            }
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for n in 0..200u32 {
                let _ = udp.send_to(&n.to_le_bytes().repeat(64), addr);
            }
        }
    });

    std::thread::sleep(Duration::from_secs(3));
    let after = c.agreed("the view after the attacks", |_| true);
    assert_eq!((epoch(&after), ids(&after)), (e, members3.clone()), "nothing moved the view");
    let stranger_status = get(foreign_status, "/status").expect("the stranger answers");
    assert!(
        stranger_status.contains("\"joining\""),
        "the stranger never got in: {stranger_status}"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert!(metric(&c, "luciole_membership_refused_total") >= 3, "forged messages counted");
    assert!(metric(&c, "luciole_frames_refused_total") >= 3, "bad frames counted");
    assert!(
        metric(&c, "luciole_connections_total{outcome=\"refused\"}") >= 60,
        "foreign handshakes counted"
    );
    for &i in &c.running() {
        assert!(get(c.status[i], "/status").is_some(), "node {i} still answers");
    }
    // No entity came into being from the forged migrations: the cluster holds none.
    let (code, report) = c.conservation(0);
    let report = report.expect("a report");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["owned"], 0);
}

/// Migration messages a rogue might send `to`: a prepare naming another member as its source,
/// one in its own name (it is not in the view), commits and an abort for migrations never
/// started.
fn migration_forgeries(view: &[MemberId], to: MemberId, epoch: Epoch) -> Vec<migration::Message> {
    let other = *view.iter().find(|m| **m != to).unwrap();
    let prepare = |source: MemberId, entity: u128| migration::Message::Prepare {
        migration: Migration {
            id: MigrationId::from_parts(1, entity as u64),
            entity: EntityId(entity),
            source,
            target: to,
            source_bubble: BubbleId(0),
            target_bubble: BubbleId(1),
            epoch,
        },
        ownership: Ownership(2),
        view: epoch,
        state: vec![0; 48],
    };
    vec![
        prepare(other, 0xbad),
        prepare(MemberId(u128::MAX), 0xbad2),
        migration::Message::Commit {
            id: MigrationId::from_parts(1, 0xbad),
            ownership: Ownership(2),
        },
        migration::Message::Commit { id: MigrationId::from_parts(9, 9), ownership: Ownership(7) },
        migration::Message::Abort { id: MigrationId::from_parts(1, 1), ownership: Ownership(2) },
    ]
}

/// The address member `m` brought into `view`.
fn addr_of(view: &Value, m: MemberId) -> SocketAddr {
    let hex = format!("{:032x}", m.0);
    let entry = view["members"].as_array().unwrap().iter().find(|x| x["id"] == hex.as_str());
    entry.unwrap()["addr"].as_str().unwrap().parse().unwrap()
}
