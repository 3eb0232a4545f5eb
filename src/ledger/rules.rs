//! The context-free rules: a record's form and its signatures. Everything here depends only
//! on the record itself and the cod's parameters, never on other records.

use super::Params;
use super::record::{
    Content, Kind, MAX_CLAIMS, MAX_MEMBERS_CHANGED, MAX_MEMO_BYTES, MAX_OUTPUTS, MAX_PAYOUTS,
    MAX_REDEEM_ITEMS, MAX_SIGS, MAX_VOUCHES, MAX_WORK_ENTRIES, Members, Output, Record,
    RecordError, Sig, SignerSet,
};
use crate::config::com::{Admission, BackingClass, Fallback};
use crate::ids::AccountId;
use crate::ids::Fingerprint;
use crate::keys::PublicKey;

fn check_outputs(outputs: &[Output], max: usize, p: &Params) -> Result<(), RecordError> {
    if outputs.len() > max {
        return Err(RecordError::TooMany {
            what: "outputs",
            count: outputs.len(),
            max,
        });
    }
    for w in outputs.windows(2) {
        if (&w[0].account, &w[0].asset) >= (&w[1].account, &w[1].asset) {
            return Err(RecordError::OutputsOrder);
        }
    }
    for o in outputs {
        if o.amount == 0 {
            return Err(RecordError::ZeroAmount);
        }
        if !p.com.assets.contains_key(&o.asset) {
            return Err(RecordError::UnknownAsset(o.asset.clone()));
        }
    }
    Ok(())
}

/// The public key a seq-0 transfer carries, checked against its account id.
pub fn opening_key(r: &Record, p: &Params) -> Result<Option<PublicKey>, RecordError> {
    let Content::Transfer(t) = &r.body().content else {
        return Ok(None);
    };
    let Some(der) = &t.key else { return Ok(None) };
    let key = canonical_key(&der.0)?;
    if key.node_id(&p.cod) != r.account() {
        return Err(RecordError::KeyMismatch);
    }
    Ok(Some(key))
}

/// Checks everything about a record that needs no other record.
pub fn check_form(r: &Record, p: &Params) -> Result<(), RecordError> {
    let b = r.body();
    if b.cod != p.cod {
        return Err(RecordError::WrongCod(b.cod));
    }
    if (b.seq == 0) != b.prev.is_none() {
        return Err(RecordError::PrevSeq);
    }
    let is_network = b.account == p.network;
    match &b.content {
        Content::Transfer(t) => {
            if is_network {
                return Err(RecordError::WrongAccount {
                    kind: Kind::Transfer,
                    which: "the network",
                });
            }
            match (b.seq, &t.key) {
                (0, None) => return Err(RecordError::MissingKey),
                (0, Some(_)) => {
                    opening_key(r, p)?;
                    // Nothing can have paid an account before it opened, and it holds nothing.
                    if !t.claims.is_empty()
                        || !t.outputs.is_empty()
                        || !t.redeem.is_empty()
                        || !t.vouch.is_empty()
                    {
                        return Err(RecordError::OpeningPays);
                    }
                }
                (_, Some(_)) => return Err(RecordError::UnexpectedKey),
                (_, None) => {}
            }
            if let Some(der) = &t.rekey {
                if b.seq == 0 {
                    return Err(RecordError::RekeyOnOpening);
                }
                canonical_key(&der.0)?;
            }
            check_outputs(&t.outputs, MAX_OUTPUTS, p)?;
            if t.outputs.iter().any(|o| o.account == b.account) {
                return Err(RecordError::PaysItself);
            }
            if t.claims.len() > MAX_CLAIMS {
                return Err(RecordError::TooMany {
                    what: "claims",
                    count: t.claims.len(),
                    max: MAX_CLAIMS,
                });
            }
            if t.claims.windows(2).any(|w| w[0] >= w[1]) {
                return Err(RecordError::ClaimsOrder);
            }
            check_redeem(&t.redeem, p)?;
            check_vouch(&t.vouch, b.account, p)?;
            if t.memo.as_ref().is_some_and(|m| m.len() > MAX_MEMO_BYTES) {
                return Err(RecordError::TooMany {
                    what: "memo bytes",
                    count: t.memo.as_ref().map_or(0, |m| m.len()),
                    max: MAX_MEMO_BYTES,
                });
            }
        }
        Content::Issue(i) => {
            if !is_network {
                return Err(RecordError::WrongAccount {
                    kind: Kind::Issue,
                    which: "a member",
                });
            }
            if i.attest.is_empty() {
                return Err(RecordError::NothingAttested);
            }
            if let Some(item) = i.attest.keys().find(|k| !p.com.backing.contains_key(*k)) {
                return Err(RecordError::UnknownBacking(item.clone()));
            }
            if let Some(asset) = i.amounts.keys().find(|k| !p.com.assets.contains_key(*k)) {
                return Err(RecordError::UnknownAsset(asset.clone()));
            }
            if i.amounts.values().any(|v| *v == 0) {
                return Err(RecordError::ZeroAmount);
            }
            check_work(&i.work, p)?;
        }
        Content::Distribute(d) => {
            if !is_network {
                return Err(RecordError::WrongAccount {
                    kind: Kind::Distribute,
                    which: "a member",
                });
            }
            if d.heads.contains_key(&p.network) {
                return Err(RecordError::NetworkHead);
            }
            if d.special && !p.com.distribution.special_by_quorum && d.handover.is_none() {
                return Err(RecordError::SpecialNotAllowed);
            }
            if let Some(h) = &d.handover {
                if !d.special {
                    return Err(RecordError::HandoverForm(
                        "a handover is a special distribution".into(),
                    ));
                }
                check_handover(h, p)?;
            }
            // (A distribution pays every member: not a transfer's 64 outputs.)
            check_outputs(&d.payouts, MAX_PAYOUTS, p)?;
            if d.payouts.iter().any(|o| o.account == p.network) {
                return Err(RecordError::PaysItself);
            }
            if !sorted_unique(&d.admitted) || d.admitted.contains(&p.network) {
                return Err(RecordError::MembersForm(
                    "admitted accounts must be sorted members, without repeats".into(),
                ));
            }
        }
        Content::Signers(set) => {
            if !is_network {
                return Err(RecordError::WrongAccount {
                    kind: Kind::Signers,
                    which: "a member",
                });
            }
            check_signer_set(set)?;
        }
        Content::Members(m) => {
            if !is_network {
                return Err(RecordError::WrongAccount {
                    kind: Kind::Members,
                    which: "a member",
                });
            }
            check_members(m, p)?;
        }
    }
    Ok(())
}

