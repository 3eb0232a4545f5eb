//! A transfer whose answer is lost is never paid twice, and `cod transfer` tells the truth
//! about it (issue 11). A proxy stands in the control socket's place and loses, on purpose,
//! what a crash or a broken connection would lose: the daemon's answer, the request itself,
//! or the daemon altogether. The CLI must settle each case before it reports.
//!
//! Also: commands that find no daemon read the store without keeping a daemon from
//! starting.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What the proxy does to the next transfer request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Pass everything.
    None,
    /// Forward the transfer, then hang up before its answer.
    LoseAnswer,
    /// As `LoseAnswer`, and break the next connection too, unread.
    LoseAnswerAndNext,
    /// (Set by `LoseAnswerAndNext`.) Hang up on the next connection without reading it.
    Break,
    /// Hang up without forwarding the transfer.
    LoseRequest,
    /// Forward it, kill the daemon (SIGKILL) after it answered, hang up, and stop proxying:
    /// the CLI finds no daemon at all.
    KillDaemon,
}

struct Proxy {
    fault: Arc<Mutex<Fault>>,
    socket: PathBuf,
}

impl Proxy {
    /// Moves the daemon's socket aside and listens in its place.
    fn start(node: &Node) -> Self {
        let socket = node.dir.join("cod.sock");
        let real = node.dir.join("cod.sock.real");
        std::fs::rename(&socket, &real).unwrap();
        let listener = UnixListener::bind(&socket).unwrap();
        let fault = Arc::new(Mutex::new(Fault::None));
        let (f, node, sock) = (fault.clone(), node.clone(), socket.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !serve(client, &real, &f, &node) {
                    let _ = std::fs::remove_file(&sock);
                    return; // the daemon is gone: nothing listens any more
                }
            }
        });
        Proxy { fault, socket }
    }

    fn next(&self, f: Fault) {
        *self.fault.lock().unwrap() = f;
    }
}

/// Proxies one client; returns false once it killed the daemon.
fn serve(client: UnixStream, real: &Path, fault: &Mutex<Fault>, node: &Node) -> bool {
    {
        let mut f = fault.lock().unwrap();
        if *f == Fault::Break {
            *f = Fault::None;
            drop(f);
            // Its greeting arrives and is never read: the client sees the connection reset.
            std::thread::sleep(std::time::Duration::from_millis(200));
            return true;
        }
    }
    let Ok(upstream) = UnixStream::connect(real) else {
        return true;
    };
    let (Ok(from_client), Ok(from_daemon)) = (client.try_clone(), upstream.try_clone()) else {
        return true;
    };
    let mut from_client = BufReader::new(from_client);
    let mut to_client = client;
    let mut from_daemon = BufReader::new(from_daemon);
    let mut to_daemon = upstream;
    loop {
        let mut line = String::new();
        if from_client.read_line(&mut line).unwrap_or(0) == 0 {
            return true;
        }
        let transfer = line.contains("\"request\":\"transfer\"");
        let f = if transfer {
            std::mem::replace(&mut *fault.lock().unwrap(), Fault::None)
        } else {
            Fault::None
        };
        if f == Fault::LoseRequest {
            return true; // hang up, the request never reaches the daemon
        }
        if to_daemon.write_all(line.as_bytes()).is_err() {
            return true;
        }
        let mut answer = String::new();
        if from_daemon.read_line(&mut answer).unwrap_or(0) == 0 {
            return true;
        }
        match f {
            Fault::LoseAnswer => return true,
            Fault::LoseAnswerAndNext => {
                *fault.lock().unwrap() = Fault::Break;
                return true;
            }
            Fault::KillDaemon => {
                kill9(node);
                return false;
            }
            _ => {}
        }
        if to_client.write_all(answer.as_bytes()).is_err() {
            return true;
        }
    }
}

