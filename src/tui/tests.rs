//! The dashboard without a daemon: recorded control data and events in, snapshots of every
//! tab at 80×24 and 160×48 out (insta), and the key flows that lead to requests.

use super::app::{App, Effect, Modal, Msg, Tab};
use super::view;
use crate::control::{Event, Request, ask};
use crate::node::guard::{AddressState, Offense};
use crate::node::peers::{FoundVia, Peer, PeersView};
use crate::signature_requests::{RequestList, RequestView, State};
use crate::views::RecentRecord;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;

const NOW: u64 = 1_795_600_000;
const ME: &str = "9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c";

fn key(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn code(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

/// A node in a small cod, as the control socket describes it.
fn recorded() -> App {
    let mut app = App::new("cod --node /srv/cod/demo node start".into(), false, NOW);
    app.update(Msg::Snapshot {
        // (Built from the type the daemon answers with: the compiler holds it to views.rs.)
        status: Box::new(crate::views::Status {
            cod_id: "315f6330a78f7059f1f0f3a7ce7f373767603b45".parse().unwrap(),
            ledger: "315f6330a78f7059f1f0f3a7ce7f373767603b45".parse().unwrap(),
            node_id: ME.parse().unwrap(),
            peer_id: "5d1c0b7e2f4a96e8c3b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9"
                .parse()
                .unwrap(),
            addr: "127.0.0.1:7410".into(),
            pid: 4242,
            software_version: "0.1.0".into(),
            com_version: "1.0.0".into(),
            cod_version: "1.0.0".into(),
            uptime: 3725,
            peers: crate::views::PeerCounts {
                confirmed: 2,
                known: 3,
            },
            chain: crate::views::ChainSummary {
                records: 14,
                applied: 12,
                pending: 2,
                pending_bytes: 2_000,
                awaiting_key: 0,
                awaiting_key_bytes: 0,
                missing: vec![
                    "record 52fdce9aaf6595a5a9b5caa15f72c24ebfc2f272ea5d224bc8560ac5817bd229"
                        .into(),
                ],
                accounts: 5,
                issued: [("codcoin".to_string(), 14_000)].into(),
                forks: 0,
                economy: crate::views::Economy {
                    members: 4,
                    period: 47,
                    last_distributed: Some(46),
                    assets: [(
                        "codcoin".to_string(),
                        crate::views::Circulation {
                            issued: 14_000,
                            redeemed: 3_500,
                            outstanding: 10_500,
                            backing: 12_000,
                            pool: 600,
                        },
                    )]
                    .into(),
                },
                checkpoint: Some(crate::views::CheckpointSummary {
                    period: 46,
                    record: "8a066d1349d2cff4931694e07e867518a3071a4168bcfac06d17dea8ca9edd59"
                        .parse()
                        .unwrap(),
                    special: false,
                }),
            },
            balance: crate::views::Balance {
                account: ME.parse().unwrap(),
                network: false,
                known: true,
                next_seq: 4,
                assets: [(
                    "codcoin".to_string(),
                    crate::views::AssetBalance {
                        total: 3450,
                        spendable: 2200,
                        incoming: 1250,
                        decimals: 2,
                    },
                )]
                .into(),
                member: true,
                economy: None,
            },
            newer_version_seen: Some(crate::views::NewerVersion {
                cod_version: "1.1.0".into(),
                cod_id: "9f7e6330a78f7059f1f0f3a7ce7f373767603b45".into(),
                peer: Some("127.0.0.1:7412".into()),
            }),
            signature_requests: 1,
            handover: None,
            best_peer_applied: Some(20),
            clock: Some(crate::views::ClockOffset {
                median: 1,
                peers: 2,
            }),
        }),
        peers: PeersView {
            peers: vec![
                peer(
                    "127.0.0.1:7411",
                    Some("0839e914c7e41fb804cc88d149720957251b8b43227a680448879714bca76660"),
                    FoundVia::Dht,
                    "1.0.0",
                    (NOW - 12, 2, 0),
                    Some(20),
                ),
                peer(
                    "127.0.0.1:7412",
                    Some("f27de94e5eebdd57fc1dec5dc1994d101f7c20ef8e44c99b54037546d629a14d"),
                    FoundVia::Exchange,
                    "1.1.0",
                    (NOW - 70, 15, 0),
                    Some(12),
                ),
                peer("10.0.0.9:7410", None, FoundVia::Static, "", (0, 0, 2), None),
            ],
            addresses: Vec::new(),
        },
        requests: RequestList {
            requests: vec![request(
                "72f05ae1bd2d62aa260e326a031eebbbf2a680018f9620a61e89b63cb982b473",
                "issue",
                "issue 35.00 codcoin backed by bread=10",
                1,
                State::Pending,
            )],
        },
        recent: crate::views::Recent {
            records: vec![
                recent(
                    "7e7c694ae2e6350c18b7d528485951a86d5fad216ce82b3a455e9e5786e90e2c",
                    "transfer",
                    ME,
                    3,
                    NOW - 30,
                ),
                recent(
                    "8a066d1349d2cff4931694e07e867518a3071a4168bcfac06d17dea8ca9edd59",
                    "distribute",
                    "214aee582795b053eeeda3a3ef523ab9b7bc6e2f12d5d79c242bf326e60dbc37",
                    4,
                    NOW - 600,
                ),
            ],
        },
    });
    for e in [
        Event::Log {
            level: "info".into(),
            message: "peer 127.0.0.1:7411 confirmed: node 0839e914c7e41fb8".into(),
            time: NOW - 100,
        },
        Event::Log {
            level: "warn".into(),
            message: "peer 10.0.0.9:7410 is down: connection refused".into(),
            time: NOW - 50,
        },
        Event::Record(recent(
            "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
            "transfer",
            "0839e914c7e41fb804cc88d149720957251b8b43227a680448879714bca76660",
            7,
            NOW - 5,
        )),
    ] {
        app.update(Msg::Event(e));
    }
    app
}

/// A signature request as the daemon shows it.
fn request(id: &str, kind: &str, summary: &str, signed: usize, state: State) -> RequestView {
    RequestView {
        id: id.parse().unwrap(),
        kind: kind.into(),
        period: 0,
        summary: summary.into(),
        proposer: "0839e914c7e41fb804cc88d149720957251b8b43227a680448879714bca76660".into(),
        created: NOW - 600,
        expires: NOW + 3000,
        signed,
        quorum: 2,
        signer: true,
        state,
        rejections: Vec::new(),
        record: Some(json!({})),
    }
}

/// A peer as the daemon's table holds it: (last seen, latency ms, failures) in `contact`.
fn peer(
    addr: &str,
    id: Option<&str>,
    found_via: FoundVia,
    cod_version: &str,
    contact: (u64, u64, u32),
    applied: Option<usize>,
) -> Peer {
    let (last_seen, latency_ms, failures) = contact;
    Peer {
        addr: addr.into(),
        found_via,
        peer_id: id.map(|i| i.parse().unwrap()),
        confirmed: id.is_some(),
        software_version: if id.is_some() { "0.1.0" } else { "" }.into(),
        com_version: if id.is_some() { "1.0.0" } else { "" }.into(),
        cod_version: cod_version.into(),
        last_seen,
        latency_ms,
        failures,
        retry_at: 0,
        applied,
        clock_offset: id.map(|_| 0),
    }
}

fn recent(hash: &str, kind: &str, account: &str, seq: u64, time: u64) -> RecentRecord {
    RecentRecord {
        hash: hash.parse().unwrap(),
        kind: kind.into(),
        account: account.parse().unwrap(),
        seq,
        time,
    }
}

fn render(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::draw(f, app)).unwrap();
    t.backend().to_string()
}

#[test]
fn every_tab_at_80x24_and_160x48() {
    let mut app = recorded();
    for (i, tab) in Tab::ALL.iter().enumerate() {
        app.update(key(char::from(b'1' + i as u8)));
        assert_eq!(app.tab, *tab);
        for (w, h) in [(80, 24), (160, 48)] {
            insta::assert_snapshot!(
                format!("{}_{w}x{h}", tab.title().to_lowercase()),
                render(&app, w, h)
            );
        }
    }
}

#[test]
fn a_dead_daemon_says_how_to_start_it_and_a_small_terminal_says_so() {
    let mut app = recorded();
    app.update(Msg::Disconnected(
        "no daemon is running for this node (no answer on /srv/cod/demo/cod.sock)".into(),
    ));
    insta::assert_snapshot!("daemon_down_80x24", render(&app, 80, 24));
    assert_eq!(
        app.update(key('s')),
        vec![Effect::RunCod {
            what: "start".into(),
            args: vec!["node".into(), "start".into()]
        }]
    );
    let tiny = render(&app, 40, 10);
    assert!(tiny.contains("terminal too small"), "{tiny}");
}

#[test]
fn modals_help_peer_and_signature_detail() {
    let mut app = recorded();
    app.update(key('?'));
    insta::assert_snapshot!("help_80x24", render(&app, 80, 24));
    app.update(code(KeyCode::Esc));
    app.update(key('2'));
    app.update(code(KeyCode::Enter));
    assert_eq!(app.modal, Some(Modal::PeerDetail));
    insta::assert_snapshot!("peer_detail_160x48", render(&app, 160, 48));
    app.update(code(KeyCode::Esc));
    app.update(key('4'));
    app.update(code(KeyCode::Enter));
    insta::assert_snapshot!("sign_detail_80x24", render(&app, 80, 24));
}

#[test]
fn approving_and_rejecting_are_confirmed_before_they_are_sent() {
    let id = "72f05ae1bd2d62aa260e326a031eebbbf2a680018f9620a61e89b63cb982b473".to_string();
    let mut app = recorded();
    app.update(key('4'));
    assert!(app.update(key('a')).is_empty(), "asks first");
    assert!(matches!(app.modal, Some(Modal::Confirm { .. })));
    assert!(app.update(key('n')).is_empty(), "no means nothing is sent");
    assert_eq!(app.modal, None);
    app.update(key('a'));
    assert_eq!(
        app.update(key('y')),
        vec![Effect::Send {
            what: "approve".into(),
            request: ask::SignApprove { id: id.clone() }.into()
        }]
    );

    app.update(key('r'));
    for c in "too early".chars() {
        app.update(key(c));
    }
    assert!(
        app.update(code(KeyCode::Enter)).is_empty(),
        "asks again before sending"
    );
    insta::assert_snapshot!("reject_confirm_80x24", render(&app, 80, 24));
    assert_eq!(
        app.update(key('y')),
        vec![Effect::Send {
            what: "reject".into(),
            request: ask::SignReject {
                id,
                reason: "too early".into()
            }
            .into()
        }]
    );
}

#[test]
fn events_update_the_view_and_keys_navigate() {
    let mut app = recorded();
    let id = "aa".repeat(32);
    let summary = "distribution for period 47";
    let mut event = request(&id, "distribute", summary, 0, State::Pending);
    event.record = None;
    app.update(Msg::Event(Event::SignRequest(Box::new(event.clone()))));
    assert_eq!(app.requests.len(), 2);
    event.signed = 2;
    event.state = State::Final;
    app.update(Msg::Event(Event::SignRequest(Box::new(event))));
    assert_eq!(app.requests.len(), 2, "an update, not a new row");
    assert_eq!(app.requests[0].state, State::Final);
    assert_eq!(app.requests[0].signed, 2);
    app.update(Msg::Event(Event::Sync {
        held: 20,
        applied: 20,
        pending: 0,
        missing: vec![],
    }));
    assert!(render(&app, 80, 24).contains("in sync: 20 records"));
    // Sorting peers by latency puts the fastest first.
    app.update(key('2'));
    for _ in 0..5 {
        app.update(key('s'));
    }
    assert_eq!(app.sorted_peers()[0].addr, "10.0.0.9:7410");
    // The log filter.
    app.update(key('5'));
    app.update(key('/'));
    for c in "down".chars() {
        app.update(key(c));
    }
    app.update(code(KeyCode::Enter));
    assert_eq!(app.visible_log().len(), 1);
    assert_eq!(app.update(key('q')), vec![Effect::Quit]);
}

#[test]
fn no_color_means_no_color() {
    let mut app = recorded();
    app.no_color = true;
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| view::draw(f, &app)).unwrap();
    let buf = t.backend().buffer();
    for cell in buf.content() {
        assert_eq!(
            cell.fg,
            ratatui::style::Color::Reset,
            "a colored cell: {cell:?}"
        );
        assert_eq!(cell.bg, ratatui::style::Color::Reset);
    }
}

