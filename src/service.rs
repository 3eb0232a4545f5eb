//! What `cod node install-service` and the Debian package (`.ci/deb`) put on a machine: where
//! each file goes under a prefix, and the systemd unit that runs a node. Pure: the command
//! (`cmd::install`) writes the files.
//!
//! A unit file is a small language: a newline in a path would start a directive of its own,
//! `%` starts a specifier and `$` a variable in a command line. A path goes in only quoted and
//! escaped, and one systemd could not read back as written (not UTF-8, a control character)
//! is refused.

use std::path::{Path, PathBuf};

/// The user the package's template unit runs nodes as, and whose home holds them.
pub const PACKAGE_USER: &str = "cod";

/// Where the package's nodes live: `cod@NAME` runs the node in `/var/lib/cod/NAME`.
pub const PACKAGE_NODES: &str = "/var/lib/cod";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServiceError {
    #[error("{0:?} cannot go in a systemd unit: {1}")]
    Path(PathBuf, &'static str),
    #[error(
        "{0:?} is not a user name systemd takes (lowercase letters, digits, _ and -, at most 32, not starting with a digit or -)"
    )]
    User(String),
    #[error(
        "{0:?} is not a unit name to use (letters, digits, _, - and ., at most 64, not starting with - or .)"
    )]
    Name(String),
}

/// Where the files go under `prefix` (`/usr/local`, `~/.local`, `/usr` for the package).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub prefix: PathBuf,
}

impl Layout {
    pub fn bin(&self) -> PathBuf {
        self.prefix.join("bin/cod")
    }

    pub fn man1(&self) -> PathBuf {
        self.prefix.join("share/man/man1")
    }

    /// Each shell's completion script, where that shell looks for it by itself.
    pub fn completions(&self) -> [(clap_complete::Shell, PathBuf); 3] {
        use clap_complete::Shell;
        let share = self.prefix.join("share");
        [
            (Shell::Bash, share.join("bash-completion/completions/cod")),
            (Shell::Zsh, share.join("zsh/site-functions/_cod")),
            (
                Shell::Fish,
                share.join("fish/vendor_completions.d/cod.fish"),
            ),
        ]
    }
}

/// What a unit runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// One node: `exe --node dir node run`, as `user` — or, with no user, a unit of the
    /// user's own service manager (`systemctl --user`). `writable`: what the daemon writes
    /// (the node directory, and its data directory when elsewhere).
    Node {
        exe: PathBuf,
        dir: PathBuf,
        writable: Vec<PathBuf>,
        user: Option<String>,
    },
    /// The package's template: `cod@NAME` runs the node in [`PACKAGE_NODES`]`/NAME` as
    /// [`PACKAGE_USER`].
    Template { exe: PathBuf },
}

/// The unit's name for a node: `cod-` and the first 12 digits of its cod id, unless the
/// operator names it.
pub fn unit_name(cod_id: &str, chosen: Option<&str>) -> Result<String, ServiceError> {
    let name = match chosen {
        Some(n) => n.strip_suffix(".service").unwrap_or(n).to_string(),
        None => format!("cod-{}", cod_id.get(..12).unwrap_or(cod_id)),
    };
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(ServiceError::Name(name));
    }
    Ok(format!("{name}.service"))
}

