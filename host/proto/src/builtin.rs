//! Built-in policies: the trusted native defaults the host answers with when no policy
//! component is loaded, or when every loaded version has failed. They are the same algorithms as
//! the reference components in `plugins/` (`lowest-id`, `rendezvous`, `standard`); the shared
//! test vectors in `tests/vectors/` hold both to the same answers.

use crate::ids::{BubbleId, MemberId};
use crate::migration::{
    Admission, Load, Outcome, PendingAction, Phase, Refusal, Status, TimeoutAction,
};
use crate::placement::{Assignment, Bubble};
use crate::rand::{GOLDEN, mix};
use crate::view::View;

/// Coordinator `lowest-id`: the member with the lowest id (unsigned big-endian compare).
pub fn coordinator(view: &View) -> MemberId {
    // Members are sorted ascending and never empty.
    view.members()[0].id
}

/// Placement `rendezvous`: each bubble goes to the member with the highest
/// [`rendezvous_weight`] (ties to the lower id). Members with capacity zero host nothing, unless
/// every member has capacity zero. Only bubbles whose winner left or joined move on a view
/// change: about `bubbles / members` per member changed.
pub fn placement(view: &View, bubbles: &[Bubble]) -> Vec<Assignment> {
    let all_zero = view.members().iter().all(|m| m.capacity == 0);
    let keys: Vec<(u64, MemberId)> = view
        .members()
        .iter()
        .filter(|m| all_zero || m.capacity > 0)
        .map(|m| (member_key(m.id), m.id))
        .collect();
    bubbles
        .iter()
        .map(|b| {
            let mut best = (0u64, MemberId(0));
            let mut found = false;
            for &(key, id) in &keys {
                let w = rendezvous_weight(key, b.id);
                // Members are visited in ascending id order, so `>` keeps the lower id on ties.
                if !found || w > best.0 {
                    best = (w, id);
                    found = true;
                }
            }
            Assignment { bubble: b.id, member: best.1 }
        })
        .collect()
}

/// The per-member half of the rendezvous weight: `mix(hi ^ mix(lo))`.
pub fn member_key(id: MemberId) -> u64 {
    mix(id.hi() ^ mix(id.lo()))
}

/// Rendezvous weight of a bubble on a member: `mix(member_key ^ bubble * 0x9e3779b97f4a7c15)`
/// (wrapping multiply), where `mix` is the splitmix64 finaliser.
pub fn rendezvous_weight(member_key: u64, bubble: BubbleId) -> u64 {
    mix(member_key ^ bubble.0.wrapping_mul(GOLDEN))
}

/// Per-phase attempts before the `standard` policy gives up on an abortable migration.
pub const STANDARD_ATTEMPTS_MAX: u32 = 3;
/// Resend delay of the `standard` policy, per phase (the old system's 100 ms phase timeout).
pub const STANDARD_RETRY_MS: u32 = 100;
/// Total time after which the `standard` policy aborts what may still be aborted (300 ms).
pub const STANDARD_TOTAL_MS: u64 = 300;

/// Migration `standard`, source side: start unless too many migrations are in flight.
pub fn on_request(load: &Load) -> Admission {
    if load.migration_fits() { Admission::Admit } else { Admission::Refuse(Refusal::TooBusy) }
}

/// Migration `standard`, target side: admit while under both host limits.
pub fn on_prepare(load: &Load) -> Admission {
    if !load.entity_fits() {
        Admission::Refuse(Refusal::OverCapacity)
    } else if !load.migration_fits() {
        Admission::Refuse(Refusal::TooBusy)
    } else {
        Admission::Admit
    }
}

/// Migration `standard`: commit exactly when the target admitted.
pub fn on_vote(vote: Admission) -> Outcome {
    match vote {
        Admission::Admit => Outcome::Commit,
        Admission::Refuse(_) => Outcome::Abort,
    }
}

/// Migration `standard`: abort what may be aborted once it has taken 3 attempts or 300 ms;
/// otherwise resend every 100 ms. Past the commit point it never gives up; it keeps resending.
pub fn on_timeout(status: &Status) -> TimeoutAction {
    let exhausted =
        status.attempt >= STANDARD_ATTEMPTS_MAX || status.elapsed_ms >= STANDARD_TOTAL_MS;
    match status.phase {
        Phase::Committed | Phase::Aborted => TimeoutAction::Wait(1_000),
        phase if phase.abort_allowed(status.role) && exhausted && phase != Phase::Aborting => {
            TimeoutAction::Abort
        }
        _ => TimeoutAction::Retry(STANDARD_RETRY_MS),
    }
}

/// Migration `standard`, on a view change: presumed abort. Whatever may still be aborted is
/// aborted (it was proposed in an older view and is re-proposed by whoever still wants it);
/// migrations past the commit point keep going.
pub fn on_view_change(pending: &[Status]) -> Vec<PendingAction> {
    pending
        .iter()
        .map(|s| {
            let undecided = matches!(s.phase, Phase::Requested | Phase::Preparing);
            if undecided && s.phase.abort_allowed(s.role) {
                PendingAction::Abort
            } else {
                PendingAction::Keep
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check;
    use crate::ids::Epoch;
    use crate::view::Member;

    fn view(ids: &[u128]) -> View {
        View::new(Epoch(1), ids.iter().map(|&i| Member::new(MemberId(i), 1)).collect()).unwrap()
    }

    #[test]
    fn lowest_id_compares_unsigned_big_endian() {
        let high_bit = 1u128 << 127;
        let v = view(&[high_bit, 5, 1u128 << 64]);
        assert_eq!(coordinator(&v), MemberId(5));
    }

    #[test]
    fn rendezvous_places_every_bubble_and_moves_little_when_one_member_leaves() {
        let bubbles: Vec<_> = (0..1000).map(|i| Bubble::new(BubbleId(i))).collect();
        let ids: Vec<u128> = (1..=10).map(|i| i * 0x1234_5678_9abc_def1).collect();
        let v1 = view(&ids);
        let p1 = check::placement(&v1, &bubbles, placement(&v1, &bubbles)).unwrap();
        let v2 = v1
            .next(Epoch(2), ids[1..].iter().map(|&i| Member::new(MemberId(i), 1)).collect())
            .unwrap();
        let p2 = check::placement(&v2, &bubbles, placement(&v2, &bubbles)).unwrap();
        let moved = p1.iter().zip(&p2).filter(|(a, b)| a.member != b.member).count();
        let on_leaver = p1.iter().filter(|a| a.member == MemberId(ids[0])).count();
        assert_eq!(moved, on_leaver, "only the departed member's bubbles move");
        let counts = check::bubbles_per_member(&p1);
        assert!(counts.values().all(|&c| (50..=150).contains(&c)), "roughly even: {counts:?}");
    }

    #[test]
    fn capacity_zero_members_host_nothing_unless_all_are_zero() {
        let bubbles: Vec<_> = (0..100).map(|i| Bubble::new(BubbleId(i))).collect();
        let v = View::new(Epoch(1), vec![Member::new(MemberId(1), 0), Member::new(MemberId(2), 5)])
            .unwrap();
        assert!(placement(&v, &bubbles).iter().all(|a| a.member == MemberId(2)));
        let zero = View::new(Epoch(1), vec![Member::new(MemberId(1), 0)]).unwrap();
        assert!(placement(&zero, &bubbles).iter().all(|a| a.member == MemberId(1)));
    }
}
