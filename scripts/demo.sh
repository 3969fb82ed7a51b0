#!/usr/bin/env bash
# The headline demo, from a fresh clone: installs what is missing, builds, runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/src/cli/main.js demo "$@"