/// The unit file's text.
pub fn unit_text(unit: &Unit, version: &str) -> Result<String, ServiceError> {
    let mut t = format!(
        "# Written by `cod node install-service` (cod {version}). Change it with\n\
         # `systemctl edit UNIT` (a drop-in), so that installing again keeps your changes.\n"
    );
    let (description, exe, dir, writable, user) = match unit {
        Unit::Node {
            exe,
            dir,
            writable,
            user,
        } => (
            format!("cod node in {}", specifiers(text(dir)?)),
            exe,
            command_word(dir)?,
            writable
                .iter()
                .map(|p| path_word(p))
                .collect::<Result<Vec<_>, _>>()?,
            user.as_deref().map(check_user).transpose()?,
        ),
        Unit::Template { exe } => {
            let dir = format!("{PACKAGE_NODES}/%i");
            (
                "cod node %i".to_string(),
                exe,
                dir.clone(),
                vec![dir],
                Some(PACKAGE_USER),
            )
        }
    };
    t.push_str(&format!(
        "[Unit]\n\
         Description={description}\n\
         Documentation=man:cod-node-run(1)\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n"
    ));
    if let Some(user) = user {
        t.push_str(&format!("User={user}\n"));
    }
    t.push_str(&format!(
        "ExecStart={} --node {dir} node run\n\
         # SIGHUP: read node.ini again (`cod config reload`).\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         # A daemon whose task fails exits 1; it is started again.\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         # Room for the connection budget (the daemon caps public connections below this minus 512).\n\
         LimitNOFILE=65536\n\
         NoNewPrivileges=yes\n",
        command_word(exe)?
    ));
    // (A user's own service manager cannot set these up without privileges.)
    if user.is_some() {
        t.push_str(&format!(
            "PrivateTmp=yes\n\
             ProtectSystem=strict\n\
             ProtectHome=read-only\n\
             ReadWritePaths={}\n",
            writable.join(" ")
        ));
    }
    t.push_str(&format!(
        "\n[Install]\nWantedBy={}\n",
        if user.is_some() {
            "multi-user.target"
        } else {
            "default.target"
        }
    ));
    Ok(t)
}

/// `path` as systemd reads it back: UTF-8, absolute, no control characters.
fn text(path: &Path) -> Result<&str, ServiceError> {
    let s = path
        .to_str()
        .ok_or_else(|| ServiceError::Path(path.into(), "it is not UTF-8"))?;
    if !path.is_absolute() {
        return Err(ServiceError::Path(path.into(), "it is not absolute"));
    }
    if s.chars().any(char::is_control) {
        return Err(ServiceError::Path(
            path.into(),
            "it holds a control character",
        ));
    }
    Ok(s)
}

/// `%` stands for itself (a specifier otherwise).
fn specifiers(s: &str) -> String {
    s.replace('%', "%%")
}

/// A path as one quoted word of a list such as `ReadWritePaths=`.
fn path_word(path: &Path) -> Result<String, ServiceError> {
    Ok(format!(
        "\"{}\"",
        specifiers(text(path)?)
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    ))
}

/// A path as one quoted word of a command line (`ExecStart=`), where `$` also stands for
/// itself (a variable otherwise).
fn command_word(path: &Path) -> Result<String, ServiceError> {
    Ok(path_word(path)?.replace('$', "$$"))
}

