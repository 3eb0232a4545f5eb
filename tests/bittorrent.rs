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
    let boot = net
        .dht
        .as_ref()
        .unwrap()
        .bootstrap
        .split(',')
        .next()
        .unwrap()
        .to_string();
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