fn sorted_unique(a: &[AccountId]) -> bool {
    a.windows(2).all(|w| w[0] < w[1])
}

/// A `members` record's form: something changes, both lists sorted without repeats, no
/// account in both, never the network account, at most [`MAX_MEMBERS_CHANGED`] in all.
pub fn check_members(m: &Members, p: &super::Params) -> Result<(), RecordError> {
    let bad = |why: &str| Err(RecordError::MembersForm(why.into()));
    let n = m.admit.len() + m.remove.len();
    if n == 0 {
        return bad("it admits or removes at least one account");
    }
    if n > MAX_MEMBERS_CHANGED {
        return Err(RecordError::TooMany {
            what: "membership changes",
            count: n,
            max: MAX_MEMBERS_CHANGED,
        });
    }
    if !sorted_unique(&m.admit) || !sorted_unique(&m.remove) {
        return bad("accounts must be sorted without repeats");
    }
    if m.admit.iter().any(|a| m.remove.binary_search(a).is_ok()) {
        return bad("an account is both admitted and removed");
    }
    if m.admit.contains(&p.network) || m.remove.contains(&p.network) {
        return bad("the network account is no member");
    }
    Ok(())
}

/// A transfer's vouches: only where com.ini admits by sponsorship; sorted, without repeats,
/// neither the account itself nor the network, at most [`MAX_VOUCHES`].
fn check_vouch(v: &[AccountId], own: AccountId, p: &super::Params) -> Result<(), RecordError> {
    if v.is_empty() {
        return Ok(());
    }
    if p.com.membership.admission == Admission::Quorum {
        return Err(RecordError::VouchNotAllowed);
    }
    let bad = |why: &str| Err(RecordError::VouchForm(why.into()));
    if v.len() > MAX_VOUCHES {
        return Err(RecordError::TooMany {
            what: "vouches",
            count: v.len(),
            max: MAX_VOUCHES,
        });
    }
    if !sorted_unique(v) {
        return bad("accounts must be sorted without repeats");
    }
    if v.contains(&own) || v.contains(&p.network) {
        return bad("a member vouches for other member accounts only");
    }
    Ok(())
}

