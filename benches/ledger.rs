//! Ledger throughput: records verified per second (one core, all cores) and records ingested
//! into RocksDB per second, next to this machine's `openssl speed` RSA verify rate at the same
//! key size. Run with `just bench` (or `cargo bench --bench ledger`); figures go to
//! docs/performance.md.

mod common;

use cod::chain::Chain;
use cod::config::ComConfig;
use cod::ids::CodId;
use cod::keys::SecretKey;
use cod::ledger::{Ledger, Output, Params, Record, add_signature};
use cod::store::RocksStore;
use criterion::{BatchSize, Criterion, Throughput};
use std::time::{Duration, Instant};

const BITS: usize = 3072;
const MEMBERS: usize = 8;
const TRANSFERS: usize = 2000;

struct Fixture {
    params: Params,
    funding: Vec<Record>,
    transfers: Vec<Record>,
}

fn fixture() -> Fixture {
    let keys: Vec<SecretKey> = (0..MEMBERS)
        .map(|_| SecretKey::generate(BITS).unwrap())
        .collect();
    let deployer = SecretKey::generate(2048).unwrap();
    let fps: Vec<String> = keys[..3]
        .iter()
        .map(|k| k.public().fingerprint().to_string())
        .collect();
    let com = ComConfig::parse(
        "com.ini",
        &format!(
            "[com]\nname = bench\nversion = 1.0.0\nsettlement_period = 1d\nepoch = 2026-01-05T00:00:00Z\n\
             [asset.codcoin]\n[backing.bread]\nclass = inventory\nasset = codcoin\nunit = loaf\nvalue = 1000000\n\
             [distribution]\nformula = equal\n[signers]\nkeys = {}\nquorum = 2\n",
            fps.join(", ")
        ),
    )
    .unwrap();
    let cod: CodId = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
    let params = Params::new(cod, com, deployer.public().clone());
    let mut l = Ledger::new(params.clone());
    let t0 = 1_767_571_200;
    let mut funding = Vec::new();
    let push = |l: &mut Ledger, r: Record, all: &mut Vec<Record>| {
        l.ingest(r.clone()).unwrap();
        all.push(r);
    };
    for k in &keys {
        let r = l.make_open(k);
        push(&mut l, r, &mut funding);
    }
    let sign = |body: cod::ledger::Body| {
        let sigs = add_signature(&body, &add_signature(&body, &[], &keys[0]), &keys[1]);
        Record::new(body, sigs)
    };
    let issue = sign(
        l.propose_issue(
            [("bread".to_string(), 1000)].into(),
            Default::default(),
            t0 + 100,
        )
        .unwrap(),
    );
    push(&mut l, issue, &mut funding);
    // Distributions pay members: the signers admit every account (64 to a record).
    let accounts: Vec<_> = keys.iter().map(|k| k.public().node_id(&cod)).collect();
    for chunk in accounts.chunks(cod::ledger::record::MAX_MEMBERS_CHANGED) {
        let admit = sign(l.propose_members(chunk.to_vec(), vec![], t0 + 100).unwrap());
        push(&mut l, admit, &mut funding);
    }
    let dist = sign(l.propose_distribution(0, false, t0 + 86_400).unwrap());
    push(&mut l, dist, &mut funding);
    let mut transfers = Vec::new();
    for i in 0..TRANSFERS {
        let (from, to) = (i % MEMBERS, (i + 1) % MEMBERS);
        let out = Output {
            account: keys[to].public().node_id(&cod),
            amount: 1 + (i as u64 % 5),
            asset: "codcoin".into(),
        };
        let r = l
            .make_transfer(&keys[from], vec![out], None, t0 + 86_400 + i as u64)
            .unwrap();
        push(&mut l, r, &mut transfers);
    }
    Fixture {
        params,
        funding,
        transfers,
    }
}

