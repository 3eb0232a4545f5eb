//! The book of signature requests (MISSION.md "Issuance", "Distribution"; DESIGN.md §5):
//! every request this node holds — the record, the signatures gathered, its state, the
//! signers' rejections — and the rules that move a request from state to state. Pure: the
//! driver (`signing.rs`) passes in the time, the chain and the parameters, and carries out
//! what comes back (events, sends, the record that now has a quorum).

use crate::config::com::Fallback;
use crate::ids::{AccountId, Fingerprint, RecordHash};
use crate::keys::PublicKey;
use crate::ledger::{
    Body, Content, Distribute, Ledger, Params, Record, RecordError, Sig, SignerSet, rules,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most requests held at once (old, settled ones go first).
pub const MAX_REQUESTS: usize = 256;
pub use crate::clock::MAX_CLOCK_SKEW;
/// How far ahead of this node's clock a later period's proposal may be dated for a signer to
/// wait for it rather than propose the earlier period ([`RequestBook::later_proposal`]): clocks
/// that keep time differ by less; one set minutes forward is not waited for.
pub const MAX_WAIT_FOR_LATER: u64 = 120;
const _: () = assert!(MAX_WAIT_FOR_LATER < MAX_CLOCK_SKEW);
/// Longest rejection reason accepted, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;
/// Most rejections kept per request (only signers' are noted, so this is only a backstop).
pub const MAX_REJECTIONS: usize = 64;
/// How long a node keeps its own rejection out of what it answers a peer that offers the
/// request ([`RequestBook::to_pass_on`]): by then its stem has spread it, so the node
/// answering with it is not its first sender.
pub const OWN_REJECTION_QUIET: u64 = 60;

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

/// Why a signing step did not happen. Each kind answers the control protocol with one
/// [`crate::control::ErrorKind`], so one table gives its exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// No request with that id is held here.
    #[error("no signature request {0} here (see `cod sign list`)")]
    Unknown(String),
    /// A proposal this node does not hold, and why.
    #[error("refused: {0}")]
    Refused(String),
    /// This node's key cannot sign it.
    #[error("{0}")]
    NotSigner(String),
    /// The request no longer gathers signatures (what to do instead, where there is a way).
    #[error("{0}")]
    Closed(String),
    /// The operator's input is not usable (a reason too long, a key that does not parse).
    #[error("{0}")]
    Invalid(String),
    /// Every slot of the book holds an open request.
    #[error("too many open signature requests ({MAX_REQUESTS})")]
    Full,
}

impl SignError {
    pub fn kind(&self) -> crate::control::ErrorKind {
        use crate::control::ErrorKind;
        match self {
            Self::Unknown(_) => ErrorKind::NotFound,
            Self::Invalid(_) => ErrorKind::BadRequest,
            Self::Refused(_) | Self::NotSigner(_) | Self::Closed(_) | Self::Full => {
                ErrorKind::Refused
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub node_id: String,
    pub reason: String,
    /// The rejecting node's signature over [`rejection_message`] (base64), so the rejection
    /// can be passed on ([`RequestBook::to_pass_on`]); not shown.
    #[serde(skip)]
    pub signature: String,
    /// When this node noted it, by its clock; not shown.
    #[serde(skip)]
    pub noted: u64,
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

/// `cod sign show`, one entry of `cod sign list`: a request as the daemon shows it, read
/// back typed by the CLI and the TUI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestView {
    pub id: RecordHash,
    pub kind: String,
    /// The period an issuance or distribution is for (0 for a signer set).
    pub period: u64,
    pub summary: String,
    /// This node's account when it proposed the request here; empty when it came from a
    /// peer (nodes do not say who they are: the signatures say which signers signed).
    pub proposer: String,
    pub created: u64,
    pub expires: u64,
    /// Valid signers' signatures gathered.
    pub signed: usize,
    pub quorum: usize,
    /// This node's key can sign it.
    pub signer: bool,
    pub state: State,
    pub rejections: Vec<Rejection>,
    /// The record with the signatures gathered (the chain archive's JSON form); not in
    /// events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<serde_json::Value>,
}

/// `cod sign list`: newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestList {
    pub requests: Vec<RequestView>,
}

/// `cod signers`: the set in force, and whether it is still com.ini's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignersView {
    pub keys: Vec<Fingerprint>,
    pub quorum: u64,
    /// The ledger changed it from com.ini's.
    pub changed: bool,
    /// This node's key is in it.
    pub signer: bool,
    /// This node's key.
    pub fingerprint: Fingerprint,
}

impl SignersView {
    pub fn new(set: &SignerSet, params: &Params, me: &PublicKey) -> Self {
        let com = &params.com.signers;
        let mine = me.fingerprint();
        Self {
            keys: set.keys.clone(),
            quorum: set.quorum,
            changed: set.keys.iter().ne(com.keys.iter()) || set.quorum != com.quorum as u64,
            signer: set.contains(&mine),
            fingerprint: mine,
        }
    }
}

/// What a node signs to reject a request: the request, the rejecting node and the reason, so
/// a signed rejection counts once, for that node and that request only.
pub fn rejection_message(id: &RecordHash, node: &AccountId, reason: &str) -> Vec<u8> {
    let mut m = b"cod/reject/v2\0".to_vec();
    m.extend_from_slice(id.as_bytes());
    m.extend_from_slice(node.as_bytes());
    m.extend_from_slice(reason.as_bytes());
    m
}

/// May `key` sign `body` with `set` in force: one of its keys, or the deployer's when
/// com.ini's fallback duty allows it for this record?
pub fn can_sign(params: &Params, key: &PublicKey, body: &Body, set: &SignerSet) -> bool {
    set.contains(&key.fingerprint())
        || (*key == params.deployer
            && rules::fallback_allowed(&Record::new(body.clone(), Vec::new()), params))
}

impl SignRequest {
    /// Valid signatures counted toward the quorum.
    pub fn signed_by(&self, params: &Params) -> usize {
        let r = Record::new(self.body.clone(), Vec::new());
        self.sigs
            .iter()
            .filter(|s| rules::check_signer_sig(&r, s, params, &self.signers).is_ok())
            .count()
    }

