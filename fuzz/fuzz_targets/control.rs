//! The control protocol's lines: requests (the daemon reads them from local clients),
//! responses and events (the CLI and the TUI read them from the daemon).
#![no_main]
use cod::control::{Event, Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<Request>(data) {
        let again = serde_json::to_vec(&r).unwrap();
        assert_eq!(serde_json::from_slice::<Request>(&again).unwrap(), r);
    }
    let _ = serde_json::from_slice::<Response>(data);
    let _ = serde_json::from_slice::<Event>(data);
});
