//! `cod node run | start | stop | status`, `cod status`, `cod peers`, `cod dht bootstrap`.

use super::backend::daemon;
use super::{CmdError, CmdResult, Output};
use crate::cli::{PassphraseArgs, PeersCommand};
use crate::control::ask;
use crate::keyfile::PASSPHRASE_ENV;
use crate::keys::SecretKey;
use crate::node::peers::{Banned, PeerAdded, PeerRemoved, PeersView, Unbanned};
use crate::nodedir::NodeDir;
use crate::views::Status;
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// A disabled deployment's daemon does not start.
fn refuse_disabled(dir: &NodeDir) -> CmdResult {
    if dir.root.join(super::upgrade::DISABLED_FILE).exists() {
        return Err(CmdError::msg(format!(
            "this deployment is disabled; enable it with `cod deployments enable {}`",
            dir.deployment.cod_id
        )));
    }
    Ok(())
}

pub fn run(
    node: Option<&Path>,
    passphrase_stdin: bool,
    full: bool,
    log_file: Option<&Path>,
    passphrase: PassphraseArgs,
) -> CmdResult {
    let dir = NodeDir::find(node)?;
    refuse_disabled(&dir)?;
    init_log(&dir.node_config()?.log, log_file)?;
    crate::node::run(
        dir,
        crate::node::RunOptions {
            passphrase: passphrase.source(),
            passphrase_stdin,
            full,
        },
    )?;
    Ok(())
}

/// The daemon's log: node.ini `[log]` (`COD_LOG` overrides its level), to stderr or to a
/// file it rotates and reopens on SIGHUP; its level can change while it runs
/// (`cod config reload`).
fn init_log(config: &crate::config::node::LogConfig, file: Option<&Path>) -> CmdResult {
    use crate::node::logfile::{self, LogFile};
    use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};
    let from_env = std::env::var("COD_LOG").ok();
    let filter = match &from_env {
        Some(v) => {
            EnvFilter::try_new(v).map_err(|e| CmdError::usage(format!("COD_LOG={v:?}: {e}")))?
        }
        None => EnvFilter::try_new(&config.level)
            .map_err(|e| CmdError::usage(format!("node.ini [log] level: {e}")))?,
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let layer = tracing_subscriber::fmt::layer().with_ansi(false);
    let output = match (file, config.json) {
        (None, false) => layer.with_writer(std::io::stderr).boxed(),
        (None, true) => layer.json().with_writer(std::io::stderr).boxed(),
        (Some(path), json) => {
            let file = LogFile::open(path, config.max_bytes, config.keep, true)
                .map_err(crate::fsutil::io_err(path))?;
            let writer = LogFile::install(file);
            if json {
                layer.json().with_writer(writer).boxed()
            } else {
                layer.with_writer(writer).boxed()
            }
        }
    };
    // (Already set: a second start in one process, as tests do.)
    if tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok()
    {
        logfile::install_filter(handle, from_env.is_some());
    }
    Ok(())
}

