//! `cod pack`: the deployer's command.

use super::{CmdResult, Output};
use crate::cli::PackArgs;
use crate::fsutil;
use crate::keyfile;
use crate::package::{PackInput, Package};
use serde_json::json;
use std::collections::BTreeMap;

pub fn pack(out: &Output, a: PackArgs) -> CmdResult {
    let label = |p: &std::path::Path| p.display().to_string();
    let com_ini = (label(&a.com), fsutil::read_to_string(&a.com)?);
    let cod_ini = (label(&a.cod), fsutil::read_to_string(&a.cod)?);
    let node_ini = match &a.node_ini {
        Some(p) => (label(p), fsutil::read_to_string(p)?),
        None => (
            "node.ini (template)".into(),
            include_str!("../../ini-templates/node.ini").into(),
        ),
    };
    let guide = a.guide.as_deref().map(fsutil::read_to_string).transpose()?;
    let mut public_keys = BTreeMap::new();
    let entries = std::fs::read_dir(&a.keys).map_err(fsutil::io_err(&a.keys))?;
    for e in entries {
        let e = e.map_err(fsutil::io_err(&a.keys))?;
        // (Names go into the package as they are: one that is not UTF-8 would have to be
        // altered, and two such could become one.)
        let Ok(name) = e.file_name().into_string() else {
            return Err(super::CmdError::usage(format!(
                "{}: a key file name that is not UTF-8; rename it",
                e.path().display()
            )));
        };
        if name.ends_with(".pub.key") {
            public_keys.insert(name, fsutil::read_to_string(&e.path())?);
        }
    }
    let sign_key_path = a
        .sign_key
        .clone()
        .unwrap_or_else(|| a.keys.join("cod.sec.key"));
    let signer = keyfile::read_secret(&sign_key_path, &a.passphrase.source())?;
    let exe_path = match &a.exe {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(fsutil::io_err(std::path::Path::new("/proc/self/exe")))?,
    };
    let executable = fsutil::read(&exe_path)?;
    if let Some(home) = names_builder_home(&executable) {
        // On stderr even with --json: it is about what the package gives away.
        eprintln!(
            "warning: {} names this machine's home directory ({home}): every member who gets \
             the package can read it. Pack a release build made with `just release` (it remaps \
             build paths), or give one with --exe.",
            exe_path.display()
        );
    }

    let bar = super::progress_bar(executable.len() as u64, "hashing");
    let package = Package::pack(
        PackInput {
            com_ini,
            cod_ini,
            node_ini,
            guide,
            public_keys,
            executable,
            signer: &signer,
        },
        &mut |n| bar.set_position(n),
    )?;
    bar.finish_and_clear();

    std::fs::create_dir_all(&a.out).map_err(fsutil::io_err(&a.out))?;
    let package_path = a.out.join(package.file_name());
    // Identical inputs give identical bytes, so re-packing over an identical package is fine;
    // anything else is never silently replaced.
    if package_path.exists() && fsutil::read(&package_path)? != package.bytes {
        return Err(fsutil::FsError::Exists(package_path).into());
    }
    fsutil::write_atomic(&package_path, &package.bytes, 0o644, true)?;
    let mut torrents = Vec::new();
    for info in package.torrents() {
        let path = a.out.join(format!("{}.torrent", info.name));
        let bytes = info.torrent_file();
        if path.exists() && fsutil::read(&path)? != bytes {
            return Err(fsutil::FsError::Exists(path).into());
        }
        fsutil::write_atomic(&path, &bytes, 0o644, true)?;
        torrents.push((info, path));
    }
    let cod_id = package.cod_id();
    let mut human = format!(
        "package  {} ({} bytes)\n",
        package_path.display(),
        package.bytes.len()
    );
    for (info, path) in &torrents {
        human.push_str(&format!(
            "torrent  {}\nmagnet   {}\n",
            path.display(),
            info.magnet()
        ));
    }
    human.push_str(&format!("cod id   {cod_id}\n"));
    let files: Vec<_> = torrents
        .iter()
        .map(|(info, path)| json!({"name": info.name, "torrent": path, "infohash": info.infohash(), "magnet": info.magnet()}))
        .collect();
    out.emit(
        human,
        json!({
            "cod_id": cod_id,
            "package": package_path,
            "size": package.bytes.len(),
            "files": files,
        }),
    );
    Ok(())
}

/// The builder's home directory, if the executable names it (build paths left in it).
fn names_builder_home(executable: &[u8]) -> Option<String> {
    let home = std::env::var("HOME").ok()?;
    let home = home.trim_end_matches('/');
    // As a directory ("/root/", not the "/root" in "…/roots.rs"); "/" would match anything.
    let needle = format!("{home}/");
    (!home.is_empty() && memchr::memmem::find(executable, needle.as_bytes()).is_some())
        .then(|| home.to_string())
}
