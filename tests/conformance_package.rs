//! The package half of the conformance suite (issue 19; `docs/conformance.md`, "A package
//! case"): `tests/conformance/package/NAME.json` beside `NAME.tar`, the exact bytes of a
//! package, and what opening it gives — accepted, with its files, file name and cod id (and
//! writing those files gives those bytes), or refused with a code (`docs/formats.md`, "The
//! package"). `cases_pass` runs them from the files alone; the files are written from the
//! scenarios below (`COD_WRITE_CONFORMANCE=1`), which build the bytes with a ustar writer of
//! their own that follows formats.md's table, not cod's: the bytes of every accepted case
//! are therefore the spec's as much as cod's.

mod common;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cod::package::{MANIFEST, MANIFEST_SIG, Package, manifest_of, write_tar};
use common::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SPEC: &str = "cod-ledger/1";

/// One case, as its JSON file holds it.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
struct Case {
    spec: String,
    about: String,
    /// The package's bytes: a file beside this one.
    package: String,
    /// `accepted`, or `refused CODE`.
    outcome: String,
    /// For an accepted package: its torrent's file name (from cod.ini) and its cod id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cod_id: Option<String>,
    /// For an accepted package: its files (path → base64 of the bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    files: Option<BTreeMap<String, String>>,
}

/// Every code `Package::open` refuses with; `TooLarge` (over 1 GiB) has no case.
const CODES: &[&str] = &[
    "Config",
    "Key",
    "Malformed",
    "BadEntry",
    "Missing",
    "BadManifest",
    "Unlisted",
    "Unpacked",
    "HashMismatch",
    "BadSignature",
    "NotCanonical",
];

fn dir() -> PathBuf {
    Path::new(REPO).join("tests/conformance/package")
}

fn outcome(bytes: &[u8]) -> Result<Package, String> {
    Package::open(bytes.to_vec(), &mut |_| {}).map_err(|e| format!("refused {}", e.code()))
}

fn cases_on_disk() -> Vec<(String, Case)> {
    read_cases(&dir())
}

#[test]
fn cases_pass() {
    let cases = cases_on_disk();
    assert!(cases.len() >= scenes().len(), "every scenario has its file");
    let mut failed = Vec::new();
    for (name, c) in &cases {
        assert_eq!(c.spec, SPEC, "{name}");
        let bytes = std::fs::read(dir().join(&c.package)).unwrap();
        match (outcome(&bytes), c.outcome.as_str()) {
            (Ok(p), "accepted") => {
                let files: BTreeMap<String, String> = p
                    .files
                    .iter()
                    .map(|(k, v)| (k.clone(), B64.encode(v)))
                    .collect();
                let decoded: BTreeMap<String, Vec<u8>> = c
                    .files
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), B64.decode(v).unwrap()))
                    .collect();
                if Some(&files) != c.files.as_ref() {
                    failed.push(format!("{name}: opens to other files"));
                }
                if write_tar(&decoded).ok() != Some(bytes) {
                    failed.push(format!("{name}: writing its files gives other bytes"));
                }
                if Some(p.cod_id().to_string()) != c.cod_id
                    || Some(p.file_name()) != c.file_name.as_deref()
                {
                    failed.push(format!(
                        "{name}: cod id {} of {}, expected {:?} of {:?}",
                        p.cod_id(),
                        p.file_name(),
                        c.cod_id,
                        c.file_name
                    ));
                }
            }
            (Err(got), want) if got == want => {}
            (got, want) => failed.push(format!(
                "{name}: {}, expected {want}",
                got.map(|_| "accepted".to_string()).unwrap_or_else(|e| e)
            )),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn every_refusal_is_in_some_case() {
    let refused: Vec<String> = cases_on_disk()
        .into_iter()
        .filter_map(|(_, c)| c.outcome.strip_prefix("refused ").map(str::to_string))
        .collect();
    let missing: Vec<&&str> = CODES
        .iter()
        .filter(|c| !refused.iter().any(|r| r == **c))
        .collect();
    assert!(missing.is_empty(), "no case refuses with {missing:?}");
    let formats = std::fs::read_to_string(Path::new(REPO).join("docs/formats.md")).unwrap();
    for c in CODES.iter().chain(&["TooLarge"]) {
        assert!(formats.contains(&format!("`{c}`")), "formats.md names {c}");
    }
}

