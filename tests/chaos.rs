//! Faults as real networks have them (issue 18): real `cod` daemons on the hosts of a lab
//! (network namespaces on one bridge, `common::lab`), a schedule of faults made from a seed —
//! partitions, one-way cuts, packet loss, slow links, latency with jitter (and so
//! reordering), SIGKILL and restart, SIGSTOP, wall clocks that jump, one fault or two at a
//! time — with transfers submitted to random nodes throughout and periods closed by the
//! signers' distributions, and a checker once the network heals (the Jepsen "set" and "bank"
//! checks): every acknowledged record is on every node, every node applied the same records
//! and gives every account the same balance, no coin was made or lost, every period that ended
//! is distributed, and every store — a killed node's among them — passes `cod chain verify`.
//!
//! The seed is printed; `COD_CHAOS_SEED=N` replays its schedule (`just chaos N`), and
//! `COD_CHAOS_STEPS` sets its length (CI runs a short one).

mod common;

use common::lab::Lab;
use common::*;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::io::BufRead;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Hosts, each running one node: node1 … node4, and on the last a *twin* of node4 — the same
/// key with a copy of its store, as a member who restored a backup on a second machine and
/// runs both. (node1's host runs the DHT's bootstrap too.)
const HOSTS: usize = 5;
/// The twins' hosts.
const TWINS: (usize, usize) = (3, 4);
/// The members whose nodes take random transfers (the twins pay only when split, below).
const PAYERS: usize = 3;
/// How long each step of the schedule lasts, its fault in force.
const STEP: Duration = Duration::from_secs(5);
/// How long after healing every node must agree.
const CONVERGE: Duration = Duration::from_secs(180);
/// The settlement period: the signers (node1 … node3, quorum 2) distribute every 20 s.
const PERIOD: u64 = 20;

/// One node's daemon on its host: `cod node run`, in the foreground, so the test holds its
/// process (SIGKILL, SIGSTOP).
struct Daemon {
    node: Node,
    host: usize,
    child: Option<Child>,
    paused: bool,
    /// How far its wall clock is off, in seconds (libfaketime; its monotonic clock is true).
    skew: i64,
}

/// A fault lab's clocks: each host's wall clock off by a number of seconds that the test may
/// change while its daemon runs (libfaketime reads it from a file, at most a second old).
fn set_clock(node: &Node, skew: i64) {
    std::fs::write(node.dir.join("faketime.rc"), format!("{skew:+}s\n")).unwrap();
}

/// libfaketime (Debian's `libfaketime`, which `.ci/setup` installs): a daemon run with it
/// preloaded reads a wall clock that is off by `FAKETIME`.
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

impl Daemon {
    fn start(&mut self, w: &World, lab: &Lab) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.node.dir.join("chaos.log"))
            .unwrap();
        let mut command = lab.command(self.host, cod_bin());
        assert!(
            std::path::Path::new(FAKETIME).exists(),
            "{FAKETIME} is missing: run .ci/setup"
        );
        set_clock(&self.node, self.skew);
        command
            .env("LD_PRELOAD", FAKETIME)
            .env_remove("FAKETIME")
            .env("FAKETIME_TIMESTAMP_FILE", self.node.dir.join("faketime.rc"))
            .env("FAKETIME_CACHE_DURATION", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        let child = command
            .args(["--node", s(&self.node.dir), "node", "run"])
            .env("HOME", w.dir.path())
            .env("XDG_DATA_HOME", w.path("xdg"))
            .env("NO_COLOR", "1")
            .env_remove("COD_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused = false;
    }

    fn signal(&mut self, sig: nix::sys::signal::Signal) {
        if let Some(c) = &self.child {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, sig);
        }
    }

    fn running(&self) -> bool {
        self.child.is_some() && !self.paused
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
        self.kill();
    }
}

/// A fault, in force for one step.
#[derive(Debug)]
enum Fault {
    None,
    /// No packet between the two sides.
    Partition(Vec<usize>, Vec<usize>),
    /// Packets from the first host to the second are dropped.
    OneWay(usize, usize),
    /// The hosts lose this share of the packets they receive (percent).
    Loss(Vec<usize>, u32),
    /// The host sends at most this many kilobits a second.
    Slow(usize, u32),
    /// The node is killed (SIGKILL) as the step begins and started again as it ends.
    Kill(usize),
    /// The node is paused (SIGSTOP) for the step.
    Pause(usize),
    /// The hosts' packets leave this many milliseconds late, give or take the second figure
    /// (so they arrive out of order), from this seed.
    Delay(Vec<usize>, u64, u64, u64),
    /// The host's wall clock jumps to this many seconds off (and back as the step ends):
    /// ±15 minutes is beyond what the rules tolerate of a proposal's time (10).
    Skew(usize, i64),
}

