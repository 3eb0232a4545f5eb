//! Signature requests for issuance and distribution records (MISSION.md "Issuance",
//! "Distribution"; DESIGN.md §5), the driver: a proposal travels to every node; each signer's
//! node recomputes it from its own chain and refuses a mismatch with the reason; a match
//! waits for the member (or is signed at once for records fully determined by the chain,
//! when node.ini allows); signatures are merged wherever the request is held, and any node
//! that sees a quorum makes the record final. Requests expire (com.ini `request_ttl`).
//!
//! The rules are the request book's ([`crate::signature_requests`], pure); this module feeds it the
//! chain and the time, signs, and carries out what it decides: events, sends, the record to
//! ingest.

use super::Shared;
use crate::api::{Proposal, RejectionMsg};
use crate::ids::{AccountId, RecordHash};
use crate::ledger::{Body, Content, Distribute, Handover, Record, SignerSet, rules};
use crate::lock::Locked;
use crate::signature_requests::{
    self as requests, RequestList, RequestView, Session, SignError, SignRequest, SignersView, State,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// May this node's key sign `body` with `set` in force?
fn can_sign(shared: &Shared, body: &Body, set: &SignerSet) -> bool {
    requests::can_sign(&shared.params, shared.key.public(), body, set)
}

/// The signer set in force for the next network record.
fn signers_now(shared: &Shared) -> SignerSet {
    shared.view().state().signers.clone()
}

/// Tells subscribers that the request `id` appeared or changed.
fn announce(shared: &Shared, id: &RecordHash) {
    let ev = shared
        .requests
        .locked()
        .get(id)
        .map(|r| r.event(&shared.params, shared.key.public()));
    if let Some(ev) = ev {
        shared.emit(ev);
    }
}

/// Takes a proposal (from a peer, or made here). Returns the request's state as seen here;
/// `Err` says why it was refused (nothing is kept then, but a distribution a signer's node
/// rejects for good: see the recomputation below).
pub fn receive(
    shared: &Arc<Shared>,
    record: Record,
    proposer: String,
    from_peer: bool,
) -> Result<State, SignError> {
    let p = &shared.params;
    // The set in force at the record's seq (a request for a seq the chain has passed is
    // superseded; for the next seq, this is the set that must sign it).
    let (set, applied) = {
        let l = shared.view();
        let applied = l.state().is_applied(&record.hash());
        (l.state().signers_at(record.seq()).clone(), applied)
    };
    let sigs = requests::check_proposal(&record, p, &set, from_peer)?;
    let id = record.hash();
    if from_peer {
        came_back(shared, &record);
    }
    if applied {
        return Err(SignError::Refused(format!(
            "record {} is already final (a replay)",
            id.short()
        )));
    }
    let merged = {
        let mut book = shared.requests.locked();
        book.merge(&id, sigs.clone())
            .map(|grew| (grew, book.get(&id).map(|r| r.state.clone())))
    };
    if let Some((grew, state)) = merged {
        if grew {
            if from_peer {
                pass_on(shared, &record);
            }
            announce(shared, &id);
            finalize(shared, &id);
        }
        // This node rejected it and a peer still offers it: the rejection may not have
        // reached a signer that needs it to be free (see `Signed`) — it is said again.
        if from_peer
            && let Some(State::Rejected(reason)) = &state
            && shared.signed.locked().has_rejected(record.seq(), &id)
        {
            tell_rejection(shared, &id, own_rejection(shared, &id, reason.clone()));
        }
        if from_peer && matches!(state, Some(State::Pending)) && auto_decides(shared, &record) {
            reject_if_signed_elsewhere(shared, &record);
        }
        let state = shared.requests.locked().get(&id).map(|r| r.state.clone());
        return Ok(state.unwrap_or(State::Pending));
    }
    let now = shared.now();
    requests::check_timely(&record, p, now, from_peer)?;
    let req = SignRequest {
        id,
        body: record.body().clone(),
        sigs,
        proposer: proposer.clone(),
        created: now,
        expires: requests::expiry(record.body().time, now, p),
        state: State::Pending,
        rejections: Vec::new(),
        signers: set.clone(),
    };
    // Recomputed without holding the book (the chain comes first elsewhere).
    if let Err(reason) = requests::recompute(&shared.view(), p, record.body(), now) {
        // (Peers offer a request again every few seconds: each refusal is logged once.)
        // (Keyed without digits: a reason that names this clock's time would differ at
        // every offer.)
        let kind: String = reason.chars().filter(|c| !c.is_ascii_digit()).collect();
        if shared.refusals_told.locked().first(format!("{id} {kind}")) {
            shared.log(
                "warn",
                format!("signature request {} refused: {reason}", id.short()),
            );
        }
        // A signer's node that decides distributions by itself rejects, for good, one its
        // chain does not give: a signer who signed it then learns, once enough did, that it
        // can never complete, and may sign what its chain gives now (see `Signed`). One only
        // early by this node's clock (not `requests::rejectable`) is rejected only if this
        // node could never sign it in time anyway; else it is held, pending, and signed once
        // the clock gets there if the chain then gives it (`retry_unsigned`), and meanwhile
        // no earlier period is proposed for the seq (`RequestBook::later_proposal`).
        if from_peer && auto_decides(shared, &record) && can_sign(shared, record.body(), &set) {
            // (One this node signed is kept, never rejected: the rejections its peers send
            // tell this node when it is dead, and frees it to sign another for the seq.)
            let signed_here = shared.signed.locked().has_signed(record.seq(), &id);
            let for_good = !signed_here
                && (requests::rejectable(p, record.body(), now)
                    || never_in_time(shared, &record).is_some());
            if shared.requests.locked().insert(req).is_ok() && for_good {
                let why = requests::fit_reason(reason.clone());
                // (Held only to be rejected: if the rejection cannot be made, it is not kept —
                // a request left pending would be offered on to every peer.)
                if let Err(e) = reject(shared, &id, why) {
                    // (Signed here meanwhile — by the operator, or the tick — it stays.)
                    let signed_now = shared.signed.locked().has_signed(record.seq(), &id);
                    if !signed_now {
                        shared.requests.locked().forget(&id);
                    }
                    log_unrejected(shared, &id, &e);
                }
            }
        }
        return Err(SignError::Refused(reason));
    }
    let fresh = {
        let mut book = shared.requests.locked();
        let fresh = !book.contains(&id);
        if fresh {
            book.insert(req)?;
        }
        fresh
    };
    if !fresh {
        // It arrived meanwhile: merge into that one.
        return receive(shared, record, proposer, from_peer);
    }
    if from_peer {
        pass_on(shared, &record);
    }
    announce(shared, &id);
    // Fully determined by the chain, and the member allowed it: sign at once — or, if this
    // node signed another record for the seq that may still complete, reject it.
    if auto_decides(shared, &record)
        && can_sign(shared, record.body(), &signers_now(shared))
        && !(from_peer && reject_if_signed_elsewhere(shared, &record))
    {
        let _ = approve(shared, &id);
    }
    finalize(shared, &id);
    let state = shared.requests.locked().get(&id).map(|r| r.state.clone());
    Ok(state.unwrap_or(State::Pending))
}

/// Signs a request as this node's member decided, and sends the signature everywhere.
pub fn approve(shared: &Arc<Shared>, id: &RecordHash) -> Result<RequestView, SignError> {
    let body = shared.requests.locked().to_approve(
        id,
        shared.now(),
        &shared.params,
        shared.key.public(),
    )?;
    // Only content this node computed itself is signed: check again against the chain now.
    let now = shared.now();
    requests::recompute(&shared.view(), &shared.params, &body, now).map_err(SignError::Refused)?;
    let next = network_next(shared);
    let expires = shared
        .requests
        .locked()
        .get(id)
        .ok_or_else(|| SignError::Unknown(id.to_string()))?
        .expires;
    // Never two records for one network seq, never one it rejected: noted, durably, before
    // the signature exists. (What this node signed for the seq that can no longer complete
    // does not count: see `Signed`.)
    {
        let book = shared.requests.locked();
        let mut signed = shared.signed.locked();
        signed.prune(next);
        if signed.has_rejected(body.seq, id) {
            return Err(SignError::Refused(
                "this node rejected this request, and never signs what it rejected".into(),
            ));
        }
        if let Some((other, until)) =
            book.signed_elsewhere(&signed, body.seq, id, now, fallback(shared))
        {
            return Err(SignError::Refused(format!(
                "this node signed record {} for the network's seq {} already, and signs no \
                 other there while that one may still complete (for {} s more)",
                other.short(),
                body.seq,
                until - now
            )));
        }
        let until = requests::signed_until(body.time, expires, &shared.params);
        signed.note(body.seq, *id, until)?;
    }
    // The record is kept first: a node that restarts offers it again (see
    // `super::SIGNED_RECORDS_DIR`).
    let mine = crate::ledger::add_signature(&body, &[], &shared.key);
    super::write_signed_record(shared, &Record::new(body.clone(), mine))
        .and_then(|()| super::write_signed(shared))
        .map_err(|e| SignError::Refused(format!("cannot note the signature: {e}")))?;
    let record = {
        let mut book = shared.requests.locked();
        let held = book
            .get(id)
            .ok_or_else(|| SignError::Unknown(id.to_string()))?;
        let sigs = crate::ledger::add_signature(&body, &held.sigs, &shared.key);
        book.approved(id, sigs)?;
        book.get(id).map(SignRequest::record)
    };
    announce(shared, id);
    if let Some(record) = record {
        send_own(shared, record);
    }
    finalize(shared, id);
    view(shared, id)
}

/// Rejects a request with a reason, and tells every peer (the proposer among them).
pub fn reject(
    shared: &Arc<Shared>,
    id: &RecordHash,
    reason: String,
) -> Result<RequestView, SignError> {
    let seq = shared
        .requests
        .locked()
        .get(id)
        .map(|r| r.body.seq)
        .ok_or_else(|| SignError::Unknown(id.to_string()))?;
    // A promise never to sign it (see `Signed`), kept before anyone hears of it — and not
    // made for what this node signed.
    shared.signed.locked().reject(seq, *id)?;
    super::write_signed(shared)
        .map_err(|e| SignError::Refused(format!("cannot note the rejection: {e}")))?;
    let msg = own_rejection(shared, id, reason);
    shared
        .requests
        .locked()
        .reject(id, &shared.node_id, noted(&msg, shared.now()))?;
    announce(shared, id);
    let out = view(shared, id)?;
    tell_rejection(shared, id, msg);
    Ok(out)
}

/// A signed rejection as the book notes it, at `now`.
fn noted(msg: &RejectionMsg, now: u64) -> requests::Rejection {
    requests::Rejection {
        node_id: msg.node_id.clone(),
        reason: msg.reason.clone(),
        signature: msg.signature.clone(),
        noted: now,
    }
}

/// This node's rejection of `id` for `reason`, signed by its key.
fn own_rejection(shared: &Shared, id: &RecordHash, reason: String) -> RejectionMsg {
    let sig = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        shared
            .key
            .sign(&requests::rejection_message(id, &shared.node_id, &reason)),
    );
    RejectionMsg {
        node_id: shared.node_id.to_string(),
        reason,
        signature: sig,
    }
}

