//! The ledger state and the rules that need it: chain position, claims, balances, issuance
//! and distribution. `apply_*` validate first and change nothing on error.

use super::Params;
use super::db::{Source, Table, Writes};
use super::economics::{self, Amounts, Attestations, PaidTally, Weighing};
use super::record::{
    Content, Distribute, Handover, Head, Issue, Members, Output, Record, RecordError, SignerSet,
    Transfer,
};
use super::rules;
use crate::config::com::{Admission, Formula};
use crate::ids::{AccountId, RecordHash};
use crate::keys::PublicKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountState {
    /// The account's key (member accounts, from their seq-0 record).
    #[serde(with = "key_der")]
    pub key: Option<PublicKey>,
    /// The keys that replaced it, each with the seq of the `rekey` record naming it, in chain
    /// order: the last is the key in force, which signs the account's next record and names
    /// itself in the signature.
    #[serde(with = "keys_der")]
    pub rekeys: Vec<(u64, PublicKey)>,
    /// Its last applied record.
    pub head: Option<Head>,
    pub head_time: u64,
    /// What it can spend: claimed credits minus payments (the network's whole balance).
    pub spendable: Amounts,
    /// Credits paid to it and not yet claimed.
    pub incoming: Amounts,
    /// Its opening key is one of com.ini's founders: a member unless removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub founder: bool,
    /// The network chain's last word on its membership: admitted (`members` record or
    /// vouches) or removed (`members` record). Vouches never admit a removed account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted: Option<bool>,
    /// Members whose vouches for it a checkpoint counted, short of admitting it, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vouchers: Vec<AccountId>,
    /// `pro_rata_paid`'s tally of its payments with other members.
    #[serde(default, skip_serializing_if = "PaidTally::is_empty")]
    pub tally: PaidTally,
}

impl AccountState {
    /// The key that replaced the opening key last, if any: the key in force.
    pub fn rekeyed(&self) -> Option<&PublicKey> {
        self.rekeys.last().map(|(_, k)| k)
    }

    /// The key in force after the applied record at `seq`: `None` for the opening key.
    pub fn key_after(&self, seq: u64) -> Option<&PublicKey> {
        let n = self.rekeys.partition_point(|(at, _)| *at <= seq);
        n.checked_sub(1).map(|i| &self.rekeys[i].1)
    }

    pub fn next_seq(&self) -> u64 {
        self.head.map_or(0, |h| h.seq + 1)
    }

    /// Receives distributions: admitted, or a founder not removed. (Membership comes from
    /// the network chain and the account's own opening, so it does not depend on the order
    /// they arrive in.)
    pub fn is_member(&self) -> bool {
        self.admitted.unwrap_or(self.founder)
    }
}

/// Keys as their DER in base64 (the stored state).
mod key_der {
    use super::PublicKey;
    use crate::ledger::B64;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(k: &Option<PublicKey>, s: S) -> Result<S::Ok, S::Error> {
        k.as_ref().map(|k| B64(k.der().to_vec())).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PublicKey>, D::Error> {
        Option::<B64>::deserialize(d)?
            .map(|b| PublicKey::from_der(&b.0).map_err(serde::de::Error::custom))
            .transpose()
    }
}

mod keys_der {
    use super::PublicKey;
    use crate::ledger::B64;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(k: &[(u64, PublicKey)], s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<(u64, B64)> = k.iter().map(|(n, k)| (*n, B64(k.der().to_vec()))).collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u64, PublicKey)>, D::Error> {
        Vec::<(u64, B64)>::deserialize(d)?
            .into_iter()
            .map(|(n, b)| {
                PublicKey::from_der(&b.0)
                    .map(|k| (n, k))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

/// The last distribution's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub record: RecordHash,
    pub period: u64,
    pub special: bool,
    pub heads: BTreeMap<AccountId, Head>,
}

/// Something a record needs before it can be decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dep {
    /// A record (its predecessor, a claimed credit, a checkpoint head).
    Record(RecordHash),
    /// An account's opening (a payee must exist).
    Account(AccountId),
}

impl std::fmt::Display for Dep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dep::Record(h) => write!(f, "record {h}"),
            Dep::Account(a) => write!(f, "account {a}"),
        }
    }
}

/// What grows with the history, as tables (in memory, or layered over a store). Equal when
/// their contents are, whatever the order of the application log (which is the order records
/// happened to be applied in, not part of the state).
#[derive(Clone, Debug, Default)]
pub struct Derived {
    /// Every account's state (an account never written is in its default state).
    pub accounts: Table<AccountId, AccountState>,
    /// Every applied record: hash → (account, seq).
    pub applied: Table<RecordHash, (AccountId, u64)>,
    /// The applied chains: (account, seq) → hash.
    pub chain: Table<(AccountId, u64), RecordHash>,
    /// Applied records in the order they were applied: every record after its dependencies,
    /// so a peer can replay this log front to back (fresh-node sync).
    pub log: Table<u64, RecordHash>,
    /// Credits not yet claimed: (payee, paying record) → amounts.
    pub unclaimed: Table<(AccountId, RecordHash), Amounts>,
    /// Claimed credits: (payee, paying record) → the claiming record.
    pub claimed: Table<(AccountId, RecordHash), RecordHash>,
}

impl PartialEq for Derived {
    fn eq(&self, other: &Self) -> bool {
        self.accounts == other.accounts
            && self.applied == other.applied
            && self.chain == other.chain
            && self.unclaimed == other.unclaimed
            && self.claimed == other.claimed
    }
}

impl Eq for Derived {}

/// Where [`Derived`]'s committed entries are read from.
pub struct DerivedSources {
    pub accounts: Arc<dyn Source<AccountId, AccountState>>,
    pub applied: Arc<dyn Source<RecordHash, (AccountId, u64)>>,
    pub chain: Arc<dyn Source<(AccountId, u64), RecordHash>>,
    pub log: Arc<dyn Source<u64, RecordHash>>,
    pub unclaimed: Arc<dyn Source<(AccountId, RecordHash), Amounts>>,
    pub claimed: Arc<dyn Source<(AccountId, RecordHash), RecordHash>>,
}

