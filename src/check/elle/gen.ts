// Test support: seeded generators of concurrent, strictly serializable txn histories. Each txn takes
// effect atomically at one moment between its invoke and its completion, so the history is valid
// under every model up to strict-serializable.
import type { History, Op } from '../history.js';
import type { ElleModel } from './types.js';
import { seededRandom } from '../lin/random.js';

/** mulberry32: small, fast, seeded PRNG; returns floats in [0, 1) (the checker's one copy). */
export const prng: (seed: number) => () => number = seededRandom;

export interface GenOptions {
  model: ElleModel;
  seed: number;
  txnCount: number;
  processCount: number;
  keyCount: number;
  /** Probability that a txn aborts (:fail, no effect) or crashes (:info, effect or not). */
  failRate: number;
  infoRate: number;
}

type Mop = [string, number, unknown];

interface Running {
  process: number;
  invoke: Mop[];
  result: Mop[] | undefined;
  outcome: 'ok' | 'fail' | 'info';
}

export function serialHistory(o: GenOptions): History {
  const rand = prng(o.seed);
  const pick = (n: number): number => Math.floor(rand() * n);
  const lists = new Map<number, number[]>();
  const regs = new Map<number, number | null>();
  const nextValue = new Map<number, number>();
  const fresh = (k: number): number => {
    const v = (nextValue.get(k) ?? 0) + 1;
    nextValue.set(k, v);
    return v;
  };
  const history: History = [];
  const emit = (process: number, type: Op['type'], value: Mop[]): void => {
    history.push({ index: history.length, process, type, f: 'txn', value: value.map((m) => [...m]) });
  };
  const newTxn = (): Mop[] => {
    const len = 1 + pick(4);
    return Array.from({ length: len }, (): Mop => {
      const k = pick(o.keyCount);
      const write = rand() < 0.5;
      if (o.model === 'list-append') return write ? ['append', k, fresh(k)] : ['r', k, null];
      return write ? ['w', k, fresh(k)] : ['r', k, null];
    });
  };
  const apply = (txn: Mop[]): Mop[] => txn.map(([f, k, v]): Mop => {
    if (f === 'append') {
      lists.set(k, [...(lists.get(k) ?? []), v as number]);
      return [f, k, v];
    }
    if (f === 'w') {
      regs.set(k, v as number);
      return [f, k, v];
    }
    return o.model === 'list-append' ? [f, k, [...(lists.get(k) ?? [])]] : [f, k, regs.get(k) ?? null];
  });
  const running = new Map<number, Running>();
  let nextProcess = o.processCount;
  const idle = Array.from({ length: o.processCount }, (_, i) => i);
  let started = 0;
  while (started < o.txnCount || running.size > 0) {
    const startNew = started < o.txnCount && idle.length > 0 && (running.size === 0 || rand() < 0.5);
    if (startNew) {
      const process = idle.splice(pick(idle.length), 1)[0]!;
      const invoke = newTxn();
      const r = rand();
      const outcome = r < o.failRate ? 'fail' : r < o.failRate + o.infoRate ? 'info' : 'ok';
      running.set(process, { process, invoke, result: undefined, outcome });
      emit(process, 'invoke', invoke);
      started++;
      continue;
    }
    const procs = [...running.keys()];
    const p = procs[pick(procs.length)]!;
    const t = running.get(p)!;
    const mayApply = t.outcome === 'ok' || (t.outcome === 'info' && rand() < 0.5);
    if (t.result === undefined && mayApply && t.outcome !== 'fail') {
      t.result = apply(t.invoke);
      if (rand() < 0.5) continue; // complete later, so txns overlap
    }
    running.delete(p);
    if (t.outcome === 'ok') emit(p, 'ok', t.result ?? apply(t.invoke));
    else emit(p, t.outcome, t.invoke);
    // A crashed client's process is never reused (Jepsen's rule).
    idle.push(t.outcome === 'info' ? nextProcess++ : p);
  }
  return history;
}
