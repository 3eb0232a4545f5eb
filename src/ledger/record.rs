//! Records — issuance, transfer, distribution — their canonical encoding, hash and
//! signatures. Pure. `docs/ledger.md` specifies the encoding; `tests/vectors/` holds fixed
//! records with their hashes and signatures.
//!
//! Canonical encoding: JSON with object keys sorted bytewise, no whitespace, integers in plain
//! decimal, byte strings (keys, signatures) in padded standard base64, ids in lowercase hex,
//! absent optional fields omitted. The *body* is the record without `sigs`; the record hash
//! is `SHA-256(canonical body)` and every signature is RSASSA-PKCS1-v1_5/SHA-256 over the
//! canonical body, so `openssl dgst -sha256 -verify KEY -signature SIG body.json` checks one.

use crate::ids::{AccountId, CodId, Fingerprint, RecordHash};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const RECORD_VERSION: u32 = 1;
/// Largest encoded record accepted (a distribution lists every account's head).
pub const MAX_RECORD_BYTES: usize = 4 << 20;
/// Largest encoded transfer accepted.
pub const MAX_TRANSFER_BYTES: usize = 64 << 10;
pub const MAX_OUTPUTS: usize = 64;
/// Most payouts in a distribution: one per member and asset (the record's size bounds it too).
pub const MAX_PAYOUTS: usize = 65_536;
pub const MAX_CLAIMS: usize = 256;
pub const MAX_MEMO_BYTES: usize = 256;
pub const MAX_SIGS: usize = 64;
/// Most accounts a transfer vouches for, and a `members` record admits or removes.
pub const MAX_VOUCHES: usize = 16;
pub const MAX_MEMBERS_CHANGED: usize = 64;
/// Most (account, item) entries of an issuance's `work`, and backing items a transfer redeems.
pub const MAX_WORK_ENTRIES: usize = 1024;
pub const MAX_REDEEM_ITEMS: usize = 64;

