//! Issue 7: a v1 node meets a v2 node of the same deployer, reports the upgrade, downloads v2
//! from its peer over BitTorrent, deploys it beside v1, and imports v1's key and chain. A
//! package signed by another deployer key is refused; a damaged old chain imports nothing.

mod common;
use common::*;

#[test]
fn a_v1_node_upgrades_to_v2_found_on_a_peer_and_keeps_its_balance() {
    let w = World::new();
    let mut net = Net::with_dht(&w, 1, "");
    let v1 = net.nodes[0].clone();
    let v1_cod = cod::nodedir::NodeDir::open(&v1.dir)
        .unwrap()
        .deployment
        .cod_id
        .to_string();
    let funding = funding_archive(&w, &[&v1], 10);
    w.at(&v1, &["chain", "import", s(&funding)]).ok();
    w.at(
        &v1,
        &["transfer", "--to", "network", "--amount", "1.50", "--yes"],
    )
    .ok();
    let v1_balance = net.balance(&v1, &v1.id).unwrap();
    assert_eq!(v1_balance, 3500 - 150);

    // v2: a newer cod.ini by the same deployer, continuing v1's ledger.
    let cod2 = template("cod.ini").replace(
        "version = 1.0.0",
        &format!("version = 1.1.0\nledger = {v1_cod}"),
    );
    let (pkg2, v2_cod) = w.pack("dist2", &template("com.ini"), &cod2);
    net.pkg = pkg2;
    let v2 = net.add("node2", "").clone();
    wait_for(30, "the v2 node to run", || net.status(&v2));

    // v1 learns of v2 through the deployer's DHT key, and says so.
    wait_for(120, "v1 to see v2", || {
        let offers = w.at(&v1, &["--json", "upgrade", "check"]).ok().json();
        offers["offers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["cod_id"] == v2_cod.as_str())
            .then_some(())
    });
    let status = net.status(&v1).unwrap();
    assert_eq!(
        status["newer_version_seen"]["cod_version"], "1.1.0",
        "{status}"
    );
    assert!(w.at(&v1, &["status"]).ok().stdout().contains("UPGRADE"));

    // Downloaded over BitTorrent from the v2 node, checked, deployed beside v1.
    w.at(&v1, &["upgrade", "download"]).fails_with("add --yes");
    let d = w
        .at(&v1, &["--json", "upgrade", "download", "--yes"])
        .ok()
        .json();
    assert_eq!(d["cod_id"], v2_cod.as_str());
    let dep = w.at(&v1, &["--json", "upgrade", "deploy"]).ok().json();
    let new = Node {
        dir: std::path::PathBuf::from(dep["dir"].as_str().unwrap()),
        id: dep["node_id"].as_str().unwrap().to_string(),
        key: "node1".into(),
    };
    assert_eq!(
        new.id, v1.id,
        "the same key in a continued ledger: the same account"
    );
    let list = w.at(&v1, &["--json", "deployments"]).ok().json();
    let states: Vec<(String, String)> = list["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["cod_id"].as_str().unwrap().to_string(),
                d["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        states.contains(&(v1_cod.clone(), "running".into()))
            && states.contains(&(v2_cod.clone(), "stopped".into())),
        "{states:?}"
    );

    // Import: the old chain (read through v1's running daemon) comes over whole — once v2's
    // node's opening, which left along a stem, has reached v1 (nothing is still coming).
    wait_for(60, "v1 to know the v2 node's account", || {
        net.knows(&v1, &v2.id).then_some(())
    });
    let imp = w
        .at(&new, &["--json", "import", "--from", s(&v1.dir)])
        .ok()
        .json();
    assert_eq!(imp["same_ledger"], true, "{imp}");
    assert_eq!(net.balance(&new, &v1.id), Some(v1_balance));
    assert!(w.chain_ok(&new));
    let again = w
        .at(&new, &["--json", "import", "--from", s(&v1.dir)])
        .ok()
        .json();
    assert_eq!(
        again["imported"]["added"], 0,
        "importing twice is harmless: {again}"
    );
    assert_eq!(net.balance(&new, &v1.id), Some(v1_balance));

    // Disable, enable, remove.
    w.at(&v1, &["deployments", "disable", &v2_cod[..10]]).ok();
    w.at(&new, &["node", "start"]).fails_with("disabled");
    w.at(&v1, &["deployments", "enable", &v2_cod[..10]]).ok();
    w.at(&v1, &["deployments", "remove", &v1_cod[..10], "--yes"])
        .fails_with("running");

    // A package by another deployer key is refused.
    let other = w.path("other-keys");
    std::fs::create_dir_all(&other).unwrap();
    w.cod(&[
        "keygen",
        "--role",
        "cod",
        "--out",
        s(&other),
        "--no-passphrase",
        "--bits",
        "2048",
    ])
    .ok();
    std::fs::copy(
        format!("{REPO}/keys-example/com.pub.key"),
        other.join("com.pub.key"),
    )
    .unwrap();
    let com = w.write("other/com.ini", &template("com.ini"));
    let codini = w.write(
        "other/cod.ini",
        &cod2.replace("version = 1.1.0", "version = 1.2.0"),
    );
    let foreign = w
        .cod(&[
            "--json",
            "pack",
            "--com",
            s(&com),
            "--cod",
            s(&codini),
            "--keys",
            s(&other),
            "--out",
            s(&w.path("dist3")),
        ])
        .ok()
        .json();
    w.at(
        &v1,
        &[
            "upgrade",
            "deploy",
            "--package",
            foreign["package"].as_str().unwrap(),
        ],
    )
    .fails_with("signed by another deployer key");
}

#[test]
fn importing_from_a_damaged_chain_changes_nothing() {
    let w = World::new();
    let (pkg, _) = w.pack_demo();
    let old = w.deploy(&pkg, "node1");
    let new = w.deploy(&pkg, "node2");
    // Damage the old store: a record whose signature was tampered with.
    {
        let dir = cod::nodedir::NodeDir::open(&old.dir).unwrap();
        let store = dir.open_store().unwrap();
        let params = dir.params().unwrap();
        let l = cod::ledger::Ledger::new(params);
        let open = l.make_open(&example_secret("node3"));
        let mut v = open.to_json();
        v["sigs"][0]["sig"] = open.to_json()["sigs"][0]["sig"]
            .as_str()
            .unwrap()
            .replace('A', "B")
            .into();
        let bad = cod::ledger::Record::from_json(v).unwrap();
        use cod::store::KvStore;
        store
            .write(vec![cod::store::Op::Put(
                cod::store::Cf::Records,
                bad.hash().as_bytes().to_vec(),
                bad.to_bytes(),
            )])
            .unwrap();
    }
    let before = w.at(&new, &["--json", "chain", "verify"]).ok().json();
    w.at(&new, &["import", "--from", s(&old.dir)])
        .fails_with("does not verify; nothing was imported");
    assert_eq!(
        w.at(&new, &["--json", "chain", "verify"]).ok().json(),
        before
    );
    assert_eq!(
        cod::nodedir::NodeDir::open(&new.dir)
            .unwrap()
            .deployment
            .node_id
            .to_string(),
        new.id,
        "the key stayed"
    );
}

/// Issue 12 §1: every node of every version that keeps one ledger keeps one chain. v1 and v2
/// nodes run at once; what is made on either reaches the other, and a credit spent on both
/// sides (the same key, on a v1 and a v2 node that could not see each other) is spent once
/// everywhere, the other spend refused with the reason. (Before: v1 and v2 refused each
/// other as peers, the same account showed two balances, and the credit was spent twice.)
#[test]
fn nodes_of_two_versions_of_one_ledger_keep_one_chain() {
    let w = World::new();
    // (Funded before the daemons start: node1's restart below, see `Net::funded_with_dht`.)
    let mut net = Net::funded_with_dht(&w, 2, 20, "");
    net.wait_meshed(120);
    let (a1, b1) = (net.nodes[0].clone(), net.nodes[1].clone());
    let v1_cod = params_of(&a1).cod.to_string();

    // v2 continues v1's ledger with the same model: node3 joins on v2, and node1's member
    // runs a v2 node beside its v1 one, with the same key.
    let cod2 = template("cod.ini").replace(
        "version = 1.0.0",
        &format!("version = 1.1.0\nledger = {v1_cod}"),
    );
    let (pkg2, _) = w.pack("dist2", &template("com.ini"), &cod2);
    net.pkg = pkg2;
    let c2 = net.add("node3", "").clone();
    let a2 = net.add("node1", "").clone();
    assert_eq!(a2.id, a1.id, "one key, one account, in both versions");
    // Every node finds every other (v2 ones under the deployer's key), across versions: 20
    // loaves are 70.00, shared by the two members the funding's checkpoint holds.
    let everyone = [&a1, &b1, &c2, &a2];
    for n in everyone {
        wait_for(180, &format!("{} to hold the funding", n.key), || {
            (net.balance(n, &b1.id) == Some(3500)).then_some(())
        });
    }
    let peers = w.at(&c2, &["--json", "peers"]).ok().json();
    let versions: std::collections::BTreeSet<String> = peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["confirmed"] == true)
        .map(|p| p["cod_version"].as_str().unwrap().to_string())
        .collect();
    assert!(
        versions.contains("1.0.0"),
        "a v2 node peers with v1 nodes: {peers}"
    );

    // v2 inherits the signer set the ledger holds (v2 once came up with none).
    let set = |n: &Node| w.at(n, &["--json", "signers"]).ok().json();
    assert_eq!(set(&c2)["keys"], set(&a1)["keys"]);
    assert_eq!(set(&c2)["quorum"], 2);

    // Made on v1, seen on v2; made on v2, seen on v1. (node3's opening left along a stem
    // once it had a peer: node2 pays it once it knows the account.)
    wait_for(60, "node2 (v1) to know node3's account", || {
        net.knows(&b1, &c2.id).then_some(())
    });
    w.at(&b1, &["transfer", "--to", &c2.id, "--amount", "1", "--yes"])
        .ok();
    wait_for(60, "the v2 node to receive what a v1 node paid it", || {
        (net.balance(&c2, &c2.id) == Some(100)).then_some(())
    });
    w.at(
        &c2,
        &["transfer", "--to", &b1.id, "--amount", "0.25", "--yes"],
    )
    .ok();
    for n in everyone {
        wait_for(60, &format!("{} to see both transfers", n.key), || {
            (net.balance(n, &c2.id) == Some(75) && net.balance(n, &b1.id) == Some(3425))
                .then_some(())
        });
    }

    // The same credit spent on both sides: node1's member pays b1 from the v1 node and c2
    // from the v2 node while the two cannot see each other (both daemons stopped: each
    // command writes its own store).
    let before = net.balance(&a1, &a1.id).unwrap();
    w.at(&a1, &["node", "stop"]).ok();
    w.at(&a2, &["node", "stop"]).ok();
    w.at(&a1, &["transfer", "--to", &b1.id, "--amount", "5", "--yes"])
        .ok();
    w.at(&a2, &["transfer", "--to", &c2.id, "--amount", "5", "--yes"])
        .ok();
    w.at(&a1, &["node", "start"]).ok();
    w.at(&a2, &["node", "start"]).ok();
    // Once they sync, one spend holds on every node, in both versions; the other pays no one.
    let settled = |n: &Node| -> Option<(u64, u64, u64)> {
        Some((
            net.balance(n, &a1.id)?,
            net.balance(n, &b1.id)?,
            net.balance(n, &c2.id)?,
        ))
    };
    let first = wait_for(120, "every node to settle the double spend alike", || {
        let all: Vec<_> = everyone.iter().map(|n| settled(n)).collect();
        let first = all[0]?;
        (first.0 == before - 500 && all.iter().all(|x| *x == Some(first))).then_some(first)
    });
    let paid_b = first.1 == 3425 + 500;
    let paid_c = first.2 == 75 + 500;
    assert!(
        paid_b != paid_c,
        "exactly one of the two spends holds: {first:?}"
    );
    // The side whose spend lost says so, with the reason.
    let loser = if paid_b { &a2 } else { &a1 };
    wait_for(60, "the losing side to say why", || {
        let log = std::fs::read_to_string(loser.dir.join("node.log")).ok()?;
        log.contains("double spend: this node's account signed two records")
            .then_some(())
    });
    // Every node comes to hold the proof (the node that sees the fork first pushes it: sync
    // alone serves only the winner, so a node could miss it), and every chain verifies.
    for n in everyone {
        let v = wait_for(60, &format!("{} to hold the proof", n.key), || {
            let v = w.at(n, &["--json", "chain", "verify"]).ok().json();
            (v["forks"].as_array()?.len() == 1).then_some(v)
        });
        assert!(
            v["problems"].as_array().unwrap().is_empty(),
            "{}: {v}",
            n.key
        );
    }
}

/// Guards against an incompatible upgrade forking the ledger silently: the signers hand it
/// over at a quorum-signed checkpoint, and every node of the old version then refuses later
/// transfers, naming the new version, and says so in its status.
#[test]
fn an_incompatible_upgrade_hands_over_and_old_nodes_refuse_later_transfers() {
    let w = World::new();
    let net = Net::with_dht(&w, 3, "");
    net.wait_meshed(120);
    let [n1, n2, n3] = [&net.nodes[0], &net.nodes[1], &net.nodes[2]];
    let v1_cod = params_of(n1).cod.to_string();

    // Version 2 changes the model (bread is worth more): it cannot sync with version 1.
    let com2 = template("com.ini").replace("value = 350", "value = 400");
    assert_ne!(com2, template("com.ini"));
    let cod2 = template("cod.ini").replace(
        "version = 1.0.0",
        &format!("version = 2.0.0\nledger = {v1_cod}"),
    );
    let (_, v2_cod) = w.pack("dist2", &com2, &cod2);

    w.at(n1, &["upgrade", "handover", &v2_cod])
        .usage_with("give --version");
    let j = w
        .at(
            n1,
            &[
                "--json",
                "upgrade",
                "handover",
                &v2_cod,
                "--version",
                "2.0.0",
            ],
        )
        .ok()
        .json();
    let id = j["id"].as_str().unwrap().to_string();
    assert!(j["summary"].as_str().unwrap().contains("HANDOVER"), "{j}");
    wait_for(60, "node2 to hold the handover request", || {
        w.at(n2, &["--json", "sign", "show", &id])
            .out
            .status
            .success()
            .then_some(())
    });
    w.at(n2, &["sign", "approve", &id]).ok();
    for n in [n1, n2, n3] {
        wait_for(
            60,
            "every node of version 1 to stop at the checkpoint",
            || {
                let s = net.status(n)?;
                (s["handover"]["frozen"] == true && s["handover"]["to"] == v2_cod.as_str())
                    .then_some(())
            },
        );
    }

    let refused = w.at(n3, &["transfer", "--to", &n1.id, "--amount", "1", "--yes"]);
    assert_eq!(refused.code(), Some(4), "refused by the rules");
    let err = refused.stderr();
    assert!(
        err.contains("handed over") && err.contains("2.0.0") && err.contains(&v2_cod),
        "names the new version: {err}"
    );
    let human = w.at(n3, &["status"]).ok().stdout();
    assert!(human.contains("HANDED OVER to cod 2.0.0"), "{human}");
    // Nor do the signers go on: no issuance after the handover.
    w.at(n1, &["issue", "--backing", "bread=10"])
        .refused_with("handed over");
}
