// Seeded randomness for data pipelines, in plain JS so that an epoch's order depends only on
// (seed, epoch) and not on libtorch's version or on anything else drawn from a global stream.
//
// deriveSeed mixes a base seed with a path of integers (a stream tag, the epoch, a batch index)
// through splitmix64; the result seeds either `Rng` (sfc32, for permutations) or a libtorch
// `Generator` (for augmentation draws).

const MASK64 = (1n << 64n) - 1n;

function splitmix64(x: bigint): bigint {
  let z = (x + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

function checkSeed(seed: number, what: string): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new TypeError(`${what}: expected a non-negative integer seed, got ${seed}`);
}

/** A 53-bit seed (a safe integer) derived from `seed` and the integers in `path`. */
export function deriveSeed(seed: number, ...path: number[]): number {
  checkSeed(seed, 'deriveSeed');
  let h = splitmix64(BigInt(seed));
  for (const p of path) {
    checkSeed(p, 'deriveSeed path');
    h = splitmix64(h ^ BigInt(p));
  }
  return Number(h >> 11n);
}

/** Stream tags: each use of a seed gets its own stream. */
export const STREAM = { permutation: 1, augmentation: 2, subset: 3, split: 4, bucketOrder: 5 } as const;

/** sfc32, a small fast PRNG with a 128-bit state, seeded through splitmix64. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  constructor(seed: number) {
    checkSeed(seed, 'Rng');
    const s1 = splitmix64(BigInt(seed));
    const s2 = splitmix64(s1);
    this.#a = Number(s1 & 0xffffffffn) | 0;
    this.#b = Number(s1 >> 32n) | 0;
    this.#c = Number(s2 & 0xffffffffn) | 0;
    this.#d = Number(s2 >> 32n) | 1;
    for (let i = 0; i < 12; i++) this.nextUint32();
  }
  nextUint32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }
  /** Uniform on [0, 1) with 53 random bits. */
  nextFloat(): number {
    return ((this.nextUint32() >>> 5) * 67108864 + (this.nextUint32() >>> 6)) / 9007199254740992;
  }
  /** Uniform integer in [0, n). */
  nextInt(n: number): number {
    return Math.floor(this.nextFloat() * n);
  }
  /** Fisher-Yates shuffle in place. */
  shuffle<T extends { length: number; [i: number]: number }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return a;
  }
}

/** A seeded random permutation of 0..n-1. */
export function permutation(n: number, seed: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return new Rng(seed).shuffle(p);
}