fn check_user(user: &str) -> Result<&str, ServiceError> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && !user.starts_with(|c: char| c.is_ascii_digit() || c == '-')
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if ok {
        Ok(user)
    } else {
        Err(ServiceError::User(user.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn node(dir: &str, user: Option<&str>) -> Unit {
        Unit::Node {
            exe: "/usr/local/bin/cod".into(),
            dir: dir.into(),
            writable: vec![dir.into()],
            user: user.map(String::from),
        }
    }

    fn line<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
        text.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .collect()
    }

    #[test]
    fn a_node_unit_runs_the_node_in_the_foreground_as_its_user() {
        let t = unit_text(&node("/srv/cod/bakery", Some("baker")), "1.2.3").unwrap();
        assert_eq!(
            line(&t, "ExecStart"),
            ["\"/usr/local/bin/cod\" --node \"/srv/cod/bakery\" node run"]
        );
        assert_eq!(line(&t, "User"), ["baker"]);
        assert_eq!(line(&t, "ReadWritePaths"), ["\"/srv/cod/bakery\""]);
        assert_eq!(line(&t, "ProtectSystem"), ["strict"]);
        assert_eq!(line(&t, "Restart"), ["on-failure"]);
        assert_eq!(line(&t, "ExecReload"), ["/bin/kill -HUP $MAINPID"]);
        assert_eq!(line(&t, "WantedBy"), ["multi-user.target"]);
        assert!(t.contains("cod 1.2.3"));
        // Every directive is in a section, once.
        for key in ["ExecStart", "Description", "LimitNOFILE", "NoNewPrivileges"] {
            assert_eq!(line(&t, key).len(), 1, "{key}");
        }
    }

    #[test]
    fn a_user_unit_has_no_user_and_no_sandbox_it_could_not_set_up() {
        let t = unit_text(&node("/home/ann/cod", None), "1").unwrap();
        assert!(line(&t, "User").is_empty());
        assert!(line(&t, "ProtectSystem").is_empty());
        assert!(line(&t, "ReadWritePaths").is_empty());
        assert_eq!(line(&t, "WantedBy"), ["default.target"]);
    }

    #[test]
    fn the_template_runs_the_packages_nodes_as_the_packages_user() {
        let t = unit_text(
            &Unit::Template {
                exe: "/usr/bin/cod".into(),
            },
            "1",
        )
        .unwrap();
        assert_eq!(
            line(&t, "ExecStart"),
            ["\"/usr/bin/cod\" --node /var/lib/cod/%i node run"]
        );
        assert_eq!(line(&t, "User"), ["cod"]);
        assert_eq!(line(&t, "ReadWritePaths"), ["/var/lib/cod/%i"]);
        assert_eq!(line(&t, "Description"), ["cod node %i"]);
    }

    /// A path is one word, and means itself: quotes, backslashes, `%` and `$` are escaped;
    /// a newline (a directive of its own), other control characters, a relative path or
    /// one that is not UTF-8 is refused.
    #[test]
    fn paths_are_quoted_escaped_or_refused() {
        let t = unit_text(&node("/srv/my \"cod\" 100% $HOME\\x", Some("cod")), "1").unwrap();
        assert_eq!(
            line(&t, "ExecStart"),
            ["\"/usr/local/bin/cod\" --node \"/srv/my \\\"cod\\\" 100%% $$HOME\\\\x\" node run"]
        );
        assert_eq!(
            line(&t, "ReadWritePaths"),
            ["\"/srv/my \\\"cod\\\" 100%% $HOME\\\\x\""]
        );
        assert_eq!(
            line(&t, "Description"),
            ["cod node in /srv/my \"cod\" 100%% $HOME\\x"]
        );
        for bad in [
            "/srv/a\nExecStartPre=/bin/sh",
            "/srv/a\rb",
            "/srv/\u{7f}",
            "srv/a",
        ] {
            assert!(
                matches!(
                    unit_text(&node(bad, Some("cod")), "1"),
                    Err(ServiceError::Path(..))
                ),
                "{bad:?}"
            );
        }
        let not_utf8 = PathBuf::from(std::ffi::OsStr::from_bytes(b"/srv/\xff"));
        let unit = Unit::Node {
            exe: "/usr/bin/cod".into(),
            dir: not_utf8.clone(),
            writable: vec![not_utf8],
            user: None,
        };
        assert!(matches!(unit_text(&unit, "1"), Err(ServiceError::Path(..))));
    }

    #[test]
    fn user_and_unit_names_are_checked() {
        for good in ["cod", "_cod", "cod-1", "a"] {
            assert!(
                unit_text(&node("/srv/x", Some(good)), "1").is_ok(),
                "{good}"
            );
        }
        for bad in ["", "Cod", "1cod", "-cod", "co d", "cod\n", &"c".repeat(33)] {
            assert_eq!(
                unit_text(&node("/srv/x", Some(bad)), "1"),
                Err(ServiceError::User(bad.into()))
            );
        }
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(unit_name(&id, None).unwrap(), "cod-0123456789ab.service");
        assert_eq!(unit_name(&id, Some("bakery")).unwrap(), "bakery.service");
        assert_eq!(
            unit_name(&id, Some("bakery.service")).unwrap(),
            "bakery.service"
        );
        for bad in [
            "",
            "-x",
            ".x",
            "a/b",
            "a b",
            "a\nb",
            &"x".repeat(65),
            "..%i",
        ] {
            assert!(unit_name(&id, Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_layout_puts_each_file_where_its_reader_looks() {
        let l = Layout {
            prefix: "/usr".into(),
        };
        assert_eq!(l.bin(), Path::new("/usr/bin/cod"));
        assert_eq!(l.man1(), Path::new("/usr/share/man/man1"));
        let c = l.completions();
        assert_eq!(
            c[0].1,
            Path::new("/usr/share/bash-completion/completions/cod")
        );
        assert_eq!(c[1].1, Path::new("/usr/share/zsh/site-functions/_cod"));
        assert_eq!(
            c[2].1,
            Path::new("/usr/share/fish/vendor_completions.d/cod.fish")
        );
    }
}
