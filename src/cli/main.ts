#!/usr/bin/env node
// The fngd command line: `fngd train ...`, `fngd eval ...`, `fngd translate ...`, `fngd compare ...`, `fngd demo`, `fngd --help`.
import { readFileSync } from 'node:fs';
import { setWarningHandler } from '../warnings.js';
import { UsageError } from './args.js';
import { benchCommand } from './bench.js';
import { compareCommand } from './compare.js';
import { demoCommand } from './demo.js';
import { evalCommand } from './eval.js';
import { trainCommand } from './train.js';
import { translateCommand } from './translate.js';

const HELP = `fngd: natural-gradient training on libtorch

usage:
  fngd train --task TASK [flags]   train a model (fngd train --help lists every flag)
  fngd eval --run DIR [data]       a run's checkpoint evaluated on any data of its task (fngd eval --help)
  fngd translate --run DIR         English to German with a multi30k-transformer run (stdin or --input FILE)
  fngd demo                        the headline demo
  fngd bench --suite quick|full    the reproduction suite and its report (fngd bench --help)
  fngd compare DIR [DIR ...]       runs side by side: metric per epoch, training time, time to a target
  fngd help COMMAND                that command's help (also: fngd COMMAND --help)
  fngd --version
`;

/** The version in fngd's package.json (dist/src/cli/main.js -> package.json). */
function version(): string {
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

async function main(argv: string[]): Promise<void> {
  // The library reports warnings through one hook; the command line prints them.
  setWarningHandler((message) => process.stderr.write(`${message}\n`));
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      if (cmd === undefined) process.exitCode = 2;
      return;
    case 'help':
      if (rest[0] === undefined) {
        process.stdout.write(HELP);
        return;
      }
      await main([rest[0], '--help']);
      return;
    case '--version':
    case '-v':
      process.stdout.write(`${version()}\n`);
      return;
    case 'train':
      await trainCommand(rest);
      return;
    case 'eval':
      await evalCommand(rest);
      return;
    case 'translate':
      await translateCommand(rest);
      return;
    case 'demo':
      await demoCommand(rest);
      return;
    case 'bench':
      await benchCommand(rest);
      return;
    case 'compare':
      await compareCommand(rest);
      return;
    default:
      throw new UsageError(`unknown command '${cmd}' (use train, eval, translate, compare, demo or bench; see --help)`);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UsageError) {
    process.stderr.write(`fngd: ${e.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`fngd: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env.FNGD_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    process.exitCode = 1;
  }
});
