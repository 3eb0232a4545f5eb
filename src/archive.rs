//! Chain archives (`cod chain export` / `import`, archive mirrors): a text file of canonical
//! records, one per line, between a header naming the cod and a trailer that makes
//! truncation and corruption evident. Pure.
//!
//! ```text
//! cod-archive 1 <cod id>
//! <canonical record>            one per line, oldest first
//! end <record count> <SHA-256 of every preceding byte, hex>
//! ```

use crate::ids::CodId;
use crate::ledger::{Record, RecordError};
use sha2::{Digest, Sha256};

pub const MAGIC: &str = "cod-archive";
/// Largest archive a node reads from a mirror (about 250,000 records of 4 KB).
pub const MAX_MIRROR_BYTES: u64 = 1 << 30;
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchiveError {
    #[error("not a cod archive (the first line must be `{MAGIC} {VERSION} COD_ID`)")]
    BadHeader,
    #[error("the archive is for cod {found}, not {expected}")]
    WrongCod { expected: CodId, found: String },
    #[error("the archive is truncated (no `end` line)")]
    Truncated,
    #[error("the archive's trailer says {said} records but it holds {found}")]
    CountMismatch { said: usize, found: usize },
    #[error("the archive's checksum does not match its contents (damaged)")]
    Checksum,
    #[error("line {line}: {error}")]
    Record { line: usize, error: RecordError },
}

/// Writes an archive of `records` (in the order given).
pub fn write<'a>(cod: &CodId, records: impl IntoIterator<Item = &'a Record>) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), cod).expect("writing to memory");
    for r in records {
        w.push(&r.to_bytes()).expect("writing to memory");
    }
    w.finish().expect("writing to memory").0
}

/// How many records a well-formed archive holds (its lines but the header and trailer).
pub fn count(archive: &[u8]) -> usize {
    archive
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        .saturating_sub(2)
}

/// Writes an archive to `W` as its records come, so that it never needs to be whole in
/// memory.
pub struct Writer<W: std::io::Write> {
    out: W,
    digest: Sha256,
    records: usize,
}

impl<W: std::io::Write> Writer<W> {
    pub fn new(out: W, cod: &CodId) -> std::io::Result<Self> {
        let mut w = Self {
            out,
            digest: Sha256::new(),
            records: 0,
        };
        w.put(format!("{MAGIC} {VERSION} {cod}\n").as_bytes())?;
        Ok(w)
    }

    /// Adds a record, given as its canonical bytes.
    pub fn push(&mut self, canonical: &[u8]) -> std::io::Result<()> {
        self.put(canonical)?;
        self.put(b"\n")?;
        self.records += 1;
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.digest.update(bytes);
        self.out.write_all(bytes)
    }

    /// Writes the trailer; returns the output and how many records it holds.
    pub fn finish(mut self) -> std::io::Result<(W, usize)> {
        let digest = hex::encode(self.digest.finalize_reset());
        let trailer = format!("end {} {digest}\n", self.records);
        self.out.write_all(trailer.as_bytes())?;
        self.out.flush()?;
        Ok((self.out, self.records))
    }
}

/// Reads an archive: checks header, trailer and checksum, and decodes every record (their
/// signatures and rules are checked when they are ingested).
pub fn read(bytes: &[u8], cod: &CodId) -> Result<Vec<Record>, ArchiveError> {
    let text_end = bytes.len();
    let header_end = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(ArchiveError::BadHeader)?;
    let header = std::str::from_utf8(&bytes[..header_end]).map_err(|_| ArchiveError::BadHeader)?;
    let mut parts = header.split(' ');
    if parts.next() != Some(MAGIC) || parts.next() != Some(&VERSION.to_string()) {
        return Err(ArchiveError::BadHeader);
    }
    let found = parts.next().ok_or(ArchiveError::BadHeader)?;
    if found != cod.to_string() || parts.next().is_some() {
        return Err(ArchiveError::WrongCod {
            expected: *cod,
            found: found.to_string(),
        });
    }
    // The trailer is the last line.
    if text_end == 0 || bytes[text_end - 1] != b'\n' {
        return Err(ArchiveError::Truncated);
    }
    let trailer_start = bytes[..text_end - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let trailer = std::str::from_utf8(&bytes[trailer_start..text_end - 1])
        .map_err(|_| ArchiveError::Truncated)?;
    let t: Vec<&str> = trailer.split(' ').collect();
    let [end, count, digest] = t.as_slice() else {
        return Err(ArchiveError::Truncated);
    };
    if *end != "end" || trailer_start <= header_end {
        return Err(ArchiveError::Truncated);
    }
    if hex::encode(Sha256::digest(&bytes[..trailer_start])) != *digest {
        return Err(ArchiveError::Checksum);
    }
    let mut records = Vec::new();
    for (i, line) in bytes[header_end + 1..trailer_start]
        .split(|b| *b == b'\n')
        .enumerate()
    {
        if line.is_empty() {
            continue;
        }
        let r = Record::from_bytes(line)
            .map_err(|error| ArchiveError::Record { line: i + 2, error })?;
        records.push(r);
    }
    let said: usize = count.parse().map_err(|_| ArchiveError::Truncated)?;
    if said != records.len() {
        return Err(ArchiveError::CountMismatch {
            said,
            found: records.len(),
        });
    }
    Ok(records)
}
