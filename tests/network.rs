//! Issue 4: real `cod` daemons on loopback, a real (local) Mainline DHT, the REST API, sync,
//! mirrors and the control socket. Bounds are generous; every wait is for a condition.

mod common;
use common::*;

#[test]
fn five_nodes_find_each_other_share_a_transfer_and_outlive_a_kill() {
    let w = World::new();
    let mut net = Net::with_dht(&w, 5, "");
    let ids: Vec<String> = net.nodes.iter().map(|n| n.id.clone()).collect();

    // Only a local DHT bootstrap in common: every node reports every other as a peer.
    net.wait_meshed(90);
    let first_peer = net.peer_id(&net.nodes[0]).unwrap();

    // Fund through node 1 (its daemon imports and pushes the records), then pay from it.
    let nodes: Vec<&Node> = net.nodes.iter().collect();
    let funding = funding_archive(&w, &nodes, 20); // 7000 units, 1400 each of 5
    w.at(&net.nodes[0], &["chain", "import", s(&funding)]).ok();
    for n in &net.nodes {
        wait_for(60, &format!("{} to hold the funding", n.key), || {
            (net.balance(n, &ids[1]) == Some(1400)).then_some(())
        });
    }
    let t = w
        .at(
            &net.nodes[0],
            &[
                "--json", "transfer", "--to", &ids[1], "--amount", "2.50", "--yes",
            ],
        )
        .ok()
        .json();
    let record = t["record"].as_str().unwrap().to_string();
    for n in &net.nodes {
        wait_for(60, &format!("{} to see the transfer", n.key), || {
            (net.balance(n, &ids[1]) == Some(1650)).then_some(())
        });
        assert_eq!(
            net.balance(n, &ids[0]),
            Some(1150),
            "balances agree on {}",
            n.key
        );
    }
    let history = w
        .at(&net.nodes[3], &["--json", "history", &ids[1]])
        .ok()
        .json();
    assert!(
        history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["record"] == record.as_str())
    );
    let expected = net.applied(&net.nodes[0]).unwrap();

    // Node 1, the transfer's author, dies; a sixth node deployed afterwards gets everything.
    kill9(&net.nodes[0]);
    let sixth = net.add("node6", "").clone();
    wait_for(90, "the sixth node to sync the whole chain", || {
        (net.applied(&sixth)? > expected).then_some(())
    });
    assert_eq!(net.balance(&sixth, &ids[1]), Some(1650));
    let v = w.at(&sixth, &["chain", "verify"]).ok().stdout();
    assert!(v.contains("chain OK"), "{v}");
    // The dead node is reported down, not silently kept.
    let peers = w.at(&net.nodes[1], &["--json", "peers"]).ok().json();
    assert!(
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["peer_id"] != first_peer.as_str()
                || p["confirmed"] == false
                || p["failures"].as_u64().unwrap_or(0) < 3)
    );
}

/// A plain HTTP file store on loopback (PUT and GET), standing in for a web mirror.
fn http_store() -> String {
    use axum::routing::get;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let (f1, f2) = (files.clone(), files);
            let app = axum::Router::new().route(
                "/m/{file}",
                get(
                    move |axum::extract::Path(name): axum::extract::Path<String>| async move {
                        match f1.lock().unwrap().get(&name) {
                            Some(b) => (axum::http::StatusCode::OK, b.clone()),
                            None => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
                        }
                    },
                )
                .put(
                    move |axum::extract::Path(name): axum::extract::Path<String>,
                          body: axum::body::Bytes| async move {
                        f2.lock().unwrap().insert(name, body.to_vec());
                        axum::http::StatusCode::CREATED
                    },
                ),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(
                listener,
                app.layer(axum::extract::DefaultBodyLimit::disable()),
            )
            .await
            .unwrap();
        });
    });
    format!("http://{addr}/m")
}

