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

/// What an issuance issues: per asset, whatever lifts circulation (total issued) to the
/// backing; nothing where circulation already meets it. `None` on overflow.
pub fn issuance(
    com: &ComConfig,
    attest: &Attestations,
    period: u64,
    issued: &Amounts,
) -> Option<Amounts> {
    let backing = backing(com, attest, period)?;
    Some(
        backing
            .into_iter()
            .filter_map(|(asset, b)| {
                let have = issued.get(&asset).copied().unwrap_or(0);
                (b > have).then(|| (asset, b - have))
            })
            .collect(),
    )
}

/// What happened in a period (the records between two checkpoints), as the formulas need it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PeriodActivity {
    /// Member accounts that made at least one record in the period.
    pub active: BTreeSet<AccountId>,
    /// What each member account was paid by other members in the period, per asset.
    pub paid: BTreeMap<AccountId, Amounts>,
}

/// The payouts of a distribution: `share_percent` of `pool` (the network account's balance at
/// the checkpoint), split by com.ini's formula. `members` maps every member account in the
/// checkpoint to its key fingerprint (the weights formula names keys). Sorted by
/// (account, asset); zero amounts omitted.
pub fn payouts(
    com: &ComConfig,
    pool: &Amounts,
    activity: &PeriodActivity,
    members: &BTreeMap<AccountId, Fingerprint>,
) -> Vec<(AccountId, String, u64)> {
    let share =
        |amount: u64| (amount as u128 * com.distribution.share_percent as u128 / 100) as u64;
    let mut out: BTreeMap<(AccountId, String), u64> = BTreeMap::new();
    for (asset, &balance) in pool {
        let total = share(balance) as u128;
        if total == 0 {
            continue;
        }
        // (account, weight) pairs and the sum of all weights, which may include weights of
        // keys that have no account yet (their share stays with the network).
        let (weights, sum): (Vec<(AccountId, u128)>, u128) = match &com.distribution.formula {
            Formula::Equal => {
                let w: Vec<_> = activity.active.iter().map(|a| (*a, 1u128)).collect();
                let n = w.len() as u128;
                (w, n)
            }
            Formula::ProRataPaid => {
                let w: Vec<_> = activity
                    .paid
                    .iter()
                    .filter_map(|(a, amounts)| amounts.get(asset).map(|v| (*a, *v as u128)))
                    .filter(|(_, v)| *v > 0)
                    .collect();
                let s = w.iter().map(|(_, v)| v).sum();
                (w, s)
            }
            Formula::Weights(by_key) => {
                let w: Vec<_> = members
                    .iter()
                    .filter_map(|(a, fp)| by_key.get(fp).map(|w| (*a, *w as u128)))
                    .collect();
                (w, by_key.values().map(|w| *w as u128).sum())
            }
        };
        if sum == 0 {
            continue;
        }
        for (account, w) in weights {
            let amount = (total * w / sum) as u64;
            if amount > 0 {
                *out.entry((account, asset.clone())).or_insert(0) += amount;
            }
        }
    }
    out.into_iter()
        .map(|((a, asset), v)| (a, asset, v))
        .collect()
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

    #[test]
    fn equal_shares_leave_the_remainder() {
        let c = com("formula = equal", "50%");
        let activity = PeriodActivity {
            active: [acct(1), acct(2), acct(3)].into(),
            ..Default::default()
        };
        let pool: Amounts = [("coin".into(), 1001)].into();
        let p = payouts(&c, &pool, &activity, &BTreeMap::new());
        // 50% of 1001 = 500; 500 / 3 = 166 each, 2 stay with the network.
        assert_eq!(
            p,
            vec![
                (acct(1), "coin".into(), 166),
                (acct(2), "coin".into(), 166),
                (acct(3), "coin".into(), 166)
            ]
        );
        assert!(payouts(&c, &pool, &PeriodActivity::default(), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn pro_rata_to_what_was_paid() {
        let c = com("formula = pro_rata_paid", "100%");
        let activity = PeriodActivity {
            active: BTreeSet::new(),
            paid: [
                (acct(1), [("coin".to_string(), 30)].into()),
                (acct(2), [("coin".to_string(), 10)].into()),
            ]
            .into(),
        };
        let pool: Amounts = [("coin".into(), 100), ("token".into(), 9)].into();
        assert_eq!(
            payouts(&c, &pool, &activity, &BTreeMap::new()),
            vec![(acct(1), "coin".into(), 75), (acct(2), "coin".into(), 25)],
            "token: nobody was paid in it, so it stays"
        );
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
        let members: BTreeMap<_, _> = [
            (acct(1), FP[0].parse().unwrap()),
            (acct(2), FP[1].parse().unwrap()),
        ]
        .into();
        let pool: Amounts = [("coin".into(), 800)].into();
        assert_eq!(
            payouts(&c, &pool, &PeriodActivity::default(), &members),
            vec![(acct(1), "coin".into(), 300), (acct(2), "coin".into(), 100)]
        );
    }
}