/// [`Derived`]'s changes since they were last taken (each: whether the stored table is
/// replaced as a whole, and the entries written or removed).
#[derive(Debug, Default)]
pub struct DerivedWrites {
    pub accounts: (bool, Writes<AccountId, AccountState>),
    pub applied: (bool, Writes<RecordHash, (AccountId, u64)>),
    pub chain: (bool, Writes<(AccountId, u64), RecordHash>),
    pub log: (bool, Writes<u64, RecordHash>),
    pub unclaimed: (bool, Writes<(AccountId, RecordHash), Amounts>),
    pub claimed: (bool, Writes<(AccountId, RecordHash), RecordHash>),
}

impl Derived {
    pub fn over(s: DerivedSources) -> Self {
        Self {
            accounts: Table::over(s.accounts),
            applied: Table::over(s.applied),
            chain: Table::over(s.chain),
            log: Table::over(s.log),
            unclaimed: Table::over(s.unclaimed),
            claimed: Table::over(s.claimed),
        }
    }

    fn fresh(&self) -> Self {
        Self {
            accounts: self.accounts.fresh(),
            applied: self.applied.fresh(),
            chain: self.chain.fresh(),
            log: self.log.fresh(),
            unclaimed: self.unclaimed.fresh(),
            claimed: self.claimed.fresh(),
        }
    }

    fn take_writes(&mut self) -> DerivedWrites {
        DerivedWrites {
            accounts: self.accounts.take_writes(),
            applied: self.applied.take_writes(),
            chain: self.chain.take_writes(),
            log: self.log.take_writes(),
            unclaimed: self.unclaimed.take_writes(),
            claimed: self.claimed.take_writes(),
        }
    }
}

/// The part of the state that does not grow with the history (but with the accounts and the
/// signer changes): what a store keeps besides the tables and the accounts, so a node
/// resumes without replaying its records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub applied: u64,
    /// Accounts with a stored state.
    pub accounts: u64,
    pub issued: Amounts,
    pub attest: Attestations,
    pub checkpoint: Option<Checkpoint>,
    pub last_period: Option<u64>,
    pub net_at_cut: Amounts,
    pub issued_since_cut: Amounts,
    pub signers: SignerSet,
    pub signer_history: Vec<(u64, SignerSet)>,
    pub handover: Option<Handover>,
    #[serde(default)]
    pub redeemed: Amounts,
    #[serde(default)]
    pub redeemed_at_cut: Amounts,
    #[serde(default)]
    pub work_period: u64,
    #[serde(default)]
    pub work_in_period: BTreeMap<String, u64>,
    #[serde(default)]
    pub work_since_cut: BTreeMap<AccountId, Amounts>,
    #[serde(default)]
    pub members: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    network: AccountId,
    t: Derived,
    /// Records applied (the length of the log).
    applied_n: u64,
    /// Entries in `t.accounts`.
    accounts_n: u64,
    /// Total issued per asset: the circulation.
    pub issued: Amounts,
    pub attest: Attestations,
    pub checkpoint: Option<Checkpoint>,
    /// The last regular (period-closing) distribution's period.
    pub last_period: Option<u64>,
    /// Network balance at the last checkpoint, after its payouts.
    net_at_cut: Amounts,
    /// Issued since the last checkpoint.
    issued_since_cut: Amounts,
    /// The signer set in force for the next network record: com.ini's, until a `signers`
    /// record replaces it.
    pub signers: SignerSet,
    /// Every set the network chain had, with the seq from which it was in force (com.ini's
    /// from 0), so the set in force at any seq is known (fork candidates need it).
    signer_history: Vec<(u64, SignerSet)>,
    /// The last handover, if the ledger was handed over (its checkpoint is `checkpoint`).
    pub handover: Option<Handover>,
    /// Total redeemed per asset: coins paid back for delivered products, out of circulation.
    pub redeemed: Amounts,
    /// Redeemed by the records the checkpoints hold (what issuance counts: the network
    /// chain orders it).
    redeemed_at_cut: Amounts,
    /// The period `work_in_period` counts, and per labor or capacity item the quantity
    /// issuance attested as somebody's work in it.
    work_period: u64,
    work_in_period: BTreeMap<String, u64>,
    /// Value of the work attested since the last checkpoint, per account and asset.
    work_since_cut: BTreeMap<AccountId, Amounts>,
    /// Member accounts.
    members_n: u64,
}

/// What a distribution settles at its checkpoint (see [`State::settlement`]).
#[derive(Debug, Default)]
pub struct Settlement {
    pub payouts: Vec<Output>,
    /// Accounts the vouches admit.
    pub admitted: Vec<AccountId>,
    /// Account states that change: admissions, vouches still short, tallies.
    accounts: Vec<(AccountId, AccountState)>,
    /// Redeemed by the records the checkpoint adds: value, and quantity per item.
    redeemed: Amounts,
    redeemed_items: BTreeMap<String, u64>,
    /// The network's balance at the checkpoint, before the payouts.
    pub pool: Amounts,
}

fn add_into(into: &mut Amounts, from: &Amounts) -> Result<(), RecordError> {
    for (asset, v) in from {
        let slot = into.entry(asset.clone()).or_insert(0);
        *slot = slot.checked_add(*v).ok_or(RecordError::Overflow)?;
    }
    Ok(())
}

fn add_one(into: &mut Amounts, asset: &str, v: u64) -> Result<(), RecordError> {
    let slot = into.entry(asset.to_string()).or_insert(0);
    *slot = slot.checked_add(v).ok_or(RecordError::Overflow)?;
    Ok(())
}

fn sub_one(from: &mut Amounts, asset: &str, v: u64) {
    let slot = from.entry(asset.to_string()).or_insert(0);
    *slot = slot
        .checked_sub(v)
        .expect("callers check balances before subtracting");
    if *slot == 0 {
        from.remove(asset);
    }
}

