//! The BitTorrent peer wire protocol, the part cod speaks: the handshake and messages of
//! BEP 3, the extension protocol of BEP 10 and metadata exchange (`ut_metadata`) of BEP 9.
//! Pure: bytes in, bytes out.

use crate::bencode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
pub const HANDSHAKE_LEN: usize = 68;
/// The block size clients request (and the ut_metadata piece size).
pub const BLOCK: u32 = 16 * 1024;
/// Largest block cod serves in one piece message.
pub const MAX_BLOCK: u32 = 128 * 1024;
/// Largest message accepted (a piece message with the largest block, or a bitfield).
pub const MAX_MESSAGE: usize = MAX_BLOCK as usize + 64;
/// The extended message id cod asks peers to use for ut_metadata.
pub const UT_METADATA: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("not a BitTorrent handshake")]
    NotBitTorrent,
    #[error("message of {0} bytes is larger than allowed")]
    TooLarge(usize),
    #[error("malformed {0} message")]
    Malformed(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub infohash: [u8; 20],
    pub peer_id: [u8; 20],
    /// The peer speaks the extension protocol (BEP 10).
    pub extensions: bool,
}

impl Handshake {
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut b = [0u8; HANDSHAKE_LEN];
        b[0] = 19;
        b[1..20].copy_from_slice(PROTOCOL);
        if self.extensions {
            b[20 + 5] |= 0x10;
        }
        b[28..48].copy_from_slice(&self.infohash);
        b[48..68].copy_from_slice(&self.peer_id);
        b
    }

    pub fn decode(b: &[u8; HANDSHAKE_LEN]) -> Result<Self, WireError> {
        if b[0] != 19 || &b[1..20] != PROTOCOL {
            return Err(WireError::NotBitTorrent);
        }
        Ok(Self {
            infohash: b[28..48].try_into().expect("20 bytes"),
            peer_id: b[48..68].try_into().expect("20 bytes"),
            extensions: b[25] & 0x10 != 0,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(Vec<u8>),
    Request {
        index: u32,
        begin: u32,
        length: u32,
    },
    Piece {
        index: u32,
        begin: u32,
        block: Vec<u8>,
    },
    Cancel {
        index: u32,
        begin: u32,
        length: u32,
    },
    /// BEP 10: extended message `id` (0: the extension handshake).
    Extended {
        id: u8,
        payload: Vec<u8>,
    },
    /// A message id cod does not use (ignored).
    Other(u8),
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes(s.try_into().expect("4 bytes")))
}

impl Message {
    /// The message with its 4-byte length prefix.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let ints = |body: &mut Vec<u8>, id: u8, v: &[u32]| {
            body.push(id);
            for x in v {
                body.extend_from_slice(&x.to_be_bytes());
            }
        };
        match self {
            Message::KeepAlive => {}
            Message::Choke => body.push(0),
            Message::Unchoke => body.push(1),
            Message::Interested => body.push(2),
            Message::NotInterested => body.push(3),
            Message::Have(i) => ints(&mut body, 4, &[*i]),
            Message::Bitfield(b) => {
                body.push(5);
                body.extend_from_slice(b);
            }
            Message::Request {
                index,
                begin,
                length,
            } => ints(&mut body, 6, &[*index, *begin, *length]),
            Message::Piece {
                index,
                begin,
                block,
            } => {
                ints(&mut body, 7, &[*index, *begin]);
                body.extend_from_slice(block);
            }
            Message::Cancel {
                index,
                begin,
                length,
            } => ints(&mut body, 8, &[*index, *begin, *length]),
            Message::Extended { id, payload } => {
                body.push(20);
                body.push(*id);
                body.extend_from_slice(payload);
            }
            Message::Other(id) => body.push(*id),
        }
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a message body (after its length prefix).
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let Some((&id, rest)) = body.split_first() else {
            return Ok(Message::KeepAlive);
        };
        let three = |name| -> Result<(u32, u32, u32), WireError> {
            match (u32_at(rest, 0), u32_at(rest, 4), u32_at(rest, 8)) {
                (Some(a), Some(b), Some(c)) if rest.len() == 12 => Ok((a, b, c)),
                _ => Err(WireError::Malformed(name)),
            }
        };
        Ok(match id {
            0 => Message::Choke,
            1 => Message::Unchoke,
            2 => Message::Interested,
            3 => Message::NotInterested,
            4 => Message::Have(
                u32_at(rest, 0)
                    .filter(|_| rest.len() == 4)
                    .ok_or(WireError::Malformed("have"))?,
            ),
            5 => Message::Bitfield(rest.to_vec()),
            6 => {
                let (index, begin, length) = three("request")?;
                Message::Request {
                    index,
                    begin,
                    length,
                }
            }
            7 => {
                let (index, begin) = (u32_at(rest, 0), u32_at(rest, 4));
                let (Some(index), Some(begin)) = (index, begin) else {
                    return Err(WireError::Malformed("piece"));
                };
                Message::Piece {
                    index,
                    begin,
                    block: rest[8..].to_vec(),
                }
            }
            8 => {
                let (index, begin, length) = three("cancel")?;
                Message::Cancel {
                    index,
                    begin,
                    length,
                }
            }
            20 => {
                let (&ext, payload) = rest.split_first().ok_or(WireError::Malformed("extended"))?;
                Message::Extended {
                    id: ext,
                    payload: payload.to_vec(),
                }
            }
            other => Message::Other(other),
        })
    }
}

