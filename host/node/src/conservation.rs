//! `luciole check conservation`: asks every node for the entities it holds and reports the
//! lost and the duplicated ones, and whether every committed migration was applied once.
//!
//! Every entity is created by one node, in that node's id range; a migration commits it at
//! the next ownership epoch. So, across the cluster, at any instant:
//! - each created entity is owned by exactly one node, or is *in transit* (its source logged
//!   the commit and its target has not applied it yet);
//! - no entity is owned by two nodes;
//! - the commit decisions in all the logs add up to the moves the entities' ownership epochs
//!   count (an entity owned at epoch `o` has moved `o - 1` times).
//!
//! The nodes are asked one after the other, and entities keep moving in between, so one round
//! may see an entity twice (asked before it left, and after it arrived) or nowhere. A round
//! that finds something wrong is repeated until one is clean or `--settle` runs out; what a
//! real loss or duplicate looks like never goes away.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::world::Holdings;

/// Arguments of `luciole check conservation`.
#[derive(clap::Args, Debug, Clone)]
pub struct ConservationArgs {
    /// A node's config file (its status address is asked); repeat for every node.
    #[arg(long = "config", value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// A cluster directory as `luciole cluster init` wrote it: every `node-*/node.toml` in it.
    #[arg(long, value_name = "DIR")]
    pub cluster: Option<PathBuf>,
    /// A node's status address; repeat for every node.
    #[arg(long = "addr", value_name = "HOST:PORT")]
    pub addrs: Vec<SocketAddr>,
    /// How long to keep asking while rounds find entities in motion, in seconds.
    #[arg(long, default_value_t = 10)]
    pub settle: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What one round found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Nodes asked.
    pub nodes: usize,
    /// Of them, with their workload paused (SIGUSR2): their entities start no move.
    pub paused: usize,
    /// Entities the nodes were set to create.
    pub expected: u64,
    /// Entities owned (counted once per owner).
    pub owned: u64,
    /// Entities in transit (committed by their source, not yet applied by their target).
    pub in_transit: u64,
    /// Created entities held nowhere: (id, its creator's range start), at most 20 listed.
    pub lost: Vec<String>,
    /// How many were lost.
    pub lost_count: u64,
    /// Entities owned by more than one node, with their owners and ownership epochs (at most
    /// 20 listed).
    pub duplicated: Vec<String>,
    /// How many were duplicated.
    pub duplicated_count: u64,
    /// Entities held that no node was set to create.
    pub unknown_count: u64,
    /// Commit decisions in all the logs.
    pub commits_logged: u64,
    /// Moves the entities' ownership epochs count.
    pub moves_counted: u64,
    /// Arrivals whose state was damaged.
    pub payload_mismatches: u64,
}

impl Report {
    /// Whether conservation holds.
    pub fn clean(&self) -> bool {
        self.lost_count == 0
            && self.duplicated_count == 0
            && self.unknown_count == 0
            && self.commits_logged == self.moves_counted
            && self.payload_mismatches == 0
    }
}

/// Shown in lists.
const LISTED_MAX: usize = 20;

