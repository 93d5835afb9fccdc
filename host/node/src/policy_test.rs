//! `luciole policy test`: a component run against built-in input sets, every call printed with
//! who answered, faults, declines, its time and the fuel it used; with `--compare-builtin` or
//! `--compare OTHER.wasm`, where its answers differ from the built-in policy's or another
//! component's. Exits non-zero on any fault or decline (a violation of
//! the safety checks is a fault).
//!
//! A migration component is asked each of its five questions on built-in states (loads at
//! and below the limits, every vote, timers of each role and phase early and late, view
//! changes with 1 to 256 pending migrations, a node's limit); an answer that would break exactly-once is a
//! fault. The whole-cluster simulator (`luciole-sim --cluster … --policy`) drives it through
//! the migration core.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use luciole_proto::placement::{Assignment, Bubble};
use luciole_proto::rand::SplitMix64;
use luciole_proto::{BubbleId, Epoch, Label, Member, MemberId, View};
use luciole_wasm::{
    Answer, AnsweredBy, Coordinator, Kind, Migration as MigrationSlot, Placement, PolicyKind,
    PolicySlot, PolicyView,
};

use crate::policy::{Cache, Loaded, load};
use crate::policy_cases::AuthorCase;

/// One input: a view (members with capacities and labels) and, for placement, the bubbles.
struct Case {
    name: String,
    view: View,
    bubbles: Vec<Bubble>,
}

/// The built-in input sets: one member; three with one at zero capacity; labels; 100 members
/// with 10,000 bubbles, 1,000 with 1,000 (no bubbles unless `with_bubbles`). Deterministic
/// (seeded), so runs compare.
fn cases(with_bubbles: bool) -> anyhow::Result<Vec<Case>> {
    let mut rng = SplitMix64::new(0x5eed);
    let mut view = |n: usize, zero: usize, labelled: bool| -> anyhow::Result<View> {
        let members = (0..n)
            .map(|i| {
                let id = MemberId((u128::from(rng.next_u64()) << 64) | (i as u128 + 1));
                let capacity = if i < zero { 0 } else { 50 * (1 + (rng.next_u64() % 4) as u32) };
                let mut m = Member::new(id, capacity);
                if labelled {
                    let zone = ["a", "b", "c"][i % 3];
                    m.labels = vec![Label { key: "zone".into(), value: zone.into() }];
                }
                m
            })
            .collect::<Vec<Member>>();
        Ok(View::new(Epoch(1), members)?)
    };
    let bubbles = |n: u64| {
        let n = if with_bubbles { n } else { 0 };
        (0..n).map(|i| Bubble::new(BubbleId(i))).collect::<Vec<_>>()
    };
    Ok(vec![
        Case { name: "1 member".into(), view: view(1, 0, false)?, bubbles: bubbles(16) },
        Case {
            name: "3 members, one at capacity 0".into(),
            view: view(3, 1, false)?,
            bubbles: bubbles(16),
        },
        Case {
            name: "12 members with zone labels".into(),
            view: view(12, 0, true)?,
            bubbles: bubbles(64),
        },
        Case {
            name: "100 members with zone labels".into(),
            view: view(100, 5, true)?,
            bubbles: bubbles(10_000),
        },
        // (10,000 bubbles on 1,000 members is beyond the default fuel of the reference
        // placements: ten million rendezvous hashes.)
        // (Labels on all 1,000 take the JavaScript engine past the default fuel before the
        // policy runs: about 60,000 units per label to hand them over. 100 carry them.)
        Case {
            name: "1,000 members".into(),
            view: view(1_000, 0, false)?,
            bubbles: bubbles(1_000),
        },
    ])
}

/// What one call gave, for the report.
struct Outcome {
    summary: String,
    by: String,
    faults: Vec<String>,
    declines: Vec<String>,
    took: Duration,
    /// Fuel the answering call used; `None` when the built-in answered.
    fuel: Option<u64>,
    differs: Option<bool>,
    /// How the answer missed what the author's case expected.
    mismatch: Option<String>,
}

fn outcome<T>(
    answer: Answer<T>,
    took: Duration,
    summary: String,
    differs: Option<bool>,
) -> Outcome {
    Outcome {
        summary,
        by: match &answer.by {
            AnsweredBy::Active(m) => format!("{} {}", m.name, m.version),
            AnsweredBy::LastGood(m) => format!("last good {} {}", m.name, m.version),
            AnsweredBy::Builtin => "the built-in (the component did not answer)".into(),
        },
        faults: answer.faults.iter().map(|f| f.to_string()).collect(),
        declines: answer.declined.iter().map(|(_, reason)| reason.clone()).collect(),
        took,
        fuel: answer.fuel,
        differs,
        mismatch: None,
    }
}

