//! The request book's rules, each with the state it leaves and the error it gives.

use super::*;
use crate::ledger::add_signature;
use crate::ledger::tests::{DAY, EPOCH, Scenario, key, sign_network};

const HOUR: u64 = 3600;

/// A request for `record` as the driver makes it when it arrives at `now`.
fn request(record: &Record, l: &Ledger, now: u64) -> SignRequest {
    SignRequest {
        id: record.hash(),
        body: record.body().clone(),
        sigs: record.sigs().to_vec(),
        proposer: "test".into(),
        created: now,
        expires: expiry(record.body().time, now, l.params()),
        state: State::Pending,
        rejections: Vec::new(),
        signers: l.state().signers_at(record.seq()).clone(),
    }
}

/// A rejection for `reason`, unsigned (the book takes the driver's word for signatures).
fn no(reason: &str) -> Rejection {
    Rejection {
        node_id: String::new(),
        reason: reason.into(),
        signature: String::new(),
        noted: 0,
    }
}

/// An issuance for `more` loaves than the standard scenario's ten.
fn issue(l: &Ledger, more: u64, time: u64) -> Body {
    l.propose_issue(
        [("bread".into(), 10 + more)].into(),
        Default::default(),
        time,
    )
    .unwrap()
}

/// When the requests of these tests arrive: in period 1, after the standard scenario.
const NOW: u64 = EPOCH + DAY + 100;

/// The standard scenario, and a book holding one issuance node1 proposed at [`NOW`].
fn one_request() -> (Scenario, Record, RequestBook) {
    let s = Scenario::standard();
    let r = sign_network(issue(&s.l, 4, NOW), &["node1"]);
    let mut book = RequestBook::default();
    book.insert(request(&r, &s.l, NOW)).unwrap();
    (s, r, book)
}

#[test]
fn a_proposal_gathers_a_quorum_and_becomes_final() {
    let s = Scenario::standard();
    let (mut l, p) = (s.l.clone(), s.l.params().clone());
    let now = EPOCH + DAY + 100;
    let record = sign_network(issue(&l, 4, now), &["node1"]);
    let sigs = check_proposal(&record, &p, &signers(&l), true).unwrap();
    assert_eq!(sigs.len(), 1);
    check_timely(&record, &p, now, true).unwrap();
    recompute(&l, &p, record.body(), now).unwrap();

    let mut book = RequestBook::default();
    book.insert(request(&record, &l, now)).unwrap();
    let id = record.hash();
    assert_eq!(book.get(&id).unwrap().signed_by(&p), 1);
    assert_eq!(book.ready(&id, now, &p), None, "one of a quorum of two");
    assert_eq!(book.waiting_for(&p, key("node2").public()), 1);
    assert_eq!(
        book.waiting_for(&p, key("node4").public()),
        0,
        "not a signer"
    );

    // node2's member signs.
    let body = book
        .to_approve(&id, now, &p, key("node2").public())
        .unwrap();
    let sigs = add_signature(&body, &book.get(&id).unwrap().sigs, key("node2"));
    book.approved(&id, sigs).unwrap();
    assert_eq!(book.get(&id).unwrap().state, State::Approved);
    let ready = book.ready(&id, now, &p).expect("a quorum");
    let keys: Vec<_> = ready
        .sigs()
        .iter()
        .map(|s| Fingerprint::of(&s.key.as_ref().unwrap().0))
        .collect();
    assert!(keys.is_sorted(), "signatures in key order");
    assert!(l.ingest(ready).unwrap().applied.contains(&id));
    book.finalized(&id);
    assert_eq!(book.get(&id).unwrap().state, State::Final);
    assert_eq!(book.ready(&id, now, &p), None, "final once");
    assert!(book.supersede(&l).is_empty(), "a final request stays final");
    assert!(matches!(
        book.to_approve(&id, now, &p, key("node3").public()),
        Err(SignError::Closed(_))
    ));
    assert!(book.open_records(&[], 0, false).is_empty());
}

#[test]
fn a_request_whose_record_came_by_sync_is_final() {
    let (s, r, mut book) = one_request();
    let mut l = s.l.clone();
    assert!(book.final_on_chain(&l).is_empty(), "not on the chain yet");
    // The quorum gathered elsewhere; the record arrives by sync.
    let full = sign_network(r.body().clone(), &["node1", "node2"]);
    assert!(l.ingest(full).unwrap().applied.contains(&r.hash()));
    assert_eq!(book.final_on_chain(&l), vec![r.hash()]);
    assert_eq!(book.get(&r.hash()).unwrap().state, State::Final);
    assert_eq!(book.waiting_for(l.params(), key("node3").public()), 0);
    assert!(book.final_on_chain(&l).is_empty(), "once");
}

fn signers(l: &Ledger) -> SignerSet {
    l.state().signers.clone()
}

