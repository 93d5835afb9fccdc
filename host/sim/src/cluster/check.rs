//! The conservation checker of the whole-cluster simulation, run after every step, and the
//! end state a run must reach once faults stop.

use std::collections::{BTreeMap, BTreeSet};

use luciole_proto::migration::{Ownership, Phase};
use luciole_proto::{EntityId, Epoch, MemberId, MigrationId};

use super::ClusterNode;
use crate::Sim;

/// After every step:
///
/// - every entity is held exactly once: owned by one member (a down member counts with what
///   its log recovers to), or committed by its source and held in doubt by the target (the
///   recoverable in-flight state that resolves to that target); none appears from nowhere;
/// - at most one member acts on an entity (may update or move it), and only at the newest
///   ownership epoch anyone holds or gave it away at (no owner acts on an epoch it was fenced
///   out of);
/// - no migration's commit is durably applied twice (over every node's log, all lives);
/// - every member that installed a view epoch installed the same members for it;
/// - no node's log failed.
#[derive(Debug, Default)]
pub struct Conservation {
    steps: u64,
    entities: BTreeSet<EntityId>,
    applied: BTreeMap<(MemberId, MigrationId), MemberId>,
    applied_seen: BTreeMap<MemberId, usize>,
    views: BTreeMap<Epoch, Vec<MemberId>>,
    views_seen: BTreeMap<MemberId, usize>,
    /// The nodes' versions at the last full check.
    versions: Vec<u64>,
    /// Reused between checks.
    scratch: Vec<EntityId>,
    actors: Vec<(EntityId, Ownership, Option<MemberId>)>,
}

impl Conservation {
    /// Steps checked so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// From now on the entities owned now are the ones that must be conserved (until then,
    /// only the other invariants are checked).
    pub fn expect(&mut self, sim: &Sim<ClusterNode>) {
        self.versions.clear();
        self.entities =
            sim.nodes.values().flat_map(|n| n.migration.owned().keys().copied()).collect();
    }

    /// Checks the invariants now.
    pub fn check(&mut self, sim: &Sim<ClusterNode>) -> Result<(), String> {
        self.steps += 1;
        if let Some(f) = sim.nodes.values().find_map(|n| n.fault.as_ref()) {
            return Err(format!("a node's log failed: {f}"));
        }
        let versions: Vec<u64> = sim.nodes.values().map(|n| n.version).collect();
        if versions != self.versions {
            if !self.entities.is_empty() {
                self.holders(sim)?;
            }
            actors(sim, &mut self.actors)?;
            self.versions = versions;
        }
        self.applied_once(sim)?;
        self.views(sim)
    }

    fn holders(&mut self, sim: &Sim<ClusterNode>) -> Result<(), String> {
        let held = &mut self.scratch;
        held.clear();
        for (&m, n) in &sim.nodes {
            held.extend(n.migration.owned().keys().copied());
            held.extend(in_doubt(sim, m, n).map(|(e, _)| e));
        }
        held.sort_unstable();
        if held.iter().eq(self.entities.iter()) {
            return Ok(());
        }
        // Something is off: find which entity, and say who holds it.
        let count = |e: &EntityId| held.iter().filter(|x| *x == e).count();
        let wrong = self.entities.iter().find(|e| count(e) != 1);
        let wrong = wrong.or_else(|| held.iter().find(|e| !self.entities.contains(e)));
        let e = *wrong.expect("the lists differ");
        Err(describe(sim, e, self.entities.contains(&e)))
    }

    fn applied_once(&mut self, sim: &Sim<ClusterNode>) -> Result<(), String> {
        for (&m, n) in &sim.nodes {
            let seen = self.applied_seen.entry(m).or_default();
            for &(source, id) in &n.durable_commits[*seen..] {
                if let Some(other) = self.applied.insert((source, id), m) {
                    return Err(format!(
                        "migration {id} from {source} applied twice: durably committed on {other} and on {m}"
                    ));
                }
            }
            *seen = n.durable_commits.len();
        }
        Ok(())
    }

