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
    let pack = w
        .cod(&[
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
        .json();
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
