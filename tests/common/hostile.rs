//! A hostile client of a running node, for `tests/hostile.rs` and `just bench-hostile`: the
//! attacks the node must survive, each from its own loopback address (127.0.0.x, so one
//! attack's ban does not shield another's), and an honest prober whose latencies say how
//! well the node kept serving.

#![allow(dead_code)] // each user takes what it needs

use super::{Net, Node, World, example_secret, funding_archive, params_of, s, wait_for};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What an attack saw, by kind of answer ("refused" = the connection was closed at once).
pub type Tally = BTreeMap<String, u64>;

fn count(t: &mut Tally, what: impl Into<String>) {
    *t.entry(what.into()).or_default() += 1;
}

/// The loopback address attack `n` comes from.
pub fn source(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

pub async fn connect_from(src: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(src, 0))?;
    tokio::time::timeout(Duration::from_secs(5), s.connect(to))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))?
}

/// Sends one HTTP/1.1 request and reads the answer's status line and body (at most 4 MiB,
/// within `wait`); `None` if the connection was refused or closed without an answer.
pub async fn http(
    src: IpAddr,
    to: SocketAddr,
    head: &str,
    body: &[u8],
    wait: Duration,
) -> Option<(u16, String)> {
    let mut s = connect_from(src, to).await.ok()?;
    s.write_all(head.as_bytes()).await.ok()?;
    s.write_all(body).await.ok()?;
    read_answer(&mut s, wait).await
}

async fn read_answer(s: &mut TcpStream, wait: Duration) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        let mut chunk = [0u8; 8192];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.len() > 4 << 20 || complete(&buf) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((status, body))
}

/// Has a whole answer (head and a body of its content-length) arrived?
fn complete(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .and_then(|v| v.trim().parse::<usize>().ok())
        })
        .unwrap_or(0);
    body.len() >= len
}

fn post_head(path: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: victim\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    )
}

/// Opens `n` connections and holds them open, silent, until `stop`.
pub async fn idle_connections(
    src: IpAddr,
    to: SocketAddr,
    n: usize,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut t = Tally::new();
    let mut held = Vec::new();
    for _ in 0..n {
        match connect_from(src, to).await {
            Ok(s) => held.push(s),
            Err(_) => count(&mut t, "connect failed"),
        }
    }
    // The node closes those over its per-address cap at once, and the rest when idle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for s in &mut held {
        let mut b = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(5), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => count(&mut t, "closed by the node"),
            _ => count(&mut t, "held open"),
        }
    }
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    t
}

/// Request heads dribbled a byte at a time (slowloris).
pub async fn slow_heads(src: IpAddr, to: SocketAddr, n: usize, stop: Arc<AtomicBool>) -> Tally {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let Ok(mut s) = connect_from(src, to).await else {
                    return "refused";
                };
                if s.write_all(b"GET /v1/info HTTP/1.1\r\nx-slow: ")
                    .await
                    .is_err()
                {
                    return "closed by the node";
                }
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if s.write_all(b"a").await.is_err() {
                        return "closed by the node";
                    }
                }
                "held until the end"
            })
        })
        .collect();
    let mut t = Tally::new();
    for task in tasks {
        count(&mut t, task.await.unwrap_or("panicked"));
    }
    t
}

/// Submissions whose bodies trickle in (10 bytes a second), to hold handlers.
pub async fn slow_bodies(src: IpAddr, to: SocketAddr, n: usize, stop: Arc<AtomicBool>) -> Tally {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let Ok(mut s) = connect_from(src, to).await else {
                    return "refused".to_string();
                };
                if s.write_all(post_head("/v1/records", 1 << 20).as_bytes())
                    .await
                    .is_err()
                {
                    return "closed by the node".into();
                }
                while !stop.load(Ordering::Relaxed) {
                    if s.write_all(b"          ").await.is_err() {
                        return "closed by the node".into();
                    }
                    // The node answers once the body is too slow.
                    let mut b = [0u8; 512];
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(1), s.read(&mut b)).await
                    {
                        let text = String::from_utf8_lossy(&b[..n]);
                        return text
                            .get(9..12)
                            .map_or("closed by the node".into(), |c| format!("answered {c}"));
                    }
                }
                "held until the end".into()
            })
        })
        .collect();
    let mut t = Tally::new();
    for task in tasks {
        count(&mut t, task.await.unwrap_or_else(|_| "panicked".into()));
    }
    t
}