/// Sends this node's signed rejection of `id` on its way to every node.
fn tell_rejection(shared: &Arc<Shared>, id: &RecordHash, msg: RejectionMsg) {
    // To one peer, which passes it on to all of its own (see `receive_rejection`): the first
    // sender of a rejection is not the signer it names. With stems off, to every peer.
    let peers = match shared.stem_relay() {
        Some(relay) => vec![relay],
        None => shared.relay_candidates(),
    };
    send_rejection(shared, id, msg, peers);
}

/// Sends a rejection to `peers`; if none takes it, to every peer (so it is not lost).
fn send_rejection(shared: &Arc<Shared>, id: &RecordHash, msg: RejectionMsg, peers: Vec<String>) {
    let (s, id) = (shared.clone(), *id);
    shared.spawn_until_stop(async move {
        let path = format!("/v1/sign-requests/{id}/rejections");
        let mut taken = false;
        for addr in &peers {
            let r: Result<Value, _> = s.api.post(addr, &path, &msg).await;
            taken |= r.is_ok();
        }
        if !taken {
            for addr in s.relay_candidates().iter().filter(|a| !peers.contains(a)) {
                let _: Result<Value, _> = s.api.post(addr, &path, &msg).await;
            }
        }
    });
}

/// A peer's member rejected a request: note it (the proposer learns why). Only signers'
/// rejections count, each signer's once, whatever form its node id was written in.
pub fn receive_rejection(
    shared: &Arc<Shared>,
    id: &RecordHash,
    msg: RejectionMsg,
) -> Result<(), SignError> {
    let refused = |why: &str| SignError::Refused(why.to_string());
    let node =
        AccountId::from_canonical(&msg.node_id).map_err(|e| SignError::Invalid(e.to_string()))?;
    if msg.reason.len() > requests::MAX_REASON_BYTES {
        return Err(SignError::Invalid(format!(
            "reason longer than {} bytes",
            requests::MAX_REASON_BYTES
        )));
    }
    let key = shared
        .view()
        .key_of(&node)
        .ok_or_else(|| refused("unknown node"))?;
    let (body, set, signed_it) = shared
        .requests
        .locked()
        .get(id)
        .map(|r| {
            let signed_it = r
                .sigs
                .iter()
                .any(|s| s.key.as_ref().is_some_and(|k| k.0 == key.der()));
            (r.body.clone(), r.signers.clone(), signed_it)
        })
        .ok_or_else(|| SignError::Unknown(id.to_string()))?;
    if !requests::can_sign(&shared.params, &key, &body, &set) {
        return Err(refused("only signers' rejections are noted"));
    }
    // (A signer that signed it cannot reject it: such a rejection must not count toward
    // its death.)
    if signed_it {
        return Err(refused("that signer signed it"));
    }
    let sig = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &msg.signature)
        .map_err(|e| SignError::Invalid(e.to_string()))?;
    key.verify(&requests::rejection_message(id, &node, &msg.reason), &sig)
        .map_err(|_| refused("the rejection's signature does not verify"))?;
    let new = shared
        .requests
        .locked()
        .rejected_by(id, &node, noted(&msg, shared.now()))?;
    if new {
        // Passed on once to every peer, so it reaches every node though its signer sent it
        // to one.
        send_rejection(shared, id, msg.clone(), shared.relay_candidates());
        announce(shared, id);
        shared.log(
            "warn",
            format!(
                "signature request {} rejected by {}: {}",
                id.short(),
                node.short(),
                msg.reason.escape_debug()
            ),
        );
    }
    Ok(())
}

