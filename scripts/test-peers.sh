#!/usr/bin/env bash
# Installs the npm test peers at exact pinned versions (nothing when already there).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f tests/node/package.json ]; then
  if [ ! -d tests/node/node_modules ] || [ tests/node/package-lock.json -nt tests/node/node_modules ]; then
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