/// A redemption names backing items of com.ini with quantities above zero.
fn check_redeem(
    r: &std::collections::BTreeMap<String, u64>,
    p: &super::Params,
) -> Result<(), RecordError> {
    if r.len() > MAX_REDEEM_ITEMS {
        return Err(RecordError::TooMany {
            what: "redeemed items",
            count: r.len(),
            max: MAX_REDEEM_ITEMS,
        });
    }
    for (item, qty) in r {
        if !p.com.backing.contains_key(item) {
            return Err(RecordError::UnknownBacking(item.clone()));
        }
        if *qty == 0 {
            return Err(RecordError::RedeemForm(format!("{item}: quantity 0")));
        }
    }
    Ok(())
}

/// An issuance's work: member accounts (not the network), labor or capacity items of
/// com.ini, quantities above zero, at most [`MAX_WORK_ENTRIES`] entries.
fn check_work(
    w: &std::collections::BTreeMap<AccountId, std::collections::BTreeMap<String, u64>>,
    p: &super::Params,
) -> Result<(), RecordError> {
    let n: usize = w.values().map(|items| items.len()).sum();
    if n > MAX_WORK_ENTRIES {
        return Err(RecordError::TooMany {
            what: "work entries",
            count: n,
            max: MAX_WORK_ENTRIES,
        });
    }
    for (account, items) in w {
        if *account == p.network {
            return Err(RecordError::WorkForm(
                "the network account does no work".into(),
            ));
        }
        if items.is_empty() {
            return Err(RecordError::WorkForm(format!("{account}: no item")));
        }
        for (item, qty) in items {
            let Some(def) = p.com.backing.get(item) else {
                return Err(RecordError::UnknownBacking(item.clone()));
            };
            if def.class == BackingClass::Inventory {
                return Err(RecordError::WorkForm(format!(
                    "{item} is inventory: work names labor or capacity"
                )));
            }
            if *qty == 0 {
                return Err(RecordError::WorkForm(format!(
                    "{account} {item}: quantity 0"
                )));
            }
        }
    }
    Ok(())
}

/// A key as transfers name it (`rekey`, a signature's `key`): DER SubjectPublicKeyInfo in the
/// canonical form [`PublicKey::der`] gives, so comparing bytes compares keys.
pub fn canonical_key(der: &[u8]) -> Result<PublicKey, RecordError> {
    let key = PublicKey::from_der(der).map_err(|e| RecordError::BadKey(e.to_string()))?;
    if key.der() != der {
        return Err(RecordError::BadKey("not in canonical DER form".into()));
    }
    Ok(key)
}

/// A handover's form: rules after the first, another cod id, a short printable version.
pub fn check_handover(h: &super::record::Handover, p: &Params) -> Result<(), RecordError> {
    let bad = |m: &str| Err(RecordError::HandoverForm(m.into()));
    if h.rules < 2 {
        return bad("rules must be 2 or more (1 is the first)");
    }
    if h.to == p.cod {
        return bad("it names this ledger's own cod id");
    }
    let v = &h.version;
    if v.is_empty() || v.len() > super::record::MAX_VERSION_BYTES || v.chars().any(char::is_control)
    {
        return bad("version must be 1 to 64 bytes of printable text");
    }
    Ok(())
}

/// A signer set's form: 1 to [`MAX_SIGS`] keys, sorted without repeats, and a quorum
/// between 1 and the number of keys.
pub fn check_signer_set(set: &SignerSet) -> Result<(), RecordError> {
    let sorted = set.keys.windows(2).all(|w| w[0] < w[1]);
    let sized = !set.keys.is_empty() && set.keys.len() <= MAX_SIGS;
    if !sorted || !sized || set.quorum == 0 || set.quorum > set.keys.len() as u64 {
        return Err(RecordError::SignerSetForm);
    }
    Ok(())
}

/// May the deployer's key stand in for a signer on this record (com.ini's fallback duty)?
pub fn fallback_allowed(r: &Record, p: &Params) -> bool {
    let Fallback::Deployer { after } = p.com.signers.fallback else {
        return false;
    };
    match &r.body().content {
        Content::Distribute(d) if !d.special => {
            r.body().time >= p.com.period_bounds(d.period).1.saturating_add(after)
        }
        _ => false,
    }
}