#[test]
fn the_files_are_the_scenarios() {
    let write = std::env::var_os("COD_WRITE_CONFORMANCE").is_some();
    if write {
        let _ = std::fs::remove_dir_all(dir());
        std::fs::create_dir_all(dir()).unwrap();
    }
    for s in scenes() {
        let (case, bytes) = s.finish();
        let text = serde_json::to_string_pretty(&case).unwrap() + "\n";
        let (json, tar) = (
            dir().join(format!("{}.json", s.name)),
            dir().join(&case.package),
        );
        if write {
            std::fs::write(&json, &text).unwrap();
            std::fs::write(&tar, &bytes).unwrap();
        } else {
            let same = std::fs::read_to_string(&json).ok() == Some(text)
                && std::fs::read(&tar).ok() == Some(bytes);
            assert!(
                same,
                "{} differs from its scenario: run COD_WRITE_CONFORMANCE=1 cargo test --test \
                 conformance_package, and say in the commit why the cases changed",
                json.display()
            );
        }
    }
}

/// cod's writer is the spec's: every accepted scenario's bytes (made by [`ustar`] from
/// formats.md's table) are what `write_tar` makes of the same files.
#[test]
fn cods_writer_writes_what_the_spec_says() {
    for s in scenes().iter().filter(|s| s.intent == "accepted") {
        let files: BTreeMap<String, Vec<u8>> = s
            .entries
            .iter()
            .map(|e| (e.path.clone(), e.data.clone()))
            .collect();
        assert!(write_tar(&files).unwrap() == s.bytes(), "{}", s.name);
    }
}

// ---- Writing cases: scenarios ----

/// One tar entry as the scenario writes it, with what may be varied.
#[derive(Clone)]
struct Entry {
    path: String,
    data: Vec<u8>,
    mode: u32,
    mtime: u64,
    kind: u8,
}

/// Spellings of a ustar archive that formats.md forbids (each is what some tar writes).
#[derive(Clone, Copy, Default)]
struct Spelling {
    /// GNU tar's `%06o\0 ` checksum.
    gnu_checksum: bool,
    /// `0000000\0` in devmajor and devminor.
    device_zeros: bool,
    /// A long path split at the first `/` that fits (Python's and bsdtar's rule).
    first_slash: bool,
    /// Zero blocks after the entries (2 is canonical; GNU tar pads to 20).
    end_blocks: usize,
}

fn octal(field: &mut [u8], v: u64) {
    let digits = format!("{v:0w$o}", w = field.len() - 1);
    assert_eq!(digits.len(), field.len() - 1, "{v} fits");
    field[..digits.len()].copy_from_slice(digits.as_bytes());
    field[digits.len()] = 0;
}

/// Where a path goes: (prefix, name), formats.md's "Long paths".
fn split(path: &str, first_slash: bool) -> (&str, &str) {
    if path.len() <= 100 {
        return ("", path);
    }
    let mut fits = path
        .match_indices('/')
        .map(|(i, _)| i)
        .filter(|&i| (1..=155).contains(&i) && path.len() - i - 1 <= 100);
    let at = if first_slash {
        fits.next()
    } else {
        fits.next_back()
    };
    let at = at.unwrap_or_else(|| panic!("{path} has no ustar split"));
    (&path[..at], &path[at + 1..])
}

/// Writes a header's checksum (formats.md: the sum of its bytes, the field as spaces).
fn reseal(h: &mut [u8]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..156], sum);
}

/// A ustar archive written from formats.md's table, byte by byte.
fn ustar(entries: &[Entry], sp: Spelling) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = [0u8; 512];
        let (prefix, name) = split(&e.path, sp.first_slash);
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], e.mode.into());
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], e.data.len() as u64);
        octal(&mut h[136..148], e.mtime);
        h[156] = e.kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        if sp.device_zeros {
            octal(&mut h[329..337], 0);
            octal(&mut h[337..345], 0);
        }
        h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        reseal(&mut h);
        if sp.gnu_checksum {
            let sum = u64::from_str_radix(std::str::from_utf8(&h[148..155]).unwrap(), 8).unwrap();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        }
        out.extend_from_slice(&h);
        out.extend_from_slice(&e.data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 512 * sp.end_blocks.max(2), 0);
    out
}

/// A scenario: the entries as written, how, and the outcome it intends.
struct Scene {
    name: &'static str,
    about: &'static str,
    entries: Vec<Entry>,
    spelling: Spelling,
    /// Bytes made otherwise than by [`ustar`] (extension headers, damage), if any.
    raw: Option<Vec<u8>>,
    intent: &'static str,
}

impl Scene {
    fn bytes(&self) -> Vec<u8> {
        self.raw
            .clone()
            .unwrap_or_else(|| ustar(&self.entries, self.spelling))
    }

