//! Issue 7: the package, com.ini and cod.ini over the BitTorrent peer wire. A standard client
//! (aria2c) finds a running node through a local Mainline DHT and downloads each file by
//! magnet link (BEP 9/10 metadata, then pieces) on the port the node shares with its API.

mod common;
use common::*;

#[test]
fn aria2c_downloads_the_three_files_by_magnet_link() {
    let w = World::new();
    let net = Net::with_dht(&w, 1, "");
    let node = &net.nodes[0];
    wait_for(30, "the node to run", || net.status(node));
    let pack = pack_templates(&w);
    let boot = net.dht.as_ref().unwrap().entry_point();
    let originals = [
        std::fs::read(pack["package"].as_str().unwrap()).unwrap(),
        std::fs::read(format!("{REPO}/ini-templates/com.ini")).unwrap(),
        std::fs::read(format!("{REPO}/ini-templates/cod.ini")).unwrap(),
    ];
    let magnets: Vec<&str> = pack["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["magnet"].as_str().unwrap())
        .collect();
    let out = w.path("aria");
    std::fs::create_dir_all(&out).unwrap();
    // One session for the three (-Z), so the DHT is warmed up once. Only loopback: aria2c's
    // DHT knows nothing but the local bootstrap node.
    let mut last = String::new();
    let ok = (0..3).any(|attempt| {
        let mut args: Vec<String> = [
            "-Z".to_string(),
            format!("--dir={}", s(&out)),
            "--enable-dht=true".into(),
            format!("--dht-entry-point={boot}"),
            format!("--dht-listen-port={}", 27000 + attempt),
            format!(
                "--dht-file-path={}",
                s(&w.path(&format!("dht-{attempt}.dat")))
            ),
            "--bt-enable-lpd=false".into(),
            "--enable-peer-exchange=false".into(),
            "--seed-time=0".into(),
            "--bt-stop-timeout=60".into(),
            "--console-log-level=warn".into(),
            "--summary-interval=0".into(),
        ]
        .into();
        args.extend(magnets.iter().map(|m| m.to_string()));
        let run = std::process::Command::new("aria2c")
            .env("HOME", w.dir.path())
            .args(&args)
            .output()
            .expect("aria2c (run .ci/setup)");
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        run.status.success()
    });
    assert!(ok, "aria2c failed:\n{last}");
    for (i, f) in pack["files"].as_array().unwrap().iter().enumerate() {
        let got = std::fs::read(out.join(f["name"].as_str().unwrap())).unwrap();
        assert!(
            got == originals[i],
            "{} differs from the original",
            f["name"]
        );
    }
}

/// `cod pack --json` of the templates: the same package the test network runs.
fn pack_templates(w: &World) -> serde_json::Value {
    w.cod(&[
        "--json",
        "pack",
        "--com",
        &format!("{REPO}/ini-templates/com.ini"),
        "--cod",
        &format!("{REPO}/ini-templates/cod.ini"),
        "--keys",
        s(&w.path("keys")),
        "--out",
        s(&w.path("dist")),
    ])
    .ok()
    .json()
}

#[test]
fn cod_fetch_gets_the_package_by_infohash_or_magnet_link() {
    let w = World::new();
    let net = Net::with_dht(&w, 1, "");
    let node = &net.nodes[0];
    let addr = wait_for(30, "the node to run", || net.status(node))["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let pack = pack_templates(&w);
    let (cod_id, package) = (
        pack["cod_id"].as_str().unwrap(),
        std::fs::read(pack["package"].as_str().unwrap()).unwrap(),
    );
    let boot = net.dht.as_ref().unwrap().bootstrap.clone();
    // By the cod id alone: the node is found on the (local) DHT once it has announced.
    let out = w.path("fetched");
    let got = wait_for(60, "cod fetch through the DHT", || {
        let r = w.cod(&[
            "--json",
            "fetch",
            cod_id,
            "--bootstrap",
            &boot,
            "--timeout",
            "10s",
            "--out",
            s(&out),
        ]);
        r.out.status.success().then(|| r.json())
    });
    assert_eq!(got["package"]["cod_id"], cod_id);
    assert_eq!(
        std::fs::read(got["path"].as_str().unwrap()).unwrap(),
        package
    );
    // com.ini by its magnet link, from the address the link names (no DHT).
    let com = &pack["files"][1];
    let magnet = format!("{}&x.pe={addr}", com["magnet"].as_str().unwrap());
    let got = w
        .cod(&["--json", "fetch", &magnet, "--no-dht", "--out", s(&out)])
        .ok()
        .json();
    assert_eq!(
        std::fs::read(got["path"].as_str().unwrap()).unwrap(),
        std::fs::read(format!("{REPO}/ini-templates/com.ini")).unwrap()
    );
    assert!(got.get("package").is_none());
    // Bad input: not a magnet link (usage error), a file nobody offers, a file in the way.
    let bad = w.cod(&["fetch", "magnet:?dn=x"]);
    assert_eq!(bad.code(), Some(2), "{}", bad.stderr());
    assert!(
        bad.stderr().contains("names no BitTorrent infohash"),
        "{}",
        bad.stderr()
    );
    w.cod(&[
        "fetch",
        &"ab".repeat(20),
        "--no-dht",
        "--peer",
        &addr,
        "--out",
        s(&out),
    ])
    .fails_with("no peer could provide");
    w.cod(&["fetch", cod_id, "--no-dht", "--out", s(&out)])
        .fails_with("no node offers");
    // A link whose length (xl) is not the file's is wrong, and nothing is written.
    let wrong_length: Vec<String> = magnet
        .split('&')
        .map(|p| {
            if p.starts_with("xl=") {
                "xl=1".into()
            } else {
                p.to_string()
            }
        })
        .collect();
    assert!(wrong_length.iter().any(|p| p == "xl=1"), "{magnet}");
    let elsewhere = w.path("elsewhere");
    w.cod(&[
        "fetch",
        &wrong_length.join("&"),
        "--no-dht",
        "--out",
        s(&elsewhere),
    ])
    .fails_with("the link is wrong");
    assert!(!elsewhere.exists());
    let name = got["name"].as_str().unwrap();
    std::fs::write(out.join(name), "something else").unwrap();
    w.cod(&["fetch", &magnet, "--no-dht", "--out", s(&out)])
        .fails_with("already exists");
}

/// Issue 16: the chain outlives every node. Two nodes seed the chain as torrents and point at
/// them from a BEP 44 item on the (local) DHT; a standard client (aria2c) reads nothing but
/// the DHT — the item gives the index's infohash, the index the segments' — downloads them
/// and seeds them. Then every node stops, and a fresh node with no peer and no mirror
/// restores the whole chain from the DHT and that seeder alone.
#[test]
fn every_node_gone_a_fresh_node_restores_from_the_dht_and_a_bittorrent_seeder() {
    let w = World::new();
    let extra = "[archive]\ntorrent_interval = 2s\n";
    // (Funded before the daemons start: node1 restarts below, see `Net::funded_with_dht`.)
    let mut net = Net::funded_with_dht(&w, 2, 10, extra);
    let (n1, n2) = (net.nodes[0].clone(), net.nodes[1].clone());
    w.at(
        &n1,
        &["transfer", "--to", &n2.id, "--amount", "1.5", "--yes"],
    )
    .ok();
    let expected = net.applied(&n1).unwrap();
    wait_for(60, "node2 to hold every record", || {
        (net.applied(&n2)? == expected).then_some(())
    });
    let boot = net.dht.as_ref().unwrap().entry_point();

    // What anyone reads on the DHT, knowing only the ledger id.
    let ledger = params_of(&n1).cod;
    let seed = cod::torrents::item_seed(&ledger);
    let key = mainline::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let dht = mainline::Dht::builder()
        .bootstrap(std::slice::from_ref(&boot))
        .bind_address(std::net::Ipv4Addr::LOCALHOST)
        .build()
        .unwrap();
    let item = wait_for(120, "the DHT item to name every record", || {
        #[allow(deprecated)]
        let m = dht.get_mutable_most_recent(&key, Some(cod::torrents::SALT))?;
        let item = cod::torrents::Item::decode(m.value(), m.seq())?;
        (item.records == expected).then_some(item)
    });
    // Both nodes wrote the same bytes, so they seed the same swarms.
    for n in [&n1, &n2] {
        wait_for(60, "each node to seed the index the item names", || {
            let v: serde_json::Value = w.at(n, &["--json", "chain", "torrents"]).ok().json();
            (v["index"]["infohash"] == hex::encode(item.index)).then_some(())
        });
    }

    // A restart seeds what it published at once and rewrites none of it (the spans are the
    // same): the segments' files stay as they were written.
    let segment_files = || -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        let v: serde_json::Value = w.at(&n1, &["--json", "chain", "torrents"]).ok().json();
        v["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let path = std::path::PathBuf::from(f["path"].as_str().unwrap());
                let written = std::fs::metadata(&path).unwrap().modified().unwrap();
                (path, written)
            })
            .collect()
    };
    let before = segment_files();
    let hour = cod::torrents::closed_hours(cod::clock::now());
    w.at(&n1, &["node", "stop"]).ok();
    let restarted = cod::clock::now();
    w.at(&n1, &["node", "start"]).ok();
    // Once it has written and put its item again (a whole round), nothing was rewritten.
    wait_for(60, "node1's first round after the restart", || {
        let v: serde_json::Value = w.at(&n1, &["--json", "chain", "torrents"]).ok().json();
        (v["index"]["infohash"] == hex::encode(item.index) && v["put_at"].as_u64()? >= restarted)
            .then_some(())
    });
    if cod::torrents::closed_hours(cod::clock::now()) == hour {
        // (An hour that closed meanwhile cuts other spans: then files are rightly rewritten.)
        assert_eq!(segment_files(), before, "a restart rewrote its segments");
    }

    // aria2c: the index by its infohash, then — in the same session, its DHT warm — every
    // segment the index lists (added over its JSON-RPC), all seeded afterwards.
    let seeded = w.path("aria-seed");
    let mut seeder = aria2c(&w, &boot, &seeded, &[item.index], 3600, SEEDER_PORT);
    let index = wait_for(120, "aria2c to download the index", || {
        let file = std::fs::read_dir(&seeded)
            .ok()?
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "archive-index"))?;
        let data = std::fs::read(&file).ok()?;
        let name = file.file_name()?.to_str()?;
        let info = cod::package::Info::of(name, &data, &mut |_| {});
        (*info.infohash().as_bytes() == item.index).then_some(())?;
        Some(cod::torrents::Index::decode(&data, &ledger).unwrap())
    });
    assert_eq!(index.records(), expected);
    for seg in &index.segments {
        seeder.add(seg.infohash);
    }
    wait_for(120, "aria2c to download every segment", || {
        index
            .segments
            .iter()
            .all(|seg| {
                std::fs::read(seeded.join(&seg.name)).is_ok_and(|data| {
                    let info = cod::package::Info::of(&seg.name, &data, &mut |_| {});
                    *info.infohash().as_bytes() == seg.infohash
                })
            })
            .then_some(())
    });
    let records: usize = index
        .segments
        .iter()
        .map(|seg| cod::archive::count(&std::fs::read(seeded.join(&seg.name)).unwrap()))
        .sum();
    assert_eq!(records as u64, expected, "the segments hold every record");

    // Every node stops; a fresh one (no peer, no mirror) restores from the DHT and aria2c.
    let balance = net.balance(&n1, &n2.id).unwrap();
    for n in [&n1, &n2] {
        w.at(n, &["node", "stop"]).ok();
    }
    // What the restore stands on: the DHT, without the nodes' own DHT nodes, names the seeder
    // (aria2c announced itself once, as it began; a failure here is the test bed's, not the
    // restore's).
    wait_for(
        60,
        "the DHT, the nodes gone, to name aria2c as a seeder",
        || {
            #[allow(deprecated)]
            dht.get_peers(mainline::Id::from(item.index))
                .flatten()
                .any(|a| a.port() == SEEDER_PORT + 1)
                .then_some(())
        },
    );
    let fresh = net.add("node3", extra).clone();
    wait_for(180, "the fresh node to restore the chain", || {
        (net.applied(&fresh)? > expected).then_some(())
    });
    assert!(net.confirmed_peers(&fresh).is_empty(), "it had no peer");
    assert_eq!(net.balance(&fresh, &n2.id), Some(balance));
    assert!(w.chain_ok(&fresh));
    let v: serde_json::Value = w.at(&fresh, &["--json", "chain", "torrents"]).ok().json();
    assert!(v["restored"].as_u64().unwrap() >= 1, "{v}");
    seeder.kill();
}

