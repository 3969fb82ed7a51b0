#!/usr/bin/env bash
# The test suite, from a fresh clone: installs what is missing, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One file at a time: the tests measure memory and share two cores.
exec node --test --test-concurrency=1 dist/test/*.test.js