#[test]
fn proposals_are_refused_with_the_reason() {
    let s = Scenario::standard();
    let (l, p) = (&s.l, s.l.params());
    let now = EPOCH + DAY + 100;
    let set = signers(l);
    let body = issue(l, 4, now);
    let refused = |r: Result<Vec<Sig>, SignError>, what: &str| match r {
        Err(SignError::Refused(why)) => assert!(why.contains(what), "{why} lacks {what:?}"),
        other => panic!("{other:?}"),
    };
    refused(
        check_proposal(&Record::new(body.clone(), vec![]), p, &set, true),
        "at least one signer",
    );
    // From this node itself, the first signature is added after it is held.
    check_proposal(&Record::new(body.clone(), vec![]), p, &set, false).unwrap();
    refused(
        check_proposal(&sign_network(body.clone(), &["node4"]), p, &set, true),
        "",
    );
    let one = add_signature(&body, &[], key("node1"));
    let twice = [one.clone(), one].concat();
    refused(
        check_proposal(&Record::new(body.clone(), twice), p, &set, true),
        "twice",
    );
    let pay = l
        .make_transfer(
            key("node1"),
            vec![crate::ledger::tests::out(p, "node2", 1)],
            None,
            now,
        )
        .unwrap();
    refused(check_proposal(&pay, p, &set, false), "quorum");

    // The node's own computation disagrees.
    let mut more = body.clone();
    if let Content::Issue(i) = &mut more.content {
        *i.amounts.get_mut("codcoin").unwrap() += 1;
    }
    let why = recompute(l, p, &more, now).unwrap_err();
    assert!(why.contains("circulation may not exceed"), "{why}");
    let why = recompute(l, p, &body, body.time - MAX_CLOCK_SKEW - 1).unwrap_err();
    assert!(why.contains("after this node's clock"), "{why}");
    // Period 1 ends at EPOCH + 2 DAY: its distribution is dated then, within the skew.
    let current = l.propose_distribution(1, false, EPOCH + DAY + 50).unwrap();
    let why = recompute(l, p, &current, EPOCH + 2 * DAY - 100).unwrap_err();
    assert!(why.contains("has not ended"), "{why}");
    // Which a signer's node may reject for good: not what is only early by its clock, within
    // the skew the rules tolerate; what is dated beyond it, or timely.
    assert!(!rejectable(p, &current, EPOCH + 2 * DAY - 100));
    assert!(!rejectable(p, &current, current.time - MAX_CLOCK_SKEW));
    assert!(rejectable(p, &current, current.time - MAX_CLOCK_SKEW - 1));
    assert!(rejectable(p, &current, EPOCH + 2 * DAY));
    let mut other_seq = body.clone();
    other_seq.seq += 1;
    let why = recompute(l, p, &other_seq, now).unwrap_err();
    assert!(why.contains("differs"), "{why}");

    // Out of time.
    let late = sign_network(body.clone(), &["node1"]);
    let ttl = p.com.signers.request_ttl;
    check_timely(&late, p, body.time + ttl - 1, false).unwrap();
    assert!(matches!(
        check_timely(&late, p, body.time + ttl, false),
        Err(SignError::Refused(why)) if why.contains("expired")
    ));
    let skewed = sign_network(issue(l, 4, now + MAX_CLOCK_SKEW + 1), &["node1"]);
    assert!(matches!(
        check_timely(&skewed, p, now, true),
        Err(SignError::Refused(why)) if why.contains("from this node's clock")
    ));
    check_timely(&skewed, p, now, false).unwrap();
}

#[test]
fn an_open_request_expires_and_is_superseded_when_the_chain_moves_on() {
    let s = Scenario::standard();
    let (mut l, p) = (s.l.clone(), s.l.params().clone());
    let now = EPOCH + DAY + 100;
    let a = sign_network(issue(&l, 4, now), &["node1"]);
    let b = sign_network(issue(&l, 5, now + 1), &["node1"]);
    let mut book = RequestBook::default();
    book.insert(request(&a, &l, now)).unwrap();
    book.insert(request(&b, &l, now)).unwrap();
    assert_eq!(book.open_records(&[], 0, false).len(), 2);

    // b's twin takes the slot: a can no longer be signed — nor is it shown to peers from
    // then on, whenever the book is swept.
    l.ingest(sign_network(b.body().clone(), &["node1", "node2"]))
        .unwrap();
    let next = l.state().account(&p.network).map_or(0, |a| a.next_seq());
    assert!(book.open_records(&[], next, false).is_empty());
    let gone = book.supersede(&l);
    assert_eq!(
        gone.len(),
        1,
        "{gone:?}: b's own request is b, in the chain"
    );
    let (ida, why) = &gone[0];
    assert_eq!(*ida, a.hash());
    assert!(why.contains("took its place"), "{why}");
    assert_eq!(book.get(&b.hash()).unwrap().state, State::Pending);
    assert!(matches!(
        book.to_approve(ida, now, &p, key("node2").public()),
        Err(SignError::Closed(m)) if m.contains("repropose")
    ));
    assert!(book.supersede(&l).is_empty(), "once");

    // Expiry: at the record's time plus the session.
    let c = sign_network(issue(&l, 7, now + 10), &["node1"]);
    book.insert(request(&c, &l, now + 10)).unwrap();
    let end = book.get(&c.hash()).unwrap().expires;
    assert_eq!(end, now + 10 + p.com.signers.request_ttl);
    assert!(!book.expire(end - 1).contains(&c.hash()));
    let mut ready_sigs = book.get(&c.hash()).unwrap().sigs.clone();
    ready_sigs = add_signature(c.body(), &ready_sigs, key("node3"));
    book.approved(&c.hash(), ready_sigs).unwrap();
    assert!(book.ready(&c.hash(), end - 1, &p).is_some());
    assert_eq!(
        book.ready(&c.hash(), end, &p),
        None,
        "not after its session"
    );
    assert_eq!(book.expire(end), vec![c.hash()]);
    assert_eq!(book.get(&c.hash()).unwrap().state, State::Expired);
    assert!(book.expire(end + HOUR).is_empty(), "once");
    // Approving a request whose session ended marks it expired.
    let d = sign_network(issue(&l, 6, now + 20), &["node1"]);
    book.insert(request(&d, &l, now + 20)).unwrap();
    let end = book.get(&d.hash()).unwrap().expires;
    assert!(matches!(
        book.to_approve(&d.hash(), end, &p, key("node2").public()),
        Err(SignError::Closed(m)) if m.contains("expired")
    ));
    assert_eq!(book.get(&d.hash()).unwrap().state, State::Expired);
}

