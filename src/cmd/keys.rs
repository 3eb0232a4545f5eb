//! `cod keygen`, `cod key show`.

use super::{CmdResult, Output};
use crate::cli::{KeyShowArgs, KeygenArgs};
use crate::fsutil;
use crate::keyfile;
use crate::keys::SecretKey;
use serde_json::json;

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
