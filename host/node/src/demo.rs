//! `luciole demo`: one node, a synthetic changing membership, every decision printed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use luciole_proto::migration::{Load, Migration as Move, Phase, Role, Status};
use luciole_proto::placement::{Assignment, Bubble};
use luciole_proto::rand::SplitMix64;
use luciole_proto::{BubbleId, EntityId, Epoch, Member, MemberId, MigrationId, View, check};
use luciole_wasm::{
    AnsweredBy, ArtifactCache, Coordinator, EngineConfig, LoadedPolicy, Migration, Placement,
    PolicyEngine, PolicySlot, PolicyView,
};

/// Options of `luciole demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of policy components (as built by `cargo xtask plugins`). Without it the node
    /// runs on its built-in native defaults.
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Views to install.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    views: u64,
    /// Members in the first view.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=1_000))]
    members: u64,
    /// Bubbles to place.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    bubbles: u64,
    /// Seed of the synthetic membership changes (same seed, same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where precompiled policy artifacts are cached [default: ~/.cache/luciole/artifacts].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Fuel per policy call (about one unit per wasm instruction); a call that needs more is
    /// stopped and answered by the fallback. A cluster setting: a policy can observe it, so
    /// every node of a cluster must use the same value.
    #[arg(long, default_value_t = luciole_wasm::FUEL_PER_CALL_DEFAULT,
          value_parser = clap::value_parser!(u64).range(10_000..=10_000_000_000))]
    fuel: u64,
    /// Memory cap of one policy instance over all its linear memories, in MiB. A cluster
    /// setting: a policy can observe it, so every node of a cluster must use the same value.
    #[arg(long, default_value_t = (luciole_wasm::MEMORY_BYTES_MAX_DEFAULT >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    memory_mib: u64,
    /// Longest a policy may take to compile, in seconds; a load past it is refused (node-local).
    #[arg(long, default_value_t = luciole_wasm::COMPILE_DEADLINE_DEFAULT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    compile_deadline_s: u64,
    /// Halfway, hot-swap this coordinator component in (a policy in any language, e.g. from
    /// `cargo xtask examples`) instead of the default midway swaps.
    #[arg(long, value_name = "FILE.wasm")]
    swap_coordinator: Option<PathBuf>,
    /// Halfway, hot-swap this placement component in instead of the default midway swaps.
    #[arg(long, value_name = "FILE.wasm")]
    swap_placement: Option<PathBuf>,
    /// Halfway, hot-swap this migration component in instead of the default midway swaps.
    #[arg(long, value_name = "FILE.wasm")]
    swap_migration: Option<PathBuf>,
    /// Record every view the coordinator and placement policies are asked about, as a cases
    /// file that `luciole policy test FILE.wasm --cases FILE.toml` replays (add `expect` lines
    /// to turn a recorded view into a test).
    #[arg(long, value_name = "FILE.toml")]
    record: Option<PathBuf>,
}

/// A recorded view, as `policy test --cases` reads it.
#[derive(serde::Serialize)]
struct Recorded {
    name: String,
    epoch: u64,
    members: Vec<RecordedMember>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<String>,
    bubbles: u64,
}

#[derive(serde::Serialize)]
struct RecordedMember {
    id: String,
    capacity: u32,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(serde::Serialize)]
struct Trace {
    case: Vec<Recorded>,
}

fn recorded(view: &View, current: Option<MemberId>, bubbles: u64) -> Recorded {
    let members = view.members().iter().map(|m| RecordedMember {
        id: m.id.to_string(),
        capacity: m.capacity,
        labels: m.labels.iter().map(|l| (l.key.clone(), l.value.clone())).collect(),
    });
    Recorded {
        name: format!("demo view {}", view.epoch().0),
        epoch: view.epoch().0,
        members: members.collect(),
        current: current.map(|c| c.to_string()),
        bubbles,
    }
}

struct Node {
    engine: PolicyEngine,
    plugins: Option<PathBuf>,
    swap_coordinator: Option<PathBuf>,
    swap_placement: Option<PathBuf>,
    swap_migration: Option<PathBuf>,
    coordinator: PolicySlot<Coordinator>,
    placement: PolicySlot<Placement>,
    migration: PolicySlot<Migration>,
}

impl Args {
    /// The directory of policy components, if given.
    pub fn plugins(&self) -> Option<&std::path::Path> {
        self.plugins.as_deref()
    }

