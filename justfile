# cod's tasks. Run them through `.ci/just RECIPE` on a fresh machine (it installs what they
# need first); `just RECIPE` works once the setup has run.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The main job: a demo cod made and deployed in a temporary directory.
default: demo

# Build the cod executable (debug profile; dependencies are optimized, see Cargo.toml).
build:
    cargo build --bin cod

# Every check CI runs: formatting, lints, advisories, the whole test suite (through
# cargo-nextest, .config/nextest.toml; the benchmarks run once each as tests), and a short
# smoke run of every fuzz target.
test: audit && fuzz-smoke
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings
    cargo nextest run --lib --bins --tests --examples
    cargo test --bench '*'
    cargo test --doc

# Dependency advisories against the offline RustSec snapshot (../shared/advisory-db, or
# $COD_ADVISORY_DB). Accepted advisories are named (and explained in docs/security.md).
audit:
    #!/usr/bin/env bash
    set -euo pipefail
    db="${COD_ADVISORY_DB:-$PWD/../shared/advisory-db}"
    if [ ! -d "$db" ]; then echo "audit: no advisory database at $db (set COD_ADVISORY_DB)" >&2; exit 1; fi
    cargo audit --db "$db" --no-fetch --stale --deny warnings \
        --ignore RUSTSEC-2023-0071

# Fuzz every target for SECONDS of CPU each (corpora in fuzz/corpus/, seeded from fuzz/seeds/;
# crashes in fuzz/artifacts/). Figures go in docs/security.md.
fuzz SECONDS="60": fuzz-build
    #!/usr/bin/env bash
    set -euo pipefail
    cd fuzz
    for t in $(cargo fuzz list); do
        mkdir -p "corpus/$t"; cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
        echo "== $t"
        RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$t" "corpus/$t" -- \
            -max_total_time={{SECONDS}} -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 2>&1 \
            | grep -E "^(stat::|Done)|SUMMARY|panicked" || true
    done

# Each fuzz target briefly, from its seeds (CI): fails on a crash. (Built optimized, as for
# the long runs: unoptimized, a key file's KDF outlasts libFuzzer's timeout.)
fuzz-smoke SECONDS="5": fuzz-build
    #!/usr/bin/env bash
    set -euo pipefail
    cd fuzz
    for t in $(cargo fuzz list); do
        mkdir -p "smoke/$t"
        RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$t" "smoke/$t" seeds/"$t" -- \
            -max_total_time={{SECONDS}} -rss_limit_mb=4096 -timeout=30 >"smoke/$t.log" 2>&1 \
            || { echo "fuzz target $t crashed:"; tail -40 "smoke/$t.log"; exit 1; }
        echo "fuzz $t: $(grep -Eo 'Done [0-9]+ runs.*' "smoke/$t.log" | tail -1)"
    done
    rm -rf smoke

fuzz-build:
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none

# Rewrites the fuzz seed corpora from cod's own output (fuzz/seeds/).
fuzz-seeds:
    rm -rf fuzz/seeds
    cargo run --example fuzz_seeds -- fuzz/seeds

# The executable a deployer packs: a release build without the build machine's paths
# (its home directory, cargo registry and source tree are remapped), in target/release/cod.
release:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo_home="${CARGO_HOME:-$HOME/.cargo}"
    # The most specific prefix last: rustc applies the last one that matches.
    remap="--remap-path-prefix=$HOME=/home --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$PWD=/cod"
    export RUSTFLAGS="${RUSTFLAGS:-} $remap"
    export CFLAGS="${CFLAGS:-} -ffile-prefix-map=$HOME=/home -ffile-prefix-map=$cargo_home=/cargo -ffile-prefix-map=$PWD=/cod"
    export CXXFLAGS="${CXXFLAGS:-} -ffile-prefix-map=$HOME=/home -ffile-prefix-map=$cargo_home=/cargo -ffile-prefix-map=$PWD=/cod"
    cargo build --release --bin cod
    if grep -c -a -F "$HOME/" target/release/cod; then
        echo "release: target/release/cod still names $HOME" >&2; exit 1
    fi
    echo "target/release/cod: no build-machine paths; pack with it: target/release/cod pack …"

