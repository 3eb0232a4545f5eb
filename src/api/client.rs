//! The client one node uses to call another (reqwest), with timeouts, size limits and
//! byte counting (for the sync benchmark).

use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url}: HTTP {status}: {reason}")]
    Status {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("{url}: bad answer: {reason}")]
    Bad { url: String, reason: String },
}

/// Characters of a peer's error reason kept.
const MAX_REASON_CHARS: usize = 300;

/// A file transfer (an archive to or from an HTTP mirror) may take this long in all; each
/// read of it still waits 20 s at most.
pub const LARGE_TRANSFER: Duration = Duration::from_secs(600);

/// The node's one HTTP client, shared by all its calls (peers' APIs, HTTP mirrors): a
/// connection pool with timeouts, and a byte counter.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// Through a proxy: a client per host (see [`ApiClient::through`]).
    isolated: Option<Arc<Isolated>>,
    /// Bytes received in response bodies (and sent in request bodies).
    pub bytes: Arc<AtomicU64>,
}

/// Hosts given a client of their own through a proxy, at most (then the oldest go).
pub const MAX_ISOLATED_HOSTS: usize = 256;

/// Clients through one SOCKS5 proxy, one per host, each with credentials of its own.
struct Isolated {
    proxy: String,
    clients: std::sync::Mutex<std::collections::VecDeque<(String, reqwest::Client)>>,
}

/// How long a call may take: to connect, in all (a file's: see `LARGE_TRANSFER`), and for
/// each read of the answer.
struct Timeouts {
    connect: Duration,
    whole: Duration,
    read: Duration,
}

const DIRECT: Timeouts = Timeouts {
    connect: Duration::from_secs(3),
    whole: Duration::from_secs(20),
    read: Duration::from_secs(20),
};

/// Through a proxy (a Tor circuit may take its time).
const PROXIED: Timeouts = Timeouts {
    connect: Duration::from_secs(30),
    whole: Duration::from_secs(60),
    read: Duration::from_secs(20),
};

/// A client with the node's timeouts; through `proxy` (a `socks5h://` URL) if given, else
/// directly (never through a proxy the environment names).
fn client(proxy: Option<&str>) -> reqwest::Client {
    match proxy {
        Some(p) => client_with(
            reqwest::Client::builder().proxy(reqwest::Proxy::all(p).expect("a proxy URL")),
            &PROXIED,
        ),
        None => client_with(reqwest::Client::builder().no_proxy(), &DIRECT),
    }
}

fn client_with(builder: reqwest::ClientBuilder, t: &Timeouts) -> reqwest::Client {
    builder
        .connect_timeout(t.connect)
        .timeout(t.whole)
        .read_timeout(t.read)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .expect("a plain HTTP client builds")
}

/// The `host:port` of an `http://…` URL (the whole rest if it has no path).
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

impl Default for ApiClient {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiClient {
    pub fn new() -> Self {
        Self::through(None)
    }

    /// A client whose every connection goes through the SOCKS5 proxy at `proxy` (`host:port`),
    /// which also resolves names (`socks5h`: onion addresses work, and no name is looked up
    /// from this host). Connecting may then take longer (a Tor circuit: up to 30 s). Each
    /// host it calls gets a client of its own with random SOCKS5 credentials, made at this
    /// start: Tor (whose `IsolateSOCKSAuth` is on by default) then builds a circuit per peer,
    /// so peers do not all see this node leave from one exit. Without a proxy it connects
    /// directly, and never through one the environment names.
    pub fn through(proxy: Option<&str>) -> Self {
        Self {
            http: client(proxy.map(|p| format!("socks5h://{p}")).as_deref()),
            isolated: proxy.map(|p| {
                Arc::new(Isolated {
                    proxy: p.to_string(),
                    clients: Default::default(),
                })
            }),
            bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The client for calls to `url`.
    fn http_for(&self, url: &str) -> reqwest::Client {
        let Some(iso) = &self.isolated else {
            return self.http.clone();
        };
        let host = host_of(url);
        let mut clients = iso
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, c)) = clients.iter().find(|(h, _)| h == host) {
            return c.clone();
        }
        let user = hex::encode(rand::random::<[u8; 8]>());
        let c = client(Some(&format!("socks5h://{user}:cod@{}", iso.proxy)));
        if clients.len() >= MAX_ISOLATED_HOSTS {
            clients.pop_front();
        }
        clients.push_back((host.to_string(), c.clone()));
        c
    }

