//! Tests of [`super::MemberNode`], kept beside it to keep `node.rs` about the protocol.
use super::*;
use crate::membership::testing::{change, first, info};

fn ids() -> Vec<MemberId> {
    vec![MemberId(11), MemberId(22), MemberId(33)]
}

fn node(me: MemberId) -> MemberNode {
    node_of(me, ids())
}

fn node_of(me: MemberId, members: Vec<MemberId>) -> MemberNode {
    MemberNode::new(me, Epoch(1), first(members), MonitorConfig::default(), 0)
}

fn sent(n: &mut MemberNode) -> Vec<(MemberId, Envelope)> {
    std::iter::from_fn(|| n.poll_transmit()).collect()
}

fn at(epoch: u64, message: Message) -> Envelope {
    Envelope { epoch: Epoch(epoch), message }
}

fn votes(n: &mut MemberNode) -> usize {
    sent(n).into_iter().filter(|(_, e)| matches!(e.message, Message::Vote(_))).count()
}

/// Every alert `n` sent since it was last drained, in the order sent.
fn alerts_sent(n: &mut MemberNode) -> Vec<Alert> {
    sent(n)
        .into_iter()
        .filter_map(|(_, e)| match e.message {
            Message::Alerts { alerts, .. } => Some(alerts),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Every alert about `subject` going down, one per ring.
fn down_alerts(rings: &Rings, subject: MemberId) -> Vec<Alert> {
    Alert::from_every_observer(rings, subject, Change::Down, Incarnation(0))
}

/// Delivers each alert from the observer it names.
fn deliver(n: &mut MemberNode, now: u64, alerts: &[Alert]) {
    for a in alerts {
        let joiners = if a.change == Change::Join { vec![(a.subject, info())] } else { vec![] };
        let alerts = vec![*a];
        n.handle_message(now, a.observer, at(1, Message::Alerts { alerts, joiners }));
    }
}

#[test]
fn a_member_behind_asks_the_senders_and_installs_a_view_two_members_confirm() {
    let [a, b, c] = ids()[..] else { unreachable!() };
    let mut n = node(a);
    n.handle_message(10, b, at(3, Message::Probe));
    n.handle_message(11, b, at(3, Message::Probe));
    n.handle_message(12, c, at(3, Message::Probe));
    let asked: Vec<(MemberId, Envelope)> = sent(&mut n);
    assert_eq!(asked, vec![(b, at(1, Message::ViewRequest)), (c, at(1, Message::ViewRequest))]);
    let view = change(vec![a, b], vec![], vec![c]);
    n.handle_message(13, b, at(3, Message::Welcome(view.clone())));
    assert_eq!(n.view().0, Epoch(1), "one member's word is not enough");
    // c is not in the view it would confirm: it does not count.
    n.handle_message(14, c, at(3, Message::Welcome(view.clone())));
    assert_eq!(n.view().0, Epoch(1));
    let with_c = change(vec![a, b, c], vec![], vec![]);
    n.handle_message(15, c, at(3, Message::Welcome(with_c.clone())));
    assert_eq!(n.view().0, Epoch(1), "two senders, two different views");
    n.handle_message(16, b, at(3, Message::Welcome(with_c.clone())));
    assert_eq!(n.view(), (Epoch(3), &[a, b, c][..]));
    let id = with_c.id();
    assert_eq!(n.poll_event(), Some(Event::ViewInstalled { epoch: Epoch(3), id, view: with_c }));
}

#[test]
fn a_welcome_from_outside_the_view_or_an_invalid_one_is_never_installed() {
    let [a, b, c] = ids()[..] else { unreachable!() };
    let outsider = MemberId(99);
    let mut n = node(a);
    let forged = change(vec![a, outsider], vec![outsider], vec![b, c]);
    n.handle_message(1, outsider, at(5, Message::Welcome(forged.clone())));
    n.handle_message(2, outsider, at(5, Message::Welcome(forged)));
    let unsorted = change(vec![b, a], vec![], vec![c]);
    n.handle_message(3, b, at(4, Message::Welcome(unsorted.clone())));
    n.handle_message(4, c, at(4, Message::Welcome(unsorted)));
    let empty = change(vec![], vec![], vec![]);
    n.handle_message(5, b, at(4, Message::Welcome(empty.clone())));
    n.handle_message(6, c, at(4, Message::Welcome(empty)));
    assert_eq!(n.view().0, Epoch(1));
    assert!(n.refused() >= 2, "the outsider's welcomes are counted as refused");
}

#[test]
fn a_member_answers_a_view_request_with_its_view() {
    let [a, b, _] = ids()[..] else { unreachable!() };
    let mut n = node(b);
    n.handle_message(5, a, at(1, Message::ViewRequest));
    assert_eq!(sent(&mut n), vec![(a, at(1, Message::Welcome(first(ids()))))]);
}

#[test]
fn a_join_ask_from_a_non_observer_is_not_vouched() {
    let [a, b, c] = ids()[..] else { unreachable!() };
    let joiner = MemberId(99);
    let rings = Rings::new(&ids(), rings_for(3));
    let observers = rings.expected_observers_of(joiner);
    // Two rings over three members: at least one member observes the joiner on neither.
    let me = [a, b, c]
        .into_iter()
        .find(|m| !observers.iter().any(|(_, o)| o == m))
        .expect("a member that is not an expected observer");
    let mut n = node(me);
    n.handle_message(1, joiner, at(0, Message::JoinAsk { ring: 0, info: info() }));
    n.handle_timeout(60);
    assert!(
        !sent(&mut n).iter().any(|(_, e)| matches!(e.message, Message::Alerts { .. })),
        "no alert broadcast"
    );
    let (ring, observer) = observers[0];
    let mut n = node(observer);
    n.handle_message(1, joiner, at(0, Message::JoinAsk { ring, info: info() }));
    assert!(sent(&mut n).is_empty(), "alerts wait for their batch");
    n.handle_timeout(50);
    assert!(sent(&mut n).iter().all(|(_, e)| !matches!(e.message, Message::Alerts { .. })));
    n.handle_timeout(51);
    assert!(
        sent(&mut n)
            .iter()
            .any(|(_, e)| matches!(&e.message, Message::Alerts { alerts, joiners } if alerts[0].subject == joiner && joiners == &[(joiner, info())]))
    );
}

#[test]
fn an_alert_sent_by_anyone_but_its_observer_is_refused() {
    let members: Vec<MemberId> = (1..=20).map(|i| MemberId(i * 7919)).collect();
    let rings = Rings::new(&members, rings_for(20));
    let (me, victim) = (members[0], members[5]);
    let liar = members.iter().copied().find(|m| *m != me && *m != victim).unwrap();
    let mut n = node_of(me, members.clone());
    let alerts = down_alerts(&rings, victim);
    // All of the victim's observers' alerts, sent by one member in their names.
    n.handle_message(1, liar, at(1, Message::Alerts { alerts: alerts.clone(), joiners: vec![] }));
    n.handle_timeout(1_000);
    assert_eq!(votes(&mut n), 0);
    assert_eq!(n.refused(), 1);
    // From the observers themselves they count.
    deliver(&mut n, 1_001, &alerts);
    n.handle_timeout(1_200);
    assert_eq!(votes(&mut n), members.len() - 1);
}

#[test]
fn a_joiner_enters_the_view_with_what_its_observers_relayed() {
    let [a, _, _] = ids()[..] else { unreachable!() };
    let rings = Rings::new(&ids(), rings_for(3));
    let joiner = MemberId(99);
    let mut n = node(a);
    deliver(&mut n, 1, &Alert::from_every_observer(&rings, joiner, Change::Join, Incarnation(0)));
    let told = Cut { join: vec![joiner], info: vec![info()], ..Cut::default() };
    let bigger = MemberInfo { capacity: 1_000, ..info() };
    let forged = Cut { join: vec![joiner], info: vec![bigger], ..Cut::default() };
    assert!(n.acceptable(&told));
    assert!(!n.acceptable(&forged), "a coordinator cannot change what a joiner brings");
    let no_info = Cut { join: vec![joiner], ..Cut::default() };
    assert!(!n.valid(&no_info));
    n.decide(2, told);
    let view = n.view_change();
    assert_eq!(view.info_of(joiner), Some(&info()));
    assert_eq!(view.joined, vec![joiner]);
    let policy = view.policy_view(Epoch(2)).expect("a valid view");
    assert_eq!(policy.id(), view.id(), "one id for the agreed view and the policies' view");
    assert_eq!(policy.joined(), &[joiner]);
    assert_eq!(policy.member(joiner).map(|m| m.capacity), Some(1));
}

#[test]
fn a_classic_proposal_counts_only_from_the_coordinator_of_its_rank() {
    let [a, b, c] = ids()[..] else { unreachable!() };
    let mut n = node(a);
    let rank = Rank { round: 2, node: 1 }; // b's rank
    let cut = Cut { down: vec![c], ..Cut::default() };
    n.handle_message(1, c, at(1, Message::Accept { rank, cut: cut.clone() }));
    n.handle_message(1, c, at(1, Message::Prepare(rank)));
    assert!(sent(&mut n).is_empty(), "c speaks for b's rank");
    assert_eq!(n.refused(), 2);
    // From b, but about a subject nobody reported to a: not accepted either.
    n.handle_message(2, b, at(1, Message::Accept { rank, cut: cut.clone() }));
    assert!(sent(&mut n).is_empty());
    let rings = Rings::new(&ids(), rings_for(3));
    deliver(&mut n, 3, &down_alerts(&rings, c)[..1]);
    n.handle_message(4, b, at(1, Message::Accept { rank, cut }));
    assert!(sent(&mut n).iter().any(|(_, e)| matches!(e.message, Message::Accepted { .. })));
}

#[test]
fn a_cut_that_removes_half_the_view_is_not_proposed_and_costs_the_quorum() {
    let members: Vec<MemberId> = (1..=10).map(|i| MemberId(i * 104_729)).collect();
    let rings = Rings::new(&members, rings_for(10));
    let me = members[0];
    let mut n = node_of(me, members.clone());
    // This member hears from its peers throughout; the other half is reported down.
    let half: Vec<MemberId> = members[5..].to_vec();
    for &s in &half {
        let alerts: Vec<Alert> =
            down_alerts(&rings, s).into_iter().filter(|a| a.observer != s).collect();
        deliver(&mut n, 10, &alerts);
    }
    let mut now = 10;
    while now < 3_000 {
        now += 50;
        for &p in &members[1..] {
            n.handle_message(now, p, at(1, Message::Probe));
        }
        n.handle_timeout(now);
    }
    assert_eq!(votes(&mut n), 0, "no vote for removing half");
    assert!(!n.has_quorum());
    let events: Vec<Event> = std::iter::from_fn(|| n.poll_event()).collect();
    assert_eq!(events, vec![Event::QuorumLost]);
    // Four of ten is fewer than half: that cut is proposed.
    let cut = Cut { down: members[6..].to_vec(), ..Cut::default() };
    let mut m = node_of(me, members.clone());
    assert!(m.valid(&cut));
    assert!(!m.valid(&Cut { down: half, ..Cut::default() }));
    m.handle_message(1, members[1], at(1, Message::Vote(Cut { down: vec![me], ..Cut::default() })));
    assert_eq!(m.refused(), 0, "a valid vote counts");
    assert!(!m.acceptable(&Cut { down: vec![me], ..Cut::default() }), "but not from me");
}

#[test]
fn a_member_that_hears_from_too_few_peers_loses_the_quorum_and_regains_it() {
    let members: Vec<MemberId> = (1..=20).map(|i| MemberId(i * 7919)).collect();
    let me = members[3];
    let mut n = node_of(me, members.clone());
    let peers: Vec<MemberId> = n.contact.keys().copied().collect();
    let (talking, silent) = peers.split_at(peers.len() / 2);
    // A view of 20 probes idly: a peer counts for the idle period longer.
    let window = n.monitor.config().contact_ms();
    let mut now = 0;
    while now < window + 200 {
        now += 50;
        for &p in talking {
            n.handle_message(now, p, at(1, Message::Probe));
        }
        n.handle_timeout(now);
    }
    assert!(!n.has_quorum(), "half the peers is not more than half");
    // They are back, rebut the accusations and answer every probe, which withdraws this
    // member's alerts after 400 ms.
    for &p in silent {
        n.handle_message(now, p, at(1, Message::Rebut(Incarnation(1))));
    }
    for _ in 0..12 {
        now += 50;
        for &p in talking.iter().chain(silent) {
            n.handle_message(now, p, at(1, Message::Probe));
            n.handle_message(now, p, at(1, Message::Ack(Incarnation(1))));
        }
        n.handle_timeout(now);
    }
    assert!(n.has_quorum());
    let events: Vec<Event> = std::iter::from_fn(|| n.poll_event()).collect();
    assert_eq!(events, vec![Event::QuorumLost, Event::QuorumRegained]);
}

#[test]
fn a_flood_of_joiners_is_vouched_for_up_to_the_limit() {
    let [a, _, _] = ids()[..] else { unreachable!() };
    let rings = Rings::new(&ids(), rings_for(3));
    let mut n = node(a);
    let mut asked = 0;
    for j in 1000..100_000u128 {
        let joiner = MemberId(j << 64 | j);
        if let Some((ring, _)) =
            rings.expected_observers_of(joiner).into_iter().find(|(_, o)| *o == a)
        {
            n.handle_message(1, joiner, at(0, Message::JoinAsk { ring, info: info() }));
            asked += 1;
            if asked > JOINERS_PENDING_MAX + 100 {
                break;
            }
        }
    }
    assert!(asked > JOINERS_PENDING_MAX);
    assert_eq!(n.vouched.len(), JOINERS_PENDING_MAX);
    // The rest are told whom to ask instead (and vouched for once room comes).
    let redirected =
        sent(&mut n).iter().filter(|(_, e)| matches!(e.message, Message::JoinObservers(_))).count();
    assert_eq!(redirected, asked - JOINERS_PENDING_MAX);
}

#[test]
fn a_cut_is_proposed_once_the_tally_has_been_quiet() {
    let [a, _, c] = ids()[..] else { unreachable!() };
    let rings = Rings::new(&ids(), rings_for(3));
    let alerts = down_alerts(&rings, c);
    let quiet = MonitorConfig::default().cut_quiet_ms;
    let mut n = node(a);
    deliver(&mut n, 10, &alerts[..1]);
    deliver(&mut n, 60, &alerts[1..]);
    // The second batch restarts the wait.
    n.handle_timeout(10 + quiet);
    assert_eq!(votes(&mut n), 0, "the tally changed at 60");
    n.handle_timeout(60 + quiet - 1);
    assert_eq!(votes(&mut n), 0);
    n.handle_timeout(60 + quiet);
    assert_eq!(votes(&mut n), 2, "a vote for the cut to each other member");
    // The same alerts again change nothing and schedule no proposal. (The classic timer may
    // fire later — a view of three cannot remove a member in the fast round — and send the
    // same vote again; that is not a new proposal.)
    deliver(&mut n, 70 + quiet, &alerts);
    assert_eq!(n.propose_at, None);
    assert_eq!(votes(&mut n), 0);
}

#[test]
fn a_tally_that_keeps_changing_proposes_within_five_quiet_periods() {
    let [a, _, _] = ids()[..] else { unreachable!() };
    let quiet = MonitorConfig::default().cut_quiet_ms;
    let mut n = node(a);
    // Joiners vouched for one ring at a time, every half quiet period: the tally never
    // rests, yet the member proposes by five quiet periods after the first change.
    let rings = Rings::new(&ids(), rings_for(3));
    let mut now = 0;
    let mut proposed_at = None;
    for j in 100..140u128 {
        let joiner = MemberId(j);
        let alerts = Alert::from_every_observer(&rings, joiner, Change::Join, Incarnation(0));
        deliver(&mut n, now, &alerts);
        now += quiet / 2;
        n.handle_timeout(now);
        if proposed_at.is_none() && votes(&mut n) > 0 {
            proposed_at = Some(now);
        }
    }
    let at = proposed_at.expect("a proposal");
    assert!(at <= 5 * quiet, "proposed at {at} ms");
}

/// Four members, and the alerts of every observer but `d` itself reporting `d` down.
fn four_with_d_down() -> (Vec<MemberId>, Vec<Alert>) {
    let members: Vec<MemberId> = (1..=4).map(|i| MemberId(i * 11)).collect();
    let rings = Rings::new(&members, rings_for(4));
    let d = members[3];
    let alerts = down_alerts(&rings, d).into_iter().filter(|x| x.observer != d).collect();
    (members, alerts)
}

#[test]
fn a_member_that_missed_the_deciding_votes_learns_them_again_when_one_member_moved_on() {
    // Four members; d is reported down to a, b and c, who all vote to remove it (a fast
    // quorum of four is three). Only a hears the other votes and installs the next view: a's
    // welcome alone cannot convince b (two confirmations are needed in a view of four), so b
    // learns the decision the way it would have: from a's vote, sent again when b speaks in
    // the old epoch, and from c's, which c sends again when its classic timer fires.
    let (members, alerts) = four_with_d_down();
    let [a, b, c, d] = members[..] else { unreachable!() };
    let quiet = MonitorConfig::default().cut_quiet_ms;
    let mut nodes: Vec<MemberNode> =
        [a, b, c].iter().map(|&m| node_of(m, members.clone())).collect();
    let mut vote = None;
    for n in &mut nodes {
        deliver(n, 10, &alerts);
        n.handle_timeout(10 + quiet);
        let sent = sent(n);
        vote = sent.iter().find_map(|(_, e)| match &e.message {
            Message::Vote(cut) => Some(cut.clone()),
            _ => None,
        });
        assert!(vote.is_some(), "{:?} voted", n.me);
    }
    let cut = vote.unwrap();
    assert_eq!(cut.down, vec![d]);
    let now = 20 + quiet;
    let [na, nb, nc] = &mut nodes[..] else { unreachable!() };
    na.handle_message(now, b, at(1, Message::Vote(cut.clone())));
    na.handle_message(now, c, at(1, Message::Vote(cut.clone())));
    assert_eq!(na.view(), (Epoch(2), &[a, b, c][..]), "a decided");
    sent(na);
    // b hears none of it, and a's welcome alone does not move it.
    nb.handle_message(now, a, at(2, Message::Welcome(na.view.clone())));
    assert_eq!(nb.view().0, Epoch(1));
    // b speaks in the old epoch: a sends its vote of that epoch again, once per re-ask period.
    na.handle_message(now + 1, b, at(1, Message::Probe));
    let again = sent(na);
    assert_eq!(again, vec![(b, at(1, Message::Vote(cut.clone())))]);
    na.handle_message(now + 2, b, at(1, Message::Probe));
    assert!(sent(na).is_empty(), "not again within {VIEW_REASK_MS} ms");
    na.handle_message(now + 2 + VIEW_REASK_MS, b, at(1, Message::Probe));
    assert_eq!(sent(na).len(), 1, "again after it");
    // A non-member of the new view is told it is stale, not sent votes.
    na.handle_message(now + 3, d, at(1, Message::Probe));
    assert_eq!(sent(na), vec![(d, at(2, Message::Stale))]);
    for (_, e) in again {
        nb.handle_message(now + 3, a, e);
    }
    assert_eq!(nb.view().0, Epoch(1), "two votes of three");
    // c, undecided too, sends its vote again when its classic timer fires.
    let mut t = now;
    let resent = loop {
        t += 50;
        assert!(t < now + 20_000, "c never sent its vote again");
        nc.handle_timeout(t);
        let votes: Vec<Envelope> = sent(nc)
            .into_iter()
            .filter(|(to, e)| *to == b && matches!(e.message, Message::Vote(_)))
            .map(|(_, e)| e)
            .collect();
        if let Some(e) = votes.into_iter().next() {
            break e;
        }
    };
    nb.handle_message(t, c, resent);
    assert_eq!(nb.view(), (Epoch(2), &[a, b, c][..]), "b learned the decision");
    // A coordinator of epoch 1 proposes the cut that made a's view: a, in epoch 2, accepts it
    // there (it was chosen) and tells the coordinator; another cut it does not.
    let rank = Rank { round: 9, node: 2 };
    na.handle_message(t, c, at(1, Message::Accept { rank, cut: cut.clone() }));
    let accepted = at(1, Message::Accepted { rank, cut: cut.clone() });
    assert!(sent(na).contains(&(c, accepted)));
    let other = Cut { down: vec![c], ..Cut::default() };
    na.handle_message(t + VIEW_REASK_MS, c, at(1, Message::Accept { rank, cut: other }));
    assert!(sent(na).iter().all(|(_, e)| !matches!(e.message, Message::Accepted { .. })));
}

#[test]
fn standing_alerts_go_again_while_nothing_is_decided_but_not_about_a_subject_heard_again() {
    // a (an observer of d) reported d down; a member that lost that alert could never accept a
    // cut removing d. While nothing is decided a sends it again with its classic attempt —
    // but not once d is heard from again (a healed partition: the other side's members must
    // not get reports their own observers never had), and not after withdrawing it.
    let members: Vec<MemberId> = (1..=4).map(|i| MemberId(i * 11)).collect();
    let d = members[3];
    let rings = Rings::new(&members, rings_for(4));
    let a = down_alerts(&rings, d)[0].observer;
    let mine: Vec<Alert> = down_alerts(&rings, d).into_iter().filter(|x| x.observer == a).collect();
    let alerts_sent = |n: &mut MemberNode| -> Vec<Alert> {
        let mut out = alerts_sent(n);
        out.sort_by_key(|x| x.ring);
        out.dedup();
        out
    };
    let silence = MonitorConfig::default().contact_ms();
    let mut n = node_of(a, members.clone());
    for &alert in &mine {
        n.queue_alert(0, alert);
    }
    n.flush_alerts(0);
    assert_eq!(alerts_sent(&mut n), mine, "sent once");
    n.coordinate(silence);
    assert_eq!(alerts_sent(&mut n), mine, "d silent since: sent again");
    // d speaks again: its alerts do not go again.
    n.handle_message(silence + 10, d, at(1, Message::Ack(Incarnation(0))));
    n.coordinate(silence + 20);
    assert!(alerts_sent(&mut n).is_empty(), "d was heard from");
    // Silent again, but the alert withdrawn: nothing goes either.
    let withdrawn: Vec<Alert> =
        mine.iter().map(|x| Alert { change: Change::Rebutted, ..*x }).collect();
    for &alert in &withdrawn {
        n.queue_alert(3 * silence, alert);
    }
    n.flush_alerts(3 * silence);
    assert_eq!(alerts_sent(&mut n), withdrawn);
    n.coordinate(4 * silence);
    assert!(alerts_sent(&mut n).is_empty(), "withdrawn");
}

#[test]
fn a_member_that_leaves_tells_everyone_and_its_observers_alert_at_once() {
    let members: Vec<MemberId> = (1..=4).map(|i| MemberId(i * 11)).collect();
    let rings = Rings::new(&members, rings_for(4));
    let leaver = members[3];
    let observer = down_alerts(&rings, leaver)[0].observer;
    let mut l = node_of(leaver, members.clone());
    sent(&mut l);
    l.leave(10);
    assert!(l.is_leaving());
    let told: Vec<MemberId> = sent(&mut l)
        .into_iter()
        .filter(|(_, e)| e.message == Message::Leave)
        .map(|(to, _)| to)
        .collect();
    assert_eq!(told, members[..3].to_vec(), "every other member");
    // It answers no probe and rebuts no accusation any more; it says it leaves again later.
    l.handle_message(20, observer, at(1, Message::Probe));
    l.handle_message(
        21,
        observer,
        at(1, Message::Accuse { subject: leaver, incarnation: Incarnation(0) }),
    );
    let after = sent(&mut l);
    assert!(
        after.iter().all(|(_, e)| !matches!(e.message, Message::Ack(_) | Message::Rebut(_))),
        "{after:?}"
    );
    l.handle_timeout(10 + VIEW_REASK_MS);
    assert!(sent(&mut l).iter().any(|(_, e)| e.message == Message::Leave));
    // Its observer alerts at once (with the next batch), without waiting for the silence.
    let mut o = node_of(observer, members.clone());
    sent(&mut o);
    o.handle_message(10, leaver, at(1, Message::Leave));
    o.handle_timeout(10 + MonitorConfig::default().alert_batch_ms);
    let alerts = alerts_sent(&mut o);
    assert!(
        !alerts.is_empty()
            && alerts.iter().all(|a| a.subject == leaver && a.change == Change::Down)
    );
    // A Leave speaks only for its sender: from a non-member it is refused, and it never
    // makes an observer alert about anyone else.
    let mut p = node_of(observer, members.clone());
    p.handle_message(10, MemberId(999), at(1, Message::Leave));
    assert_eq!(p.refused(), 1);
    let other = members.iter().copied().find(|m| *m != observer && *m != leaver).unwrap();
    p.handle_message(11, other, at(1, Message::Leave));
    p.handle_timeout(11 + MonitorConfig::default().alert_batch_ms);
    let about: Vec<MemberId> = alerts_sent(&mut p).into_iter().map(|a| a.subject).collect();
    assert!(about.iter().all(|s| *s == other), "{about:?}");
}

#[test]
fn what_an_acceptor_promised_and_accepted_is_handed_out_for_stable_storage_when_it_changes() {
    let [a, b, c] = ids()[..] else { unreachable!() };
    let mut n = node(a);
    let first = n.poll_persist().expect("the first view is kept");
    assert_eq!(
        (first.epoch, first.evicted, first.promised, first.accepted),
        (Epoch(1), false, Rank::NONE, None)
    );
    assert_eq!(first.view, n.view.clone());
    n.handle_message(1, b, at(1, Message::Probe));
    assert_eq!(n.poll_persist(), None, "nothing changed");
    // A promise to b's rank: kept before the Promise leaves.
    let rank = Rank { round: 2, node: 1 };
    n.handle_message(2, b, at(1, Message::Prepare(rank)));
    let kept = n.poll_persist().expect("a promise is kept");
    assert_eq!((kept.promised, kept.accepted), (rank, None));
    assert!(sent(&mut n).iter().any(|(_, e)| matches!(e.message, Message::Promise { .. })));
    // An acceptance at that rank.
    let rings = Rings::new(&ids(), rings_for(3));
    deliver(&mut n, 3, &down_alerts(&rings, c)[..1]);
    let cut = Cut { down: vec![c], ..Cut::default() };
    n.handle_message(4, b, at(1, Message::Accept { rank, cut: cut.clone() }));
    let kept = n.poll_persist().expect("an acceptance is kept");
    assert_eq!(kept.accepted, Some((rank, cut.clone())));
    assert_eq!(n.poll_persist(), None);
    // b accepted too: a majority, so the next view is installed, and kept with nothing
    // promised in it.
    n.handle_message(5, b, at(1, Message::Accepted { rank, cut }));
    assert_eq!(n.view().0, Epoch(2));
    let kept = n.poll_persist().expect("the new view is kept");
    assert_eq!((kept.epoch, kept.promised, kept.accepted), (Epoch(2), Rank::NONE, None));
    assert_eq!(kept.view.members, vec![a, b]);
}

#[test]
fn a_restarted_member_resumes_with_its_vote_and_promise_and_refuses_what_they_forbid() {
    // Four members; a votes to remove d in the fast round, promises b's classic rank, and
    // crashes. Restarted from what it kept, it answers a coordinator with its vote (which the
    // coordinator must count), refuses a lower rank and does not vote for another cut.
    let (members, alerts) = four_with_d_down();
    let [a, b, c, d] = members[..] else { unreachable!() };
    let quiet = MonitorConfig::default().cut_quiet_ms;
    let mut n = node_of(a, members.clone());
    deliver(&mut n, 10, &alerts);
    n.handle_timeout(10 + quiet);
    let vote = Cut { down: vec![d], ..Cut::default() };
    assert_eq!(votes(&mut n), 3, "a voted to remove d");
    let rank = Rank { round: 3, node: 1 };
    n.handle_message(20 + quiet, b, at(1, Message::Prepare(rank)));
    let mut kept = None;
    while let Some(d) = n.poll_persist() {
        kept = Some(d);
    }
    let kept = kept.expect("kept");
    assert_eq!((kept.promised, kept.accepted.clone()), (rank, Some((Rank::FAST, vote.clone()))));

    let mut r =
        MemberNode::resume(a, kept.clone(), MonitorConfig::default(), 5_000).expect("resumes");
    assert_eq!(r.view(), (Epoch(1), &members[..]));
    assert_eq!(r.poll_persist(), None, "what it resumed from is on disk already");
    // A lower rank is refused; a higher one is promised, with the fast vote.
    r.handle_message(5_001, c, at(1, Message::Prepare(Rank { round: 2, node: 2 })));
    assert!(sent(&mut r).iter().all(|(_, e)| !matches!(e.message, Message::Promise { .. })));
    let higher = Rank { round: 4, node: 2 };
    r.handle_message(5_002, c, at(1, Message::Prepare(higher)));
    let promises: Vec<Message> = sent(&mut r)
        .into_iter()
        .filter(|(to, e)| *to == c && matches!(e.message, Message::Promise { .. }))
        .map(|(_, e)| e.message)
        .collect();
    assert_eq!(
        promises,
        vec![Message::Promise { rank: higher, accepted: Some((Rank::FAST, vote.clone())) }]
    );
    // Its tally is empty, but it accepts the cut it voted for when a coordinator proposes it
    // (the vote is its evidence), and nothing else without a report.
    let other = Cut { down: vec![b], ..Cut::default() };
    r.handle_message(5_003, c, at(1, Message::Accept { rank: higher, cut: other }));
    assert!(sent(&mut r).is_empty(), "no report of b");
    r.handle_message(5_003, c, at(1, Message::Accept { rank: higher, cut: vote.clone() }));
    let accepted = Message::Accepted { rank: higher, cut: vote.clone() };
    assert!(sent(&mut r).iter().any(|(_, e)| e.message == accepted));
    // It counts its own vote: with b's and c's, the fast round decides.
    r.handle_message(5_003, b, at(1, Message::Vote(vote.clone())));
    r.handle_message(5_004, c, at(1, Message::Vote(vote)));
    assert_eq!(r.view(), (Epoch(2), &[a, b, c][..]));

    // Evicted, or not in the view it kept: it must join again.
    let evicted = Durable { evicted: true, ..kept.clone() };
    assert!(MemberNode::resume(a, evicted, MonitorConfig::default(), 0).is_none());
    assert!(MemberNode::resume(MemberId(99), kept, MonitorConfig::default(), 0).is_none());
}

#[test]
fn a_member_that_learns_it_was_removed_keeps_that_it_may_only_join_again() {
    let [a, b, c] = ids()[..] else { unreachable!() };
    let mut n = node(a);
    n.poll_persist();
    let next = change(vec![b, c], vec![], vec![a]);
    n.handle_message(10, b, at(2, Message::Welcome(next.clone())));
    n.handle_message(11, c, at(2, Message::Welcome(next)));
    let kept = n.poll_persist().expect("kept");
    assert!(kept.evicted && kept.epoch == Epoch(2));
    assert!(MemberNode::resume(a, kept, MonitorConfig::default(), 0).is_none());
}

#[test]
fn the_members_a_member_reported_down_are_kept_and_count_as_reported_after_a_restart() {
    // a observes d, reports it down and votes to remove it: the list of members it reported
    // down goes to stable storage with the rest.
    let members: Vec<MemberId> = (1..=4).map(|i| MemberId(i * 11)).collect();
    let d = members[3];
    let rings = Rings::new(&members, rings_for(4));
    let a = rings.observers_of(d)[0].1;
    let b = *members.iter().find(|m| **m != a && **m != d).unwrap();
    let others: Vec<MemberId> = members.iter().copied().filter(|m| *m != a && *m != d).collect();
    let mut n = node_of(a, members.clone());
    let theirs: Vec<Alert> =
        down_alerts(&rings, d).into_iter().filter(|x| x.observer != a).collect();
    let mut now = 0;
    while votes(&mut n) == 0 {
        now += 10;
        assert!(now < 5_000, "a never voted");
        for &m in &others {
            n.handle_message(now, m, at(1, Message::Ack(Incarnation(0))));
        }
        if now == 600 {
            deliver(&mut n, now, &theirs);
        }
        n.handle_timeout(now);
    }
    let kept = std::iter::from_fn(|| n.poll_persist()).last().expect("kept");
    assert_eq!(kept.reported, vec![d]);
    let coordinated = |round| Rank { round, node: members.binary_search(&b).unwrap() as u32 };
    // Restarted, with an empty tally, it still counts d as reported by itself: it accepts a
    // cut removing d even without its vote (taken out of what it kept, to tell the two
    // rules apart).
    let unvoted = Durable { promised: Rank::NONE, accepted: None, ..kept };
    let mut r =
        MemberNode::resume(a, unvoted, MonitorConfig::default(), now + 10).expect("resumes");
    let mut cut = Cut { down: vec![d], ..Cut::default() };
    cut.down.sort();
    let rank = coordinated(4);
    r.handle_message(now + 11, b, at(1, Message::Accept { rank, cut: cut.clone() }));
    let accepted = Message::Accepted { rank, cut };
    assert!(sent(&mut r).iter().any(|(_, e)| e.message == accepted));
}
