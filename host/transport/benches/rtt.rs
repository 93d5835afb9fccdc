//! Request/response round trips between two members on loopback: through the `Mesh` (frames,
//! outbox, writer task, reader task, inbox — what the node uses) beside a raw quinn stream
//! round trip on the same endpoints' configuration, in the same run.
//!
//! `cargo bench -p luciole-transport --bench rtt [-- --trips N --runs R]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use luciole_proto::MemberId;
use luciole_transport::{ClusterCa, Endpoint, Mesh};

type Msg = (u64, [u8; 24]);

fn args() -> (usize, usize) {
    let mut trips = 20_000;
    let mut runs = 5;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--trips" => trips = it.next().and_then(|v| v.parse().ok()).expect("--trips N"),
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).expect("--runs R"),
            "--help" | "-h" => {
                println!("rtt [--trips N (20000)] [--runs R (5)]: mesh vs raw quinn round trips");
                std::process::exit(0);
            }
            _ => {} // cargo bench passes --bench
        }
    }
    (trips, runs)
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Round trip latencies through two meshes; b echoes.
async fn mesh_trips(ca: &ClusterCa, trips: usize) -> Vec<Duration> {
    let ea = Endpoint::bind(loopback(), &ca.issue(MemberId(1)).unwrap()).unwrap();
    let eb = Endpoint::bind(loopback(), &ca.issue(MemberId(2)).unwrap()).unwrap();
    let b_addr = eb.local_addr().unwrap();
    let (a, mut a_in) = Mesh::<Msg>::start(ea, 1 << 20);
    let (b, mut b_in) = Mesh::<Msg>::start(eb, 1 << 20);
    let echo = tokio::spawn(async move {
        while let Some(m) = b_in.recv().await {
            b.send(m.from, None, &m.message);
        }
    });
    let mut out = Vec::with_capacity(trips);
    for i in 0..trips as u64 + 100 {
        let t = Instant::now();
        a.send(MemberId(2), Some(b_addr), &(i, [7; 24]));
        let back = a_in.recv().await.expect("echo");
        assert_eq!(back.message.0, i);
        if i >= 100 {
            out.push(t.elapsed()); // the first 100 warm the connection up
        }
    }
    a.close();
    echo.abort();
    out
}

/// Round trip latencies on one raw quinn bidirectional stream: 32 bytes out, 32 back.
async fn raw_trips(ca: &ClusterCa, trips: usize) -> Vec<Duration> {
    let ea = Endpoint::bind(loopback(), &ca.issue(MemberId(1)).unwrap()).unwrap();
    let eb = Endpoint::bind(loopback(), &ca.issue(MemberId(2)).unwrap()).unwrap();
    let b_addr = eb.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let conn = eb.accept().await.expect("a connection");
        let (mut send, mut recv) = conn.quic().accept_bi().await.unwrap();
        let mut buf = [0u8; 32];
        while recv.read_exact(&mut buf).await.is_ok() {
            if send.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let conn = ea.connect(b_addr).await.unwrap();
    let (mut send, mut recv) = conn.quic().open_bi().await.unwrap();
    let mut out = Vec::with_capacity(trips);
    let mut buf = [0u8; 32];
    for i in 0..trips as u64 + 100 {
        let t = Instant::now();
        buf[..8].copy_from_slice(&i.to_le_bytes());
        send.write_all(&buf).await.unwrap();
        recv.read_exact(&mut buf).await.unwrap();
        if i >= 100 {
            out.push(t.elapsed());
        }
    }
    ea.close();
    server.abort();
    out
}

fn summary(mut lat: Vec<Duration>) -> (f64, f64, f64) {
    lat.sort_unstable();
    let total: Duration = lat.iter().sum();
    let per_s = lat.len() as f64 / total.as_secs_f64();
    let us = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (per_s, us(0.5), us(0.99))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (trips, runs) = args();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let ca = ClusterCa::generate("bench").unwrap();
    println!("{trips} round trips per run, {runs} runs, alternating; loopback, 2 worker threads");
    println!("{:<6} {:<10} {:>12} {:>10} {:>10}", "run", "path", "trips/s", "p50 µs", "p99 µs");
    let (mut mesh_rate, mut raw_rate, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut mesh_p50, mut raw_p50) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let raw = summary(runtime.block_on(raw_trips(&ca, trips)));
        let mesh = summary(runtime.block_on(mesh_trips(&ca, trips)));
        for (name, (rate, p50, p99)) in [("raw quinn", raw), ("mesh", mesh)] {
            println!("{run:<6} {name:<10} {rate:>12.0} {p50:>10.1} {p99:>10.1}");
        }
        mesh_rate.push(mesh.0);
        raw_rate.push(raw.0);
        mesh_p50.push(mesh.1);
        raw_p50.push(raw.1);
        ratios.push(mesh.0 / raw.0);
    }
    println!(
        "median: raw quinn {:.0}/s (p50 {:.1} µs), mesh {:.0}/s (p50 {:.1} µs); mesh/raw {:.2}×",
        median(raw_rate),
        median(raw_p50),
        median(mesh_rate),
        median(mesh_p50),
        median(ratios)
    );
}
