//! The conformance suite (issue 19; `docs/conformance.md`): language-neutral cases in
//! `tests/conformance/ledger/*.json` — a com.ini, records as their exact bytes, the orders they
//! arrive in, what each arrival gives, and the state every order ends in. `cases_pass` runs
//! them from the files alone, as a second implementation would. The files are written from
//! the scenarios below (`COD_WRITE_CONFORMANCE=1 cargo test --test conformance`; say why in
//! the commit), and `the_files_are_the_scenarios` holds them to those scenarios, whose
//! intended outcomes (`Scene::refused`, `Scene::expect`) each file must agree with.

mod common;
use cod::config::com::ComConfig;
use cod::ids::{AccountId, CodId};
use cod::keys::{PublicKey, SecretKey};
use cod::ledger::{
    B64, Body, Content, Ledger, Output, Params, Record, RecordError, Sig, add_signature,
};
use common::*;
use rand::SeedableRng;
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The version of the specification the cases hold an implementation to.
const SPEC: &str = "cod-ledger/1";
/// 2026-01-05T00:00:00Z, the cases' epoch.
const EPOCH: u64 = 1_767_571_200;
const DAY: u64 = 86_400;
const COD: &str = "0123456789abcdef0123456789abcdef01234567";

/// One case, as its file holds it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    spec: String,
    about: String,
    /// The cod id the records carry.
    cod: String,
    /// The deployer's public key (base64 DER SubjectPublicKeyInfo), for com.ini's fallback.
    deployer: String,
    com_ini: String,
    /// Each record's bytes, exactly as they arrive (UTF-8 text).
    records: Vec<String>,
    /// Arrival orders (indices into `records`) and what each arrival gives.
    runs: Vec<Run>,
    /// The state every run ends in.
    state: Value,
    /// Distributions a signer must propose, byte for byte (docs/ledger.md, "Proposing a
    /// distribution"): signers' records combine only if they propose the same bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    proposals: Vec<Proposal>,
}

/// What the proposing procedure gives on the state of the first `after` records (in the
/// order written, every one applied).
#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Proposal {
    after: usize,
    period: u64,
    special: bool,
    /// The earliest time the record may carry (0: none beyond the rules').
    not_before: u64,
    /// The canonical body it must be (its hash is the request's id).
    body: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Run {
    order: Vec<usize>,
    outcomes: Vec<String>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/ledger")
}

/// Every refusal code the rules have (docs/ledger.md names each); [`code`] maps each
/// `RecordError` to one, and a case refuses with each at least once.
const CODES: &[&str] = &[
    "TooLarge",
    "Malformed",
    "NotCanonical",
    "Version",
    "WrongCod",
    "WrongAccount",
    "PrevSeq",
    "MissingKey",
    "UnexpectedKey",
    "OpeningPays",
    "KeyMismatch",
    "BadKey",
    "TooMany",
    "OutputsOrder",
    "ClaimsOrder",
    "ZeroAmount",
    "UnknownAsset",
    "PaysItself",
    "UnknownBacking",
    "NothingAttested",
    "NetworkHead",
    "SignerSetForm",
    "TransferSigs",
    "RekeyOnOpening",
    "WrongKey",
    "SignerKeyMissing",
    "SigsOrder",
    "NotASigner",
    "FallbackNotAllowed",
    "BadSignature",
    "Quorum",
    "NotNext",
    "WrongPrev",
    "TimeBackwards",
    "NotACredit",
    "AlreadyClaimed",
    "NoSuchAccount",
    "Overspend",
    "Overflow",
    "IssuePeriod",
    "IssueAmounts",
    "NothingToIssue",
    "SpecialNotAllowed",
    "HandoverForm",
    "HandedOver",
    "DistributionPeriod",
    "HeadRegresses",
    "HeadOmitted",
    "HeadInvalid",
    "CutNotClosed",
    "PayoutMismatch",
    "AdmissionMismatch",
    "MembersForm",
    "VouchForm",
    "VouchNotAllowed",
    "RedeemForm",
    "WorkForm",
    "WorkExceedsAttested",
];

/// A refusal's code: the name of its rule.
fn code(e: &RecordError) -> &'static str {
    use RecordError::*;
    match e {
        TooLarge { .. } => "TooLarge",
        Malformed(_) => "Malformed",
        NotCanonical => "NotCanonical",
        Version(_) => "Version",
        WrongCod(_) => "WrongCod",
        WrongAccount { .. } => "WrongAccount",
        PrevSeq => "PrevSeq",
        MissingKey => "MissingKey",
        UnexpectedKey => "UnexpectedKey",
        OpeningPays => "OpeningPays",
        KeyMismatch => "KeyMismatch",
        BadKey(_) => "BadKey",
        TooMany { .. } => "TooMany",
        OutputsOrder => "OutputsOrder",
        ClaimsOrder => "ClaimsOrder",
        ZeroAmount => "ZeroAmount",
        UnknownAsset(_) => "UnknownAsset",
        PaysItself => "PaysItself",
        UnknownBacking(_) => "UnknownBacking",
        NothingAttested => "NothingAttested",
        NetworkHead => "NetworkHead",
        SignerSetForm => "SignerSetForm",
        TransferSigs => "TransferSigs",
        RekeyOnOpening => "RekeyOnOpening",
        WrongKey { .. } => "WrongKey",
        SignerKeyMissing => "SignerKeyMissing",
        SigsOrder => "SigsOrder",
        NotASigner(_) => "NotASigner",
        FallbackNotAllowed => "FallbackNotAllowed",
        BadSignature(_) => "BadSignature",
        Quorum { .. } => "Quorum",
        NotNext { .. } => "NotNext",
        WrongPrev { .. } => "WrongPrev",
        TimeBackwards { .. } => "TimeBackwards",
        NotACredit(_) => "NotACredit",
        AlreadyClaimed(_) => "AlreadyClaimed",
        NoSuchAccount(_) => "NoSuchAccount",
        Overspend { .. } => "Overspend",
        Overflow => "Overflow",
        IssuePeriod { .. } => "IssuePeriod",
        IssueAmounts { .. } => "IssueAmounts",
        NothingToIssue => "NothingToIssue",
        SpecialNotAllowed => "SpecialNotAllowed",
        HandoverForm(_) => "HandoverForm",
        HandedOver { .. } => "HandedOver",
        DistributionPeriod { .. } => "DistributionPeriod",
        HeadRegresses(_) => "HeadRegresses",
        HeadOmitted(_) => "HeadOmitted",
        HeadInvalid(_) => "HeadInvalid",
        CutNotClosed { .. } => "CutNotClosed",
        PayoutMismatch => "PayoutMismatch",
        AdmissionMismatch => "AdmissionMismatch",
        MembersForm(_) => "MembersForm",
        VouchForm(_) => "VouchForm",
        VouchNotAllowed => "VouchNotAllowed",
        RedeemForm(_) => "RedeemForm",
        WorkForm(_) => "WorkForm",
        WorkExceedsAttested { .. } => "WorkExceedsAttested",
        // (A node's clock, not a rule: no case can give them.)
        Ahead { .. } => "Ahead",
        HeadAhead { .. } => "HeadAhead",
    }
}

// ---- Running a case (from its file alone) ----

fn params(c: &Case) -> Params {
    let com = ComConfig::parse("com.ini", &c.com_ini).expect("the case's com.ini");
    let der: B64 = serde_json::from_value(json!(c.deployer)).expect("base64 DER");
    let deployer = PublicKey::from_der(&der.0).expect("the deployer's key");
    Params::new(c.cod.parse().expect("a cod id"), com, deployer)
}

/// Feeds `records` to a fresh ledger in `order`: what each arrival gives, and the state.
fn play(p: &Params, records: &[String], order: &[usize]) -> (Vec<String>, Value) {
    let mut l = Ledger::new(p.clone());
    let outcomes = order
        .iter()
        .map(|&i| {
            let r = match Record::from_bytes(records[i].as_bytes()) {
                Ok(r) => r,
                Err(e) => return format!("refused {}", code(&e)),
            };
            let h = r.hash();
            match l.ingest(r) {
                Err(e) => format!("refused {}", code(&e)),
                Ok(o) if o.duplicate => "duplicate".into(),
                Ok(_) => match l.status(&h) {
                    Some(cod::ledger::Status::Applied) => "applied".into(),
                    Some(cod::ledger::Status::Lost { .. }) => "lost".into(),
                    // (Waiting for records or accounts, or for its account's opening key.)
                    Some(cod::ledger::Status::Pending(_)) | None => "pending".into(),
                },
            }
        })
        .collect();
    (outcomes, state_of(&l))
}

/// What the proposing procedure gives for `want` on the state of its first records.
fn proposed(p: &Params, records: &[String], want: &Proposal) -> String {
    let mut l = Ledger::new(p.clone());
    for r in &records[..want.after] {
        l.ingest(Record::from_bytes(r.as_bytes()).expect("a record"))
            .expect("applied");
    }
    match l.propose_distribution(want.period, want.special, want.not_before) {
        Ok(b) => String::from_utf8(b.canonical_bytes()).unwrap(),
        Err(e) => format!("refused {}", code(&e)),
    }
}