#[test]
fn only_a_signer_approves() {
    let (s, r, mut book) = one_request();
    let (p, now) = (s.l.params(), NOW);
    assert!(matches!(
        book.to_approve(&r.hash(), now, p, key("node4").public()),
        Err(SignError::NotSigner(_))
    ));
    let stranger = RecordHash::of(b"elsewhere");
    assert!(matches!(
        book.to_approve(&stranger, now, p, key("node2").public()),
        Err(SignError::Unknown(_))
    ));
    assert_eq!(book.merge(&stranger, vec![]), None);
}

#[test]
fn signatures_merge_once_per_signer() {
    let (s, r, mut book) = one_request();
    let (l, p, now) = (&s.l, s.l.params(), NOW);
    assert_eq!(book.merge(&r.hash(), r.sigs().to_vec()), Some(false));
    let two = sign_network(r.body().clone(), &["node1", "node3"]);
    assert_eq!(book.merge(&r.hash(), two.sigs().to_vec()), Some(true));
    assert_eq!(book.get(&r.hash()).unwrap().sigs.len(), 2);
    assert!(book.ready(&r.hash(), now, p).is_some());
    // Holding it again changes nothing.
    book.insert(request(&r, l, now)).unwrap();
    assert_eq!(book.get(&r.hash()).unwrap().sigs.len(), 2);
}

#[test]
fn rejections_are_bounded_and_counted_once_per_node() {
    let a = AccountId::from_bytes([0xab; 32]);
    let b = AccountId::from_bytes([0xcd; 32]);
    let mut list = Vec::new();
    assert!(note_rejection(&mut list, &a, no("no")));
    // The same node, however its id was spelled on the wire, is one node once parsed.
    for spelling in [a.to_string().to_uppercase(), format!(" {a}\n")] {
        let again: AccountId = spelling.parse().unwrap();
        assert!(!note_rejection(&mut list, &again, no("no")));
    }
    assert!(note_rejection(&mut list, &b, no("no")));
    assert_eq!(list.len(), 2);
    for i in 0..200u8 {
        note_rejection(&mut list, &AccountId::from_bytes([i; 32]), no("x"));
    }
    assert_eq!(list.len(), MAX_REJECTIONS, "bounded");
    // A signed rejection is for one node and one request.
    let id = RecordHash::of(b"request");
    assert_ne!(
        rejection_message(&id, &a, "no"),
        rejection_message(&id, &b, "no")
    );
    assert_ne!(
        rejection_message(&id, &a, "no"),
        rejection_message(&RecordHash::of(b"other"), &a, "no")
    );
}

#[test]
fn a_member_rejects_with_a_reason() {
    let s = Scenario::standard();
    let (l, p) = (&s.l, s.l.params());
    let now = EPOCH + DAY + 100;
    let r = sign_network(issue(l, 4, now), &["node1"]);
    let (me, peer) = (
        AccountId::from_bytes([1; 32]),
        AccountId::from_bytes([2; 32]),
    );
    let mut book = RequestBook::default();
    book.insert(request(&r, l, now)).unwrap();
    let id = r.hash();
    for bad in ["", "  \n", &"x".repeat(MAX_REASON_BYTES + 1)] {
        assert!(matches!(
            book.reject(&id, &me, no(bad)),
            Err(SignError::Invalid(_))
        ));
        assert!(matches!(
            book.rejected_by(&id, &peer, no(bad)),
            Err(SignError::Invalid(_))
        ));
    }
    assert_eq!(book.rejected_by(&id, &peer, no("not baked")), Ok(true));
    assert_eq!(book.rejected_by(&id, &peer, no("really not")), Ok(false));
    book.reject(&id, &me, no("no bread here")).unwrap();
    let req = book.get(&id).unwrap();
    assert_eq!(req.state, State::Rejected("no bread here".into()));
    assert_eq!(req.rejections.len(), 2);
    assert!(!req.state.is_open());
    assert!(matches!(
        book.to_approve(&id, now, p, key("node2").public()),
        Err(SignError::Closed(m)) if m.contains("rejected")
    ));
    book.finalized(&id);
    assert!(matches!(
        book.reject(&id, &me, no("late")),
        Err(SignError::Closed(_))
    ));
    assert!(matches!(
        book.rejected_by(&RecordHash::of(b"gone"), &peer, no("x")),
        Err(SignError::Unknown(_))
    ));
}

