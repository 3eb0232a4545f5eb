//! How a command reaches the node: through the running daemon's control socket, or — when
//! no daemon runs — by opening the store itself. Both give the same JSON (`crate::views`).

use super::{CmdError, EXIT_NO_DAEMON, EXIT_REFUSED};
use crate::chain::{Chain, ChainError, ImportSummary, VerifyReport};
use crate::control::client::{Client, ClientError};
use crate::control::{ErrorKind, TransferOutput, ask};
use crate::ids::AccountId;
use crate::keyfile::Passphrase;
use crate::ledger::Payment;
use crate::nodedir::NodeDir;
use crate::store::StoreError;
use crate::views;

pub enum Backend {
    Daemon(Client),
    Direct(Box<Chain>),
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
    /// The daemon, or else the store opened to read: a daemon starting meanwhile is not
    /// kept from its store.
    pub fn open(dir: &NodeDir) -> Result<Self, CmdError> {
        Self::connect_or(dir, NodeDir::read_chain)
    }

    /// The daemon, or else the store opened to write (held for as long as the command runs).
    pub fn open_writable(dir: &NodeDir) -> Result<Self, CmdError> {
        Self::connect_or(dir, |d| d.load_chain(false))
    }

    fn connect_or(
        dir: &NodeDir,
        open: fn(&NodeDir) -> Result<Chain, crate::nodedir::NodeDirError>,
    ) -> Result<Self, CmdError> {
        let socket = dir.socket_path(&dir.node_config()?);
        match Client::connect(&socket) {
            Ok(c) => Ok(Self::Daemon(c)),
            Err(ClientError::NotRunning(_)) => Ok(Self::Direct(Box::new(open(dir)?))),
            Err(e) => Err(e.into()),
        }
    }

    pub fn balance(
        &mut self,
        account: Option<AccountId>,
        me: AccountId,
    ) -> Result<views::Balance, CmdError> {
        match self {
            Self::Daemon(c) => Ok(c.ask(ask::Balance {
                account: account.map(|a| a.to_string()),
            })?),
            Self::Direct(chain) => Ok(views::balance(
                chain.ledger(),
                &account.unwrap_or(me),
                crate::clock::now(),
            )),
        }
    }

