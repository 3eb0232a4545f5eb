//! Origin privacy benchmark (`just bench-privacy`): N real `cod` daemons on loopback (a local
//! DHT; N = 20, `COD_BENCH_N`) and one spy that is a confirmed peer of every node. Random
//! nodes make transfers, one at a time (`COD_BENCH_RECORDS`, default 200); the spy names as
//! each record's author the node it first received the record from (by any route: a push,
//! a stem), the first-spy estimator. Reported: the share of records it names rightly
//! (against 1/N chance), and the time until a record is on every node (p50/p99) — first with
//! stems off (`[peers] stem = false`: a record goes from its author to every peer), then on,
//! in `COD_BENCH_NETS` networks (default 3) and all of them together.
//!
//! The spy serves one port per node and each node knows only its own (node.ini `[peers]
//! static`; peer exchange off, the spy is not in the DHT), so the port a record arrives on
//! names the node that sent it. It follows the protocol: it passes a stem on to a random
//! node, as an honest relay would.

mod common;
#[path = "support/mod.rs"]
mod support;

use cod::control::{Event, TransferOutput, ask};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::kit::spy;
use support::*;

struct Outcome {
    precision: f64,
    p50: f64,
    p99: f64,
    records: usize,
}

fn run(n: usize, count: usize, stem: bool, seed: u64) -> Outcome {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ports = spy::ports(n);
    let w = World::new();
    let mut net = net(&w);
    for (i, p) in ports.iter().enumerate() {
        let spy = p.local_addr().unwrap();
        add(
            &mut net,
            i + 1,
            &format!("[peers]\nexchange = false\nstatic = {spy}\nstem = {stem}\n"),
        );
    }
    let addrs: Vec<String> = net
        .nodes
        .iter()
        .map(|d| status(d)["addr"].as_str().unwrap().to_string())
        .collect();
    let ids: Vec<String> = net
        .nodes
        .iter()
        .map(|d| status(d)["node_id"].as_str().unwrap().to_string())
        .collect();
    let seen = spy::serve(&rt, ports, spy::info_of(&addrs[0]), Some(addrs));
    // Every node confirms every other and the spy.
    for d in &net.nodes {
        wait(300, "the mesh", || {
            status(d)["peers"]["confirmed"].as_u64() == Some(n as u64)
        });
    }
    fund(&net);
    for d in &net.nodes {
        wait(120, "the funding everywhere", || {
            status(d)["chain"]["applied"].as_u64() >= Some(n as u64 + 2)
        });
    }
    let on_nodes: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
    for d in &net.nodes {
        let (on_nodes, events) = (on_nodes.clone(), client(d).subscribe().unwrap());
        std::thread::spawn(move || {
            for e in events.flatten() {
                if let Event::Record(r) = e {
                    on_nodes
                        .lock()
                        .unwrap()
                        .entry(r.hash.to_string())
                        .or_default()
                        .push(Instant::now());
                }
            }
        });
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut right, mut named, mut latencies) = (0, 0, Vec::new());
    for _ in 0..count {
        let author = rng.gen_range(0..n);
        let to = (author + rng.gen_range(1..n)) % n;
        let t = Instant::now();
        let v = client(&net.nodes[author])
            .ask(ask::Transfer {
                outputs: vec![TransferOutput {
                    account: ids[to].clone(),
                    asset: "codcoin".into(),
                    amount: 1,
                }],
                memo: None,
                seq: None,
                redeem: Default::default(),
                vouch: Vec::new(),
            })
            .unwrap();
        let hash = v.record.to_string();
        wait(120, "the record on every node", || {
            on_nodes
                .lock()
                .unwrap()
                .get(&hash)
                .is_some_and(|v| v.len() >= n)
        });
        let last = *on_nodes.lock().unwrap()[&hash].iter().max().unwrap();
        latencies.push(last.duration_since(t).as_secs_f64() * 1000.0);
        // The spy may see it a moment after the last node.
        wait(30, "the spy to see the record", || {
            seen.first(&hash).is_some()
        });
        if std::env::var_os("COD_BENCH_TRACE").is_some() {
            eprintln!(
                "record {} by node {author}: {:?}",
                &hash[..12],
                seen.of(&hash)
            );
        }
        named += 1;
        right += (seen.first(&hash).unwrap().port == author) as usize;
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Outcome {
        precision: right as f64 / named as f64,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        records: named,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test` runs bench targets; this one only runs under `cargo bench`
    }
    assert!(
        cod_bin().exists(),
        "build the release cod first (just bench-privacy does): {}",
        cod_bin().display()
    );
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (n, count) = (env("COD_BENCH_N", 20), env("COD_BENCH_RECORDS", 200));
    // The machine's pace, for comparing runs (docs/performance.md).
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!(
        "openssl speed: RSA-3072 verify {:.0}/s on {cores} cores",
        common::openssl_verify_rate(3072, cores).unwrap_or(f64::NAN)
    );
    // Stems off once; on over several networks, since one network's precision hangs on
    // which nodes happened to choose the spy as their relay for the epoch.
    let nets = env("COD_BENCH_NETS", 3);
    let (mut right, mut named) = (0.0, 0);
    for (stem, seed) in std::iter::once((false, 7)).chain((0..nets as u64).map(|i| (true, 8 + i))) {
        let o = run(n, count, stem, seed);
        if stem {
            right += o.precision * o.records as f64;
            named += o.records;
        }
        println!(
            "N={n} stems {}: the spy named the author of {:.1}% of {} records (chance {:.1}%); \
             on every node after p50 {:.0} ms, p99 {:.0} ms",
            if stem { "on " } else { "off" },
            100.0 * o.precision,
            o.records,
            100.0 / n as f64,
            o.p50,
            o.p99
        );
    }
    println!(
        "N={n} stems on, {nets} networks: the spy named the author of {:.1}% of {named} records",
        100.0 * right / named as f64
    );
}
