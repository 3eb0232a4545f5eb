//! Chain archives as torrents, found through the DHT (issue 16): the pure parts — which
//! segment a record goes in, the index that lists the segments, the BEP 44 item that points
//! at the newest index, and the item's key. The node's task that writes, seeds, announces and
//! restores is `node::torrents`; `docs/formats.md` ("Archive torrents") is the specification.
//!
//! Segments are cut so that every node holding the same records writes the same bytes, and so
//! the same infohashes: all of them seed one swarm per segment, and a segment stays the same
//! for a long time. A record goes by the hour of its time (Unix seconds / 3600). The hours
//! that closed at least [`SETTLE_SECS`] ago, `[0, closed)`, split into aligned blocks by the
//! binary digits of `closed` (from the highest: for `closed = 13 = 0b1101`, the blocks are
//! hours `[0, 8)`, `[8, 12)` and `[12, 13)`); the later hours are the open span. A block stays
//! as it is until `closed` carries past it, so a block of 2^k hours is rewritten about once
//! per 2^k hours, and there are never more blocks than bits. Within a span, records are
//! sorted by (time, account, seq, hash) and cut into parts of at most [`MAX_SEGMENT_BYTES`].

use crate::ids::CodId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Records go by the hour of their time.
pub const HOUR: u64 = 3600;
/// An hour is closed once it ended this long ago (records dated in it have had time to
/// reach every node).
pub const SETTLE_SECS: u64 = 600;
/// A segment holds at most this many bytes of records (more go in the span's next part).
pub const MAX_SEGMENT_BYTES: u64 = 64 << 20;
/// Largest segment a node downloads (a part's records plus its header and trailer).
pub const MAX_SEGMENT_DOWNLOAD: u64 = MAX_SEGMENT_BYTES + (1 << 20);
/// Largest index a node downloads, and the most segments it may list.
pub const MAX_INDEX_BYTES: u64 = 1 << 20;
pub const MAX_INDEX_SEGMENTS: usize = 8192;
/// BEP 44 lets DHT nodes refuse a value longer than this.
pub const MAX_ITEM_BYTES: usize = 1000;
/// The BEP 44 salt of the item (with the key, it makes the item's DHT target).
pub const SALT: &[u8] = b"cod-archive-1";
/// The index's first line.
pub const INDEX_MAGIC: &str = "cod-archive-index 1";

/// The span of hours a segment covers: a closed block `[from, to)`, or the open span from
/// `from` on (`to` is `None`). Spans order by their first hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    pub from: u64,
    pub to: Option<u64>,
}

/// How many hours are closed at `now`.
pub fn closed_hours(now: u64) -> u64 {
    now.saturating_sub(SETTLE_SECS) / HOUR
}

/// The span a record of `time` goes in when `closed` hours are closed.
pub fn span_of(time: u64, closed: u64) -> Span {
    let hour = time / HOUR;
    if hour >= closed {
        return Span {
            from: closed,
            to: None,
        };
    }
    let mut from = 0u64;
    for bit in (0..64).rev() {
        let size = 1u64 << bit;
        if closed & size != 0 {
            if hour < from + size {
                return Span {
                    from,
                    to: Some(from + size),
                };
            }
            from += size;
        }
    }
    unreachable!("hour {hour} < closed {closed} lies in one of its blocks")
}

/// Cuts records of these sizes (their archive lines, newline included), in order, into
/// parts of at most [`MAX_SEGMENT_BYTES`] each (a record never larger than that: records
/// are far smaller). Returns each part's range of indices.
pub fn parts(sizes: &[u64]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0u64);
    for (i, s) in sizes.iter().enumerate() {
        if i > start && bytes.saturating_add(*s) > MAX_SEGMENT_BYTES {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes = bytes.saturating_add(*s);
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// The file name in a segment's torrent: `<ledger>-<from>-<to>-<part>.archive`, or
/// `<ledger>-<from>-open-<part>.archive` for the open span (hours since the Unix epoch).
pub fn segment_name(ledger: &CodId, span: Span, part: usize) -> String {
    match span.to {
        Some(to) => format!("{ledger}-{}-{to}-{part}.archive", span.from),
        None => format!("{ledger}-{}-open-{part}.archive", span.from),
    }
}

/// The file name in an index's torrent.
pub fn index_name(ledger: &CodId) -> String {
    format!("{ledger}.archive-index")
}

/// One segment an index lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub infohash: [u8; 20],
    pub records: u64,
    pub bytes: u64,
    pub name: String,
}

/// The list of a chain's segments, as published (a text file; see the module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub ledger: CodId,
    pub segments: Vec<Segment>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    #[error("the index is longer than {MAX_INDEX_BYTES} bytes")]
    TooLarge,
    #[error("not a cod archive index (the first line must be `{INDEX_MAGIC}`)")]
    BadHeader,
    #[error("the index is for ledger {found}, not {expected}")]
    WrongLedger { expected: CodId, found: String },
    #[error("index line {0} is malformed")]
    Line(usize),
    #[error("the index lists more than {MAX_INDEX_SEGMENTS} segments")]
    TooMany,
    #[error("the index's record count does not add up")]
    Count,
}

