//! The cod REST API between nodes (DESIGN.md §4, §6): its paths, boundary types and limits,
//! and the client nodes use to call each other. The server's handlers live in
//! `crate::node::api`; `docs/openapi.json` describes the same routes (tested).

#[cfg(feature = "node")]
pub mod client;

use serde::{Deserialize, Serialize};

/// Every route, as (method, path template). The server registers exactly these, and the
/// OpenAPI document must list exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/info"),
    ("POST", "/v1/challenge"),
    ("GET", "/v1/peers"),
    ("GET", "/v1/records/{hash}"),
    ("POST", "/v1/records"),
    ("POST", "/v1/stem"),
    ("GET", "/v1/chains/{account}"),
    ("GET", "/v1/log"),
    ("GET", "/v1/sync/summary"),
    ("GET", "/v1/sync/buckets"),
    ("GET", "/v1/sync/heads/{bucket}"),
    ("GET", "/v1/sign-requests"),
    ("POST", "/v1/sign-requests"),
    ("POST", "/v1/sign-requests/{id}/rejections"),
];

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// Most records in one request.
pub const MAX_RECORDS_PER_CALL: usize = 1000;
/// Most records in one page of an answer (pages are bounded by `MAX_BODY_BYTES` too): large
/// pages make few synced batches when a fresh node replays a long log.
pub const MAX_RECORDS_PER_PAGE: usize = 5000;
/// A request taking longer is answered 408.
pub const REQUEST_TIMEOUT_SECS: u64 = 30;

/// `GET /v1/info`: who a node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    pub cod_id: String,
    /// The node's transport identity (hex): the public half of an Ed25519 key it makes at
    /// every start, which it proves with `POST /v1/challenge`. Nothing here names the account
    /// the node holds.
    pub peer_id: String,
    pub software_version: String,
    pub com_version: String,
    pub cod_version: String,
    /// `host:port` peers should use.
    pub addr: String,
    pub time: u64,
    /// Fingerprint of the deployer's key (`keys/cod.pub.key`): nodes of other versions of
    /// the same deployer's cod recognize each other by it.
    pub deployer: String,
    /// The package's file name (its torrent's name; the cod id is its infohash).
    pub package: String,
    /// The ledger this node keeps: its cod id, or the earlier version's it continues (cod.ini
    /// `ledger`). Nodes of every version that keep one ledger sync with each other.
    #[serde(default)]
    pub ledger: String,
    /// The infohash of its com.ini: versions sync only when their models are the same file,
    /// so that every node validates every record by the same rules (docs/upgrade.md).
    #[serde(default)]
    pub com: String,
}

impl Info {
    /// The ledger a peer keeps (nodes older than the field keep their own cod's).
    pub fn ledger_id(&self) -> &str {
        if self.ledger.is_empty() {
            &self.cod_id
        } else {
            &self.ledger
        }
    }
}

/// Longest field of an [`Info`] a node accepts from a peer.
pub const MAX_INFO_FIELD: usize = 256;

impl Info {
    /// Refuses an `Info` from a peer whose fields are longer than any honest node's: they
    /// are kept (peer table, upgrade offers) and shown.
    pub fn check_bounds(&self) -> Result<(), String> {
        let fields = [
            ("cod_id", &self.cod_id),
            ("peer_id", &self.peer_id),
            ("software_version", &self.software_version),
            ("com_version", &self.com_version),
            ("cod_version", &self.cod_version),
            ("addr", &self.addr),
            ("deployer", &self.deployer),
            ("package", &self.package),
            ("ledger", &self.ledger),
            ("com", &self.com),
        ];
        for (name, v) in fields {
            if v.len() > MAX_INFO_FIELD {
                return Err(format!("{name} is longer than {MAX_INFO_FIELD} bytes"));
            }
        }
        Ok(())
    }
}

/// The DHT key under which every node of a deployer's cods announces itself, whatever the
/// version: `SHA-1("cod/deployer/v1\0" ‖ deployer key fingerprint)`.
pub fn deployer_infohash(deployer: &crate::ids::Fingerprint) -> [u8; 20] {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(b"cod/deployer/v1\0");
    h.update(deployer.as_bytes());
    h.finalize().into()
}

/// `POST /v1/challenge`: prove you hold the transport key of your peer id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// 32 random bytes, hex.
    pub nonce: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// Ed25519 signature (base64) over [`crate::transport::challenge_message`].
    pub signature: String,
}

