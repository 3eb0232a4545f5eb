//! Offering and fetching whole files over the BitTorrent peer wire (MISSION.md "Node
//! discovery" 2): a node seeds its package, com.ini and cod.ini (and packages it downloaded)
//! on the port it announces in the DHT, sharing it with the cod API — a connection that
//! starts with the BitTorrent handshake's byte 19 is peer wire, anything else is HTTP. Any
//! standard client can download them by magnet link (BEP 9/10 metadata exchange).
//!
//! cod implements only what seeding and fetching a finished file needs (a seeder never
//! chokes and always has every piece) rather than a full client library, because the port
//! has to be shared with the API and the files are few and small.

pub mod wire;

use crate::package::Info;
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wire::{
    BLOCK, ExtHandshake, HANDSHAKE_LEN, Handshake, MAX_BLOCK, MAX_MESSAGE, Message, MetadataMsg,
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
        let info = Info::of(name, &data, &mut |_| {});
        let id = *info.infohash().as_bytes();
        let info_bytes = info.bencode();
        self.files.write().expect("library lock").insert(
            id,
            Arc::new(Offered {
                info,
                info_bytes,
                path,
            }),
        );
        Ok(id)
    }

    pub fn get(&self, infohash: &[u8; 20]) -> Option<Arc<Offered>> {
        self.files
            .read()
            .expect("library lock")
            .get(infohash)
            .cloned()
    }

    pub fn infohashes(&self) -> Vec<[u8; 20]> {
        self.files
            .read()
            .expect("library lock")
            .keys()
            .copied()
            .collect()
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
    loop {
        match read_message(&mut stream, 120).await? {
            Message::Interested => send(&mut stream, &Message::Unchoke).await?,
            Message::Request {
                index,
                begin,
                length,
            } => {
                let piece_len = file.info.piece_length;
                let start = index as u64 * piece_len + begin as u64;
                let this_piece =
                    piece_len.min(file.info.length.saturating_sub(index as u64 * piece_len));
                if index as usize >= file.info.piece_count()
                    || length == 0
                    || length > MAX_BLOCK
                    || begin as u64 + length as u64 > this_piece
                {
                    return Err(PeerError::Protocol(format!(
                        "bad request {index}/{begin}/{length}"
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
                if let Ok(h) = serde_bencode::from_bytes::<ExtHandshake>(&payload) {
                    their_ut_metadata =
                        h.m.get("ut_metadata")
                            .and_then(|v| u8::try_from(*v).ok())
                            .filter(|v| *v != 0);
                }
            }
            Message::Extended { id, payload } if id == UT_METADATA => {
                let Some(reply_id) = their_ut_metadata else {
                    continue;
                };
                let (msg, _) = wire::decode_metadata_msg(&payload)?;
                let total = file.info_bytes.len();
                let start = msg.piece.max(0) as usize * BLOCK as usize;
                let reply = if msg.msg_type == wire::META_REQUEST && start < total {
                    let end = (start + BLOCK as usize).min(total);
                    wire::encode_metadata_msg(
                        &MetadataMsg {
                            msg_type: wire::META_DATA,
                            piece: msg.piece,
                            total_size: Some(total as i64),
                        },
                        &file.info_bytes[start..end],
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
/// against the infohash), then every piece (each checked against its SHA-1). `progress` is
/// told (bytes done, total).
pub async fn fetch(
    peers: &[SocketAddr],
    infohash: [u8; 20],
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(Info, Vec<u8>), FetchError> {
    let mut reasons = Vec::new();
    for addr in peers {
        match fetch_from(*addr, infohash, progress).await {
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

async fn fetch_from(
    addr: SocketAddr,
    infohash: [u8; 20],
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

    // Metadata first.
    let (mut size, mut their_id) = (None, None);
    while size.is_none() || their_id.is_none() {
        if let Message::Extended { id: 0, payload } = read_message(&mut s, 30).await? {
            let h: ExtHandshake = serde_bencode::from_bytes(&payload)
                .map_err(|_| PeerError::Protocol("bad extension handshake".into()))?;
            size = Some(
                h.metadata_size
                    .filter(|n| *n > 0 && *n < (1 << 24))
                    .ok_or_else(|| PeerError::Protocol("no metadata size".into()))?
                    as usize,
            );
            their_id = Some(
                h.m.get("ut_metadata")
                    .and_then(|v| u8::try_from(*v).ok())
                    .filter(|v| *v != 0)
                    .ok_or_else(|| PeerError::Protocol("no ut_metadata".into()))?,
            );
        }
    }
    let (size, their_id) = (size.expect("set"), their_id.expect("set"));
    let mut meta = vec![0u8; size];
    let pieces = size.div_ceil(BLOCK as usize);
    for p in 0..pieces {
        let req = wire::encode_metadata_msg(
            &MetadataMsg {
                msg_type: wire::META_REQUEST,
                piece: p as i64,
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
    let mut got = 0;
    while got < pieces {
        if let Message::Extended { id, payload } = read_message(&mut s, 30).await?
            && id == UT_METADATA
        {
            let (msg, data) = wire::decode_metadata_msg(&payload)?;
            let start = msg.piece as usize * BLOCK as usize;
            if msg.msg_type != wire::META_DATA || start + data.len() > size {
                return Err(PeerError::Protocol("metadata refused".into()));
            }
            meta[start..start + data.len()].copy_from_slice(data);
            got += 1;
        }
    }
    if Sha1::digest(&meta).as_slice() != infohash {
        return Err(PeerError::Protocol(
            "the metadata does not match the infohash".into(),
        ));
    }
    let info: Info = serde_bencode::from_bytes(&meta)
        .map_err(|_| PeerError::Protocol("malformed metadata".into()))?;
    if info.piece_length == 0
        || info.pieces.len() != info.length.div_ceil(info.piece_length) as usize * 20
        || info.length > crate::package::MAX_PACKAGE_BYTES
    {
        return Err(PeerError::Protocol("implausible metadata".into()));
    }

    // Then the pieces, a window of requests at a time.
    send(&mut s, &Message::Interested).await?;
    loop {
        if read_message(&mut s, 30).await? == Message::Unchoke {
            break;
        }
    }
    let mut data = vec![0u8; info.length as usize];
    let blocks: Vec<(u32, u32, u32)> = (0..info.piece_count())
        .flat_map(|i| {
            let plen = info
                .piece_length
                .min(info.length - i as u64 * info.piece_length);
            (0..plen.div_ceil(BLOCK as u64)).map(move |b| {
                (
                    i as u32,
                    (b * BLOCK as u64) as u32,
                    (BLOCK as u64).min(plen - b * BLOCK as u64) as u32,
                )
            })
        })
        .collect();
    let mut next = 0;
    let mut outstanding = 0;
    let mut received = vec![0u64; info.piece_count()];
    let mut done = 0u64;
    while done < info.length {
        while outstanding < 16 && next < blocks.len() {
            let (index, begin, length) = blocks[next];
            send(
                &mut s,
                &Message::Request {
                    index,
                    begin,
                    length,
                },
            )
            .await?;
            next += 1;
            outstanding += 1;
        }
        if let Message::Piece {
            index,
            begin,
            block,
        } = read_message(&mut s, 30).await?
        {
            let start = index as u64 * info.piece_length + begin as u64;
            if index as usize >= info.piece_count() || start + block.len() as u64 > info.length {
                return Err(PeerError::Protocol("a piece out of range".into()));
            }
            data[start as usize..start as usize + block.len()].copy_from_slice(&block);
            outstanding -= 1;
            received[index as usize] += block.len() as u64;
            done += block.len() as u64;
            let plen = info
                .piece_length
                .min(info.length - index as u64 * info.piece_length);
            if received[index as usize] == plen {
                let p0 = index as usize * info.piece_length as usize;
                if !info.piece_ok(index as usize, &data[p0..p0 + plen as usize]) {
                    return Err(PeerError::Protocol(format!(
                        "piece {index} failed its hash check"
                    )));
                }
            }
            progress(done, info.length);
        }
    }
    Ok((info, data))
}
