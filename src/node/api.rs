//! The cod REST API server (axum): the handlers behind `crate::api::ROUTES`. Every request is
//! bounded in body size, time and concurrency; every error is `{"error", "reason"}` JSON.

use super::Shared;
use super::guard::{Admit, Offense};
use crate::api::*;
use crate::chain::View;
use crate::clock::now_ms;
use crate::ids::{AccountId, RecordHash};
use crate::ledger::Record;
use crate::lock::Locked;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

type S = Arc<Shared>;

/// An error answer.
pub struct ApiErr(StatusCode, &'static str, String);

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(ErrorBody {
                error: self.1.to_string(),
                reason: self.2,
            }),
        )
            .into_response()
    }
}

fn bad(reason: impl Into<String>) -> ApiErr {
    ApiErr(StatusCode::BAD_REQUEST, "bad_request", reason.into())
}

fn not_found(reason: impl Into<String>) -> ApiErr {
    ApiErr(StatusCode::NOT_FOUND, "not_found", reason.into())
}

/// A body as JSON. A malformed one is answered 400 but not held against its sender: a
/// node of another version may well send fields this one does not know.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiErr> {
    serde_json::from_slice(body).map_err(|e| bad(format!("malformed JSON: {e}")))
}

/// The address a request came from (set by [`serve`] on every request).
#[derive(Clone, Copy, Debug)]
pub struct Remote(pub IpAddr);

pub fn router(shared: S) -> Router {
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/challenge", post(challenge))
        .route("/v1/peers", get(peers))
        .route("/v1/records/{hash}", get(record))
        .route("/v1/records", post(submit))
        .route("/v1/stem", post(stem))
        .route("/v1/chains/{account}", get(chain))
        .route("/v1/log", get(log))
        .route("/v1/sync/summary", get(summary))
        .route("/v1/sync/buckets", get(buckets))
        .route("/v1/sync/heads/{bucket}", get(heads))
        .route("/v1/sign-requests", get(open_requests).post(sign_request))
        .route("/v1/sign-requests/{id}/rejections", post(sign_rejection))
        .fallback(not_a_route)
        .method_not_allowed_fallback(|| async {
            ApiErr(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; see docs/openapi.json".into(),
            )
        })
        .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(REQUEST_TIMEOUT_SECS),
        ))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn(super::metrics::track))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("a request handler panicked; the node goes on");
                ApiErr(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the node failed to handle this request".into(),
                )
                .into_response()
            },
        ))
        .with_state(shared)
}

async fn not_a_route() -> ApiErr {
    not_found("no such route; see docs/openapi.json")
}

/// Per request: a banned address is turned away (and its connection closed), and each
/// address keeps to its request rate.
async fn gate(
    State(s): State<S>,
    remote: Option<Extension<Remote>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(Extension(Remote(ip))) = remote {
        let mut guard = s.guard.locked();
        if guard.is_banned(&ip, now_ms()) {
            drop(guard);
            let mut r = ApiErr(
                StatusCode::FORBIDDEN,
                "banned",
                "this address is banned for misbehaving".into(),
            )
            .into_response();
            r.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            return r;
        }
        if !guard.allow_request(ip, now_ms()) {
            drop(guard);
            return ApiErr(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests from this address; slow down".into(),
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Error answers made without a body anywhere below (a timeout, say) get the JSON body
/// every error has.
async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let r = next.run(req).await;
    let status = r.status();
    let empty = r
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .is_some_and(|v| v == "0")
        || axum::body::HttpBody::size_hint(r.body()).exact() == Some(0);
    if !(status.is_client_error() || status.is_server_error()) || !empty {
        return r;
    }
    let error = status
        .canonical_reason()
        .unwrap_or("error")
        .to_lowercase()
        .replace(' ', "_");
    (
        status,
        Json(ErrorBody {
            error,
            reason: format!("{status}"),
        }),
    )
        .into_response()
}

/// Serves the node's one public port: every connection passes the guard (bans,
/// connections per address and in all); one whose first byte is 19 (the BitTorrent
/// handshake) goes to the seeder, anything else to the REST API.
pub async fn serve(shared: S, listener: tokio::net::TcpListener) {
    let app = router(shared.clone());
    let our_id = crate::seeder::peer_id();
    let mut connections = tokio::task::JoinSet::new();
    let mut failures = 0u32;
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = shared.shutdown.cancelled() => break,
        };
        let Some((stream, addr)) = super::accepted(&shared, "API port", &mut failures, conn).await
        else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let ip = addr.ip();
        match shared.guard.locked().admit(ip, now_ms()) {
            Admit::Yes => {}
            refused => {
                tracing::debug!("refused a connection from {addr}: {refused:?}");
                continue; // dropping the stream closes it: the cheapest answer
            }
        }
        let ticket = Ticket {
            shared: shared.clone(),
            ip,
        };
        connections.spawn(connection(ticket, stream, app.clone(), our_id));
    }
    // Give open connections a moment to finish what they are doing.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(3), drain)
        .await
        .is_err()
    {
        connections.abort_all();
    }
}

/// An admitted connection: released from the guard when dropped.
struct Ticket {
    shared: S,
    ip: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.shared.guard.locked().release(self.ip);
    }
}