/// What `r` paid `payee`, per asset (the credit a claim of `r` by `payee` takes); `None` on
/// overflow.
pub fn credited_to(r: &Record, payee: &AccountId) -> Option<Amounts> {
    let mut paid = Amounts::new();
    for o in r
        .body()
        .content
        .outputs()
        .iter()
        .filter(|o| o.account == *payee)
    {
        add_one(&mut paid, &o.asset, o.amount).ok()?;
    }
    Some(paid)
}

/// Subtracts `v` of `asset` from `from` (an empty entry goes); `None` if it holds less.
fn take_one(from: &mut Amounts, asset: &str, v: u64) -> Option<()> {
    let slot = from.get_mut(asset)?;
    *slot = slot.checked_sub(v)?;
    if *slot == 0 {
        from.remove(asset);
    }
    Some(())
}

/// `a − b` per asset (`b` never exceeds `a` where it is used: redeemed coins were issued).
fn minus(a: &Amounts, b: &Amounts) -> Amounts {
    a.iter()
        .filter_map(|(asset, v)| {
            let left = v.saturating_sub(b.get(asset).copied().unwrap_or(0));
            (left > 0).then(|| (asset.clone(), left))
        })
        .collect()
}

fn sum_outputs(outputs: &[Output]) -> Result<Amounts, RecordError> {
    let mut s = Amounts::new();
    for o in outputs {
        add_one(&mut s, &o.asset, o.amount)?;
    }
    Ok(s)
}

impl State {
    pub fn genesis(p: &Params) -> Self {
        Self::genesis_with(p, Derived::default())
    }

    /// The state before any record, keeping its tables where this one keeps them (the full
    /// computation replaces this state with it).
    pub fn fresh(&self, p: &Params) -> Self {
        Self::genesis_with(p, self.t.fresh())
    }

    /// A state as stored: its summary and its tables' sources.
    pub fn resume(p: &Params, summary: Summary, sources: DerivedSources) -> Self {
        Self {
            network: p.network,
            t: Derived::over(sources),
            applied_n: summary.applied,
            accounts_n: summary.accounts,
            issued: summary.issued,
            attest: summary.attest,
            checkpoint: summary.checkpoint,
            last_period: summary.last_period,
            net_at_cut: summary.net_at_cut,
            issued_since_cut: summary.issued_since_cut,
            signers: summary.signers,
            signer_history: summary.signer_history,
            handover: summary.handover,
            redeemed: summary.redeemed,
            redeemed_at_cut: summary.redeemed_at_cut,
            work_period: summary.work_period,
            work_in_period: summary.work_in_period,
            work_since_cut: summary.work_since_cut,
            members_n: summary.members,
        }
    }

    /// What a store keeps besides the tables.
    pub fn summary(&self) -> Summary {
        Summary {
            applied: self.applied_n,
            accounts: self.accounts_n,
            issued: self.issued.clone(),
            attest: self.attest.clone(),
            checkpoint: self.checkpoint.clone(),
            last_period: self.last_period,
            net_at_cut: self.net_at_cut.clone(),
            issued_since_cut: self.issued_since_cut.clone(),
            signers: self.signers.clone(),
            signer_history: self.signer_history.clone(),
            handover: self.handover.clone(),
            redeemed: self.redeemed.clone(),
            redeemed_at_cut: self.redeemed_at_cut.clone(),
            work_period: self.work_period,
            work_in_period: self.work_in_period.clone(),
            work_since_cut: self.work_since_cut.clone(),
            members: self.members_n,
        }
    }

    /// The tables' changes since they were last taken (see [`Table::take_writes`]).
    pub fn take_writes(&mut self) -> DerivedWrites {
        self.t.take_writes()
    }

    /// Puts back changes whose commit failed (see [`Table::restore`]).
    pub fn restore_writes(&mut self, w: DerivedWrites) {
        self.t.accounts.restore(w.accounts);
        self.t.applied.restore(w.applied);
        self.t.chain.restore(w.chain);
        self.t.log.restore(w.log);
        self.t.unclaimed.restore(w.unclaimed);
        self.t.claimed.restore(w.claimed);
    }

    fn genesis_with(p: &Params, t: Derived) -> Self {
        let first = SignerSet {
            keys: p.com.signers.keys.iter().copied().collect(),
            quorum: p.com.signers.quorum as u64,
        };
        Self {
            network: p.network,
            t,
            applied_n: 0,
            accounts_n: 0,
            issued: Amounts::new(),
            attest: Attestations::new(),
            checkpoint: None,
            last_period: None,
            net_at_cut: Amounts::new(),
            issued_since_cut: Amounts::new(),
            signers: first.clone(),
            signer_history: vec![(0, first)],
            handover: None,
            redeemed: Amounts::new(),
            redeemed_at_cut: Amounts::new(),
            work_period: 0,
            work_in_period: BTreeMap::new(),
            work_since_cut: BTreeMap::new(),
            members_n: 0,
        }
    }

    /// Handed over to newer rules than `p`'s: only what the checkpoint holds stays.
    fn check_frozen(&self, r: &Record, p: &Params) -> Result<(), RecordError> {
        let Some(h) = self.frozen(p) else {
            return Ok(());
        };
        let held = r.account() != self.network
            && self
                .checkpoint
                .as_ref()
                .and_then(|c| c.heads.get(&r.account()))
                .is_some_and(|head| r.seq() <= head.seq);
        if held {
            return Ok(());
        }
        Err(RecordError::HandedOver {
            to: h.to,
            version: h.version.clone(),
            rules: h.rules,
        })
    }

    /// The signer set in force for the network record at `seq` (beyond the chain's head: the
    /// latest).
    pub fn signers_at(&self, seq: u64) -> &SignerSet {
        self.signer_history
            .iter()
            .rev()
            .find(|(from, _)| *from <= seq)
            .map_or(&self.signers, |(_, set)| set)
    }

    /// The handover that stops this node (its rules are older than the handover's), if any.
    pub fn frozen(&self, p: &Params) -> Option<&Handover> {
        self.handover.as_ref().filter(|h| p.rules < h.rules)
    }

    pub fn is_applied(&self, h: &RecordHash) -> bool {
        self.t.applied.contains(h)
    }

    /// (account, seq) of an applied record.
    pub fn position(&self, h: &RecordHash) -> Option<(AccountId, u64)> {
        self.t.applied.get(h)
    }