/// The rejections of request `id` this node gives a peer that offers it
/// ([`requests::RequestBook::to_pass_on`]).
pub fn to_pass_on(shared: &Shared, id: &RecordHash) -> Vec<RejectionMsg> {
    shared
        .requests
        .locked()
        .to_pass_on(id, &shared.node_id, shared.now())
        .into_iter()
        .map(|j| RejectionMsg {
            node_id: j.node_id,
            reason: j.reason,
            signature: j.signature,
        })
        .collect()
}

/// A peer took request `id` and answered with the rejections of it that it holds: each is
/// checked and noted as if sent (at most [`requests::MAX_REJECTIONS`] of one answer).
fn take_answer(shared: &Arc<Shared>, id: &RecordHash, answer: crate::api::Taken) {
    for msg in answer.rejections.into_iter().take(requests::MAX_REJECTIONS) {
        let known = shared
            .requests
            .locked()
            .get(id)
            .is_some_and(|r| r.rejections.iter().any(|j| j.node_id == msg.node_id));
        if !known && let Err(e) = receive_rejection(shared, id, msg) {
            tracing::debug!("a rejection of {} answered by a peer: {e}", id.short());
        }
    }
}

/// With a quorum of valid signatures, the record goes into the chain (and to every peer).
fn finalize(shared: &Arc<Shared>, id: &RecordHash) {
    let Some(record) = shared
        .requests
        .locked()
        .ready(id, shared.now(), &shared.params)
    else {
        return;
    };
    // Peers see none of it until it is out along its stem.
    let _hiding = shared.hide_from_peers();
    let result = shared.chain().ingest(record);
    match result {
        Ok(o) => {
            if shared.view().state().is_applied(id) {
                shared.requests.locked().finalized(id);
            }
            if o.applied.contains(id) {
                shared.log("info", format!("record {} is final", id.short()));
            }
            shared.announce_applied(&o.applied, false);
            shared.originated(&o.applied);
            announce(shared, id);
        }
        Err(e) => shared.log(
            "warn",
            format!(
                "request {} has a quorum but does not apply: {e}",
                id.short()
            ),
        ),
    }
}

/// Passes a request that was new here, or brought new signatures, on to every peer — as it
/// came (a signature this node holds back is not in it): a request or a signature sent to
/// one peer (see [`send_own`]) reaches every node at once, and its first sender to most of
/// them is that peer. Each node passes a version on once, so this ends.
fn pass_on(shared: &Arc<Shared>, record: &Record) {
    broadcast(shared, record.clone());
}

/// Sends a proposal (with the signatures gathered here) to every confirmed peer.
pub fn broadcast(shared: &Arc<Shared>, record: Record) {
    let s = shared.clone();
    shared.spawn_until_stop(async move {
        let shared = s;
        let (id, msg) = (
            record.hash(),
            Proposal {
                record: record.to_json(),
            },
        );
        let peers = shared.peers.locked().confirmed();
        let sends = peers.into_iter().map(|p| {
            let (shared, msg) = (shared.clone(), msg.clone());
            async move {
                let r: Result<crate::api::Taken, _> =
                    shared.api.post(&p.addr, "/v1/sign-requests", &msg).await;
                match r {
                    Ok(answer) => take_answer(&shared, &id, answer),
                    Err(e) => tracing::debug!("sign request to {}: {e}", p.addr),
                }
            }
        });
        futures::future::join_all(sends).await;
    });
}

/// How long this node holds back a request it added its proposal or signature to from its
/// own resends, waiting for a peer to send it back (as for a record's stem, the first node
/// to spread it should not be the one that signed it).
const OWN_REQUEST_EMBARGO: Duration = Duration::from_millis(crate::stem::OWN_EMBARGO_MIN_MS);

/// A request this node added to, held back from its own resends (see [`send_own`]).
pub struct HeldBack {
    since: std::time::Instant,
    /// Whether it carried this node's signature when it left (a proposal it did not sign
    /// is back in any copy; one it signed, in a copy with that signature).
    signed: bool,
}