/// A step's faults: one, and a quarter of the time a second of another kind. Clock jumps go
/// at most `max_jump` seconds either way.
fn faults(rng: &mut impl Rng, max_jump: i64) -> Vec<Fault> {
    let first = fault(rng, max_jump);
    if matches!(first, Fault::None) || !rng.gen_bool(0.25) {
        return vec![first];
    }
    loop {
        let second = fault(rng, max_jump);
        let same = std::mem::discriminant(&second) == std::mem::discriminant(&first);
        if !same && !matches!(second, Fault::None) {
            return vec![first, second];
        }
    }
}

fn fault(rng: &mut impl Rng, max_jump: i64) -> Fault {
    let host = |rng: &mut dyn rand::RngCore| rng.gen_range(0..HOSTS);
    let some_hosts = |rng: &mut dyn rand::RngCore| {
        let n = rng.gen_range(1..=HOSTS);
        let mut hosts: Vec<usize> = (0..HOSTS).collect();
        rand::seq::SliceRandom::shuffle(&mut hosts[..], rng);
        hosts.truncate(n);
        hosts
    };
    match rng.gen_range(0..9) {
        0 => Fault::None,
        1 => {
            let mut hosts: Vec<usize> = (0..HOSTS).collect();
            rand::seq::SliceRandom::shuffle(&mut hosts[..], rng);
            let cut = rng.gen_range(1..HOSTS);
            let mut b = hosts.split_off(cut);
            // Half the partitions split the twins, who then spend on both sides.
            if rng.gen_bool(0.5) && hosts.contains(&TWINS.0) == hosts.contains(&TWINS.1) {
                let (from, to) = if hosts.contains(&TWINS.1) {
                    (&mut hosts, &mut b)
                } else {
                    (&mut b, &mut hosts)
                };
                from.retain(|h| *h != TWINS.1);
                to.push(TWINS.1);
            }
            Fault::Partition(hosts, b)
        }
        2 => {
            let from = host(rng);
            let to = (from + rng.gen_range(1..HOSTS)) % HOSTS;
            Fault::OneWay(from, to)
        }
        3 => Fault::Loss(some_hosts(rng), [10, 30, 50][rng.gen_range(0..3)]),
        4 => Fault::Slow(host(rng), [64, 256][rng.gen_range(0..2)]),
        5 => Fault::Kill(host(rng)),
        6 => Fault::Pause(host(rng)),
        // A continent away (150 ± 50 ms), or a bad mobile link (400 ± 350 ms).
        7 => {
            let (ms, jitter) = [(150, 50), (400, 350)][rng.gen_range(0..2)];
            Fault::Delay(some_hosts(rng), ms, jitter, rng.r#gen())
        }
        // (A cap changes how far the clock jumps, not what else the seed draws.)
        _ => {
            let h = host(rng);
            let jump: i64 = [-900, -240, 240, 900][rng.gen_range(0..4)];
            Fault::Skew(h, jump.clamp(-max_jump, max_jump))
        }
    }
}

#[test]
fn a_seeded_schedule_of_faults_loses_nothing_acknowledged() {
    let seed: u64 = env_number("COD_CHAOS_SEED").unwrap_or_else(rand::random);
    let steps: usize = env_number("COD_CHAOS_STEPS").unwrap_or(6);
    // The suite's smoke run keeps its clock jumps within the tolerated skew (4 minutes):
    // one of 15 minutes makes it wait up to 6 minutes for the records dated ahead
    // (`just chaos` and `just chaos-long` jump up to 15).
    let max_jump: i64 = env_number("COD_CHAOS_MAX_JUMP").unwrap_or(240);
    eprintln!(
        "chaos seed {seed}, {steps} steps, clock jumps up to {max_jump} s \
         (COD_CHAOS_SEED={seed} COD_CHAOS_MAX_JUMP={max_jump} replays it)"
    );
    // The faults come from the seed alone; the workload's choices from a stream of their own
    // (how many transfers a step holds depends on timing).
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let schedule: Vec<Vec<Fault>> = (0..steps).map(|_| faults(&mut rng, max_jump)).collect();
    // Each host's wall clock is off by up to a minute either way (far within what the rules
    // tolerate for proposals, 10 minutes; transfers carry their author's time).
    let skews: Vec<i64> = (0..HOSTS).map(|_| rng.gen_range(-60..=60)).collect();
    eprintln!("clock skews (s): {skews:?}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.rotate_left(32) ^ 0x636f64);

    let lab = Lab::new(HOSTS);
    let w = World::new();
    let (_dht, bootstrap) = bootstrap_dht(&lab);
    let (com, _) = com(PERIOD, 0, "");
    let (pkg, _) = w.pack("dist", &com, &template("cod.ini"));
    // (Signers sign distributions without asking.)
    let ini = |i: usize| node_ini(&lab, i, &bootstrap) + "[signing]\nauto = true\n";
    let mut nodes: Vec<Node> = (0..TWINS.1)
        .map(|i| w.deploy_with(&pkg, &format!("node{}", i + 1), Some(&ini(i))))
        .collect();
    // Every node starts funded (the same archive imported into each store).
    let funding = funding_archive(&w, &nodes.iter().collect::<Vec<_>>(), 40);
    for n in &nodes {
        w.at(n, &["chain", "import", s(&funding)]).ok();
    }
    nodes.push(twin(&w, &pkg, &nodes[TWINS.0], &ini(TWINS.1)));
    assert_eq!(
        nodes[TWINS.1].id, nodes[TWINS.0].id,
        "one member, two nodes"
    );
    let mut daemons: Vec<Daemon> = nodes
        .iter()
        .enumerate()
        .map(|(host, n)| Daemon {
            node: n.clone(),
            host,
            child: None,
            paused: false,
            skew: skews[host],
        })
        .collect();
    for d in &mut daemons {
        d.start(&w, &lab);
    }
    let net = Net::of(&w, pkg.clone(), nodes.clone());
    net.wait_confirmed(120);

    // The schedule.
    let mut acked: Vec<(String, usize)> = Vec::new();
    let mut faults = 0;
    // The twins' double spends: both records acknowledged, each by its own node.
    let mut spends: Vec<(String, String)> = Vec::new();
    let mut twin_alone: Vec<String> = Vec::new();
    // When every node will take the records a node made while its clock ran fast: they are
    // dated up to that far ahead, and a node holds back a transfer dated more than the
    // tolerated skew after its own clock (`Checked::hold_ahead`) — by design, not a fault.
    let mut dated_ahead_until = Instant::now();
    let slowest = *skews.iter().min().unwrap();
    for (step, fs) in schedule.into_iter().enumerate() {
        eprintln!("step {step}: {fs:?}");
        for f in &fs {
            faults += usize::from(!matches!(f, Fault::None));
            match f {
                Fault::None => {}
                Fault::Partition(a, b) => lab.partition(&[a.clone(), b.clone()]),
                Fault::OneWay(from, to) => lab.cut(*from, *to),
                Fault::Loss(hosts, p) => hosts.iter().for_each(|h| lab.loss(*h, *p)),
                Fault::Slow(h, kbit) => lab.slow(*h, *kbit),
                Fault::Kill(h) => daemons[*h].kill(),
                Fault::Pause(h) => {
                    daemons[*h].signal(nix::sys::signal::Signal::SIGSTOP);
                    daemons[*h].paused = true;
                }
                Fault::Delay(hosts, ms, jitter, seed) => {
                    for h in hosts {
                        lab.delay(*h, *ms, *jitter, seed ^ *h as u64);
                    }
                }
                Fault::Skew(h, skew) => set_clock(&nodes[*h], *skew),
            }
        }
        // The twins on both sides of a partition: each spends the same credit (its next
        // record, paying the network) — a double spend, which every node must settle alike.
        if let Some(Fault::Partition(a, _)) = fs.iter().find(|f| matches!(f, Fault::Partition(..)))
            && a.contains(&TWINS.0) != a.contains(&TWINS.1)
        {
            let made: Vec<(String, usize)> = [TWINS.0, TWINS.1]
                .into_iter()
                .filter_map(|t| {
                    let args = ["--json", "transfer", "--to", "network", "--amount", "0.07"];
                    let r = w.at(&nodes[t], &[&args[..], &["--yes"]].concat());
                    r.out
                        .status
                        .success()
                        .then(|| (r.json()["record"].as_str().unwrap().to_string(), t))
                })
                .collect();
            match &made[..] {
                [(a, _), (b, _)] => spends.push((a.clone(), b.clone())),
                // One twin was down: its record is acknowledged, but it is the twins' — the
                // other, which never learned of it, may spend that seq too in a later split, and
                // win: a member who signs twice is owed nothing. (Counted, not checked.)
                _ => twin_alone.extend(made.into_iter().map(|(h, _)| h)),
            }
        }
        let began = Instant::now();
        while began.elapsed() < STEP {
            // A transfer of a few units from a random running node to another member.
            let from = rng.gen_range(0..PAYERS);
            let to = (from + rng.gen_range(1..TWINS.1)) % TWINS.1;
            let cents = rng.gen_range(1..=5u64);
            if !daemons[from].running() {
                continue;
            }
            let amount = format!("0.{cents:02}");
            let r = w.at(
                &nodes[from],
                &[
                    "--json",
                    "transfer",
                    "--to",
                    &nodes[to].id,
                    "--amount",
                    &amount,
                    "--yes",
                ],
            );
            if r.out.status.success() {
                acked.push((r.json()["record"].as_str().unwrap().to_string(), from));
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(100..600)));
        }
        // The step's faults end (the last first).
        for f in fs.into_iter().rev() {
            match f {
                Fault::Kill(h) => daemons[h].start(&w, &lab),
                Fault::Pause(h) => {
                    daemons[h].signal(nix::sys::signal::Signal::SIGCONT);
                    daemons[h].paused = false;
                }
                Fault::Skew(h, ahead) => {
                    set_clock(&nodes[h], daemons[h].skew);
                    // (libfaketime reads the clock file at most once a second: the next
                    // step's records — the twins' spends come first — are dated by the clock
                    // set back, not made a moment after the wait below; seed
                    // 7348359401582248432.)
                    std::thread::sleep(Duration::from_millis(1500));
                    // (A jump sets the clock `ahead` off the true time, whatever its skew.)
                    let wait = ahead - cod::clock::MAX_CLOCK_SKEW as i64 - slowest;
                    if let Ok(wait) = u64::try_from(wait) {
                        let until = Instant::now() + Duration::from_secs(wait);
                        dated_ahead_until = dated_ahead_until.max(until);
                    }
                }
                _ => lab.heal(),
            }
        }
    }
    lab.heal();
    eprintln!("{faults} faults, {} transfers acknowledged", acked.len());

    // Healed: every node ends with the same records and balances (what each node says, per
    // node), and with every period distributed that had transfers and ended 20 s (a period)
    // before the network healed — by every signer's clock a minute after healing (their skews
    // are back to at most a minute), and the traffic that kept changing the periods' records
    // has stopped. The run waits for this, up to a bound.
    // (The wait for records dated ahead counts as part of the healing.)
    let held_ahead = dated_ahead_until.saturating_duration_since(Instant::now());
    if !held_ahead.is_zero() {
        eprintln!(
            "records made while a clock ran fast are held back for {} s more",
            held_ahead.as_secs()
        );
    }
    let healed = Instant::now() + held_ahead;
    let params = params_of(&nodes[0]);
    let due_by = cod::clock::now().saturating_sub(PERIOD);
    let accounts: Vec<&str> = nodes
        .iter()
        .map(|n| n.id.as_str())
        .chain(["network"])
        .collect();
    let says = |n: &Node| -> (Option<u64>, Vec<Option<u64>>) {
        let balances = accounts.iter().map(|a| net.balance(n, a)).collect();
        (net.applied(n), balances)
    };
    // Each node's chain, as its export gives it: the records it applied, and its state.
    let chain_of = |n: &Node| {
        let file = w.path(&format!("final-{}.archive", n.key));
        let _ = std::fs::remove_file(&file);
        w.at(n, &["chain", "export", "--out", s(&file)]).ok();
        let records = cod::archive::read(&std::fs::read(&file).unwrap(), &params.cod).unwrap();
        // (An archive holds both sides of a fork.)
        let hashes: Vec<_> = records.iter().map(|r| r.hash()).collect();
        let l = cod::ledger::Ledger::from_records(params.clone(), records);
        let held: BTreeSet<String> = hashes
            .iter()
            .filter(|h| l.state().is_applied(h))
            .map(|h| h.to_string())
            .collect();
        (held, l)
    };
    // The last period due for a distribution in a chain, if any.
    let due = |l: &cod::ledger::Ledger| {
        let com = &params.com;
        l.records()
            .iter()
            .filter(|r| l.state().is_applied(&r.hash()))
            .filter(|r| r.kind() == cod::ledger::Kind::Transfer)
            .map(|r| com.period_of(r.body().time))
            .filter(|p| com.period_bounds(*p).1 <= due_by)
            .max()
    };
    // Every record of the twins' that a twin acknowledged and a node applies, on every node
    // (applied, or kept as a double spend's proof): nodes that agree may not yet hold one a
    // twin made while its clock ran fast, held back until their clocks are near its date
    // (seed 7348359401582248432). (Not one no node applies — the losing side of a double
    // spend, or a record built on it: what a node does not apply, sync need not bring.)
    let twins_records: Vec<&String> = spends
        .iter()
        .flat_map(|(a, b)| [a, b])
        .chain(&twin_alone)
        .collect();
    let unknown = |finals: &[(BTreeSet<String>, cod::ledger::Ledger)]| -> Vec<String> {
        let applied: Vec<&&String> = twins_records
            .iter()
            .filter(|h| finals.iter().any(|(held, _)| held.contains(h.as_str())))
            .collect();
        nodes
            .iter()
            .zip(finals)
            .flat_map(|(n, (_, l))| {
                applied
                    .iter()
                    .filter(|h| l.record(&h.parse().unwrap()).is_none())
                    .map(move |h| format!("{} lacks the twins' {}", n.key, &h[..8]))
            })
            .collect()
    };
    let (converged, seen, finals) = loop {
        let seen: Vec<_> = nodes.iter().map(says).collect();
        if seen[0].0.is_some() && seen.iter().all(|s| *s == seen[0]) {
            let finals: Vec<_> = nodes.iter().map(chain_of).collect();
            let same = finals.iter().all(|(held, _)| *held == finals[0].0);
            let distributed = |l: &cod::ledger::Ledger| due(l) <= l.state().last_period;
            if same && finals.iter().all(|(_, l)| distributed(l)) && unknown(&finals).is_empty() {
                break (Some(healed.elapsed()), seen, finals);
            }
        }
        if Instant::now() > healed + CONVERGE {
            break (None, seen, nodes.iter().map(chain_of).collect());
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    // Nodes that disagree with the most common answer.
    let divergent = seen
        .iter()
        .map(|a| seen.iter().filter(|b| *b == a).count())
        .max()
        .map_or(0, |most| nodes.len() - most);

    // The checker: each node's chain verifies, holds every acknowledged record, keeps what
    // was issued, no more and no less, and distributed every period due.
    let mut lost: BTreeSet<&str> = BTreeSet::new();
    let mut problems = Vec::new();
    let mut periods = 0;
    for (n, (held, l)) in nodes.iter().zip(&finals) {
        if !w.chain_ok(n) {
            problems.push(format!("{}: chain verify fails", n.key));
        }
        let missing: Vec<&str> = acked
            .iter()
            .map(|(h, _)| h.as_str())
            .filter(|h| !held.contains(*h))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{} lacks {} acknowledged records: {missing:?}",
                n.key,
                missing.len()
            ));
        }
        lost.extend(missing);
        let total: u64 = l
            .state()
            .accounts()
            .into_iter()
            .map(|(_, a)| {
                a.spendable.get("codcoin").copied().unwrap_or(0)
                    + a.incoming.get("codcoin").copied().unwrap_or(0)
            })
            .sum();
        let issued = l.state().issued.get("codcoin").copied().unwrap_or(0);
        if total != issued {
            problems.push(format!(
                "{}: balances sum to {total}, {issued} issued",
                n.key
            ));
        }
        let last = l.state().last_period;
        if due(l) > last {
            problems.push(format!(
                "{}: period {:?} is due for a distribution, the last is {last:?}",
                n.key,
                due(l)
            ));
        }
        periods = last.map_or(0, |p| p + 1);
    }
    // One chain everywhere: the same records on every node — each double spend settled with
    // the same winner — and of each double spend, one record at least, or a third record of
    // the member's in its slots.
    let chains: Vec<&BTreeSet<String>> = finals.iter().map(|(held, _)| held).collect();
    if chains.iter().any(|c| *c != chains[0]) {
        problems.push("the nodes hold different records".to_string());
    }
    let applied = |h: &String| chains[0].contains(h);
    let fork_losers = spends
        .iter()
        .filter(|(a, b)| applied(a) != applied(b))
        .count()
        + twin_alone.iter().filter(|h| !applied(h)).count();
    // (Both may go only to a third record of the member's: twins that split again signed
    // a seq once more — on its side of an earlier fork, or beside a record it did not know
    // was out — and that one holds the slot. A member who signs twice is owed nothing;
    // each slot still holds one record everywhere.)
    let l = &finals[0].1;
    let third_holds = |h: &String| {
        l.record(&h.parse().unwrap()).is_some_and(|r| {
            l.state()
                .applied_at(&r.account(), r.seq())
                .is_some_and(|holder| holder.to_string() != *h)
        })
    };
    for (a, b) in spends
        .iter()
        .filter(|(a, b)| !applied(a) && !applied(b))
        .filter(|(a, b)| !(third_holds(a) && third_holds(b)))
    {
        problems.push(format!("both sides of a double spend are gone: {a}, {b}"));
    }
    if converged.is_none() {
        // (What was still missing, besides what the checks above name.)
        problems.push(format!(
            "no agreement {} s after healing: {divergent} nodes differ: {seen:?}; {:?}",
            CONVERGE.as_secs(),
            unknown(&finals)
        ));
    }
    // What the nodes' logs say of each lost record (who acknowledged it, who dropped it and
    // why), and of the forks met; the logs and final chains are kept for a closer look.
    let mut evidence: Vec<String> = Vec::new();
    if !problems.is_empty() {
        let keep = std::env::temp_dir().join(format!("cod-chaos-{seed}"));
        std::fs::create_dir_all(&keep).unwrap();
        for n in &nodes {
            let log = keep.join(format!("{}.log", n.key));
            let _ = std::fs::copy(n.dir.join("chaos.log"), log);
            let chain = format!("final-{}.archive", n.key);
            let _ = std::fs::copy(w.path(&chain), keep.join(chain));
            // What each signer signed, rejected and holds: where a distribution stalls.
            let _ = std::fs::copy(
                n.dir.join("signed.json"),
                keep.join(format!("{}.signed.json", n.key)),
            );
            let requests = w.at(n, &["--json", "sign", "list"]);
            let _ = std::fs::write(
                keep.join(format!("{}.requests.json", n.key)),
                requests.stdout(),
            );
        }
        evidence.push(format!("kept: {}", keep.display()));
        for h in &lost {
            let by: Vec<&str> = acked
                .iter()
                .filter(|(x, _)| x == h)
                .map(|(_, n)| nodes[*n].key.as_str())
                .collect();
            evidence.push(format!("{h} acknowledged by {by:?}"));
        }
        for n in &nodes {
            let log = std::fs::read_to_string(n.dir.join("chaos.log")).unwrap_or_default();
            let shorts: Vec<&str> = lost.iter().map(|h| &h[..8]).collect();
            evidence.extend(
                log.lines()
                    .filter(|l| {
                        shorts.iter().any(|s| l.contains(s))
                            || l.contains("double spend")
                            || l.contains("dropped")
                    })
                    .take(40)
                    .map(|l| format!("{}: {l}", n.key)),
            );
        }
    }
    let report = serde_json::json!({
        "seed": seed,
        "steps": steps,
        "max_jump_s": max_jump,
        "faults": faults,
        "acknowledged": acked.len(),
        "double_spends": spends.len(),
        "twin_alone": twin_alone.len(),
        "periods_distributed": periods,
        "fork_losers": fork_losers,
        "lost": lost.len(),
        "divergent": divergent,
        "converge_s": converged.map(|d| d.as_secs_f64()),
        "held_ahead_s": held_ahead.as_secs(),
        "problems": problems,
        "evidence": evidence,
    });
    eprintln!("report {report}");
    if let Some(file) = std::env::var_os("COD_CHAOS_REPORT") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .unwrap();
        // (One write: runs side by side append to the same file.)
        f.write_all(format!("{report}\n").as_bytes()).unwrap();
    }
    assert!(
        !acked.is_empty(),
        "no transfer was acknowledged (seed {seed})"
    );
    assert!(
        problems.is_empty(),
        "seed {seed} (COD_CHAOS_MAX_JUMP={max_jump}): {problems:#?}"
    );
}

