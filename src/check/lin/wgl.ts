// The Wing-Gong-Lowe linearizability search over one partition, with Porcupine's refinements:
// the history is a linked list of call/return entries; linearizing an op lifts its entries out;
// (linearized set, model state) pairs already explored are memoized and skipped; the search
// backtracks when it meets the return of an op not yet linearized. Iterative: no recursion.

import { ZobristBitset } from './bitset.js';
import type { LinOp, Model } from './types.js';

export type PartitionVerdict =
  | { valid: true; linearization: number[] }
  | { valid: false; longestPrefix: number[]; failingOp: number }
  | { valid: 'unknown'; longestPrefix: number[] };

/** How often (in search steps) to look at the clock: reading it every step would dominate. */
const CLOCK_CHECK_INTERVAL_STEPS = 1024;

interface CacheEntry<S> {
  words: Uint32Array;
  state: S;
}

/** Doubly linked list of entries. Node 0 is the head; op k has call node 2k+1 and return node 2k+2. */
class EntryList {
  readonly next: Int32Array;
  readonly prev: Int32Array;

  constructor(ops: readonly LinOp[]) {
    const nodeCount = ops.length * 2 + 1;
    this.next = new Int32Array(nodeCount).fill(-1);
    this.prev = new Int32Array(nodeCount).fill(-1);
    const order = EntryList.sortedNodes(ops);
    let last = 0;
    for (const node of order) {
      this.next[last] = node;
      this.prev[node] = last;
      last = node;
    }
  }

  /** Entries ordered by position; at equal positions calls come before returns (overlap). */
  private static sortedNodes(ops: readonly LinOp[]): number[] {
    const events: { node: number; position: number; isReturn: number }[] = [];
    ops.forEach((op, k) => {
      events.push({ node: 2 * k + 1, position: op.callPosition, isReturn: 0 });
      // Pending ops return after everything; keep them in call order among themselves.
      const returnPosition = Number.isFinite(op.returnPosition) ? op.returnPosition : Number.MAX_SAFE_INTEGER - ops.length + k;
      events.push({ node: 2 * k + 2, position: returnPosition, isReturn: 1 });
    });
    events.sort((a, b) => a.position - b.position || a.isReturn - b.isReturn);
    return events.map((e) => e.node);
  }

  /** Removes op k's call and return entries. */
  lift(k: number): void {
    this.unlink(2 * k + 1);
    this.unlink(2 * k + 2);
  }

  /** Restores op k's entries (in reverse order of removal). */
  unlift(k: number): void {
    this.relink(2 * k + 2);
    this.relink(2 * k + 1);
  }

  private unlink(node: number): void {
    const p = this.prev[node]!;
    const n = this.next[node]!;
    this.next[p] = n;
    if (n !== -1) this.prev[n] = p;
  }

  private relink(node: number): void {
    const p = this.prev[node]!;
    const n = this.next[node]!;
    this.next[p] = node;
    if (n !== -1) this.prev[n] = node;
  }
}

/** Memo of explored (linearized set, state) pairs, bucketed by combined hash. */
class Memo<S> {
  private readonly buckets = new Map<number, CacheEntry<S>[]>();

  constructor(private readonly model: Model<S, unknown, unknown>) {}

  /** Adds the pair; returns false if it was already there. */
  add(bits: ZobristBitset, state: S): boolean {
    const key = (bits.hash ^ Math.imul(this.model.hash(state), 0x85ebca6b)) >>> 0;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = [];
      this.buckets.set(key, bucket);
    } else {
      for (const entry of bucket) {
        if (bits.equals(entry.words) && this.model.equal(entry.state, state)) return false;
      }
    }
    bucket.push({ words: bits.snapshot(), state });
    return true;
  }
}

/**
 * Checks one partition. `deadlineMs` is a `performance.now()` value after which the search gives up
 * with 'unknown'. Returned op numbers are indexes into `ops`.
 */
export function checkPartition<S, I, O>(model: Model<S, I, O>, ops: readonly LinOp<I, O>[], deadlineMs: number): PartitionVerdict {
  const list = new EntryList(ops);
  const bits = new ZobristBitset(ops.length);
  const memo = new Memo<S>(model as Model<S, unknown, unknown>);
  const stackOps: number[] = [];
  const stackStates: S[] = [];
  let longestPrefix: number[] = [];
  let failingOp = -1;
  let state = model.init();
  let node = list.next[0]!;
  let steps = 0;
  while (list.next[0] !== -1) {
    if (++steps % CLOCK_CHECK_INTERVAL_STEPS === 0 && performance.now() > deadlineMs) {
      return { valid: 'unknown', longestPrefix: longestPrefix.length >= stackOps.length ? longestPrefix : stackOps.slice() };
    }
    if (node % 2 === 1) {
      const k = (node - 1) >>> 1;
      const op = ops[k]!;
      const result = model.step(state, op.input, op.output);
      // An op of unknown outcome that cannot take effect here may simply never have happened.
      const newState = result.ok ? result.state : op.output === undefined ? state : undefined;
      bits.set(k);
      if (newState !== undefined && memo.add(bits, newState)) {
        stackOps.push(k);
        stackStates.push(state);
        state = newState;
        list.lift(k);
        node = list.next[0]!;
      } else {
        bits.clear(k);
        node = list.next[node]!;
      }
      continue;
    }
    // A return entry: its op should have been linearized by now. Backtrack.
    if (stackOps.length > longestPrefix.length || failingOp === -1) {
      failingOp = (node - 2) >>> 1;
      longestPrefix = stackOps.slice();
    }
    if (stackOps.length === 0) return { valid: false, longestPrefix, failingOp };
    const k = stackOps.pop()!;
    state = stackStates.pop()!;
    bits.clear(k);
    list.unlift(k);
    node = list.next[2 * k + 1]!;
  }
  return { valid: true, linearization: stackOps };
}