/// Sends a request this node proposed or signed to one peer — its stem relay for the epoch,
/// which holds and spreads it like every node that holds a request — and holds it back from
/// this node's own resends until a peer sends it back with this node's signature, or for
/// [`OWN_REQUEST_EMBARGO`]. With stems off or no peer, to every peer at once.
fn send_own(shared: &Arc<Shared>, record: Record) {
    let Some(relay) = shared.stem_relay() else {
        broadcast(shared, record);
        return;
    };
    shared.held_back.locked().insert(
        record.hash(),
        HeldBack {
            since: std::time::Instant::now(),
            signed: signed_by(&record, shared),
        },
    );
    send_to(shared, relay, record);
}

/// Sends a request to one peer; if it does not take it, to every peer.
fn send_to(shared: &Arc<Shared>, addr: String, record: Record) {
    let s = shared.clone();
    shared.spawn_until_stop(async move {
        let msg = Proposal {
            record: record.to_json(),
        };
        let sent: Result<crate::api::Taken, _> = s.api.post(&addr, "/v1/sign-requests", &msg).await;
        match sent {
            Ok(answer) => take_answer(&s, &record.hash(), answer),
            Err(e) => {
                tracing::debug!("sign request to {addr}: {e}; sending it to every peer");
                s.held_back.locked().remove(&record.hash());
                broadcast(&s, record);
            }
        }
    });
}

/// Does `record` carry this node's signature?
fn signed_by(record: &Record, shared: &Shared) -> bool {
    let der = shared.key.public().der();
    record
        .sigs()
        .iter()
        .any(|s| s.key.as_ref().is_some_and(|k| k.0 == der))
}

/// A peer sent `record` (a request): if this node held it back, and the copy carries what
/// this node added, it is out.
fn came_back(shared: &Shared, record: &Record) {
    let mut held = shared.held_back.locked();
    let id = record.hash();
    if held
        .get(&id)
        .is_some_and(|h| !h.signed || signed_by(record, shared))
    {
        held.remove(&id);
    }
}

/// Which of the `open` requests this node's resends leave out now: those it added to that no
/// peer has sent back yet, within their embargo. Forgets the rest.
fn own_held_back(shared: &Shared, open: &[Record]) -> std::collections::BTreeSet<RecordHash> {
    let mut held = shared.held_back.locked();
    held.retain(|id, h| {
        open.iter().any(|r| r.hash() == *id) && h.since.elapsed() < OWN_REQUEST_EMBARGO
    });
    held.keys().copied().collect()
}

/// The open requests this node gives a peer that asks (`GET /v1/sign-requests`), as its own
/// resends carry them: those holding what it added that no peer has sent back yet are left
/// out (the first to show a signature should not be its signer). The newest first, at most
/// [`crate::api::MAX_OPEN_REQUESTS_SERVED`] and [`crate::api::MAX_OPEN_REQUESTS_BYTES`].
pub fn open_for_peers(shared: &Shared) -> Vec<Record> {
    let next = network_next(shared);
    let open =
        shared
            .requests
            .locked()
            .open_records(shared.key.public().der(), next, fallback(shared));
    let held_back = own_held_back(shared, &open);
    let mut bytes = 0;
    open.into_iter()
        .filter(|r| !held_back.contains(&r.hash()))
        .take(crate::api::MAX_OPEN_REQUESTS_SERVED)
        .take_while(|r| {
            bytes += r.to_bytes().len();
            bytes <= crate::api::MAX_OPEN_REQUESTS_BYTES
        })
        .collect()
}

/// Requests new to this node taken from one pull, at most: each is recomputed from the chain.
const MAX_NEW_PER_PULL: usize = 8;

/// Takes the open requests of the peer at `addr` (`GET /v1/sign-requests`) as if it had
/// sent them: a node that nobody can call — behind a NAT, or hidden — learns of the requests
/// proposed elsewhere only so. Each sync round asks one peer.
pub async fn pull(shared: &Arc<Shared>, addr: &str) {
    let open: Result<crate::api::OpenRequests, _> = shared.api.get(addr, "/v1/sign-requests").await;
    let Ok(open) = open else { return };
    let (s, handle) = (shared.clone(), tokio::runtime::Handle::current());
    let _ = shared
        .tasks
        .spawn_blocking(move || {
            let _guard = handle.enter();
            let (mut seen, mut new) = (std::collections::BTreeSet::new(), 0);
            for value in open
                .records
                .into_iter()
                .take(crate::api::MAX_OPEN_REQUESTS_SERVED)
            {
                match Record::from_json(value) {
                    Ok(r) => {
                        if !seen.insert(r.hash()) {
                            continue;
                        }
                        if !s.requests.locked().contains(&r.hash()) {
                            new += 1;
                            if new > MAX_NEW_PER_PULL {
                                return;
                            }
                        }
                        let _ = receive(&s, r, String::new(), true);
                    }
                    Err(e) => {
                        tracing::debug!("open requests of a peer: {e}");
                        return;
                    }
                }
            }
        })
        .await;
}

/// `cod sign show`.
pub fn view(shared: &Shared, id: &RecordHash) -> Result<RequestView, SignError> {
    shared
        .requests
        .locked()
        .get(id)
        .map(|r| r.view(&shared.params, shared.key.public()))
        .ok_or_else(|| SignError::Unknown(id.to_string()))
}

/// `cod sign list`.
pub fn list(shared: &Shared) -> RequestList {
    shared
        .requests
        .locked()
        .list(&shared.params, shared.key.public())
}

/// A request by its id or a unique prefix of it.
pub fn find(shared: &Shared, prefix: &str) -> Result<RecordHash, SignError> {
    shared.requests.locked().find(prefix)
}

/// Signature requests waiting for this node's member.
pub fn waiting(shared: &Shared) -> usize {
    shared
        .requests
        .locked()
        .waiting_for(&shared.params, shared.key.public())
}

/// A ledger's refusal to propose, for the member.
fn refused(e: crate::ledger::RecordError) -> SignError {
    SignError::Refused(requests::explain(&e))
}

/// Proposes (and, as this member, signs) an issuance for attested backing figures.
pub fn propose_issue(
    shared: &Arc<Shared>,
    attest: std::collections::BTreeMap<String, u64>,
    work: std::collections::BTreeMap<AccountId, std::collections::BTreeMap<String, u64>>,
) -> Result<RequestView, SignError> {
    let body = shared
        .view()
        .propose_issue(attest, work, shared.now())
        .map_err(refused)?;
    propose_signed(shared, body)
}