async fn connection(ticket: Ticket, stream: tokio::net::TcpStream, app: Router, our_id: [u8; 20]) {
    let (shared, ip) = (ticket.shared.clone(), ticket.ip);
    let mut first = [0u8; 1];
    if !matches!(
        tokio::time::timeout(shared.config.limits.first_byte, stream.peek(&mut first)).await,
        Ok(Ok(1))
    ) {
        return;
    }
    if first[0] == 19 {
        if !shared.guard.locked().admit_wire(ip) {
            return;
        }
        let result = tokio::select! {
            r = crate::seeder::serve(stream, shared.library.clone(), our_id) => r,
            _ = shared.shutdown.cancelled() => Ok(()),
        };
        shared.guard.locked().release_wire(ip);
        if let Err(e) = result {
            tracing::debug!("peer wire {ip}: {e}");
            if e.is_misbehaviour() {
                shared.offended(ip, Offense::Protocol);
            }
        }
        return;
    }
    let on_bad_head = {
        let shared = shared.clone();
        move |status: u16| {
            if status != 400 {
                shared.offended(ip, Offense::BadHead);
            }
        }
    };
    let io = hyper_util::rt::TokioIo::new(super::http::JsonErrors::new(stream, on_bad_head));
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(Remote(ip));
        tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new))
    });
    let conn = super::http::builder(shared.config.limits.head_time).serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shared.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(3), conn).await;
        }
    }
    drop(ticket);
}

/// Bodies must arrive at this rate, on average, after node.ini's `[limits] body_grace`: a
/// body trickled in to hold a connection and a handler is cut off.
const BODY_MIN_BYTES_PER_SEC: u64 = 16 * 1024;

/// A body declared or found larger than [`MAX_BODY_BYTES`] is still read (and dropped) up
/// to this many bytes, so that its sender reads the 413 rather than a broken pipe; beyond
/// this the connection is simply closed.
const DRAIN_BYTES: u64 = 16 << 20;

/// A request body being held, counted in the guard's budget of bytes in flight until it
/// is dropped (when its handler is done with it).
struct Held {
    bytes: Vec<u8>,
    counted: u64,
    owner: Option<(S, IpAddr)>,
}

impl std::ops::Deref for Held {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some((s, ip)) = &self.owner {
            s.guard.locked().release_body(*ip, self.counted);
        }
    }
}

