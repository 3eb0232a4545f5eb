//! Scale benchmark (`just bench-scale`): one node holding a chain of N records, for each N in
//! `COD_BENCH_SCALE` (comma-separated; default 100000). Per size: the import rate through the
//! daemon, the node's RSS while serving (and while a fresh node syncs the chain from it, with
//! the sync rate and the fresh node's RSS), `GET /v1/info` latency (p50/p99) while idle and while
//! an import, a full verify and an export run, the restart time until `status` answers, `cod
//! balance` without a daemon (wall time and peak RSS), and disk bytes per record — the figures
//! issue 13 sets goals for (docs/performance.md). `COD_BIN` names the executable (`just
//! bench-scale` builds the release one). `COD_TEST_KEEP=1` keeps the test kit's world with the
//! last node directory (its daemon stopped), to profile a start on it.

mod common;
#[path = "support/mod.rs"]
mod support;

use cod::control::ask;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// RSS of a process now, in MB (Linux `/proc`).
fn rss_mb(pid: u64) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// Polls `GET /v1/info` every 20 ms, noting each latency under the phase named at the time,
/// and the node's RSS (its peak per phase).
struct Prober {
    phase: Arc<Mutex<&'static str>>,
    samples: Arc<Mutex<Vec<(&'static str, f64)>>>,
    peaks: Arc<Mutex<std::collections::BTreeMap<&'static str, f64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(addr: &str, pid: u64) -> Self {
        let phase = Arc::new(Mutex::new("idle"));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let peaks = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s, st, pk) = (phase.clone(), samples.clone(), stop.clone(), peaks.clone());
        let url = format!("http://{addr}/v1/info");
        let thread = std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            while !st.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = http.get(&url).send().is_ok_and(|r| r.status().is_success());
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let name = *p.lock().unwrap();
                s.lock()
                    .unwrap()
                    .push((name, if ok { ms } else { f64::INFINITY }));
                let rss = rss_mb(pid);
                let mut peaks = pk.lock().unwrap();
                let peak = peaks.entry(name).or_insert(0.0);
                *peak = f64::max(*peak, rss);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self {
            phase,
            samples,
            peaks,
            stop,
            thread: Some(thread),
        }
    }

    fn during<T>(&self, name: &'static str, f: impl FnOnce() -> T) -> T {
        *self.phase.lock().unwrap() = name;
        let out = f();
        *self.phase.lock().unwrap() = "idle";
        out
    }

    /// The latencies per phase, and the peak RSS per phase.
    fn report(mut self) -> (String, String) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        let peaks = self.peaks.lock().unwrap();
        let peaks = peaks
            .iter()
            .map(|(phase, mb)| format!("{phase} {mb:.0} MB"))
            .collect::<Vec<_>>()
            .join(", ");
        let samples = self.samples.lock().unwrap();
        let latencies = ["idle", "import", "verify", "export"]
            .iter()
            .map(|phase| {
                let mut v: Vec<f64> = samples
                    .iter()
                    .filter(|(p, _)| p == phase)
                    .map(|(_, ms)| *ms)
                    .collect();
                v.sort_by(|a, b| a.partial_cmp(b).unwrap());
                if v.is_empty() {
                    return format!("{phase}: -");
                }
                format!(
                    "{phase} p50 {:.1} ms p99 {:.1} ms ({} calls)",
                    percentile(&v, 0.5),
                    percentile(&v, 0.99),
                    v.len()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        (latencies, peaks)
    }
}

fn run(total: usize) {
    let w = World::new();
    let mut net = net(&w);
    let node = add(&mut net, 1, "");
    let params = params_of(&node);
    let made = Instant::now();
    let records = big_chain_records(&params, total);
    eprintln!(
        "{total} records made in {:.0} s",
        made.elapsed().as_secs_f64()
    );
    // One archive, imported as an operator would: `cod chain import FILE` (the executable
    // measured) names the file to the daemon, which reads it as it goes.
    let files = tempfile::tempdir().unwrap();
    let archive = files.path().join("import.archive");
    let out = std::io::BufWriter::new(std::fs::File::create(&archive).unwrap());
    let mut writer = cod::archive::Writer::new(out, &params.cod).unwrap();
    for r in &records {
        writer.push(&r.to_bytes()).unwrap();
    }
    writer.finish().unwrap();
    let archive = archive.to_str().unwrap().to_string();
    drop(records);
    let serving = status(&node);
    let (addr, pid) = (
        serving["addr"].as_str().unwrap().to_string(),
        serving["pid"].as_u64().unwrap(),
    );
    let probe = Prober::start(&addr, pid);
    std::thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    probe.during("import", || {
        w.at(&node, &["chain", "import", &archive]).ok();
    });
    let import_s = t.elapsed().as_secs_f64();
    let count = status(&node)["chain"]["applied"].as_u64().unwrap() as usize;
    let serving = rss_mb(pid);
    let verify_s = Instant::now();
    let report = probe.during("verify", || client(&node).ask(ask::Verify {}).unwrap());
    let verify_s = verify_s.elapsed().as_secs_f64();
    assert!(report.problems.is_empty(), "{report:?}");
    let export_s = Instant::now();
    let exported = files.path().join("chain.archive");
    probe.during("export", || {
        w.at(
            &node,
            &["chain", "export", "--out", exported.to_str().unwrap()],
        )
        .ok()
    });
    let export_s = export_s.elapsed().as_secs_f64();
    drop(files);
    std::thread::sleep(Duration::from_secs(2));
    let (latencies, peaks) = probe.report();
    let peak_serving = rss_mb(pid);

    w.at(&node, &["node", "stop"]).ok();
    let t = Instant::now();
    w.at(&node, &["node", "start"]).ok();
    wait(600, "the restarted node's status", || {
        client(&node).status().is_ok()
    });
    let restart_s = t.elapsed().as_secs_f64();
    let pid = status(&node)["pid"].as_u64().unwrap();
    let after_restart = rss_mb(pid);
    // A fresh node syncs the whole chain from it.
    let t = Instant::now();
    let fresh = add(&mut net, 2, "");
    let fresh_pid = status(&fresh)["pid"].as_u64().unwrap();
    let (mut serving_sync, mut fresh_peak) = (0f64, 0f64);
    let mut said = Instant::now();
    wait(3600, "the fresh node's sync", || {
        serving_sync = serving_sync.max(rss_mb(pid));
        fresh_peak = fresh_peak.max(rss_mb(fresh_pid));
        let theirs = status(&node)["chain"]["applied"].as_u64();
        let got = status(&fresh)["chain"]["applied"].as_u64();
        if said.elapsed() > Duration::from_secs(10) {
            eprintln!("fresh node: {got:?} of {theirs:?} records");
            said = Instant::now();
        }
        got.is_some() && got >= theirs
    });
    let sync_s = t.elapsed().as_secs_f64();
    w.at(&fresh, &["node", "stop"]).ok();
    w.at(&node, &["node", "stop"]).ok();
    let timed = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%e %M"])
        .arg(cod_bin())
        .args(["--node", node.dir.to_str().unwrap(), "--json", "balance"])
        .output()
        .unwrap();
    let last = String::from_utf8_lossy(&timed.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    let mut it = last.split_whitespace();
    let (bal_s, bal_kb): (f64, f64) = (
        it.next().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN),
        it.next().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN),
    );
    let dir = cod::nodedir::NodeDir::open(&node.dir).unwrap();
    let disk = dir_bytes(&dir.store_path(&dir.node_config().unwrap()));
    println!(
        "N={count}: import {:.0} records/s ({import_s:.1} s); RSS serving {serving:.0} MB (after verify+export {peak_serving:.0} MB, after restart {after_restart:.0} MB, while a fresh node syncs {serving_sync:.0} MB); fresh-node sync {:.0} records/s ({sync_s:.1} s, its RSS up to {fresh_peak:.0} MB); restart until status answers {restart_s:.1} s; cod balance without daemon {bal_s:.1} s, {:.0} MB; disk {:.0} bytes/record",
        count as f64 / import_s,
        count as f64 / sync_s,
        bal_kb / 1024.0,
        disk as f64 / count as f64
    );
    println!("  GET /v1/info: {latencies}");
    println!(
        "  verify {verify_s:.1} s, export {export_s:.1} s; the node's peak RSS by phase: {peaks}"
    );
    if std::env::var_os("COD_TEST_KEEP").is_some() {
        // The world stays (World::new): the stopped node, for profiling its start.
        println!("  kept: {}", node.dir.display());
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test` runs bench targets; this one only runs under `cargo bench`
    }
    assert!(
        cod_bin().exists(),
        "build cod first (just bench-scale does): {}",
        cod_bin().display()
    );
    let sizes: Vec<usize> = std::env::var("COD_BENCH_SCALE")
        .unwrap_or_else(|_| "100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ossl = common::openssl_verify_rate(3072, cores).unwrap_or(f64::NAN);
    println!(
        "executable {}; openssl speed RSA-3072 verify on {cores} cores: {ossl:.0}/s",
        cod_bin().display()
    );
    for n in sizes {
        run(n);
    }
}
