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

/// What a magnet link names (BEP 9): the infohash, and perhaps a name, a length and peer
/// addresses (`x.pe`). Trackers (`tr`) are ignored: cod finds peers on the DHT. A bare
/// infohash (40 hex digits, or 32 base32 characters) is accepted too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    pub infohash: CodId,
    pub name: Option<String>,
    pub length: Option<u64>,
    pub peers: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MagnetError {
    #[error("not a magnet link (magnet:?xt=urn:btih:…) nor an infohash: {0:?}")]
    NotMagnet(String),
    #[error("the magnet link names no BitTorrent infohash (xt=urn:btih:…)")]
    NoInfohash,
    #[error("the magnet link names two different infohashes")]
    TwoInfohashes,
    #[error("bad infohash {0:?}: 40 hex digits or 32 base32 characters expected")]
    BadInfohash(String),
    #[error("bad length (xl) {0:?}")]
    BadLength(String),
    #[error("the magnet link names more than {MAX_MAGNET_PEERS} peers (x.pe)")]
    TooManyPeers,
}

/// Peers (`x.pe`) one magnet link may name.
pub const MAX_MAGNET_PEERS: usize = 64;

impl std::str::FromStr for Magnet {
    type Err = MagnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let not_magnet = || MagnetError::NotMagnet(s.chars().take(80).collect());
        if !s
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
        {
            return btih(s)
                .map(|infohash| Magnet {
                    infohash,
                    name: None,
                    length: None,
                    peers: Vec::new(),
                })
                .map_err(|_| not_magnet());
        }
        let url = url::Url::parse(s).map_err(|_| not_magnet())?;
        let (mut infohash, mut name, mut length, mut peers) = (None, None, None, Vec::new());
        for (k, v) in url.query_pairs() {
            match &*k {
                "xt" => {
                    // Other kinds of xt (e.g. BitTorrent v2's btmh) are not for cod.
                    if let Some(h) = v.strip_prefix("urn:btih:") {
                        let h = btih(h)?;
                        if infohash.is_some_and(|x| x != h) {
                            return Err(MagnetError::TwoInfohashes);
                        }
                        infohash = Some(h);
                    }
                }
                "dn" => name = Some(v.into_owned()),
                "xl" => {
                    length = Some(
                        v.parse()
                            .map_err(|_| MagnetError::BadLength(v.into_owned()))?,
                    )
                }
                "x.pe" if peers.len() >= MAX_MAGNET_PEERS => {
                    return Err(MagnetError::TooManyPeers);
                }
                "x.pe" => peers.push(v.into_owned()),
                _ => {}
            }
        }
        Ok(Magnet {
            infohash: infohash.ok_or(MagnetError::NoInfohash)?,
            name,
            length,
            peers,
        })
    }
}

fn btih(s: &str) -> Result<CodId, MagnetError> {
    let bad = || MagnetError::BadInfohash(s.chars().take(80).collect());
    let bytes: [u8; 20] = match s.len() {
        40 => s.parse::<CodId>().map_err(|_| bad())?.as_bytes().to_owned(),
        32 => data_encoding::BASE32
            .decode(s.to_ascii_uppercase().as_bytes())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    Ok(CodId::from_bytes(bytes))
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

    #[test]
    fn magnet_links_parse_and_bad_ones_say_why() {
        let h = "675dfeb9e252d53f8d4c794073dc2e2ce9fb7061";
        let m: Magnet = format!("magnet:?xt=urn:btih:{h}&dn=a%20b.cod.tar&xl=12&x.pe=127.0.0.1:6881&tr=udp://t:1&x.pe=[::1]:7")
            .parse()
            .unwrap();
        assert_eq!(m.infohash.to_string(), h);
        assert_eq!(m.name.as_deref(), Some("a b.cod.tar"));
        assert_eq!(m.length, Some(12));
        assert_eq!(m.peers, ["127.0.0.1:6881", "[::1]:7"]);
        // The same infohash in base32 (RFC 4648), as some clients write it; and bare.
        let b32 = data_encoding::BASE32.encode(&hex::decode(h).unwrap());
        assert_eq!(b32.len(), 32);
        for form in [
            format!("magnet:?xt=urn:btih:{}", b32.to_lowercase()),
            h.to_uppercase(),
            b32.clone(),
            format!(" {h}\n"),
            format!("MAGNET:?xt=urn:btih:{h}"),
        ] {
            let m: Magnet = form.parse().unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(m.infohash.to_string(), h, "{form}");
        }
        let bad = |s: &str| s.parse::<Magnet>().unwrap_err();
        assert!(matches!(
            bad("http://example.com/x"),
            MagnetError::NotMagnet(_)
        ));
        assert!(matches!(bad("675dfeb9"), MagnetError::NotMagnet(_)));
        assert_eq!(bad("magnet:?dn=x"), MagnetError::NoInfohash);
        assert!(matches!(
            bad("magnet:?xt=urn:btih:zz"),
            MagnetError::BadInfohash(_)
        ));
        assert!(matches!(
            bad(&format!("magnet:?xt=urn:btih:{h}&xl=-1")),
            MagnetError::BadLength(_)
        ));
        let many = (0..=MAX_MAGNET_PEERS)
            .map(|i| format!("&x.pe=127.0.0.1:{i}"))
            .collect::<String>();
        assert_eq!(
            bad(&format!("magnet:?xt=urn:btih:{h}{many}")),
            MagnetError::TooManyPeers
        );
        let other = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            bad(&format!("magnet:?xt=urn:btih:{h}&xt=urn:btih:{other}")),
            MagnetError::TwoInfohashes
        );
        // What cod makes, cod reads.
        let info = Info::of("x.bin", &[1, 2, 3], &mut |_| {});
        let m: Magnet = info.magnet().parse().unwrap();
        assert_eq!((m.infohash, m.length), (info.infohash(), Some(3)));
    }
}
