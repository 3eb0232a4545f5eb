//! The layout of a deployed node's directory, and finding it:
//!
//! ```text
//! <base>/<cod id>/            one directory per cod id (base: $XDG_DATA_HOME/cod)
//!   deployment.json           cod id, node id, package name; written last by `cod deploy`
//!   node.ini                  this node's config
//!   node.pub.key node.sec.key this node's key pair (secret 0600)
//!   NAME-VERSION.cod.tar      the package, as deployed (offered to peers)
//!   package/                  the package's files, unpacked (bin/cod, com.ini, cod.ini, keys/ ...)
//!   store/                    RocksDB (under node.ini's data_dir)
//! ```

use crate::config::{CodConfig, ComConfig, NodeConfig};
use crate::fsutil;
use crate::ids::{CodId, NodeId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DEPLOYMENT_FILE: &str = "deployment.json";
pub const NODE_ENV: &str = "COD_NODE";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Deployment {
    pub cod_id: CodId,
    pub node_id: NodeId,
    pub package: String,
    pub software_version: String,
    pub deployed_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeDirError {
    #[error(transparent)]
    Fs(#[from] fsutil::FsError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(
        "{0} is not a deployed node (no {DEPLOYMENT_FILE}); deploy one with `cod deploy --package PKG`"
    )]
    NotDeployed(PathBuf),
    #[error("{path}: damaged {DEPLOYMENT_FILE}: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error(
        "no node deployed under {0}; deploy one with `cod deploy --package PKG`, or name one with --node DIR"
    )]
    NoneDeployed(PathBuf),
    #[error(
        "several nodes are deployed under {base}; choose one with --node DIR (or {NODE_ENV}):\n{list}"
    )]
    Ambiguous { base: PathBuf, list: String },
    #[error("cannot tell the data directory: set $XDG_DATA_HOME or $HOME, or pass --dir/--node")]
    NoDataDir,
    #[error(transparent)]
    KeyFile(#[from] crate::keyfile::KeyFileError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
}

/// The default base directory holding one directory per deployed cod.
pub fn default_base() -> Result<PathBuf, NodeDirError> {
    dirs::data_dir()
        .map(|d| d.join("cod"))
        .ok_or(NodeDirError::NoDataDir)
}

/// A deployed node's directory, with its deployment record and configs loaded.
#[derive(Debug, Clone)]
pub struct NodeDir {
    pub root: PathBuf,
    pub deployment: Deployment,
}

impl NodeDir {
    pub fn open(root: &Path) -> Result<Self, NodeDirError> {
        let file = root.join(DEPLOYMENT_FILE);
        if !file.exists() {
            return Err(NodeDirError::NotDeployed(root.to_path_buf()));
        }
        let text = fsutil::read_to_string(&file)?;
        let deployment = serde_json::from_str(&text).map_err(|e| NodeDirError::Damaged {
            path: root.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            root: root.to_path_buf(),
            deployment,
        })
    }