    fn finish(&self) -> (Case, Vec<u8>) {
        let bytes = self.bytes();
        let opened = outcome(&bytes);
        let got = opened
            .as_ref()
            .map(|_| "accepted".to_string())
            .unwrap_or_else(|e| e.clone());
        assert_eq!(got, self.intent, "{}: {}", self.name, self.about);
        let p = opened.ok();
        let case = Case {
            spec: SPEC.into(),
            about: self.about.into(),
            package: format!("{}.tar", self.name),
            outcome: got,
            file_name: p.as_ref().map(|p| p.file_name().to_string()),
            cod_id: p.as_ref().map(|p| p.cod_id().to_string()),
            files: p.map(|p| {
                p.files
                    .iter()
                    .map(|(k, v)| (k.clone(), B64.encode(v)))
                    .collect()
            }),
        };
        (case, bytes)
    }
}

fn example(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(REPO).join(path)).unwrap()
}

/// The files of the cases' package, without its manifest and signature: small configs, the
/// example keys, scripts and a stand-in for the executable.
fn base_files() -> BTreeMap<String, Vec<u8>> {
    let com_ini = format!(
        "[com]\nname = Conformance\nversion = 1.0.0\nsettlement_period = 1d\n\
         epoch = 2026-01-05T00:00:00Z\n\
         [asset.codcoin]\ndecimals = 2\n\
         [backing.bread]\nclass = inventory\nasset = codcoin\nunit = loaf\nvalue = 350\n\
         [distribution]\nformula = equal\nshare = 100%\n\
         [signers]\nkeys = {}\nquorum = 1\n",
        example_secret("node1").public().fingerprint()
    );
    let script =
        |verb: &str| format!("#!/bin/sh\nexec \"$(dirname \"$0\")/bin/cod\" {verb} \"$@\"\n");
    [
        (
            "GUIDE.md",
            b"# Conformance\n\nA package for the conformance cases.\n".to_vec(),
        ),
        (
            "bin/cod",
            b"#!/bin/sh\necho 'a stand-in for cod'\n".to_vec(),
        ),
        ("com.ini", com_ini.into_bytes()),
        (
            "cod.ini",
            b"[cod]\nname = conformance\nversion = 1.0.0\n".to_vec(),
        ),
        ("node.ini", b"[node]\nlisten = 127.0.0.1:7410\n".to_vec()),
        ("keys/cod.pub.key", example("keys-example/cod.pub.key")),
        ("keys/com.pub.key", example("keys-example/com.pub.key")),
        ("deploy.sh", script("deploy").into_bytes()),
        ("upgrade.sh", script("upgrade").into_bytes()),
        ("import.sh", script("import").into_bytes()),
    ]
    .into_iter()
    .map(|(p, b)| (p.to_string(), b))
    .collect()
}

/// `files` with the manifest cod writes, signed by `signer` — or with `manifest` instead.
fn signed(
    mut files: BTreeMap<String, Vec<u8>>,
    signer: &str,
    manifest: impl FnOnce(String) -> String,
) -> BTreeMap<String, Vec<u8>> {
    let m = manifest(manifest_of(&files));
    files.insert(
        MANIFEST_SIG.into(),
        example_secret(signer).sign(m.as_bytes()),
    );
    files.insert(MANIFEST.into(), m.into_bytes());
    files
}

fn entries(files: &BTreeMap<String, Vec<u8>>) -> Vec<Entry> {
    files
        .iter()
        .map(|(path, data)| Entry {
            path: path.clone(),
            data: data.clone(),
            mode: Package::mode_of(path),
            mtime: 0,
            kind: b'0',
        })
        .collect()
}

fn package(files: BTreeMap<String, Vec<u8>>) -> Vec<Entry> {
    entries(&signed(files, "cod", |m| m))
}

fn scene(
    name: &'static str,
    about: &'static str,
    entries: Vec<Entry>,
    intent: &'static str,
) -> Scene {
    Scene {
        name,
        about,
        entries,
        spelling: Spelling::default(),
        raw: None,
        intent,
    }
}

/// The canonical package with one entry changed.
fn changed(f: impl FnOnce(&mut Vec<Entry>)) -> Vec<Entry> {
    let mut e = package(base_files());
    f(&mut e);
    e
}

fn entry(path: &str, data: &[u8], kind: u8) -> Entry {
    Entry {
        path: path.into(),
        data: data.to_vec(),
        mode: Package::mode_of(path),
        mtime: 0,
        kind,
    }
}

