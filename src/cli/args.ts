// Command-line flags declared once: name, kind, default and help. Parsing checks every value and
// names the offending flag in its error; `--help` text is generated from the same table.

export type FlagKind = 'int' | 'number' | 'string' | 'bool' | 'numbers';

export interface FlagSpec {
  kind: FlagKind;
  help: string;
  default?: number | string | boolean | number[];
  /** A default shown in --help but not filled in by parsing (the chosen method's, applied later). */
  shownDefault?: number | string | boolean | number[];
  /** Allowed values for a string flag. */
  choices?: readonly string[];
  min?: number;
  max?: number;
}

export type FlagValues = Record<string, number | string | boolean | number[] | undefined>;

export class UsageError extends Error {}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Parses `argv` against `specs`; keys of the result are camelCase flag names. */
export function parseFlags(argv: string[], specs: Record<string, FlagSpec>): FlagValues {
  const out: FlagValues = {};
  for (const [name, s] of Object.entries(specs)) if (s.default !== undefined) out[camel(name)] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument '${arg}' (flags start with --)`);
    let [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    let negated = false;
    if (!(name in specs) && name.startsWith('no-') && specs[name.slice(3)]?.kind === 'bool') {
      name = name.slice(3);
      negated = true;
    }
    const spec = specs[name];
    if (spec === undefined) throw new UsageError(`unknown flag --${name} (see --help)`);
    if (spec.kind === 'bool') {
      if (inline !== undefined && inline !== 'true' && inline !== 'false') throw new UsageError(`--${name} takes no value (or =true/=false), got '${inline}'`);
      out[camel(name)] = negated ? false : inline !== 'false';
      continue;
    }
    const raw = inline ?? argv[++i];
    if (raw === undefined || (inline === undefined && raw.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
    out[camel(name)] = parseValue(name, spec, raw);
  }
  return out;
}

// Plain decimal notation only: Number() also reads '0x10' as 16, '0b1', '0o7', ' 5 ' and 'Infinity'.
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function parseValue(name: string, s: FlagSpec, raw: string): number | string | number[] {
  const num = (v: string): number => {
    const x = Number(v);
    if (!DECIMAL.test(v) || !Number.isFinite(x)) {
      const readable = v.trim() !== '' && Number.isFinite(x); // hex, octal, binary, padded
      throw new UsageError(`--${name} must be a ${readable ? 'decimal ' : ''}number, got '${v}'`);
    }
    if (s.kind === 'int' && !Number.isInteger(x)) throw new UsageError(`--${name} must be an integer, got '${v}'`);
    if (s.min !== undefined && x < s.min) throw new UsageError(`--${name} must be at least ${s.min}, got ${v}`);
    if (s.max !== undefined && x > s.max) throw new UsageError(`--${name} must be at most ${s.max}, got ${v}`);
    return x;
  };
  switch (s.kind) {
    case 'int':
    case 'number':
      return num(raw);
    case 'numbers':
      return raw.split(',').map(num);
    case 'string':
      if (s.choices && !s.choices.includes(raw)) throw new UsageError(`--${name} must be one of ${s.choices.join(', ')}; got '${raw}'`);
      return raw;
    default:
      throw new UsageError(`--${name}: unsupported flag kind`);
  }
}

export function helpText(usage: string, specs: Record<string, FlagSpec>): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const arg = s.kind === 'bool' ? '' : s.choices ? ` ${s.choices.join('|')}` : s.kind === 'numbers' ? ' a,b' : s.kind === 'string' ? ' S' : ' N';
    const d = s.default ?? s.shownDefault;
    const def = d === undefined ? '' : ` (default: ${Array.isArray(d) ? d.join(',') : String(d)})`;
    return [`  --${name}${arg}`, `${s.help}${def}`];
  });
  const w = Math.max(...rows.map((r) => r[0]!.length));
  return `${usage}\n\n${rows.map(([a, b]) => `${a!.padEnd(w)}  ${b}`).join('\n')}\n`;
}