/// Checks one round of holdings, one per node.
pub fn check(all: &[Holdings]) -> Report {
    let mut report = Report {
        nodes: all.len(),
        paused: all.iter().filter(|h| h.paused).count(),
        ..Report::default()
    };
    let mut owners: HashMap<u128, Vec<(usize, u64)>> = HashMap::new();
    let mut transit: HashMap<u128, u64> = HashMap::new();
    for (i, h) in all.iter().enumerate() {
        for &(id, o) in &h.owned {
            owners.entry(id).or_default().push((i, o));
        }
        for &(id, o) in &h.in_transit {
            let t = transit.entry(id).or_default();
            *t = (*t).max(o);
        }
        report.commits_logged += h.commits_logged;
        report.payload_mismatches += h.payload_mismatches;
    }
    let ranges: Vec<(u128, u128)> = all
        .iter()
        .filter(|h| h.spawn_range.1 > 0)
        .map(|h| {
            (u128::from(h.spawn_range.0), u128::from(h.spawn_range.0) + u128::from(h.spawn_range.1))
        })
        .collect();
    report.expected = all.iter().map(|h| h.spawn_range.1).sum();
    report.owned = owners.values().map(|v| v.len() as u64).sum();
    report.in_transit = transit.len() as u64;
    let created = |id: u128| ranges.iter().any(|(lo, hi)| (*lo..*hi).contains(&id));
    for (lo, hi) in &ranges {
        for id in *lo..*hi {
            if !owners.contains_key(&id) && !transit.contains_key(&id) {
                report.lost_count += 1;
                if report.lost.len() < LISTED_MAX {
                    report.lost.push(format!("{id:#x}"));
                }
            }
        }
    }
    let mut seen: BTreeSet<u128> = BTreeSet::new();
    for (id, v) in &owners {
        if !created(*id) {
            report.unknown_count += 1;
        }
        if v.len() > 1 {
            report.duplicated_count += 1;
            if report.duplicated.len() < LISTED_MAX {
                let who: Vec<String> =
                    v.iter().map(|(i, o)| format!("{} at o{o}", short(&all[*i].node))).collect();
                report.duplicated.push(format!("{id:#x} owned by {}", who.join(" and ")));
            }
        }
        seen.insert(*id);
    }
    let mut epochs: BTreeMap<u128, u64> = BTreeMap::new();
    for (id, v) in &owners {
        let top = v.iter().map(|(_, o)| *o).max().unwrap_or(1);
        epochs.insert(*id, top);
    }
    for (id, o) in &transit {
        let e = epochs.entry(*id).or_insert(*o);
        *e = (*e).max(*o);
    }
    report.moves_counted = epochs.values().map(|o| o.saturating_sub(1)).sum();
    report
}

fn short(node: &str) -> &str {
    node.get(..8).unwrap_or(node)
}

/// The status addresses the arguments name.
fn addresses(args: &ConservationArgs) -> anyhow::Result<Vec<SocketAddr>> {
    let mut configs = args.configs.clone();
    if let Some(dir) = &args.cluster {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading the cluster directory {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path().join("node.toml"))
            .filter(|p| p.is_file())
            .collect();
        if found.is_empty() {
            anyhow::bail!("{} holds no node-*/node.toml", dir.display());
        }
        found.sort();
        configs.extend(found);
    }
    let mut addrs = args.addrs.clone();
    for path in &configs {
        let config = crate::config::NodeConfig::load(path)?;
        addrs.push(
            config
                .status
                .ok_or_else(|| anyhow::anyhow!("{} sets no `status` address", path.display()))?,
        );
    }
    if addrs.is_empty() {
        anyhow::bail!("name the nodes: --cluster DIR, --config FILE or --addr HOST:PORT");
    }
    Ok(addrs)
}

/// One round: every node's holdings (all asked at once, so that as few entities as possible
/// move between the answers), or the nodes that did not answer.
pub async fn round(addrs: &[SocketAddr]) -> Result<Vec<Holdings>, Vec<String>> {
    let mut asks = tokio::task::JoinSet::new();
    for (i, addr) in addrs.iter().copied().enumerate() {
        asks.spawn(async move {
            let answer = match crate::status::fetch(addr, "/entities").await {
                Ok(body) => serde_json::from_str::<Holdings>(&body)
                    .map_err(|e| format!("{addr}: not an answer about entities: {e}")),
                Err(e) => Err(format!("{addr}: {e:#}")),
            };
            (i, answer)
        });
    }
    let mut answers: Vec<(usize, Result<Holdings, String>)> = asks.join_all().await;
    answers.sort_by_key(|(i, _)| *i);
    let mut all = Vec::with_capacity(addrs.len());
    let mut failed = Vec::new();
    for (_, a) in answers {
        match a {
            Ok(h) => all.push(h),
            Err(e) => failed.push(e),
        }
    }
    if failed.is_empty() { Ok(all) } else { Err(failed) }
}

