//! A record as it arrives from a peer (a page, a submission, an archive line): decoding,
//! the canonical-form check and the hash. What decodes must encode back to exactly the
//! same bytes, and its JSON form must decode to the same record.
#![no_main]
use cod::ledger::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(r) = Record::from_bytes(data) else {
        return;
    };
    assert_eq!(r.to_bytes(), data, "a decoded record is canonical");
    let again = Record::from_json(r.to_json()).expect("its JSON decodes");
    assert_eq!(again.hash(), r.hash());
    assert_eq!(again.to_bytes(), data);
    let _ = r.size_estimate();
});