/// The state as the cases give it (docs/conformance.md, "The state"): a function of the set
/// of records that arrived, whatever their order. (Which competing records a node keeps as
/// proofs of a double signature is not: a record the rules refuse on arrival is not kept,
/// while the same record arriving after its valid twin is — the arrival's outcome, `lost`,
/// says so.)
fn state_of(l: &Ledger) -> Value {
    let s = l.state();
    let amounts = |a: &BTreeMap<String, u64>| -> Value {
        a.iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<Map<_, _>>()
            .into()
    };
    let accounts: Map<String, Value> = s
        .accounts()
        .into_iter()
        .filter_map(|(id, a)| {
            let head = a.head?;
            let mut o = json!({
                "seq": head.seq,
                "head": head.hash.to_string(),
                "time": a.head_time,
                "spendable": amounts(&a.spendable),
                "incoming": amounts(&a.incoming),
                "member": a.is_member(),
            });
            if let Some(k) = a.rekeyed().or(a.key.as_ref()) {
                o["key"] = json!(k.fingerprint().to_string());
            }
            Some((id.to_string(), o))
        })
        .collect();
    let mut applied: Vec<String> = l
        .records()
        .iter()
        .map(|r| r.hash())
        .filter(|h| s.is_applied(h))
        .map(|h| h.to_string())
        .collect();
    applied.sort();
    let mut pending: Vec<String> = l
        .pending()
        .map(|(h, _)| h.to_string())
        .chain(l.awaiting().map(|r| r.hash().to_string()))
        .collect();
    pending.sort();
    json!({
        "accounts": accounts,
        "applied": applied,
        "pending": pending,
        "issued": amounts(&s.issued),
        "redeemed": amounts(&s.redeemed),
        "checkpoint": s.checkpoint.as_ref().map(|c| json!({
            "record": c.record.to_string(),
            "period": c.period,
            "special": c.special,
        })),
        "last_period": s.last_period,
        "signers": {
            "keys": s.signers.keys.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
            "quorum": s.signers.quorum,
        },
    })
}

/// Where two JSON values differ: each path, with both sides.
fn differences(a: &Value, b: &Value, at: &str) -> Vec<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    let (u, v) = (
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    );
                    differences(u, v, &format!("{at}/{k}"))
                })
                .collect()
        }
        _ if a == b => Vec::new(),
        _ => vec![format!("{at}: {a} / {b}")],
    }
}

fn cases_on_disk() -> Vec<(String, Case)> {
    read_cases(&dir())
}