#[test]
fn a_new_node_restores_from_the_archive_mirror_alone() {
    let w = World::new();
    let mirror = w.path("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let web = http_store();
    let extra = format!("[archive]\nmirrors = {}, {web}\n", s(&mirror));
    let mut net = Net::with_dht(&w, 2, &extra);
    let ids: Vec<String> = net.nodes.iter().map(|n| n.id.clone()).collect();
    wait_for(90, "the two nodes to meet", || {
        (net.confirmed_peers(&net.nodes[0]).len() == 1).then_some(())
    });
    let nodes: Vec<&Node> = net.nodes.iter().collect();
    let funding = funding_archive(&w, &nodes, 10);
    w.at(&net.nodes[0], &["chain", "import", s(&funding)]).ok();
    w.at(
        &net.nodes[0],
        &["transfer", "--to", &ids[1], "--amount", "1", "--yes"],
    )
    .ok();
    let expected = net.applied(&net.nodes[0]).unwrap();
    let archive = mirror.join(format!("{}.archive", params_of(&net.nodes[0]).cod));
    wait_for(60, "the mirror to hold every record", || {
        let text = std::fs::read_to_string(&archive).ok()?;
        (text.lines().count() as u64 == expected + 2).then_some(())
    });

    let web_archive = format!("{web}/{}.archive", params_of(&net.nodes[0]).cod);
    wait_for(60, "the web mirror to hold every record", || {
        let text = reqwest::blocking::get(&web_archive).ok()?.text().ok()?;
        (text.lines().count() as u64 == expected + 2).then_some(())
    });

    // Every node and the DHT gone; a new node with only the web mirror and no peers at all.
    for n in &net.nodes {
        kill9(n);
    }
    net.dht = None;
    let fresh = net
        .add("node5", &format!("[archive]\nmirrors = {web}\n"))
        .clone();
    wait_for(60, "the fresh node to restore from the mirror", || {
        (net.applied(&fresh)? > expected).then_some(())
    });
    assert_eq!(net.balance(&fresh, &ids[1]), Some(1750 + 100));
    assert!(w.chain_ok(&fresh));
}

/// Issue 16, point 3: a node that is behind writes to a mirror holding more than it does,
/// and nothing the mirror held is lost — the node merges (and takes the mirror's records).
#[test]
fn a_node_behind_merges_into_a_mirror_and_nothing_there_is_lost() {
    let w = World::new();
    let mirror = w.path("shared-mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let mut net = Net::without_dht(&w);
    // Two nodes that never meet (no DHT, no static peers); only node2 uses the mirror.
    let n1 = net.add("node1", "[peers]\nexchange = true\n").clone();
    let n2 = net
        .add(
            "node2",
            &format!(
                "[peers]\nexchange = true\n[archive]\nmirrors = {}\n",
                s(&mirror)
            ),
        )
        .clone();
    let params = params_of(&n1);
    let archive = mirror.join(format!("{}.archive", params.cod));
    wait_for(30, "node2 to write its opening to the mirror", || {
        (cod::archive::count(&std::fs::read(&archive).ok()?) == 1).then_some(())
    });
    // Somebody else's fuller archive lands in the mirror: node1's funded chain.
    let funding = funding_archive(&w, &[&n1], 10);
    w.at(&n1, &["chain", "import", s(&funding)]).ok();
    let fuller = w.path("fuller.archive");
    w.at(&n1, &["chain", "export", "--out", s(&fuller)]).ok();
    let before = std::fs::read(&fuller).unwrap();
    write_as_another_writer(&archive, &before);
    // node2, behind, applies a record of its own at once: node3's opening.
    let l = cod::ledger::Ledger::new(params.clone());
    let opening = l.make_open(&example_secret("node3"));
    let extra = w.path("node3-open.archive");
    std::fs::write(&extra, cod::archive::write(&params.cod, [&opening])).unwrap();
    w.at(&n2, &["chain", "import", s(&extra)]).ok();
    let lost = wait_for(60, "node2 to merge its new record into the mirror", || {
        let now = std::fs::read(&archive).ok()?;
        let lines: std::collections::HashSet<&[u8]> = cod::archive::record_lines(&now).collect();
        lines.contains(opening.to_bytes().as_slice()).then(|| {
            cod::archive::record_lines(&before)
                .filter(|l| !lines.contains(l))
                .count()
        })
    });
    assert_eq!(lost, 0, "every record the mirror held is still there");
    // And node2 took them: it holds node1's chain now.
    let funded = net.applied(&n1).unwrap();
    wait_for(30, "node2 to hold what the mirror held", || {
        (net.applied(&n2)? > funded).then_some(())
    });
    let v = w.at(&n2, &["chain", "verify"]).ok().stdout();
    assert!(v.contains("chain OK"), "{v}");
}

/// Writes a file the way another writer would (whole, then renamed into place).
fn write_as_another_writer(path: &std::path::Path, bytes: &[u8]) {
    let tmp = path.with_extension("incoming");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Issue 16, point 2: the package names a mirror (cod.ini `[archive] mirrors`); members
/// configure nothing, and a fresh node restores the chain from it with every node gone.
#[test]
fn a_mirror_the_package_names_needs_no_setup() {
    let w = World::new();
    let web = http_store();
    let cod_ini = template("cod.ini").replace("\nmirrors =\n", &format!("\nmirrors = {web}\n"));
    assert!(
        cod_ini.contains(&web),
        "the template has an [archive] mirrors line"
    );
    let mut net = Net::without_dht(&w);
    net.pkg = w.pack("dist-mirrored", &template("com.ini"), &cod_ini).0;
    let n1 = net.add("node1", "[peers]\nexchange = true\n").clone();
    let funding = funding_archive(&w, &[&n1], 10);
    w.at(&n1, &["chain", "import", s(&funding)]).ok();
    let expected = net.applied(&n1).unwrap();
    let web_archive = format!("{web}/{}.archive", params_of(&n1).cod);
    wait_for(60, "the package's mirror to hold every record", || {
        let text = reqwest::blocking::get(&web_archive).ok()?.bytes().ok()?;
        (cod::archive::count(&text) as u64 == expected).then_some(())
    });
    kill9(&n1);
    let fresh = net.add("node2", "[peers]\nexchange = true\n").clone();
    wait_for(
        60,
        "the fresh node to restore from the package's mirror",
        || (net.applied(&fresh)? > expected).then_some(()),
    );
    assert!(w.chain_ok(&fresh));
}

/// Issue 16, point 4: a git repository as the mirror. The node appends segments (one commit
/// each) to the branch `cod/<cod id>`; with every node gone, a fresh node restores the chain
/// from the repository alone, and a second writer appends rather than replaces.
#[test]
fn a_fresh_node_restores_from_a_git_mirror() {
    let w = World::new();
    let repo = w.path("chain.git");
    git2::Repository::init_bare(&repo).unwrap();
    let extra = format!(
        "[peers]\nexchange = true\n[archive]\nmirrors = git+{}\n",
        s(&repo)
    );
    let mut net = Net::without_dht(&w);
    let n1 = net.add("node1", &extra).clone();
    let funding = funding_archive(&w, &[&n1], 10);
    w.at(&n1, &["chain", "import", s(&funding)]).ok();
    let expected = net.applied(&n1).unwrap();
    let cod = params_of(&n1).cod;
    let segments = || -> Vec<Vec<u8>> {
        let r = git2::Repository::open_bare(&repo).unwrap();
        let Ok(branch) = r.find_reference(&format!("refs/heads/cod/{cod}")) else {
            return Vec::new();
        };
        let tree = branch.peel_to_tree().unwrap();
        let Some(dir) = tree.get_name(&cod.to_string()) else {
            return Vec::new();
        };
        let dir = r.find_tree(dir.id()).unwrap();
        dir.iter()
            .map(|e| r.find_blob(e.id()).unwrap().content().to_vec())
            .collect()
    };
    let count = |segs: &[Vec<u8>]| segs.iter().map(|b| cod::archive::count(b)).sum::<usize>();
    wait_for(60, "the git mirror to hold every record", || {
        (count(&segments()) as u64 == expected).then_some(())
    });
    let written = segments().len();
    kill9(&n1);
    // A fresh node with the repository alone restores, and appends its own opening as a
    // new segment: the earlier ones stay as they were.
    let fresh = net.add("node2", &extra).clone();
    wait_for(60, "the fresh node to restore from the git mirror", || {
        (net.applied(&fresh)? > expected).then_some(())
    });
    wait_for(60, "the fresh node's opening in a new segment", || {
        let segs = segments();
        (segs.len() > written && count(&segs) as u64 == expected + 1).then_some(())
    });
    assert!(w.chain_ok(&fresh));
}

#[test]
fn the_control_socket_is_private_and_commands_need_a_daemon() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let mut net = Net::without_dht(&w);
    let node = net.add("node1", "[peers]\nexchange = true\n").clone();
    let socket = node.dir.join("cod.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    if nix::unistd::getuid().is_root() {
        // Another user cannot even connect.
        let out = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_cod"),
                "--node",
                s(&node.dir),
                "status",
            ])
            .output();
        if let Ok(out) = out {
            assert!(!out.status.success(), "uid 65534 must not reach the daemon");
        }
    }
    // A second daemon for the same node is refused; stop, then commands say how to start one.
    w.at(&node, &["node", "start"])
        .fails_with("already running");
    w.at(&node, &["node", "stop"]).ok();
    assert!(!socket.exists(), "socket removed on clean shutdown");
    assert!(!node.dir.join("node.pid").exists(), "pid file removed");
    let r = w.at(&node, &["status"]);
    assert_eq!(r.code(), Some(3));
    assert!(r.stderr().contains("node start"), "{}", r.stderr());
    assert_eq!(w.at(&node, &["peers"]).code(), Some(3));
    // Without a daemon the wallet still works on the store.
    w.at(&node, &["balance"]).ok();
    // A stale pid file and socket from a crash are recognized.
    w.at(&node, &["node", "start"]).ok();
    kill9(&node);
    assert!(
        socket.exists() && node.dir.join("node.pid").exists(),
        "a crash leaves them behind"
    );
    let r = w.at(&node, &["status"]);
    assert_eq!(r.code(), Some(3), "{}", r.stderr());
    w.at(&node, &["node", "start"]).ok();
    w.at(&node, &["status"]).ok();
}

