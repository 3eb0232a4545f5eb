//! `cod node install-service`: the executable on PATH, the man pages and completions where
//! man and the shells look for them, and a systemd unit that runs this node — or the
//! package's template `cod@.service`. What goes where, and the unit's text, are
//! [`crate::service`]'s; this writes them.

use super::{CmdError, CmdResult, Output};
use crate::cli::InstallServiceArgs;
use crate::keys::SecretKey;
use crate::nodedir::NodeDir;
use crate::service::{self, Layout, Unit};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const SYSTEM_UNITS: &str = "/etc/systemd/system";

pub fn install_service(out: &Output, node: Option<&Path>, a: InstallServiceArgs) -> CmdResult {
    let home = || dirs::home_dir().ok_or_else(|| CmdError::msg("cannot tell your home directory"));
    let prefix = match (&a.prefix, a.systemd_user) {
        (Some(p), _) => absolute(p)?,
        (None, true) => home()?.join(".local"),
        (None, false) => PathBuf::from("/usr/local"),
    };
    let unit_dir = match (&a.unit_dir, a.systemd_user) {
        (Some(d), _) => absolute(d)?,
        (None, true) => dirs::config_dir()
            .ok_or_else(|| CmdError::msg("cannot tell your configuration directory"))?
            .join("systemd/user"),
        (None, false) => PathBuf::from(SYSTEM_UNITS),
    };
    let layout = Layout { prefix };
    let exe = layout.bin();
    let (unit, name) = if a.template {
        (
            Unit::Template { exe: exe.clone() },
            "cod@.service".to_string(),
        )
    } else {
        let dir = NodeDir::find(node)?;
        let root = std::fs::canonicalize(&dir.root).map_err(crate::fsutil::io_err(&dir.root))?;
        let config = dir.node_config()?;
        // The daemon never waits on a prompt: under a service manager an encrypted key
        // needs its passphrase from a file.
        let key_text = std::fs::read_to_string(dir.resolve(&config.key)).unwrap_or_default();
        if SecretKey::pem_is_encrypted(&key_text) && config.passphrase_file.is_none() {
            return Err(CmdError::usage(
                "the node key is encrypted, and a service cannot be asked for its passphrase: \
                 put it in a file (mode 0600) and name it in node.ini's passphrase_file first",
            ));
        }
        let mut writable = vec![root.clone()];
        let data = dir.data_dir(&config);
        if let Ok(data) = std::fs::canonicalize(&data)
            && !data.starts_with(&root)
        {
            writable.push(data);
        }
        let user = if a.systemd_user {
            None
        } else {
            Some(match a.run_as {
                Some(u) => u,
                None => owner(&root)?,
            })
        };
        let unit = Unit::Node {
            exe: exe.clone(),
            dir: root,
            writable,
            user,
        };
        let name = service::unit_name(&dir.deployment.cod_id.to_string(), a.name.as_deref())
            .map_err(CmdError::usage)?;
        (unit, name)
    };
    let text = service::unit_text(&unit, env!("CARGO_PKG_VERSION")).map_err(CmdError::usage)?;

    let staged = |p: &Path| match &a.root {
        Some(r) => r.join(p.strip_prefix("/").unwrap_or(p)),
        None => p.to_path_buf(),
    };
    let unit_path = staged(&unit_dir.join(&name));
    if let Ok(old) = std::fs::read_to_string(&unit_path)
        && old != text
        && !a.force
    {
        return Err(CmdError::usage(format!(
            "{} differs from the unit cod writes; keep your changes in `systemctl edit {name}` \
             (a drop-in) and install again with --force to replace it",
            unit_path.display()
        )));
    }
    let mut written = Vec::new();

    // The executable, unless it is already the one running.
    let bin = staged(&exe);
    let me = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| CmdError::msg(format!("cannot find the cod executable: {e}")))?;
    if std::fs::canonicalize(&bin).ok().as_ref() != Some(&me) {
        let bytes = crate::fsutil::read(&me)?;
        write(&bin, &bytes, 0o755)?;
        written.push(bin);
    }

    let man1 = staged(&layout.man1());
    mkdir(&man1)?;
    clap_mangen::generate_to(command(), &man1).map_err(crate::fsutil::io_err(&man1))?;
    written.push(man1);

    for (shell, path) in layout.completions() {
        let script = crate::cli::completion_script(shell, true);
        let path = staged(&path);
        write(&path, &script, 0o644)?;
        written.push(path);
    }

    write(&unit_path, text.as_bytes(), 0o644)?;
    written.push(unit_path.clone());

    let ctl = if a.systemd_user {
        "systemctl --user"
    } else {
        "systemctl"
    };
    let start = if a.template {
        format!(
            "{ctl} enable --now cod@NAME   # the node in {}/NAME",
            service::PACKAGE_NODES
        )
    } else {
        format!("{ctl} enable --now {name}")
    };
    let next = vec![format!("{ctl} daemon-reload"), start];
    let logs = match (a.systemd_user, a.template) {
        (true, _) => format!("journalctl --user -u {name}"),
        (false, true) => "journalctl -u cod@NAME".to_string(),
        (false, false) => format!("journalctl -u {name}"),
    };
    let mut human = String::new();
    for p in &written {
        human.push_str(&format!("wrote    {}\n", p.display()));
    }
    human.push_str(&format!(
        "unit     {name}\nnext     {}\nlogs     {logs}\n",
        next.join(" && ")
    ));
    if !a.systemd_user && !a.template && text.contains("\nUser=root\n") {
        out.note("note: the unit runs the node as root; --run-as USER runs it as USER (who must own the node directory)");
    }
    out.emit(
        human,
        serde_json::json!({
            "unit": name,
            "unit_file": unit_path,
            "files": written,
            "next": next,
        }),
    );
    Ok(())
}

fn command() -> clap::Command {
    <crate::cli::Cli as clap::CommandFactory>::command()
}

fn absolute(p: &Path) -> Result<PathBuf, CmdError> {
    std::path::absolute(p).map_err(|e| CmdError::usage(format!("{}: {e}", p.display())))
}

/// The name of the user who owns `path`.
fn owner(path: &Path) -> Result<String, CmdError> {
    let uid = std::fs::metadata(path)
        .map_err(crate::fsutil::io_err(path))?
        .uid();
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => Ok(u.name),
        _ => Err(CmdError::usage(format!(
            "{} belongs to uid {uid}, which has no name; say which user runs the node with --run-as",
            path.display()
        ))),
    }
}

fn mkdir(dir: &Path) -> CmdResult {
    std::fs::create_dir_all(dir)
        .map_err(|e| CmdError::from(crate::fsutil::io_err(dir)(e)).hint_root())
}

/// Writes `bytes` to `path` (replacing it, atomically), creating its directory.
fn write(path: &Path, bytes: &[u8], mode: u32) -> CmdResult {
    if let Some(dir) = path.parent() {
        mkdir(dir)?;
    }
    crate::fsutil::write_atomic(path, bytes, mode, true).map_err(|e| CmdError::from(e).hint_root())
}

impl CmdError {
    /// A file the command could not write: system places need root.
    fn hint_root(self) -> Self {
        let text = self.to_string();
        if text.contains("ermission denied") {
            CmdError::msg(format!(
                "{text} (system places need root: run it with sudo, or use --systemd-user)"
            ))
        } else {
            self
        }
    }
}
