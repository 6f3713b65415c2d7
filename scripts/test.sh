#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the wasm target, checks formatting
# and lints, builds the Spin components, then runs every native and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "rustup target add wasm32-wasip2 wasm32-wasip1"
rustup target add wasm32-wasip2 wasm32-wasip1
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "cargo fmt --check (workspace and components)"
cargo fmt --all -- --check
(cd components && cargo fmt --all -- --check)

step "build the Spin components (wasm32-wasip2, release)"
(cd components && cargo build --release --target wasm32-wasip2)
ls -l components/target/wasm32-wasip2/release/*.wasm

step "cargo clippy --all-targets -D warnings (workspace and components)"
cargo clippy --release --workspace --all-targets -- -D warnings
(cd components && cargo clippy --release --target wasm32-wasip2 --all-targets -- -D warnings)

step "cargo test (release: one build profile for tests, up and benchmarks)"
cargo test --release --workspace

step "browser tests of the dashboard (Debian chromium driven by playwright-core)"
# The binary the tests start is the one `cargo test` just built (same release profile).
cargo build --release -p orchestrator-cli
if [ ! -x /usr/bin/chromium ]; then
  # A test tool's own browser download does not work here; Debian's package does.
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends chromium >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
(cd tests/browser && npm ci --no-audit --no-fund && npm test)

step "Claude Code end to end (the real CLI, pinned in tests/claude-code, against a fake Anthropic API)"
(cd tests/claude-code && npm ci --no-audit --no-fund && npm test)
