//! The dashboard's state and how messages change it. Pure: no terminal, no socket. The run
//! loop (`super::run`) feeds it messages and carries out the effects it returns.

use crate::control::{Event, Request, ask};
use crate::signature_requests::{RequestList, RequestView};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::Value;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Overview,
    Peers,
    Chain,
    Signatures,
    Log,
}

impl Tab {
    pub const ALL: [Tab; 5] = [
        Tab::Overview,
        Tab::Peers,
        Tab::Chain,
        Tab::Signatures,
        Tab::Log,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Peers => "Peers",
            Tab::Chain => "Chain",
            Tab::Signatures => "Signatures",
            Tab::Log => "Log",
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).expect("listed")
    }
}

/// What the dashboard shows on top of a tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modal {
    Help,
    PeerDetail,
    SignDetail,
    /// Asks before sending `request`.
    Confirm {
        question: String,
        request: Request,
    },
    /// Typing the reason for rejecting request `id`.
    RejectReason {
        id: String,
        reason: String,
    },
    /// Typing the log filter.
    Filter,
    /// Filling in a transfer from this node's account: `field` is the one being typed
    /// (0 to, 1 amount, 2 memo); `error` says why the last Enter did not go on.
    Transfer {
        to: String,
        amount: String,
        memo: String,
        field: usize,
        error: Option<String>,
    },
    /// Asks before downloading the newer version `cod_id` (`cod upgrade download`).
    ConfirmUpgrade {
        question: String,
        cod_id: String,
    },
}

/// Longest text typed into a transfer's fields (an account id is 64 digits; a memo is at
/// most [`crate::ledger::record::MAX_MEMO_BYTES`] bytes, checked when it is sent).
pub const MAX_FIELD_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    Connecting,
    Connected,
    Down { reason: String },
}

/// Input to [`App::update`].
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    /// The terminal was resized (the next draw uses the new size).
    Resize,
    /// (Re)connected; a fresh picture of the node.
    Snapshot {
        status: Box<crate::views::Status>,
        peers: crate::node::peers::PeersView,
        requests: RequestList,
        recent: crate::views::Recent,
    },
    Disconnected(String),
    Event(Event),
    /// The answer to a request the dashboard sent.
    Reply {
        what: String,
        result: Result<Value, String>,
    },
    /// Time passed (seconds since the epoch): for "ago" and "expires in".
    Now(u64),
}

/// What the run loop should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send {
        what: String,
        request: Request,
    },
    /// Runs this `cod` with `args` for this node (`node start`, `upgrade download`), and
    /// reports how it ended as a reply named `what`.
    RunCod {
        what: String,
        args: Vec<String>,
    },
    Quit,
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub time: u64,
    pub level: String,
    pub message: String,
}

pub const MAX_LOG: usize = 500;
pub const MAX_RECENT: usize = 50;
/// Samples kept for the sync rate, at most.
pub const MAX_RATE_SAMPLES: usize = 256;

#[derive(Debug, Clone)]
pub struct App {
    pub tab: Tab,
    pub modal: Option<Modal>,
    pub connection: Connection,
    /// How to start the daemon, shown when it is down.
    pub start_hint: String,
    pub now: u64,
    pub no_color: bool,
    /// The node's status, once it answered.
    pub status: Option<crate::views::Status>,
    /// Addresses the node limits or bans (`cod peers`).
    pub addresses: Vec<crate::node::guard::AddressState>,
    pub peers: Vec<crate::node::peers::Peer>,
    pub requests: Vec<RequestView>,
    pub recent: VecDeque<crate::views::RecentRecord>,
    pub log: VecDeque<LogLine>,
    pub filter: String,
    pub peer_sort: usize,
    pub selected: [usize; 5],
    /// (applied, at) samples for the sync rate: see [`App::note_applied`].
    pub rate_samples: VecDeque<(u64, u64)>,
    pub verify: Option<Result<crate::chain::VerifyReport, String>>,
    /// The last notice (a reply, an error) shown in the footer.
    pub notice: Option<String>,
    /// The cod's assets (com.ini), to read the amounts typed into a transfer.
    pub assets: std::collections::BTreeMap<String, crate::config::com::Asset>,
}

pub const PEER_COLUMNS: [&str; 7] = [
    "peer", "address", "found", "versions", "seen", "latency", "behind",
];