/// What `policy test` compares each answer with.
#[derive(Clone, Copy, Debug)]
pub enum Compare<'a> {
    /// Nothing.
    None,
    /// The node's built-in policy of the kind.
    Builtin,
    /// Another component of the same kind.
    Component(&'a Path),
}

/// A fresh slot that answers as the policy compared with: empty (the built-in answers), or
/// with the other component swapped in.
type Reference<'a, K> = &'a dyn Fn() -> anyhow::Result<PolicySlot<K>>;

/// Runs `file` against the built-in inputs of its kind (if `builtin`), then the author's
/// cases in `cases` (a TOML file, [`crate::policy_cases`]), and prints each call.
pub fn test(
    file: &Path,
    cache: Cache<'_>,
    compare: Compare<'_>,
    cases: Option<&Path>,
    builtin: bool,
) -> anyhow::Result<()> {
    let authored = cases.map(crate::policy_cases::load).transpose()?.unwrap_or_default();
    let loaded = load(file, cache, |kind| match (kind, cases) {
        (PolicyKind::Migration, Some(_)) => {
            anyhow::bail!(
                "--cases holds coordinator and placement inputs; this is a migration policy"
            )
        }
        _ => Ok(()),
    })?;
    let label = format!("{} {}", loaded.policy.meta().name, loaded.policy.meta().version);
    let kind = loaded.info.kind;
    let other = match compare {
        Compare::Component(other) => Some((
            other,
            load(other, cache, |k| {
                if k == kind {
                    Ok(())
                } else {
                    anyhow::bail!(
                        "a {k} policy cannot be compared with {} ({kind})",
                        file.display()
                    )
                }
            })?,
        )),
        _ => None,
    };
    let against = match &other {
        Some((_, o)) => format!("{} {}", o.policy.meta().name, o.policy.meta().version),
        None => "the built-in".to_string(),
    };
    // Whether to compare, and with what: the other component, or an empty slot (the built-in).
    fn reference<'a, K: Kind>(
        compare: Compare<'_>,
        other: &'a Option<(&'a Path, Loaded)>,
    ) -> Option<Box<dyn Fn() -> anyhow::Result<PolicySlot<K>> + 'a>> {
        match (compare, other) {
            (Compare::None, _) => None,
            (_, Some((file, loaded))) => Some(Box::new(move || armed(file, loaded))),
            (_, None) => Some(Box::new(|| Ok(PolicySlot::new()))),
        }
    }
    let outcomes = match kind {
        PolicyKind::Coordinator => {
            let r = reference(compare, &other);
            coordinators(&|| armed(file, &loaded), r.as_deref(), builtin, &authored)?
        }
        PolicyKind::Placement => {
            let r = reference(compare, &other);
            placements(&|| armed(file, &loaded), r.as_deref(), builtin, &authored)?
        }
        PolicyKind::Migration => {
            migrations(&|| armed(file, &loaded), reference(compare, &other).as_deref())?
        }
    };
    report(file, &label, &against, &outcomes)
}

/// A slot with the component swapped in (which makes its smoke call). Every input gets a slot
/// of its own: a fault quarantines the component only there, so one bad answer does not hide
/// what it does with the inputs after it.
fn armed<K: Kind>(file: &Path, loaded: &Loaded) -> anyhow::Result<PolicySlot<K>> {
    let slot = PolicySlot::<K>::new();
    slot.swap(&loaded.policy).with_context(|| format!("{}: smoke call", file.display()))?;
    Ok(slot)
}

/// Each coordinator input, with no previous coordinator and with the last member as it.
fn coordinators(
    armed: &dyn Fn() -> anyhow::Result<PolicySlot<Coordinator>>,
    reference: Option<Reference<'_, Coordinator>>,
    builtin_inputs: bool,
    authored: &[AuthorCase],
) -> anyhow::Result<Vec<(String, Outcome)>> {
    let ask = |view: &View,
               current: Option<MemberId>,
               check: &dyn Fn(MemberId) -> Option<String>| {
        let slot = armed()?;
        let view = PolicyView::new(view.clone());
        let started = Instant::now();
        let answer = slot.choose(&view, current);
        let took = started.elapsed();
        let chosen = answer.value;
        let differs = reference.map(|r| anyhow::Ok(r()?.choose(&view, current).value != chosen));
        let differs = differs.transpose()?;
        let summary = format!("coordinator {}", &chosen.to_string()[..12]);
        let mut o = outcome(answer, took, summary, differs);
        o.mismatch = check(chosen);
        anyhow::Ok(o)
    };
    let mut out = Vec::new();
    for case in cases(false)?.into_iter().filter(|_| builtin_inputs) {
        let last = case.view.members().last().map(|m| m.id);
        for (what, current) in [("no previous", None), ("previous = last member", last)] {
            out.push((format!("{}, {what}", case.name), ask(&case.view, current, &|_| None)?));
        }
    }
    for case in authored {
        let check = |chosen| case.expect.check_coordinator(chosen);
        out.push((format!("yours: {}", case.name), ask(&case.view, case.current, &check)?));
    }
    Ok(out)
}