/// Why a record is refused. Every rule of `docs/ledger.md` has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    // Decoding.
    #[error("record is {size} bytes; the limit is {max}")]
    TooLarge { size: usize, max: usize },
    #[error("malformed record: {0}")]
    Malformed(String),
    #[error("record is not in canonical form (sorted keys, no spaces, canonical base64)")]
    NotCanonical,
    #[error("record version {0} is not supported (this cod understands {RECORD_VERSION})")]
    Version(u32),
    // Form.
    #[error("record belongs to cod {0}, not this one")]
    WrongCod(CodId),
    #[error("a {kind} record cannot be in {which} account's chain")]
    WrongAccount { kind: Kind, which: &'static str },
    #[error("seq 0 must have no prev, and every later seq must have one")]
    PrevSeq,
    #[error("an account's first record (seq 0) must carry the account's public key")]
    MissingKey,
    #[error("only an account's first record (seq 0) carries its public key")]
    UnexpectedKey,
    #[error("an account's opening record (seq 0) neither claims, pays, redeems nor vouches")]
    OpeningPays,
    #[error("the public key in the record is not this account's (node id mismatch)")]
    KeyMismatch,
    #[error("bad public key in the record: {0}")]
    BadKey(String),
    #[error("{what}: {count} exceeds the limit of {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("outputs must be sorted by (account, asset) without repeats")]
    OutputsOrder,
    #[error("claims must be sorted without repeats")]
    ClaimsOrder,
    #[error("an amount is zero")]
    ZeroAmount,
    #[error("unknown asset {0:?} (com.ini defines the assets)")]
    UnknownAsset(String),
    #[error("a transfer cannot pay its own account")]
    PaysItself,
    #[error("unknown backing item {0:?} (com.ini defines the backing)")]
    UnknownBacking(String),
    #[error("an issuance must attest at least one backing item")]
    NothingAttested,
    #[error("a distribution's checkpoint cannot name the network account")]
    NetworkHead,
    #[error("a signer set lists at least one key, sorted without repeats, and 1 <= quorum <= keys")]
    SignerSetForm,
    // Signatures.
    #[error("a transfer carries exactly one signature, by its account's key in force")]
    TransferSigs,
    #[error("an account's opening (seq 0) cannot replace its key")]
    RekeyOnOpening,
    #[error(
        "signed by a key that is not the account's key in force ({in_force}): the account moved to another key"
    )]
    WrongKey { in_force: String },
    #[error("every signature on a network record names its signer's key")]
    SignerKeyMissing,
    #[error("signatures must be sorted by signer fingerprint without repeats")]
    SigsOrder,
    #[error("key {0} is not in the signer set in force")]
    NotASigner(String),
    #[error("the deployer's fallback signature is not allowed on this record")]
    FallbackNotAllowed,
    #[error("signature by {0} does not verify")]
    BadSignature(String),
    #[error("{have} valid signer signatures; the quorum is {need}")]
    Quorum { have: usize, need: usize },
    // Chain.
    #[error("seq {seq} does not follow the account's head (next is {next})")]
    NotNext { seq: u64, next: u64 },
    #[error("prev {prev} is not the account's head {head}")]
    WrongPrev { prev: RecordHash, head: RecordHash },
    #[error("record time {time} is before its predecessor's {prev_time}")]
    TimeBackwards { time: u64, prev_time: u64 },
    // This node's clock, not the rules.
    #[error(
        "record is dated {time}, more than {} s after this node's clock ({now}): held back until the clock gets there",
        crate::clock::MAX_CLOCK_SKEW
    )]
    Ahead { time: u64, now: u64 },
    #[error(
        "this account's last record is dated {head}, more than {} s after this node's clock ({now}) — made while the clock was ahead: a record is never dated before its predecessor, and peers hold back one dated that far ahead; the account can pay again once the clock reads {}",
        crate::clock::MAX_CLOCK_SKEW,
        head.saturating_sub(crate::clock::MAX_CLOCK_SKEW)
    )]
    HeadAhead { head: u64, now: u64 },
    // Transfers.
    #[error("claimed record {0} pays nothing to this account")]
    NotACredit(RecordHash),
    #[error("claimed record {0} was already claimed by this account")]
    AlreadyClaimed(RecordHash),
    #[error("account {0} does not exist")]
    NoSuchAccount(AccountId),
    #[error("spends {wanted} {asset} but holds only {held}")]
    Overspend {
        asset: String,
        held: u64,
        wanted: u64,
    },
    #[error("amounts overflow")]
    Overflow,
    // Issuance.
    #[error("issuance period is {found}, but its time falls in period {expected}")]
    IssuePeriod { found: u64, expected: u64 },
    #[error("issuance amounts {found:?} differ from the backing rule's {expected:?}")]
    IssueAmounts {
        found: BTreeMap<String, u64>,
        expected: BTreeMap<String, u64>,
    },
    #[error("nothing to issue: circulation already meets the attested backing")]
    NothingToIssue,
    // Distribution.
    #[error("special distributions are not allowed by com.ini (except to hand the ledger over)")]
    SpecialNotAllowed,
    #[error("bad handover: {0}")]
    HandoverForm(String),
    #[error(
        "this ledger was handed over to cod {to} (version {version}, ledger rules {rules}) at a quorum-signed checkpoint: this version keeps no later record; upgrade (`cod upgrade check`, docs/upgrade.md)"
    )]
    HandedOver {
        to: CodId,
        version: String,
        rules: u32,
    },
    #[error(
        "distribution for period {period} must follow period {last} and be made after it ends ({end})"
    )]
    DistributionPeriod { period: u64, last: i64, end: u64 },
    #[error("checkpoint head of {0} does not extend the previous checkpoint")]
    HeadRegresses(AccountId),
    #[error("checkpoint omits account {0}, which has records in the cut")]
    HeadOmitted(AccountId),
    #[error("checkpoint head {0} is not a valid record on that account's chain")]
    HeadInvalid(AccountId),
    #[error("record {record} in the checkpoint depends on {missing}, which is outside it")]
    CutNotClosed { record: RecordHash, missing: String },
    #[error("distribution payouts differ from the recomputation")]
    PayoutMismatch,
    #[error("distribution admissions differ from the recomputation")]
    AdmissionMismatch,
    #[error("bad members record: {0}")]
    MembersForm(String),
    #[error("bad vouch: {0}")]
    VouchForm(String),
    #[error("com.ini admits members by quorum only: transfers cannot vouch")]
    VouchNotAllowed,
    #[error("bad redemption: {0}")]
    RedeemForm(String),
    #[error("bad work attestation: {0}")]
    WorkForm(String),
    #[error(
        "work attested for {item} this period ({work}) exceeds its attested supply ({attested})"
    )]
    WorkExceedsAttested {
        item: String,
        work: u64,
        attested: u64,
    },
}

