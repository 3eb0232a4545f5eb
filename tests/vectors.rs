//! Test vectors for the record encoding (docs/ledger.md): fixed records made with the example
//! keys, their canonical bodies, hashes and signatures, checked byte for byte and with
//! independent tools (`sha256sum`, `openssl dgst`). Regenerate after an intended format
//! change with `COD_WRITE_VECTORS=1 cargo test --test vectors`, and say why in the commit.

mod common;
use cod::ids::{AccountId, CodId};
use cod::ledger::{
    B64, Body, Content, Distribute, Handover, Head, Issue, Members, Output, Record, Sig, SignerSet,
    Transfer, add_signature,
};
use common::*;
use std::path::{Path, PathBuf};

const COD: &str = "0123456789abcdef0123456789abcdef01234567";
const TIME: u64 = 1_767_571_200;

fn vectors() -> Vec<(&'static str, Record, &'static str)> {
    let cod: CodId = COD.parse().unwrap();
    let n1 = example_secret("node1");
    let n2 = example_secret("node2");
    let a1 = n1.public().node_id(&cod);
    let open_body = Body {
        version: 1,
        cod,
        time: TIME,
        account: a1,
        seq: 0,
        prev: None,
        content: Content::Transfer(Transfer {
            key: Some(B64(n1.public().der().to_vec())),
            claims: vec![],
            outputs: vec![],
            memo: None,
            rekey: None,
            redeem: Default::default(),
            vouch: vec![],
        }),
    };
    let open = Record::new(
        open_body.clone(),
        vec![Sig {
            key: None,
            sig: B64(n1.sign(&open_body.canonical_bytes())),
        }],
    );
    let pay_body = Body {
        version: 1,
        cod,
        time: TIME + 60,
        account: a1,
        seq: 1,
        prev: Some(open.hash()),
        content: Content::Transfer(Transfer {
            key: None,
            claims: vec![],
            outputs: vec![Output {
                account: AccountId::network(&cod),
                amount: 1250,
                asset: "codcoin".into(),
            }],
            memo: Some("two loaves".into()),
            rekey: None,
            redeem: Default::default(),
            vouch: vec![],
        }),
    };
    let pay = Record::new(
        pay_body.clone(),
        vec![Sig {
            key: None,
            sig: B64(n1.sign(&pay_body.canonical_bytes())),
        }],
    );
    let issue_body = Body {
        version: 1,
        cod,
        time: TIME + 120,
        account: AccountId::network(&cod),
        seq: 0,
        prev: None,
        content: Content::Issue(Issue {
            period: 0,
            attest: [("bread".to_string(), 10)].into(),
            amounts: [("codcoin".to_string(), 3500)].into(),
            work: Default::default(),
        }),
    };
    let sigs = add_signature(&issue_body, &add_signature(&issue_body, &[], &n1), &n2);
    let issue = Record::new(issue_body, sigs);
    // node2 and node3 take over, either one signing alone.
    let mut keys = vec![
        n2.public().fingerprint(),
        example_secret("node3").public().fingerprint(),
    ];
    keys.sort();
    let signers_body = Body {
        version: 1,
        cod,
        time: TIME + 180,
        account: AccountId::network(&cod),
        seq: 1,
        prev: Some(issue.hash()),
        content: Content::Signers(SignerSet { keys, quorum: 1 }),
    };
    let sigs = add_signature(&signers_body, &add_signature(&signers_body, &[], &n1), &n2);
    let signers = Record::new(signers_body, sigs);
    // The new set (either signer alone) hands the ledger over at a checkpoint holding
    // node1's payment.
    let handover_body = Body {
        version: 1,
        cod,
        time: TIME + 200,
        account: AccountId::network(&cod),
        seq: 2,
        prev: Some(signers.hash()),
        content: Content::Distribute(Distribute {
            admitted: vec![],
            period: 0,
            special: true,
            handover: Some(Handover {
                rules: 2,
                to: "fedcba9876543210fedcba9876543210fedcba98".parse().unwrap(),
                version: "2.0.0".into(),
            }),
            heads: [(
                a1,
                Head {
                    hash: pay.hash(),
                    seq: 1,
                },
            )]
            .into(),
            payouts: vec![],
        }),
    };
    let sigs = add_signature(&handover_body, &[], &n2);
    let handover = Record::new(handover_body, sigs);
    // node1's account moves to node3's key, which then signs (naming itself).
    let n3 = example_secret("node3");
    let rekey_body = Body {
        version: 1,
        cod,
        time: TIME + 240,
        account: a1,
        seq: 2,
        prev: Some(pay.hash()),
        content: Content::Transfer(Transfer {
            key: None,
            claims: vec![],
            outputs: vec![],
            memo: None,
            rekey: Some(B64(n3.public().der().to_vec())),
            redeem: Default::default(),
            vouch: vec![],
        }),
    };
    let rekey = Record::new(
        rekey_body.clone(),
        vec![Sig {
            key: None,
            sig: B64(n1.sign(&rekey_body.canonical_bytes())),
        }],
    );
    let after_body = Body {
        time: TIME + 300,
        seq: 3,
        prev: Some(rekey.hash()),
        content: Content::Transfer(Transfer {
            key: None,
            claims: vec![],
            outputs: vec![Output {
                account: AccountId::network(&cod),
                amount: 1,
                asset: "codcoin".into(),
            }],
            memo: None,
            rekey: None,
            redeem: Default::default(),
            vouch: vec![],
        }),
        ..rekey_body
    };
    let after = Record::new(
        after_body.clone(),
        vec![Sig {
            key: Some(B64(n3.public().der().to_vec())),
            sig: B64(n3.sign(&after_body.canonical_bytes())),
        }],
    );
    // Membership (issue 15): node2's account is admitted, node1's removed, by the set in
    // force (node2 alone).
    let a2 = n2.public().node_id(&cod);
    let members_body = Body {
        version: 1,
        cod,
        time: TIME + 320,
        account: AccountId::network(&cod),
        seq: 3,
        prev: Some(handover.hash()),
        content: Content::Members(Members {
            admit: vec![a2],
            remove: vec![a1],
        }),
    };
    let members = Record::new(members_body.clone(), add_signature(&members_body, &[], &n2));
    // Issuance naming who did the attested work: node2 baked 5 of the 8 hours.
    let work_body = Body {
        version: 1,
        cod,
        time: TIME + 340,
        account: AccountId::network(&cod),
        seq: 4,
        prev: Some(members.hash()),
        content: Content::Issue(Issue {
            period: 0,
            attest: [("baking".to_string(), 8)].into(),
            amounts: [("codcoin".to_string(), 16000)].into(),
            work: [(a2, [("baking".to_string(), 5)].into())].into(),
        }),
    };
    let work = Record::new(work_body.clone(), add_signature(&work_body, &[], &n2));
    // node1's account (node3's key) redeems two loaves and vouches for node2's account.
    let redeem_body = Body {
        time: TIME + 360,
        seq: 4,
        prev: Some(after.hash()),
        content: Content::Transfer(Transfer {
            key: None,
            claims: vec![],
            outputs: vec![],
            memo: None,
            rekey: None,
            redeem: [("bread".to_string(), 2)].into(),
            vouch: vec![a2],
        }),
        ..after.body().clone()
    };
    let redeem = Record::new(
        redeem_body.clone(),
        vec![Sig {
            key: Some(B64(n3.public().der().to_vec())),
            sig: B64(n3.sign(&redeem_body.canonical_bytes())),
        }],
    );
    // A distribution whose checkpoint admits an account the vouches sponsored.
    let admitted_body = Body {
        version: 1,
        cod,
        time: TIME + 400,
        account: AccountId::network(&cod),
        seq: 5,
        prev: Some(work.hash()),
        content: Content::Distribute(Distribute {
            admitted: vec![a2],
            period: 0,
            special: true,
            handover: None,
            heads: [(
                a1,
                Head {
                    hash: redeem.hash(),
                    seq: 4,
                },
            )]
            .into(),
            payouts: vec![Output {
                account: a2,
                amount: 700,
                asset: "codcoin".into(),
            }],
        }),
    };
    let admitted = Record::new(
        admitted_body.clone(),
        add_signature(&admitted_body, &[], &n2),
    );
    vec![
        ("open", open, "node1"),
        ("transfer", pay, "node1"),
        ("issue", issue, "node1,node2"),
        ("signers", signers, "node1,node2"),
        ("handover", handover, "node2"),
        ("rekey", rekey, "node1"),
        ("rekeyed", after, "node3"),
        ("members", members, "node2"),
        ("work", work, "node2"),
        ("redeem", redeem, "node3"),
        ("admitted", admitted, "node2"),
    ]
}

