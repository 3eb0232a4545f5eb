//! `cod keygen`, `cod key show | passwd | export | import | rekey`.

use super::{CmdError, CmdResult, Output};
use crate::cli::{KeyShowArgs, KeygenArgs, NewKeyArgs, PassphraseArgs};
use crate::fsutil;
use crate::keyfile;
use crate::keys::SecretKey;
use crate::nodedir::NodeDir;
use pkcs8::der::zeroize::Zeroizing;
use serde_json::json;
use std::path::{Path, PathBuf};

pub fn keygen(out: &Output, a: KeygenArgs) -> CmdResult {
    let stem = a.role.file_stem();
    let public_path = a.out.join(format!("{stem}.pub.key"));
    let secret_path = a.out.join(format!("{stem}.sec.key"));
    for p in [&public_path, &secret_path] {
        if p.exists() {
            return Err(fsutil::FsError::Exists(p.clone()).into());
        }
    }
    let passphrase = a
        .passphrase
        .source()
        .for_new(&secret_path.display().to_string())?;
    out.note(format!("generating a {}-bit RSA key…", a.bits));
    let key = SecretKey::generate(a.bits)?;
    std::fs::create_dir_all(&a.out).map_err(fsutil::io_err(&a.out))?;
    keyfile::write_pair(
        &public_path,
        &secret_path,
        &key,
        passphrase.as_ref().map(|p| p.as_str()),
        if a.openssl_compatible {
            crate::keys::OPENSSL_SCRYPT_LOG_N
        } else {
            crate::keys::SCRYPT_LOG_N
        },
    )?;
    let fp = key.public().fingerprint();
    out.emit(
        format!(
            "public key  {}\nsecret key  {} ({})\nfingerprint {fp}\n",
            public_path.display(),
            secret_path.display(),
            if passphrase.is_some() {
                "encrypted"
            } else {
                "NOT encrypted"
            },
        ),
        json!({
            "role": stem,
            "bits": a.bits,
            "public_key": public_path,
            "secret_key": secret_path,
            "encrypted": passphrase.is_some(),
            "fingerprint": fp,
        }),
    );
    Ok(())
}

pub fn show(out: &Output, a: KeyShowArgs) -> CmdResult {
    let text = fsutil::read_to_string(&a.file)?;
    let (public, kind) = if text.contains("PRIVATE KEY-----") {
        let secret = keyfile::read_secret(&a.file, &a.passphrase.source())?;
        let kind = if SecretKey::pem_is_encrypted(&text) {
            "secret (encrypted)"
        } else {
            "secret (not encrypted)"
        };
        (secret.public().clone(), kind)
    } else {
        (keyfile::read_public(&a.file)?, "public")
    };
    let cod_id = match (&a.cod_id, &a.package) {
        (Some(id), _) => Some(*id),
        (None, Some(pkg)) => {
            let bytes = std::fs::metadata(pkg).map_err(fsutil::io_err(pkg))?.len();
            let bar = super::progress_bar(bytes, "checking package");
            let p = crate::deploy::read_package(pkg, &mut |n| bar.set_position(n))?;
            bar.finish_and_clear();
            Some(p.cod_id())
        }
        (None, None) => None,
    };
    let node_id = cod_id.map(|c| public.node_id(&c));
    let mut human = format!(
        "file        {}\nkind        {kind}\nbits        {}\nfingerprint {}\n",
        a.file.display(),
        public.bits(),
        public.fingerprint()
    );
    if let (Some(c), Some(n)) = (cod_id, node_id) {
        human.push_str(&format!("cod id      {c}\nnode id     {n}\n"));
    }
    out.emit(
        human,
        json!({
            "file": a.file,
            "kind": kind,
            "bits": public.bits(),
            "fingerprint": public.fingerprint(),
            "cod_id": cod_id,
            "node_id": node_id,
        }),
    );
    Ok(())
}

/// The secret key of `file`, or of the node (its node.ini's key and passphrase file).
fn node_or_file_key(
    node: Option<&Path>,
    file: Option<&Path>,
    passphrase: &PassphraseArgs,
) -> Result<(PathBuf, SecretKey), CmdError> {
    match file {
        Some(f) => Ok((
            f.to_path_buf(),
            keyfile::read_secret(f, &passphrase.source())?,
        )),
        None => {
            let dir = NodeDir::find(node)?;
            let path = dir.resolve(&dir.node_config()?.key);
            Ok((path, dir.secret_key(&passphrase.source())?))
        }
    }
}

/// The key as PEM, encrypted as `new` says (asking for the new passphrase if it must).
fn pem_for(key: &SecretKey, new: &NewKeyArgs, what: &str) -> Result<Zeroizing<String>, CmdError> {
    let p = new.passphrase().for_new(what)?;
    Ok(key.to_pem_with(p.as_ref().map(|p| p.as_bytes()), new.scrypt_log_n())?)
}

pub fn passwd(
    out: &Output,
    node: Option<&Path>,
    file: Option<PathBuf>,
    new: &NewKeyArgs,
    passphrase: &PassphraseArgs,
) -> CmdResult {
    let (path, key) = node_or_file_key(node, file.as_deref(), passphrase)?;
    let pem = pem_for(&key, new, &path.display().to_string())?;
    fsutil::write_atomic(&path, pem.as_bytes(), 0o600, true)?;
    let encrypted = SecretKey::pem_is_encrypted(&pem);
    out.emit(
        format!(
            "{} is now {}\n{}",
            path.display(),
            if encrypted {
                "encrypted with the new passphrase"
            } else {
                "NOT encrypted"
            },
            if file.is_none() {
                "mind node.ini's passphrase_file: the daemon opens the key with it\n"
            } else {
                ""
            }
        ),
        json!({"file": path, "encrypted": encrypted, "fingerprint": key.public().fingerprint()}),
    );
    Ok(())
}

