// Tokenization, vocabularies and detokenization for the translation data.
//
// Tokenizer (`tokenize`): Unicode NFC normalization, optional lower-casing, then tokens are
//   - words: maximal runs of letters, combining marks and digits, where a single hyphen or
//     apostrophe between two such runs stays inside the word ("t-shirt", "man's", "3-jährige");
//   - every other non-space character on its own (punctuation: "." "," "(" "\"" "„" "-" ...).
// Whitespace only separates. So "A man, in a T-shirt." -> ["a", "man", ",", "in", "a", "t-shirt", "."].
//
// Detokenizer (`detokenize`): joins with single spaces, then removes the space before closing
// punctuation . , ; : ! ? % ) ] } and after opening ( [ {. Other symbols (quotes, dashes) keep
// their spaces. It never glues two word tokens together, so tokenize(detokenize(t)) == t for every
// token list made by `tokenize`: BLEU computed on re-tokenized output sees the model's tokens.

export const PAD = 0;
export const BOS = 1;
export const EOS = 2;
export const UNK = 3;
export const SPECIAL_TOKENS = ['<pad>', '<bos>', '<eos>', '<unk>'] as const;

const TOKEN_RE = /[\p{L}\p{M}\p{N}]+(?:['’-][\p{L}\p{M}\p{N}]+)*|[^\s\p{L}\p{M}\p{N}]/gu;

export interface TokenizeOptions {
  /** Lower-case (default true). */
  lowercase?: boolean;
}

export function tokenize(text: string, o: TokenizeOptions = {}): string[] {
  let s = text.normalize('NFC');
  if (o.lowercase ?? true) s = s.toLowerCase();
  return s.match(TOKEN_RE) ?? [];
}

const NO_SPACE_BEFORE = new Set(['.', ',', ';', ':', '!', '?', '%', ')', ']', '}']);
const NO_SPACE_AFTER = new Set(['(', '[', '{']);

export function detokenize(tokens: readonly string[]): string {
  let out = '';
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (i > 0 && !NO_SPACE_BEFORE.has(t) && !NO_SPACE_AFTER.has(tokens[i - 1]!)) out += ' ';
    out += t;
  }
  return out;
}

export interface VocabBuildOptions {
  /** Tokens seen fewer times than this map to UNK (default 2). */
  minFreq?: number;
  /** Keep at most this many non-special tokens (the most frequent). */
  maxSize?: number;
}

/**
 * A token <-> id map. Ids 0-3 are PAD, BOS, EOS, UNK; then the tokens in order of decreasing
 * frequency, ties broken by code-unit order of the token (so the vocabulary is deterministic).
 */
export class Vocab {
  readonly itos: readonly string[];
  readonly stoi: ReadonlyMap<string, number>;

  constructor(itos: readonly string[]) {
    for (let i = 0; i < SPECIAL_TOKENS.length; i++) {
      if (itos[i] !== SPECIAL_TOKENS[i]) throw new Error(`Vocab: id ${i} must be ${SPECIAL_TOKENS[i]}, got ${itos[i]}`);
    }
    this.itos = itos.slice();
    const m = new Map<string, number>();
    this.itos.forEach((t, i) => {
      if (m.has(t)) throw new Error(`Vocab: token ${JSON.stringify(t)} appears twice`);
      m.set(t, i);
    });
    this.stoi = m;
  }

  static build(sentences: Iterable<readonly string[]>, o: VocabBuildOptions = {}): Vocab {
    const minFreq = o.minFreq ?? 2;
    const counts = new Map<string, number>();
    for (const s of sentences) for (const t of s) counts.set(t, (counts.get(t) ?? 0) + 1);
    const specials = new Set<string>(SPECIAL_TOKENS);
    let kept = [...counts].filter(([t, c]) => c >= minFreq && !specials.has(t));
    kept.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    if (o.maxSize !== undefined) kept = kept.slice(0, o.maxSize);
    return new Vocab([...SPECIAL_TOKENS, ...kept.map(([t]) => t)]);
  }

  get size(): number {
    return this.itos.length;
  }

  /** Token ids (UNK for unknown tokens). */
  encode(tokens: readonly string[]): Int32Array {
    const out = new Int32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) out[i] = this.stoi.get(tokens[i]!) ?? UNK;
    return out;
  }

  /**
   * Tokens of an id sequence (numbers or bigints, e.g. a row of an int64 tensor's data): stops at
   * the first EOS and drops PAD and BOS unless told otherwise; UNK stays as "<unk>".
   */
  decode(ids: ArrayLike<number | bigint>, o: { stopAtEos?: boolean; keepSpecials?: boolean } = {}): string[] {
    return this.#decode(ids, 0, ids.length, o);
  }

  #decode(ids: ArrayLike<number | bigint>, start: number, end: number, o: { stopAtEos?: boolean; keepSpecials?: boolean }): string[] {
    const stop = o.stopAtEos ?? true;
    const keepSp = o.keepSpecials ?? false;
    const out: string[] = [];
    for (let i = start; i < end; i++) {
      const id = Number(ids[i]);
      if (id === EOS && stop) break;
      if (!keepSp && (id === PAD || id === BOS || id === EOS)) continue;
      const t = this.itos[id];
      if (t === undefined) throw new RangeError(`Vocab.decode: id ${id} is outside the vocabulary (size ${this.size})`);
      out.push(t);
    }
    return out;
  }

  /**
   * Tokens of every row of a flattened [rows, width] id matrix, e.g.
   * `vocab.decodeRows(out.data(), out.shape[1])` for a batch of generated sequences.
   */
  decodeRows(ids: ArrayLike<number | bigint>, width: number, o: { stopAtEos?: boolean; keepSpecials?: boolean } = {}): string[][] {
    if (!Number.isInteger(width) || width < 1 || ids.length % width !== 0) throw new RangeError(`Vocab.decodeRows: ${ids.length} ids are not rows of width ${width}`);
    const rows: string[][] = [];
    for (let r = 0; r < ids.length; r += width) rows.push(this.#decode(ids, r, r + width, o));
    return rows;
  }

  /** `detokenize(decode(ids))`: a string for BLEU or display. */
  detokenize(ids: ArrayLike<number | bigint>): string {
    return detokenize(this.decode(ids));
  }

  toJSON(): string[] {
    return this.itos.slice();
  }
}
