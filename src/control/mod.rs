//! The local control protocol between the daemon and its clients (`cod` commands, `cod tui`),
//! over the node's Unix socket (mode 0600, same uid only). One JSON document per line.
//!
//! A client sends a [`Request`] and reads one [`Response`]; after `Subscribe` the daemon
//! instead streams [`Event`]s until the client hangs up. Pure types here; the blocking client
//! is in [`client`], the server in `crate::node::control`.

pub mod client;

use serde::{Deserialize, Serialize};

/// Version of this protocol; the daemon refuses clients of another.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line the daemon reads (an `import` carries a whole archive).
pub const MAX_LINE_BYTES: usize = crate::archive::MAX_MIRROR_BYTES as usize + (1 << 20);
/// The socket's file name inside the node's data directory.
pub const SOCKET_FILE: &str = "cod.sock";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Handshake: the client's protocol version.
    Hello { version: u32 },
    /// Node identity, versions, uptime, peers, sync state.
    Status,
    /// The peer table, and the addresses the public port limits or bans.
    Peers,
    /// Ban an address (IP or IP:PORT) for `seconds`, or until unbanned.
    Ban {
        address: String,
        seconds: Option<u64>,
    },
    /// Lift an address's ban and forget its score.
    Unban { address: String },
    /// Read node.ini again and take what can change while the node runs (as SIGHUP does).
    Reload,
    /// Try a peer at `address` (`host:port`), as if a discovery had found it.
    AddPeer { address: String },
    /// Forget the peer at `address` (`host:port`): dropped from the table and from those
    /// remembered across restarts (a discovery may find it again; `Ban` keeps it out).
    RemovePeer { address: String },
    /// An account's balances (default: this node's).
    Balance { account: Option<String> },
    /// An account's history, newest first.
    History {
        account: Option<String>,
        limit: usize,
    },
    /// Sign and submit a transfer from this node's account. Outputs use smallest units.
    /// With `seq`, only as that record of the account (refused if the account's next record
    /// has another seq): a client that lost the answer asks [`Request::RecordAt`] that seq
    /// and knows the outcome, and a retry can never pay twice.
    Transfer {
        outputs: Vec<TransferOutput>,
        memo: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        /// Backing items delivered to this member (item → quantity): their value is paid
        /// back to the network and leaves circulation.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        redeem: std::collections::BTreeMap<String, u64>,
        /// Accounts this member sponsors for admission.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        vouch: Vec<String>,
    },
    /// The applied record at (account, seq), or null (default account: this node's).
    RecordAt { account: Option<String>, seq: u64 },
    /// Verify the whole chain.
    Verify,
    /// The chain archive this node seeds as torrents, and the DHT item naming it
    /// ([`crate::views::TorrentsView`]).
    Torrents,
    /// Every record, as a chain archive (text), in the answer. A large chain's archive is
    /// better written by [`Request::ExportFile`]; this stays for clients of older daemons.
    Export,
    /// Every record, as a chain archive written into the file at `path` (absolute; a
    /// regular file that exists, not reached through a symbolic link: the client makes it,
    /// e.g. a temporary file beside where the archive is to go), as the records are read —
    /// the archive is never whole in the daemon's memory. Answers `{records, bytes}`; a file
    /// it cannot open is a `bad_request`.
    ExportFile { path: std::path::PathBuf },
    /// Verify and add the records of a chain archive (text). A large archive is better
    /// read by [`Request::ImportFile`]; this stays for clients of older daemons.
    Import { archive: String },
    /// Verify and add the records of the chain archive in the file at `path` (absolute; a
    /// regular file, not reached through a symbolic link), read as it goes — never whole in
    /// the daemon's memory. Answers as `import`; a file it cannot open is a `bad_request`,
    /// an archive it does not take (damaged, forged) is `refused`.
    ImportFile { path: std::path::PathBuf },
    /// Propose an issuance for attested backing figures (item → quantity); this node signs
    /// it if its key is a signer.
    Issue {
        attest: std::collections::BTreeMap<String, u64>,
        /// Who did the attested labor or capacity: account → item → quantity.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        work: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    },
    /// Propose a special distribution now (where com.ini allows).
    Distribute,
    /// The signer set in force (com.ini's until the ledger changes it).
    Signers,
    /// The members: who receives distributions, and who waits for sponsors.
    Members,
    /// Propose admitting and removing members (account ids); this node signs it if its key
    /// is a signer.
    MembersChange {
        admit: Vec<String>,
        remove: Vec<String>,
    },
    /// Propose handing the ledger over to cod `to` (version label `version`, default as seen
    /// on peers; ledger rules `rules`, default this software's next).
    Handover {
        to: String,
        version: Option<String>,
        rules: Option<u32>,
    },
    /// Propose a new signer set: the set in force with `add` added and `remove` removed
    /// (key fingerprints), and `quorum` (default: unchanged, if still possible). This node
    /// signs it if its key is in the set in force.
    SignersChange {
        add: Vec<String>,
        remove: Vec<String>,
        quorum: Option<u64>,
    },
    /// Signature requests held by this node.
    SignList,
    /// One signature request (a unique prefix of its id will do).
    SignShow { id: String },
    /// Sign a request as this node's member.
    SignApprove { id: String },
    /// Reject a request, telling its proposer why.
    SignReject { id: String, reason: String },
    /// Make an expired, superseded or rejected request again, from the chain as it is now.
    SignRepropose { id: String },
    /// The most recently applied records (newest first).
    Recent { limit: usize },
    /// Newer versions of this cod seen on other nodes.
    Upgrades,
    /// Stream events until the client disconnects.
    Subscribe,
    /// Shut the daemon down cleanly.
    Stop,
}

impl Request {
    /// Is this a request whose work grows with the chain (a full verify, an import, an
    /// export), so that a client waits for its answer however long it takes?
    pub fn grows_with_chain(&self) -> bool {
        matches!(
            self,
            Self::Verify
                | Self::Export
                | Self::ExportFile { .. }
                | Self::Import { .. }
                | Self::ImportFile { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferOutput {
    pub account: String,
    pub asset: String,
    pub amount: u64,
}

/// Why a request failed, for exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request was malformed, or its input unusable.
    BadRequest,
    /// It named something this node does not hold (a signature request, a record).
    NotFound,
    /// The ledger refused the transfer (exit code 4).
    Refused,
    /// A transfer asked for as a given record of its account, whose next record has another
    /// seq: nothing was paid (see `Request::Transfer`).
    SeqTaken,
    /// Something failed inside the daemon.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Ok { data: serde_json::Value },
    Error { kind: ErrorKind, message: String },
}

/// What the daemon streams to subscribers (the TUI's input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A peer was confirmed (or refreshed) or dropped.
    Peer {
        addr: String,
        /// Its transport identity.
        peer_id: String,
        up: bool,
        found_via: String,
    },
    /// Chain sync progress: records held and known to exist, and what is missing.
    Sync {
        held: usize,
        applied: usize,
        pending: usize,
        missing: Vec<String>,
    },
    /// A record was applied.
    Record(crate::views::RecentRecord),
    /// A signature request appeared or changed (its view, without the record).
    SignRequest(Box<crate::signature_requests::RequestView>),
    /// A newer version of this cod (same deployer) was seen on a node.
    Upgrade {
        cod_id: String,
        cod_version: String,
        peer: String,
    },
    /// A log line from the daemon.
    Log {
        level: String,
        message: String,
        time: u64,
    },
}
