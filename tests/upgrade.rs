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

    // Import: the old chain (read through v1's running daemon) comes over whole.
    let imp = w
        .at(&new, &["--json", "import", "--from", s(&v1.dir)])
        .ok()
        .json();
    assert_eq!(imp["same_ledger"], true, "{imp}");
    assert_eq!(net.balance(&new, &v1.id), Some(v1_balance));
    assert!(
        w.at(&new, &["chain", "verify"])
            .ok()
            .stdout()
            .contains("chain OK")
    );
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
