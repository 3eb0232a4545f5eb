//! Issue 17. Point 3: a node that hides its address. It runs in a network namespace of its
//! own whose only way out is a SOCKS5 proxy (standing in for a local Tor client): it cannot
//! reach any peer directly, tells no address, and runs without the DHT — and still syncs,
//! transfers and signs, every connection going through the proxy. Point 2: a record made
//! on a node leaves it along a stem, and a peer that swallows stems only delays it.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A node whose only peer swallows stems (a black hole): its transfer leaves it as a stem,
/// not a push; until the transfer comes back — never, here — what the node shows peers has
/// none of it; when the author's embargo ends (15 s at least), the node spreads the transfer
/// itself. With stems off, the same transfer would be pushed at once (the last part).
#[test]
fn a_transfer_leaves_along_a_stem_hidden_and_a_black_hole_only_delays_it() {
    let w = World::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut net = Net::without_dht(&w);
    let holes = spy::ports(2);
    let hole = |i: usize| holes[i].local_addr().unwrap();
    let n1 = net
        .add(
            "node1",
            &format!("[peers]\nexchange = false\nstatic = {}\n", hole(0)),
        )
        .clone();
    let n2 = net
        .add(
            "node2",
            &format!(
                "[peers]\nexchange = false\nstatic = {}\nstem = false\n",
                hole(1)
            ),
        )
        .clone();
    let addr = |n: &Node| net.status(n).unwrap()["addr"].as_str().unwrap().to_string();
    let (a1, a2) = (addr(&n1), addr(&n2));
    let log = spy::serve(&rt, holes, spy::info_of(&a1), None);
    let funding = funding_archive(&w, &[&n1, &n2], 10);
    for n in [&n1, &n2] {
        w.at(n, &["chain", "import", s(&funding)]).ok();
        wait_for(60, "the node to confirm its only peer", || {
            (net.confirmed_peers(n).len() == 1).then_some(())
        });
    }
    let http = reqwest::blocking::Client::new();
    let get = |url: String| {
        let r = http.get(url).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    // node1's opening (`cod deploy` wrote it; nothing else of node1's was in its store)
    // waited for node1's first peer and left along a stem — into the black hole: node1 shows
    // its account once its embargo ended and it spread the opening itself.
    let opening = wait_for(120, "node1 to show its account", || {
        let (code, body) = get(format!("http://{a1}/v1/chains/{}", n1.id));
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        let first = page["records"].as_array()?.first()?.to_string();
        (code == 200).then(|| {
            cod::ledger::Record::from_bytes(first.as_bytes())
                .unwrap()
                .hash()
                .to_string()
        })
    });
    // (node2 holds it too, from the funding both imported, and may push it first.)
    let from_node1 = log.of(&opening).into_iter().find(|a| a.port == 0).unwrap();
    assert_eq!(from_node1.route, "stem", "{:?}", log.of(&opening));
    let before = get(format!("http://{a1}/v1/sync/summary"));
    let pay = |n: &Node| -> String {
        let args = [
            "--json", "transfer", "--to", "network", "--amount", "1", "--yes",
        ];
        let t = w.at(n, &args).ok().json();
        t["record"].as_str().unwrap().to_string()
    };

    let made = std::time::Instant::now();
    let hash = pay(&n1);
    // Its author applied it: the wallet shows it.
    let history = w.at(&n1, &["--json", "history"]).ok().stdout();
    assert!(history.contains(&hash), "{history}");
    wait_for(30, "the black hole to get the transfer", || {
        log.first(&hash)
    });
    let first = log.first(&hash).unwrap();
    assert_eq!(
        (first.port, first.route),
        (0, "stem"),
        "{:?}",
        log.of(&hash)
    );
    // Hidden from peers meanwhile.
    assert_eq!(get(format!("http://{a1}/v1/records/{hash}")).0, 404);
    assert_eq!(get(format!("http://{a1}/v1/sync/summary")), before);
    // A peer that sends the author a copy with other signatures (the hash is the body's)
    // hears what a node that does not hold the record says (node2 here), and ends nothing.
    let export = w.path("n1.archive");
    w.at(&n1, &["chain", "export", "--out", s(&export)]).ok();
    let params = params_of(&n1);
    let record = cod::archive::read(&std::fs::read(&export).unwrap(), &params.cod)
        .unwrap()
        .into_iter()
        .find(|r| r.hash().to_string() == hash)
        .unwrap();
    let bytes = String::from_utf8(record.to_bytes()).unwrap();
    let at = bytes.find("\"sig\":\"").unwrap() + 7;
    let flipped = if &bytes[at..at + 1] == "A" { "B" } else { "A" };
    let forged = format!("{}{flipped}{}", &bytes[..at], &bytes[at + 1..]);
    let submit = |host: &str| -> String {
        http.post(format!("http://{host}/v1/records"))
            .header("content-type", "application/json")
            .body(format!("{{\"records\":[{forged}]}}"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let (at_author, elsewhere) = (submit(&a1), submit(&a2));
    assert_eq!(at_author, elsewhere);
    assert!(at_author.contains("refused"), "{at_author}");
    assert_eq!(get(format!("http://{a1}/v1/records/{hash}")).0, 404);
    // The author's embargo ends: it pushes the transfer to its peers itself, and shows it.
    wait_for(120, "the author to spread the swallowed transfer", || {
        log.of(&hash)
            .iter()
            .any(|a| a.route == "push")
            .then_some(())
    });
    assert!(
        made.elapsed().as_millis() as u64 >= cod::stem::OWN_EMBARGO_MIN_MS,
        "spread before its embargo ended"
    );
    assert_eq!(get(format!("http://{a1}/v1/records/{hash}")).0, 200);
    assert_ne!(get(format!("http://{a1}/v1/sync/summary")), before);

    // With stems off (node2), a transfer goes to every peer at once, as a push.
    let hash = pay(&n2);
    wait_for(30, "node2's transfer at its peer", || log.first(&hash));
    let first = log.first(&hash).unwrap();
    assert_eq!((first.port, first.route), (1, "push"));
    assert_eq!(get(format!("http://{a2}/v1/records/{hash}")).0, 200);
}

/// A record that comes back to its author along its stem is treated as any node treats a
/// stem record it gets twice: passed on once more, then spread — at once, not when an
/// embargo ends. (The author used to drop it — the chain holds it, so it was not checked
/// again, and what is not checked sound was skipped — and it came out only when a relay's
/// embargo or its own ended, seconds later: every record of a small network waited so, and
/// the relay that sent it back saw a black hole where its author was.) Here node1's only
/// peer is a spy that passes every stem back to it: a loop of two.
#[test]
fn an_own_record_that_comes_back_along_its_stem_is_passed_on_then_spread() {
    let w = World::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut net = Net::without_dht(&w);
    let spy_port = spy::ports(1);
    let relay = spy_port[0].local_addr().unwrap();
    let n1 = net
        .add(
            "node1",
            &format!("[peers]\nexchange = false\nstatic = {relay}\n"),
        )
        .clone();
    let a1 = net.status(&n1).unwrap()["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let log = spy::serve(&rt, spy_port, spy::info_of(&a1), Some(vec![a1]));
    let funding = funding_archive(&w, &[&n1], 40);
    w.at(&n1, &["chain", "import", s(&funding)]).ok();
    let confirmed = || {
        wait_for(60, "node1 to confirm the spy", || {
            (net.confirmed_peers(&n1).len() == 1).then_some(())
        })
    };
    confirmed();
    // A node in a fluff epoch (one in five) spreads what comes back to it at once: the
    // record then reaches the spy as a stem and a push, as it would with the bug; a restart
    // draws a new epoch.
    let mut seen = Vec::new();
    for _ in 0..6 {
        let args = [
            "--json", "transfer", "--to", "network", "--amount", "1", "--yes",
        ];
        let hash = w.at(&n1, &args).ok().json()["record"]
            .as_str()
            .unwrap()
            .to_string();
        let routes = wait_for(120, "node1's transfer spread", || {
            let routes: Vec<&str> = log.of(&hash).iter().map(|a| a.route).collect();
            let pushed = routes.iter().position(|r| *r == "push")?;
            Some(routes[..=pushed].to_vec())
        });
        if routes == ["stem", "stem", "push"] {
            return; // sent, came back, passed on, came back again: spread
        }
        assert_eq!(routes, ["stem", "push"], "{:?}", log.of(&hash));
        seen.push(log.of(&hash));
        w.at(&n1, &["node", "stop"]).ok();
        w.at(&n1, &["node", "start"]).ok();
        // (It listens on another port now: the spy must pass stems back there.)
        log.relay_to(vec![
            net.status(&n1).unwrap()["addr"].as_str().unwrap().into(),
        ]);
        confirmed();
    }
    panic!("node1 never passed on an own record that came back along its stem: {seen:#?}");
}

#[test]
fn a_node_behind_a_socks5_proxy_syncs_transfers_and_signs_with_no_direct_route() {
    let w = World::new();
    let mut net = Net::without_dht(&w);
    // Periods of 20 s from now: the funding's distribution is dated at the first one's end,
    // and what the signers sign after it, then.
    net.pkg = w
        .pack("dist-hidden", &com(20, 0, "").0, &template("cod.ini"))
        .0;
    let open = net.add("node1", "[peers]\nexchange = true\n").clone();
    let open_addr = net.status(&open).unwrap()["addr"]
        .as_str()
        .unwrap()
        .to_string();

    // The hidden node's host: a namespace with a link to this one and no route anywhere
    // else; its loopback is its own, so 127.0.0.1 there is not the other node's.
    let ns = Netns::create();
    let proxy = Socks5::start(&format!("{}:0", ns.outside));
    // Named, not numbered: the proxy resolves it (the hidden host looks up no name).
    let open_host = format!("localhost:{}", open_addr.rsplit_once(':').unwrap().1);
    // A second peer that does not run (nothing listens there).
    let dead_host = format!(
        "localhost:{}",
        spy::ports(1)[0].local_addr().unwrap().port()
    );
    let ini = format!(
        "[node]\nlisten = 127.0.0.1:0\nproxy = {}\npublic_addr = none\n[peers]\nstatic = {open_host}, {dead_host}\nexchange = false\n[sync]\ninterval = 2s\n",
        proxy.addr
    );
    let hidden = w.deploy_with(&net.pkg, "node2", Some(&ini));
    let started = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(cod_bin())
        .args(["--node", s(&hidden.dir), "node", "start"])
        .env("HOME", w.dir.path())
        .env("XDG_DATA_HOME", w.path("xdg"))
        .env("NO_COLOR", "1")
        .env_remove("COD_PASSPHRASE")
        .current_dir(w.dir.path())
        .output()
        .unwrap();
    assert!(started.status.success(), "{started:?}");
    struct Stop<'a>(&'a World, &'a Node);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.at(self.1, &["node", "stop"]);
        }
    }
    let _stop = Stop(&w, &hidden);
    assert!(
        ns.reaches(&proxy.addr.to_string()),
        "the hidden node's host reaches the proxy"
    );
    assert!(
        !ns.reaches(&open_addr),
        "the hidden node's host must not reach the other node directly"
    );

    // It syncs: the funding imported on the open node reaches it, pulled through the proxy.
    let funding = funding_archive(&w, &[&open, &hidden], 10);
    w.at(&open, &["chain", "import", s(&funding)]).ok();
    let expected = net.applied(&open).unwrap();
    wait_for(90, "the hidden node to sync through the proxy", || {
        (net.applied(&hidden)? >= expected).then_some(())
    });
    // It transfers: its record reaches the open node through the proxy.
    let before = net.balance(&open, &open.id).unwrap();
    w.at(
        &hidden,
        &["transfer", "--to", &open.id, "--amount", "1.5", "--yes"],
    )
    .ok();
    wait_for(
        60,
        "the hidden node's transfer to reach the open node",
        || (net.balance(&open, &open.id)? == before + 150).then_some(()),
    );
    // It signs: its proposal (admitting a member) reaches the other signer, whose approval
    // makes it final on both.
    let newcomer = w.deploy_with(&net.pkg, "node4", None);
    let proposed = wait_for(
        60,
        "the first period to end (a proposal is dated after it)",
        || {
            let r = w.at(&hidden, &["--json", "members", "admit", &newcomer.id]);
            r.out.status.success().then(|| r.json())
        },
    );
    let id = proposed["id"].as_str().unwrap().to_string();
    wait_for(60, "the proposal to reach the other signer", || {
        let list = w.at(&open, &["--json", "sign", "list"]).ok().json();
        list["requests"]
            .as_array()?
            .iter()
            .any(|r| r["id"] == id.as_str())
            .then_some(())
    });
    w.at(&open, &["sign", "approve", &id[..10]]).ok();
    for n in [&open, &hidden] {
        wait_for(60, "the admission to be final on both", || {
            let m = w.at(n, &["--json", "members"]).ok().json();
            m["members"]
                .as_array()?
                .iter()
                .any(|a| a == newcomer.id.as_str())
                .then_some(())
        });
    }

    // Every connection it made went through the proxy, to the peers it knows (the one that
    // runs, and one that does not); the open node never learned an address for it. Each peer
    // had credentials of its own, so a Tor client would give each its own circuit.
    let targets = proxy.targets.lock().unwrap().clone();
    assert!(
        targets
            .iter()
            .all(|(_, t)| *t == open_host || *t == dead_host),
        "the proxy carried {targets:?}"
    );
    let users_of = |host: &str| -> std::collections::BTreeSet<String> {
        targets
            .iter()
            .filter(|(_, t)| t == host)
            .map(|(u, _)| u.clone())
            .collect()
    };
    let (open_users, dead_users) = (users_of(&open_host), users_of(&dead_host));
    assert_eq!(open_users.len(), 1, "{targets:?}");
    assert_eq!(dead_users.len(), 1, "{targets:?}");
    assert!(!open_users.first().unwrap().is_empty(), "{targets:?}");
    assert_ne!(open_users, dead_users, "one circuit per peer");
    let peers = w.at(&open, &["--json", "peers"]).ok().json();
    assert!(
        peers["peers"].as_array().unwrap().is_empty(),
        "the open node knows no address of the hidden one: {peers}"
    );
    let status = net.status(&hidden).unwrap();
    assert_eq!(status["addr"], "", "it tells no address");
}

/// A network namespace joined to this one by a veth pair (`outside` here, `inside` there),
/// with no route beyond it. Removed on drop, with its link, whatever the test did.
struct Netns {
    name: String,
    link: String,
    outside: String,
    inside: String,
}

impl Netns {
    fn create() -> Self {
        assert!(
            nix::unistd::getuid().is_root(),
            "network namespaces need root (CI runs the tests as root)"
        );
        // Random names and a random /30 of 10.201.0.0/16: runs side by side do not collide.
        let tag: u32 = rand::random::<u32>() % 1_000_000;
        let net = rand::random::<u16>() & 0xfffc;
        let ns = Self {
            name: format!("codtest-{tag}"),
            link: format!("codv{tag}"),
            outside: format!("10.201.{}.{}", net >> 8, (net & 0xff) + 1),
            inside: format!("10.201.{}.{}", net >> 8, (net & 0xff) + 2),
        };
        let peer = format!("{}p", ns.link);
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        };
        ip(&["netns", "add", &ns.name]);
        ip(&[
            "link", "add", &ns.link, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &ns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.outside),
            "dev",
            &ns.link,
        ]);
        ip(&["link", "set", &ns.link, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns.name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{}/30", ns.inside), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        ns
    }

    /// Can a TCP connection from inside reach `addr`?
    fn reaches(&self, addr: &str) -> bool {
        let (host, port) = addr.rsplit_once(':').unwrap();
        Command::new("ip")
            .args(["netns", "exec", &self.name, "timeout", "3", "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/{host}/{port}"))
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // (Removing the namespace removes the link with it; the second is for a namespace
        // that was never made whole.)
        for args in [["netns", "del", &self.name], ["link", "del", &self.link]] {
            let _ = Command::new("ip")
                .args(args)
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// A SOCKS5 proxy (RFC 1928, CONNECT; no authentication, or a username and password, RFC
/// 1929, which it takes whatever they are — as Tor does, isolating circuits by them) that
/// notes every target asked for, with the username given (empty: none).
struct Socks5 {
    addr: SocketAddr,
    targets: Arc<Mutex<Vec<(String, String)>>>,
}

impl Socks5 {
    fn start(bind: &str) -> Self {
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        let targets: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let noted = targets.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let noted = noted.clone();
                std::thread::spawn(move || {
                    if let Some(upstream) = handshake(&client, &noted) {
                        relay(client, upstream);
                    }
                });
            }
        });
        Self { addr, targets }
    }
}

/// The SOCKS5 greeting and CONNECT request: notes the username and the target (`host:port`,
/// whether it can be reached or not) and returns a connection to it.
fn handshake(mut c: &TcpStream, noted: &Mutex<Vec<(String, String)>>) -> Option<TcpStream> {
    let mut head = [0u8; 2];
    c.read_exact(&mut head).ok()?;
    let mut methods = vec![0u8; head[1] as usize];
    c.read_exact(&mut methods).ok()?;
    (head[0] == 5).then_some(())?;
    let mut user = String::new();
    if methods.contains(&2) {
        c.write_all(&[5, 2]).ok()?;
        let field = |mut c: &TcpStream| -> Option<Vec<u8>> {
            let mut len = [0u8; 1];
            c.read_exact(&mut len).ok()?;
            let mut v = vec![0u8; len[0] as usize];
            c.read_exact(&mut v).ok()?;
            Some(v)
        };
        let mut version = [0u8; 1];
        c.read_exact(&mut version).ok()?;
        user = String::from_utf8(field(c)?).ok()?;
        field(c)?; // the password
        c.write_all(&[1, 0]).ok()?;
    } else {
        methods.contains(&0).then_some(())?;
        c.write_all(&[5, 0]).ok()?;
    }
    let mut req = [0u8; 4];
    c.read_exact(&mut req).ok()?;
    (req[0] == 5 && req[1] == 1).then_some(())?;
    let host = match req[3] {
        1 => {
            let mut ip = [0u8; 4];
            c.read_exact(&mut ip).ok()?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            c.read_exact(&mut len).ok()?;
            let mut name = vec![0u8; len[0] as usize];
            c.read_exact(&mut name).ok()?;
            String::from_utf8(name).ok()?
        }
        _ => return None,
    };
    let mut port = [0u8; 2];
    c.read_exact(&mut port).ok()?;
    let target = format!("{host}:{}", u16::from_be_bytes(port));
    noted.lock().unwrap().push((user, target.clone()));
    let upstream = target
        .to_socket_addrs()
        .ok()?
        .find_map(|a| TcpStream::connect(a).ok());
    let reply = if upstream.is_some() { 0 } else { 5 };
    c.write_all(&[5, reply, 0, 1, 0, 0, 0, 0, 0, 0]).ok()?;
    upstream
}

/// Copies both ways until either side closes.
fn relay(client: TcpStream, upstream: TcpStream) {
    let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(Shutdown::Write);
    });
    let (mut c, mut u) = (client, upstream);
    let _ = std::io::copy(&mut u, &mut c);
    let _ = c.shutdown(Shutdown::Write);
    let _ = up.join();
}