impl Index {
    /// Records in all its segments.
    pub fn records(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum()
    }

    /// ```text
    /// cod-archive-index 1
    /// ledger <ledger id>
    /// records <total>
    /// <infohash hex> <records> <bytes> <name>     one line per segment, by span
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!(
            "{INDEX_MAGIC}\nledger {}\nrecords {}\n",
            self.ledger,
            self.records()
        );
        for seg in &self.segments {
            s.push_str(&format!(
                "{} {} {} {}\n",
                hex::encode(seg.infohash),
                seg.records,
                seg.bytes,
                seg.name
            ));
        }
        s.into_bytes()
    }

    /// Reads an index from a peer: every line checked, the counts bounded and summed with
    /// checks, the ledger the one expected.
    pub fn decode(bytes: &[u8], ledger: &CodId) -> Result<Self, IndexError> {
        if bytes.len() as u64 > MAX_INDEX_BYTES {
            return Err(IndexError::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| IndexError::BadHeader)?;
        let text = text.strip_suffix('\n').ok_or(IndexError::Line(0))?;
        let mut lines = text.split('\n');
        if lines.next() != Some(INDEX_MAGIC) {
            return Err(IndexError::BadHeader);
        }
        let found = lines
            .next()
            .and_then(|l| l.strip_prefix("ledger "))
            .ok_or(IndexError::Line(2))?;
        if found != ledger.to_string() {
            return Err(IndexError::WrongLedger {
                expected: *ledger,
                found: found.chars().take(64).collect(),
            });
        }
        let total: u64 = lines
            .next()
            .and_then(|l| l.strip_prefix("records "))
            .and_then(number)
            .ok_or(IndexError::Line(3))?;
        let mut segments = Vec::new();
        let mut sum = 0u64;
        let mut infohashes = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for (i, line) in lines.enumerate() {
            let n = i + 4;
            if segments.len() == MAX_INDEX_SEGMENTS {
                return Err(IndexError::TooMany);
            }
            let f: Vec<&str> = line.split(' ').collect();
            let [ih, records, bytes, name] = f[..] else {
                return Err(IndexError::Line(n));
            };
            let lowercase = ih
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            let infohash = (ih.len() == 40 && lowercase)
                .then(|| hex::decode(ih).ok())
                .flatten()
                .and_then(|v| <[u8; 20]>::try_from(v).ok())
                .ok_or(IndexError::Line(n))?;
            let (records, bytes) = (
                number(records).ok_or(IndexError::Line(n))?,
                number(bytes).ok_or(IndexError::Line(n))?,
            );
            if !plain_name(name) || bytes == 0 || bytes > MAX_SEGMENT_DOWNLOAD {
                return Err(IndexError::Line(n));
            }
            if !infohashes.insert(infohash) || !names.insert(name) {
                return Err(IndexError::Line(n));
            }
            sum = sum.checked_add(records).ok_or(IndexError::Count)?;
            segments.push(Segment {
                infohash,
                records,
                bytes,
                name: name.to_string(),
            });
        }
        if sum != total {
            return Err(IndexError::Count);
        }
        Ok(Self {
            ledger: *ledger,
            segments,
        })
    }
}

/// A decimal number as cod writes them (no sign, no leading zero).
fn number(s: &str) -> Option<u64> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok()).flatten()
}

/// A file name a torrent may carry: 1–200 of `A-Za-z0-9.-_`, not starting with a dot.
fn plain_name(s: &str) -> bool {
    (1..=200).contains(&s.len())
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// The BEP 44 item: the newest index's infohash and how many records it lists (its value),
/// and the closed hours it was written at. Its `seq` is `records · 2^24 + closed`, so a node
/// that holds fewer records never replaces a fuller index, and among indexes of as many
/// records the one written last (after an hour closed, its spans are others) wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub index: [u8; 20],
    pub records: u64,
    pub closed: u64,
}

