//! The cod REST API server (axum): the handlers behind `crate::api::ROUTES`. Every request is
//! bounded in body size, time and concurrency; every error is `{"error", "reason"}` JSON.

use super::{Shared, now};
use crate::api::*;
use crate::ids::{AccountId, RecordHash};
use crate::ledger::Record;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
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

pub fn router(shared: S) -> Router {
    let router = Router::new()
        .route("/v1/info", get(info))
        .route("/v1/challenge", post(challenge))
        .route("/v1/peers", get(peers))
        .route("/v1/records/{hash}", get(record))
        .route("/v1/records", post(submit))
        .route("/v1/chains/{account}", get(chain))
        .route("/v1/log", get(log))
        .route("/v1/sync/summary", get(summary))
        .route("/v1/sync/buckets", get(buckets))
        .route("/v1/sync/heads/{bucket}", get(heads))
        .route("/v1/sign-requests", post(sign_request))
        .route("/v1/sign-requests/{id}/rejections", post(sign_rejection))
        .fallback(|| async { not_found("no such route; see docs/openapi.json") })
        .with_state(shared);
    let overload = tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(
            |_: tower::BoxError| async {
                ApiErr(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "too many requests at once; retry later".into(),
                )
            },
        ))
        .load_shed()
        .concurrency_limit(MAX_CONCURRENT_REQUESTS);
    router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(REQUEST_TIMEOUT_SECS),
        ))
        .layer(overload)
}

/// HTTP connections handed over by [`serve`]'s first-byte check.
struct HttpConnections {
    rx: tokio::sync::mpsc::Receiver<(tokio::net::TcpStream, std::net::SocketAddr)>,
    local: std::net::SocketAddr,
}

impl axum::serve::Listener for HttpConnections {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Most peer-wire connections served at once.
const MAX_PEER_WIRE: usize = 32;

/// Serves the node's one public port: a connection whose first byte is 19 (the BitTorrent
/// handshake) goes to the seeder, anything else to the REST API.
pub async fn serve(shared: S, listener: tokio::net::TcpListener) {
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => return shared.log("warn", format!("API listener: {e}")),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let token = shared.shutdown.clone();
    let app = router(shared.clone());
    let http = tokio::spawn(
        axum::serve(HttpConnections { rx, local }, app)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .into_future(),
    );
    let wire_slots = Arc::new(tokio::sync::Semaphore::new(MAX_PEER_WIRE));
    let our_id = crate::seeder::peer_id();
    loop {
        let (stream, addr) = tokio::select! {
            c = listener.accept() => match c {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shared.shutdown.cancelled() => break,
        };
        let (tx, library, slots) = (tx.clone(), shared.library.clone(), wire_slots.clone());
        tokio::spawn(async move {
            let mut first = [0u8; 1];
            let peeked =
                tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut first)).await;
            if !matches!(peeked, Ok(Ok(1))) {
                return;
            }
            if first[0] == 19 {
                if let Ok(_permit) = slots.try_acquire_owned()
                    && let Err(e) = crate::seeder::serve(stream, library, our_id).await
                {
                    tracing::debug!("peer wire {addr}: {e}");
                }
            } else {
                let _ = tx.send((stream, addr)).await;
            }
        });
    }
    drop(tx);
    if let Ok(Err(e)) = http.await {
        shared.log("warn", format!("API server stopped: {e}"));
    }
}

async fn info(State(s): State<S>) -> Json<Info> {
    let mut i = s.info.clone();
    i.time = now();
    Json(i)
}