/// The lab's delayer ([`Lab::delay`]): every packet of a delayed host arrives, none sooner
/// than the delay less the jitter, and — the jitter being far larger than the gaps between
/// them — out of order; once healed, packets pass as before.
#[test]
fn the_lab_delays_packets_and_reorders_them() {
    const N: u16 = 200;
    let lab = Lab::new(2);
    lab.delay(0, 60, 40, 7);
    let to: std::net::SocketAddr = format!("{}:9000", lab.hosts[1].ip).parse().unwrap();
    let (bound, is_bound) = std::sync::mpsc::channel();
    let receiver = lab.on(1, move || {
        let sock = std::net::UdpSocket::bind("0.0.0.0:9000").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        bound.send(()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2];
        while got.len() < usize::from(N) + 1 {
            let Ok(2) = sock.recv(&mut buf) else { break };
            got.push((u16::from_be_bytes(buf), Instant::now()));
        }
        got
    });
    is_bound.recv().unwrap();
    let sender = lab.on(0, move || {
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        (0..N)
            .map(|i| {
                let sent = Instant::now();
                sock.send_to(&i.to_be_bytes(), to).unwrap();
                std::thread::sleep(Duration::from_millis(1));
                sent
            })
            .collect::<Vec<_>>()
    });
    let sent = sender.join().unwrap();
    // Healed, the last packet passes (and what the delayer still held leaves).
    lab.heal();
    lab.on(0, move || {
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        sock.send_to(&N.to_be_bytes(), to).unwrap();
    })
    .join()
    .unwrap();
    let got = receiver.join().unwrap();
    let order: Vec<u16> = got.iter().map(|(i, _)| *i).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, (0..=N).collect::<Vec<_>>(), "every packet arrives");
    assert!(
        order.windows(2).any(|w| w[1] < w[0]),
        "some arrive out of order: {order:?}"
    );
    for (i, at) in got.iter().filter(|(i, _)| *i < N) {
        let took = *at - sent[usize::from(*i)];
        assert!(
            took >= Duration::from_millis(20),
            "packet {i} took {took:?}"
        );
    }
}