/// Checks one signature on a network record: by a signer of `set` (the set in force for the
/// record; see [`super::State::signers`]) or the deployer under the fallback duty, and valid
/// over the record's body. Returns the signer's fingerprint.
pub fn check_signer_sig(
    r: &Record,
    s: &Sig,
    p: &Params,
    set: &SignerSet,
) -> Result<Fingerprint, RecordError> {
    let (key, fp) = signer_key(s)?;
    may_sign(r, &key, &fp, p, set)?;
    verify_body(r, &key, &s.sig.0).map_err(|_| RecordError::BadSignature(fp.to_string()))?;
    Ok(fp)
}

fn signer_key(s: &Sig) -> Result<(PublicKey, Fingerprint), RecordError> {
    let der = s.key.as_ref().ok_or(RecordError::SignerKeyMissing)?;
    let key = canonical_key(&der.0)?;
    let fp = key.fingerprint();
    Ok((key, fp))
}

/// Is this key's signature one that counts on the record: a signer's, or the deployer's
/// under the fallback duty?
fn may_sign(
    r: &Record,
    key: &PublicKey,
    fp: &Fingerprint,
    p: &Params,
    set: &SignerSet,
) -> Result<(), RecordError> {
    if set.contains(fp) {
        return Ok(());
    }
    if *key != p.deployer {
        return Err(RecordError::NotASigner(fp.to_string()));
    }
    if !fallback_allowed(r, p) {
        return Err(RecordError::FallbackNotAllowed);
    }
    Ok(())
}

/// The quorum rule, which needs the signer set in force (so [`super::State::apply`] checks
/// it): every signature counts (a signer's, or the deployer's under the fallback duty), and
/// there are at least `quorum` of them. The signatures themselves were verified by
/// [`check_sigs`].
pub fn check_quorum(r: &Record, p: &Params, set: &SignerSet) -> Result<(), RecordError> {
    for s in r.sigs() {
        let (key, fp) = signer_key(s)?;
        may_sign(r, &key, &fp, p, set)?;
    }
    let (have, need) = (r.sigs().len(), set.quorum as usize);
    if have < need {
        return Err(RecordError::Quorum { have, need });
    }
    Ok(())
}

/// Checks a signature over a record's canonical body. The record's hash is that body's
/// SHA-256, computed when the record was decoded, so the body is not encoded again.
fn verify_body(r: &Record, key: &PublicKey, sig: &[u8]) -> Result<(), crate::keys::KeyError> {
    key.verify_sha256(r.hash().as_bytes(), sig)
}

/// Checks a record's signatures. A transfer is signed by the key it names in its signature,
/// or, naming none, by its account's opening key (`account_key`: from the account's seq-0
/// record); whether that key is the account's key in force depends on the account's chain
/// before the record, so [`super::State::apply`] checks it. A network record's signatures each name their key, are
/// sorted by its fingerprint, and verify. Whether those keys make a quorum of the set in
/// force depends on the network chain before the record: [`check_quorum`], at apply time.
pub fn check_sigs(r: &Record, account_key: Option<&PublicKey>) -> Result<(), RecordError> {
    match r.kind() {
        Kind::Transfer => {
            let [Sig { key: named, sig }] = r.sigs() else {
                return Err(RecordError::TransferSigs);
            };
            let bad = |_| RecordError::BadSignature(r.account().to_string());
            match named {
                // Opening records are signed by the key they carry.
                Some(_) if r.seq() == 0 => Err(RecordError::TransferSigs),
                Some(der) => {
                    let key = canonical_key(&der.0)?;
                    verify_body(r, &key, &sig.0).map_err(bad)
                }
                None => {
                    let key = account_key.expect("callers pass the account key for transfers");
                    verify_body(r, key, &sig.0).map_err(bad)
                }
            }
        }
        Kind::Issue | Kind::Distribute | Kind::Signers | Kind::Members => {
            let mut last: Option<Fingerprint> = None;
            for s in r.sigs() {
                let (key, fp) = signer_key(s)?;
                if last.is_some_and(|l| l >= fp) {
                    return Err(RecordError::SigsOrder);
                }
                last = Some(fp);
                verify_body(r, &key, &s.sig.0)
                    .map_err(|_| RecordError::BadSignature(fp.to_string()))?;
            }
            if r.sigs().is_empty() {
                return Err(RecordError::Quorum { have: 0, need: 1 });
            }
            Ok(())
        }
    }
}
