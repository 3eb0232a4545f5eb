//! `cod upgrade check | download | deploy | handover`, `cod deployments`, `cod import` (MISSION.md
//! "Node upgrade", "Node deployment" 4; docs/upgrade.md).

use super::backend::{Backend, daemon};
use super::{CmdError, CmdResult, Output};
use crate::cli::{DeploymentAction, DeploymentsArgs, ImportArgs, UpgradeCommand};
use crate::control::ask;
use crate::fsutil;
use crate::ids::CodId;
use crate::node::{Offer, Offers};
use crate::nodedir::{DEPLOYMENT_FILE, NodeDir};
use crate::package::Package;
use crate::signature_requests::RequestView;
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Marks a deployment whose daemon must not start.
pub const DISABLED_FILE: &str = "disabled";

fn confirm(question: &str, yes: bool) -> Result<(), CmdError> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CmdError::msg("no terminal to confirm on: add --yes"));
    }
    let ok = dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| CmdError::msg(e.to_string()))?;
    if ok {
        Ok(())
    } else {
        Err(CmdError::msg("cancelled"))
    }
}

pub fn upgrade(out: &Output, node: Option<&Path>, c: UpgradeCommand) -> CmdResult {
    let dir = NodeDir::find(node)?;
    match c {
        UpgradeCommand::Check => {
            let v: Offers = daemon(&dir)?.ask(ask::Upgrades {})?;
            let mut h = String::new();
            for o in &v.offers {
                h.push_str(&format!(
                    "cod {} ({}) — {} — on {} peer(s)\n",
                    o.cod_version,
                    o.cod_id,
                    o.package,
                    o.peers.len()
                ));
            }
            if v.offers.is_empty() {
                h.push_str("no newer version seen on peers\n");
            } else {
                h.push_str("download with: cod upgrade download\n");
            }
            out.emit(h, &v);
            Ok(())
        }
        UpgradeCommand::Download { cod_id, yes } => download(out, &dir, cod_id, yes),
        UpgradeCommand::Deploy {
            package,
            node_ini,
            passphrase,
        } => deploy_beside(out, &dir, package, node_ini, passphrase),
        UpgradeCommand::Handover { to, version, rules } => {
            let v: RequestView = daemon(&dir)?.ask(ask::Handover {
                to: to.to_string(),
                version,
                rules,
            })?;
            out.emit(
                format!(
                    "proposed {} ({}): once a quorum of signers approves it (cod sign approve), this version keeps no later record\n",
                    super::prefix(&v.id.to_string(), 12),
                    v.summary
                ),
                &v,
            );
            Ok(())
        }
    }
}

fn our_deployer(dir: &NodeDir) -> Result<crate::keys::PublicKey, CmdError> {
    Ok(crate::keyfile::read_public(
        &dir.root.join("package/keys/cod.pub.key"),
    )?)
}

/// A package is an upgrade of this node's cod only if the same deployer key signed it.
fn check_same_deployer(dir: &NodeDir, pkg: &Package) -> Result<(), CmdError> {
    let ours = our_deployer(dir)?;
    if pkg.deployer != ours {
        return Err(CmdError::msg(format!(
            "refused: {} is signed by another deployer key ({}), not this cod's ({})",
            pkg.file_name(),
            pkg.deployer.fingerprint(),
            ours.fingerprint()
        )));
    }
    Ok(())
}

fn download(out: &Output, dir: &NodeDir, cod_id: Option<CodId>, yes: bool) -> CmdResult {
    if dir.node_config()?.proxy.is_some() {
        // The BitTorrent download connects to the peers offering the package directly.
        return Err(CmdError::msg(
            "this node sends its traffic through [node] proxy, and a download over BitTorrent \
             would connect to the peers directly: get the package through the proxy (e.g. \
             `torsocks cod fetch COD_ID --no-dht --out DIR` with a peer's address in the \
             magnet link) and deploy it with `cod upgrade deploy --package PKG`",
        ));
    }
    let offers: Offers = daemon(dir)?.ask(ask::Upgrades {})?;
    let newest = |a: &&Offer| semver::Version::parse(&a.cod_version).ok();
    let offer = match cod_id {
        Some(id) => offers.offers.iter().find(|o| o.cod_id == id.to_string()),
        None => offers.offers.iter().max_by_key(newest),
    }
    .ok_or_else(|| CmdError::msg("no such newer version seen on peers (see `cod upgrade check`)"))?
    .clone();
    let id: CodId = offer.cod_id.parse()?;
    let peers: Vec<std::net::SocketAddr> =
        offer.peers.iter().filter_map(|a| a.parse().ok()).collect();
    confirm(
        &format!(
            "Download cod {} ({}) from {} peer(s)?",
            offer.cod_version,
            id,
            peers.len()
        ),
        yes,
    )?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::msg(e.to_string()))?;
    let (info, bytes) = super::fetch::download(&runtime, &peers, id)?;
    // Every piece matched the infohash; now the package itself must check out.
    let pkg = Package::open(bytes, &mut |_| {})
        .map_err(|e| CmdError::msg(format!("the downloaded package is refused: {e}")))?;
    if pkg.cod_id() != id || pkg.file_name() != info.name {
        return Err(CmdError::msg(format!(
            "the downloaded package is cod {}, not {id}",
            pkg.cod_id()
        )));
    }
    check_same_deployer(dir, &pkg)?;
    let target = dir.root.join("upgrades").join(pkg.file_name());
    std::fs::create_dir_all(target.parent().expect("has a parent"))
        .map_err(fsutil::io_err(&dir.root))?;
    if target.exists() && fsutil::read(&target)? != pkg.bytes {
        return Err(fsutil::FsError::Exists(target).into());
    }
    fsutil::write_atomic(&target, &pkg.bytes, 0o644, true)?;
    out.emit(
        format!(
            "downloaded cod {} ({id}) to {}\nnext: cod --node {} upgrade deploy\n",
            pkg.cod.version,
            target.display(),
            dir.root.display()
        ),
        json!({"cod_id": id, "cod_version": pkg.cod.version.to_string(), "package": target}),
    );
    Ok(())
}

