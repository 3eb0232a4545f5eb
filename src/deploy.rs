//! `cod deploy`: turns a verified package into a node directory (see [`crate::nodedir`]).
//!
//! Everything is written into a hidden staging directory beside the target and renamed into
//! place at the end, so a failure at any step leaves nothing behind; `deployment.json` is
//! written last, so a crash mid-way is recognizable as "not deployed".

use crate::chain::{Chain, ChainError};
use crate::config::{ConfigError, NodeConfig};
use crate::fsutil::{self, FsError};
use crate::ids::CodId;
use crate::keyfile::{self, KeyFileError, Passphrase};
use crate::keys::{KeyError, SecretKey};
use crate::ledger::Params;
use crate::nodedir::{DEPLOYMENT_FILE, Deployment};
use crate::package::{MAX_PACKAGE_BYTES, Package, PackageError};
use crate::store::{RocksStore, StoreError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{path}: {source}")]
    Package { path: PathBuf, source: PackageError },
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(
        "the package's cod id is {actual}, not the expected {expected}: this is not the cod you were told about"
    )]
    CodIdMismatch { expected: CodId, actual: CodId },
    #[error(
        "cod {cod_id} is already deployed at {dir}; to deploy it again, remove that directory or choose another --dir"
    )]
    AlreadyDeployed { cod_id: CodId, dir: PathBuf },
}

pub struct DeployRequest {
    pub package: PathBuf,
    pub node_ini: Option<PathBuf>,
    /// Import this secret key instead of creating one.
    pub key: Option<PathBuf>,
    /// The base directory; the node goes to `<base>/<cod id>`.
    pub base: PathBuf,
    pub expect_cod_id: Option<CodId>,
    pub passphrase: Passphrase,
    pub bits: usize,
    /// scrypt cost (2^n) of a new key's encryption (`keys::SCRYPT_LOG_N` by default).
    pub scrypt_log_n: u8,
}

#[derive(Debug)]
pub struct Deployed {
    pub dir: PathBuf,
    pub deployment: Deployment,
    pub key_imported: bool,
}

/// Reads and fully verifies a package file.
pub fn read_package(path: &Path, progress: &mut dyn FnMut(u64)) -> Result<Package, DeployError> {
    let pkg_err = |source| DeployError::Package {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(fsutil::io_err(path))?.len();
    if len > MAX_PACKAGE_BYTES {
        return Err(pkg_err(PackageError::TooLarge(len)));
    }
    Package::open(fsutil::read(path)?, progress).map_err(pkg_err)
}

pub fn deploy(req: DeployRequest, progress: &mut dyn FnMut(u64)) -> Result<Deployed, DeployError> {
    let package = read_package(&req.package, progress)?;
    let cod_id = package.cod_id();
    if let Some(expected) = req.expect_cod_id
        && expected != cod_id
    {
        return Err(DeployError::CodIdMismatch {
            expected,
            actual: cod_id,
        });
    }
    let node_ini_text = match &req.node_ini {
        Some(p) => fsutil::read_to_string(p)?,
        None => String::from_utf8_lossy(&package.files["node.ini"]).into_owned(),
    };
    let node_ini_label = req
        .node_ini
        .as_ref()
        .map_or("node.ini (package example)".to_string(), |p| {
            p.display().to_string()
        });
    let node_config = NodeConfig::parse(&node_ini_label, &node_ini_text)?;

    let dir = req.base.join(cod_id.to_string());
    if dir.exists() {
        return Err(DeployError::AlreadyDeployed { cod_id, dir });
    }
    // The key comes first: a wrong passphrase or an exposed key file must fail before any
    // directory exists.
    let (secret_pem, key, key_imported) = match &req.key {
        Some(path) => {
            let key = keyfile::read_secret(path, &req.passphrase)?;
            (fsutil::read_to_string(path)?, key, true)
        }
        None => {
            let passphrase = req.passphrase.for_new("the new node key")?;
            let key = SecretKey::generate(req.bits)?;
            let pem =
                key.to_pem_with(passphrase.as_ref().map(|p| p.as_bytes()), req.scrypt_log_n)?;
            (pem.to_string(), key, false)
        }
    };
    // Account (= node) ids derive from the ledger id: the cod's own, or the earlier version's
    // it continues (cod.ini `ledger`).
    let ledger_id = package.cod.ledger.unwrap_or(cod_id);
    let node_id = key.public().node_id(&ledger_id);

    std::fs::create_dir_all(&req.base).map_err(fsutil::io_err(&req.base))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{cod_id}.partial-"))
        .tempdir_in(&req.base)
        .map_err(fsutil::io_err(&req.base))?;
    let s = staging.path();
    for (path, bytes) in &package.files {
        let target = s.join("package").join(path);
        let parent = target.parent().expect("package paths have a parent");
        std::fs::create_dir_all(parent).map_err(fsutil::io_err(parent))?;
        fsutil::write_atomic(&target, bytes, Package::mode_of(path), false)?;
    }
    fsutil::write_atomic(&s.join(package.file_name()), &package.bytes, 0o644, false)?;
    fsutil::write_atomic(&s.join("node.ini"), node_ini_text.as_bytes(), 0o644, false)?;
    fsutil::write_atomic(&s.join("node.sec.key"), secret_pem.as_bytes(), 0o600, false)?;
    fsutil::write_atomic(
        &s.join("node.pub.key"),
        key.public().to_pem().as_bytes(),
        0o644,
        false,
    )?;

    let params = Params::new(ledger_id, package.com.clone(), package.deployer.clone());
    let now = crate::clock::now();
    // The store starts with this node's own account opened (its seq-0 record, which
    // publishes its key), so peers can pay it as soon as they sync.
    let init_store = |data: &Path| -> Result<(), DeployError> {
        std::fs::create_dir_all(data).map_err(fsutil::io_err(data))?;
        let store = RocksStore::create(&data.join("store"), &cod_id)?;
        let mut chain = Chain::load(params.clone(), Box::new(store))?;
        let open = chain.ledger().make_open(&key);
        chain.ingest(open)?;
        Ok(())
    };
    let data_dir_is_inside = node_config.data_dir.is_relative();
    if data_dir_is_inside {
        init_store(&s.join(&node_config.data_dir))?;
    }
    std::fs::rename(staging.path(), &dir).map_err(fsutil::io_err(&dir))?;
    // The staging directory is now `dir`; don't let its guard delete anything.
    let _ = staging.keep();
    let finish = || -> Result<Deployment, DeployError> {
        if !data_dir_is_inside {
            std::fs::create_dir_all(&node_config.data_dir)
                .map_err(fsutil::io_err(&node_config.data_dir))?;
            drop(RocksStore::create(
                &node_config.data_dir.join("store"),
                &cod_id,
            )?);
        }
        let deployment = Deployment {
            cod_id,
            node_id,
            package: package.file_name().to_string(),
            software_version: env!("CARGO_PKG_VERSION").to_string(),
            deployed_at: now,
        };
        let json = serde_json::to_string_pretty(&deployment).expect("plain struct serializes");
        fsutil::write_atomic(&dir.join(DEPLOYMENT_FILE), json.as_bytes(), 0o644, false)?;
        fsutil::sync_dir(&req.base)?;
        Ok(deployment)
    };
    match finish() {
        Ok(deployment) => Ok(Deployed {
            dir,
            deployment,
            key_imported,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}
