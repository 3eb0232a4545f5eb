//! The arithmetic of issuance and distribution (MISSION.md "Issuance", "Distribution"):
//! pure functions of com.ini's parameters and figures taken from the chain, so every member
//! computes the same amounts. Integers only; remainders stay with the network account.

use crate::config::com::{BackingClass, ComConfig, Formula};
use crate::ids::{AccountId, Fingerprint};
use std::collections::{BTreeMap, BTreeSet};

/// Latest attestation of a backing item: (quantity, period it was attested in).
pub type Attestations = BTreeMap<String, (u64, u64)>;

/// Per-asset amounts.
pub type Amounts = BTreeMap<String, u64>;

/// The backing value per asset in `period`: inventory counts at its latest attested
/// quantity; labor and capacity count only if attested in this very period.
pub fn backing(com: &ComConfig, attest: &Attestations, period: u64) -> Option<Amounts> {
    let mut out = Amounts::new();
    for (item, (qty, at)) in attest {
        let Some(def) = com.backing.get(item) else {
            continue;
        };
        if def.class != BackingClass::Inventory && *at != period {
            continue;
        }
        let v = qty.checked_mul(def.value)?;
        let slot = out.entry(def.asset.clone()).or_insert(0);
        *slot = slot.checked_add(v)?;
    }
    Some(out)
}

/// What an issuance issues: per asset, whatever lifts circulation (issued, less what the
/// distributions' checkpoints saw redeemed: [`crate::ledger::State::circulation`]) to the
/// backing; nothing where circulation already meets it. `None` on overflow.
pub fn issuance(
    com: &ComConfig,
    attest: &Attestations,
    period: u64,
    outstanding: &Amounts,
) -> Option<Amounts> {
    let backing = backing(com, attest, period)?;
    Some(
        backing
            .into_iter()
            .filter_map(|(asset, b)| {
                let have = outstanding.get(&asset).copied().unwrap_or(0);
                (b > have).then(|| (asset, b - have))
            })
            .collect(),
    )
}

/// What the formulas weigh at a checkpoint.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Weighing {
    /// The member accounts in the checkpoint, with their opening key's fingerprint (the
    /// weights formula names keys).
    pub members: BTreeMap<AccountId, Fingerprint>,
    /// `pro_rata_paid`: each member's new net receipts from members, per asset
    /// ([`net_gain`]).
    pub gains: BTreeMap<AccountId, Amounts>,
    /// `work`: the value of the work attested since the last checkpoint, per account
    /// (members or not) and asset.
    pub work: BTreeMap<AccountId, Amounts>,
}

/// A member's running tally of payments between members, for `pro_rata_paid`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaidTally {
    /// Paid to it by other members, ever (while a member).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub received: Amounts,
    /// Paid by it to other members, ever (while a member).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub paid: Amounts,
    /// The highest net (received − paid) already weighed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub high: Amounts,
}

impl PaidTally {
    pub fn is_empty(&self) -> bool {
        self.received.is_empty() && self.paid.is_empty() && self.high.is_empty()
    }
}

/// Adds a period's payments between members to a tally and returns the member's new net
/// receipts: per asset, how far its net (received − paid, never below 0) rose above the
/// highest net weighed before, which then becomes that net. Coins that go round between
/// members therefore weigh once, when they first raise a member's net. `None` on overflow.
pub fn net_gain(t: &mut PaidTally, received: &Amounts, paid: &Amounts) -> Option<Amounts> {
    for (asset, v) in received {
        let slot = t.received.entry(asset.clone()).or_insert(0);
        *slot = slot.checked_add(*v)?;
    }
    for (asset, v) in paid {
        let slot = t.paid.entry(asset.clone()).or_insert(0);
        *slot = slot.checked_add(*v)?;
    }
    let mut gain = Amounts::new();
    for (asset, r) in &t.received {
        let net = r.saturating_sub(t.paid.get(asset).copied().unwrap_or(0));
        let high = t.high.get(asset).copied().unwrap_or(0);
        if net > high {
            gain.insert(asset.clone(), net - high);
            t.high.insert(asset.clone(), net);
        }
    }
    Some(gain)
}

