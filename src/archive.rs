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
    #[error("line {line} is longer than {max} bytes")]
    LineTooLong { line: usize, max: usize },
    #[error("cannot read the archive: {0}")]
    Io(String),
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

/// The record lines of an archive (its canonical records, as bytes), without checking them:
/// every line but the header, the `end` trailer and empty lines. (A merge compares these
/// with what it would write; what it imports goes through [`Reader`].)
pub fn record_lines(archive: &[u8]) -> impl Iterator<Item = &[u8]> {
    archive
        .split(|b| *b == b'\n')
        .skip(1)
        .filter(|l| !l.is_empty() && !l.starts_with(b"end "))
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
    let mut reader = Reader::new(bytes, cod)?;
    let records = reader.page(usize::MAX)?;
    reader.finish()?;
    Ok(records)
}

/// The longest header line a reader takes.
const MAX_HEADER: usize = 256;
/// The longest line a reader takes (its newline aside): a record's largest encoding (a
/// trailer is shorter).
pub const MAX_LINE: usize = crate::ledger::record::MAX_RECORD_BYTES;

/// Reads an archive as it comes, a page of records at a time, so that it never needs to be
/// whole in memory. Whether the archive is sound is known only at its end: [`Reader::finish`]
/// checks the trailer and the checksum, and reports the first record that did not decode (the
/// pages leave it out). The errors, and which wins when there are several, are those of
/// [`read`]: a bad header; a truncated archive (the last line lacks its newline, or is no
/// trailer); a damaged one (checksum); the first record that does not decode; a count that
/// does not match. A line longer than [`MAX_LINE`] is refused at once.
pub struct Reader<R> {
    input: R,
    digest: Sha256,
    /// The last line read, not yet known to be a record: it is the trailer if none follows.
    held: Option<Vec<u8>>,
    /// The number of the held line in the file (the header is line 1).
    line: usize,
    records: usize,
    first_error: Option<ArchiveError>,
}

impl<R: std::io::BufRead> Reader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R, cod: &CodId) -> Result<Self, ArchiveError> {
        let mut header = Vec::new();
        std::io::BufRead::read_until(
            &mut std::io::Read::take(&mut input, MAX_HEADER as u64),
            b'\n',
            &mut header,
        )
        .map_err(io)?;
        if header.pop() != Some(b'\n') {
            return Err(ArchiveError::BadHeader);
        }
        let text = std::str::from_utf8(&header).map_err(|_| ArchiveError::BadHeader)?;
        let mut parts = text.split(' ');
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
        let mut digest = Sha256::new();
        digest.update(&header);
        digest.update(b"\n");
        Ok(Self {
            input,
            digest,
            held: None,
            line: 1,
            records: 0,
            first_error: None,
        })
    }

    /// The next line, without its newline; `None` at the end.
    fn next_line(&mut self) -> Result<Option<Vec<u8>>, ArchiveError> {
        let mut line = Vec::new();
        let n = std::io::BufRead::read_until(
            &mut std::io::Read::take(&mut self.input, MAX_LINE as u64 + 1),
            b'\n',
            &mut line,
        )
        .map_err(io)?;
        if n == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            return Err(if line.len() > MAX_LINE {
                ArchiveError::LineTooLong {
                    line: self.line + 1,
                    max: MAX_LINE,
                }
            } else {
                ArchiveError::Truncated
            });
        }
        line.pop();
        Ok(Some(line))
    }

    /// The next records, at most `n` of them; none at the end.
    pub fn page(&mut self, n: usize) -> Result<Vec<Record>, ArchiveError> {
        let mut out = Vec::new();
        while out.len() < n {
            let Some(next) = self.next_line()? else {
                break;
            };
            let line = self.line;
            self.line += 1;
            // Another line follows the held one: that was a record (or an empty line).
            let Some(prev) = self.held.replace(next) else {
                continue;
            };
            self.digest.update(&prev);
            self.digest.update(b"\n");
            if prev.is_empty() {
                continue;
            }
            self.records += 1;
            match Record::from_bytes(&prev) {
                Ok(r) => out.push(r),
                Err(error) => {
                    self.first_error
                        .get_or_insert(ArchiveError::Record { line, error });
                }
            }
        }
        Ok(out)
    }

    /// Reads what is left and checks the trailer; returns how many records the archive
    /// holds.
    pub fn finish(mut self) -> Result<usize, ArchiveError> {
        while !self.page(1024)?.is_empty() {}
        let trailer = self.held.take().ok_or(ArchiveError::Truncated)?;
        let trailer = std::str::from_utf8(&trailer).map_err(|_| ArchiveError::Truncated)?;
        let t: Vec<&str> = trailer.split(' ').collect();
        let [end, count, digest] = t.as_slice() else {
            return Err(ArchiveError::Truncated);
        };
        // The count is plain decimal (no sign, no leading zero), else this is no trailer.
        if *end != "end"
            || count.is_empty()
            || !count.bytes().all(|b| b.is_ascii_digit())
            || (count.len() > 1 && count.starts_with('0'))
        {
            return Err(ArchiveError::Truncated);
        }
        if hex::encode(self.digest.finalize()) != *digest {
            return Err(ArchiveError::Checksum);
        }
        if let Some(e) = self.first_error {
            return Err(e);
        }
        // (Too large to be a count here: it does not match.)
        let said: usize = count.parse().unwrap_or(usize::MAX);
        if said != self.records {
            return Err(ArchiveError::CountMismatch {
                said,
                found: self.records,
            });
        }
        Ok(self.records)
    }
}