/// The newest package in the node's `upgrades/` directory.
fn newest_download(dir: &NodeDir) -> Result<PathBuf, CmdError> {
    let up = dir.root.join("upgrades");
    let mut best: Option<(semver::Version, PathBuf)> = None;
    for e in std::fs::read_dir(&up)
        .map_err(|_| CmdError::msg("nothing downloaded yet: run `cod upgrade download` first"))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(version) = name
            .strip_suffix(crate::config::cod::PACKAGE_SUFFIX)
            .and_then(|n| n.rsplit_once('-'))
            .and_then(|(_, v)| semver::Version::parse(v).ok())
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| version > *b) {
            best = Some((version, e.path()));
        }
    }
    best.map(|(_, p)| p)
        .ok_or_else(|| CmdError::msg("nothing downloaded yet: run `cod upgrade download` first"))
}

fn deploy_beside(
    out: &Output,
    dir: &NodeDir,
    package: Option<PathBuf>,
    node_ini: Option<PathBuf>,
    passphrase: crate::cli::PassphraseArgs,
) -> CmdResult {
    let path = match package {
        Some(p) => p,
        None => newest_download(dir)?,
    };
    let pkg = crate::deploy::read_package(&path, &mut |_| {})?;
    check_same_deployer(dir, &pkg)?;
    let config = dir.node_config()?;
    let base = dir
        .root
        .parent()
        .ok_or_else(|| CmdError::msg("the node directory has no parent"))?
        .to_path_buf();
    let mut pass = passphrase.source();
    if pass.file.is_none() {
        pass.file = config.passphrase_file.as_ref().map(|p| dir.resolve(p));
    }
    let done = crate::deploy::deploy(
        crate::deploy::DeployRequest {
            package: path,
            node_ini: Some(node_ini.unwrap_or_else(|| dir.node_ini_path())),
            key: Some(dir.resolve(&config.key)),
            base,
            expect_cod_id: None,
            passphrase: pass,
            bits: crate::keys::DEFAULT_BITS,
            scrypt_log_n: crate::keys::SCRYPT_LOG_N, // unused: the node's key is imported
        },
        &mut |_| {},
    )?;
    let mut note = String::new();
    if config.listen.port() != 0 {
        note = format!(
            "note: both nodes' node.ini listen on port {}; change one before running both\n",
            config.listen.port()
        );
    }
    let (new, old) = (done.dir.display(), dir.root.display());
    out.emit(
        format!(
            "deployed cod {} beside this node: {new}\nnode id  {}\n{note}next:\n  cod --node {new} import --from {old}\n  cod --node {new} node start\n  cod deployments disable {}   (when the old one should stay off)\n",
            pkg.cod.version, done.deployment.node_id, dir.deployment.cod_id
        ),
        json!({"dir": done.dir, "cod_id": done.deployment.cod_id, "node_id": done.deployment.node_id, "old": dir.root}),
    );
    Ok(())
}

fn base_of(node: Option<&Path>, dir: Option<PathBuf>) -> Result<PathBuf, CmdError> {
    if let Some(d) = dir {
        return Ok(d);
    }
    if let Some(n) = node
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(crate::nodedir::NODE_ENV).map(PathBuf::from))
    {
        return n
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| CmdError::msg("the node directory has no parent"));
    }
    Ok(crate::nodedir::default_base()?)
}

fn state_of(d: &NodeDir) -> &'static str {
    if d.root.join(DISABLED_FILE).exists() {
        return "disabled";
    }
    match daemon(d) {
        Ok(_) => "running",
        Err(_) => "stopped",
    }
}