fn pid_alive(pid: i32) -> bool {
    crate::nodedir::process_alive(pid)
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn start(out: &Output, node: Option<&Path>, passphrase: PassphraseArgs) -> CmdResult {
    let dir = NodeDir::find(node)?;
    refuse_disabled(&dir)?;
    let config = dir.node_config()?;
    if let Ok(mut c) = daemon(&dir) {
        let s = c.status()?;
        return Err(CmdError::msg(format!("already running (pid {})", s.pid)));
    }
    let exe = std::env::current_exe()
        .map_err(|e| CmdError::msg(format!("cannot find the cod executable: {e}")))?;
    let log_path = dir.log_path(&config);
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--node").arg(&dir.root).arg("node").arg("run");
    cmd.arg("--log-file").arg(&log_path);
    // The daemon runs without a terminal: settle the passphrase now.
    let key_text = std::fs::read_to_string(dir.resolve(&config.key)).unwrap_or_default();
    let mut piped_passphrase = None;
    if SecretKey::pem_is_encrypted(&key_text) {
        if let Some(f) = &passphrase.passphrase_file {
            cmd.arg("--passphrase-file").arg(f);
        } else if config.passphrase_file.is_none() && std::env::var_os(PASSPHRASE_ENV).is_none() {
            if !std::io::stdin().is_terminal() {
                return Err(CmdError::msg(format!(
                    "the node key is encrypted and the daemon cannot ask for its passphrase: set passphrase_file in node.ini, or use --passphrase-file or {PASSPHRASE_ENV}"
                )));
            }
            let p = dialoguer::Password::new()
                .with_prompt("Passphrase for the node key")
                .interact()
                .map_err(|e| CmdError::msg(e.to_string()))?;
            // Check it here, so a typo is caught before the daemon starts.
            SecretKey::from_pem(&key_text, Some(p.as_bytes()))
                .map_err(|e| CmdError::msg(e.to_string()))?;
            cmd.arg("--passphrase-stdin");
            piped_passphrase = Some(p);
        }
    }
    std::fs::create_dir_all(dir.data_dir(&config))
        .map_err(crate::fsutil::io_err(&dir.data_dir(&config)))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(crate::fsutil::io_err(&log_path))?;
    // Where this run's lines begin: an error quotes only those, never an earlier run's.
    let run_starts = log
        .metadata()
        .map_err(crate::fsutil::io_err(&log_path))?
        .len();
    cmd.stdout(log.try_clone().map_err(crate::fsutil::io_err(&log_path))?)
        .stderr(log);
    cmd.stdin(if piped_passphrase.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    });
    // SAFETY: setsid() is async-signal-safe; it detaches the daemon from this terminal's
    // session so closing the SSH connection does not hang it up.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| CmdError::msg(format!("cannot start the daemon: {e}")))?;
    if let (Some(p), Some(mut stdin)) = (piped_passphrase, child.stdin.take()) {
        let _ = writeln!(stdin, "{p}");
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = read_from(&log_path, run_starts);
            let tail: Vec<&str> = tail
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(CmdError::msg(format!(
                "the daemon exited at once ({status}); from {}:\n{}",
                log_path.display(),
                tail.join("\n")
            )));
        }
        if let Ok(mut c) = daemon(&dir) {
            let s = c.status()?;
            let root = dir.root.display();
            out.emit(
                format!(
                    "started: pid {}, API on {}\nlog:    {}\nwatch:  cod --node {root} tui\nstop:   cod --node {root} node stop\n",
                    s.pid, s.addr, log_path.display()
                ),
                json!({"pid": s.pid, "addr": s.addr, "log": log_path, "socket": dir.socket_path(&config)}),
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(CmdError::msg(format!(
        "the daemon did not answer within a minute; see {}",
        log_path.display()
    )))
}

/// The text of `path` from byte `offset` on.
fn read_from(path: &Path, offset: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path)
        && f.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = f.take(1 << 20).read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

pub fn stop(out: &Output, node: Option<&Path>) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let config = dir.node_config()?;
    let pid_path = dir.pid_path(&config);
    let pid = read_pid(&pid_path);
    match daemon(&dir) {
        Ok(mut c) => {
            c.ask(ask::Stop {})?;
        }
        Err(_) => match pid {
            Some(p) if pid_alive(p) => {
                // The socket does not answer but the process lives: ask it the Unix way.
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGTERM,
                )
                .map_err(|e| CmdError::msg(e.to_string()))?;
            }
            Some(_) => {
                let _ = std::fs::remove_file(&pid_path);
                let _ = std::fs::remove_file(dir.socket_path(&config));
                out.emit(
                    "not running (removed a stale pid file)\n",
                    json!({"stopped": false, "stale": true}),
                );
                return Ok(());
            }
            None => {
                out.emit("not running\n", json!({"stopped": false}));
                return Ok(());
            }
        },
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if pid.is_none_or(|p| !pid_alive(p)) && daemon(&dir).is_err() {
            out.emit("stopped\n", json!({"stopped": true}));
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(CmdError::msg("the daemon did not stop within 30 seconds"))
}

fn human_status(s: &Status) -> String {
    let chain = &s.chain;
    let mut h = format!(
        "cod        {}\nnode       {}\naddress    {}\nversions   software {}, com {}, cod {}\nuptime     {}\npeers      {} confirmed ({} known)\nchain      {} records, {} applied, {} pending, {} accounts, {} forks\n",
        s.cod_id,
        s.node_id,
        s.addr,
        s.software_version,
        s.com_version,
        s.cod_version,
        humantime::format_duration(Duration::from_secs(s.uptime)),
        s.peers.confirmed,
        s.peers.known,
        chain.records,
        chain.applied,
        chain.pending,
        chain.accounts,
        chain.forks,
    );
    if chain.awaiting_key > 0 {
        h.push_str(&format!(
            "waiting    {} records ({} KiB) for their account's opening; pending {} KiB\n",
            chain.awaiting_key,
            chain.awaiting_key_bytes / 1024,
            chain.pending_bytes / 1024,
        ));
    }
    if !chain.missing.is_empty() {
        h.push_str(&format!(
            "missing    {}\n",
            chain.missing[..chain.missing.len().min(5)].join(", ")
        ));
    }
    if let Some(cp) = &chain.checkpoint {
        h.push_str(&format!("checkpoint period {}\n", cp.period));
    }
    if let Some(c) = &s.clock {
        let label = if c.is_off() { "CLOCK" } else { "clock" };
        h.push_str(&format!("{label:<10} {}\n", c.describe()));
    }
    let amount = |code: &str, u: u64| {
        let decimals = s.balance.assets.get(code).map_or(0, |a| a.decimals);
        crate::config::com::Asset {
            decimals,
            description: None,
        }
        .format(u)
    };
    for (i, line) in chain.economy.human(amount).into_iter().enumerate() {
        let label = if i == 0 { "economy" } else { "" };
        h.push_str(&format!("{label:<10} {line}\n"));
    }
    if let Some(hv) = &s.handover {
        h.push_str(&hv.line());
        h.push('\n');
    }
    if let Some(n) = &s.newer_version_seen {
        h.push_str(&format!(
            "UPGRADE    cod {} seen on peer {} (see `cod upgrade check`)\n",
            n.cod_version,
            n.peer.as_deref().unwrap_or("-")
        ));
    }
    h
}

pub fn status(out: &Output, node: Option<&Path>) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let mut c = daemon(&dir)?;
    let s = c.status()?;
    out.emit(human_status(&s), json!(s));
    Ok(())
}

/// `cod config reload`.
pub fn reload(out: &Output, node: Option<&Path>) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let v: crate::views::Reloaded = daemon(&dir)?.ask(ask::Reload {})?;
    let mut h = match v.applied.is_empty() {
        true => "node.ini reloaded: nothing to take now\n".to_string(),
        false => format!(
            "node.ini reloaded: {} in effect now\n",
            v.applied.join(", ")
        ),
    };
    if !v.at_next_start.is_empty() {
        h.push_str(&format!(
            "changed, in effect at the next start (cod node stop; cod node start): {}\n",
            v.at_next_start.join(", ")
        ));
    }
    out.emit(h, &v);
    Ok(())
}