/// A signer whose clock is behind holds a peer's proposal for a later period of the seq and
/// waits for its clock to get there, rather than propose the earlier period.
#[test]
fn a_signer_behind_waits_for_a_later_periods_proposal() {
    let s = Scenario::standard();
    let l = &s.l;
    let t = EPOCH + 2 * DAY + 10;
    let one = l.propose_distribution(1, false, t).unwrap();
    let two = l.propose_distribution(2, false, t + DAY).unwrap();
    assert_eq!(one.seq, two.seq);
    let r2 = sign_network(two.clone(), &["node2"]);
    let id = r2.hash();
    let seq = one.seq;
    let mut book = RequestBook::default();
    let near = two.time - MAX_WAIT_FOR_LATER;
    assert_eq!(book.later_proposal(1, seq, near, false), None);
    book.insert(request(&r2, l, near)).unwrap();
    assert_eq!(book.later_proposal(1, seq, near, false), Some(id));
    assert_eq!(
        book.later_proposal(1, seq, near - 1, false),
        None,
        "dated further ahead than clocks that keep time differ: not waited for"
    );
    assert_eq!(book.later_proposal(2, seq, near, false), None, "not later");
    assert_eq!(
        book.later_proposal(1, seq + 1, near, false),
        None,
        "another seq"
    );
    let end = book.get(&id).unwrap().expires;
    assert_eq!(book.later_proposal(1, seq, end - 1, false), Some(id));
    assert_eq!(book.later_proposal(1, seq, end, false), None, "ran out");
    let mut dead = book.clone();
    for n in [1, 2] {
        dead.rejected_by(&id, &AccountId::from_bytes([n; 32]), no("no"))
            .unwrap();
    }
    assert_eq!(dead.later_proposal(1, seq, near, false), None, "dead");
    book.approved(&id, r2.sigs().to_vec()).unwrap();
    assert_eq!(
        book.later_proposal(1, seq, near, false),
        None,
        "signed here: this node is held by it anyway"
    );
}

#[test]
fn a_distribution_has_one_session_at_a_time() {
    let s = Scenario::standard();
    let l = &s.l;
    let t = EPOCH + 2 * DAY + 10;
    let body = l.propose_distribution(1, false, t).unwrap();
    let r = sign_network(body.clone(), &["node1"]);
    let mut book = RequestBook::default();
    let propose = Session::Propose { stale: vec![] };
    assert_eq!(book.session(1, &body, t, false), propose);
    book.insert(request(&r, l, t)).unwrap();
    assert_eq!(book.session(1, &body, t, false), Session::Busy, "open");
    let two = l.propose_distribution(2, false, t + DAY).unwrap();
    assert_eq!(book.session(2, &two, t, false), propose, "another period");
    let end = book.get(&r.hash()).unwrap().expires;
    book.expire(end);
    assert_eq!(
        book.session(1, &body, t, false),
        propose,
        "ran out: a fresh one"
    );
    let again = l.propose_distribution(1, false, end).unwrap();
    assert_eq!(again.content, body.content, "(dated later by the driver)");
    let r2 = sign_network(again.clone(), &["node1"]);
    book.insert(request(&r2, l, end)).unwrap();
    assert_eq!(
        book.session(1, &body, t, false),
        Session::Busy,
        "one with the chain's content is open, whatever its date"
    );
    book.reject(&r2.hash(), &AccountId::from_bytes([1; 32]), no("wrong"))
        .unwrap();
    assert_eq!(
        book.session(1, &body, end, false),
        Session::Busy,
        "this member rejected one: not again by itself while its session runs"
    );
    let end2 = book.get(&r2.hash()).unwrap().expires;
    assert_eq!(
        book.session(1, &body, end2, false),
        propose,
        "a rejection is of the record, not of the period: once its session ran out, a fresh one"
    );
    book.finalized(&r2.hash());
    assert_eq!(book.session(1, &body, t, false), Session::Busy, "final");
}

/// What a signer left unsigned while another record it signed for the seq could still
/// complete: every pending request with the chain's content, whoever proposed it, the one
/// closest to a quorum first.
#[test]
fn the_unsigned_requests_of_a_period_are_its_pending_ones_with_the_chains_content() {
    let s = Scenario::standard();
    let l = &s.l;
    let t = EPOCH + 2 * DAY + 10;
    let body = l.propose_distribution(1, false, t).unwrap();
    let later = l.propose_distribution(1, false, t + 60).unwrap();
    assert_eq!(later.content, body.content);
    assert_ne!(later.time, body.time);
    let one = sign_network(body.clone(), &["node1"]);
    let two = sign_network(later, &["node1", "node2"]);
    let other = sign_network(
        l.propose_distribution(2, false, t + DAY).unwrap(),
        &["node1"],
    );
    let mut book = RequestBook::default();
    assert!(book.unsigned(1, &body).is_empty());
    for r in [&one, &two, &other] {
        book.insert(request(r, l, t)).unwrap();
    }
    assert_eq!(book.unsigned(1, &body), vec![two.hash(), one.hash()]);
    book.approved(&two.hash(), two.sigs().to_vec()).unwrap();
    assert_eq!(book.unsigned(1, &body), vec![one.hash()], "signed here");
    book.reject(&one.hash(), &AccountId::from_bytes([1; 32]), no("no"))
        .unwrap();
    assert!(book.unsigned(1, &body).is_empty(), "rejected here");
}