/// Proposes (and, as this member, signs) a change of membership.
pub fn propose_members(
    shared: &Arc<Shared>,
    admit: Vec<AccountId>,
    remove: Vec<AccountId>,
) -> Result<RequestView, SignError> {
    let body = shared
        .view()
        .propose_members(admit, remove, shared.now())
        .map_err(refused)?;
    propose_signed(shared, body)
}

/// Holds a proposal made here, signs it as this member, and sends it out. Only signers
/// propose: other nodes refuse a proposal that carries no signer's signature (so nobody can
/// fill their request tables), and a proposal nobody would hold would wait in vain.
fn propose_signed(shared: &Arc<Shared>, body: Body) -> Result<RequestView, SignError> {
    let set = signers_now(shared);
    if !can_sign(shared, &body, &set) {
        let signers: Vec<String> = set.keys.iter().map(|k| k.short()).collect();
        return Err(SignError::NotSigner(format!(
            "this node's key is not in the signer set in force ({} of them: {}; quorum {}): \
             only a signer can propose this, so ask one of them",
            signers.len(),
            signers.join(", "),
            set.quorum
        )));
    }
    let record = Record::new(body, Vec::new());
    let id = record.hash();
    receive(shared, record, shared.node_id.to_string(), false)?;
    approve(shared, &id)
}

/// Proposes handing the ledger over to cod `to`, as a request this member signs.
pub fn propose_handover(
    shared: &Arc<Shared>,
    to: &str,
    version: Option<String>,
    rules: Option<u32>,
) -> Result<RequestView, SignError> {
    let to: crate::ids::CodId = to
        .trim()
        .parse()
        .map_err(|e| SignError::Invalid(format!("{to:?}: {e}")))?;
    let version = match version {
        Some(v) => v,
        None => shared
            .offers
            .locked()
            .get(&to.to_string())
            .map(|o| o.cod_version.clone())
            .ok_or_else(|| {
                SignError::Invalid(
                    "no peer runs that cod id, so its version is unknown here: give --version"
                        .into(),
                )
            })?,
    };
    let h = Handover {
        rules: rules.unwrap_or(crate::ledger::RULES_VERSION + 1),
        to,
        version,
    };
    let body = shared
        .view()
        .propose_handover(h, shared.now())
        .map_err(refused)?;
    propose_signed(shared, body)
}

/// `cod signers`: the signer set in force, and com.ini's (the ledger's first).
pub fn signers(shared: &Shared) -> SignersView {
    SignersView::new(&signers_now(shared), &shared.params, shared.key.public())
}

/// Proposes the set in force with `add` added, `remove` removed and `quorum` (default: the
/// present one), as a `signers` record this member signs.
pub fn propose_signer_change(
    shared: &Arc<Shared>,
    add: &[String],
    remove: &[String],
    quorum: Option<u64>,
) -> Result<RequestView, SignError> {
    let parse = |list: &[String]| -> Result<Vec<crate::ids::Fingerprint>, SignError> {
        list.iter()
            .map(|f| {
                f.trim()
                    .parse()
                    .map_err(|e| SignError::Invalid(format!("{f:?}: {e}")))
            })
            .collect()
    };
    let (add, remove) = (parse(add)?, parse(remove)?);
    let old = signers_now(shared);
    if let Some(k) = add.iter().find(|k| old.contains(k)) {
        return Err(SignError::Invalid(format!(
            "{} is a signer already",
            k.short()
        )));
    }
    if let Some(k) = remove.iter().find(|k| !old.contains(k)) {
        return Err(SignError::Invalid(format!("{} is not a signer", k.short())));
    }
    let mut keys: Vec<_> = old
        .keys
        .iter()
        .filter(|k| !remove.contains(k))
        .chain(&add)
        .copied()
        .collect();
    keys.sort();
    keys.dedup();
    let set = SignerSet {
        quorum: quorum.unwrap_or(old.quorum),
        keys,
    };
    rules::check_signer_set(&set).map_err(|_| {
        SignError::Invalid(format!(
            "a signer set needs 1 to {} keys and 1 <= quorum <= keys; this one has {} keys and quorum {}",
            crate::ledger::record::MAX_SIGS,
            set.keys.len(),
            set.quorum
        ))
    })?;
    if set == old {
        return Err(SignError::Invalid(
            "that is the set in force already".into(),
        ));
    }
    let body = shared
        .view()
        .propose_signers(set, shared.now())
        .map_err(refused)?;
    propose_signed(shared, body)
}

/// Proposes a special distribution now (only where com.ini allows it).
pub fn propose_special(shared: &Arc<Shared>) -> Result<RequestView, SignError> {
    if !shared.params.com.distribution.special_by_quorum {
        return Err(SignError::Refused(
            "com.ini does not allow special distributions (special = never)".into(),
        ));
    }
    let t = shared.now();
    let body = shared
        .view()
        .propose_distribution(shared.params.com.period_of(t), true, t)
        .map_err(refused)?;
    propose_signed(shared, body)
}

/// Makes an expired, superseded or rejected request again from the chain as it is now, as a
/// new request this member signs: the same backing figures for an issuance, the same period
/// for a distribution.
pub fn repropose(shared: &Arc<Shared>, id: &RecordHash) -> Result<RequestView, SignError> {
    let (state, body) = {
        let book = shared.requests.locked();
        let r = book
            .get(id)
            .ok_or_else(|| SignError::Unknown(id.to_string()))?;
        (r.state.clone(), r.body.clone())
    };
    if state.is_open() || state == State::Final {
        return Err(SignError::Closed(format!(
            "the request is {}: nothing to propose again",
            state.name()
        )));
    }
    let t = shared.now();
    let fresh = {
        let l = shared.view();
        match &body.content {
            Content::Issue(i) => l.propose_issue(i.attest.clone(), i.work.clone(), t),
            Content::Distribute(Distribute {
                handover: Some(h), ..
            }) => l.propose_handover(h.clone(), t),
            Content::Distribute(d) if d.special => {
                l.propose_distribution(shared.params.com.period_of(t), true, t)
            }
            Content::Distribute(d) => {
                if l.state().last_period.is_some_and(|p| p >= d.period) {
                    return Err(SignError::Closed(format!(
                        "period {} is distributed already",
                        d.period
                    )));
                }
                // Dated now, so it is a new request with a session of its own.
                l.propose_distribution(d.period, false, t)
            }
            Content::Signers(set) => l.propose_signers(set.clone(), t),
            Content::Members(m) => l.propose_members(m.admit.clone(), m.remove.clone(), t),
            Content::Transfer(_) => {
                return Err(SignError::Refused(
                    "transfers are not signed by a quorum".into(),
                ));
            }
        }
        .map_err(refused)?
    };
    propose_signed(shared, fresh)
}

