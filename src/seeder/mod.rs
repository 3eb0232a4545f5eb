//! Offering and fetching whole files over the BitTorrent peer wire (MISSION.md "Node
//! discovery" 2): a node seeds its package, com.ini and cod.ini (and packages it downloaded)
//! on the port it announces in the DHT, sharing it with the cod API — a connection that
//! starts with the BitTorrent handshake's byte 19 is peer wire, anything else is HTTP. Any
//! standard client can download them by magnet link (BEP 9/10 metadata exchange).
//!
//! cod implements only what seeding and fetching a finished file needs (a seeder never
//! chokes and always has every piece) rather than a full client library, because the port
//! has to be shared with the API and the files are few and small.

pub mod download;
pub mod wire;

use crate::lock::ReadWrite;
use crate::package::Info;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wire::{
    ExtHandshake, HANDSHAKE_LEN, Handshake, MAX_BLOCK, MAX_MESSAGE, Message, MetadataMsg,
    UT_METADATA, WireError,
};

/// Peer id prefix (Azureus style): `-CD0100-` for cod 0.1.
pub fn peer_id() -> [u8; 20] {
    let mut id = *b"-CD0100-000000000000";
    rand::Rng::fill(&mut rand::thread_rng(), &mut id[8..]);
    id
}

/// A file this node offers.
pub struct Offered {
    pub info: Info,
    /// The bencoded `info` dictionary (what ut_metadata sends).
    pub info_bytes: Vec<u8>,
    pub path: PathBuf,
}

/// The files a node seeds, by infohash.
#[derive(Default)]
pub struct Library {
    files: std::sync::RwLock<HashMap<[u8; 20], Arc<Offered>>>,
}

impl Library {
    /// Offers a file (its torrent metainfo is computed from it).
    pub fn offer(&self, name: &str, path: PathBuf) -> std::io::Result<[u8; 20]> {
        let data = std::fs::read(&path)?;
        Ok(self.offer_info(Info::of(name, &data, &mut |_| {}), path))
    }

    /// Offers the file at `path`, whose metainfo the caller computed from its bytes.
    pub fn offer_info(&self, info: Info, path: PathBuf) -> [u8; 20] {
        let id = *info.infohash().as_bytes();
        let info_bytes = info.bencode();
        self.files.write_locked().insert(
            id,
            Arc::new(Offered {
                info,
                info_bytes,
                path,
            }),
        );
        id
    }

    /// Offers the file no more.
    pub fn withdraw(&self, infohash: &[u8; 20]) {
        self.files.write_locked().remove(infohash);
    }

    pub fn get(&self, infohash: &[u8; 20]) -> Option<Arc<Offered>> {
        self.files.read_locked().get(infohash).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("the peer does not offer this file")]
    NotOffered,
    #[error("{0}")]
    Protocol(String),
    #[error(transparent)]
    Download(#[from] download::DownloadError),
}

impl PeerError {
    /// Did the peer break the protocol (rather than time out or hang up)?
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            PeerError::Wire(_)
                | PeerError::NotOffered
                | PeerError::Protocol(_)
                | PeerError::Download(_)
        )
    }
}

async fn timed<T>(
    secs: u64,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, PeerError> {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .map_err(|_| PeerError::Timeout)?
        .map_err(PeerError::Io)
}

async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    idle_secs: u64,
) -> Result<Message, PeerError> {
    let mut len = [0u8; 4];
    timed(idle_secs, r.read_exact(&mut len)).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(WireError::TooLarge(len).into());
    }
    let mut body = vec![0u8; len];
    timed(30, r.read_exact(&mut body)).await?;
    Ok(Message::decode(&body)?)
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, m: &Message) -> Result<(), PeerError> {
    timed(30, w.write_all(&m.encode())).await
}

/// A peer-wire connection with nothing asked for this long is closed.
pub const IDLE_SECS: u64 = 30;
/// Times over one connection may download the file it asked for.
pub const UPLOADS_PER_CONNECTION: u64 = 4;

/// Where block `index`/`begin`/`length` starts in the file, if it lies inside one piece of it
/// and is no longer than [`MAX_BLOCK`].
fn block_offset(info: &Info, index: u32, begin: u32, length: u32) -> Option<u64> {
    let piece_start = u64::from(index).checked_mul(info.piece_length)?;
    if piece_start >= info.length || length == 0 || length > MAX_BLOCK {
        return None;
    }
    let this_piece = info.piece_length.min(info.length - piece_start);
    let end = u64::from(begin) + u64::from(length);
    (end <= this_piece).then_some(piece_start + u64::from(begin))
}