/// A signer proposed the distribution before a record of the period reached it (it was on
/// its stem): the one it proposed is superseded, the chain's proposed — not left to stall
/// the period until it expires.
#[test]
fn a_distribution_computed_before_a_late_record_is_superseded_by_the_chains() {
    let mut s = Scenario::standard();
    let t = EPOCH + 2 * DAY + 10;
    let before = s.l.propose_distribution(1, false, t).unwrap();
    let r = sign_network(before.clone(), &["node1"]);
    let mut book = RequestBook::default();
    book.insert(request(&r, &s.l, t)).unwrap();
    assert_eq!(book.session(1, &before, t, false), Session::Busy);

    // A transfer made in period 1 arrives late.
    s.pay("node2", &[("node3", 100)], EPOCH + DAY + 500);
    let after = s.l.propose_distribution(1, false, t).unwrap();
    assert_ne!(
        after.content, before.content,
        "its checkpoint holds the transfer"
    );
    assert!(recompute(&s.l, s.l.params(), &before, t).is_err());
    assert_eq!(
        book.session(1, &after, t, false),
        Session::Propose {
            stale: vec![r.hash()]
        }
    );
    let held = book.get(&r.hash()).unwrap();
    assert!(
        matches!(&held.state, State::Superseded(why) if why.contains("records of period 1")),
        "{:?}",
        held.state
    );
    assert!(
        book.open_records(&[], 0, false).is_empty(),
        "no longer resent"
    );
    let r2 = sign_network(after.clone(), &["node1"]);
    book.insert(request(&r2, &s.l, t)).unwrap();
    assert_eq!(book.session(1, &after, t, false), Session::Busy);
    // A record that reached the chain is final, whatever this node thought of it.
    let mut l = s.l.clone();
    l.ingest(sign_network(before, &["node1", "node3"])).unwrap();
    assert_eq!(book.final_on_chain(&l), vec![r.hash()]);
}

#[test]
fn the_deployer_falls_back_only_where_com_ini_says_and_when_overdue() {
    let p = crate::ledger::tests::params_with(
        "formula = equal",
        "fallback = deployer\nfallback_after = 2d\n",
    );
    let set = crate::ledger::Ledger::new(p.clone())
        .state()
        .signers
        .clone();
    assert_eq!(
        fallback_not_before(&p, key("cod").public(), &set, 0),
        Some(EPOCH + DAY + 2 * DAY)
    );
    assert_eq!(
        fallback_not_before(&p, key("node1").public(), &set, 0),
        None
    );
    let plain = crate::ledger::tests::params();
    assert_eq!(
        fallback_not_before(&plain, key("cod").public(), &set, 0),
        None
    );
}

#[test]
fn the_book_is_bounded_and_settled_requests_make_room_first() {
    let s = Scenario::standard();
    let l = &s.l;
    let now = EPOCH + DAY + 100;
    let r = sign_network(issue(l, 4, now), &["node1"]);
    let template = request(&r, l, now);
    let fake = |i: usize, state: State| SignRequest {
        id: RecordHash::of(&i.to_be_bytes()),
        created: now + i as u64,
        state,
        ..template.clone()
    };
    let mut book = RequestBook::default();
    for i in 0..MAX_REQUESTS {
        let state = if i == 200 {
            State::Expired
        } else {
            State::Pending
        };
        book.insert(fake(i, state)).unwrap();
    }
    assert_eq!(book.iter().count(), MAX_REQUESTS);
    book.insert(fake(1000, State::Pending)).unwrap();
    assert_eq!(book.iter().count(), MAX_REQUESTS, "bounded");
    assert!(
        book.get(&fake(200, State::Pending).id).is_none(),
        "settled first"
    );
    assert!(book.get(&fake(0, State::Pending).id).is_some());
    book.insert(fake(1001, State::Pending)).unwrap();
    assert!(
        book.get(&fake(0, State::Pending).id).is_none(),
        "then the oldest open one"
    );
    assert!(book.get(&fake(1001, State::Pending).id).is_some());
}

#[test]
fn a_request_is_found_by_a_unique_prefix() {
    // Ids that share their first six digits, to be ambiguous there.
    let mut seen = BTreeMap::<String, RecordHash>::new();
    let (a, b) = (0u32..)
        .find_map(|i| {
            let h = RecordHash::of(&i.to_be_bytes());
            let p = h.to_string()[..6].to_string();
            seen.insert(p, h).map(|other| (other, h))
        })
        .unwrap();
    let s = Scenario::standard();
    let now = EPOCH + DAY + 100;
    let template = request(&sign_network(issue(&s.l, 4, now), &["node1"]), &s.l, now);
    let mut book = RequestBook::default();
    for id in [a, b] {
        book.insert(SignRequest {
            id,
            ..template.clone()
        })
        .unwrap();
    }
    let (sa, sb) = (a.to_string(), b.to_string());
    assert!(matches!(book.find(&sa[..5]), Err(SignError::Invalid(_))));
    assert!(matches!(book.find(&sa[..6]), Err(SignError::Invalid(m)) if m.contains("several")));
    let unique = (6..64)
        .find(|&n| sa[..n] != sb[..n])
        .expect("different ids");
    assert_eq!(book.find(&sa[..unique]), Ok(a));
    assert_eq!(book.find(&sb.to_uppercase()), Ok(b), "any case");
    assert!(matches!(
        book.find(&"f".repeat(64)),
        Err(SignError::Unknown(_))
    ));
}

