# cod's tasks. Run them through `.ci/just RECIPE` on a fresh machine (it installs what they
# need first); `just RECIPE` works once the setup has run.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The main job: a demo cod made and deployed in a temporary directory.
default: demo

# Build the cod executable (debug profile; dependencies are optimized, see Cargo.toml).
build:
    cargo build --bin cod

# Every check CI runs: formatting, lints, the whole test suite.
test:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings
    cargo test --all-targets
    cargo test --doc

# Keygen → pack → deploy a demo cod into a temporary directory and show what it made.
demo: build
    #!/usr/bin/env bash
    set -euo pipefail
    cod="$PWD/target/debug/cod"
    demo=$(mktemp -d "${TMPDIR:-/tmp}/cod-demo.XXXXXX")
    echo "== demo directory: $demo"
    # Example keys from keys-example/ (never for real value); git does not keep file modes,
    # so the secret keys get their 0600 back here.
    mkdir -p "$demo/keys"
    cp keys-example/com.pub.key keys-example/cod.pub.key keys-example/cod.sec.key "$demo/keys/"
    chmod 600 "$demo/keys/cod.sec.key"
    echo "== a fresh key, as a member would make one"
    "$cod" keygen --role node --out "$demo/member" --no-passphrase
    echo "== pack the cod (deployer)"
    "$cod" pack --com ini-templates/com.ini --cod ini-templates/cod.ini --keys "$demo/keys" --out "$demo/dist"
    pkg=$(ls "$demo"/dist/*.cod.tar)
    echo "== deploy two nodes from the package (members)"
    for n in 1 2; do
        cp keys-example/node$n.sec.key "$demo/node$n.sec.key"; chmod 600 "$demo/node$n.sec.key"
        "$cod" deploy --package "$pkg" --key "$demo/node$n.sec.key" --dir "$demo/nodes$n"
    done
    echo "== what was made"
    (cd "$demo" && find . -maxdepth 3 -not -path '*/store/*' -not -path '*/package/*' | sort)
    echo "== remove it with: rm -rf $demo"

# Ledger throughput next to `openssl speed` (criterion; summary at the end).
# (A separate target dir keeps the release build from locking the dev one.)
bench:
    CARGO_TARGET_DIR=target/bench cargo bench --bench ledger
