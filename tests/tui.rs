//! Issue 6 end to end: `cod tui` in a real terminal (tmux) against live nodes. The peer list
//! shows the other nodes; a pending signature request appears, is approved from the
//! dashboard, and the record becomes final.

mod common;
use common::*;
use std::process::Command;

struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(w: &World, node: &Node) -> Self {
        let socket = format!("cod-test-{}", std::process::id());
        let cmd = format!(
            "env HOME={home} XDG_DATA_HOME={home}/xdg NO_COLOR=1 {cod} --node {node} tui",
            home = s(w.dir.path()),
            cod = env!("CARGO_BIN_EXE_cod"),
            node = s(&node.dir)
        );
        let ok = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "160",
                "-y",
                "48",
                &cmd,
            ])
            .status()
            .expect("tmux (run .ci/setup)");
        assert!(ok.success());
        Self { socket }
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            assert!(
                Command::new("tmux")
                    .args(["-L", &self.socket, "send-keys", "-t", "t", k])
                    .status()
                    .unwrap()
                    .success()
            );
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-t", "t", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, secs: u64, needle: &str) -> String {
        let mut last = String::new();
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_secs(secs) {
            last = self.screen();
            if last.contains(needle) {
                return last;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!("the dashboard never showed {needle:?}; last screen:\n{last}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
fn the_dashboard_shows_peers_and_approves_a_signature_request() {
    let w = World::new();
    let net = Net::with_dht(&w, 3, "");
    net.wait_meshed(90);
    let [n1, n2, n3] = [&net.nodes[0], &net.nodes[1], &net.nodes[2]];
    let tui = Tmux::start(&w, n2);
    tui.wait_for(30, "connected");

    // Peers: the other two nodes, by their short peer ids (never their accounts).
    tui.keys(&["2"]);
    for other in [n1, n3] {
        let peer = net.peer_id(other).unwrap();
        let screen = tui.wait_for(30, &peer[..8]);
        assert!(!screen.contains(&other.id[..8]), "{screen}");
    }

    // node1 proposes an issuance; it shows up on node2's dashboard, which approves it.
    let v = w
        .at(n1, &["--json", "issue", "--backing", "bread=20"])
        .ok()
        .json();
    let id = v["id"].as_str().unwrap().to_string();
    tui.keys(&["4"]);
    let screen = tui.wait_for(30, &id[..10]);
    assert!(screen.contains("pending"), "{screen}");
    // The tab lists the signers' proposals of the last period's distribution too (each
    // signer makes one once it has synced, to checkpoint the openings), in an order of their
    // own: the issuance's row is found by the id the question names.
    let question = format!("Sign {}", &id[..12]);
    let mut found = false;
    for row in 0..12 {
        tui.keys(&["Home"]);
        for _ in 0..row % 6 {
            tui.keys(&["j"]);
        }
        tui.keys(&["a"]);
        if tui.wait_for(10, "y/n").contains(&question) {
            found = true;
            break;
        }
        tui.keys(&["n"]);
    }
    assert!(found, "no row of the signatures tab asks to sign {id}");
    tui.keys(&["y"]);
    tui.wait_for(30, "approve: done");
    // (Up to a minute and a half: a record on a stem that breaks stays hidden at the node
    // that made it for up to 30 s, and a loaded machine is slow to sync.)
    for n in &net.nodes {
        wait_for(90, "the approved issuance to be final", || {
            (net.balance(n, "network") == Some(7000)).then_some(())
        });
    }
    tui.wait_for(30, "final");

    // A transfer typed into the dashboard goes to the daemon after yes; node2 holds no
    // coins yet, and the dashboard shows the daemon's refusal as it gave it.
    tui.keys(&["1", "t"]);
    tui.wait_for(10, "Tab next field");
    tui.keys(&[&n1.id, "Enter", "2.5", "Enter", "Enter"]);
    tui.wait_for(10, "y/n");
    tui.keys(&["y"]);
    tui.wait_for(30, "holds 0.00 codcoin but the transfer needs 2.50");
    assert_eq!(net.balance(n1, &n1.id), Some(0));

    // The daemon stops: the dashboard says so and how to start it; it comes back by itself.
    w.at(n2, &["node", "stop"]).ok();
    tui.wait_for(30, "not running");
    w.at(n2, &["node", "start"]).ok();
    tui.wait_for(30, "connected");
    tui.keys(&["q"]);
}