#[test]
fn views_read_back_as_the_daemon_wrote_them() {
    let (s, r, mut book) = one_request();
    let (l, p) = (&s.l, s.l.params());
    book.reject(
        &r.hash(),
        &AccountId::from_bytes([1; 32]),
        no("no \"bread\""),
    )
    .unwrap();
    let list = book.list(p, key("node2").public());
    let v = &list.requests[0];
    assert_eq!((v.signed, v.quorum, v.signer), (1, 2, true));
    assert_eq!(v.kind, "issue");
    assert!(
        v.summary
            .starts_with("issue 14.00 codcoin backed by bread=14"),
        "{}",
        v.summary
    );
    let json = serde_json::to_value(&list).unwrap();
    assert_eq!(json["requests"][0]["state"]["state"], "rejected");
    assert_eq!(json["requests"][0]["state"]["reason"], "no \"bread\"");
    let back: RequestList = serde_json::from_value(json).unwrap();
    assert_eq!(back, list);
    let signers = SignersView::new(&signers(l), p, key("node4").public());
    assert!(!signers.signer && !signers.changed);
    let back: SignersView =
        serde_json::from_value(serde_json::to_value(&signers).unwrap()).unwrap();
    assert_eq!(back, signers);
}

#[test]
fn each_error_answers_with_its_kind() {
    use crate::control::ErrorKind;
    let cases = [
        (SignError::Unknown("x".into()), ErrorKind::NotFound),
        (SignError::Invalid("x".into()), ErrorKind::BadRequest),
        (SignError::Refused("x".into()), ErrorKind::Refused),
        (SignError::NotSigner("x".into()), ErrorKind::Refused),
        (SignError::Closed("x".into()), ErrorKind::Refused),
        (SignError::Full, ErrorKind::Refused),
    ];
    for (e, kind) in cases {
        assert_eq!(e.kind(), kind, "{e}");
    }
}

/// A signer signs one record per network seq while it may still complete: another only once
/// that one's session and the tolerated clock skew are over; decided seqs are forgotten.
#[test]
fn a_signer_never_signs_two_records_for_one_network_seq_while_the_first_may_complete() {
    let (a, b) = (RecordHash::of(b"a"), RecordHash::of(b"b"));
    let mut s = Signed::default();
    let p = crate::ledger::tests::params();
    let ttl = p.com.signers.request_ttl;
    // From the record's own time, however late it arrived here, and twice the skew.
    assert_eq!(
        signed_until(EPOCH, EPOCH + 100 + ttl, &p),
        EPOCH + 100 + ttl + 2 * MAX_CLOCK_SKEW
    );
    let until = signed_until(EPOCH + 600, EPOCH + ttl, &p);
    assert_eq!(until, EPOCH + 600 + ttl + 2 * MAX_CLOCK_SKEW);
    s.note(7, a, until).unwrap();
    assert_eq!(
        s.conflict(7, &a, EPOCH, |_| false),
        None,
        "signing it again is no conflict"
    );
    assert_eq!(s.conflict(7, &b, EPOCH, |_| false), Some((a, until)));
    assert_eq!(s.conflict(7, &b, until - 1, |_| false), Some((a, until)));
    assert_eq!(
        s.conflict(7, &b, until, |_| false),
        None,
        "it can no longer complete"
    );
    assert_eq!(s.conflict(8, &b, EPOCH, |_| false), None, "another seq");
    assert_eq!(
        s.conflict(7, &b, EPOCH, |h| *h == a),
        None,
        "a record enough signers rejected can never complete"
    );
    s.reject(7, b).unwrap();
    assert!(s.has_rejected(7, &b) && !s.has_rejected(7, &a));
    assert!(
        s.reject(7, a).is_err(),
        "it signed a: a rejection would be a broken promise"
    );
    s.prune(8);
    assert_eq!(
        s.conflict(7, &b, EPOCH, |_| false),
        None,
        "seq 7 is decided"
    );
    // Kept across restarts as JSON; bounded.
    s.note(9, b, until).unwrap();
    let back: Signed = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    for seq in 100..100 + 2 * MAX_SIGNED_SEQS as u64 {
        s.note(seq, a, until).unwrap();
    }
    assert_eq!(s.by_seq.len(), MAX_SIGNED_SEQS);
    // So many records per seq, signed or rejected, and no more: each one noted before it is
    // signed or rejected, so a promise that cannot be kept is not made.
    let seq = 500;
    for i in 0..MAX_SIGNED_PER_SEQ {
        s.note(seq, RecordHash::of(&i.to_be_bytes()), until)
            .unwrap();
    }
    s.note(seq, RecordHash::of(&0usize.to_be_bytes()), until + 1)
        .unwrap();
    assert!(
        matches!(s.note(seq, a, until), Err(SignError::Refused(m)) if m.contains("signs no more"))
    );
    for i in 0..MAX_REJECTED_PER_SEQ {
        s.reject(seq, RecordHash::of(&(i + 1_000_000).to_be_bytes()))
            .unwrap();
    }
    assert!(
        matches!(s.reject(seq, b), Err(SignError::Refused(m)) if m.contains("no more promises"))
    );
    assert!(!s.has_rejected(seq, &b) && s.conflict(seq, &a, until - 1, |_| false).is_some());
}