    async fn finish<T: serde::de::DeserializeOwned>(
        &self,
        url: String,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, ApiError> {
        let body = self.body(&url, resp, MAX_BODY_BYTES as u64).await?;
        serde_json::from_slice(&body).map_err(|e| ApiError::Bad {
            url,
            reason: e.to_string(),
        })
    }

    /// A successful answer's body, at most `max` bytes; any other answer is its error.
    async fn body(
        &self,
        url: &str,
        resp: Result<reqwest::Response, reqwest::Error>,
        max: u64,
    ) -> Result<Vec<u8>, ApiError> {
        let http = |source| ApiError::Http {
            url: url.to_string(),
            source,
        };
        let too_large = || ApiError::Bad {
            url: url.to_string(),
            reason: format!("answer larger than {max} bytes"),
        };
        let mut resp = resp.map_err(http)?;
        let status = resp.status();
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(too_large());
        }
        // Read with a running limit: a peer cannot make this node buffer without bound.
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http)? {
            if (body.len() + chunk.len()) as u64 > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        if !status.is_success() {
            let reason = serde_json::from_slice::<ErrorBody>(&body).map_or_else(
                |_| String::from_utf8_lossy(&body).into_owned(),
                |e| e.reason,
            );
            // A peer's words end up in logs: a line of them, no more.
            let reason: String = reason
                .chars()
                .take(MAX_REASON_CHARS)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            return Err(ApiError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                reason,
            });
        }
        Ok(body)
    }