/// The payouts of a distribution: `share_percent` of `pool` (the network account's balance at
/// the checkpoint), split per asset by com.ini's formula among the members, rounding down.
/// Sorted by (account, asset); zero amounts omitted; what is not paid stays with the network.
pub fn payouts(com: &ComConfig, pool: &Amounts, w: &Weighing) -> Vec<(AccountId, String, u64)> {
    let share =
        |amount: u64| (amount as u128 * com.distribution.share_percent as u128 / 100) as u64;
    let of = |by: &BTreeMap<AccountId, Amounts>, a: &AccountId, asset: &str| {
        by.get(a).and_then(|m| m.get(asset)).copied().unwrap_or(0) as u128
    };
    let mut out: BTreeMap<(AccountId, String), u64> = BTreeMap::new();
    for (asset, &balance) in pool {
        let total = share(balance) as u128;
        if total == 0 {
            continue;
        }
        // (member, weight) pairs and the sum of all weights, which may include weights of
        // non-members (their share stays with the network).
        let (weights, sum): (Vec<(AccountId, u128)>, u128) = match &com.distribution.formula {
            Formula::Equal => {
                let v: Vec<_> = w.members.keys().map(|a| (*a, 1u128)).collect();
                let n = v.len() as u128;
                (v, n)
            }
            Formula::ProRataPaid => {
                let v: Vec<_> = w
                    .members
                    .keys()
                    .map(|a| (*a, of(&w.gains, a, asset)))
                    .collect();
                let s: u128 = v.iter().map(|(_, x)| x).sum();
                if s == 0 {
                    // Nobody earned from another member (members without coins cannot):
                    // equal shares, so the pool never stalls.
                    let v: Vec<_> = w.members.keys().map(|a| (*a, 1u128)).collect();
                    let n = v.len() as u128;
                    (v, n)
                } else {
                    (v, s)
                }
            }
            Formula::Work => {
                let v: Vec<_> = w
                    .members
                    .keys()
                    .map(|a| (*a, of(&w.work, a, asset)))
                    .collect();
                let s = w.work.keys().map(|a| of(&w.work, a, asset)).sum();
                (v, s)
            }
            Formula::Weights(by_key) => {
                let v: Vec<_> = w
                    .members
                    .iter()
                    .filter_map(|(a, fp)| by_key.get(fp).map(|x| (*a, *x as u128)))
                    .collect();
                (v, by_key.values().map(|x| *x as u128).sum())
            }
        };
        if sum == 0 {
            continue;
        }
        for (account, weight) in weights {
            let amount = (total * weight / sum) as u64;
            if amount > 0 {
                *out.entry((account, asset.clone())).or_insert(0) += amount;
            }
        }
    }
    out.into_iter()
        .map(|((a, asset), v)| (a, asset, v))
        .collect()
}

/// Sponsorship at a checkpoint (com.ini `admission = sponsors`): `pending` maps each
/// candidate (no member, not removed) to the accounts that vouched for it. Admits every
/// candidate vouched for by at least `need` of `members` — the members before this
/// checkpoint: an account admitted here vouches from the next one on, so sybils cannot admit
/// each other in one step — and adds them to `members`. Returns the admitted, sorted, and each
/// other candidate's vouchers that were members (what waits for the next checkpoint;
/// vouches by non-members are dropped).
pub fn sponsor(
    need: u64,
    members: &mut BTreeSet<AccountId>,
    pending: BTreeMap<AccountId, BTreeSet<AccountId>>,
) -> (Vec<AccountId>, BTreeMap<AccountId, Vec<AccountId>>) {
    let mut admitted = Vec::new();
    let mut waiting = BTreeMap::new();
    for (candidate, vouchers) in pending {
        let counted: Vec<AccountId> = vouchers
            .into_iter()
            .filter(|v| members.contains(v))
            .collect();
        if counted.len() as u64 >= need {
            admitted.push(candidate);
        } else if !counted.is_empty() {
            waiting.insert(candidate, counted);
        }
    }
    members.extend(admitted.iter().copied());
    (admitted, waiting)
}

