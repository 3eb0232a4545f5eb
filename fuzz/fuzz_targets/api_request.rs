//! REST request bodies a node reads from strangers: submissions (and every record in
//! them), challenges, signature requests and rejections. The first byte picks which.
#![no_main]
use cod::api::{ChallengeRequest, Proposal, RejectionMsg, Submit};
use cod::ledger::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(s) = serde_json::from_slice::<Submit>(body) {
                for r in s.records {
                    let _ = Record::from_bytes(r.get().as_bytes());
                }
            }
        }
        1 => {
            let _ = serde_json::from_slice::<ChallengeRequest>(body);
        }
        2 => {
            if let Ok(p) = serde_json::from_slice::<Proposal>(body) {
                let _ = Record::from_json(p.record);
            }
        }
        _ => {
            if let Ok(r) = serde_json::from_slice::<RejectionMsg>(body) {
                let _ = r.node_id.parse::<cod::ids::AccountId>();
            }
        }
    }
});
