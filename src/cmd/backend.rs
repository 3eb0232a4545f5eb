//! How a command reaches the node: through the running daemon's control socket, or — when
//! no daemon runs — by opening the store itself. Both give the same JSON (`crate::views`).

use super::{CmdError, EXIT_NO_DAEMON};
use crate::chain::{Chain, ChainError};
use crate::control::client::{Client, ClientError};
use crate::control::{Request, TransferOutput};
use crate::ids::AccountId;
use crate::keyfile::Passphrase;
use crate::ledger::Output;
use crate::nodedir::NodeDir;
use crate::views;
use serde_json::Value;

pub const EXIT_REFUSED: u8 = 4;

pub enum Backend {
    Daemon(Client),
    Direct(Box<Chain>),
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Connects to the daemon of `dir`, or says how to start one (exit code 3).
pub fn daemon(dir: &NodeDir) -> Result<Client, CmdError> {
    let socket = dir.socket_path(&dir.node_config()?);
    Client::connect(&socket).map_err(|e| match e {
        ClientError::NotRunning(_) => CmdError {
            code: EXIT_NO_DAEMON,
            error: anyhow::anyhow!(
                "no daemon is running for {}; start it with `cod --node {} node start`",
                dir.root.display(),
                dir.root.display()
            ),
        },
        other => CmdError::from(other),
    })
}

impl Backend {
    pub fn open(dir: &NodeDir) -> Result<Self, CmdError> {
        let socket = dir.socket_path(&dir.node_config()?);
        match Client::connect(&socket) {
            Ok(c) => Ok(Self::Daemon(c)),
            Err(ClientError::NotRunning(_)) => Ok(Self::Direct(Box::new(dir.load_chain()?))),
            Err(e) => Err(e.into()),
        }
    }

    pub fn balance(
        &mut self,
        account: Option<AccountId>,
        me: AccountId,
    ) -> Result<Value, CmdError> {
        match self {
            Self::Daemon(c) => Ok(c.call(&Request::Balance {
                account: account.map(|a| a.to_string()),
            })?),
            Self::Direct(chain) => Ok(views::balance(chain.ledger(), &account.unwrap_or(me))),
        }
    }

    pub fn history(
        &mut self,
        account: Option<AccountId>,
        me: AccountId,
        limit: usize,
    ) -> Result<Value, CmdError> {
        match self {
            Self::Daemon(c) => Ok(c.call(&Request::History {
                account: account.map(|a| a.to_string()),
                limit,
            })?),
            Self::Direct(chain) => Ok(views::history(
                chain.ledger(),
                &account.unwrap_or(me),
                limit,
            )),
        }
    }

    /// Signs and stores a transfer (the daemon signs with the key it holds).
    pub fn transfer(
        &mut self,
        dir: &NodeDir,
        outputs: Vec<Output>,
        memo: Option<String>,
        passphrase: &Passphrase,
    ) -> Result<Value, CmdError> {
        match self {
            Self::Daemon(c) => {
                let outputs = outputs
                    .into_iter()
                    .map(|o| TransferOutput {
                        account: o.account.to_string(),
                        asset: o.asset,
                        amount: o.amount,
                    })
                    .collect();
                Ok(c.call(&Request::Transfer { outputs, memo })?)
            }
            Self::Direct(chain) => {
                let key = dir.secret_key(passphrase)?;
                match chain.transfer(&key, outputs, memo, now()) {
                    Ok(r) => Ok(views::transfer(chain.ledger(), &r)),
                    Err(ChainError::Record(e)) => Err(CmdError {
                        code: EXIT_REFUSED,
                        error: anyhow::anyhow!(
                            "cannot transfer: {}",
                            views::explain(chain.ledger(), &e)
                        ),
                    }),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    pub fn verify(&mut self, dir: &NodeDir) -> Result<Value, CmdError> {
        match self {
            Self::Daemon(c) => Ok(c.call(&Request::Verify)?),
            Self::Direct(chain) => {
                let report = crate::chain::verify(dir.params()?, chain.store())?;
                Ok(serde_json::to_value(report).expect("report serializes"))
            }
        }
    }

    /// The chain as an archive.
    pub fn export(&mut self) -> Result<Vec<u8>, CmdError> {
        match self {
            Self::Daemon(c) => {
                let v = c.call(&Request::Export)?;
                Ok(v["archive"]
                    .as_str()
                    .unwrap_or_default()
                    .as_bytes()
                    .to_vec())
            }
            Self::Direct(chain) => Ok(crate::chain::export(chain.ledger())),
        }
    }

    pub fn import(&mut self, archive: &[u8]) -> Result<Value, CmdError> {
        match self {
            Self::Daemon(c) => Ok(c.call(&Request::Import {
                archive: String::from_utf8_lossy(archive).into_owned(),
            })?),
            Self::Direct(chain) => crate::chain::import(chain, archive).map_err(CmdError::msg),
        }
    }
}
