use super::*;

fn example(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn secret(name: &str) -> SecretKey {
    SecretKey::from_pem(&example(&format!("keys-example/{name}")), None).unwrap()
}

fn input(signer: &SecretKey) -> PackInput<'_> {
    PackInput {
        com_ini: ("com.ini".into(), example("ini-templates/com.ini")),
        cod_ini: ("cod.ini".into(), example("ini-templates/cod.ini")),
        node_ini: ("node.ini".into(), example("ini-templates/node.ini")),
        guide: None,
        public_keys: ["com.pub.key", "cod.pub.key"]
            .iter()
            .map(|k| (k.to_string(), example(&format!("keys-example/{k}"))))
            .collect(),
        executable: b"#!/bin/sh\necho not really cod\n".to_vec(),
        signer,
    }
}

#[test]
fn packing_is_deterministic_and_opens() {
    let key = secret("cod.sec.key");
    let a = Package::pack(input(&key), &mut |_| {}).unwrap();
    let b = Package::pack(input(&key), &mut |_| {}).unwrap();
    assert_eq!(a.bytes, b.bytes);
    assert_eq!(a.cod_id(), b.cod_id());
    assert_eq!(a.file_name(), "demo-bakery-1.0.0.cod.tar");
    let opened = Package::open(a.bytes.clone(), &mut |_| {}).unwrap();
    assert_eq!(opened.cod_id(), a.cod_id());
    let names: Vec<&str> = opened.files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "GUIDE.md",
            "MANIFEST",
            "MANIFEST.sig",
            "bin/cod",
            "cod.ini",
            "com.ini",
            "deploy.sh",
            "import.sh",
            "keys/cod.pub.key",
            "keys/com.pub.key",
            "node.ini",
            "upgrade.sh"
        ]
    );
    let [pkg, com, cod] = opened.torrents();
    assert_eq!(pkg.infohash(), a.cod_id());
    assert_ne!(com.infohash(), cod.infohash());
    let guide = String::from_utf8(opened.files["GUIDE.md"].clone()).unwrap();
    assert!(
        guide.contains("./deploy.sh demo-bakery-1.0.0.cod.tar"),
        "{guide}"
    );
}

#[test]
fn a_different_input_is_a_different_cod() {
    let key = secret("cod.sec.key");
    let a = Package::pack(input(&key), &mut |_| {}).unwrap();
    let mut other = input(&key);
    other.cod_ini.1 = other
        .cod_ini
        .1
        .replace("version = 1.0.0", "version = 1.0.1");
    let b = Package::pack(other, &mut |_| {}).unwrap();
    assert_ne!(a.cod_id(), b.cod_id());
}

#[test]
fn packing_refuses_a_foreign_signer_and_bad_configs() {
    let node = secret("node1.sec.key");
    assert!(matches!(
        Package::pack(input(&node), &mut |_| {}),
        Err(PackageError::SignerMismatch { .. })
    ));
    let key = secret("cod.sec.key");
    let mut bad = input(&key);
    bad.com_ini.1 = bad.com_ini.1.replace("quorum = 2", "quorum = 9");
    let err = Package::pack(bad, &mut |_| {}).unwrap_err().to_string();
    assert!(
        err.starts_with("com.ini:") && err.contains("key \"quorum\""),
        "{err}"
    );
    let mut nokeys = input(&key);
    nokeys.public_keys.remove("com.pub.key");
    assert!(
        matches!(Package::pack(nokeys, &mut |_| {}), Err(PackageError::Missing(k)) if k == "keys/com.pub.key")
    );
}

/// Rebuilds a package's tar after `edit`, without re-signing, or re-signing with `key`.
fn rebuild(
    pkg: &Package,
    edit: impl FnOnce(&mut BTreeMap<String, Vec<u8>>),
    resign: Option<&SecretKey>,
) -> Vec<u8> {
    let mut files = pkg.files.clone();
    edit(&mut files);
    if let Some(key) = resign {
        let m = manifest_of(&files);
        files.insert(MANIFEST_SIG.into(), key.sign(m.as_bytes()));
        files.insert(MANIFEST.into(), m.into_bytes());
    }
    write_tar(&files).unwrap()
}

