//! A chain archive (`cod chain import`, a mirror's file): header, records, trailer.
#![no_main]
use cod::ids::CodId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cod = CodId::from_bytes([0x42; 20]);
    if let Ok(records) = cod::archive::read(data, &cod) {
        // What reads, writes back to an archive that reads the same.
        let again = cod::archive::write(&cod, records.iter());
        let back = cod::archive::read(&again, &cod).expect("a written archive reads");
        assert_eq!(back.len(), records.len());
    }
});