pub fn peers(out: &Output, node: Option<&Path>, action: Option<PeersCommand>) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let mut d = daemon(&dir)?;
    match action {
        Some(PeersCommand::Ban { address, duration }) => {
            let v: Banned = d.ask(ask::Ban {
                address,
                seconds: duration.map(|d| d.as_secs().max(1)),
            })?;
            let until = v.until.map_or("until unbanned".to_string(), |t| {
                format!("until {}", fmt_unix(t))
            });
            out.emit(format!("banned {} {until}\n", v.banned), &v);
            return Ok(());
        }
        Some(PeersCommand::Add { address }) => {
            let v: PeerAdded = d.ask(ask::AddPeer { address })?;
            let what = if v.new {
                "trying"
            } else {
                "known already (or the table is full):"
            };
            out.emit(format!("{what} {}\n", v.added), &v);
            return Ok(());
        }
        Some(PeersCommand::Remove { address }) => {
            let v: PeerRemoved = d.ask(ask::RemovePeer { address })?;
            let what = if v.was_known {
                "removed"
            } else {
                "not a peer:"
            };
            out.emit(format!("{what} {}\n", v.removed), &v);
            return Ok(());
        }
        Some(PeersCommand::Unban { address }) => {
            let v: Unbanned = d.ask(ask::Unban { address })?;
            let what = if v.was_banned {
                "unbanned"
            } else {
                "was not banned:"
            };
            out.emit(format!("{what} {}\n", v.unbanned), &v);
            return Ok(());
        }
        None => {}
    }
    let v: PeersView = d.ask(ask::Peers {})?;
    let mut h = format!(
        "{:<22} {:<10} {:<9} {:<6} {:>8} {:>9}  {}\n",
        "ADDRESS", "PEER", "FOUND", "STATE", "LATENCY", "APPLIED", "VERSIONS"
    );
    for p in &v.peers {
        let node = p.peer_id.map(|n| n.to_string());
        h.push_str(&format!(
            "{:<22} {:<10} {:<9} {:<6} {:>6}ms {:>9}  {}/{}/{}\n",
            p.addr,
            node.as_deref().map_or("-", |n| super::prefix(n, 8)),
            p.found_via.to_string(),
            if p.confirmed { "up" } else { "trying" },
            p.latency_ms,
            p.applied.map_or("-".to_string(), |a| a.to_string()),
            p.software_version,
            p.com_version,
            p.cod_version,
        ));
    }
    if !v.addresses.is_empty() {
        h.push_str(&format!(
            "\n{:<40} {:>5} {:>5}  {}\n",
            "CONNECTING ADDRESS", "CONNS", "SCORE", "STATE"
        ));
        for a in &v.addresses {
            let state = match a.banned_until {
                Some(u64::MAX) => "banned until unbanned".to_string(),
                Some(t) => format!(
                    "banned until {}{}",
                    fmt_unix(t / 1000),
                    if a.manual { " (by the operator)" } else { "" }
                ),
                None => a
                    .last_offense
                    .map_or(String::new(), |o| format!("last offense: {}", o.name())),
            };
            h.push_str(&format!(
                "{:<40} {:>5} {:>5}  {state}\n",
                a.address.to_string(),
                a.connections,
                a.score,
            ));
        }
    }
    out.emit(h, json!(v));
    Ok(())
}

fn fmt_unix(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

pub fn dht_bootstrap(nodes: usize, bind: std::net::Ipv4Addr) -> CmdResult {
    let testnet = mainline::Testnet::builder(nodes.max(1))
        .bind_address(bind)
        .build()
        .map_err(|e| CmdError::msg(format!("DHT: {e}")))?;
    println!("{}", testnet.bootstrap.join(","));
    std::io::stdout().flush().ok();
    // Run until stopped.
    let mut signals = nix::sys::signal::SigSet::empty();
    signals.add(nix::sys::signal::Signal::SIGTERM);
    signals.add(nix::sys::signal::Signal::SIGINT);
    signals
        .thread_block()
        .map_err(|e| CmdError::msg(e.to_string()))?;
    let _ = signals.wait();
    drop(testnet);
    Ok(())
}
