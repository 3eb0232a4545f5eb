//! The worked examples of `docs/com-model.md`, run: each example's events happen here, and
//! at each period's end the pool and every balance are compared with the numbers in the
//! page's table (read from the page itself, so the page cannot drift from the rules).

use super::tests::{DAY, EPOCH, key, sign_network};
use super::*;
use crate::config::ComConfig;

/// One row of an example's table: the period, its pool (`None`: the period gets no
/// record) and the balances after it (`None`: not opened), in smallest units.
struct Row {
    period: u64,
    pool: Option<u64>,
    balances: Vec<Option<u64>>,
}

fn units(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "—" {
        return None;
    }
    let (int, frac) = t.split_once('.').expect("amounts have two decimals");
    Some(int.parse::<u64>().unwrap() * 100 + frac.parse::<u64>().unwrap())
}

/// The rows of the table after `<!-- example: NAME -->` in docs/com-model.md.
fn rows(name: &str) -> Vec<Row> {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/com-model.md")).unwrap();
    let marker = format!("<!-- example: {name} -->");
    let at = page.find(&marker).unwrap_or_else(|| panic!("no {marker}"));
    let rows: Vec<Row> = page[at..]
        .lines()
        .skip(3) // the marker, the header and its rule
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cols: Vec<&str> = l.trim_matches('|').split('|').collect();
            Row {
                period: cols[0].trim().parse().unwrap(),
                pool: units(cols[2]),
                balances: cols[cols.len() - 1].split(',').map(units).collect(),
            }
        })
        .collect();
    assert!(!rows.is_empty(), "{name}: a table follows the marker");
    rows
}

const NAMES: [&str; 5] = ["node1", "node2", "node3", "node4", "node5"];

struct Example {
    l: Ledger,
    rows: Vec<Row>,
    at: usize,
}

impl Example {
    fn new(name: &str, distribution: &str, membership: &str) -> Self {
        let fp = |n: &str| key(n).public().fingerprint().to_string();
        let text = format!(
            "[com]\nname = example\nversion = 1.0.0\nsettlement_period = 1d\nepoch = 2026-01-05T00:00:00Z\n\
             [asset.codcoin]\ndecimals = 2\n\
             [backing.bread]\nclass = inventory\nasset = codcoin\nunit = loaf\nvalue = 350\n\
             [backing.baking]\nclass = labor\nasset = codcoin\nunit = hour\nvalue = 2000\n\
             [distribution]\n{distribution}\nshare = 100%\n{membership}\
             [signers]\nkeys = {}, {}, {}\nquorum = 2\n",
            fp("node1"),
            fp("node2"),
            fp("node3")
        );
        let com = ComConfig::parse("com.ini", &text).unwrap();
        let cod: CodId = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        Self {
            l: Ledger::new(Params::new(cod, com, key("cod").public().clone())),
            rows: rows(name),
            at: 0,
        }
    }

    fn id(&self, n: &str) -> AccountId {
        key(n).public().node_id(&self.l.params().cod)
    }

    /// A time inside the period of the next row.
    fn time(&self) -> u64 {
        EPOCH + self.rows[self.at].period * DAY + 60
    }

    fn push(&mut self, r: Record) {
        let o = self.l.ingest(r).unwrap();
        assert_eq!(o.applied.len(), 1, "{o:?}");
    }

    fn open(&mut self, names: &[&str]) {
        for n in names {
            let r = self.l.make_open(key(n));
            self.push(r);
        }
    }

    fn network(&mut self, body: Body) {
        self.push(sign_network(body, &["node1", "node2"]));
    }

    fn issue(&mut self, attest: &[(&str, u64)], work: &[(&str, &str, u64)]) {
        let attest = attest.iter().map(|(i, q)| (i.to_string(), *q)).collect();
        let mut named: BTreeMap<AccountId, BTreeMap<String, u64>> = BTreeMap::new();
        for (n, item, q) in work {
            named
                .entry(self.id(n))
                .or_default()
                .insert(item.to_string(), *q);
        }
        let body = self.l.propose_issue(attest, named, self.time()).unwrap();
        self.network(body);
    }

    fn admit(&mut self, n: &str) {
        let body = self
            .l
            .propose_members(vec![self.id(n)], vec![], self.time())
            .unwrap();
        self.network(body);
    }

    fn remove(&mut self, n: &str) {
        let body = self
            .l
            .propose_members(vec![], vec![self.id(n)], self.time())
            .unwrap();
        self.network(body);
    }

    fn pay(&mut self, from: &str, to: &[(&str, u64)], redeem: &[(&str, u64)], vouch: &[&str]) {
        let p = self.l.params().clone();
        let outputs = to
            .iter()
            .map(|(t, v)| Output {
                account: if *t == "network" {
                    p.network
                } else {
                    self.id(t)
                },
                amount: *v,
                asset: "codcoin".into(),
            })
            .collect();
        let payment = Payment {
            outputs,
            memo: None,
            redeem: redeem.iter().map(|(i, q)| (i.to_string(), *q)).collect(),
            vouch: vouch.iter().map(|n| self.id(n)).collect(),
        };
        let r = self
            .l
            .make_payment(self.id(from), key(from), payment, None, self.time())
            .unwrap();
        self.push(r);
    }