/// Holds again, at start, the records this node signed whose promise still holds (see
/// `super::SIGNED_RECORDS_DIR`): as its own signed requests, offered to its peers until they
/// are final, superseded and dead, or expired — their answers carry the rejections that
/// free this node to sign another record for the seq.
pub fn restore(shared: &Arc<Shared>) {
    let now = shared.now();
    let next = network_next(shared);
    let mut held = 0;
    for record in super::read_signed_records(shared, now) {
        if record.seq() < next {
            continue;
        }
        let set = shared.view().state().signers_at(record.seq()).clone();
        let Ok(sigs) = requests::check_proposal(&record, &shared.params, &set, false) else {
            continue;
        };
        let req = SignRequest {
            id: record.hash(),
            body: record.body().clone(),
            sigs,
            proposer: String::new(),
            created: now,
            expires: requests::expiry(record.body().time, now, &shared.params),
            state: State::Approved,
            rejections: Vec::new(),
            signers: set,
        };
        if shared.requests.locked().insert(req).is_ok() {
            held += 1;
        }
    }
    if held > 0 {
        shared.log(
            "info",
            format!(
                "{held} records this node signed are held again, offered to its peers until \
                 they complete or are known dead"
            ),
        );
    }
}

/// Period ends: every signer's node proposes the distribution its chain gives (honest nodes
/// with the same records propose the same record, so their signatures add up). Also expires
/// old requests, marks those the chain moved past, and re-sends open ones for peers that
/// came late.
pub async fn run(shared: Arc<Shared>) {
    let mut tick = 0u64;
    super::every(&shared.shutdown, Duration::from_secs(1), || {
        tick += 1;
        let (shared, resend) = (shared.clone(), tick.is_multiple_of(5));
        async move {
            let t = shared.now();
            let expired = shared.requests.locked().expire(t);
            for id in &expired {
                announce(&shared, id);
            }
            // Proposing computes over the whole chain: off the async threads.
            let (s2, handle) = (shared.clone(), tokio::runtime::Handle::current());
            let _ = shared
                .tasks
                .spawn_blocking(move || {
                    let _guard = handle.enter();
                    mark_superseded(&s2);
                    if !may_sign(&s2, t) {
                        return;
                    }
                    if resend {
                        check_pending(&s2, t);
                    }
                    settle(&s2, t)
                })
                .await;
            if resend {
                let next = network_next(&shared);
                let open = shared.requests.locked().open_records(
                    shared.key.public().der(),
                    next,
                    fallback(&shared),
                );
                let held_back = own_held_back(&shared, &open);
                for r in open {
                    if !held_back.contains(&r.hash()) {
                        broadcast(&shared, r);
                    }
                }
            }
        }
    })
    .await
}

/// How long a node that has compared its chain with no peer since it started waits, without
/// a confirmed peer, before it proposes and signs on its own (see [`may_sign`]).
const ALONE_BEFORE_SIGNING_SECS: u64 = 30;

/// Whether this node proposes its periods' distributions and signs (or rejects) others'
/// on its own yet: once it has compared its chain with a peer's since it started, or after
/// [`ALONE_BEFORE_SIGNING_SECS`] with no confirmed peer (a lone first node). A signer that
/// starts from a stale or empty store — a backup restored, a second machine, a node away for
/// long — would otherwise sign, within a second, the checkpoint of a period its peers
/// distributed long ago, at a network seq they decided: two such signatures make a record
/// that takes that seq from the real chain whenever it wins by the lower hash, undoing all
/// that followed (found by the tests' funding, signed beside running signers). A member
/// who signs by hand decides for themself.
fn may_sign(shared: &Shared, t: u64) -> bool {
    shared.synced.load(std::sync::atomic::Ordering::Relaxed)
        || (shared.peers.locked().confirmed().is_empty()
            && t.saturating_sub(shared.started) >= ALONE_BEFORE_SIGNING_SECS)
}

/// Marks the open requests whose record the chain holds as final, and those the chain has
/// moved past as superseded (saying why).
fn mark_superseded(shared: &Shared) {
    let view = shared.view();
    let done = shared.requests.locked().final_on_chain(&view);
    for id in done {
        announce(shared, &id);
    }
    let gone = shared.requests.locked().supersede(&view);
    for (id, why) in gone {
        announce(shared, &id);
        shared.log(
            "warn",
            format!("signature request {} is superseded: {why}", id.short()),
        );
    }
}

/// Signs, once it may (see [`requests::Signed`]), an open request for the period's
/// distribution that the chain still gives — this node's own proposal or a peer's — left
/// unsigned while another record this node signed for the seq could still complete. (Once
/// one is signed, the rest conflict with it.)
fn retry_unsigned(shared: &Arc<Shared>, period: u64, body: &Body, t: u64) {
    if !shared.auto_sign() {
        return;
    }
    let waiting = shared.requests.locked().unsigned(period, body);
    for id in waiting {
        // (Checked here first: `approve` recomputes the distribution, too much for every tick.)
        let conflict = {
            let book = shared.requests.locked();
            book.signed_elsewhere(&shared.signed.locked(), body.seq, &id, t, fallback(shared))
        };
        // (`approve` sends it, signed.)
        if conflict.is_none() && approve(shared, &id).is_ok() {
            return;
        }
    }
}

/// Whether com.ini lets the deployer stand in for a signer (one more possible signature).
fn fallback(shared: &Shared) -> bool {
    !matches!(
        shared.params.com.signers.fallback,
        crate::config::com::Fallback::None
    )
}

/// The network chain's next seq.
fn network_next(shared: &Shared) -> u64 {
    shared
        .view()
        .state()
        .account(&shared.params.network)
        .map_or(0, |a| a.next_seq())
}

/// Whether this node decides `record` by itself: a regular distribution for the network's
/// next seq (fully determined by the chain), and its member lets it sign those.
fn auto_decides(shared: &Shared, record: &Record) -> bool {
    let determined = matches!(&record.body().content, Content::Distribute(d) if !d.special);
    determined
        && shared.auto_sign()
        && record.seq() == network_next(shared)
        && may_sign(shared, shared.now())
}

