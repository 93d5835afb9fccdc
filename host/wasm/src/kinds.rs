//! The three policy kinds: conversions between the protocol types and the generated bindings,
//! the typed call of each kind, its safety check, its built-in fallback and its smoke test.

use luciole_proto::migration as pm;
use luciole_proto::placement::{Assignment, Bubble};
use luciole_proto::{BubbleId, Epoch, Member, MemberId, View, builtin, check};

use crate::bindings::v0_1::migration::exports::luciole::policy::migration as wm;
use crate::bindings::v0_1::types as wt;
use crate::inspect::PolicyKind;
use crate::instance::{Bindings, Fault, FaultReason, Instance};
use crate::slot::{Answer, PolicySlot};

/// A policy kind, as a type: `PolicySlot<Coordinator>` only takes coordinator policies.
pub trait Kind: Send + Sync + 'static + private::Sealed {
    /// The kind.
    const KIND: PolicyKind;
}

/// A small call a new version must answer safely before a swap completes.
pub(crate) fn smoke(kind: PolicyKind, instance: &Instance) -> Result<(), Fault> {
    match kind {
        PolicyKind::Coordinator => smoke_coordinator(instance),
        PolicyKind::Placement => smoke_placement(instance),
        PolicyKind::Migration => smoke_migration_policy(instance),
    }
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::Coordinator {}
    impl Sealed for super::Placement {}
    impl Sealed for super::Migration {}
}

/// Coordinator choice.
#[derive(Debug)]
pub struct Coordinator;
/// Bubble placement.
#[derive(Debug)]
pub struct Placement;
/// Migration decisions.
#[derive(Debug)]
pub struct Migration;

fn smoke_view() -> View {
    let members = vec![Member::new(MemberId(1), 1), Member::new(MemberId(u128::MAX), 1)];
    View::new(Epoch(1), members).expect("a valid view")
}

impl Kind for Coordinator {
    const KIND: PolicyKind = PolicyKind::Coordinator;
}

impl Kind for Placement {
    const KIND: PolicyKind = PolicyKind::Placement;
}

impl Kind for Migration {
    const KIND: PolicyKind = PolicyKind::Migration;
}

fn smoke_coordinator(instance: &Instance) -> Result<(), Fault> {
    let view = smoke_view();
    let w = to_view(&view);
    let got = call_choose(instance, &w, None)?;
    let id = got.map_err(|m| instance.fault(FaultReason::Smoke(format!("declined: {m}"))))?;
    check::coordinator(&view, id).map_err(|v| instance.fault(FaultReason::Violation(v)))?;
    Ok(())
}

fn smoke_placement(instance: &Instance) -> Result<(), Fault> {
    let view = smoke_view();
    let bubbles: Vec<Bubble> = (0..4).map(|i| Bubble::new(BubbleId(i))).collect();
    let got = call_place(instance, &to_view(&view), &to_bubbles(&bubbles), &[])?;
    let placed = got.map_err(|m| instance.fault(FaultReason::Smoke(format!("declined: {m}"))))?;
    check::placement(&view, &bubbles, placed)
        .map_err(|v| instance.fault(FaultReason::Violation(v)))?;
    Ok(())
}

fn smoke_migration_policy(instance: &Instance) -> Result<(), Fault> {
    let load = pm::Load { entities: 0, entities_max: 10, in_flight: 0, in_flight_max: 4 };
    let m = smoke_migration();
    let got = instance.call(|store, b| {
        migration(b).luciole_policy_migration().call_on_prepare(
            store,
            to_migration(&m),
            to_load(&load),
        )
    })?;
    check::prepare(&load, from_admission(got))
        .map_err(|v| instance.fault(FaultReason::Violation(v)))?;
    Ok(())
}

fn smoke_migration() -> pm::Migration {
    pm::Migration {
        id: luciole_proto::MigrationId(1),
        entity: luciole_proto::EntityId(2),
        source: MemberId(1),
        target: MemberId(u128::MAX),
        source_bubble: BubbleId(0),
        target_bubble: BubbleId(1),
        epoch: Epoch(1),
    }
}

impl PolicySlot<Coordinator> {
    /// The coordinator of `view`; `current` is the previous view's coordinator. Always a member
    /// of `view`.
    pub fn choose(&self, view: &View, current: Option<MemberId>) -> Answer<MemberId> {
        let w = to_view(view);
        self.decide(
            |i| call_choose(i, &w, current.map(uid)),
            |id| check::coordinator(view, id),
            || builtin::coordinator(view),
        )
    }
}

impl PolicySlot<Placement> {
    /// Places `bubbles` (sorted by id, unique) on members of `view`, given the `current`
    /// placement. Always every bubble exactly once on a member of `view`, sorted by bubble.
    pub fn place(
        &self,
        view: &View,
        bubbles: &[Bubble],
        current: &[Assignment],
    ) -> Answer<Vec<Assignment>> {
        let (wv, wb, wc) = (to_view(view), to_bubbles(bubbles), to_assignments(current));
        self.decide(
            |i| call_place(i, &wv, &wb, &wc),
            |placed| check::placement(view, bubbles, placed),
            || builtin::placement(view, bubbles),
        )
    }
}