async fn challenge(
    State(s): State<S>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<ChallengeResponse>, ApiErr> {
    let body = body.map_err(|e| ApiErr(e.status(), "bad_body", e.body_text()))?;
    let req: ChallengeRequest =
        serde_json::from_slice(&body).map_err(|e| bad(format!("malformed JSON: {e}")))?;
    let mut nonce = [0u8; 32];
    hex::decode_to_slice(&req.nonce, &mut nonce)
        .map_err(|_| bad("nonce must be 64 hexadecimal digits"))?;
    let sig = s.key.sign(&challenge_message(&s.params.cod, &nonce));
    Ok(Json(ChallengeResponse {
        signature: base64::engine::general_purpose::STANDARD.encode(sig),
    }))
}

async fn peers(State(s): State<S>) -> Json<Vec<PeerEntry>> {
    let list = s.peers.lock().expect("peers lock").confirmed();
    Json(
        list.into_iter()
            .filter_map(|p| {
                p.node_id.map(|id| PeerEntry {
                    addr: p.addr,
                    node_id: id.to_string(),
                })
            })
            .collect(),
    )
}

async fn record(
    State(s): State<S>,
    Path(hash): Path<String>,
) -> Result<Json<serde_json::Value>, ApiErr> {
    let h: RecordHash = hash
        .parse()
        .map_err(|e: crate::ids::IdParseError| bad(e.to_string()))?;
    let chain = s.chain.lock().expect("chain lock");
    chain
        .ledger()
        .record(&h)
        .map(|r| Json(r.to_json()))
        .ok_or_else(|| not_found(format!("no record {h} here")))
}

fn page_params(q: &HashMap<String, String>) -> Result<(u64, usize), ApiErr> {
    let from = q
        .get("from")
        .map(|v| v.parse::<u64>())
        .transpose()
        .map_err(|_| bad("from must be a whole number"))?
        .unwrap_or(0);
    let limit = q
        .get("limit")
        .map(|v| v.parse::<usize>())
        .transpose()
        .map_err(|_| bad("limit must be a whole number"))?
        .unwrap_or(MAX_RECORDS_PER_PAGE);
    Ok((from, limit.clamp(1, MAX_RECORDS_PER_PAGE)))
}

/// A page of records as they are stored (their canonical bytes), written straight into the
/// answer: no record is re-encoded, and the chain is locked only to pick the hashes (up to
/// `limit`, and one more if any remain).
async fn records_page(
    s: &S,
    mut hashes: Vec<RecordHash>,
    limit: usize,
    from: u64,
) -> Result<Response, ApiErr> {
    let more = hashes.len() > limit;
    hashes.truncate(limit);
    let store = s.chain.lock().expect("chain lock").store_handle();
    let body = tokio::task::spawn_blocking(move || {
        let stored = hashes.iter().map(|h| {
            store
                .get(crate::store::Cf::Records, h.as_bytes())
                .map_err(|e| e.to_string())
        });
        page_body(stored, more, from, MAX_BODY_BYTES)
    })
    .await
    .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, "store", e))?;
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
fn page_body(
    records: impl Iterator<Item = Result<Option<Vec<u8>>, String>>,
    more: bool,
    from: u64,
    max_bytes: usize,
) -> Result<Vec<u8>, String> {
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
    Path(account): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiErr> {
    let a: AccountId = account
        .parse()
        .map_err(|e: crate::ids::IdParseError| bad(e.to_string()))?;
    let (from, limit) = page_params(&q)?;
    let hashes: Vec<RecordHash> = s
        .chain
        .lock()
        .expect("chain lock")
        .ledger()
        .chain_of(&a, from)
        .take(limit + 1)
        .map(Record::hash)
        .collect();
    records_page(&s, hashes, limit, from).await
}

async fn log(
    State(s): State<S>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiErr> {
    let (from, limit) = page_params(&q)?;
    let hashes: Vec<RecordHash> = s
        .chain
        .lock()
        .expect("chain lock")
        .ledger()
        .log(from as usize)
        .take(limit + 1)
        .map(Record::hash)
        .collect();
    records_page(&s, hashes, limit, from).await
}

/// Applied heads, sorted by account: what the sync digests cover.
fn heads_of(s: &Shared) -> Vec<(AccountId, crate::ledger::Head)> {
    let chain = s.chain.lock().expect("chain lock");
    chain
        .ledger()
        .state()
        .accounts
        .iter()
        .filter_map(|(a, st)| st.head.map(|h| (*a, h)))
        .collect()
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

pub(super) fn summary_of(s: &Shared) -> Summary {
    let heads = heads_of(s);
    let applied = s
        .chain
        .lock()
        .expect("chain lock")
        .ledger()
        .state()
        .applied_count();
    Summary {
        applied,
        accounts: heads.len(),
        digest: hex::encode(digest(heads.iter())),
    }
}

pub(super) fn buckets_of(s: &Shared) -> Buckets {
    let heads = heads_of(s);
    let buckets = (0..=255u8)
        .map(|b| {
            let mut it = heads
                .iter()
                .filter(|(a, _)| a.as_bytes()[0] == b)
                .peekable();
            if it.peek().is_none() {
                String::new()
            } else {
                hex::encode(&digest(it)[..8])
            }
        })
        .collect();
    Buckets { buckets }
}

async fn summary(State(s): State<S>) -> Json<Summary> {
    Json(summary_of(&s))
}

async fn buckets(State(s): State<S>) -> Json<Buckets> {
    Json(buckets_of(&s))
}

async fn heads(State(s): State<S>, Path(bucket): Path<String>) -> Result<Json<Heads>, ApiErr> {
    let b = u8::from_str_radix(&bucket, 16)
        .ok()
        .filter(|_| bucket.len() == 2)
        .ok_or_else(|| bad("bucket must be two hexadecimal digits"))?;
    let heads = heads_of(&s)
        .into_iter()
        .filter(|(a, _)| a.as_bytes()[0] == b)
        .map(|(a, h)| (a.to_string(), h))
        .collect();
    Ok(Json(Heads { heads }))
}

async fn submit(
    State(s): State<S>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<Vec<SubmitResult>>, ApiErr> {
    let body = body.map_err(|e| ApiErr(e.status(), "bad_body", e.body_text()))?;
    let req: Submit =
        serde_json::from_slice(&body).map_err(|e| bad(format!("malformed JSON: {e}")))?;
    if req.records.len() > MAX_RECORDS_PER_CALL {
        return Err(ApiErr(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many",
            format!("at most {MAX_RECORDS_PER_CALL} records per call"),
        ));
    }
    let mut results = Vec::with_capacity(req.records.len());
    let mut records = Vec::new();
    let mut slots = Vec::new();
    for v in req.records {
        match Record::from_bytes(v.get().as_bytes()) {
            Ok(r) => {
                slots.push(Some(results.len()));
                results.push(SubmitResult {
                    hash: Some(r.hash().to_string()),
                    status: String::new(),
                    reason: None,
                });
                records.push(r);
            }
            Err(e) => results.push(SubmitResult {
                hash: None,
                status: "refused".into(),
                reason: Some(e.to_string()),
            }),
        }
    }
    let shared = s.clone();
    let outcomes = tokio::task::spawn_blocking(move || shared.ingest(records))
        .await
        .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()))?;
    let mut applied = Vec::new();
    for (slot, outcome) in slots.into_iter().flatten().zip(outcomes) {
        let r = &mut results[slot];
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
                applied.extend(o.applied);
            }
            Err(e) => {
                r.status = "refused".into();
                r.reason = Some(e.to_string());
            }
        }
    }
    s.announce_applied(&applied, false);
    Ok(Json(results))
}

