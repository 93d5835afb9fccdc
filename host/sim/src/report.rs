//! `luciole-sim --report`: the membership figures of BENCHMARKS.md, from default settings on
//! virtual time, printed as Markdown with progress on stderr.

use std::time::Instant;

use luciole_sim::membership::{Outcome, Scenario, Settings, joins, replay, run_with};

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn runs(
    scenario: Scenario,
    nodes: usize,
    seeds: std::ops::Range<u64>,
    settings: Settings,
) -> Result<(Vec<Outcome>, f64), String> {
    let wall = Instant::now();
    let mut out = Vec::new();
    for seed in seeds {
        eprintln!("  {scenario:?} on {nodes}, seed {seed}");
        out.push(run_with(scenario, nodes, seed, settings).map_err(|e| {
            format!(
                "{scenario:?} on {nodes}, seed {seed}: {e}\nreplay: {}",
                replay(scenario, nodes, seed, settings)
            )
        })?);
    }
    Ok((out, wall.elapsed().as_secs_f64()))
}

/// The least a datagram adds on the wire around a message: IPv4 (20 bytes), UDP (8), and a QUIC
/// short header (1 byte of flags, at least 1 of packet number) with its 16-byte AEAD tag,
/// connection ids left out.
const FRAMING_BYTES_MIN: f64 = 46.0;