/// A process killed (and reaped) on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lab's bootstrap DHT (`cod dht bootstrap`), on its first host: the process, and the
/// address nodes bootstrap from.
fn bootstrap_dht(lab: &Lab) -> (Kill, String) {
    let ip = &lab.hosts[0].ip;
    let mut dht = lab
        .command(0, cod_bin())
        .args(["dht", "bootstrap", "--nodes", "4", "--bind", ip])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(dht.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Kill(dht), line.trim().to_string())
}

/// node.ini of a node on host `i`: its API on the host's address, the lab's DHT, quick rounds.
fn node_ini(lab: &Lab, i: usize, bootstrap: &str) -> String {
    format!(
        "[node]\nlisten = {}:7000\n[dht]\nbootstrap = {bootstrap}\nannounce_interval = 2s\n\
         lookup_interval = 2s\n[sync]\ninterval = 2s\n",
        lab.hosts[i].ip
    )
}

/// A second node of `of`'s member on another host: deployed with the same key, its store
/// replaced by a copy of `of`'s (neither runs yet).
fn twin(w: &World, pkg: &std::path::Path, of: &Node, ini: &str) -> Node {
    let key = w.example_key(&format!("{}.sec.key", of.key));
    let (base, ini) = (w.path("nodes-twin"), w.write("twin.ini", ini));
    let j = w
        .cod(&[
            "--json",
            "deploy",
            "--package",
            s(pkg),
            "--key",
            s(&key),
            "--dir",
            s(&base),
            "--node-ini",
            s(&ini),
        ])
        .ok()
        .json();
    let dir = std::path::PathBuf::from(j["dir"].as_str().unwrap());
    let store = dir.join("store");
    std::fs::remove_dir_all(&store).unwrap();
    let copied = std::process::Command::new("cp")
        .args(["-a", s(&of.dir.join("store")), s(&store)])
        .status()
        .unwrap();
    assert!(copied.success());
    Node {
        dir,
        id: j["node_id"].as_str().unwrap().to_string(),
        key: format!("{}-twin", of.key),
    }
}

