//! Durable migrations between real node processes on loopback: migrations per second and
//! their latency (request → the target's confirmation that the entity is applied and logged),
//! each beside the raw `write` + `fdatasync` rate of the same disk measured in the same run.
//!
//! The nodes run the `shuttle` workload: entities stand still and each is migrated on to the
//! next member as soon as it arrives, with at most `--in-flight` migrations per node as
//! source. Every migration goes the whole way: two-phase commit over QUIC with mutual TLS,
//! three log records made durable on the path (the target's admission, the source's
//! decision, the target's arrival), group commit in each node's write-ahead log. Conservation
//! is checked after each run, with the workload paused (SIGUSR2).
//!
//! `cargo bench -p luciole-node --bench migrations [-- --nodes 2,5 --in-flight 8,32,96
//! --seconds 10 --entities 4000]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Cluster, members};
use serde_json::Value;

struct Args {
    nodes: Vec<usize>,
    in_flight: Vec<u32>,
    seconds: u64,
    entities: u64,
}

fn list<T: std::str::FromStr>(v: Option<String>, what: &str) -> Vec<T> {
    v.and_then(|v| v.split(',').map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| panic!("{what} takes a comma-separated list of numbers"))
}

fn args() -> Args {
    let mut a =
        Args { nodes: vec![2, 5], in_flight: vec![8, 32, 96], seconds: 10, entities: 4_000 };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--nodes" => a.nodes = list(it.next(), "--nodes"),
            "--in-flight" => a.in_flight = list(it.next(), "--in-flight"),
            "--seconds" => a.seconds = list::<u64>(it.next(), "--seconds")[0],
            "--entities" => a.entities = list::<u64>(it.next(), "--entities")[0],
            "--help" | "-h" => {
                println!(
                    "migrations [--nodes 2,5] [--in-flight 8,32,96] [--seconds 10] [--entities 4000]"
                );
                std::process::exit(0);
            }
            _ => {}
        }
    }
    a
}

/// Raw `write` of 300 bytes + `fdatasync` in a loop for `secs` on a file in `dir`: syncs per
/// second and the median and 99th percentile of one, µs.
fn raw_sync(dir: &std::path::Path, secs: f64) -> (f64, u64, u64) {
    let path = dir.join("raw-sync");
    let mut f = std::fs::File::create(&path).unwrap();
    let record = [7u8; 300];
    let mut times = Vec::new();
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        f.write_all(&record).unwrap();
        f.sync_data().unwrap();
        times.push(t.elapsed().as_micros() as u64);
    }
    let rate = times.len() as f64 / started.elapsed().as_secs_f64();
    times.sort_unstable();
    let q = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let _ = std::fs::remove_file(&path);
    (rate, q(0.5), q(0.99))
}

/// Every node's world status.
fn worlds(c: &Cluster) -> Vec<Value> {
    (0..c.status.len()).map(|i| c.status(i).expect("a node answers")["world"].clone()).collect()
}

fn sum(ws: &[Value], f: impl Fn(&Value) -> u64) -> u64 {
    ws.iter().map(f).sum()
}

fn histogram(ws: &[Value]) -> Vec<u64> {
    let mut h = vec![0u64; 200];
    for w in ws {
        for (k, n) in w["stats"]["latency_us_log8"].as_array().unwrap().iter().enumerate() {
            h[k] += n.as_u64().unwrap();
        }
    }
    h
}

/// Upper edge of the bucket holding quantile `q`, µs (as the node's status computes it).
fn quantile(h: &[u64], q: f64) -> u64 {
    let total: u64 = h.iter().sum();
    let rank = ((total as f64 * q).ceil() as u64).clamp(1, total.max(1));
    let mut seen = 0;
    for (k, n) in h.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return (2f64.powf((k + 1) as f64 / 8.0) - 1.0).round() as u64;
        }
    }
    0
}

fn run(nodes: usize, in_flight: u32, a: &Args) {
    let probe = tempfile::tempdir().unwrap();
    let (raw, raw_p50, raw_p99) = raw_sync(probe.path(), 2.0);
    let flags = [
        "--entities".to_string(),
        a.entities.to_string(),
        "--motion".into(),
        "shuttle".into(),
        "--shuttle-in-flight".into(),
        in_flight.to_string(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let c = Cluster::init_with(nodes, nodes, &flags);
    c.agreed("the founding view", |v| members(v).len() == nodes);
    let started = Instant::now();
    while sum(&worlds(&c), |w| w["stats"]["spawned"].as_u64().unwrap_or(0)) < a.entities {
        assert!(started.elapsed() < Duration::from_secs(60), "entities not created");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2)); // warm up
    let before = worlds(&c);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(a.seconds));
    let after = worlds(&c);
    let elapsed = t0.elapsed().as_secs_f64();
    let delta = |f: &dyn Fn(&Value) -> u64| sum(&after, f) - sum(&before, f);
    let commits = delta(&|w| w["stats"]["commits"].as_u64().unwrap());
    let syncs = delta(&|w| w["stats"]["wal_syncs"].as_u64().unwrap());
    let records = delta(&|w| w["stats"]["wal_records"].as_u64().unwrap());
    let aborts = delta(&|w| w["stats"]["aborts"].as_u64().unwrap());
    let h: Vec<u64> =
        histogram(&after).iter().zip(histogram(&before)).map(|(a, b)| a - b).collect();
    // Entities shuttle without rest: pause the workload so that a round can see every one
    // at rest (moves under way finish).
    for i in 0..nodes {
        c.toggle_pause(i);
    }
    let (code, report) = c.conservation(20);
    let conserved = code == 0;
    println!(
        "| {nodes} | {in_flight} | {:.0} | {} | {} | {aborts} | {:.0} | {:.1} | {:.0} ({raw_p50} / {raw_p99} µs) | {:.2} | {} |",
        commits as f64 / elapsed,
        quantile(&h, 0.5),
        quantile(&h, 0.99),
        syncs as f64 / elapsed / nodes as f64,
        records as f64 / syncs.max(1) as f64,
        raw,
        syncs as f64 / elapsed / nodes as f64 / raw,
        if conserved { "holds".to_string() } else { format!("NO: {report:?}") },
    );
    assert!(conserved, "conservation after the run: {report:#?}");
}

fn main() {
    let a = args();
    println!(
        "durable migrations on loopback, release build, {} entities of 256 B, shuttle workload, {} s \
         per row after 2 s of warm-up",
        a.entities, a.seconds
    );
    println!(
        "| nodes | in flight per node | migrations/s | p50 µs | p99 µs | aborts | log syncs/s per node | \
         records per sync | raw write+fdatasync/s (p50 / p99) | syncs vs raw | conservation |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &a.nodes {
        for &w in &a.in_flight {
            run(n, w, &a);
        }
    }
}