/// Runs everything from `first` seed on; `long` runs the 1,000-member bad-node row for an hour.
pub fn run(first: u64, long: bool) -> Result<(), String> {
    let d = Settings::default();
    println!("### Crash → new view installed at every member\n");
    println!("| members | seeds | p50 ms | p99 ms | max ms | view changes per crash |");
    println!("|---:|---:|---:|---:|---:|---|");
    for (nodes, seeds) in [(10, 20), (100, 20), (1_000, 3)] {
        let (o, _) = runs(Scenario::Crash, nodes, first..first + seeds, d)?;
        let mut all: Vec<u64> = o.iter().flat_map(|o| o.detection_ms.iter().copied()).collect();
        all.sort_unstable();
        let changes: Vec<usize> = o.iter().map(|o| o.view_changes).collect();
        println!(
            "| {nodes} | {seeds} | {} | {} | {} | {} |",
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            all.last().copied().unwrap_or(0),
            summary(&changes)
        );
    }
    println!("\n### Simultaneous crashes: view changes\n");
    println!("| members | crashes | seeds | view changes | slowest member ms |");
    println!("|---:|---:|---:|---|---:|");
    for (nodes, crashes, seeds) in [(100, 1, 5), (100, 3, 5), (100, 10, 5), (1_000, 10, 2)] {
        let s = Settings { crashes, ..d };
        let (o, _) = runs(Scenario::Crashes, nodes, first..first + seeds, s)?;
        let changes: Vec<usize> = o.iter().map(|o| o.view_changes).collect();
        let worst = o.iter().flat_map(|o| o.detection_ms.iter().copied()).max().unwrap_or(0);
        println!("| {nodes} | {crashes} | {seeds} | {} | {worst} |", summary(&changes));
    }
    println!("\n### False evictions over one simulated hour\n");
    println!("| members | fault | view changes | healthy members evicted |");
    println!("|---:|---|---:|---:|");
    let hour = Settings { duration_ms: 3_600_000, ..d };
    let (o, _) = runs(Scenario::Loss, 100, first..first + 1, hour)?;
    println!(
        "| 100 | 5 % loss on every message | {} | {} |",
        o[0].view_changes, o[0].false_evictions
    );
    let (o, _) = runs(Scenario::BadNode, 100, first..first + 1, Settings { bad: 1, ..hour })?;
    println!(
        "| 100 | 1 % of members (1) at 80 % loss | {} | {} |",
        o[0].view_changes, o[0].false_evictions
    );
    let (duration_ms, label) =
        if long { (3_600_000, "1,000") } else { (120_000, "1,000 (2 simulated minutes)") };
    let bad = Settings { duration_ms, bad: 10, ..d };
    let (o, _) = runs(Scenario::BadNode, 1_000, first..first + 1, bad)?;
    println!(
        "| {label} | 1 % of members (10) at 80 % loss | {} | {} |",
        o[0].view_changes, o[0].false_evictions
    );
    println!("\n### Traffic sent per member per second\n");
    println!(
        "Message bytes are the postcard encoding of epoch and message; *with framing* adds \
         {FRAMING_BYTES_MIN} bytes per message (IPv4, UDP, the least QUIC header and tag), as if \
         each went alone in a datagram.\n"
    );
    println!(
        "| members | what | messages/s mean | message B/s mean | busiest member B/s | with framing B/s mean |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    let minute = Settings { duration_ms: 60_000, ..d };
    for nodes in [100, 1_000] {
        let (o, _) = runs(Scenario::Quiet, nodes, first..first + 1, minute)?;
        println!("| {nodes} | steady, 60 s | {} |", traffic(&o[0]));
        let (o, _) = runs(Scenario::Crash, nodes, first..first + 1, d)?;
        println!("| {nodes} | the 5 s after a crash (one view change) | {} |", traffic(&o[0]));
    }
    println!("\n### Probe period: detection against steady traffic\n");
    println!(
        "`--probe-ms`; everything else at its default. Crash → view at every member over 5 seeds \
         of 100 members; traffic over 60 steady seconds of 1,000 members.\n"
    );
    println!(
        "| probe ms | crash → view p50 ms | p99 ms | messages/s mean | message B/s mean | busiest member B/s | with framing B/s mean |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for probe_ms in [100, 250, 500, 1_000] {
        let s = Settings { probe_ms, ..d };
        let (o, _) = runs(Scenario::Crash, 100, first..first + 5, s)?;
        let mut all: Vec<u64> = o.iter().flat_map(|o| o.detection_ms.iter().copied()).collect();
        all.sort_unstable();
        let (q, _) =
            runs(Scenario::Quiet, 1_000, first..first + 1, Settings { probe_ms, ..minute })?;
        println!(
            "| {probe_ms} | {} | {} | {} |",
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            traffic(&q[0])
        );
    }
    println!("\n### Joining through one seed\n");
    println!("| joiners | seed | all in every view after ms | views installed |");
    println!("|---:|---:|---:|---:|");
    for seed in first..first + 3 {
        eprintln!("  1,000 joins, seed {seed}");
        let o = joins(1_000, seed, 120_000)?;
        println!("| 1,000 | {seed} | {} | {} |", o.all_in_ms, o.views);
    }
    println!("\n### Simulator speed (simulated seconds per wall second, steady)\n");
    println!("| members | simulated s | wall s | speed |");
    println!("|---:|---:|---:|---:|");
    for nodes in [10, 100, 1_000] {
        let dur = if nodes == 1_000 { 20_000 } else { 300_000 };
        let (o, wall) =
            runs(Scenario::Quiet, nodes, first..first + 1, Settings { duration_ms: dur, ..d })?;
        let simulated = o[0].simulated_ms as f64 / 1_000.0;
        println!("| {nodes} | {simulated:.0} | {wall:.2} | {:.0}× |", simulated / wall);
    }
    Ok(())
}

/// The traffic columns of a run: messages/s, bytes/s (mean, busiest) and bytes/s with framing.
fn traffic(o: &Outcome) -> String {
    let ((msgs, _), (mean, max)) = (o.msgs_per_s, o.bytes_per_s);
    let framed = mean + msgs * FRAMING_BYTES_MIN;
    format!("{msgs:.0} | {mean:.0} | {max:.0} | {framed:.0}")
}

/// "1 ×5" style counts of values.
fn summary(values: &[usize]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for v in values {
        *counts.entry(v).or_insert(0) += 1;
    }
    counts.iter().map(|(v, n)| format!("{v} (×{n})")).collect::<Vec<_>>().join(", ")
}
