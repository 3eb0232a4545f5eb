//! A lab of hosts for fault tests (issue 18): Linux network namespaces joined by one bridge
//! that lives in a namespace of its own, so the lab touches nothing of this machine's network
//! and has no route out. Each host has an address on the bridge (10.77.0.1, .2, …) and a
//! loopback of its own. Faults are made inside the hosts: partitions, one-way cuts and loss
//! with iptables (loss by its `statistic` match), slow links with tc's `tbf`; latency, jitter
//! and reordering by a delayer of the lab's own (this kernel has no `netem`): see
//! [`Lab::delay`]. Every namespace the lab made is removed when it drops, whatever the test did.

use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub struct Lab {
    tag: String,
    switch: String,
    /// NAT routers (see [`Lab::behind_nat`]).
    routers: Vec<Host>,
    pub hosts: Vec<Host>,
    /// Delayers at work (see [`Lab::delay`]), stopped by [`Lab::heal`].
    delayers: Mutex<Vec<Delayer>>,
}

pub struct Host {
    pub ns: String,
    /// Its address: on the bridge, or on its private link behind a NAT.
    pub ip: String,
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    /// `n` hosts on one bridge.
    pub fn new(n: usize) -> Self {
        assert!(
            nix::unistd::getuid().is_root(),
            "network namespaces need root (CI runs the tests as root)"
        );
        assert!(n < 250);
        sweep();
        // Namespaces are named for this process and a random number: labs of runs side by
        // side do not collide (addresses are each lab's own, behind its own bridge), and a
        // lab whose process died unwinding nothing is found and removed by the next.
        let tag = format!("{}x{:03}", std::process::id(), rand::random::<u16>() % 1000);
        let mut lab = Lab {
            switch: format!("codsw-{tag}"),
            routers: Vec::new(),
            hosts: Vec::new(),
            delayers: Mutex::new(Vec::new()),
            tag: tag.clone(),
        };
        run(&["ip", "netns", "add", &lab.switch]);
        let sw = lab.switch.clone();
        run(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]);
        run(&["ip", "-n", &sw, "link", "set", "br0", "up"]);
        for i in 0..n {
            let host = Host {
                ns: format!("codh{i}-{tag}"),
                ip: format!("10.77.0.{}", i + 1),
            };
            // Pushed first, so that a failure below still removes it.
            lab.hosts.push(host);
            let h = &lab.hosts[i];
            run(&["ip", "netns", "add", &h.ns]);
            // (Made in the switch's namespace directly: the name is the lab's alone.)
            let port = format!("p{i}");
            run(&[
                "ip", "link", "add", "name", &port, "netns", &sw, "type", "veth", "peer", "name",
                "eth0", "netns", &h.ns,
            ]);
            run(&["ip", "-n", &sw, "link", "set", &port, "master", "br0", "up"]);
            run(&[
                "ip",
                "-n",
                &h.ns,
                "addr",
                "add",
                &format!("{}/24", h.ip),
                "dev",
                "eth0",
            ]);
            run(&["ip", "-n", &h.ns, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", &h.ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    /// One more host, behind a NAT: a router on the bridge (an address there, as a home
    /// router has on the internet) masquerades the host's private link (10.78.N.0/24). The
    /// host reaches every other; none reaches it — nothing routes to its private address, and
    /// the router forwards nothing inbound. Returns its index.
    pub fn behind_nat(&mut self) -> usize {
        let (i, r) = (self.hosts.len(), self.routers.len());
        let tag = self.tag.clone();
        let router = Host {
            ns: format!("codr{r}-{tag}"),
            ip: format!("10.77.0.{}", 200 + r),
        };
        let host = Host {
            ns: format!("codh{i}-{tag}"),
            ip: format!("10.78.{r}.2"),
        };
        self.routers.push(router);
        self.hosts.push(host);
        let (router, host, sw) = (&self.routers[r], &self.hosts[i], &self.switch);
        run(&["ip", "netns", "add", &router.ns]);
        run(&["ip", "netns", "add", &host.ns]);
        let port = format!("r{r}");
        run(&[
            "ip", "link", "add", "name", &port, "netns", sw, "type", "veth", "peer", "name",
            "eth0", "netns", &router.ns,
        ]);
        run(&["ip", "-n", sw, "link", "set", &port, "master", "br0", "up"]);
        run(&[
            "ip", "link", "add", "name", "lan0", "netns", &router.ns, "type", "veth", "peer",
            "name", "eth0", "netns", &host.ns,
        ]);
        let gateway = format!("10.78.{r}.1");
        for (ns, dev, addr) in [
            (&router.ns, "eth0", format!("{}/24", router.ip)),
            (&router.ns, "lan0", format!("{gateway}/24")),
            (&host.ns, "eth0", format!("{}/24", host.ip)),
        ] {
            run(&["ip", "-n", ns, "addr", "add", &addr, "dev", dev]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        run(&["ip", "-n", &host.ns, "link", "set", "lo", "up"]);
        run(&[
            "ip", "-n", &host.ns, "route", "add", "default", "via", &gateway,
        ]);
        let in_router = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", &router.ns];
            all.extend_from_slice(args);
            run(&all);
        };
        in_router(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        in_router(&[
            "iptables",
            "-w",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            "eth0",
            "-j",
            "MASQUERADE",
        ]);
        // Inbound, only what answers the host's own connections.
        in_router(&["iptables", "-w", "-P", "FORWARD", "DROP"]);
        in_router(&[
            "iptables", "-w", "-A", "FORWARD", "-i", "lan0", "-j", "ACCEPT",
        ]);
        in_router(&[
            "iptables",
            "-w",
            "-A",
            "FORWARD",
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ]);
        // Counts the connections others try to open to the router (to the host's port, as
        // the DHT tells it): `Lab::refused_at_nat`.
        in_router(&[
            "iptables",
            "-w",
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--syn",
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ]);
        i
    }

    /// How many TCP connections others tried to open to the NAT router in front of host
    /// `host` (each is refused: nothing listens there).
    pub fn refused_at_nat(&self, host: usize) -> u64 {
        let r = self.router_of(host);
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.routers[r].ns,
                "iptables",
                "-w",
                "-L",
                "INPUT",
                "-v",
                "-x",
                "-n",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.contains("REJECT"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// The address others see host `host` by (its router's, if it is behind a NAT).
    pub fn public_ip(&self, host: usize) -> &str {
        match self.hosts[host].ip.starts_with("10.78.") {
            true => &self.routers[self.router_of(host)].ip,
            false => &self.hosts[host].ip,
        }
    }

    fn router_of(&self, host: usize) -> usize {
        let ip = &self.hosts[host].ip;
        ip.split('.').nth(2).unwrap().parse().unwrap()
    }

    /// A command that runs `program` on host `host`.
    pub fn command(&self, host: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hosts[host].ns]).arg(program);
        c
    }

    fn iptables(&self, host: usize, args: &[&str]) {
        let mut all = vec![
            "ip",
            "netns",
            "exec",
            &self.hosts[host].ns,
            "iptables",
            "-w",
        ];
        all.extend_from_slice(args);
        run(&all);
    }

    /// Cuts the hosts into `sides`: no packet crosses between two sides, either way (hosts
    /// in no side keep their links).
    pub fn partition(&self, sides: &[Vec<usize>]) {
        for (i, a) in sides.iter().enumerate() {
            for b in &sides[i + 1..] {
                for &x in a {
                    for &y in b {
                        self.cut(x, y);
                        self.cut(y, x);
                    }
                }
            }
        }
    }

    /// Packets from `from` to `to` are dropped (`to` still sends to `from`).
    pub fn cut(&self, from: usize, to: usize) {
        let src = self.hosts[from].ip.clone();
        self.iptables(to, &["-A", "INPUT", "-s", &src, "-j", "DROP"]);
    }

    /// `host` loses `percent` of the packets it receives.
    pub fn loss(&self, host: usize, percent: u32) {
        let p = format!("{:.2}", f64::from(percent) / 100.0);
        self.iptables(
            host,
            &[
                "-A",
                "INPUT",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &p,
                "-j",
                "DROP",
            ],
        );
    }

    /// `host` sends at most `kbit` kilobits a second.
    pub fn slow(&self, host: usize, kbit: u32) {
        let rate = format!("{kbit}kbit");
        run(&[
            "ip",
            "netns",
            "exec",
            &self.hosts[host].ns,
            "tc",
            "qdisc",
            "replace",
            "dev",
            "eth0",
            "root",
            "tbf",
            "rate",
            &rate,
            "burst",
            "32kbit",
            "latency",
            "400ms",
        ]);
    }

    /// Every packet host `host` sends leaves `ms` milliseconds later, give or take up to
    /// `jitter` (uniformly, from `seed`): with a jitter larger than the gaps between packets,
    /// they arrive out of order. An iptables rule queues them (NFQUEUE) to a thread of this
    /// process that has entered the host's namespace, holds each until its time and lets it go;
    /// if that thread is gone, the rule lets packets pass (`--queue-bypass`).
    pub fn delay(&self, host: usize, ms: u64, jitter: u64, seed: u64) {
        assert!(jitter <= ms, "a packet cannot leave before it is sent");
        let ns = self.hosts[host].ns.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let (bound, is_bound) = std::sync::mpsc::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                enter(&ns);
                let mut q = nfq::Queue::open().expect("a netfilter queue");
                // A queue number nobody holds: another lab in another process (`just
                // chaos-long` runs several) may hold some — their numbers are not always
                // per namespace (found: "queue 0: Operation not permitted").
                let base = (std::process::id() % 1000) as u16 * 64;
                let n = (0..64)
                    .map(|i| base + i)
                    .find(|&n| q.bind(n).is_ok())
                    .expect("a free netfilter queue number");
                q.set_fail_open(n, true).unwrap();
                q.set_queue_max_len(n, 16384).unwrap();
                q.set_nonblocking(true);
                bound.send(n).unwrap();
                hold(&mut q, ms, jitter, seed, &stop);
            })
        };
        let queue = is_bound.recv().expect("the delayer to start").to_string();
        self.iptables(
            host,
            &[
                "-A",
                "OUTPUT",
                "-o",
                "eth0",
                "-j",
                "NFQUEUE",
                "--queue-num",
                &queue,
                "--queue-bypass",
            ],
        );
        self.delayers.lock().unwrap().push(Delayer {
            stop,
            thread: Some(thread),
        });
    }

    /// Runs `f` on a thread inside host `host`'s network namespace: sockets it opens are the
    /// host's.
    pub fn on<T: Send + 'static>(
        &self,
        host: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let ns = self.hosts[host].ns.clone();
        std::thread::spawn(move || {
            enter(&ns);
            f()
        })
    }

    /// Every link whole again.
    pub fn heal(&self) {
        for i in 0..self.hosts.len() {
            self.iptables(i, &["-F", "INPUT"]);
            self.iptables(i, &["-F", "OUTPUT"]);
            let _ = self
                .command(i, "tc")
                .args(["qdisc", "del", "dev", "eth0", "root"])
                .stderr(std::process::Stdio::null())
                .status();
        }
        // (After the rules are gone: what the delayers still hold leaves now.)
        self.delayers.lock().unwrap().clear();
    }
}

/// Moves the calling thread into the network namespace `ns` (made by `ip netns add`).
fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("the namespace");
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// A thread holding a host's outgoing packets ([`Lab::delay`]); stopping it lets every packet
/// it holds go.
struct Delayer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Delayer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The delayer's loop: takes each queued packet, gives it a time to leave, and lets go those
/// whose time came (in the order of their times, not of their arrival).
fn hold(q: &mut nfq::Queue, ms: u64, jitter: u64, seed: u64, stop: &AtomicBool) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Keyed by (time to leave, arrival number): unique, in leaving order.
    let mut held: BTreeMap<(Instant, u64), nfq::Message> = BTreeMap::new();
    let mut n = 0u64;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        loop {
            match q.recv() {
                Ok(msg) => {
                    let d = ms - jitter + rng.gen_range(0..=2 * jitter);
                    held.insert((Instant::now() + Duration::from_millis(d), n), msg);
                    n += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("the delayer's queue: {e}"),
            }
        }
        let now = Instant::now();
        while let Some(entry) = held.first_entry() {
            if !stopping && entry.key().0 > now {
                break;
            }
            // (A packet whose verdict fails is dropped by the kernel: loss, as on any link.)
            let _ = q.verdict(entry.remove());
        }
        if stopping {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The delayers first (they hold packets of hosts about to go).
        self.delayers.lock().unwrap().clear();
        // (Removing a namespace removes its end of each veth pair, and with it the pair.)
        let all = self.hosts.iter().chain(&self.routers).map(|h| &h.ns);
        for ns in all.chain([&self.switch]) {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Removes the labs of test processes that died without removing theirs (killed, say, by a
/// test runner's timeout): their namespaces, and what still runs in them.
fn sweep() {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for name in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("cod"))
    {
        let Some((pid, _)) = name.rsplit_once('-').and_then(|(_, t)| t.split_once('x')) else {
            continue;
        };
        if pid.parse::<u32>().is_err() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let pids = Command::new("ip")
            .args(["netns", "pids", name])
            .output()
            .unwrap();
        for p in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            if let Ok(p) = p.parse() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = Command::new("ip").args(["netns", "del", name]).status();
    }
}