/// Each placement input, from no current placement.
fn placements(
    armed: &dyn Fn() -> anyhow::Result<PolicySlot<Placement>>,
    reference: Option<Reference<'_, Placement>>,
    builtin_inputs: bool,
    authored: &[AuthorCase],
) -> anyhow::Result<Vec<(String, Outcome)>> {
    let ask = |view: &View, bubbles: &[Bubble], check: &dyn Fn(&[Assignment]) -> Option<String>| {
        let slot = armed()?;
        let view = PolicyView::new(view.clone());
        let started = Instant::now();
        let answer = slot.place(&view, bubbles, &[]);
        let took = started.elapsed();
        let summary = placement_summary(&answer.value);
        let differs = reference
            .map(|r| anyhow::Ok(r()?.place(&view, bubbles, &[]).value != answer.value))
            .transpose()?;
        let mismatch = check(&answer.value);
        let mut o = outcome(answer, took, summary, differs);
        o.mismatch = mismatch;
        anyhow::Ok(o)
    };
    let mut out = Vec::new();
    for case in cases(true)?.into_iter().filter(|_| builtin_inputs) {
        let name = format!("{}, {} bubbles", case.name, case.bubbles.len());
        out.push((name, ask(&case.view, &case.bubbles, &|_| None)?));
    }
    for case in authored {
        if case.bubbles.is_empty() {
            anyhow::bail!("your case {:?} places no bubbles: give it `bubbles = N`", case.name);
        }
        let check = |placed: &[Assignment]| case.expect.check_placement(placed);
        out.push((format!("yours: {}", case.name), ask(&case.view, &case.bubbles, &check)?));
    }
    Ok(out)
}

/// Each migration question on built-in states.
fn migrations(
    armed: &dyn Fn() -> anyhow::Result<PolicySlot<MigrationSlot>>,
    reference: Option<Reference<'_, MigrationSlot>>,
) -> anyhow::Result<Vec<(String, Outcome)>> {
    use luciole_proto::migration::{
        Admission, Load, Migration, PendingAction, Phase, Refusal, Role, Status,
    };
    use luciole_proto::{EntityId, MigrationId};
    let migration = |i: u64| Migration {
        id: MigrationId::from_parts(1, i),
        entity: EntityId(u128::from(i) + 100),
        source: MemberId(1),
        target: MemberId(2),
        source_bubble: BubbleId(0),
        target_bubble: BubbleId(1),
        epoch: Epoch(1),
    };
    let load = |entities, entities_max, in_flight, in_flight_max| Load {
        entities,
        entities_max,
        in_flight,
        in_flight_max,
    };
    let loads = [
        ("idle", load(10, 100_000, 0, 256)),
        ("at the in-flight limit", load(10, 100_000, 256, 256)),
        ("at the entity limit", load(100_000, 100_000, 3, 256)),
        ("limits of zero", load(0, 0, 0, 0)),
    ];
    let status = |i, role, phase, attempt, elapsed_ms| Status {
        migration: migration(i),
        role,
        phase,
        attempt,
        elapsed_ms,
    };
    let mut out = Vec::new();
    let mut push = |name: String, o: Outcome| out.push((name, o));
    for (what, l) in &loads {
        let slot = armed()?;
        let started = Instant::now();
        let a = slot.on_request(&migration(1), l);
        let (took, value) = (started.elapsed(), a.value);
        let differs =
            reference.map(|r| anyhow::Ok(r()?.on_request(&migration(1), l).value != value));
        let differs = differs.transpose()?;
        push(format!("request, {what}"), outcome(a, took, format!("{value:?}"), differs));
        let slot = armed()?;
        let started = Instant::now();
        let a = slot.on_prepare(&migration(1), l);
        let (took, value) = (started.elapsed(), a.value);
        let differs =
            reference.map(|r| anyhow::Ok(r()?.on_prepare(&migration(1), l).value != value));
        let differs = differs.transpose()?;
        push(format!("prepare, {what}"), outcome(a, took, format!("{value:?}"), differs));
    }
    for vote in [Admission::Admit, Admission::Refuse(Refusal::TooBusy)] {
        let s = status(1, Role::Source, Phase::Preparing, 1, 20);
        let slot = armed()?;
        let started = Instant::now();
        let a = slot.on_vote(&s, vote);
        let (took, value) = (started.elapsed(), a.value);
        let differs = reference.map(|r| anyhow::Ok(r()?.on_vote(&s, vote).value != value));
        let differs = differs.transpose()?;
        push(format!("vote {vote:?}"), outcome(a, took, format!("{value:?}"), differs));
    }
    let sides = [
        (Role::Source, Phase::Preparing),
        (Role::Source, Phase::Committing),
        (Role::Target, Phase::Preparing),
        (Role::Target, Phase::Prepared),
    ];
    for (role, phase) in sides {
        for (attempt, elapsed) in [(1, 100), (3, 300), (50, 10_000)] {
            let s = status(1, role, phase, attempt, elapsed);
            let slot = armed()?;
            let started = Instant::now();
            let a = slot.on_timeout(&s);
            let (took, value) = (started.elapsed(), a.value);
            let differs = reference.map(|r| anyhow::Ok(r()?.on_timeout(&s).value != value));
            let differs = differs.transpose()?;
            let name = format!("timer, {role:?} {phase:?}, attempt {attempt} at {elapsed} ms");
            push(name, outcome(a, took, format!("{value:?}"), differs));
        }
    }
    let members: Vec<Member> = (1..=5).map(|i| Member::new(MemberId(i), 1)).collect();
    let view = PolicyView::new(View::new(Epoch(2), members)?);
    // A node has at most its in-flight limit of migrations pending (256 by default).
    let most = u64::from(luciole_proto::migration::MigrationConfig::default().in_flight_max);
    for n in [1u64, 100, most] {
        let pending: Vec<Status> = (0..n)
            .map(|i| {
                let (role, phase) = sides[(i % 4) as usize];
                status(i, role, phase, 1 + (i % 3) as u32, 50 * i)
            })
            .collect();
        let slot = armed()?;
        let started = Instant::now();
        let a = slot.on_view_change(&view, &pending);
        let took = started.elapsed();
        let aborts = a.value.iter().filter(|x| **x == PendingAction::Abort).count();
        let summary = format!("{aborts} abort, {} keep", a.value.len() - aborts);
        let differs = reference
            .map(|r| anyhow::Ok(r()?.on_view_change(&view, &pending).value != a.value))
            .transpose()?;
        push(format!("view change, {n} pending"), outcome(a, took, summary, differs));
    }
    Ok(out)
}

