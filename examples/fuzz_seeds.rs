//! Writes the seed corpora of the fuzz targets (`fuzz/seeds/<target>/`): real bytes of every
//! kind cod decodes — records, archives, a package, torrents, peer-wire messages, INI files,
//! keys, control lines, API bodies — made by cod itself from the example keys and templates,
//! so the fuzzers start from inputs that get past the parsers.
//!
//! `cargo run --example fuzz_seeds -- fuzz/seeds` (`just fuzz-seeds`).

use cod::archive;
use cod::config::ComConfig;
use cod::ids::CodId;
use cod::keys::SecretKey;
use cod::ledger::{Ledger, Output, Params, Record};
use cod::package::{PackInput, Package};
use cod::seeder::wire::{self, ExtHandshake, Handshake, Message, MetadataMsg};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn key(name: &str) -> SecretKey {
    SecretKey::from_pem(&text(&format!("keys-example/{name}.sec.key")), None).expect("example key")
}

struct Seeds(PathBuf);

impl Seeds {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir).expect("seed directory");
        std::fs::write(dir.join(name), bytes).expect("seed file");
    }

    /// A seed for a target whose first byte picks the decoder.
    fn put_with(&self, target: &str, selector: u8, name: &str, bytes: &[u8]) {
        let mut b = vec![selector];
        b.extend_from_slice(bytes);
        self.put(target, name, &b);
    }
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("fuzz/seeds"));
    let s = Seeds(out.clone());

    // A small package (a stand-in executable keeps it small) and its torrents.
    let deployer = key("cod");
    let pkg = Package::pack(
        PackInput {
            com_ini: ("com.ini".into(), text("ini-templates/com.ini")),
            cod_ini: ("cod.ini".into(), text("ini-templates/cod.ini")),
            node_ini: ("node.ini".into(), text("ini-templates/node.ini")),
            guide: None,
            public_keys: ["com.pub.key", "cod.pub.key"]
                .iter()
                .map(|k| (k.to_string(), text(&format!("keys-example/{k}"))))
                .collect(),
            executable: b"#!/bin/sh\necho seed\n".to_vec(),
            signer: &deployer,
        },
        &mut |_| {},
    )
    .expect("the templates pack");
    s.put("package", "templates.cod.tar", &pkg.bytes);
    for (i, info) in pkg.torrents().iter().enumerate() {
        s.put("metainfo", &format!("torrent{i}"), &info.torrent_file());
        s.put("metainfo", &format!("info{i}"), &info.bencode());
        s.put("magnet", &format!("magnet{i}"), info.magnet().as_bytes());
        s.put("bencode", &format!("info{i}"), &info.bencode());
    }
    s.put(
        "magnet",
        "peers",
        format!(
            "magnet:?xt=urn:btih:{}&dn=x&xl=12&x.pe=127.0.0.1:7410&x.pe=[::1]:7",
            pkg.cod_id()
        )
        .as_bytes(),
    );

    // A ledger: openings, an issuance signed by two signers, transfers.
    let cod = pkg.cod_id();
    let com = ComConfig::parse("com.ini", &text("ini-templates/com.ini")).expect("com.ini");
    let params = Params::new(cod, com.clone(), deployer.public().clone());
    let mut l = Ledger::new(params.clone());
    let nodes: Vec<SecretKey> = (1..=3).map(|i| key(&format!("node{i}"))).collect();
    let mut records: Vec<Record> = Vec::new();
    let t0 = com.epoch + 10;
    for k in &nodes {
        let r = l.make_open(k);
        l.ingest(r.clone()).expect("opening applies");
        records.push(r);
    }
    let attest: BTreeMap<String, u64> = com
        .backing
        .keys()
        .take(1)
        .map(|k| (k.clone(), 10))
        .collect();
    if let Ok(body) = l.propose_issue(attest, Default::default(), t0) {
        let mut sigs = Vec::new();
        for k in &nodes[..2] {
            sigs = cod::ledger::add_signature(&body, &sigs, k);
        }
        let r = Record::new(body, sigs);
        if l.ingest(r.clone()).is_ok() {
            records.push(r);
        }
    }
    let asset = com.assets.keys().next().expect("an asset").clone();
    for (i, k) in nodes.iter().enumerate() {
        let to = nodes[(i + 1) % nodes.len()].public().node_id(&cod);
        let out = vec![Output {
            account: to,
            asset: asset.clone(),
            amount: 1,
        }];
        if let Ok(r) = l.make_transfer(k, out, Some(format!("seed {i} é\u{1}")), t0 + 20) {
            let _ = l.ingest(r.clone());
            records.push(r);
        }
    }
    for (i, r) in records.iter().enumerate() {
        s.put("record", &format!("r{i}"), &r.to_bytes());
    }
    for f in [
        "issue", "open", "transfer", "signers", "rekey", "rekeyed", "handover",
    ] {
        s.put(
            "record",
            &format!("vector-{f}"),
            text(&format!("tests/vectors/{f}.record.json"))
                .trim_end()
                .as_bytes(),
        );
    }
    s.put("archive", "ledger", &archive::write(&cod, records.iter()));
    s.put(
        "archive",
        "empty",
        &archive::write(&CodId::from_bytes([0x42; 20]), std::iter::empty()),
    );
    // The archive target reads for cod 4242…: one with these records under that id too.
    let mut foreign = archive::write(&cod, records.iter());
    let header_end = foreign.iter().position(|b| *b == b'\n').expect("a header");
    let header = format!("cod-archive 1 {}", CodId::from_bytes([0x42; 20]));
    foreign.splice(..header_end, header.into_bytes());
    s.put("archive", "relabelled", &foreign);

    // API bodies, requests and answers (the first byte picks the type, see the targets).
    let raw: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.to_bytes()).expect("utf-8"))
        .collect();
    let submit = format!("{{\"records\":[{}]}}", raw.join(","));
    s.put_with("api_request", 0, "submit", submit.as_bytes());
    s.put_with(
        "api_request",
        1,
        "challenge",
        format!("{{\"nonce\":\"{}\"}}", "ab".repeat(32)).as_bytes(),
    );
    if let Some(issue) = records
        .iter()
        .find(|r| r.kind() == cod::ledger::Kind::Issue)
    {
        let p = serde_json::json!({"record": issue.to_json(), "proposer": nodes[0].public().node_id(&cod)});
        s.put_with("api_request", 2, "proposal", p.to_string().as_bytes());
    }
    let rej = serde_json::json!({"node_id": nodes[0].public().node_id(&cod), "reason": "no", "signature": "AAAA"});
    s.put_with("api_request", 3, "rejection", rej.to_string().as_bytes());
    let page = format!("{{\"records\":[{}],\"next\":3}}", raw.join(","));
    s.put_with("api_response", 0, "page", page.as_bytes());
    s.put_with(
        "api_response",
        1,
        "summary",
        br#"{"applied":7,"accounts":4,"digest":"00ff"}"#,
    );
    let buckets = serde_json::json!({"buckets": (0..256).map(|i| if i % 3 == 0 { "0011223344556677".to_string() } else { String::new() }).collect::<Vec<_>>()});
    s.put_with("api_response", 2, "buckets", buckets.to_string().as_bytes());
    let heads = serde_json::json!({"heads": {records[0].account().to_string(): {"hash": records[0].hash(), "seq": 0}}});
    s.put_with("api_response", 3, "heads", heads.to_string().as_bytes());
    let info = serde_json::json!({
        "cod_id": cod, "node_id": nodes[0].public().node_id(&cod), "key": "AAAA",
        "software_version": "0.1.0", "com_version": "1.0.0", "cod_version": "1.0.0",
        "addr": "127.0.0.1:7410", "time": 1, "deployer": deployer.public().fingerprint(),
        "package": pkg.file_name(),
    });
    s.put_with("api_response", 4, "info", info.to_string().as_bytes());
    s.put_with("api_response", 5, "challenge", br#"{"signature":"AAAA"}"#);
    s.put_with("api_response", 6, "results", br#"[{"hash":null,"status":"refused","reason":"bad"},{"hash":"00","status":"applied","reason":null}]"#);
    s.put_with(
        "api_response",
        7,
        "peers",
        br#"[{"addr":"127.0.0.1:7411","node_id":"00"}]"#,
    );
    s.put_with(
        "api_response",
        8,
        "error",
        br#"{"error":"bad_request","reason":"x"}"#,
    );

    // The peer wire.
    let hs = Handshake {
        infohash: *cod.as_bytes(),
        peer_id: *b"-CD0100-abcdefghijkl",
        extensions: true,
    };
    s.put("wire", "handshake", &hs.encode());
    let ext = ExtHandshake {
        m: [("ut_metadata".to_string(), 1)].into(),
        metadata_size: Some(1234),
        v: Some("cod".into()),
    };
    let ext = serde_bencode::to_bytes(&ext).expect("encodes");
    s.put("wire", "ext-handshake", &ext);
    s.put("bencode", "ext-handshake", &ext);
    let meta = wire::encode_metadata_msg(
        &MetadataMsg {
            msg_type: wire::META_DATA,
            piece: 0,
            total_size: Some(3),
        },
        b"abc",
    );
    s.put("wire", "metadata", &meta);
    for (i, m) in [
        Message::Interested,
        Message::Bitfield(wire::full_bitfield(10)),
        Message::Request {
            index: 1,
            begin: 16384,
            length: 16384,
        },
        Message::Piece {
            index: 0,
            begin: 0,
            block: vec![1, 2, 3],
        },
        Message::Extended {
            id: 0,
            payload: ext.clone(),
        },
    ]
    .iter()
    .enumerate()
    {
        s.put("wire", &format!("message{i}"), &m.encode()[4..]);
    }

    // Configuration and keys.
    for (sel, f) in [(0u8, "com"), (1, "cod"), (2, "node")] {
        s.put_with(
            "ini",
            sel,
            f,
            text(&format!("ini-templates/{f}.ini")).as_bytes(),
        );
    }
    for f in ["cod.pub.key", "node1.pub.key", "node1.sec.key"] {
        s.put("pem", f, text(&format!("keys-example/{f}")).as_bytes());
    }
    let encrypted = nodes[0].to_pem(Some(b"passphrase")).expect("encrypts");
    s.put("pem", "encrypted", encrypted.as_bytes());

    // Control lines.
    for (i, line) in [
        r#"{"request":"hello","version":1}"#,
        r#"{"request":"transfer","outputs":[{"account":"network","asset":"codcoin","amount":1}],"memo":null,"seq":3}"#,
        r#"{"request":"ban","address":"127.0.0.9","seconds":60}"#,
        r#"{"response":"ok","data":{"x":1}}"#,
        r#"{"response":"error","kind":"seq_taken","message":"m"}"#,
        r#"{"event":"sync","held":1,"applied":1,"pending":0,"missing":[]}"#,
    ]
    .iter()
    .enumerate()
    {
        s.put("control", &format!("line{i}"), line.as_bytes());
    }
    // The structure-aware targets take any bytes (`arbitrary`): a few patterns to start from.
    for t in ["download", "record_fields"] {
        s.put(t, "zeros", &[0u8; 512]);
        s.put(t, "ones", &[0xffu8; 512]);
        let counting: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
        s.put(t, "counting", &counting);
    }
    println!("seeds written to {}", Path::new(&out).display());
}