impl RecordError {
    /// Does this refusal prove the sender misbehaved? An honest node checks a record's
    /// form and signatures before it stores or relays it, so it never sends one that fails
    /// them — but it may well send one the receiver cannot use yet or under its rules
    /// (another version's, a record whose turn has not come, a full pool): those are not.
    pub fn proves_misbehaviour(&self) -> bool {
        use RecordError::*;
        matches!(
            self,
            TooLarge { .. }
                | Malformed(_)
                | NotCanonical
                | WrongAccount { .. }
                | PrevSeq
                | MissingKey
                | UnexpectedKey
                | OpeningPays
                | KeyMismatch
                | BadKey(_)
                | OutputsOrder
                | ClaimsOrder
                | ZeroAmount
                | PaysItself
                | NothingAttested
                | NetworkHead
                | SignerSetForm
                | HandoverForm(_)
                | MembersForm(_)
                | VouchForm(_)
                | RedeemForm(_)
                | WorkForm(_)
                | TransferSigs
                | RekeyOnOpening
                | SignerKeyMissing
                | SigsOrder
                | BadSignature(_)
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Issue,
    Transfer,
    Distribute,
    Signers,
    Members,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Issue => "issue",
            Kind::Transfer => "transfer",
            Kind::Distribute => "distribute",
            Kind::Signers => "signers",
            Kind::Members => "members",
        })
    }
}

/// Bytes that travel as padded standard base64.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct B64(pub Vec<u8>);

impl std::fmt::Debug for B64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "B64({} bytes)", self.0.len())
    }
}

impl Serialize for B64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(B64)
            .map_err(serde::de::Error::custom)
    }
}

/// One payment: `amount` of `asset` to `account`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    pub account: AccountId,
    pub amount: u64,
    pub asset: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    // Fields in bytewise key order: serialized directly, this is the canonical order.
    /// Hashes of records that paid this account, claimed now (each at most once ever).
    /// Always written, even empty: a record without it is `Malformed` (no default).
    pub claims: Vec<RecordHash>,
    /// The account's public key (DER SubjectPublicKeyInfo), on seq 0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<B64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    /// Payments, sorted by (account, asset).
    pub outputs: Vec<Output>,
    /// Products or services delivered to this account, backing item → quantity: it pays
    /// their com.ini value back to the network, which takes those coins out of circulation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub redeem: BTreeMap<String, u64>,
    /// A key replacement (seq > 0 only): the account's next records are signed by this key
    /// (DER SubjectPublicKeyInfo), and no longer by the one that signs this record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey: Option<B64>,
    /// Accounts this member sponsors for admission (com.ini `admission = sponsors`), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vouch: Vec<AccountId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issue {
    /// What the backing rule issues, per asset, to the network account.
    pub amounts: BTreeMap<String, u64>,
    /// Attested backing: item → quantity (units of the item).
    pub attest: BTreeMap<String, u64>,
    /// The settlement period the record's time falls in.
    pub period: u64,
    /// Who did the attested labor or ran the attested capacity: account → item → quantity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub work: BTreeMap<AccountId, BTreeMap<String, u64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub hash: RecordHash,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distribute {
    /// Accounts the members' vouches admit at this checkpoint (com.ini `admission =
    /// sponsors`), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admitted: Vec<AccountId>,
    /// Set on the old rules' last distribution (see [`Handover`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<Handover>,
    /// The checkpoint: the head of every member account in the cut.
    pub heads: BTreeMap<AccountId, Head>,
    /// Payments out of the network account, sorted by (account, asset).
    pub payouts: Vec<Output>,
    pub period: u64,
    /// A special distribution (com.ini `special = quorum`) does not close its period.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub special: bool,
}