    /// The first option given that only the single-node walkthrough (`--local`) takes.
    pub fn walkthrough_only(&self) -> Option<&'static str> {
        [
            (self.swap_coordinator.is_some(), "--swap-coordinator"),
            (self.swap_placement.is_some(), "--swap-placement"),
            (self.swap_migration.is_some(), "--swap-migration"),
            (self.record.is_some(), "--record"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }
}

/// Runs the demo.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cache_dir = args.cache_dir.clone().unwrap_or_else(crate::policy::default_cache_dir);
    let cache = ArtifactCache::new(&cache_dir)?;
    let engine = PolicyEngine::new(EngineConfig {
        cache: Some(cache),
        fuel_per_call: args.fuel,
        memory_bytes_max: (args.memory_mib as usize) << 20,
        compile_deadline: std::time::Duration::from_secs(args.compile_deadline_s),
        ..EngineConfig::default()
    })?;
    let node = Node {
        engine,
        plugins: args.plugins.clone(),
        swap_coordinator: args.swap_coordinator.clone(),
        swap_placement: args.swap_placement.clone(),
        swap_migration: args.swap_migration.clone(),
        coordinator: PolicySlot::new(),
        placement: PolicySlot::new(),
        migration: PolicySlot::new(),
    };
    println!(
        "luciole demo: one node, {} views, {} bubbles, seed {}",
        args.views, args.bubbles, args.seed
    );
    match &node.plugins {
        Some(dir) => {
            println!("policies from {} (artifact cache {})", dir.display(), cache_dir.display());
            node.swap_coordinator("coordinator-lowest-id");
            node.swap_placement("placement-rendezvous");
            node.swap_migration("migration-standard");
        }
        None => println!(
            "no --plugins: the built-in native defaults decide (lowest-id, rendezvous, standard)"
        ),
    }
    let mut rng = SplitMix64::new(args.seed);
    let mut next_id = 0u128;
    let mut fresh = |rng: &mut SplitMix64| {
        next_id += 1;
        Member::new(
            MemberId(((rng.next_u64() as u128) << 64) | next_id),
            50 + (rng.next_u64() % 4) as u32 * 50,
        )
    };
    let bubbles: Vec<Bubble> = (0..args.bubbles)
        .map(|i| Bubble { load: (rng.next_u64() % 100) as u32, ..Bubble::new(BubbleId(i)) })
        .collect();
    let mut view = View::new(Epoch(1), (0..args.members).map(|_| fresh(&mut rng)).collect())?;
    let mut coordinator = None;
    let mut placement: Vec<Assignment> = Vec::new();
    let mut trace = Trace { case: Vec::new() };
    for step in 1..=args.views {
        if step > 1 {
            let mut members = view.members().to_vec();
            let roll = rng.next_u64() % 3;
            if roll != 0 && members.len() > 2 {
                members.remove((rng.next_u64() % members.len() as u64) as usize);
            }
            if roll != 1 {
                members.push(fresh(&mut rng));
            }
            view = view.next(Epoch(view.epoch().0 + 1), members)?;
        }
        if step == args.views / 2 + 1 {
            node.midway_swaps();
        }
        if args.record.is_some() {
            // What the policies are asked: the current coordinator if it is still a member.
            let current = coordinator.filter(|c| view.members().iter().any(|m| m.id == *c));
            trace.case.push(recorded(&view, current, args.bubbles));
        }
        // Converted once per installed view, shared by every policy call in it.
        let prepared = PolicyView::new(view.clone());
        coordinator = Some(node.decide_view(&prepared, coordinator, &bubbles, &mut placement));
        node.sample_migration(&view);
    }
    node.summary();
    if let Some(path) = &args.record {
        let text = toml::to_string(&trace).context("writing the trace")?;
        let header = format!(
            "# Views of `luciole demo --local --seed {}`, as the coordinator and placement\n\
             # policies were asked (the placement from scratch). Replay: luciole policy test \
             FILE.wasm --cases {}\n",
            args.seed,
            path.display()
        );
        std::fs::write(path, header + &text)
            .with_context(|| format!("writing the trace {}", path.display()))?;
        println!("recorded {} view(s) into {}", trace.case.len(), path.display());
    }
    Ok(())
}