fn dir() -> PathBuf {
    Path::new(REPO).join("tests/vectors")
}

#[test]
fn records_match_the_committed_vectors() {
    let write = std::env::var_os("COD_WRITE_VECTORS").is_some();
    for (name, r, _) in vectors() {
        let files = [
            (format!("{name}.record.json"), r.to_bytes()),
            (format!("{name}.body.json"), r.body().canonical_bytes()),
            (
                format!("{name}.hash"),
                format!("{}\n", r.hash()).into_bytes(),
            ),
        ];
        for (i, s) in r.sigs().iter().enumerate() {
            let file = dir().join(format!("{name}.sig{i}.bin"));
            if write {
                std::fs::create_dir_all(dir()).unwrap();
                std::fs::write(&file, &s.sig.0).unwrap();
            }
            assert_eq!(
                std::fs::read(&file).unwrap_or_default(),
                s.sig.0,
                "{} (regenerate: COD_WRITE_VECTORS=1)",
                file.display()
            );
        }
        for (f, bytes) in files {
            let file = dir().join(&f);
            if write {
                std::fs::write(&file, &bytes).unwrap();
            }
            assert_eq!(
                std::fs::read(&file).unwrap_or_default(),
                bytes,
                "{} differs (regenerate: COD_WRITE_VECTORS=1)",
                file.display()
            );
        }
        // The stored record decodes to the same record.
        assert_eq!(
            Record::from_bytes(&std::fs::read(dir().join(format!("{name}.record.json"))).unwrap())
                .unwrap(),
            r
        );
    }
}