/// The BEP 10 extension handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtHandshake {
    #[serde(default)]
    pub m: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
}

/// A BEP 9 `ut_metadata` message's dictionary (a `data` message has the piece after it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataMsg {
    pub msg_type: i64,
    pub piece: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size: Option<i64>,
}

pub const META_REQUEST: i64 = 0;
pub const META_DATA: i64 = 1;
pub const META_REJECT: i64 = 2;

/// Splits a ut_metadata message into its dictionary and trailing data.
pub fn decode_metadata_msg(payload: &[u8]) -> Result<(MetadataMsg, &[u8]), WireError> {
    let n = bencode::value_len(payload).ok_or(WireError::Malformed("ut_metadata"))?;
    let msg =
        bencode::from_bytes(&payload[..n]).map_err(|_| WireError::Malformed("ut_metadata"))?;
    Ok((msg, &payload[n..]))
}

/// Decodes a BEP 10 extension handshake (depth-limited; see [`crate::bencode`]).
pub fn decode_ext_handshake(payload: &[u8]) -> Result<ExtHandshake, WireError> {
    bencode::from_bytes(payload).map_err(|_| WireError::Malformed("extension handshake"))
}

/// The bytes of metadata piece `piece` (BEP 9: 16 KiB each) of metadata `total` bytes long,
/// if there is such a piece.
pub fn metadata_piece(piece: i64, total: usize) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(piece).ok()?.checked_mul(BLOCK as usize)?;
    (start < total).then(|| start..(start + BLOCK as usize).min(total))
}

pub fn encode_metadata_msg(msg: &MetadataMsg, data: &[u8]) -> Vec<u8> {
    let mut out = serde_bencode::to_bytes(msg).expect("plain struct");
    out.extend_from_slice(data);
    out
}

/// A bitfield with all `pieces` set (a seeder's).
pub fn full_bitfield(pieces: usize) -> Vec<u8> {
    let mut b = vec![0xffu8; pieces.div_ceil(8)];
    let spare = b.len() * 8 - pieces;
    if let Some(last) = b.last_mut() {
        *last &= 0xffu8 << spare;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_round_trip_and_refusal() {
        let h = Handshake {
            infohash: [7; 20],
            peer_id: *b"-CD0100-abcdefghijkl",
            extensions: true,
        };
        let b = h.encode();
        assert_eq!(&b[..20], b"\x13BitTorrent protocol");
        assert_eq!(b[25], 0x10);
        assert_eq!(Handshake::decode(&b).unwrap(), h);
        let mut bad = b;
        bad[3] = b'X';
        assert_eq!(Handshake::decode(&bad), Err(WireError::NotBitTorrent));
    }

    #[test]
    fn messages_round_trip() {
        for m in [
            Message::KeepAlive,
            Message::Unchoke,
            Message::Interested,
            Message::Have(9),
            Message::Bitfield(vec![0xff, 0xc0]),
            Message::Request {
                index: 1,
                begin: 16384,
                length: 16384,
            },
            Message::Piece {
                index: 2,
                begin: 0,
                block: vec![1, 2, 3],
            },
            Message::Extended {
                id: 0,
                payload: b"de".to_vec(),
            },
        ] {
            let bytes = m.encode();
            let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
            assert_eq!(len, bytes.len() - 4);
            assert_eq!(Message::decode(&bytes[4..]).unwrap(), m);
        }
        assert_eq!(
            Message::decode(&[6, 0, 0]),
            Err(WireError::Malformed("request"))
        );
    }

    #[test]
    fn metadata_messages_and_bencode_length() {
        let m = MetadataMsg {
            msg_type: META_DATA,
            piece: 0,
            total_size: Some(3),
        };
        let payload = encode_metadata_msg(&m, b"abc");
        let (back, data) = decode_metadata_msg(&payload).unwrap();
        assert_eq!((back, data), (m, b"abc".as_slice()));
        assert!(decode_metadata_msg(b"d8:msg_typei1e5:piecei0ee").is_ok());
        assert!(decode_metadata_msg(b"d8:msg_typei1e5:piece").is_err());
        assert_eq!(full_bitfield(10), vec![0xff, 0xc0]);
        assert_eq!(full_bitfield(8), vec![0xff]);
        let hs = ExtHandshake {
            m: [("ut_metadata".to_string(), 1)].into(),
            metadata_size: Some(120),
            v: Some("cod".into()),
        };
        let bytes = serde_bencode::to_bytes(&hs).unwrap();
        assert_eq!(decode_ext_handshake(&bytes).unwrap(), hs);
        let mut deep = b"d1:x".to_vec();
        deep.extend(std::iter::repeat_n(b'l', 10_000));
        deep.extend(std::iter::repeat_n(b'e', 10_000));
        deep.push(b'e');
        assert!(
            decode_ext_handshake(&deep).is_err(),
            "refused, not a stack overflow"
        );
    }

    #[test]
    fn metadata_pieces_are_in_range() {
        let b = BLOCK as usize;
        assert_eq!(metadata_piece(0, 100), Some(0..100));
        assert_eq!(metadata_piece(1, b + 5), Some(b..b + 5));
        assert_eq!(metadata_piece(1, b), None);
        assert_eq!(metadata_piece(-5, 100), None, "not piece 0");
        assert_eq!(metadata_piece(1 << 62, 100), None);
        assert_eq!(metadata_piece(i64::MAX, usize::MAX), None);
    }
}
