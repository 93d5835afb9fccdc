//! Forged messages, as a misbehaving member or a node outside the view would send them. The
//! simulator delivers each as coming from its true sender (the transport authenticates every
//! connection); only the content lies.

use luciole_proto::membership::classic::Rank;
use luciole_proto::membership::cut::{Alert, Change, Cut};
use luciole_proto::membership::monitor::Incarnation;
use luciole_proto::membership::node::{Envelope, Message, ViewChange};
use luciole_proto::{Epoch, MemberId};

use super::Member;
use super::scenario::rings_of;
use crate::Sim;
use luciole_proto::membership::lifecycle::Phase;

/// The view of some live member other than `not`: its epoch and members.
fn a_view(sim: &Sim<Member>, not: MemberId) -> Option<(Epoch, Vec<MemberId>)> {
    sim.live().into_iter().filter(|m| *m != not).find_map(|m| match sim.nodes[&m].core.phase() {
        Phase::Member(n) => Some((n.view().0, n.view().1.to_vec())),
        Phase::Joining(..) => None,
    })
}

/// A message in `epoch` as it goes on the wire.
fn envelope(epoch: Epoch, message: Message) -> Envelope {
    Envelope { epoch, message }
}

/// `attacker` tells every member: alerts about a healthy member in the names of all its
/// observers, a view five epochs on that removes half the members, its vote for removing that
/// member (and for removing half the view), and a classic proposal of that at another
/// member's rank.
pub fn everything(sim: &mut Sim<Member>, attacker: MemberId) {
    let Some((epoch, members)) = a_view(sim, attacker) else { return };
    let rings = rings_of(&members);
    let others: Vec<MemberId> = members.iter().copied().filter(|m| *m != attacker).collect();
    let victim = others[(sim.rng().next_u64() % others.len() as u64) as usize];
    let alerts = Alert::from_every_observer(&rings, victim, Change::Down, Incarnation(0));
    let kept: Vec<MemberId> =
        members.iter().copied().filter(|m| m.0 % 2 == 0 || *m == attacker).collect();
    let left: Vec<MemberId> = members.iter().copied().filter(|m| !kept.contains(m)).collect();
    let info = kept.iter().map(|&m| super::info_of(m)).collect();
    let newer = ViewChange { members: kept, info, joined: vec![], left };
    let cut = Cut { down: vec![victim], ..Cut::default() };
    let half = Cut { down: newer.left.clone(), ..Cut::default() };
    let rank = Rank { round: 9, node: 0 };
    for &to in &members {
        let forged = Message::Alerts { alerts: alerts.clone(), joiners: vec![] };
        sim.send(attacker, to, envelope(epoch, forged));
        let welcome = Message::Welcome(newer.clone());
        sim.send(attacker, to, envelope(Epoch(epoch.0 + 5), welcome));
        sim.send(attacker, to, envelope(epoch, Message::Vote(cut.clone())));
        sim.send(attacker, to, envelope(epoch, Message::Vote(half.clone())));
        let accept = Message::Accept { rank, cut: half.clone() };
        sim.send(attacker, to, envelope(epoch, accept));
        sim.send(attacker, to, envelope(epoch, Message::Accepted { rank, cut: half.clone() }));
    }
}

/// `attacker` welcomes `joiner` into a view of just the two of them.
pub fn welcome_to_joiner(sim: &mut Sim<Member>, attacker: MemberId, joiner: MemberId) {
    let Some((epoch, _)) = a_view(sim, attacker) else { return };
    let mut members = vec![attacker, joiner];
    members.sort_unstable();
    let info = members.iter().map(|&m| super::info_of(m)).collect();
    let view = ViewChange { members, info, joined: vec![joiner], left: vec![] };
    let welcome = envelope(Epoch(epoch.0 + 1), Message::Welcome(view));
    sim.send(attacker, joiner, welcome);
}