/// Files with one more: (path, bytes).
fn with(extra: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
    let mut f = base_files();
    for (p, b) in extra {
        f.insert(p.to_string(), b.to_vec());
    }
    f
}

/// The same files as tar's own writer puts them, with what does not fit ustar in a pax header.
fn via_tar_crate(entries: &[Entry]) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(e.data.len() as u64);
        h.set_mode(e.mode);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        out.append_data(&mut h, &e.path, e.data.as_slice()).unwrap();
    }
    out.into_inner().unwrap()
}

fn scenes() -> Vec<Scene> {
    let long_a = format!(
        "extra/{}/{}/{}.txt",
        "a".repeat(60),
        "b".repeat(20),
        "c".repeat(30)
    );
    let long_b = format!("extra/{}/n.txt", "p".repeat(149));
    let exactly_100 = format!("keys/{}.pub.key", "k".repeat(87));
    assert_eq!(
        (exactly_100.len(), split(&long_b, false).0.len()),
        (100, 155)
    );
    let edges = with(&[
        (long_a.as_str(), b"split at the last slash that fits\n"),
        (long_b.as_str(), b"a prefix of exactly 155 bytes\n"),
        (exactly_100.as_str(), &example("keys-example/node1.pub.key")),
        ("extra/block", &[b'x'; 512]),
        ("extra/empty", b""),
    ]);
    let too_long = format!("extra/{}", "z".repeat(200));
    let mut s = vec![
        scene(
            "minimal",
            "the files every package holds, with its manifest and the deployer's signature",
            package(base_files()),
            "accepted",
        ),
        scene(
            "paths-and-sizes",
            "a path of exactly 100 bytes (whole in name, no NUL after it), one split at the \
             last '/' that fits, a prefix of exactly 155 bytes, a file of exactly one block \
             and an empty one (no data block); other files than the required ones are kept",
            package(edges.clone()),
            "accepted",
        ),
        scene(
            "not-canonical-first-slash",
            "a long path split at the first '/' that fits (Python's and bsdtar's rule), not the last",
            package(edges.clone()),
            "refused NotCanonical",
        ),
        scene(
            "not-canonical-gnu-checksum",
            "GNU tar's checksum spelling: six digits, NUL, space",
            package(base_files()),
            "refused NotCanonical",
        ),
        scene(
            "not-canonical-device-fields",
            "devmajor and devminor as 0000000 rather than NUL",
            package(base_files()),
            "refused NotCanonical",
        ),
        scene(
            "not-canonical-end-padding",
            "padded with zero blocks to 10,240 bytes as GNU tar does",
            package(base_files()),
            "refused NotCanonical",
        ),
        scene(
            "not-canonical-mtime",
            "a file's mtime is not 0",
            changed(|e| e[0].mtime = 1_767_571_200),
            "refused NotCanonical",
        ),
        scene(
            "not-canonical-mode",
            "bin/cod with mode 0644",
            changed(|e| e.iter_mut().find(|e| e.path == "bin/cod").unwrap().mode = 0o644),
            "refused NotCanonical",
        ),
        scene(
            "not-canonical-order",
            "the entries not in byte order of their paths",
            changed(|e| e.swap(0, 1)),
            "refused NotCanonical",
        ),
        scene(
            "not-canonical-manifest",
            "a manifest with CRLF line ends, signed: the files verify but cod wrote another manifest",
            entries(&signed(base_files(), "cod", |m| m.replace('\n', "\r\n"))),
            "refused NotCanonical",
        ),
        scene(
            "not-canonical-long-path",
            "a path no ustar split holds, in an extension header (as the tar crate writes it)",
            package(with(&[(too_long.as_str(), b"too long\n")])),
            "refused NotCanonical",
        ),
        scene(
            "bad-entry-directory",
            "a directory entry",
            changed(|e| e.insert(6, entry("keys/", b"", b'5'))),
            "refused BadEntry",
        ),
        scene(
            "bad-entry-symlink",
            "a symbolic link",
            changed(|e| e.insert(0, entry("EVIL", b"", b'2'))),
            "refused BadEntry",
        ),
        scene(
            "bad-entry-parent",
            "a path with a '..' component",
            changed(|e| e.insert(0, entry("../EVIL", b"x", b'0'))),
            "refused BadEntry",
        ),
        scene(
            "bad-entry-absolute",
            "an absolute path",
            changed(|e| e.insert(0, entry("/EVIL", b"x", b'0'))),
            "refused BadEntry",
        ),
        scene(
            "bad-entry-not-utf8",
            "a path that is not UTF-8 (byte 0xff)",
            changed(|e| e.insert(0, entry("EVIL", b"x", b'0'))),
            "refused BadEntry",
        ),
        scene(
            "bad-entry-twice",
            "one path twice",
            changed(|e| e.insert(1, e[0].clone())),
            "refused BadEntry",
        ),
        scene(
            "malformed-checksum",
            "a header whose checksum is wrong",
            package(base_files()),
            "refused Malformed",
        ),
        scene(
            "malformed-truncated",
            "the archive cut inside a file's data",
            package(base_files()),
            "refused Malformed",
        ),
        scene(
            "malformed-size",
            "a GNU base-256 size of 2^62 bytes, more than the archive holds",
            Vec::new(),
            "refused Malformed",
        ),
        scene(
            "missing-script",
            "import.sh left out, of the files and of the signed manifest",
            package({
                let mut f = base_files();
                f.remove("import.sh");
                f
            }),
            "refused Missing",
        ),
        scene(
            "missing-signature",
            "no MANIFEST.sig",
            changed(|e| e.retain(|e| e.path != MANIFEST_SIG)),
            "refused Missing",
        ),
        scene(
            "bad-manifest-line",
            "a manifest line with one space between hash and path",
            entries(&signed(base_files(), "cod", |m| m.replacen("  ", " ", 1))),
            "refused BadManifest",
        ),
        scene(
            "bad-manifest-twice",
            "a path listed twice in the manifest",
            entries(&signed(base_files(), "cod", |m| {
                let first = m.lines().next().unwrap().to_string();
                format!("{first}\n{m}")
            })),
            "refused BadManifest",
        ),
        scene(
            "unlisted",
            "a file added after signing",
            changed(|e| e.insert(0, entry("EXTRA.md", b"added\n", b'0'))),
            "refused Unlisted",
        ),
        scene(
            "unpacked",
            "a file the signed manifest lists, removed",
            changed(|e| e.retain(|e| e.path != "node.ini")),
            "refused Unpacked",
        ),
        scene(
            "hash-mismatch",
            "com.ini changed after signing",
            changed(|e| {
                let com = e.iter_mut().find(|e| e.path == "com.ini").unwrap();
                com.data.extend_from_slice(b"# changed\n");
            }),
            "refused HashMismatch",
        ),
        scene(
            "bad-signature",
            "the manifest signed by another key than keys/cod.pub.key",
            entries(&signed(base_files(), "node1", |m| m)),
            "refused BadSignature",
        ),
        scene(
            "key-not-a-key",
            "keys/com.pub.key is not a public key (signed)",
            package(with(&[("keys/com.pub.key", b"not a key\n")])),
            "refused Key",
        ),
        scene(
            "config-invalid",
            "com.ini names a quorum of 0 (signed)",
            package({
                let mut f = base_files();
                let com = String::from_utf8(f["com.ini"].clone()).unwrap();
                f.insert(
                    "com.ini".into(),
                    com.replace("quorum = 1", "quorum = 0").into_bytes(),
                );
                f
            }),
            "refused Config",
        ),
    ];
    for sc in &mut s {
        match sc.name {
            "not-canonical-first-slash" => sc.spelling.first_slash = true,
            "not-canonical-gnu-checksum" => sc.spelling.gnu_checksum = true,
            "not-canonical-device-fields" => sc.spelling.device_zeros = true,
            "not-canonical-end-padding" => {
                let blocks = ustar(&sc.entries, sc.spelling).len() / 512;
                sc.spelling.end_blocks = blocks.next_multiple_of(20) - blocks + 2;
            }
            "not-canonical-long-path" => sc.raw = Some(via_tar_crate(&sc.entries)),
            "malformed-checksum" => {
                let mut b = ustar(&sc.entries, sc.spelling);
                b[148] = b'7';
                sc.raw = Some(b);
            }
            "bad-entry-not-utf8" => {
                let mut b = ustar(&sc.entries, sc.spelling);
                b[0] = 0xff;
                reseal(&mut b[..512]);
                sc.raw = Some(b);
            }
            "malformed-truncated" => {
                let mut b = ustar(&sc.entries, sc.spelling);
                b.truncate(512 + 20);
                sc.raw = Some(b);
            }
            "malformed-size" => {
                let mut h = tar::Header::new_gnu();
                h.set_path("bin/cod").unwrap();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(1 << 62);
                h.set_mode(0o755);
                h.set_cksum();
                let mut b = h.as_bytes().to_vec();
                b.resize(512 * 5, 0);
                sc.raw = Some(b);
            }
            _ => {}
        }
    }
    s
}