/// Longest version label a handover names, in bytes.
pub const MAX_VERSION_BYTES: usize = 64;

/// A distribution that hands the ledger over: its checkpoint is the last state that nodes
/// knowing only earlier rules keep; they refuse every later record, naming where to go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handover {
    /// The first ledger-rules version that continues ([`crate::ledger::RULES_VERSION`]).
    pub rules: u32,
    /// The cod id of the version that continues the ledger.
    pub to: CodId,
    /// Its version label (cod.ini `version`), for members.
    pub version: String,
}

/// A signer set: whose signatures count toward the quorum on network records. com.ini's
/// `[signers]` is a ledger's first set; a `signers` record, signed by a quorum of the set in
/// force, replaces it from the next network record on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerSet {
    /// Key fingerprints, sorted, without repeats.
    pub keys: Vec<Fingerprint>,
    pub quorum: u64,
}

impl SignerSet {
    pub fn contains(&self, fp: &Fingerprint) -> bool {
        self.keys.binary_search(fp).is_ok()
    }
}

/// A change of membership by a quorum of the signer set in force: who receives
/// distributions (see `docs/com-model.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Members {
    /// Accounts admitted, sorted (both lists always written).
    pub admit: Vec<AccountId>,
    /// Accounts removed, sorted.
    pub remove: Vec<AccountId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Issue(Issue),
    Transfer(Transfer),
    Distribute(Distribute),
    Signers(SignerSet),
    Members(Members),
}

impl Content {
    pub fn kind(&self) -> Kind {
        match self {
            Content::Issue(_) => Kind::Issue,
            Content::Transfer(_) => Kind::Transfer,
            Content::Distribute(_) => Kind::Distribute,
            Content::Signers(_) => Kind::Signers,
            Content::Members(_) => Kind::Members,
        }
    }

    /// Payments this record makes (transfer outputs, distribution payouts).
    pub fn outputs(&self) -> &[Output] {
        match self {
            Content::Transfer(t) => &t.outputs,
            Content::Distribute(d) => &d.payouts,
            Content::Issue(_) | Content::Signers(_) | Content::Members(_) => &[],
        }
    }
}

/// A signature. Transfers carry one, without `key` (the account's key signs). Issuance and
/// distribution records carry one per signer, each naming its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<B64>,
    pub sig: B64,
}

/// Everything but the signatures: what is hashed and signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    pub version: u32,
    pub cod: CodId,
    pub time: u64,
    pub account: AccountId,
    pub seq: u64,
    pub prev: Option<RecordHash>,
    pub content: Content,
}

