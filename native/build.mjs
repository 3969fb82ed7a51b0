#!/usr/bin/env node
// Builds native/*.cc into build/fngd.node against a libtorch.
//   default:             Debian's libtorch-dev (headers in /usr/include, libraries on the system path)
//   FNGD_LIBTORCH=DIR:   a libtorch folder with include/ and lib/ (a CUDA build, a pip torch's
//                        torch/ folder, ...); its lib/ is baked in as rpath.
//   FNGD_CXX_STD=c++20:  the C++ standard, for a libtorch whose headers need a newer one (default c++17).
// Translation units compile in parallel and only when a source, a header or the flags changed.
//
// Installed as a dependency, this is the `fngd-build` bin (`npx fngd-build`) and the package's
// install script (`--on-install`: a missing prerequisite is reported, not fatal, because npm may not
// run dependencies' install scripts at all and `import 'fngd'` names this command when the addon is
// missing).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const outDir = join(root, 'build');
const objDir = join(outDir, 'obj');
const onInstall = process.argv.includes('--on-install');
const HOW = 'Then build the addon with `npx fngd-build` (in a clone of fngd: `npm run build:native`).';
mkdirSync(objDir, { recursive: true });

const require = createRequire(import.meta.url);
const napiInclude = require('node-addon-api').include_dir;
const nodeInclude = join(dirname(dirname(process.execPath)), 'include', 'node');
if (!existsSync(join(nodeInclude, 'node_api.h'))) {
  fail(`Node's headers are not at ${nodeInclude}; install Node 20 with its headers (the official tarball or nodesource packages ship them).`);
}

function fail(msg) {
  console.error(`fngd native build: ${msg}`);
  if (onInstall) {
    // npm install goes on; importing fngd will say the addon is missing and how to build it.
    console.error(`fngd native build: the addon was not built. ${HOW}`);
    process.exit(0);
  }
  process.exit(1);
}

function libtorchFlags() {
  const custom = process.env.FNGD_LIBTORCH;
  if (custom) {
    const inc = join(custom, 'include');
    const lib = join(custom, 'lib');
    if (!existsSync(join(inc, 'ATen', 'ATen.h'))) fail(`FNGD_LIBTORCH=${custom} has no include/ATen/ATen.h`);
    if (!existsSync(join(lib, 'libtorch_cpu.so'))) fail(`FNGD_LIBTORCH=${custom} has no lib/libtorch_cpu.so`);
    const cflags = [`-isystem${inc}`, `-isystem${join(inc, 'torch', 'csrc', 'api', 'include')}`];
    // A libtorch built with the old C++ ABI says so in its CMake config; we must match it.
    const cfg = join(custom, 'share', 'cmake', 'Torch', 'TorchConfig.cmake');
    const abi = existsSync(cfg) ? /_GLIBCXX_USE_CXX11_ABI=(\d)/.exec(readFileSync(cfg, 'utf8')) : null;
    if (abi) cflags.push(`-D_GLIBCXX_USE_CXX11_ABI=${abi[1]}`);
    const libs = [`-L${lib}`, `-Wl,-rpath,${lib}`];
    // CUDA builds register their kernels from libtorch_cuda at load time; keep it linked even
    // though no symbol of ours references it.
    if (existsSync(join(lib, 'libtorch_cuda.so'))) libs.push('-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed');
    libs.push('-ltorch', '-ltorch_cpu', '-lc10');
    return { cflags, libs, label: custom };
  }
  const inc = '/usr/include';
  if (!existsSync(join(inc, 'ATen', 'ATen.h'))) {
    fail('libtorch headers not found (no /usr/include/ATen/ATen.h). Install Debian\'s libtorch: apt-get install -y libtorch-dev libopenblas0-pthread, or set FNGD_LIBTORCH to a libtorch folder with include/ and lib/ (a pip-installed torch\'s torch/ folder works). ' + HOW);
  }
  return {
    cflags: [`-isystem${join(inc, 'torch', 'csrc', 'api', 'include')}`],
    libs: ['-ltorch', '-ltorch_cpu', '-lc10'],
    label: 'debian libtorch-dev',
  };
}

const torch = libtorchFlags();
const cxx = process.env.CXX || 'g++';
try {
  execFileSync(cxx, ['--version'], { stdio: 'ignore' });
} catch {
  fail(`no C++ compiler: '${cxx}' does not run. Install one (Debian: apt-get install -y g++), or set CXX. ${HOW}`);
}
const cflags = [
  `-std=${process.env.FNGD_CXX_STD || 'c++17'}`, '-O2', '-fPIC', '-frtti', '-fexceptions', '-Wall', '-Wno-unused-parameter',
  '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED',
  `-I${nodeInclude}`, `-I${napiInclude}`, ...torch.cflags,
];
const flagsKey = JSON.stringify({ cxx, cflags, libs: torch.libs });
const stampFile = join(outDir, 'flags.json');
const flagsChanged = !existsSync(stampFile) || readFileSync(stampFile, 'utf8') !== flagsKey;

const sources = readdirSync(nativeDir).filter((f) => f.endsWith('.cc'));
const headerMtime = Math.max(...readdirSync(nativeDir).filter((f) => f.endsWith('.h')).map((f) => statSync(join(nativeDir, f)).mtimeMs));

function needsBuild(src, obj) {
  if (flagsChanged || !existsSync(obj)) return true;
  const o = statSync(obj).mtimeMs;
  return statSync(src).mtimeMs > o || headerMtime > o;
}

function compile(src, obj) {
  return new Promise((res, rej) => {
    const p = spawn(cxx, [...cflags, '-c', src, '-o', obj], { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? res() : rej(new Error(`compiling ${src} failed`))));
  });
}

const jobs = [];
const objects = [];
for (const f of sources) {
  const src = join(nativeDir, f);
  const obj = join(objDir, f.replace(/\.cc$/, '.o'));
  objects.push(obj);
  if (needsBuild(src, obj)) jobs.push([src, obj]);
}
const target = join(outDir, 'fngd.node');
if (jobs.length === 0 && existsSync(target)) process.exit(0);

console.error(`fngd native build: ${jobs.length} file(s) against ${torch.label}`);
const parallel = Math.max(1, cpus().length);
try {
  for (let i = 0; i < jobs.length; i += parallel) {
    await Promise.all(jobs.slice(i, i + parallel).map(([s, o]) => compile(s, o)));
  }
  execFileSync(cxx, ['-shared', '-o', target, ...objects, ...torch.libs], { stdio: 'inherit' });
} catch (e) {
  fail(e.message);
}
writeFileSync(stampFile, flagsKey);
console.error(`fngd native build: wrote ${target}`);
