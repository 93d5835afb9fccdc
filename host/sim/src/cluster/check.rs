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
            actors(sim)?;
            self.versions = versions;
        }
        self.applied_once(sim)?;
        self.views(sim)
    }

    fn holders(&self, sim: &Sim<ClusterNode>) -> Result<(), String> {
        let mut held: BTreeMap<EntityId, u32> = BTreeMap::new();
        for (&m, n) in &sim.nodes {
            for e in n.migration.owned().keys() {
                *held.entry(*e).or_default() += 1;
            }
            for (e, _) in in_doubt(sim, m, n) {
                *held.entry(e).or_default() += 1;
            }
        }
        let wrong = self.entities.iter().find(|e| held.get(e) != Some(&1));
        let wrong = wrong.or_else(|| held.keys().find(|e| !self.entities.contains(e)));
        match wrong {
            None => Ok(()),
            Some(e) => Err(describe(sim, *e, self.entities.contains(e))),
        }
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

/// At most one actor per entity, at the newest epoch.
fn actors(sim: &Sim<ClusterNode>) -> Result<(), String> {
    let mut newest: BTreeMap<EntityId, Ownership> = BTreeMap::new();
    let mut acting: BTreeMap<EntityId, Vec<(MemberId, Ownership)>> = BTreeMap::new();
    for (&m, n) in &sim.nodes {
        for (e, o) in n.migration.owned() {
            let top = newest.entry(*e).or_insert(o.ownership);
            *top = (*top).max(o.ownership);
            if !n.is_down() && n.migration.acting(*e) {
                acting.entry(*e).or_default().push((m, o.ownership));
            }
        }
        for f in n.migration.outgoing().values().filter(|f| f.phase == Phase::Committing) {
            let top = newest.entry(f.migration.entity).or_insert(f.ownership);
            *top = (*top).max(f.ownership);
        }
    }
    for (e, actors) in acting {
        if actors.len() > 1 {
            return Err(format!("{e}: {} members act on it: {actors:?}", actors.len()));
        }
        let (m, o) = actors[0];
        if Some(&o) != newest.get(&e) {
            return Err(format!("{e}: {m} acts on it at {o}, fenced out by {}", newest[&e]));
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
