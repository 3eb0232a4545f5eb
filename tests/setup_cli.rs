//! Issue 2 through the real executable: keygen, key show, pack, deploy — happy paths and
//! every bad input, each refused with a clear message and nothing half-written.

mod common;
use common::*;
use sha2::{Digest, Sha256};
use std::path::Path;

fn openssl_der(pub_pem: &Path) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(["pkey", "-pubin", "-in", s(pub_pem), "-outform", "DER"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn keygen_writes_keys_openssl_reads() {
    let w = World::new();
    let run = w
        .cod(&[
            "--json",
            "keygen",
            "--role",
            "node",
            "--out",
            "k",
            "--no-passphrase",
            "--bits",
            "2048",
        ])
        .ok();
    let j = run.json();
    let (public, secret) = (w.path("k/node.pub.key"), w.path("k/node.sec.key"));
    assert_eq!(mode(&secret), 0o600);
    assert_eq!(j["encrypted"], false);
    tool("openssl", &["pkey", "-in", s(&secret), "-noout"]);
    let der = openssl_der(&public);
    assert_eq!(
        j["fingerprint"].as_str().unwrap(),
        hex::encode(Sha256::digest(&der))
    );
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );

    // Never overwrites.
    w.cod(&["keygen", "--role", "node", "--out", "k", "--no-passphrase"])
        .fails_with("already exists");

    // A passphrase file others can read is refused, like a key file.
    let pass = w.write("pass", "s3cret passphrase\n");
    let keygen_cod = |extra: &[&str]| {
        let mut args = vec![
            "keygen",
            "--role",
            "cod",
            "--out",
            "k",
            "--bits",
            "2048",
            "--passphrase-file",
            s(&pass),
        ];
        args.extend_from_slice(extra);
        w.cod(&args)
    };
    std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    keygen_cod(&[]).fails_with("readable by group or others (mode 644)");
    assert!(!w.path("k/cod.sec.key").exists());
    std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    // Encrypted with a passphrase file: scrypt PKCS#8, N = 2^17 by default. OpenSSL 3 refuses
    // that cost (its scrypt memory limit), so --openssl-compatible writes N = 2^14 instead,
    // which `openssl pkey` opens with the same passphrase.
    keygen_cod(&[]).ok();
    let text = tool(
        "openssl",
        &["asn1parse", "-in", s(&w.path("k/cod.sec.key"))],
    );
    assert!(
        text.contains(":scrypt") && text.contains("INTEGER           :020000"),
        "scrypt with N = 2^17:\n{text}"
    );
    w.cod_env(
        &["key", "show", s(&w.path("k/cod.sec.key"))],
        &[("COD_PASSPHRASE", "s3cret passphrase")],
    )
    .ok();
    std::fs::remove_file(w.path("k/cod.sec.key")).unwrap();
    std::fs::remove_file(w.path("k/cod.pub.key")).unwrap();
    keygen_cod(&["--openssl-compatible"]).ok();
    let pem = std::fs::read_to_string(w.path("k/cod.sec.key")).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    tool(
        "openssl",
        &[
            "pkey",
            "-in",
            s(&w.path("k/cod.sec.key")),
            "-passin",
            &format!("file:{}", s(&pass)),
            "-noout",
        ],
    );
    let text = tool(
        "openssl",
        &["asn1parse", "-in", s(&w.path("k/cod.sec.key"))],
    );
    assert!(
        text.contains(":scrypt") && text.contains(":PBES2"),
        "encrypted with PBES2 + scrypt:\n{text}"
    );

    // The same through COD_PASSPHRASE.
    w.cod_env(
        &[
            "keygen",
            "--role",
            "com",
            "--out",
            "k",
            "--bits",
            "2048",
            "--openssl-compatible",
        ],
        &[("COD_PASSPHRASE", "from env")],
    )
    .ok();
    tool(
        "openssl",
        &[
            "pkey",
            "-in",
            s(&w.path("k/com.sec.key")),
            "-passin",
            "pass:from env",
            "-noout",
        ],
    );
}

#[test]
fn keygen_never_prompts_without_a_terminal_and_refuses_small_keys() {
    let w = World::new();
    w.cod(&["keygen", "--role", "node", "--out", "k"])
        .fails_with("--passphrase-file");
    w.cod(&[
        "keygen",
        "--role",
        "node",
        "--out",
        "k",
        "--no-passphrase",
        "--bits",
        "1024",
    ])
    .fails_with("1024-bit");
    assert!(entries(&w.path("k")).is_empty(), "nothing written");
}

#[test]
fn key_show_prints_fingerprint_and_node_id() {
    let w = World::new();
    let public = w.example_key("node1.pub.key");
    let cod_id = "0123456789abcdef0123456789abcdef01234567";
    let j = w
        .cod(&["--json", "key", "show", s(&public), "--cod-id", cod_id])
        .ok()
        .json();
    let der = openssl_der(&public);
    assert_eq!(
        j["fingerprint"].as_str().unwrap(),
        hex::encode(Sha256::digest(&der))
    );
    let mut h = Sha256::new();
    h.update(&der);
    h.update(hex::decode(cod_id).unwrap());
    assert_eq!(
        j["node_id"].as_str().unwrap(),
        hex::encode(h.finalize()),
        "node id = SHA-256(DER ‖ cod id)"
    );
    assert_eq!(j["bits"], 3072);
    let human = w.cod(&["key", "show", s(&public)]).ok().stdout();
    assert!(human.contains("fingerprint"), "{human}");
    let bad = w.cod(&["key", "show", s(&public), "--cod-id", "xyz"]);
    assert_eq!(bad.code(), Some(2), "a malformed cod id is a usage error");
    assert!(
        bad.stderr().contains("40 hexadecimal digits"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn keys_from_openssl_import_and_bad_keys_are_refused() {
    let w = World::new();
    let made = w.path("openssl.sec.key");
    tool(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            s(&made),
        ],
    );
    std::fs::set_permissions(&made, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    w.cod(&["key", "show", s(&made)]).ok();

    // An openssl-encrypted key (PBES2 with scrypt, as `openssl pkcs8 -scrypt` makes) imports too.
    let enc = w.path("enc.sec.key");
    tool(
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-scrypt",
            "-in",
            s(&made),
            "-out",
            s(&enc),
            "-passout",
            "pass:pw",
        ],
    );
    std::fs::set_permissions(&enc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    w.cod_env(&["key", "show", s(&enc)], &[("COD_PASSPHRASE", "pw")])
        .ok();
    w.cod_env(&["key", "show", s(&enc)], &[("COD_PASSPHRASE", "wrong")])
        .fails_with("wrong passphrase");
    w.cod(&["key", "show", s(&enc)])
        .fails_with("no passphrase was given");

    std::fs::set_permissions(&made, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    w.cod(&["key", "show", s(&made)])
        .fails_with("readable by group or others (mode 644)");

    let small = w.path("small.sec.key");
    tool(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            s(&small),
        ],
    );
    std::fs::set_permissions(&small, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    w.cod(&["key", "show", s(&small)])
        .fails_with("the key is 1024 bits; at least 2048 are required");

    w.cod(&["key", "show", s(&w.write("junk.pub.key", "hello"))])
        .fails_with("not a PEM key file");
}

#[test]
fn pack_is_deterministic_and_its_cod_id_is_the_torrent_infohash() {
    let w = World::new();
    let (pkg, cod_id) = w.pack_demo();
    let first = std::fs::read(&pkg).unwrap();
    let (pkg2, cod_id2) = w.pack("dist2", &template("com.ini"), &template("cod.ini"));
    assert_eq!(
        std::fs::read(&pkg2).unwrap(),
        first,
        "byte-identical for identical inputs"
    );
    assert_eq!(cod_id, cod_id2);

    let torrent = pkg.with_file_name(format!(
        "{}.torrent",
        pkg.file_name().unwrap().to_str().unwrap()
    ));
    let aria = tool("aria2c", &["-S", s(&torrent)]);
    assert!(
        aria.to_lowercase()
            .contains(&format!("info hash: {cod_id}")),
        "aria2c -S says:\n{aria}"
    );
    let tr = tool("transmission-show", &[s(&torrent)]);
    assert!(
        tr.to_lowercase().contains(&format!("hash: {cod_id}")),
        "transmission-show says:\n{tr}"
    );
    for f in ["com.ini.torrent", "cod.ini.torrent"] {
        let info = tool("aria2c", &["-S", s(&pkg.with_file_name(f))]);
        assert!(info.contains("Info Hash"), "{info}");
    }

    // The manifest checks with standard tools, as GUIDE.md tells members.
    let unpacked = w.path("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    tool("tar", &["-xf", s(&pkg), "-C", s(&unpacked)]);
    let ok = std::process::Command::new("sha256sum")
        .args(["-c", "--quiet", "MANIFEST"])
        .current_dir(&unpacked)
        .status()
        .unwrap();
    assert!(ok.success());
    let v = tool(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            s(&unpacked.join("keys/cod.pub.key")),
            "-signature",
            s(&unpacked.join("MANIFEST.sig")),
            s(&unpacked.join("MANIFEST")),
        ],
    );
    assert!(v.contains("Verified OK"), "{v}");
    assert_eq!(mode(&unpacked.join("bin/cod")), 0o755);
    let human = w
        .cod(&[
            "pack",
            "--com",
            s(&w.path("dist-src/com.ini")),
            "--cod",
            s(&w.path("dist-src/cod.ini")),
            "--keys",
            "keys",
            "--out",
            "dist",
        ])
        .ok()
        .stdout();
    assert!(
        human.contains(&format!("cod id   {cod_id}")) && human.contains("magnet:?xt=urn:btih:"),
        "{human}"
    );
}

#[test]
fn pack_refuses_bad_ini_naming_file_line_and_key() {
    let w = World::new();
    w.key_store();
    let com = w.write(
        "src/com.ini",
        &template("com.ini").replace("quorum = 2", "quorum = two"),
    );
    let cod = w.write("src/cod.ini", &template("cod.ini"));
    let err = w
        .cod(&[
            "pack",
            "--com",
            s(&com),
            "--cod",
            s(&cod),
            "--keys",
            "keys",
            "--out",
            "out",
        ])
        .fails_with("key \"quorum\"");
    let line = template("com.ini")
        .lines()
        .position(|l| l.starts_with("quorum"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("{}:{line}:", s(&com))), "{err}");
    assert!(entries(&w.path("out")).is_empty(), "no package written");

    let cod = w.write(
        "src/cod.ini",
        &template("cod.ini").replace("\n[deployer]\n", "\n[deployer]\nfavourite = tea\n"),
    );
    let com = w.write("src/com.ini", &template("com.ini"));
    w.cod(&[
        "pack",
        "--com",
        s(&com),
        "--cod",
        s(&cod),
        "--keys",
        "keys",
        "--out",
        "out",
    ])
    .fails_with("unknown key in [deployer]");
}

#[test]
fn deploy_creates_a_node_and_refuses_a_second_time() {
    let w = World::new();
    let (pkg, cod_id) = w.pack_demo();
    let key = w.example_key("node1.sec.key");
    let j = w
        .cod(&[
            "--json",
            "deploy",
            "--package",
            s(&pkg),
            "--key",
            s(&key),
            "--expect-cod-id",
            &cod_id,
        ])
        .ok()
        .json();
    let dir = w.path("xdg/cod").join(&cod_id);
    assert_eq!(
        j["dir"].as_str().unwrap(),
        s(&dir),
        "XDG data dir, one directory per cod id"
    );
    assert_eq!(j["cod_id"], cod_id.as_str());
    let pub_der = openssl_der(&w.example_key("node1.pub.key"));
    let mut h = Sha256::new();
    h.update(&pub_der);
    h.update(hex::decode(&cod_id).unwrap());
    assert_eq!(j["node_id"].as_str().unwrap(), hex::encode(h.finalize()));
    assert!(j["next"].as_str().unwrap().contains("node start"));
    assert_eq!(
        entries(&dir),
        [
            "demo-bakery-1.0.0.cod.tar",
            "deployment.json",
            "node.ini",
            "node.pub.key",
            "node.sec.key",
            "package",
            "store"
        ]
    );
    assert_eq!(mode(&dir.join("node.sec.key")), 0o600);
    assert!(
        dir.join("store/CURRENT").exists(),
        "RocksDB store initialized"
    );
    assert!(dir.join("package/bin/cod").exists());

    w.cod(&["deploy", "--package", s(&pkg), "--key", s(&key)])
        .fails_with("already deployed");

    // A new key, encrypted, into another base; a different cod id gets its own directory.
    let (pkg2, cod_id2) = w.pack(
        "dist2",
        &template("com.ini"),
        &template("cod.ini").replace("version = 1.0.0", "version = 1.1.0"),
    );
    assert_ne!(cod_id, cod_id2);
    let out = w
        .cod_env(
            &["deploy", "--package", s(&pkg2)],
            &[("COD_PASSPHRASE", "pw")],
        )
        .ok()
        .stdout();
    assert!(out.contains("key      created"), "{out}");
    assert_eq!(entries(&w.path("xdg/cod")), {
        let mut v = vec![cod_id.clone(), cod_id2.clone()];
        v.sort();
        v
    });
    let sec =
        std::fs::read_to_string(w.path("xdg/cod").join(&cod_id2).join("node.sec.key")).unwrap();
    assert!(sec.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
}

/// Rewrites a package tar with `edit` applied to its files (same canonical headers as cod).
fn retar(
    pkg: &Path,
    to: &Path,
    edit: impl FnOnce(&mut std::collections::BTreeMap<String, Vec<u8>>),
) {
    use std::io::Read;
    let bytes = std::fs::read(pkg).unwrap();
    let mut files = std::collections::BTreeMap::new();
    for e in tar::Archive::new(bytes.as_slice()).entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(String::from_utf8(e.path_bytes().to_vec()).unwrap(), data);
    }
    edit(&mut files);
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in &files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(if path == "bin/cod" || path.ends_with(".sh") {
            0o755
        } else {
            0o644
        });
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append(&h, data.as_slice()).unwrap();
    }
    std::fs::write(to, b.into_inner().unwrap()).unwrap();
}

fn manifest(files: &std::collections::BTreeMap<String, Vec<u8>>) -> String {
    files
        .iter()
        .filter(|(p, _)| *p != "MANIFEST" && *p != "MANIFEST.sig")
        .map(|(p, d)| format!("{}  {p}\n", hex::encode(Sha256::digest(d))))
        .collect()
}

#[test]
fn deploy_refuses_tampered_packages_and_leaves_nothing_behind() {
    let w = World::new();
    let (pkg, cod_id) = w.pack_demo();
    let key = w.example_key("node1.sec.key");
    let bad = w.path("bad.cod.tar");
    let deploy = |expect: &str| {
        w.cod(&["deploy", "--package", s(&bad), "--key", s(&key)])
            .fails_with(expect);
        assert!(
            entries(&w.path("xdg/cod")).is_empty(),
            "nothing left behind after: {expect}"
        );
    };

    // One byte changed inside a file.
    let mut bytes = std::fs::read(&pkg).unwrap();
    let at = bytes.windows(9).position(|w| w == b"quorum = ").unwrap() + 9;
    bytes[at] = b'3';
    std::fs::write(&bad, &bytes).unwrap();
    deploy("com.ini does not match its SHA-256 in the manifest");

    // A file added.
    retar(&pkg, &bad, |f| {
        f.insert("evil.sh".into(), b"rm -rf ~".to_vec());
    });
    deploy("evil.sh is in the package but not in its manifest");

    // Edited and re-signed with a key that is not the key store's cod.pub.key.
    let signer = w.example_key("node2.sec.key");
    retar(&pkg, &bad, |f| {
        f.insert(
            "com.ini".into(),
            template("com.ini")
                .replace("share = 100%", "share = 1%")
                .into_bytes(),
        );
        let m = manifest(f);
        let mpath = w.write("m", &m);
        let sig = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-sign", s(&signer), s(&mpath)])
            .output()
            .unwrap()
            .stdout;
        f.insert("MANIFEST".into(), m.into_bytes());
        f.insert("MANIFEST.sig".into(), sig);
    });
    deploy("MANIFEST.sig does not verify with the package's keys/cod.pub.key");

    // Truncated.
    std::fs::write(&bad, &std::fs::read(&pkg).unwrap()[..100_000]).unwrap();
    deploy("not a readable package");

    // A wrong expected cod id.
    std::fs::copy(&pkg, &bad).unwrap();
    let other = "ffffffffffffffffffffffffffffffffffffffff";
    w.cod(&[
        "deploy",
        "--package",
        s(&bad),
        "--key",
        s(&key),
        "--expect-cod-id",
        other,
    ])
    .fails_with(&format!(
        "the package's cod id is {cod_id}, not the expected {other}"
    ));
    assert!(entries(&w.path("xdg/cod")).is_empty());

    // Keys that must not be used.
    let pass = w.write("pass", "pw\n");
    std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let enc = w.path("enc.sec.key");
    w.cod(&[
        "keygen",
        "--role",
        "node",
        "--out",
        "enckey",
        "--bits",
        "2048",
        "--passphrase-file",
        s(&pass),
    ])
    .ok();
    std::fs::rename(w.path("enckey/node.sec.key"), &enc).unwrap();
    let wrong = w.write("wrong", "not it\n");
    std::fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    w.cod(&[
        "deploy",
        "--package",
        s(&bad),
        "--key",
        s(&enc),
        "--passphrase-file",
        s(&wrong),
    ])
    .fails_with("wrong passphrase");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    w.cod(&["deploy", "--package", s(&bad), "--key", s(&key)])
        .fails_with("readable by group or others");
    let bad_ini = w.write("node.ini", "[node]\nlisten = nowhere\n");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    w.cod(&[
        "deploy",
        "--package",
        s(&bad),
        "--key",
        s(&key),
        "--node-ini",
        s(&bad_ini),
    ])
    .fails_with(&format!("{}:2: key \"listen\"", s(&bad_ini)));
    assert!(entries(&w.path("xdg/cod")).is_empty());
}

#[test]
fn pack_warns_when_the_executable_names_the_builders_home() {
    let w = World::new();
    let keys = w.key_store();
    let com = w.write("src/com.ini", &template("com.ini"));
    let cod = w.write("src/cod.ini", &template("cod.ini"));
    // The world's HOME is its directory: an executable built there names it.
    let home = w.path("");
    let home = home.to_str().unwrap().trim_end_matches('/');
    let leaky = w.write(
        "leaky-cod",
        &format!("#!/bin/sh\n# panicked at {home}/.cargo/registry/src/x/lib.rs:1:1\n"),
    );
    let clean = w.write("clean-cod", "#!/bin/sh\necho cod\n");
    let pack = |exe: &std::path::Path, out: &str| {
        w.cod(&[
            "--json",
            "pack",
            "--com",
            s(&com),
            "--cod",
            s(&cod),
            "--keys",
            s(&keys),
            "--out",
            out,
            "--exe",
            s(exe),
        ])
        .ok()
    };
    let r = pack(&leaky, "dist-leaky");
    assert!(
        r.stderr().contains("names this machine's home directory")
            && r.stderr().contains("just release"),
        "{}",
        r.stderr()
    );
    assert!(r.json()["cod_id"].is_string(), "still packs");
    let r = pack(&clean, "dist-clean");
    assert!(!r.stderr().contains("home directory"), "{}", r.stderr());
}

/// Issue 12 §3: a member changes their key's passphrase, backs the key up, and restores it on
/// another machine (a fresh node there takes the account).
#[test]
fn a_key_changes_passphrase_is_backed_up_and_restored_elsewhere() {
    let w = World::new();
    let (pkg, _) = w.pack_demo();
    let secret = |name: &str, pass: &str| {
        let p = w.write(name, &format!("{pass}\n"));
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        p
    };
    let (one, two, three, four) = (
        secret("one", "one"),
        secret("two", "two"),
        secret("three", "three"),
        secret("four", "four"),
    );
    let deployed = w
        .cod(&[
            "--json",
            "deploy",
            "--package",
            s(&pkg),
            "--dir",
            s(&w.path("here")),
            "--bits",
            "2048",
            "--passphrase-file",
            s(&one),
        ])
        .ok()
        .json();
    let dir = deployed["dir"].as_str().unwrap().to_string();
    let node_id = deployed["node_id"].as_str().unwrap().to_string();
    let key = format!("{dir}/node.sec.key");

    // A new passphrase: the old one no longer opens the key.
    w.cod(&[
        "--node",
        &dir,
        "key",
        "passwd",
        "--passphrase-file",
        s(&one),
        "--new-passphrase-file",
        s(&two),
    ])
    .ok();
    w.cod(&["key", "show", &key, "--passphrase-file", s(&one)])
        .fails_with("wrong passphrase");
    w.cod(&["key", "show", &key, "--passphrase-file", s(&two)])
        .ok();

    // A backup, encrypted with a passphrase of its own, that openssl opens: the same key.
    let backup = w.path("backup.sec.key");
    w.cod(&[
        "--node",
        &dir,
        "key",
        "export",
        "--out",
        s(&backup),
        "--passphrase-file",
        s(&two),
        "--new-passphrase-file",
        s(&three),
        "--openssl-compatible",
    ])
    .ok();
    let mode = std::fs::metadata(&backup).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let public = tool(
        "openssl",
        &[
            "pkey",
            "-in",
            s(&backup),
            "-passin",
            &format!("file:{}", s(&three)),
            "-pubout",
        ],
    );
    assert_eq!(
        public.trim(),
        std::fs::read_to_string(format!("{dir}/node.pub.key"))
            .unwrap()
            .trim()
    );
    w.cod(&[
        "--node",
        &dir,
        "key",
        "export",
        "--out",
        s(&backup),
        "--passphrase-file",
        s(&two),
        "--new-passphrase-file",
        s(&three),
    ])
    .fails_with("already exists");

    // Another machine: a fresh node with a key of its own takes the backed-up key, and with
    // it the account.
    let elsewhere = World::new();
    let other_pkg = elsewhere.path("pkg.cod.tar");
    std::fs::copy(&pkg, &other_pkg).unwrap();
    let fresh = elsewhere
        .cod(&[
            "--json",
            "deploy",
            "--package",
            s(&other_pkg),
            "--bits",
            "2048",
            "--no-passphrase",
        ])
        .ok()
        .json();
    let fresh_dir = fresh["dir"].as_str().unwrap().to_string();
    assert_ne!(fresh["node_id"].as_str().unwrap(), node_id);
    let moved = std::path::Path::new(&fresh_dir).join("backup.sec.key");
    std::fs::copy(&backup, &moved).unwrap();
    std::fs::set_permissions(&moved, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let four_there = std::path::Path::new(&fresh_dir).join("four");
    std::fs::copy(&four, &four_there).unwrap();
    std::fs::set_permissions(
        &four_there,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let three_there = std::path::Path::new(&fresh_dir).join("three");
    std::fs::copy(&three, &three_there).unwrap();
    std::fs::set_permissions(
        &three_there,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let imported = elsewhere
        .cod(&[
            "--json",
            "--node",
            &fresh_dir,
            "key",
            "import",
            s(&moved),
            "--passphrase-file",
            s(&three_there),
            "--new-passphrase-file",
            s(&four_there),
        ])
        .ok()
        .json();
    assert_eq!(imported["node_id"], node_id.as_str(), "the same account");
    elsewhere
        .cod_env(
            &["--node", &fresh_dir, "node", "start"],
            &[("COD_PASSPHRASE", "four")],
        )
        .ok();
    let status = elsewhere
        .cod(&["--json", "--node", &fresh_dir, "status"])
        .ok()
        .json();
    assert_eq!(status["node_id"], node_id.as_str());
    // While the daemon runs, its key is not replaced.
    elsewhere
        .cod(&[
            "--node",
            &fresh_dir,
            "key",
            "import",
            s(&moved),
            "--passphrase-file",
            s(&three_there),
            "--unencrypted",
        ])
        .fails_with("stop this node's daemon first");
    elsewhere.cod(&["--node", &fresh_dir, "node", "stop"]).ok();
}

/// Every subcommand, as the path of names under `cod` (`["node", "run"]`), with its about.
fn subcommands(cmd: &clap::Command, above: &[String], all: &mut Vec<(Vec<String>, String)>) {
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut path = above.to_vec();
        path.push(sub.get_name().to_string());
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        all.push((path.clone(), about));
        subcommands(sub, &path, all);
    }
}

/// `cod completions` and `cod man` are generated from the command line's definitions, so
/// they name every subcommand there is (issue 20): checked against those definitions.
#[test]
fn completions_and_man_pages_name_every_subcommand() {
    let w = World::new();
    let mut all = Vec::new();
    subcommands(
        &<cod::cli::Cli as clap::CommandFactory>::command(),
        &[],
        &mut all,
    );
    assert!(all.len() > 40, "{} subcommands", all.len());
    for shell in ["bash", "zsh", "fish"] {
        let script = w.cod(&["completions", shell, "--static"]).ok().stdout();
        for (path, _) in &all {
            let name = path.last().unwrap();
            assert!(script.contains(name.as_str()), "{shell} completes {path:?}");
        }
    }
    // The scripts `cod completions SHELL` prints by default ask `cod` (on PATH) at each TAB:
    // bash, completing `cod PATH ` for every command that has subcommands, offers them all.
    let bin = w.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(cod_bin(), bin.join("cod")).unwrap();
    let mut parents: Vec<Vec<String>> = vec![vec![]];
    parents.extend(all.iter().map(|(p, _)| p.clone()));
    let mut asks = String::new();
    for p in &parents {
        asks.push_str(&format!("offer cod {}\n", p.join(" ")));
    }
    let offer = |shell: &str, call: &str| {
        let script = w.write(
            &format!("cod.{shell}"),
            &w.cod(&["completions", shell]).ok().stdout(),
        );
        stdout_of(
            std::process::Command::new(shell)
                .args(["-c", &format!("source {}\n{call}\n{asks}", s(&script))])
                .env(
                    "PATH",
                    format!("{}:{}", s(&bin), std::env::var("PATH").unwrap()),
                )
                .env("HOME", w.path(""))
                .env("XDG_DATA_HOME", w.path("xdg")),
        )
    };
    let offered = offer(
        "bash",
        "offer() { COMP_WORDS=(\"$@\" \"\"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMP_TYPE=9; \
         _clap_complete_cod cod \"\" \"${COMP_WORDS[COMP_CWORD-1]}\"; echo \"${COMPREPLY[*]}\"; }",
    );
    let offered: Vec<&str> = offered.lines().collect();
    assert_eq!(offered.len(), parents.len(), "{offered:?}");
    for (parent, words) in parents.iter().zip(offered) {
        let words: Vec<&str> = words.split_whitespace().collect();
        for (path, _) in all
            .iter()
            .filter(|(p, _)| p.len() == parent.len() + 1 && p.starts_with(parent))
        {
            let name = path.last().unwrap().as_str();
            assert!(
                words.contains(&name),
                "bash completes `cod {} ` with {name}: {words:?}",
                parent.join(" ")
            );
        }
    }
    w.cod(&["completions", "tcsh"]).usage_with("tcsh");

    let dir = w.path("man");
    let pages = w.cod(&["--json", "man", "--dir", s(&dir)]).ok().json();
    assert_eq!(pages["pages"].as_array().unwrap().len(), all.len() + 1);
    assert!(dir.join("cod.1").is_file());
    for (path, about) in &all {
        let page = dir.join(format!("cod-{}.1", path.join("-")));
        let text = std::fs::read_to_string(&page).unwrap_or_else(|_| panic!("{page:?}"));
        let first_words: String = about
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.replace("\\-", "-")
                .replace("\\*(Aq", "'")
                .contains(&first_words),
            "{page:?} says {first_words:?}"
        );
    }
    let cod_1 = w.cod(&["man"]).ok().stdout();
    assert!(
        cod_1.starts_with(".ie") && cod_1.contains(".TH cod 1"),
        "{cod_1}"
    );
}