/// The wire shape for decoding (a boundary type): `content` stays raw JSON until `kind`
/// says what it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIn<'a> {
    account: AccountId,
    cod: CodId,
    #[serde(borrow)]
    content: &'a serde_json::value::RawValue,
    kind: Kind,
    #[serde(default)]
    prev: Option<RecordHash>,
    seq: u64,
    #[serde(default)]
    sigs: Option<Vec<Sig>>,
    time: u64,
    version: u32,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ContentOut<'a> {
    Issue(&'a Issue),
    Transfer(&'a Transfer),
    Distribute(&'a Distribute),
    Signers(&'a SignerSet),
    Members(&'a Members),
}

/// The wire shape for encoding. Every struct on the way declares its fields in bytewise key
/// order and maps are ordered, so serializing it directly gives the canonical form (a unit
/// test checks this against a key-sorting re-encoding).
#[derive(Serialize)]
struct WireOut<'a> {
    account: &'a AccountId,
    cod: &'a CodId,
    content: ContentOut<'a>,
    kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev: &'a Option<RecordHash>,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sigs: Option<&'a [Sig]>,
    time: u64,
    version: u32,
}

impl Body {
    fn wire<'a>(&'a self, sigs: Option<&'a [Sig]>) -> WireOut<'a> {
        let content = match &self.content {
            Content::Issue(c) => ContentOut::Issue(c),
            Content::Transfer(c) => ContentOut::Transfer(c),
            Content::Distribute(c) => ContentOut::Distribute(c),
            Content::Signers(c) => ContentOut::Signers(c),
            Content::Members(c) => ContentOut::Members(c),
        };
        WireOut {
            account: &self.account,
            cod: &self.cod,
            content,
            kind: self.content.kind(),
            prev: &self.prev,
            seq: self.seq,
            sigs,
            time: self.time,
            version: self.version,
        }
    }

    /// The canonical encoding of the body: the bytes hashed and signed.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        encode(&self.wire(None))
    }

    pub fn hash(&self) -> RecordHash {
        RecordHash::of(&self.canonical_bytes())
    }
}

/// A decoded record with its hash. Immutable: any change makes a new record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    body: Body,
    sigs: Vec<Sig>,
    hash: RecordHash,
}

impl Record {
    pub fn new(body: Body, sigs: Vec<Sig>) -> Self {
        let hash = body.hash();
        Self { body, sigs, hash }
    }

    /// About how many bytes this record takes in memory (for the bounds on records held
    /// waiting): the struct, its signatures and its content's variable parts.
    pub fn size_estimate(&self) -> usize {
        let sigs: usize = self
            .sigs
            .iter()
            .map(|s| 64 + s.sig.0.len() + s.key.as_ref().map_or(0, |k| k.0.len()))
            .sum();
        let outputs = |o: &[Output]| o.iter().map(|o| 64 + o.asset.len()).sum::<usize>();
        let content = match &self.body.content {
            Content::Transfer(t) => {
                t.claims.len() * 32
                    + t.key.as_ref().map_or(0, |k| k.0.len())
                    + t.rekey.as_ref().map_or(0, |k| k.0.len())
                    + t.memo.as_ref().map_or(0, String::len)
                    + outputs(&t.outputs)
                    + t.redeem.keys().map(|k| 64 + k.len()).sum::<usize>()
                    + t.vouch.len() * 32
            }
            Content::Issue(i) => {
                i.amounts
                    .keys()
                    .chain(i.attest.keys())
                    .map(|k| 64 + k.len())
                    .sum::<usize>()
                    + i.work
                        .values()
                        .map(|items| 64 + items.keys().map(|k| 64 + k.len()).sum::<usize>())
                        .sum::<usize>()
            }
            Content::Distribute(d) => {
                d.heads.len() * 128 + outputs(&d.payouts) + d.admitted.len() * 32
            }
            Content::Signers(set) => set.keys.len() * 32,
            Content::Members(m) => (m.admit.len() + m.remove.len()) * 32,
        };
        std::mem::size_of::<Self>() + sigs + content
    }

    pub fn body(&self) -> &Body {
        &self.body
    }

    pub fn sigs(&self) -> &[Sig] {
        &self.sigs
    }

    pub fn hash(&self) -> RecordHash {
        self.hash
    }

    pub fn kind(&self) -> Kind {
        self.body.content.kind()
    }

    pub fn account(&self) -> AccountId {
        self.body.account
    }

    pub fn seq(&self) -> u64 {
        self.body.seq
    }

    /// The canonical encoding of the whole record (body and signatures): what is stored and
    /// sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(&self.body.wire(Some(&self.sigs)))
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.body.wire(Some(&self.sigs))).expect("record types serialize")
    }

    /// The canonical encoding as an embeddable JSON value (for pages of records).
    pub fn to_raw(&self) -> Box<serde_json::value::RawValue> {
        serde_json::value::RawValue::from_string(
            String::from_utf8(self.to_bytes()).expect("JSON is UTF-8"),
        )
        .expect("valid JSON")
    }

    /// Decodes a record from its canonical encoding; any other encoding of the same record
    /// is refused, so a record has exactly one byte form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge {
                size: bytes.len(),
                max: MAX_RECORD_BYTES,
            });
        }
        let wire: WireIn =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
        let (body, sigs) = Self::from_wire(wire, bytes.len())?;
        // One encoding of the body gives both the hash and the canonical form to compare.
        let body_bytes = body.canonical_bytes();
        if splice_sigs(&body_bytes, &sigs) != bytes {
            return Err(RecordError::NotCanonical);
        }
        Ok(Self {
            hash: RecordHash::of(&body_bytes),
            body,
            sigs,
        })
    }

    /// Decodes a record from a JSON value (as the REST API receives it inside a document).
    pub fn from_json(value: serde_json::Value) -> Result<Self, RecordError> {
        let bytes = serde_json::to_vec(&value).expect("a JSON value serializes");
        Self::from_bytes(&bytes)
    }

    fn from_wire(w: WireIn<'_>, size: usize) -> Result<(Body, Vec<Sig>), RecordError> {
        if w.version != RECORD_VERSION {
            return Err(RecordError::Version(w.version));
        }
        let malformed =
            |e: serde_json::Error| RecordError::Malformed(format!("{} content: {e}", w.kind));
        let content = match w.kind {
            Kind::Issue => {
                Content::Issue(serde_json::from_str(w.content.get()).map_err(malformed)?)
            }
            Kind::Transfer => {
                if size > MAX_TRANSFER_BYTES {
                    return Err(RecordError::TooLarge {
                        size,
                        max: MAX_TRANSFER_BYTES,
                    });
                }
                Content::Transfer(serde_json::from_str(w.content.get()).map_err(malformed)?)
            }
            Kind::Distribute => {
                Content::Distribute(serde_json::from_str(w.content.get()).map_err(malformed)?)
            }
            Kind::Signers => {
                Content::Signers(serde_json::from_str(w.content.get()).map_err(malformed)?)
            }
            Kind::Members => {
                Content::Members(serde_json::from_str(w.content.get()).map_err(malformed)?)
            }
        };
        let sigs = w.sigs.unwrap_or_default();
        if sigs.len() > MAX_SIGS {
            return Err(RecordError::TooMany {
                what: "signatures",
                count: sigs.len(),
                max: MAX_SIGS,
            });
        }
        let body = Body {
            version: w.version,
            cod: w.cod,
            time: w.time,
            account: w.account,
            seq: w.seq,
            prev: w.prev,
            content,
        };
        Ok((body, sigs))
    }
}

