//! Torrent metainfo: `.torrent` files and the `info` dictionary a peer sends for a magnet.
#![no_main]
use cod::package::Info;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = Info::from_torrent_file(data) {
        let _ = cod::seeder::download::plausible(&info);
        let _ = info.piece_count();
        let _ = info.magnet();
    }
    if let Ok(info) = cod::bencode::from_bytes::<Info>(data)
        && cod::seeder::download::plausible(&info).is_ok()
    {
        // Plausible metadata can be downloaded against: its blocks lie inside the file.
        let mut p = cod::seeder::download::Pieces::new(info.clone()).expect("plausible");
        let mut total = 0u64;
        for (_, _, len) in p.requests(usize::MAX) {
            total += u64::from(len);
        }
        assert_eq!(total, info.length);
    }
});
