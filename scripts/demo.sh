#!/usr/bin/env bash
# The demo of the CPU-only test mode: a cluster on this machine, scaled while it runs,
# then stopped with nothing left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
cli() { node dist/runtime/cli.js "$@"; }
cli cluster down --run demo >/dev/null 2>&1 || true
cli cluster up --detach --run demo --compute 2
cli cluster status --run demo
cli cluster scale --run demo --compute 3
sleep 2
cli cluster status --run demo
cli cluster down --run demo
