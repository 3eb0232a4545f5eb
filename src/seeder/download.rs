//! Downloading one file from one peer, as pure state machines: first its metadata (BEP 9),
//! then its pieces (BEP 3). The async driver in [`super::fetch`] only moves bytes; every
//! decision about what a peer sent is taken here, where it is tested without sockets.
//!
//! What a peer sends is untrusted: a block must answer a request this side made and still
//! waits for (the exact index, offset and length), each piece is checked against its SHA-1
//! once complete, and the file is done only when *every* piece has been checked — never
//! because enough bytes arrived.

use super::wire::BLOCK;
use crate::package::Info;
use sha1::{Digest, Sha1};

/// Longest metadata (bencoded `info` dictionary) accepted: a 1 GiB package at 256 KiB per
/// piece needs 80 KB of piece hashes.
pub const MAX_METADATA: usize = 1 << 24;
/// Largest piece accepted (cod's own pieces are 256 KiB).
pub const MAX_PIECE_LENGTH: u64 = 1 << 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DownloadError {
    #[error("the peer offers metadata of {0} bytes (at most {MAX_METADATA} accepted)")]
    MetadataSize(i64),
    #[error("metadata piece {0} was not asked for, or came twice")]
    UnrequestedMetadata(i64),
    #[error("metadata piece {0} has the wrong length")]
    MetadataLength(i64),
    #[error("the metadata does not match the infohash")]
    MetadataHash,
    #[error("implausible metadata: {0}")]
    Implausible(String),
    #[error("block {index}/{begin}/{length} was not asked for, or came twice")]
    Unrequested { index: u32, begin: u32, length: u32 },
    #[error("piece {0} failed its hash check")]
    PieceHash(u32),
}

/// The metadata exchange: how many pieces, which arrived.
#[derive(Debug)]
pub struct Metadata {
    infohash: [u8; 20],
    bytes: Vec<u8>,
    got: Vec<bool>,
}

impl Metadata {
    /// For metadata of `size` bytes, as the peer's extension handshake claims.
    pub fn new(infohash: [u8; 20], size: i64) -> Result<Self, DownloadError> {
        let n = usize::try_from(size)
            .ok()
            .filter(|n| (1..=MAX_METADATA).contains(n))
            .ok_or(DownloadError::MetadataSize(size))?;
        Ok(Self {
            infohash,
            bytes: vec![0; n],
            got: vec![false; n.div_ceil(BLOCK as usize)],
        })
    }

    /// The pieces to request (all of them; they are few).
    pub fn pieces(&self) -> std::ops::Range<i64> {
        0..self.got.len() as i64
    }

    /// A data message for `piece`: stored if it was wanted and has exactly its length.
    pub fn on_data(&mut self, piece: i64, data: &[u8]) -> Result<(), DownloadError> {
        let range = super::wire::metadata_piece(piece, self.bytes.len())
            .ok_or(DownloadError::UnrequestedMetadata(piece))?;
        let slot = &mut self.got[range.start / BLOCK as usize];
        if *slot {
            return Err(DownloadError::UnrequestedMetadata(piece));
        }
        if data.len() != range.len() {
            return Err(DownloadError::MetadataLength(piece));
        }
        self.bytes[range].copy_from_slice(data);
        *slot = true;
        Ok(())
    }

    pub fn complete(&self) -> bool {
        self.got.iter().all(|g| *g)
    }

    /// The `info` dictionary, once every piece arrived and it hashes to the infohash.
    pub fn finish(self) -> Result<Info, DownloadError> {
        if !self.complete() || Sha1::digest(&self.bytes).as_slice() != self.infohash {
            return Err(DownloadError::MetadataHash);
        }
        let info: Info = crate::bencode::from_bytes(&self.bytes)
            .map_err(|e| DownloadError::Implausible(e.to_string()))?;
        plausible(&info)?;
        Ok(info)
    }
}