    /// The period of the next row ends: its distribution (or none) and its numbers.
    fn settle(&mut self) {
        let (period, want_pool, want) = {
            let row = &self.rows[self.at];
            (row.period, row.pool, row.balances.clone())
        };
        let p = self.l.params().clone();
        let pool = self
            .l
            .state()
            .account(&p.network)
            .unwrap_or_default()
            .spendable;
        let body = self.l.propose_distribution(period, false, 0).unwrap();
        match want_pool {
            None => assert!(
                self.l.settles_nothing(&body),
                "period {period}: the page says no record"
            ),
            Some(p) => {
                assert!(!self.l.settles_nothing(&body), "period {period}");
                assert_eq!(pool.get("codcoin").copied().unwrap_or(0), p, "pool");
                self.network(body);
            }
        }
        let got: Vec<Option<u64>> = NAMES
            .iter()
            .map(|n| {
                let s = self.l.state().account(&self.id(n))?;
                s.head?;
                let held = |m: &Amounts| m.get("codcoin").copied().unwrap_or(0);
                Some(held(&s.spendable) + held(&s.incoming))
            })
            .collect();
        assert_eq!(got, want, "balances after period {period}");
        let st = self.l.state();
        assert_eq!(st.total_balances(), st.outstanding(), "conservation");
        self.at += 1;
    }

    fn done(&self) {
        assert_eq!(self.at, self.rows.len(), "every row of the page was run");
    }
}

use economics::Amounts;

#[test]
fn equal_among_members_and_a_fresh_key_gets_nothing() {
    let mut x = Example::new("equal", "formula = equal", "");
    x.open(&["node1", "node2", "node3", "node4"]);
    x.issue(&[("bread", 40)], &[]);
    x.admit("node4");
    x.settle();
    x.pay("node1", &[("node2", 500), ("network", 1000)], &[], &[]);
    x.open(&["node5"]);
    x.settle();
    x.settle();
    x.pay("node2", &[], &[("bread", 2)], &[]);
    x.pay("node3", &[("network", 600)], &[], &[]);
    x.settle();
    x.done();
    let st = x.l.state();
    assert_eq!(
        st.outstanding()["codcoin"],
        13_300,
        "140.00 issued, 7.00 redeemed"
    );
    assert_eq!(st.member_count(), 4, "n5 is no member");
}

#[test]
fn pro_rata_to_new_net_receipts() {
    let mut x = Example::new("pro_rata_paid", "formula = pro_rata_paid", "");
    x.open(&["node1", "node2", "node3", "node4"]);
    x.issue(&[("bread", 40)], &[]);
    x.admit("node4");
    x.settle();
    x.pay("node1", &[("node2", 2000), ("network", 1000)], &[], &[]);
    x.pay("node2", &[("node3", 500)], &[], &[]);
    x.settle();
    x.pay("node2", &[("node1", 1500)], &[], &[]);
    x.pay("node4", &[("network", 400)], &[], &[]);
    x.settle();
    x.done();
}

#[test]
fn work_pays_the_attested_hours() {
    let mut x = Example::new("work", "formula = work", "");
    x.open(&["node1", "node2", "node3", "node4"]);
    x.issue(
        &[("bread", 40), ("baking", 5)],
        &[("node1", "baking", 3), ("node2", "baking", 2)],
    );
    x.admit("node4");
    x.settle();
    x.issue(&[("baking", 4)], &[("node3", "baking", 4)]);
    x.pay("node1", &[("network", 1200)], &[], &[]);
    x.settle();
    x.settle();
    x.done();
}

#[test]
fn two_sponsors_admit_a_member() {
    let mut x = Example::new(
        "sponsors",
        "formula = equal",
        "[membership]\nadmission = sponsors\nsponsors = 2\n",
    );
    x.open(&["node1", "node2", "node3", "node4"]);
    x.issue(&[("bread", 30)], &[]);
    x.pay("node1", &[], &[], &["node4"]);
    x.settle();
    let n4 = x.id("node4");
    assert_eq!(
        x.l.state().account(&n4).unwrap().vouchers,
        vec![x.id("node1")]
    );
    x.pay("node2", &[("network", 800)], &[], &["node4"]);
    x.settle();
    x.done();
    let last = x.l.at(&x.l.params().network, 2).unwrap();
    let Content::Distribute(d) = &last.body().content else {
        panic!("{last:?}")
    };
    assert_eq!(d.admitted, vec![n4], "the record names whom it admits");
}

#[test]
fn fixed_weights_and_a_removed_member_keeps_its_share_home() {
    let fp = |n: &str| key(n).public().fingerprint().to_string();
    let weights = format!(
        "formula = weights\nweights = {}=3, {}=1",
        fp("node1"),
        fp("node2")
    );
    let mut x = Example::new("weights", &weights, "");
    x.open(&["node1", "node2", "node3", "node4"]);
    x.issue(&[("bread", 40)], &[]);
    x.settle();
    x.pay("node1", &[("network", 2000)], &[], &[]);
    x.remove("node2");
    x.settle();
    x.settle();
    x.done();
}
