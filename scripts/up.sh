#!/usr/bin/env bash
# Start the service from a fresh clone: builds the `orchestrator` binary and the Spin
# components (adding the wasm32-wasip2 target if missing), creates and migrates the
# SQLite file, serves the API on 127.0.0.1:8000 and the WebSocket on 8001.
# Extra arguments go to `orchestrator up` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -p orchestrator-cli -- up --build "$@"