/// Bodies larger than allowed (claimed, or sent).
pub async fn oversized_bodies(src: IpAddr, to: SocketAddr, n: usize) -> Tally {
    let mut t = Tally::new();
    let nine_mb = vec![b' '; 9 << 20];
    for i in 0..n {
        let answer = if i % 2 == 0 {
            // Claims 100 MB, sends a little.
            http(
                src,
                to,
                &post_head("/v1/records", 100 << 20),
                b"{",
                Duration::from_secs(10),
            )
            .await
        } else {
            // Sends 9 MB without saying how much (chunked).
            let head = "POST /v1/records HTTP/1.1\r\nhost: victim\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            let mut body = format!("{:x}\r\n", nine_mb.len()).into_bytes();
            body.extend_from_slice(&nine_mb);
            body.extend_from_slice(b"\r\n0\r\n\r\n");
            http(src, to, head, &body, Duration::from_secs(20)).await
        };
        match answer {
            Some((status, body)) => {
                count(&mut t, format!("answered {status} {}", json_error(&body)))
            }
            None => count(&mut t, "closed by the node"),
        }
    }
    t
}

/// Request heads of 380 KiB.
pub async fn big_heads(src: IpAddr, to: SocketAddr, n: usize) -> Tally {
    let mut t = Tally::new();
    let big = "b".repeat(380 << 10);
    for _ in 0..n {
        let head = format!("GET /v1/info HTTP/1.1\r\nhost: victim\r\nx-big: {big}\r\n\r\n");
        match http(src, to, &head, b"", Duration::from_secs(10)).await {
            Some((status, body)) => {
                count(&mut t, format!("answered {status} {}", json_error(&body)))
            }
            None => count(&mut t, "closed by the node"),
        }
    }
    t
}

/// The `error` of a JSON error body, or "no JSON body".
pub fn json_error(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(|e| format!("error={e}")))
        .unwrap_or_else(|| "no JSON body".into())
}

/// Submits `batches` (each a list of records' canonical JSON), `rounds` times over,
/// `parallel` at once.
pub async fn submit_flood(
    src: IpAddr,
    to: SocketAddr,
    batches: Arc<Vec<String>>,
    rounds: usize,
    parallel: usize,
    stop: Arc<AtomicBool>,
) -> Tally {
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::new();
    for i in 0..rounds * batches.len() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let permit = sem.clone().acquire_owned().await.unwrap();
        let batches = batches.clone();
        tasks.push(tokio::spawn(async move {
            let body = &batches[i % batches.len()];
            let answer = http(
                src,
                to,
                &post_head("/v1/records", body.len()),
                body.as_bytes(),
                Duration::from_secs(60),
            )
            .await;
            drop(permit);
            match answer {
                Some((status, body)) => {
                    let refused = serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v.as_array().cloned())
                        .map(|a| a.iter().filter(|r| r["status"] == "refused").count());
                    match refused {
                        Some(n) if n > 0 => format!("answered {status}, records refused"),
                        Some(_) => format!("answered {status}, records taken"),
                        None => format!("answered {status} {}", json_error(&body)),
                    }
                }
                None => "closed by the node".into(),
            }
        }));
    }
    let mut t = Tally::new();
    for task in tasks {
        count(&mut t, task.await.unwrap_or_else(|_| "panicked".into()));
    }
    t
}

/// A submission body of these records.
pub fn submission(records: &[Vec<u8>]) -> String {
    let inner: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.clone()).expect("records are JSON"))
        .collect();
    format!("{{\"records\":[{}]}}", inner.join(","))
}

fn handshake(infohash: [u8; 20]) -> Vec<u8> {
    cod::seeder::wire::Handshake {
        infohash,
        peer_id: *b"-XX0000-hostilehosti",
        extensions: true,
    }
    .encode()
    .to_vec()
}

