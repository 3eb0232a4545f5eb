//! A node under attack keeps serving (DESIGN.md §9.6, §9.8): real daemons on loopback — a
//! victim and an honest node syncing with it — while a hostile client sends oversized and
//! slow bodies, slow and huge request heads, a thousand idle connections, floods of forged
//! records, of well-signed but invalid records and of records for accounts that never open,
//! and peer-wire abuse. Each attack comes from its own address (127.0.0.x).

mod common;

use common::hostile::{self, Tally, source};
use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The node's deadlines for slow clients, shortened so the attacks outlast them in seconds
/// (`just bench-hostile` runs the defaults: 10 s, 20 s, 10 s).
const DEADLINES: &str = "[limits]\nfirst_byte = 3s\nhead_time = 5s\nbody_grace = 3s\n";

#[test]
fn a_node_under_attack_keeps_serving_and_bans_who_forges() {
    let w = World::new();
    let hostile::Arena {
        net,
        victim,
        honest,
        floods,
        to,
        pid,
        infohash,
    } = hostile::arena_with(&w, DEADLINES);
    let rss_before = hostile::rss(pid);
    let stop = Arc::new(AtomicBool::new(false));

    // The honest side: a prober from 127.0.0.1 (the honest node's address), and transfers
    // made on the honest node, which must reach the victim.
    let prober = {
        let (stop, held) = (stop.clone(), floods.held.clone());
        std::thread::spawn(move || hostile::honest_probe(to, held, stop))
    };

    let rt = tokio::runtime::Runtime::new().unwrap();
    let attacks = {
        let (stop, f) = (stop.clone(), floods.clone());
        let ih = infohash;
        rt.spawn(async move {
            let forged = Arc::new(f.forged.clone());
            let invalid = Arc::new(f.invalid.clone());
            let unopened = Arc::new(f.unopened.clone());
            let opening = Arc::new(vec![f.opening.clone()]);
            let s1 = stop.clone();
            let results = tokio::join!(
                hostile::idle_connections(source(10), to, 1000, stop.clone()),
                hostile::slow_heads(source(11), to, 50, stop.clone()),
                hostile::slow_bodies(source(12), to, 64, stop.clone()),
                hostile::oversized_bodies(source(13), to, 6),
                hostile::big_heads(source(14), to, 20),
                hostile::submit_flood(source(15), to, forged, 5, 20, stop.clone()),
                async {
                    let a = hostile::submit_flood(source(16), to, opening, 1, 1, s1.clone()).await;
                    let b = hostile::submit_flood(source(16), to, invalid, 5, 20, s1.clone()).await;
                    (a, b)
                },
                hostile::submit_flood(source(17), to, unopened, 3, 10, stop.clone()),
                hostile::peer_wire_abuse(source(18), to, ih, 40),
            );
            results
        })
    };

    // Meanwhile the honest node pays the victim; the payments must get through.
    let paid_before = net.balance(&victim, &victim.id).unwrap();
    for _ in 0..3 {
        w.at(
            &honest,
            &["transfer", "--to", &victim.id, "--amount", "1", "--yes"],
        )
        .ok();
        std::thread::sleep(Duration::from_secs(2));
    }
    wait_for(
        120,
        "the honest node's payments to reach the victim under attack",
        || (net.balance(&victim, &victim.id)? == paid_before + 300).then_some(()),
    );
    // Idle, handshaken peer-wire connections from one address do not lock others out of
    // the package: a download from another address goes through.
    let idle_wire = rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..32 {
            if let Ok(mut s) = hostile::connect_from(source(20), to).await {
                use tokio::io::AsyncWriteExt;
                let hs = cod::seeder::wire::Handshake {
                    infohash,
                    peer_id: *b"-XX0000-idleidleidle",
                    extensions: false,
                };
                let _ = s.write_all(&hs.encode()).await;
                held.push(s);
            }
        }
        held
    });
    let cod_id = params_of(&victim).cod.to_string();
    let fetched = w.path("fetched");
    w.cod(&[
        "fetch",
        &cod_id,
        "--peer",
        &to.to_string(),
        "--no-dht",
        "--out",
        s(&fetched),
    ])
    .ok();
    drop(idle_wire);
    // The attacks go on well past every deadline (`DEADLINES`) before they are counted.
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::Relaxed);
    let (
        idle,
        slow_heads,
        slow_bodies,
        oversized,
        big_heads,
        forged,
        (opening, invalid),
        unopened,
        wire,
    ) = rt.block_on(attacks).unwrap();
    let probe = prober.join().unwrap();
    let rss_after = hostile::rss(pid);
    let show = |name: &str, t: &Tally| eprintln!("{name:>12}: {t:?}");
    for (name, t) in [
        ("idle", &idle),
        ("slow heads", &slow_heads),
        ("slow bodies", &slow_bodies),
        ("oversized", &oversized),
        ("big heads", &big_heads),
        ("forged", &forged),
        ("opening", &opening),
        ("invalid", &invalid),
        ("unopened", &unopened),
        ("peer wire", &wire),
    ] {
        show(name, t);
    }
    eprintln!(
        "honest prober: {} answers, p50 {:?}, p99 {:?}, max {:?}, failures {:?}",
        probe.latencies.len(),
        probe.percentile(0.5),
        probe.percentile(0.99),
        probe.percentile(1.0),
        probe.failures
    );
    eprintln!(
        "victim RSS {} MB -> {} MB",
        rss_before >> 20,
        rss_after >> 20
    );

    // The victim kept serving the honest side, and its control socket.
    assert!(probe.latencies.len() > 50, "the prober was served");
    assert!(
        probe.failures.len() * 100 <= probe.latencies.len(),
        "at most 1% of honest requests failed: {:?}",
        probe.failures
    );
    let status = net
        .status(&victim)
        .expect("the victim still answers its operator");
    assert!(status["chain"]["awaiting_key_bytes"].as_u64().unwrap() <= 16 << 20);
    // Memory stayed bounded (the benchmark measures it closely).
    assert!(
        rss_after < rss_before + (256 << 20),
        "RSS grew from {} MB to {} MB",
        rss_before >> 20,
        rss_after >> 20
    );

    // Each attack got its answer.
    assert!(
        idle.get("closed by the node").copied().unwrap_or(0) >= 900,
        "{idle:?}"
    );
    assert!(
        !slow_heads.contains_key("held until the end"),
        "{slow_heads:?}"
    );
    assert!(
        !slow_bodies.contains_key("held until the end"),
        "{slow_bodies:?}"
    );
    assert!(
        oversized
            .keys()
            .all(|k| k.starts_with("answered 413 error=too_large") || k == "closed by the node"),
        "{oversized:?}"
    );
    assert!(
        big_heads
            .keys()
            .all(|k| k == "answered 431 error=headers_too_large" || k == "closed by the node"),
        "{big_heads:?}"
    );
    assert!(big_heads.contains_key("answered 431 error=headers_too_large"));
    assert!(
        wire.get("closed by the node").copied().unwrap_or(0) >= 30,
        "{wire:?}"
    );
    assert!(
        forged.contains_key("answered 200, records refused"),
        "forged records are refused: {forged:?}"
    );
    // The forger is banned: a new connection of its is closed at once.
    let again = rt.block_on(hostile::http(
        source(15),
        to,
        "GET /v1/info HTTP/1.1\r\nhost: victim\r\n\r\n",
        b"",
        Duration::from_secs(10),
    ));
    assert_eq!(again, None, "a banned address is refused");
    assert!(
        opening.contains_key("answered 200, records taken"),
        "{opening:?}"
    );
    assert!(
        invalid
            .get("answered 200, records refused")
            .copied()
            .unwrap_or(0)
            > 0,
        "well-signed invalid records are refused, without a ban: {invalid:?}"
    );

    // The operator sees who is banned, and can lift it.
    let peers = w.at(&victim, &["--json", "peers"]).ok().json();
    let banned: Vec<String> = peers["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["banned_until"].is_u64())
        .map(|a| a["address"].as_str().unwrap().to_string())
        .collect();
    for forger in ["127.0.0.15", "127.0.0.14"] {
        assert!(
            banned.contains(&forger.to_string()),
            "{forger} in {banned:?}"
        );
    }
    assert!(
        !banned.contains(&"127.0.0.16".to_string()),
        "no ban for rule refusals"
    );
    assert!(
        !banned.contains(&"127.0.0.1".to_string()),
        "the honest node is never banned"
    );
    let human = w.at(&victim, &["peers"]).ok().stdout();
    assert!(
        human.contains("127.0.0.15") && human.contains("banned until"),
        "{human}"
    );
    w.at(&victim, &["peers", "unban", "127.0.0.15"]).ok();
    w.at(&victim, &["peers", "ban", "127.0.0.99", "--for", "1h"])
        .ok();
    let peers = w.at(&victim, &["--json", "peers"]).ok().json();
    let state = |ip: &str| {
        peers["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["address"] == ip)
            .cloned()
    };
    assert!(state("127.0.0.15").is_none_or(|a| a["banned_until"].is_null()));
    assert_eq!(state("127.0.0.99").unwrap()["manual"], true);
    // An operator's ban outlives a restart.
    w.at(&victim, &["node", "stop"]).ok();
    w.at(&victim, &["node", "start"]).ok();
    let peers = w.at(&victim, &["--json", "peers"]).ok().json();
    assert!(
        peers["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["address"] == "127.0.0.99" && a["manual"] == true),
        "{peers}"
    );
    drop(net);
}