/// [`requests::RequestBook::never_in_time`] for this node.
fn never_in_time(shared: &Shared, record: &Record) -> Option<RecordHash> {
    let book = shared.requests.locked();
    let signed = shared.signed.locked();
    book.never_in_time(
        &signed,
        &shared.node_id.to_string(),
        record,
        shared.now(),
        &shared.params,
        fallback(shared),
    )
}

/// Rejects, out loud, a peer's request this node could never sign in time
/// ([`never_in_time`]), so that of the records signers split their signatures over, those
/// that cannot complete die and free their signers (found by the fault tests: three signers,
/// each holding its own signed proposal, waited for one another until their 20-minute
/// promises ran out). Whether it did.
fn reject_if_signed_elsewhere(shared: &Arc<Shared>, record: &Record) -> bool {
    let Some(other) = never_in_time(shared, record) else {
        return false;
    };
    let reason = format!(
        "this signer signed record {} for the network's seq {} already",
        other.short(),
        record.seq()
    );
    match reject(shared, &record.hash(), reason) {
        Ok(_) => true,
        Err(e) => {
            log_unrejected(shared, &record.hash(), &e);
            false
        }
    }
}

/// Rejects, out loud, a request for `period`'s distribution that records reaching this node
/// since made stale, unless this node signed it: as for a proposal its chain did not give
/// when it came (`receive`), so that signers who signed it learn, once enough rejected it,
/// that it can never complete, instead of being held by it for the promise's 20 minutes.
fn reject_stale(shared: &Arc<Shared>, id: &RecordHash, period: u64) {
    if !shared.auto_sign() {
        return;
    }
    let Some((body, set)) = shared
        .requests
        .locked()
        .get(id)
        .map(|r| (r.body.clone(), r.signers.clone()))
    else {
        return;
    };
    if !can_sign(shared, &body, &set) || shared.signed.locked().has_signed(body.seq, id) {
        return;
    }
    let reason = format!(
        "records of period {period} reached this signer since: its chain gives another distribution"
    );
    if let Err(e) = reject(shared, id, reason) {
        log_unrejected(shared, id, &e);
    }
}

/// Decides, again, every pending distribution for the network's next seq — of any period, not
/// only the one `settle` proposes — that this node may sign; each is recomputed from the
/// chain, so this runs every few seconds, not every tick:
/// - one this node rejected before it restarted (the promise is in `signed.json`, the book
///   was not kept) is rejected again, out loud: its signer may be waiting for that rejection;
/// - one it can no longer sign in time — it signed another record for the seq since the
///   request came, whose promise outlasts the request's session (`never_in_time`, checked
///   when a request comes, but the promises made later count too: found by the fault runs,
///   three signers a period or two apart each held the others' early proposals pending
///   while signing new ones of their own, and no record reached the rejections that free
///   its signer) — is rejected;
/// - one its chain no longer gives (records of its period reached this node after it was
///   held) is rejected, unless only early by this node's clock (`requests::rejectable`):
///   it would otherwise stay pending here for its whole session, and a signer that signed
///   it with it (found by the fault runs: two signers each held the other's stale proposal
///   for an earlier period, and neither could sign again for an hour);
/// - and one its chain gives, whose period has ended by this clock, that another signer
///   signed, is signed if nothing this node signed for the seq may still complete
///   ([`sign_left_behind`]).
fn check_pending(shared: &Arc<Shared>, t: u64) {
    if !shared.auto_sign() {
        return;
    }
    let seq = network_next(shared);
    let set = shared.view().state().signers_at(seq).clone();
    let pending = shared.requests.locked().pending_distributions(seq);
    let mut signable = Vec::new();
    for (id, body) in pending {
        if !can_sign(shared, &body, &set) || shared.signed.locked().has_signed(seq, &id) {
            continue;
        }
        if shared.signed.locked().has_rejected(seq, &id) {
            let why = "this signer rejected this request already".to_string();
            if let Err(e) = reject(shared, &id, why) {
                log_unrejected(shared, &id, &e);
            }
            continue;
        }
        // (A record's hash is its body's: the request's signatures do not matter here.)
        if reject_if_signed_elsewhere(shared, &Record::new(body.clone(), Vec::new())) {
            continue;
        }
        if !requests::rejectable(&shared.params, &body, t) {
            continue;
        }
        let Err(why) = requests::recompute(&shared.view(), &shared.params, &body, t) else {
            let book = shared.requests.locked();
            let signed = shared.signed.locked();
            // (Not one this node cannot sign yet: `approve` would recompute it again.)
            let free = book
                .signed_elsewhere(&signed, seq, &id, t, fallback(shared))
                .is_none();
            let others_signed = book.get(&id).is_some_and(|r| !r.sigs.is_empty());
            if free && others_signed && !book.dead(&id, fallback(shared)) {
                signable.push(id);
            }
            continue;
        };
        let why = requests::fit_reason(format!(
            "this node's chain gives another distribution now: {why}"
        ));
        if let Err(e) = reject(shared, &id, why) {
            log_unrejected(shared, &id, &e);
        }
    }
    sign_one(shared, signable);
}

/// Signs a pending distribution for the network's next seq that another signer signed, that
/// this node's chain gives and whose period has ended by its clock — one held as early when
/// it came, whose period this clock has since passed (a jump, a pause). Otherwise such a
/// request is signed only while its period is the one `settle` proposes
/// (`retry_unsigned`); past that it stayed pending for good, and the signer that signed it
/// was bound to it for its promise's length (found by a review of the stall of chaos seed
/// 8624864367552408275: the third signer held both others' signed proposals early, its
/// clock jumped past both periods, and it proposed its own, which both rejected, again and
/// again). `settle` calls this before proposing: a signature here completes a record
/// another signer is bound to. Whether it signed one.
fn sign_left_behind(shared: &Arc<Shared>, t: u64) -> bool {
    // (A member who signs by hand decides this too.)
    if !shared.auto_sign() {
        return false;
    }
    let seq = network_next(shared);
    let set = shared.view().state().signers_at(seq).clone();
    let pending = shared.requests.locked().pending_distributions(seq);
    let signable = pending
        .into_iter()
        .filter(|(id, body)| {
            let book = shared.requests.locked();
            let signed = shared.signed.locked();
            book.get(id).is_some_and(|r| !r.sigs.is_empty())
                && !book.dead(id, fallback(shared))
                && can_sign(shared, body, &set)
                && !signed.has_signed(seq, id)
                && !signed.has_rejected(seq, id)
                && book
                    .signed_elsewhere(&signed, seq, id, t, fallback(shared))
                    .is_none()
        })
        .filter(|(_, body)| requests::recompute(&shared.view(), &shared.params, body, t).is_ok())
        .map(|(id, _)| id)
        .collect();
    sign_one(shared, signable)
}