fn records_of(w: &World, node: &Node) -> usize {
    w.at(node, &["--json", "history"]).ok().json()["entries"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn a_lost_answer_is_settled_and_never_paid_twice() {
    let w = World::new();
    let mut net = Net::without_dht(&w);
    let node = net.add("node1", "").clone();
    let funding = funding_archive(&w, &[&node], 10);
    w.at(&node, &["chain", "import", s(&funding)]).ok();
    let start = net.balance(&node, &node.id).unwrap();
    assert!(start > 1000, "funded: {start}");
    // Refused by the daemon, a transfer exits 4, as without a daemon.
    let r = w.at(
        &node,
        &[
            "transfer", "--to", "network", "--amount", "1000000", "--yes",
        ],
    );
    assert_eq!(r.code(), Some(4), "{}", r.stderr());
    assert!(r.stderr().contains("holds"), "{}", r.stderr());
    let proxy = Proxy::start(&node);
    let pay = || {
        w.at(
            &node,
            &[
                "--json", "transfer", "--to", "network", "--amount", "1", "--yes",
            ],
        )
    };

    // The answer is lost after the daemon made the transfer: found, reported once.
    let before = records_of(&w, &node);
    proxy.next(Fault::LoseAnswer);
    let r = pay().ok();
    assert!(r.stderr().contains("answer was lost"), "{}", r.stderr());
    assert_eq!(r.json()["recovered"], true, "{}", r.stdout());
    assert_eq!(net.balance(&node, &node.id), Some(start - 100));
    assert_eq!(records_of(&w, &node), before + 1, "paid once");

    // The request itself is lost: the CLI asks again, and it is made once.
    proxy.next(Fault::LoseRequest);
    let r = pay().ok();
    assert!(r.stderr().contains("answer was lost"), "{}", r.stderr());
    assert_eq!(net.balance(&node, &node.id), Some(start - 200));
    assert_eq!(records_of(&w, &node), before + 2, "paid once");

    // The answer is lost and so is the connection that asks again: the CLI keeps asking.
    proxy.next(Fault::LoseAnswerAndNext);
    let r = pay().ok();
    assert_eq!(r.json()["recovered"], true, "{}", r.stdout());
    assert_eq!(net.balance(&node, &node.id), Some(start - 300));
    assert_eq!(records_of(&w, &node), before + 3, "paid once");

    // The daemon dies after making the transfer: with no daemon left, the CLI reads the
    // store and finds it.
    proxy.next(Fault::KillDaemon);
    let r = pay().ok();
    assert_eq!(r.json()["recovered"], true, "{}", r.stdout());
    assert!(!proxy.socket.exists(), "no daemon answers now");
    assert_eq!(
        net.balance(&node, &node.id),
        Some(start - 400),
        "read from the store"
    );
    let _ = std::fs::remove_file(node.dir.join("cod.sock.real"));

    w.at(&node, &["node", "start"]).ok();
    assert_eq!(net.balance(&node, &node.id), Some(start - 400));
    assert_eq!(
        records_of(&w, &node),
        before + 4,
        "four transfers, each paid once"
    );
    drop(net);
}

#[test]
fn a_daemon_starts_while_commands_hold_the_store() {
    let w = World::new();
    let mut net = Net::without_dht(&w);
    let node = net.add("node1", "").clone();
    w.at(&node, &["node", "stop"]).ok();
    let dir = cod::nodedir::NodeDir::open(&node.dir).unwrap();

    // A reader (a `cod balance` without a daemon) takes no lock: the daemon starts at once.
    let reader = dir.read_chain().unwrap();
    w.at(&node, &["node", "start"]).ok();
    assert!(net.status(&node).is_some());
    drop(reader);
    w.at(&node, &["node", "stop"]).ok();

    // A writer (a `cod transfer` without a daemon) holds it for a moment: the daemon waits
    // for it instead of failing.
    let writer = dir.load_chain(false).unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(3));
        drop(writer);
    });
    w.at(&node, &["node", "start"]).ok();
    release.join().unwrap();
    assert!(net.status(&node).is_some());
    drop(net);
}

#[test]
fn a_failed_start_quotes_only_its_own_log() {
    let w = World::new();
    let mut net = Net::without_dht(&w);
    let node = net.add("node1", "").clone();
    w.at(&node, &["node", "stop"]).ok();
    // An earlier run's lines, then a start that fails at once (the key is exposed).
    let log = node.dir.join("node.log");
    let mut old = std::fs::read_to_string(&log).unwrap();
    old.push_str("ERROR an earlier run's complaint\n");
    std::fs::write(&log, old).unwrap();
    let key = node.dir.join("node.sec.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let err = w.at(&node, &["node", "start"]).fails_with("exited at once");
    assert!(err.contains("readable by group or others"), "{err}");
    assert!(!err.contains("an earlier run"), "{err}");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    w.at(&node, &["node", "start"]).ok();
    drop(net);
}

#[test]
fn the_control_socket_survives_running_out_of_file_descriptors() {
    use std::os::unix::process::CommandExt;
    let w = World::new();
    let mut net = Net::without_dht(&w);
    let node = net.add("node1", "").clone();
    w.at(&node, &["node", "stop"]).ok();
    // The daemon, with room for 128 open files only (it cannot raise the hard limit).
    let mut daemon = w.command();
    daemon
        .args(["--node", s(&node.dir), "node", "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        daemon.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 128, 128)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = daemon.spawn().unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // Reaped as soon as it exits (a zombie would look alive to `node stop`).
    let reaper = std::thread::spawn(move || child.wait());
    wait_for(30, "the daemon", || net.status(&node));
    // Hold control connections until it has no descriptor left to accept with.
    let socket = node.dir.join("cod.sock");
    let held: Vec<UnixStream> = (0..200)
        .filter_map(|_| UnixStream::connect(&socket).ok())
        .collect();
    assert!(held.len() >= 100, "{}", held.len());
    let cpu = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (before, t) = (cpu(), std::time::Instant::now());
    std::thread::sleep(std::time::Duration::from_secs(3));
    let ticks = cpu() - before;
    let per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap() as u64;
    // Spinning on a failing accept burns a whole core; backing off, almost nothing.
    assert!(
        ticks * 1000 / per_sec < t.elapsed().as_millis() as u64 / 2,
        "{ticks} ticks in {:?}",
        t.elapsed()
    );
    drop(held);
    // Descriptors free again: the operator gets through.
    wait_for(30, "the control socket to answer again", || {
        net.status(&node)
    });
    w.at(&node, &["node", "stop"]).ok();
    let _ = reaper.join();
    drop(net);
}
