//! What the wallet and status commands show, computed from a ledger: types the daemon, the
//! CLI and the TUI share — the same document whether the CLI reads the store itself or asks
//! the daemon, and the stable `--json` output. Pure.

use crate::config::com::Asset;
use crate::ids::{AccountId, RecordHash};
use crate::ledger::{Content, Kind, Ledger, Record, RecordError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `cod balance`: an account's holdings per asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub account: AccountId,
    /// It is the network account.
    pub network: bool,
    /// This node holds records of it (else it is not opened, or not synced yet).
    pub known: bool,
    /// The seq its next record takes.
    pub next_seq: u64,
    /// Every asset com.ini defines, in code order.
    pub assets: BTreeMap<String, AssetBalance>,
    /// A member account: receives distributions.
    #[serde(default)]
    pub member: bool,
    /// The network account's: circulation, backing, the pool, the members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub economy: Option<Economy>,
}

/// The cod's economy as the chain gives it (`cod balance network`, `cod status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Economy {
    /// Member accounts (who receive distributions).
    pub members: u64,
    /// The current settlement period, by this node's clock.
    pub period: u64,
    /// The last period a distribution closed (periods with nothing to do get no record:
    /// their pool is carried to the next).
    pub last_distributed: Option<u64>,
    /// Per asset.
    pub assets: BTreeMap<String, Circulation>,
}

impl Economy {
    /// For people (`cod balance network`, `cod status`): the members and periods, then a line
    /// per asset; `amount` shows units of an asset.
    pub fn human(&self, amount: impl Fn(&str, u64) -> String) -> Vec<String> {
        let mut lines = vec![format!(
            "{} members; period {}, last distributed {}",
            self.members,
            self.period,
            self.last_distributed
                .map_or("none yet".to_string(), |p| format!("period {p}"))
        )];
        for (code, c) in &self.assets {
            let f = |u: u64| amount(code, u);
            lines.push(format!(
                "{code}: outstanding {} = issued {} - redeemed {}; backing {}; pool {}",
                f(c.outstanding),
                f(c.issued),
                f(c.redeemed),
                f(c.backing),
                f(c.pool)
            ));
        }
        lines
    }
}

/// One asset's circulation, in smallest units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Circulation {
    /// Everything ever issued.
    pub issued: u64,
    /// Paid back for delivered products and services: out of circulation.
    pub redeemed: u64,
    /// Issued and not redeemed: the coins members hold.
    pub outstanding: u64,
    /// The pledged, undelivered value attested for the current period (inventory at its
    /// latest figure; labor and capacity attested this period).
    pub backing: u64,
    /// The network account's balance: the next distribution's pool.
    pub pool: u64,
}

/// Most accounts `cod members` lists (the count is always whole).
pub const MAX_MEMBERS_SHOWN: usize = 10_000;

/// `cod chain torrents`: the chain archive this node seeds as torrents, and the DHT item
/// that points at the newest one (see [`crate::torrents`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TorrentsView {
    /// Off when node.ini says `[archive] torrents = false` or the DHT is off.
    pub enabled: bool,
    pub ledger: String,
    /// The BEP 44 item: its ed25519 public key, salt and DHT target (hex).
    pub key: String,
    pub salt: String,
    pub target: String,
    /// The index this node published last, and the segments it lists.
    pub index: Option<TorrentFile>,
    pub segments: Vec<TorrentFile>,
    /// The newest item this node read from the DHT.
    pub item: Option<ItemSeen>,
    /// When the DHT last stored this node's item (Unix seconds).
    pub put_at: Option<u64>,
    /// Segments downloaded from other seeders and imported.
    pub restored: u64,
}

/// A file seeded as a torrent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TorrentFile {
    pub infohash: String,
    /// The file name inside the torrent.
    pub name: String,
    pub records: u64,
    pub bytes: u64,
    pub magnet: String,
    /// Where the node keeps it.
    pub path: std::path::PathBuf,
}

/// An archive item read from the DHT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemSeen {
    /// The infohash of the index it names.
    pub index: String,
    pub records: u64,
}

/// `cod members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersView {
    /// `quorum`, or `sponsors` (with how many members must vouch).
    pub admission: String,
    pub sponsors: Option<u64>,
    pub count: u64,
    /// Member accounts, in id order (at most [`MAX_MEMBERS_SHOWN`]).
    pub members: Vec<AccountId>,
    /// Accounts members vouched for, short of admission (counted at the next distribution).
    pub candidates: Vec<Candidate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub account: AccountId,
    pub vouchers: Vec<AccountId>,
}