/// Reads a request body of at most [`MAX_BODY_BYTES`], arriving fast enough (see
/// [`BODY_MIN_BYTES_PER_SEC`]), within the budget of body bytes held at once (503 beyond
/// it). Memory held is bounded by these, whatever is sent.
async fn read_body(s: &S, remote: Option<IpAddr>, body: axum::body::Body) -> Result<Held, ApiErr> {
    use http_body_util::BodyExt;
    let too_large = || {
        ApiErr(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    if axum::body::HttpBody::size_hint(&body).lower() > DRAIN_BYTES {
        return Err(too_large());
    }
    let started = tokio::time::Instant::now();
    let mut body = body;
    let mut held = Held {
        bytes: Vec::new(),
        counted: 0,
        owner: remote.map(|ip| (s.clone(), ip)),
    };
    let (mut received, mut over) = (0u64, false);
    loop {
        let allowed = s.config.limits.body_grace
            + Duration::from_millis(received * 1000 / BODY_MIN_BYTES_PER_SEC);
        let frame = match tokio::time::timeout_at(started + allowed, body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(None) if over => return Err(too_large()),
            Ok(None) => return Ok(held),
            Ok(Some(Err(e))) => return Err(bad(format!("the body could not be read: {e}"))),
            Err(_) => {
                if let Some(ip) = remote {
                    s.offended(ip, Offense::Slow);
                }
                return Err(ApiErr(
                    StatusCode::REQUEST_TIMEOUT,
                    "slow_body",
                    format!(
                        "the body arrived slower than {} KiB/s",
                        BODY_MIN_BYTES_PER_SEC / 1024
                    ),
                ));
            }
        };
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            metrics::counter!("cod_api_body_bytes_total").increment(data.len() as u64);
            if received > DRAIN_BYTES {
                return Err(too_large());
            }
            over |= received > MAX_BODY_BYTES as u64;
            if over {
                held.bytes = Vec::new(); // drained, not kept
                continue;
            }
            if let Some(ip) = remote {
                let n = data.len() as u64;
                if !s.guard.locked().reserve_body(ip, n) {
                    return Err(ApiErr(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "overloaded",
                        "too many request bodies in flight; retry later".into(),
                    ));
                }
                held.counted += n;
            }
            held.bytes.extend_from_slice(&data);
        }
    }
}

/// Work that checks signatures (submissions, signature requests) runs at most this many at
/// once; the rest wait at most [`HEAVY_WAIT`], then are told to come back.
pub const HEAVY_AT_ONCE: usize = 2;
const HEAVY_WAIT: Duration = Duration::from_secs(10);

async fn heavy_permit(s: &Shared) -> Result<tokio::sync::SemaphorePermit<'_>, ApiErr> {
    match tokio::time::timeout(HEAVY_WAIT, s.heavy.acquire()).await {
        Ok(Ok(p)) => Ok(p),
        _ => Err(ApiErr(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too much work waiting; retry later".into(),
        )),
    }
}

fn remote_ip(remote: &Option<Extension<Remote>>) -> Option<IpAddr> {
    remote.as_ref().map(|Extension(Remote(ip))| *ip)
}

async fn info(State(s): State<S>) -> Json<Info> {
    let mut i = s.info.clone();
    i.time = s.now();
    Json(i)
}

async fn challenge(
    State(s): State<S>,
    remote: Option<Extension<Remote>>,
    body: axum::body::Body,
) -> Result<Json<ChallengeResponse>, ApiErr> {
    let ip = remote_ip(&remote);
    // Held (and counted) until this handler is done with what it holds.
    let held = read_body(&s, ip, body).await?;
    let req: ChallengeRequest = parse_json(&held)?;
    let mut nonce = [0u8; 32];
    hex::decode_to_slice(&req.nonce, &mut nonce)
        .map_err(|_| bad("nonce must be 64 hexadecimal digits"))?;
    let sig = s
        .transport
        .sign(&crate::transport::challenge_message(&s.params.cod, &nonce));
    Ok(Json(ChallengeResponse {
        signature: base64::engine::general_purpose::STANDARD.encode(sig),
    }))
}

