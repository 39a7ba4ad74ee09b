#!/usr/bin/env bash
# Installs the npm test peers at exact pinned versions (nothing when already there).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f tests/node/package.json ] && ! command -v npm >/dev/null 2>&1; then
  # A fresh Debian 12 has no Node.js; Debian's own is enough for the pinned peers.
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
if [ -f tests/node/package.json ]; then
  if [ ! -d tests/node/node_modules ] || [ tests/node/package-lock.json -nt tests/node/node_modules ]; then
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
