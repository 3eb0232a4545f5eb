//! The node deployment package (MISSION.md "cod deployment" 5, DESIGN.md §3): a tar archive
//! that is byte-for-byte the same for the same inputs, whose single-file torrent's infohash
//! is the cod id. Pure: bytes in, bytes out; the CLI reads and writes the files.
//!
//! Layout (entries sorted by path, ustar headers with mtime 0, uid/gid 0, no user names,
//! mode 0755 for `bin/cod` and `*.sh`, 0644 otherwise):
//!
//! ```text
//! GUIDE.md  MANIFEST  MANIFEST.sig  bin/cod  cod.ini  com.ini  deploy.sh  import.sh
//! keys/cod.pub.key  keys/com.pub.key  [keys/*.pub.key]  node.ini  upgrade.sh
//! ```
//!
//! `MANIFEST` is `sha256sum` output (`HEX  PATH\n`, sorted) over every other file;
//! `MANIFEST.sig` is the deployer's RSASSA-PKCS1-v1_5/SHA-256 signature of `MANIFEST`, which
//! must verify with the package's own `keys/cod.pub.key`.

mod guide;
pub mod torrent;

use crate::config::{CodConfig, ComConfig, ConfigError, NodeConfig};
use crate::ids::CodId;
use crate::keys::{KeyError, PublicKey, SecretKey};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
pub use torrent::Info;

pub const MANIFEST: &str = "MANIFEST";
pub const MANIFEST_SIG: &str = "MANIFEST.sig";
pub const EXECUTABLE: &str = "bin/cod";
pub const GUIDE: &str = "GUIDE.md";
/// Files every package holds besides the manifest and its signature.
pub const REQUIRED: [&str; 10] = [
    EXECUTABLE,
    "com.ini",
    "cod.ini",
    "node.ini",
    GUIDE,
    "keys/com.pub.key",
    "keys/cod.pub.key",
    "deploy.sh",
    "upgrade.sh",
    "import.sh",
];
/// Bounds on what `open` will look at, so a hostile file cannot exhaust memory.
pub const MAX_PACKAGE_BYTES: u64 = 1 << 30;
pub const MAX_ENTRIES: usize = 256;

const DEPLOY_SH: &str = include_str!("scripts/deploy.sh");
const UPGRADE_SH: &str = include_str!("scripts/upgrade.sh");
const IMPORT_SH: &str = include_str!("scripts/import.sh");

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{file}: {source}")]
    Key { file: String, source: KeyError },
    #[error(
        "the signing key is not the deployer key keys/cod.pub.key (fingerprints {signer} and {store})"
    )]
    SignerMismatch { signer: String, store: String },
    #[error("the package is {0} bytes; the limit is {MAX_PACKAGE_BYTES}")]
    TooLarge(u64),
    #[error("not a readable package (truncated or not a tar archive): {0}")]
    Malformed(String),
    #[error("package entry {0:?} is not allowed (only plain files with relative paths)")]
    BadEntry(String),
    #[error("package lacks {0}")]
    Missing(String),
    #[error("the manifest is malformed at line {0}")]
    BadManifest(usize),
    #[error("{0} is in the package but not in its manifest (file added?)")]
    Unlisted(String),
    #[error("{0} is listed in the manifest but not in the package (file removed?)")]
    Unpacked(String),
    #[error("{0} does not match its SHA-256 in the manifest (file changed?)")]
    HashMismatch(String),
    #[error(
        "MANIFEST.sig does not verify with the package's keys/cod.pub.key (re-signed or tampered)"
    )]
    BadSignature,
    #[error(
        "the package is not in canonical form (headers or padding altered); its contents verify, but it is not the file the deployer made"
    )]
    NotCanonical,
}

impl PackageError {
    /// The refusal's name, as `docs/formats.md` and the conformance cases give it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "Config",
            Self::Key { .. } => "Key",
            Self::SignerMismatch { .. } => "SignerMismatch",
            Self::TooLarge(_) => "TooLarge",
            Self::Malformed(_) => "Malformed",
            Self::BadEntry(_) => "BadEntry",
            Self::Missing(_) => "Missing",
            Self::BadManifest(_) => "BadManifest",
            Self::Unlisted(_) => "Unlisted",
            Self::Unpacked(_) => "Unpacked",
            Self::HashMismatch(_) => "HashMismatch",
            Self::BadSignature => "BadSignature",
            Self::NotCanonical => "NotCanonical",
        }
    }
}

/// What `cod pack` packs.
pub struct PackInput<'a> {
    /// (label used in error messages, text) for com.ini, cod.ini and the example node.ini.
    pub com_ini: (String, String),
    pub cod_ini: (String, String),
    pub node_ini: (String, String),
    /// The deployer's own guide; generated when `None`.
    pub guide: Option<String>,
    /// Public key files for `keys/`, by file name; must include com.pub.key and cod.pub.key.
    pub public_keys: BTreeMap<String, String>,
    pub executable: Vec<u8>,
    /// The deployer's secret key (its public half must be `cod.pub.key`).
    pub signer: &'a SecretKey,
}