/// A proposal made again after its session ran out is dated at the start of the window the
/// clock is in: the same on every node, whenever in the window each makes it.
#[test]
fn a_proposal_made_again_is_dated_at_its_session_window() {
    let p = crate::ledger::tests::params();
    let ttl = p.com.signers.request_ttl;
    let first = EPOCH + DAY;
    assert_eq!(session_window(first, first, &p), first);
    assert_eq!(session_window(first, first + ttl - 1, &p), first);
    assert_eq!(session_window(first, first + ttl, &p), first + ttl);
    assert_eq!(
        session_window(first, first + 5 * ttl + 17, &p),
        first + 5 * ttl
    );
    assert_eq!(
        session_window(first, first - 5, &p),
        first,
        "a clock behind"
    );
}

/// A request so many signers rejected that the others fall short of a quorum is dead: its
/// signer may sign another record for the seq (three signers, quorum 2: two rejections).
#[test]
fn a_request_enough_signers_rejected_can_never_complete() {
    let (s, r, mut book) = one_request();
    let id = r.hash();
    let node = |n: &str| key(n).public().node_id(&s.l.params().cod);
    assert!(!book.dead(&id, false));
    book.rejected_by(&id, &node("node2"), no("its chain gives another"))
        .unwrap();
    assert!(
        !book.dead(&id, false),
        "node1 and node3 can still make a quorum"
    );
    book.rejected_by(&id, &node("node3"), no("its chain gives another"))
        .unwrap();
    assert!(book.dead(&id, false));
    assert!(
        !book.dead(&id, true),
        "with the deployer's fallback, node1 and the deployer could still complete it"
    );
    assert!(!book.dead(&RecordHash::of(b"unknown"), false));
}

/// A request this node signed that was superseded here is still shown to peers while it may
/// complete — they must see it to reject it, which frees this node (see `Signed`) — and no
/// longer once its seq is decided or it is dead.
#[test]
fn a_superseded_request_this_node_signed_is_shown_until_it_cannot_complete() {
    let (s, r, mut book) = one_request();
    let id = r.hash();
    let me = key("node1").public().der().to_vec();
    book.get_mut(&id).unwrap().state = State::Superseded("records came since".into());
    let seq = r.seq();
    assert_eq!(book.open_records(&me, seq, false).len(), 1);
    assert!(
        book.open_records(key("node2").public().der(), seq, false)
            .is_empty(),
        "not signed by that node"
    );
    assert!(
        book.open_records(&me, seq + 1, false).is_empty(),
        "its seq is decided"
    );
    let node = |n: &str| key(n).public().node_id(&s.l.params().cod);
    for n in ["node2", "node3"] {
        book.rejected_by(&id, &node(n), no("another")).unwrap();
    }
    assert!(book.open_records(&me, seq, false).is_empty(), "dead");
}

/// A signer rejects a peer's request for a seq only when what it signed there outlasts the
/// request's session: never its own proposal, never one it may still sign in time, and not
/// once what it signed is dead.
#[test]
fn a_signer_rejects_only_what_it_could_never_sign_in_time() {
    let (s, mine, mut book) = one_request();
    let l = &s.l;
    let theirs = sign_network(issue(l, 5, NOW), &["node2"]);
    let seq = mine.seq();
    assert_eq!(theirs.seq(), seq);
    let p = l.params();
    let mut signed = Signed::default();
    let never = |book: &RequestBook, signed: &Signed, me: &str, r: &Record, now: u64| {
        book.never_in_time(signed, me, r, now, p, false)
    };
    assert_eq!(
        never(&book, &signed, "me", &theirs, NOW),
        None,
        "nothing signed"
    );
    // Signed `mine` until long after `theirs` (not held here yet) would expire.
    let theirs_ends = expiry(theirs.body().time, NOW, p);
    signed.note(seq, mine.hash(), theirs_ends + 1).unwrap();
    assert_eq!(never(&book, &signed, "me", &theirs, NOW), Some(mine.hash()));
    assert_eq!(
        book.signed_elsewhere(&signed, seq, &theirs.hash(), NOW, false),
        Some((mine.hash(), theirs_ends + 1))
    );
    // A promise that ends before their session does: it may be signed in time.
    let mut short = Signed::default();
    short.note(seq, mine.hash(), theirs_ends).unwrap();
    assert_eq!(never(&book, &short, "me", &theirs, NOW), None);
    // Held here as this node's own proposal: never rejected (signed once the other dies).
    let mut own = request(&theirs, l, NOW);
    own.proposer = "me".into();
    book.insert(own).unwrap();
    assert_eq!(never(&book, &signed, "me", &theirs, NOW), None);
    assert_eq!(
        never(&book, &signed, "someone else", &theirs, NOW),
        Some(mine.hash()),
        "a peer's"
    );
    // Signed here too (the other died first, then came back to life here): never rejected
    // — a rejection would break the signature's promise.
    let mut both = signed.clone();
    both.note(seq, theirs.hash(), theirs_ends).unwrap();
    assert_eq!(never(&book, &both, "someone else", &theirs, NOW), None);
    // What it signed is dead (enough signers rejected it): free.
    for n in [1, 2] {
        book.rejected_by(&mine.hash(), &AccountId::from_bytes([n; 32]), no("no"))
            .unwrap();
    }
    assert!(book.dead(&mine.hash(), false));
    assert_eq!(never(&book, &signed, "someone else", &theirs, NOW), None);
    assert_eq!(
        book.signed_elsewhere(&signed, seq, &theirs.hash(), NOW, false),
        None
    );
}