fn fresh_chain(f: &Fixture) -> (tempfile::TempDir, Chain) {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::create(&dir.path().join("store"), &f.params.cod).unwrap();
    let mut chain = Chain::load(f.params.clone(), Box::new(store)).unwrap();
    chain.ingest_batch(f.funding.clone()).unwrap();
    (dir, chain)
}

/// Ledger with the funding applied, for verifying transfers against known keys.
fn verifier(f: &Fixture) -> Ledger {
    Ledger::from_records(f.params.clone(), f.funding.clone())
}

fn benches(c: &mut Criterion, f: &Fixture) {
    let l = verifier(f);
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(f.transfers.len() as u64))
        .sample_size(10);
    g.bench_function("one_core", |b| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        b.iter_batched(
            || f.transfers.clone(),
            |t| pool.install(|| l.check(t)),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("all_cores", |b| {
        b.iter_batched(
            || f.transfers.clone(),
            |t| l.check(t),
            BatchSize::LargeInput,
        )
    });
    g.finish();
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(f.transfers.len() as u64))
        .sample_size(10);
    g.bench_function("rocksdb_batches_of_500", |b| {
        b.iter_batched(
            || fresh_chain(f),
            |(_dir, mut chain)| {
                for chunk in f.transfers.chunks(500) {
                    chain.ingest_batch(chunk.to_vec()).unwrap();
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn rate(n: usize, f: impl Fn()) -> f64 {
    f(); // warm up
    let t = Instant::now();
    let mut runs = 0;
    while t.elapsed() < Duration::from_secs(3) {
        f();
        runs += 1;
    }
    (n * runs) as f64 / t.elapsed().as_secs_f64()
}

fn summary(f: &Fixture) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let l = verifier(f);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    // (Cloning the records costs under 1% of checking them.)
    let one = rate(f.transfers.len(), || {
        pool.install(|| l.check(f.transfers.clone()));
    });
    let all = rate(f.transfers.len(), || {
        l.check(f.transfers.clone());
    });
    let ingest = {
        let t = Instant::now();
        let mut n = 0;
        while t.elapsed() < Duration::from_secs(5) {
            let (_dir, mut chain) = fresh_chain(f);
            let start = Instant::now();
            for chunk in f.transfers.chunks(500) {
                chain.ingest_batch(chunk.to_vec()).unwrap();
            }
            n += 1;
            if n >= 3 && start.elapsed() > Duration::ZERO {
                break;
            }
        }
        let (_dir, mut chain) = fresh_chain(f);
        let start = Instant::now();
        for chunk in f.transfers.chunks(500) {
            chain.ingest_batch(chunk.to_vec()).unwrap();
        }
        f.transfers.len() as f64 / start.elapsed().as_secs_f64()
    };
    let ossl_one = common::openssl_verify_rate(BITS, 1);
    let ossl_all = common::openssl_verify_rate(BITS, cores);
    let ratio =
        |x: f64, y: Option<f64>| y.map_or("n/a".to_string(), |y| format!("{:.0}%", 100.0 * x / y));
    println!(
        "\n== cod ledger summary (RSA-{BITS}, {cores} cores, {} transfers)",
        f.transfers.len()
    );
    println!(
        "verify, one core      {one:>10.0} records/s   = {} of openssl's one-core verify ({:.0}/s)",
        ratio(one, ossl_one),
        ossl_one.unwrap_or(0.0)
    );
    println!(
        "verify, all cores     {all:>10.0} records/s   = {} of openssl's {cores}-core verify ({:.0}/s)",
        ratio(all, ossl_all),
        ossl_all.unwrap_or(0.0)
    );
    println!(
        "ingest into RocksDB   {ingest:>10.0} records/s   = {} of openssl's {cores}-core verify (target: 50%)",
        ratio(ingest, ossl_all)
    );
}

fn main() {
    let f = fixture();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &f);
    c.final_summary();
    // The summary (and openssl speed) only under `cargo bench`, not when tests run benches.
    if std::env::args().any(|a| a == "--bench") {
        summary(&f);
    }
}