/// A package, made by [`Package::pack`] or checked by [`Package::open`].
#[derive(Debug)]
pub struct Package {
    pub bytes: Vec<u8>,
    pub files: BTreeMap<String, Vec<u8>>,
    pub com: ComConfig,
    pub cod: CodConfig,
    pub deployer: PublicKey,
    pub modeler: PublicKey,
    info: Info,
}

fn key_err(file: &str) -> impl FnOnce(KeyError) -> PackageError + '_ {
    move |source| PackageError::Key {
        file: file.to_string(),
        source,
    }
}

/// The `MANIFEST` cod writes for `files` (formats.md, "The package"): every file but the
/// manifest and its signature, in path order, as `HEX  PATH\n`.
pub fn manifest_of(files: &BTreeMap<String, Vec<u8>>) -> String {
    files
        .iter()
        .filter(|(p, _)| *p != MANIFEST && *p != MANIFEST_SIG)
        .map(|(p, b)| format!("{}  {p}\n", hex::encode(Sha256::digest(b))))
        .collect()
}

fn mode_of(path: &str) -> u32 {
    if path == EXECUTABLE || path.ends_with(".sh") {
        0o755
    } else {
        0o644
    }
}

/// The canonical tar of `files` (sorted, fixed metadata); `BadEntry` for a path a ustar
/// header cannot hold (over 100 bytes that no split at a `/` into ≤ 155 + ≤ 100 fits).
pub fn write_tar(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, PackageError> {
    let mut out = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path)
            .map_err(|_| PackageError::BadEntry(path.clone()))?;
        h.set_size(bytes.len() as u64);
        h.set_mode(mode_of(path));
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        out.append(&h, bytes.as_slice())
            .expect("writing to memory cannot fail");
    }
    Ok(out.into_inner().expect("writing to memory cannot fail"))
}

fn read_tar(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, PackageError> {
    let malformed = |e: std::io::Error| PackageError::Malformed(e.to_string());
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        let raw = entry.path_bytes();
        let path = String::from_utf8_lossy(&raw).into_owned();
        let safe = std::str::from_utf8(&raw).is_ok()
            && !path.is_empty()
            && !path.starts_with('/')
            && path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if entry.header().entry_type() != tar::EntryType::Regular || !safe {
            return Err(PackageError::BadEntry(path));
        }
        if files.len() >= MAX_ENTRIES {
            return Err(PackageError::Malformed(format!(
                "more than {MAX_ENTRIES} entries"
            )));
        }
        // The header's size is the sender's claim (GNU base-256 sizes reach 2^95): nothing
        // is allocated for more than the archive holds.
        if entry.size() > bytes.len() as u64 {
            return Err(PackageError::Malformed(format!(
                "{path} claims {} bytes, more than the whole archive",
                entry.size()
            )));
        }
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data).map_err(malformed)?;
        if data.len() as u64 != entry.size() {
            return Err(PackageError::Malformed(format!("{path} is truncated")));
        }
        if files.insert(path.clone(), data).is_some() {
            return Err(PackageError::BadEntry(format!("{path} (twice)")));
        }
    }
    Ok(files)
}

fn text(files: &BTreeMap<String, Vec<u8>>, path: &str) -> Result<String, PackageError> {
    let b = files
        .get(path)
        .ok_or_else(|| PackageError::Missing(path.to_string()))?;
    String::from_utf8(b.clone())
        .map_err(|_| PackageError::Malformed(format!("{path} is not UTF-8 text")))
}

impl Package {
    /// Builds and signs a package. `progress` is told how many bytes are hashed so far.
    pub fn pack(input: PackInput<'_>, progress: &mut dyn FnMut(u64)) -> Result<Self, PackageError> {
        let com = ComConfig::parse(&input.com_ini.0, &input.com_ini.1)?;
        let cod = CodConfig::parse(&input.cod_ini.0, &input.cod_ini.1)?;
        cod.check_against(&com, &input.cod_ini.0)?;
        NodeConfig::parse(&input.node_ini.0, &input.node_ini.1)?;

        let mut files = BTreeMap::new();
        for (name, pem) in &input.public_keys {
            PublicKey::from_pem(pem).map_err(key_err(name))?;
            files.insert(format!("keys/{name}"), pem.as_bytes().to_vec());
        }
        for k in ["keys/com.pub.key", "keys/cod.pub.key"] {
            if !files.contains_key(k) {
                return Err(PackageError::Missing(k.to_string()));
            }
        }
        let deployer = PublicKey::from_pem(&text(&files, "keys/cod.pub.key")?)
            .map_err(key_err("cod.pub.key"))?;
        if input.signer.public() != &deployer {
            return Err(PackageError::SignerMismatch {
                signer: input.signer.public().fingerprint().to_string(),
                store: deployer.fingerprint().to_string(),
            });
        }
        let guide = match input.guide {
            Some(g) => g,
            None => guide::generate(&com, &cod),
        };
        files.insert(EXECUTABLE.into(), input.executable);
        files.insert("com.ini".into(), input.com_ini.1.into_bytes());
        files.insert("cod.ini".into(), input.cod_ini.1.into_bytes());
        files.insert("node.ini".into(), input.node_ini.1.into_bytes());
        files.insert(GUIDE.into(), guide.into_bytes());
        files.insert("deploy.sh".into(), DEPLOY_SH.into());
        files.insert("upgrade.sh".into(), UPGRADE_SH.into());
        files.insert("import.sh".into(), IMPORT_SH.into());
        let manifest = manifest_of(&files);
        files.insert(MANIFEST_SIG.into(), input.signer.sign(manifest.as_bytes()));
        files.insert(MANIFEST.into(), manifest.into_bytes());
        let bytes = write_tar(&files)?;
        Self::open(bytes, progress)
    }