/// A peer offering a request may lack rejections spread while it was cut off or down: every
/// node answers with those it noted — others' at once, its own only once its stem has had
/// time to spread it (so the answer does not show where it was made).
#[test]
fn rejections_are_passed_on_to_who_offers_the_request_but_ones_own_only_later() {
    let s = Scenario::standard();
    let r = Record::new(issue(&s.l, 5, EPOCH + DAY), Vec::new());
    let id = r.hash();
    let mut book = RequestBook::default();
    book.insert(request(&r, &s.l, EPOCH + DAY)).unwrap();
    let (me, peer) = (
        AccountId::from_bytes([1; 32]),
        AccountId::from_bytes([2; 32]),
    );
    let signed = |reason: &str, noted: u64| Rejection {
        signature: format!("sig of {reason}"),
        noted,
        ..no(reason)
    };
    let t = EPOCH + DAY + 10;
    assert!(book.to_pass_on(&id, &me, t).is_empty());
    book.reject(&id, &me, signed("mine", t)).unwrap();
    book.rejected_by(&id, &peer, signed("theirs", t)).unwrap();
    // (A rejection noted without its signature cannot be passed on.)
    book.rejected_by(&id, &AccountId::from_bytes([3; 32]), no("unsigned"))
        .unwrap();
    let reasons = |v: Vec<Rejection>| v.into_iter().map(|j| j.reason).collect::<Vec<_>>();
    assert_eq!(reasons(book.to_pass_on(&id, &me, t)), ["theirs"]);
    assert_eq!(
        reasons(book.to_pass_on(&id, &me, t + OWN_REJECTION_QUIET - 1)),
        ["theirs"]
    );
    assert_eq!(
        reasons(book.to_pass_on(&id, &me, t + OWN_REJECTION_QUIET)),
        ["mine", "theirs"]
    );
    // Another node holding the same rejections gives them all at once.
    assert_eq!(
        reasons(book.to_pass_on(&id, &AccountId::from_bytes([9; 32]), t)),
        ["mine", "theirs"]
    );
    assert!(
        book.to_pass_on(&RecordHash::of(b"unknown"), &me, t)
            .is_empty()
    );
}

/// A signer's node checks again every pending regular distribution for the network's next
/// seq, whatever its period (one for an earlier period than the one it proposes would
/// otherwise never be rejected here once stale): not those for another seq, special ones,
/// nor those it signed or closed; the most signed first (the one a signature here may
/// complete).
#[test]
fn every_pending_distribution_of_the_next_seq_is_checked_again() {
    let s = Scenario::standard();
    let l = &s.l;
    let t = EPOCH + 3 * DAY + 10;
    let one = sign_network(l.propose_distribution(1, false, t).unwrap(), &["node2"]);
    let two = sign_network(l.propose_distribution(2, false, t).unwrap(), &["node3"]);
    let special = sign_network(l.propose_distribution(3, true, t).unwrap(), &["node2"]);
    let twice = sign_network(
        l.propose_distribution(1, false, t + 1).unwrap(),
        &["node2", "node3"],
    );
    let seq = one.seq();
    let mut book = RequestBook::default();
    for r in [&one, &two, &special, &twice] {
        book.insert(request(r, l, t)).unwrap();
    }
    assert_eq!(book.pending_distributions(seq)[0].0, twice.hash());
    book.forget(&twice.hash());
    let ids = |book: &RequestBook, seq| {
        let mut v: Vec<RecordHash> = book
            .pending_distributions(seq)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        v.sort();
        v
    };
    let mut both = vec![one.hash(), two.hash()];
    both.sort();
    assert_eq!(ids(&book, seq), both);
    assert!(ids(&book, seq + 1).is_empty(), "another seq");
    book.approved(&two.hash(), two.sigs().to_vec()).unwrap();
    book.reject(&one.hash(), &AccountId::from_bytes([1; 32]), no("stale"))
        .unwrap();
    assert!(ids(&book, seq).is_empty(), "signed here, or rejected");
}

/// A reason this node makes up is cut to the bound at a character boundary, never split.
#[test]
fn reasons_made_here_fit_the_bound() {
    let long = "é".repeat(MAX_REASON_BYTES);
    let cut = fit_reason(long);
    assert!(cut.len() <= MAX_REASON_BYTES && cut.len() > MAX_REASON_BYTES - 2);
    assert!(check_reason(&cut).is_ok());
    assert_eq!(fit_reason("short".into()), "short");
}