    pub fn quorum(&self) -> usize {
        self.signers.quorum as usize
    }

    /// The record with the signatures gathered so far.
    pub fn record(&self) -> Record {
        Record::new(self.body.clone(), self.sigs.clone())
    }

    /// One line saying what the record does, in com.ini's units.
    pub fn summary(&self, params: &Params) -> String {
        summary(&self.body, params)
    }

    pub fn view(&self, params: &Params, me: &PublicKey) -> RequestView {
        RequestView {
            id: self.id,
            kind: self.body.content.kind().to_string(),
            period: match &self.body.content {
                Content::Issue(i) => i.period,
                Content::Distribute(d) => d.period,
                _ => 0,
            },
            summary: self.summary(params),
            proposer: self.proposer.clone(),
            created: self.created,
            expires: self.expires,
            signed: self.signed_by(params),
            quorum: self.quorum(),
            signer: can_sign(params, me, &self.body, &self.signers),
            state: self.state.clone(),
            rejections: self.rejections.clone(),
            record: Some(self.record().to_json()),
        }
    }

    /// The event that tells subscribers (the TUI) the request appeared or changed: its view
    /// without the record.
    pub fn event(&self, params: &Params, me: &PublicKey) -> crate::control::Event {
        let view = RequestView {
            record: None,
            ..self.view(params, me)
        };
        crate::control::Event::SignRequest(Box::new(view))
    }
}

fn summary(body: &Body, params: &Params) -> String {
    let com = &params.com;
    let fmt = |asset: &str, v: u64| com.assets.get(asset).map_or(v.to_string(), |a| a.format(v));
    match &body.content {
        Content::Issue(i) => {
            let attest: Vec<String> = i.attest.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let amounts: Vec<String> = i
                .amounts
                .iter()
                .map(|(k, v)| format!("{} {k}", fmt(k, *v)))
                .collect();
            let work: usize = i.work.values().map(|items| items.len()).sum();
            format!(
                "issue {} backed by {}{}",
                amounts.join(", "),
                attest.join(", "),
                if work == 0 {
                    String::new()
                } else {
                    format!(", naming the work of {} accounts", i.work.len())
                }
            )
        }
        Content::Distribute(d) => {
            let mut total = BTreeMap::<&str, u64>::new();
            for o in &d.payouts {
                let t = total.entry(&o.asset).or_default();
                *t = t.saturating_add(o.amount);
            }
            let t: Vec<String> = total
                .iter()
                .map(|(k, v)| format!("{} {k}", fmt(k, *v)))
                .collect();
            format!(
                "{}{}distribution for period {}: {} to {} accounts, checkpoint of {} accounts{}",
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
                d.heads.len(),
                if d.admitted.is_empty() {
                    String::new()
                } else {
                    format!(", admitting {} sponsored", d.admitted.len())
                }
            )
        }
        Content::Members(m) => {
            let names = |v: &[AccountId]| {
                v.iter()
                    .map(|a| a.to_string()[..12].to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match (m.admit.is_empty(), m.remove.is_empty()) {
                (false, true) => format!("admit {} as members", names(&m.admit)),
                (true, false) => format!("remove {} from the members", names(&m.remove)),
                _ => format!(
                    "admit {} and remove {} as members",
                    names(&m.admit),
                    names(&m.remove)
                ),
            }
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

/// Checks a proposal's form and the signatures it carries against `set`, the signer set in
/// force at its seq: returns them, each signer's once. A proposal from a peer must carry at
/// least one (only signers start requests on other nodes, so nobody else can fill the book).
pub fn check_proposal(
    record: &Record,
    params: &Params,
    set: &SignerSet,
    from_peer: bool,
) -> Result<Vec<Sig>, SignError> {
    rules::check_form(record, params).map_err(|e| SignError::Refused(e.to_string()))?;
    if record.kind() == crate::ledger::Kind::Transfer {
        return Err(SignError::Refused(
            "transfers are not signed by a quorum".into(),
        ));
    }
    if from_peer && record.sigs().is_empty() {
        return Err(SignError::Refused(
            "a proposal must carry at least one signer's signature".into(),
        ));
    }
    let mut sigs: Vec<Sig> = Vec::new();
    for s in record.sigs() {
        rules::check_signer_sig(record, s, params, set)
            .map_err(|e| SignError::Refused(e.to_string()))?;
        if sigs.iter().any(|x| x.key == s.key) {
            return Err(SignError::Refused(
                "the same signer's signature appears twice".into(),
            ));
        }
        sigs.push(s.clone());
    }
    Ok(sigs)
}

/// Whether a new request dated `time` may still be opened at `now`: its session (com.ini
/// `request_ttl`, from the record's own time) has not run out, and an issuance from a peer
/// is dated near this node's clock.
pub fn check_timely(
    record: &Record,
    params: &Params,
    now: u64,
    from_peer: bool,
) -> Result<(), SignError> {
    let time = record.body().time;
    if expiry(time, now, params) <= now {
        return Err(SignError::Refused(format!(
            "request {} has expired",
            record.hash().short()
        )));
    }
    if from_peer
        && time.abs_diff(now) > MAX_CLOCK_SKEW
        && matches!(record.kind(), crate::ledger::Kind::Issue)
    {
        return Err(SignError::Refused(format!(
            "dated {time}, more than {MAX_CLOCK_SKEW} s from this node's clock"
        )));
    }
    Ok(())
}

/// When a request for a record dated `time`, first seen at `now`, expires: from the record's
/// own time, so every node expires it at the same moment.
pub fn expiry(time: u64, now: u64, params: &Params) -> u64 {
    time.min(now).saturating_add(params.com.signers.request_ttl)
}

/// The start of the session window `now` falls in, for a proposal first dated `first`:
/// windows of `request_ttl` back to back from `first`. A proposal made again after its
/// session ran out is dated there, the same on every node.
pub fn session_window(first: u64, now: u64, params: &Params) -> u64 {
    let ttl = params.com.signers.request_ttl.max(1);
    match now.checked_sub(first) {
        Some(since) => first + since / ttl * ttl,
        None => first,
    }
}

/// Whether a proposal is for now by this node's clock: a distribution closes a period that has
/// ended, and no record is dated in this node's future. (A proposal too early is no reason to
/// reject it for good: the clock will come.)
pub fn for_now(params: &Params, body: &Body, now: u64) -> Result<(), String> {
    if body.time > now.saturating_add(MAX_CLOCK_SKEW) {
        return Err(format!(
            "dated {}, after this node's clock ({now})",
            body.time
        ));
    }
    if let Content::Distribute(d) = &body.content {
        let com = &params.com;
        let current = com.period_of(now);
        if !d.special && (now < com.period_bounds(0).1 || d.period >= current) {
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
    Ok(())
}

/// Whether a signer's node that decides distributions by itself may reject `body` for good
/// when its chain does not give it: the proposal is timely by this node's clock, or it is
/// dated further in this node's future than the rules tolerate — a clock that far off is
/// wrong by the rules' own measure, and the distribution it proposed would settle periods
/// that have not ended for the others (found by the fault runs: two signers whose clocks had
/// jumped 15 minutes each held a far-dated proposal no one else would reject, and the
/// period stalled). Not one only early by this node's clock, within that tolerance: the
/// clock will come.
pub fn rejectable(params: &Params, body: &Body, now: u64) -> bool {
    for_now(params, body, now).is_ok() || body.time > now.saturating_add(MAX_CLOCK_SKEW)
}

/// This node's own recomputation of a proposal from its chain `l` at `now`: `Ok` if it
/// gives exactly this body, else the reason it differs.
pub fn recompute(l: &Ledger, params: &Params, body: &Body, now: u64) -> Result<(), String> {
    for_now(params, body, now)?;
    let mine = match &body.content {
        Content::Issue(i) => l.propose_issue(i.attest.clone(), i.work.clone(), body.time),
        Content::Distribute(Distribute {
            handover: Some(h), ..
        }) => l.propose_handover(h.clone(), body.time),
        Content::Distribute(d) => l.propose_distribution(d.period, d.special, body.time),
        Content::Signers(set) => l.propose_signers(set.clone(), body.time),
        Content::Members(m) => l.propose_members(m.admit.clone(), m.remove.clone(), body.time),
        Content::Transfer(_) => return Err("transfers are not signed by a quorum".into()),
    }
    .map_err(|e| explain(&e))?;
    if mine == *body {
        return Ok(());
    }
    Err(difference(&mine, body))
}

/// How the record this node computes (`mine`) differs from the proposal (`theirs`).
fn difference(mine: &Body, theirs: &Body) -> String {
    match (&mine.content, &theirs.content) {
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
    }
}

/// A ledger's refusal to propose, worded for the member.
pub fn explain(e: &RecordError) -> String {
    match e {
        RecordError::NothingToIssue | RecordError::IssueAmounts { .. } => {
            format!("{e}: circulation may not exceed the attested backing")
        }
        other => other.to_string(),
    }
}

/// Why an open request can no longer be signed, if so: the chain moved on — the network's
/// record at its seq is another, or its period was distributed.
pub fn superseded(l: &Ledger, body: &Body) -> Option<String> {
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

/// What to do about the distribution for a period that has ended, given the requests held
/// for it (see [`RequestBook::session`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// No request open for the period holds what the chain gives now: propose that. `stale`
    /// are the open ones the chain no longer gives, marked superseded.
    Propose { stale: Vec<RecordHash> },
    /// One that the chain gives is open, one is final, or this member rejected one: nothing
    /// to do.
    Busy,
}

/// The deployer's fallback duty (com.ini `fallback = deployer`): the earliest time it may
/// propose the distribution of `period`, if `key` has that duty and is not a signer itself.
pub fn fallback_not_before(
    params: &Params,
    key: &PublicKey,
    set: &SignerSet,
    period: u64,
) -> Option<u64> {
    let com = &params.com;
    match com.signers.fallback {
        Fallback::Deployer { after }
            if *key == params.deployer && !set.contains(&key.fingerprint()) =>
        {
            Some(com.period_bounds(period).1.saturating_add(after))
        }
        _ => None,
    }
}

/// Every request this node holds, by record hash.
#[derive(Debug, Default, Clone)]
pub struct RequestBook {
    requests: BTreeMap<RecordHash, SignRequest>,
}

impl RequestBook {
    pub fn get(&self, id: &RecordHash) -> Option<&SignRequest> {
        self.requests.get(id)
    }

    pub fn contains(&self, id: &RecordHash) -> bool {
        self.requests.contains_key(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SignRequest> {
        self.requests.values()
    }

    /// A request by its id or a unique prefix of it (at least 6 hex digits).
    pub fn find(&self, prefix: &str) -> Result<RecordHash, SignError> {
        let prefix = prefix.trim().to_lowercase();
        if prefix.len() < 6 {
            return Err(SignError::Invalid(
                "give at least 6 digits of the request id".into(),
            ));
        }
        let mut hits = self
            .requests
            .keys()
            .filter(|k| k.to_string().starts_with(&prefix));
        match (hits.next(), hits.next()) {
            (Some(one), None) => Ok(*one),
            (None, _) => Err(SignError::Unknown(prefix)),
            (Some(_), Some(_)) => Err(SignError::Invalid(format!(
                "{prefix} matches several requests; give more digits"
            ))),
        }
    }

    /// Drops request `id` (one held only to be rejected, when the rejection failed).
    pub fn forget(&mut self, id: &RecordHash) {
        self.requests.remove(id);
    }

    fn get_mut(&mut self, id: &RecordHash) -> Result<&mut SignRequest, SignError> {
        self.requests
            .get_mut(id)
            .ok_or_else(|| SignError::Unknown(id.to_string()))
    }

    /// Adds the signatures a held request lacks. `None` if it is not held; else whether it
    /// gained any.
    pub fn merge(&mut self, id: &RecordHash, sigs: Vec<Sig>) -> Option<bool> {
        let req = self.requests.get_mut(id)?;
        let mut grew = false;
        for s in sigs {
            if !req.sigs.iter().any(|x| x.key == s.key) {
                req.sigs.push(s);
                grew = true;
            }
        }
        Some(grew)
    }

    /// Holds a new request; when the book is full, a settled request makes room first, else
    /// the oldest open one.
    pub fn insert(&mut self, req: SignRequest) -> Result<(), SignError> {
        if self.requests.contains_key(&req.id) {
            return Ok(());
        }
        if self.requests.len() >= MAX_REQUESTS {
            let evict = self
                .requests
                .values()
                .min_by_key(|r| (r.state.is_open(), r.created))
                .map(|r| r.id)
                .ok_or(SignError::Full)?;
            self.requests.remove(&evict);
        }
        self.requests.insert(req.id, req);
        Ok(())
    }

    /// Open requests whose session ended by `now` become expired; returns them.
    pub fn expire(&mut self, now: u64) -> Vec<RecordHash> {
        self.requests
            .values_mut()
            .filter(|r| r.expires <= now && r.state.is_open())
            .map(|r| {
                r.state = State::Expired;
                r.id
            })
            .collect()
    }

    /// Open requests the chain `l` has moved past become superseded; returns them and why.
    pub fn supersede(&mut self, l: &Ledger) -> Vec<(RecordHash, String)> {
        self.requests
            .values_mut()
            .filter(|r| r.state.is_open())
            .filter_map(|r| {
                let why = superseded(l, &r.body)?;
                r.state = State::Superseded(why.clone());
                Some((r.id, why))
            })
            .collect()
    }

    /// The body of a request this node's member may sign now (it is still open, and `key`
    /// can sign it); an open request whose session ended by `now` is marked expired.
    pub fn to_approve(
        &mut self,
        id: &RecordHash,
        now: u64,
        params: &Params,
        key: &PublicKey,
    ) -> Result<Body, SignError> {
        let req = self.get_mut(id)?;
        if req.expires <= now && req.state.is_open() {
            req.state = State::Expired;
        }
        match &req.state {
            State::Pending | State::Approved => {}
            State::Superseded(why) => {
                return Err(SignError::Closed(format!(
                    "the request is superseded ({why}); make it again with `cod sign repropose {}`",
                    id.short()
                )));
            }
            State::Expired => {
                return Err(SignError::Closed(format!(
                    "the request is expired; open it again with `cod sign repropose {}`",
                    id.short()
                )));
            }
            other => {
                return Err(SignError::Closed(format!(
                    "the request is {}",
                    other.name()
                )));
            }
        }
        if !can_sign(params, key, &req.body, &req.signers) {
            return Err(SignError::NotSigner(
                "this node's key is not in the signer set in force".into(),
            ));
        }
        Ok(req.body.clone())
    }

    /// This node signed: its signatures are now `sigs`.
    pub fn approved(&mut self, id: &RecordHash, sigs: Vec<Sig>) -> Result<(), SignError> {
        let req = self.get_mut(id)?;
        req.sigs = sigs;
        req.state = State::Approved;
        Ok(())
    }

    /// This node's member rejects a request: `by` is this node, `rejection` its signed
    /// rejection (noted under `by`'s id).
    pub fn reject(
        &mut self,
        id: &RecordHash,
        by: &AccountId,
        rejection: Rejection,
    ) -> Result<(), SignError> {
        check_reason(&rejection.reason)?;
        let req = self.get_mut(id)?;
        if req.state == State::Final {
            return Err(SignError::Closed("the request is already final".into()));
        }
        req.state = State::Rejected(rejection.reason.clone());
        note_rejection(&mut req.rejections, by, rejection);
        Ok(())
    }

    /// A signer's rejection from a peer (its signature checked by the driver): noted once per
    /// node. Returns whether it is new.
    pub fn rejected_by(
        &mut self,
        id: &RecordHash,
        by: &AccountId,
        rejection: Rejection,
    ) -> Result<bool, SignError> {
        check_reason(&rejection.reason)?;
        Ok(note_rejection(
            &mut self.get_mut(id)?.rejections,
            by,
            rejection,
        ))
    }

    /// The rejections of request `id` noted here that this node (`me`) gives a peer offering
    /// it: a peer that offers a request may lack some — it was cut off, or restarted, when
    /// they were spread, and a rejection is spread once — and a signer that signed the request
    /// is held by its promise until it counts enough of them (see [`Signed`]). Others'
    /// rejections at once; this node's own only [`OWN_REJECTION_QUIET`] seconds after it
    /// made it, when its stem has spread it (found by the fault runs: a signer cut off
    /// while its record was rejected waited for the rest of its promise, an hour).
    pub fn to_pass_on(&self, id: &RecordHash, me: &AccountId, now: u64) -> Vec<Rejection> {
        let me = me.to_string();
        self.requests.get(id).map_or_else(Vec::new, |r| {
            r.rejections
                .iter()
                .filter(|j| {
                    !j.signature.is_empty()
                        && (j.node_id != me || now >= j.noted.saturating_add(OWN_REJECTION_QUIET))
                })
                .cloned()
                .collect()
        })
    }

    /// The record to make final, if the request has a quorum of valid signatures and its
    /// session is still running: its signatures in key order.
    pub fn ready(&self, id: &RecordHash, now: u64, params: &Params) -> Option<Record> {
        let req = self.requests.get(id)?;
        if matches!(req.state, State::Final | State::Expired)
            || req.expires <= now
            || req.signed_by(params) < req.quorum()
        {
            return None;
        }
        let mut sigs = req.sigs.clone();
        sigs.sort_by_key(|s| s.key.as_ref().map(|k| Fingerprint::of(&k.0)));
        Some(Record::new(req.body.clone(), sigs))
    }

    /// The request's record is in the chain.
    /// Marks final the requests whose record `l` holds applied — a quorum gathered
    /// elsewhere, the record came by sync, whatever this node thought of it — and returns
    /// their ids.
    pub fn final_on_chain(&mut self, l: &Ledger) -> Vec<RecordHash> {
        self.requests
            .values_mut()
            .filter(|r| r.state != State::Final && l.state().is_applied(&r.id))
            .map(|r| {
                r.state = State::Final;
                r.id
            })
            .collect()
    }

    pub fn finalized(&mut self, id: &RecordHash) {
        if let Some(r) = self.requests.get_mut(id) {
            r.state = State::Final;
        }
    }

    /// The requests still gathering signatures, as records to send again, newest first: the
    /// open requests' records for a seq not decided yet (at or beyond `next`, the network
    /// chain's next seq) — and those this node signed (its key's DER is `me`) that were
    /// superseded here but may still complete (their seq not decided; not dead): the other
    /// signers must see them to reject them, which frees this node to sign what its chain
    /// gives now (see `Signed`).
    pub fn open_records(&self, me: &[u8], next: u64, fallback: bool) -> Vec<Record> {
        let contested = |r: &SignRequest| {
            matches!(r.state, State::Superseded(_))
                && r.body.seq >= next
                && r.sigs
                    .iter()
                    .any(|s| s.key.as_ref().is_some_and(|k| k.0 == me))
                && !self.dead(&r.id, fallback)
        };
        // (One for a seq already decided is superseded at the next sweep; it is not shown
        // meanwhile.)
        let mut open: Vec<&SignRequest> = self
            .requests
            .values()
            .filter(|r| (r.state.is_open() && r.body.seq >= next) || contested(r))
            .collect();
        open.sort_by_key(|r| std::cmp::Reverse(r.created));
        open.into_iter().map(SignRequest::record).collect()
    }

    /// What to do about the (non-special) distribution of `period`, whose content the chain
    /// gives now as in `now`. An open request for it with other content was computed before
    /// records of the period reached this node (a record on its stem, a partition that
    /// healed): this node will never sign it, and waiting for it to expire would stall the
    /// period for the whole session (signers holding different records would each wait
    /// for their own) — it is marked superseded, and the chain's one proposed. Signers that
    /// hold the same records then propose the same record, and their signatures add up.
    /// `t`: this node's time.
    pub fn session(&mut self, period: u64, now: &Body, t: u64, fallback: bool) -> Session {
        let of_period = |r: &SignRequest| matches!(&r.body.content, Content::Distribute(d) if !d.special && d.period == period);
        // (A rejected request stops a session only if it is what the chain gives now — a
        // signer's node rejects, by itself, proposals its chain did not give — and only
        // while its session runs: this member said no to that record, not to the period.)
        // (Nor one so many signers rejected that it cannot complete: the same content is
        // proposed again, dated a second later — see the driver's `settle`.)
        if self.requests.values().filter(|r| of_period(r)).any(|r| {
            r.state == State::Final
                || ((r.state.is_open() || (matches!(r.state, State::Rejected(_)) && r.expires > t))
                    && r.body.content == now.content
                    && !self.dead(&r.id, fallback))
        }) {
            return Session::Busy;
        }
        let why = format!(
            "records of period {period} reached this node since: its chain gives another \
             distribution now"
        );
        let stale = self
            .requests
            .values_mut()
            .filter(|r| of_period(r) && r.state.is_open())
            .map(|r| {
                r.state = State::Superseded(why.clone());
                r.id
            })
            .collect();
        Session::Propose { stale }
    }

    /// A proposal held here for a later period's distribution at network seq `seq` than
    /// `period`, that this node may still sign once its clock gets there: pending, its
    /// session running at `t`, dated at most [`MAX_WAIT_FOR_LATER`] ahead of `t`, not dead.
    /// A signer whose clock is behind another's waits for it instead of proposing the
    /// earlier period: signers that each signed their own period's distribution for one seq
    /// would reject each other's, and with clocks a period or more apart, never sign the same
    /// one (found by the fault runs: 20-second periods, clocks up to a minute apart). Not
    /// for one dated further ahead, though the rules tolerate it: a clock set minutes forward
    /// would hold every other signer for as long (found by the fault runs too: a signer's
    /// clock jumped four minutes, proposed that period's distribution, and the others waited
    /// for it while the periods before went undistributed).
    pub fn later_proposal(
        &self,
        period: u64,
        seq: u64,
        t: u64,
        fallback: bool,
    ) -> Option<RecordHash> {
        self.requests
            .values()
            .find(|r| {
                r.state == State::Pending
                    && r.body.seq == seq
                    && matches!(&r.body.content, Content::Distribute(d) if !d.special && d.period > period)
                    && r.expires > t
                    && r.body.time <= t.saturating_add(MAX_WAIT_FOR_LATER)
                    && !self.dead(&r.id, fallback)
            })
            .map(|r| r.id)
    }

    /// The record a signer signed for `seq` (in `signed`), other than `id`, that may still
    /// complete at `now` — not dead by this book — and until when.
    pub fn signed_elsewhere(
        &self,
        signed: &Signed,
        seq: u64,
        id: &RecordHash,
        now: u64,
        fallback: bool,
    ) -> Option<(RecordHash, u64)> {
        signed.conflict(seq, id, now, |h| self.dead(h, fallback))
    }

    /// The record the signer `me` signed for `record`'s seq that keeps it from ever signing
    /// `record` in time: one that may still complete and whose promise outlasts `record`'s
    /// session (its request's expiry here, or the one it would get). Never for `me`'s own
    /// proposal (signed once the other is dead), nor for one it signed itself. A rejection
    /// is for good: a request that may still be signed before its session ends is not one
    /// to reject.
    pub fn never_in_time(
        &self,
        signed: &Signed,
        me: &str,
        record: &Record,
        now: u64,
        params: &Params,
        fallback: bool,
    ) -> Option<RecordHash> {
        let id = record.hash();
        if signed.has_signed(record.seq(), &id) {
            // (It signed this one too — the other died first: it can no longer reject it.)
            return None;
        }
        let (other, until) = self.signed_elsewhere(signed, record.seq(), &id, now, fallback)?;
        let (own, expires) = match self.get(&id) {
            Some(r) => (r.proposer == me, r.expires),
            None => (false, expiry(record.body().time, now, params)),
        };
        (!own && until > expires).then_some(other)
    }

    /// Whether request `id` can no longer gather a quorum: so many signers rejected it (each
    /// rejection a promise never to sign it) that the rest fall short.
    /// `fallback`: the deployer may stand in for a signer (com.ini), one more possible
    /// signature.
    pub fn dead(&self, id: &RecordHash, fallback: bool) -> bool {
        self.requests.get(id).is_some_and(|r| {
            let possible = r.signers.keys.len() as u64 + u64::from(fallback);
            r.rejections.len() as u64 > possible.saturating_sub(r.signers.quorum)
        })
    }

    /// The pending requests for a (regular) distribution at network seq `seq`, whatever
    /// their period, with their bodies, those with the most signatures first: those a
    /// signer's node checks against its chain again, to reject the ones records reaching it
    /// since made stale, and to sign one its clock left behind (see the driver's
    /// `check_pending`).
    pub fn pending_distributions(&self, seq: u64) -> Vec<(RecordHash, Body)> {
        let mut found: Vec<&SignRequest> = self
            .requests
            .values()
            .filter(|r| {
                r.state == State::Pending
                    && r.body.seq == seq
                    && matches!(&r.body.content, Content::Distribute(d) if !d.special && d.handover.is_none())
            })
            .collect();
        found.sort_by_key(|r| (std::cmp::Reverse(r.sigs.len()), r.created));
        found.into_iter().map(|r| (r.id, r.body.clone())).collect()
    }

    /// The pending requests for `period`'s distribution with `body`'s content (this node
    /// has not signed them), those with the most signatures first: this node's own proposal,
    /// or a peer's, left unsigned while another record this node signed for the seq could
    /// still complete.
    pub fn unsigned(&self, period: u64, body: &Body) -> Vec<RecordHash> {
        let mut found: Vec<&SignRequest> = self
            .requests
            .values()
            .filter(|r| {
                r.state == State::Pending
                    && r.body.content == body.content
                    && matches!(&r.body.content, Content::Distribute(d) if !d.special && d.period == period)
            })
            .collect();
        found.sort_by_key(|r| (std::cmp::Reverse(r.sigs.len()), r.created));
        found.into_iter().map(|r| r.id).collect()
    }

    /// Requests waiting for the member whose key is `key`: pending, and it can sign them.
    pub fn waiting_for(&self, params: &Params, key: &PublicKey) -> usize {
        self.requests
            .values()
            .filter(|r| r.state == State::Pending && can_sign(params, key, &r.body, &r.signers))
            .count()
    }

    /// `cod sign list`: newest first.
    pub fn list(&self, params: &Params, me: &PublicKey) -> RequestList {
        let mut requests: Vec<RequestView> =
            self.requests.values().map(|r| r.view(params, me)).collect();
        requests.sort_by_key(|r| std::cmp::Reverse(r.created));
        RequestList { requests }
    }
}

/// What this node signed on the network chain: per seq, each record and until when it could
/// still complete. A signer never signs two records for one network seq while the first may
/// still gather a quorum — two quorums there would fork the network chain, and what members
/// built on the losing record (a transfer claiming its payout) would be undone. (With more
/// than half the signers needed for a quorum, signers who each sign once per seq can never
/// make two.) Kept in the node's data directory, so a restart forgets nothing.
///
/// A rejection by a signer's node is a promise too: it never signs what it rejected. So a
/// record that enough signers rejected that the rest cannot make a quorum is dead, and a
/// signer that signed it is free to sign another for the seq at once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    by_seq: BTreeMap<u64, Vec<(RecordHash, u64)>>,
    #[serde(default)]
    rejected: BTreeMap<u64, Vec<RecordHash>>,
}

/// Most records rejected per seq (a promise that cannot be kept is not made). Signers whose
/// clocks disagree by periods propose a record for a seq each time their period changes, and
/// every one must be rejected to die: the fault runs used up 32 in ten minutes of 20-second
/// periods, after which the records could no longer die and the period stalled.
pub const MAX_REJECTED_PER_SEQ: usize = 256;

/// Most records signed per seq (each after the one before can no longer complete).
pub const MAX_SIGNED_PER_SEQ: usize = 256;

/// Most network seqs [`Signed`] keeps (a node signs for the seq after the chain's head).
pub const MAX_SIGNED_SEQS: usize = 64;

impl Signed {
    /// Another record signed for `seq` that may still complete at `now` (it is not `dead`),
    /// and until when.
    pub fn conflict(
        &self,
        seq: u64,
        id: &RecordHash,
        now: u64,
        dead: impl Fn(&RecordHash) -> bool,
    ) -> Option<(RecordHash, u64)> {
        self.by_seq
            .get(&seq)?
            .iter()
            .find(|(h, until)| h != id && *until > now && !dead(h))
            .copied()
    }

    /// Every record signed for the seqs kept.
    pub fn signed_ids(&self) -> impl Iterator<Item = &RecordHash> {
        self.by_seq.values().flatten().map(|(h, _)| h)
    }

    /// The records signed whose promise still holds at `now`.
    pub fn in_force(&self, now: u64) -> impl Iterator<Item = RecordHash> + '_ {
        self.by_seq
            .values()
            .flatten()
            .filter(move |(_, until)| *until > now)
            .map(|(h, _)| *h)
    }

    /// Whether `id` was signed for `seq`.
    pub fn has_signed(&self, seq: u64, id: &RecordHash) -> bool {
        self.by_seq
            .get(&seq)
            .is_some_and(|l| l.iter().any(|(h, _)| h == id))
    }

    /// Notes that this node rejects `id`, for `seq`: it never signs it. Refused if this node
    /// signed it (a rejection then would be a broken promise, and count wrongly toward its
    /// death), or if no more promises can be kept for the seq.
    pub fn reject(&mut self, seq: u64, id: RecordHash) -> Result<(), SignError> {
        if self.has_signed(seq, &id) {
            return Err(SignError::Refused(
                "this node signed this request: it can no longer reject it".into(),
            ));
        }
        let list = self.rejected.entry(seq).or_default();
        if !list.contains(&id) {
            if list.len() >= MAX_REJECTED_PER_SEQ {
                return Err(SignError::Refused(format!(
                    "this node rejected {MAX_REJECTED_PER_SEQ} records for the network's seq \
                     {seq} already, and makes no more promises there"
                )));
            }
            list.push(id);
        }
        while self.rejected.len() > MAX_SIGNED_SEQS {
            self.rejected.pop_first();
        }
        Ok(())
    }

    pub fn has_rejected(&self, seq: u64, id: &RecordHash) -> bool {
        self.rejected.get(&seq).is_some_and(|l| l.contains(id))
    }

    /// Notes a signature on `id` for `seq`, which may complete until `until`; refused if
    /// [`MAX_SIGNED_PER_SEQ`] are noted there already (a signature not noted is not made).
    pub fn note(&mut self, seq: u64, id: RecordHash, until: u64) -> Result<(), SignError> {
        let list = self.by_seq.entry(seq).or_default();
        let full = list.len() >= MAX_SIGNED_PER_SEQ;
        match list.iter_mut().find(|(h, _)| *h == id) {
            Some(entry) => entry.1 = entry.1.max(until),
            None if full => {
                return Err(SignError::Refused(format!(
                    "this node signed {MAX_SIGNED_PER_SEQ} records for the network's seq {seq} \
                     already, and signs no more there"
                )));
            }
            None => list.push((id, until)),
        }
        while self.by_seq.len() > MAX_SIGNED_SEQS {
            self.by_seq.pop_first();
        }
        Ok(())
    }

    /// Forgets the seqs the network chain decided (below `next`, its next seq).
    /// (The network's chain may also grow shorter — a lower-hash distribution taking a seq
    /// undoes what followed the other — so `next` is not a watermark.)
    pub fn prune(&mut self, next: u64) {
        self.by_seq = self.by_seq.split_off(&next);
        self.rejected = self.rejected.split_off(&next);
    }
}

/// Until when a signature on a request for a record dated `time`, expiring here at
/// `expires`, may still count: its session however late another node first saw it (from the
/// record's own time), and twice the clock skew the rules tolerate (a record may be dated
/// that far in this node's future, and another signer's clock may lag as much).
pub fn signed_until(time: u64, expires: u64, params: &Params) -> u64 {
    expires
        .max(time.saturating_add(params.com.signers.request_ttl))
        .saturating_add(2 * MAX_CLOCK_SKEW)
}

/// `reason` cut, at a character boundary, to at most [`MAX_REASON_BYTES`]: a reason this
/// node gives by itself (one quoting a recomputation may run long).
pub fn fit_reason(mut reason: String) -> String {
    while reason.len() > MAX_REASON_BYTES {
        reason.pop();
    }
    reason
}

fn check_reason(reason: &str) -> Result<(), SignError> {
    if reason.trim().is_empty() {
        return Err(SignError::Invalid("a rejection needs a reason".into()));
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(SignError::Invalid(format!(
            "a reason may be {MAX_REASON_BYTES} bytes long at most"
        )));
    }
    Ok(())
}

/// Notes `node`'s rejection once; returns whether it is new.
fn note_rejection(list: &mut Vec<Rejection>, node: &AccountId, rejection: Rejection) -> bool {
    let node_id = node.to_string();
    if list.len() >= MAX_REJECTIONS || list.iter().any(|r| r.node_id == node_id) {
        return false;
    }
    list.push(Rejection {
        node_id,
        ..rejection
    });
    true
}

#[cfg(test)]
mod tests;
