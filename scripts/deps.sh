#!/usr/bin/env bash
# Installs what building and testing meridian needs on Debian 12, and nothing when it is
# already there. System packages come from Debian; test peers come from npm, pinned exactly.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost-dev libboost-system-dev libssl-dev libcurl4-openssl-dev zlib1g-dev
  libabsl-dev nlohmann-json3-dev libyaml-cpp-dev libsqlite3-dev libspdlog-dev libfmt-dev
  libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libpugixml-dev
  libfuse3-dev fuse3 fio iproute2 procps openssl ca-certificates python3
)

# `deps.sh --bench` adds the peers the benchmarks measure against.
if [ "${1:-}" = "--bench" ]; then
  packages+=(postgresql postgresql-client rclone curl)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
