// A fixed-size bitset with an incrementally maintained Zobrist hash, so that memoizing
// (linearized set, state) costs O(1) per step instead of rehashing the whole set.

import { mulberry32 } from './random.js';

export class ZobristBitset {
  readonly words: Uint32Array;
  private readonly keys: Uint32Array;
  /** XOR of the keys of all set bits. */
  hash = 0;

  constructor(readonly size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32) || 1);
    this.keys = new Uint32Array(size);
    const random = mulberry32(0x9e3779b9 ^ size);
    for (let i = 0; i < size; i++) this.keys[i] = random();
  }

  set(i: number): void {
    this.words[i >>> 5]! |= 1 << (i & 31);
    this.hash = (this.hash ^ this.keys[i]!) >>> 0;
  }

  clear(i: number): void {
    this.words[i >>> 5]! &= ~(1 << (i & 31));
    this.hash = (this.hash ^ this.keys[i]!) >>> 0;
  }

  snapshot(): Uint32Array {
    return this.words.slice();
  }

  equals(words: Uint32Array): boolean {
    const mine = this.words;
    for (let i = 0; i < mine.length; i++) if (mine[i] !== words[i]) return false;
    return true;
  }
}
