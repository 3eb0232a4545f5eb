//! The control socket server: one task per client, same-uid peers only, JSON lines.

use super::{NodeError, Shared, signing};
use crate::chain::ChainError;
use crate::chain::{Applied, ImportReport};
use crate::clock::now_ms;
use crate::control::{Ask, ErrorKind, Event, PROTOCOL_VERSION, Request, Response};
use crate::ids::AccountId;
use crate::ledger::Output;
use crate::lock::Locked;
use crate::signature_requests::SignError;
use crate::views;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub fn bind(path: &Path) -> Result<UnixListener, NodeError> {
    let io = |source| NodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Created with no permissions for group and others, before anyone can connect.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = listener.map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

pub async fn serve(shared: Arc<Shared>, listener: UnixListener) {
    let me = nix::unistd::getuid().as_raw();
    let mut failures = 0u32;
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = shared.shutdown.cancelled() => return,
        };
        let Some((stream, _)) =
            super::accepted(&shared, "control socket", &mut failures, conn).await
        else {
            continue;
        };
        // Only processes of this node's own user may steer it.
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == me => {}
            Ok(cred) => {
                shared.log(
                    "warn",
                    format!("refused a control connection from uid {}", cred.uid()),
                );
                continue;
            }
            Err(_) => continue,
        }
        shared.tasks.spawn(client(shared.clone(), stream));
    }
}

/// One request line, at most [`crate::control::MAX_LINE_BYTES`] (`None` at the end).
async fn read_line(
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
) -> Result<Option<Vec<u8>>, LineError> {
    let max = crate::control::MAX_LINE_BYTES;
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(max as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') && line.len() > max {
        return Err(LineError::TooLong(max));
    }
    Ok(Some(line))
}

/// Why a request line could not be read.
#[derive(Debug, thiserror::Error)]
enum LineError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("a request line is longer than {0} bytes")]
    TooLong(usize),
}

/// How the daemon answers a request of type `A`: only with an `A::Answer`, the type the
/// client reads it back as ([`crate::control::client::Client::ask`]). Taken from the request itself
/// ([`Reply::to`]), so an arm cannot answer with another request's type.
struct Reply<A>(std::marker::PhantomData<fn() -> A>);

impl<A> Clone for Reply<A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<A> Copy for Reply<A> {}

impl<A: Ask> Reply<A> {
    fn to(_: &A) -> Self {
        Self(std::marker::PhantomData)
    }

    fn ok(self, answer: A::Answer) -> Response {
        Response::Ok {
            data: serde_json::to_value(answer).expect("views serialize"),
        }
    }

    /// A signing step's outcome as an answer: its error's kind says how the client exits.
    fn answer(self, result: Result<A::Answer, SignError>) -> Response {
        match result {
            Ok(a) => self.ok(a),
            Err(e) => error(e.kind(), e.to_string()),
        }
    }
}

fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error {
        kind,
        message: message.into(),
    }
}

async fn write(
    stream: &mut tokio::net::unix::OwnedWriteHalf,
    value: &impl serde::Serialize,
) -> bool {
    let mut line = serde_json::to_vec(value).expect("responses serialize");
    line.push(b'\n');
    stream.write_all(&line).await.is_ok()
}

async fn client(shared: Arc<Shared>, stream: UnixStream) {
    let (read, mut write_half) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut greeted = false;
    loop {
        let line = tokio::select! {
            l = read_line(&mut reader) => l,
            _ = shared.shutdown.cancelled() => return,
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => return,
            Err(e) => {
                write(
                    &mut write_half,
                    &error(ErrorKind::BadRequest, e.to_string()),
                )
                .await;
                return;
            }
        };
        let req: Request = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                write(
                    &mut write_half,
                    &error(ErrorKind::BadRequest, format!("malformed request: {e}")),
                )
                .await;
                continue;
            }
        };
        if !greeted {
            let hello = match &req {
                Request::Hello(q) if q.version == PROTOCOL_VERSION => Some(Reply::to(q)),
                _ => None,
            };
            let ok = hello.is_some();
            let resp = if let Some(reply) = hello {
                reply.ok(crate::control::Greeting {
                    version: PROTOCOL_VERSION,
                })
            } else {
                error(
                    ErrorKind::BadRequest,
                    format!(
                        "this daemon speaks control protocol {PROTOCOL_VERSION}; upgrade or downgrade the client"
                    ),
                )
            };
            if !write(&mut write_half, &resp).await || !ok {
                return;
            }
            greeted = true;
            continue;
        }
        if let Request::Subscribe(q) = &req {
            let subscribed = Reply::to(q).ok(crate::control::Subscribed {});
            write(&mut write_half, &subscribed).await;
            stream_events(&shared, &mut write_half).await;
            return;
        }
        let stop = matches!(req, Request::Stop(_));
        let large = req.grows_with_chain();
        let resp = handle(&shared, req).await;
        let written = write(&mut write_half, &resp).await;
        if large {
            drop(resp);
            super::release_memory();
        }
        if !written {
            return;
        }
        if stop {
            shared.shutdown.cancel();
            return;
        }
    }
}