/// The DHT port of the aria2c that seeds the archive torrents (it takes peers on the next).
const SEEDER_PORT: u16 = 27200;

/// aria2c fetching `infohashes` by magnet link through the local DHT only, into `dir`, then
/// seeding them for `seed_secs`; [`Aria2c::add`] adds more (its JSON-RPC is on `port` + 2).
fn aria2c(
    w: &World,
    boot: &str,
    dir: &std::path::Path,
    infohashes: &[[u8; 20]],
    seed_secs: u64,
    port: u16,
) -> Aria2c {
    std::fs::create_dir_all(dir).unwrap();
    let mut cmd = std::process::Command::new("aria2c");
    cmd.env("HOME", w.dir.path())
        .args([
            "-Z".to_string(),
            format!("--dir={}", s(dir)),
            "--enable-dht=true".into(),
            format!("--dht-entry-point={boot}"),
            format!("--dht-listen-port={port}"),
            format!("--listen-port={}", port + 1),
            "--enable-rpc=true".into(),
            format!("--rpc-listen-port={}", port + 2),
            format!("--dht-file-path={}", s(&dir.join("dht.dat"))),
            "--bt-enable-lpd=false".into(),
            "--enable-peer-exchange=false".into(),
            format!("--seed-time={}", seed_secs / 60),
            "--seed-ratio=0.0".into(),
            "--bt-stop-timeout=120".into(),
            "--console-log-level=warn".into(),
            "--summary-interval=0".into(),
        ])
        .args(
            infohashes
                .iter()
                .map(|ih| format!("magnet:?xt=urn:btih:{}", hex::encode(ih))),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Aria2c(cmd.spawn().expect("aria2c (run .ci/setup)"), port + 2)
}

/// A running aria2c, and its JSON-RPC port.
struct Aria2c(std::process::Child, u16);

impl Aria2c {
    /// Adds the download of `infohash` (by magnet link) to the session, over JSON-RPC.
    fn add(&self, infohash: [u8; 20]) {
        let magnet = format!("magnet:?xt=urn:btih:{}", hex::encode(infohash));
        let call = serde_json::json!({
            "jsonrpc": "2.0", "id": "add", "method": "aria2.addUri", "params": [[magnet]],
        });
        let url = format!("http://127.0.0.1:{}/jsonrpc", self.1);
        let answer: serde_json::Value = wait_for(30, "aria2c's JSON-RPC to answer", || {
            reqwest::blocking::Client::new()
                .post(&url)
                .json(&call)
                .send()
                .ok()?
                .json()
                .ok()
        });
        assert!(
            answer["result"].is_string(),
            "aria2c refused {magnet}: {answer}"
        );
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Aria2c {
    fn drop(&mut self) {
        self.kill();
    }
}
