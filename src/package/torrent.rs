//! Single-file BitTorrent v1 metainfo (BEP 3): the cod id is the infohash of the package's.
//! Pure: bytes in, bytes out.

use crate::ids::CodId;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// Fixed piece length, so anyone holding a file recomputes the same infohash: 256 KiB.
pub const PIECE_LENGTH: u64 = 256 * 1024;

/// The `info` dictionary. Field order is bencode's sorted key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    pub length: u64,
    pub name: String,
    #[serde(rename = "piece length")]
    pub piece_length: u64,
    #[serde(with = "serde_bytes")]
    pub pieces: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MetaInfo {
    #[serde(rename = "created by")]
    created_by: String,
    info: Info,
}

impl Info {
    /// Hashes `data` into pieces; `progress` is told how many bytes are done after each piece.
    pub fn of(name: &str, data: &[u8], progress: &mut dyn FnMut(u64)) -> Self {
        let mut pieces = Vec::with_capacity(data.len().div_ceil(PIECE_LENGTH as usize) * 20);
        let mut done = 0u64;
        for chunk in data.chunks(PIECE_LENGTH as usize) {
            pieces.extend_from_slice(&Sha1::digest(chunk));
            done += chunk.len() as u64;
            progress(done);
        }
        Self {
            length: data.len() as u64,
            name: name.to_string(),
            piece_length: PIECE_LENGTH,
            pieces,
        }
    }

    /// The bencoded dictionary, whose SHA-1 is the infohash.
    pub fn bencode(&self) -> Vec<u8> {
        serde_bencode::to_bytes(self).expect("bencoding a plain struct cannot fail")
    }

    pub fn infohash(&self) -> CodId {
        CodId::from_bytes(Sha1::digest(self.bencode()).into())
    }

    pub fn piece_count(&self) -> usize {
        self.pieces.len() / 20
    }

    /// Does `piece` (index `i`) have the hash this metainfo promises?
    pub fn piece_ok(&self, i: usize, piece: &[u8]) -> bool {
        self.pieces
            .get(i * 20..i * 20 + 20)
            .is_some_and(|h| h == Sha1::digest(piece).as_slice())
    }

    /// A `.torrent` file: trackerless (peers come from the DHT), no creation date, so it
    /// is byte-identical for identical inputs.
    pub fn torrent_file(&self) -> Vec<u8> {
        let meta = MetaInfo {
            created_by: format!("cod {}", env!("CARGO_PKG_VERSION")),
            info: self.clone(),
        };
        serde_bencode::to_bytes(&meta).expect("bencoding a plain struct cannot fail")
    }

    /// Reads the `info` dictionary back from a `.torrent` file.
    pub fn from_torrent_file(bytes: &[u8]) -> Result<Self, String> {
        let meta: MetaInfo = serde_bencode::from_bytes(bytes)
            .map_err(|e| format!("not a cod .torrent file: {e}"))?;
        if !meta.info.pieces.len().is_multiple_of(20) || meta.info.piece_length == 0 {
            return Err("malformed info dictionary".into());
        }
        Ok(meta.info)
    }

    pub fn magnet(&self) -> String {
        magnet(&self.infohash(), &self.name, Some(self.length))
    }
}

/// `magnet:?xt=urn:btih:HEX&dn=NAME&xl=LENGTH` (BEP 9). Names cod makes are URL-safe.
pub fn magnet(infohash: &CodId, name: &str, length: Option<u64>) -> String {
    let mut m = format!("magnet:?xt=urn:btih:{infohash}&dn={name}");
    if let Some(l) = length {
        m.push_str(&format!("&xl={l}"));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infohash_vector() {
        // Independently computed with Python (hashlib + a hand-written bencode), see docs/formats.md.
        let data = vec![7u8; 300_000];
        let info = Info::of("x.bin", &data, &mut |_| {});
        assert_eq!(info.piece_count(), 2);
        assert!(
            info.bencode()
                .starts_with(b"d6:lengthi300000e4:name5:x.bin12:piece lengthi262144e6:pieces40:")
        );
        assert_eq!(
            info.infohash().to_string(),
            "675dfeb9e252d53f8d4c794073dc2e2ce9fb7061"
        );
        assert!(info.piece_ok(1, &data[PIECE_LENGTH as usize..]));
        assert!(!info.piece_ok(1, &data[..10]));
        let back = Info::from_torrent_file(&info.torrent_file()).unwrap();
        assert_eq!(back, info);
        assert!(info.magnet().starts_with(&format!(
            "magnet:?xt=urn:btih:{}&dn=x.bin&xl=300000",
            info.infohash()
        )));
    }

    #[test]
    fn progress_reports_every_piece() {
        let mut seen = Vec::new();
        Info::of("y", &vec![0u8; (PIECE_LENGTH * 2 + 1) as usize], &mut |n| {
            seen.push(n)
        });
        assert_eq!(seen, [PIECE_LENGTH, PIECE_LENGTH * 2, PIECE_LENGTH * 2 + 1]);
    }
}