async fn stream_events(shared: &Shared, out: &mut tokio::net::unix::OwnedWriteHalf) {
    let mut rx = shared.events.subscribe();
    // A fresh subscriber first learns the current peers and sync state.
    let mut first: Vec<Event> = shared
        .peers
        .locked()
        .confirmed()
        .into_iter()
        .map(|p| Event::Peer {
            addr: p.addr,
            peer_id: p.peer_id.map(|n| n.to_string()).unwrap_or_default(),
            up: true,
            found_via: p.found_via.to_string(),
        })
        .collect();
    first.push(super::sync_event(&shared.view()));
    for e in first {
        if !write(out, &e).await {
            return;
        }
    }
    loop {
        let e = tokio::select! {
            e = rx.recv() => e,
            _ = shared.shutdown.cancelled() => return,
        };
        match e {
            Ok(e) => {
                if !write(out, &e).await {
                    return;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                let e = Event::Log {
                    level: "warn".into(),
                    message: format!("{n} events dropped (slow reader)"),
                    time: shared.now(),
                };
                if !write(out, &e).await {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// An address as the operator writes it: `IP` or `IP:PORT` (the port is ignored).
fn parse_ip(s: &str) -> Result<std::net::IpAddr, Response> {
    let s = s.trim();
    s.parse::<std::net::IpAddr>()
        .or_else(|_| s.parse::<std::net::SocketAddr>().map(|a| a.ip()))
        .map_err(|_| {
            error(
                ErrorKind::BadRequest,
                format!("{s:?} is not an IP address (or IP:PORT)"),
            )
        })
}

fn account(shared: &Shared, a: Option<String>) -> Result<AccountId, Response> {
    match a.as_deref() {
        None => Ok(shared.node_id),
        Some("network") => Ok(shared.params.network),
        Some(s) => s
            .parse()
            .map_err(|e: crate::ids::IdParseError| error(ErrorKind::BadRequest, e.to_string())),
    }
}

/// Opens the client's file for [`Request::ExportFile`] (to write, emptied) or
/// [`Request::ImportFile`] (to read): an absolute path to a regular file that exists (a
/// request creates nothing), not through a symbolic link at its end (and a FIFO does not keep
/// the open waiting for the other end).
fn open_client_file(path: &std::path::Path, write: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if !path.is_absolute() {
        return Err(std::io::Error::other("the path must be absolute"));
    }
    let file = std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if write {
        file.set_len(0)?;
    }
    Ok(file)
}

/// Writes the chain as last committed into `file` (see [`Request::ExportFile`]). Returns
/// the records and bytes written.
fn export_file(s: &Shared, file: std::fs::File) -> Result<(usize, u64), ExportError> {
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let (out, records) = crate::chain::export_to(&s.params.cod, s.view().store().as_ref(), out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    Ok((records, bytes))
}

/// Why [`export_file`] could not write the chain.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs blocking work (store, signatures) off the async threads.
async fn blocking(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Shared) -> Response + Send + 'static,
) -> Response {
    let s = shared.clone();
    shared
        .tasks
        .spawn_blocking(move || f(&s))
        .await
        .unwrap_or_else(|e| error(ErrorKind::Internal, e.to_string()))
}

async fn handle(shared: &Arc<Shared>, req: Request) -> Response {
    match req {
        Request::Hello(_) | Request::Subscribe(_) => {
            error(ErrorKind::BadRequest, "unexpected request")
        }
        Request::Stop(q) => {
            shared.log("info", "stop requested over the control socket");
            Reply::to(&q).ok(crate::control::Stopping { stopping: true })
        }
        Request::Status(q) => Reply::to(&q).ok(status(shared)),
        Request::Peers(q) => Reply::to(&q).ok(super::peers::PeersView {
            peers: shared.peers.locked().all(),
            addresses: shared.guard.locked().list(now_ms()),
        }),
        Request::Ban(q) => match parse_ip(&q.address) {
            Ok(ip) => {
                let now = now_ms();
                let until = q
                    .seconds
                    .map_or(u64::MAX, |s| now.saturating_add(s.saturating_mul(1000)));
                shared.guard.locked().ban(ip, until, now);
                shared.log(
                    "info",
                    format!("banned {} (by the operator)", super::guard::address(ip)),
                );
                match super::write_bans(shared) {
                    Ok(()) => Reply::to(&q).ok(super::peers::Banned {
                        banned: super::guard::address(ip),
                        until: (until != u64::MAX).then_some(until / 1000),
                    }),
                    Err(e) => error(
                        ErrorKind::Internal,
                        format!("banned, but not saved for restarts: {e}"),
                    ),
                }
            }
            Err(e) => e,
        },
        Request::Unban(q) => match parse_ip(&q.address) {
            Ok(ip) => {
                let was = shared.guard.locked().unban(&ip, now_ms());
                if was {
                    shared.log(
                        "info",
                        format!("unbanned {} (by the operator)", super::guard::address(ip)),
                    );
                }
                match super::write_bans(shared) {
                    Ok(()) => Reply::to(&q).ok(super::peers::Unbanned {
                        unbanned: super::guard::address(ip),
                        was_banned: was,
                    }),
                    Err(e) => error(
                        ErrorKind::Internal,
                        format!("unbanned, but not saved for restarts: {e}"),
                    ),
                }
            }
            Err(e) => e,
        },
        Request::Reload(q) => {
            let reply = Reply::to(&q);
            blocking(shared, move |s| match s.reload() {
                Ok(r) => reply.ok(r),
                Err(e) => error(ErrorKind::BadRequest, format!("node.ini not reloaded: {e}")),
            })
            .await
        }
        Request::AddPeer(q) => match crate::config::values::host_port(q.address.trim()) {
            Ok(addr) => {
                let new = shared
                    .peers
                    .locked()
                    .add_candidate(&addr, super::peers::FoundVia::Operator);
                if new {
                    shared.log("info", format!("peer {addr} added (by the operator)"));
                }
                Reply::to(&q).ok(super::peers::PeerAdded { added: addr, new })
            }
            Err(e) => error(ErrorKind::BadRequest, format!("{:?}: {e}", q.address)),
        },
        Request::RemovePeer(q) => {
            let reply = Reply::to(&q);
            // (Spelled as `AddPeer` spells it, so what was added can be removed.)
            let address = q.address.trim();
            let addr =
                crate::config::values::host_port(address).unwrap_or_else(|_| address.to_string());
            let was_known = shared.peers.locked().remove(&addr);
            if !was_known {
                return reply.ok(super::peers::PeerRemoved {
                    removed: addr,
                    was_known,
                });
            }
            shared.log("info", format!("peer {addr} removed (by the operator)"));
            // (peers.json is written off the async threads.)
            blocking(shared, move |s| {
                super::write_remembered(s);
                reply.ok(super::peers::PeerRemoved {
                    removed: addr,
                    was_known,
                })
            })
            .await
        }
        // Views read the chain as last committed, off the async threads (they read the
        // store), without waiting for the writer.
        Request::Balance(q) => {
            account_view(shared, Reply::to(&q), q.account, |s, a| {
                views::balance(&s.view(), &a, s.now())
            })
            .await
        }
        Request::History(q) => {
            let limit = q.limit;
            account_view(shared, Reply::to(&q), q.account, move |s, a| {
                views::history(&s.view(), &a, limit)
            })
            .await
        }
        Request::RecordAt(q) => {
            let seq = q.seq;
            account_view(shared, Reply::to(&q), q.account, move |s, a| {
                views::record_at(&s.view(), &a, seq)
            })
            .await
        }
        Request::Transfer(q) => {
            let reply = Reply::to(&q);
            let crate::control::ask::Transfer {
                outputs,
                memo,
                seq,
                redeem,
                vouch,
            } = q;
            let mut outs = Vec::new();
            for o in outputs {
                match account(shared, Some(o.account)) {
                    Ok(a) => outs.push(Output {
                        account: a,
                        asset: o.asset,
                        amount: o.amount,
                    }),
                    Err(e) => return e,
                }
            }
            let mut vouched = Vec::new();
            for v in vouch {
                match account(shared, Some(v)) {
                    Ok(a) => vouched.push(a),
                    Err(e) => return e,
                }
            }
            let payment = crate::ledger::Payment {
                outputs: outs,
                memo,
                redeem,
                vouch: vouched,
            };
            let shared2 = shared.clone();
            // Peers see none of it until it is out along its stem.
            let hiding = shared.hide_from_peers();
            let (resp, applied) = shared
                .tasks
                .spawn_blocking(move || {
                    let mut chain = shared2.chain();
                    match chain.transfer(shared2.node_id, &shared2.key, payment, shared2.now(), seq)
                    {
                        Ok(r) => (
                            reply.ok(views::transfer(chain.ledger(), &r)),
                            vec![r.hash()],
                        ),
                        Err(e @ ChainError::SeqTaken { .. }) => {
                            (error(ErrorKind::SeqTaken, e.to_string()), vec![])
                        }
                        Err(ChainError::Record(e)) => (
                            error(
                                ErrorKind::Refused,
                                format!("cannot transfer: {}", views::explain(chain.ledger(), &e)),
                            ),
                            vec![],
                        ),
                        Err(e) => (error(ErrorKind::Internal, e.to_string()), vec![]),
                    }
                })
                .await
                .unwrap_or_else(|e| (error(ErrorKind::Internal, e.to_string()), vec![]));
            shared.announce_applied(&applied, false);
            shared.originated(&applied);
            drop(hiding);
            resp
        }
        Request::Issue(q) => {
            let reply = Reply::to(&q);
            let mut named = std::collections::BTreeMap::new();
            for (a, items) in q.work {
                match account(shared, Some(a)) {
                    Ok(a) => named.insert(a, items),
                    Err(e) => return e,
                };
            }
            let attest = q.attest;
            signing_step(shared, reply, move |s| {
                signing::propose_issue(s, attest, named)
            })
            .await
        }
        Request::Members(q) => {
            let reply = Reply::to(&q);
            blocking(shared, move |s| reply.ok(views::members(&s.view()))).await
        }
        Request::Torrents(q) => Reply::to(&q).ok(shared.torrents.locked().clone()),
        Request::MembersChange(q) => {
            let reply = Reply::to(&q);
            let mut lists = [Vec::new(), Vec::new()];
            for (list, names) in lists.iter_mut().zip([q.admit, q.remove]) {
                for a in names {
                    match account(shared, Some(a)) {
                        Ok(a) => list.push(a),
                        Err(e) => return e,
                    }
                }
            }
            let [admit, remove] = lists;
            signing_step(shared, reply, move |s| {
                signing::propose_members(s, admit, remove)
            })
            .await
        }
        Request::Distribute(q) => {
            signing_step(shared, Reply::to(&q), signing::propose_special).await
        }
        Request::Signers(q) => Reply::to(&q).ok(signing::signers(shared)),
        Request::Handover(q) => {
            let reply = Reply::to(&q);
            signing_step(shared, reply, move |s| {
                signing::propose_handover(s, &q.to, q.version, q.rules)
            })
            .await
        }
        Request::SignersChange(q) => {
            let reply = Reply::to(&q);
            signing_step(shared, reply, move |s| {
                signing::propose_signer_change(s, &q.add, &q.remove, q.quorum)
            })
            .await
        }
        Request::SignList(q) => Reply::to(&q).ok(signing::list(shared)),
        Request::SignShow(q) => Reply::to(&q)
            .answer(signing::find(shared, &q.id).and_then(|h| signing::view(shared, &h))),
        Request::SignApprove(q) => match signing::find(shared, &q.id) {
            Ok(h) => signing_step(shared, Reply::to(&q), move |s| signing::approve(s, &h)).await,
            Err(e) => error(e.kind(), e.to_string()),
        },
        Request::SignRepropose(q) => match signing::find(shared, &q.id) {
            Ok(h) => signing_step(shared, Reply::to(&q), move |s| signing::repropose(s, &h)).await,
            Err(e) => error(e.kind(), e.to_string()),
        },
        Request::SignReject(q) => match signing::find(shared, &q.id) {
            Ok(h) => {
                let reply = Reply::to(&q);
                signing_step(shared, reply, move |s| signing::reject(s, &h, q.reason)).await
            }
            Err(e) => error(e.kind(), e.to_string()),
        },
        Request::Upgrades(q) => Reply::to(&q).ok(super::Offers {
            offers: shared.offers.locked().values().cloned().collect(),
        }),
        Request::Recent(q) => {
            let (reply, limit) = (Reply::to(&q), q.limit.min(1000));
            blocking(shared, move |s| reply.ok(views::recent(&s.view(), limit))).await
        }
        Request::Verify(q) => {
            let reply = Reply::to(&q);
            blocking(shared, move |s| {
                // From one moment of the store, without holding the chain.
                match crate::chain::verify(s.params.clone(), s.view().store().as_ref()) {
                    Ok(report) => reply.ok(report),
                    Err(e) => error(ErrorKind::Internal, e.to_string()),
                }
            })
            .await
        }
        Request::ExportFile(q) => {
            let (reply, path) = (Reply::to(&q), q.path);
            blocking(shared, move |s| {
                let file = match open_client_file(&path, true) {
                    Ok(f) => f,
                    Err(e) => {
                        let e = format!("cannot open {}: {e}", path.display());
                        return error(ErrorKind::BadRequest, e);
                    }
                };
                match export_file(s, file) {
                    Ok((records, bytes)) => reply.ok(views::Exported { records, bytes }),
                    Err(e) => error(
                        ErrorKind::Internal,
                        format!("cannot export to {}: {e}", path.display()),
                    ),
                }
            })
            .await
        }
        Request::Export(q) => {
            let reply = Reply::to(&q);
            blocking(shared, move |s| {
                match crate::chain::export_to(&s.params.cod, s.view().store().as_ref(), Vec::new())
                {
                    Ok((bytes, _)) => reply.ok(views::Archive {
                        archive: String::from_utf8_lossy(&bytes).into_owned(),
                    }),
                    Err(e) => error(ErrorKind::Internal, e.to_string()),
                }
            })
            .await
        }
        Request::Import(q) => {
            let reply = Reply::to(&q);
            import(shared, reply, ErrorKind::BadRequest, move |s| {
                let archive = std::io::Cursor::new(q.archive.into_bytes());
                s.import_archive(archive, super::ArchiveFrom::Operator)
            })
            .await
        }
        Request::ImportFile(q) => {
            let file = match open_client_file(&q.path, false) {
                Ok(f) => f,
                Err(e) => {
                    let e = format!("cannot open {}: {e}", q.path.display());
                    return error(ErrorKind::BadRequest, e);
                }
            };
            import(shared, Reply::to(&q), ErrorKind::Refused, move |s| {
                s.import_archive(file, super::ArchiveFrom::Operator)
            })
            .await
        }
    }
}

/// A view of `account` (default: this node's), computed off the async threads.
async fn account_view<A: Ask>(
    shared: &Arc<Shared>,
    reply: Reply<A>,
    account: Option<String>,
    view: impl FnOnce(&Shared, AccountId) -> A::Answer + Send + 'static,
) -> Response {
    match self::account(shared, account) {
        Ok(a) => blocking(shared, move |s| reply.ok(view(s, a))).await,
        Err(e) => e,
    }
}

/// Runs an import off the async threads and announces what it applied (news to the
/// network, perhaps); an archive it does not take is answered as `refused`.
async fn import<A: Ask<Answer = crate::chain::ImportSummary>>(
    shared: &Arc<Shared>,
    reply: Reply<A>,
    refused: ErrorKind,
    run: impl FnOnce(&Shared) -> Result<ImportReport, (String, Applied)> + Send + 'static,
) -> Response {
    let s = shared.clone();
    let (resp, applied) = shared
        .tasks
        .spawn_blocking(move || match run(&s) {
            Ok(report) => {
                let total = s.view().state().applied_count();
                (reply.ok(report.summary(total)), report.applied)
            }
            Err((e, applied)) => (error(refused, e), applied),
        })
        .await
        .unwrap_or_else(|e| {
            (
                error(ErrorKind::Internal, e.to_string()),
                Applied::default(),
            )
        });
    shared.announce_imported(&applied);
    resp
}

/// Runs a signing step on a blocking thread (it may sign and touch the store) inside the
/// runtime, so it can also spawn its network sends.
async fn signing_step<A: Ask>(
    shared: &Arc<Shared>,
    reply: Reply<A>,
    f: impl FnOnce(&Arc<Shared>) -> Result<A::Answer, SignError> + Send + 'static,
) -> Response
where
    A::Answer: Send + 'static,
{
    let (s, handle) = (shared.clone(), tokio::runtime::Handle::current());
    let step = shared.tasks.spawn_blocking(move || {
        let _guard = handle.enter();
        f(&s)
    });
    match step.await {
        Ok(result) => reply.answer(result),
        Err(e) => error(ErrorKind::Internal, e.to_string()),
    }
}

/// `cod status`: identity, versions, uptime, peers, the chain at a glance, this node's balance.
pub fn status(shared: &Shared) -> views::Status {
    let (peers, clock) = {
        let table = shared.peers.locked();
        (table.all(), table.clock_offset())
    };
    // Waiting for this member: open, not yet signed here, and this node can sign it.
    let signature_requests = signing::waiting(shared);
    let l = shared.view();
    let newest = shared
        .offers
        .locked()
        .values()
        .filter_map(|o| {
            semver::Version::parse(&o.cod_version)
                .ok()
                .map(|v| (v, o.clone()))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, o)| o);
    views::Status {
        cod_id: shared.dir.deployment.cod_id,
        ledger: shared.params.cod,
        node_id: shared.node_id,
        peer_id: shared.transport.peer_id(),
        addr: shared.info.addr.clone(),
        pid: std::process::id(),
        software_version: shared.info.software_version.clone(),
        com_version: shared.info.com_version.clone(),
        cod_version: shared.info.cod_version.clone(),
        uptime: shared.now().saturating_sub(shared.started),
        peers: views::PeerCounts {
            confirmed: peers.iter().filter(|p| p.confirmed).count(),
            known: peers.len(),
        },
        chain: views::chain_summary(&l, shared.now()),
        balance: views::balance(&l, &shared.node_id, shared.now()),
        newer_version_seen: newest.map(|o| views::NewerVersion {
            cod_version: o.cod_version,
            cod_id: o.cod_id,
            peer: o.peers.iter().next().cloned(),
        }),
        signature_requests,
        handover: l.state().handover.as_ref().map(|h| views::HandoverSummary {
            to: h.to,
            version: h.version.clone(),
            rules: h.rules,
            frozen: l.state().frozen(&shared.params).is_some(),
        }),
        best_peer_applied: peers
            .iter()
            .filter(|p| p.confirmed)
            .filter_map(|p| p.applied)
            .max(),
        clock,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client names for an export or an import must be an existing regular file, by
    /// an absolute path that does not end in a symbolic link; only such a file is opened
    /// (and, to export into, emptied).
    #[test]
    fn a_client_file_is_an_existing_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"old").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        for write in [false, true] {
            for bad in [
                std::path::PathBuf::from("relative"),
                dir.path().join("missing"),
                dir.path().to_path_buf(),
                link.clone(),
                fifo.clone(),
            ] {
                assert!(open_client_file(&bad, write).is_err(), "{}", bad.display());
            }
        }
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"old",
            "untouched through the link"
        );
        let mut read = String::new();
        std::io::Read::read_to_string(&mut open_client_file(&file, false).unwrap(), &mut read)
            .unwrap();
        assert_eq!(read, "old", "read as it is");
        open_client_file(&file, true).unwrap();
        assert!(std::fs::read(&file).unwrap().is_empty());
        assert!(!dir.path().join("missing").exists(), "nothing created");
    }
}