    pub fn applied_count(&self) -> usize {
        self.applied_n as usize
    }

    /// The applied record at (account, seq).
    pub fn applied_at(&self, a: &AccountId, seq: u64) -> Option<RecordHash> {
        self.t.chain.get(&(*a, seq))
    }

    /// Applied records of an account from seq `from` on, in seq order, at most `limit`.
    pub fn chain_of(&self, a: &AccountId, from: u64, limit: usize) -> Vec<(u64, RecordHash)> {
        self.t
            .chain
            .range(
                Bound::Included(&(*a, from)),
                Bound::Included(&(*a, u64::MAX)),
                limit,
            )
            .into_iter()
            .map(|((_, seq), h)| (seq, h))
            .collect()
    }

    /// Positions `from..` of the application log, at most `limit`.
    pub fn log(&self, from: u64, limit: usize) -> Vec<RecordHash> {
        self.t
            .log
            .range(Bound::Included(&from), Bound::Unbounded, limit)
            .into_iter()
            .map(|(_, h)| h)
            .collect()
    }

    pub fn is_open(&self, a: &AccountId) -> bool {
        *a == self.network || self.t.accounts.get(a).is_some_and(|s| s.head.is_some())
    }

    /// An account's state: `None` for an account the ledger never saw (the network account
    /// always is).
    pub fn account(&self, a: &AccountId) -> Option<AccountState> {
        match self.t.accounts.get(a) {
            None if *a == self.network => Some(AccountState::default()),
            found => found,
        }
    }

    /// Every account the ledger saw, in id order (read from the store: as many as there are
    /// accounts).
    pub fn accounts(&self) -> Vec<(AccountId, AccountState)> {
        self.accounts_between(Bound::Unbounded, Bound::Unbounded)
    }

    /// The accounts whose id begins with the byte `b` (a sync bucket), in id order.
    pub fn accounts_in_bucket(&self, b: u8) -> Vec<(AccountId, AccountState)> {
        let (mut lo, mut hi) = ([0; 32], [0xff; 32]);
        (lo[0], hi[0]) = (b, b);
        let (lo, hi) = (AccountId::from_bytes(lo), AccountId::from_bytes(hi));
        self.accounts_between(Bound::Included(&lo), Bound::Included(&hi))
    }

    fn accounts_between(
        &self,
        lo: Bound<&AccountId>,
        hi: Bound<&AccountId>,
    ) -> Vec<(AccountId, AccountState)> {
        let mut found = self.t.accounts.range(lo, hi, usize::MAX);
        if std::ops::RangeBounds::contains(&(lo, hi), &self.network)
            && let Err(at) = found.binary_search_by_key(&self.network, |(a, _)| *a)
        {
            found.insert(at, (self.network, AccountState::default()));
        }
        found
    }

    /// How many accounts the ledger saw (the network's among them).
    pub fn account_count(&self) -> usize {
        let network = usize::from(!self.t.accounts.contains(&self.network));
        self.accounts_n as usize + network
    }

    /// Changes an account's state (a default one if it had none).
    fn update<R>(&mut self, a: AccountId, f: impl FnOnce(&mut AccountState) -> R) -> R {
        let found = self.t.accounts.get(&a);
        let new = found.is_none();
        let mut s = found.unwrap_or_default();
        let out = f(&mut s);
        self.put_account(a, s, new);
        out
    }

    /// Stores an account's state; `new` if it had none stored.
    fn put_account(&mut self, a: AccountId, s: AccountState, new: bool) {
        self.accounts_n += u64::from(new);
        self.t.accounts.insert(a, s);
    }

    /// Unclaimed credits of an account: (paying record, amounts), at most `limit`.
    pub fn credits_of(&self, a: &AccountId, limit: usize) -> Vec<(RecordHash, Amounts)> {
        self.t
            .unclaimed
            .range(
                Bound::Included(&(*a, RecordHash::from_bytes([0; 32]))),
                Bound::Included(&(*a, RecordHash::from_bytes([0xff; 32]))),
                limit,
            )
            .into_iter()
            .map(|((_, h), v)| (h, v))
            .collect()
    }

    /// Every applied record that paid `payee` (a member), claimed or not.
    pub fn paid_to(&self, payee: &AccountId) -> Vec<RecordHash> {
        let lo = (*payee, RecordHash::from_bytes([0; 32]));
        let hi = (*payee, RecordHash::from_bytes([0xff; 32]));
        let (lo, hi) = (Bound::Included(&lo), Bound::Included(&hi));
        let mut out: Vec<RecordHash> = self
            .t
            .unclaimed
            .range(lo, hi, usize::MAX)
            .into_iter()
            .map(|((_, h), _)| h)
            .collect();
        out.extend(
            self.t
                .claimed
                .range(lo, hi, usize::MAX)
                .into_iter()
                .map(|((_, h), _)| h),
        );
        out
    }

    /// The applied record that claimed the credit `paying` made to `payee`, if one did.
    pub fn claimer(&self, payee: &AccountId, paying: &RecordHash) -> Option<RecordHash> {
        self.t.claimed.get(&(*payee, *paying))
    }