pub fn members(l: &Ledger) -> MembersView {
    use crate::config::com::Admission;
    let (admission, sponsors) = match l.params().com.membership.admission {
        Admission::Quorum => ("quorum", None),
        Admission::Sponsors(n) => ("sponsors", Some(n)),
    };
    let mut v = MembersView {
        admission: admission.into(),
        sponsors,
        count: l.state().member_count(),
        members: Vec::new(),
        candidates: Vec::new(),
    };
    for (a, s) in l.state().accounts() {
        if s.is_member() && v.members.len() < MAX_MEMBERS_SHOWN {
            v.members.push(a);
        } else if !s.vouchers.is_empty() && v.candidates.len() < MAX_MEMBERS_SHOWN {
            v.candidates.push(Candidate {
                account: a,
                vouchers: s.vouchers,
            });
        }
    }
    v
}

/// The economy at `now`.
pub fn economy(l: &Ledger, now: u64) -> Economy {
    let state = l.state();
    let com = &l.params().com;
    let period = com.period_of(now);
    let backing = crate::ledger::economics::backing(com, &state.attest, period).unwrap_or_default();
    let outstanding = state.outstanding();
    let pool = state
        .account(&l.params().network)
        .map(|s| s.spendable)
        .unwrap_or_default();
    let get = |m: &crate::ledger::economics::Amounts, a: &str| m.get(a).copied().unwrap_or(0);
    Economy {
        members: state.member_count(),
        period,
        last_distributed: state.last_period,
        assets: com
            .assets
            .keys()
            .map(|a| {
                let c = Circulation {
                    issued: get(&state.issued, a),
                    redeemed: get(&state.redeemed, a),
                    outstanding: get(&outstanding, a),
                    backing: get(&backing, a),
                    pool: get(&pool, a),
                };
                (a.clone(), c)
            })
            .collect(),
    }
}

/// An account's holding of one asset, in smallest units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetBalance {
    /// What it can spend and what was paid to it, not yet claimed.
    pub total: u64,
    pub spendable: u64,
    /// Paid to it, claimed by its next transfer.
    pub incoming: u64,
    pub decimals: u8,
}

/// `cod balance`.
pub fn balance(l: &Ledger, account: &AccountId, now: u64) -> Balance {
    let state = l.state().account(account);
    let state = state.as_ref();
    let network = *account == l.params().network;
    let assets = l
        .params()
        .com
        .assets
        .iter()
        .map(|(code, def)| {
            let held = |m: Option<&crate::ledger::economics::Amounts>| {
                m.and_then(|m| m.get(code)).copied().unwrap_or(0)
            };
            let spendable = held(state.map(|s| &s.spendable));
            let incoming = held(state.map(|s| &s.incoming));
            let a = AssetBalance {
                total: spendable.saturating_add(incoming),
                spendable,
                incoming,
                decimals: def.decimals,
            };
            (code.clone(), a)
        })
        .collect();
    Balance {
        account: *account,
        network,
        known: network || state.is_some_and(|s| s.head.is_some()),
        next_seq: state.map_or(0, |s| s.next_seq()),
        assets,
        member: state.is_some_and(|s| s.is_member()),
        economy: network.then(|| economy(l, now)),
    }
}

/// How many of the latest applied records `cod history` of the network account looks through
/// for payments to the network (which no index names).
pub const NETWORK_HISTORY_WINDOW: usize = 10_000;

/// `cod history`: an account's records and the payments it received, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub account: AccountId,
    pub entries: Vec<HistoryEntry>,
}

/// One line of a [`History`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub time: u64,
    pub record: RecordHash,
    /// The record's kind, or `open` for an account's first record.
    pub kind: String,
    /// What the record changed of the account's holdings, per asset, in smallest units.
    pub change: BTreeMap<String, i64>,
    /// The other side: whom it paid, or who paid it (`network` for the network account).
    pub with: Vec<String>,
    pub memo: Option<String>,
}