pub fn deployments(out: &Output, node: Option<&Path>, a: DeploymentsArgs) -> CmdResult {
    let base = base_of(node, a.dir)?;
    let mut all = Vec::new();
    for e in std::fs::read_dir(&base)
        .map_err(fsutil::io_err(&base))?
        .flatten()
    {
        if e.path().join(DEPLOYMENT_FILE).exists()
            && let Ok(d) = NodeDir::open(&e.path())
        {
            all.push(d);
        }
    }
    all.sort_by(|x, y| x.deployment.package.cmp(&y.deployment.package));
    let find = |prefix: &str| -> Result<NodeDir, CmdError> {
        let hits: Vec<&NodeDir> = all
            .iter()
            .filter(|d| {
                d.deployment
                    .cod_id
                    .to_string()
                    .starts_with(&prefix.to_lowercase())
            })
            .collect();
        match hits.as_slice() {
            [one] if prefix.len() >= 6 => Ok((*one).clone()),
            [] => Err(CmdError::msg(format!(
                "no deployment {prefix} under {}",
                base.display()
            ))),
            _ => Err(CmdError::msg(format!(
                "{prefix} is ambiguous or too short: give at least 6 digits of the cod id"
            ))),
        }
    };
    match a.action.unwrap_or(DeploymentAction::List) {
        DeploymentAction::List => {
            let mut h = format!(
                "{:<9} {:<42} {:<30} {}\n",
                "STATE", "COD ID", "PACKAGE", "NODE"
            );
            let mut list = Vec::new();
            for d in &all {
                let state = state_of(d);
                h.push_str(&format!(
                    "{state:<9} {:<42} {:<30} {}\n",
                    d.deployment.cod_id,
                    d.deployment.package,
                    d.deployment.node_id.short()
                ));
                list.push(json!({"state": state, "cod_id": d.deployment.cod_id, "package": d.deployment.package, "node_id": d.deployment.node_id, "dir": d.root}));
            }
            if all.is_empty() {
                h.push_str("(none)\n");
            }
            out.emit(h, json!({"base": base, "deployments": list}));
        }
        DeploymentAction::Disable { cod_id } => {
            let d = find(&cod_id)?;
            if state_of(&d) == "running" {
                return Err(CmdError::msg(format!(
                    "it is running: stop it first (cod --node {} node stop)",
                    d.root.display()
                )));
            }
            fsutil::write_atomic(
                &d.root.join(DISABLED_FILE),
                b"disabled by cod deployments disable\n",
                0o644,
                true,
            )?;
            out.emit(
                format!("disabled {}\n", d.deployment.cod_id),
                json!({"cod_id": d.deployment.cod_id, "state": "disabled"}),
            );
        }
        DeploymentAction::Enable { cod_id } => {
            let d = find(&cod_id)?;
            let _ = std::fs::remove_file(d.root.join(DISABLED_FILE));
            out.emit(
                format!("enabled {}\n", d.deployment.cod_id),
                json!({"cod_id": d.deployment.cod_id, "state": state_of(&d)}),
            );
        }
        DeploymentAction::Remove { cod_id, yes } => {
            let d = find(&cod_id)?;
            if state_of(&d) == "running" {
                return Err(CmdError::msg(format!(
                    "it is running: stop it first (cod --node {} node stop)",
                    d.root.display()
                )));
            }
            confirm(
                &format!("Delete {} with its data and node key?", d.root.display()),
                yes,
            )?;
            std::fs::remove_dir_all(&d.root).map_err(fsutil::io_err(&d.root))?;
            out.emit(
                format!("removed {}\n", d.root.display()),
                json!({"cod_id": d.deployment.cod_id, "removed": d.root}),
            );
        }
    }
    Ok(())
}