/// Checks what an `info` dictionary promises before anything is allocated for it.
pub fn plausible(info: &Info) -> Result<(), DownloadError> {
    let bad = |why: &str| Err(DownloadError::Implausible(why.into()));
    if info.piece_length == 0 || info.piece_length > MAX_PIECE_LENGTH {
        return bad("piece length");
    }
    if info.length == 0 || info.length > crate::package::MAX_PACKAGE_BYTES {
        return bad("file length");
    }
    let pieces = info.length.div_ceil(info.piece_length);
    if Some(info.pieces.len() as u64) != pieces.checked_mul(20) {
        return bad("piece hashes do not match the length");
    }
    if info.name.is_empty() || info.name.starts_with('.') || info.name.contains(['/', '\\', '\0']) {
        return bad("the file's name is not a plain file name");
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Wanted,
    Requested,
    Received,
}

/// A block request: (piece index, offset in the piece, length).
pub type Request = (u32, u32, u32);

/// The pieces of one file.
#[derive(Debug)]
pub struct Pieces {
    info: Info,
    data: Vec<u8>,
    /// Every block of the file, in order, with its state.
    blocks: Vec<(Request, Block)>,
    /// Index into `blocks` of each piece's first block.
    first_block: Vec<usize>,
    /// Blocks still to arrive, per piece.
    missing: Vec<u32>,
    next: usize,
    outstanding: usize,
    verified: usize,
    verified_bytes: u64,
}

impl Pieces {
    pub fn new(info: Info) -> Result<Self, DownloadError> {
        plausible(&info)?;
        let count = info.piece_count();
        let (mut blocks, mut first_block, mut missing) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..count {
            let plen = piece_len(&info, i);
            first_block.push(blocks.len());
            let n = plen.div_ceil(BLOCK as u64);
            missing.push(n as u32);
            for b in 0..n {
                let begin = b * BLOCK as u64;
                let len = (BLOCK as u64).min(plen - begin);
                blocks.push(((i as u32, begin as u32, len as u32), Block::Wanted));
            }
        }
        Ok(Self {
            data: vec![0; info.length as usize],
            info,
            blocks,
            first_block,
            missing,
            next: 0,
            outstanding: 0,
            verified: 0,
            verified_bytes: 0,
        })
    }

    /// Requests to send now so that at most `window` are outstanding.
    pub fn requests(&mut self, window: usize) -> Vec<Request> {
        let mut out = Vec::new();
        while self.outstanding < window && self.next < self.blocks.len() {
            let (req, state) = &mut self.blocks[self.next];
            *state = Block::Requested;
            out.push(*req);
            self.next += 1;
            self.outstanding += 1;
        }
        out
    }

    /// A block arrived. It must answer an outstanding request exactly; a piece it completes
    /// is checked against its hash.
    pub fn on_block(&mut self, index: u32, begin: u32, block: &[u8]) -> Result<(), DownloadError> {
        let unrequested = DownloadError::Unrequested {
            index,
            begin,
            length: u32::try_from(block.len()).unwrap_or(u32::MAX),
        };
        let Some(&first) = self.first_block.get(index as usize) else {
            return Err(unrequested);
        };
        let slot = first + (begin / BLOCK) as usize;
        match self.blocks.get(slot) {
            Some(((i, b, l), Block::Requested))
                if (*i, *b) == (index, begin) && *l as usize == block.len() => {}
            _ => return Err(unrequested),
        }
        self.blocks[slot].1 = Block::Received;
        self.outstanding -= 1;
        let start = index as usize * self.info.piece_length as usize + begin as usize;
        self.data[start..start + block.len()].copy_from_slice(block);
        let missing = &mut self.missing[index as usize];
        *missing -= 1;
        if *missing == 0 {
            let plen = piece_len(&self.info, index as usize) as usize;
            let p0 = index as usize * self.info.piece_length as usize;
            if !self
                .info
                .piece_ok(index as usize, &self.data[p0..p0 + plen])
            {
                return Err(DownloadError::PieceHash(index));
            }
            self.verified += 1;
            self.verified_bytes += plen as u64;
        }
        Ok(())
    }

    /// Bytes in pieces whose hash checked.
    pub fn verified_bytes(&self) -> u64 {
        self.verified_bytes
    }

    pub fn info(&self) -> &Info {
        &self.info
    }

    /// Every piece arrived and checked.
    pub fn done(&self) -> bool {
        self.verified == self.info.piece_count()
    }

    /// The file, when [`Pieces::done`].
    pub fn finish(self) -> Option<(Info, Vec<u8>)> {
        self.done().then_some((self.info, self.data))
    }
}

/// Length of piece `i` (the last one may be short).
fn piece_len(info: &Info, i: usize) -> u64 {
    info.piece_length
        .min(info.length - i as u64 * info.piece_length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: usize) -> (Info, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        (Info::of("f.bin", &data, &mut |_| {}), data)
    }

    fn block(data: &[u8], info: &Info, (i, b, l): Request) -> Vec<u8> {
        let at = i as usize * info.piece_length as usize + b as usize;
        data[at..at + l as usize].to_vec()
    }

    #[test]
    fn every_piece_is_checked_before_the_file_is_done() {
        let (info, data) = file(600_000); // 3 pieces, the last short
        let mut p = Pieces::new(info.clone()).unwrap();
        let mut reqs = Vec::new();
        loop {
            let r = p.requests(16);
            if r.is_empty() {
                break;
            }
            for q in r {
                reqs.push(q);
                p.on_block(q.0, q.1, &block(&data, &info, q)).unwrap();
            }
        }
        assert!(p.done());
        assert_eq!(p.verified_bytes(), data.len() as u64);
        assert_eq!(p.finish().unwrap().1, data);
        // Pieces of 256 KiB, 256 KiB and 75,712 bytes: 16 + 16 + 5 blocks.
        assert_eq!(reqs.len(), 37);
    }

    #[test]
    fn duplicate_unrequested_and_out_of_range_blocks_are_refused() {
        let (info, data) = file(300_000);
        let mut p = Pieces::new(info.clone()).unwrap();
        let first = p.requests(2);
        let q = first[0];
        // Not yet requested (the window is 2), beyond the file, a wrong length, a shifted offset.
        let later = (0u32, 2 * BLOCK, BLOCK);
        for (i, b, bytes) in [
            (later.0, later.1, block(&data, &info, later)),
            (9, 0, vec![0; BLOCK as usize]),
            (u32::MAX, u32::MAX, vec![0; 1]),
            (q.0, q.1, vec![0; 10]),
            (q.0, q.1 + 1, vec![0; BLOCK as usize]),
        ] {
            assert!(
                matches!(
                    p.on_block(i, b, &bytes),
                    Err(DownloadError::Unrequested { .. })
                ),
                "{i}/{b}"
            );
        }
        p.on_block(q.0, q.1, &block(&data, &info, q)).unwrap();
        assert!(
            matches!(
                p.on_block(q.0, q.1, &block(&data, &info, q)),
                Err(DownloadError::Unrequested { .. })
            ),
            "a block counts once"
        );
        assert!(!p.done());
        assert_eq!(p.verified_bytes(), 0);
        assert!(p.finish().is_none(), "no file without every piece checked");
    }

    #[test]
    fn a_bad_piece_fails_its_hash() {
        let (info, data) = file(20_000);
        let mut p = Pieces::new(info.clone()).unwrap();
        let reqs = p.requests(16);
        assert_eq!(reqs.len(), 2);
        p.on_block(0, 0, &block(&data, &info, reqs[0])).unwrap();
        let mut wrong = block(&data, &info, reqs[1]);
        wrong[0] ^= 1;
        assert_eq!(
            p.on_block(0, BLOCK, &wrong),
            Err(DownloadError::PieceHash(0))
        );
        assert!(!p.done());
    }

    #[test]
    fn metadata_pieces_once_each_and_hash_checked() {
        let (info, _) = file(1000);
        let bytes = info.bencode();
        let id: [u8; 20] = *info.infohash().as_bytes();
        let mut m = Metadata::new(id, bytes.len() as i64).unwrap();
        assert_eq!(m.pieces(), 0..1);
        for bad in [-1, 1, 1 << 62] {
            assert_eq!(
                m.on_data(bad, &bytes),
                Err(DownloadError::UnrequestedMetadata(bad))
            );
        }
        assert_eq!(
            m.on_data(0, &bytes[1..]),
            Err(DownloadError::MetadataLength(0))
        );
        m.on_data(0, &bytes).unwrap();
        assert_eq!(
            m.on_data(0, &bytes),
            Err(DownloadError::UnrequestedMetadata(0))
        );
        assert_eq!(m.finish().unwrap(), info);

        let mut wrong = Metadata::new([0; 20], bytes.len() as i64).unwrap();
        wrong.on_data(0, &bytes).unwrap();
        assert_eq!(wrong.finish(), Err(DownloadError::MetadataHash));
        let incomplete = Metadata::new(id, bytes.len() as i64).unwrap();
        assert_eq!(incomplete.finish(), Err(DownloadError::MetadataHash));
        for size in [0, -1, (MAX_METADATA + 1) as i64, i64::MAX] {
            assert!(Metadata::new(id, size).is_err(), "{size}");
        }
    }

    #[test]
    fn implausible_metadata_is_refused_before_allocating() {
        let (info, _) = file(1000);
        let cases = [
            Info {
                piece_length: 0,
                ..info.clone()
            },
            Info {
                length: 1 << 62,
                ..info.clone()
            },
            Info {
                pieces: vec![0; 40],
                ..info.clone()
            },
            Info {
                name: "../x".into(),
                ..info.clone()
            },
            Info {
                piece_length: u64::MAX,
                ..info.clone()
            },
        ];
        for bad in cases {
            assert!(Pieces::new(bad.clone()).is_err(), "{bad:?}");
        }
    }
}
