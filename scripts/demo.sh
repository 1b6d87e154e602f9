#!/usr/bin/env bash
# The demo of the CPU-only test mode: a tiny BERT trained on the shipped Azerbaijani sample
# text by a cluster on this machine (a coordinator, a param-shard, a data-loader and two
# compute actors over a local nats-server), ending with a checkpoint and a summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
node dist/runtime/cli.js cluster down --run demo >/dev/null 2>&1 || true
# --fresh: every demo starts over, rather than refusing the folder the last one left.
exec node dist/runtime/cli.js cluster up --config configs/tiny.yaml --run demo --compute 2 --no-tui --fresh