/// `cod history`: the account's own records and the payments it received, newest first.
pub fn history(l: &Ledger, account: &AccountId, limit: usize) -> History {
    let label = |a: &AccountId| {
        if *a == l.params().network {
            "network".to_string()
        } else {
            a.to_string()
        }
    };
    // Its newest own records (a chain's times never go back), and every record that paid
    // it (the credits, claimed or not, index them). What paid the network is not indexed:
    // it is looked for among the latest applied records only.
    let next = l.state().account(account).map_or(0, |s| s.next_seq());
    let mut candidates = l.chain_of(account, next.saturating_sub(limit as u64), limit);
    let paid: Vec<RecordHash> = if *account == l.params().network {
        let applied = l.state().applied_count() as u64;
        let window = NETWORK_HISTORY_WINDOW as u64;
        l.state()
            .log(applied.saturating_sub(window), NETWORK_HISTORY_WINDOW)
    } else {
        l.state().paid_to(account)
    };
    let own: std::collections::BTreeSet<RecordHash> = candidates.iter().map(|r| r.hash()).collect();
    candidates.extend(
        paid.iter()
            .filter(|h| !own.contains(h))
            .filter_map(|h| l.record(h)),
    );
    let mut entries = Vec::new();
    for r in candidates {
        let mine = r.account() == *account;
        let mut change: BTreeMap<String, i128> = BTreeMap::new();
        let mut with = Vec::new();
        for o in r.body().content.outputs() {
            if mine {
                *change.entry(o.asset.clone()).or_default() -= o.amount as i128;
                with.push(label(&o.account));
            } else if o.account == *account {
                *change.entry(o.asset.clone()).or_default() += o.amount as i128;
            }
        }
        if !mine && change.is_empty() {
            continue;
        }
        if !mine {
            with.push(label(&r.account()));
        }
        if let (true, Content::Issue(i)) = (mine, &r.body().content) {
            for (asset, v) in &i.amounts {
                *change.entry(asset.clone()).or_default() += *v as i128;
            }
        }
        let memo = match &r.body().content {
            Content::Transfer(t) => t.memo.clone(),
            _ => None,
        };
        let kind = if r.kind() == Kind::Transfer && r.seq() == 0 {
            "open".to_string()
        } else {
            r.kind().to_string()
        };
        entries.push((r.body().time, r.hash(), kind, change, with, memo));
    }
    entries.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
    entries.truncate(limit);
    let entries = entries
        .into_iter()
        .map(|(time, record, kind, change, with, memo)| HistoryEntry {
            time,
            record,
            kind,
            change: change
                .into_iter()
                .map(|(k, v)| (k, v.clamp(i64::MIN.into(), i64::MAX.into()) as i64))
                .collect(),
            with,
            memo,
        })
        .collect();
    History {
        account: *account,
        entries,
    }
}

/// Missing dependencies named in a chain summary, at most.
pub const MAX_MISSING_SHOWN: usize = 20;

/// The chain at a glance (part of [`Status`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSummary {
    pub records: usize,
    pub applied: usize,
    pub pending: usize,
    pub pending_bytes: usize,
    pub awaiting_key: usize,
    pub awaiting_key_bytes: usize,
    /// What pending records wait for, at most [`MAX_MISSING_SHOWN`].
    pub missing: Vec<String>,
    pub accounts: usize,
    pub issued: crate::ledger::economics::Amounts,
    pub forks: usize,
    #[serde(default)]
    pub economy: Economy,
    pub checkpoint: Option<CheckpointSummary>,
}

/// The last checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSummary {
    pub period: u64,
    pub record: RecordHash,
    pub special: bool,
}

pub fn chain_summary(l: &Ledger, now: u64) -> ChainSummary {
    let state = l.state();
    let missing: std::collections::BTreeSet<String> = l
        .pending()
        .flat_map(|(_, deps)| deps.iter().map(ToString::to_string))
        .collect();
    let pools = l.pools();
    ChainSummary {
        records: l.len(),
        applied: state.applied_count(),
        pending: pools.pending,
        pending_bytes: pools.pending_bytes,
        awaiting_key: pools.awaiting_key,
        awaiting_key_bytes: pools.awaiting_key_bytes,
        missing: missing.into_iter().take(MAX_MISSING_SHOWN).collect(),
        accounts: state.account_count(),
        issued: state.issued.clone(),
        forks: l.fork_count(),
        economy: economy(l, now),
        checkpoint: state.checkpoint.as_ref().map(|c| CheckpointSummary {
            period: c.period,
            record: c.record,
            special: c.special,
        }),
    }
}