/// Peer-wire abuse: handshakes for files the node does not offer, requests out of range,
/// pieces nobody asked for, metadata pieces out of range. `infohash` is one the node offers.
pub async fn peer_wire_abuse(src: IpAddr, to: SocketAddr, infohash: [u8; 20], n: usize) -> Tally {
    use cod::seeder::wire::{self, Message, MetadataMsg};
    let mut t = Tally::new();
    for i in 0..n {
        let Ok(mut s) = connect_from(src, to).await else {
            count(&mut t, "refused");
            continue;
        };
        let asked = if i % 4 == 0 { [0xee; 20] } else { infohash };
        if s.write_all(&handshake(asked)).await.is_err() {
            count(&mut t, "closed by the node");
            continue;
        }
        let bad = match i % 4 {
            1 => Message::Request {
                index: u32::MAX,
                begin: 0,
                length: 16384,
            },
            2 => Message::Piece {
                index: 0,
                begin: 0,
                block: vec![0; 16384],
            },
            _ => Message::Extended {
                id: wire::UT_METADATA,
                payload: wire::encode_metadata_msg(
                    &MetadataMsg {
                        msg_type: wire::META_REQUEST,
                        piece: 1 << 62,
                        total_size: None,
                    },
                    &[],
                ),
            },
        };
        let _ = s.write_all(&bad.encode()).await;
        // The node closes the connection (or, for a metadata piece out of range, rejects it).
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
        count(
            &mut t,
            match closed {
                Ok(_) => "closed by the node",
                Err(_) => "left open",
            },
        );
    }
    t
}

/// Latencies of an honest peer's requests (from 127.0.0.1, as the honest node's), while
/// the attacks run: the sync summary, a log page, a duplicate submission.
pub struct Probe {
    pub latencies: Vec<Duration>,
    pub failures: Vec<String>,
}

