//! REST answers a node reads from its peers: record pages (and every record in them),
//! sync summaries, buckets and heads, info, challenge answers, submission results, errors.
//! The first byte picks which.
#![no_main]
use cod::api::{
    Buckets, ChallengeResponse, ErrorBody, Heads, Info, PeerEntry, Records, SubmitResult, Summary,
};
use cod::ledger::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 9 {
        0 => {
            if let Ok(page) = serde_json::from_slice::<Records>(body) {
                for r in page.records {
                    let _ = Record::from_bytes(r.get().as_bytes());
                }
            }
        }
        1 => {
            let _ = serde_json::from_slice::<Summary>(body);
        }
        2 => {
            let _ = serde_json::from_slice::<Buckets>(body);
        }
        3 => {
            if let Ok(h) = serde_json::from_slice::<Heads>(body) {
                for a in h.heads.keys() {
                    let _ = a.parse::<cod::ids::AccountId>();
                }
            }
        }
        4 => {
            if let Ok(i) = serde_json::from_slice::<Info>(body) {
                let _ = i.check_bounds();
            }
        }
        5 => {
            let _ = serde_json::from_slice::<ChallengeResponse>(body);
        }
        6 => {
            let _ = serde_json::from_slice::<Vec<SubmitResult>>(body);
        }
        7 => {
            let _ = serde_json::from_slice::<Vec<PeerEntry>>(body);
        }
        _ => {
            let _ = serde_json::from_slice::<ErrorBody>(body);
        }
    }
});
