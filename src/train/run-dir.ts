// A run folder (`--out`): checkpoint.safetensors, log.jsonl (one line per epoch) and steps.jsonl
// (one line per step), owned by one run at a time.
//
//   lock       `.fngd.lock` holds the owner's PID (created whole with link(2): it exists complete or
//              not at all). A second run fails at once, naming the PID. A lock whose process is
//              gone (killed: no cleanup ran) is stale and taken over, with a warning; the takeover
//              itself is serialized by a second lock file, so two runs never both take it.
//   fresh run  refused over an existing checkpoint unless `overwrite` (which deletes it first);
//              the logs start empty.
//   resume     needs the checkpoint. The logs are rewritten from the history it carries, so they
//              hold exactly the lines of the steps and epochs the checkpoint holds: lines written
//              after the last checkpoint (a kill between appending a line and checkpointing), a
//              torn last line, all gone. Resumed lines then repeat those steps exactly.
//   cleanup    partial files of interrupted atomic writes (`.checkpoint.safetensors.*.tmp`, ...)
//              are stale once the lock is held, and removed.
// Paths are checked before anything is written: a path that is a file, under a file, in a
// read-only or special file system (/proc) is a clear error, never a hang or a half-made folder.
import {
  closeSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { warn } from '../warnings.js';

const LOCK = '.fngd.lock';
const TAKEOVER = '.fngd.lock.takeover';
export const CHECKPOINT_FILE = 'checkpoint.safetensors';
export const EPOCH_LOG = 'log.jsonl';
export const STEP_LOG = 'steps.jsonl';

export interface RunDirOptions {
  /** Continue the run whose checkpoint is in the folder (an error when there is none). */
  resume?: boolean;
  /** Start a fresh run over an existing checkpoint, deleting it (without: an error). */
  overwrite?: boolean;
}

/** What a lock file records of its owner. */
interface LockInfo {
  pid: number;
  host: string;
  /** The owner's start time (Linux /proc/PID/stat field 22): tells a reused PID from the owner. */
  start: string | null;
}

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | null)?.code;

/** A process's start time in clock ticks since boot (Linux), or null where /proc cannot tell. */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields after it start at 3.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether the lock's owner may still be running (a lock of another host is assumed alive). */
function ownerAlive(l: LockInfo): boolean {
  if (l.host !== hostname()) return true;
  try {
    process.kill(l.pid, 0);
  } catch (e) {
    if (errno(e) === 'ESRCH') return false;
  }
  const start = processStart(l.pid);
  return !(l.start !== null && start !== null && start !== l.start);
}

function readLock(path: string): LockInfo | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (errno(e) === 'ENOENT') return null;
    throw e;
  }
  try {
    const l = JSON.parse(text) as LockInfo;
    if (Number.isSafeInteger(l.pid) && l.pid > 0 && typeof l.host === 'string') return l;
  } catch {
    // fall through
  }
  throw new Error(`run folder ${dirname(path)}: the lock file ${path} is unreadable (${JSON.stringify(text.slice(0, 80))}); ` +
    'if no run uses this folder, delete it');
}

/** Creates `path` holding `text`, whole, or returns false when it exists. */
function createWhole(path: string, text: string): boolean {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if (errno(e) === 'EEXIST') return false;
    throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * Makes `dir` and its missing parents, one level at a time (Node's recursive mkdir loops forever
 * under /proc), after checking that the nearest existing ancestor is a folder.
 */
function makeFolder(dir: string): void {
  const missing: string[] = [];
  for (let p = dir; ; p = dirname(p)) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (e) {
      // ENOTDIR: a file on the way, found as such one level up.
      if (errno(e) !== 'ENOENT' && errno(e) !== 'ENOTDIR') throw new Error(`run folder ${dir}: cannot inspect ${p}: ${(e as Error).message}`);
      if (dirname(p) === p) throw new Error(`run folder ${dir}: the file system root ${p} does not exist`);
      missing.push(p);
      continue;
    }
    if (!isDir) throw new Error(p === dir ? `run folder ${dir} exists and is not a folder` : `run folder ${dir}: ${p} is a file, not a folder`);
    break;
  }
  for (const p of missing.reverse()) {
    try {
      mkdirSync(p);
    } catch (e) {
      if (errno(e) === 'EEXIST' && statSync(p).isDirectory()) continue;
      throw new Error(`run folder ${dir}: cannot create ${p}: ${(e as Error).message}`);
    }
  }
}

/** A run folder opened for one run: locked, checked and cleaned (see the top of this file). */
export class RunDir {
  readonly path: string;
  readonly mode: 'fresh' | 'resume';
  #closed = false;

  private constructor(path: string, mode: 'fresh' | 'resume') {
    this.path = path;
    this.mode = mode;
  }

  get checkpointPath(): string {
    return join(this.path, CHECKPOINT_FILE);
  }