/// `GET /v1/peers`: confirmed peers, for peer exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    pub addr: String,
    /// Its transport identity (never its account).
    pub peer_id: String,
}

/// `GET /v1/sync/summary`: a few hundred bytes that tell whether two nodes are in sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub applied: usize,
    pub accounts: usize,
    /// SHA-256 over every account's (id, head seq, head hash), sorted by account.
    pub digest: String,
    /// Slots this node holds double-spend proofs of (0 from nodes older than the field).
    #[serde(default)]
    pub forks: usize,
    /// SHA-256 over every record of those slots, slot by slot in (account, seq) order — the
    /// account id's 32 bytes, the seq as 8 bytes big-endian, then each record's 32-byte hash
    /// in ascending order — so that two nodes holding as many proofs can tell whether they
    /// hold the same; empty when there are none (and from nodes older than the field).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub forks_digest: String,
}

/// `GET /v1/sync/buckets`: the same digest per bucket (the first byte of the account id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buckets {
    /// 256 entries, hex of the first 8 bytes of each bucket's digest ("" for an empty bucket).
    pub buckets: Vec<String>,
}

/// `GET /v1/sync/heads/{bucket}`: account → head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heads {
    pub heads: std::collections::BTreeMap<String, crate::ledger::Head>,
}

/// Records as they travel: each exactly its canonical JSON (never re-encoded on the way).
pub type RawRecord = Box<serde_json::value::RawValue>;

/// A page of records (`/v1/chains/…`, `/v1/log`), canonical JSON each.
#[derive(Debug, Serialize, Deserialize)]
pub struct Records {
    pub records: Vec<RawRecord>,
    /// Where the next page starts (`/v1/log`: log position; chains: seq), if there is more.
    pub next: Option<u64>,
}

/// `POST /v1/records` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    pub records: Vec<RawRecord>,
}

/// `POST /v1/stem` body: records on their stem (Dandelion++, see `crate::stem`): the
/// receiver holds them unapplied and passes them on, or fluffs them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stem {
    pub records: Vec<RawRecord>,
    /// The sender's peer id (hex): which of the receiver's relays its stems take. Only that.
    pub from: String,
}

/// Per record of a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitResult {
    pub hash: Option<String>,
    /// `applied`, `pending`, `duplicate`, `fork` or `refused`.
    pub status: String,
    pub reason: Option<String>,
}

/// What travels between nodes: `POST /v1/sign-requests`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// The record (body and the signatures gathered so far), canonical JSON. (Nothing says
    /// which node sends it: every node that holds a request passes it on.)
    pub record: serde_json::Value,
}

/// The answer to `POST /v1/sign-requests`: only that the request was taken (what the node's
/// member did with it is not told), and the signers' rejections of it the node holds — a
/// node that offers a request may have missed them (cut off or down when they were spread),
/// and a signer that signed it waits for them (see
/// [`crate::signature_requests::RequestBook::to_pass_on`]). (Read leniently: a field a
/// later version adds must not make the sender think the request was not taken.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Taken {
    pub id: crate::ids::RecordHash,
    /// At most [`crate::signature_requests::MAX_REJECTIONS`].
    #[serde(default)]
    pub rejections: Vec<RejectionMsg>,
}

/// `GET /v1/sign-requests`: the open requests a node holds, as it would send them again —
/// what a node nobody can call (behind a NAT, or hidden) pulls at its sync rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRequests {
    /// At most [`MAX_OPEN_REQUESTS_SERVED`] records (body and signatures), canonical JSON.
    pub records: Vec<serde_json::Value>,
}

/// Most requests in one answer of `GET /v1/sign-requests` (and taken from one).
pub const MAX_OPEN_REQUESTS_SERVED: usize = 64;
/// Most bytes of records in one answer of `GET /v1/sign-requests` (half a request body).
pub const MAX_OPEN_REQUESTS_BYTES: usize = MAX_BODY_BYTES / 2;

/// `POST /v1/sign-requests/{id}/rejections`: a member said no, signed by its node key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectionMsg {
    pub node_id: String,
    pub reason: String,
    pub signature: String,
}

/// Every error answer: `{"error": "...", "reason": "..."}` with a fitting HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub reason: String,
}