#[test]
fn bad_input_over_the_rest_api_changes_nothing() {
    let w = World::new();
    let mut net = Net::without_dht(&w);
    let node = net.add("node1", "").clone();
    let addr = net.status(&node).unwrap()["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let url = |p: &str| format!("http://{addr}{p}");
    let http = reqwest::blocking::Client::new();
    let summary = || {
        http.get(url("/v1/sync/summary"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    // (Once the lone node shows its own opening, as it does when it finds itself alone: what
    // it shows then changes only by what is stored.)
    let before = wait_for(60, "the lone node to show its opening", || {
        let text = summary();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        (v["applied"] == 1).then_some(text)
    });
    let post = |body: Vec<u8>| {
        let r = http
            .post(url("/v1/records"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().unwrap())
    };

    let (status, body) = post(b"{not json".to_vec());
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"reason\":\"malformed JSON"), "{body}");

    let (status, body) = post(vec![b' '; 9 << 20]);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"error\""), "{body}");

    // A forged record and one for another cod: refused one by one, with reasons — and a
    // forged one dated an hour ahead is held back unchecked (no work spent on it).
    let params = params_of(&node);
    let mut l = cod::ledger::Ledger::new(params.clone());
    let mine = l.make_open(&example_secret("node2"));
    l.ingest(mine.clone()).unwrap();
    let mut forged = mine.to_json();
    forged["time"] = 1u64.into();
    let mut foreign = mine.to_json();
    foreign["cod"] = "f".repeat(40).into();
    let mut ahead = mine.to_json();
    ahead["time"] = (cod::clock::now() + 3600).into();
    let (status, body) = post(
        serde_json::to_vec(&serde_json::json!({"records": [forged, foreign, {"what": 1}, ahead]}))
            .unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    let results: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(
        results
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["refused"; 4]
    );
    assert!(
        results[0]["reason"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{body}"
    );
    assert!(
        results[1]["reason"]
            .as_str()
            .unwrap()
            .contains("another cod")
            || results[1]["reason"]
                .as_str()
                .unwrap()
                .contains("not this one")
            || results[1]["reason"]
                .as_str()
                .unwrap()
                .contains("belongs to cod"),
        "{body}"
    );
    assert!(
        results[2]["reason"].as_str().unwrap().contains("malformed"),
        "{body}"
    );
    assert!(
        results[3]["reason"]
            .as_str()
            .unwrap()
            .contains("held back until the clock gets there"),
        "{body}"
    );

    // Unknown routes and bad parameters get JSON errors too.
    let r = http.get(url("/v1/records/xyz")).send().unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http.get(url("/v2/anything")).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().unwrap().contains("\"error\":\"not_found\""));
    let r = http.delete(url("/v1/info")).send().unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert!(
        r.text()
            .unwrap()
            .contains("\"error\":\"method_not_allowed\"")
    );
    let r = http.get(url("/v1/log?limit=5001")).send().unwrap();
    assert_eq!(
        r.status().as_u16(),
        400,
        "a limit beyond the page bound is refused"
    );

    // A flood: many concurrent requests, many of them oversized; the node keeps serving.
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let url = url("/v1/records");
            std::thread::spawn(move || {
                let body = if i % 2 == 0 {
                    vec![b'x'; 2 << 20]
                } else {
                    b"[]".to_vec()
                };
                reqwest::blocking::Client::new()
                    .post(url)
                    .body(body)
                    .send()
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    let statuses: Vec<u16> = flood.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|s| [400, 413, 503, 0].contains(s)),
        "{statuses:?}"
    );
    let info = http.get(url("/v1/info")).send().unwrap();
    assert_eq!(info.status().as_u16(), 200, "still serving");
    assert_eq!(before, summary(), "nothing stored");
}

/// docs/openapi.json lists exactly the server's routes, and what the server answers has the
/// fields the document promises.
#[test]
fn the_openapi_document_matches_the_server() {
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{REPO}/docs/openapi.json")).unwrap(),
    )
    .unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut served: Vec<(String, String)> = cod::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(
        documented, served,
        "docs/openapi.json and api::ROUTES differ"
    );

    let w = World::new();
    let mut net = Net::without_dht(&w);
    let node = net.add("node1", "").clone();
    // (It shows its opening once it found itself alone.)
    net.wait_meshed(60);
    let status = net.status(&node).unwrap();
    let addr = status["addr"].as_str().unwrap().to_string();
    let node_id = status["node_id"].as_str().unwrap().to_string();
    let opening = w.at(&node, &["--json", "history"]).ok().json()["entries"][0]["record"]
        .as_str()
        .unwrap()
        .to_string();
    let http = reqwest::blocking::Client::new();
    let schema = |r: &serde_json::Value| -> serde_json::Value {
        let name = r["$ref"]
            .as_str()
            .map(|s| s.rsplit('/').next().unwrap().to_string());
        match name {
            Some(n) => doc["components"]["schemas"][n].clone(),
            None => r.clone(),
        }
    };
    for (method, path) in &served {
        let concrete = path
            .replace("{hash}", &opening)
            .replace("{account}", &node_id)
            .replace("{bucket}", &node_id[..2]);
        let resp = ask(&http, method, &format!("http://{addr}{concrete}"), path);
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().unwrap();
        if method == "POST" && path.contains("sign-requests") {
            // Served (not the 404 fallback): an empty proposal is refused with a JSON reason.
            assert!(
                [400, 422].contains(&status),
                "{method} {concrete}: {status} {body}"
            );
            assert!(
                body["error"].is_string() && body["reason"].is_string(),
                "{body}"
            );
            continue;
        }
        assert_eq!(status, 200, "{method} {concrete}");
        let op = &doc["paths"][path][method.to_lowercase()];
        let mut expected = schema(&op["responses"]["200"]["content"]["application/json"]["schema"]);
        if expected["type"] == "array" {
            assert!(body.is_array(), "{method} {path}: {body}");
            match body.as_array().unwrap().first() {
                Some(first) => {
                    let item = schema(&expected["items"]);
                    expected = item;
                    for field in expected["required"].as_array().unwrap() {
                        assert!(
                            first.get(field.as_str().unwrap()).is_some(),
                            "{method} {path}: {field} missing in {first}"
                        );
                    }
                }
                None => continue,
            }
        } else {
            for field in expected["required"].as_array().unwrap() {
                assert!(
                    body.get(field.as_str().unwrap()).is_some(),
                    "{method} {path}: {field} missing in {body}"
                );
            }
        }
    }
}

/// Guards against a key suspected stolen staying good for its account: the member moves the
/// account (its node id stays) to a new key; peers follow; the old key signs nothing more.
#[test]
fn a_member_moves_the_account_to_a_new_key_and_every_node_follows() {
    let w = World::new();
    // (Funded before the signers' daemons start: see `Net::funded_with_dht`. Funded through
    // node1's daemon, this test failed once in about eighty runs, the transfer after the
    // restart refused as signed by a key not in force — what that race explains: node1's
    // restart offers again the last period's checkpoint both signers signed as they
    // started; it takes the network's seq 0 from the funding, and the replacement, whose
    // claims are the funding's, no longer applies.)
    let net = Net::funded_with_dht(&w, 2, 10, ""); // 1750 each
    net.wait_meshed(60);
    let (n1, n2) = (&net.nodes[0], &net.nodes[1]);
    wait_for(60, "node2 to hold the funding", || {
        (net.balance(n2, &n1.id) == Some(1750)).then_some(())
    });

    w.at(n1, &["key", "rekey", "--unencrypted"])
        .fails_with("stop this node's daemon first");
    w.at(n1, &["node", "stop"]).ok();
    let j = w
        .at(n1, &["--json", "key", "rekey", "--unencrypted"])
        .ok()
        .json();
    assert_eq!(j["account"], n1.id.as_str());
    assert_ne!(j["old"], j["new"]);
    let replaced = std::path::PathBuf::from(j["replaced"].as_str().unwrap());
    assert!(replaced.exists(), "the old key is kept, not destroyed");
    let shown = w
        .cod(&["--json", "key", "show", s(&n1.dir.join("node.pub.key"))])
        .ok()
        .json();
    assert_eq!(shown["fingerprint"], j["new"]);
    w.at(n1, &["node", "start"]).ok();

    // Node 2 learns the replacement and confirms node 1 under its new key; the new key pays.
    wait_for(60, "node2 to confirm node1 again", || {
        let n1_peer = net.peer_id(n1)?;
        net.confirmed_peers(n2).contains(&n1_peer).then_some(())
    });
    let status = net.status(n1).unwrap();
    assert_eq!(
        status["node_id"],
        n1.id.as_str(),
        "the account keeps its id"
    );
    w.at(n1, &["transfer", "--to", &n2.id, "--amount", "1", "--yes"])
        .ok();
    wait_for(60, "the new key's payment to reach node2", || {
        (net.balance(n2, &n2.id) == Some(1850)).then_some(())
    });

    // The new key, restored on another machine, signs for the same account there.
    let backup = w.path("new-key.backup");
    w.at(n1, &["key", "export", "--out", s(&backup), "--unencrypted"])
        .ok();
    let ini = w.write("node3.ini", &net.node_ini(""));
    let n3 = w
        .cod(&[
            "--json",
            "deploy",
            "--package",
            s(&net.pkg),
            "--key",
            s(&w.example_key("node3.sec.key")),
            "--node-ini",
            s(&ini),
            "--dir",
            s(&w.path("nodes-node3")),
        ])
        .ok()
        .json();
    let n3 = Node {
        dir: n3["dir"].as_str().unwrap().into(),
        id: n1.id.clone(),
        key: "node3".into(),
    };
    let restored = w
        .at(
            &n3,
            &[
                "--json",
                "key",
                "import",
                s(&backup),
                "--account",
                &n1.id,
                "--unencrypted",
            ],
        )
        .ok()
        .json();
    assert_eq!(restored["node_id"], n1.id.as_str());
    w.at(&n3, &["node", "start"]).ok();
    wait_for(
        60,
        "the restored node to sync its account's balance",
        || {
            let b = w.at(&n3, &["--json", "balance"]);
            (b.out.status.success() && b.json()["assets"]["codcoin"]["total"] == 1650).then_some(())
        },
    );
    w.at(&n3, &["node", "stop"]).ok();

    // The old key back in place: the node says so when it starts, and every transfer it
    // signs is refused, naming the key in force.
    w.at(n1, &["node", "stop"]).ok();
    std::fs::copy(&replaced, n1.dir.join("node.sec.key")).unwrap();
    w.at(n1, &["node", "start"]).ok();
    let refused = w.at(n1, &["transfer", "--to", &n2.id, "--amount", "1", "--yes"]);
    assert_eq!(refused.code(), Some(4), "refused by the rules");
    let err = refused.stderr();
    assert!(err.contains("not the account's key in force"), "{err}");
    assert!(
        err.contains(&j["new"].as_str().unwrap()[..16]),
        "names the key in force: {err}"
    );
    let log = std::fs::read_to_string(n1.dir.join("node.log")).unwrap_or_default();
    assert!(
        log.contains("is not its account's key in force"),
        "the start says so: {log}"
    );
}

/// Deploys a node of `pkg` with example key `key` whose only way to peers is `peer`.
fn deploy_with_peer(w: &World, pkg: &std::path::Path, key: &str, peer: &str) -> Node {
    let ini =
        format!("[node]\nlisten = 127.0.0.1:0\n[dht]\nenabled = false\n[peers]\nstatic = {peer}\n");
    w.deploy_with(pkg, key, Some(&ini))
}

/// Nodes run inside a test process (`NodeBuilder` → `NodeHandle`, what `cod node run` wraps):
/// one finds the other through a static peer and confirms it, both stop when told, and the
/// store is closed when a node has stopped — it starts again on it. A node reads the time
/// from the clock it was given: what it tells its peers moves when that clock does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_start_and_stop_inside_a_test_process() {
    use cod::clock::{Clock, ManualClock};
    use cod::node::NodeBuilder;
    use cod::nodedir::NodeDir;
    let w = World::new();
    let (pkg, _) = w.pack_demo();
    // (Port 9 on loopback: nothing answers there.)
    let n1 = deploy_with_peer(&w, &pkg, "node1", "127.0.0.1:9");
    let start =
        |n: &Node| NodeBuilder::new(NodeDir::open(&n.dir).unwrap(), example_secret(&n.key)).start();
    let clock = std::sync::Arc::new(ManualClock::new(cod::clock::now()));
    let h1 = NodeBuilder::new(NodeDir::open(&n1.dir).unwrap(), example_secret("node1"))
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let n2 = deploy_with_peer(&w, &pkg, "node2", &h1.api_addr().to_string());
    let h2 = start(&n2).await.unwrap();
    let found = async {
        loop {
            let confirmed = h2.shared().confirmed_peers();
            if confirmed
                .iter()
                .any(|p| p.peer_id == Some(h1.shared().peer_id()))
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), found)
        .await
        .expect("node2 confirms node1 within a minute");
    let addr1 = h1.api_addr().to_string();
    clock.advance(7_200);
    let told = h2.shared().api().info(&addr1).await.unwrap().time;
    assert_eq!(told, clock.now(), "node1 tells the time of its own clock");
    let ours = h2
        .shared()
        .api()
        .info(&h2.api_addr().to_string())
        .await
        .unwrap()
        .time;
    assert!(
        told >= ours + 7_000,
        "two hours ahead of node2's: {told} vs {ours}"
    );
    h2.stop().await.unwrap();
    h1.stop().await.unwrap();
    let again = start(&n1).await.expect("the stopped node's store is free");
    again.stop().await.unwrap();
}

