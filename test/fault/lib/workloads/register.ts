// register: reads, writes and compare-and-sets on a few integer registers. Reads go to the
// worker's own node (any node serves LINEARIZABLE reads), writes through the leader, CAS is a
// Txn comparing the value. Judged per key by the WGL checker with the cas-register model.
// Keys rotate: each key takes at most `opsPerKey` ops, then a fresh key replaces it, which
// keeps every per-key search small (as Jepsen's independent keys do).

import { runCheck } from '../../../../src/check/run.js';
import { parseHistory } from '../../../../src/check/parse/index.js';
import type { Completion, HistoryEvent } from '../history.js';
import type { Rng } from '../rng.js';
import { readErrorOutcome, readOpts, str, writeErrorOutcome, bytes, type CheckResult, type ExecContext, type OpSpec, type Workload } from '../workload.js';

const KEY_PREFIX = 'reg/';
const VALUE_MAX = 4;

export interface RegisterOptions {
  /** Keys in use at once. */
  activeKeys?: number;
  /** Ops on one key before it is retired. */
  opsPerKey?: number;
}

export class RegisterWorkload implements Workload {
  readonly name = 'register';
  private readonly activeKeys: number;
  private readonly opsPerKey: number;
  /** slot -> [key number, ops issued on it]. */
  private readonly slots: { key: number; ops: number }[] = [];
  private nextKey = 0;
  /** Every key ever used (for final reads). */
  private readonly usedKeys = new Set<number>();
  /** Planted bug only: the last value each worker saw per key. */
  private readonly staleCache = new Map<string, number | null>();

  constructor(opts: RegisterOptions = {}) {
    this.activeKeys = opts.activeKeys ?? 3;
    this.opsPerKey = opts.opsPerKey ?? 300;
    for (let i = 0; i < this.activeKeys; i++) this.slots.push({ key: this.nextKey++, ops: 0 });
  }

  async setup(): Promise<void> {
    // Registers start absent (read as null).
  }

  private takeKey(rng: Rng): number {
    const slot = rng.pick(this.slots);
    if (slot.ops >= this.opsPerKey) {
      slot.key = this.nextKey++;
      slot.ops = 0;
    }
    slot.ops++;
    this.usedKeys.add(slot.key);
    return slot.key;
  }

  generate(rng: Rng): OpSpec {
    const key = String(this.takeKey(rng));
    const roll = rng.next();
    if (roll < 0.4) return { f: 'read', key, value: null };
    if (roll < 0.7) return { f: 'write', key, value: rng.int(0, VALUE_MAX) };
    return { f: 'cas', key, value: [rng.int(0, VALUE_MAX), rng.int(0, VALUE_MAX)] };
  }

  async execute(ctx: ExecContext, op: OpSpec): Promise<Completion> {
    const key = KEY_PREFIX + op.key!;
    if (op.f === 'read') return this.read(ctx, op.key!, key);
    try {
      if (op.f === 'write') {
        await ctx.writer.put(key, String(op.value), { timeoutMs: ctx.opTimeoutMs });
        return { type: 'ok', value: op.value };
      }
      const [from, to] = op.value as [number, number];
      const r = await ctx.writer.txn({ compare: [{ key, value: String(from) }], success: [{ put: { key, value: String(to) } }] }, { timeoutMs: ctx.opTimeoutMs });
      return r.succeeded ? { type: 'ok', value: op.value } : { type: 'fail', value: op.value, error: 'compare-failed' };
    } catch (e) {
      return writeErrorOutcome(e);
    }
  }

  private async read(ctx: ExecContext, k: string, key: string): Promise<Completion> {
    const cacheKey = `${ctx.worker}/${k}`;
    if (ctx.plantedBug === 'stale-read' && this.staleCache.has(cacheKey) && ctx.rng.next() < 0.5) {
      // PLANTED BUG (test-only): answer from this client's cache instead of asking the cluster.
      return { type: 'ok', value: this.staleCache.get(cacheKey)!, node: ctx.node.id };
    }
    const r = await ctx.callNode<{ kv?: { value: Uint8Array } | null }>('Get', { key: bytes(key), read: readOpts(ctx.consistency) });
    if (!r.ok) return readErrorOutcome(r.error);
    const text = str(r.value.kv?.value);
    const value = text === undefined ? null : Number(text);
    this.staleCache.set(cacheKey, value);
    return { type: 'ok', value, node: ctx.node.id };
  }

  finalOps(): OpSpec[] {
    return [...this.usedKeys].sort((a, b) => a - b).map((k) => ({ f: 'read', key: String(k), value: null }));
  }

  check(_events: HistoryEvent[], jsonl: string, opts: { timeoutMs: number }): CheckResult[] {
    const { history, format } = parseHistory(jsonl, { format: 'jsonl', file: 'history.jsonl' });
    const report = runCheck({ history, format, model: 'cas-register', timeoutMs: opts.timeoutMs, title: 'register: failing key' });
    const lin = report.lin;
    return [
      {
        name: 'linearizable (cas-register, per key)',
        valid: report.valid,
        explanations: report.explanations,
        elapsedMs: report.elapsedMs,
        details: { opCount: report.opCount, partitions: lin?.partitionCount, unknownPartitions: lin?.unknownPartitions },
        ...(report.timelineHtml ? { html: report.timelineHtml } : {}),
      },
    ];
  }
}