    /// Undoes [`State::apply`] of `r`: a member transfer beyond its account's opening, which
    /// is its account's head, whose credits nobody claimed. `prev_time` is its predecessor's
    /// time; `claimed`, the credits its claims took (what each paying record paid this
    /// account). Afterwards the state is the one before `r` applied, except the application
    /// log, which the caller rewrites ([`State::rewrite_log`]). `None` if `r` is not such a
    /// record or the state does not hold what it gave (then the caller recomputes the state
    /// from scratch: what this changed is discarded with it).
    pub fn unapply_transfer(
        &mut self,
        r: &Record,
        prev_time: u64,
        claimed: &[(RecordHash, Amounts)],
    ) -> Option<()> {
        let (a, seq, h) = (r.account(), r.seq(), r.hash());
        let Content::Transfer(t) = &r.body().content else {
            return None;
        };
        if !t.redeem.is_empty() {
            return None;
        }
        let prev = r.body().prev?;
        if a == self.network || seq == 0 || self.applied_at(&a, seq) != Some(h) {
            return None;
        }
        // Its credits go back.
        for o in &t.outputs {
            if o.account != self.network {
                let key = (o.account, h);
                let mut credit = self.t.unclaimed.get(&key)?;
                take_one(&mut credit, &o.asset, o.amount)?;
                if credit.is_empty() {
                    self.t.unclaimed.remove(&key);
                } else {
                    self.t.unclaimed.insert(key, credit);
                }
            }
            let mut payee = self.t.accounts.get(&o.account)?;
            let held = if o.account == self.network {
                &mut payee.spendable
            } else {
                &mut payee.incoming
            };
            take_one(held, &o.asset, o.amount)?;
            self.t.accounts.insert(o.account, payee);
        }
        // What it spent comes back, what it claimed waits again.
        let mut acct = self.t.accounts.get(&a)?;
        if acct.head.map(|x| x.hash) != Some(h) {
            return None;
        }
        add_into(&mut acct.spendable, &sum_outputs(&t.outputs).ok()?).ok()?;
        for (c, amounts) in claimed {
            if self.t.claimed.remove(&(a, *c)) != Some(h) {
                return None;
            }
            for (asset, v) in amounts {
                take_one(&mut acct.spendable, asset, *v)?;
            }
            add_into(&mut acct.incoming, amounts).ok()?;
            self.t.unclaimed.insert((a, *c), amounts.clone());
        }
        if acct.rekeys.last().is_some_and(|(at, _)| *at == seq) {
            acct.rekeys.pop();
        }
        acct.head = Some(Head {
            hash: prev,
            seq: seq - 1,
        });
        acct.head_time = prev_time;
        self.t.accounts.insert(a, acct);
        self.t.applied.remove(&h);
        self.t.chain.remove(&(a, seq));
        Some(())
    }

    /// Replaces the application log from position `from` on with `keep`, in that order
    /// (records applied after `from` that were not undone).
    pub fn rewrite_log(&mut self, from: u64, keep: &[RecordHash]) {
        for at in from..self.applied_n {
            self.t.log.remove(&at);
        }
        for (at, h) in (from..).zip(keep) {
            self.t.log.insert(at, *h);
        }
        self.applied_n = from + keep.len() as u64;
    }

    /// The coins outstanding per asset: issued and not redeemed. Every balance adds up to it.
    pub fn outstanding(&self) -> Amounts {
        minus(&self.issued, &self.redeemed)
    }

    /// The circulation issuance counts: issued, less what the checkpoints saw redeemed (a
    /// redemption counts once a distribution's checkpoint holds it, so every node agrees on
    /// the issuance whatever order member records arrived in).
    pub fn circulation(&self) -> Amounts {
        minus(&self.issued, &self.redeemed_at_cut)
    }

    /// How many member accounts there are.
    pub fn member_count(&self) -> u64 {
        self.members_n
    }

    /// The value of the work attested since the last checkpoint, per account.
    pub fn work_since_cut(&self) -> &BTreeMap<AccountId, Amounts> {
        &self.work_since_cut
    }

    /// Sum of every balance (spendable + incoming) per asset; equals [`State::outstanding`]
    /// always.
    pub fn total_balances(&self) -> Amounts {
        let mut t = Amounts::new();
        for (_, s) in self.accounts() {
            add_into(&mut t, &s.spendable).expect("balances never exceed issuance");
            add_into(&mut t, &s.incoming).expect("balances never exceed issuance");
        }
        t
    }

    /// What `r` still needs before it can be decided (empty: it can be applied or refused now).
    pub fn missing(&self, r: &Record) -> Vec<Dep> {
        let mut deps = Vec::new();
        if let Some(prev) = r.body().prev
            && !self.is_applied(&prev)
        {
            deps.push(Dep::Record(prev));
        }
        match &r.body().content {
            Content::Transfer(t) => {
                deps.extend(
                    t.claims
                        .iter()
                        .filter(|c| !self.is_applied(c))
                        .map(|c| Dep::Record(*c)),
                );
                deps.extend(
                    t.outputs
                        .iter()
                        .map(|o| &o.account)
                        .chain(&t.vouch)
                        .filter(|a| !self.is_open(a))
                        .map(|a| Dep::Account(*a)),
                );
            }
            Content::Distribute(d) => {
                deps.extend(
                    d.heads
                        .values()
                        .filter(|h| !self.is_applied(&h.hash))
                        .map(|h| Dep::Record(h.hash)),
                );
            }
            // Network records never wait for member records beyond a checkpoint (the full
            // computation decides the network chain first): membership changes and work may
            // name accounts not opened yet.
            Content::Issue(_) | Content::Members(_) | Content::Signers(_) => {}
        }
        deps.sort();
        deps.dedup();
        deps
    }

    fn check_position(&self, r: &Record) -> Result<(), RecordError> {
        let acct = self.t.accounts.get(&r.account());
        let next = acct.as_ref().map_or(0, |a| a.next_seq());
        if r.seq() != next {
            return Err(RecordError::NotNext { seq: r.seq(), next });
        }
        if let Some(a) = acct
            && let Some(head) = a.head
        {
            let prev = r.body().prev.expect("form: seq > 0 has prev");
            if prev != head.hash {
                return Err(RecordError::WrongPrev {
                    prev,
                    head: head.hash,
                });
            }
            if r.body().time < a.head_time {
                return Err(RecordError::TimeBackwards {
                    time: r.body().time,
                    prev_time: a.head_time,
                });
            }
        }
        Ok(())
    }

    fn advance(&mut self, r: &Record) {
        self.update(r.account(), |acct| {
            acct.head = Some(Head {
                hash: r.hash(),
                seq: r.seq(),
            });
            acct.head_time = r.body().time;
        });
        self.t.applied.insert(r.hash(), (r.account(), r.seq()));
        self.t.chain.insert((r.account(), r.seq()), r.hash());
        self.t.log.insert(self.applied_n, r.hash());
        self.applied_n += 1;
    }

