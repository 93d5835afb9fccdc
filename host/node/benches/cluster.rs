//! Five real node processes on loopback: crash → agreed view over repeated SIGKILLs (p50, p99),
//! membership bytes per second per node on the wire at steady state (counted by the transport,
//! framing included), and each node's resident memory at idle.
//!
//! `cargo bench -p luciole-node --bench cluster [-- --kills N --steady-s S --idle-probe-ms MS]`:
//! by default the nodes' own settings (a view of five probes every 100 ms); `--idle-probe-ms`
//! makes this view of five probe idly with that period.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Cluster, get, members, node_id};

const NODES: usize = 5;

fn args() -> (usize, u64, Option<u64>) {
    let mut kills = 20;
    let mut steady_s = 10;
    let mut idle = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kills" => kills = it.next().and_then(|v| v.parse().ok()).expect("--kills N"),
            "--steady-s" => {
                steady_s = it.next().and_then(|v| v.parse().ok()).expect("--steady-s S")
            }
            "--idle-probe-ms" => {
                idle = Some(it.next().and_then(|v| v.parse().ok()).expect("--idle-probe-ms MS"))
            }
            "--help" | "-h" => {
                println!(
                    "cluster [--kills N (20)] [--steady-s S (10)] [--idle-probe-ms MS (idle \
                     probing in this view of five; default: the nodes' defaults)]"
                );
                std::process::exit(0);
            }
            _ => {}
        }
    }
    (kills, steady_s, idle)
}

/// A counter summed over its label sets, from node `i`'s `/metrics`.
fn counter(c: &Cluster, i: usize, name: &str) -> u64 {
    let text = get(c.status[i], "/metrics").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let (kills, steady_s, idle) = args();
    let flags = idle.map(|ms| ms.to_string());
    // Membership alone: no entities.
    let flags: Vec<&str> = match &flags {
        Some(ms) => vec!["--entities", "0", "--idle-probe-ms", ms, "--idle-from-members", "1"],
        None => vec!["--entities", "0"],
    };
    let mut c = Cluster::init_with(NODES, NODES, &flags);
    c.agreed("the founding view", |v| members(v).len() == NODES);
    let probing = match idle {
        Some(ms) => format!("idle probing every {ms} ms"),
        None => "the default probing (every 100 ms in a view of five)".into(),
    };
    println!("{NODES} node processes on loopback (release build), 2-core VM, {probing}");

    // Steady state: what each node sends and receives, per second, over `steady_s`.
    std::thread::sleep(Duration::from_secs(2));
    let sent = |c: &Cluster| -> Vec<u64> {
        (0..NODES).map(|i| counter(c, i, "luciole_membership_sent_bytes_total")).collect()
    };
    let wire = |c: &Cluster| -> Vec<u64> {
        (0..NODES).map(|i| counter(c, i, "luciole_transport_udp_sent_bytes_total")).collect()
    };
    let (s0, w0, t0) = (sent(&c), wire(&c), Instant::now());
    std::thread::sleep(Duration::from_secs(steady_s));
    let (s1, w1, dt) = (sent(&c), wire(&c), t0.elapsed().as_secs_f64());
    for i in 0..NODES {
        println!(
            "node-{}: membership frames {:.0} B/s sent, UDP {:.0} B/s sent, RSS {} KiB",
            i + 1,
            (s1[i] - s0[i]) as f64 / dt,
            (w1[i] - w0[i]) as f64 / dt,
            c.pid(i).map_or(0, rss_kib)
        );
    }
    let mean = |a: &[u64], b: &[u64]| {
        a.iter().zip(b).map(|(x, y)| (y - x) as f64).sum::<f64>() / NODES as f64 / dt
    };
    println!(
        "steady state per node: {:.0} B/s of membership frames (header included), {:.0} B/s of \
         UDP payload (QUIC headers, acknowledgements, keep-alives included)",
        mean(&s0, &s1),
        mean(&w0, &w1)
    );

    // Crash → agreed view.
    let mut took = Vec::new();
    for k in 0..kills {
        let victim = k % NODES;
        let id = node_id(&c, victim);
        c.kill(victim);
        let t = Instant::now();
        c.agreed("without the killed node", |v| !members(v).contains(&id));
        took.push(t.elapsed());
        println!(
            "kill {:>2}: node-{} out of every survivor's view after {:>4} ms",
            k + 1,
            victim + 1,
            t.elapsed().as_millis()
        );
        c.start(victim);
        c.agreed("the restarted node back", |v| members(v).len() == NODES);
        std::thread::sleep(Duration::from_millis(1_500));
    }
    took.sort_unstable();
    if took.is_empty() {
        return;
    }
    println!(
        "crash → agreed view on {NODES} processes over {kills} kills: p50 {} ms, p99 {} ms, max {} ms",
        percentile(&took, 0.5).as_millis(),
        percentile(&took, 0.99).as_millis(),
        took.last().unwrap().as_millis()
    );
}
