#!/usr/bin/env bash
# Runs every benchmark (or the one named) from the repository root; each prints its table
# and writes build/bench/<name>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
only="${1:-}"
status=0
for program in build/bench/*_bench; do
  name=$(basename "$program" _bench)
  if [ -n "$only" ] && [ "$only" != "$name" ]; then continue; fi
  "$program" --out "build/bench/$name.json" || status=1
done
exit $status