async fn peers(State(s): State<S>) -> Json<Vec<PeerEntry>> {
    let list = s.peers.locked().confirmed();
    Json(
        list.into_iter()
            .filter_map(|p| {
                p.peer_id.map(|id| PeerEntry {
                    addr: p.addr,
                    peer_id: id.to_string(),
                })
            })
            .collect(),
    )
}

async fn record(
    State(s): State<S>,
    hash: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiErr> {
    let h = RecordHash::from_canonical(&path_part(hash)?).map_err(|e| bad(e.to_string()))?;
    s.public_view()
        .record(&h)
        .map(|r| Json(r.to_json()))
        .ok_or_else(|| not_found(format!("no record {h} here")))
}

/// A path parameter, or the JSON 400 every refusal is (axum answers a path that is not
/// UTF-8 in plain text).
fn path_part(p: Result<Path<String>, PathRejection>) -> Result<String, ApiErr> {
    p.map(|Path(v)| v).map_err(|e| bad(e.body_text()))
}

/// A bucket of `/v1/sync/heads/{bucket}`: exactly two lowercase hex digits.
fn bucket_of(text: &str) -> Option<u8> {
    let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    (text.len() == 2 && text.bytes().all(hex)).then(|| u8::from_str_radix(text, 16).ok())?
}

/// A whole number in a query: decimal digits only (`str::parse` would take a `+`).
fn whole<T: std::str::FromStr>(v: &str) -> Option<T> {
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then(|| v.parse().ok())?
}

fn page_params(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<(u64, usize), ApiErr> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let from = q
        .get("from")
        .map(|v| whole::<u64>(v).ok_or(()))
        .transpose()
        .map_err(|_| bad("from must be a whole number"))?
        .unwrap_or(0);
    let limit = q
        .get("limit")
        .map(|v| whole::<usize>(v).ok_or(()))
        .transpose()
        .map_err(|_| bad("limit must be a whole number"))?
        .unwrap_or(MAX_RECORDS_PER_PAGE);
    if !(1..=MAX_RECORDS_PER_PAGE).contains(&limit) {
        return Err(bad(format!(
            "limit must be from 1 to {MAX_RECORDS_PER_PAGE}"
        )));
    }
    Ok((from, limit))
}

/// A page of records as they are stored (their canonical bytes), written straight into the
/// answer: no record is re-encoded. Read off the async threads from one view of the chain:
/// `pick` names the hashes (up to `limit`, and one more if any remain).
async fn records_page(
    s: &S,
    pick: impl FnOnce(&crate::ledger::Ledger) -> Vec<RecordHash> + Send + 'static,
    limit: usize,
    from: u64,
) -> Result<Response, ApiErr> {
    let body = read_view(s, move |view| {
        let mut hashes = pick(view);
        let more = hashes.len() > limit;
        hashes.truncate(limit);
        let store = view.store();
        let stored = hashes
            .iter()
            .map(|h| store.get(crate::store::Cf::Records, h.as_bytes()));
        page_body(stored, more, from, MAX_BODY_BYTES)
    })
    .await?
    .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// `{"records":[…],"next":N|null}` of the stored `records` (`None`: dropped since its hash
/// was picked, when a fork settled) within `max_bytes` bytes, but at least one record, which
/// is never larger than a body may be. `next` is the cursor after the last record included,
/// while any remain: when `more` follow, or the page ends early at the bytes bound or at a
/// record gone (the peer asks again and sees the ledger as it is now).
fn page_body<E>(
    records: impl Iterator<Item = Result<Option<Vec<u8>>, E>>,
    more: bool,
    from: u64,
    max_bytes: usize,
) -> Result<Vec<u8>, E> {
    // The wrapper and the largest cursor fit in this.
    const FRAME: usize = 64;
    let mut body = b"{\"records\":[".to_vec();
    let (mut count, mut cut) = (0u64, false);
    for bytes in records {
        let Some(bytes) = bytes? else {
            cut = true;
            break;
        };
        if count > 0 && body.len() + 1 + bytes.len() + FRAME > max_bytes {
            cut = true;
            break;
        }
        if count > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&bytes);
        count += 1;
    }
    let next = if more || cut {
        (from + count).to_string()
    } else {
        "null".into()
    };
    body.extend_from_slice(format!("],\"next\":{next}}}").as_bytes());
    Ok(body)
}

async fn chain(
    State(s): State<S>,
    account: Result<Path<String>, PathRejection>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiErr> {
    let a = AccountId::from_canonical(&path_part(account)?).map_err(|e| bad(e.to_string()))?;
    let (from, limit) = page_params(q)?;
    let pick = move |l: &crate::ledger::Ledger| {
        l.state()
            .chain_of(&a, from, limit + 1)
            .into_iter()
            .map(|(_, h)| h)
            .collect()
    };
    records_page(&s, pick, limit, from).await
}

async fn log(
    State(s): State<S>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiErr> {
    let (from, limit) = page_params(q)?;
    let pick = move |l: &crate::ledger::Ledger| l.state().log(from, limit + 1);
    records_page(&s, pick, limit, from).await
}

fn digest<'a>(heads: impl Iterator<Item = &'a (AccountId, crate::ledger::Head)>) -> [u8; 32] {
    let mut h = Sha256::new();
    for (a, head) in heads {
        h.update(a.as_bytes());
        h.update(head.seq.to_be_bytes());
        h.update(head.hash.as_bytes());
    }
    h.finalize().into()
}

pub(super) fn summary_of(v: &View) -> Summary {
    let heads = v.heads();
    // (One read of the forked slots gives both their count and their digest.)
    let forks = v.forks();
    Summary {
        applied: v.state().applied_count(),
        accounts: heads.len(),
        digest: hex::encode(digest(heads.iter())),
        forks: forks.len(),
        forks_digest: forks_digest(forks),
    }
}

/// [`Summary::forks_digest`] of the forked slots `forks` (as [`crate::ledger::Ledger::forks`] gives them).
fn forks_digest(mut forks: Vec<((AccountId, u64), BTreeSet<RecordHash>)>) -> String {
    if forks.is_empty() {
        return String::new();
    }
    forks.sort();
    let mut h = Sha256::new();
    for ((account, seq), records) in forks {
        h.update(account.as_bytes());
        h.update(seq.to_be_bytes());
        for r in records {
            h.update(r.as_bytes());
        }
    }
    hex::encode(h.finalize())
}

pub(super) fn buckets_of(v: &View) -> Buckets {
    let heads = v.heads();
    // (Heads are sorted by account, so each bucket is one run.)
    let buckets = (0..=255u8)
        .map(|b| {
            let from = heads.partition_point(|(a, _)| a.as_bytes()[0] < b);
            let to = heads.partition_point(|(a, _)| a.as_bytes()[0] <= b);
            if from == to {
                String::new()
            } else {
                hex::encode(&digest(heads[from..to].iter())[..8])
            }
        })
        .collect();
    Buckets { buckets }
}

/// Runs `read` off the async threads (it may read the store) on the chain as peers may read
/// it: without the records made here that are still on their stems (`Shared::public_view`).
async fn read_view<T: Send + 'static>(
    s: &S,
    read: impl FnOnce(&View) -> T + Send + 'static,
) -> Result<T, ApiErr> {
    let view = s.public_view();
    s.tasks
        .spawn_blocking(move || read(&view))
        .await
        .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

async fn summary(State(s): State<S>) -> Result<Json<Summary>, ApiErr> {
    Ok(Json(read_view(&s, summary_of).await?))
}

async fn buckets(State(s): State<S>) -> Result<Json<Buckets>, ApiErr> {
    Ok(Json(read_view(&s, buckets_of).await?))
}

async fn heads(
    State(s): State<S>,
    bucket: Result<Path<String>, PathRejection>,
) -> Result<Json<Heads>, ApiErr> {
    let b = bucket_of(&path_part(bucket)?)
        .ok_or_else(|| bad("bucket must be two lowercase hexadecimal digits"))?;
    let heads = read_view(&s, move |v| {
        v.heads()
            .iter()
            .filter(|(a, _)| a.as_bytes()[0] == b)
            .map(|(a, h)| (a.to_string(), *h))
            .collect()
    })
    .await?;
    Ok(Json(Heads { heads }))
}

async fn submit(
    State(s): State<S>,
    remote: Option<Extension<Remote>>,
    body: axum::body::Body,
) -> Result<Json<Vec<SubmitResult>>, ApiErr> {
    let ip = remote_ip(&remote);
    // Held (and counted) until this handler is done with it.
    let held = read_body(&s, ip, body).await?;
    // Parsing, decoding and checking happen under a permit, off the async threads, so the
    // bodies waiting for one cost only their bytes.
    let _permit = heavy_permit(&s).await?;
    let shared = s.clone();
    let (results, applied, forged) = s
        .tasks
        .spawn_blocking(move || submission(&shared, &held))
        .await
        .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    if forged && let Some(ip) = ip {
        s.offended(ip, Offense::Forged);
    }
    s.announce_applied(&applied, false);
    Ok(Json(results))
}

/// `POST /v1/stem`: records on their stem, held here unapplied and passed on, or fluffed
/// (see `crate::stem`). The answer says only that they were taken, whatever this node did.
async fn stem(
    State(s): State<S>,
    remote: Option<Extension<Remote>>,
    body: axum::body::Body,
) -> Result<Json<serde_json::Value>, ApiErr> {
    use super::stem::StemRefusal;
    let ip = remote_ip(&remote);
    let held = read_body(&s, ip, body).await?;
    let _permit = heavy_permit(&s).await?;
    let shared = s.clone();
    let checked = s
        .tasks
        .spawn_blocking(move || super::stem::check(&shared, &held))
        .await
        .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    // Held per sender address (its share of the pool); a trusted address has no share of
    // its own (it is held to the pool's bounds only).
    let source = ip
        .map(super::guard::address)
        .filter(|a| !s.guard.locked().trusted(a))
        .map_or_else(String::new, |a| a.to_string());
    // The same answer whatever was done with them: held, passed on, or skipped as known.
    let taken = checked
        .and_then(|c| super::stem::arrived(&s, c.records, &c.from, &source).map(|()| c.count));
    match taken {
        Ok(n) => Ok(Json(serde_json::json!({ "taken": n }))),
        Err(StemRefusal::Forged(reason)) => {
            if let Some(ip) = ip {
                s.offended(ip, Offense::Forged);
            }
            Err(bad(reason))
        }
        Err(StemRefusal::Malformed(reason)) => Err(bad(reason)),
        Err(StemRefusal::TooMany) => Err(ApiErr(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many",
            format!(
                "at most {} records per stem message",
                crate::stem::MAX_PER_MESSAGE
            ),
        )),
        Err(StemRefusal::Full) => Err(ApiErr(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the stem pool is full; retry later".into(),
        )),
    }
}

/// A submission's records, decoded, checked and ingested: a result per record, the hashes
/// that applied, and whether any proves the sender misbehaved. Blocking.
#[allow(clippy::type_complexity)]
fn submission(
    s: &Shared,
    body: &[u8],
) -> Result<(Vec<SubmitResult>, Vec<RecordHash>, bool), ApiErr> {
    let req: Submit = parse_json(body)?;
    if req.records.len() > MAX_RECORDS_PER_CALL {
        return Err(ApiErr(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many",
            format!("at most {MAX_RECORDS_PER_CALL} records per call"),
        ));
    }
    let mut results = Vec::with_capacity(req.records.len());
    let mut records = Vec::new();
    let mut forged = false;
    let mut slots = Vec::new();
    for v in req.records {
        match Record::from_bytes(v.get().as_bytes()) {
            Ok(r) => {
                slots.push(results.len());
                results.push(SubmitResult {
                    hash: Some(r.hash().to_string()),
                    status: String::new(),
                    reason: None,
                });
                records.push(r);
            }
            Err(e) => {
                forged |= e.proves_misbehaviour();
                results.push(SubmitResult {
                    hash: None,
                    status: "refused".into(),
                    reason: Some(e.to_string()),
                })
            }
        }
    }
    // Records made here and still on their stems are held here, but answered as a node
    // holding the chain this one shows would answer — what ingesting the copy sent into
    // that chain gives ("applied" for the record as made here; a copy with other
    // signatures refused as elsewhere) — not "duplicate", which would name this node their
    // author. (The record as made here is out now: the sender has it.)
    type Shown = Result<crate::ledger::Outcome, crate::ledger::RecordError>;
    let as_shown: Vec<Option<Shown>> = {
        let public = s.public_view();
        records
            .iter()
            .map(|r| {
                s.stem_holds_own(&r.hash()).then(|| {
                    let mut shown = (*public).clone();
                    shown.ingest(r.clone())
                })
            })
            .collect()
    };
    let outcomes = s
        .ingest(records)
        .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()))?;
    s.note_forks(&outcomes);
    let mut applied = Vec::new();
    for ((slot, outcome), as_shown) in slots.into_iter().zip(outcomes).zip(as_shown) {
        let r = &mut results[slot];
        // (Applied here long since: nothing to announce again.)
        let (outcome, announce) = match as_shown {
            Some(o) => (o, false),
            None => (outcome, true),
        };
        match outcome {
            Ok(o) if o.duplicate => r.status = "duplicate".into(),
            Ok(o) if !o.forks.is_empty() && o.applied.is_empty() => r.status = "fork".into(),
            Ok(o) if o.applied.is_empty() => {
                r.status = "pending".into();
                r.reason = Some(format!(
                    "waits for {}",
                    o.pending
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            Ok(o) => {
                r.status = "applied".into();
                if announce {
                    applied.extend(o.applied);
                }
            }
            Err(e) => {
                forged |= e.proves_misbehaviour();
                r.status = "refused".into();
                r.reason = Some(e.to_string());
            }
        }
    }
    Ok((results, applied, forged))
}

/// `GET /v1/sign-requests`: see [`crate::api::OpenRequests`].
async fn open_requests(State(s): State<S>) -> Json<OpenRequests> {
    let records = super::signing::open_for_peers(&s)
        .iter()
        .map(Record::to_json)
        .collect();
    Json(OpenRequests { records })
}

async fn sign_request(
    State(s): State<S>,
    remote: Option<Extension<Remote>>,
    body: axum::body::Body,
) -> Result<Json<serde_json::Value>, ApiErr> {
    let ip = remote_ip(&remote);
    // Held (and counted) until this handler is done with what it holds.
    let held = read_body(&s, ip, body).await?;
    let _permit = heavy_permit(&s).await?;
    let msg: crate::api::Proposal = parse_json(&held)?;
    let record = Record::from_json(msg.record).map_err(|e| {
        if e.proves_misbehaviour()
            && let Some(ip) = ip
        {
            s.offended(ip, Offense::Forged);
        }
        bad(e.to_string())
    })?;
    let id = record.hash();
    let shared = s.clone();
    let handle = tokio::runtime::Handle::current();
    let (result, rejections) = s
        .tasks
        .spawn_blocking(move || {
            let _guard = handle.enter();
            let result = super::signing::receive(&shared, record, String::new(), true);
            (result, super::signing::to_pass_on(&shared, &id))
        })
        .await
        .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    // Only that it was taken: what this node's member did with it would tell a stranger
    // whether the host holds a signer key. A request held here with rejections (refused
    // now or not) is answered with them: the peer offering it may lack them.
    match result {
        Err(e) if rejections.is_empty() => Err(sign_error(e)),
        _ => Ok(Json(
            serde_json::to_value(crate::api::Taken { id, rejections }).expect("plain data"),
        )),
    }
}

/// A signing step's refusal, answered to a peer.
fn sign_error(e: crate::signature_requests::SignError) -> ApiErr {
    use crate::signature_requests::SignError;
    match e {
        SignError::Unknown(_) => not_found(e.to_string()),
        SignError::Invalid(_) => bad(e.to_string()),
        _ => ApiErr(StatusCode::UNPROCESSABLE_ENTITY, "refused", e.to_string()),
    }
}

async fn sign_rejection(
    State(s): State<S>,
    remote: Option<Extension<Remote>>,
    id: Result<Path<String>, PathRejection>,
    body: axum::body::Body,
) -> Result<Json<serde_json::Value>, ApiErr> {
    let ip = remote_ip(&remote);
    let h = RecordHash::from_canonical(&path_part(id)?).map_err(|e| bad(e.to_string()))?;
    // Held (and counted) until this handler is done with what it holds.
    let held = read_body(&s, ip, body).await?;
    let msg: crate::api::RejectionMsg = parse_json(&held)?;
    let _permit = heavy_permit(&s).await?;
    super::signing::receive_rejection(&s, &h, msg).map_err(sign_error)?;
    Ok(Json(serde_json::json!({"noted": true})))
}

#[cfg(test)]
mod tests {
    use super::{bucket_of, page_body, whole};

    #[test]
    fn buckets_and_numbers_are_spelled_one_way() {
        assert_eq!(bucket_of("0f"), Some(15));
        assert_eq!(bucket_of("ff"), Some(255));
        for bad in ["+f", "0F", " f", "f", "0f0", "", "-1", "é"] {
            assert_eq!(bucket_of(bad), None, "{bad:?}");
        }
        assert_eq!(whole::<u64>("0"), Some(0));
        assert_eq!(whole::<u64>("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "+5",
            "-0",
            " 5",
            "5 ",
            "",
            "1e3",
            "18446744073709551616",
            "٣",
        ] {
            assert_eq!(whole::<u64>(bad), None, "{bad:?}");
        }
    }

    fn page(records: &[&str], more: bool, max: usize) -> (usize, serde_json::Value) {
        let it = records
            .iter()
            .map(|r| Ok::<_, String>(Some(r.as_bytes().to_vec())));
        let body = page_body(it, more, 10, max).unwrap();
        (body.len(), serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn pages_are_bounded_by_bytes_and_say_where_to_go_on() {
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(100));
        let recs = [big.as_str(), big.as_str(), big.as_str()];
        // All fit, and nothing follows.
        let (_, p) = page(&recs, false, 10_000);
        assert_eq!(p["records"].as_array().unwrap().len(), 3);
        assert!(p["next"].is_null());
        // More follow: the cursor moves by what was sent.
        let (_, p) = page(&recs, true, 10_000);
        assert_eq!(p["records"].as_array().unwrap().len(), 3);
        assert_eq!(p["next"], 13);
        // The byte limit cuts earlier; one record always goes, however large.
        let (len, p) = page(&recs, false, 300);
        assert_eq!(p["records"].as_array().unwrap().len(), 2);
        assert_eq!(p["next"], 12);
        assert!(len <= 300, "{len} bytes");
        let (_, p) = page(&recs, false, 10);
        assert_eq!(p["records"].as_array().unwrap().len(), 1);
        assert_eq!(p["next"], 11);
        // A record dropped since it was picked ends the page there.
        let gone = [
            Ok::<_, String>(Some(b"{}".to_vec())),
            Ok(None),
            Ok(Some(b"{}".to_vec())),
        ];
        let p: serde_json::Value =
            serde_json::from_slice(&page_body(gone.into_iter(), false, 0, 100).unwrap()).unwrap();
        assert_eq!(p["records"].as_array().unwrap().len(), 1);
        assert_eq!(p["next"], 1);
        // A store error is the page's error.
        let failing = [Ok(Some(b"{}".to_vec())), Err("disk".to_string())];
        assert_eq!(
            page_body(failing.into_iter(), false, 0, 100),
            Err("disk".into())
        );
    }
}