#[test]
fn cases_pass() {
    let cases = cases_on_disk();
    assert!(cases.len() >= scenes().len(), "every scenario has its file");
    let mut failed = Vec::new();
    for (name, c) in &cases {
        assert_eq!(c.spec, SPEC, "{name}");
        let p = params(c);
        for run in &c.runs {
            let (outcomes, state) = play(&p, &c.records, &run.order);
            if outcomes != run.outcomes {
                failed.push(format!(
                    "{name}: order {:?} gives {outcomes:?}, expected {:?}",
                    run.order, run.outcomes
                ));
            }
            for want in &c.proposals {
                let got = proposed(&p, &c.records, want);
                if got != want.body {
                    failed.push(format!(
                        "{name}: after {} records, period {} proposes {got}, expected {}",
                        want.after, want.period, want.body
                    ));
                }
            }
            if state != c.state {
                failed.push(format!(
                    "{name}: order {:?} ends in another state (found / expected): {:#?}",
                    run.order,
                    differences(&state, &c.state, "")
                ));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn every_rule_refuses_in_some_case() {
    let refused: std::collections::BTreeSet<&str> = cases_on_disk()
        .iter()
        .flat_map(|(_, c)| c.runs.iter().flat_map(|r| r.outcomes.clone()))
        .filter_map(|o| o.strip_prefix("refused ").map(str::to_string))
        .map(|c| *CODES.iter().find(|k| **k == c).expect("a known code"))
        .collect();
    // (A record paying or vouching for an account that is not open waits for its opening:
    // `NoSuchAccount` is what a wallet gets making one, never what an arrival gives — the
    // `payee-not-open` case.)
    let missing: Vec<&&str> = CODES
        .iter()
        .filter(|c| !refused.contains(**c) && **c != "NoSuchAccount")
        .collect();
    assert!(missing.is_empty(), "no case refuses with {missing:?}");
    let ledger_md = std::fs::read_to_string(Path::new(REPO).join("docs/ledger.md")).unwrap();
    for c in CODES {
        assert!(
            ledger_md.contains(&format!("`{c}`")),
            "docs/ledger.md names {c}"
        );
    }
}

#[test]
fn the_files_are_the_scenarios() {
    let write = std::env::var_os("COD_WRITE_CONFORMANCE").is_some();
    if write {
        let _ = std::fs::remove_dir_all(dir());
        std::fs::create_dir_all(dir()).unwrap();
    }
    for scene in scenes() {
        let name = scene.name;
        let text = serde_json::to_string_pretty(&scene.finish()).unwrap() + "\n";
        let file = dir().join(format!("{name}.json"));
        if write {
            std::fs::write(&file, &text).unwrap();
        } else {
            let on_disk = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(
                on_disk == text,
                "{} differs from its scenario: run COD_WRITE_CONFORMANCE=1 cargo test --test \
                 conformance, and say in the commit why the cases changed",
                file.display()
            );
        }
    }
}

// ---- Archive cases ----

fn archive_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/archive")
}

/// A chain archive (docs/ledger.md, "Archives") and what reading it gives.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveCase {
    spec: String,
    about: String,
    /// The ledger id the reader expects.
    cod: String,
    /// The archive's bytes (UTF-8 text).
    archive: String,
    /// `accepted`, or `refused CODE` (`refused Record LINE CODE` for a record that does not
    /// decode: its line in the file, the header being line 1, and its record code).
    outcome: String,
    /// When accepted: the hashes of the records it holds, in its order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    records: Vec<String>,
}

fn read_archive(cod: &str, bytes: &[u8]) -> (String, Vec<String>) {
    use cod::archive::ArchiveError as E;
    match cod::archive::read(bytes, &cod.parse().unwrap()) {
        Ok(records) => (
            "accepted".into(),
            records.iter().map(|r| r.hash().to_string()).collect(),
        ),
        Err(e) => {
            let code = match &e {
                E::BadHeader => "BadHeader".to_string(),
                E::WrongCod { .. } => "WrongCod".into(),
                E::Truncated => "Truncated".into(),
                E::CountMismatch { .. } => "CountMismatch".into(),
                E::Checksum => "Checksum".into(),
                E::Record { line, error } => format!("Record {line} {}", code(error)),
                E::LineTooLong { .. } => "LineTooLong".into(),
                E::Io(e) => panic!("reading from memory: {e}"),
            };
            (format!("refused {code}"), Vec::new())
        }
    }
}

#[test]
fn archive_cases_pass() {
    let cases: Vec<(String, ArchiveCase)> = read_cases(&archive_dir());
    assert!(
        cases.len() >= archive_scenes().len(),
        "every scenario has its file"
    );
    for (name, c) in cases {
        assert_eq!(c.spec, SPEC, "{name}");
        let (outcome, records) = read_archive(&c.cod, c.archive.as_bytes());
        assert_eq!((&outcome, &records), (&c.outcome, &c.records), "{name}");
    }
}

#[test]
fn the_archive_files_are_the_scenarios() {
    let write = std::env::var_os("COD_WRITE_CONFORMANCE").is_some();
    if write {
        let _ = std::fs::remove_dir_all(archive_dir());
        std::fs::create_dir_all(archive_dir()).unwrap();
    }
    for (name, case) in archive_scenes() {
        let text = serde_json::to_string_pretty(&case).unwrap() + "\n";
        let file = archive_dir().join(format!("{name}.json"));
        if write {
            std::fs::write(&file, &text).unwrap();
        } else {
            let on_disk = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(
                on_disk == text,
                "{} differs from its scenario: run COD_WRITE_CONFORMANCE=1 cargo test --test \
                 conformance, and say in the commit why the cases changed",
                file.display()
            );
        }
    }
}

/// An archive as the format says, written here rather than by cod: the header, each line and
/// its newline, then `end COUNT SHA256` over everything before it.
fn archive_text(cod: &str, lines: &[String], count: usize) -> String {
    use sha2::Digest;
    let mut text = format!("cod-archive 1 {cod}\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let sum = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    format!("{text}end {count} {sum}\n")
}

fn archive_scenes() -> Vec<(&'static str, ArchiveCase)> {
    let s = funded("archive", "");
    let lines: Vec<String> = s
        .records
        .iter()
        .map(|b| String::from_utf8(b.clone()).unwrap())
        .collect();
    let n = lines.len();
    let good = archive_text(COD, &lines, n);
    let parsed: Vec<Record> = s
        .records
        .iter()
        .map(|b| Record::from_bytes(b).unwrap())
        .collect();
    assert_eq!(
        cod::archive::write(&COD.parse().unwrap(), &parsed),
        good.as_bytes(),
        "cod writes archives as the format says"
    );
    let replace_checked = |from: &str, to: &str| {
        assert!(good.contains(from), "{from}");
        good.replacen(from, to, 1)
    };
    let mut with_empty = lines.clone();
    with_empty.insert(2, String::new());
    with_empty.push(String::new());
    let mut spaced = lines.clone();
    spaced[1] = spaced[1].replacen(':', ": ", 1);
    let other = "ff".repeat(20);
    let trailer_at = good.rfind("end ").unwrap();
    let cases: Vec<(&str, &str, String, &str)> = vec![
        (
            "accepted",
            "Five records (three openings, an issuance, a distribution), one per line between \
             the header and the trailer, as cod writes them.",
            good.clone(),
            "accepted",
        ),
        (
            "empty-lines",
            "Empty lines are no records (the checksum covers them; the count does not).",
            archive_text(COD, &with_empty, n),
            "accepted",
        ),
        (
            "bad-header",
            "A header naming another format version.",
            replace_checked("cod-archive 1 ", "cod-archive 2 "),
            "refused BadHeader",
        ),
        (
            "other-cod",
            "A header naming another ledger.",
            good.replacen(COD, &other, 1),
            "refused WrongCod",
        ),
        (
            "truncated-newline",
            "The trailer lacks its newline: the file was cut.",
            good[..good.len() - 1].to_string(),
            "refused Truncated",
        ),
        (
            "truncated-no-trailer",
            "No `end` line: the file was cut after a record.",
            good[..trailer_at].to_string(),
            "refused Truncated",
        ),
        (
            "checksum",
            "One byte of a record changed: the checksum does not match.",
            replace_checked("\"seq\":0", "\"seq\":1"),
            "refused Checksum",
        ),
        (
            "checksum-upper-case",
            "The checksum in upper case is not the checksum.",
            format!(
                "{}{}",
                &good[..trailer_at],
                good[trailer_at..].to_uppercase().replacen("END", "end", 1)
            ),
            "refused Checksum",
        ),
        (
            "bad-record",
            "A record that is not canonical (a space after a colon), checksum and count right: \
             refused with its line (the header is line 1) and its record code.",
            archive_text(COD, &spaced, n),
            "refused Record 3 NotCanonical",
        ),
        (
            "count",
            "The trailer counts one record more than the archive holds.",
            archive_text(COD, &lines, n + 1),
            "refused CountMismatch",
        ),
        (
            "count-not-canonical",
            "The count with a leading zero (or a sign) is no trailer.",
            good.replacen(&format!("end {n} "), &format!("end 0{n} "), 1),
            "refused Truncated",
        ),
        (
            "count-not-canonical-and-checksum",
            "A count with a leading zero and a damaged record: a trailer that is not one is \
             reported before the checksum.",
            replace_checked("\"seq\":0", "\"seq\":1").replacen(
                &format!("end {n} "),
                &format!("end 0{n} "),
                1,
            ),
            "refused Truncated",
        ),
        (
            "count-too-large",
            "A count beyond any archive's: plain decimal, so a trailer, and it does not match.",
            archive_text(COD, &lines, n).replacen(
                &format!("end {n} "),
                "end 99999999999999999999999999 ",
                1,
            ),
            "refused CountMismatch",
        ),
        (
            "faults-together",
            "A record that does not decode and a wrong count: the record is reported (the \
             order: header, truncation, checksum, first bad record, count).",
            archive_text(COD, &spaced, n + 1),
            "refused Record 3 NotCanonical",
        ),
    ];
    cases
        .into_iter()
        .map(|(name, about, archive, intended)| {
            let (outcome, records) = read_archive(COD, archive.as_bytes());
            assert_eq!(outcome, intended, "archive case {name}");
            (
                name,
                ArchiveCase {
                    spec: SPEC.into(),
                    about: about.into(),
                    cod: COD.into(),
                    archive,
                    outcome,
                    records,
                },
            )
        })
        .collect()
}

// ---- Writing cases: scenarios ----

/// The cases' com.ini: periods of a day from the epoch, codcoin backed by bread (inventory),
/// baking (labor) and oven time (capacity), node1 … node3 signing with a quorum of 2.
fn com_ini(distribution: &str, extra: &str) -> String {
    format!(
        "[com]\nname = Conformance\nversion = 1.0.0\nsettlement_period = 1d\n\
         epoch = 2026-01-05T00:00:00Z\n\
         [asset.codcoin]\ndecimals = 2\n\
         [backing.bread]\nclass = inventory\nasset = codcoin\nunit = loaf\nvalue = 350\n\
         [backing.baking]\nclass = labor\nasset = codcoin\nunit = hour\nvalue = 2000\n\
         [backing.oven]\nclass = capacity\nasset = codcoin\nunit = hour\nvalue = 500\n\
         [distribution]\n{distribution}\n\
         [signers]\nkeys = {}, {}, {}\nquorum = 2\n{extra}",
        fp("node1"),
        fp("node2"),
        fp("node3")
    )
}

const EQUAL: &str = "formula = equal\nshare = 100%";

/// A case being written: records made on an author's ledger, which applies each good one.
struct Scene {
    name: &'static str,
    about: &'static str,
    com_ini: String,
    p: Params,
    l: Ledger,
    records: Vec<Vec<u8>>,
    /// Intended outcomes in the natural order: (record, outcome).
    intents: Vec<(usize, String)>,
    /// Orders to run besides the natural one, its reverse and a shuffle.
    orders: Vec<Vec<usize>>,
    /// Whether the state may depend on the order (never, so far).
    shuffle: bool,
    /// Distributions proposed on the author's ledger, to be proposed alike.
    proposals: Vec<Proposal>,
}

fn key(name: &str) -> SecretKey {
    example_secret(name)
}

impl Scene {
    fn new(name: &'static str, about: &'static str) -> Self {
        Self::with(name, about, com_ini(EQUAL, ""))
    }

    fn with(name: &'static str, about: &'static str, com_ini: String) -> Self {
        let cod: CodId = COD.parse().unwrap();
        let com = ComConfig::parse("com.ini", &com_ini).unwrap();
        let p = Params::new(cod, com, key("cod").public().clone());
        Self {
            name,
            about,
            com_ini,
            l: Ledger::new(p.clone()),
            p,
            records: Vec::new(),
            intents: Vec::new(),
            orders: Vec::new(),
            shuffle: true,
            proposals: Vec::new(),
        }
    }

    fn id(&self, who: &str) -> AccountId {
        match who {
            "network" => self.p.network,
            _ => key(who).public().node_id(&self.p.cod),
        }
    }

    /// A record the author's ledger applies.
    fn push(&mut self, r: Record) -> Record {
        self.l
            .ingest(r.clone())
            .unwrap_or_else(|e| panic!("{}: the author refuses its own record: {e}", self.name));
        self.records.push(r.to_bytes());
        self.intents
            .push((self.records.len() - 1, "applied".into()));
        r
    }

    /// Bytes the rules refuse with `code` when they arrive in the natural order.
    fn refused(&mut self, bytes: Vec<u8>, code: &str) {
        assert!(CODES.contains(&code));
        self.records.push(bytes);
        self.intents
            .push((self.records.len() - 1, format!("refused {code}")));
    }

    /// A record arriving with an intended outcome other than applied.
    fn expect(&mut self, r: &Record, outcome: &str) {
        self.records.push(r.to_bytes());
        self.intents.push((self.records.len() - 1, outcome.into()));
    }

    fn open(&mut self, who: &str) -> Record {
        let r = self.l.make_open(&key(who));
        self.push(r)
    }

    fn outputs(&self, to: &[(&str, u64)]) -> Vec<Output> {
        to.iter()
            .map(|(who, amount)| Output {
                account: self.id(who),
                amount: *amount,
                asset: "codcoin".into(),
            })
            .collect()
    }

    /// A transfer of `who`'s, claiming every credit it has (not applied yet).
    fn transfer(&self, who: &str, to: &[(&str, u64)], time: u64) -> Record {
        self.l
            .make_transfer(&key(who), self.outputs(to), None, time)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    fn pay(&mut self, who: &str, to: &[(&str, u64)], time: u64) -> Record {
        let r = self.transfer(who, to, time);
        self.push(r)
    }

    /// A network record signed by `signers` (sorted by fingerprint, as the rules want).
    fn net(&self, body: Body, signers: &[&str]) -> Record {
        let mut sigs = Vec::new();
        for s in signers {
            sigs = add_signature(&body, &sigs, &key(s));
        }
        Record::new(body, sigs)
    }

    fn issue_body(&self, attest: &[(&str, u64)], time: u64) -> Body {
        let attest = attest.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        self.l
            .propose_issue(attest, BTreeMap::new(), time)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    fn issue(&mut self, attest: &[(&str, u64)], time: u64) -> Record {
        let r = self.net(self.issue_body(attest, time), &["node1", "node2"]);
        self.push(r)
    }

    fn distribution_body(&self, period: u64) -> Body {
        self.l
            .propose_distribution(period, false, 0)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// The distribution the proposing procedure gives now, signed and applied — and kept as
    /// a proposal every implementation must make alike (when every record so far applied).
    fn propose(&mut self, period: u64, special: bool, not_before: u64) -> Record {
        let body = self
            .l
            .propose_distribution(period, special, not_before)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        let all_applied = self.intents.iter().all(|(_, o)| o == "applied")
            && self.intents.len() == self.records.len();
        if all_applied {
            self.proposals.push(Proposal {
                after: self.records.len(),
                period,
                special,
                not_before,
                body: String::from_utf8(body.canonical_bytes()).unwrap(),
            });
        }
        let r = self.net(body, &["node1", "node2"]);
        self.push(r)
    }

    fn distribute(&mut self, period: u64) -> Record {
        self.propose(period, false, 0)
    }

    /// A transfer body re-signed by `who`'s opening key after `f` changed it.
    fn forged(&self, r: &Record, who: &str, f: impl FnOnce(&mut Body)) -> Vec<u8> {
        let mut body = r.body().clone();
        f(&mut body);
        let sig = Sig {
            key: None,
            sig: B64(key(who).sign(&body.canonical_bytes())),
        };
        Record::new(body, vec![sig]).to_bytes()
    }

    /// A network body signed by `signers` after `f` changed it.
    fn forged_net(&self, body: &Body, signers: &[&str], f: impl FnOnce(&mut Body)) -> Vec<u8> {
        let mut body = body.clone();
        f(&mut body);
        self.net(body, signers).to_bytes()
    }

    fn finish(self) -> Case {
        let n = self.records.len();
        let natural: Vec<usize> = (0..n).collect();
        let mut orders = vec![natural.clone()];
        if self.shuffle && n > 1 {
            orders.push(natural.iter().rev().copied().collect());
            let mut shuffled = natural.clone();
            let seed = self
                .name
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64);
            rand::seq::SliceRandom::shuffle(
                &mut shuffled[..],
                &mut rand::rngs::StdRng::seed_from_u64(seed),
            );
            orders.push(shuffled);
        }
        orders.extend(self.orders.iter().cloned());
        orders.dedup();
        let records: Vec<String> = self
            .records
            .iter()
            .map(|b| String::from_utf8(b.clone()).expect("records are text"))
            .collect();
        let mut runs = Vec::new();
        let mut state = None;
        for order in orders {
            let (outcomes, s) = play(&self.p, &records, &order);
            if order == natural {
                for (i, intended) in &self.intents {
                    assert_eq!(
                        &outcomes[*i], intended,
                        "{}: record {i} in the natural order",
                        self.name
                    );
                }
            }
            match &state {
                None => state = Some(s),
                Some(first) => assert!(
                    first == &s,
                    "{}: order {order:?} ({outcomes:?}) ends in another state: {:#?}",
                    self.name,
                    differences(first, &s, "")
                ),
            }
            runs.push(Run { order, outcomes });
        }
        Case {
            spec: SPEC.into(),
            about: self.about.into(),
            cod: COD.into(),
            deployer: serde_json::to_value(B64(key("cod").public().der().to_vec()))
                .unwrap()
                .as_str()
                .unwrap()
                .into(),
            com_ini: self.com_ini,
            records,
            runs,
            state: state.unwrap(),
            proposals: self.proposals,
        }
    }
}

/// node1 … node3 open, the signers issue 40 loaves' worth, and period 0 is distributed
/// equally among the three founders.
fn funded(name: &'static str, about: &'static str) -> Scene {
    let mut s = Scene::new(name, about);
    for who in ["node1", "node2", "node3"] {
        s.open(who);
    }
    s.issue(&[("bread", 40)], EPOCH + 60);
    s.distribute(0);
    s
}

/// DER `tag`, length, `body` (definite lengths up to 65535 bytes).
fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let n = body.len();
    let mut v = vec![tag];
    match n {
        0..=127 => v.push(n as u8),
        128..=255 => v.extend([0x81, n as u8]),
        _ => v.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    v.extend(body);
    v
}

/// A SubjectPublicKeyInfo of an RSA key with modulus `n` and exponent `e` (big-endian,
/// unsigned), with or without the algorithm's NULL parameters.
fn spki(n: &[u8], e: &[u8], null: bool) -> Vec<u8> {
    let int = |x: &[u8]| {
        let pad = if x[0] & 0x80 != 0 {
            &[0u8][..]
        } else {
            &[][..]
        };
        der(0x02, &[pad, x].concat())
    };
    let rsa = der(0x30, &[int(n), int(e)].concat());
    let oid = der(
        0x06,
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
    );
    let params: &[u8] = if null { &[0x05, 0x00] } else { &[] };
    let alg = der(0x30, &[&oid[..], params].concat());
    der(
        0x30,
        &[alg, der(0x03, &[&[0u8][..], &rsa].concat())].concat(),
    )
}

fn body_heads(b: &Body) -> &BTreeMap<AccountId, cod::ledger::Head> {
    match &b.content {
        Content::Distribute(d) => &d.heads,
        _ => panic!("not a distribution"),
    }
}

fn scenes() -> Vec<Scene> {
    let mut all = Vec::new();

    // -- Openings and transfers --
    let mut s = Scene::new(
        "open-and-pay",
        "Openings, an issuance, period 0's equal distribution, and transfers that claim \
         their credits: the basic history, in any order.",
    );
    for who in ["node1", "node2", "node3", "node4"] {
        s.open(who);
    }
    s.issue(&[("bread", 40)], EPOCH + 60);
    s.distribute(0);
    s.pay("node1", &[("node4", 1000)], EPOCH + DAY + 10);
    s.pay(
        "node4",
        &[("node2", 250), ("network", 50)],
        EPOCH + DAY + 20,
    );
    s.pay("node2", &[("node1", 4000)], EPOCH + DAY + 30);
    all.push(s);

    let mut s = Scene::new(
        "encoding-not-canonical",
        "Only the canonical bytes are a record: the same opening with a space, with keys out \
         of order, with an escaped character that needs none, or with a trailing newline is \
         refused; without a field that is always written (`claims`) it is malformed.",
    );
    let open = s.l.make_open(&key("node1"));
    let text = String::from_utf8(open.to_bytes()).unwrap();
    s.refused(text.replacen(":", ": ", 1).into_bytes(), "NotCanonical");
    s.refused(format!("{text}\n").into_bytes(), "NotCanonical");
    s.refused(
        text.replacen("\"seq\":0", "\"seq\":00", 1).into_bytes(),
        "Malformed",
    );
    s.refused(b"{\"kind\":\"transfer\"}".to_vec(), "Malformed");
    // A field that is always written (`claims`, even empty) left out.
    s.refused(
        text.replacen("\"claims\":[],", "", 1).into_bytes(),
        "Malformed",
    );
    // Keys out of order; a field written null; a byte-order mark; a field no record has;
    // an id in upper case; an id character escaped.
    let (cod_field, rest) = {
        let at = text.find(",\"cod\":").unwrap();
        let end = at + text[at + 1..].find(',').unwrap() + 1;
        (
            text[at + 1..end].to_string(),
            format!("{}{}", &text[..at], &text[end..]),
        )
    };
    s.refused(
        rest.replacen('{', &format!("{{{cod_field},"), 1)
            .into_bytes(),
        "NotCanonical",
    );
    s.refused(
        text.replacen("\"seq\":0", "\"prev\":null,\"seq\":0", 1)
            .into_bytes(),
        "NotCanonical",
    );
    s.refused([b"\xef\xbb\xbf", text.as_bytes()].concat(), "Malformed");
    s.refused(
        text.replacen("\"version\":1", "\"version\":1,\"x\":1", 1)
            .into_bytes(),
        "Malformed",
    );
    let account = open.account().to_string();
    s.refused(
        text.replacen(&account, &account.to_uppercase(), 1)
            .into_bytes(),
        "NotCanonical",
    );
    s.refused(
        text.replacen(
            &account,
            &format!("\\u00{:x}{}", account.as_bytes()[0], &account[1..]),
            1,
        )
        .into_bytes(),
        "NotCanonical",
    );
    s.refused(
        text.replacen("\"version\":1", "\"version\":2", 1)
            .into_bytes(),
        "Version",
    );
    s.push(open);
    all.push(s);

    let mut s = funded(
        "encoding-strings",
        "Strings: only `\"`, `\\` and control characters are escaped (these as \\b \\t \\n \\f \\r \
         or \\u00xx in lower case); `/` and everything non-ASCII are raw UTF-8. Any other \
         spelling of the same text is refused. A memo is at most 256 bytes of UTF-8.",
    );
    let memo = "café / naïve \u{1f} \"quoted\" \\ tab\t€".to_string();
    let r =
        s.l.make_transfer(
            &key("node1"),
            s.outputs(&[("node2", 10)]),
            Some(memo),
            EPOCH + DAY,
        )
        .unwrap();
    let text = String::from_utf8(r.to_bytes()).unwrap();
    assert!(
        text.contains("café / naïve \\u001f \\\"quoted\\\" \\\\ tab\\t€"),
        "{text}"
    );
    for (from, to) in [
        ("é", "\\u00e9"),
        (" / ", " \\/ "),
        ("\\u001f", "\\u001F"),
        ("\\t", "\\u0009"),
        ("€", "\\u20ac"),
    ] {
        s.refused(text.replacen(from, to, 1).into_bytes(), "NotCanonical");
    }
    let long = s.forged(&r, "node1", |b| {
        if let Content::Transfer(t) = &mut b.content {
            t.memo = Some("é".repeat(129));
        }
    });
    s.refused(long, "TooMany");
    s.push(r);
    all.push(s);

    let mut s = Scene::new(
        "opening-rules",
        "An opening carries its key, which derives the account id, pays nothing, and is \
         signed by that key without naming it.",
    );
    let open = s.l.make_open(&key("node1"));
    s.refused(
        s.forged(&open, "node1", |b| {
            if let Content::Transfer(t) = &mut b.content {
                t.key = None;
            }
        }),
        "MissingKey",
    );
    s.refused(
        s.forged(&open, "node1", |b| {
            if let Content::Transfer(t) = &mut b.content {
                t.key = Some(B64(key("node2").public().der().to_vec()));
            }
        }),
        "KeyMismatch",
    );
    s.refused(
        s.forged(&open, "node1", |b| {
            if let Content::Transfer(t) = &mut b.content {
                t.memo = Some("hello".into());
                t.outputs = vec![Output {
                    account: key("node2").public().node_id(&b.cod),
                    amount: 1,
                    asset: "codcoin".into(),
                }];
            }
        }),
        "OpeningPays",
    );
    s.refused(
        s.forged(&open, "node1", |b| b.cod = "ff".repeat(20).parse().unwrap()),
        "WrongCod",
    );
    s.refused(
        s.forged(&open, "node1", |b| b.prev = Some(open.hash())),
        "PrevSeq",
    );
    s.refused(
        s.forged(&open, "node1", |b| {
            if let Content::Transfer(t) = &mut b.content {
                t.key = Some(B64(b"not a key".to_vec()));
            }
        }),
        "BadKey",
    );
    // Signed by another key.
    s.refused(
        {
            let sig = Sig {
                key: None,
                sig: B64(key("node2").sign(&open.body().canonical_bytes())),
            };
            Record::new(open.body().clone(), vec![sig]).to_bytes()
        },
        "BadSignature",
    );
    // Two signatures.
    s.refused(
        {
            let mut sigs = open.sigs().to_vec();
            sigs.push(sigs[0].clone());
            Record::new(open.body().clone(), sigs).to_bytes()
        },
        "TransferSigs",
    );
    s.push(open);
    all.push(s);

    let mut s = funded(
        "transfer-form",
        "A transfer's form: outputs sorted and unique, amounts above 0, assets com.ini \
         defines, no payment to itself, claims sorted, no key after the opening.",
    );
    let good = s.transfer("node1", &[("node2", 100), ("node3", 100)], EPOCH + DAY);
    let edit = |s: &Scene, f: &dyn Fn(&mut cod::ledger::Transfer)| {
        s.forged(&good, "node1", |b| {
            if let Content::Transfer(t) = &mut b.content {
                f(t)
            }
        })
    };
    s.refused(edit(&s, &|t| t.outputs.reverse()), "OutputsOrder");
    s.refused(edit(&s, &|t| t.outputs[1].amount = 0), "ZeroAmount");
    s.refused(
        edit(&s, &|t| t.outputs[1].asset = "gold".into()),
        "UnknownAsset",
    );
    let own = s.id("node1");
    s.refused(
        edit(&s, &|t| {
            t.outputs[0].account = own;
            t.outputs.sort();
        }),
        "PaysItself",
    );
    let k = B64(key("node1").public().der().to_vec());
    s.refused(edit(&s, &|t| t.key = Some(k.clone())), "UnexpectedKey");
    let k = B64(key("node5").public().der().to_vec());
    s.refused(
        s.forged(&good, "node1", |b| {
            b.seq = 0;
            b.prev = None;
            if let Content::Transfer(t) = &mut b.content {
                t.outputs.clear();
                t.claims.clear();
                t.key = Some(B64(key("node1").public().der().to_vec()));
                t.rekey = Some(k.clone());
            }
        }),
        "RekeyOnOpening",
    );
    s.refused(
        edit(&s, &|t| {
            t.claims.push(t.claims[0]);
        }),
        "ClaimsOrder",
    );
    s.push(good);
    all.push(s);

    let mut s = funded(
        "chain-rules",
        "A member chain: the next seq after the head, on the head, never earlier than it.",
    );
    let opening = s.id("node1");
    let opening = s.l.at(&opening, 0).unwrap().hash();
    s.pay("node1", &[("node2", 100)], EPOCH + DAY);
    let next = s.transfer("node1", &[("node3", 100)], EPOCH + DAY + 60);
    s.refused(
        s.forged(&next, "node1", |b| b.time = EPOCH + DAY - 1),
        "TimeBackwards",
    );
    s.refused(
        s.forged(&next, "node1", |b| b.prev = Some(opening)),
        "WrongPrev",
    );
    s.push(next);
    all.push(s);

    for (name, about, twin_first) in [
        (
            "invalid-twin-first",
            "A record the rules refuse on arrival is not kept: here a transfer dated before \
             its predecessor arrives before its valid twin (the same account and seq).",
            true,
        ),
        (
            "invalid-twin-second",
            "A record signed by the key in force for a seq already taken is kept as a proof \
             that the account signed twice, even if it could not apply on its branch: here \
             the same time-backwards transfer arrives after its valid twin. (So the proofs \
             a node holds, unlike its state, depend on the arrival order.)",
            false,
        ),
    ] {
        let mut s = funded(name, about);
        s.pay("node1", &[("node2", 100)], EPOCH + DAY);
        let next = s.transfer("node1", &[("node3", 100)], EPOCH + DAY + 60);
        let twin = s.forged(&next, "node1", |b| b.time = EPOCH + DAY - 1);
        if twin_first {
            s.refused(twin, "TimeBackwards");
            s.push(next);
        } else {
            s.push(next);
            let twin = Record::from_bytes(&twin).unwrap();
            s.expect(&twin, "lost");
        }
        s.shuffle = false;
        all.push(s);
    }

    // -- Network records: who signs --
    let mut s = funded(
        "network-signatures",
        "A network record is signed by a quorum of the signer set in force, each signature \
         naming its key, sorted by fingerprint, every key a signer's.",
    );
    let body = s.issue_body(&[("bread", 50)], EPOCH + DAY);
    s.refused(s.net(body.clone(), &["node1"]).to_bytes(), "Quorum");
    s.refused(
        s.net(body.clone(), &["node1", "node4"]).to_bytes(),
        "NotASigner",
    );
    let good = s.net(body.clone(), &["node1", "node2"]);
    let mut sigs = good.sigs().to_vec();
    sigs.reverse();
    s.refused(Record::new(body.clone(), sigs).to_bytes(), "SigsOrder");
    let mut sigs = good.sigs().to_vec();
    sigs[0].key = None;
    s.refused(
        Record::new(body.clone(), sigs).to_bytes(),
        "SignerKeyMissing",
    );
    let mut sigs = good.sigs().to_vec();
    sigs[0].sig = B64(key("node1").sign(b"another body"));
    s.refused(Record::new(body.clone(), sigs).to_bytes(), "BadSignature");
    s.refused(
        s.forged_net(&body, &["node1", "node2"], |b| b.account = s.id("node4")),
        "WrongAccount",
    );
    s.push(good);
    all.push(s);

    // -- Issuance --
    let mut s = funded(
        "issuance-rules",
        "Issuance: its period is its time's, its amounts are what the backing rule gives, \
         it attests known items and something new, and never issues beyond the backing.",
    );
    let body = s.issue_body(&[("bread", 50)], EPOCH + DAY);
    let edit = |s: &Scene, f: &dyn Fn(&mut cod::ledger::Issue)| {
        s.forged_net(&body, &["node1", "node2"], |b| {
            if let Content::Issue(i) = &mut b.content {
                f(i)
            }
        })
    };
    s.refused(edit(&s, &|i| i.period = 0), "IssuePeriod");
    s.refused(
        edit(&s, &|i| {
            i.amounts.insert("codcoin".into(), 999_999);
        }),
        "IssueAmounts",
    );
    s.refused(
        edit(&s, &|i| {
            i.attest.insert("gold".into(), 1);
        }),
        "UnknownBacking",
    );
    s.refused(edit(&s, &|i| i.attest.clear()), "NothingAttested");
    s.refused(
        edit(&s, &|i| {
            i.attest.insert("bread".into(), 40);
            i.amounts.clear();
        }),
        "NothingToIssue",
    );
    s.push(s.net(body, &["node1", "node3"]));
    all.push(s);

    // -- Transfers against the state --
    let mut s = funded(
        "transfer-state",
        "A transfer claims only credits paid to it and not claimed before, pays existing \
         accounts, and spends no more than it holds.",
    );
    let paid = s.pay("node1", &[("node2", 300)], EPOCH + DAY);
    let claim = s.transfer("node2", &[("node3", 100)], EPOCH + DAY + 10);
    let node3_open = s.l.at(&s.id("node3"), 0).unwrap().hash();
    s.refused(
        s.forged(&claim, "node2", |b| {
            if let Content::Transfer(t) = &mut b.content {
                t.claims.push(node3_open);
                t.claims.sort();
            }
        }),
        "NotACredit",
    );
    s.refused(
        s.forged(&claim, "node2", |b| {
            if let Content::Transfer(t) = &mut b.content {
                t.outputs[0].amount = 1_000_000;
            }
        }),
        "Overspend",
    );
    s.refused(
        s.forged(&claim, "node2", |b| {
            if let Content::Transfer(t) = &mut b.content {
                let to = t.outputs[0].account;
                t.outputs = vec![
                    Output {
                        account: to,
                        amount: u64::MAX,
                        asset: "codcoin".into(),
                    },
                    Output {
                        account: key("node1").public().node_id(&b.cod),
                        amount: u64::MAX,
                        asset: "codcoin".into(),
                    },
                ];
                t.outputs.sort();
            }
        }),
        "Overflow",
    );
    s.push(claim.clone());
    let again = s.transfer("node2", &[("node1", 10)], EPOCH + DAY + 20);
    s.refused(
        s.forged(&again, "node2", |b| {
            if let Content::Transfer(t) = &mut b.content {
                t.claims = vec![paid.hash()];
            }
        }),
        "AlreadyClaimed",
    );
    s.push(again);
    all.push(s);

    // -- Keys --
    let mut s = funded(
        "rekey",
        "A rekey names the key that signs the account's later records (each signature \
         naming it); the replaced key signs nothing more.",
    );
    let a1 = s.id("node1");
    let r =
        s.l.make_rekey(a1, &key("node1"), key("node5").public(), EPOCH + DAY)
            .unwrap();
    s.push(r);
    let next =
        s.l.make_transfer_from(
            a1,
            &key("node5"),
            s.outputs(&[("node2", 10)]),
            None,
            None,
            EPOCH + DAY + 10,
        )
        .unwrap();
    s.refused(s.forged(&next, "node1", |_| {}), "WrongKey");
    s.push(next);
    all.push(s);

    // -- Distributions --
    let mut s = funded(
        "distribution-rules",
        "A distribution closes a period that has ended, after the last one; its checkpoint \
         names the head of every member account in the cut, and its payouts are the \
         recomputation's.",
    );
    s.pay("node1", &[("node2", 500)], EPOCH + DAY + 100);
    s.pay(
        "node2",
        &[("network", 300), ("node3", 200)],
        EPOCH + DAY + 200,
    );
    let body = s.distribution_body(1);
    let edit = |s: &Scene, f: &dyn Fn(&mut cod::ledger::Distribute)| {
        s.forged_net(&body, &["node1", "node2"], |b| {
            if let Content::Distribute(d) = &mut b.content {
                f(d)
            }
        })
    };
    s.refused(edit(&s, &|d| d.payouts[0].amount += 1), "PayoutMismatch");
    let first = *body_heads(&body).keys().next().unwrap();
    s.refused(
        edit(&s, &|d| {
            d.heads.remove(&first);
        }),
        "HeadOmitted",
    );
    // (A head naming a record not here waits for it; one naming another chain's is invalid.)
    let other = *body_heads(&body).values().nth(1).unwrap();
    s.refused(
        edit(&s, &|d| {
            *d.heads.get_mut(&first).unwrap() = other;
        }),
        "HeadInvalid",
    );
    s.refused(edit(&s, &|d| d.special = true), "SpecialNotAllowed");
    s.refused(
        s.forged_net(&body, &["node1", "node2"], |b| {
            b.time = EPOCH + DAY + 300;
            if let Content::Distribute(d) = &mut b.content {
                d.period = 2;
            }
        }),
        "DistributionPeriod",
    );
    s.push(s.net(body, &["node2", "node3"]));
    all.push(s);

    // -- Membership and signer sets --
    let mut s = funded(
        "members-and-signers",
        "The signers admit and remove members with a `members` record, and replace \
         themselves with a `signers` record signed by the set in force; from the next \
         network record on only the new set signs.",
    );
    s.open("node4");
    let a4 = s.id("node4");
    let admit = s.l.propose_members(vec![a4], vec![], EPOCH + DAY).unwrap();
    s.refused(
        s.forged_net(&admit, &["node1", "node2"], |b| {
            if let Content::Members(m) = &mut b.content {
                m.remove = vec![a4];
            }
        }),
        "MembersForm",
    );
    s.push(s.net(admit, &["node1", "node2"]));
    let set = cod::ledger::SignerSet {
        keys: {
            let mut k = vec![
                key("node4").public().fingerprint(),
                key("node1").public().fingerprint(),
            ];
            k.sort();
            k
        },
        quorum: 2,
    };
    let change = s.l.propose_signers(set.clone(), EPOCH + DAY + 10).unwrap();
    s.refused(
        s.forged_net(&change, &["node1", "node2"], |b| {
            if let Content::Signers(x) = &mut b.content {
                x.quorum = 3;
            }
        }),
        "SignerSetForm",
    );
    s.push(s.net(change, &["node1", "node2"]));
    let body = s.issue_body(&[("bread", 60)], EPOCH + DAY + 20);
    s.refused(
        s.net(body.clone(), &["node1", "node2"]).to_bytes(),
        "NotASigner",
    );
    s.push(s.net(body, &["node1", "node4"]));
    all.push(s);

    // -- More of a distribution's form: the checkpoint --
    let mut s = funded(
        "checkpoint-rules",
        "A checkpoint never names the network account, never moves a head back, and is \
         closed: what its records claim or follow is inside it. A handover is a special \
         distribution naming another cod.",
    );
    s.pay(
        "node1",
        &[("network", 100), ("node2", 500)],
        EPOCH + DAY + 100,
    );
    let claim = s.pay(
        "node2",
        &[("network", 100), ("node3", 200)],
        EPOCH + DAY + 200,
    );
    let body = s.distribution_body(1);
    let network = s.p.network;
    s.refused(
        s.forged_net(&body, &["node1", "node2"], |b| {
            if let Content::Distribute(d) = &mut b.content {
                d.heads.insert(
                    network,
                    cod::ledger::Head {
                        hash: claim.hash(),
                        seq: 0,
                    },
                );
            }
        }),
        "NetworkHead",
    );
    let a1 = s.id("node1");
    let opening1 = cod::ledger::Head {
        hash: s.l.at(&a1, 0).unwrap().hash(),
        seq: 0,
    };
    // node1's head at its opening: node2's transfer claims node1's payment, outside the cut.
    s.refused(
        s.forged_net(&body, &["node1", "node2"], |b| {
            if let Content::Distribute(d) = &mut b.content {
                d.heads.insert(a1, opening1);
            }
        }),
        "CutNotClosed",
    );
    s.refused(
        s.forged_net(&body, &["node1", "node2"], |b| {
            if let Content::Distribute(d) = &mut b.content {
                d.handover = Some(cod::ledger::Handover {
                    rules: 2,
                    to: "ab".repeat(20).parse().unwrap(),
                    version: "2.0.0".into(),
                });
            }
        }),
        "HandoverForm",
    );
    s.push(s.net(body, &["node1", "node3"]));
    s.pay("node3", &[("network", 50)], EPOCH + 2 * DAY + 100);
    let next = s.distribution_body(2);
    s.refused(
        s.forged_net(&next, &["node1", "node2"], |b| {
            if let Content::Distribute(d) = &mut b.content {
                d.heads.insert(a1, opening1);
            }
        }),
        "HeadRegresses",
    );
    s.push(s.net(next, &["node1", "node2"]));
    all.push(s);

    let mut s = funded(
        "handover",
        "A handover — a special distribution naming the cod that continues the ledger — is \
         the last record this ledger keeps: later ones are refused.",
    );
    s.pay("node1", &[("node2", 500)], EPOCH + DAY + 100);
    let h = cod::ledger::Handover {
        rules: 2,
        to: "ab".repeat(20).parse().unwrap(),
        version: "2.0.0".into(),
    };
    let body = s.l.propose_handover(h, EPOCH + DAY + 200).unwrap();
    s.refused(
        s.forged_net(&body, &["node1", "node2"], |b| {
            if let Content::Distribute(d) = &mut b.content
                && let Some(h) = &mut d.handover
            {
                h.to = COD.parse().unwrap();
            }
        }),
        "HandoverForm",
    );
    let later = s.transfer("node2", &[("node3", 100)], EPOCH + DAY + 300);
    s.push(s.net(body, &["node1", "node2"]));
    s.refused(later.to_bytes(), "HandedOver");
    all.push(s);

    // -- The deployer's fallback --
    let mut s = Scene::with(
        "fallback",
        "With `fallback = deployer`, the deployer's key stands in for one missing signer on a \
         regular distribution dated at least `fallback_after` past its period's end — not \
         before.",
        com_ini(EQUAL, "fallback = deployer\nfallback_after = 2d\n"),
    );
    for who in ["node1", "node2", "node3"] {
        s.open(who);
    }
    s.issue(&[("bread", 40)], EPOCH + 60);
    let early = s.distribution_body(0);
    s.refused(
        s.net(early, &["node1", "cod"]).to_bytes(),
        "FallbackNotAllowed",
    );
    let late = s.l.propose_distribution(0, false, EPOCH + 3 * DAY).unwrap();
    s.push(s.net(late, &["node1", "cod"]));
    all.push(s);

    // -- Admission by sponsors --
    let mut s = Scene::with(
        "sponsors",
        "With `admission = sponsors`, members vouch for an account in their transfers; the \
         next distribution admits it once enough did, and pays it from then on. A vouch \
         names another account, and only where com.ini allows vouching.",
        com_ini(EQUAL, "[membership]\nadmission = sponsors\nsponsors = 2\n"),
    );
    for who in ["node1", "node2", "node3", "node4"] {
        s.open(who);
    }
    s.issue(&[("bread", 40)], EPOCH + 60);
    s.distribute(0);
    let a4 = s.id("node4");
    let vouch = |s: &Scene, who: &str, time: u64| {
        let payment = cod::ledger::Payment {
            outputs: s.outputs(&[("network", 10)]),
            vouch: vec![a4],
            ..Default::default()
        };
        s.l.make_payment(s.id(who), &key(who), payment, None, time)
            .unwrap()
    };
    let v1 = vouch(&s, "node1", EPOCH + DAY + 10);
    let me = s.id("node1");
    s.refused(
        s.forged(&v1, "node1", |b| {
            if let Content::Transfer(t) = &mut b.content {
                t.vouch = vec![me];
            }
        }),
        "VouchForm",
    );
    s.push(v1);
    let v2 = vouch(&s, "node2", EPOCH + DAY + 20);
    s.push(v2);
    let body = s.distribution_body(1);
    s.refused(
        s.forged_net(&body, &["node1", "node2"], |b| {
            if let Content::Distribute(d) = &mut b.content {
                d.admitted.clear();
            }
        }),
        "AdmissionMismatch",
    );
    s.push(s.net(body, &["node1", "node2"]));
    all.push(s);

    let mut s = funded(
        "vouch-not-allowed",
        "With `admission = quorum` (the default), a transfer cannot vouch.",
    );
    s.open("node4");
    let good = s.transfer("node1", &[("node2", 10)], EPOCH + DAY);
    let a4 = s.id("node4");
    s.refused(
        s.forged(&good, "node1", |b| {
            if let Content::Transfer(t) = &mut b.content {
                t.vouch = vec![a4];
            }
        }),
        "VouchNotAllowed",
    );
    s.push(good);
    all.push(s);

    // -- Redemption and work --
    let mut s = funded(
        "redeem-and-work",
        "A transfer redeems delivered backing items (their value leaves circulation, \
         quantities above 0); issuance names who did attested labor or capacity (quantities \
         above 0, labor or capacity items only, never the network, never more than attested \
         in the period).",
    );
    let payment = cod::ledger::Payment {
        outputs: s.outputs(&[("node2", 10)]),
        redeem: [("bread".to_string(), 2)].into(),
        ..Default::default()
    };
    let redeem =
        s.l.make_payment(s.id("node1"), &key("node1"), payment, None, EPOCH + DAY)
            .unwrap();
    s.refused(
        s.forged(&redeem, "node1", |b| {
            if let Content::Transfer(t) = &mut b.content {
                t.redeem.insert("bread".into(), 0);
            }
        }),
        "RedeemForm",
    );
    s.push(redeem);
    let a2 = s.id("node2");
    let work: BTreeMap<AccountId, BTreeMap<String, u64>> =
        [(a2, [("baking".to_string(), 4)].into())].into();
    let body =
        s.l.propose_issue([("baking".to_string(), 10)].into(), work, EPOCH + DAY + 100)
            .unwrap();
    let edit = |s: &Scene, f: &dyn Fn(&mut cod::ledger::Issue)| {
        s.forged_net(&body, &["node1", "node2"], |b| {
            if let Content::Issue(i) = &mut b.content {
                f(i)
            }
        })
    };
    let network = s.p.network;
    s.refused(
        edit(&s, &|i| {
            i.work.insert(network, [("baking".to_string(), 1)].into());
        }),
        "WorkForm",
    );
    s.refused(
        edit(&s, &|i| {
            i.work.insert(a2, [("bread".to_string(), 1)].into());
        }),
        "WorkForm",
    );
    s.refused(
        edit(&s, &|i| {
            i.work.insert(a2, [("baking".to_string(), 11)].into());
        }),
        "WorkExceedsAttested",
    );
    s.push(s.net(body, &["node1", "node2"]));
    all.push(s);

    // -- Size --
    let mut s = Scene::new(
        "too-large",
        "A transfer is at most 64 KiB (any record at most 4 MiB).",
    );
    let open = s.l.make_open(&key("node1"));
    s.refused(
        s.forged(&open, "node1", |b| {
            if let Content::Transfer(t) = &mut b.content {
                t.key = Some(B64(vec![7; 70_000]));
            }
        }),
        "TooLarge",
    );
    s.push(open);
    all.push(s);

    let mut s = funded(
        "payee-not-open",
        "A transfer paying an account whose opening has not arrived waits for it (it is \
         never refused for that: the opening may come), and applies once it does.",
    );
    let mut author = s.l.clone();
    author.ingest(author.make_open(&key("node4"))).unwrap();
    let pay = author
        .make_transfer(
            &key("node1"),
            s.outputs(&[("node4", 100)]),
            None,
            EPOCH + DAY,
        )
        .unwrap();
    s.expect(&pay, "pending");
    s.open("node4");
    all.push(s);

    // -- Forks of the network's chain --
    let mut s = funded(
        "network-fork",
        "Two distributions of one period, both signed by a quorum, at one seq of the network's \
         chain (signers who signed twice): the lower hash wins if it is valid — here once the \
         transfer its checkpoint holds has arrived, in whatever order the three come.",
    );
    let before = s.l.clone();
    s.pay(
        "node1",
        &[("network", 100), ("node2", 500)],
        EPOCH + DAY + 100,
    );
    let with = s.net(s.distribution_body(1), &["node1", "node2"]);
    // The one without the transfer dated later (another valid time) until its hash is the
    // higher: the lower, which needs the transfer, must win once the transfer is here.
    let without = (0..)
        .map(|t| {
            let b = before
                .propose_distribution(1, false, EPOCH + 2 * DAY + t)
                .unwrap();
            s.net(b, &["node1", "node3"])
        })
        .find(|r| r.hash() > with.hash())
        .unwrap();
    s.push(with);
    s.expect(&without, "lost");
    // The transfer last, after the higher-hash distribution applied and the lower came.
    s.orders.push(vec![0, 1, 2, 3, 4, 7, 6, 5]);
    all.push(s);

    // -- Each formula over several periods: docs/com-model.md's worked examples --

    // -- Attestations --
    let mut s = Scene::new(
        "issuance-attest",
        "Attestations: an issuance dated before the epoch is in period 0; an item attested \
         twice in one period counts at its latest figure (never added up); a quantity of 0 \
         withdraws the item's backing; a quantity × value beyond 64 bits is refused.",
    );
    for who in ["node1", "node2", "node3"] {
        s.open(who);
    }
    // Before the epoch: period 0. 40 loaves back 14000.
    s.issue(&[("bread", 40)], EPOCH - 3600);
    // 50 replaces 40 (not 90): 3500 more.
    s.issue(&[("bread", 50)], EPOCH + 60);
    // Bread 0 withdraws its 17500 of backing: 10 hours of baking back 20000 alone, so 2500
    // is issued (20000 − 17500), not 20000.
    let body = s.issue_body(&[("bread", 0), ("baking", 10)], EPOCH + 120);
    let Content::Issue(i) = &body.content else {
        unreachable!()
    };
    assert_eq!(i.amounts.get("codcoin"), Some(&2500), "{}", s.name);
    s.refused(
        s.forged_net(&body, &["node1", "node2"], |b| {
            if let Content::Issue(i) = &mut b.content {
                i.attest = [("bread".to_string(), u64::MAX / 350 + 1)].into();
                i.amounts.clear();
            }
        }),
        "Overflow",
    );
    s.refused(
        s.forged_net(&body, &["node1", "node2"], |b| {
            if let Content::Issue(i) = &mut b.content {
                i.attest.remove("baking");
                i.amounts.clear();
            }
        }),
        "NothingToIssue",
    );
    s.push(s.net(body, &["node1", "node2"]));
    all.push(s);

    // -- Keys that are not keys a record may carry --
    let mut s = funded(
        "bad-keys",
        "A key in a record is the canonical DER SubjectPublicKeyInfo of an RSA key of 2048 to \
         4096 bits with an odd exponent from 3 to 2^33 − 1: a PKCS#1 key, a 1024-bit one, an \
         even or too large exponent, or the algorithm's NULL parameters left out are refused, \
         in a rekey as in an opening.",
    );
    let next = key("node5").public().clone();
    let rekey =
        s.l.make_payment(
            s.id("node1"),
            &key("node1"),
            cod::ledger::Payment::default(),
            Some(&next),
            EPOCH + DAY,
        )
        .unwrap();
    let rsa_key = {
        use rsa::pkcs8::DecodePublicKey;
        rsa::RsaPublicKey::from_public_key_der(next.der()).unwrap()
    };
    let n = rsa_key.n().to_bytes_be();
    let e = rsa_key.e().to_bytes_be();
    let mut short = n[..128].to_vec();
    short[0] |= 0x80;
    short[127] |= 1;
    let pkcs1 = {
        use rsa::pkcs1::EncodeRsaPublicKey;
        rsa_key.to_pkcs1_der().unwrap().as_bytes().to_vec()
    };
    for bad in [
        pkcs1,
        spki(&short, &e, true),
        spki(&n, &[1, 0, 2], true),
        spki(&n, &[2, 0, 0, 0, 1], true),
        spki(&n, &e, false),
    ] {
        s.refused(
            s.forged(&rekey, "node1", |b| {
                if let Content::Transfer(t) = &mut b.content {
                    t.rekey = Some(B64(bad.clone()));
                }
            }),
            "BadKey",
        );
    }
    assert_eq!(
        spki(&n, &e, true),
        next.der(),
        "the DER helper writes canonical DER"
    );
    let open = s.l.make_open(&key("node4"));
    let n4 = {
        use rsa::pkcs8::DecodePublicKey;
        rsa::RsaPublicKey::from_public_key_der(key("node4").public().der())
            .unwrap()
            .n()
            .to_bytes_be()
    };
    s.refused(
        s.forged(&open, "node4", |b| {
            if let Content::Transfer(t) = &mut b.content {
                t.key = Some(B64(spki(&n4, &e, false)));
            }
        }),
        "BadKey",
    );
    s.push(rekey);
    s.push(open);
    all.push(s);

    // -- A double spend in a member chain --
    let mut s = funded(
        "member-fork",
        "node1 signs two valid transfers at seq 1 (a double spend). Whatever the order they \
         arrive in, the one with the lower hash holds the slot; the other is lost (kept as \
         the proof), and what was built on either follows the winner. The next distribution's \
         checkpoint makes it final.",
    );
    let a = s.transfer("node1", &[("node2", 100)], EPOCH + DAY);
    let b = s.transfer("node1", &[("node3", 100)], EPOCH + DAY + 5);
    let (win, lose, payee) = if a.hash() < b.hash() {
        (a, b, "node2")
    } else {
        (b, a, "node3")
    };
    s.push(win);
    s.expect(&lose, "lost");
    s.pay(payee, &[("node1", 40)], EPOCH + DAY + 60);
    s.distribute(1);
    all.push(s);

    // -- Trimming a checkpoint --
    let mut s = funded(
        "checkpoint-trim",
        "Proposing period 1's distribution: the cut is the period's end; node2's last record \
         before it claims a payment dated after it, and node3's pays an account whose opening \
         is dated after it, so both heads are set back to the record before (node3 keeps its \
         earlier payment) — the greatest closed cut.",
    );
    let end1 = EPOCH + 2 * DAY;
    s.pay("node3", &[("node1", 10)], EPOCH + DAY + 100);
    s.pay("node1", &[("node2", 100)], end1 + 10);
    // (Made after node1's payment, dated before it: cod's wallet claims nothing dated after
    // the transfer it makes; the rules allow it.)
    let spent = s.transfer("node2", &[("node1", 50)], end1 + 10);
    let spent = Record::from_bytes(&s.forged(&spent, "node2", |b| b.time = end1 - 10)).unwrap();
    s.push(spent);
    let late = s.l.make_open(&key("node4"));
    let late = Record::from_bytes(&s.forged(&late, "node4", |b| b.time = end1 + 5)).unwrap();
    s.push(late);
    s.pay("node3", &[("node4", 20)], end1 - 5);
    let d = s.distribute(1);
    let heads = body_heads(d.body());
    for (who, seq) in [("node1", 0), ("node2", 0), ("node3", 1)] {
        assert_eq!(heads[&s.id(who)].seq, seq, "{who}'s head");
    }
    assert!(!heads.contains_key(&s.id("node4")));
    all.push(s);

    all.extend(formulas());
    all
}

/// Periods of the worked examples in docs/com-model.md ("Worked examples"), as cases: the
/// tables' events, each period's distribution, and the balances they end in.
fn formulas() -> Vec<Scene> {
    let at = |period: u64, second: u64| EPOCH + period * DAY + second;
    let founders = |s: &mut Scene| {
        for who in ["node1", "node2", "node3", "node4"] {
            s.open(who);
        }
    };
    let members = |s: &mut Scene, admit: &[&str], remove: &[&str], time: u64| {
        let ids = |w: &[&str]| w.iter().map(|n| s.id(n)).collect();
        let body = s.l.propose_members(ids(admit), ids(remove), time).unwrap();
        let r = s.net(body, &["node1", "node2"]);
        s.push(r);
    };
    let redeem = |s: &mut Scene, who: &str, item: &str, n: u64, time: u64| {
        let payment = cod::ledger::Payment {
            redeem: [(item.to_string(), n)].into(),
            ..Default::default()
        };
        let r =
            s.l.make_payment(s.id(who), &key(who), payment, None, time)
                .unwrap();
        s.push(r);
    };
    let mut all = Vec::new();

    let mut s = Scene::new(
        "formula-equal",
        "`equal` over four periods (docs/com-model.md, the `equal` example): the members share \
         each pool equally; a fresh key that opens gets nothing; a period where nothing \
         happened (2) has no record and the next distribution closes period 3; a redemption \
         takes its value out of circulation.",
    );
    founders(&mut s);
    s.issue(&[("bread", 40)], at(0, 60));
    members(&mut s, &["node4"], &[], at(0, 120));
    s.distribute(0);
    s.pay("node1", &[("node2", 500), ("network", 1000)], at(1, 60));
    s.open("node5");
    s.distribute(1);
    redeem(&mut s, "node2", "bread", 2, at(3, 60));
    s.pay("node3", &[("network", 600)], at(3, 120));
    s.distribute(3);
    all.push(s);

    let mut s = Scene::with(
        "formula-pro-rata-paid",
        "`pro_rata_paid` over three periods (the `pro_rata_paid` example): period 0 pays \
         equally (nobody could earn yet), period 1 by new net receipts from members, and \
         period 2 equally again, since coins paid back raise nobody's net above its highest.",
        com_ini("formula = pro_rata_paid\nshare = 100%", ""),
    );
    founders(&mut s);
    s.issue(&[("bread", 40)], at(0, 60));
    members(&mut s, &["node4"], &[], at(0, 120));
    s.distribute(0);
    s.pay("node1", &[("node2", 2000), ("network", 1000)], at(1, 60));
    s.pay("node2", &[("node3", 500)], at(1, 120));
    s.distribute(1);
    s.pay("node2", &[("node1", 1500)], at(2, 60));
    s.pay("node4", &[("network", 400)], at(2, 120));
    s.distribute(2);
    all.push(s);

    let mut s = Scene::with(
        "formula-work",
        "`work` over two periods (the `work` example): the pool follows the value of the \
         labor the signers attested and named; labor that issues nothing (backing already \
         covers what circulates) still earns its share.",
        com_ini("formula = work\nshare = 100%", ""),
    );
    founders(&mut s);
    let work = |s: &Scene, named: &[(&str, u64)]| -> BTreeMap<AccountId, BTreeMap<String, u64>> {
        named
            .iter()
            .map(|(who, hours)| (s.id(who), [("baking".to_string(), *hours)].into()))
            .collect()
    };
    let attest = |a: &[(&str, u64)]| a.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let body =
        s.l.propose_issue(
            attest(&[("bread", 40), ("baking", 5)]),
            work(&s, &[("node1", 3), ("node2", 2)]),
            at(0, 60),
        )
        .unwrap();
    let r = s.net(body, &["node1", "node2"]);
    s.push(r);
    members(&mut s, &["node4"], &[], at(0, 120));
    s.distribute(0);
    let body =
        s.l.propose_issue(
            attest(&[("baking", 4)]),
            work(&s, &[("node3", 4)]),
            at(1, 60),
        )
        .unwrap();
    let r = s.net(body, &["node1", "node2"]);
    s.push(r);
    s.pay("node1", &[("network", 1200)], at(1, 120));
    s.distribute(1);
    all.push(s);

    let mut s = Scene::with(
        "formula-weights",
        "`weights` over three periods (the `weights` example): fixed weights per key; a \
         member removed keeps its share with the network, and later periods pay the rest \
         out by the weights until it rounds to nothing.",
        com_ini(
            &format!(
                "formula = weights\nweights = {}=3, {}=1",
                fp("node1"),
                fp("node2")
            ),
            "",
        ),
    );
    founders(&mut s);
    s.issue(&[("bread", 40)], at(0, 60));
    s.distribute(0);
    s.pay("node1", &[("network", 2000)], at(1, 60));
    members(&mut s, &[], &["node2"], at(1, 120));
    s.distribute(1);
    s.distribute(2);
    all.push(s);

    let mut s = Scene::with(
        "special-distribution",
        "`special = quorum`: a special distribution in the middle of period 1 pays out what \
         the network holds then, without closing the period; the regular one after the \
         period's end pays what came in since, and closes it.",
        com_ini(&format!("{EQUAL}\nspecial = quorum"), ""),
    );
    founders(&mut s);
    s.issue(&[("bread", 40)], at(0, 60));
    s.distribute(0);
    s.pay("node1", &[("network", 1200)], at(1, 60));
    s.propose(1, true, at(1, 3600));
    s.pay("node2", &[("network", 400)], at(1, 7200));
    s.distribute(1);
    all.push(s);

    let mut s = Scene::with(
        "formula-share-and-assets",
        "Two assets, `share = 50%`, `pro_rata_paid`: each asset has its own pool, rounded \
         down to half (the rest, rounding included, stays with the network), and its own \
         tallies — in period 1 node2 is paid in codcoin and node3 in seed, so node2 gets \
         all of codcoin's pool and node3 all of seed's.",
        com_ini(
            "formula = pro_rata_paid\nshare = 50%",
            "[asset.seed]\ndecimals = 0\n\
             [backing.grain]\nclass = inventory\nasset = seed\nunit = sack\nvalue = 7\n",
        ),
    );
    founders(&mut s);
    s.issue(&[("bread", 41), ("grain", 11)], at(0, 60));
    s.distribute(0);
    s.pay("node1", &[("node2", 2000)], at(1, 60));
    let seed =
        s.l.make_payment(
            s.id("node2"),
            &key("node2"),
            cod::ledger::Payment {
                outputs: vec![Output {
                    account: s.id("node3"),
                    amount: 10,
                    asset: "seed".into(),
                }],
                ..Default::default()
            },
            None,
            at(1, 120),
        )
        .unwrap();
    s.push(seed);
    s.issue(&[("bread", 60), ("grain", 20)], at(1, 180));
    let d = s.distribute(1);
    let payouts: Vec<(AccountId, String)> = d
        .body()
        .content
        .outputs()
        .iter()
        .map(|o| (o.account, o.asset.clone()))
        .collect();
    assert_eq!(
        payouts,
        {
            let mut want = vec![
                (s.id("node2"), "codcoin".to_string()),
                (s.id("node3"), "seed".to_string()),
            ];
            want.sort();
            want
        },
        "{}",
        s.name
    );
    all.push(s);

    all
}