# The Debian package of the release build: target/cod_VERSION_ARCH.deb (docs/node.md
# "Running as a service"); `.ci/deb BIN OUT_DIR` packs any executable.
deb: release
    .ci/deb target/release/cod target

# The main job: a live local network. A local Mainline DHT on loopback, a cod packed from
# the templates (settlement every 20 s), three nodes deployed from it and started in the
# background; an issuance signed by two members, the period's distribution, a transfer seen
# arriving on every node. Everything stays on 127.0.0.1; `$DEMO/stop` ends it.
demo: build
    #!/usr/bin/env bash
    set -euo pipefail
    cod="$PWD/target/debug/cod"
    demo=$(mktemp -d "${TMPDIR:-/tmp}/cod-demo.XXXXXX")
    say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
    until_true() { # SECONDS WHAT COMMAND...
        local t=$1 what=$2; shift 2
        for _ in $(seq $((t * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
        echo "gave up waiting for: $what" >&2; return 1
    }
    say "demo directory: $demo"
    "$cod" dht bootstrap --nodes 4 > "$demo/dht.txt" 2> "$demo/dht.log" &
    echo $! > "$demo/dht.pid"
    until_true 10 "the local DHT" test -s "$demo/dht.txt"
    boot=$(head -1 "$demo/dht.txt")
    echo "local DHT on $boot"
    cat > "$demo/stop" <<STOP
    #!/bin/sh
    for n in "$demo"/nodes*/*/; do "$cod" --node "\$n" node stop; done
    kill \$(cat "$demo/dht.pid") 2>/dev/null || true
    echo "stopped; remove everything with: rm -rf $demo"
    STOP
    chmod +x "$demo/stop"

    say "pack the cod (deployer) — example keys from keys-example/, never for real value"
    mkdir -p "$demo/keys"
    cp keys-example/com.pub.key keys-example/cod.pub.key keys-example/cod.sec.key "$demo/keys/"
    chmod 600 "$demo/keys/cod.sec.key"
    now=$(date -u +%s); epoch=$(date -u -d "@$((now - now % 20))" +%Y-%m-%dT%H:%M:%SZ)
    sed -e "s/^settlement_period = .*/settlement_period = 20s/" -e "s/^epoch = .*/epoch = $epoch/" ini-templates/com.ini > "$demo/com.ini"
    "$cod" pack --com "$demo/com.ini" --cod ini-templates/cod.ini --keys "$demo/keys" --out "$demo/dist"
    pkg=$(ls "$demo"/dist/*.cod.tar)

    say "deploy and start three nodes (members node1..node3, the cod's signers)"
    for n in 1 2 3; do
        cp "keys-example/node$n.sec.key" "$demo/node$n.sec.key"; chmod 600 "$demo/node$n.sec.key"
        printf '[node]\nlisten = 127.0.0.1:0\n[dht]\nbootstrap = %s\nannounce_interval = 2s\nlookup_interval = 2s\n[sync]\ninterval = 2s\n[signing]\nauto = true\n' "$boot" > "$demo/node$n.ini"
        "$cod" deploy --package "$pkg" --key "$demo/node$n.sec.key" --node-ini "$demo/node$n.ini" --dir "$demo/nodes$n" | grep -E 'node id|deployed'
        "$cod" --node "$demo"/nodes$n/* node start | head -1
    done
    node() { echo "$demo"/nodes$1/*; }
    id() { sed -n 's/.*"node_id": "\([0-9a-f]*\)".*/\1/p' "$(node $1)/deployment.json"; }

    say "the nodes find each other on the DHT"
    for n in 1 2 3; do until_true 90 "node$n's peers" sh -c "[ \$('$cod' --node '$(node $n)' --json peers | grep -c '\"confirmed\": true') -ge 2 ]"; done
    "$cod" --node "$(node 1)" peers

    say "node1 proposes an issuance backed by 30 loaves; node2's member approves it"
    req=$("$cod" --node "$(node 1)" --json issue --backing inventory:bread=30 | sed -n 's/^  "id": "\([0-9a-f]*\)".*/\1/p')
    until_true 30 "node2 to see the request" "$cod" --node "$(node 2)" sign show "$req"
    "$cod" --node "$(node 2)" sign approve "$req" | head -1
    until_true 30 "the issuance to be final" sh -c "'$cod' --node '$(node 3)' --json balance network | grep -q '\"total\": 10500'"
    "$cod" --node "$(node 3)" balance network

    say "who is paid: members (the founders are com.ini's signer keys; others are admitted)"
    "$cod" --node "$(node 1)" members

    say "at the end of the 20 s period, the signers' nodes distribute it (auto-signed)"
    until_true 60 "the distribution" sh -c "'$cod' --node '$(node 1)' --json balance | grep -q '\"total\": 3500'"
    "$cod" --node "$(node 1)" balance

    say "node1 pays node2 12.50 codcoin; it arrives on every node"
    "$cod" --node "$(node 1)" transfer --to "$(id 2)" --amount 12.50 --memo "demo" --yes
    for n in 1 2 3; do
        until_true 30 "node$n to see it" sh -c "'$cod' --node '$(node $n)' --json balance '$(id 2)' | grep -q '\"total\": 4750'"
        printf 'node%s sees node2 holding: ' "$n"; "$cod" --node "$(node $n)" balance "$(id 2)" | tail -1
    done

    say "the network keeps running in the background"
    echo "watch a node:   $cod --node $(node 1) status    (also: peers, history, sign list, tui)"
    echo "stop it all:    $demo/stop"

# Ledger throughput next to `openssl speed` (criterion; summary at the end).
# (A separate target dir keeps the release build from locking the dev one.)
bench:
    CARGO_TARGET_DIR=target/bench cargo bench --bench ledger

# Network benchmark: N = 5 and 20 nodes on loopback, then a fresh node syncing 100k records.
# The nodes run the release build (`just release`); the harness is a debug one.
bench-net: release
    COD_BIN=$PWD/target/release/cod cargo test --bench net -- --bench

# A node under attack (tests/hostile.rs's attacks, longer): the honest peer's latency
# (p50, p99, max) and the victim's RSS growth. The nodes run the release build (`just
# release`); the attacking harness is the debug one.
bench-hostile: release
    COD_BIN=$PWD/target/release/cod cargo test --bench hostile -- --bench

# A node holding a big chain (issue 13): import rate, RSS, restart, `cod balance` without a
# daemon, disk per record, /v1/info latency during import, verify and export, a fresh node's
# sync from it. COD_BENCH_SCALE=100000,1000000 sets the sizes (1M: about 25 minutes here);
# COD_BIN=/path/to/an/older/cod measures another executable with the same harness.
bench-scale: release
    COD_BIN=$PWD/target/release/cod cargo test --bench scale -- --bench

# Origin privacy (issue 17): 20 nodes and a spy peer of every node; the share of records whose
# author the spy's first-seen guess names, and the time until a record is on every node, with
# stems off and on. COD_BENCH_N and COD_BENCH_RECORDS change the sizes.
bench-privacy: release
    COD_BIN=$PWD/target/release/cod cargo test --bench privacy -- --bench

# Idle CPU of `cod tui` attached to a quiet node, over 10 s (in tmux).
bench-tui: build
    #!/usr/bin/env bash
    set -euo pipefail
    cod="$PWD/target/debug/cod"; d=$(mktemp -d)
    mkdir "$d/keys"; cp keys-example/com.pub.key keys-example/cod.pub.key keys-example/cod.sec.key "$d/keys/"; chmod 600 "$d/keys/cod.sec.key"
    "$cod" pack --com ini-templates/com.ini --cod ini-templates/cod.ini --keys "$d/keys" --out "$d/dist" >/dev/null
    cp keys-example/node1.sec.key "$d/k"; chmod 600 "$d/k"
    printf '[node]\nlisten = 127.0.0.1:0\n[dht]\nenabled = false\n' > "$d/n.ini"
    "$cod" deploy --package "$d"/dist/*.cod.tar --key "$d/k" --node-ini "$d/n.ini" --dir "$d/nodes" >/dev/null
    node=$(echo "$d"/nodes/*); "$cod" --node "$node" node start >/dev/null
    tmux -L cod-bench-tui new-session -d -s t -x 80 -y 24 "$cod --node $node tui"; sleep 3
    pid=$(pgrep -f "^$cod --node $node tui" | head -1)
    a=$(awk '{print $14+$15}' /proc/$pid/stat); sleep 10; b=$(awk '{print $14+$15}' /proc/$pid/stat)
    echo "cod tui, idle for 10 s: $((b - a)) clock ticks of $(getconf CLK_TCK)/s = $(( (b - a) * 10 )) ‰ of one core"
    tmux -L cod-bench-tui kill-server; "$cod" --node "$node" node stop >/dev/null; rm -rf "$d"

# One schedule of faults on a lab of network namespaces (tests/chaos.rs; needs root): real
# nodes, partitions, loss, slow links, latency and reordering, kill -9, SIGSTOP, clock jumps,
# transfers and distributions throughout, and the checker.
# SEED replays the schedule a run printed; STEPS sets its length (CI runs 6); MAX_JUMP is how
# far a clock may jump, in seconds (CI's run: 240, within the tolerated skew).
chaos SEED="" STEPS="12" MAX_JUMP="900":
    COD_CHAOS_SEED={{SEED}} COD_CHAOS_STEPS={{STEPS}} COD_CHAOS_MAX_JUMP={{MAX_JUMP}} \
        cargo nextest run --test chaos --no-capture a_seeded_schedule

# Every seed in tests/chaos-seeds.txt (runs that found a defect), one after another; the
# seeds whose runs had a problem are listed at the end.
chaos-regressions STEPS="12":
    #!/usr/bin/env bash
    set -uo pipefail
    failed=()
    for seed in $(grep -v '^#' tests/chaos-seeds.txt | awk '{print $1}'); do
        just chaos "$seed" {{STEPS}} >"target/chaos-seed-$seed.log" 2>&1 || failed+=("$seed")
    done
    echo "replayed $(grep -vc '^#' tests/chaos-seeds.txt) seeds; with a problem: ${failed[*]:-none}"
    [ ${#failed[@]} -eq 0 ]

# RUNS schedules of STEPS faults each, JOBS at a time, each with a fresh seed; a summary for
# docs/reliability.md (runs, faults, acknowledged and lost records, divergent nodes, time to
# agree after healing). Reports in target/chaos-long.jsonl, logs beside it.
chaos-long RUNS="100" STEPS="12" JOBS="1":
    #!/usr/bin/env bash
    set -euo pipefail
    bin=$(cargo test --test chaos --no-run --message-format=json 2>/dev/null | python3 -c \
        'import sys, json; print([j["executable"] for j in map(json.loads, sys.stdin) if j.get("executable") and j["target"]["name"] == "chaos"][0])')
    # (Copies: a build meanwhile does not change what runs.)
    cp "$bin" target/chaos-long-bin
    cp target/debug/cod target/chaos-long-cod
    report="$PWD/target/chaos-long.jsonl"; : > "$report"
    export COD_BIN="$PWD/target/chaos-long-cod" COD_CHAOS_REPORT="$report" COD_CHAOS_STEPS={{STEPS}} \
        COD_CHAOS_MAX_JUMP=900
    seq 1 {{RUNS}} | xargs -P {{JOBS}} -I{} sh -c 'target/chaos-long-bin --exact \
        a_seeded_schedule_of_faults_loses_nothing_acknowledged --nocapture >target/chaos-run-{}.log 2>&1 \
        || echo "run {} had a problem: target/chaos-run-{}.log"'
    .ci/chaos-summary "$report"