    pub fn history(
        &mut self,
        account: Option<AccountId>,
        me: AccountId,
        limit: usize,
    ) -> Result<views::History, CmdError> {
        match self {
            Self::Daemon(c) => Ok(c.ask(ask::History {
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

    /// Signs and stores a transfer (the daemon signs with the key it holds). Through the
    /// daemon, the transfer is asked for as the account's next record (`seq`), so that when
    /// the answer is lost — the daemon died, the connection broke — its outcome can be
    /// settled for certain and a retry never pays twice (see [`settle_lost_answer`]).
    pub fn transfer(
        &mut self,
        dir: &NodeDir,
        payment: Payment,
        passphrase: &Passphrase,
    ) -> Result<views::Transferred, CmdError> {
        match self {
            Self::Daemon(c) => {
                let wire: Vec<TransferOutput> = payment
                    .outputs
                    .iter()
                    .map(|o| TransferOutput {
                        account: o.account.to_string(),
                        asset: o.asset.clone(),
                        amount: o.amount,
                    })
                    .collect();
                // Another transfer may take the seq between reading it and asking: read again.
                for _ in 0..5 {
                    let next = c.ask(ask::Balance { account: None })?.next_seq;
                    let req = ask::Transfer {
                        outputs: wire.clone(),
                        memo: payment.memo.clone(),
                        seq: Some(next),
                        redeem: payment.redeem.clone(),
                        vouch: payment.vouch.iter().map(|a| a.to_string()).collect(),
                    };
                    match c.ask(req.clone()) {
                        Ok(v) => return Ok(v),
                        Err(ClientError::Daemon {
                            kind: ErrorKind::SeqTaken,
                            ..
                        }) => continue,
                        Err(e @ (ClientError::Io(_) | ClientError::Protocol(_))) => {
                            eprintln!(
                                "the daemon's answer was lost ({e}); finding out whether the transfer was made…"
                            );
                            return settle_lost_answer(dir, &req, &payment, next);
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(CmdError::msg(
                    "other transfers kept taking this account's next record; try again",
                ))
            }
            Self::Direct(chain) => {
                let key = dir.secret_key(passphrase)?;
                match chain.transfer(
                    dir.deployment.node_id,
                    &key,
                    payment,
                    crate::clock::now(),
                    None,
                ) {
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

    pub fn verify(&mut self, dir: &NodeDir) -> Result<VerifyReport, CmdError> {
        match self {
            Self::Daemon(c) => Ok(c.ask(ask::Verify {})?),
            Self::Direct(chain) => Ok(crate::chain::verify(dir.params()?, chain.store())?),
        }
    }

    /// The chain as an archive, in memory.
    pub fn export(&mut self) -> Result<Vec<u8>, CmdError> {
        match self {
            Self::Daemon(c) => {
                let v: views::Archive = c.ask(ask::Export {})?;
                Ok(v.archive.into_bytes())
            }
            Self::Direct(chain) => {
                let cod = chain.ledger().params().cod;
                Ok(crate::chain::export_to(&cod, chain.store(), Vec::new())?.0)
            }
        }
    }

    /// Writes the chain as an archive into `tmp`, a new file, as the records are read (the
    /// archive is never whole in memory, but from a daemon too old to write it). Returns
    /// how many records it holds.
    pub fn export_into(&mut self, tmp: &tempfile::NamedTempFile) -> Result<usize, CmdError> {
        let path = std::path::absolute(tmp.path()).map_err(crate::fsutil::io_err(tmp.path()))?;
        let io = |e| CmdError::from(crate::fsutil::io_err(&path)(e));
        if let Self::Direct(chain) = self {
            let cod = chain.ledger().params().cod;
            let out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
            let (out, n) = crate::chain::export_to(&cod, chain.store(), out)?;
            out.into_inner().map_err(|e| io(e.into_error()))?;
            return Ok(n);
        }
        let Self::Daemon(c) = self else {
            unreachable!("a backend is the daemon or the store")
        };
        match c.ask(ask::ExportFile { path: path.clone() }) {
            Ok(v) => Ok(v.records),
            // A daemon older than `export_file` does not know the request, and one that
            // cannot open the file (another mount namespace, say) says so: the archive
            // then comes in the answer.
            Err(ClientError::Daemon {
                kind: ErrorKind::BadRequest,
                ..
            }) => {
                let bytes = self.export()?;
                std::io::Write::write_all(&mut tmp.as_file(), &bytes).map_err(io)?;
                Ok(crate::archive::count(&bytes))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Imports an archive held in memory.
    pub fn import(&mut self, archive: &[u8]) -> Result<ImportSummary, CmdError> {
        match self {
            Self::Daemon(c) => Ok(c.ask(ask::Import {
                archive: String::from_utf8_lossy(archive).into_owned(),
            })?),
            Self::Direct(chain) => {
                crate::chain::import(chain, std::io::Cursor::new(archive)).map_err(CmdError::msg)
            }
        }
    }

    /// Imports the archive in `file`, read as it goes, never whole in memory (but by a daemon
    /// too old to read it, or one that cannot open it: the archive then goes in the request).
    pub fn import_file(&mut self, file: &std::path::Path) -> Result<ImportSummary, CmdError> {
        let meta = std::fs::metadata(file).map_err(crate::fsutil::io_err(file))?;
        if !meta.is_file() {
            // A pipe (`<(…)`, /dev/stdin) is read once, as it comes: whole, then imported.
            let bytes = crate::fsutil::read(file)?;
            return self.import(&bytes);
        }
        // The daemon opens no symbolic link: it is given where one leads.
        let path = std::fs::canonicalize(file).map_err(crate::fsutil::io_err(file))?;
        let c = match self {
            Self::Direct(chain) => {
                let f = std::fs::File::open(&path).map_err(crate::fsutil::io_err(&path))?;
                return crate::chain::import(chain, f).map_err(CmdError::msg);
            }
            Self::Daemon(c) => c,
        };
        match c.ask(ask::ImportFile { path: path.clone() }) {
            Ok(v) => Ok(v),
            Err(ClientError::Daemon {
                kind: ErrorKind::BadRequest,
                ..
            }) => {
                let bytes = crate::fsutil::read(&path)?;
                self.import(&bytes)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// How long a lost answer is settled for before the outcome is declared unknown.
const SETTLE_SECS: u64 = 60;

/// The daemon took `req` (a transfer as record `seq` of this account) but its answer was
/// lost. Settles what happened, for certain:
/// - a daemon answers: the same request is sent again. Only one record can take `seq`, so
///   either this makes the transfer (the first never did) or it is refused because `seq` is
///   taken — and the record there says whether it is this transfer.
/// - no daemon answers: the store is opened for writing, which RocksDB allows only once no
///   daemon holds it — so no transfer is still on its way — and the record at `seq` says.
fn settle_lost_answer(
    dir: &NodeDir,
    req: &ask::Transfer,
    payment: &Payment,
    seq: u64,
) -> Result<views::Transferred, CmdError> {
    let me = dir.deployment.node_id;
    let socket = dir.socket_path(&dir.node_config()?);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(SETTLE_SECS);
    let unknown = || {
        CmdError::msg(format!(
            "the transfer's outcome is unknown: for {SETTLE_SECS} s no daemon answered and the store stayed busy; \
             look for record {seq} of this account in `cod history` before trying again"
        ))
    };
    while std::time::Instant::now() < deadline {
        match Client::connect(&socket) {
            // A connection that breaks at any step (the daemon restarting, say) is tried
            // again: only an answer settles it.
            Ok(mut c) => match ask_daemon(&mut c, req, seq) {
                Ok(Asked::Made(v)) => return Ok(v),
                Ok(Asked::Taken(found, balance)) => {
                    return judge(&found, &balance, me, payment, seq);
                }
                Err(e @ ClientError::Daemon { .. }) => return Err(e.into()),
                Err(_) => {}
            },
            Err(ClientError::NotRunning(_)) => match dir.load_chain(false) {
                Ok(chain) => {
                    let l = chain.ledger();
                    let found = views::record_at(l, &me, seq);
                    let balance = views::balance(l, &me, crate::clock::now());
                    return judge(&found, &balance, me, payment, seq);
                }
                Err(crate::nodedir::NodeDirError::Store(StoreError::Locked(_))) => {}
                Err(e) => return Err(e.into()),
            },
            Err(_) => {}
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    Err(unknown())
}

/// What asking the daemon again for a transfer whose answer was lost gives.
enum Asked {
    /// It made it now (the first request never reached it).
    Made(views::Transferred),
    /// The seq is taken: the record at it, and the account's balance, to judge by.
    Taken(Option<views::Located>, views::Balance),
}

fn ask_daemon(c: &mut Client, req: &ask::Transfer, seq: u64) -> Result<Asked, ClientError> {
    match c.ask(req.clone()) {
        Ok(v) => Ok(Asked::Made(v)),
        Err(ClientError::Daemon {
            kind: ErrorKind::SeqTaken,
            ..
        }) => {
            let found = c.ask(ask::RecordAt { account: None, seq })?;
            let balance = c.ask(ask::Balance { account: None })?;
            Ok(Asked::Taken(found, balance))
        }
        Err(e) => Err(e),
    }
}

/// Is the record found at `seq` (a `RecordAt` answer) this transfer? Then it was made;
/// if there is none, or another, it was not.
fn judge(
    found: &Option<views::Located>,
    balance: &views::Balance,
    me: AccountId,
    payment: &Payment,
    seq: u64,
) -> Result<views::Transferred, CmdError> {
    let record = found
        .as_ref()
        .map(|f| crate::ledger::Record::from_json(f.record.clone()))
        .transpose()
        .map_err(|e| CmdError::msg(format!("the record at seq {seq} is unreadable: {e}")))?;
    let ours = record.as_ref().is_some_and(|r| {
        let mut want = payment.outputs.clone();
        want.sort();
        let mut vouch = payment.vouch.clone();
        vouch.sort();
        vouch.dedup();
        matches!(&r.body().content, crate::ledger::Content::Transfer(t)
            if r.account() == me && t.outputs == want && t.memo == payment.memo
                && t.redeem == payment.redeem && t.vouch == vouch)
    });
    match record {
        Some(r) if ours => Ok(views::Transferred {
            record: r.hash(),
            account: r.account(),
            outputs: r.body().content.outputs().to_vec(),
            spendable_after: balance
                .assets
                .iter()
                .map(|(k, a)| (k.clone(), a.spendable))
                .collect(),
            recovered: true,
        }),
        Some(_) => Err(CmdError {
            code: EXIT_REFUSED,
            error: anyhow::anyhow!(
                "not paid: another transfer became record {seq} of this account; check `cod history` before trying again"
            ),
        }),
        None => Err(CmdError::msg(
            "not paid: the daemon stopped before making the transfer; nothing changed, and it is safe to try again",
        )),
    }
}