/// A node whose task fails (here a discovery that panics a moment after the start) stops by
/// itself, naming the task and how it ended, and leaves its store, socket and pid file as a
/// stopped node does: `cod node run` then exits non-zero for the service manager to restart
/// it, and it starts again (issue 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_task_fails_stops_and_says_which() {
    use cod::node::discovery::{Context, Discovery};
    use cod::node::{NodeBuilder, NodeError};
    use cod::nodedir::NodeDir;
    struct Lost;
    impl Discovery for Lost {
        fn name(&self) -> &'static str {
            "lost discovery"
        }
        fn run(self: std::sync::Arc<Self>, _: Context) -> futures::future::BoxFuture<'static, ()> {
            Box::pin(async {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                panic!("lost its way");
            })
        }
    }
    let w = World::new();
    let (pkg, _) = w.pack_demo();
    let n1 = deploy_with_peer(&w, &pkg, "node1", "127.0.0.1:9");
    let h = NodeBuilder::new(NodeDir::open(&n1.dir).unwrap(), example_secret("node1"))
        .discovery(std::sync::Arc::new(Lost))
        .start()
        .await
        .unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(60), h.stopped())
        .await
        .expect("the node stops by itself");
    match ended {
        Err(NodeError::TaskEnded(e)) => {
            assert_eq!(e.task, "lost discovery");
            assert!(
                e.how.contains("panicked") && e.how.contains("lost its way"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Nothing answers on its socket any more.
    w.at(&n1, &["status"]).fails_code(3, "no daemon");
    let again = NodeBuilder::new(NodeDir::open(&n1.dir).unwrap(), example_secret("node1"))
        .start()
        .await
        .expect("its store is free");
    again.stop().await.unwrap();
}

/// Issue 17: no answer of the public port tells which account the host holds. Two nodes
/// holding the same chain are asked every route the OpenAPI document lists, the same way:
/// once what is about the host itself (its transport id, address and clock) is set aside,
/// they answer alike — so an answer carries nothing of the account behind the address — and
/// what is about the host (`/v1/info`, `/v1/peers`, the challenge, every error) names no
/// account at all.
#[test]
fn no_answer_tells_which_account_a_host_holds() {
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{REPO}/docs/openapi.json")).unwrap(),
    )
    .unwrap();
    let w = World::new();
    let net = Net::with_dht(&w, 2, "");
    net.wait_meshed(90);
    let (n1, n2) = (&net.nodes[0], &net.nodes[1]);
    let funding = funding_archive(&w, &[n1, n2], 10);
    w.at(n1, &["chain", "import", s(&funding)]).ok();
    w.at(n1, &["transfer", "--to", &n2.id, "--amount", "1", "--yes"])
        .ok();
    let expected = net.applied(n1).unwrap();
    wait_for(60, "node2 to hold node1's chain", || {
        (net.applied(n2)? == expected).then_some(())
    });
    let accounts = [n1.id.clone(), n2.id.clone()];
    let names_an_account = |text: &str| accounts.iter().any(|a| text.contains(&a[..16]));
    let opening = w.at(n1, &["--json", "history"]).ok().json()["entries"][0]["record"]
        .as_str()
        .unwrap()
        .to_string();
    let http = reqwest::blocking::Client::new();
    let addr = |n: &Node| net.status(n).unwrap()["addr"].as_str().unwrap().to_string();
    let hosts = [addr(n1), addr(n2)];
    // Node1 shows peers its chain without its transfer until the transfer has come back to
    // it from a peer (the end of its stem): then both show the same.
    wait_for(30, "both hosts to show the same chain", || {
        let summary = |host: &str| -> Option<serde_json::Value> {
            let url = format!("http://{host}/v1/sync/summary");
            http.get(url).send().ok()?.json().ok()
        };
        (summary(&hosts[0])? == summary(&hosts[1])?).then_some(())
    });
    let mut asked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            // Each host is asked about node1's account (public chain data on both).
            let concrete = path
                .replace("{hash}", &opening)
                .replace("{account}", &n1.id)
                .replace("{bucket}", &n1.id[..2])
                .replace("{id}", &opening);
            let answers: Vec<(u16, serde_json::Value)> = hosts
                .iter()
                .map(|host| {
                    let resp = ask(&http, method, &format!("http://{host}{concrete}"), path);
                    (resp.status().as_u16(), resp.json().unwrap())
                })
                .collect();
            asked += 1;
            let about_the_host =
                matches!(path.as_str(), "/v1/info" | "/v1/peers" | "/v1/challenge")
                    || answers.iter().any(|(status, _)| *status >= 400);
            if about_the_host {
                for (status, body) in &answers {
                    assert!(
                        !names_an_account(&body.to_string()),
                        "{method} {concrete} ({status}) names an account: {body}"
                    );
                }
                continue;
            }
            let [(s1, b1), (s2, b2)] = [&answers[0], &answers[1]];
            assert_eq!(s1, s2, "{method} {concrete}");
            assert_eq!(
                unordered(b1),
                unordered(b2),
                "{method} {concrete}: the two hosts answer differently"
            );
        }
    }
    assert_eq!(asked, cod::api::ROUTES.len(), "every route was asked");
    // What a host says of itself: a transport id, never its account.
    let info: serde_json::Value = http
        .get(format!("http://{}/v1/info", hosts[0]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info["peer_id"], net.peer_id(n1).unwrap().as_str());
    assert!(
        info.get("node_id").is_none() && info.get("key").is_none(),
        "{info}"
    );
}

/// One request to a route of the OpenAPI document (`path`, as documented; `url`, with its
/// parameters filled in): a POST carries a harmless body (a zero nonce, no records).
fn ask(
    http: &reqwest::blocking::Client,
    method: &str,
    url: &str,
    path: &str,
) -> reqwest::blocking::Response {
    if method.eq_ignore_ascii_case("get") {
        return http.get(url).send().unwrap();
    }
    let body = if path.ends_with("challenge") {
        serde_json::json!({"nonce": "00".repeat(32)})
    } else if path.ends_with("stem") {
        serde_json::json!({"records": [], "from": "00".repeat(32)})
    } else {
        serde_json::json!({"records": []})
    };
    http.post(url).json(&body).send().unwrap()
}

/// `v` with every array sorted (two nodes may list the same records in the order each
/// applied them).
fn unordered(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Array(a) => {
            let mut items: Vec<serde_json::Value> = a.iter().map(unordered).collect();
            items.sort_by_key(|x| x.to_string());
            serde_json::Value::Array(items)
        }
        serde_json::Value::Object(o) => {
            serde_json::Value::Object(o.iter().map(|(k, x)| (k.clone(), unordered(x))).collect())
        }
        other => other.clone(),
    }
}

