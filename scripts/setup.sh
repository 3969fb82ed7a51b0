#!/usr/bin/env bash
# Makes a fresh Debian 12 machine with Node 20 ready to run fngd: the apt packages it needs (when
# missing), the npm dependencies (when package-lock.json changed) and the native + TypeScript build
# (incremental). Run as root, or with sudo available, the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libopenblas0-pthread dataset-fashion-mnist)
# A custom libtorch (FNGD_LIBTORCH, e.g. a CUDA build) replaces Debian's.
[ -z "${FNGD_LIBTORCH:-}" ] && packages+=(libtorch-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "fngd setup: installing ${missing[*]} (apt)" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "fngd setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

npm run --silent build
