// fngd as a dependency, the way a new user meets it: `npm pack`, install the tarball into a fresh
// `npm init` project (offline), build the addon with the documented bin, compile the README's
// package example with the defaults of `tsc --init` (strict), and run it.
//
// Offline: npm's cache holds tarballs but no registry metadata, so fngd's one dependency
// (node-addon-api, needed to build the addon) is installed from a tarball packed from our own
// node_modules. `--ignore-scripts` makes the run the same whatever npm's policy on dependencies'
// install scripts: the build is the explicit `npx fngd-build` the error message names.
// FNGD_TEST_PACKAGE_PREBUILT=1 copies this checkout's build/fngd.node instead of building
// (about 40 s of compiling on 2 cores saved).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(cmd: string, args: string[], cwd: string, o: { ok?: boolean } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });
  if (o.ok ?? true) assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The README's package example, as written. */
export function packageExample(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const block = /<!-- example: package -->\n```ts\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README has the package example');
  return block[1]!;
}

test('packed, installed from the tarball, built with npx fngd-build: the README example compiles strictly and runs', { timeout: 900_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'fngd-package-'));
  try {
    // The tarball: the compiled library, its types, the addon's sources and the benchmark modules
    // the CLI reads (`fngd bench`, `fngd demo`: tables, timing, machine); no tests, fixtures or other benchmarks.
    const packed = JSON.parse(run(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], root).stdout) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    const allowed = /^(README\.md|package\.json|LICENSE|dist\/src\/.*\.(js|d\.ts)|dist\/bench\/(hyper|suites|timing|machine)\.js|native\/[a-z]+\.(cc|h)|native\/build\.mjs)$/;
    assert.deepEqual(files.filter((f) => !allowed.test(f)), [], 'unexpected files in the package');
    for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'native/build.mjs', 'native/addon.cc']) assert.ok(files.includes(f), `${f} is packed`);
    run(npm, ['pack', '--ignore-scripts', '--pack-destination', dir, join(root, 'node_modules', 'node-addon-api')], root);
    const addonApi = readdirSync(dir).find((f) => f.startsWith('node-addon-api-'))!;

    const proj = join(dir, 'proj');
    mkdirSync(proj);
    run(npm, ['init', '-y'], proj);
    run(npm, ['pkg', 'set', 'type=module'], proj);
    run(npm, ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', join(dir, packed[0]!.filename), join(dir, addonApi)], proj);

    // Without the addon, importing says what is missing and which command builds it.
    const bare = run(process.execPath, ['--input-type=module', '-e', "await import('fngd')"], proj, { ok: false });
    assert.notEqual(bare.status, 0);
    assert.match(bare.stderr, /native addon is not built/);
    assert.match(bare.stderr, /npx fngd-build/);
    assert.match(bare.stderr, /libtorch-dev/);

    const installed = join(proj, 'node_modules', 'fngd');
    if (process.env.FNGD_TEST_PACKAGE_PREBUILT === '1') {
      mkdirSync(join(installed, 'build'), { recursive: true });
      copyFileSync(join(root, 'build', 'fngd.node'), join(installed, 'build', 'fngd.node'));
    } else {
      run('npx', ['--offline', '--no-install', 'fngd-build'], proj);
    }
    assert.ok(existsSync(join(installed, 'build', 'fngd.node')), 'the addon was built inside the installed package');

    // One public entry: deep paths are not importable.
    const deep = run(process.execPath, ['--input-type=module', '-e', "await import('fngd/dist/src/optim/index.js')"], proj, { ok: false });
    assert.match(deep.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED/);
    const version = run('npx', ['--offline', '--no-install', 'fngd', '--version'], proj);
    assert.equal(version.stdout.trim(), JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);

    // The user's TypeScript project: `tsc --init` defaults (strict, nodenext, verbatimModuleSyntax,
    // exactOptionalPropertyTypes, noUncheckedIndexedAccess), no @types/node.
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    run(process.execPath, [tsc, '--init'], proj);
    writeFileSync(join(proj, 'main.ts'), packageExample());
    run(process.execPath, [tsc, '-p', '.'], proj);

    const r = run(process.execPath, ['main.js'], proj);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.filter((l) => l.startsWith('epoch ')).length, 3, r.stdout);
    const out = JSON.parse(lines.at(-1)!) as { trained: number; reloaded: number; reusedSteps: number; steps: number };
    assert.ok(out.trained > 0.8, `test accuracy after 3 epochs: ${out.trained} (chance: about 0.33)`);
    assert.equal(out.reloaded, out.trained, 'the reloaded model evaluates exactly as the trained one');
    assert.equal(out.reusedSteps, out.steps, 'every hand step after the reload reused FNGD\'s checkpointed coefficients');
    for (const f of ['log.jsonl', 'steps.jsonl', 'checkpoint.safetensors', 'final.safetensors']) assert.ok(existsSync(join(proj, 'run', f)), `run/${f}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the addon build names what is missing and the fix; on install a missing libtorch is reported, not fatal', () => {
  const build = join(root, 'native', 'build.mjs');
  const env = { ...process.env, FNGD_LIBTORCH: join(tmpdir(), 'no-such-libtorch') };
  const explicit = spawnSync(process.execPath, [build], { encoding: 'utf8', env });
  assert.equal(explicit.status, 1);
  assert.match(explicit.stderr, /FNGD_LIBTORCH=.*no-such-libtorch has no include\/ATen\/ATen\.h/);
  const onInstall = spawnSync(process.execPath, [build, '--on-install'], { encoding: 'utf8', env });
  assert.equal(onInstall.status, 0, 'npm install goes on');
  assert.match(onInstall.stderr, /the addon was not built\. Then build the addon with `npx fngd-build`/);
  const noCompiler = spawnSync(process.execPath, [build], { encoding: 'utf8', env: { ...process.env, CXX: 'no-such-compiler' } });
  assert.equal(noCompiler.status, 1);
  assert.match(noCompiler.stderr, /no C\+\+ compiler: 'no-such-compiler' does not run\. Install one \(Debian: apt-get install -y g\+\+\)/);
});
