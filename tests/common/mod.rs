//! Helpers for tests that run the real `cod` executable in temporary directories.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod hostile;
pub mod lab;
pub mod spy;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The `cod` executable the nodes run: this build's, or `COD_BIN` (the benchmarks run a
/// release build while their harness is a debug one).
pub fn cod_bin() -> PathBuf {
    std::env::var_os("COD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cod")))
}

/// A temporary world for one test: its own HOME/XDG dirs, so nothing leaks between tests
/// or into the developer's own ~/.local/share/cod.
pub struct World {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub out: Output,
    pub args: String,
    /// The node directory the command ran `--node` at, whose log a failure quotes.
    pub node: Option<PathBuf>,
}

impl Run {
    /// The last lines of the node's log, if the command ran at one (`--node DIR`).
    fn node_log(&self) -> String {
        self.node
            .as_deref()
            .map_or_else(String::new, |d| log_tail(d, 60))
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(
            self.out.status.success(),
            "`cod {}` failed ({:?})\nstdout:\n{}\nstderr:\n{}{}",
            self.args,
            self.out.status,
            self.stdout(),
            self.stderr(),
            self.node_log()
        );
        self
    }
    /// Asserts failure with exit code 1 and `needle` in the error message; returns stderr.
    #[track_caller]
    pub fn fails_with(self, needle: &str) -> String {
        self.fails_code(1, needle)
    }
    /// Asserts a refusal by the ledger's or the signers' rules (exit code 4).
    #[track_caller]
    pub fn refused_with(self, needle: &str) -> String {
        self.fails_code(4, needle)
    }
    /// Asserts bad usage (exit code 2).
    #[track_caller]
    pub fn usage_with(self, needle: &str) -> String {
        self.fails_code(2, needle)
    }
    /// Asserts failure with exit code `code` and `needle` in the error message; returns
    /// stderr.
    #[track_caller]
    pub fn fails_code(self, code: i32, needle: &str) -> String {
        let err = self.stderr();
        assert_eq!(
            self.code(),
            Some(code),
            "`cod {}` should fail with code {code}\nstdout:\n{}\nstderr:\n{err}{}",
            self.args,
            self.stdout(),
            self.node_log()
        );
        assert!(
            err.contains(needle),
            "`cod {}`: expected {needle:?} in:\n{err}",
            self.args
        );
        err
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| {
            panic!(
                "`cod {}` printed no JSON ({e}):\n{}",
                self.args,
                self.stdout()
            )
        })
    }
}