impl Probe {
    pub fn percentile(&self, p: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
}

pub fn honest_probe(victim: SocketAddr, record: String, stop: Arc<AtomicBool>) -> Probe {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = format!("http://{victim}");
    let submit = format!("{{\"records\":[{record}]}}");
    let mut probe = Probe {
        latencies: Vec::new(),
        failures: Vec::new(),
    };
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let r = match i % 3 {
            0 => client.get(format!("{base}/v1/sync/summary")).send(),
            1 => client.get(format!("{base}/v1/log?from=0&limit=100")).send(),
            _ => client
                .post(format!("{base}/v1/records"))
                .header("content-type", "application/json")
                .body(submit.clone())
                .send(),
        };
        match r {
            Ok(resp) if resp.status().is_success() => {
                let _ = resp.bytes();
                probe.latencies.push(t.elapsed());
            }
            Ok(resp) => probe.failures.push(format!("HTTP {}", resp.status())),
            Err(e) => probe.failures.push(e.to_string()),
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    probe
}

/// Resident memory of a process, in bytes.
pub fn rss(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The records a hostile client floods the victim with, as submission bodies.
pub struct Floods {
    pub forged: Vec<String>,
    /// An opening for a fresh account (valid), then its transfers: well-signed, but they
    /// spend what it does not have.
    pub opening: String,
    pub invalid: Vec<String>,
    /// Transfers of accounts that never open (about 18 KB each).
    pub unopened: Vec<String>,
    /// One record the victim holds (the honest prober re-submits it).
    pub held: String,
}

pub fn floods(w: &World, victim: &Node) -> Floods {
    use cod::ids::{AccountId, RecordHash};
    use cod::ledger::{B64, Body, Content, Ledger, Output, Record, Sig, Transfer};
    let params = params_of(victim);
    let file = w.path("victim.archive");
    let _ = std::fs::remove_file(&file);
    w.at(victim, &["chain", "export", "--out", s(&file)]).ok();
    let records = cod::archive::read(&std::fs::read(&file).unwrap(), &params.cod).unwrap();
    let held = String::from_utf8(records[0].to_bytes()).unwrap();
    let l = Ledger::from_records(params.clone(), records);
    let payer = example_secret(&victim.key);
    let impostor = example_secret("node6");
    let asset = params.com.assets.keys().next().unwrap().clone();
    let to = AccountId::network(&params.cod);

    // Transfers from the victim's own account, signed by another key: forged. (One made by
    // the victim gives their shape; each is then signed by the impostor only, on all cores.)
    use rayon::prelude::*;
    let shape = l
        .make_transfer(
            &payer,
            vec![Output {
                account: to,
                asset: asset.clone(),
                amount: 1,
            }],
            None,
            params.com.epoch + 1_000_000,
        )
        .unwrap();
    let forged: Vec<String> = (0..4u64)
        .map(|batch| {
            let records: Vec<Vec<u8>> = (0..1000u64)
                .into_par_iter()
                .map(|i| {
                    let mut body = shape.body().clone();
                    body.time += i;
                    if let Content::Transfer(t) = &mut body.content {
                        t.outputs[0].amount = 1 + i;
                        t.memo = Some(format!("forged {batch}/{i}"));
                    }
                    let sig = impostor.sign(&body.canonical_bytes());
                    Record::new(
                        body,
                        vec![Sig {
                            key: None,
                            sig: B64(sig),
                        }],
                    )
                    .to_bytes()
                })
                .collect();
            submission(&records)
        })
        .collect();

    // A fresh account: its opening is valid; its transfers are signed but overspend.
    let fresh = cod::keys::SecretKey::generate(2048).unwrap();
    let opening = l.make_open(&fresh);
    let transfer = |key: &cod::keys::SecretKey,
                    seq: u64,
                    prev: RecordHash,
                    claims: Vec<RecordHash>,
                    memo: String| {
        let body = Body {
            version: cod::ledger::record::RECORD_VERSION,
            cod: params.cod,
            time: params.com.epoch + 2_000_000,
            account: key.public().node_id(&params.cod),
            seq,
            prev: Some(prev),
            content: Content::Transfer(Transfer {
                claims,
                key: None,
                memo: Some(memo),
                rekey: None,
                redeem: Default::default(),
                vouch: Vec::new(),
                outputs: vec![Output {
                    account: to,
                    asset: asset.clone(),
                    amount: 5,
                }],
            }),
        };
        let sig = key.sign(&body.canonical_bytes());
        Record::new(
            body,
            vec![Sig {
                key: None,
                sig: B64(sig),
            }],
        )
        .to_bytes()
    };
    let invalid: Vec<String> = (0..4)
        .map(|batch| {
            let records: Vec<Vec<u8>> = (0..500)
                .into_par_iter()
                .map(|i| {
                    transfer(
                        &fresh,
                        1,
                        opening.hash(),
                        Vec::new(),
                        format!("{batch}/{i}"),
                    )
                })
                .collect();
            submission(&records)
        })
        .collect();

    // Accounts that never open, with transfers as large as the limits allow.
    let mut claims: Vec<RecordHash> = (0..cod::ledger::record::MAX_CLAIMS as u32)
        .map(|k| RecordHash::of(&k.to_be_bytes()))
        .collect();
    claims.sort();
    let strangers: Vec<cod::keys::SecretKey> = (0..2)
        .map(|_| cod::keys::SecretKey::generate(2048).unwrap())
        .collect();
    let unopened: Vec<String> = (0..8)
        .map(|batch| {
            let records: Vec<Vec<u8>> = (0..200u64)
                .into_par_iter()
                .map(|i| {
                    let k = &strangers[(i % 2) as usize];
                    transfer(
                        k,
                        1 + i + 1000 * batch,
                        RecordHash::of(b"x"),
                        claims.clone(),
                        format!("{batch}/{i}"),
                    )
                })
                .collect();
            submission(&records)
        })
        .collect();
    Floods {
        forged,
        opening: submission(&[opening.to_bytes()]),
        invalid,
        unopened,
        held,
    }
}

/// The scene of an attack: a victim and an honest node that found each other on a local DHT,
/// both funded, and the floods to send the victim.
pub struct Arena<'w> {
    pub net: Net<'w>,
    pub victim: Node,
    pub honest: Node,
    pub floods: std::sync::Arc<Floods>,
    /// The victim's public port.
    pub to: SocketAddr,
    pub pid: i32,
    /// The package's infohash (= its cod id), which the victim seeds.
    pub infohash: [u8; 20],
}

pub fn arena(w: &World) -> Arena<'_> {
    arena_with(w, "")
}

/// [`arena`] with `extra_ini` in both nodes' node.ini (shorter deadlines, say).
pub fn arena_with<'w>(w: &'w World, extra_ini: &str) -> Arena<'w> {
    let net = Net::with_dht(w, 2, extra_ini);
    net.wait_meshed(120);
    let (victim, honest) = (net.nodes[0].clone(), net.nodes[1].clone());
    let nodes: Vec<&Node> = net.nodes.iter().collect();
    let funding = funding_archive(w, &nodes, 20);
    w.at(&victim, &["chain", "import", s(&funding)]).ok();
    wait_for(60, "the honest node to hold the funding", || {
        (net.balance(&honest, &honest.id)? > 0).then_some(())
    });
    let to = net.status(&victim).unwrap()["addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let pid = std::fs::read_to_string(victim.dir.join("node.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Arena {
        floods: std::sync::Arc::new(floods(w, &victim)),
        infohash: *params_of(&victim).cod.as_bytes(),
        net,
        victim,
        honest,
        to,
        pid,
    }
}
