//! Records built field by field (structure-aware: random bytes rarely decode as one): the
//! encoder and the decoder must agree. Whatever cod encodes, its own canonical check
//! accepts — or refuses only for a stated limit — and decodes to the same record and hash.
#![no_main]
use arbitrary::Arbitrary;
use cod::ids::{AccountId, CodId, Fingerprint, RecordHash};
use cod::ledger::{
    B64, Body, Content, Distribute, Handover, Head, Issue, Members, Output, Record, RecordError,
    Sig, SignerSet, Transfer,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Out {
    account: [u8; 32],
    amount: u64,
    asset: String,
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Transfer {
        claims: Vec<[u8; 32]>,
        key: Option<Vec<u8>>,
        memo: Option<String>,
        outputs: Vec<Out>,
        rekey: Option<Vec<u8>>,
        redeem: Vec<(String, u64)>,
        vouch: Vec<[u8; 32]>,
    },
    Issue {
        amounts: Vec<(String, u64)>,
        attest: Vec<(String, u64)>,
        period: u64,
        work: Vec<([u8; 32], Vec<(String, u64)>)>,
    },
    Members {
        admit: Vec<[u8; 32]>,
        remove: Vec<[u8; 32]>,
    },
    Distribute {
        admitted: Vec<[u8; 32]>,
        heads: Vec<([u8; 32], [u8; 32], u64)>,
        payouts: Vec<Out>,
        period: u64,
        special: bool,
        handover: Option<(u32, [u8; 20], String)>,
    },
    Signers {
        keys: Vec<[u8; 32]>,
        quorum: u64,
    },
}

#[derive(Arbitrary, Debug)]
struct Fields {
    version: u32,
    time: u64,
    account: [u8; 32],
    seq: u64,
    prev: Option<[u8; 32]>,
    kind: Kind,
    sigs: Vec<(Option<Vec<u8>>, Vec<u8>)>,
}

fn outputs(o: Vec<Out>) -> Vec<Output> {
    o.into_iter()
        .map(|o| Output {
            account: AccountId::from_bytes(o.account),
            amount: o.amount,
            asset: o.asset,
        })
        .collect()
}

fn accounts(a: Vec<[u8; 32]>) -> Vec<AccountId> {
    a.into_iter().map(AccountId::from_bytes).collect()
}

fuzz_target!(|f: Fields| {
    let content = match f.kind {
        Kind::Transfer {
            claims,
            key,
            memo,
            outputs: o,
            rekey,
            redeem,
            vouch,
        } => Content::Transfer(Transfer {
            claims: claims.into_iter().map(RecordHash::from_bytes).collect(),
            key: key.map(B64),
            memo,
            outputs: outputs(o),
            rekey: rekey.map(B64),
            redeem: redeem.into_iter().collect(),
            vouch: accounts(vouch),
        }),
        Kind::Issue {
            amounts,
            attest,
            period,
            work,
        } => Content::Issue(Issue {
            amounts: amounts.into_iter().collect(),
            attest: attest.into_iter().collect(),
            period,
            work: work
                .into_iter()
                .map(|(a, items)| (AccountId::from_bytes(a), items.into_iter().collect()))
                .collect(),
        }),
        Kind::Members { admit, remove } => Content::Members(Members {
            admit: accounts(admit),
            remove: accounts(remove),
        }),
        Kind::Distribute {
            admitted,
            heads,
            payouts,
            period,
            special,
            handover,
        } => Content::Distribute(Distribute {
            admitted: accounts(admitted),
            handover: handover.map(|(rules, to, version)| Handover {
                rules,
                to: CodId::from_bytes(to),
                version,
            }),
            heads: heads
                .into_iter()
                .map(|(a, h, seq)| {
                    (
                        AccountId::from_bytes(a),
                        Head {
                            hash: RecordHash::from_bytes(h),
                            seq,
                        },
                    )
                })
                .collect(),
            payouts: outputs(payouts),
            period,
            special,
        }),
        Kind::Signers { keys, quorum } => Content::Signers(SignerSet {
            keys: keys.into_iter().map(Fingerprint::from_bytes).collect(),
            quorum,
        }),
    };
    let body = Body {
        version: f.version,
        cod: CodId::from_bytes([7; 20]),
        time: f.time,
        account: AccountId::from_bytes(f.account),
        seq: f.seq,
        prev: f.prev.map(RecordHash::from_bytes),
        content,
    };
    let sigs = f
        .sigs
        .into_iter()
        .map(|(key, sig)| Sig {
            key: key.map(B64),
            sig: B64(sig),
        })
        .collect();
    let r = Record::new(body, sigs);
    let bytes = r.to_bytes();
    match Record::from_bytes(&bytes) {
        Ok(back) => {
            assert_eq!(back.hash(), r.hash());
            assert_eq!(back.body(), r.body());
            assert_eq!(back.to_bytes(), bytes);
        }
        Err(RecordError::NotCanonical) => panic!("cod's own encoding is not canonical to cod"),
        Err(RecordError::Malformed(m)) if m.contains("invalid") && m.contains("escape") => {
            panic!("cod's own encoding does not parse: {m}")
        }
        Err(_) => {} // a limit (sizes, counts, version) or a form rule: refused, not misread
    }
});
