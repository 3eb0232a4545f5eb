//! What the daemon benchmarks share: the `cod` executable they drive (`COD_BIN`), the test
//! kit's network of real daemons (`Net`, with [`bench_ini`]'s limits), a big chain made fast
//! (`big_chain`), and measuring helpers.
#![allow(dead_code)] // each bench uses its own part

// The test kit (tests/common): the executable, the local DHT, the example keys, waiting.
#[path = "../../tests/common/mod.rs"]
pub mod kit;

use cod::control::ask;
use cod::control::client::Client;
use cod::ledger::{B64, Body, Content, Ledger, Output, Record, Sig, Transfer, add_signature};
pub use kit::{Net, Node, World, cod_bin, example_secret as secret, params_of};

/// Waits until `f` holds, for up to `secs` seconds (the test kit's `wait_for`).
pub fn wait(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    kit::wait_for(secs, what, || f().then_some(()));
}

pub use cod::clock::now;

/// The node.ini lines every benchmark node has: on 127.0.0.1 each trusts that address, so
/// twenty nodes' traffic from one address is not one peer's.
pub fn bench_ini(extra: &str) -> String {
    format!("[limits]\ntrusted = 127.0.0.1\n{extra}")
}

/// A network of the demo cod with a local DHT and no node yet; [`add`] deploys them.
pub fn net(w: &World) -> Net<'_> {
    Net::with_dht(w, 0, "")
}

/// Deploys and starts node `i` (example keys node1..node6, generated keys beyond).
pub fn add(net: &mut Net, i: usize, extra: &str) -> Node {
    net.add(&format!("node{i}"), &bench_ini(extra)).clone()
}

pub fn client(node: &Node) -> Client {
    Client::connect(&node.dir.join("cod.sock")).unwrap()
}

/// The node's status, asked over its control socket (no `cod` process per poll).
pub fn status(node: &Node) -> serde_json::Value {
    client(node).call(&ask::Status {}.into()).unwrap()
}

/// Funds every node: an issuance of a million loaves and the current period's distribution
/// (the test kit's [`kit::funding_archive`]), imported at the first node.
pub fn fund(net: &Net) {
    let nodes: Vec<&Node> = net.nodes.iter().collect();
    let archive = kit::funding_archive(net.w, &nodes, 1_000_000);
    net.w
        .at(&net.nodes[0], &["chain", "import", kit::s(&archive)])
        .ok();
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
pub fn big_chain(w: &World, total: usize) -> (Net<'_>, Node, usize) {
    let mut net = net(w);
    let first = add(&mut net, 1, "");
    let params = params_of(&first);
    let records = big_chain_records(&params, total);
    // The node holds them all (imported through its daemon).
    let archive = cod::archive::write(&params.cod, records.iter());
    client(&first)
        .ask(ask::Import {
            archive: String::from_utf8(archive).unwrap(),
        })
        .unwrap();
    let count = status(&first)["chain"]["applied"].as_u64().unwrap() as usize;
    (net, first, count)
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