/// The bits of `seq` that hold the closed hours (2^24 hours: beyond the year 3800).
const CLOSED_BITS: u32 = 24;

#[derive(Serialize, Deserialize)]
struct ItemWire {
    #[serde(with = "serde_bytes")]
    index: Vec<u8>,
    records: u64,
}

impl Item {
    /// The bencoded dictionary `d5:index20:<infohash>7:recordsi<n>ee`.
    pub fn encode(&self) -> Vec<u8> {
        serde_bencode::to_bytes(&ItemWire {
            index: self.index.to_vec(),
            records: self.records,
        })
        .expect("bencoding a plain struct cannot fail")
    }

    /// Reads an item from the DHT, its value `v` and `seq`: only the exact encoding
    /// [`Item::encode`] writes, with the `seq` [`Item::seq`] gives.
    pub fn decode(v: &[u8], seq: i64) -> Option<Self> {
        if v.len() > MAX_ITEM_BYTES {
            return None;
        }
        let w: ItemWire = crate::bencode::from_bytes(v).ok()?;
        let seq = u64::try_from(seq).ok()?;
        let item = Self {
            index: w.index.try_into().ok()?,
            records: w.records,
            closed: seq & ((1 << CLOSED_BITS) - 1),
        };
        (item.encode() == v && item.records == seq >> CLOSED_BITS).then_some(item)
    }

    /// Its BEP 44 `seq`, or `None` when the counts do not fit (2^39 records; 2^24 hours).
    pub fn seq(&self) -> Option<i64> {
        if self.closed >> CLOSED_BITS != 0 {
            return None;
        }
        let seq = self.records.checked_mul(1 << CLOSED_BITS)? | self.closed;
        i64::try_from(seq).ok()
    }
}

/// Should a node that wrote `ours` put it, when the newest item on the DHT is `seen`? Only
/// over an older one (a lower `seq`: fewer records, or as many written before an hour
/// closed), or to refresh the same: a node that is behind never replaces a fuller index.
pub fn should_put(ours: &Item, seen: Option<&Item>) -> bool {
    seen.is_none_or(|s| s.seq() < ours.seq() || s == ours)
}

/// The seed of the item's ed25519 key: SHA-256 of `cod archive item key\0` and the ledger
/// id's 20 bytes. Anyone who knows the ledger derives it — every node can publish and
/// republish with no setup, and so can anyone else (see `docs/security.md`).
pub fn item_seed(ledger: &CodId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cod archive item key\0");
    h.update(ledger.as_bytes());
    h.finalize().into()
}

/// What a node keeps of a span's records to tell, in one pass over them and in any order,
/// whether they changed since it wrote the span: how many, and the sums (mod 2^128) of the
/// two halves of their hashes. Only a cache key — the span's bytes are always written from
/// its records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub records: u64,
    sums: [u128; 2],
}

impl Tally {
    pub fn add(&mut self, hash: &[u8; 32]) {
        self.records += 1;
        for (sum, half) in self.sums.iter_mut().zip(hash.chunks_exact(16)) {
            let half = u128::from_be_bytes(half.try_into().expect("16 bytes"));
            *sum = sum.wrapping_add(half);
        }
    }

