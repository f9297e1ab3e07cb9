// Property tests: histories produced by a sequential object under simulated concurrency are
// linearizable; corrupting one read so the corruption is observable makes them not linearizable.

import { describe, expect, it } from 'vitest';
import type { History, Op } from '../history.js';
import type { CheckModelName } from '../run.js';
import { runCheck } from '../run.js';
import { seededRandom } from './random.js';
import { simulate, type SimObject } from './simulate.js';

const SEEDS = Array.from({ length: 40 }, (_, i) => 1000 + i);
const SIM = { processCount: 5, opCount: 60, crashProbability: 0.05 };
/** Each generated history checks in milliseconds; the limit only guards against a hang. */
const CHECK_TIMEOUT_MS = 10_000;

function casRegister(): SimObject {
  let value: unknown = null;
  return {
    nextOp: (random, unique) => {
      const r = random();
      if (r < 0.4) return { f: 'read', value: null };
      if (r < 0.7) return { f: 'write', value: unique() };
      return { f: 'cas', value: [random() < 0.5 ? value : unique(), unique()] };
    },
    apply: (op) => {
      if (op.f === 'read') return { value };
      if (op.f === 'write') return ((value = op.value), { value: op.value });
      const [from, to] = op.value as [unknown, unknown];
      return from === value ? ((value = to), { value: op.value }) : 'fail';
    },
  };
}

function kv(): SimObject {
  const store = new Map<string, string>();
  return {
    nextOp: (random, unique) => {
      const key = `k${Math.floor(random() * 3)}`;
      const r = random();
      return r < 0.4 ? { f: 'get', key, value: null } : { f: r < 0.6 ? 'put' : 'append', key, value: `v${unique()};` };
    },
    apply: (op) => {
      const key = op.key!;
      if (op.f === 'get') return { value: store.get(key) ?? '' };
      store.set(key, op.f === 'put' ? (op.value as string) : (store.get(key) ?? '') + (op.value as string));
      return { value: op.value };
    },
  };
}

function counter(): SimObject {
  let value = 0;
  return {
    nextOp: (random) => (random() < 0.4 ? { f: 'read', value: null } : { f: 'add', value: Math.floor(random() * 7) - 3 }),
    apply: (op) => (op.f === 'read' ? { value } : ((value += op.value as number), { value: op.value })),
  };
}

function multiRegister(): SimObject {
  const regs = new Map<string, number>([['x', 0], ['y', 0], ['z', 0]]);
  const keys = [...regs.keys()];
  return {
    nextOp: (random, unique) => ({
      f: 'txn',
      value: Array.from({ length: 1 + Math.floor(random() * 3) }, () => {
        const key = keys[Math.floor(random() * keys.length)]!;
        return random() < 0.5 ? ['read', key, null] : ['write', key, unique()];
      }),
    }),
    apply: (op) => ({
      value: (op.value as [string, string, unknown][]).map(([f, k, v]) => {
        if (f === 'write') regs.set(k, v as number);
        return f === 'read' ? [f, k, regs.get(k)!] : [f, k, v];
      }),
    }),
  };
}

function mutex(): SimObject {
  let held = false;
  return {
    nextOp: (random) => ({ f: random() < 0.5 ? 'acquire' : 'release', value: null }),
    apply: (op) => {
      if ((op.f === 'acquire') === held) return 'fail';
      held = op.f === 'acquire';
      return { value: null };
    },
  };
}

interface Case {
  model: CheckModelName;
  object: () => SimObject;
  initial?: unknown;
  /** Returns a copy of the history with one read made impossible, or undefined if it has no read. */
  corrupt?: (history: History, random: () => number) => History | undefined;
}

/** Replaces the result of one :ok read chosen by `pick` with `bad`. */
function corruptRead(history: History, isRead: (op: Op) => boolean, replace: (op: Op) => unknown, random: () => number): History | undefined {
  const reads = history.map((op, i) => [op, i] as const).filter(([op]) => op.type === 'ok' && isRead(op));
  if (reads.length === 0) return undefined;
  const [op, i] = reads[Math.floor(random() * reads.length)]!;
  const copy = history.slice();
  copy[i] = { ...op, value: replace(op) };
  return copy;
}

/** A value no op ever wrote: no linearization can read it. */
const NEVER_WRITTEN = -424242;

const CASES: Case[] = [
  { model: 'cas-register', object: casRegister, corrupt: (h, r) => corruptRead(h, (op) => op.f === 'read', () => NEVER_WRITTEN, r) },
  { model: 'kv', object: kv, corrupt: (h, r) => corruptRead(h, (op) => op.f === 'get', () => 'never-written', r) },
  { model: 'counter', object: counter, corrupt: (h, r) => corruptRead(h, (op) => op.f === 'read', () => 1_000_000, r) },
  {
    model: 'multi-register',
    object: multiRegister,
    initial: { x: 0, y: 0, z: 0 },
    corrupt: (h, r) =>
      corruptRead(
        h,
        (op) => (op.value as unknown[][]).some((m) => m[0] === 'read'),
        (op) => {
          const mops = (op.value as unknown[][]).map((m) => m.slice());
          mops.find((m) => m[0] === 'read')![2] = NEVER_WRITTEN;
          return mops;
        },
        r,
      ),
  },
  { model: 'mutex', object: mutex },
];

function check(model: CheckModelName, history: History, initial: unknown) {
  // 'jsonl' = our own dialect: nil reads are not wildcards, so corruptions cannot hide behind them.
  return runCheck({ history, format: 'jsonl', model, initial, timeoutMs: CHECK_TIMEOUT_MS });
}

describe('simulated histories', () => {
  for (const testCase of CASES) {
    it(`${testCase.model}: valid as generated, invalid with one read corrupted`, () => {
      for (const seed of SEEDS) {
        const history = simulate(testCase.object(), { seed, ...SIM });
        expect(history.filter((op) => op.type === 'invoke').length, `seed ${seed}`).toBe(SIM.opCount);
        const report = check(testCase.model, history, testCase.initial);
        expect(report.valid, `seed ${seed}`).toBe(true);
        const corrupted = testCase.corrupt?.(history, seededRandom(seed));
        if (corrupted) expect(check(testCase.model, corrupted, testCase.initial).valid, `corrupted, seed ${seed}`).toBe(false);
      }
    });
  }

  it('cas-register: a read of a value written only after the read returned is invalid', () => {
    let tested = 0;
    for (const seed of SEEDS) {
      const history = simulate(casRegister(), { seed, ...SIM, crashProbability: 0 });
      const futureRead = findFutureReadCorruption(history);
      if (!futureRead) continue;
      tested++;
      expect(check('cas-register', futureRead, null).valid, `seed ${seed}`).toBe(false);
    }
    expect(tested).toBeGreaterThan(SEEDS.length / 2);
  });
});

/**
 * Makes an :ok read return the value of a write invoked after the read completed. Values are
 * unique per write, so nothing else can explain the read.
 */
function findFutureReadCorruption(history: History): History | undefined {
  for (let i = 0; i < history.length; i++) {
    const read = history[i]!;
    if (read.type !== 'ok' || read.f !== 'read') continue;
    const later = history.slice(i + 1).find((op) => op.type === 'invoke' && op.f === 'write');
    if (!later) continue;
    const copy = history.slice();
    copy[i] = { ...read, value: later.value };
    return copy;
  }
  return undefined;
}