/// The last `lines` lines of the log of the node at `dir`, for a failure's message: what its
/// daemon did up to the failing step (CI keeps nothing else of a failed run).
pub fn log_tail(dir: &Path, lines: usize) -> String {
    let Some(log) = cod::nodedir::NodeDir::open(dir)
        .ok()
        .and_then(|d| Some(d.log_path(&d.node_config().ok()?)))
    else {
        return String::new();
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    format!("\nlast lines of {}:\n{}", log.display(), tail.join("\n"))
}

impl World {
    /// A fresh world, removed after the test — kept (and named on stderr) with
    /// `COD_TEST_KEEP` set, to read its nodes' logs.
    pub fn new() -> Self {
        let mut dir = tempfile::tempdir().expect("temp dir");
        if std::env::var_os("COD_TEST_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("[keep] {}", dir.path().display());
        }
        Self { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(cod_bin());
        c.env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.path("xdg"))
            .env_remove("COD_PASSPHRASE")
            .env_remove("COD_NODE")
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path());
        c
    }

    pub fn cod(&self, args: &[&str]) -> Run {
        self.cod_env(args, &[])
    }

    pub fn cod_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.command();
        c.args(args).stdin(std::process::Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let t = std::time::Instant::now();
        let out = c.output().expect("run cod");
        trace(t, &format!("cod {}", args.join(" ")));
        let node = args
            .iter()
            .position(|a| *a == "--node")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from);
        Run {
            out,
            args: args.join(" "),
            node,
        }
    }

    /// Copies an example key into the world with the mode a secret key must have.
    pub fn example_key(&self, name: &str) -> PathBuf {
        let to = self.path(name);
        std::fs::copy(Path::new(REPO).join("keys-example").join(name), &to).unwrap();
        let mode = if name.contains(".sec.") { 0o600 } else { 0o644 };
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
        to
    }

    /// A node's secret key named `key`: the example key of that name (node1..node6), else
    /// one `cod keygen` makes (the benchmarks run up to twenty nodes).
    pub fn node_key(&self, key: &str) -> PathBuf {
        let name = format!("{key}.sec.key");
        if Path::new(REPO).join("keys-example").join(&name).exists() {
            return self.example_key(&name);
        }
        let out = self.path(&format!("keygen-{key}"));
        self.cod(&[
            "keygen",
            "--role",
            "node",
            "--out",
            s(&out),
            "--no-passphrase",
        ])
        .ok();
        let to = self.path(&name);
        std::fs::rename(out.join("node.sec.key"), &to).unwrap();
        to
    }

    /// A key store for `cod pack`: com and cod public keys and the deployer's secret key.
    pub fn key_store(&self) -> PathBuf {
        let dir = self.path("keys");
        std::fs::create_dir_all(&dir).unwrap();
        for k in ["com.pub.key", "cod.pub.key", "cod.sec.key"] {
            let p = self.example_key(k);
            std::fs::rename(&p, dir.join(k)).unwrap();
        }
        dir
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Packs the demo cod from the templates (optionally with edited configs) into `out`;
    /// returns (package path, cod id).
    pub fn pack(&self, out: &str, com: &str, cod: &str) -> (PathBuf, String) {
        let keys = self.key_store_once();
        let com = self.write(&format!("{out}-src/com.ini"), com);
        let cod = self.write(&format!("{out}-src/cod.ini"), cod);
        let run = self
            .cod(&[
                "--json",
                "pack",
                "--com",
                s(&com),
                "--cod",
                s(&cod),
                "--keys",
                s(&keys),
                "--out",
                s(&self.path(out)),
            ])
            .ok();
        let j = run.json();
        (
            PathBuf::from(j["package"].as_str().unwrap()),
            j["cod_id"].as_str().unwrap().to_string(),
        )
    }

    pub fn pack_demo(&self) -> (PathBuf, String) {
        self.pack("dist", &template("com.ini"), &template("cod.ini"))
    }

    fn key_store_once(&self) -> PathBuf {
        let dir = self.path("keys");
        if dir.exists() { dir } else { self.key_store() }
    }
}

pub fn template(name: &str) -> String {
    std::fs::read_to_string(Path::new(REPO).join("ini-templates").join(name)).unwrap()
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp paths")
}

pub fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Runs an external tool, returning stdout; panics with its stderr on failure.
#[track_caller]
pub fn tool(cmd: &str, args: &[&str]) -> String {
    let mut c = Command::new(cmd);
    c.args(args);
    stdout_of(&mut c)
}

/// Runs `c`, which must succeed (else its stderr is the failure), and returns its stdout.
pub fn stdout_of(c: &mut Command) -> String {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("{c:?} not runnable ({e}); run .ci/setup"));
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Lists a directory's entries (names), sorted; empty if it does not exist.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A deployed node in a test world.
#[derive(Clone)]
pub struct Node {
    pub dir: PathBuf,
    pub id: String,
    pub key: String,
}

impl World {
    /// Deploys a node of the package with example key `key` (e.g. "node1") into its own base.
    pub fn deploy(&self, pkg: &Path, key: &str) -> Node {
        self.deploy_with(pkg, key, None)
    }