impl PolicySlot<Migration> {
    /// Source: whether to start a requested migration.
    pub fn on_request(&self, m: &pm::Migration, load: &pm::Load) -> Answer<pm::Admission> {
        let (wmig, wload) = (to_migration(m), to_load(load));
        self.decide(
            |i| {
                i.call(|s, b| {
                    migration(b).luciole_policy_migration().call_on_request(s, wmig, wload)
                })
                .map(|a| Ok(from_admission(a)))
            },
            |a| check::request(load, a),
            || builtin::on_request(load),
        )
    }

    /// Target: whether to admit a prepare.
    pub fn on_prepare(&self, m: &pm::Migration, load: &pm::Load) -> Answer<pm::Admission> {
        let (wmig, wload) = (to_migration(m), to_load(load));
        self.decide(
            |i| {
                i.call(|s, b| {
                    migration(b).luciole_policy_migration().call_on_prepare(s, wmig, wload)
                })
                .map(|a| Ok(from_admission(a)))
            },
            |a| check::prepare(load, a),
            || builtin::on_prepare(load),
        )
    }

    /// Source: commit or abort after the target's vote.
    pub fn on_vote(&self, status: &pm::Status, vote: pm::Admission) -> Answer<pm::Outcome> {
        let (ws, wvote) = (to_status(status), to_admission(vote));
        self.decide(
            |i| {
                i.call(|s, b| migration(b).luciole_policy_migration().call_on_vote(s, ws, wvote))
                    .map(|o| Ok(from_outcome(o)))
            },
            |o| check::vote(vote, o),
            || builtin::on_vote(vote),
        )
    }

    /// Either side: what to do when the phase timer fires.
    pub fn on_timeout(&self, status: &pm::Status) -> Answer<pm::TimeoutAction> {
        let ws = to_status(status);
        self.decide(
            |i| {
                i.call(|s, b| migration(b).luciole_policy_migration().call_on_timeout(s, ws))
                    .map(|a| Ok(from_timeout(a)))
            },
            |a| check::timeout(status, a),
            || builtin::on_timeout(status),
        )
    }

    /// Either side: one action per pending migration after a view change.
    pub fn on_view_change(
        &self,
        view: &View,
        pending: &[pm::Status],
    ) -> Answer<Vec<pm::PendingAction>> {
        let wv = to_view(view);
        let ws: Vec<wm::Status> = pending.iter().map(to_status).collect();
        self.decide(
            |i| {
                i.call(|s, b| {
                    migration(b).luciole_policy_migration().call_on_view_change(s, &wv, &ws)
                })
                .map(|v| Ok(v.into_iter().map(from_pending).collect()))
            },
            |actions| check::pending(pending, actions),
            || builtin::on_view_change(pending),
        )
    }
}

fn call_choose(
    i: &Instance,
    view: &wt::View,
    current: Option<wt::Uid>,
) -> Result<Result<MemberId, String>, Fault> {
    i.call(|s, b| {
        let Bindings::Coordinator(b) = b else { unreachable!("slot kind checked at swap") };
        b.luciole_policy_coordinator().call_choose(s, view, current)
    })
    .map(|r| r.map(from_uid).map_err(|e| e.message))
}

fn call_place(
    i: &Instance,
    view: &wt::View,
    bubbles: &[wt::Bubble],
    current: &[wt::Assignment],
) -> Result<Result<Vec<Assignment>, String>, Fault> {
    i.call(|s, b| {
        let Bindings::Placement(b) = b else { unreachable!("slot kind checked at swap") };
        b.luciole_policy_placement().call_place(s, view, bubbles, current)
    })
    .map(|r| {
        r.map(|v| {
            v.into_iter()
                .map(|a| Assignment { bubble: BubbleId(a.bubble), member: from_uid(a.member) })
                .collect()
        })
        .map_err(|e| e.message)
    })
}

fn migration(b: &Bindings) -> &crate::bindings::v0_1::migration::MigrationPolicy {
    let Bindings::Migration(b) = b else { unreachable!("slot kind checked at swap") };
    b
}

// ---- conversions ----

fn uid(id: MemberId) -> wt::Uid {
    wt::Uid { hi: id.hi(), lo: id.lo() }
}

fn from_uid(u: wt::Uid) -> MemberId {
    MemberId::from_parts(u.hi, u.lo)
}

fn uid128(v: u128) -> wt::Uid {
    wt::Uid { hi: (v >> 64) as u64, lo: v as u64 }
}