#[test]
fn tampering_is_refused_with_its_reason() {
    let key = secret("cod.sec.key");
    let pkg = Package::pack(input(&key), &mut |_| {}).unwrap();
    let open = |b: Vec<u8>| Package::open(b, &mut |_| {}).unwrap_err();

    let changed = rebuild(&pkg, |f| f.get_mut("com.ini").unwrap()[0] ^= 1, None);
    assert!(matches!(open(changed), PackageError::HashMismatch(p) if p == "com.ini"));

    let added = rebuild(
        &pkg,
        |f| {
            f.insert("extra.txt".into(), b"hi".to_vec());
        },
        None,
    );
    assert!(matches!(open(added), PackageError::Unlisted(p) if p == "extra.txt"));

    let removed = rebuild(
        &pkg,
        |f| {
            f.remove("upgrade.sh");
        },
        None,
    );
    assert!(matches!(open(removed), PackageError::Unpacked(p) if p == "upgrade.sh"));

    // An attacker who edits a file and re-signs with their own key is caught by keys/cod.pub.key.
    let resigned = rebuild(
        &pkg,
        |f| f.get_mut("com.ini").unwrap()[0] ^= 1,
        Some(&secret("node1.sec.key")),
    );
    assert!(matches!(open(resigned), PackageError::BadSignature));

    for cut in [0, 100, 512, pkg.bytes.len() / 2, pkg.bytes.len() - 1024] {
        let err = open(pkg.bytes[..cut].to_vec());
        assert!(
            matches!(
                err,
                PackageError::Malformed(_) | PackageError::Missing(_) | PackageError::NotCanonical
            ),
            "truncated at {cut}: {err}"
        );
    }

    // Every single-byte change anywhere is caught, whatever part it hits.
    let step = pkg.bytes.len() / 97;
    for i in (0..pkg.bytes.len()).step_by(step) {
        let mut b = pkg.bytes.clone();
        b[i] ^= 0x20;
        assert!(
            Package::open(b, &mut |_| {}).is_err(),
            "byte {i} changed yet accepted"
        );
    }
}

/// Paths a ustar header cannot hold come only in pax or GNU extension headers, which cod never
/// writes: such a package — signed by whoever made it — is refused, never a crash (found
/// specifying the package bytes). And the manifest is the one cod writes: another spelling of
/// it (CRLF, another order) would give the same files another cod id.
#[test]
fn a_package_cod_cannot_have_written_is_refused() {
    let key = secret("cod.sec.key");
    let pkg = Package::pack(input(&key), &mut |_| {}).unwrap();
    let long = format!("keys/{}.pub.key", "k".repeat(150));
    let mut files = pkg.files.clone();
    files.insert(
        long.clone(),
        example("keys-example/node1.pub.key").into_bytes(),
    );
    let m = manifest_of(&files);
    files.insert(MANIFEST_SIG.into(), key.sign(m.as_bytes()));
    files.insert(MANIFEST.into(), m.into_bytes());
    assert!(matches!(write_tar(&files), Err(PackageError::BadEntry(p)) if p == long));
    // The same files through tar's own writer, which puts the long path in a pax header.
    let mut out = tar::Builder::new(Vec::new());
    for (path, bytes) in &files {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        out.append_data(&mut h, path, bytes.as_slice()).unwrap();
    }
    let bytes = out.into_inner().unwrap();
    assert!(matches!(
        Package::open(bytes, &mut |_| {}),
        Err(PackageError::NotCanonical)
    ));

    for manifest in [
        |m: &str| m.replace('\n', "\r\n"),
        |m: &str| m.lines().rev().map(|l| format!("{l}\n")).collect(),
        |m: &str| m.trim_end().to_string(),
    ] {
        let mut files = pkg.files.clone();
        let m = manifest(&manifest_of(&files));
        files.insert(MANIFEST_SIG.into(), key.sign(m.as_bytes()));
        files.insert(MANIFEST.into(), m.into_bytes());
        let err = Package::open(write_tar(&files).unwrap(), &mut |_| {}).unwrap_err();
        assert!(
            matches!(
                err,
                PackageError::NotCanonical | PackageError::BadManifest(_)
            ),
            "{err}"
        );
    }
}

#[test]
fn an_entry_claiming_more_than_the_archive_is_refused_before_allocating() {
    // A GNU header whose base-256 size says 2^62 bytes, followed by a few real ones: this
    // aborted `cod deploy` with a failed allocation.
    let mut h = tar::Header::new_gnu();
    h.set_path("cod").unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(1 << 62);
    h.set_mode(0o755);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    assert_eq!(bytes[124] & 0x80, 0x80, "size in base-256");
    bytes.extend_from_slice(&[0u8; 2048]);
    let err = Package::open(bytes, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, PackageError::Malformed(m) if m.contains("more than the whole archive")),
        "{err}"
    );
}
