//! Drawing the dashboard: a pure function of [`App`] onto a ratatui frame. Works from 80×24
//! up; below 60×12 it says the terminal is too small.

use super::app::{App, Connection, Modal, PEER_COLUMNS, Tab};
use crate::signature_requests::{RequestView, State};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Cell, Clear, Gauge, Paragraph, Row, Table, TableState, Tabs, Wrap};

fn color(app: &App, c: Color) -> Style {
    if app.no_color {
        Style::default()
    } else {
        Style::default().fg(c)
    }
}

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

fn short(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn ago(app: &App, t: u64) -> String {
    if t == 0 {
        return "never".into();
    }
    let d = app.now.saturating_sub(t);
    match d {
        0..=59 => format!("{d}s ago"),
        60..=3599 => format!("{}m ago", d / 60),
        _ => format!("{}h ago", d / 3600),
    }
}

fn fmt_time(t: u64) -> String {
    let s = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
    )
    .to_string();
    s.get(11..19).unwrap_or(&s).to_string()
}

fn amount(units: u64, decimals: u64) -> String {
    let d = decimals as usize;
    if d == 0 {
        return units.to_string();
    }
    let s = format!("{units:0>width$}", width = d + 1);
    let (i, f) = s.split_at(s.len() - d);
    format!("{i}.{f}")
}

pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    if area.width < 60 || area.height < 12 {
        let p = Paragraph::new(format!(
            "terminal too small ({}×{}); cod tui needs 60×12\nq quits",
            area.width, area.height
        ))
        .wrap(Wrap { trim: true });
        f.render_widget(p, area);
        return;
    }
    let [top, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_top(f, app, top);
    let titles: Vec<Line> = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| Line::from(format!("{} {}", i + 1, t.title())))
        .collect();
    let selected = Tab::ALL.iter().position(|t| *t == app.tab).unwrap_or(0);
    f.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(bold().add_modifier(Modifier::REVERSED))
            .divider("│"),
        tabs,
    );
    match &app.connection {
        Connection::Down { reason } => draw_down(f, app, body, reason),
        Connection::Connecting if app.status.is_none() => {
            f.render_widget(Paragraph::new("connecting to the daemon…"), body)
        }
        _ => match app.tab {
            Tab::Overview => draw_overview(f, app, body),
            Tab::Peers => draw_peers(f, app, body),
            Tab::Chain => draw_chain(f, app, body),
            Tab::Signatures => draw_signatures(f, app, body),
            Tab::Log => draw_log(f, app, body),
        },
    }
    draw_footer(f, app, footer);
    if let Some(m) = &app.modal {
        draw_modal(f, app, m, area);
    }
}

fn draw_top(f: &mut Frame, app: &App, area: Rect) {
    let s = &app.status;
    let (dot, state) = match &app.connection {
        Connection::Connected => (Span::styled("●", color(app, Color::Green)), "connected"),
        Connection::Connecting => (Span::styled("○", color(app, Color::Yellow)), "connecting"),
        Connection::Down { .. } => (Span::styled("○", color(app, Color::Red)), "daemon down"),
    };
    let line = Line::from(vec![
        Span::styled(" cod ", bold()),
        Span::raw(format!(
            "{} ",
            s.as_ref()
                .map_or("-".to_string(), |s| short(&s.cod_id.to_string(), 12)
                    .to_string())
        )),
        Span::raw(format!(
            "node {} ",
            s.as_ref()
                .map_or("-".to_string(), |s| short(&s.node_id.to_string(), 12)
                    .to_string())
        )),
        dot,
        Span::raw(format!(" {state}")),
    ]);
    f.render_widget(Paragraph::new(line), area);
}

fn draw_footer(f: &mut Frame, app: &App, area: Rect) {
    let keys = match app.tab {
        _ if matches!(app.connection, Connection::Down { .. }) => "s start daemon  q quit  ? help",
        Tab::Peers => "↑↓ select  Enter detail  s sort  1-5/Tab tabs  ? help  q quit",
        Tab::Chain => "v verify  ↑↓ scroll  1-5/Tab tabs  ? help  q quit",
        Tab::Signatures => "↑↓ select  Enter detail  a approve  r reject  ? help  q quit",
        Tab::Log => "/ filter  ↑↓ scroll  1-5/Tab tabs  ? help  q quit",
        Tab::Overview
            if app
                .status
                .as_ref()
                .is_some_and(|s| s.newer_version_seen.is_some()) =>
        {
            "t transfer  u upgrade  1-5/Tab tabs  ? help  q quit"
        }
        Tab::Overview => "t transfer  1-5/Tab tabs  ? help  q quit",
    };
    let text = match &app.notice {
        Some(n) => format!(" {n}  │ {keys}"),
        None => format!(" {keys}"),
    };
    f.render_widget(
        Paragraph::new(text).style(Style::default().add_modifier(Modifier::DIM)),
        area,
    );
}

