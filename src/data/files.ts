// File access shared by the dataset loaders: where data lives by default, finding a file with or
// without `.gz`, reading (and gunzipping) it, and errors that name the file and how to get it.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** A dataset file or folder is missing, unreadable, truncated or not in the expected format. */
export class DataError extends Error {
  override name = 'DataError';
  /** The file or folder concerned. */
  readonly path: string;
  constructor(message: string, path: string) {
    super(message);
    this.path = path;
  }
}

/**
 * The folder holding `cifar10/` and `multi30k/` (and optionally `mnist/`, `fashion-mnist/`):
 * `$FNGD_DATA_DIR` when set, else `../shared/data` relative to the current working directory.
 */
export function defaultDataRoot(): string {
  const env = process.env.FNGD_DATA_DIR;
  return env !== undefined && env !== '' ? resolve(env) : resolve(process.cwd(), '..', 'shared', 'data');
}

export function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** `dir/name` if it exists, else `dir/name.gz` if that exists, else null. */
export function findFile(dir: string, name: string): string | null {
  for (const p of [join(dir, name), join(dir, `${name}.gz`)]) if (existsSync(p)) return p;
  return null;
}

/**
 * The first of `candidates` that is a folder containing `marker` (plain or .gz), or null.
 * Lets `dataDir` point either at the dataset folder itself or at a data root above it.
 */
export function pickDir(candidates: string[], marker: string): string | null {
  for (const d of candidates) if (isDir(d) && findFile(d, marker) !== null) return d;
  return null;
}

/** The whole file, gunzipped when its name ends in `.gz`. `hint` says how to get a good copy. */
export function readData(path: string, hint: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new DataError(`cannot read ${path}: ${(e as Error).message}.${hint ? ` ${hint}` : ''}`, path);
  }
  if (!path.endsWith('.gz')) return raw;
  try {
    return gunzipSync(raw);
  } catch (e) {
    throw new DataError(`${path}: gzip data is corrupt or truncated (${(e as Error).message}).${hint ? ` ${hint}` : ''}`, path);
  }
}