/// Runs the check; the exit code: 0 conservation holds, 1 it does not, 2 a node did not
/// answer.
pub fn run(args: &ConservationArgs) -> anyhow::Result<u8> {
    let addrs = addresses(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let deadline = Instant::now() + Duration::from_secs(args.settle);
    let mut rounds = 0u32;
    let outcome = runtime.block_on(async {
        loop {
            rounds += 1;
            let r = round(&addrs).await.map(|all| check(&all));
            let done = matches!(&r, Ok(report) if report.clean());
            if done || Instant::now() >= deadline {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    match outcome {
        Err(failed) => {
            for f in failed {
                eprintln!("no answer: {f}");
            }
            eprintln!("conservation not checked: every node must answer (after {rounds} round(s))");
            Ok(2)
        }
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", describe(&report, rounds));
            }
            Ok(if report.clean() { 0 } else { 1 })
        }
    }
}

/// The report for a person.
pub fn describe(r: &Report, rounds: u32) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let verdict = if r.clean() { "holds" } else { "DOES NOT HOLD" };
    let paused = match r.paused {
        0 => String::new(),
        p if p == r.nodes => ", workload paused".to_string(),
        p => format!(", workload paused on {p}"),
    };
    let _ = writeln!(out, "conservation {verdict} ({} node(s), round {rounds}{paused})", r.nodes);
    let _ = writeln!(
        out,
        "  entities     {} created, {} owned, {} in transit",
        r.expected, r.owned, r.in_transit
    );
    let _ = writeln!(out, "  lost         {}", r.lost_count);
    for l in &r.lost {
        let _ = writeln!(out, "    {l}");
    }
    let _ = writeln!(out, "  duplicated   {}", r.duplicated_count);
    for d in &r.duplicated {
        let _ = writeln!(out, "    {d}");
    }
    if r.unknown_count > 0 {
        let _ =
            writeln!(out, "  unknown      {} (held, but no node creates them)", r.unknown_count);
    }
    let applied =
        if r.commits_logged == r.moves_counted { "each applied once" } else { "MISMATCH" };
    let _ = writeln!(
        out,
        "  migrations   {} committed in the logs, {} counted by ownership epochs: {applied}",
        r.commits_logged, r.moves_counted
    );
    if r.payload_mismatches > 0 {
        let _ = writeln!(
            out,
            "  damaged      {} arrival(s) with a damaged payload",
            r.payload_mismatches
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holdings(
        node: &str,
        range: (u64, u64),
        owned: &[(u128, u64)],
        transit: &[(u128, u64)],
        commits: u64,
    ) -> Holdings {
        Holdings {
            node: format!("{node:0>32}"),
            epoch: 1,
            spawn_range: range,
            owned: owned.to_vec(),
            in_transit: transit.to_vec(),
            commits_logged: commits,
            payload_mismatches: 0,
            paused: false,
        }
    }

    #[test]
    fn a_quiet_cluster_holds_and_each_kind_of_damage_is_reported() {
        // Node a created 10, 11; node b created 20. 11 moved to b once; 20 is on its way to a.
        let a = holdings("a", (10, 2), &[(10, 1)], &[], 1);
        let b = holdings("b", (20, 1), &[(11, 2)], &[(20, 2)], 1);
        let r = check(&[a.clone(), b.clone()]);
        assert!(r.clean(), "{r:?}");
        assert_eq!((r.expected, r.owned, r.in_transit, r.moves_counted), (3, 2, 1, 2));

        // Lost: 10 held nowhere.
        let lost = holdings("a", (10, 2), &[], &[], 1);
        let r = check(&[lost, b.clone()]);
        assert_eq!((r.lost_count, r.lost.clone()), (1, vec!["0xa".to_string()]));
        assert!(!r.clean());

        // Duplicated: 11 owned by both.
        let dup = holdings("a", (10, 2), &[(10, 1), (11, 1)], &[], 1);
        let r = check(&[dup, b.clone()]);
        assert_eq!(r.duplicated_count, 1);
        assert!(r.duplicated[0].starts_with("0xb owned by 00000000 at o1"), "{:?}", r.duplicated);
        assert!(!r.clean());

        // A commit logged but never applied (or applied twice): the counts differ.
        let twice = holdings("b", (20, 1), &[(11, 3)], &[(20, 2)], 1);
        let r = check(&[a.clone(), twice]);
        assert_eq!((r.commits_logged, r.moves_counted), (2, 3));
        assert!(!r.clean());

        // Held but created by nobody.
        let stray = holdings("b", (20, 1), &[(11, 2), (99, 1)], &[(20, 2)], 1);
        let r = check(&[a, stray]);
        assert_eq!(r.unknown_count, 1);
        assert!(!r.clean());
    }

    #[test]
    fn an_entity_seen_at_both_ends_of_its_move_counts_its_moves_once() {
        // b applied the move of 11 (o2) and a still delivers it: in transit and owned.
        let a = holdings("a", (10, 2), &[(10, 1)], &[(11, 2)], 1);
        let b = holdings("b", (20, 0), &[(11, 2)], &[], 0);
        let r = check(&[a, b]);
        assert!(r.clean(), "{r:?}");
        assert_eq!(r.moves_counted, 1);
    }
}