/// The value of quantities of backing items, per asset (work attested, products redeemed).
/// `None` on overflow or an item com.ini does not define.
pub fn value_of(com: &ComConfig, items: &BTreeMap<String, u64>) -> Option<Amounts> {
    let mut out = Amounts::new();
    for (item, qty) in items {
        let def = com.backing.get(item)?;
        let v = qty.checked_mul(def.value)?;
        let slot = out.entry(def.asset.clone()).or_insert(0);
        *slot = slot.checked_add(v)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ComConfig;

    const FP: [&str; 3] = [
        "1111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222",
        "3333333333333333333333333333333333333333333333333333333333333333",
    ];

    fn com(formula: &str, share: &str) -> ComConfig {
        let text = format!(
            "[com]\nname = t\nversion = 1.0.0\nsettlement_period = 1d\nepoch = 2026-01-01T00:00:00Z\n\
             [asset.coin]\n[asset.token]\n\
             [backing.bread]\nclass = inventory\nasset = coin\nunit = loaf\nvalue = 5\n\
             [backing.hours]\nclass = labor\nasset = coin\nunit = hour\nvalue = 100\n\
             [backing.cpu]\nclass = capacity\nasset = token\nunit = core-day\nvalue = 7\n\
             [distribution]\n{formula}\nshare = {share}\n\
             [signers]\nkeys = {}\nquorum = 1\n",
            FP[0]
        );
        ComConfig::parse("com.ini", &text).unwrap()
    }

    fn acct(n: u8) -> AccountId {
        AccountId::from_bytes([n; 32])
    }

    #[test]
    fn backing_counts_inventory_always_and_per_period_classes_only_in_their_period() {
        let c = com("formula = equal", "100%");
        let attest: Attestations = [
            ("bread".to_string(), (10, 3)),
            ("hours".to_string(), (2, 5)),
            ("cpu".to_string(), (4, 5)),
        ]
        .into();
        assert_eq!(
            backing(&c, &attest, 5).unwrap(),
            [("coin".into(), 250), ("token".into(), 28)].into()
        );
        assert_eq!(
            backing(&c, &attest, 6).unwrap(),
            [("coin".into(), 50)].into()
        );
        let issued: Amounts = [("coin".into(), 200), ("token".into(), 28)].into();
        assert_eq!(
            issuance(&c, &attest, 5, &issued).unwrap(),
            [("coin".into(), 50)].into()
        );
        assert_eq!(
            issuance(&c, &attest, 6, &issued).unwrap(),
            Amounts::new(),
            "circulation above backing issues nothing"
        );
        let huge: Attestations = [("hours".to_string(), (u64::MAX, 5))].into();
        assert_eq!(
            backing(&c, &huge, 5),
            None,
            "overflow is refused, not wrapped"
        );
    }

    fn members(n: &[u8]) -> BTreeMap<AccountId, Fingerprint> {
        n.iter()
            .map(|i| (acct(*i), FP[*i as usize % 3].parse().unwrap()))
            .collect()
    }

    #[test]
    fn equal_shares_among_members_leave_the_remainder() {
        let c = com("formula = equal", "50%");
        let w = Weighing {
            members: members(&[1, 2, 3]),
            ..Default::default()
        };
        let pool: Amounts = [("coin".into(), 1001)].into();
        // 50% of 1001 = 500; 500 / 3 = 166 each, 2 stay with the network.
        assert_eq!(
            payouts(&c, &pool, &w),
            vec![
                (acct(1), "coin".into(), 166),
                (acct(2), "coin".into(), 166),
                (acct(3), "coin".into(), 166)
            ]
        );
        assert!(
            payouts(&c, &pool, &Weighing::default()).is_empty(),
            "no member: the pool stays"
        );
    }

    #[test]
    fn pro_rata_to_new_net_receipts_of_members() {
        let c = com("formula = pro_rata_paid", "100%");
        let w = Weighing {
            members: members(&[1, 2]),
            gains: [
                (acct(1), [("coin".to_string(), 30)].into()),
                (acct(2), [("coin".to_string(), 10)].into()),
                // Not a member: weighs nothing, takes nothing.
                (acct(9), [("coin".to_string(), 1000)].into()),
            ]
            .into(),
            ..Default::default()
        };
        let pool: Amounts = [("coin".into(), 100), ("token".into(), 9)].into();
        assert_eq!(
            payouts(&c, &pool, &w),
            vec![
                (acct(1), "coin".into(), 75),
                (acct(1), "token".into(), 4),
                (acct(2), "coin".into(), 25),
                (acct(2), "token".into(), 4)
            ],
            "token: no member gained in it, so it is shared equally"
        );
    }

    #[test]
    fn coins_that_go_round_weigh_once() {
        let coin = |v: u64| -> Amounts { [("coin".to_string(), v)].into() };
        let (mut a, mut b) = (PaidTally::default(), PaidTally::default());
        // a pays b 100: b's net rises by 100.
        assert_eq!(
            net_gain(&mut b, &coin(100), &Amounts::new()),
            Some(coin(100))
        );
        assert_eq!(
            net_gain(&mut a, &Amounts::new(), &coin(100)),
            Some(Amounts::new())
        );
        // b pays it back: a's net only returns to 0, which was weighed already.
        assert_eq!(
            net_gain(&mut a, &coin(100), &Amounts::new()),
            Some(Amounts::new())
        );
        assert_eq!(
            net_gain(&mut b, &Amounts::new(), &coin(100)),
            Some(Amounts::new())
        );
        // And round again: nobody's net exceeds its high.
        assert_eq!(
            net_gain(&mut b, &coin(100), &Amounts::new()),
            Some(Amounts::new())
        );
        assert_eq!(
            net_gain(&mut a, &Amounts::new(), &coin(100)),
            Some(Amounts::new())
        );
        // A real sale of 30 more does weigh.
        assert_eq!(net_gain(&mut b, &coin(30), &Amounts::new()), Some(coin(30)));
        let mut full = PaidTally {
            received: coin(u64::MAX),
            ..Default::default()
        };
        assert_eq!(net_gain(&mut full, &coin(1), &Amounts::new()), None);
    }

    #[test]
    fn work_weighs_attested_value_and_non_members_keep_theirs_home() {
        let c = com("formula = work", "100%");
        let w = Weighing {
            members: members(&[1, 2]),
            work: [
                (acct(1), [("coin".to_string(), 300)].into()),
                (acct(2), [("coin".to_string(), 100)].into()),
                (acct(9), [("coin".to_string(), 400)].into()),
            ]
            .into(),
            ..Default::default()
        };
        let pool: Amounts = [("coin".into(), 800)].into();
        assert_eq!(
            payouts(&c, &pool, &w),
            vec![(acct(1), "coin".into(), 300), (acct(2), "coin".into(), 100)]
        );
        assert_eq!(
            value_of(
                &c,
                &[("hours".to_string(), 3), ("cpu".to_string(), 2)].into()
            ),
            Some([("coin".to_string(), 300), ("token".to_string(), 14)].into())
        );
        assert_eq!(
            value_of(&c, &[("hours".to_string(), u64::MAX)].into()),
            None
        );
    }

    #[test]
    fn sponsorship_counts_members_before_the_checkpoint_and_drops_non_members_vouches() {
        let set = |v: &[u8]| v.iter().map(|i| acct(*i)).collect::<BTreeSet<_>>();
        // 1 is a member; 1 vouches for 2, 2 for 3 (need 1): 2 is in, but its vouch for 3
        // was made by no member (sybils cannot admit each other in one step).
        let mut members = set(&[1]);
        let pending = [
            (acct(3), set(&[2])),
            (acct(2), set(&[1])),
            (acct(5), set(&[9])),
        ]
        .into();
        let (admitted, waiting) = sponsor(1, &mut members, pending);
        assert_eq!(admitted, vec![acct(2)]);
        assert_eq!(members, set(&[1, 2]));
        assert!(
            waiting.is_empty(),
            "2's and 9's vouches were by no member: they go"
        );
        // Need 2: one member's vouch waits.
        let mut members = set(&[1, 4]);
        let pending = [(acct(2), set(&[1, 9]))].into();
        let (admitted, waiting) = sponsor(2, &mut members, pending);
        assert!(admitted.is_empty());
        assert_eq!(waiting, [(acct(2), vec![acct(1)])].into());
    }

    #[test]
    fn fixed_weights_by_key_and_absent_keys_keep_their_share_home() {
        let c = com(
            &format!(
                "formula = weights\nweights = {}=3, {}=1, {}=4",
                FP[0], FP[1], FP[2]
            ),
            "100%",
        );
        let w = Weighing {
            members: [
                (acct(1), FP[0].parse().unwrap()),
                (acct(2), FP[1].parse().unwrap()),
            ]
            .into(),
            ..Default::default()
        };
        let pool: Amounts = [("coin".into(), 800)].into();
        assert_eq!(
            payouts(&c, &pool, &w),
            vec![(acct(1), "coin".into(), 300), (acct(2), "coin".into(), 100)]
        );
    }
}