pub(crate) fn to_view(v: &View) -> wt::View {
    wt::View {
        epoch: v.epoch().0,
        id: uid128(v.id().0),
        members: v
            .members()
            .iter()
            .map(|m| wt::Member { id: uid(m.id), capacity: m.capacity })
            .collect(),
        labels: v
            .members()
            .iter()
            .flat_map(|m| {
                m.labels.iter().map(|l| wt::MemberLabel {
                    member: uid(m.id),
                    key: l.key.clone(),
                    value: l.value.clone(),
                })
            })
            .collect(),
        joined: v.joined().iter().copied().map(uid).collect(),
        left: v.left().iter().copied().map(uid).collect(),
        stable: v.stable(),
        seed: v.seed(),
    }
}

fn to_point(p: luciole_proto::placement::Point) -> wt::Point {
    wt::Point { x: p.x, y: p.y, z: p.z }
}

pub(crate) fn to_bubbles(bubbles: &[Bubble]) -> Vec<wt::Bubble> {
    bubbles
        .iter()
        .map(|b| wt::Bubble {
            id: b.id.0,
            bounds: wt::Bounds { min: to_point(b.bounds.min), max: to_point(b.bounds.max) },
            entity_count: b.entity_count,
            load: b.load,
        })
        .collect()
}

pub(crate) fn to_assignments(a: &[Assignment]) -> Vec<wt::Assignment> {
    a.iter().map(|a| wt::Assignment { bubble: a.bubble.0, member: uid(a.member) }).collect()
}

fn to_migration(m: &pm::Migration) -> wm::Migration {
    wm::Migration {
        id: uid128(m.id.0),
        entity: uid128(m.entity.0),
        source: uid(m.source),
        target: uid(m.target),
        source_bubble: m.source_bubble.0,
        target_bubble: m.target_bubble.0,
        epoch: m.epoch.0,
    }
}

fn to_load(l: &pm::Load) -> wm::Load {
    wm::Load {
        entities: l.entities,
        entities_max: l.entities_max,
        in_flight: l.in_flight,
        in_flight_max: l.in_flight_max,
    }
}

fn to_status(s: &pm::Status) -> wm::Status {
    wm::Status {
        migration: to_migration(&s.migration),
        role: match s.role {
            pm::Role::Source => wm::Role::Source,
            pm::Role::Target => wm::Role::Target,
        },
        phase: match s.phase {
            pm::Phase::Requested => wm::Phase::Requested,
            pm::Phase::Preparing => wm::Phase::Preparing,
            pm::Phase::Prepared => wm::Phase::Prepared,
            pm::Phase::Committing => wm::Phase::Committing,
            pm::Phase::Committed => wm::Phase::Committed,
            pm::Phase::Aborting => wm::Phase::Aborting,
            pm::Phase::Aborted => wm::Phase::Aborted,
        },
        attempt: s.attempt,
        elapsed_ms: s.elapsed_ms,
    }
}

fn to_refusal(r: pm::Refusal) -> wm::Refusal {
    match r {
        pm::Refusal::OverCapacity => wm::Refusal::OverCapacity,
        pm::Refusal::TooBusy => wm::Refusal::TooBusy,
        pm::Refusal::Draining => wm::Refusal::Draining,
        pm::Refusal::Declined => wm::Refusal::Declined,
    }
}

fn from_refusal(r: wm::Refusal) -> pm::Refusal {
    match r {
        wm::Refusal::OverCapacity => pm::Refusal::OverCapacity,
        wm::Refusal::TooBusy => pm::Refusal::TooBusy,
        wm::Refusal::Draining => pm::Refusal::Draining,
        wm::Refusal::Declined => pm::Refusal::Declined,
    }
}

fn to_admission(a: pm::Admission) -> wm::Admission {
    match a {
        pm::Admission::Admit => wm::Admission::Admit,
        pm::Admission::Refuse(r) => wm::Admission::Refuse(to_refusal(r)),
    }
}

fn from_admission(a: wm::Admission) -> pm::Admission {
    match a {
        wm::Admission::Admit => pm::Admission::Admit,
        wm::Admission::Refuse(r) => pm::Admission::Refuse(from_refusal(r)),
    }
}

fn from_outcome(o: wm::Outcome) -> pm::Outcome {
    match o {
        wm::Outcome::Commit => pm::Outcome::Commit,
        wm::Outcome::Abort => pm::Outcome::Abort,
    }
}

fn from_timeout(a: wm::TimeoutAction) -> pm::TimeoutAction {
    match a {
        wm::TimeoutAction::Retry(ms) => pm::TimeoutAction::Retry(ms),
        wm::TimeoutAction::Wait(ms) => pm::TimeoutAction::Wait(ms),
        wm::TimeoutAction::Abort => pm::TimeoutAction::Abort,
    }
}

fn from_pending(a: wm::PendingAction) -> pm::PendingAction {
    match a {
        wm::PendingAction::Keep => pm::PendingAction::Keep,
        wm::PendingAction::Abort => pm::PendingAction::Abort,
    }
}
