// list-append: transactions of appends and reads over a few keys, each key a list stored as a
// JSON string. An optimistic transaction: one Range reads every key of the txn at the worker's
// node (one atomic, linearizable snapshot), the micro-ops run against that snapshot, and when
// the txn appends, one Txn commits it comparing the mod_revision of every key it touched with
// the snapshot's (0 = absent) and putting the new lists. A compare that fails is a definite
// `fail`. Read-only txns are answered by the snapshot alone. Judged by Elle (list-append),
// strict serializable expected.

import { runCheck } from '../../../../src/check/run.js';
import { parseHistory } from '../../../../src/check/parse/index.js';
import type { Completion, HistoryEvent } from '../history.js';
import type { Rng } from '../rng.js';
import { bytes, readErrorOutcome, readOpts, str, writeErrorOutcome, type CheckResult, type ExecContext, type OpSpec, type Workload } from '../workload.js';

const KEY_PREFIX = 'la/';
type MicroOp = ['append', number, number] | ['r', number, number[] | null];

export interface ListAppendOptions {
  activeKeys?: number;
  maxTxnLength?: number;
  /** Appends to one key before it is retired (bounds list size and Elle's work). */
  maxAppendsPerKey?: number;
}

/** Server key of list `k`: fixed width, so keys sort numerically and a txn reads one range. */
export function listKey(k: number): string {
  return `${KEY_PREFIX}${String(k).padStart(8, '0')}`;
}

export class ListAppendWorkload implements Workload {
  readonly name = 'list-append';
  private readonly activeKeys: number;
  private readonly maxTxnLength: number;
  private readonly maxAppendsPerKey: number;
  private readonly active: number[] = [];
  private readonly appends = new Map<number, number>();
  private nextKey = 0;
  private readonly usedKeys = new Set<number>();

  constructor(opts: ListAppendOptions = {}) {
    this.activeKeys = opts.activeKeys ?? 5;
    this.maxTxnLength = opts.maxTxnLength ?? 4;
    this.maxAppendsPerKey = opts.maxAppendsPerKey ?? 64;
    for (let i = 0; i < this.activeKeys; i++) this.active.push(this.nextKey++);
  }

  async setup(): Promise<void> {}

  generate(rng: Rng): OpSpec {
    const n = rng.int(1, this.maxTxnLength);
    const mops: MicroOp[] = [];
    for (let i = 0; i < n; i++) {
      const slot = rng.int(0, this.active.length - 1);
      const k = this.active[slot]!;
      this.usedKeys.add(k);
      if (rng.next() < 0.5) {
        mops.push(['r', k, null]);
        continue;
      }
      const v = (this.appends.get(k) ?? 0) + 1;
      this.appends.set(k, v);
      mops.push(['append', k, v]);
      if (v >= this.maxAppendsPerKey) this.active[slot] = this.nextKey++;
    }
    return { f: 'txn', value: mops };
  }

  async execute(ctx: ExecContext, op: OpSpec): Promise<Completion> {
    const mops = op.value as MicroOp[];
    const keys = [...new Set(mops.map((m) => m[1]))].sort((a, b) => a - b);
    const lo = listKey(keys[0]!);
    const hi = listKey(keys[keys.length - 1]!);
    const r = await ctx.callNode<{ kvs?: { key: Uint8Array; value: Uint8Array; modRevision: number | string }[] }>('Range', {
      key: bytes(lo),
      rangeEnd: bytes(`${hi}\0`),
      read: readOpts(ctx.consistency),
    });
    if (!r.ok) return readErrorOutcome(r.error);
    const snapshot = new Map<string, { list: number[]; modRevision: number }>();
    for (const kv of r.value.kvs ?? []) snapshot.set(str(kv.key)!, { list: JSON.parse(str(kv.value)!) as number[], modRevision: Number(kv.modRevision) });
    const lists = new Map<number, number[]>(keys.map((k) => [k, [...(snapshot.get(listKey(k))?.list ?? [])]]));
    const result: MicroOp[] = mops.map((m) => {
      const list = lists.get(m[1])!;
      if (m[0] === 'append') {
        list.push(m[2]);
        return m;
      }
      return ['r', m[1], [...list]];
    });
    const written = [...new Set(mops.filter((m) => m[0] === 'append').map((m) => m[1]))];
    if (written.length === 0) return { type: 'ok', value: result, node: ctx.node.id };
    try {
      const t = await ctx.writer.txn(
        {
          compare: keys.map((k) => ({ key: listKey(k), modRevision: snapshot.get(listKey(k))?.modRevision ?? 0 })),
          success: written.map((k) => ({ put: { key: listKey(k), value: JSON.stringify(lists.get(k)) } })),
        },
        { timeoutMs: ctx.opTimeoutMs },
      );
      return t.succeeded ? { type: 'ok', value: result, node: ctx.node.id } : { type: 'fail', value: mops, error: 'conflict: a key changed since the read' };
    } catch (e) {
      const out = writeErrorOutcome(e);
      return { ...out, value: mops };
    }
  }

  finalOps(): OpSpec[] {
    const keys = [...this.usedKeys].sort((a, b) => a - b);
    const ops: OpSpec[] = [];
    // One read txn per group of keys (a Range per txn; keep each small).
    for (let i = 0; i < keys.length; i += 8) ops.push({ f: 'txn', value: keys.slice(i, i + 8).map((k) => ['r', k, null]) });
    return ops;
  }

  check(_events: HistoryEvent[], jsonl: string, opts: { timeoutMs: number }): CheckResult[] {
    const { history, format } = parseHistory(jsonl, { format: 'jsonl', file: 'history.jsonl' });
    const report = runCheck({ history, format, model: 'list-append', consistencyModels: ['strict-serializable'], timeoutMs: opts.timeoutMs });
    return [
      {
        name: 'strict-serializable (Elle list-append)',
        valid: report.valid,
        explanations: [...(report.anomalyTypes.length ? [`anomalies: ${report.anomalyTypes.join(', ')}`] : []), ...(report.not.length ? [`not: ${report.not.join(', ')}`] : []), ...report.explanations],
        elapsedMs: report.elapsedMs,
        details: { opCount: report.opCount, anomalyTypes: report.anomalyTypes, not: report.not, alsoNot: report.alsoNot },
      },
    ];
  }
}