  /**
   * Opens `dir` for a run: makes it, takes its lock, removes stale temporaries and applies the
   * fresh/resume rules. Every refusal is an Error naming the folder and what to do.
   */
  static open(dir: string, o: RunDirOptions = {}): RunDir {
    if (o.resume === true && o.overwrite === true) throw new Error('a run cannot both resume and overwrite its checkpoint');
    const path = resolve(dir);
    makeFolder(path);
    const rd = new RunDir(path, o.resume === true ? 'resume' : 'fresh');
    rd.#lock();
    try {
      rd.#removeStaleTemporaries();
      const has = rd.hasCheckpoint();
      if (o.resume === true && !has) {
        throw new Error(`--resume: ${path} holds no ${CHECKPOINT_FILE}, so there is no run to continue (start a fresh run without --resume)`);
      }
      if (o.resume !== true) {
        if (has && o.overwrite !== true) {
          throw new Error(`${path} already holds a ${CHECKPOINT_FILE}: continue that run with --resume, replace it with --overwrite, or use another --out`);
        }
        if (has) rmSync(rd.checkpointPath);
        rd.#replace(EPOCH_LOG, '');
        rd.#replace(STEP_LOG, '');
      }
      return rd;
    } catch (e) {
      rd.close();
      throw e;
    }
  }

  hasCheckpoint(): boolean {
    try {
      return statSync(this.checkpointPath).isFile();
    } catch {
      return false;
    }
  }

  /**
   * Rewrites log.jsonl and steps.jsonl to hold exactly `epochs` and `steps` (a checkpoint's
   * history), each file replaced atomically.
   */
  restoreLogs(epochs: readonly object[], steps: readonly object[]): void {
    this.#check();
    this.#replace(EPOCH_LOG, epochs.map((r) => `${JSON.stringify(r)}\n`).join(''));
    this.#replace(STEP_LOG, steps.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }

  /** Appends one JSON line to log.jsonl. */
  appendEpoch(record: object): void {
    this.#append(EPOCH_LOG, record);
  }

  /** Appends one JSON line to steps.jsonl. */
  appendStep(record: object): void {
    this.#append(STEP_LOG, record);
  }

  /** Releases the lock (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const lock = join(this.path, LOCK);
    try {
      if (readLock(lock)?.pid === process.pid) unlinkSync(lock);
    } catch {
      // Someone removed or broke our lock: nothing of ours to release.
    }
  }

  #check(): void {
    if (this.#closed) throw new Error(`run folder ${this.path}: used after close()`);
  }

  #append(name: string, record: object): void {
    this.#check();
    // One write(2) per line: an O_APPEND write is never interleaved, and a kill leaves at most a
    // torn last line, which a resume rewrites.
    const fd = openSync(join(this.path, name), 'a');
    try {
      writeSync(fd, `${JSON.stringify(record)}\n`);
    } finally {
      closeSync(fd);
    }
  }

  #replace(name: string, text: string): void {
    const target = join(this.path, name);
    const tmp = join(this.path, `.${name}.${process.pid}.tmp`);
    const fd = openSync(tmp, 'w');
    try {
      writeFileSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  }

  #lock(): void {
    const path = join(this.path, LOCK);
    const me: LockInfo = { pid: process.pid, host: hostname(), start: processStart(process.pid) };
    const text = `${JSON.stringify(me)}\n`;
    let created: boolean;
    try {
      created = createWhole(path, text);
    } catch (e) {
      throw new Error(`run folder ${this.path} is not writable: ${(e as Error).message}`);
    }
    if (created) return;
    const holder = readLock(path);
    if (holder === null) {
      // Released between our attempt and the read: try once more.
      if (createWhole(path, text)) return;
      this.#refuse(readLock(path));
    }
    if (ownerAlive(holder!)) this.#refuse(holder);
    // Stale. Take it over under a second lock, so that two runs starting now cannot both take it.
    const guard = join(this.path, TAKEOVER);
    if (!createWhole(guard, text)) {
      const other = readLock(guard);
      if (other !== null && ownerAlive(other)) this.#refuse(other);
      rmSync(guard, { force: true }); // a taker that died mid-takeover
      if (!createWhole(guard, text)) this.#refuse(readLock(guard));
    }
    try {
      const now = readLock(path);
      if (now !== null && (now.pid !== holder!.pid || now.start !== holder!.start)) this.#refuse(now);
      rmSync(path, { force: true });
      if (!createWhole(path, text)) this.#refuse(readLock(path));
    } finally {
      rmSync(guard, { force: true });
    }
    warn('RunDir', `run folder ${this.path}: took over the stale lock of process ${holder!.pid}, which is no longer running (killed?)`);
  }

  #refuse(holder: LockInfo | null): never {
    const who = holder === null ? 'another run' : `process ${holder.pid}${holder.host === hostname() ? '' : ` on ${holder.host}`}`;
    throw new Error(`run folder ${this.path} is in use by ${who} (lock ${join(this.path, LOCK)}); ` +
      'wait for it to finish or use another --out');
  }

  #removeStaleTemporaries(): void {
    const partial = /^\.(checkpoint\.safetensors|log\.jsonl|steps\.jsonl)\..+\.tmp$/;
    const lockTmp = /^\.fngd\.lock(?:\.takeover)?\.(\d+)\.tmp$/;
    for (const name of readdirSync(this.path)) {
      const m = lockTmp.exec(name);
      const stale = partial.test(name) || (m !== null && Number(m[1]) !== process.pid && !ownerAlive({ pid: Number(m[1]), host: hostname(), start: null }));
      if (!stale) continue;
      rmSync(join(this.path, name), { force: true });
      if (name.startsWith('.checkpoint')) warn('RunDir', `run folder ${this.path}: removed ${name}, a partial checkpoint left by an interrupted write`);
    }
  }
}