    fn views(&mut self, sim: &Sim<ClusterNode>) -> Result<(), String> {
        for (&m, n) in &sim.nodes {
            let seen = self.views_seen.entry(m).or_default();
            for (epoch, members) in &n.installed[*seen..] {
                match self.views.get(epoch) {
                    Some(other) if other != members => {
                        return Err(format!(
                            "epoch {}: {m} installed {} members, another member {}",
                            epoch.0,
                            members.len(),
                            other.len()
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.views.insert(*epoch, members.clone());
                    }
                }
            }
            *seen = n.installed.len();
        }
        Ok(())
    }
}

/// The committed moves of `n` (member `m`) whose target holds the entity in doubt: (entity,
/// target).
fn in_doubt<'a>(
    sim: &'a Sim<ClusterNode>,
    m: MemberId,
    n: &'a ClusterNode,
) -> impl Iterator<Item = (EntityId, MemberId)> + 'a {
    n.migration.outgoing().iter().filter_map(move |(id, f)| {
        let target = f.migration.target;
        let held = f.phase == Phase::Committing
            && sim.nodes.get(&target).is_some_and(|t| {
                t.migration.incoming().get(&(m, *id)).is_some_and(|g| g.ownership == f.ownership)
            });
        held.then_some((f.migration.entity, target))
    })
}

/// Who holds `e`, for the error.
fn describe(sim: &Sim<ClusterNode>, e: EntityId, expected: bool) -> String {
    let mut holders = Vec::new();
    for (&m, n) in &sim.nodes {
        if let Some(o) = n.migration.owned().get(&e) {
            holders.push(format!("owned by {m} at {}", o.ownership));
        }
        for (_, target) in in_doubt(sim, m, n).filter(|(x, _)| *x == e) {
            holders.push(format!("committed by {m} to {target}, held in doubt there"));
        }
    }
    match (expected, holders.len()) {
        (false, _) => format!("{e} appeared from nowhere: {}", holders.join("; ")),
        (true, 0) => format!("{e} lost: nobody holds it"),
        (true, k) => format!("{e} held {k} times: {}", holders.join("; ")),
    }
}

/// At most one actor per entity, at the newest epoch: per entity, every epoch it is held or
/// given away at, with the member acting on it at that epoch if one is.
fn actors(
    sim: &Sim<ClusterNode>,
    all: &mut Vec<(EntityId, Ownership, Option<MemberId>)>,
) -> Result<(), String> {
    all.clear();
    for (&m, n) in &sim.nodes {
        for (e, o) in n.migration.owned() {
            let acting = !n.is_down() && n.migration.acting(*e);
            all.push((*e, o.ownership, acting.then_some(m)));
        }
        let given = n.migration.outgoing().values().filter(|f| f.phase == Phase::Committing);
        all.extend(given.map(|f| (f.migration.entity, f.ownership, None)));
    }
    all.sort_unstable();
    for group in all.chunk_by(|a, b| a.0 == b.0) {
        let (e, newest, _) = group[group.len() - 1];
        let actors: Vec<_> = group.iter().filter_map(|(_, o, m)| m.map(|m| (m, *o))).collect();
        if actors.len() > 1 {
            return Err(format!("{e}: {} members act on it: {actors:?}", actors.len()));
        }
        if let Some(&(m, o)) = actors.first()
            && o != newest
        {
            return Err(format!("{e}: {m} acts on it at {o}, fenced out by {newest}"));
        }
    }
    Ok(())
}

/// The end state: every node up and a member of one view of all of them with a quorum, no
/// migration in flight, every entity owned by its bubble's home.
pub(super) fn settled(sim: &Sim<ClusterNode>, bubbles: u64) -> Result<(), String> {
    let ids: Vec<MemberId> = sim.nodes.keys().copied().collect();
    let mut view = None;
    for (&m, n) in &sim.nodes {
        let Some((epoch, members, quorum)) = n.view() else {
            return Err(format!("{m} is {}", if n.is_down() { "down" } else { "joining" }));
        };
        if !quorum || members != ids.as_slice() {
            return Err(format!("{m} is in a view of {} members, quorum {quorum}", members.len()));
        }
        if view.is_some_and(|v| v != epoch) {
            return Err("members are in different views".into());
        }
        view = Some(epoch);
        if let Some(f) =
            n.migration.outgoing().values().chain(n.migration.incoming().values()).next()
        {
            return Err(format!("{m} has migration {} still {:?}", f.migration.id, f.phase));
        }
    }
    let first = sim.nodes.values().next().expect("a cluster");
    let homes = first.homes_now();
    for (&m, n) in &sim.nodes {
        for (e, o) in n.migration.owned() {
            if homes.len() as u64 == bubbles && homes.get(&o.bubble) != Some(&m) {
                return Err(format!("{e} is on {m}, its bubble {} lives elsewhere", o.bubble.0));
            }
        }
    }
    Ok(())
}