    /// The node named by `--node` / `$COD_NODE`, else the only one under the default base.
    pub fn find(explicit: Option<&Path>) -> Result<Self, NodeDirError> {
        if let Some(p) = explicit {
            return Self::open(p);
        }
        let base = default_base()?;
        let mut found = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                if e.path().join(DEPLOYMENT_FILE).exists() {
                    found.push(e.path());
                }
            }
        }
        found.sort();
        match found.len() {
            0 => Err(NodeDirError::NoneDeployed(base)),
            1 => Self::open(&found[0]),
            _ => Err(NodeDirError::Ambiguous {
                base,
                list: found
                    .iter()
                    .map(|p| format!("  {}", p.display()))
                    .collect::<Vec<_>>()
                    .join("\n"),
            }),
        }
    }

    pub fn node_ini_path(&self) -> PathBuf {
        self.root.join("node.ini")
    }

    pub fn node_config(&self) -> Result<NodeConfig, NodeDirError> {
        let path = self.node_ini_path();
        Ok(NodeConfig::parse(
            &path.display().to_string(),
            &fsutil::read_to_string(&path)?,
        )?)
    }

    pub fn com_config(&self) -> Result<ComConfig, NodeDirError> {
        let path = self.root.join("package/com.ini");
        Ok(ComConfig::parse(
            &path.display().to_string(),
            &fsutil::read_to_string(&path)?,
        )?)
    }

    pub fn cod_config(&self) -> Result<CodConfig, NodeDirError> {
        let path = self.root.join("package/cod.ini");
        Ok(CodConfig::parse(
            &path.display().to_string(),
            &fsutil::read_to_string(&path)?,
        )?)
    }

    /// A path from node.ini, resolved against the node directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        self.root.join(p)
    }

    pub fn data_dir(&self, config: &NodeConfig) -> PathBuf {
        self.resolve(&config.data_dir)
    }

    pub fn store_path(&self, config: &NodeConfig) -> PathBuf {
        self.data_dir(config).join("store")
    }

    /// The daemon's control socket.
    pub fn socket_path(&self, config: &NodeConfig) -> PathBuf {
        self.data_dir(config).join(crate::control::SOCKET_FILE)
    }

    pub fn pid_path(&self, config: &NodeConfig) -> PathBuf {
        self.data_dir(config).join("node.pid")
    }

    pub fn log_path(&self, config: &NodeConfig) -> PathBuf {
        self.data_dir(config).join("node.log")
    }

    pub fn package_path(&self) -> PathBuf {
        self.root.join(&self.deployment.package)
    }

    /// What the ledger rules need: cod id, com.ini, the deployer's key.
    pub fn params(&self) -> Result<crate::ledger::Params, NodeDirError> {
        let deployer = crate::keyfile::read_public(&self.root.join("package/keys/cod.pub.key"))?;
        // A deployment that continues an earlier version's ledger keeps its id: records carry
        // it and account ids derive from it.
        let ledger = self.cod_config()?.ledger.unwrap_or(self.deployment.cod_id);
        Ok(crate::ledger::Params::new(
            ledger,
            self.com_config()?,
            deployer,
        ))
    }

    /// Opens this node's store (fails with `Locked` while the daemon holds it).
    pub fn open_store(&self) -> Result<crate::store::RocksStore, NodeDirError> {
        let config = self.node_config()?;
        Ok(crate::store::RocksStore::open_with_cache(
            &self.store_path(&config),
            &self.deployment.cod_id,
            usize::try_from(config.store_cache).unwrap_or(usize::MAX),
        )?)
    }

    /// The node's ledger, loaded from its store (which this process then holds); with
    /// `full`, its stored state recomputed from the records first.
    pub fn load_chain(&self, full: bool) -> Result<crate::chain::Chain, NodeDirError> {
        let store = Box::new(self.open_store()?);
        let params = self.params()?;
        Ok(if full {
            crate::chain::Chain::recompute(params, store)?
        } else {
            crate::chain::Chain::load(params, store)?
        })
    }

    /// The node's ledger, read without holding the store: a daemon can start meanwhile.
    pub fn read_chain(&self) -> Result<crate::chain::Chain, NodeDirError> {
        let config = self.node_config()?;
        // A reader holds every table file of the store open (see `open_read_only`).
        crate::node::raise_nofile_limit();
        let store = crate::store::RocksStore::open_read_only(
            &self.store_path(&config),
            &self.deployment.cod_id,
        )?;
        Ok(crate::chain::Chain::load_read_only(
            self.params()?,
            Box::new(store),
        )?)
    }

    /// The node's secret key, with node.ini's passphrase file unless the caller gives one.
    /// (Its account is [`Deployment::node_id`]: after `cod key rekey` the key no longer
    /// derives it.)
    pub fn secret_key(
        &self,
        passphrase: &crate::keyfile::Passphrase,
    ) -> Result<crate::keys::SecretKey, NodeDirError> {
        let config = self.node_config()?;
        let mut passphrase = passphrase.clone();
        if passphrase.file.is_none() {
            passphrase.file = config.passphrase_file.as_ref().map(|p| self.resolve(p));
        }
        Ok(crate::keyfile::read_secret(
            &self.resolve(&config.key),
            &passphrase,
        )?)
    }
}

/// Where `cod key rekey` writes the new secret key before the ledger takes it (`KEY.next`).
pub fn pending_key_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.file_name().unwrap_or_default().to_os_string();
    name.push(".next");
    key_file.with_file_name(name)
}
/// Does process `pid` (a daemon's, from its pid file) still run? One that exited but that
/// its parent has not yet reaped (a zombie: the daemon's parent is init, which may reap
/// late) does not.
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    // Linux: the state follows the parenthesised command name in /proc/PID/stat.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_process_that_exited_is_not_alive_even_unreaped() {
        assert!(super::process_alive(std::process::id() as i32));
        assert!(!super::process_alive(0));
        assert!(!super::process_alive(-1));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // It exits at once; until it is waited for, it is a zombie.
        let t = std::time::Instant::now();
        while super::process_alive(pid) {
            assert!(t.elapsed().as_secs() < 30, "a zombie counted as alive");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok(),
            "still there, unreaped"
        );
        child.wait().unwrap();
        assert!(!super::process_alive(pid));
    }
}
