//! Network benchmark (`just bench-net`): real `cod` daemons on loopback with a local DHT.
//! For N nodes (5 and 20): transfers per second accepted, p50/p99 time until a record is on
//! every node, bytes of a sync round between nodes already in sync; then the full-chain sync
//! rate of a fresh node (records/s) next to `openssl speed`'s RSA verify rate.
//!
//! Needs the release `cod` executable: `just bench-net` builds it (`just release`) and sets
//! `COD_BIN`. Every node runs on 127.0.0.1, so each trusts that address (node.ini
//! `[limits] trusted`): twenty nodes' traffic from one address is not one peer's.
//! `COD_BENCH_RECORDS` sets the size of the fresh-sync chain (default 100000).

mod common;

use cod::control::client::Client;
use cod::control::{Event, Request, TransferOutput};
use cod::ledger::{B64, Body, Content, Ledger, Output, Record, Sig, Transfer, add_signature};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn cod_bin() -> PathBuf {
    std::env::var_os("COD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(REPO).join("target/release/cod"))
}

fn cod(args: &[&str]) -> String {
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

fn json(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&cod(&a)).unwrap()
}

fn wait(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Net {
    dir: tempfile::TempDir,
    dht: Child,
    boot: String,
    pkg: PathBuf,
    nodes: Vec<PathBuf>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in &self.nodes {
            let _ = Command::new(cod_bin())
                .args(["--node", n.to_str().unwrap(), "node", "stop"])
                .output();
        }
        let _ = self.dht.kill();
    }
}

impl Net {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut dht = Command::new(cod_bin())
            .args(["dht", "bootstrap", "--nodes", "4"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut boot = String::new();
        std::io::BufReader::new(dht.stdout.take().unwrap())
            .read_line(&mut boot)
            .unwrap();
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
            boot: boot.trim().to_string(),
            pkg,
            nodes: Vec::new(),
        }
    }

    /// Deploys and starts a node; example keys node1..node6, generated keys beyond.
    fn add(&mut self, i: usize, extra: &str) -> PathBuf {
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
        std::fs::write(&ini, format!("[node]\nlisten = 127.0.0.1:0\n[dht]\nbootstrap = {}\nannounce_interval = 2s\nlookup_interval = 2s\n[sync]\ninterval = 2s\n[limits]\ntrusted = 127.0.0.1\n{extra}", self.boot)).unwrap();
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

    fn client(node: &Path) -> Client {
        Client::connect(&node.join("cod.sock")).unwrap()
    }

    fn status(node: &Path) -> serde_json::Value {
        Self::client(node).call(&Request::Status).unwrap()
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// An issuance or distribution signed by com.ini's two signers (the example keys).
fn signed_by_quorum(body: Body) -> Record {
    let sigs = add_signature(
        &body,
        &add_signature(&body, &[], &secret("node1")),
        &secret("node2"),
    );
    Record::new(body, sigs)
}

fn secret(name: &str) -> cod::keys::SecretKey {
    let pem = std::fs::read_to_string(format!("{REPO}/keys-example/{name}.sec.key")).unwrap();
    cod::keys::SecretKey::from_pem(&pem, None).unwrap()
}

/// Funds every node: the current period's distribution of a large issuance.
fn fund(net: &Net) {
    let params = cod::nodedir::NodeDir::open(&net.nodes[0])
        .unwrap()
        .params()
        .unwrap();
    let mut l = Ledger::new(params.clone());
    for n in &net.nodes {
        let text = Net::client(n).call(&Request::Export).unwrap()["archive"]
            .as_str()
            .unwrap()
            .to_string();
        for r in cod::archive::read(text.as_bytes(), &params.cod).unwrap() {
            let _ = l.ingest(r);
        }
    }
    let issue = signed_by_quorum(
        l.propose_issue([("bread".to_string(), 1_000_000)].into(), now())
            .unwrap(),
    );
    l.ingest(issue).unwrap();
    let dist = signed_by_quorum(
        l.propose_distribution(params.com.period_of(now()), false, 0)
            .unwrap(),
    );
    l.ingest(dist).unwrap();
    let archive = cod::chain::export(&l);
    Net::client(&net.nodes[0])
        .call(&Request::Import {
            archive: String::from_utf8(archive).unwrap(),
        })
        .unwrap();
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Bytes on the wire for one `GET /v1/sync/summary` (request and response): what a sync
/// round between nodes already in sync costs.
fn summary_round_bytes(addr: &str) -> usize {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let req = format!(
        "GET /v1/sync/summary HTTP/1.1\r\nhost: {addr}\r\naccept: */*\r\nconnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    req.len() + resp.len()
}

fn run_n(n: usize, burst: usize) {
    let mut net = Net::new();
    for i in 1..=n {
        net.add(i, "");
    }
    let ids: Vec<String> = net
        .nodes
        .iter()
        .map(|d| Net::status(d)["node_id"].as_str().unwrap().to_string())
        .collect();
    for d in &net.nodes {
        wait(180, "the mesh", || {
            Net::status(d)["peers"]["confirmed"].as_u64() == Some(n as u64 - 1)
        });
    }
    fund(&net);
    for d in &net.nodes {
        wait(120, "the funding everywhere", || {
            Net::status(d)["chain"]["applied"].as_u64() >= Some(n as u64 + 2)
        });
    }
    // Watch every node's event stream for the burst's records.
    let seen: Arc<Mutex<std::collections::HashMap<String, Vec<Instant>>>> = Arc::default();
    for d in &net.nodes {
        let (seen, events) = (seen.clone(), Net::client(d).subscribe().unwrap());
        std::thread::spawn(move || {
            for e in events.flatten() {
                if let Event::Record { hash, .. } = e {
                    seen.lock()
                        .unwrap()
                        .entry(hash)
                        .or_default()
                        .push(Instant::now());
                }
            }
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut c = Net::client(&net.nodes[0]);
    let start = Instant::now();
    let mut made = Vec::new();
    for i in 0..burst {
        let to = &ids[1 + i % (n - 1)];
        let out = TransferOutput {
            account: to.clone(),
            asset: "codcoin".into(),
            amount: 1,
        };
        let t = Instant::now();
        let v = c
            .call(&Request::Transfer {
                outputs: vec![out],
                memo: None,
                seq: None,
            })
            .unwrap();
        made.push((v["record"].as_str().unwrap().to_string(), t));
    }
    let rate = burst as f64 / start.elapsed().as_secs_f64();
    wait(300, "the burst on every node", || {
        let s = seen.lock().unwrap();
        made.iter()
            .all(|(h, _)| s.get(h).is_some_and(|v| v.len() >= n))
    });
    let s = seen.lock().unwrap();
    let mut lat: Vec<f64> = made
        .iter()
        .map(|(h, t)| s[h].iter().max().unwrap().duration_since(*t).as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let addr = Net::status(&net.nodes[1])["addr"]
        .as_str()
        .unwrap()
        .to_string();
    println!(
        "N={n:>2}: {burst} transfers from one node at {rate:.0}/s accepted; on every node after p50 {:.0} ms, p99 {:.0} ms; in-sync round {} bytes",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        summary_round_bytes(&addr)
    );
}

/// A chain of `total` records: openings and funding for 16 accounts, then transfers, each
/// paying the network account 1 unit (chains independent, so they sign in parallel).
fn big_chain(total: usize) -> (Net, PathBuf, usize) {
    use rayon::prelude::*;
    let keys: Vec<cod::keys::SecretKey> = (0..16)
        .map(|_| cod::keys::SecretKey::generate(3072).unwrap())
        .collect();
    let mut net = Net::new();
    let first = net.add(1, "");
    let params = cod::nodedir::NodeDir::open(&first)
        .unwrap()
        .params()
        .unwrap();
    let mut l = Ledger::new(params.clone());
    let t0 = now() - 3600;
    let mut records = Vec::new();
    for k in &keys {
        let r = l.make_open(k);
        l.ingest(r.clone()).unwrap();
        records.push(r);
    }
    let issue = signed_by_quorum(
        l.propose_issue([("bread".to_string(), 10_000_000)].into(), t0 + 1)
            .unwrap(),
    );
    l.ingest(issue.clone()).unwrap();
    records.push(issue);
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
    // The node holds them all (imported through its daemon).
    let archive = cod::archive::write(&params.cod, records.iter());
    Net::client(&first)
        .call(&Request::Import {
            archive: String::from_utf8(archive).unwrap(),
        })
        .unwrap();
    let count = Net::status(&first)["chain"]["applied"].as_u64().unwrap() as usize;
    (net, first, count)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test` runs bench targets; this one only runs under `cargo bench`
    }
    assert!(
        cod_bin().exists(),
        "build the release cod first (just bench-net does): {}",
        cod_bin().display()
    );
    let burst: usize = std::env::var("COD_BENCH_BURST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    if std::env::var_os("COD_BENCH_ONLY_SYNC").is_none() {
        for n in [5, 20] {
            run_n(n, burst);
        }
    }
    let total: usize = std::env::var("COD_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (mut net, holder, count) = big_chain(total);
    let holder_addr = Net::status(&holder)["addr"].as_str().unwrap().to_string();
    // A fresh node whose only peer is the node holding the chain.
    let fresh = net.add(2, &format!("[peers]\nstatic = {holder_addr}\n"));
    let pids = [&fresh, &holder].map(|n| Net::status(n)["pid"].as_u64().unwrap_or(0));
    let cpu = || pids.map(cpu_seconds);
    eprintln!("fresh node pid {}, holder pid {}", pids[0], pids[1]); // to attach a profiler
    let applied = || {
        Net::status(&fresh)["chain"]["applied"]
            .as_u64()
            .unwrap_or(0) as usize
    };
    // Started: finding and confirming the peer comes first; the rate counts from the first
    // record applied, the total from the start.
    let (start, before) = (Instant::now(), cpu());
    let own = applied(); // its own opening, at most
    wait(600, "the fresh node's first synced page", || {
        applied() > own
    });
    let (first, at) = (applied(), Instant::now());
    wait(3600, "the fresh node to sync", || applied() >= count);
    let end = Instant::now();
    let used = cpu();
    // Waits poll every 200 ms: a chain synced within about a second of its first page (a
    // short one) has no measurable rate after it, so count from the start then.
    let rate = if end - at >= Duration::from_secs(1) {
        (count - first) as f64 / (end - at).as_secs_f64()
    } else {
        count as f64 / (end - start).as_secs_f64()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ossl = common::openssl_verify_rate(3072, cores).unwrap_or(f64::NAN);
    println!(
        "fresh node: {count} records in {:.1} s from start ({:.1} s to the first synced page); \
         synced at {rate:.0} records/s = {:.0}% of openssl's {cores}-core RSA-3072 verify rate \
         ({ossl:.0}/s; target 50%)",
        (end - start).as_secs_f64(),
        (at - start).as_secs_f64(),
        100.0 * rate / ossl
    );
    println!(
        "  CPU used meanwhile: fresh node {:.1} s, holder {:.1} s (of {:.1} s on {cores} cores)",
        used[0] - before[0],
        used[1] - before[1],
        (end - start).as_secs_f64() * cores as f64
    );
}

/// User + system CPU time of a process so far (Linux `/proc`; NaN elsewhere).
fn cpu_seconds(pid: u64) -> f64 {
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