/// A member behind a NAT (no inbound route, as on most home connections and phone hotspots)
/// takes part through the connections it opens itself: it finds the others on the DHT, syncs
/// both ways, transfers, proposes what another signer approves and approves what another
/// proposes — and the nodes that
/// learn its unreachable address (the DHT gives its router's) back off from it rather than
/// keep dialling.
#[test]
fn a_node_behind_a_nat_takes_part_through_its_own_connections() {
    let began = Instant::now();
    let mut lab = Lab::new(2);
    let nat = lab.behind_nat();
    let w = World::new();
    let (_dht, bootstrap) = bootstrap_dht(&lab);
    // Signers node1 … node3 (quorum 2); node3 is behind the NAT. Periods of 20 s from now:
    // the funding's distribution is dated at the first one's end, and a proposal after it.
    let (pkg, _) = w.pack("dist", &com(20, 0, "").0, &template("cod.ini"));
    let nodes: Vec<Node> = (0..=nat)
        .map(|i| {
            w.deploy_with(
                &pkg,
                &format!("node{}", i + 1),
                Some(&node_ini(&lab, i, &bootstrap)),
            )
        })
        .collect();
    let funding = funding_archive(&w, &nodes.iter().collect::<Vec<_>>(), 40);
    let mut daemons: Vec<Daemon> = Vec::new();
    for (host, n) in nodes.iter().enumerate() {
        w.at(n, &["chain", "import", s(&funding)]).ok();
        let mut d = Daemon {
            node: n.clone(),
            host,
            child: None,
            paused: false,
            skew: 0,
        };
        d.start(&w, &lab);
        daemons.push(d);
    }
    let net = Net::of(&w, pkg.clone(), nodes.clone());
    let (open, natted) = (&nodes[0], &nodes[nat]);
    wait_for(
        120,
        "the node behind the NAT to confirm both others",
        || (net.confirmed_peers(natted).len() == 2).then_some(()),
    );

    // Records made elsewhere reach it (it pulls them)…
    let before = net.balance(natted, &natted.id).unwrap();
    w.at(
        open,
        &["transfer", "--to", &natted.id, "--amount", "1", "--yes"],
    )
    .ok();
    wait_for(60, "a transfer made elsewhere to reach it", || {
        (net.balance(natted, &natted.id)? == before + 100).then_some(())
    });
    // … and its own reach the others (it pushes them).
    let before = net.balance(&nodes[1], &nodes[1].id).unwrap();
    w.at(
        natted,
        &["transfer", "--to", &nodes[1].id, "--amount", "2", "--yes"],
    )
    .ok();
    for n in &nodes[..nat] {
        wait_for(60, "its transfer to reach the others", || {
            (net.balance(n, &nodes[1].id)? == before + 200).then_some(())
        });
    }
    // It signs: its proposal (two loaves more than the funding attested) reaches another
    // signer, whose approval makes it final everywhere.
    let issued = |n: &Node| net.status(n)?["chain"]["issued"]["codcoin"].as_u64();
    let expected = issued(open).unwrap() + 2 * 350;
    let proposed = wait_for(60, "the first period to end", || {
        let r = w.at(natted, &["--json", "issue", "--backing", "bread=42"]);
        r.out.status.success().then(|| r.json())
    });
    let id = proposed["id"].as_str().unwrap().to_string();
    wait_for(60, "its proposal to reach another signer", || {
        w.at(open, &["sign", "show", &id])
            .out
            .status
            .success()
            .then_some(())
    });
    w.at(open, &["sign", "approve", &id]).ok();
    for n in &nodes {
        wait_for(60, "the issuance to be final everywhere", || {
            (issued(n)? == expected).then_some(())
        });
    }
    // And what another signer proposes reaches it — nobody can send it, so it pulls the open
    // requests of a peer at its sync rounds — and its approval makes it final everywhere.
    let proposed = w
        .at(open, &["--json", "issue", "--backing", "bread=44"])
        .ok()
        .json();
    let id = proposed["id"].as_str().unwrap().to_string();
    wait_for(60, "another signer's proposal to reach it", || {
        w.at(natted, &["sign", "show", &id])
            .out
            .status
            .success()
            .then_some(())
    });
    w.at(natted, &["sign", "approve", &id]).ok();
    for n in &nodes {
        wait_for(60, "the second issuance to be final everywhere", || {
            (issued(n)? == expected + 2 * 350).then_some(())
        });
    }

    // The others dialled its router's address only as their back-off allows (2, 4, 8 …
    // seconds between tries: about log2 of the time each) — never confirming it. (Twice that
    // is allowed for; without a back-off it would be a try a second or more, each.)
    let (tries, secs) = (lab.refused_at_nat(nat), began.elapsed().as_secs_f64());
    let per_peer = 2 * (secs.log2().ceil() as u64 + 2);
    assert!(
        tries <= 2 * per_peer,
        "the others tried its router {tries} times in {secs:.0} s"
    );
    eprintln!("the others tried its router {tries} times in {secs:.0} s");
    for n in &nodes[..nat] {
        let peers = w.at(n, &["--json", "peers"]).ok().json();
        for p in peers["peers"].as_array().unwrap() {
            if p["addr"].as_str().unwrap().starts_with(lab.public_ip(nat)) {
                assert_eq!(p["confirmed"], false, "{p}");
            }
        }
    }
}