/// `cod status`: the daemon's answer and `--json`'s document — one type for the daemon, the
/// CLI and the TUI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub cod_id: crate::ids::CodId,
    /// The ledger this version of the cod continues (see `docs/upgrade.md`).
    pub ledger: crate::ids::CodId,
    pub node_id: AccountId,
    /// What peers know the node by in this run (its transport key; never its account).
    pub peer_id: crate::ids::PeerId,
    /// The API address the node tells its peers.
    pub addr: String,
    pub pid: u32,
    pub software_version: String,
    pub com_version: String,
    pub cod_version: String,
    /// Seconds since the daemon started.
    pub uptime: u64,
    pub peers: PeerCounts,
    pub chain: ChainSummary,
    /// This node's account.
    pub balance: Balance,
    pub newer_version_seen: Option<NewerVersion>,
    /// Signature requests waiting for this node's member.
    pub signature_requests: usize,
    pub handover: Option<HandoverSummary>,
    /// The most records a confirmed peer said it applied.
    pub best_peer_applied: Option<usize>,
    /// How far the peers' clocks are from this node's (none before a peer answered).
    #[serde(default)]
    pub clock: Option<ClockOffset>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCounts {
    pub confirmed: usize,
    pub known: usize,
}

/// A newer version of this cod that a peer runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewerVersion {
    pub cod_version: String,
    pub cod_id: String,
    /// A peer that runs it.
    pub peer: Option<String>,
}

/// The ledger's last handover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoverSummary {
    /// The cod id of the version that continues the ledger.
    pub to: crate::ids::CodId,
    pub version: String,
    pub rules: u32,
    /// This version keeps no new record (its rules are older than the handover's).
    pub frozen: bool,
}

impl HandoverSummary {
    /// What the handover means for this node, in one line (status, TUI).
    pub fn line(&self) -> String {
        let version = self.version.escape_debug();
        if self.frozen {
            format!(
                "HANDED OVER to cod {version} ({}): this version keeps no new record; upgrade (cod upgrade check, docs/upgrade.md)",
                self.to
            )
        } else {
            format!(
                "handover   the ledger continues under cod {version} ({})",
                self.to
            )
        }
    }
}

/// An asset's definition, or a plain one for codes com.ini does not know.
pub fn asset<'a>(l: &'a Ledger, code: &str) -> &'a Asset {
    static PLAIN: Asset = Asset {
        decimals: 0,
        description: None,
    };
    l.params().com.assets.get(code).unwrap_or(&PLAIN)
}

/// A refused transfer in the member's terms (amounts with their decimals).
pub fn explain(l: &Ledger, e: &RecordError) -> String {
    match e {
        RecordError::Overspend {
            asset: code,
            held,
            wanted,
        } => {
            let a = asset(l, code);
            format!(
                "this account holds {} {code} but the transfer needs {}",
                a.format(*held),
                a.format(*wanted)
            )
        }
        RecordError::NoSuchAccount(a) => {
            format!(
                "account {a} does not exist in this cod (never opened, or not synced to this node yet)"
            )
        }
        other => other.to_string(),
    }
}

/// What `cod transfer` reports once a transfer is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transferred {
    pub record: RecordHash,
    pub account: AccountId,
    pub outputs: Vec<crate::ledger::Output>,
    /// The account's spendable holdings once it is stored, per asset.
    pub spendable_after: BTreeMap<String, u64>,
    /// The answer was lost, and the transfer was found made in the chain afterwards.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
}

/// `cod transfer`: the record `r`, just stored in `l`.
pub fn transfer(l: &Ledger, r: &Record) -> Transferred {
    let spendable_after = l
        .state()
        .account(&r.account())
        .map(|s| s.spendable.clone())
        .unwrap_or_default();
    Transferred {
        record: r.hash(),
        account: r.account(),
        outputs: r.body().content.outputs().to_vec(),
        spendable_after,
        recovered: false,
    }
}

/// At most the first `n` characters of `s` (never cutting one in two): ids and other text
/// from the daemon or a peer, shortened for a table.
pub fn prefix(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// `RecordAt`: an applied record with its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Located {
    pub hash: RecordHash,
    /// The record (the chain archive's JSON form).
    pub record: Value,
}

/// `RecordAt`: the applied record at (account, seq), if there is one.
pub fn record_at(l: &Ledger, account: &AccountId, seq: u64) -> Option<Located> {
    l.at(account, seq).map(|r| Located {
        hash: r.hash(),
        record: r.to_json(),
    })
}

/// An applied record at a glance (the TUI's chain tab, and the event of one applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentRecord {
    pub hash: RecordHash,
    pub kind: String,
    pub account: AccountId,
    pub seq: u64,
    pub time: u64,
}