pub fn import(out: &Output, node: Option<&Path>, a: ImportArgs) -> CmdResult {
    let new = NodeDir::find(node)?;
    let old = NodeDir::open(&a.from)?;
    if old.root == new.root {
        return Err(CmdError::msg("--from names this very node"));
    }
    let (old_params, new_params) = (old.params()?, new.params()?);
    let same_ledger = old_params.cod == new_params.cod;

    // 1. Check everything before changing anything: the old chain (through its daemon if it
    //    runs) must verify completely.
    let archive = Backend::open(&old)?.export()?;
    let records = crate::archive::read(&archive, &old_params.cod)
        .map_err(|e| CmdError::msg(format!("{}: {e}", old.root.display())))?;
    let (report, old_ledger) =
        crate::chain::verify_records(old_params.clone(), records, Default::default());
    if !report.ok() {
        return Err(CmdError::msg(format!(
            "the old deployment's chain does not verify; nothing was imported:\n  {}",
            report.problems.join("\n  ")
        )));
    }
    let old_pub = crate::keyfile::read_public(&old.root.join("node.pub.key"))?;
    let new_pub = crate::keyfile::read_public(&new.root.join("node.pub.key"))?;

    // 2. The key: the new node takes the old one, so its node id derives from it.
    let mut key_note = "the same key".to_string();
    if old_pub != new_pub {
        let secret = crate::keyfile::read_secret(&old.resolve(&old.node_config()?.key), &{
            let mut p = a.passphrase.source();
            if p.file.is_none() {
                p.file = old
                    .node_config()?
                    .passphrase_file
                    .as_ref()
                    .map(|f| old.resolve(f));
            }
            p
        })?;
        let node_id = adopt_key(
            &new,
            &secret,
            &fsutil::read(&old.resolve(&old.node_config()?.key))?,
            // Its account, in the ledger that continues; a new ledger opens the key's own.
            same_ledger.then_some(old.deployment.node_id),
        )?;
        key_note = format!("the old key (node id now {node_id})");
    }
    let new = NodeDir::open(&new.root)?;

    // 3. The chain, where the new cod continues the old ledger.
    let imported = match same_ledger {
        true => Some(Backend::open_writable(&new)?.import(&crate::chain::export(&old_ledger))?),
        false => None,
    };
    let balance = Backend::open(&new)?.balance(None, new.deployment.node_id)?;
    let human = if let Some(imported) = &imported {
        format!(
            "imported {} records ({} new) from {} with {key_note}\nthis node's balance: {}\n",
            imported.read,
            imported.added,
            old.root.display(),
            serde_json::json!(balance.assets)
        )
    } else {
        format!(
            "carried {key_note}; cod {} starts a ledger of its own (its cod.ini names no `ledger`), so the old chain and balances stay with {}\n",
            new.deployment.cod_id,
            old.root.display()
        )
    };
    out.emit(human, json!({"same_ledger": same_ledger, "imported": imported, "node_id": new.deployment.node_id, "balance": balance}));
    Ok(())
}

/// Refuses while the node's daemon runs: it holds the key about to change.
pub(super) fn key_may_change(node: &NodeDir) -> Result<(), CmdError> {
    if daemon(node).is_ok() {
        return Err(CmdError::msg(
            "stop this node's daemon first (cod node stop): its key is about to change; start it again after",
        ));
    }
    Ok(())
}

/// Writes the node's public key file (node.pub.key) for its key now.
pub(super) fn write_public_key(
    node: &NodeDir,
    key: &crate::keys::PublicKey,
) -> Result<(), CmdError> {
    fsutil::write_atomic(
        &node.root.join("node.pub.key"),
        key.to_pem().as_bytes(),
        0o644,
        true,
    )?;
    Ok(())
}

/// Gives a node that holds nothing but its own opening another key: `key_file` (the
/// secret key `secret`, as it is to be stored) replaces its key, its store is renewed with
/// the new key's opening, and its node id becomes the new key's. Returns that node id.
pub(super) fn adopt_key(
    node: &NodeDir,
    secret: &crate::keys::SecretKey,
    key_file: &[u8],
    account: Option<crate::ids::AccountId>,
) -> Result<crate::ids::AccountId, CmdError> {
    key_may_change(node)?;
    let chain = node.read_chain()?;
    let own =
        chain.ledger().len() == 1 && chain.ledger().key_of(&node.deployment.node_id).is_some();
    drop(chain);
    if !own {
        return Err(CmdError::msg(
            "this node already has records under its own key; its key cannot be replaced (deploy a new node with --key instead)",
        ));
    }
    let config = node.node_config()?;
    let params = node.params()?;
    fsutil::write_atomic(&node.resolve(&config.key), key_file, 0o600, true)?;
    write_public_key(node, secret.public())?;
    // A fresh store, opened with the adopted key's account.
    let store_path = node.store_path(&config);
    std::fs::remove_dir_all(&store_path).map_err(fsutil::io_err(&store_path))?;
    let store = crate::store::RocksStore::create(&store_path, &node.deployment.cod_id)?;
    let mut chain = crate::chain::Chain::load(params.clone(), Box::new(store))?;
    let opened = secret.public().node_id(&params.cod);
    let account = account.unwrap_or(opened);
    if account == opened {
        chain.ingest(chain.ledger().make_open(secret))?;
    }
    // Else a key that replaced the account's first: the account's records, the replacement
    // among them, come from its chain (`cod import`, or sync once the node runs).
    let mut deployment = node.deployment.clone();
    deployment.node_id = account;
    fsutil::write_atomic(
        &node.root.join(DEPLOYMENT_FILE),
        serde_json::to_string_pretty(&deployment)
            .expect("serializes")
            .as_bytes(),
        0o644,
        true,
    )?;
    Ok(deployment.node_id)
}
