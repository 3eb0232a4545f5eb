//! A node under attack (`just bench-hostile`): the attacks of `tests/hostile.rs`, kept up
//! for a minute against a victim while an honest node syncs with it. The nodes run `COD_BIN`
//! (the recipe sets it to `just release`'s build); the attacking harness may be a debug one. Reports
//! the honest peer's request latency (p50, p99, max) with and without the attack, and the
//! victim's resident memory before, at its peak and after. Goal (issue 11): p99 ≤ 2 s, RSS
//! growth ≤ 64 MB.

#[path = "../tests/common/mod.rs"]
mod common;

use common::hostile::{self, Probe, source};
use common::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const ATTACK: Duration = Duration::from_secs(60);
const BASELINE: Duration = Duration::from_secs(20);

fn probe_for(to: SocketAddr, held: &str, d: Duration) -> Probe {
    let stop = Arc::new(AtomicBool::new(false));
    let t = {
        let (stop, held) = (stop.clone(), held.to_string());
        std::thread::spawn(move || hostile::honest_probe(to, held, stop))
    };
    std::thread::sleep(d);
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap()
}

fn line(name: &str, p: &Probe) {
    println!(
        "{name:<16} {:>6} answers  p50 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}  failed {}",
        p.latencies.len(),
        p.percentile(0.5),
        p.percentile(0.99),
        p.percentile(1.0),
        p.failures.len()
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test` runs bench targets; this one only runs under `cargo bench`
    }
    let w = World::new();
    let hostile::Arena {
        net,
        victim,
        floods: f,
        to,
        pid,
        infohash: ih,
        ..
    } = hostile::arena(&w);
    let baseline = probe_for(to, &f.held, BASELINE);
    let rss_before = hostile::rss(pid);
    let peak = Arc::new(AtomicU64::new(rss_before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(hostile::rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let attacks = {
        let (stop, f) = (stop.clone(), f.clone());
        rt.spawn(async move {
            // The one-shot attacks come again and again, each round from fresh addresses
            // (a banned address would only be turned away at once).
            let again = {
                let (stop, f) = (stop.clone(), f.clone());
                async move {
                    let mut round = 0u8;
                    while !stop.load(Ordering::Relaxed) {
                        let base = 100 + (round % 50) * 3;
                        tokio::join!(
                            hostile::oversized_bodies(source(base), to, 4),
                            hostile::big_heads(source(base + 1), to, 10),
                            hostile::submit_flood(
                                source(base + 2),
                                to,
                                Arc::new(f.forged.clone()),
                                2,
                                10,
                                stop.clone()
                            ),
                            hostile::peer_wire_abuse(source(base + 2), to, ih, 10),
                        );
                        round = round.wrapping_add(1);
                    }
                }
            };
            tokio::join!(
                hostile::idle_connections(source(10), to, 1000, stop.clone()),
                hostile::slow_heads(source(11), to, 50, stop.clone()),
                hostile::slow_bodies(source(12), to, 64, stop.clone()),
                hostile::submit_flood(
                    source(16),
                    to,
                    Arc::new(vec![f.opening.clone()]),
                    1,
                    1,
                    stop.clone()
                ),
                hostile::submit_flood(
                    source(16),
                    to,
                    Arc::new(f.invalid.clone()),
                    1000,
                    20,
                    stop.clone()
                ),
                hostile::submit_flood(
                    source(17),
                    to,
                    Arc::new(f.unopened.clone()),
                    1000,
                    10,
                    stop.clone()
                ),
                again,
            );
        })
    };
    let under_attack = probe_for(to, &f.held, ATTACK);
    stop.store(true, Ordering::Relaxed);
    let _ = rt.block_on(attacks);
    sampler.join().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let rss_after = hostile::rss(pid);

    println!(
        "\nhostile-peer benchmark: the victim runs {}, {ATTACK:?} of attacks",
        cod_bin().display()
    );
    line("no attack", &baseline);
    line("under attack", &under_attack);
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "victim RSS: {:.0} MB before, {:.0} MB at the peak (+{:.0} MB), {:.0} MB after",
        mb(rss_before),
        mb(peak.load(Ordering::Relaxed)),
        mb(peak.load(Ordering::Relaxed).saturating_sub(rss_before)),
        mb(rss_after)
    );
    let status = net.status(&victim).expect("the victim still answers");
    println!(
        "victim after: {} records, waiting {} for their accounts ({} KiB), pending {} ({} KiB)",
        status["chain"]["records"],
        status["chain"]["awaiting_key"],
        status["chain"]["awaiting_key_bytes"].as_u64().unwrap_or(0) / 1024,
        status["chain"]["pending"],
        status["chain"]["pending_bytes"].as_u64().unwrap_or(0) / 1024,
    );
    let banned = w.at(&victim, &["--json", "peers"]).ok().json()["addresses"]
        .as_array()
        .map_or(0, |a| {
            a.iter().filter(|x| x["banned_until"].is_u64()).count()
        });
    println!("addresses banned: {banned}");
    drop(net);
}