/// The daemon's log as operators keep it (issue 20): JSON lines when node.ini says so, and
/// logrotate's way — the file moved, then SIGHUP — gives a new file without a restart.
#[test]
fn the_log_can_be_json_lines_and_is_reopened_on_sighup() {
    let w = World::new();
    let mut net = Net::without_dht(&w);
    let node = net.add("node1", "[log]\nformat = json\n").clone();
    let log = node.dir.join("node.log");
    let text = wait_for(60, "the daemon's first lines", || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        t.contains("listening on").then_some(t)
    });
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{v}"
        );
    }
    let moved = node.dir.join("node.log.1");
    std::fs::rename(&log, &moved).unwrap();
    let pid = net.status(&node).unwrap()["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    wait_for(30, "a new node.log", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("log file reopened"))
    });
    assert!(
        !std::fs::read_to_string(&moved)
            .unwrap()
            .contains("reopened")
    );
    assert!(net.status(&node).is_some(), "still running");
}

/// A `payment` hook (node.ini `[hooks]`, issue 20) is told of every record that pays the
/// node's account — the distribution that funds it, then transfers — as JSON on stdin; a
/// burst of more payments than hooks may run at once (each hook takes 3 s) waits its turn,
/// none skipped.
#[test]
fn a_payment_hook_hears_of_each_payment_to_the_node() {
    let w = World::new();
    let mut net = Net::with_dht(&w, 1, "");
    net.add(
        "node2",
        "[hooks]\npayment = cat >> hook-events.jsonl; echo \"$COD_EVENT\" >> hook-names; sleep 3\n",
    );
    net.wait_meshed(60);
    let (n1, n2) = (&net.nodes[0], &net.nodes[1]);
    let funding = funding_archive(&w, &[n1, n2], 10); // 1750 each
    w.at(n1, &["chain", "import", s(&funding)]).ok();
    wait_for(60, "node2 to hold the funding", || {
        (net.balance(n2, &n2.id) == Some(1750)).then_some(())
    });
    let burst = cod::node::hooks::MAX_RUNNING + 2;
    for _ in 0..burst {
        w.at(
            n1,
            &["transfer", "--to", &n2.id, "--amount", "1.25", "--yes"],
        )
        .ok();
    }
    let events = n2.dir.join("hook-events.jsonl");
    let told = wait_for(90, "the hook to hear of every payment", || {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        let told: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (told.len() > burst).then_some(told)
    });
    assert_eq!(told.len(), burst + 1, "{told:?}");
    let kinds: Vec<&str> = told.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "distribute");
    assert!(kinds[1..].iter().all(|k| *k == "transfer"), "{kinds:?}");
    assert!(told.iter().all(|e| e["event"] == "payment"));
    assert_eq!(told[0]["amounts"]["codcoin"], 1750);
    assert!(
        told[1..]
            .iter()
            .all(|e| e["amounts"]["codcoin"] == 125 && e["from"] == n1.id.as_str())
    );
    let names = std::fs::read_to_string(n2.dir.join("hook-names")).unwrap();
    assert_eq!(names, "payment\n".repeat(burst + 1));
    let log = std::fs::read_to_string(n2.dir.join("node.log")).unwrap();
    assert!(!log.contains("is skipped"), "{log}");
}