#[test]
fn an_idle_node_does_not_grow_the_rate_samples() {
    // Snapshots keep coming from a node where nothing happens (no sync events): the samples
    // stay the last minute's, and never more than the cap even at the same instant.
    let mut app = recorded();
    let status = Box::new(app.status.clone().unwrap());
    for i in 0..10_000u64 {
        app.update(Msg::Now(NOW + i / 100));
        app.update(Msg::Snapshot {
            status: status.clone(),
            peers: Default::default(),
            requests: Default::default(),
            recent: Default::default(),
        });
    }
    assert!(app.rate_samples.len() <= super::app::MAX_RATE_SAMPLES);
    assert!(app.rate_samples.iter().all(|s| s.1 + 60 >= NOW + 99));
}

#[test]
fn the_peers_tab_shows_banned_addresses() {
    let mut app = recorded();
    let status = Box::new(app.status.clone().unwrap());
    let address = |ip: &str, connections, score, banned_until, manual, last_offense| AddressState {
        address: ip.parse().unwrap(),
        connections,
        score,
        banned_until,
        manual,
        last_offense,
    };
    let peers = PeersView {
        peers: Vec::new(),
        addresses: vec![
            address(
                "192.0.2.7",
                0,
                100,
                Some(1_800_000_000_000),
                false,
                Some(Offense::Forged),
            ),
            address("198.51.100.0", 0, 0, Some(u64::MAX), true, None),
            address("203.0.113.5", 3, 20, None, false, Some(Offense::Slow)),
        ],
    };
    app.update(Msg::Snapshot {
        status,
        peers,
        requests: Default::default(),
        recent: Default::default(),
    });
    app.update(key('2'));
    let screen = render(&app, 80, 24);
    assert!(screen.contains("banned: 2"), "{screen}");
    assert!(
        screen.contains("192.0.2.7") && screen.contains("last offense: forged"),
        "{screen}"
    );
    assert!(screen.contains("by the operator"), "{screen}");
    assert!(
        !screen.contains("203.0.113.5"),
        "scored but not banned: {screen}"
    );
}