/// Serves one peer-wire connection (its first byte already told it is BitTorrent).
pub async fn serve(
    mut stream: TcpStream,
    library: Arc<Library>,
    our_id: [u8; 20],
) -> Result<(), PeerError> {
    let mut hs = [0u8; HANDSHAKE_LEN];
    timed(10, stream.read_exact(&mut hs)).await?;
    let theirs = Handshake::decode(&hs)?;
    let file = library.get(&theirs.infohash).ok_or(PeerError::NotOffered)?;
    timed(
        10,
        stream.write_all(
            &Handshake {
                infohash: theirs.infohash,
                peer_id: our_id,
                extensions: true,
            }
            .encode(),
        ),
    )
    .await?;
    if theirs.extensions {
        let ext = ExtHandshake {
            m: [("ut_metadata".to_string(), UT_METADATA as i64)].into(),
            metadata_size: Some(file.info_bytes.len() as i64),
            v: Some(format!("cod {}", env!("CARGO_PKG_VERSION"))),
        };
        send(
            &mut stream,
            &Message::Extended {
                id: 0,
                payload: serde_bencode::to_bytes(&ext).expect("plain struct"),
            },
        )
        .await?;
    }
    send(
        &mut stream,
        &Message::Bitfield(wire::full_bitfield(file.info.piece_count())),
    )
    .await?;
    let data = std::fs::File::open(&file.path)?;
    let mut their_ut_metadata: Option<u8> = None;
    // One connection may take the file a few times over (a client that lost its copy
    // restarts), not without end.
    let upload_budget = file.info.length.saturating_mul(UPLOADS_PER_CONNECTION);
    let mut served = 0u64;
    loop {
        match read_message(&mut stream, IDLE_SECS).await? {
            Message::Interested => send(&mut stream, &Message::Unchoke).await?,
            Message::Request {
                index,
                begin,
                length,
            } => {
                let Some(start) = block_offset(&file.info, index, begin, length) else {
                    return Err(PeerError::Protocol(format!(
                        "bad request {index}/{begin}/{length}"
                    )));
                };
                served += u64::from(length);
                #[cfg(feature = "node")]
                metrics::counter!("cod_seeded_bytes_total").increment(u64::from(length));
                if served > upload_budget {
                    return Err(PeerError::Protocol(format!(
                        "asked for more than {upload_budget} bytes on one connection"
                    )));
                }
                let mut block = vec![0u8; length as usize];
                data.read_exact_at(&mut block, start)?;
                send(
                    &mut stream,
                    &Message::Piece {
                        index,
                        begin,
                        block,
                    },
                )
                .await?;
            }
            Message::Extended { id: 0, payload } => {
                let h = wire::decode_ext_handshake(&payload)?;
                their_ut_metadata =
                    h.m.get("ut_metadata")
                        .and_then(|v| u8::try_from(*v).ok())
                        .filter(|v| *v != 0);
            }
            Message::Extended { id, payload } if id == UT_METADATA => {
                let Some(reply_id) = their_ut_metadata else {
                    continue;
                };
                let (msg, _) = wire::decode_metadata_msg(&payload)?;
                let total = file.info_bytes.len();
                let piece = wire::metadata_piece(msg.piece, total)
                    .filter(|_| msg.msg_type == wire::META_REQUEST);
                let reply = if let Some(range) = piece {
                    wire::encode_metadata_msg(
                        &MetadataMsg {
                            msg_type: wire::META_DATA,
                            piece: msg.piece,
                            total_size: Some(total as i64),
                        },
                        &file.info_bytes[range],
                    )
                } else {
                    wire::encode_metadata_msg(
                        &MetadataMsg {
                            msg_type: wire::META_REJECT,
                            piece: msg.piece,
                            total_size: None,
                        },
                        &[],
                    )
                };
                send(
                    &mut stream,
                    &Message::Extended {
                        id: reply_id,
                        payload: reply,
                    },
                )
                .await?;
            }
            // A seeder asks for nothing: a piece sent to it was never requested.
            Message::Piece { index, .. } => {
                return Err(PeerError::Protocol(format!("unrequested piece {index}")));
            }
            _ => {}
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no peer could provide {infohash}: {reasons}")]
    NoPeer { infohash: String, reasons: String },
}

/// Downloads the file with `infohash` from one of `peers`: its metadata over BEP 9 (checked
/// against the infohash), then every piece (each checked against its SHA-1). A file longer
/// than `max_len` is refused once the metadata says so. `progress` is told (bytes done,
/// total).
pub async fn fetch(
    peers: &[SocketAddr],
    infohash: [u8; 20],
    max_len: u64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(Info, Vec<u8>), FetchError> {
    let mut reasons = Vec::new();
    for addr in peers {
        match fetch_from(*addr, infohash, max_len, progress).await {
            Ok(r) => return Ok(r),
            Err(e) => reasons.push(format!("{addr}: {e}")),
        }
    }
    Err(FetchError::NoPeer {
        infohash: hex::encode(infohash),
        reasons: if reasons.is_empty() {
            "no peers".into()
        } else {
            reasons.join("; ")
        },
    })
}

/// How long a peer may go without sending anything useful (a wanted metadata piece or block).
const STALL_SECS: u64 = 30;
/// Requests kept outstanding.
const WINDOW: usize = 16;

async fn fetch_from(
    addr: SocketAddr,
    infohash: [u8; 20],
    max_len: u64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(Info, Vec<u8>), PeerError> {
    let mut s = timed(5, TcpStream::connect(addr)).await?;
    timed(
        10,
        s.write_all(
            &Handshake {
                infohash,
                peer_id: peer_id(),
                extensions: true,
            }
            .encode(),
        ),
    )
    .await?;
    let mut hs = [0u8; HANDSHAKE_LEN];
    timed(10, s.read_exact(&mut hs)).await?;
    let theirs = Handshake::decode(&hs)?;
    if theirs.infohash != infohash {
        return Err(PeerError::NotOffered);
    }
    let ours = ExtHandshake {
        m: [("ut_metadata".to_string(), UT_METADATA as i64)].into(),
        metadata_size: None,
        v: Some(format!("cod {}", env!("CARGO_PKG_VERSION"))),
    };
    send(
        &mut s,
        &Message::Extended {
            id: 0,
            payload: serde_bencode::to_bytes(&ours).expect("plain struct"),
        },
    )
    .await?;

    // Metadata first: the peer's extension handshake says how large it is.
    let mut deadline = stall_deadline();
    let (mut meta, their_id) = loop {
        if let Message::Extended { id: 0, payload } = read_until(&mut s, deadline).await? {
            let h = wire::decode_ext_handshake(&payload)?;
            let their_id =
                h.m.get("ut_metadata")
                    .and_then(|v| u8::try_from(*v).ok())
                    .filter(|v| *v != 0)
                    .ok_or_else(|| PeerError::Protocol("no ut_metadata".into()))?;
            let size = h
                .metadata_size
                .ok_or_else(|| PeerError::Protocol("no metadata size".into()))?;
            break (download::Metadata::new(infohash, size)?, their_id);
        }
    };
    for piece in meta.pieces() {
        let req = wire::encode_metadata_msg(
            &MetadataMsg {
                msg_type: wire::META_REQUEST,
                piece,
                total_size: None,
            },
            &[],
        );
        send(
            &mut s,
            &Message::Extended {
                id: their_id,
                payload: req,
            },
        )
        .await?;
    }
    deadline = stall_deadline();
    while !meta.complete() {
        if let Message::Extended { id, payload } = read_until(&mut s, deadline).await?
            && id == UT_METADATA
        {
            let (msg, data) = wire::decode_metadata_msg(&payload)?;
            if msg.msg_type != wire::META_DATA {
                return Err(PeerError::Protocol("metadata refused".into()));
            }
            meta.on_data(msg.piece, data)?;
            deadline = stall_deadline();
        }
    }
    let info = meta.finish()?;
    if info.length > max_len {
        return Err(PeerError::Protocol(format!(
            "the file is {} bytes, more than the {max_len} expected",
            info.length
        )));
    }
    let mut pieces = download::Pieces::new(info)?;

    // Then the pieces, a window of requests at a time, each block checked against what was
    // asked and each piece against its hash.
    send(&mut s, &Message::Interested).await?;
    deadline = stall_deadline();
    while read_until(&mut s, deadline).await? != Message::Unchoke {}
    let total = pieces.info().length;
    while !pieces.done() {
        for (index, begin, length) in pieces.requests(WINDOW) {
            send(
                &mut s,
                &Message::Request {
                    index,
                    begin,
                    length,
                },
            )
            .await?;
        }
        if let Message::Piece {
            index,
            begin,
            block,
        } = read_until(&mut s, deadline).await?
        {
            pieces.on_block(index, begin, &block)?;
            deadline = stall_deadline();
            progress(pieces.verified_bytes(), total);
        }
    }
    Ok(pieces.finish().expect("every piece checked"))
}

fn stall_deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(STALL_SECS)
}

/// The next message, if it comes before `deadline` (keep-alives and messages cod has no use
/// for do not move the deadline: only progress does).
async fn read_until(
    s: &mut TcpStream,
    deadline: tokio::time::Instant,
) -> Result<Message, PeerError> {
    tokio::time::timeout_at(deadline, read_message(s, STALL_SECS))
        .await
        .map_err(|_| PeerError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_served_only_inside_one_piece() {
        let info = Info::of("f", &vec![0u8; 300_000], &mut |_| {});
        let pl = info.piece_length;
        assert_eq!(block_offset(&info, 0, 0, BLOCK_LEN), Some(0));
        assert_eq!(block_offset(&info, 1, 16, 100), Some(pl + 16));
        // The last piece is 300,000 - 262,144 = 37,856 bytes long.
        assert_eq!(block_offset(&info, 1, 37_856 - 10, 10), Some(pl + 37_846));
        for (i, b, l) in [
            (1, 37_856 - 10, 11),
            (2, 0, 1),
            (0, 0, 0),
            (0, 0, MAX_BLOCK + 1),
            (0, pl as u32, 1),
            (u32::MAX, u32::MAX, u32::MAX),
            (u32::MAX, 0, 1),
        ] {
            assert_eq!(block_offset(&info, i, b, l), None, "{i}/{b}/{l}");
        }
    }

    const BLOCK_LEN: u32 = wire::BLOCK;
}