    fn credit(&mut self, r: &Record, outputs: &[Output]) -> Result<(), RecordError> {
        for o in outputs {
            if o.account == self.network {
                self.update(o.account, |s| add_one(&mut s.spendable, &o.asset, o.amount))?;
            } else {
                let key = (o.account, r.hash());
                let mut credit = self.t.unclaimed.get(&key).unwrap_or_default();
                add_one(&mut credit, &o.asset, o.amount)?;
                self.t.unclaimed.insert(key, credit);
                self.update(o.account, |s| add_one(&mut s.incoming, &o.asset, o.amount))?;
            }
        }
        Ok(())
    }

    /// Applies a record whose dependencies are applied (see [`State::missing`]);
    /// `period_records` are the records a distribution's checkpoint adds (see `Ledger`).
    pub fn apply(
        &mut self,
        r: &Record,
        p: &Params,
        key: Option<&PublicKey>,
        period_records: &[Arc<Record>],
    ) -> Result<(), RecordError> {
        if r.account() == self.network {
            // Network records need a quorum of the set in force before them.
            self.check_position(r)?;
            rules::check_quorum(r, p, &self.signers)?;
        }
        self.apply_proposal(r, p, key, period_records)
    }

    /// [`State::apply`] without the quorum: whether an unsigned network record would apply
    /// (a proposal gathers its signatures afterwards).
    pub fn apply_proposal(
        &mut self,
        r: &Record,
        p: &Params,
        key: Option<&PublicKey>,
        period_records: &[Arc<Record>],
    ) -> Result<(), RecordError> {
        self.check_frozen(r, p)?;
        match &r.body().content {
            Content::Transfer(t) => self.apply_transfer(r, t, p, key),
            Content::Issue(i) => self.apply_issue(r, i, p),
            Content::Members(m) => self.apply_members(r, m),
            Content::Distribute(d) => self.apply_distribution(r, d, p, period_records),
            Content::Signers(set) => {
                self.signers = set.clone();
                self.signer_history.push((r.seq() + 1, set.clone()));
                self.advance(r);
                Ok(())
            }
        }
    }

    fn apply_transfer(
        &mut self,
        r: &Record,
        t: &Transfer,
        p: &Params,
        key: Option<&PublicKey>,
    ) -> Result<(), RecordError> {
        self.check_position(r)?;
        let a = r.account();
        let found = self.t.accounts.get(&a);
        let new = found.is_none();
        let mut acct = found.unwrap_or_default();
        let rekeyed = acct.rekeyed();
        let named = r.sigs().first().and_then(|s| s.key.as_ref());
        let signed_in_force = match (named, rekeyed) {
            (None, None) => true,
            (Some(der), Some(k)) => der.0 == k.der(),
            _ => r.seq() == 0,
        };
        if !signed_in_force {
            let in_force = rekeyed.or(acct.key.as_ref());
            return Err(RecordError::WrongKey {
                in_force: in_force.map_or("unknown".into(), |k| k.fingerprint().to_string()),
            });
        }
        let rekey = match &t.rekey {
            Some(der) => {
                Some(PublicKey::from_der(&der.0).map_err(|e| RecordError::BadKey(e.to_string()))?)
            }
            None => None,
        };
        let mut gain = Amounts::new();
        for c in &t.claims {
            if self.t.claimed.contains(&(a, *c)) {
                return Err(RecordError::AlreadyClaimed(*c));
            }
            let amounts = self
                .t
                .unclaimed
                .get(&(a, *c))
                .ok_or(RecordError::NotACredit(*c))?;
            add_into(&mut gain, &amounts)?;
        }
        if let Some(a) = t
            .outputs
            .iter()
            .map(|o| &o.account)
            .chain(&t.vouch)
            .find(|a| !self.is_open(a))
        {
            return Err(RecordError::NoSuchAccount(*a));
        }
        let redeemed = economics::value_of(&p.com, &t.redeem).ok_or(RecordError::Overflow)?;
        let mut redeemed_total = self.redeemed.clone();
        add_into(&mut redeemed_total, &redeemed)?;
        let mut available = acct.spendable.clone();
        add_into(&mut available, &gain)?;
        let mut spent = sum_outputs(&t.outputs)?;
        add_into(&mut spent, &redeemed)?;
        for (asset, wanted) in spent {
            let held = available.get(&asset).copied().unwrap_or(0);
            if held < wanted {
                return Err(RecordError::Overspend {
                    asset,
                    held,
                    wanted,
                });
            }
        }
        // Valid: change the state.
        for c in &t.claims {
            let amounts = self.t.unclaimed.remove(&(a, *c)).expect("checked above");
            for (asset, v) in &amounts {
                sub_one(&mut acct.incoming, asset, *v);
            }
            add_into(&mut acct.spendable, &amounts)?;
            self.t.claimed.insert((a, *c), r.hash());
        }
        for o in &t.outputs {
            sub_one(&mut acct.spendable, &o.asset, o.amount);
        }
        for (asset, v) in &redeemed {
            sub_one(&mut acct.spendable, asset, *v);
        }
        self.redeemed = redeemed_total;
        if let Some(k) = key
            && acct.key.is_none()
        {
            acct.key = Some(k.clone());
            if p.com.membership.founders.contains(&k.fingerprint()) {
                let was = acct.is_member();
                acct.founder = true;
                self.members_n += u64::from(acct.is_member() && !was);
            }
        }
        if let Some(k) = rekey {
            acct.rekeys.push((r.seq(), k));
        }
        self.put_account(a, acct, new);
        self.advance(r);
        self.credit(r, &t.outputs)
    }

