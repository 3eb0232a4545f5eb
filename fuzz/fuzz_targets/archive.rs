//! A chain archive (`cod chain import`, a mirror's file): header, records, trailer.
#![no_main]
use cod::archive::{ArchiveError, Reader};
use cod::ids::CodId;
use cod::ledger::Record;
use libfuzzer_sys::fuzz_target;

/// The archive read a few records at a time, as an import reads a file.
fn paged(data: &[u8], cod: &CodId, n: usize) -> Result<Vec<Record>, ArchiveError> {
    let mut r = Reader::new(data, cod)?;
    let mut all = Vec::new();
    loop {
        let page = r.page(n)?;
        assert!(page.len() <= n);
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    r.finish()?;
    Ok(all)
}

fuzz_target!(|data: &[u8]| {
    let cod = CodId::from_bytes([0x42; 20]);
    let whole = cod::archive::read(data, &cod);
    // Page by page, the same records or the same error.
    assert_eq!(paged(data, &cod, 1), whole);
    assert_eq!(paged(data, &cod, 3), whole);
    if let Ok(records) = whole {
        // What reads, writes back to an archive that reads the same.
        let again = cod::archive::write(&cod, records.iter());
        let back = cod::archive::read(&again, &cod).expect("a written archive reads");
        assert_eq!(back, records);
    }
});