    /// The file at `url` (an archive on an HTTP mirror), at most `max` bytes, within
    /// [`LARGE_TRANSFER`]; `None` if there is none there (404).
    pub async fn get_file(&self, url: &str, max: u64) -> Result<Option<Vec<u8>>, ApiError> {
        let resp = self
            .http_for(url)
            .get(url)
            .timeout(LARGE_TRANSFER)
            .send()
            .await;
        match self.body(url, resp, max).await {
            Ok(b) => Ok(Some(b)),
            Err(ApiError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Puts `bytes` at `url` (an archive on an HTTP mirror), within [`LARGE_TRANSFER`].
    pub async fn put_file(&self, url: &str, bytes: Vec<u8>) -> Result<(), ApiError> {
        self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let resp = self
            .http_for(url)
            .put(url)
            .timeout(LARGE_TRANSFER)
            .body(bytes)
            .send()
            .await;
        self.body(url, resp, MAX_BODY_BYTES as u64).await.map(drop)
    }

    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
    ) -> Result<T, ApiError> {
        let url = format!("http://{addr}{path}");
        let resp = self.http_for(&url).get(&url).send().await;
        self.finish(url, resp).await
    }

    pub async fn post<B: Serialize, T: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let url = format!("http://{addr}{path}");
        let bytes = serde_json::to_vec(body).expect("request bodies serialize");
        self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let resp = self
            .http_for(&url)
            .post(&url)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await;
        self.finish(url, resp).await
    }

    pub async fn info(&self, addr: &str) -> Result<Info, ApiError> {
        let info: Info = self.get(addr, "/v1/info").await?;
        info.check_bounds().map_err(|reason| ApiError::Bad {
            url: format!("http://{addr}/v1/info"),
            reason,
        })?;
        Ok(info)
    }

    pub async fn challenge(
        &self,
        addr: &str,
        nonce: &[u8; 32],
    ) -> Result<ChallengeResponse, ApiError> {
        self.post(
            addr,
            "/v1/challenge",
            &ChallengeRequest {
                nonce: hex::encode(nonce),
            },
        )
        .await
    }

    pub async fn peers(&self, addr: &str) -> Result<Vec<PeerEntry>, ApiError> {
        self.get(addr, "/v1/peers").await
    }

    pub async fn summary(&self, addr: &str) -> Result<Summary, ApiError> {
        self.get(addr, "/v1/sync/summary").await
    }

    pub async fn buckets(&self, addr: &str) -> Result<Buckets, ApiError> {
        self.get(addr, "/v1/sync/buckets").await
    }

    pub async fn heads(&self, addr: &str, bucket: u8) -> Result<Heads, ApiError> {
        self.get(addr, &format!("/v1/sync/heads/{bucket:02x}"))
            .await
    }

    pub async fn chain(
        &self,
        addr: &str,
        account: &str,
        from: u64,
        limit: usize,
    ) -> Result<Records, ApiError> {
        self.get(
            addr,
            &format!("/v1/chains/{account}?from={from}&limit={limit}"),
        )
        .await
    }

    pub async fn log(&self, addr: &str, from: u64, limit: usize) -> Result<Records, ApiError> {
        self.get(addr, &format!("/v1/log?from={from}&limit={limit}"))
            .await
    }

    /// Submits records in as many calls as the server's bounds (records per call, body
    /// size) need; the results come back in order.
    pub async fn submit(
        &self,
        addr: &str,
        records: Vec<RawRecord>,
    ) -> Result<Vec<SubmitResult>, ApiError> {
        let mut results = Vec::with_capacity(records.len());
        for records in batches(records, MAX_RECORDS_PER_CALL, MAX_BODY_BYTES) {
            let part: Vec<SubmitResult> =
                self.post(addr, "/v1/records", &Submit { records }).await?;
            results.extend(part);
        }
        Ok(results)
    }

    /// Passes records on along their stem (`POST /v1/stem`).
    pub async fn stem(
        &self,
        addr: &str,
        records: Vec<RawRecord>,
        from: &str,
    ) -> Result<(), ApiError> {
        for records in batches(records, crate::stem::MAX_PER_MESSAGE, MAX_BODY_BYTES) {
            let msg = crate::api::Stem {
                records,
                from: from.to_string(),
            };
            let _: serde_json::Value = self.post(addr, "/v1/stem", &msg).await?;
        }
        Ok(())
    }
}

/// Splits records into `{"records":[…]}` bodies of at most `max_count` records and
/// `max_bytes` bytes (a record alone is always smaller than a body may be).
fn batches(records: Vec<RawRecord>, max_count: usize, max_bytes: usize) -> Vec<Vec<RawRecord>> {
    const FRAME: usize = 16; // {"records":[ ]}
    let mut out: Vec<Vec<RawRecord>> = Vec::new();
    let mut size = 0;
    for r in records {
        let len = r.get().len() + 1;
        match out.last_mut() {
            Some(b) if b.len() < max_count && size + len + FRAME <= max_bytes => {
                size += len;
                b.push(r);
            }
            _ => {
                size = len;
                out.push(vec![r]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that takes the connection and never answers is given up on when the call's
    /// whole time is up (here 1 s instead of the node's 20), not waited for.
    #[tokio::test]
    async fn a_peer_that_never_answers_is_given_up_on_in_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let _mute = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        let second = Duration::from_secs(1);
        let c = ApiClient {
            http: client_with(
                reqwest::Client::builder().no_proxy(),
                &Timeouts {
                    connect: second,
                    whole: second,
                    read: second,
                },
            ),
            isolated: None,
            bytes: Default::default(),
        };
        let t0 = std::time::Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(30), c.info(&addr))
            .await
            .expect("the client gave up by itself");
        assert!(r.is_err(), "{r:?}");
        assert!(t0.elapsed() >= second);
    }

    /// docs/security.md states how long a call may take, directly and through a proxy: these
    /// tables. (A changed timeout changes what operators were told.)
    #[test]
    fn the_timeouts_are_those_the_docs_state() {
        let doc = include_str!("../../docs/security.md");
        let row = doc
            .lines()
            .find(|l| l.starts_with("| a call to a peer"))
            .expect("docs/security.md states the client's timeouts");
        for (how, t) in [("directly", &DIRECT), ("through a proxy", &PROXIED)] {
            let said = format!(
                "{how}: connect within {} s, each read within {} s, {} s in all",
                t.connect.as_secs(),
                t.read.as_secs(),
                t.whole.as_secs()
            );
            assert!(row.contains(&said), "{row}\nlacks {said:?}");
            assert!(t.connect <= t.whole && t.read <= t.whole);
        }
        let large = format!("{} s in all", LARGE_TRANSFER.as_secs());
        assert!(row.contains(&large), "{row}\nlacks {large:?}");
        assert!(
            PROXIED.connect > DIRECT.connect,
            "a circuit through Tor takes longer to open"
        );
    }

    #[test]
    fn a_url_names_its_host() {
        assert_eq!(host_of("http://127.0.0.1:7410/v1/info"), "127.0.0.1:7410");
        assert_eq!(host_of("http://abc.onion:80"), "abc.onion:80");
        assert_eq!(host_of("https://mirror.example/a/b"), "mirror.example");
    }

    #[test]
    fn through_a_proxy_each_host_has_a_client_of_its_own_and_they_are_bounded() {
        let c = ApiClient::through(Some("127.0.0.1:9050"));
        let iso = c.isolated.clone().unwrap();
        let _ = c.http_for("http://a:1/v1/info");
        let _ = c.http_for("http://a:1/v1/peers");
        let _ = c.http_for("http://b:1/v1/info");
        assert_eq!(iso.clients.lock().unwrap().len(), 2);
        for i in 0..MAX_ISOLATED_HOSTS + 10 {
            let _ = c.http_for(&format!("http://h{i}:1/"));
        }
        let clients = iso.clients.lock().unwrap();
        assert_eq!(clients.len(), MAX_ISOLATED_HOSTS);
        assert_eq!(
            clients.back().unwrap().0,
            format!("h{}:1", MAX_ISOLATED_HOSTS + 9)
        );
        assert!(ApiClient::new().isolated.is_none());
    }

    #[test]
    fn submissions_split_by_count_and_by_bytes() {
        let raw = |n: usize| {
            serde_json::value::RawValue::from_string(format!("\"{}\"", "x".repeat(n))).unwrap()
        };
        let sizes = |b: &[Vec<RawRecord>]| b.iter().map(Vec::len).collect::<Vec<_>>();
        let recs = || (0..5).map(|_| raw(98)).collect::<Vec<_>>(); // 100 bytes each
        assert_eq!(sizes(&batches(recs(), 10, 10_000)), [5]);
        assert_eq!(sizes(&batches(recs(), 2, 10_000)), [2, 2, 1]);
        let b = batches(recs(), 10, 300);
        assert_eq!(sizes(&b), [2, 2, 1]);
        for batch in &b {
            let body = serde_json::to_vec(&Submit {
                records: batch.clone(),
            })
            .unwrap();
            assert!(body.len() <= 300, "{}", body.len());
        }
        assert_eq!(sizes(&batches(recs(), 10, 50)), [1, 1, 1, 1, 1]);
        assert!(batches(Vec::new(), 10, 50).is_empty());
    }
}