    fn apply_issue(&mut self, r: &Record, i: &Issue, p: &Params) -> Result<(), RecordError> {
        self.check_position(r)?;
        let expected_period = p.com.period_of(r.body().time);
        if i.period != expected_period {
            return Err(RecordError::IssuePeriod {
                found: i.period,
                expected: expected_period,
            });
        }
        let mut attest = self.attest.clone();
        for (item, qty) in &i.attest {
            attest.insert(item.clone(), (*qty, i.period));
        }
        // Work named per member never exceeds the supply attested for its period.
        let mut work_in_period = if self.work_period == i.period {
            self.work_in_period.clone()
        } else {
            BTreeMap::new()
        };
        let mut work_since_cut = self.work_since_cut.clone();
        for (account, items) in &i.work {
            for (item, qty) in items {
                let slot = work_in_period.entry(item.clone()).or_insert(0);
                *slot = slot.checked_add(*qty).ok_or(RecordError::Overflow)?;
            }
            let value = economics::value_of(&p.com, items).ok_or(RecordError::Overflow)?;
            add_into(work_since_cut.entry(*account).or_default(), &value)?;
        }
        for item in i.work.values().flat_map(|items| items.keys()) {
            let attested = attest
                .get(item)
                .filter(|(_, at)| *at == i.period)
                .map_or(0, |(q, _)| *q);
            if work_in_period[item] > attested {
                return Err(RecordError::WorkExceedsAttested {
                    item: item.clone(),
                    work: work_in_period[item],
                    attested,
                });
            }
        }
        let expected = economics::issuance(&p.com, &attest, i.period, &self.circulation())
            .ok_or(RecordError::Overflow)?;
        // Something to issue, or work to name (labor attested once circulation already
        // meets the backing still says who did it).
        if expected.is_empty() && i.work.is_empty() {
            return Err(RecordError::NothingToIssue);
        }
        if expected != i.amounts {
            return Err(RecordError::IssueAmounts {
                found: i.amounts.clone(),
                expected,
            });
        }
        let mut issued = self.issued.clone();
        add_into(&mut issued, &i.amounts)?;
        self.issued = issued;
        self.attest = attest;
        if !i.work.is_empty() {
            self.work_period = i.period;
            self.work_in_period = work_in_period;
            self.work_since_cut = work_since_cut;
        }
        add_into(&mut self.issued_since_cut, &i.amounts)?;
        self.update(self.network, |s| add_into(&mut s.spendable, &i.amounts))?;
        self.advance(r);
        Ok(())
    }

    /// What a distribution with these heads and period records settles — payouts,
    /// admissions, tallies — shared by the node that proposes one and every node that
    /// checks one.
    pub fn settlement(
        &self,
        d: &Distribute,
        p: &Params,
        period_records: &[Arc<Record>],
    ) -> Result<Settlement, RecordError> {
        // The checkpoint extends the previous one.
        if let Some(cp) = &self.checkpoint {
            for (a, old) in &cp.heads {
                match d.heads.get(a) {
                    None => return Err(RecordError::HeadOmitted(*a)),
                    Some(new) if new.seq < old.seq => return Err(RecordError::HeadRegresses(*a)),
                    Some(_) => {}
                }
            }
        }
        for (a, h) in &d.heads {
            if self.position(&h.hash) != Some((*a, h.seq)) {
                return Err(RecordError::HeadInvalid(*a));
            }
        }
        // The cut is closed: what its records need is inside it.
        let in_cut = |h: &RecordHash| match self.position(h) {
            Some((acct, seq)) => {
                acct == self.network || d.heads.get(&acct).is_some_and(|head| seq <= head.seq)
            }
            None => false,
        };
        let mut income = Amounts::new();
        let mut redeemed = Amounts::new();
        let mut redeemed_items: BTreeMap<String, u64> = BTreeMap::new();
        let mut vouches: Vec<(AccountId, AccountId)> = Vec::new();
        for rec in period_records {
            if let Some(c) = rec
                .body()
                .prev
                .iter()
                .chain(claims_of(rec))
                .find(|c| !in_cut(c))
            {
                return Err(RecordError::CutNotClosed {
                    record: rec.hash(),
                    missing: format!("record {c}"),
                });
            }
            let outside = rec
                .body()
                .content
                .outputs()
                .iter()
                .map(|o| o.account)
                .chain(vouches_of(rec).iter().copied())
                .find(|a| *a != self.network && !d.heads.contains_key(a));
            if let Some(a) = outside {
                return Err(RecordError::CutNotClosed {
                    record: rec.hash(),
                    missing: format!("account {a}"),
                });
            }
            for o in rec.body().content.outputs() {
                if o.account == self.network {
                    add_one(&mut income, &o.asset, o.amount)?;
                }
            }
            if let Content::Transfer(t) = &rec.body().content {
                let v = economics::value_of(&p.com, &t.redeem).ok_or(RecordError::Overflow)?;
                add_into(&mut redeemed, &v)?;
                add_into(&mut redeemed_items, &t.redeem)?;
                vouches.extend(t.vouch.iter().map(|c| (rec.account(), *c)));
            }
        }
        // The members at the checkpoint, and the accounts the vouches admit (a fixed point:
        // a member admitted here vouches for the next).
        let mut states: BTreeMap<AccountId, AccountState> = BTreeMap::new();
        let mut members: BTreeMap<AccountId, crate::ids::Fingerprint> = BTreeMap::new();
        for a in d.heads.keys() {
            let Some(st) = self.t.accounts.get(a) else {
                continue;
            };
            if st.is_member()
                && let Some(k) = &st.key
            {
                members.insert(*a, k.fingerprint());
            }
            states.insert(*a, st);
        }
        let mut changed: BTreeSet<AccountId> = BTreeSet::new();
        let mut admitted = Vec::new();
        if let Admission::Sponsors(need) = p.com.membership.admission {
            let mut pending: BTreeMap<AccountId, BTreeSet<AccountId>> = BTreeMap::new();
            for (a, st) in &states {
                if !st.vouchers.is_empty() {
                    pending.insert(*a, st.vouchers.iter().copied().collect());
                }
            }
            for (voucher, candidate) in vouches {
                pending.entry(candidate).or_default().insert(voucher);
            }
            pending.retain(|c, _| {
                states
                    .get(c)
                    .is_some_and(|s| !s.is_member() && s.admitted != Some(false))
            });
            let mut member_set: BTreeSet<AccountId> = members.keys().copied().collect();
            let (now, waiting) = economics::sponsor(need, &mut member_set, pending);
            for c in &now {
                let st = states.get_mut(c).expect("candidates have states");
                st.admitted = Some(true);
                st.vouchers.clear();
                if let Some(k) = &st.key {
                    members.insert(*c, k.fingerprint());
                }
                changed.insert(*c);
            }
            for (a, st) in states.iter_mut() {
                if now.binary_search(a).is_ok() {
                    continue;
                }
                let kept = waiting.get(a).cloned().unwrap_or_default();
                if st.vouchers != kept {
                    st.vouchers = kept;
                    changed.insert(*a);
                }
            }
            admitted = now;
        }
        // pro_rata_paid: what members paid members raises the payees' tallies; what a member
        // paid anyone but the network lowers its own (so coins sent round through keys that
        // are no members weigh nothing).
        let mut gains = BTreeMap::new();
        if p.com.distribution.formula == Formula::ProRataPaid {
            let mut flows: BTreeMap<AccountId, (Amounts, Amounts)> = BTreeMap::new();
            for rec in period_records {
                if !members.contains_key(&rec.account()) {
                    continue;
                }
                for o in rec.body().content.outputs() {
                    if o.account == self.network {
                        continue;
                    }
                    if members.contains_key(&o.account) {
                        add_one(
                            &mut flows.entry(o.account).or_default().0,
                            &o.asset,
                            o.amount,
                        )?;
                    }
                    add_one(
                        &mut flows.entry(rec.account()).or_default().1,
                        &o.asset,
                        o.amount,
                    )?;
                }
            }
            for (a, (received, paid)) in flows {
                let st = states.get_mut(&a).expect("members have states");
                let gain = economics::net_gain(&mut st.tally, &received, &paid)
                    .ok_or(RecordError::Overflow)?;
                changed.insert(a);
                gains.insert(a, gain);
            }
        }
        let mut pool = self.net_at_cut.clone();
        add_into(&mut pool, &self.issued_since_cut)?;
        add_into(&mut pool, &income)?;
        let weighing = Weighing {
            members,
            gains,
            work: self.work_since_cut.clone(),
        };
        let payouts = economics::payouts(&p.com, &pool, &weighing)
            .into_iter()
            .map(|(account, asset, amount)| Output {
                account,
                amount,
                asset,
            })
            .collect();
        let accounts = changed
            .into_iter()
            .map(|a| (a, states.remove(&a).expect("changed accounts have states")))
            .collect();
        Ok(Settlement {
            payouts,
            admitted,
            accounts,
            redeemed,
            redeemed_items,
            pool,
        })
    }