    /// Checks a package completely: structure, manifest, deployer signature, configs,
    /// canonical form. Nothing in it is trusted before this returns `Ok`.
    pub fn open(bytes: Vec<u8>, progress: &mut dyn FnMut(u64)) -> Result<Self, PackageError> {
        if bytes.len() as u64 > MAX_PACKAGE_BYTES {
            return Err(PackageError::TooLarge(bytes.len() as u64));
        }
        let files = read_tar(&bytes)?;
        let manifest = text(&files, MANIFEST)?;
        let sig = files
            .get(MANIFEST_SIG)
            .ok_or_else(|| PackageError::Missing(MANIFEST_SIG.into()))?;
        let mut listed = BTreeMap::new();
        for (i, line) in manifest.lines().enumerate() {
            let (hash, path) = line
                .split_once("  ")
                .ok_or(PackageError::BadManifest(i + 1))?;
            if hash.len() != 64 || listed.insert(path.to_string(), hash.to_string()).is_some() {
                return Err(PackageError::BadManifest(i + 1));
            }
        }
        for path in files
            .keys()
            .filter(|p| *p != MANIFEST && *p != MANIFEST_SIG)
        {
            if !listed.contains_key(path) {
                return Err(PackageError::Unlisted(path.clone()));
            }
        }
        for (path, hash) in &listed {
            let data = files
                .get(path)
                .ok_or_else(|| PackageError::Unpacked(path.clone()))?;
            if hex::encode(Sha256::digest(data)) != *hash {
                return Err(PackageError::HashMismatch(path.clone()));
            }
        }
        for r in REQUIRED {
            if !files.contains_key(r) {
                return Err(PackageError::Missing(r.to_string()));
            }
        }
        let deployer = PublicKey::from_pem(&text(&files, "keys/cod.pub.key")?)
            .map_err(key_err("keys/cod.pub.key"))?;
        deployer
            .verify(manifest.as_bytes(), sig)
            .map_err(|_| PackageError::BadSignature)?;
        let modeler = PublicKey::from_pem(&text(&files, "keys/com.pub.key")?)
            .map_err(key_err("keys/com.pub.key"))?;
        let com = ComConfig::parse("com.ini", &text(&files, "com.ini")?)?;
        let cod = CodConfig::parse("cod.ini", &text(&files, "cod.ini")?)?;
        cod.check_against(&com, "cod.ini")?;
        NodeConfig::parse("node.ini", &text(&files, "node.ini")?)?;
        // The file the deployer made, and no other spelling of it: the tar as cod writes it
        // (a path only pax or GNU headers can hold is not), the manifest as cod writes it —
        // which, the listed files being the files and their hashes checked above, is the
        // listing written out again (`manifest_of` without hashing every file twice).
        let canonical: String = listed
            .iter()
            .filter(|(p, _)| *p != MANIFEST && *p != MANIFEST_SIG)
            .map(|(p, hash)| format!("{hash}  {p}\n"))
            .collect();
        if write_tar(&files).ok().as_ref() != Some(&bytes) || manifest != canonical {
            return Err(PackageError::NotCanonical);
        }
        let info = Info::of(&cod.package_file_name(), &bytes, progress);
        Ok(Self {
            bytes,
            files,
            com,
            cod,
            deployer,
            modeler,
            info,
        })
    }

    /// The cod id: the infohash of this package's torrent.
    pub fn cod_id(&self) -> CodId {
        self.info.infohash()
    }

    pub fn file_name(&self) -> &str {
        &self.info.name
    }

    /// Torrent metainfo of the package, com.ini and cod.ini — the three files a node offers.
    pub fn torrents(&self) -> [Info; 3] {
        [
            self.info.clone(),
            Info::of("com.ini", &self.files["com.ini"], &mut |_| {}),
            Info::of("cod.ini", &self.files["cod.ini"], &mut |_| {}),
        ]
    }

    /// File mode of an entry in the package.
    pub fn mode_of(path: &str) -> u32 {
        mode_of(path)
    }
}

#[cfg(test)]
mod tests;
