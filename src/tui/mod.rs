//! `cod tui`: the operator's full-screen dashboard. It attaches to the running daemon through
//! the control socket (never the store), redraws when something changes — events from the
//! socket, keys, a resize, a slow refresh every few seconds — and reconnects by itself when
//! the daemon restarts. State and drawing are pure (`app`, `view`); this module is the I/O.

pub mod app;
pub mod view;

use crate::clock::now;
use crate::control::ask;
use crate::control::client::{Client, ClientError};
use crate::nodedir::NodeDir;
use app::{App, Effect, Msg};
use std::path::PathBuf;
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

/// How often the dashboard re-reads the node's status when nothing happens.
const REFRESH: Duration = Duration::from_secs(5);

fn snapshot(c: &mut Client) -> Result<Msg, ClientError> {
    Ok(Msg::Snapshot {
        status: Box::new(c.status()?),
        peers: c.ask(ask::Peers {})?,
        requests: c.ask(ask::SignList {})?,
        recent: c.ask(ask::Recent {
            limit: app::MAX_RECENT,
        })?,
    })
}

/// Follows the daemon: a snapshot on connect, then its event stream; on loss, reports it
/// and tries again every second.
fn follow(socket: PathBuf, tx: Sender<Msg>) {
    loop {
        let attempt = Client::connect(&socket).and_then(|mut c| {
            let first = snapshot(&mut c)?;
            Ok((first, Client::connect(&socket)?.subscribe()?))
        });
        match attempt {
            Ok((first, events)) => {
                if tx.send(first).is_err() {
                    return;
                }
                for e in events {
                    match e {
                        Ok(e) => {
                            if tx.send(Msg::Event(e)).is_err() {
                                return;
                            }
                        }
                        // An event this version does not read (a daemon of another
                        // version): skipped, the next snapshot brings what it said.
                        Err(_) => continue,
                    }
                }
                if tx
                    .send(Msg::Disconnected("the daemon closed the connection".into()))
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                if tx.send(Msg::Disconnected(e.to_string())).is_err() {
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

pub fn run(dir: NodeDir) -> Result<(), crate::cmd::CmdError> {
    let config = dir.node_config()?;
    let socket = dir.socket_path(&config);
    let hint = format!("cod --node {} node start", dir.root.display());
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let mut app = App::new(hint, no_color, now());
    app.assets = dir.com_config()?.assets;
    let (tx, rx) = channel::<Msg>();

    // Keys and resizes.
    let keys = tx.clone();
    std::thread::spawn(move || {
        use crossterm::event::{Event as TermEvent, KeyEventKind, read};
        while let Ok(e) = read() {
            let msg = match e {
                TermEvent::Key(k) if k.kind == KeyEventKind::Press => Msg::Key(k),
                TermEvent::Resize(..) => Msg::Resize,
                _ => continue,
            };
            if keys.send(msg).is_err() {
                return;
            }
        }
    });
    // The daemon: snapshot and events.
    let (s2, t2) = (socket.clone(), tx.clone());
    std::thread::spawn(move || follow(s2, t2));
    // A slow refresh (peers' "last seen", expiry countdowns, balances).
    let (s3, t3) = (socket.clone(), tx.clone());
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(REFRESH);
            let msg = match Client::connect(&s3).and_then(|mut c| snapshot(&mut c)) {
                Ok(m) => m,
                Err(_) => Msg::Now(now()),
            };
            if t3.send(msg).is_err() {
                return;
            }
        }
    });

    let mut terminal = ratatui::try_init()
        .map_err(|e| crate::cmd::CmdError::msg(format!("cannot open the terminal: {e}")))?;
    let result = (|| -> std::io::Result<()> {
        terminal.draw(|f| view::draw(f, &app))?;
        while let Ok(msg) = rx.recv() {
            app.update(Msg::Now(now()));
            for effect in app.update(msg) {
                match effect {
                    Effect::Quit => return Ok(()),
                    Effect::Send { what, request } => {
                        let (socket, tx) = (socket.clone(), tx.clone());
                        std::thread::spawn(move || {
                            let mut c = match Client::connect(&socket) {
                                Ok(c) => c,
                                Err(e) => {
                                    let _ = tx.send(Msg::Reply {
                                        what,
                                        result: Err(e.to_string()),
                                    });
                                    return;
                                }
                            };
                            let result = c.call(&request).map_err(|e| e.to_string());
                            let _ = tx.send(Msg::Reply { what, result });
                            if let Ok(m) = snapshot(&mut c) {
                                let _ = tx.send(m);
                            }
                        });
                    }
                    Effect::RunCod { what, args } => {
                        let (root, tx) = (dir.root.clone(), tx.clone());
                        std::thread::spawn(move || {
                            let exe = std::env::current_exe().unwrap_or_else(|_| "cod".into());
                            let out = std::process::Command::new(exe)
                                .arg("--node")
                                .arg(&root)
                                .args(&args)
                                .stdin(std::process::Stdio::null())
                                .output();
                            let result = match out {
                                Ok(o) if o.status.success() => Ok(serde_json::Value::Null),
                                Ok(o) => Err(String::from_utf8_lossy(&o.stderr)
                                    .trim()
                                    .replace('\n', " ")),
                                Err(e) => Err(e.to_string()),
                            };
                            let _ = tx.send(Msg::Reply { what, result });
                        });
                    }
                }
            }
            terminal.draw(|f| view::draw(f, &app))?;
        }
        Ok(())
    })();
    ratatui::restore();
    result.map_err(|e| crate::cmd::CmdError::msg(format!("terminal: {e}")))
}

#[cfg(test)]
mod tests;
