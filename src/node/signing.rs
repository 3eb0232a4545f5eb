//! Signature requests for issuance and distribution records (MISSION.md "Issuance",
//! "Distribution"; DESIGN.md §5): a proposal travels to every node; each signer's node
//! recomputes it from its own chain and refuses a mismatch with the reason; a match waits
//! for the member (or is signed at once for records fully determined by the chain, when
//! node.ini allows); signatures are merged wherever the request is held, and any node that
//! sees a quorum makes the record final. Requests expire (com.ini `request_ttl`).

use super::Shared;
use crate::api::{Proposal, RejectionMsg};
use crate::control::Event;
use crate::ids::{AccountId, RecordHash};
use crate::ledger::{
    Body, Content, Distribute, Handover, Record, RecordError, Sig, SignerSet, rules,
};
use crate::lock::Locked;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Most requests held at once (old, settled ones go first).
pub const MAX_REQUESTS: usize = 256;
/// A proposal dated further than this from the node's clock is refused.
pub const MAX_CLOCK_SKEW: u64 = 600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum State {
    /// Matches this node's chain; waits for the member's decision (signers only).
    Pending,
    /// This node signed it.
    Approved,
    /// The member rejected it.
    Rejected(String),
    /// A quorum signed it; it is in the chain.
    Final,
    /// Its session ran out before a quorum signed it (`cod sign repropose` opens a new one).
    Expired,
    /// The chain moved on: another record took its place, so nobody can sign it any more
    /// (`cod sign repropose` makes it again from the chain as it is now).
    Superseded(String),
}

impl State {
    /// Still gathering signatures.
    pub fn is_open(&self) -> bool {
        matches!(self, State::Pending | State::Approved)
    }