impl Node {
    fn load_file(&self, path: &std::path::Path) -> anyhow::Result<Arc<LoadedPolicy>> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let started = Instant::now();
        let loaded = self.engine.load(&bytes).with_context(|| path.display().to_string())?;
        println!(
            "  loaded {:<24} {:>6.2} ms ({})",
            loaded.meta().label(),
            started.elapsed().as_secs_f64() * 1e3,
            if loaded.from_cache { "precompiled artifact" } else { "compiled" }
        );
        Ok(loaded)
    }

    fn swap_coordinator(&self, name: &str) {
        self.load_and_swap(&self.coordinator, &self.plugin(name));
    }

    fn swap_placement(&self, name: &str) {
        self.load_and_swap(&self.placement, &self.plugin(name));
    }

    fn swap_migration(&self, name: &str) {
        self.load_and_swap(&self.migration, &self.plugin(name));
    }

    fn plugin(&self, name: &str) -> PathBuf {
        let dir = self.plugins.as_ref().expect("only called with --plugins");
        dir.join(format!("{name}.wasm"))
    }

    /// Loads `path` and swaps it into `slot`. A refused load or swap changes nothing: the slot
    /// keeps the version it had, and the demo says why and goes on.
    fn load_and_swap<K: luciole_wasm::Kind>(&self, slot: &PolicySlot<K>, path: &std::path::Path) {
        let kind = K::KIND.to_string();
        let keeps = || slot.active().map(|m| m.label()).unwrap_or_else(|| "the builtin".into());
        let loaded = match self.load_file(path) {
            Ok(loaded) => loaded,
            Err(e) => {
                println!("  load   {kind:<11} refused: {e:#}; {kind} keeps {}", keeps());
                return;
            }
        };
        match slot.swap(&loaded) {
            Ok(report) => println!(
                "  swap   {kind:<11} -> {} in {:.3} ms",
                report.active.label(),
                report.prepare_time.as_secs_f64() * 1e3
            ),
            Err(e) => println!("  swap   {kind:<11} refused: {e}; {kind} keeps {}", keeps()),
        }
    }

    fn midway_swaps(&self) {
        let asked = [&self.swap_coordinator, &self.swap_placement, &self.swap_migration];
        if asked.iter().any(|p| p.is_some()) {
            println!("-- hot swap while the node runs --");
            if let Some(path) = &self.swap_coordinator {
                self.load_and_swap(&self.coordinator, path);
            }
            if let Some(path) = &self.swap_placement {
                self.load_and_swap(&self.placement, path);
            }
            if let Some(path) = &self.swap_migration {
                self.load_and_swap(&self.migration, path);
            }
            return;
        }
        let Some(dir) = &self.plugins else { return };
        println!("-- hot swap while the node runs --");
        self.swap_coordinator("coordinator-sticky");
        self.swap_placement("placement-least-loaded");
        if dir.join("hostile-loop.wasm").exists() {
            println!(
                "-- swap in a hostile coordinator (passes the smoke call, then loops forever) --"
            );
            self.swap_coordinator("hostile-loop");
        }
    }

    fn decide_view(
        &self,
        view: &PolicyView,
        current: Option<MemberId>,
        bubbles: &[Bubble],
        placement: &mut Vec<Assignment>,
    ) -> MemberId {
        let started = Instant::now();
        let chosen = self.coordinator.choose(view, current);
        let coordinator_us = started.elapsed().as_secs_f64() * 1e6;
        let started = Instant::now();
        let placed = self.placement.place(view, bubbles, placement);
        let placement_us = started.elapsed().as_secs_f64() * 1e6;
        let moved = if placement.is_empty() {
            0
        } else {
            placement.iter().zip(&placed.value).filter(|(a, b)| a.member != b.member).count()
        };
        let counts = check::bubbles_per_member(&placed.value);
        let (lo, hi) = (counts.values().min().unwrap_or(&0), counts.values().max().unwrap_or(&0));
        println!(
            "epoch {:>3}  members {:>3} (+{} -{})  coordinator {}… by {:<20} {:>7.1} µs",
            view.epoch().0,
            view.members().len(),
            view.joined().len(),
            view.left().len(),
            &chosen.value.to_string()[..8],
            by(&chosen.by),
            coordinator_us
        );
        println!("           {}", members_line(view.members()));
        for fault in chosen.faults.iter().chain(&placed.faults) {
            println!(
                "           fault: {fault} -> quarantined, answered by the fallback in the same call"
            );
        }
        println!(
            "           placement {} bubbles, {} moved, {}..{} per member, by {:<20} {:>7.1} µs",
            placed.value.len(),
            moved,
            lo,
            hi,
            by(&placed.by),
            placement_us
        );
        *placement = placed.value;
        // The next decisions' fresh instantiations, made now rather than when they are due.
        self.coordinator.prepare();
        self.placement.prepare();
        chosen.value
    }

    fn sample_migration(&self, view: &View) {
        let members = view.members();
        let m = Move {
            id: MigrationId(view.epoch().0 as u128),
            entity: EntityId(42),
            source: members[0].id,
            target: members[members.len() - 1].id,
            source_bubble: BubbleId(0),
            target_bubble: BubbleId(1),
            epoch: view.epoch(),
        };
        let load = Load {
            entities: 90 + view.epoch().0 as u32 % 20,
            entities_max: 100,
            in_flight: 1,
            in_flight_max: 8,
        };
        let prepare = self.migration.on_prepare(&m, &load);
        let status = Status {
            migration: m,
            role: Role::Source,
            phase: Phase::Committing,
            attempt: 4,
            elapsed_ms: 450,
        };
        let timeout = self.migration.on_timeout(&status);
        println!(
            "           migration prepare at {}/{} entities -> {:?}; commit timer after 450 ms -> {:?}, by {}",
            load.entities,
            load.entities_max,
            prepare.value,
            timeout.value,
            by(&timeout.by)
        );
        for fault in prepare.faults.iter().chain(&timeout.faults) {
            println!(
                "           fault: {fault} -> quarantined, answered by the fallback in the same call"
            );
        }
    }

    fn summary(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        println!("-- policy slots --");
        let line = |kind: &str, s: &luciole_wasm::SlotStats, active: Option<String>, q: usize| {
            let (calls, declined) = (s.calls.load(Relaxed), s.declined.load(Relaxed));
            // A policy that declines every call is the one to look at.
            let all = if calls > 0 && declined >= calls { " (every call!)" } else { "" };
            println!(
                "{kind:<12} active {:<24} calls {:>4}  by active {:>4}  last good {:>3}  builtin {:>4}  declines {declined}{all}  faults {}  quarantined {}",
                active.unwrap_or_else(|| "(builtin)".into()),
                calls,
                s.by_active.load(Relaxed),
                s.by_last_good.load(Relaxed),
                s.by_builtin.load(Relaxed),
                s.faults.load(Relaxed),
                q
            )
        };
        line(
            "coordinator",
            self.coordinator.stats(),
            self.coordinator.active().map(|m| m.label()),
            self.coordinator.quarantined().len(),
        );
        line(
            "placement",
            self.placement.stats(),
            self.placement.active().map(|m| m.label()),
            self.placement.quarantined().len(),
        );
        line(
            "migration",
            self.migration.stats(),
            self.migration.active().map(|m| m.label()),
            self.migration.quarantined().len(),
        );
    }
}