pub fn export(
    out: &Output,
    node: Option<&Path>,
    to: &Path,
    new: &NewKeyArgs,
    passphrase: &PassphraseArgs,
) -> CmdResult {
    if to.exists() {
        return Err(fsutil::FsError::Exists(to.to_path_buf()).into());
    }
    let (_, key) = node_or_file_key(node, None, passphrase)?;
    let pem = pem_for(&key, new, &format!("the backup {}", to.display()))?;
    fsutil::write_atomic(to, pem.as_bytes(), 0o600, false)?;
    let fp = key.public().fingerprint();
    out.emit(
        format!(
            "wrote {} ({}), key fingerprint {fp}\nkeep it apart from this machine: without it (or the key here) the account cannot be recovered\n",
            to.display(),
            if SecretKey::pem_is_encrypted(&pem) { "encrypted" } else { "NOT encrypted" }
        ),
        json!({"file": to, "encrypted": SecretKey::pem_is_encrypted(&pem), "fingerprint": fp}),
    );
    Ok(())
}

pub fn import(
    out: &Output,
    node: Option<&Path>,
    file: &Path,
    account: Option<&str>,
    new: &NewKeyArgs,
    passphrase: &PassphraseArgs,
) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let account = account
        .map(|a| a.trim().parse::<crate::ids::AccountId>())
        .transpose()
        .map_err(|e| CmdError::msg(format!("--account: {e}")))?;
    let key = keyfile::read_secret(file, &passphrase.source())?;
    let pem = pem_for(&key, new, &format!("the key of {}", dir.root.display()))?;
    let node_id = super::upgrade::adopt_key(&dir, &key, pem.as_bytes(), account)?;
    out.emit(
        format!(
            "{} now holds the key {} and its account: node id {node_id}\n",
            dir.root.display(),
            key.public().fingerprint()
        ),
        json!({"node": dir.root, "node_id": node_id, "fingerprint": key.public().fingerprint()}),
    );
    Ok(())
}

pub fn rekey(
    out: &Output,
    node: Option<&Path>,
    new: &NewKeyArgs,
    passphrase: &PassphraseArgs,
) -> CmdResult {
    let dir = NodeDir::find(node)?;
    super::upgrade::key_may_change(&dir)?;
    let config = dir.node_config()?;
    let key_file = dir.resolve(&config.key);
    let old = dir.secret_key(&passphrase.source())?;
    let account = dir.deployment.node_id;
    let mut chain = dir.load_chain(false)?;
    if chain.ledger().key_of(&account).as_ref() != Some(old.public()) {
        return Err(CmdError::msg(format!(
            "this node's key {} is not its account's key in force here{}: only that key can replace itself",
            old.public().fingerprint().short(),
            chain.ledger().key_of(&account).map_or(
                " (the account is not open here yet)".into(),
                |k| format!(" ({})", k.fingerprint().short())
            )
        )));
    }
    out.note(format!("generating a {}-bit RSA key…", old.public().bits()));
    let fresh = SecretKey::generate(old.public().bits())?;
    let pem = pem_for(&fresh, new, "the new key")?;
    // The new key is on disk before the ledger names it, so it is never lost to a crash
    // between the two (the daemon then says where it is).
    let next = crate::nodedir::pending_key_path(&key_file);
    fsutil::write_atomic(&next, pem.as_bytes(), 0o600, true)?;
    let record = chain
        .ledger()
        .make_rekey(account, &old, fresh.public(), crate::clock::now())
        .map_err(|e| CmdError {
            code: super::EXIT_REFUSED,
            error: anyhow::anyhow!(
                "cannot replace the key: {}",
                crate::views::explain(chain.ledger(), &e)
            ),
        })?;
    chain.ingest(record.clone())?;
    let was_signer = chain
        .ledger()
        .state()
        .signers
        .contains(&old.public().fingerprint());
    drop(chain);
    let mut replaced = key_file.file_name().unwrap_or_default().to_os_string();
    replaced.push(format!(".replaced-{}", crate::clock::now()));
    let replaced = key_file.with_file_name(replaced);
    std::fs::rename(&key_file, &replaced).map_err(fsutil::io_err(&key_file))?;
    std::fs::rename(&next, &key_file).map_err(fsutil::io_err(&next))?;
    super::upgrade::write_public_key(&dir, fresh.public())?;
    let (old_fp, new_fp) = (old.public().fingerprint(), fresh.public().fingerprint());
    out.emit(
        format!(
            "account {account} moved from key {} to key {} (record {}, seq {})\n\
             the new key is {}; the old one, which signs nothing more for the account, is kept as {}\n\
             back up the new key now (cod key export --out FILE); the record spreads when the node starts,\n\
             and is final once the next distribution's checkpoint covers it (until then the old key could still race it)\n{}",
            old_fp.short(),
            new_fp.short(),
            record.hash().short(),
            record.seq(),
            key_file.display(),
            replaced.display(),
            if was_signer {
                format!(
                    "the old key is in the signer set in force: signer sets name keys, so ask the signers to run\n  cod signers change --add {new_fp} --remove {old_fp}\n"
                )
            } else {
                String::new()
            }
        ),
        json!({
            "account": account,
            "old": old_fp,
            "new": new_fp,
            "record": record.hash(),
            "seq": record.seq(),
            "key_file": key_file,
            "replaced": replaced,
        }),
    );
    Ok(())
}