    pub fn name(&self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected(_) => "rejected",
            State::Final => "final",
            State::Expired => "expired",
            State::Superseded(_) => "superseded",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    pub node_id: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct SignRequest {
    pub id: RecordHash,
    pub body: Body,
    pub sigs: Vec<Sig>,
    pub proposer: String,
    pub created: u64,
    pub expires: u64,
    pub state: State,
    pub rejections: Vec<Rejection>,
    /// The signer set in force for the record (the network chain's when the request came):
    /// if the chain moves on, the request is superseded, so this stays its set.
    pub signers: SignerSet,
}

/// Longest rejection reason accepted, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// What a node signs to reject a request: the request, the rejecting node and the reason, so
/// a signed rejection counts once, for that node and that request only.
pub fn rejection_message(id: &RecordHash, node: &AccountId, reason: &str) -> Vec<u8> {
    let mut m = b"cod/reject/v2\0".to_vec();
    m.extend_from_slice(id.as_bytes());
    m.extend_from_slice(node.as_bytes());
    m.extend_from_slice(reason.as_bytes());
    m
}

impl SignRequest {
    /// Valid signatures counted toward the quorum.
    pub fn signed_by(&self, shared: &Shared) -> usize {
        let r = Record::new(self.body.clone(), Vec::new());
        self.sigs
            .iter()
            .filter(|s| rules::check_signer_sig(&r, s, &shared.params, &self.signers).is_ok())
            .count()
    }

    pub fn quorum(&self) -> usize {
        self.signers.quorum as usize
    }

    pub fn summary(&self, shared: &Shared) -> String {
        let com = &shared.params.com;
        let fmt =
            |asset: &str, v: u64| com.assets.get(asset).map_or(v.to_string(), |a| a.format(v));
        match &self.body.content {
            Content::Issue(i) => {
                let attest: Vec<String> =
                    i.attest.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let amounts: Vec<String> = i
                    .amounts
                    .iter()
                    .map(|(k, v)| format!("{} {k}", fmt(k, *v)))
                    .collect();
                format!(
                    "issue {} backed by {}",
                    amounts.join(", "),
                    attest.join(", ")
                )
            }
            Content::Distribute(d) => {
                let mut total = std::collections::BTreeMap::<&str, u64>::new();
                for o in &d.payouts {
                    *total.entry(&o.asset).or_default() += o.amount;
                }
                let t: Vec<String> = total
                    .iter()
                    .map(|(k, v)| format!("{} {k}", fmt(k, *v)))
                    .collect();
                format!(
                    "{}{}distribution for period {}: {} to {} accounts, checkpoint of {} accounts",
                    d.handover.as_ref().map_or(String::new(), |h| format!(
                        "HANDOVER to cod {} (version {}, ledger rules {}): ",
                        h.to,
                        h.version.escape_debug(),
                        h.rules
                    )),
                    if d.special { "special " } else { "" },
                    d.period,
                    if t.is_empty() {
                        "nothing".to_string()
                    } else {
                        t.join(", ")
                    },
                    d.payouts
                        .iter()
                        .map(|o| o.account)
                        .collect::<std::collections::BTreeSet<_>>()
                        .len(),
                    d.heads.len()
                )
            }
            Content::Signers(set) => format!(
                "signer set of {} keys, quorum {}: {}",
                set.keys.len(),
                set.quorum,
                set.keys
                    .iter()
                    .map(|k| k.short())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Content::Transfer(_) => "transfer".into(),
        }
    }

    pub fn to_json(&self, shared: &Shared) -> Value {
        json!({
            "id": self.id,
            "kind": self.body.content.kind(),
            "period": match &self.body.content { Content::Issue(i) => i.period, Content::Distribute(d) => d.period, _ => 0 },
            "summary": self.summary(shared),
            "proposer": self.proposer,
            "created": self.created,
            "expires": self.expires,
            "signed": self.signed_by(shared),
            "quorum": self.quorum(),
            "signer": can_sign(shared, &self.body, &self.signers),
            "state": self.state,
            "rejections": self.rejections,
            "record": Record::new(self.body.clone(), self.sigs.clone()).to_json(),
        })
    }
}

fn event(shared: &Shared, r: &SignRequest) -> Event {
    Event::SignRequest {
        id: r.id.to_string(),
        kind: r.body.content.kind().to_string(),
        summary: r.summary(shared),
        signed: r.signed_by(shared),
        quorum: r.quorum(),
        expires: r.expires,
        state: r.state.name().to_string(),
    }
}

/// Is this node's key one of the signers in `set` (or the deployer's, for the fallback duty)?
pub fn can_sign(shared: &Shared, body: &Body, set: &SignerSet) -> bool {
    let r = Record::new(body.clone(), Vec::new());
    set.contains(&shared.key.public().fingerprint())
        || (*shared.key.public() == shared.params.deployer
            && rules::fallback_allowed(&r, &shared.params))
}

/// The signer set in force for the next network record.
pub fn signers_now(shared: &Shared) -> SignerSet {
    shared.view().state().signers.clone()
}

/// The node's own recomputation of a proposal: `Ok` if it gives exactly this body.
pub fn recompute(shared: &Shared, body: &Body) -> Result<(), String> {
    // A proposal is only for now: a distribution closes a period that has ended, and no
    // record is dated in this node's future.
    let t = shared.now();
    if body.time > t + MAX_CLOCK_SKEW {
        return Err(format!(
            "dated {}, after this node's clock ({t})",
            body.time
        ));
    }
    if let Content::Distribute(d) = &body.content {
        let com = &shared.params.com;
        let current = com.period_of(t);
        if !d.special && (t < com.period_bounds(0).1 || d.period >= current) {
            return Err(format!(
                "period {} has not ended by this node's clock (current period {current})",
                d.period
            ));
        }
        if d.special && d.period != current {
            return Err(format!(
                "a special distribution for period {}, but this is period {current}",
                d.period
            ));
        }
    }
    let l = shared.view();
    let mine = match &body.content {
        Content::Issue(i) => l
            .propose_issue(i.attest.clone(), body.time)
            .map_err(|e| explain(&e))?,
        Content::Distribute(Distribute {
            handover: Some(h), ..
        }) => l
            .propose_handover(h.clone(), body.time)
            .map_err(|e| explain(&e))?,
        Content::Distribute(d) => l
            .propose_distribution(d.period, d.special, body.time)
            .map_err(|e| explain(&e))?,
        Content::Signers(set) => l
            .propose_signers(set.clone(), body.time)
            .map_err(|e| explain(&e))?,
        Content::Transfer(_) => return Err("transfers are not signed by a quorum".into()),
    };
    if mine == *body {
        return Ok(());
    }
    Err(match (&mine.content, &body.content) {
        (Content::Distribute(a), Content::Distribute(b)) if a.heads != b.heads => {
            let diff: Vec<String> = a
                .heads
                .iter()
                .filter(|(acct, h)| b.heads.get(*acct) != Some(h))
                .map(|(acct, h)| {
                    format!(
                        "{} at seq {} here, {} there",
                        acct.short(),
                        h.seq,
                        b.heads
                            .get(acct)
                            .map_or("absent".to_string(), |x| format!("seq {}", x.seq))
                    )
                })
                .chain(
                    b.heads
                        .keys()
                        .filter(|acct| !a.heads.contains_key(*acct))
                        .map(|acct| format!("{} absent here", acct.short())),
                )
                .take(5)
                .collect();
            format!(
                "the checkpoint differs from this node's chain: {}",
                diff.join("; ")
            )
        }
        (Content::Distribute(_), _) => "the payouts differ from this node's computation".into(),
        (Content::Issue(a), Content::Issue(b)) if a.amounts != b.amounts => {
            format!(
                "this node computes amounts {:?}, not {:?}: circulation may not exceed the attested backing",
                a.amounts, b.amounts
            )
        }
        _ => "the record differs from this node's computation (time, seq or predecessor)".into(),
    })
}

fn explain(e: &RecordError) -> String {
    match e {
        RecordError::NothingToIssue | RecordError::IssueAmounts { .. } => {
            format!("{e}: circulation may not exceed the attested backing")
        }
        other => other.to_string(),
    }
}

/// Takes a proposal (from a peer, or made here). Returns the request's state as seen here;
/// `Err` says why it was refused (nothing is kept then).
pub fn receive(
    shared: &Arc<Shared>,
    record: Record,
    proposer: String,
    from_peer: bool,
) -> Result<State, String> {
    let p = &shared.params;
    rules::check_form(&record, p).map_err(|e| e.to_string())?;
    if record.kind() == crate::ledger::Kind::Transfer {
        return Err("transfers are not signed by a quorum".into());
    }
    // The set in force at the record's seq (a request for a seq the chain has passed is
    // superseded; for the next seq, this is the set that must sign it).
    let set = shared.view().state().signers_at(record.seq()).clone();
    let id = record.hash();
    // Only signers start requests on other nodes (one of their signatures comes with it), so
    // nobody else can fill the request table.
    if from_peer && record.sigs().is_empty() {
        return Err("refused: a proposal must carry at least one signer's signature".into());
    }
    // Every signature it carries must be a signer's and valid; duplicates are refused.
    let mut sigs: Vec<Sig> = Vec::new();
    for s in record.sigs() {
        rules::check_signer_sig(&record, s, p, &set).map_err(|e| format!("refused: {e}"))?;
        if sigs.iter().any(|x| x.key == s.key) {
            return Err("refused: the same signer's signature appears twice".into());
        }
        sigs.push(s.clone());
    }
    if shared.view().state().is_applied(&id) {
        return Err(format!(
            "refused: record {} is already final (a replay)",
            id.short()
        ));
    }
    let mut requests = shared.requests.locked();
    if let Some(existing) = requests.get_mut(&id) {
        let mut grew = false;
        for s in sigs {
            if !existing.sigs.iter().any(|x| x.key == s.key) {
                existing.sigs.push(s);
                grew = true;
            }
        }
        let state = existing.state.clone();
        let ev = event(shared, existing);
        drop(requests);
        if grew {
            shared.emit(ev);
            finalize(shared, &id);
        }
        return Ok(state);
    }
    drop(requests);
    let time = record.body().time;
    if time.min(shared.now()) + p.com.signers.request_ttl <= shared.now() {
        return Err(format!("refused: request {} has expired", id.short()));
    }
    if from_peer
        && time.abs_diff(shared.now()) > MAX_CLOCK_SKEW
        && matches!(record.kind(), crate::ledger::Kind::Issue)
    {
        return Err(format!(
            "refused: dated {time}, more than {MAX_CLOCK_SKEW} s from this node's clock"
        ));
    }
    // Recomputed without holding the request table (the chain lock comes first elsewhere).
    if let Err(reason) = recompute(shared, record.body()) {
        shared.log(
            "warn",
            format!("signature request {} refused: {reason}", id.short()),
        );
        return Err(format!("refused: {reason}"));
    }
    let state = State::Pending;
    let mut requests = shared.requests.locked();
    if requests.contains_key(&id) {
        drop(requests);
        return receive(shared, record, proposer, from_peer);
    }
    if requests.len() >= MAX_REQUESTS {
        // Settled requests go first, then the oldest open one.
        let oldest = requests
            .iter()
            .min_by_key(|(_, r)| {
                (
                    matches!(r.state, State::Pending | State::Approved),
                    r.created,
                )
            })
            .map(|(k, _)| *k);
        match oldest {
            Some(k) => {
                requests.remove(&k);
            }
            None => return Err("too many open signature requests".into()),
        }
    }
    let req = SignRequest {
        id,
        body: record.body().clone(),
        sigs,
        proposer,
        created: shared.now(),
        // From the record's own time, so every node expires it at the same moment.
        expires: time.min(shared.now()) + p.com.signers.request_ttl,
        state: state.clone(),
        rejections: Vec::new(),
        signers: set,
    };
    let ev = event(shared, &req);
    requests.insert(id, req);
    drop(requests);
    shared.emit(ev);
    // Fully determined by the chain, and the member allowed it: sign at once.
    let body_is_determined = matches!(&record.body().content, Content::Distribute(d) if !d.special);
    if body_is_determined
        && shared.config.auto_sign
        && can_sign(shared, record.body(), &signers_now(shared))
    {
        let _ = approve(shared, &id);
    }
    finalize(shared, &id);
    let state = shared
        .requests
        .locked()
        .get(&id)
        .map(|r| r.state.clone())
        .unwrap_or(State::Pending);
    Ok(state)
}

/// Signs a request as this node's member decided, and sends the signature everywhere.
pub fn approve(shared: &Arc<Shared>, id: &RecordHash) -> Result<Value, String> {
    let mut requests = shared.requests.locked();
    let req = requests.get_mut(id).ok_or("no such request")?;
    if req.expires <= shared.now() {
        req.state = State::Expired;
    }
    match &req.state {
        State::Pending | State::Approved => {}
        State::Superseded(why) => {
            return Err(format!(
                "the request is superseded ({why}); make it again with `cod sign repropose {}`",
                id.short()
            ));
        }
        State::Expired => {
            return Err(format!(
                "the request is expired; open it again with `cod sign repropose {}`",
                id.short()
            ));
        }
        other => return Err(format!("the request is {}", other.name())),
    }
    if !can_sign(shared, &req.body, &req.signers) {
        return Err("this node's key is not in the signer set in force".into());
    }
    // Only content this node computed itself is signed: check again against the chain now.
    let body = req.body.clone();
    drop(requests);
    recompute(shared, &body)?;
    let mut requests = shared.requests.locked();
    let req = requests.get_mut(id).ok_or("no such request")?;
    req.sigs = crate::ledger::add_signature(&req.body, &req.sigs, &shared.key);
    req.state = State::Approved;
    let ev = event(shared, req);
    let out = req.to_json(shared);
    let record = Record::new(req.body.clone(), req.sigs.clone());
    drop(requests);
    shared.emit(ev);
    broadcast(shared, record);
    finalize(shared, id);
    Ok(out)
}

/// Rejects a request with a reason, and tells every peer (the proposer among them).
pub fn reject(shared: &Arc<Shared>, id: &RecordHash, reason: String) -> Result<Value, String> {
    if reason.len() > MAX_REASON_BYTES {
        return Err(format!(
            "a reason may be {MAX_REASON_BYTES} bytes long at most"
        ));
    }
    let mut requests = shared.requests.locked();
    let req = requests.get_mut(id).ok_or("no such request")?;
    if req.state == State::Final {
        return Err("the request is already final".into());
    }
    req.state = State::Rejected(reason.clone());
    note_rejection(&mut req.rejections, &shared.node_id, &reason);
    let ev = event(shared, req);
    let out = req.to_json(shared);
    drop(requests);
    shared.emit(ev);
    let sig = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        shared
            .key
            .sign(&rejection_message(id, &shared.node_id, &reason)),
    );
    let msg = RejectionMsg {
        node_id: shared.node_id.to_string(),
        reason,
        signature: sig,
    };
    let (tasks, shared, id) = (shared.tasks.clone(), shared.clone(), *id);
    tasks.spawn(async move {
        let peers = shared.peers.locked().confirmed();
        for p in peers {
            let _: Result<Value, _> = shared
                .api
                .post(&p.addr, &format!("/v1/sign-requests/{id}/rejections"), &msg)
                .await;
        }
    });
    Ok(out)
}

/// A peer's member rejected a request: note it (the proposer learns why). Only signers'
/// rejections count, each signer's once, whatever form its node id was written in.
pub fn receive_rejection(
    shared: &Shared,
    id: &RecordHash,
    msg: RejectionMsg,
) -> Result<(), String> {
    let node = AccountId::from_canonical(&msg.node_id).map_err(|e| e.to_string())?;
    if msg.reason.len() > MAX_REASON_BYTES {
        return Err(format!("reason longer than {MAX_REASON_BYTES} bytes"));
    }
    let key = shared
        .chain
        .locked()
        .ledger()
        .key_of(&node)
        .ok_or("unknown node")?;
    let (body, set) = shared
        .requests
        .locked()
        .get(id)
        .map(|r| (r.body.clone(), r.signers.clone()))
        .ok_or("the request is gone (expired or evicted)")?;
    let signer = set.contains(&key.fingerprint())
        || (key == shared.params.deployer
            && rules::fallback_allowed(&Record::new(body, Vec::new()), &shared.params));
    if !signer {
        return Err("only signers' rejections are noted".into());
    }
    let sig = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &msg.signature)
        .map_err(|e| e.to_string())?;
    key.verify(&rejection_message(id, &node, &msg.reason), &sig)
        .map_err(|_| "the rejection's signature does not verify".to_string())?;
    let mut requests = shared.requests.locked();
    let req = requests.get_mut(id).ok_or("no such request")?;
    if note_rejection(&mut req.rejections, &node, &msg.reason) {
        let ev = event(shared, req);
        drop(requests);
        shared.emit(ev);
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

/// Most rejections kept per request (only signers' are noted, so this is only a backstop).
pub const MAX_REJECTIONS: usize = 64;

/// Notes `node`'s rejection once; returns whether it is new.
fn note_rejection(list: &mut Vec<Rejection>, node: &AccountId, reason: &str) -> bool {
    let node_id = node.to_string();
    if list.len() >= MAX_REJECTIONS || list.iter().any(|r| r.node_id == node_id) {
        return false;
    }
    list.push(Rejection {
        node_id,
        reason: reason.to_string(),
    });
    true
}

/// With a quorum of valid signatures, the record goes into the chain (and to every peer).
fn finalize(shared: &Arc<Shared>, id: &RecordHash) {
    let record = {
        let requests = shared.requests.locked();
        let Some(req) = requests.get(id) else { return };
        if matches!(req.state, State::Final | State::Expired)
            || req.expires <= shared.now()
            || req.signed_by(shared) < req.quorum()
        {
            return;
        }
        let mut sigs = req.sigs.clone();
        sigs.sort_by_key(|s| s.key.as_ref().map(|k| crate::ids::Fingerprint::of(&k.0)));
        Record::new(req.body.clone(), sigs)
    };
    let result = shared.chain().ingest(record);
    match result {
        Ok(o) => {
            let applied = shared.view().state().is_applied(id);
            if let Some(req) = shared.requests.locked().get_mut(id)
                && applied
            {
                req.state = State::Final;
            }
            if o.applied.contains(id) {
                shared.log("info", format!("record {} is final", id.short()));
            }
            shared.announce_applied(&o.applied, true);
            if let Some(req) = shared.requests.locked().get(id) {
                shared.emit(event(shared, req));
            }
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

/// Sends a proposal (with the signatures gathered here) to every confirmed peer.
pub fn broadcast(shared: &Arc<Shared>, record: Record) {
    let (tasks, shared) = (shared.tasks.clone(), shared.clone());
    tasks.spawn(async move {
        let msg = Proposal {
            record: record.to_json(),
            proposer: shared.node_id.to_string(),
        };
        let peers = shared.peers.locked().confirmed();
        let sends = peers.into_iter().map(|p| {
            let (shared, msg) = (shared.clone(), msg.clone());
            async move {
                let r: Result<Value, _> = shared.api.post(&p.addr, "/v1/sign-requests", &msg).await;
                if let Err(e) = r {
                    tracing::debug!("sign request to {}: {e}", p.addr);
                }
            }
        });
        futures::future::join_all(sends).await;
    });
}

pub fn request_json(shared: &Shared, id: &RecordHash) -> Result<Value, String> {
    shared
        .requests
        .locked()
        .get(id)
        .map(|r| r.to_json(shared))
        .ok_or_else(|| "the request is gone (expired or evicted)".into())
}

/// Proposes (and, as this member, signs) an issuance for attested backing figures.
pub fn propose_issue(
    shared: &Arc<Shared>,
    attest: std::collections::BTreeMap<String, u64>,
) -> Result<Value, String> {
    let body = shared
        .view()
        .propose_issue(attest, shared.now())
        .map_err(|e| explain(&e))?;
    propose_signed(shared, body)
}

/// Holds a proposal made here, signs it as this member, and sends it out. Only signers
/// propose: other nodes refuse a proposal that carries no signer's signature (so nobody can
/// fill their request tables), and a proposal nobody would hold would wait in vain.
fn propose_signed(shared: &Arc<Shared>, body: Body) -> Result<Value, String> {
    let set = signers_now(shared);
    if !can_sign(shared, &body, &set) {
        let signers: Vec<String> = set.keys.iter().map(|k| k.short()).collect();
        return Err(format!(
            "this node's key is not in the signer set in force ({} of them: {}; quorum {}): \
             only a signer can propose this, so ask one of them",
            signers.len(),
            signers.join(", "),
            set.quorum
        ));
    }
    let record = Record::new(body, Vec::new());
    let id = record.hash();
    receive(shared, record, shared.node_id.to_string(), false)?;
    approve(shared, &id)?;
    request_json(shared, &id)
}

/// Proposes handing the ledger over to cod `to`, as a request this member signs.
pub fn propose_handover(
    shared: &Arc<Shared>,
    to: &str,
    version: Option<String>,
    rules: Option<u32>,
) -> Result<Value, String> {
    let to: crate::ids::CodId = to.trim().parse().map_err(|e| format!("{to:?}: {e}"))?;
    let version = match version {
        Some(v) => v,
        None => shared
            .offers
            .locked()
            .get(&to.to_string())
            .map(|o| o.cod_version.clone())
            .ok_or("no peer runs that cod id, so its version is unknown here: give --version")?,
    };
    let h = Handover {
        rules: rules.unwrap_or(crate::ledger::RULES_VERSION + 1),
        to,
        version,
    };
    let body = shared
        .view()
        .propose_handover(h, shared.now())
        .map_err(|e| explain(&e))?;
    propose_signed(shared, body)
}

/// The signer set in force, and com.ini's (the ledger's first).
pub fn signers_json(shared: &Shared) -> Value {
    let set = signers_now(shared);
    let com = &shared.params.com.signers;
    let mine = shared.key.public().fingerprint();
    json!({
        "keys": set.keys,
        "quorum": set.quorum,
        "changed": set.keys.iter().ne(com.keys.iter()) || set.quorum != com.quorum as u64,
        "signer": set.contains(&mine),
        "fingerprint": mine,
    })
}

/// Proposes the set in force with `add` added, `remove` removed and `quorum` (default: the
/// present one), as a `signers` record this member signs.
pub fn propose_signer_change(
    shared: &Arc<Shared>,
    add: &[String],
    remove: &[String],
    quorum: Option<u64>,
) -> Result<Value, String> {
    let parse = |list: &[String]| -> Result<Vec<crate::ids::Fingerprint>, String> {
        list.iter()
            .map(|f| f.trim().parse().map_err(|e| format!("{f:?}: {e}")))
            .collect()
    };
    let (add, remove) = (parse(add)?, parse(remove)?);
    let old = signers_now(shared);
    if let Some(k) = add.iter().find(|k| old.contains(k)) {
        return Err(format!("{} is a signer already", k.short()));
    }
    if let Some(k) = remove.iter().find(|k| !old.contains(k)) {
        return Err(format!("{} is not a signer", k.short()));
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
        format!(
            "a signer set needs 1 to {} keys and 1 <= quorum <= keys; this one has {} keys and quorum {}",
            crate::ledger::record::MAX_SIGS,
            set.keys.len(),
            set.quorum
        )
    })?;
    if set == old {
        return Err("that is the set in force already".into());
    }
    let body = shared
        .view()
        .propose_signers(set, shared.now())
        .map_err(|e| explain(&e))?;
    propose_signed(shared, body)
}

/// Proposes a special distribution now (only where com.ini allows it).
pub fn propose_special(shared: &Arc<Shared>) -> Result<Value, String> {
    if !shared.params.com.distribution.special_by_quorum {
        return Err("com.ini does not allow special distributions (special = never)".into());
    }
    let t = shared.now();
    let body = shared
        .view()
        .propose_distribution(shared.params.com.period_of(t), true, t)
        .map_err(|e| explain(&e))?;
    propose_signed(shared, body)
}

/// Makes an expired, superseded or rejected request again from the chain as it is now, as a
/// new request this member signs: the same backing figures for an issuance, the same period
/// for a distribution.
pub fn repropose(shared: &Arc<Shared>, id: &RecordHash) -> Result<Value, String> {
    let (state, body) = {
        let requests = shared.requests.locked();
        let r = requests.get(id).ok_or("no such request")?;
        (r.state.clone(), r.body.clone())
    };
    if state.is_open() || state == State::Final {
        return Err(format!(
            "the request is {}: nothing to propose again",
            state.name()
        ));
    }
    let t = shared.now();
    let fresh = {
        let l = shared.view();
        match &body.content {
            Content::Issue(i) => l.propose_issue(i.attest.clone(), t),
            Content::Distribute(Distribute {
                handover: Some(h), ..
            }) => l.propose_handover(h.clone(), t),
            Content::Distribute(d) if d.special => {
                l.propose_distribution(shared.params.com.period_of(t), true, t)
            }
            Content::Distribute(d) => {
                if l.state().last_period.is_some_and(|p| p >= d.period) {
                    return Err(format!("period {} is distributed already", d.period));
                }
                // Dated now, so it is a new request with a session of its own.
                l.propose_distribution(d.period, false, t)
            }
            Content::Signers(set) => l.propose_signers(set.clone(), t),
            Content::Transfer(_) => return Err("transfers are not signed by a quorum".into()),
        }
        .map_err(|e| explain(&e))?
    };
    propose_signed(shared, fresh)
}

/// Why an open request can no longer be signed, if so: the chain moved on — the network's
/// record at its seq is another, or its period was distributed.
fn superseded(l: &crate::ledger::Ledger, body: &Body) -> Option<String> {
    if let Some(other) = l.superseded_by(body) {
        return Some(format!(
            "record {} took its place at seq {} of the network's chain",
            other.short(),
            body.seq
        ));
    }
    match &body.content {
        Content::Distribute(d)
            if !d.special && l.state().last_period.is_some_and(|p| p >= d.period) =>
        {
            Some(format!("period {} was distributed already", d.period))
        }
        _ => None,
    }
}

/// Marks the open requests the chain has moved past as superseded, and says why.
fn mark_superseded(shared: &Shared) {
    let open: Vec<(RecordHash, Body)> = shared
        .requests
        .locked()
        .values()
        .filter(|r| r.state.is_open())
        .map(|r| (r.id, r.body.clone()))
        .collect();
    if open.is_empty() {
        return;
    }
    let gone: Vec<(RecordHash, String)> = {
        let l = shared.view();
        open.iter()
            .filter_map(|(id, b)| superseded(&l, b).map(|why| (*id, why)))
            .collect()
    };
    for (id, why) in gone {
        let ev = {
            let mut requests = shared.requests.locked();
            let Some(r) = requests.get_mut(&id).filter(|r| r.state.is_open()) else {
                continue;
            };
            r.state = State::Superseded(why.clone());
            event(shared, r)
        };
        shared.emit(ev);
        shared.log(
            "warn",
            format!("signature request {} is superseded: {why}", id.short()),
        );
    }
}

/// Period ends: every signer's node proposes the distribution its chain gives (honest nodes
/// with the same records propose the same record, so their signatures add up). Also expires
/// old requests and re-sends open ones for peers that came late.
pub async fn run(shared: Arc<Shared>) {
    let mut tick = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shared.shutdown.cancelled() => return,
        }
        tick += 1;
        let t = shared.now();
        // Expire.
        {
            let mut requests = shared.requests.locked();
            let mut changed = Vec::new();
            for r in requests.values_mut() {
                if r.expires <= t && r.state.is_open() {
                    r.state = State::Expired;
                    changed.push(event(&shared, r));
                }
            }
            drop(requests);
            for e in changed {
                shared.emit(e);
            }
        }
        // Proposing computes over the whole chain: off the async threads.
        let (s2, handle) = (shared.clone(), tokio::runtime::Handle::current());
        let _ = shared
            .tasks
            .spawn_blocking(move || {
                let _guard = handle.enter();
                mark_superseded(&s2);
                settle(&s2, t)
            })
            .await;
        if tick.is_multiple_of(5) {
            let open: Vec<Record> = shared
                .requests
                .locked()
                .values()
                .filter(|r| r.state.is_open())
                .map(|r| Record::new(r.body.clone(), r.sigs.clone()))
                .collect();
            for r in open {
                broadcast(&shared, r);
            }
        }
    }
}

fn settle(shared: &Arc<Shared>, t: u64) {
    let com = &shared.params.com;
    if t < com.epoch + com.settlement_period {
        return;
    }
    let target = com.period_of(t) - 1;
    let (due, body) = {
        let l = shared.view();
        let due = l.state().last_period.is_none_or(|last| last < target);
        let mut not_before = 0;
        if let crate::config::com::Fallback::Deployer { after } = com.signers.fallback
            && *shared.key.public() == shared.params.deployer
            && !l
                .state()
                .signers
                .contains(&shared.key.public().fingerprint())
        {
            // The deployer only steps in once the distribution is overdue.
            not_before = com.period_bounds(target).1 + after;
            if t < not_before {
                return;
            }
        }
        (
            due,
            due.then(|| l.propose_distribution(target, false, not_before).ok())
                .flatten(),
        )
    };
    let Some(body) = body.filter(|_| due) else {
        return;
    };
    if !can_sign(shared, &body, &signers_now(shared)) {
        return;
    }
    // One session at a time for a period: none while one is open (or this member rejected
    // one); once every earlier one expired or was superseded, a fresh one dated now, so
    // that a distribution never stalls for a session that ran out.
    let earlier: Vec<State> = shared
        .requests
        .locked()
        .values()
        .filter(|r| matches!(&r.body.content, Content::Distribute(d) if !d.special && d.period == target))
        .map(|r| r.state.clone())
        .collect();
    if earlier
        .iter()
        .any(|s| s.is_open() || matches!(s, State::Rejected(_)) || *s == State::Final)
    {
        return;
    }
    let body = if earlier.is_empty() {
        body
    } else {
        match shared
            .view()
            .propose_distribution(target, false, t.max(body.time))
        {
            Ok(b) => b,
            Err(_) => return,
        }
    };
    let record = Record::new(body, Vec::new());
    if shared.requests.locked().contains_key(&record.hash()) {
        return;
    }
    if receive(shared, record.clone(), shared.node_id.to_string(), false).is_ok() {
        let id = record.hash();
        let sigs = shared
            .requests
            .locked()
            .get(&id)
            .map(|r| r.sigs.clone())
            .unwrap_or_default();
        broadcast(shared, Record::new(record.body().clone(), sigs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_counts_once_per_node_and_binds_its_node() {
        let a = AccountId::from_bytes([0xab; 32]);
        let b = AccountId::from_bytes([0xcd; 32]);
        let mut list = Vec::new();
        assert!(note_rejection(&mut list, &a, "no"));
        // The same node, however its id was spelled on the wire, is one node once parsed.
        for spelling in [a.to_string().to_uppercase(), format!(" {a}\n")] {
            let again: AccountId = spelling.parse().unwrap();
            assert!(!note_rejection(&mut list, &again, "no"));
        }
        assert!(note_rejection(&mut list, &b, "no"));
        assert_eq!(list.len(), 2);
        for i in 0..200u8 {
            note_rejection(&mut list, &AccountId::from_bytes([i; 32]), "x");
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
}
