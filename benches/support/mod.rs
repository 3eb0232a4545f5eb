//! What the daemon benchmarks share: the `cod` executable they drive (`COD_BIN`), a local
//! network of real daemons (`Net`), a big chain made fast (`big_chain`), and measuring helpers.
#![allow(dead_code)] // each bench uses its own part

// The test kit (tests/common): the executable, the local DHT, the example keys, waiting.
#[path = "../../tests/common/mod.rs"]
pub mod kit;

use cod::control::ask;
use cod::control::client::Client;
use cod::ledger::{B64, Body, Content, Ledger, Output, Record, Sig, Transfer, add_signature};
pub use kit::{REPO, cod_bin, example_secret as secret};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn cod(args: &[&str]) -> String {
    let out = Command::new(cod_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run cod");
    assert!(
        out.status.success(),
        "cod {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn json(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&cod(&a)).unwrap()
}

/// Waits until `f` holds, for up to `secs` seconds (the test kit's `wait_for`).
pub fn wait(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    kit::wait_for(secs, what, || f().then_some(()));
}

pub use cod::clock::now;

/// Daemons of the benchmarks: up to twenty (example keys, then generated ones), each
/// trusting 127.0.0.1 so twenty nodes' traffic from one address is not one peer's.
pub struct Net {
    pub dir: tempfile::TempDir,
    pub dht: kit::LocalDht,
    pub pkg: PathBuf,
    pub nodes: Vec<PathBuf>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in &self.nodes {
            let _ = Command::new(cod_bin())
                .args(["--node", n.to_str().unwrap(), "node", "stop"])
                .output();
        }
    }
}

impl Net {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dht = kit::LocalDht::start(4);
        let keys = dir.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        for k in ["com.pub.key", "cod.pub.key", "cod.sec.key"] {
            std::fs::copy(Path::new(REPO).join("keys-example").join(k), keys.join(k)).unwrap();
        }
        set_mode(&keys.join("cod.sec.key"), 0o600);
        let out = dir.path().join("dist");
        let v = json(&[
            "pack",
            "--com",
            &format!("{REPO}/ini-templates/com.ini"),
            "--cod",
            &format!("{REPO}/ini-templates/cod.ini"),
            "--keys",
            keys.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let pkg = PathBuf::from(v["package"].as_str().unwrap());
        Self {
            dir,
            dht,
            pkg,
            nodes: Vec::new(),
        }
    }

    /// Deploys and starts a node; example keys node1..node6, generated keys beyond.
    pub fn add(&mut self, i: usize, extra: &str) -> PathBuf {
        let key = self.dir.path().join(format!("k{i}"));
        if i <= 6 {
            std::fs::copy(format!("{REPO}/keys-example/node{i}.sec.key"), &key).unwrap();
            set_mode(&key, 0o600);
        } else {
            let d = self.dir.path().join(format!("gen{i}"));
            cod(&[
                "keygen",
                "--role",
                "node",
                "--out",
                d.to_str().unwrap(),
                "--no-passphrase",
            ]);
            std::fs::rename(d.join("node.sec.key"), &key).unwrap();
        }
        let ini = self.dir.path().join(format!("n{i}.ini"));
        std::fs::write(&ini, format!("[node]\nlisten = 127.0.0.1:0\n[dht]\nbootstrap = {}\nannounce_interval = 2s\nlookup_interval = 2s\n[sync]\ninterval = 2s\n[limits]\ntrusted = 127.0.0.1\n{extra}", self.dht.bootstrap)).unwrap();
        let base = self.dir.path().join(format!("nodes{i}"));
        let v = json(&[
            "deploy",
            "--package",
            self.pkg.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--node-ini",
            ini.to_str().unwrap(),
            "--dir",
            base.to_str().unwrap(),
        ]);
        let dir = PathBuf::from(v["dir"].as_str().unwrap());
        cod(&["--node", dir.to_str().unwrap(), "node", "start"]);
        self.nodes.push(dir.clone());
        dir
    }

    pub fn client(node: &Path) -> Client {
        Client::connect(&node.join("cod.sock")).unwrap()
    }

    pub fn status(node: &Path) -> serde_json::Value {
        Self::client(node).call(&ask::Status {}.into()).unwrap()
    }
}

/// Funds every node: the current period's distribution of a large issuance.
pub fn fund(net: &Net) {
    let params = cod::nodedir::NodeDir::open(&net.nodes[0])
        .unwrap()
        .params()
        .unwrap();
    let mut l = Ledger::new(params.clone());
    for n in &net.nodes {
        let text = Net::client(n).ask(ask::Export {}).unwrap().archive;
        for r in cod::archive::read(text.as_bytes(), &params.cod).unwrap() {
            let _ = l.ingest(r);
        }
    }
    let issue = signed_by_quorum(
        l.propose_issue(
            [("bread".to_string(), 1_000_000)].into(),
            Default::default(),
            now(),
        )
        .unwrap(),
    );
    l.ingest(issue).unwrap();
    // Distributions pay members: the signers admit every node's account.
    let accounts: Vec<_> = l
        .state()
        .accounts()
        .into_iter()
        .filter(|(a, s)| *a != params.network && s.head.is_some() && !s.is_member())
        .map(|(a, _)| a)
        .collect();
    for chunk in accounts.chunks(cod::ledger::record::MAX_MEMBERS_CHANGED) {
        let admit = signed_by_quorum(l.propose_members(chunk.to_vec(), vec![], now()).unwrap());
        l.ingest(admit).unwrap();
    }
    let dist = signed_by_quorum(
        l.propose_distribution(params.com.period_of(now()), false, 0)
            .unwrap(),
    );
    l.ingest(dist).unwrap();
    let archive = cod::chain::export(&l);
    Net::client(&net.nodes[0])
        .ask(ask::Import {
            archive: String::from_utf8(archive).unwrap(),
        })
        .unwrap();
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// An issuance or distribution signed by com.ini's two signers (the example keys).
pub fn signed_by_quorum(body: Body) -> Record {
    let sigs = add_signature(
        &body,
        &add_signature(&body, &[], &secret("node1")),
        &secret("node2"),
    );
    Record::new(body, sigs)
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A chain of `total` records: openings and funding for 16 accounts, then transfers, each
/// paying the network account 1 unit (chains independent, so they sign in parallel).
pub fn big_chain(total: usize) -> (Net, PathBuf, usize) {
    let mut net = Net::new();
    let first = net.add(1, "");
    let params = params_of(&first);
    let records = big_chain_records(&params, total);
    // The node holds them all (imported through its daemon).
    let archive = cod::archive::write(&params.cod, records.iter());
    Net::client(&first)
        .ask(ask::Import {
            archive: String::from_utf8(archive).unwrap(),
        })
        .unwrap();
    let count = Net::status(&first)["chain"]["applied"].as_u64().unwrap() as usize;
    (net, first, count)
}

pub fn params_of(node: &Path) -> cod::ledger::Params {
    cod::nodedir::NodeDir::open(node).unwrap().params().unwrap()
}

/// The records of [`big_chain`], made on all cores.
pub fn big_chain_records(params: &cod::ledger::Params, total: usize) -> Vec<Record> {
    use rayon::prelude::*;
    let keys: Vec<cod::keys::SecretKey> = (0..16)
        .map(|_| cod::keys::SecretKey::generate(3072).unwrap())
        .collect();
    let mut l = Ledger::new(params.clone());
    let t0 = now() - 3600;
    let mut records = Vec::new();
    for k in &keys {
        let r = l.make_open(k);
        l.ingest(r.clone()).unwrap();
        records.push(r);
    }
    let issue = signed_by_quorum(
        l.propose_issue(
            [("bread".to_string(), 10_000_000)].into(),
            Default::default(),
            t0 + 1,
        )
        .unwrap(),
    );
    l.ingest(issue.clone()).unwrap();
    records.push(issue);
    // Distributions pay members: the signers admit every account (64 to a record).
    let accounts: Vec<_> = keys
        .iter()
        .map(|k| k.public().node_id(&params.cod))
        .collect();
    for chunk in accounts.chunks(cod::ledger::record::MAX_MEMBERS_CHANGED) {
        let admit = signed_by_quorum(l.propose_members(chunk.to_vec(), vec![], t0 + 1).unwrap());
        l.ingest(admit.clone()).unwrap();
        records.push(admit);
    }
    let dist = signed_by_quorum(
        l.propose_distribution(params.com.period_of(t0), false, 0)
            .unwrap(),
    );
    l.ingest(dist.clone()).unwrap();
    records.push(dist);
    // First transfer of each account claims its share; the rest only pay.
    let per = (total - records.len()) / keys.len();
    let chains: Vec<Vec<Record>> = keys
        .par_iter()
        .map(|k| {
            let mut out: Vec<Record> = Vec::with_capacity(per);
            let first = l
                .make_transfer(
                    k,
                    vec![Output {
                        account: params.network,
                        amount: 1,
                        asset: "codcoin".into(),
                    }],
                    None,
                    t0 + 2,
                )
                .unwrap();
            out.push(first);
            for i in 1..per {
                let prev = out.last().unwrap();
                let body = Body {
                    version: 1,
                    cod: params.cod,
                    time: t0 + 2 + i as u64,
                    account: prev.account(),
                    seq: prev.seq() + 1,
                    prev: Some(prev.hash()),
                    content: Content::Transfer(Transfer {
                        key: None,
                        claims: vec![],
                        outputs: vec![Output {
                            account: params.network,
                            amount: 1,
                            asset: "codcoin".into(),
                        }],
                        memo: None,
                        rekey: None,
                        redeem: Default::default(),
                        vouch: Vec::new(),
                    }),
                };
                let sig = Sig {
                    key: None,
                    sig: B64(k.sign(&body.canonical_bytes())),
                };
                out.push(Record::new(body, vec![sig]));
            }
            out
        })
        .collect();
    for c in chains {
        records.extend(c);
    }
    records
}

/// User + system CPU time of a process so far (Linux `/proc`; NaN elsewhere).
pub fn cpu_seconds(pid: u64) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let f: Vec<f64> = rest
        .split(' ')
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    let ticks = 100.0; // USER_HZ on Linux
    f.iter().sum::<f64>() / ticks
}