    /// [`World::deploy`] with `node_ini` as the node's node.ini (else the template's).
    pub fn deploy_with(&self, pkg: &Path, key: &str, node_ini: Option<&str>) -> Node {
        let k = self.node_key(key);
        let base = self.path(&format!("nodes-{key}"));
        let mut args = vec![
            "--json".to_string(),
            "deploy".into(),
            "--package".into(),
            s(pkg).into(),
            "--key".into(),
            s(&k).into(),
            "--dir".into(),
            s(&base).into(),
        ];
        if let Some(text) = node_ini {
            let ini = self.write(&format!("{key}.ini"), text);
            args.extend(["--node-ini".to_string(), s(&ini).to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let j = self.cod(&args).ok().json();
        Node {
            dir: PathBuf::from(j["dir"].as_str().unwrap()),
            id: j["node_id"].as_str().unwrap().to_string(),
            key: key.to_string(),
        }
    }

    /// Runs cod against a node directory.
    /// Does `cod chain verify` at `node` pass?
    pub fn chain_ok(&self, node: &Node) -> bool {
        self.at(node, &["chain", "verify"])
            .ok()
            .stdout()
            .contains("chain OK")
    }

    pub fn at(&self, node: &Node, args: &[&str]) -> Run {
        let mut all = vec!["--node", s(&node.dir)];
        all.extend_from_slice(args);
        self.cod(&all)
    }
}

pub fn example_secret(name: &str) -> cod::keys::SecretKey {
    let pem = std::fs::read_to_string(
        Path::new(REPO)
            .join("keys-example")
            .join(format!("{name}.sec.key")),
    )
    .unwrap();
    cod::keys::SecretKey::from_pem(&pem, None).unwrap()
}

/// The ledger parameters of a deployed node (read from its directory).
pub fn params_of(node: &Node) -> cod::ledger::Params {
    cod::nodedir::NodeDir::open(&node.dir)
        .unwrap()
        .params()
        .unwrap()
}

/// Records that fund `nodes` from scratch: their opening records (exported from each node),
/// an issuance of `bread` loaves signed by node1+node2, and the current period's
/// distribution, signed by node1+node3. Returns them as an archive file to import.
pub fn funding_archive(w: &World, nodes: &[&Node], bread: u64) -> PathBuf {
    use cod::ledger::{Ledger, Record, add_signature};
    let params = params_of(nodes[0]);
    let mut l = Ledger::new(params.clone());
    for n in nodes {
        let file = w.path(&format!("open-{}.archive", n.key));
        let _ = std::fs::remove_file(&file);
        w.at(n, &["chain", "export", "--out", s(&file)]).ok();
        for r in cod::archive::read(&std::fs::read(&file).unwrap(), &params.cod).unwrap() {
            l.ingest(r).unwrap();
        }
    }
    let now = cod::clock::now();
    let sign = |body: cod::ledger::Body, who: [&str; 2]| {
        let mut sigs = Vec::new();
        for k in who {
            sigs = add_signature(&body, &sigs, &example_secret(k));
        }
        Record::new(body, sigs)
    };
    let issue = sign(
        l.propose_issue(
            [("bread".to_string(), bread)].into(),
            Default::default(),
            now,
        )
        .unwrap(),
        ["node1", "node2"],
    );
    l.ingest(issue).unwrap();
    // Distributions pay members: the signers admit every node that is no founder.
    let admit: Vec<_> = nodes
        .iter()
        .map(|n| n.id.parse().unwrap())
        .filter(|a| !l.state().account(a).is_some_and(|s| s.is_member()))
        .collect();
    if !admit.is_empty() {
        let members = sign(
            l.propose_members(admit, vec![], now).unwrap(),
            ["node1", "node2"],
        );
        l.ingest(members).unwrap();
    }
    // The current period's distribution, dated at its end (the rules know no clock), so
    // its checkpoint holds the openings just made.
    let period = params.com.period_of(now);
    let dist = sign(
        l.propose_distribution(period, false, 0).unwrap(),
        ["node1", "node3"],
    );
    l.ingest(dist).unwrap();
    let file = w.path("funding.archive");
    let all = l.records();
    let mut records: Vec<&Record> = all.iter().map(|r| &**r).collect();
    records.sort_by_key(|r| (r.body().time, r.account(), r.seq()));
    std::fs::write(&file, cod::archive::write(&params.cod, records)).unwrap();
    file
}

/// The number in the environment variable `var`, if it holds one.
pub fn env_number<T: std::str::FromStr>(var: &str) -> Option<T> {
    std::env::var(var).ok().and_then(|s| s.parse().ok())
}

/// Waits for `f` to return `Some` (polling), up to `secs`; panics with `what` otherwise.
#[track_caller]
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            trace(t, what);
            return v;
        }
        if t.elapsed() > std::time::Duration::from_secs(secs) {
            panic!("gave up after {secs}s waiting for: {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// With `COD_TEST_TRACE` set, says on stderr how long a step took that began at `since`:
/// where a slow test spends its time.
pub fn trace(since: std::time::Instant, what: &str) {
    if std::env::var_os("COD_TEST_TRACE").is_some() {
        eprintln!("[trace] {:6.2}s  {what}", since.elapsed().as_secs_f64());
    }
}

/// A local Mainline DHT on loopback (`cod dht bootstrap`), stopped on drop.
pub struct LocalDht {
    child: std::process::Child,
    pub bootstrap: String,
}

impl LocalDht {
    pub fn start(nodes: usize) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(cod_bin())
            .args([
                "dht",
                "bootstrap",
                "--nodes",
                &nodes.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the local DHT");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let bootstrap = line.trim().to_string();
        assert!(
            bootstrap.starts_with("127.0.0.1:"),
            "local DHT said {bootstrap:?}"
        );
        Self { child, bootstrap }
    }
}

impl LocalDht {
    /// One node of it (`host:port`), for clients that take a single entry point.
    pub fn entry_point(&self) -> String {
        self.bootstrap.split(',').next().unwrap().to_string()
    }
}

impl Drop for LocalDht {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills a node's daemon with SIGKILL (no clean shutdown).
pub fn kill9(node: &Node) {
    let pid = std::fs::read_to_string(node.dir.join("node.pid")).unwrap();
    let pid: i32 = pid.trim().parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for(10, "the killed daemon to be gone", || {
        (!cod::nodedir::process_alive(pid)).then_some(())
    });
}

/// Nodes of one cod on loopback, each with its own daemon — a process of its own, or a node
/// inside the test process ([`Net::in_process`]); stopped on drop.
pub struct Net<'w> {
    pub w: &'w World,
    pub pkg: PathBuf,
    pub nodes: Vec<Node>,
    pub dht: Option<LocalDht>,
    inproc: Option<InProcess>,
}

/// Nodes inside the test process (issue 14): on one test clock that moves only when the test
/// says, meeting through a directory they share instead of a DHT. Each has its control
/// socket, so `cod` commands drive them as they drive a daemon.
struct InProcess {
    clock: std::sync::Arc<cod::clock::ManualClock>,
    /// By node: how far its clock is off the test clock, in seconds ([`Net::skew`]).
    skews: Vec<std::sync::Arc<std::sync::atomic::AtomicI64>>,
    directory: std::sync::Arc<cod::node::discovery::Directory>,
    /// By node: `None` while stopped ([`Net::stop_in_process`]).
    handles: Vec<Option<cod::node::NodeHandle>>,
    rt: tokio::runtime::Runtime,
}

/// One node's clock: the test clock, off by the node's skew.
struct Skewed {
    base: std::sync::Arc<cod::clock::ManualClock>,
    skew: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl cod::clock::Clock for Skewed {
    fn now(&self) -> u64 {
        let skew = self.skew.load(std::sync::atomic::Ordering::SeqCst);
        self.base.now().saturating_add_signed(skew)
    }
}

impl InProcess {
    fn start(&self, node: &Node, i: usize) -> cod::node::NodeHandle {
        let dir = cod::nodedir::NodeDir::open(&node.dir).unwrap();
        let clock = Skewed {
            base: self.clock.clone(),
            skew: self.skews[i].clone(),
        };
        let start = cod::node::NodeBuilder::new(dir, example_secret(&node.key))
            .clock(std::sync::Arc::new(clock))
            .discovery(self.directory.clone())
            .start();
        self.rt.block_on(start).unwrap()
    }
}

impl<'w> Net<'w> {
    /// Nodes of `pkg` that the test runs itself (say, on the hosts of a `lab::Lab`): the
    /// helpers that ask them through their control sockets.
    pub fn of(w: &'w World, pkg: PathBuf, nodes: Vec<Node>) -> Self {
        Self {
            w,
            pkg,
            nodes,
            dht: None,
            inproc: None,
        }
    }

    /// No nodes yet and no DHT, for the demo package (nodes then meet only as configured).
    pub fn without_dht(w: &'w World) -> Self {
        Self {
            w,
            pkg: w.pack_demo().0,
            nodes: Vec::new(),
            dht: None,
            inproc: None,
        }
    }

    /// `n` nodes (example keys node1..noden) finding each other through a local DHT.
    pub fn with_dht(w: &'w World, n: usize, extra_ini: &str) -> Self {
        Self::with_com(w, n, &template("com.ini"), extra_ini)
    }

    /// Like [`Net::with_dht`], every node holding the funding of [`funding_archive`] (with
    /// `bread` loaves) before its daemon starts. The archive's network records are signed
    /// with the signers' keys directly, bypassing what their daemons promised: a signer's
    /// daemon that starts first checkpoints the last period at the network's seq 0 too, and
    /// two such signatures make a record that takes that seq from the funding whenever they
    /// meet — a restarted signer offers its signed records again — by the lower hash,
    /// undoing the funding and all that claims from it. Tests that fund through a running
    /// daemon (to see it spread) run that risk; this is for those that only need the coins.
    pub fn funded_with_dht(w: &'w World, n: usize, bread: u64, extra_ini: &str) -> Self {
        let mut net = Self::with_com(w, 0, &template("com.ini"), extra_ini);
        let nodes: Vec<Node> = (1..=n)
            .map(|i| {
                w.deploy_with(
                    &net.pkg,
                    &format!("node{i}"),
                    Some(&net.node_ini(extra_ini)),
                )
            })
            .collect();
        let funding = funding_archive(w, &nodes.iter().collect::<Vec<_>>(), bread);
        for node in nodes {
            w.at(&node, &["chain", "import", s(&funding)]).ok();
            w.at(&node, &["node", "start"]).ok();
            net.nodes.push(node);
        }
        net
    }

    /// Like [`Net::with_dht`], for a cod of another com.ini.
    pub fn with_com(w: &'w World, n: usize, com: &str, extra_ini: &str) -> Self {
        let dht = LocalDht::start(4);
        let (pkg, _) = w.pack("dist", com, &template("cod.ini"));
        let mut net = Self {
            w,
            pkg,
            nodes: Vec::new(),
            dht: Some(dht),
            inproc: None,
        };
        for i in 1..=n {
            net.add(&format!("node{i}"), extra_ini);
        }
        net
    }

    /// `n` nodes of a cod of `com` inside the test process, on a test clock set to now
    /// ([`Net::set_time`] moves it).
    pub fn in_process(w: &'w World, n: usize, com: &str, extra_ini: &str) -> Self {
        // `COD_TEST_LOG=cod=debug`: what the nodes log, on stderr (they share the process).
        if let Ok(filter) = std::env::var("COD_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .try_init();
        }
        let (pkg, _) = w.pack("dist", com, &template("cod.ini"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut net = Self {
            w,
            pkg,
            nodes: Vec::new(),
            dht: None,
            inproc: Some(InProcess {
                clock: std::sync::Arc::new(cod::clock::ManualClock::new(cod::clock::now())),
                skews: Vec::new(),
                directory: Default::default(),
                handles: Vec::new(),
                rt,
            }),
        };
        for i in 1..=n {
            net.add(&format!("node{i}"), extra_ini);
        }
        net
    }

    /// Sets the in-process nodes' clock to `t` (Unix seconds).
    pub fn set_time(&self, t: u64) {
        self.test_clock().set(t);
    }

    /// Moves the in-process nodes' clock `secs` seconds on.
    pub fn advance(&self, secs: u64) {
        self.test_clock().advance(secs);
    }

    /// Sets in-process node `i`'s clock `secs` seconds off the test clock (ahead if
    /// positive), as a host whose clock is set wrong.
    pub fn skew(&self, i: usize, secs: i64) {
        let p = self.inproc.as_ref().expect("an in-process node");
        p.skews[i].store(secs, std::sync::atomic::Ordering::SeqCst);
    }

    /// Stops in-process node `i` (its store closed; it answers no more).
    pub fn stop_in_process(&mut self, i: usize) {
        let p = self.inproc.as_mut().expect("an in-process node");
        if let Some(h) = p.handles[i].take() {
            p.rt.block_on(h.stop()).unwrap();
        }
    }

    /// Starts in-process node `i` again, from its store.
    pub fn start_in_process(&mut self, i: usize) {
        let p = self.inproc.as_mut().expect("an in-process node");
        assert!(p.handles[i].is_none(), "node {i} runs already");
        let h = p.start(&self.nodes[i], i);
        p.handles[i] = Some(h);
    }

    fn test_clock(&self) -> &cod::clock::ManualClock {
        &self
            .inproc
            .as_ref()
            .expect("only in-process nodes run on a test clock")
            .clock
    }

    pub fn node_ini(&self, extra: &str) -> String {
        let dht = match &self.dht {
            Some(d) => format!(
                "[dht]\nbootstrap = {}\nannounce_interval = 2s\nlookup_interval = 2s\n",
                d.bootstrap
            ),
            None => "[dht]\nenabled = false\n".to_string(),
        };
        format!("[node]\nlisten = 127.0.0.1:0\n{dht}[sync]\ninterval = 2s\n{extra}")
    }

    /// Deploys and starts one more node with example key `key`.
    pub fn add(&mut self, key: &str, extra_ini: &str) -> &Node {
        let node = self
            .w
            .deploy_with(&self.pkg, key, Some(&self.node_ini(extra_ini)));
        match &mut self.inproc {
            None => {
                self.w.at(&node, &["node", "start"]).ok();
            }
            Some(p) => {
                p.skews.push(Default::default());
                let h = p.start(&node, p.handles.len());
                p.handles.push(Some(h));
            }
        }
        self.nodes.push(node);
        self.nodes.last().unwrap()
    }

    pub fn status(&self, node: &Node) -> Option<serde_json::Value> {
        let r = self.w.at(node, &["--json", "status"]);
        r.out.status.success().then(|| r.json())
    }

    /// What `node`'s peers know it by in this run (its transport key's id).
    pub fn peer_id(&self, node: &Node) -> Option<String> {
        Some(self.status(node)?["peer_id"].as_str()?.to_string())
    }

    /// The peer ids `node` confirmed (compare with [`Net::peer_id`]: peers never learn
    /// each other's accounts).
    pub fn confirmed_peers(&self, node: &Node) -> Vec<String> {
        let r = self.w.at(node, &["--json", "peers"]);
        if !r.out.status.success() {
            return Vec::new();
        }
        r.json()["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["confirmed"] == true)
            .filter_map(|p| p["peer_id"].as_str().map(String::from))
            .collect()
    }

    pub fn applied(&self, node: &Node) -> Option<u64> {
        self.status(node)
            .and_then(|s| s["chain"]["applied"].as_u64())
    }

    /// Waits until every node confirmed every other, and shows every node's account to its
    /// peers (a node shows its own opening once it came back along its stem, or once it
    /// found itself alone).
    pub fn wait_meshed(&self, secs: u64) {
        self.wait_confirmed(secs);
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                self.status(n).unwrap()["addr"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let http = reqwest::blocking::Client::new();
        let shows = |addr: &str, id: &str| -> bool {
            http.get(format!("http://{addr}/v1/chains/{id}"))
                .send()
                .ok()
                .and_then(|r| r.json::<serde_json::Value>().ok())
                .and_then(|v| v["records"].as_array().map(|a| !a.is_empty()))
                .unwrap_or(false)
        };
        for (n, addr) in self.nodes.iter().zip(&addrs) {
            wait_for(secs, &format!("{} to show every account", n.key), || {
                self.nodes.iter().all(|m| shows(addr, &m.id)).then_some(())
            });
        }
    }

    /// Waits until every node confirmed every other.
    pub fn wait_confirmed(&self, secs: u64) {
        let ids: Vec<String> = self
            .nodes
            .iter()
            .map(|n| wait_for(secs, "the node to run", || self.peer_id(n)))
            .collect();
        for (n, me) in self.nodes.iter().zip(&ids) {
            wait_for(secs, &format!("{} to confirm its peers", n.key), || {
                let peers = self.confirmed_peers(n);
                ids.iter()
                    .filter(|id| *id != me)
                    .all(|id| peers.contains(id))
                    .then_some(())
            });
        }
    }

    /// Does `at` know the account `of` (its opening reached it)?
    pub fn knows(&self, at: &Node, of: &str) -> bool {
        let r = self.w.at(at, &["--json", "balance", of]);
        r.out.status.success() && r.json()["known"] == true
    }

    pub fn balance(&self, at: &Node, of: &str) -> Option<u64> {
        let r = self.w.at(at, &["--json", "balance", of]);
        r.out
            .status
            .success()
            .then(|| r.json()["assets"]["codcoin"]["total"].as_u64().unwrap())
    }
}

impl Drop for Net<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.inproc.take() {
            for h in p.handles.into_iter().flatten() {
                let _ = p.rt.block_on(h.stop());
            }
            return;
        }
        // A failed test quotes what every node logged (in-process nodes log to stderr).
        if std::thread::panicking() {
            for n in &self.nodes {
                eprintln!("{}: {}", n.key, log_tail(&n.dir, 40));
            }
        }
        // All at once: each stop waits for its daemon's process to end.
        std::thread::scope(|scope| {
            for n in &self.nodes {
                scope.spawn(|| self.w.at(n, &["node", "stop"]));
            }
        });
    }
}

/// An example key's fingerprint (what com.ini's `[signers] keys` lists).
pub fn fp(name: &str) -> String {
    example_secret(name).public().fingerprint().to_string()
}

/// The demo's model with a short settlement period starting `epoch_in` seconds from now.
pub fn com(period: u64, epoch_in: u64, extra_signers: &str) -> (String, u64) {
    let epoch = cod::clock::now() + epoch_in;
    let epoch_text = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch),
    )
    .to_string();
    let text = format!(
        "[com]\nname = test\nversion = 1.0.0\nsettlement_period = {period}s\nepoch = {epoch_text}\n\
         [asset.codcoin]\ndecimals = 2\n\
         [backing.bread]\nclass = inventory\nasset = codcoin\nunit = loaf\nvalue = 350\n\
         [distribution]\nformula = equal\nshare = 100%\n\
         [signers]\nkeys = {}, {}, {}\nquorum = 2\n{extra_signers}",
        fp("node1"),
        fp("node2"),
        fp("node3")
    );
    (text, epoch)
}

/// The cases of a conformance directory: each `NAME.json` in `dir`, by name, in name order.
pub fn read_cases<T: serde::de::DeserializeOwned>(dir: &Path) -> Vec<(String, T)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let name = f.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&f).unwrap();
            let case = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not a case: {e}", f.display()));
            (name, case)
        })
        .collect()
}