async fn sign_request(
    State(s): State<S>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiErr> {
    let body = body.map_err(|e| ApiErr(e.status(), "bad_body", e.body_text()))?;
    let msg: super::signing::Proposal =
        serde_json::from_slice(&body).map_err(|e| bad(format!("malformed JSON: {e}")))?;
    let record = Record::from_json(msg.record).map_err(|e| bad(e.to_string()))?;
    let id = record.hash();
    let shared = s.clone();
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::spawn_blocking(move || {
        let _guard = handle.enter();
        super::signing::receive(&shared, record, msg.proposer, true)
    })
    .await
    .map_err(|e| ApiErr(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match result {
        Ok(state) => Ok(Json(serde_json::json!({"id": id, "state": state}))),
        Err(reason) => Err(ApiErr(StatusCode::UNPROCESSABLE_ENTITY, "refused", reason)),
    }
}

async fn sign_rejection(
    State(s): State<S>,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiErr> {
    let body = body.map_err(|e| ApiErr(e.status(), "bad_body", e.body_text()))?;
    let h: RecordHash = id
        .parse()
        .map_err(|e: crate::ids::IdParseError| bad(e.to_string()))?;
    let msg: super::signing::RejectionMsg =
        serde_json::from_slice(&body).map_err(|e| bad(format!("malformed JSON: {e}")))?;
    super::signing::receive_rejection(&s, &h, msg)
        .map_err(|e| ApiErr(StatusCode::UNPROCESSABLE_ENTITY, "refused", e))?;
    Ok(Json(serde_json::json!({"noted": true})))
}

#[cfg(test)]
mod tests {
    use super::page_body;

    fn page(records: &[&str], more: bool, max: usize) -> (usize, serde_json::Value) {
        let it = records.iter().map(|r| Ok(Some(r.as_bytes().to_vec())));
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
        let gone = [Ok(Some(b"{}".to_vec())), Ok(None), Ok(Some(b"{}".to_vec()))];
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