fn draw_down(f: &mut Frame, app: &App, area: Rect, reason: &str) {
    let text = vec![
        Line::styled(
            "The node's daemon is not running (or not answering).",
            bold(),
        ),
        Line::raw(""),
        Line::raw(format!("  {reason}")),
        Line::raw(""),
        Line::raw("Start it with:"),
        Line::raw(format!("  {}", app.start_hint)),
        Line::raw("or press s to start it now. The dashboard reconnects by itself."),
    ];
    f.render_widget(
        Paragraph::new(text)
            .block(Block::bordered().title(" daemon "))
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn sync_line(app: &App) -> (String, Option<f64>) {
    let chain = app.status.as_ref().map(|s| &s.chain);
    let applied = app.applied();
    let pending = chain.map_or(0, |c| c.pending);
    let best = app
        .peers
        .iter()
        .filter(|p| p.confirmed)
        .filter_map(|p| p.applied)
        .max()
        .unwrap_or(0) as u64;
    if best > applied {
        let ratio = applied as f64 / best as f64;
        (
            format!("catching up: {applied} of {best} records (best peer)"),
            Some(ratio),
        )
    } else if pending > 0 {
        let missing = chain.map_or(String::new(), |c| {
            c.missing[..c.missing.len().min(2)].join(", ")
        });
        (
            format!("{applied} records; {pending} waiting for {missing}"),
            None,
        )
    } else {
        (format!("in sync: {applied} records"), None)
    }
}

fn draw_overview(f: &mut Frame, app: &App, area: Rect) {
    let Some(s) = &app.status else {
        return;
    };
    let kv = |k: &str, v: String| {
        Line::from(vec![Span::styled(format!("{k:<12}"), bold()), Span::raw(v)])
    };
    let mut lines = vec![
        kv("cod", s.cod_id.to_string()),
        kv("node", s.node_id.to_string()),
        kv("peer id", s.peer_id.to_string()),
        kv("address", s.addr.clone()),
        kv(
            "versions",
            format!(
                "software {}  com {}  cod {}",
                s.software_version, s.com_version, s.cod_version
            ),
        ),
        kv(
            "uptime",
            humantime::format_duration(std::time::Duration::from_secs(s.uptime)).to_string(),
        ),
        kv(
            "peers",
            format!("{} confirmed, {} known", s.peers.confirmed, s.peers.known),
        ),
        kv("sync", sync_line(app).0),
        kv(
            "clock",
            s.clock
                .map_or("no peer has answered yet".into(), |c| c.describe()),
        ),
        kv(
            "signing",
            format!("{} request(s) waiting for you", s.signature_requests),
        ),
        Line::raw(""),
        Line::styled("balances", bold()),
    ];
    for (code, a) in &s.balance.assets {
        let dec = u64::from(a.decimals);
        let mut l = format!("  {code:<10} {:>14}", amount(a.total, dec));
        if a.incoming > 0 {
            l.push_str(&format!(
                "  ({} received, not yet claimed)",
                amount(a.incoming, dec)
            ));
        }
        lines.push(Line::raw(l));
    }
    if let Some(h) = &s.handover {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            h.line(),
            color(app, Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    if let Some(n) = &s.newer_version_seen {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!(
                "UPGRADE: cod {} is running on peer {} (u downloads it)",
                n.cod_version,
                n.peer.as_deref().unwrap_or("-")
            ),
            color(app, Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" overview ")),
        area,
    );
}

fn peer_cells(app: &App, p: &crate::node::peers::Peer, wide: bool) -> Vec<String> {
    let behind = p.applied.map_or("-".to_string(), |a| {
        let d = a as i64 - app.applied() as i64;
        if d > 0 {
            format!("+{d} ahead")
        } else if d < 0 {
            format!("{} behind", -d)
        } else {
            "level".into()
        }
    });
    let node = p.peer_id.map_or("-".to_string(), |n| n.to_string());
    let mut cells = vec![short(&node, 8), p.addr.clone(), p.found_via.to_string()];
    if wide {
        cells.push(format!(
            "{}/{}/{}",
            p.software_version, p.com_version, p.cod_version
        ));
    }
    cells.push(if p.confirmed {
        ago(app, p.last_seen)
    } else {
        "trying".into()
    });
    cells.push(format!("{}ms", p.latency_ms));
    cells.push(behind);
    cells
}

fn draw_peers(f: &mut Frame, app: &App, area: Rect) {
    let wide = area.width >= 100;
    let mut headers: Vec<&str> = PEER_COLUMNS.to_vec();
    if !wide {
        headers.remove(3);
    }
    let sort_name = PEER_COLUMNS[app.peer_sort];
    let header = Row::new(headers.iter().map(|h| {
        let label = if *h == sort_name {
            format!("{h}▼")
        } else {
            h.to_string()
        };
        Cell::from(label)
    }))
    .style(bold());
    let rows: Vec<Row> = app
        .sorted_peers()
        .into_iter()
        .map(|p| Row::new(peer_cells(app, p, wide)))
        .collect();
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(9),
            Constraint::Length(22),
            Constraint::Length(9),
            Constraint::Length(18),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Min(10),
        ]
    } else {
        vec![
            Constraint::Length(9),
            Constraint::Length(22),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Min(10),
        ]
    };
    let count = app.peers.iter().filter(|p| p.confirmed).count();
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .block(Block::bordered().title(format!(" peers: {count} up, {} known ", app.peers.len())));
    let mut state = TableState::default().with_selected(Some(app.selected()));
    let banned: Vec<&crate::node::guard::AddressState> = app
        .addresses
        .iter()
        .filter(|a| a.banned_until.is_some())
        .collect();
    if banned.is_empty() {
        f.render_stateful_widget(table, area, &mut state);
        return;
    }
    // Banned addresses below the peers: a few lines, most recent offenders first.
    let shown = banned.len().min(5);
    let [top, bottom] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(shown as u16 + 2)]).areas(area);
    f.render_stateful_widget(table, top, &mut state);
    let lines: Vec<Line> = banned
        .iter()
        .take(shown)
        .map(|a| {
            Line::from(format!(
                "{:<40} score {:>3}  {}",
                a.address.to_string(),
                a.score,
                if a.manual {
                    "by the operator".to_string()
                } else {
                    a.last_offense
                        .map_or(String::new(), |o| format!("last offense: {}", o.name()))
                }
            ))
        })
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(
            Block::bordered().title(format!(" banned: {} (cod peers unban ADDR) ", banned.len())),
        ),
        bottom,
    );
}