#[test]
fn only_requests_this_member_can_sign_wait_for_them() {
    let mut app = recorded();
    let status = Box::new(app.status.clone().unwrap());
    let request = |id: &str, state: State, signer: bool| RequestView {
        signer,
        ..request(id, "issue", "s", 1, state)
    };
    let superseded = State::Superseded("the chain moved on".into());
    app.update(Msg::Snapshot {
        status,
        peers: Default::default(),
        requests: RequestList {
            requests: vec![
                request(&"a".repeat(64), State::Pending, true),
                request(&"b".repeat(64), State::Pending, false),
                request(&"c".repeat(64), superseded, true),
            ],
        },
        recent: Default::default(),
    });
    app.update(key('4'));
    let screen = render(&app, 100, 24);
    assert!(screen.contains("1 waiting for you"), "{screen}");
    assert!(screen.contains("superseded"), "{screen}");
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(key(c));
    }
}

/// `t`: a transfer typed into a form, checked (account, amount, memo) before it is asked
/// about, and sent only after yes.
#[test]
fn a_transfer_is_typed_checked_and_confirmed_before_it_is_sent() {
    let mut app = recorded();
    app.assets = [(
        "codcoin".to_string(),
        crate::config::com::Asset {
            decimals: 2,
            description: None,
        },
    )]
    .into();
    app.update(key('t'));
    typed(&mut app, "not an account");
    assert!(app.update(code(KeyCode::Enter)).is_empty());
    typed(&mut app, "12.5");
    app.update(code(KeyCode::Enter));
    typed(&mut app, "for the bread");
    assert!(app.update(code(KeyCode::Enter)).is_empty());
    assert!(
        matches!(&app.modal, Some(Modal::Transfer { error: Some(e), field: 2, .. }) if e.contains("not an account id")),
        "{:?}",
        app.modal
    );
    // Back to the first field, and a real account this time.
    app.update(code(KeyCode::Tab));
    for _ in 0.."not an account".len() {
        app.update(code(KeyCode::Backspace));
    }
    let to = "ab".repeat(32);
    typed(&mut app, &to);
    insta::assert_snapshot!("transfer_80x24", render(&app, 80, 24));
    app.update(code(KeyCode::Tab));
    app.update(code(KeyCode::Tab));
    assert!(app.update(code(KeyCode::Enter)).is_empty(), "asks first");
    let Some(Modal::Confirm { question, .. }) = &app.modal else {
        panic!("{:?}", app.modal)
    };
    assert_eq!(
        *question,
        format!("Pay 12.50 codcoin to {to} (\"for the bread\")? y/n")
    );
    insta::assert_snapshot!("transfer_confirm_80x24", render(&app, 80, 24));
    assert_eq!(
        app.update(key('y')),
        vec![Effect::Send {
            what: "transfer".into(),
            request: ask::Transfer {
                outputs: vec![crate::control::TransferOutput {
                    account: to,
                    asset: "codcoin".into(),
                    amount: 1250,
                }],
                memo: Some("for the bread".into()),
                seq: None,
                redeem: Default::default(),
                vouch: Vec::new(),
            }
            .into()
        }]
    );

    // What cannot be paid is said in the form, and nothing is sent.
    for (to, amount, why) in [
        ("network", "0", "more than zero"),
        ("network", "1.234", "at most 2 decimals"),
        ("network", "1 gold", "no asset \"gold\""),
        ("network", "1 codcoin extra", "AMOUNT ASSET"),
    ] {
        app.update(key('t'));
        typed(&mut app, to);
        app.update(code(KeyCode::Enter));
        typed(&mut app, amount);
        app.update(code(KeyCode::Enter));
        assert!(app.update(code(KeyCode::Enter)).is_empty());
        assert!(
            matches!(&app.modal, Some(Modal::Transfer { error: Some(e), .. }) if e.contains(why)),
            "{amount}: {:?}",
            app.modal
        );
        assert!(app.update(code(KeyCode::Esc)).is_empty());
        assert_eq!(app.modal, None);
    }
    // The network's account by name.
    app.update(key('t'));
    typed(&mut app, "network");
    app.update(code(KeyCode::Enter));
    typed(&mut app, "3 codcoin");
    app.update(code(KeyCode::Enter));
    app.update(code(KeyCode::Enter));
    let Some(Modal::Confirm { question, request }) = app.modal.clone() else {
        panic!("{:?}", app.modal)
    };
    assert_eq!(question, "Pay 3.00 codcoin to the network? y/n");
    let Request::Transfer(ask::Transfer { outputs, memo, .. }) = request else {
        panic!("{request:?}")
    };
    let cod: crate::ids::CodId = "315f6330a78f7059f1f0f3a7ce7f373767603b45".parse().unwrap();
    assert_eq!(
        outputs[0].account,
        crate::ids::AccountId::network(&cod).to_string()
    );
    assert_eq!(memo, None);
    assert!(app.update(key('n')).is_empty());
}

/// `u`: the newer version peers run is downloaded (`cod upgrade download`) after yes.
#[test]
fn the_newer_version_is_downloaded_after_yes() {
    let mut app = recorded();
    assert!(app.update(key('u')).is_empty(), "asks first");
    let Some(Modal::ConfirmUpgrade { question, .. }) = &app.modal else {
        panic!("{:?}", app.modal)
    };
    assert!(question.contains("cod 1.1.0 (9f7e6330a78f"), "{question}");
    assert!(app.update(key('n')).is_empty());
    app.update(key('u'));
    assert_eq!(
        app.update(key('y')),
        vec![Effect::RunCod {
            what: "upgrade download".into(),
            args: [
                "upgrade",
                "download",
                "--yes",
                "--cod-id",
                "9f7e6330a78f7059f1f0f3a7ce7f373767603b45"
            ]
            .map(String::from)
            .into()
        }]
    );
    if let Some(s) = &mut app.status {
        s.newer_version_seen = None;
    }
    assert!(app.update(key('u')).is_empty());
    assert_eq!(app.modal, None);
    assert_eq!(
        app.notice.as_deref(),
        Some("no newer version seen on peers")
    );
}
