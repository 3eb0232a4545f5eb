//! Bencode: the bounded scanner agrees with the decoder on what one value is.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_bencode::value::Value;

fuzz_target!(|data: &[u8]| {
    let len = cod::bencode::value_len(data);
    if let Some(n) = len {
        assert!(n <= data.len());
    }
    if let Ok(v) = cod::bencode::from_bytes::<Value>(data) {
        assert_eq!(len, Some(data.len()), "what decodes is one whole value");
        // Decoded values re-encode to a value the scanner accepts.
        let again = serde_bencode::to_bytes(&v).expect("values encode");
        assert_eq!(cod::bencode::value_len(&again), Some(again.len()));
    }
});
