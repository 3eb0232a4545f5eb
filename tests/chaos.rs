//! Faults as real networks have them (issue 18): real `cod` daemons on the hosts of a lab
//! (network namespaces on one bridge, `common::lab`), a schedule of faults made from a seed —
//! partitions, one-way cuts, packet loss, slow links, SIGKILL and restart, SIGSTOP — with
//! transfers submitted to random nodes throughout, and a checker once the network heals (the
//! Jepsen "set" and "bank" checks): every acknowledged record is on every node, every node
//! gives every account the same balance, no coin was made or lost, and every store — a
//! killed node's among them — passes `cod chain verify`.
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

/// Hosts, each running one node (node1 … node4; node1's host runs the DHT's bootstrap too).
const HOSTS: usize = 4;
/// How long each step of the schedule lasts, its fault in force.
const STEP: Duration = Duration::from_secs(5);

/// One node's daemon on its host: `cod node run`, in the foreground, so the test holds its
/// process (SIGKILL, SIGSTOP).
struct Daemon {
    node: Node,
    host: usize,
    child: Option<Child>,
    paused: bool,
}

impl Daemon {
    fn start(&mut self, w: &World, lab: &Lab) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.node.dir.join("chaos.log"))
            .unwrap();
        let child = lab
            .command(self.host, cod_bin())
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
}

fn fault(rng: &mut impl Rng) -> Fault {
    let host = |rng: &mut dyn rand::RngCore| rng.gen_range(0..HOSTS);
    match rng.gen_range(0..7) {
        0 => Fault::None,
        1 => {
            let mut hosts: Vec<usize> = (0..HOSTS).collect();
            rand::seq::SliceRandom::shuffle(&mut hosts[..], rng);
            let cut = rng.gen_range(1..HOSTS);
            let b = hosts.split_off(cut);
            Fault::Partition(hosts, b)
        }
        2 => {
            let from = host(rng);
            let to = (from + rng.gen_range(1..HOSTS)) % HOSTS;
            Fault::OneWay(from, to)
        }
        3 => {
            let n = rng.gen_range(1..=HOSTS);
            let mut hosts: Vec<usize> = (0..HOSTS).collect();
            rand::seq::SliceRandom::shuffle(&mut hosts[..], rng);
            hosts.truncate(n);
            Fault::Loss(hosts, [10, 30, 50][rng.gen_range(0..3)])
        }
        4 => Fault::Slow(host(rng), [64, 256][rng.gen_range(0..2)]),
        5 => Fault::Kill(host(rng)),
        _ => Fault::Pause(host(rng)),
    }
}

#[test]
fn a_seeded_schedule_of_faults_loses_nothing_acknowledged() {
    let seed: u64 = std::env::var("COD_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let steps: usize = std::env::var("COD_CHAOS_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    eprintln!("chaos seed {seed}, {steps} steps (COD_CHAOS_SEED={seed} replays it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let lab = Lab::new(HOSTS);
    let w = World::new();
    // The bootstrap DHT, on the first host.
    let mut dht = lab
        .command(0, cod_bin())
        .args([
            "dht",
            "bootstrap",
            "--nodes",
            "4",
            "--bind",
            &lab.hosts[0].ip,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(dht.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let bootstrap = line.trim().to_string();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _dht = Kill(dht);

    let (pkg, _) = w.pack("dist", &template("com.ini"), &template("cod.ini"));
    let mut daemons: Vec<Daemon> = (0..HOSTS)
        .map(|i| {
            let ini = format!(
                "[node]\nlisten = {}:7000\n[dht]\nbootstrap = {bootstrap}\nannounce_interval = 2s\n\
                 lookup_interval = 2s\n[sync]\ninterval = 2s\n",
                lab.hosts[i].ip
            );
            Daemon {
                node: w.deploy_with(&pkg, &format!("node{}", i + 1), Some(&ini)),
                host: i,
                child: None,
                paused: false,
            }
        })
        .collect();
    // Every node starts funded (the same archive imported into each store).
    let nodes: Vec<Node> = daemons.iter().map(|d| d.node.clone()).collect();
    let funding = funding_archive(&w, &nodes.iter().collect::<Vec<_>>(), 40);
    for d in &mut daemons {
        w.at(&d.node, &["chain", "import", s(&funding)]).ok();
        d.start(&w, &lab);
    }
    let net = Net::of(&w, pkg.clone(), nodes.clone());
    net.wait_confirmed(120);

    // The schedule.
    let mut acked: Vec<(String, usize)> = Vec::new();
    let mut faults = 0;
    for step in 0..steps {
        let f = fault(&mut rng);
        eprintln!("step {step}: {f:?}");
        faults += usize::from(!matches!(f, Fault::None));
        match &f {
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
        }
        let began = Instant::now();
        while began.elapsed() < STEP {
            // A transfer of a few units from a random running node to another member.
            let from = rng.gen_range(0..HOSTS);
            let to = (from + rng.gen_range(1..HOSTS)) % HOSTS;
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
        // The step's fault ends.
        match f {
            Fault::Kill(h) => daemons[h].start(&w, &lab),
            Fault::Pause(h) => {
                daemons[h].signal(nix::sys::signal::Signal::SIGCONT);
                daemons[h].paused = false;
            }
            _ => lab.heal(),
        }
    }
    lab.heal();
    eprintln!("{faults} faults, {} transfers acknowledged", acked.len());

    // Healed: every node ends with the same records and balances.
    let healed = Instant::now();
    let accounts: Vec<&str> = nodes
        .iter()
        .map(|n| n.id.as_str())
        .chain(["network"])
        .collect();
    wait_for(180, &format!("every node to agree (seed {seed})"), || {
        let seen: Vec<(Option<u64>, Vec<Option<u64>>)> = nodes
            .iter()
            .map(|n| {
                let balances = accounts.iter().map(|a| net.balance(n, a)).collect();
                (net.applied(n), balances)
            })
            .collect();
        (seen[0].0.is_some() && seen.iter().all(|s| *s == seen[0])).then_some(())
    });
    eprintln!(
        "converged {:.1} s after healing",
        healed.elapsed().as_secs_f64()
    );

    // The checker.
    let params = params_of(&nodes[0]);
    for n in &nodes {
        assert!(w.chain_ok(n), "{} (seed {seed})", n.key);
        let file = w.path(&format!("final-{}.archive", n.key));
        w.at(n, &["chain", "export", "--out", s(&file)]).ok();
        let records = cod::archive::read(&std::fs::read(&file).unwrap(), &params.cod).unwrap();
        let held: BTreeSet<String> = records.iter().map(|r| r.hash().to_string()).collect();
        let lost: Vec<&(String, usize)> = acked.iter().filter(|(h, _)| !held.contains(h)).collect();
        assert!(
            lost.is_empty(),
            "{} lacks {} acknowledged records (seed {seed}): {lost:?}",
            n.key,
            lost.len()
        );
        let l = cod::ledger::Ledger::from_records(params.clone(), records);
        let total: u64 = l
            .state()
            .accounts()
            .into_iter()
            .map(|(_, a)| {
                a.spendable.get("codcoin").copied().unwrap_or(0)
                    + a.incoming.get("codcoin").copied().unwrap_or(0)
            })
            .sum();
        assert_eq!(
            Some(&total),
            l.state().issued.get("codcoin"),
            "{}: no coin made or lost (seed {seed})",
            n.key
        );
    }
}
