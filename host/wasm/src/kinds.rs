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

/// A view prepared for policy calls: the protocol view together with its contract form,
/// converted once when the view is installed and shared by every policy call in that view
/// (coordinator, placement, migration). Dereferences to the [`View`].
#[derive(Debug, Clone)]
pub struct PolicyView {
    view: View,
    wit: wt::View,
}

impl PolicyView {
    /// Prepares `view` (one pass over its members).
    pub fn new(view: View) -> Self {
        let wit = to_view(&view);
        Self { view, wit }
    }

    /// The view.
    pub fn view(&self) -> &View {
        &self.view
    }
}

impl std::ops::Deref for PolicyView {
    type Target = View;
    fn deref(&self) -> &View {
        &self.view
    }
}

impl From<View> for PolicyView {
    fn from(view: View) -> Self {
        Self::new(view)
    }
}

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
    let got = call_place(instance, &to_view(&view), &to_bubbles(&view, &bubbles, &[]))?;
    let placed = got.map_err(|m| instance.fault(FaultReason::Smoke(format!("declined: {m}"))))?;
    check::placement_indices(&view, &bubbles, &placed)
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
    pub fn choose(&self, view: &PolicyView, current: Option<MemberId>) -> Answer<MemberId> {
        self.decide(
            |i| call_choose(i, &view.wit, current.and_then(|c| index_of(view, c))),
            |id| check::coordinator(view, id),
            || builtin::coordinator(view),
        )
    }
}

impl PolicySlot<Placement> {
    /// Places `bubbles` (sorted by id, unique) on members of `view`, given the `current`
    /// placement (sorted by bubble). Always every bubble exactly once on a member of `view`,
    /// in bubble order.
    pub fn place(
        &self,
        view: &PolicyView,
        bubbles: &[Bubble],
        current: &[Assignment],
    ) -> Answer<Vec<Assignment>> {
        // Built on first use: a slot answered by the builtin alone never needs the wire form.
        let wb = std::cell::OnceCell::new();
        self.decide(
            |i| call_place(i, &view.wit, wb.get_or_init(|| to_bubbles(view, bubbles, current))),
            |placed| check::placement_indices(view, bubbles, &placed),
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
        view: &PolicyView,
        pending: &[pm::Status],
    ) -> Answer<Vec<pm::PendingAction>> {
        let wv = &view.wit;
        let ws = std::cell::OnceCell::new();
        let ws = || ws.get_or_init(|| pending.iter().map(to_status).collect::<Vec<wm::Status>>());
        self.decide(
            |i| {
                i.call(|s, b| {
                    migration(b).luciole_policy_migration().call_on_view_change(s, wv, ws())
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
    current: Option<u32>,
) -> Result<Result<MemberId, String>, Fault> {
    i.call(|s, b| {
        let Bindings::Coordinator(b) = b else { unreachable!("slot kind checked at swap") };
        b.luciole_policy_coordinator().call_choose(s, view, current.unwrap_or(u32::MAX))
    })
    .map(|r| r.map(from_uid).map_err(|e| e.message))
}

fn call_place(
    i: &Instance,
    view: &wt::View,
    bubbles: &wt::Bubbles,
) -> Result<Result<Vec<u32>, String>, Fault> {
    i.call(|s, b| {
        let Bindings::Placement(b) = b else { unreachable!("slot kind checked at swap") };
        b.luciole_policy_placement().call_place(s, view, bubbles)
    })
    .map(|r| r.map_err(|e| e.message))
}

fn migration(b: &Bindings) -> &crate::bindings::v0_1::migration::MigrationPolicy {
    let Bindings::Migration(b) = b else { unreachable!("slot kind checked at swap") };
    b
}

// ---- conversions ----

fn uid(id: MemberId) -> wt::Uid {
    wt::Uid { hi: id.hi(), lo: id.lo() }
}

/// The index of member `id` in `view`, as the contract counts members.
fn index_of(view: &View, id: MemberId) -> Option<u32> {
    view.members().binary_search_by_key(&id, |m| m.id).ok().map(|i| i as u32)
}

fn from_uid(u: wt::Uid) -> MemberId {
    MemberId::from_parts(u.hi, u.lo)
}

fn uid128(v: u128) -> wt::Uid {
    wt::Uid { hi: (v >> 64) as u64, lo: v as u64 }
}

pub(crate) fn to_view(v: &View) -> wt::View {
    let members = v.members();
    let labelled = members.iter().any(|m| !m.labels.is_empty());
    wt::View {
        epoch: v.epoch().0,
        id: uid128(v.id().0),
        ids: members.iter().flat_map(|m| [m.id.hi(), m.id.lo()]).collect(),
        capacity: members.iter().map(|m| m.capacity).collect(),
        labels: if labelled { labels(members) } else { Vec::new() },
        joined: joined_indices(members, v.joined()),
        left: v.left().iter().copied().map(uid).collect(),
        stable: v.stable(),
        seed: v.seed(),
    }
}

fn labels(members: &[Member]) -> Vec<wt::MemberLabel> {
    let mut out = Vec::new();
    for (i, m) in members.iter().enumerate() {
        for l in &m.labels {
            out.push(wt::MemberLabel {
                member: i as u32,
                key: l.key.clone(),
                value: l.value.clone(),
            });
        }
    }
    out
}

/// Indices of `joined` in `members`; both sorted, so one merge pass.
fn joined_indices(members: &[Member], joined: &[MemberId]) -> Vec<u32> {
    let mut out = Vec::with_capacity(joined.len());
    let mut i = 0;
    for id in joined {
        while i < members.len() && members[i].id < *id {
            i += 1;
        }
        if i < members.len() && members[i].id == *id {
            out.push(i as u32);
        }
    }
    out
}

/// The bubbles as the contract's columns; `current` (sorted by bubble) becomes member indices.
pub(crate) fn to_bubbles(view: &View, bubbles: &[Bubble], current: &[Assignment]) -> wt::Bubbles {
    let members = view.members();
    let geometry = bubbles.iter().any(|b| b.bounds != Default::default());
    let mut bounds = Vec::with_capacity(if geometry { bubbles.len() * 6 } else { 0 });
    if geometry {
        for b in bubbles {
            let (lo, hi) = (b.bounds.min, b.bounds.max);
            bounds.extend_from_slice(&[lo.x, lo.y, lo.z, hi.x, hi.y, hi.z]);
        }
    }
    let host = |b: &Bubble| {
        let at = current.binary_search_by_key(&b.id, |a| a.bubble).ok()?;
        members.binary_search_by_key(&current[at].member, |m| m.id).ok().map(|i| i as u32)
    };
    wt::Bubbles {
        id: bubbles.iter().map(|b| b.id.0).collect(),
        entity_count: bubbles.iter().map(|b| b.entity_count).collect(),
        load: bubbles.iter().map(|b| b.load).collect(),
        bounds,
        current: bubbles.iter().map(|b| host(b).unwrap_or(u32::MAX)).collect(),
    }
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