impl RecentRecord {
    pub fn of(r: &Record) -> Self {
        Self {
            hash: r.hash(),
            kind: r.kind().to_string(),
            account: r.account(),
            seq: r.seq(),
            time: r.body().time,
        }
    }
}

/// The most recently applied records, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    pub records: Vec<RecentRecord>,
}

/// The `limit` most recently applied records, newest first.
pub fn recent(l: &Ledger, limit: usize) -> Recent {
    let n = l.state().applied_count();
    let mut records: Vec<RecentRecord> = l
        .log(n.saturating_sub(limit), limit)
        .iter()
        .map(|r| RecentRecord::of(r))
        .collect();
    records.reverse();
    Recent { records }
}

/// `Export`: the chain archive, whole, in the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archive {
    pub archive: String,
}

/// `ExportFile`: what was written into the client's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exported {
    pub records: usize,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tests::{DAY, EPOCH, Scenario};

    /// The kinds and changes of a history, newest first.
    fn entries(l: &Ledger, a: &AccountId, limit: usize) -> Vec<(String, i64)> {
        history(l, a, limit)
            .entries
            .into_iter()
            .map(|e| (e.kind, e.change.get("codcoin").copied().unwrap_or(0)))
            .collect()
    }

    #[test]
    fn a_history_shows_own_records_and_payments_received_newest_first() {
        let mut s = Scenario::standard();
        s.pay(
            "node1",
            &[("node2", 300), ("network", 100)],
            EPOCH + DAY + 50,
        );
        s.pay("node2", &[("network", 7)], EPOCH + DAY + 60);
        let p = s.l.params().clone();
        let node1 = crate::ledger::tests::key("node1").public().node_id(&p.cod);
        let node2 = crate::ledger::tests::key("node2").public().node_id(&p.cod);
        assert_eq!(
            entries(&s.l, &node1, 50),
            [
                ("transfer".into(), -400),
                ("distribute".into(), 875),
                ("open".into(), 0)
            ]
        );
        assert_eq!(
            entries(&s.l, &node2, 50),
            [
                ("transfer".into(), -7),
                ("transfer".into(), 300),
                ("distribute".into(), 875),
                ("open".into(), 0)
            ]
        );
        assert_eq!(entries(&s.l, &node2, 2).len(), 2);
        // The network: its own records, and the payments to it (found in the latest applied
        // records).
        assert_eq!(
            entries(&s.l, &p.network, 50),
            [
                ("transfer".into(), 7),
                ("transfer".into(), 100),
                ("distribute".into(), -3500),
                ("issue".into(), 3500)
            ]
        );
    }

    #[test]
    fn prefixes_never_split_a_character() {
        assert_eq!(prefix("abcdef", 3), "abc");
        assert_eq!(prefix("ab", 12), "ab");
        assert_eq!(prefix("?", 12), "?");
        assert_eq!(prefix("ééééé", 2), "éé");
    }
}

/// `cod config reload`: the node.ini settings the running node took, and those that changed
/// but wait for its next start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    pub applied: Vec<String>,
    pub at_next_start: Vec<String>,
}

/// How far this node's peers' clocks are from its own: the median of the confirmed peers'
/// offsets (positive: theirs are ahead, so this node's is behind), and of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockOffset {
    pub median: i64,
    pub peers: usize,
}

impl ClockOffset {
    /// Is this node's clock off enough to tell its operator? Half the tolerated skew, by at
    /// least [`CLOCK_WARN_PEERS`] peers (one peer's wrong clock says nothing of this one's):
    /// beyond it, peers start holding back its transfers, or it theirs.
    pub fn is_off(&self) -> bool {
        self.peers >= CLOCK_WARN_PEERS
            && self.median.unsigned_abs() > crate::clock::MAX_CLOCK_SKEW / 2
    }

    /// How an operator reads it.
    pub fn describe(&self) -> String {
        let side = if self.median > 0 {
            "behind"
        } else {
            "ahead of"
        };
        let seconds = self.median.unsigned_abs();
        let how = if seconds <= 1 {
            "in step with its peers'".to_string()
        } else {
            format!("{seconds} s {side} its peers'")
        };
        let warn = if self.is_off() {
            " — set it right (timedatectl): peers hold back transfers dated more than 10 minutes ahead"
        } else {
            ""
        };
        format!("{how} (median of {}){warn}", self.peers)
    }
}

/// Peers that must agree before a clock is called off.
pub const CLOCK_WARN_PEERS: usize = 3;
