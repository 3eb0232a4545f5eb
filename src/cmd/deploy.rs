//! `cod deploy`: the member's command.

use super::{CmdResult, Output};
use crate::cli::DeployArgs;
use crate::deploy::{self, DeployRequest};
use crate::fsutil;
use crate::nodedir;
use serde_json::json;

pub fn deploy(out: &Output, a: DeployArgs) -> CmdResult {
    let base = match a.dir {
        Some(d) => d,
        None => nodedir::default_base()?,
    };
    let len = std::fs::metadata(&a.package)
        .map_err(fsutil::io_err(&a.package))?
        .len();
    let bar = super::progress_bar(len, "verifying package");
    let done = deploy::deploy(
        DeployRequest {
            package: a.package,
            node_ini: a.node_ini,
            key: a.key,
            base,
            expect_cod_id: a.expect_cod_id,
            passphrase: a.passphrase.source(),
            bits: a.bits,
            scrypt_log_n: if a.openssl_compatible {
                crate::keys::OPENSSL_SCRYPT_LOG_N
            } else {
                crate::keys::SCRYPT_LOG_N
            },
        },
        &mut |n| bar.set_position(n),
    )?;
    bar.finish_and_clear();
    let d = &done.deployment;
    let next = format!("cod --node {} node start", done.dir.display());
    out.emit(
        format!(
            "deployed {} into {}\ncod id   {}\nnode id  {}\nkey      {}\nnext:    {next}\n",
            d.package,
            done.dir.display(),
            d.cod_id,
            d.node_id,
            if done.key_imported {
                "imported"
            } else {
                "created"
            },
        ),
        json!({
            "dir": done.dir,
            "cod_id": d.cod_id,
            "node_id": d.node_id,
            "package": d.package,
            "key_imported": done.key_imported,
            "next": next,
        }),
    );
    Ok(())
}