    /// A change of membership by the signers' quorum: the last word on each account named
    /// (whether it has opened yet or not).
    fn apply_members(&mut self, r: &Record, m: &Members) -> Result<(), RecordError> {
        self.check_position(r)?;
        let named = m.admit.iter().map(|a| (a, true));
        for (a, admit) in named.chain(m.remove.iter().map(|a| (a, false))) {
            let found = self.t.accounts.get(a);
            let new = found.is_none();
            let mut st = found.unwrap_or_default();
            let was = st.is_member();
            st.admitted = Some(admit);
            st.vouchers.clear();
            match (was, st.is_member()) {
                (false, true) => self.members_n += 1,
                (true, false) => self.members_n -= 1,
                _ => {}
            }
            self.put_account(*a, st, new);
        }
        self.advance(r);
        Ok(())
    }

    fn apply_distribution(
        &mut self,
        r: &Record,
        d: &Distribute,
        p: &Params,
        period_records: &[Arc<Record>],
    ) -> Result<(), RecordError> {
        self.check_position(r)?;
        let time = r.body().time;
        let last = self.last_period.map_or(-1, |l| l as i64);
        let end = p.com.period_bounds(d.period).1;
        let period_ok = if d.special {
            d.period == p.com.period_of(time) && (d.period as i64) > last
        } else {
            (d.period as i64) > last && time >= end
        };
        if !period_ok {
            return Err(RecordError::DistributionPeriod {
                period: d.period,
                last,
                end,
            });
        }
        if let (Some(new), Some(old)) = (&d.handover, &self.handover)
            && new.rules <= old.rules
        {
            return Err(RecordError::HandoverForm(format!(
                "rules {} do not exceed the last handover's {}",
                new.rules, old.rules
            )));
        }
        let settled = self.settlement(d, p, period_records)?;
        if settled.payouts != d.payouts {
            return Err(RecordError::PayoutMismatch);
        }
        if settled.admitted != d.admitted {
            return Err(RecordError::AdmissionMismatch);
        }
        let paid = sum_outputs(&d.payouts)?;
        let mut redeemed_at_cut = self.redeemed_at_cut.clone();
        add_into(&mut redeemed_at_cut, &settled.redeemed)?;
        // Valid: change the state.
        let mut pool = settled.pool;
        self.members_n += settled.admitted.len() as u64;
        for (a, st) in settled.accounts {
            self.t.accounts.insert(a, st);
        }
        self.redeemed_at_cut = redeemed_at_cut;
        // What was delivered is no longer pledged: the items' attested quantities drop.
        for (item, qty) in &settled.redeemed_items {
            if let Some((q, _)) = self.attest.get_mut(item) {
                *q = q.saturating_sub(*qty);
            }
        }
        self.work_since_cut.clear();
        self.update(self.network, |network| {
            for (asset, v) in &paid {
                sub_one(&mut network.spendable, asset, *v);
                sub_one(&mut pool, asset, *v);
            }
        });
        self.net_at_cut = pool;
        self.issued_since_cut.clear();
        self.checkpoint = Some(Checkpoint {
            record: r.hash(),
            period: d.period,
            special: d.special,
            heads: d.heads.clone(),
        });
        if !d.special {
            self.last_period = Some(d.period);
        }
        if d.handover.is_some() {
            self.handover = d.handover.clone();
        }
        self.advance(r);
        self.credit(r, &d.payouts)
    }
}

fn vouches_of(r: &Record) -> &[AccountId] {
    match &r.body().content {
        Content::Transfer(t) => &t.vouch,
        _ => &[],
    }
}

fn claims_of(r: &Record) -> impl Iterator<Item = &RecordHash> {
    match &r.body().content {
        Content::Transfer(t) => t.claims.iter(),
        _ => [].iter(),
    }
}