fn io(e: std::io::Error) -> ArchiveError {
    ArchiveError::Io(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines_are_the_lines_between_header_and_trailer() {
        let cod: CodId = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        let mut w = Writer::new(Vec::new(), &cod).unwrap();
        w.push(b"{\"a\":1}").unwrap();
        w.push(b"{\"b\":2}").unwrap();
        let (bytes, _) = w.finish().unwrap();
        let lines: Vec<&[u8]> = record_lines(&bytes).collect();
        assert_eq!(lines, [&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
        assert_eq!(record_lines(b"").count(), 0);
    }
    use crate::ledger::tests::Scenario;

    fn sample() -> (CodId, Vec<Record>, Vec<u8>) {
        let s = Scenario::standard();
        let cod = s.l.params().cod;
        let bytes = write(&cod, &s.records);
        (cod, s.records, bytes)
    }

    /// Rewrites the trailer of `body` (an archive without its trailer) so that it is sound.
    fn sealed(body: &[u8], count: usize) -> Vec<u8> {
        let digest = hex::encode(Sha256::digest(body));
        [body, format!("end {count} {digest}\n").as_bytes()].concat()
    }

    fn without_trailer(bytes: &[u8]) -> &[u8] {
        let end = bytes[..bytes.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .unwrap();
        &bytes[..end + 1]
    }

    #[test]
    fn pages_of_any_size_read_what_was_written() {
        let (cod, records, bytes) = sample();
        assert!(records.len() > 5);
        assert_eq!(read(&bytes, &cod).unwrap(), records);
        for n in [1, 2, 5, records.len(), records.len() + 1] {
            let mut r = Reader::new(&bytes[..], &cod).unwrap();
            let mut all = Vec::new();
            loop {
                let page = r.page(n).unwrap();
                assert!(page.len() <= n);
                if page.is_empty() {
                    break;
                }
                all.extend(page);
            }
            assert_eq!(all, records, "pages of {n}");
            assert_eq!(r.finish().unwrap(), records.len());
        }
        // finish reads what the pages left.
        let mut r = Reader::new(&bytes[..], &cod).unwrap();
        r.page(2).unwrap();
        assert_eq!(r.finish().unwrap(), records.len());
        // An archive of nothing.
        let empty = write(&cod, &[]);
        assert_eq!(read(&empty, &cod).unwrap(), Vec::<Record>::new());
    }

    #[test]
    fn each_fault_gets_its_error_and_the_first_wins() {
        let (cod, records, bytes) = sample();
        let body = without_trailer(&bytes);
        let header_end = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
        let other: CodId = "1123456789abcdef0123456789abcdef01234567".parse().unwrap();
        // A record line that does not decode, on line 3 (the header is line 1).
        let mut lines: Vec<&[u8]> = body[header_end..]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        lines[1] = b"{\"not\": \"a record\"}";
        let bad_record = [&body[..header_end], &lines.join(&b'\n'), b"\n"].concat();
        let cases: Vec<(&str, Vec<u8>, ArchiveError)> = vec![
            ("empty", vec![], ArchiveError::BadHeader),
            (
                "header only, no newline",
                body[..header_end - 1].to_vec(),
                ArchiveError::BadHeader,
            ),
            (
                "another format",
                b"tar 1 x\nend 0 0\n".to_vec(),
                ArchiveError::BadHeader,
            ),
            (
                "another cod",
                write(&other, &records),
                ArchiveError::WrongCod {
                    expected: cod,
                    found: other.to_string(),
                },
            ),
            (
                "header only",
                body[..header_end].to_vec(),
                ArchiveError::Truncated,
            ),
            (
                "cut mid-line",
                bytes[..bytes.len() - 10].to_vec(),
                ArchiveError::Truncated,
            ),
            ("no trailer", body.to_vec(), ArchiveError::Truncated),
            (
                "a damaged byte",
                {
                    let mut b = bytes.clone();
                    b[header_end + 20] ^= 1;
                    b
                },
                ArchiveError::Checksum,
            ),
            (
                "a record that does not decode, sealed",
                sealed(&bad_record, records.len()),
                ArchiveError::Record {
                    line: 3,
                    error: Record::from_bytes(lines[1]).unwrap_err(),
                },
            ),
            (
                "a record that does not decode, and damaged",
                [&bad_record[..], b"end 1 00\n"].concat(),
                ArchiveError::Checksum,
            ),
            (
                "a miscount",
                sealed(body, records.len() + 1),
                ArchiveError::CountMismatch {
                    said: records.len() + 1,
                    found: records.len(),
                },
            ),
            (
                "a line too long",
                [&body[..header_end], &vec![b'x'; MAX_LINE + 1], b"\n"].concat(),
                ArchiveError::LineTooLong {
                    line: 2,
                    max: MAX_LINE,
                },
            ),
        ];
        for (what, bytes, want) in cases {
            assert_eq!(read(&bytes, &cod), Err(want), "{what}");
        }
        // Empty lines are no records, and are covered by the checksum.
        let spaced = [&body[..header_end], b"\n", &body[header_end..], b"\n"].concat();
        assert_eq!(
            read(&sealed(&spaced, records.len()), &cod).unwrap(),
            records
        );
    }
}