/// Signs the first of `ids` this node may sign (`approve` refuses while another record this
/// node signed for the seq may complete). Whether it signed one.
fn sign_one(shared: &Arc<Shared>, ids: Vec<RecordHash>) -> bool {
    ids.into_iter().any(|id| approve(shared, &id).is_ok())
}

/// A request this node would reject by itself but cannot (its promises for the seq are
/// full, its data directory cannot be written): said, since the request then stays open
/// at signers that wait for this rejection.
fn log_unrejected(shared: &Shared, id: &RecordHash, e: &SignError) {
    shared.log(
        "warn",
        format!(
            "signature request {} could not be rejected: {e}",
            id.short()
        ),
    );
}

/// How many times, at most, a dead distribution is made again a second later in one pass.
const MAX_REDATED: usize = 16;

/// Proposes the distribution of the period that ended, if it is due, this node can sign it,
/// and no session for it is running (see [`Session`]).
/// Logs why `settle` made no proposal — once, not at every tick while the reason holds.
fn settle_failed(shared: &Shared, why: String) {
    let mut said = shared.settle_error.locked();
    if said.as_deref() != Some(why.as_str()) {
        shared.log("warn", why.clone());
        *said = Some(why);
    }
}

fn settle(shared: &Arc<Shared>, t: u64) {
    let com = &shared.params.com;
    if t < com.epoch + com.settlement_period {
        return;
    }
    let target = com.period_of(t) - 1;
    let body = {
        let l = shared.view();
        if l.state().last_period.is_some_and(|last| last >= target) {
            return;
        }
        // The deployer only steps in once the distribution is overdue.
        let not_before = requests::fallback_not_before(
            &shared.params,
            shared.key.public(),
            &l.state().signers,
            target,
        );
        if not_before.is_some_and(|nb| t < nb) {
            return;
        }
        match l.propose_distribution(target, false, not_before.unwrap_or(0)) {
            // A period in which nothing happened and nothing is to be paid needs no record:
            // its pool stays with the network for the next one.
            Ok(body) if l.settles_nothing(&body) => {
                tracing::debug!("period {target} settles nothing: no distribution");
                return;
            }
            Ok(body) => body,
            Err(e) => {
                return settle_failed(
                    shared,
                    format!("period {target}'s distribution cannot be computed here: {e}"),
                );
            }
        }
    };
    if !can_sign(shared, &body, &signers_now(shared)) {
        return;
    }
    let session = shared
        .requests
        .locked()
        .session(target, &body, t, fallback(shared));
    let Session::Propose { stale } = session else {
        tracing::debug!("period {target}'s distribution: a session for it runs");
        retry_unsigned(shared, target, &body, t);
        return;
    };
    for id in &stale {
        announce(shared, id);
        shared.log(
            "info",
            format!(
                "signature request {} is superseded: records of period {target} came since",
                id.short()
            ),
        );
        reject_stale(shared, id, target);
    }
    if let Some(later) =
        shared
            .requests
            .locked()
            .later_proposal(target, body.seq, t, fallback(shared))
    {
        tracing::debug!(
            "period {target}'s distribution waits: request {} for a later period may be signed here once this clock gets there",
            later.short()
        );
        return;
    }
    // A peer's proposal left behind by this clock, that another signer is bound to: signed
    // rather than a new one of this node's own, which that signer would reject.
    if sign_left_behind(shared, t) {
        return;
    }
    let mut record = Record::new(body, Vec::new());
    let ran_out = requests::expiry(record.body().time, t, &shared.params) <= t;
    let retry = ran_out || shared.requests.locked().contains(&record.hash());
    // A retry (the period's first proposal ran out or died) is made on one tick in three, at
    // random: signers whose attempts died together would otherwise propose again together,
    // each sign its own, reject the others' and die again — found by the fault runs, two
    // signers re-proposing in step for minutes. Now one usually proposes first, and the
    // others sign its record (`receive`) instead of proposing their own.
    if retry && !rand::Rng::gen_ratio(&mut rand::thread_rng(), 1, 3) {
        return;
    }
    if retry {
        // This very record's session ran out (or would have, dated at the period's end: the
        // node comes long after it): a new one, dated at the start of the session window
        // `t` falls in — the same time on every signer's node, so signers whose chains
        // agree propose the same record — so that a distribution never stalls for a
        // session that ran out.
        let window = requests::session_window(record.body().time, t, &shared.params);
        let dated = shared.view().propose_distribution(target, false, window);
        match dated {
            Ok(b) => record = Record::new(b, Vec::new()),
            Err(_) => return,
        }
    }
    // The same record, rejected by so many signers that it cannot complete (they rejected it
    // while their chains lacked some of its records): made again a second later — the same
    // new record on every node that knows it dead — so the period is not left to wait.
    for _ in 0..MAX_REDATED {
        let dead = {
            let book = shared.requests.locked();
            book.contains(&record.hash()) && book.dead(&record.hash(), fallback(shared))
        };
        if !dead {
            break;
        }
        let later = record.body().time.saturating_add(1);
        match shared.view().propose_distribution(target, false, later) {
            Ok(b) => record = Record::new(b, Vec::new()),
            Err(_) => return,
        }
    }
    let id = record.hash();
    if shared.requests.locked().contains(&id) {
        return;
    }
    let made = receive(shared, record.clone(), shared.node_id.to_string(), false);
    if let Err(e) = &made {
        settle_failed(
            shared,
            format!("period {target}'s distribution is not proposed: {e}"),
        );
    }
    if made.is_ok() {
        // (Unsigned — this node signed another record for the seq, which may still complete
        // — it goes nowhere: the other signers propose what their chains give themselves.)
        let held = shared
            .requests
            .locked()
            .get(&id)
            .filter(|r| r.state == State::Approved)
            .map(SignRequest::record);
        if let Some(r) = held {
            send_own(shared, r);
        }
    }
}
