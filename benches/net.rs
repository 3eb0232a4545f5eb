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
#[path = "support/mod.rs"]
mod support;

use cod::control::{Event, TransferOutput, ask};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

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
    let w = World::new();
    let mut net = net(&w);
    for i in 1..=n {
        add(
            &mut net,
            i,
            &std::env::var("COD_BENCH_INI").unwrap_or_default(),
        );
    }
    let ids: Vec<String> = net
        .nodes
        .iter()
        .map(|d| status(d)["node_id"].as_str().unwrap().to_string())
        .collect();
    for d in &net.nodes {
        wait(180, "the mesh", || {
            status(d)["peers"]["confirmed"].as_u64() == Some(n as u64 - 1)
        });
    }
    fund(&net);
    for d in &net.nodes {
        wait(120, "the funding everywhere", || {
            status(d)["chain"]["applied"].as_u64() >= Some(n as u64 + 2)
        });
    }
    // Watch every node's event stream for the burst's records.
    let seen: Arc<Mutex<std::collections::HashMap<String, Vec<Instant>>>> = Arc::default();
    for d in &net.nodes {
        let (seen, events) = (seen.clone(), client(d).subscribe().unwrap());
        std::thread::spawn(move || {
            for e in events.flatten() {
                if let Event::Record(r) = e {
                    seen.lock()
                        .unwrap()
                        .entry(r.hash.to_string())
                        .or_default()
                        .push(Instant::now());
                }
            }
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut c = client(&net.nodes[0]);
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
            .ask(ask::Transfer {
                outputs: vec![out],
                memo: None,
                seq: None,
                redeem: Default::default(),
                vouch: Vec::new(),
            })
            .unwrap();
        made.push((v.record.to_string(), t));
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
    let addr = status(&net.nodes[1])["addr"].as_str().unwrap().to_string();
    println!(
        "N={n:>2}: {burst} transfers from one node at {rate:.0}/s accepted; on every node after p50 {:.0} ms, p99 {:.0} ms; in-sync round {} bytes",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        summary_round_bytes(&addr)
    );
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
    let w = World::new();
    let (mut net, holder, count) = big_chain(&w, total);
    let holder_addr = status(&holder)["addr"].as_str().unwrap().to_string();
    // A fresh node whose only peer is the node holding the chain.
    let fresh = add(&mut net, 2, &format!("[peers]\nstatic = {holder_addr}\n"));
    let pids = [&fresh, &holder].map(|n| status(n)["pid"].as_u64().unwrap_or(0));
    let cpu = || pids.map(cpu_seconds);
    eprintln!("fresh node pid {}, holder pid {}", pids[0], pids[1]); // to attach a profiler
    let applied = || status(&fresh)["chain"]["applied"].as_u64().unwrap_or(0) as usize;
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