/// A record's canonical encoding from its body's: keys are sorted, so `sigs` comes between
/// `seq` and `time`, and nothing after `content` is free text, so the last `,"time":` is
/// where it goes. Equal to [`Record::to_bytes`] (tested), without encoding the body twice.
fn splice_sigs(body: &[u8], sigs: &[Sig]) -> Vec<u8> {
    const TIME: &[u8] = b",\"time\":";
    let at = body
        .windows(TIME.len())
        .rposition(|w| w == TIME)
        .expect("a canonical body has a time");
    let mut out = Vec::with_capacity(ENCODED_SIZE_HINT);
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(b",\"sigs\":");
    serde_json::to_writer(&mut out, sigs).expect("signatures serialize");
    out.extend_from_slice(&body[at..]);
    out
}

/// Most records encode in less (a transfer with its signature: ~900 bytes); starting there
/// saves the reallocations of growing from serde_json's 128 bytes.
const ENCODED_SIZE_HINT: usize = 1024;

fn encode(v: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENCODED_SIZE_HINT);
    serde_json::to_writer(&mut out, v).expect("record types serialize");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        let cod: CodId = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        let body = Body {
            version: 1,
            cod,
            time: 1_767_571_200,
            account: AccountId::network(&cod),
            seq: 0,
            prev: None,
            content: Content::Issue(Issue {
                period: 0,
                attest: [("bread".to_string(), 10)].into(),
                amounts: [("codcoin".to_string(), 3500)].into(),
                work: BTreeMap::new(),
            }),
        };
        Record::new(
            body,
            vec![Sig {
                key: Some(B64(vec![1, 2])),
                sig: B64(vec![3]),
            }],
        )
    }

    /// Direct serialization is canonical only while every struct declares its fields in
    /// key order: compare with a re-encoding through serde_json's key-sorting Value.
    #[test]
    fn direct_encoding_is_key_sorted() {
        let cod: CodId = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        let a = AccountId::network(&cod);
        let out = Output {
            account: a,
            amount: 5,
            asset: "codcoin".into(),
        };
        let head = Head {
            hash: sample().hash(),
            seq: 3,
        };
        let contents = [
            Content::Transfer(Transfer {
                key: Some(B64(vec![1])),
                claims: vec![sample().hash()],
                outputs: vec![out.clone()],
                memo: Some("m".into()),
                rekey: Some(B64(vec![2])),
                redeem: [("bread".to_string(), 2)].into(),
                vouch: vec![a],
            }),
            Content::Issue(Issue {
                period: 1,
                attest: [("baking".to_string(), 10)].into(),
                amounts: [("codcoin".to_string(), 3500)].into(),
                work: [(a, [("baking".to_string(), 4)].into())].into(),
            }),
            Content::Members(Members {
                admit: vec![a],
                remove: vec![AccountId::from_bytes([7; 32])],
            }),
            Content::Signers(SignerSet {
                keys: vec![Fingerprint::from_bytes([3; 32])],
                quorum: 1,
            }),
            sample().body().content.clone(),
            Content::Distribute(Distribute {
                admitted: vec![a],
                period: 2,
                special: true,
                handover: Some(Handover {
                    rules: 2,
                    to: CodId::from_bytes([9; 20]),
                    version: "2.0.0 \"β\"".into(),
                }),
                heads: [(a, head)].into(),
                payouts: vec![out],
            }),
        ];
        for content in contents {
            let body = Body {
                version: 1,
                cod,
                time: 7,
                account: a,
                seq: 1,
                prev: Some(sample().hash()),
                content,
            };
            let r = Record::new(
                body,
                vec![Sig {
                    key: Some(B64(vec![2])),
                    sig: B64(vec![3]),
                }],
            );
            let sorted = serde_json::to_vec(&serde_json::to_value(r.to_json()).unwrap()).unwrap();
            assert_eq!(
                String::from_utf8(r.to_bytes()).unwrap(),
                String::from_utf8(sorted).unwrap()
            );
            assert_eq!(Record::from_bytes(&r.to_bytes()).unwrap(), r);
        }
    }

    /// Decoding splices the signatures into the body's encoding; that must give exactly
    /// `to_bytes`, whatever the signatures, the prev link or free text in a memo.
    #[test]
    fn spliced_signatures_match_the_direct_encoding() {
        let cod: CodId = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        let a = AccountId::network(&cod);
        let sig = |k: Option<u8>, s: u8| Sig {
            key: k.map(|k| B64(vec![k; 3])),
            sig: B64(vec![s; 384]),
        };
        for memo in [
            None,
            Some(r#","time":1,"sigs":[]}"#),
            Some("é ,\"time\": \u{0}"),
        ] {
            for prev in [None, Some(sample().hash())] {
                for sigs in [
                    vec![],
                    vec![sig(None, 1)],
                    vec![sig(Some(1), 2), sig(Some(2), 3)],
                ] {
                    let body = Body {
                        version: 1,
                        cod,
                        time: 1_767_571_200,
                        account: a,
                        seq: u64::from(prev.is_some()),
                        prev,
                        content: Content::Transfer(Transfer {
                            key: None,
                            claims: vec![],
                            outputs: vec![],
                            memo: memo.map(str::to_string),
                            rekey: None,
                            redeem: BTreeMap::new(),
                            vouch: Vec::new(),
                        }),
                    };
                    let r = Record::new(body, sigs);
                    assert_eq!(
                        String::from_utf8(splice_sigs(&r.body().canonical_bytes(), r.sigs())),
                        String::from_utf8(r.to_bytes())
                    );
                    assert_eq!(Record::from_bytes(&r.to_bytes()), Ok(r));
                }
            }
        }
    }

    #[test]
    fn canonical_bytes_are_sorted_and_compact() {
        let r = sample();
        let body = String::from_utf8(r.body().canonical_bytes()).unwrap();
        assert_eq!(
            body,
            r#"{"account":"011462c5bc44d54ca205715b8a70f168942ab38afd2364bc752a9d2052f9d324","cod":"0123456789abcdef0123456789abcdef01234567","content":{"amounts":{"codcoin":3500},"attest":{"bread":10},"period":0},"kind":"issue","seq":0,"time":1767571200,"version":1}"#
        );
        let full = String::from_utf8(r.to_bytes()).unwrap();
        assert!(
            full.contains(r#""seq":0,"sigs":[{"key":"AQI=","sig":"Aw=="}],"time""#),
            "{full}"
        );
    }

    #[test]
    fn decoding_round_trips_and_refuses_other_encodings() {
        let r = sample();
        let mut v = r.to_json();
        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        assert_eq!(Record::from_bytes(&pretty), Err(RecordError::NotCanonical));
        assert_eq!(
            Record::from_json(v.clone()).unwrap(),
            r,
            "a JSON value is re-encoded canonically"
        );
        let upper = String::from_utf8(r.to_bytes())
            .unwrap()
            .replace("cod\":\"0123456789abcdef", "cod\":\"0123456789ABCDEF");
        assert_eq!(
            Record::from_bytes(upper.as_bytes()),
            Err(RecordError::NotCanonical)
        );
        assert_eq!(Record::from_bytes(&r.to_bytes()).unwrap().hash(), r.hash());
        v["content"]["bonus"] = 1.into();
        assert!(
            matches!(Record::from_json(v), Err(RecordError::Malformed(m)) if m.contains("bonus"))
        );
    }

    #[test]
    fn bad_encodings_get_their_own_errors() {
        let r = sample();
        let bytes = r.to_bytes();
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                matches!(
                    Record::from_bytes(&bytes[..cut]),
                    Err(RecordError::Malformed(_))
                ),
                "cut {cut}"
            );
        }
        let mut v = r.to_json();
        v["version"] = 2.into();
        assert_eq!(Record::from_json(v), Err(RecordError::Version(2)));
        let mut v = r.to_json();
        v["amount"] = 5.into();
        assert!(matches!(
            Record::from_json(v),
            Err(RecordError::Malformed(_))
        ));
        let mut v = r.to_json();
        v["kind"] = "mint".into();
        assert!(matches!(
            Record::from_json(v),
            Err(RecordError::Malformed(_))
        ));
        let big = vec![b' '; MAX_RECORD_BYTES + 1];
        assert!(matches!(
            Record::from_bytes(&big),
            Err(RecordError::TooLarge { .. })
        ));
        let mut v = r.to_json();
        v["content"]["attest"]["bread"] = (-1).into();
        assert!(matches!(
            Record::from_json(v),
            Err(RecordError::Malformed(_))
        ));
    }
}