/// `cod peers add` and `remove` change the peer table of a running node (issue 20): two
/// nodes that cannot find each other meet because the operator names one to the other.
#[test]
fn the_operator_adds_and_removes_peers_without_a_restart() {
    let w = World::new();
    let mut net = Net::without_dht(&w);
    // (A static peer where nobody listens: node.ini must name some way to find peers.)
    let alone = "[peers]\nexchange = false\nstatic = 127.0.0.1:9\n";
    net.add("node1", alone);
    net.add("node2", alone);
    let (n1, n2) = (net.nodes[0].clone(), net.nodes[1].clone());
    let addr2 = net.status(&n2).unwrap()["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let id2 = net.peer_id(&n2).unwrap();
    assert!(net.confirmed_peers(&n1).is_empty(), "no discovery");

    let added = w.at(&n1, &["--json", "peers", "add", &addr2]).ok().json();
    assert_eq!(added["added"], addr2.as_str());
    assert_eq!(added["new"], true);
    wait_for(60, "node1 to confirm the peer it was given", || {
        net.confirmed_peers(&n1).contains(&id2).then_some(())
    });
    let table = w.at(&n1, &["--json", "peers"]).ok().json();
    let entry = table["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["addr"] == addr2.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["found_via"], "operator");
    let again = w.at(&n1, &["--json", "peers", "add", &addr2]).ok().json();
    assert_eq!(again["new"], false);

    // The shell asks the node what to offer at TAB (issue 20): the peer's address to remove,
    // the members and the network to pay, a pending request to sign, node directories.
    let offered = |words: &[&str]| -> Vec<String> {
        let mut all = vec!["--", "cod", "--node", s(&n1.dir)];
        all.extend_from_slice(words);
        w.cod_env(&all, &[("COD_COMPLETE", "fish")])
            .ok()
            .stdout()
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    assert!(offered(&["peers", "remove", ""]).contains(&addr2));
    let members = w.at(&n1, &["--json", "members"]).ok().json();
    let members: Vec<String> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    assert!(!members.is_empty());
    let payees = offered(&["transfer", "--to", ""]);
    assert!(payees.contains(&"network".to_string()), "{payees:?}");
    for m in &members {
        assert!(payees.contains(m), "{m} in {payees:?}");
    }
    assert_eq!(
        offered(&["transfer", "--to", &members[0][..12]]),
        [members[0].clone()]
    );
    let newcomer = w.deploy_with(&net.pkg, "node4", None);
    let proposed = wait_for(60, "a proposal to be possible", || {
        let r = w.at(&n1, &["--json", "members", "admit", &newcomer.id]);
        r.out.status.success().then(|| r.json())
    });
    let id = proposed["id"].as_str().unwrap().to_string();
    assert_eq!(offered(&["sign", "approve", &id[..8]]), [id]);
    let parent = n1.dir.parent().unwrap();
    let dirs = w
        .cod_env(
            &["--", "cod", "--node", &format!("{}/", s(parent))],
            &[("COD_COMPLETE", "fish")],
        )
        .ok()
        .stdout();
    assert!(dirs.contains(s(&n1.dir)), "{dirs}");
    // The deployments under the default base ($XDG_DATA_HOME/cod) come first, said to be
    // deployments.
    let xdg = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(parent, xdg.path().join("cod")).unwrap();
    let listed = w
        .cod_env(
            &["--", "cod", "--node", ""],
            &[("COD_COMPLETE", "fish"), ("XDG_DATA_HOME", s(xdg.path()))],
        )
        .ok()
        .stdout();
    let deployed = xdg.path().join("cod").join(n1.dir.file_name().unwrap());
    let line = format!("{}\ta deployment", s(&deployed));
    assert!(
        listed.lines().any(|l| l == line),
        "{line:?} not in {listed}"
    );

    let removed = w
        .at(&n1, &["--json", "peers", "remove", &addr2])
        .ok()
        .json();
    assert_eq!(removed["was_known"], true);
    let table = w.at(&n1, &["--json", "peers"]).ok().json();
    assert!(
        table["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["addr"] != addr2.as_str()),
        "{table}"
    );
    let remembered = std::fs::read_to_string(n1.dir.join("peers.json")).unwrap_or_default();
    assert!(!remembered.contains(&addr2), "{remembered}");
    w.at(&n1, &["peers", "add", "no-port"])
        .usage_with("no-port");
}

/// Prometheus text exposition: `name{labels} value` samples (and `# HELP`/`# TYPE` lines),
/// parsed strictly enough that a malformed line fails the test.
fn prometheus(text: &str) -> std::collections::BTreeMap<String, f64> {
    let sample = regex::Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?) (\S+)$"#,
    )
    .unwrap();
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP ") || rest.starts_with("TYPE "),
                "a comment line: {line}"
            );
            continue;
        }
        let c = sample
            .captures(line)
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let v: f64 = c[2]
            .parse()
            .unwrap_or_else(|_| panic!("not a value: {line}"));
        out.insert(c[1].to_string(), v);
    }
    out
}

