//! A peer that watches (issue 17): it passes every node's confirmation (its own transport
//! key, the cod's info), logs each record it receives — when, on which of its ports, by
//! which route (`stem` or `push`) — and either passes stems on to a random node, as an honest
//! relay does, or swallows them (a black hole). One port per node it watches: a node that
//! knows only its own port (node.ini `[peers] static`, no exchange) names itself by it.
#![allow(dead_code)] // each test or bench uses its part

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What arrived: when, on which port (by index), by which route, and the record's hash.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at: Instant,
    pub port: usize,
    pub route: &'static str,
    pub hash: String,
}

/// What the spy saw, and where its stems go on.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Arrival>>>, Relays);

/// Where stems go on (API addresses, by port index); `None`: swallowed.
type Relays = Arc<Mutex<Option<Vec<String>>>>;

impl Log {
    /// Stems go on to `nodes` from now on (a node that restarted listens elsewhere).
    pub fn relay_to(&self, nodes: Vec<String>) {
        *self.1.lock().unwrap() = Some(nodes);
    }

    /// Every arrival of record `hash`, in order.
    pub fn of(&self, hash: &str) -> Vec<Arrival> {
        let log = self.0.lock().unwrap();
        log.iter().filter(|a| a.hash == hash).cloned().collect()
    }

    /// The first arrival of record `hash`.
    pub fn first(&self, hash: &str) -> Option<Arrival> {
        self.of(hash).into_iter().next()
    }
}

#[derive(Clone)]
struct Port {
    index: usize,
    info: cod::api::Info,
    key: Arc<cod::transport::TransportKey>,
    cod: cod::ids::CodId,
    log: Log,
    http: reqwest::Client,
}

impl Port {
    fn saw(&self, records: &[Box<serde_json::value::RawValue>], route: &'static str) {
        let mut log = self.log.0.lock().unwrap();
        for raw in records {
            if let Ok(r) = cod::ledger::Record::from_bytes(raw.get().as_bytes()) {
                log.push(Arrival {
                    at: Instant::now(),
                    port: self.index,
                    route,
                    hash: r.hash().to_string(),
                });
            }
        }
    }
}

async fn info(State(p): State<Port>) -> Json<cod::api::Info> {
    Json(p.info.clone())
}

async fn challenge(
    State(p): State<Port>,
    Json(req): Json<cod::api::ChallengeRequest>,
) -> Json<cod::api::ChallengeResponse> {
    use base64::Engine as _;
    let nonce: [u8; 32] = hex::decode(&req.nonce).unwrap().try_into().unwrap();
    let sig = p
        .key
        .sign(&cod::transport::challenge_message(&p.cod, &nonce));
    Json(cod::api::ChallengeResponse {
        signature: base64::engine::general_purpose::STANDARD.encode(sig),
    })
}

async fn records(State(p): State<Port>, Json(req): Json<cod::api::Submit>) -> Json<Vec<()>> {
    p.saw(&req.records, "push");
    Json(Vec::new())
}

async fn stem(State(p): State<Port>, Json(req): Json<cod::api::Stem>) -> Json<serde_json::Value> {
    p.saw(&req.records, "stem");
    let n = req.records.len();
    let relays = p.log.1.lock().unwrap().clone();
    if let Some(nodes) = relays {
        // On to a node other than the sender.
        let to = loop {
            let i = rand::thread_rng().gen_range(0..nodes.len());
            if i != p.index || nodes.len() == 1 {
                break i;
            }
        };
        let msg = cod::api::Stem {
            records: req.records,
            from: p.info.peer_id.clone(),
        };
        let (http, url) = (p.http.clone(), format!("http://{}/v1/stem", nodes[to]));
        tokio::spawn(async move { http.post(url).json(&msg).send().await });
    }
    Json(serde_json::json!({ "taken": n }))
}

async fn peers() -> Json<Vec<()>> {
    Json(Vec::new())
}

/// Ports bound now (so nodes can be told them before they start); [`serve`] answers on them.
pub fn ports(n: usize) -> Vec<std::net::TcpListener> {
    (0..n)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            l
        })
        .collect()
}

/// Serves the spy on `ports`, as a node of the cod whose info (from one of its nodes) is
/// `template`; stems go on to a random node of `relay_to` (API addresses by port), or
/// nowhere.
pub fn serve(
    rt: &tokio::runtime::Runtime,
    ports: Vec<std::net::TcpListener>,
    template: cod::api::Info,
    relay_to: Option<Vec<String>>,
) -> Log {
    let log = Log::default();
    if let Some(nodes) = relay_to {
        log.relay_to(nodes);
    }
    let key = Arc::new(cod::transport::TransportKey::generate());
    let cod: cod::ids::CodId = template.ledger_id().parse().unwrap();
    for (index, l) in ports.into_iter().enumerate() {
        let port = Port {
            index,
            info: cod::api::Info {
                peer_id: key.peer_id().to_string(),
                addr: l.local_addr().unwrap().to_string(),
                ..template.clone()
            },
            key: key.clone(),
            cod,
            log: log.clone(),
            http: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/v1/info", get(info))
            .route("/v1/challenge", post(challenge))
            .route("/v1/records", post(records))
            .route("/v1/stem", post(stem))
            .route("/v1/peers", get(peers))
            .with_state(port);
        rt.spawn(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    }
    log
}

/// A node's `GET /v1/info` (the template of a spy's).
pub fn info_of(api_addr: &str) -> cod::api::Info {
    reqwest::blocking::get(format!("http://{api_addr}/v1/info"))
        .unwrap()
        .json()
        .unwrap()
}