fn draw_chain(f: &mut Frame, app: &App, area: Rect) {
    // Five lines, one per asset, and the borders.
    let assets = app
        .status
        .as_ref()
        .map_or(0, |s| s.chain.economy.assets.len()) as u16;
    let [gauge, info, recent] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(7 + assets),
        Constraint::Min(0),
    ])
    .areas(area);
    let (line, ratio) = sync_line(app);
    let label = match app.sync_rate() {
        Some(r) if ratio.is_some() => format!("{line}  ({r:.0} records/s)"),
        _ => line,
    };
    f.render_widget(
        Gauge::default()
            .block(Block::bordered().title(" sync "))
            .ratio(ratio.unwrap_or(1.0).clamp(0.0, 1.0))
            .label(label)
            .gauge_style(color(app, Color::Cyan)),
        gauge,
    );
    let Some(c) = app.status.as_ref().map(|s| &s.chain) else {
        return;
    };
    let checkpoint = c.checkpoint.as_ref().map_or("none yet".to_string(), |cp| {
        format!(
            "period {} ({})",
            cp.period,
            short(&cp.record.to_string(), 12)
        )
    });
    let verify = match &app.verify {
        None => "not run (press v)".to_string(),
        Some(Ok(v)) if v.ok() => format!("OK: {} records", v.records),
        Some(Ok(v)) => format!(
            "{} problem(s): {}",
            v.problems.len(),
            v.problems.first().map_or("", String::as_str)
        ),
        Some(Err(e)) => format!("failed: {e}"),
    };
    let forks = c.forks;
    let lines = vec![
        Line::raw(format!(
            "accounts {}   records held {}   applied {}   waiting {}",
            c.accounts, c.records, c.applied, c.pending
        )),
        Line::raw(format!("last checkpoint {checkpoint}")),
        Line::styled(
            format!("forks (double spends settled, proofs kept) {forks}"),
            if forks > 0 {
                color(app, Color::Red)
            } else {
                Style::default()
            },
        ),
    ];
    let mut lines = lines;
    lines.insert(2, Line::raw(format!("verify: {verify}")));
    lines.push(Line::raw(format!(
        "members {}   last distributed period {}",
        c.economy.members,
        c.economy
            .last_distributed
            .map_or("none yet".to_string(), |p| p.to_string())
    )));
    let decimals = |code: &str| {
        app.status
            .as_ref()
            .and_then(|s| s.balance.assets.get(code))
            .map_or(0, |a| u64::from(a.decimals))
    };
    for (code, e) in &c.economy.assets {
        let d = decimals(code);
        lines.push(Line::raw(format!(
            "{code}: outstanding {} of {} issued; backing {}; pool {}",
            amount(e.outstanding, d),
            amount(e.issued, d),
            amount(e.backing, d),
            amount(e.pool, d)
        )));
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" chain ")),
        info,
    );
    let rows: Vec<Row> = app
        .recent
        .iter()
        .map(|r| {
            Row::new(vec![
                fmt_time(r.time),
                r.kind.clone(),
                short(&r.account.to_string(), 8),
                r.seq.to_string(),
                short(&r.hash.to_string(), 16),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(9),
            Constraint::Length(11),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(["time", "kind", "account", "seq", "record"]).style(bold()))
    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
    .block(Block::bordered().title(" recent records "));
    let mut state = TableState::default().with_selected(Some(app.selected()));
    f.render_stateful_widget(table, recent, &mut state);
}

fn request_cells(app: &App, r: &RequestView) -> Vec<String> {
    let left = r.expires.saturating_sub(app.now);
    vec![
        short(&r.id.to_string(), 10),
        r.kind.clone(),
        r.state.name().to_string(),
        format!("{}/{}", r.signed, r.quorum),
        if left == 0 {
            "expired".into()
        } else {
            humantime::format_duration(std::time::Duration::from_secs(left)).to_string()
        },
        r.summary.clone(),
    ]
}

fn draw_signatures(f: &mut Frame, app: &App, area: Rect) {
    let rows: Vec<Row> = app
        .requests
        .iter()
        .map(|r| Row::new(request_cells(app, r)))
        .collect();
    let waiting = app
        .requests
        .iter()
        .filter(|r| r.state == State::Pending && r.signer)
        .count();
    let table = Table::new(
        rows,
        [
            Constraint::Length(11),
            Constraint::Length(11),
            Constraint::Length(11),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Min(20),
        ],
    )
    .header(Row::new(["id", "kind", "state", "signed", "expires", "summary"]).style(bold()))
    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
    .block(Block::bordered().title(format!(" signature requests: {waiting} waiting for you ")));
    if app.requests.is_empty() {
        f.render_widget(Paragraph::new("No signature requests. Issuance proposals (cod issue) and period-end distributions appear here.").wrap(Wrap { trim: true }).block(Block::bordered().title(" signature requests ")), area);
        return;
    }
    let mut state = TableState::default().with_selected(Some(app.selected()));
    f.render_stateful_widget(table, area, &mut state);
}

fn draw_log(f: &mut Frame, app: &App, area: Rect) {
    let height = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = app
        .visible_log()
        .into_iter()
        .skip(app.selected())
        .take(height)
        .map(|l| {
            let style = match l.level.as_str() {
                "warn" => color(app, Color::Yellow),
                "error" => color(app, Color::Red),
                _ => Style::default(),
            };
            Line::styled(
                format!("{} {:<4} {}", fmt_time(l.time), l.level, l.message),
                style,
            )
        })
        .collect();
    let title = if app.filter.is_empty() {
        " log (newest first) ".to_string()
    } else {
        format!(" log filtered by \"{}\" ", app.filter)
    };
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        area,
    );
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width.saturating_sub(2));
    let h = h.min(area.height.saturating_sub(2));
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// How many lines `text` takes wrapped at words into `width` columns (a longer word is cut).
fn wrapped_lines(text: &str, width: usize) -> usize {
    let mut lines = 1;
    let mut used = 0;
    for word in text.split(' ').map(|w| w.chars().count()) {
        let need = if used == 0 { word } else { used + 1 + word };
        if need <= width {
            used = need;
        } else {
            lines += 1 + word.saturating_sub(1) / width.max(1);
            used = word % width.max(1);
        }
    }
    lines
}

fn draw_modal(f: &mut Frame, app: &App, m: &Modal, area: Rect) {
    let (title, text, w, h): (&str, Text, u16, u16) = match m {
        Modal::Help => (
            " help ",
            Text::from(vec![
                Line::raw("1-5, Tab, Shift-Tab   switch tabs"),
                Line::raw("↑ ↓ j k, Home End     move the selection"),
                Line::raw("Enter                 details (peers, signature requests)"),
                Line::raw("s                     sort peers (or start the daemon when it is down)"),
                Line::raw(
                    "a / r                 approve / reject a signature request (asks first)",
                ),
                Line::raw("v                     verify the whole chain"),
                Line::raw("t                     make a transfer (asks first)"),
                Line::raw(
                    "u                     download the newer version peers run (asks first)",
                ),
                Line::raw("/                     filter the log"),
                Line::raw("? Esc                 close this;  q  quit"),
            ]),
            76,
            12,
        ),
        Modal::PeerDetail => {
            let peers = app.sorted_peers();
            let fields: Vec<(&str, String)> = match peers.get(app.selected()) {
                None => Vec::new(),
                Some(p) => {
                    let or_null = |v: Option<String>| v.unwrap_or_else(|| "null".into());
                    vec![
                        ("addr", p.addr.clone()),
                        ("peer_id", or_null(p.peer_id.map(|n| n.to_string()))),
                        ("found_via", p.found_via.to_string()),
                        ("confirmed", p.confirmed.to_string()),
                        ("software_version", p.software_version.clone()),
                        ("com_version", p.com_version.clone()),
                        ("cod_version", p.cod_version.clone()),
                        ("latency_ms", p.latency_ms.to_string()),
                        ("last_seen", p.last_seen.to_string()),
                        ("failures", p.failures.to_string()),
                        ("applied", or_null(p.applied.map(|a| a.to_string()))),
                    ]
                }
            };
            let lines = fields
                .into_iter()
                .map(|(k, v)| Line::raw(format!("{k:<17} {v}")))
                .collect::<Vec<_>>();
            (" peer ", Text::from(lines), 90, 13)
        }
        Modal::SignDetail => {
            let mut lines = Vec::new();
            if let Some(r) = app.requests.get(app.selected()) {
                lines.extend([
                    Line::raw(format!("id        {}", r.id)),
                    Line::raw(format!(
                        "kind      {}   state {}   signed {}/{}",
                        r.kind,
                        r.state.name(),
                        r.signed,
                        r.quorum
                    )),
                    Line::raw(format!("summary   {}", r.summary)),
                    Line::raw(format!(
                        "proposer  {}",
                        if r.proposer.is_empty() {
                            "a peer".to_string()
                        } else {
                            short(&r.proposer, 16)
                        }
                    )),
                ]);
                if let State::Rejected(reason) | State::Superseded(reason) = &r.state {
                    lines.push(Line::raw(format!("reason    {reason}")));
                }
                for j in &r.rejections {
                    lines.push(Line::raw(format!(
                        "rejected by {}: {}",
                        short(&j.node_id, 12),
                        j.reason
                    )));
                }
            }
            lines.push(Line::raw(""));
            lines.push(Line::styled("a approve   r reject   Esc close", bold()));
            (" signature request ", Text::from(lines), 100, 12)
        }
        Modal::Confirm { question, .. } => (
            " confirm ",
            Text::from(vec![Line::raw(question.clone())]),
            80,
            // As many lines as the question takes, wrapped at words (an account id is one).
            2 + wrapped_lines(question, 78).min(8) as u16,
        ),
        Modal::RejectReason { reason, .. } => (
            " reject: why? (Enter to continue, Esc to cancel) ",
            Text::from(vec![Line::raw(format!("{reason}▏"))]),
            80,
            3,
        ),
        Modal::ConfirmUpgrade { question, .. } => (
            " confirm ",
            Text::from(vec![Line::raw(question.clone())]),
            80,
            4,
        ),
        Modal::Transfer {
            to,
            amount,
            memo,
            field,
            error,
        } => {
            let single = (app.assets.len() == 1)
                .then(|| app.assets.keys().next().cloned())
                .flatten();
            let row = |i: usize, name: &str, text: &str| {
                let cursor = if *field == i { "▏" } else { "" };
                let line = format!("{name:<8}{text}{cursor}");
                if *field == i {
                    Line::styled(line, bold())
                } else {
                    Line::raw(line)
                }
            };
            let mut lines = vec![
                row(0, "to", to),
                row(1, "amount", amount),
                row(2, "memo", memo),
                Line::raw(""),
                Line::raw(match &single {
                    Some(asset) => {
                        format!("to: an account id or network; amount in {asset}; memo optional")
                    }
                    None => format!(
                        "to: an account id or network; amount as AMOUNT ASSET ({})",
                        app.assets.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                }),
            ];
            if let Some(e) = error {
                lines.push(Line::styled(e.clone(), color(app, Color::Red)));
            }
            (
                " transfer (Tab next field, Enter to go on, Esc to cancel) ",
                Text::from(lines),
                84,
                8,
            )
        }
        Modal::Filter => (
            " filter the log (Enter/Esc to close) ",
            Text::from(vec![Line::raw(format!("{}▏", app.filter))]),
            60,
            3,
        ),
    };
    let r = centered(area, w, h);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(title)),
        r,
    );
}
