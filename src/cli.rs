//! Command-line definitions (clap) and dispatch. The work is done in [`crate::cmd`].

use crate::cmd;
use crate::ids::CodId;
use crate::keyfile::Passphrase;
use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::ArgValueCompleter;
use cmd::complete;
use std::path::PathBuf;

/// The environment variable through which the shell's script asks `cod` what to offer.
pub const COMPLETE_VAR: &str = "COD_COMPLETE";

#[derive(Parser, Debug)]
#[command(
    name = "cod",
    version,
    about = "Run a node of a decentralized, anonymous collaboration network (a cod).",
    after_help = "Exit codes: 0 success, 1 failure (the message says why), 2 bad usage, \
                  3 no daemon running where one is needed, 4 a transfer the ledger refuses.\n\
                  Scripts: add --json for stable machine-readable output on stdout."
)]
pub struct Cli {
    /// Node directory to act on [default: the only node under $XDG_DATA_HOME/cod]
    #[arg(long, global = true, env = "COD_NODE", value_name = "DIR", value_hint = clap::ValueHint::DirPath,
          add = ArgValueCompleter::new(complete::node_dirs))]
    pub node: Option<PathBuf>,
    /// Print machine-readable JSON on stdout (stable keys) instead of the human view
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an RSA key pair for a role: com (modeler), cod (deployer) or node (member)
    Keygen(KeygenArgs),
    /// Inspect keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Pack a cod into a signed, deterministic deployment package (deployers)
    Pack(PackArgs),
    /// Deploy a node from a package (members)
    Deploy(DeployArgs),
    /// Download a package (or its com.ini, cod.ini) by magnet link or infohash from the nodes
    /// that offer it, found on the DHT
    Fetch(FetchArgs),
    /// Pay one or more accounts from this node's account
    Transfer(TransferArgs),
    /// Show an account's balances [default: this node's]
    Balance(BalanceArgs),
    /// Show an account's records and the payments it received [default: this node's]
    History(HistoryArgs),
    /// Verify, export and import the chain
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Run, start, stop and check the node daemon
    #[command(subcommand)]
    Node(NodeCommand),
    /// The node at a glance: identity, versions, peers, chain, balance (needs the daemon)
    Status,
    /// The node's peer table and the addresses it limits or bans (needs the daemon)
    Peers {
        #[command(subcommand)]
        action: Option<PeersCommand>,
    },
    /// Local Mainline DHT helpers (tests, demos, private networks)
    #[command(subcommand)]
    Dht(DhtCommand),
    /// Propose an issuance backed by attested figures; signers sign it (needs the daemon)
    Issue(IssueArgs),
    /// Propose a special distribution now, where com.ini allows it (needs the daemon)
    Distribute,
    /// Signature requests for issuance, distribution and signer changes: list, show,
    /// approve, reject
    #[command(subcommand)]
    Sign(SignCommand),
    /// The signer set in force; `cod signers change` proposes a new one (needs the daemon)
    Signers {
        #[command(subcommand)]
        action: Option<SignersCommand>,
    },
    /// The members (who receive distributions) and the accounts vouched for; `cod members
    /// admit|remove` proposes a change for the signers to approve (needs the daemon)
    Members {
        #[command(subcommand)]
        action: Option<MembersCommand>,
    },
    /// The full-screen dashboard (over SSH too): peers, chain, signature requests, log
    Tui,
    /// Newer versions of this cod, seen on other nodes: check, download, deploy beside
    #[command(subcommand)]
    Upgrade(UpgradeCommand),
    /// The deployments (one per cod id) under a base directory: list, enable, disable, remove
    Deployments(DeploymentsArgs),
    /// Bring an older deployment's key and chain into this one (see docs/upgrade.md)
    Import(ImportArgs),
    /// The running node's configuration: `cod config reload` reads node.ini again
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the shell's completion script. It asks `cod` (on PATH) at each TAB, so it offers
    /// account ids, signature requests, peer addresses and node directories as well as
    /// commands: `cod completions bash > ~/.local/share/bash-completion/completions/cod`
    /// (zsh: a `_cod` file on $fpath; fish: ~/.config/fish/completions/cod.fish)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
        /// A script that completes commands and flags alone, without running `cod`
        #[arg(long = "static")]
        static_: bool,
    },
    /// Write the man pages: cod.1 and one per subcommand (cod-node-run.1, …)
    Man {
        /// Directory to write them into [default: print cod.1 on stdout]
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UpgradeCommand {
    /// Newer versions of this cod that peers run (needs the daemon)
    Check,
    /// Download a newer package from the peers that seed it (over BitTorrent), and check it
    Download {
        /// Which version, by cod id [default: the newest seen]
        #[arg(long, value_name = "COD_ID")]
        cod_id: Option<CodId>,
        /// Do not ask for confirmation (required without a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Deploy a downloaded package beside this node (a new directory; this one is untouched)
    Deploy {
        /// The package [default: the newest in this node's upgrades/]
        #[arg(long, value_name = "PKG")]
        package: Option<PathBuf>,
        /// node.ini for the new node [default: a copy of this node's]
        #[arg(long, value_name = "FILE")]
        node_ini: Option<PathBuf>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Hand this ledger over to a version with new rules (signers; needs the daemon): a
    /// special distribution whose checkpoint is the last state this version keeps. Once a
    /// quorum signs it, every node of this version refuses later records, naming the new one
    Handover {
        /// The version that continues the ledger
        #[arg(value_name = "COD_ID")]
        to: CodId,
        /// Its version label [default: as seen on peers (`cod upgrade check`)]
        #[arg(long)]
        version: Option<String>,
        /// The ledger rules it follows [default: this software's next]
        #[arg(long)]
        rules: Option<u32>,
    },
}

#[derive(Args, Debug)]
pub struct DeploymentsArgs {
    #[command(subcommand)]
    pub action: Option<DeploymentAction>,
    /// Base directory [default: the parent of --node, else $XDG_DATA_HOME/cod]
    #[arg(long, value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum DeploymentAction {
    /// List them with their state (the default)
    List,
    /// Allow a disabled deployment's daemon to start again
    Enable { cod_id: String },
    /// Keep a deployment's daemon from starting (its data stays)
    Disable { cod_id: String },
    /// Delete a stopped deployment's directory, data and key included
    Remove {
        cod_id: String,
        /// Do not ask for confirmation (required without a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// A magnet link (magnet:?xt=urn:btih:…, as `cod pack` prints) or a bare infohash (a cod id)
    #[arg(value_name = "MAGNET")]
    pub what: crate::package::torrent::Magnet,
    /// Directory to write the file to
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub out: PathBuf,
    /// A node to ask directly (HOST:PORT, its public port), besides the link's x.pe; repeatable
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub peers: Vec<String>,
    /// DHT bootstrap nodes (HOST:PORT, comma-separated) [default: the public Mainline routers]
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,
    /// Ask only --peer and the link's x.pe, not the DHT
    #[arg(long)]
    pub no_dht: bool,
    /// How long the DHT lookup may take
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The older deployment's node directory
    #[arg(long, value_name = "OLD_NODE_DIR")]
    pub from: PathBuf,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Args, Debug)]
pub struct IssueArgs {
    /// Attested backing: ITEM=QTY or CLASS:ITEM=QTY (items from com.ini's [backing.ITEM]); repeatable
    #[arg(long = "backing", required = true, value_name = "[CLASS:]ITEM=QTY")]
    pub backing: Vec<String>,
    /// Who did attested labor or ran attested capacity this period: ACCOUNT:ITEM=QTY
    /// (labor or capacity items; repeatable). The `work` formula pays by it
    #[arg(long = "work", value_name = "ACCOUNT:ITEM=QTY")]
    pub work: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum SignCommand {
    /// Requests this node holds, newest first
    List,
    /// One request in full (a unique prefix of its id will do)
    Show {
        #[arg(add = ArgValueCompleter::new(complete::requests))]
        id: String,
    },
    /// Sign a request (this node's key must be in the signer set in force)
    Approve {
        #[arg(add = ArgValueCompleter::new(complete::requests))]
        id: String,
    },
    /// Reject a request; the reason goes to its proposer
    Reject {
        #[arg(add = ArgValueCompleter::new(complete::requests))]
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Make an expired or superseded request again, from the chain as it is now, and sign it
    /// (the same backing figures for an issuance, the same period for a distribution)
    Repropose {
        #[arg(add = ArgValueCompleter::new(complete::requests))]
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SignersCommand {
    /// Propose a new signer set, signed here: the set in force with keys added and removed.
    /// The signers in force approve it (`cod sign approve ID`); once a quorum of them has,
    /// the new set signs every later issuance, distribution and signer change.
    Change {
        /// A key fingerprint to add (64 hex digits, as `cod key show` prints); repeatable
        #[arg(long, value_name = "FINGERPRINT")]
        add: Vec<String>,
        /// A key fingerprint to remove; repeatable
        #[arg(long, value_name = "FINGERPRINT")]
        remove: Vec<String>,
        /// Signatures the new set needs (default: the present quorum)
        #[arg(long)]
        quorum: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum MembersCommand {
    /// Propose admitting accounts as members, signed here (a signer's node): a quorum of
    /// signers approves it (`cod sign approve ID`)
    Admit {
        /// Account ids
        #[arg(required = true, value_name = "ACCOUNT", add = ArgValueCompleter::new(complete::accounts))]
        accounts: Vec<String>,
    },
    /// Propose removing members: they keep their coins and receive no more distributions
    Remove {
        /// Account ids
        #[arg(required = true, value_name = "ACCOUNT", add = ArgValueCompleter::new(complete::accounts))]
        accounts: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PeersCommand {
    /// Refuse an address (IP, or IP:PORT; an IPv6 address counts by its /64) until unbanned,
    /// or for a while; kept across restarts
    Ban {
        #[arg(add = ArgValueCompleter::new(complete::peers))]
        address: String,
        /// How long (e.g. 1h, 7d); default: until unbanned
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
    },
    /// Lift a ban (the operator's, or one for misbehaviour) and forget the address's score
    Unban {
        #[arg(add = ArgValueCompleter::new(complete::banned))]
        address: String,
    },
    /// Try a peer now (HOST:PORT), without a restart; kept across restarts once confirmed
    Add { address: String },
    /// Forget a peer (HOST:PORT) now; a discovery may find it again (`ban` keeps it out)
    Remove {
        #[arg(add = ArgValueCompleter::new(complete::peers))]
        address: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Read node.ini again (as SIGHUP does): [signing] auto, new [peers] static addresses
    /// and [log] level take effect at once; it names what else changed and waits for the
    /// next start (needs the daemon)
    Reload,
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Run the daemon in the foreground (for systemd; logs to stderr)
    Run {
        /// Read the key's passphrase from the first line of stdin
        #[arg(long)]
        passphrase_stdin: bool,
        /// Recompute the stored state from the records before starting (a start otherwise
        /// reads the stored state; `cod chain verify` says whether the two differ)
        #[arg(long)]
        full: bool,
        /// Log to FILE, rotated as node.ini `[log]` says and reopened on SIGHUP, instead of
        /// stderr (`cod node start` logs to the data directory's node.log)
        #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
        log_file: Option<PathBuf>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Start the daemon in the background (pid and log files in the data directory)
    Start {
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Stop the running daemon cleanly
    Stop,
    /// Is the daemon running? (exit code 3 if not)
    Status,
    /// Install cod for this node: the executable on PATH (PREFIX/bin/cod), the man pages,
    /// the shells' completions and a systemd unit that runs the node; prints the
    /// `systemctl` commands that start it (docs/node.md "Running as a service")
    InstallService(InstallServiceArgs),
}

#[derive(clap::Args, Debug)]
pub struct InstallServiceArgs {
    /// A unit of your own service manager (`systemctl --user`; no root needed), under
    /// ~/.config/systemd/user, with the files under ~/.local
    #[arg(long)]
    pub systemd_user: bool,
    /// The user the system unit runs the node as [default: the node directory's owner]
    #[arg(long, value_name = "USER", conflicts_with = "systemd_user")]
    pub run_as: Option<String>,
    /// The unit's name [default: cod- and the first 12 digits of the cod id]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Instead of a unit for this node, the template cod@.service: `systemctl start
    /// cod@NAME` runs the node in /var/lib/cod/NAME as the user cod (what the .deb installs)
    #[arg(long, conflicts_with_all = ["systemd_user", "run_as", "name"])]
    pub template: bool,
    /// Where the executable, man pages and completions go [default: /usr/local, or
    /// ~/.local with --systemd-user]
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub prefix: Option<PathBuf>,
    /// Where the unit goes [default: /etc/systemd/system, or ~/.config/systemd/user]
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub unit_dir: Option<PathBuf>,
    /// Write everything under DIR as if it were / (to stage a package, or look first)
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub root: Option<PathBuf>,
    /// Replace a unit file that differs from the one cod would write (your changes belong
    /// in `systemctl edit`'s drop-ins)
    #[arg(long)]
    pub force: bool,
}

#[derive(Subcommand, Debug)]
pub enum DhtCommand {
    /// Run a small Mainline DHT of NODES nodes on ADDRESS; prints its bootstrap list
    /// (host:port,...) on the first line, then runs until stopped
    Bootstrap {
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::Ipv4Addr,
    },
}

/// An account: its 64-hex-digit id, or `network` for the cod's own account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountArg {
    Id(crate::ids::AccountId),
    Network,
}

impl std::str::FromStr for AccountArg {
    type Err = crate::ids::IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "network" {
            Ok(Self::Network)
        } else {
            s.parse().map(Self::Id)
        }
    }
}

impl AccountArg {
    pub fn resolve(self, cod: &CodId) -> crate::ids::AccountId {
        match self {
            Self::Id(a) => a,
            Self::Network => crate::ids::AccountId::network(cod),
        }
    }
}

#[derive(Args, Debug)]
pub struct TransferArgs {
    /// Account to pay (an account id, or `network`); repeat with --amount for several outputs
    #[arg(long = "to", value_name = "ACCOUNT", required_unless_present_any = ["redeem", "vouch"],
          add = ArgValueCompleter::new(complete::accounts))]
    pub to: Vec<AccountArg>,
    /// Amount in the asset's units as `cod balance` shows them (e.g. 12.50); one per --to
    #[arg(long = "amount", value_name = "N")]
    pub amount: Vec<String>,
    /// Products or services delivered to you: pays their com.ini value back to the network,
    /// which takes those coins out of circulation (ITEM=QTY; repeatable)
    #[arg(long = "redeem", value_name = "ITEM=QTY")]
    pub redeem: Vec<String>,
    /// Sponsor an account for membership (com.ini `admission = sponsors`; repeatable)
    #[arg(long = "vouch", value_name = "ACCOUNT", add = ArgValueCompleter::new(complete::accounts))]
    pub vouch: Vec<AccountArg>,
    /// Asset of each output (one for all, or one per --to) [default: the cod's only asset]
    #[arg(long = "asset", value_name = "ASSET")]
    pub asset: Vec<String>,
    /// A short note stored in the record (public)
    #[arg(long)]
    pub memo: Option<String>,
    /// Do not ask for confirmation (required when there is no terminal to ask on)
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Args, Debug)]
pub struct BalanceArgs {
    /// An account id, or `network` [default: this node's account]
    #[arg(add = ArgValueCompleter::new(complete::accounts))]
    pub account: Option<AccountArg>,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// An account id, or `network` [default: this node's account]. The network's history
    /// shows its own records and the payments to it among the latest 10,000 applied records
    /// (no index names those)
    #[arg(add = ArgValueCompleter::new(complete::accounts))]
    pub account: Option<AccountArg>,
    /// Show at most N entries, newest first
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,
}

#[derive(Subcommand, Debug)]
pub enum ChainCommand {
    /// Check completeness and validity of the whole chain; exits non-zero on any problem
    Verify,
    /// Write every record to an archive file
    Export {
        /// The archive file to write (never overwritten)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Verify and add every record of an archive file
    Import {
        /// The archive file
        file: PathBuf,
    },
    /// The chain archive this node seeds as torrents, and the DHT item that points at it
    Torrents {
        /// Also copy the files and write their .torrent files into DIR, for any BitTorrent
        /// client to seed (e.g. `aria2c -Z -j 1000 --seed-ratio=0 -V -d DIR DIR/*.torrent`)
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct PassphraseArgs {
    /// Store the secret key unencrypted (only where the disk itself is protected)
    #[arg(long)]
    pub no_passphrase: bool,
    /// Read the passphrase from the first line of FILE (else $COD_PASSPHRASE, else a prompt on a terminal)
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl PassphraseArgs {
    pub fn source(&self) -> Passphrase {
        Passphrase {
            none: self.no_passphrase,
            file: self.passphrase_file.clone(),
            value: None,
            new: false,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The modeler: com.pub.key / com.sec.key
    Com,
    /// The deployer: cod.pub.key / cod.sec.key
    Cod,
    /// A member's node: node.pub.key / node.sec.key
    Node,
}

impl Role {
    pub fn file_stem(self) -> &'static str {
        match self {
            Role::Com => "com",
            Role::Cod => "cod",
            Role::Node => "node",
        }
    }
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Which role the key is for; it names the files ROLE.pub.key and ROLE.sec.key
    #[arg(long, value_enum)]
    pub role: Role,
    /// Directory to write the key files into (never overwrites)
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub out: PathBuf,
    /// Key size in bits: 2048, 3072 or 4096
    #[arg(long, default_value_t = crate::keys::DEFAULT_BITS)]
    pub bits: usize,
    /// Encrypt with scrypt N=2^14 (what `openssl pkcs8 -scrypt` writes), so `openssl pkey`
    /// opens the key too; the default N=2^17 is 8 times costlier to guess but beyond
    /// OpenSSL 3's scrypt memory limit
    #[arg(long)]
    pub openssl_compatible: bool,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Show a key's size and fingerprint and, given a cod, the node id it has there
    Show(KeyShowArgs),
    /// Change a secret key's passphrase (default: this node's key); the file is rewritten
    /// atomically, 0600
    Passwd {
        /// The secret key file [default: the node's key, from node.ini]
        file: Option<PathBuf>,
        #[command(flatten)]
        new: NewKeyArgs,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Back up this node's secret key to a file (never overwritten), encrypted with a
    /// passphrase of its own
    Export {
        /// Where to write it (mode 0600)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        new: NewKeyArgs,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Give this node a backed-up key (`cod key export`): the node takes its account (its node
    /// id), if it holds nothing but its own opening yet; stop the daemon first
    Import {
        /// The key file to import (asks for its passphrase if encrypted)
        file: PathBuf,
        /// The account the key signs for, if it replaced the account's first key (`cod key
        /// rekey`); default: the account the key opened
        #[arg(long, value_name = "NODE_ID")]
        account: Option<String>,
        #[command(flatten)]
        new: NewKeyArgs,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Replace this node's key on the ledger, keeping its account (a key suspected stolen):
    /// the present key signs a record naming a fresh one, which signs everything after; the
    /// old key signs nothing more. Stop the daemon first; back up the new key after
    Rekey {
        #[command(flatten)]
        new: NewKeyArgs,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
}

/// How a secret key is written anew.
#[derive(Args, Debug)]
pub struct NewKeyArgs {
    /// The new passphrase: the first line of FILE (else $COD_NEW_PASSPHRASE, else a prompt)
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
    /// Write it unencrypted (only where the disk itself is protected)
    #[arg(long, conflicts_with = "new_passphrase_file")]
    pub unencrypted: bool,
    /// Encrypt with scrypt N=2^14, which `openssl pkey` opens too (default: N=2^17)
    #[arg(long)]
    pub openssl_compatible: bool,
}

impl NewKeyArgs {
    pub fn passphrase(&self) -> Passphrase {
        Passphrase {
            none: self.unencrypted,
            file: self.new_passphrase_file.clone(),
            value: None,
            new: true,
        }
    }

    pub fn scrypt_log_n(&self) -> u8 {
        if self.openssl_compatible {
            crate::keys::OPENSSL_SCRYPT_LOG_N
        } else {
            crate::keys::SCRYPT_LOG_N
        }
    }
}

#[derive(Args, Debug)]
pub struct KeyShowArgs {
    /// A public key file, or a secret key file (asks for its passphrase if encrypted)
    pub file: PathBuf,
    /// Also print the node id this key has in this cod
    #[arg(long, value_name = "COD_ID", conflicts_with = "package")]
    pub cod_id: Option<CodId>,
    /// Also print the node id this key has in the cod of this package
    #[arg(long, value_name = "PKG")]
    pub package: Option<PathBuf>,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Args, Debug)]
pub struct PackArgs {
    /// The modeler's com.ini
    #[arg(long, value_name = "FILE")]
    pub com: PathBuf,
    /// The deployer's cod.ini
    #[arg(long, value_name = "FILE")]
    pub cod: PathBuf,
    /// Key store: every *.pub.key in it is packed (com.pub.key and cod.pub.key are required)
    #[arg(long, default_value = "keys", value_name = "DIR")]
    pub keys: PathBuf,
    /// The deployer's secret key that signs the manifest [default: KEYS/cod.sec.key]
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// Example node.ini to ship [default: the documented template]
    #[arg(long, value_name = "FILE")]
    pub node_ini: Option<PathBuf>,
    /// Deployment guide to ship as GUIDE.md [default: generated from the configs]
    #[arg(long, value_name = "FILE")]
    pub guide: Option<PathBuf>,
    /// The executable to ship as bin/cod [default: this cod]
    #[arg(long, value_name = "FILE")]
    pub exe: Option<PathBuf>,
    /// Output directory for the package and the three .torrent files
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The package file (NAME-VERSION.cod.tar)
    #[arg(long, value_name = "PKG")]
    pub package: PathBuf,
    /// This node's node.ini [default: the package's example]
    #[arg(long, value_name = "FILE")]
    pub node_ini: Option<PathBuf>,
    /// Import this secret key as the node key instead of creating one
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Base directory; the node goes into DIR/<cod id> [default: $XDG_DATA_HOME/cod]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Refuse the package unless its cod id is this one
    #[arg(long, value_name = "COD_ID")]
    pub expect_cod_id: Option<CodId>,
    /// Size of a newly created node key
    #[arg(long, default_value_t = crate::keys::DEFAULT_BITS)]
    pub bits: usize,
    /// Encrypt with scrypt N=2^14 (what `openssl pkcs8 -scrypt` writes), so `openssl pkey`
    /// opens the key too; the default N=2^17 is 8 times costlier to guess but beyond
    /// OpenSSL 3's scrypt memory limit
    #[arg(long)]
    pub openssl_compatible: bool,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

/// The shell's completion script: one that asks `cod` (on PATH) at each TAB — commands,
/// flags and the values the node knows (`dynamic`) — or one of commands and flags alone.
pub fn completion_script(shell: clap_complete::Shell, dynamic: bool) -> Vec<u8> {
    let mut script = Vec::new();
    if dynamic {
        clap_complete::env::Shells::builtins()
            .completer(&shell.to_string())
            .expect("every clap_complete shell completes dynamically")
            .write_registration(COMPLETE_VAR, "cod", "cod", "cod", &mut script)
            .expect("writing to memory");
    } else {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut cmd, "cod", &mut script);
    }
    script
}

pub fn dispatch(cli: Cli) -> Result<(), cmd::CmdError> {
    let out = cmd::Output::new(cli.json);
    match cli.command {
        Command::Keygen(a) => cmd::keys::keygen(&out, a),
        Command::Key(KeyCommand::Show(a)) => cmd::keys::show(&out, a),
        Command::Key(KeyCommand::Passwd {
            file,
            new,
            passphrase,
        }) => cmd::keys::passwd(&out, cli.node.as_deref(), file, &new, &passphrase),
        Command::Key(KeyCommand::Export {
            out: file,
            new,
            passphrase,
        }) => cmd::keys::export(&out, cli.node.as_deref(), &file, &new, &passphrase),
        Command::Key(KeyCommand::Import {
            file,
            account,
            new,
            passphrase,
        }) => cmd::keys::import(
            &out,
            cli.node.as_deref(),
            &file,
            account.as_deref(),
            &new,
            &passphrase,
        ),
        Command::Key(KeyCommand::Rekey { new, passphrase }) => {
            cmd::keys::rekey(&out, cli.node.as_deref(), &new, &passphrase)
        }
        Command::Pack(a) => cmd::pack::pack(&out, a),
        Command::Deploy(a) => cmd::deploy::deploy(&out, a),
        Command::Transfer(a) => cmd::wallet::transfer(&out, cli.node.as_deref(), a),
        Command::Balance(a) => cmd::wallet::balance(&out, cli.node.as_deref(), a),
        Command::History(a) => cmd::wallet::history(&out, cli.node.as_deref(), a),
        Command::Chain(ChainCommand::Verify) => cmd::chain::verify(&out, cli.node.as_deref()),
        Command::Chain(ChainCommand::Export { out: file }) => {
            cmd::chain::export(&out, cli.node.as_deref(), &file)
        }
        Command::Chain(ChainCommand::Import { file }) => {
            cmd::chain::import(&out, cli.node.as_deref(), &file)
        }
        Command::Chain(ChainCommand::Torrents { out: dir }) => {
            cmd::chain::torrents(&out, cli.node.as_deref(), dir.as_deref())
        }
        Command::Node(NodeCommand::Run {
            passphrase_stdin,
            full,
            log_file,
            passphrase,
        }) => cmd::node::run(
            cli.node.as_deref(),
            passphrase_stdin,
            full,
            log_file.as_deref(),
            passphrase,
        ),
        Command::Node(NodeCommand::Start { passphrase }) => {
            cmd::node::start(&out, cli.node.as_deref(), passphrase)
        }
        Command::Node(NodeCommand::InstallService(a)) => {
            cmd::install::install_service(&out, cli.node.as_deref(), a)
        }
        Command::Node(NodeCommand::Stop) => cmd::node::stop(&out, cli.node.as_deref()),
        Command::Node(NodeCommand::Status) | Command::Status => {
            cmd::node::status(&out, cli.node.as_deref())
        }
        Command::Peers { action } => cmd::node::peers(&out, cli.node.as_deref(), action),
        Command::Dht(DhtCommand::Bootstrap { nodes, bind }) => {
            cmd::node::dht_bootstrap(nodes, bind)
        }
        Command::Issue(a) => cmd::sign::issue(&out, cli.node.as_deref(), a),
        Command::Distribute => cmd::sign::distribute(&out, cli.node.as_deref()),
        Command::Sign(c) => cmd::sign::sign(&out, cli.node.as_deref(), c),
        Command::Signers { action } => cmd::sign::signers(&out, cli.node.as_deref(), action),
        Command::Members { action } => cmd::sign::members(&out, cli.node.as_deref(), action),
        Command::Upgrade(c) => cmd::upgrade::upgrade(&out, cli.node.as_deref(), c),
        Command::Deployments(a) => cmd::upgrade::deployments(&out, cli.node.as_deref(), a),
        Command::Import(a) => cmd::upgrade::import(&out, cli.node.as_deref(), a),
        Command::Fetch(a) => cmd::fetch::fetch(&out, a),
        Command::Tui => crate::tui::run(crate::nodedir::NodeDir::find(cli.node.as_deref())?),
        Command::Config(ConfigCommand::Reload) => cmd::node::reload(&out, cli.node.as_deref()),
        Command::Completions { shell, static_ } => {
            let script = completion_script(shell, !static_);
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
            Ok(())
        }
        Command::Man { dir } => cmd::man(&out, dir.as_deref()),
    }
}