impl App {
    pub fn new(start_hint: String, no_color: bool, now: u64) -> Self {
        Self {
            tab: Tab::Overview,
            modal: None,
            connection: Connection::Connecting,
            start_hint,
            now,
            no_color,
            status: None,
            addresses: Vec::new(),
            peers: Vec::new(),
            requests: Vec::new(),
            recent: VecDeque::new(),
            log: VecDeque::new(),
            filter: String::new(),
            peer_sort: 0,
            selected: [0; 5],
            rate_samples: VecDeque::new(),
            verify: None,
            notice: None,
            assets: Default::default(),
        }
    }

    pub fn applied(&self) -> u64 {
        self.status.as_ref().map_or(0, |s| s.chain.applied as u64)
    }

    /// Peers as shown: sorted by the chosen column.
    pub fn sorted_peers(&self) -> Vec<&crate::node::peers::Peer> {
        let mut v: Vec<&crate::node::peers::Peer> = self.peers.iter().collect();
        let applied = self.applied() as i64;
        let key = |p: &crate::node::peers::Peer| -> (i64, String) {
            let wide = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            match self.peer_sort {
                0 => (0, p.peer_id.map(|n| n.to_string()).unwrap_or_default()),
                1 => (0, p.addr.clone()),
                2 => (0, p.found_via.to_string()),
                3 => (0, p.cod_version.clone()),
                4 => (-wide(p.last_seen), String::new()),
                5 => (wide(p.latency_ms), String::new()),
                _ => (
                    -(p.applied.map_or(0, |a| wide(a as u64) - applied)),
                    String::new(),
                ),
            }
        };
        v.sort_by_key(|p| key(p));
        v
    }

    pub fn visible_log(&self) -> Vec<&LogLine> {
        let f = self.filter.to_lowercase();
        self.log
            .iter()
            .rev()
            .filter(|l| {
                f.is_empty() || l.message.to_lowercase().contains(&f) || l.level.contains(&f)
            })
            .collect()
    }

    /// Notes a count of applied records for the sync rate, keeping the last minute of
    /// samples (and never more than [`MAX_RATE_SAMPLES`], however often they come).
    fn note_applied(&mut self, applied: u64) {
        self.rate_samples.push_back((applied, self.now));
        while self
            .rate_samples
            .front()
            .is_some_and(|s| s.1 + 60 < self.now)
            || self.rate_samples.len() > MAX_RATE_SAMPLES
        {
            self.rate_samples.pop_front();
        }
    }

    /// Records per second while catching up, from the last minute of samples.
    pub fn sync_rate(&self) -> Option<f64> {
        let (first, last) = (self.rate_samples.front()?, self.rate_samples.back()?);
        let dt = last.1.saturating_sub(first.1);
        (dt > 0 && last.0 > first.0).then(|| (last.0 - first.0) as f64 / dt as f64)
    }

    fn rows(&self) -> usize {
        match self.tab {
            Tab::Peers => self.peers.len(),
            Tab::Signatures => self.requests.len(),
            Tab::Chain => self.recent.len(),
            Tab::Log => self.visible_log().len(),
            Tab::Overview => 0,
        }
    }

    pub fn selected(&self) -> usize {
        self.selected[self.tab.index()].min(self.rows().saturating_sub(1))
    }

    fn push_log(&mut self, time: u64, level: &str, message: String) {
        self.log.push_back(LogLine {
            time,
            level: level.into(),
            message,
        });
        while self.log.len() > MAX_LOG {
            self.log.pop_front();
        }
    }

    fn selected_request_id(&self) -> Option<String> {
        self.requests.get(self.selected()).map(|r| r.id.to_string())
    }

