// `fngd translate`: English to German with a multi30k-transformer run's model, one output line per
// input line. Sentences go through the training data's preprocessing (tokenize, lower-case, the
// run's vocabulary; unknown words become <unk>) and come back detokenized; decoding is
// translateBatch's (train/evaluate.ts), as in training's evaluation and `fngd eval`.
import { readFileSync } from 'node:fs';
import { detokenize, PAD, readSentences, tokenize } from '../data/index.js';
import { scope, tensor, type Device } from '../tensor/index.js';
import { translateBatch, type DecodeOptions } from '../train/evaluate.js';
import { ProgressBar } from '../train/progress.js';
import { loadSavedModel, type SavedModel } from '../train/saved-run.js';
import { helpText, parseFlags, UsageError, type FlagSpec } from './args.js';
import { DECODE_FLAGS, decodeOptions, openRun, RUN_MODEL_FLAGS } from './eval.js';

type Translator = Extract<SavedModel, { task: 'multi30k-transformer' }>;

const TRANSLATE_FLAGS: Record<string, FlagSpec> = {
  ...RUN_MODEL_FLAGS,
  'data-dir': { kind: 'string', help: 'the Multi30K training data, for checkpoints of older fngd that lack the vocabularies (default: the run\'s --data-dir)' },
  input: { kind: 'string', help: 'English sentences, one per line; plain or .gz (default: stdin)' },
  'batch-size': { kind: 'int', min: 1, default: 128, help: 'sentences decoded together' },
  ...DECODE_FLAGS,
};

const TRANSLATE_USAGE = `usage: fngd translate --run DIR [--input FILE] [--beam N [--length-penalty A]] [flags]

Translates English sentences (one per line, from --input or stdin) to German on stdout, one line
per input line (an empty line stays empty), with a multi30k-transformer run's model. The output is
lower-cased, as the training data was; words the run's vocabulary lacks come out as <unk>.
Greedy decoding by default; --beam N is beam search, its final hypotheses ranked by GNMT's length
penalty log P / ((5 + length) / 6)^alpha with alpha = --length-penalty (0: plain log-probability).`;

export async function translateCommand(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText(TRANSLATE_USAGE, TRANSLATE_FLAGS));
    return;
  }
  const f = parseFlags(argv, TRANSLATE_FLAGS);
  const { run, device } = openRun(f);
  if (run.task !== 'multi30k-transformer') throw new UsageError(`--run ${run.checkpoint} is a ${run.task} run; translate needs a multi30k-transformer run`);
  const decode = decodeOptions(f);
  const lines = f.input === undefined ? stdinLines() : readSentences(f.input as string, '--input ');
  const saved = loadSavedModel(run, { device, dataDir: f.dataDir as string | undefined });
  // A reader that stops early (| head) closes the pipe: stop translating, quietly (the handler
  // stays: the last write's error may come after the loop).
  let closed = false;
  const onError = (e: NodeJS.ErrnoException): void => {
    if (e.code !== 'EPIPE') throw e;
    closed = true;
  };
  process.stdout.on('error', onError);
  try {
    const batchSize = f.batchSize as number;
    // A filter's stderr often goes to a script's log: the bar only where a person watches.
    const bar = new ProgressBar('translate', lines.length, { enabled: (f.progress as boolean) && Boolean(process.stderr.isTTY) });
    for (let start = 0; start < lines.length && !closed; start += batchSize) {
      const out = translateLines(saved as Translator, lines.slice(start, start + batchSize), start, decode, device);
      process.stdout.write(out.map((l) => `${l}\n`).join(''));
      bar.update(start + out.length, 'lines');
      await new Promise((r) => setImmediate(r)); // lets a closed pipe's error arrive
    }
    bar.done();
  } finally {
    saved.model.dispose();
  }
}

function stdinLines(): string[] {
  const lines = readFileSync(0, 'utf8').split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** German for `lines` (line `first` onwards of the input, for errors); empty lines stay empty without decoding. */
function translateLines(saved: Translator, lines: string[], first: number, decode: DecodeOptions, device: Device): string[] {
  const { model, srcVocab, tgtVocab } = saved;
  const ids = lines.map((l) => srcVocab.encode(tokenize(l, { lowercase: saved.lowercase })));
  const rows = ids.map((_, i) => i).filter((i) => ids[i]!.length > 0);
  const out = lines.map(() => '');
  if (rows.length === 0) return out;
  const width = Math.max(...rows.map((i) => ids[i]!.length));
  const long = rows.find((i) => ids[i]!.length > model.maxLen);
  if (long !== undefined) throw new Error(`input line ${first + long + 1} has ${ids[long]!.length} tokens; the model takes at most ${model.maxLen}`);
  const padded = new Int32Array(rows.length * width).fill(PAD);
  rows.forEach((i, r) => padded.set(ids[i]!, r * width));
  const hyps = scope(() => translateBatch(model, tensor(padded, { shape: [rows.length, width], dtype: 'int64', device }), rows.map((i) => ids[i]!.length), decode));
  rows.forEach((i, r) => { out[i] = detokenize(tgtVocab.decode(hyps[r]!)); });
  return out;
}