    /// SHA-256 of the count and the sums (what the node stores).
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.records.to_be_bytes());
        for sum in self.sums {
            h.update(sum.to_be_bytes());
        }
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> CodId {
        CodId::from_bytes([7; 20])
    }

    /// The blocks of `closed`, by walking every hour.
    fn blocks(closed: u64) -> Vec<Span> {
        let mut v: Vec<Span> = (0..closed).map(|h| span_of(h * HOUR, closed)).collect();
        v.dedup();
        v
    }

    #[test]
    fn closed_hours_split_into_aligned_blocks_one_per_bit() {
        for closed in 0..=300u64 {
            let b = blocks(closed);
            assert_eq!(b.len(), closed.count_ones() as usize, "closed {closed}");
            let mut next = 0;
            for s in &b {
                let to = s.to.unwrap();
                let size = to - s.from;
                assert_eq!(s.from, next, "contiguous");
                assert!(
                    size.is_power_of_two() && s.from % size == 0,
                    "{s:?} aligned"
                );
                next = to;
            }
            assert_eq!(next, closed, "they cover every closed hour");
            // Every hour from `closed` on is the open span.
            for h in closed..closed + 3 {
                assert_eq!(
                    span_of(h * HOUR + 59, closed),
                    Span {
                        from: closed,
                        to: None
                    }
                );
            }
        }
    }

    #[test]
    fn a_block_stays_until_a_carry_takes_it_in_whole() {
        // As hours close, a block is either still a block or lies inside a larger one: what
        // a swarm seeds is never cut in two.
        for closed in 1..=200u64 {
            for later in closed..=closed + 70 {
                let newer = blocks(later);
                for b in blocks(closed) {
                    let (from, to) = (b.from, b.to.unwrap());
                    assert!(
                        newer.iter().any(|n| n.from <= from && to <= n.to.unwrap()),
                        "{b:?} of {closed} is cut by {later}"
                    );
                }
            }
        }
        // Far in the future too (no overflow at the top bit).
        let top = u64::MAX / HOUR;
        assert_eq!(span_of(u64::MAX, top).to, None);
        assert!(span_of(0, top).to.unwrap() <= top);
    }

    #[test]
    fn parts_hold_at_most_the_limit_and_keep_the_order() {
        let m = MAX_SEGMENT_BYTES;
        assert!(parts(&[]).is_empty());
        assert_eq!(parts(&[1, 2, 3]), vec![0..3]);
        assert_eq!(parts(&[m, 1]), vec![0..1, 1..2]);
        assert_eq!(parts(&[m / 2, m / 2, 1]), vec![0..2, 2..3]);
        // A record larger than the limit (cannot happen) still goes, alone.
        assert_eq!(parts(&[1, m + 1, 1]), vec![0..1, 1..2, 2..3]);
        let sizes: Vec<u64> = (0..1000).map(|i| (i * 7919) % (m / 50) + 1).collect();
        let p = parts(&sizes);
        assert_eq!(p.first().unwrap().start, 0);
        assert_eq!(p.last().unwrap().end, sizes.len());
        for w in p.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for r in &p {
            assert!(sizes[r.clone()].iter().sum::<u64>() <= m);
        }
    }

    fn index() -> Index {
        Index {
            ledger: ledger(),
            segments: vec![
                Segment {
                    infohash: [1; 20],
                    records: 10,
                    bytes: 5000,
                    name: segment_name(
                        &ledger(),
                        Span {
                            from: 0,
                            to: Some(8),
                        },
                        0,
                    ),
                },
                Segment {
                    infohash: [2; 20],
                    records: 3,
                    bytes: 900,
                    name: segment_name(&ledger(), Span { from: 8, to: None }, 0),
                },
            ],
        }
    }

    #[test]
    fn an_index_reads_back_and_refuses_what_it_never_writes() {
        let i = index();
        let bytes = i.encode();
        assert_eq!(Index::decode(&bytes, &ledger()).unwrap(), i);
        assert_eq!(i.records(), 13);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let other = CodId::from_bytes([8; 20]);
        assert!(matches!(
            Index::decode(&bytes, &other),
            Err(IndexError::WrongLedger { .. })
        ));
        let bad = |t: String| Index::decode(t.as_bytes(), &ledger()).unwrap_err();
        assert_eq!(
            bad(text.replace("records 13", "records 14")),
            IndexError::Count
        );
        assert_eq!(
            bad(text.replace("records 13", "records 013")),
            IndexError::Line(3)
        );
        assert_eq!(
            bad(text.replacen("cod-archive-index 1", "x", 1)),
            IndexError::BadHeader
        );
        assert_eq!(bad(text.trim_end().to_string()), IndexError::Line(0));
        assert_eq!(
            bad(text.replace(" 10 5000 ", " 10 0 ")),
            IndexError::Line(4)
        );
        assert_eq!(
            bad(text.replace(" 10 5000 ", " 10 -1 ")),
            IndexError::Line(4)
        );
        assert_eq!(bad(text.replace(".archive\n", "/x\n")), IndexError::Line(4));
        assert_eq!(
            bad(text.replace(" 10 5000 ", " 10  5000 ")),
            IndexError::Line(4)
        );
        assert_eq!(bad(format!("{text}\n")), IndexError::Line(6));
        let upper = text.replace(&hex::encode([1u8; 20]), &"AB".repeat(20));
        assert_eq!(bad(upper), IndexError::Line(4), "upper case");
        let twice = text.replace(&hex::encode([2u8; 20]), &hex::encode([1u8; 20]));
        assert_eq!(bad(twice), IndexError::Line(5), "one segment listed twice");
        let huge = format!("{text}{}", "x".repeat(MAX_INDEX_BYTES as usize));
        assert_eq!(bad(huge), IndexError::TooLarge);
        // Counts that would overflow are refused, not wrapped.
        let max = u64::MAX.to_string();
        let over = text
            .replace(" 10 5000 ", &format!(" {max} 5000 "))
            .replace("records 13", &format!("records {}", 2u64));
        assert_eq!(bad(over), IndexError::Count);
        let many: String = (0..=MAX_INDEX_SEGMENTS)
            .map(|i| format!("{i:040x} 0 1 x{i}\n"))
            .collect();
        let many = format!("{INDEX_MAGIC}\nledger {}\nrecords 0\n{many}", ledger());
        assert_eq!(bad(many), IndexError::TooMany);
    }

    #[test]
    fn an_item_reads_back_only_in_its_one_encoding() {
        let item = Item {
            index: [9; 20],
            records: 1234,
            closed: 493_000,
        };
        let v = item.encode();
        let seq = item.seq().unwrap();
        assert!(v.len() < MAX_ITEM_BYTES);
        assert_eq!(seq, (1234 << 24) + 493_000);
        assert_eq!(Item::decode(&v, seq), Some(item.clone()));
        assert_eq!(
            Item::decode(&v, seq + (1 << 24)),
            None,
            "seq names other records"
        );
        assert_eq!(Item::decode(&v, -1), None);
        let mut short = v.clone();
        short.truncate(v.len() - 1);
        assert_eq!(Item::decode(&short, seq), None);
        let one = 1 << 24;
        assert_eq!(Item::decode(b"d5:index3:abc7:recordsi1ee", one), None);
        assert_eq!(
            Item::decode(b"d7:recordsi1e5:index20:aaaaaaaaaaaaaaaaaaaae", one),
            None
        );
        let padded = format!("d5:index20:{}7:recordsi01ee", "a".repeat(20));
        assert_eq!(Item::decode(padded.as_bytes(), one), None);
        let seq_of = |records, closed| {
            Item {
                index: [1; 20],
                records,
                closed,
            }
            .seq()
        };
        assert_eq!(seq_of(u64::MAX, 0), None);
        assert_eq!(seq_of(1 << 39, 0), None);
        assert_eq!(seq_of(1, 1 << 24), None);
        assert_eq!(seq_of((1 << 39) - 1, (1 << 24) - 1), Some(i64::MAX));
    }

    #[test]
    fn a_node_behind_never_puts_over_a_fuller_index() {
        let item = |index: u8, records, closed| Item {
            index: [index; 20],
            records,
            closed,
        };
        let ours = item(1, 10, 100);
        assert!(should_put(&ours, None));
        assert!(should_put(&ours, Some(&item(2, 9, 200))), "fewer records");
        assert!(should_put(&ours, Some(&item(2, 10, 99))), "written before");
        assert!(should_put(&ours, Some(&ours)), "the same item is refreshed");
        assert!(
            !should_put(&ours, Some(&item(2, 10, 100))),
            "as new, another"
        );
        assert!(!should_put(&ours, Some(&item(2, 10, 101))), "written after");
        assert!(!should_put(&ours, Some(&item(1, 11, 0))), "more records");
    }

    #[test]
    fn a_tally_sees_any_change_but_not_the_order() {
        let hashes: Vec<[u8; 32]> = (0..50u8).map(|i| Sha256::digest([i]).into()).collect();
        let tally = |hs: &[[u8; 32]]| {
            let mut t = Tally::default();
            hs.iter().for_each(|h| t.add(h));
            t
        };
        let all = tally(&hashes);
        let mut reversed = hashes.clone();
        reversed.reverse();
        assert_eq!(tally(&reversed), all);
        assert_eq!(tally(&reversed).digest(), all.digest());
        assert_eq!(all.records, 50);
        assert_ne!(tally(&hashes[1..]).digest(), all.digest());
        let mut other = hashes.clone();
        other[7][31] ^= 1;
        assert_ne!(tally(&other).digest(), all.digest());
        assert_ne!(Tally::default().digest(), all.digest());
    }

    #[test]
    fn the_item_key_is_the_ledgers_alone() {
        assert_eq!(item_seed(&ledger()), item_seed(&ledger()));
        assert_ne!(item_seed(&ledger()), item_seed(&CodId::from_bytes([8; 20])));
    }
}
