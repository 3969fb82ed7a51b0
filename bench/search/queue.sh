#!/usr/bin/env bash
# A tiny job queue for hyperparameter searches: N workers pop lines "NAME ARGS..." from QUEUE (lines
# may be appended while it runs) and run `fngd train ARGS --out OUT/NAME`, one libtorch thread each,
# so two workers keep two cores busy with comparable conditions for every run.
#   bash bench/search/queue.sh QUEUE OUT [WORKERS=2] [FNGD=dist/src/cli/main.js]
set -uo pipefail
queue=$1 out=$2 workers=${3:-2} fngd=${4:-dist/src/cli/main.js}
mkdir -p "$out"
worker() {
  while true; do
    local line
    line=$(flock "$queue.lock" bash -c 'l=$(grep -v "^#" "$0" | grep -v "^\s*$" | head -1); [ -n "$l" ] && grep -vxF "$l" "$0" > "$0.tmp"; [ -n "$l" ] && mv "$0.tmp" "$0"; echo "$l"' "$queue")
    [ -z "$line" ] && return
    local name=${line%% *} args=${line#* }
    if [ -f "$out/$name/done" ]; then continue; fi
    echo "[$(date +%T)] worker $1 start $name"
    # shellcheck disable=SC2086
    node "$fngd" train $args --threads 1 --no-progress --out "$out/$name" > "$out/$name.out" 2>&1 \
      && touch "$out/$name/done" || echo "[$(date +%T)] $name FAILED (see $out/$name.out)"
    echo "[$(date +%T)] worker $1 end $name"
  done
}
for w in $(seq 1 "$workers"); do worker "$w" & done
wait
