//! A lab of hosts for fault tests (issue 18): Linux network namespaces joined by one bridge
//! that lives in a namespace of its own, so the lab touches nothing of this machine's network
//! and has no route out. Each host has an address on the bridge (10.77.0.1, .2, …) and a
//! loopback of its own. Faults are made inside the hosts: partitions, one-way cuts and loss
//! with iptables (loss by its `statistic` match), slow links with tc's `tbf` (this kernel has
//! no `netem`). Every namespace the lab made is removed when it drops, whatever the test did.

use std::process::Command;

pub struct Lab {
    switch: String,
    pub hosts: Vec<Host>,
}

pub struct Host {
    pub ns: String,
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
        // Names carry a random tag: labs of runs side by side do not collide (addresses are
        // each lab's own, behind its own bridge).
        let tag = format!("{:06}", rand::random::<u32>() % 1_000_000);
        let mut lab = Lab {
            switch: format!("codsw-{tag}"),
            hosts: Vec::new(),
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
            let port = format!("p{i}-{tag}");
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
        for ns in self.hosts.iter().map(|h| &h.ns).chain([&self.switch]) {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}