/// node.ini `[metrics] listen` serves Prometheus text (issue 20), whose counters move under
/// a small workload; only a loopback address is taken.
#[test]
fn metrics_are_prometheus_text_and_count_the_work() {
    let w = World::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut net = Net::with_dht(&w, 1, "");
    net.add("node2", &format!("[metrics]\nlisten = 127.0.0.1:{port}\n"));
    net.wait_meshed(60);
    let (n1, n2) = (&net.nodes[0], &net.nodes[1]);
    let scrape = || {
        let r = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics")).unwrap();
        assert_eq!(r.status(), 200);
        let kind = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        prometheus(&r.text().unwrap())
    };
    let before = scrape();
    assert_eq!(before["cod_peers{state=\"up\"}"], 1.0, "{before:?}");
    assert!(before.contains_key("cod_uptime_seconds"));

    let funding = funding_archive(&w, &[n1, n2], 10);
    w.at(n1, &["chain", "import", s(&funding)]).ok();
    wait_for(60, "node2 to hold the funding", || {
        (net.balance(n2, &n2.id) == Some(1750)).then_some(())
    });
    let addr = net.status(n2).unwrap()["addr"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..3 {
        reqwest::blocking::get(format!("http://{addr}/v1/info")).unwrap();
    }
    let after = scrape();
    let get =
        |m: &std::collections::BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    // The funding's issuance and distribution (node2 held both openings already).
    let applied = "cod_records{state=\"applied\"}";
    assert_eq!(get(&after, applied) - get(&before, applied), 2.0);
    assert_eq!(
        get(&after, "cod_records_applied_total") - get(&before, "cod_records_applied_total"),
        2.0
    );
    assert_eq!(
        get(&after, "cod_records{state=\"applied\"}"),
        net.status(n2).unwrap()["chain"]["applied"]
            .as_f64()
            .unwrap()
    );
    let info = "cod_api_requests_total{route=\"/v1/info\",status=\"200\"}";
    assert!(get(&after, info) >= get(&before, info) + 3.0, "{after:?}");
    assert!(
        after
            .keys()
            .any(|k| k.starts_with("cod_api_request_duration_seconds_bucket{route=\"/v1/info\"")),
        "{after:?}"
    );
    assert!(get(&after, "cod_last_distributed_period") >= 0.0);
    assert!(
        after.keys().any(|k| k.starts_with("cod_sync_rounds_total")),
        "{after:?}"
    );
    assert!(
        get(&after, "cod_records_checked_total") >= 2.0,
        "the funding came by sync: {after:?}"
    );
    assert!(
        get(&after, "cod_api_response_bytes_total") > get(&before, "cod_api_response_bytes_total")
    );

    // Every series the Grafana dashboard in docs/ queries is one the endpoint serves.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(REPO).join("docs/grafana-dashboard.json"))
            .unwrap(),
    )
    .unwrap();
    let name = regex::Regex::new(r"\bcod_[a-z_]+").unwrap();
    let mut queried = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{panel}");
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            assert!(expr.contains(r#"instance=~"$instance""#), "{expr}");
            queried.extend(name.find_iter(expr).map(|m| m.as_str().to_string()));
        }
    }
    assert!(queried.len() >= 15, "{queried:?}");
    for q in &queried {
        assert!(
            after
                .keys()
                .any(|k| k == q || k.starts_with(&format!("{q}{{"))),
            "the dashboard queries {q}, which /metrics does not serve: {after:?}"
        );
    }

    let ini = w.write(
        "bad.ini",
        &net.node_ini("[metrics]\nlisten = 0.0.0.0:9410\n"),
    );
    let pkg = net.pkg.clone();
    let refused = w.cod(&[
        "deploy",
        "--package",
        s(&pkg),
        "--key",
        s(&w.example_key("node3.sec.key")),
        "--dir",
        s(&w.path("n3")),
        "--node-ini",
        s(&ini),
    ]);
    refused.fails_with("loopback");
}

