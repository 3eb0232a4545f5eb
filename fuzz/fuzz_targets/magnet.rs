//! Magnet links (and bare infohashes) as a user pastes them.
#![no_main]
use cod::package::torrent::Magnet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = text.parse::<Magnet>() {
        assert!(m.peers.len() <= cod::package::torrent::MAX_MAGNET_PEERS);
        let again = cod::package::torrent::magnet(&m.infohash, "x", m.length);
        assert_eq!(again.parse::<Magnet>().unwrap().infohash, m.infohash);
    }
});
