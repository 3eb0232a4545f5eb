//! The BitTorrent peer wire cod speaks: handshakes, messages, the BEP 10 extension
//! handshake and BEP 9 metadata messages.
#![no_main]
use cod::seeder::wire::{self, HANDSHAKE_LEN, Handshake, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(hs) = <&[u8; HANDSHAKE_LEN]>::try_from(data)
        && let Ok(h) = Handshake::decode(hs)
    {
        assert_eq!(Handshake::decode(&h.encode()).unwrap(), h);
    }
    if let Ok(m) = Message::decode(data) {
        let bytes = m.encode();
        assert_eq!(Message::decode(&bytes[4..]).unwrap(), m);
    }
    let _ = wire::decode_ext_handshake(data);
    if let Ok((msg, rest)) = wire::decode_metadata_msg(data) {
        assert!(rest.len() <= data.len());
        let _ = wire::metadata_piece(msg.piece, 1 << 20);
    }
});
