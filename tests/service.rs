//! Running cod as a service (issue 20): `cod node install-service` and the Debian package.
//! The units are checked by systemd's own reader (`systemd-analyze verify`), in a private
//! mount namespace where the staged executable stands where the unit says it is — nothing
//! is installed on this machine.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// `systemd-analyze verify UNIT` with the directory `bin` laid over `over` (a private mount
/// namespace: nothing outside this command sees it). Returns what systemd said, if it
/// refused.
fn verify(unit: &Path, bin: &Path, over: &str) -> Result<(), String> {
    let script = format!(
        "mount -t overlay overlay -o lowerdir=\"$1\":{over} {over} && systemd-analyze verify --man=no \"$2\""
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c", &script, "sh"])
        .arg(bin)
        .arg(unit)
        .output()
        .expect("unshare and systemd-analyze (run .ci/setup)");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn unit_line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in\n{text}"))
}

/// Every subcommand's man page name (`cod-node-run.1`).
fn man_pages() -> Vec<String> {
    fn walk(cmd: &clap::Command, name: &str, all: &mut Vec<String>) {
        all.push(format!("{name}.1"));
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub, &format!("{name}-{}", sub.get_name()), all);
        }
    }
    let mut all = Vec::new();
    walk(
        &<cod::cli::Cli as clap::CommandFactory>::command(),
        "cod",
        &mut all,
    );
    all.sort();
    all
}

#[test]
fn install_service_puts_cod_on_path_with_its_pages_completions_and_a_unit_systemd_reads() {
    let w = World::new();
    let (pkg, cod_id) = w.pack_demo();
    let key = w.example_key("node1.sec.key");
    // A node directory whose path a unit file must quote and escape.
    let base = w.path("my nodes 100% $HOME");
    let j = w
        .cod(&[
            "--json",
            "deploy",
            "--package",
            s(&pkg),
            "--key",
            s(&key),
            "--dir",
            s(&base),
        ])
        .ok()
        .json();
    let dir = PathBuf::from(j["dir"].as_str().unwrap());
    let stage = w.path("stage");
    let install = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "--node",
            s(&dir),
            "node",
            "install-service",
            "--root",
            s(&stage),
            "--run-as",
            "daemon",
        ];
        args.extend_from_slice(extra);
        w.cod(&args)
    };
    let out = install(&[]).ok().json();
    let name = format!("cod-{}.service", &cod_id[..12]);
    assert_eq!(out["unit"], name.as_str());
    let unit_file = stage.join("etc/systemd/system").join(&name);
    assert_eq!(out["unit_file"], s(&unit_file));
    assert_eq!(
        out["next"],
        serde_json::json!([
            "systemctl daemon-reload",
            format!("systemctl enable --now {name}")
        ])
    );

    // The executable on PATH, byte for byte this one.
    let bin = stage.join("usr/local/bin/cod");
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(cod_bin()).unwrap()
    );
    assert_eq!(mode(&bin) & 0o777, 0o755);
    // A page per subcommand, where man looks.
    assert_eq!(
        entries(&stage.join("usr/local/share/man/man1")),
        man_pages()
    );
    let page =
        std::fs::read_to_string(stage.join("usr/local/share/man/man1/cod-node-install-service.1"))
            .unwrap();
    assert!(page.contains("systemd\\-user"), "{page}");
    // Each shell's completions, where it looks by itself.
    for (file, shell) in [
        ("bash-completion/completions/cod", "bash"),
        ("zsh/site-functions/_cod", "zsh"),
        ("fish/vendor_completions.d/cod.fish", "fish"),
    ] {
        let path = stage.join("usr/local/share").join(file);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            w.cod(&["completions", shell]).ok().stdout(),
            "{file}"
        );
    }

    // The unit runs this node in the foreground, as the user named, and systemd reads it
    // so (with the staged executable where the unit says it is).
    let text = std::fs::read_to_string(&unit_file).unwrap();
    let quoted = format!(
        "\"{}\"",
        s(&std::fs::canonicalize(&dir).unwrap()).replace('%', "%%")
    );
    assert_eq!(
        unit_line(&text, "ExecStart"),
        format!(
            "\"/usr/local/bin/cod\" --node {} node run",
            quoted.replace('$', "$$")
        )
    );
    assert_eq!(unit_line(&text, "ReadWritePaths"), quoted);
    assert_eq!(unit_line(&text, "User"), "daemon");
    verify(&unit_file, &stage.join("usr/local/bin"), "/usr/local/bin").unwrap();
    // (And the check can fail: a unit systemd cannot read is refused.)
    let broken = w.write(
        "broken.service",
        &text.replace("ExecStart=\"", "ExecStart=\"\\q"),
    );
    assert!(verify(&broken, &stage.join("usr/local/bin"), "/usr/local/bin").is_err());

    // Installing again changes nothing; a unit the operator edited is kept, unless forced.
    install(&[]).ok();
    assert_eq!(std::fs::read_to_string(&unit_file).unwrap(), text);
    std::fs::write(&unit_file, format!("{text}# mine\n")).unwrap();
    install(&[]).usage_with("systemctl edit");
    assert!(
        std::fs::read_to_string(&unit_file)
            .unwrap()
            .ends_with("# mine\n")
    );
    install(&["--force"]).ok();
    assert_eq!(std::fs::read_to_string(&unit_file).unwrap(), text);

    // Names and users a unit file cannot hold are refused before anything is written.
    install(&["--name", "x\nExecStartPre=/bin/sh", "--force"]).usage_with("unit name");
    w.cod(&[
        "--node",
        s(&dir),
        "node",
        "install-service",
        "--root",
        s(&w.path("stage2")),
        "--run-as",
        "Root User",
    ])
    .usage_with("user name");
    assert!(!w.path("stage2").exists());

    // Without root: the user's own service manager, under the home directory.
    let out = w
        .cod_env(
            &[
                "--json",
                "--node",
                s(&dir),
                "node",
                "install-service",
                "--systemd-user",
            ],
            &[("XDG_CONFIG_HOME", s(&w.path("config")))],
        )
        .ok()
        .json();
    let user_unit = w.path("config/systemd/user").join(&name);
    assert_eq!(out["unit_file"], s(&user_unit));
    assert_eq!(out["next"][0], "systemctl --user daemon-reload");
    assert!(w.path(".local/bin/cod").is_file());
    assert!(w.path(".local/share/man/man1/cod.1").is_file());
    let text = std::fs::read_to_string(&user_unit).unwrap();
    assert!(!text.contains("\nUser="), "{text}");
    assert!(
        unit_line(&text, "ExecStart").starts_with(&format!("\"{}\"", s(&w.path(".local/bin/cod"))))
    );
}

