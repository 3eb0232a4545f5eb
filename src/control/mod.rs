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

/// A request whose answer has a type: the daemon builds the answer from it and the client reads
/// it back as it ([`client::Client::ask`]), so the two cannot disagree. Every request's
/// content type in [`ask`] is one.
pub trait Ask: Into<Request> + 'static {
    type Answer: Serialize + serde::de::DeserializeOwned;
}

/// Declares the requests: for each, a struct in [`ask`] holding its fields (named as the
/// request), the variant of [`Request`] that carries it (on the wire, `{"request":
/// "snake_name", ...fields}`), and — with the daemon — the type of its answer ([`Ask`]).
macro_rules! requests {
    ($(
        $(#[$doc:meta])*
        $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? } => $answer:ty;
    )*) => {
        /// What each request carries, one struct per request, named as it.
        pub mod ask {
            use serde::{Deserialize, Serialize};
            $(
                $(#[$doc])*
                #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
                #[serde(deny_unknown_fields)]
                pub struct $name { $($(#[$fmeta])* pub $field: $ty),* }

                impl From<$name> for super::Request {
                    fn from(r: $name) -> Self {
                        super::Request::$name(r)
                    }
                }
            )*
        }

        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "request", rename_all = "snake_case")]
        pub enum Request {
            $($(#[$doc])* $name(ask::$name),)*
        }

        $(
            #[cfg(feature = "node")]
            impl Ask for ask::$name {
                type Answer = $answer;
            }
        )*
    };
}

requests! {
    /// Handshake: the client's protocol version.
    Hello { version: u32 } => Greeting;
    /// Node identity, versions, uptime, peers, sync state.
    Status {} => crate::views::Status;
    /// The peer table, and the addresses the public port limits or bans.
    Peers {} => crate::node::peers::PeersView;
    /// Ban an address (IP or IP:PORT) for `seconds`, or until unbanned.
    Ban {
        address: String,
        seconds: Option<u64>,
    } => crate::node::peers::Banned;
    /// Lift an address's ban and forget its score.
    Unban { address: String } => crate::node::peers::Unbanned;
    /// Read node.ini again and take what can change while the node runs (as SIGHUP does).
    Reload {} => crate::views::Reloaded;
    /// Try a peer at `address` (`host:port`), as if a discovery had found it.
    AddPeer { address: String } => crate::node::peers::PeerAdded;
    /// Forget the peer at `address` (`host:port`): dropped from the table and from those
    /// remembered across restarts (a discovery may find it again; `Ban` keeps it out).
    RemovePeer { address: String } => crate::node::peers::PeerRemoved;
    /// An account's balances (default: this node's).
    Balance { account: Option<String> } => crate::views::Balance;
    /// An account's history, newest first.
    History {
        account: Option<String>,
        limit: usize,
    } => crate::views::History;
    /// Sign and submit a transfer from this node's account. Outputs use smallest units.
    /// With `seq`, only as that record of the account (refused if the account's next record
    /// has another seq): a client that lost the answer asks [`ask::RecordAt`] that seq
    /// and knows the outcome, and a retry can never pay twice.
    Transfer {
        outputs: Vec<super::TransferOutput>,
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
    } => crate::views::Transferred;
    /// The applied record at (account, seq), or null (default account: this node's).
    RecordAt { account: Option<String>, seq: u64 } => Option<crate::views::Located>;
    /// Verify the whole chain.
    Verify {} => crate::chain::VerifyReport;
    /// The chain archive this node seeds as torrents, and the DHT item naming it.
    Torrents {} => crate::views::TorrentsView;
    /// Every record, as a chain archive (text), in the answer. A large chain's archive is
    /// better written by [`ask::ExportFile`]; this stays for clients of older daemons.
    Export {} => crate::views::Archive;
    /// Every record, as a chain archive written into the file at `path` (absolute; a
    /// regular file that exists, not reached through a symbolic link: the client makes it,
    /// e.g. a temporary file beside where the archive is to go), as the records are read —
    /// the archive is never whole in the daemon's memory. Answers `{records, bytes}`; a file
    /// it cannot open is a `bad_request`.
    ExportFile { path: std::path::PathBuf } => crate::views::Exported;
    /// Verify and add the records of a chain archive (text). A large archive is better
    /// read by [`ask::ImportFile`]; this stays for clients of older daemons.
    Import { archive: String } => crate::chain::ImportSummary;
    /// Verify and add the records of the chain archive in the file at `path` (absolute; a
    /// regular file, not reached through a symbolic link), read as it goes — never whole in
    /// the daemon's memory. Answers as `import`; a file it cannot open is a `bad_request`,
    /// an archive it does not take (damaged, forged) is `refused`.
    ImportFile { path: std::path::PathBuf } => crate::chain::ImportSummary;
    /// Propose an issuance for attested backing figures (item → quantity); this node signs
    /// it if its key is a signer.
    Issue {
        attest: std::collections::BTreeMap<String, u64>,
        /// Who did the attested labor or capacity: account → item → quantity.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        work: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    } => crate::signature_requests::RequestView;
    /// Propose a special distribution now (where com.ini allows).
    Distribute {} => crate::signature_requests::RequestView;
    /// The signer set in force (com.ini's until the ledger changes it).
    Signers {} => crate::signature_requests::SignersView;
    /// The members: who receives distributions, and who waits for sponsors.
    Members {} => crate::views::MembersView;
    /// Propose admitting and removing members (account ids); this node signs it if its key
    /// is a signer.
    MembersChange {
        admit: Vec<String>,
        remove: Vec<String>,
    } => crate::signature_requests::RequestView;
    /// Propose handing the ledger over to cod `to` (version label `version`, default as seen
    /// on peers; ledger rules `rules`, default this software's next).
    Handover {
        to: String,
        version: Option<String>,
        rules: Option<u32>,
    } => crate::signature_requests::RequestView;
    /// Propose a new signer set: the set in force with `add` added and `remove` removed
    /// (key fingerprints), and `quorum` (default: unchanged, if still possible). This node
    /// signs it if its key is in the set in force.
    SignersChange {
        add: Vec<String>,
        remove: Vec<String>,
        quorum: Option<u64>,
    } => crate::signature_requests::RequestView;
    /// Signature requests held by this node.
    SignList {} => crate::signature_requests::RequestList;
    /// One signature request (a unique prefix of its id will do).
    SignShow { id: String } => crate::signature_requests::RequestView;
    /// Sign a request as this node's member.
    SignApprove { id: String } => crate::signature_requests::RequestView;
    /// Reject a request, telling its proposer why.
    SignReject { id: String, reason: String } => crate::signature_requests::RequestView;
    /// Make an expired, superseded or rejected request again, from the chain as it is now.
    SignRepropose { id: String } => crate::signature_requests::RequestView;
    /// The most recently applied records (newest first).
    Recent { limit: usize } => crate::views::Recent;
    /// Newer versions of this cod seen on other nodes.
    Upgrades {} => crate::node::Offers;
    /// Stream events until the client disconnects (answered with `{}`, then the events).
    Subscribe {} => Subscribed;
    /// Shut the daemon down cleanly.
    Stop {} => Stopping;
}

/// The daemon's answer to [`ask::Hello`]: the protocol it speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    pub version: u32,
}

/// The daemon's answer to [`ask::Subscribe`], before the events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed {}

/// The daemon's answer to [`ask::Stop`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopping {
    pub stopping: bool,
}

impl Request {
    /// Is this a request whose work grows with the chain (a full verify, an import, an
    /// export), so that a client waits for its answer however long it takes?
    pub fn grows_with_chain(&self) -> bool {
        matches!(
            self,
            Self::Verify(_)
                | Self::Export(_)
                | Self::ExportFile(_)
                | Self::Import(_)
                | Self::ImportFile(_)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The requests' structs leave the wire as it was: `{"request": NAME, ...fields}`, unknown
    /// fields refused, optional ones defaulted.
    #[test]
    fn requests_keep_their_wire_form() {
        let wire = |r: Request| serde_json::to_string(&r).unwrap();
        assert_eq!(wire(ask::Status {}.into()), r#"{"request":"status"}"#);
        assert_eq!(
            wire(ask::Balance { account: None }.into()),
            r#"{"request":"balance","account":null}"#
        );
        assert_eq!(
            wire(
                ask::SignReject {
                    id: "ab".into(),
                    reason: "no".into()
                }
                .into()
            ),
            r#"{"request":"sign_reject","id":"ab","reason":"no"}"#
        );
        let read = |s: &str| serde_json::from_str::<Request>(s);
        assert_eq!(
            read(r#"{"request":"status"}"#).unwrap(),
            ask::Status {}.into()
        );
        assert_eq!(
            read(r#"{"request":"transfer","outputs":[],"memo":null}"#).unwrap(),
            ask::Transfer::default().into()
        );
        assert_eq!(
            read(r#"{"request":"hello","version":1}"#).unwrap(),
            ask::Hello { version: 1 }.into()
        );
        for bad in [
            r#"{"request":"status","extra":1}"#,
            r#"{"request":"balance","account":null,"limit":3}"#,
            r#"{"request":"history","account":null}"#,
            r#"{"request":"no_such_request"}"#,
            r#"{"account":null}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
