//! A lab of hosts for fault tests (issue 18): Linux network namespaces joined by one bridge
//! that lives in a namespace of its own, so the lab touches nothing of this machine's network
//! and has no route out. Each host has an address on the bridge (10.77.0.1, .2, …) and a
//! loopback of its own. Faults are made inside the hosts: partitions, one-way cuts and loss
//! with iptables (loss by its `statistic` match), slow links with tc's `tbf` (this kernel has
//! no `netem`). Every namespace the lab made is removed when it drops, whatever the test did.

use std::process::Command;

pub struct Lab {
    tag: String,
    switch: String,
    /// NAT routers (see [`Lab::behind_nat`]).
    routers: Vec<Host>,
    pub hosts: Vec<Host>,
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

    /// Every link whole again.
    pub fn heal(&self) {
        for i in 0..self.hosts.len() {
            self.iptables(i, &["-F", "INPUT"]);
            let _ = self
                .command(i, "tc")
                .args(["qdisc", "del", "dev", "eth0", "root"])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
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