/// A service cannot be asked for a passphrase: an encrypted key needs passphrase_file.
#[test]
fn install_service_refuses_a_node_whose_key_it_could_not_open() {
    let w = World::new();
    let (pkg, _) = w.pack_demo();
    let base = w.path("nodes");
    w.cod_env(
        &["deploy", "--package", s(&pkg), "--dir", s(&base)],
        &[("COD_PASSPHRASE", "pw")],
    )
    .ok();
    let dir = entries(&base).pop().unwrap();
    let stage = w.path("stage");
    w.cod(&[
        "--node",
        s(&base.join(&dir)),
        "node",
        "install-service",
        "--root",
        s(&stage),
    ])
    .usage_with("passphrase_file");
    assert!(!stage.exists(), "nothing written");
}

/// `.ci/deb` packs what `cod node install-service --template` lays out: `dpkg` lists it,
/// the executable runs, the maintainer scripts parse, and systemd reads the template unit.
#[test]
fn the_deb_holds_the_executable_pages_completions_and_a_unit_for_the_cod_user() {
    let w = World::new();
    let out = stdout_of(
        std::process::Command::new(Path::new(REPO).join(".ci/deb"))
            .arg(cod_bin())
            .arg(w.path("out"))
            .env("COD_DEB_COMPRESSION", "none")
            .current_dir(REPO),
    );
    let deb = PathBuf::from(out.trim());
    let version = env!("CARGO_PKG_VERSION");
    let arch = tool("dpkg", &["--print-architecture"]);
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("cod_{version}_{}.deb", arch.trim())
    );

    let listed = tool("dpkg", &["-c", s(&deb)]);
    let files: Vec<&str> = listed
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    let mut expected: Vec<String> = [
        "./usr/bin/cod",
        "./lib/systemd/system/cod@.service",
        "./usr/share/bash-completion/completions/cod",
        "./usr/share/zsh/site-functions/_cod",
        "./usr/share/fish/vendor_completions.d/cod.fish",
        "./usr/share/doc/cod/README.md",
        "./usr/share/doc/cod/copyright",
    ]
    .map(String::from)
    .into();
    expected.extend(
        man_pages()
            .iter()
            .map(|p| format!("./usr/share/man/man1/{p}.gz")),
    );
    let mut files: Vec<String> = files.iter().map(|f| f.to_string()).collect();
    files.sort();
    expected.sort();
    assert_eq!(files, expected);
    assert!(
        listed.contains("-rwxr-xr-x root/root") && listed.contains("./usr/bin/cod"),
        "{listed}"
    );

    let field = |f: &str| tool("dpkg-deb", &["-f", s(&deb), f]).trim().to_string();
    assert_eq!(field("Package"), "cod");
    assert_eq!(field("Version"), version);
    let depends = field("Depends");
    for lib in ["libc6", "libstdc++6", "adduser"] {
        assert!(depends.contains(lib), "{depends}");
    }

    let x = w.path("x");
    tool("dpkg-deb", &["-x", s(&deb), s(&x)]);
    let ctl = w.path("ctl");
    tool("dpkg-deb", &["-e", s(&deb), s(&ctl)]);
    for script in ["postinst", "postrm"] {
        tool("sh", &["-n", s(&ctl.join(script))]);
        assert_eq!(mode(&ctl.join(script)) & 0o777, 0o755);
    }
    let postinst = std::fs::read_to_string(ctl.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system --group --home /var/lib/cod"));
    assert!(
        tool(s(&x.join("usr/bin/cod")), &["--version"]).contains(version),
        "the packed executable runs"
    );

    // The template, as systemd reads it for an instance.
    let template = std::fs::read_to_string(x.join("lib/systemd/system/cod@.service")).unwrap();
    assert_eq!(
        unit_line(&template, "ExecStart"),
        "\"/usr/bin/cod\" --node /var/lib/cod/%i node run"
    );
    assert_eq!(unit_line(&template, "User"), "cod");
    std::fs::create_dir_all(w.path("units")).unwrap();
    std::fs::write(w.path("units/cod@.service"), &template).unwrap();
    let instance = w.path("units/cod@bakery.service");
    verify(&instance, &x.join("usr/bin"), "/usr/bin").unwrap();
}