/// The members' capacities (and labels, if any), so capacity-aware answers can be judged: each
/// member for small views, the range for large ones.
fn members_line(members: &[Member]) -> String {
    let label = |m: &Member| {
        let l: Vec<String> = m.labels.iter().map(|l| format!("{}={}", l.key, l.value)).collect();
        if l.is_empty() { String::new() } else { format!(" [{}]", l.join(",")) }
    };
    if members.len() <= 8 {
        let each: Vec<String> = members
            .iter()
            .map(|m| format!("{}… {}{}", &m.id.to_string()[..8], m.capacity, label(m)))
            .collect();
        return format!("capacities {}", each.join(", "));
    }
    let caps = members.iter().map(|m| m.capacity);
    let (lo, hi) = (caps.clone().min().unwrap_or(0), caps.clone().max().unwrap_or(0));
    let labelled = members.iter().filter(|m| !m.labels.is_empty()).count();
    format!(
        "capacities {lo}..{hi} (total {}), {labelled} labelled",
        caps.map(u64::from).sum::<u64>()
    )
}

fn by(by: &AnsweredBy) -> String {
    match by {
        AnsweredBy::Active(m) => m.label(),
        AnsweredBy::LastGood(m) => format!("{} (last good)", m.label()),
        AnsweredBy::Builtin => "builtin".into(),
    }
}