/// `cod config reload` and SIGHUP (issue 20): a running node takes `[signing] auto`, new
/// static peers and the log level at once, and names what else changed for its next start.
#[test]
fn node_ini_is_reloaded_without_a_restart() {
    let w = World::new();
    let mut net = Net::without_dht(&w);
    let node = net
        .add("node1", "[peers]\nexchange = false\nstatic = 127.0.0.1:9\n")
        .clone();
    let ini_path = node.dir.join("node.ini");
    let ini = std::fs::read_to_string(&ini_path).unwrap();
    let mirror = w.path("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let nothing = w.at(&node, &["--json", "config", "reload"]).ok().json();
    assert_eq!(nothing["applied"], serde_json::json!([]));
    assert_eq!(nothing["at_next_start"], serde_json::json!([]));

    let edited = ini
        .replace("static = 127.0.0.1:9", "static = 127.0.0.1:9, 127.0.0.1:10")
        .replace("listen = 127.0.0.1:0", "listen = 127.0.0.1:1")
        + &format!(
            "[signing]\nauto = true\n[log]\nlevel = debug\n[archive]\nmirrors = {}\n",
            s(&mirror)
        );
    assert_ne!(edited, ini);
    std::fs::write(&ini_path, &edited).unwrap();
    let r = w.at(&node, &["--json", "config", "reload"]).ok().json();
    assert_eq!(
        r["applied"],
        serde_json::json!([
            "signing.auto",
            "peers.static",
            "log.level",
            "archive.mirrors"
        ])
    );
    wait_for(60, "the new mirror to hold the node's records", || {
        std::fs::read_dir(&mirror)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".archive"))
            .then_some(())
    });
    assert_eq!(r["at_next_start"], serde_json::json!(["node.listen"]));
    let table = w.at(&node, &["--json", "peers"]).ok().json();
    assert!(
        table["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["addr"] == "127.0.0.1:10" && p["found_via"] == "static"),
        "{table}"
    );
    let again = w.at(&node, &["--json", "config", "reload"]).ok().json();
    assert_eq!(again["applied"], serde_json::json!([]));
    assert_eq!(again["at_next_start"], serde_json::json!(["node.listen"]));

    // SIGHUP does the same; a node.ini that does not parse is refused and changes nothing.
    std::fs::write(&ini_path, edited.replace("auto = true", "auto = false")).unwrap();
    let pid = net.status(&node).unwrap()["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    wait_for(30, "the SIGHUP reload in the log", || {
        std::fs::read_to_string(node.dir.join("node.log"))
            .ok()
            .filter(|t| t.contains("node.ini reloaded: signing.auto taken"))
    });
    std::fs::write(&ini_path, "[node]\nlisten = nowhere\n").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    wait_for(30, "the refusal in the log", || {
        std::fs::read_to_string(node.dir.join("node.log"))
            .ok()
            .filter(|t| t.contains("SIGHUP: node.ini not reloaded") && t.contains("nowhere"))
    });
    // (The command itself reads node.ini to find the node's socket.)
    w.at(&node, &["config", "reload"]).fails_with("listen");
    std::fs::write(&ini_path, &edited).unwrap();
    assert!(net.status(&node).is_some(), "still running");
}
