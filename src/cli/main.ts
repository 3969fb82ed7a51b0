#!/usr/bin/env node
// The fngd command line: `fngd train ...`, `fngd demo`, `fngd --help`.
import { setWarningHandler } from '../warnings.js';
import { UsageError } from './args.js';
import { benchCommand } from './bench.js';
import { demoCommand } from './demo.js';
import { trainCommand, trainHelp } from './train.js';

const HELP = `fngd: natural-gradient training on libtorch

usage:
  fngd train --task TASK [flags]   train a model (fngd train --help lists every flag)
  fngd demo                        the headline demo
  fngd bench --suite quick|full    the reproduction suite and its report (fngd bench --help)
  fngd --help
`;

async function main(argv: string[]): Promise<void> {
  // The library reports warnings through one hook; the command line prints them.
  setWarningHandler((message) => process.stderr.write(`${message}\n`));
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(cmd === undefined ? HELP : HELP + '\n' + trainHelp());
      if (cmd === undefined) process.exitCode = 2;
      return;
    case 'train':
      await trainCommand(rest);
      return;
    case 'demo':
      await demoCommand(rest);
      return;
    case 'bench':
      await benchCommand(rest);
      return;
    default:
      throw new UsageError(`unknown command '${cmd}' (use train, demo or bench; see --help)`);
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
