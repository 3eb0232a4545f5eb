//! Command-line definitions (clap) and dispatch. The work is done in [`crate::cmd`].

use crate::cmd;
use crate::ids::CodId;
use crate::keyfile::Passphrase;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "cod",
    version,
    about = "Run a node of a decentralized, anonymous collaboration network (a cod).",
    after_help = "Exit codes: 0 success, 1 failure (the message says why), 2 bad usage, \
                  3 no daemon running where one is needed.\n\
                  Scripts: add --json for stable machine-readable output on stdout."
)]
pub struct Cli {
    /// Node directory to act on [default: the only node under $XDG_DATA_HOME/cod]
    #[arg(long, global = true, env = "COD_NODE", value_name = "DIR")]
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
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Show a key's size and fingerprint and, given a cod, the node id it has there
    Show(KeyShowArgs),
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
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

pub fn dispatch(cli: Cli) -> Result<(), cmd::CmdError> {
    let out = cmd::Output::new(cli.json);
    match cli.command {
        Command::Keygen(a) => cmd::keys::keygen(&out, a),
        Command::Key(KeyCommand::Show(a)) => cmd::keys::show(&out, a),
        Command::Pack(a) => cmd::pack::pack(&out, a),
        Command::Deploy(a) => cmd::deploy::deploy(&out, a),
    }
}