    /// Changes the state for one message; returns what the run loop must do.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Now(t) => self.now = t,
            Msg::Resize => {}
            Msg::Snapshot {
                status,
                peers,
                requests,
                recent,
            } => {
                self.connection = Connection::Connected;
                self.status = Some(*status);
                self.peers = peers.peers;
                self.addresses = peers.addresses;
                self.requests = requests.requests;
                self.recent = recent.records.into();
                let applied = self.applied();
                self.note_applied(applied);
            }
            Msg::Disconnected(reason) => {
                if self.connection
                    != (Connection::Down {
                        reason: reason.clone(),
                    })
                {
                    self.push_log(self.now, "warn", format!("daemon not reachable: {reason}"));
                }
                self.connection = Connection::Down { reason };
            }
            Msg::Event(e) => self.on_event(e),
            Msg::Reply { what, result } => {
                self.notice = Some(match &result {
                    Ok(_) => format!("{what}: done"),
                    Err(e) => format!("{what}: {e}"),
                });
                if what == "verify" {
                    self.verify = Some(result.and_then(|v| {
                        serde_json::from_value(v).map_err(|e| format!("unreadable report: {e}"))
                    }));
                }
            }
            Msg::Key(k) => return self.on_key(k),
        }
        Vec::new()
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Peer { addr, up, .. } => {
                if !up && let Some(p) = self.peers.iter_mut().find(|p| p.addr == addr) {
                    p.confirmed = false;
                }
                // The full row comes with the next snapshot; note it in the log meanwhile.
                self.push_log(
                    self.now,
                    "info",
                    format!("peer {addr} {}", if up { "up" } else { "down" }),
                );
            }
            Event::Sync {
                applied,
                pending,
                held,
                missing,
            } => {
                if let Some(s) = &mut self.status {
                    s.chain.applied = applied;
                    s.chain.pending = pending;
                    s.chain.records = held;
                    s.chain.missing = missing;
                }
                self.note_applied(applied as u64);
            }
            Event::Record(r) => {
                self.recent.push_front(r);
                while self.recent.len() > MAX_RECENT {
                    self.recent.pop_back();
                }
            }
            Event::SignRequest(r) => {
                match self.requests.iter_mut().find(|x| x.id == r.id) {
                    // The event leaves out the record; the rest is new.
                    Some(held) => {
                        *held = RequestView {
                            record: held.record.take(),
                            ..*r
                        }
                    }
                    None => {
                        self.push_log(
                            self.now,
                            "info",
                            format!(
                                "signature request {} ({}): {}",
                                crate::views::prefix(&r.id.to_string(), 12),
                                r.kind,
                                r.summary
                            ),
                        );
                        self.requests.insert(0, *r);
                    }
                }
            }
            Event::Log {
                level,
                message,
                time,
            } => self.push_log(time, &level, message),
            Event::Upgrade {
                cod_id,
                cod_version,
                peer,
            } => {
                if let Some(s) = &mut self.status {
                    s.newer_version_seen = Some(crate::views::NewerVersion {
                        cod_version: cod_version.clone(),
                        cod_id: cod_id.clone(),
                        peer: Some(peer.clone()),
                    });
                }
                self.push_log(
                    self.now,
                    "info",
                    format!(
                        "cod {cod_version} ({}) runs on {peer}: `cod upgrade check`",
                        crate::views::prefix(&cod_id, 12)
                    ),
                );
            }
        }
    }

    fn on_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return vec![Effect::Quit];
        }
        if let Some(m) = self.modal.clone() {
            return self.on_modal_key(m, k);
        }
        let tab_i = self.tab.index();
        match k.code {
            KeyCode::Char('q') => return vec![Effect::Quit],
            KeyCode::Char('?') => self.modal = Some(Modal::Help),
            KeyCode::Char(c @ '1'..='5') => self.tab = Tab::ALL[c as usize - '1' as usize],
            KeyCode::Tab => self.tab = Tab::ALL[(tab_i + 1) % 5],
            KeyCode::BackTab => self.tab = Tab::ALL[(tab_i + 4) % 5],
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected[tab_i] = (self.selected() + 1).min(self.rows().saturating_sub(1))
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected[tab_i] = self.selected().saturating_sub(1)
            }
            KeyCode::Home | KeyCode::Char('g') => self.selected[tab_i] = 0,
            KeyCode::End | KeyCode::Char('G') => {
                self.selected[tab_i] = self.rows().saturating_sub(1)
            }
            KeyCode::Char('s') if matches!(self.connection, Connection::Down { .. }) => {
                return vec![Effect::RunCod {
                    what: "start".into(),
                    args: vec!["node".into(), "start".into()],
                }];
            }
            KeyCode::Char('t') => {
                self.modal = Some(Modal::Transfer {
                    to: String::new(),
                    amount: String::new(),
                    memo: String::new(),
                    field: 0,
                    error: None,
                })
            }
            KeyCode::Char('u') => self.ask_upgrade(),
            KeyCode::Char('s') if self.tab == Tab::Peers => {
                self.peer_sort = (self.peer_sort + 1) % PEER_COLUMNS.len()
            }
            KeyCode::Enter if self.tab == Tab::Peers && !self.peers.is_empty() => {
                self.modal = Some(Modal::PeerDetail)
            }
            KeyCode::Enter if self.tab == Tab::Signatures && !self.requests.is_empty() => {
                self.modal = Some(Modal::SignDetail)
            }
            KeyCode::Char('a') if self.tab == Tab::Signatures => self.ask_approve(),
            KeyCode::Char('r') if self.tab == Tab::Signatures => {
                if let Some(id) = self.selected_request_id() {
                    self.modal = Some(Modal::RejectReason {
                        id,
                        reason: String::new(),
                    });
                }
            }
            KeyCode::Char('v') if self.tab == Tab::Chain => {
                self.notice = Some("verifying the chain…".into());
                return vec![Effect::Send {
                    what: "verify".into(),
                    request: ask::Verify {}.into(),
                }];
            }
            KeyCode::Char('/') if self.tab == Tab::Log => self.modal = Some(Modal::Filter),
            _ => {}
        }
        Vec::new()
    }

    fn ask_approve(&mut self) {
        let Some(r) = self.requests.get(self.selected()) else {
            return;
        };
        let id = r.id.to_string();
        let question = format!(
            "Sign {} ({})? y/n",
            crate::views::prefix(&id, 12),
            r.summary
        );
        self.modal = Some(Modal::Confirm {
            question,
            request: ask::SignApprove { id }.into(),
        });
    }

    /// Asks before downloading the newer version peers run, if one was seen.
    fn ask_upgrade(&mut self) {
        let Some(n) = self
            .status
            .as_ref()
            .and_then(|s| s.newer_version_seen.clone())
        else {
            self.notice = Some("no newer version seen on peers".into());
            return;
        };
        self.modal = Some(Modal::ConfirmUpgrade {
            question: format!(
                "Download cod {} ({}) from the peers that seed it? y/n",
                n.cod_version,
                crate::views::prefix(&n.cod_id, 12)
            ),
            cod_id: n.cod_id,
        });
    }

    /// The transfer typed in, as the request that makes it and the question that asks
    /// first; or why it cannot be made.
    fn transfer(&self, to: &str, amount: &str, memo: &str) -> Result<(String, Request), String> {
        let status = self
            .status
            .as_ref()
            .ok_or("the node has not answered yet")?;
        let account: crate::cli::AccountArg = to.trim().parse().map_err(|_| {
            format!(
                "{:?} is not an account id (64 hex digits) or network",
                to.trim()
            )
        })?;
        let account = account.resolve(&status.cod_id);
        let mut words = amount.split_whitespace();
        let (number, asset) = (words.next().unwrap_or(""), words.next());
        if words.next().is_some() {
            return Err("write the amount as AMOUNT or AMOUNT ASSET".into());
        }
        let asset = match asset {
            Some(a) => a.to_string(),
            None if self.assets.len() == 1 => self.assets.keys().next().expect("one").clone(),
            None => {
                return Err(format!(
                    "this cod has several assets: write AMOUNT ASSET ({})",
                    self.assets.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        };
        let def = self
            .assets
            .get(&asset)
            .ok_or_else(|| format!("this cod has no asset {asset:?}"))?;
        let units = def.parse(number)?;
        if units == 0 {
            return Err("the amount must be more than zero".into());
        }
        let memo = memo.trim();
        if memo.len() > crate::ledger::record::MAX_MEMO_BYTES {
            return Err(format!(
                "a memo is at most {} bytes",
                crate::ledger::record::MAX_MEMO_BYTES
            ));
        }
        let question = format!(
            "Pay {} {asset} to {}{}? y/n",
            def.format(units),
            if account == crate::ids::AccountId::network(&status.cod_id) {
                "the network".to_string()
            } else {
                // (All of it: a payment is checked against the account id it goes to.)
                account.to_string()
            },
            if memo.is_empty() {
                String::new()
            } else {
                format!(" (\"{memo}\")")
            }
        );
        Ok((
            question,
            ask::Transfer {
                outputs: vec![crate::control::TransferOutput {
                    account: account.to_string(),
                    asset,
                    amount: units,
                }],
                memo: (!memo.is_empty()).then(|| memo.to_string()),
                seq: None,
                redeem: Default::default(),
                vouch: Vec::new(),
            }
            .into(),
        ))
    }

    fn on_modal_key(&mut self, m: Modal, k: KeyEvent) -> Vec<Effect> {
        match m {
            Modal::Help | Modal::PeerDetail => {
                if matches!(
                    k.code,
                    KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') | KeyCode::Char('?')
                ) {
                    self.modal = None;
                }
            }
            Modal::SignDetail => match k.code {
                KeyCode::Char('a') => self.ask_approve(),
                KeyCode::Char('r') => {
                    if let Some(id) = self.selected_request_id() {
                        self.modal = Some(Modal::RejectReason {
                            id,
                            reason: String::new(),
                        });
                    }
                }
                KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') => self.modal = None,
                _ => {}
            },
            Modal::Confirm { request, .. } => match k.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    self.modal = None;
                    let what = match &request {
                        Request::SignApprove(_) => "approve",
                        Request::SignReject(_) => "reject",
                        Request::Transfer(_) => "transfer",
                        _ => "request",
                    };
                    return vec![Effect::Send {
                        what: what.into(),
                        request,
                    }];
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => self.modal = None,
                _ => {}
            },
            Modal::RejectReason { id, mut reason } => match k.code {
                KeyCode::Esc => self.modal = None,
                KeyCode::Enter if !reason.trim().is_empty() => {
                    let question = format!(
                        "Reject {} because \"{}\"? y/n",
                        crate::views::prefix(&id, 12),
                        reason.trim()
                    );
                    self.modal = Some(Modal::Confirm {
                        question,
                        request: ask::SignReject {
                            id,
                            reason: reason.trim().to_string(),
                        }
                        .into(),
                    });
                }
                KeyCode::Backspace => {
                    reason.pop();
                    self.modal = Some(Modal::RejectReason { id, reason });
                }
                KeyCode::Char(c) if reason.len() < 200 => {
                    reason.push(c);
                    self.modal = Some(Modal::RejectReason { id, reason });
                }
                _ => {}
            },
            Modal::ConfirmUpgrade { cod_id, .. } => match k.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    self.modal = None;
                    self.notice = Some("downloading the newer version…".into());
                    return vec![Effect::RunCod {
                        what: "upgrade download".into(),
                        args: ["upgrade", "download", "--yes", "--cod-id", &cod_id]
                            .map(String::from)
                            .into(),
                    }];
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => self.modal = None,
                _ => {}
            },
            Modal::Transfer {
                mut to,
                mut amount,
                mut memo,
                mut field,
                ..
            } => {
                let mut error = None;
                match k.code {
                    KeyCode::Esc => {
                        self.modal = None;
                        return Vec::new();
                    }
                    KeyCode::Tab | KeyCode::Down => field = (field + 1) % 3,
                    KeyCode::BackTab | KeyCode::Up => field = (field + 2) % 3,
                    KeyCode::Enter if field < 2 => field += 1,
                    KeyCode::Enter => match self.transfer(&to, &amount, &memo) {
                        Ok((question, request)) => {
                            self.modal = Some(Modal::Confirm { question, request });
                            return Vec::new();
                        }
                        Err(e) => error = Some(e),
                    },
                    KeyCode::Backspace => {
                        [&mut to, &mut amount, &mut memo][field].pop();
                    }
                    KeyCode::Char(c) => {
                        let [a, b, c2] = [&mut to, &mut amount, &mut memo];
                        let text = match field {
                            0 => a,
                            1 => b,
                            _ => c2,
                        };
                        if text.chars().count() < MAX_FIELD_CHARS {
                            text.push(c);
                        }
                    }
                    _ => {}
                }
                self.modal = Some(Modal::Transfer {
                    to,
                    amount,
                    memo,
                    field,
                    error,
                });
            }
            Modal::Filter => match k.code {
                KeyCode::Esc | KeyCode::Enter => self.modal = None,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            },
        }
        Vec::new()
    }
}