/// How many members got bubbles, and the most any one got.
fn placement_summary(placed: &[Assignment]) -> String {
    let mut per: std::collections::BTreeMap<MemberId, usize> = Default::default();
    for a in placed {
        *per.entry(a.member).or_default() += 1;
    }
    let most = per.values().copied().max().unwrap_or(0);
    format!("{} bubbles on {} members (at most {most} on one)", placed.len(), per.len())
}

/// Prints every outcome and fails if any call faulted or declined.
fn report(
    file: &Path,
    label: &str,
    against: &str,
    outcomes: &[(String, Outcome)],
) -> anyhow::Result<()> {
    println!("{} ({label})", file.display());
    let (mut faults, mut declines, mut differ, mut missed) = (0, 0, 0, 0);
    for (name, o) in outcomes {
        let diff = match o.differs {
            Some(true) => {
                differ += 1;
                format!("  [differs from {against}]")
            }
            _ => String::new(),
        };
        let fuel = o.fuel.map_or("-".to_string(), |f| f.to_string());
        println!(
            "  {name:<48} {:>9.1} µs  fuel {fuel:>10}  {}  by {}{diff}",
            o.took.as_secs_f64() * 1e6,
            o.summary,
            o.by
        );
        for f in &o.faults {
            faults += 1;
            println!("      FAULT    {f}");
        }
        for d in &o.declines {
            declines += 1;
            println!("      DECLINED {d}");
        }
        if let Some(m) = &o.mismatch {
            missed += 1;
            println!("      MISMATCH {m}");
        }
    }
    let compared = outcomes.iter().any(|(_, o)| o.differs.is_some());
    let also = if compared { format!(", {differ} differ from {against}") } else { String::new() };
    let yours = outcomes.iter().filter(|(n, _)| n.starts_with("yours: ")).count();
    let expected = if yours > 0 {
        format!(", {missed} of your {yours} case(s) not as expected")
    } else {
        String::new()
    };
    println!("{} calls, {faults} fault(s), {declines} decline(s){also}{expected}", outcomes.len());
    if let Some((name, most)) =
        outcomes.iter().filter_map(|(n, o)| Some((n, o.fuel?))).max_by_key(|(_, f)| *f)
    {
        let budget = luciole_wasm::FUEL_PER_CALL_DEFAULT;
        println!(
            "most fuel: {most} of the {budget} a call may use ({:.1} %), on {name}",
            most as f64 * 100.0 / budget as f64
        );
    }
    if faults + declines + missed > 0 {
        anyhow::bail!(
            "{}: {faults} fault(s), {declines} decline(s), {missed} answer(s) not as expected",
            file.display()
        );
    }
    Ok(())
}
