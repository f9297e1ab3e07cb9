// Turns a History into transactions: each invoke paired with its completion by process, the
// completion's type deciding whether the txn committed (ok), may have committed (info), or aborted
// (fail). Nemesis and other non-transactional ops are dropped, as Elle's h/client-ops does.
import type { History, Op } from '../history.js';

export type MopF = 'append' | 'r' | 'w';

export interface Mop {
  f: MopF;
  key: unknown;
  /** Canonical string of the key, for Map lookups (1 and "1" stay distinct). */
  k: string;
  value: unknown;
}

export type TxnType = 'ok' | 'info' | 'fail';

export interface Txn {
  /** Dense id, also the graph vertex number. */
  id: number;
  /** History :index of the completion op (what Elle names a transaction by). */
  index: number;
  process: number | string;
  type: TxnType;
  mops: Mop[];
  /** Position of the invoke (or of the completion, if there was no invoke) in the history array. */
  invokePos: number;
  /** Position of the completion in the history array; Infinity for an invoke that never completed. */
  completePos: number;
}

export interface TxnHistory {
  txns: Txn[];
  /** Problems that make the history unusable for this workload (Elle throws :valid? :unknown). */
  malformed: string[];
}

/** Canonical string for a key or element: type-tagged so 1 and "1" differ. */
export function canon(x: unknown): string {
  if (typeof x === 'string') return 's' + x;
  if (typeof x === 'number' || typeof x === 'boolean' || x === null || x === undefined) return 'n' + String(x);
  return 'j' + JSON.stringify(x);
}

const MALFORMED_EXAMPLES_MAX = 8;

function isTxnValue(v: unknown): v is unknown[] {
  return Array.isArray(v);
}

function parseMops(op: Op, allowed: ReadonlySet<string>, malformed: string[]): Mop[] | undefined {
  const value = op.value as unknown[];
  const mops: Mop[] = [];
  for (const m of value) {
    if (!Array.isArray(m) || m.length !== 3 || typeof m[0] !== 'string' || !allowed.has(m[0])) {
      if (malformed.length < MALFORMED_EXAMPLES_MAX) {
        malformed.push(`op index ${op.index}: unexpected micro-op ${safeJson(m)}`);
      }
      return undefined;
    }
    mops.push({ f: m[0] as MopF, key: m[1], k: canon(m[1]), value: m[2] });
  }
  return mops;
}

function safeJson(x: unknown): string {
  try {
    return JSON.stringify(x) ?? String(x);
  } catch {
    return String(x);
  }
}

function isClientOp(op: Op): boolean {
  // Elle considers only client ops: nemesis ops carry a non-numeric process.
  return op.process !== 'nemesis' && (op.f === undefined || op.f === 'txn' || isTxnValue(op.value));
}

/**
 * Pairs invokes with completions per process. A completion without an invoke still counts (some
 * hand-written histories omit invokes); an invoke never completed is treated as :info (it may have
 * happened), like Jepsen does for a crashed client.
 */
export function buildTxns(history: History, allowedMops: ReadonlySet<string>): TxnHistory {
  const malformed: string[] = [];
  const txns: Txn[] = [];
  const pending = new Map<number | string, { op: Op; pos: number }>();
  const push = (op: Op, type: TxnType, invokePos: number, completePos: number, source: Op): void => {
    if (!isTxnValue(source.value)) {
      if (malformed.length < MALFORMED_EXAMPLES_MAX) malformed.push(`op index ${source.index}: value is not a transaction`);
      return;
    }
    const mops = parseMops(source, allowedMops, malformed);
    if (mops === undefined) return;
    txns.push({ id: txns.length, index: op.index, process: op.process, type, mops, invokePos, completePos });
  };
  for (let pos = 0; pos < history.length; pos++) {
    const op = history[pos]!;
    if (!isClientOp(op)) continue;
    if (op.type === 'invoke') {
      const dangling = pending.get(op.process);
      if (dangling) push(dangling.op, 'info', dangling.pos, Infinity, dangling.op);
      pending.set(op.process, { op, pos });
      continue;
    }
    const inv = pending.get(op.process);
    pending.delete(op.process);
    // An :info completion usually repeats the invoke's value; use whichever is a txn.
    const source = isTxnValue(op.value) ? op : (inv?.op ?? op);
    push(op, op.type, inv?.pos ?? pos, pos, source);
  }
  for (const { op, pos } of pending.values()) push(op, 'info', pos, Infinity, op);
  return { txns, malformed };
}

/** External reads: the first read of each key, if it precedes any write of that key (jepsen.txn/ext-reads). */
export function extReads(txn: Txn): Map<string, Mop> {
  const out = new Map<string, Mop>();
  const written = new Set<string>();
  for (const m of txn.mops) {
    if (m.f === 'r') {
      if (!written.has(m.k) && !out.has(m.k)) out.set(m.k, m);
    } else {
      written.add(m.k);
    }
  }
  return out;
}

/** External writes: the last write of each key. */
export function extWrites(txn: Txn): Map<string, Mop> {
  const out = new Map<string, Mop>();
  for (const m of txn.mops) if (m.f !== 'r') out.set(m.k, m);
  return out;
}

/** Writes a txn made to a key that a later write in the same txn overwrote. */
export function intermediateWrites(txn: Txn): Mop[] {
  const last = extWrites(txn);
  return txn.mops.filter((m) => m.f !== 'r' && last.get(m.k) !== m);
}
