#!/usr/bin/env bash
# Installs everything aze-run needs on a fresh Debian/Ubuntu machine, then builds it.
# Safe to run again: each step is skipped when it is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: nats-server, and the compiler node-gyp needs for the native addons.
packages=()
command -v nats-server >/dev/null 2>&1 || packages+=(nats-server)
command -v g++ >/dev/null 2>&1 || packages+=(g++)
command -v make >/dev/null 2>&1 || packages+=(make)
command -v python3 >/dev/null 2>&1 || packages+=(python3)
# openssl makes a run's TLS certificates when its server listens beyond loopback (--listen).
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
if [ ${#packages[@]} -gt 0 ]; then
  echo "setup: installing ${packages[*]} from the distribution's packages"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${packages[@]}" >/dev/null
  # Debian's nats-server package starts a system-wide server on 4222; aze-run starts its own per run.
  if [[ " ${packages[*]} " == *" nats-server "* ]] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable --now nats-server >/dev/null 2>&1 || true
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  # `npm install` rather than `npm ci`: the registry mirror some machines use lacks the
  # prebuilt msgpackr-extract packages of other platforms, which `npm ci` insists on
  # finding in the lock file. Both install the versions the lock file pins.
  npm install --no-audit --no-fund
fi

echo "setup: building (WebAssembly kernels, native addons, TypeScript)"
npm run build --silent