#[test]
fn hashes_and_signatures_check_with_standard_tools() {
    for (name, r, signers) in vectors() {
        let body = dir().join(format!("{name}.body.json"));
        let sum = tool("sha256sum", &[s(&body)]);
        assert_eq!(
            sum.split_whitespace().next().unwrap(),
            r.hash().to_string(),
            "{name}: hash = SHA-256(canonical body)"
        );
        for (i, signer) in signers.split(',').enumerate() {
            // Multi-signed records keep signatures sorted by key fingerprint.
            let key = if signers.contains(',') {
                let fp = |n: &str| example_secret(n).public().fingerprint();
                let mut names: Vec<&str> = signers.split(',').collect();
                names.sort_by_key(|n| fp(n));
                names[i]
            } else {
                signer
            };
            let pubkey = Path::new(REPO).join(format!("keys-example/{key}.pub.key"));
            let sig = dir().join(format!("{name}.sig{i}.bin"));
            let ok = tool(
                "openssl",
                &[
                    "dgst",
                    "-sha256",
                    "-verify",
                    s(&pubkey),
                    "-signature",
                    s(&sig),
                    s(&body),
                ],
            );
            assert!(ok.contains("Verified OK"), "{name} sig {i}: {ok}");
        }
    }
}

/// The id vectors docs/formats.md gives for the example keys ("Ids"), checked with
/// independent tools: `openssl` for the DER and SHA-256, Python's hashlib for the SHA-1.
#[test]
fn the_id_vectors_of_the_example_keys() {
    let cod: CodId = COD.parse().unwrap();
    let n1 = example_secret("node1");
    let n2 = example_secret("node2");
    assert_eq!(
        n1.public().fingerprint().to_string(),
        "3f7a735b830db8e1450d849a367a3962a170de546e4c29644f06c5cfaad25cea"
    );
    assert_eq!(
        n1.public().node_id(&cod).to_string(),
        "4dfaf7e2b9da42986323975e7e7372ba026acad5e126c931803ed1708c53aae2"
    );
    assert_eq!(
        n2.public().node_id(&cod).to_string(),
        "4bd924a73340eb00ae925143fe45e853f8a7e3ab40116dba52429ab9232920f8"
    );
    let deployer = example_secret("cod").public().fingerprint();
    assert_eq!(
        hex::encode(cod::api::deployer_infohash(&deployer)),
        "e9ac6207190f2cf396a664cdada530495785c3be"
    );
    // The same from the key file with openssl and Python alone.
    let script = format!(
        "set -e; openssl pkey -pubin -in {0}/keys-example/node1.pub.key -outform DER > $T/n1.der
         python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' {1} > $T/cod.bin
         openssl dgst -sha256 -r $T/n1.der | cut -c1-64
         cat $T/n1.der $T/cod.bin | openssl dgst -sha256 -r | cut -c1-64
         openssl pkey -pubin -in {0}/keys-example/cod.pub.key -outform DER | openssl dgst -sha256 -binary > $T/fp.bin
         python3 -c 'import hashlib,sys; print(hashlib.sha1(b\"cod/deployer/v1\\0\" + open(sys.argv[1],\"rb\").read()).hexdigest())' $T/fp.bin",
        env!("CARGO_MANIFEST_DIR"),
        COD
    );
    let t = tempfile::tempdir().unwrap();
    let out = stdout_of(
        std::process::Command::new("sh")
            .args(["-c", &script])
            .env("T", t.path()),
    );
    assert_eq!(
        out,
        "3f7a735b830db8e1450d849a367a3962a170de546e4c29644f06c5cfaad25cea\n\
         4dfaf7e2b9da42986323975e7e7372ba026acad5e126c931803ed1708c53aae2\n\
         e9ac6207190f2cf396a664cdada530495785c3be\n"
    );
}
