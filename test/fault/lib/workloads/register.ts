// register: reads, writes and compare-and-sets on a few integer registers. Reads go to the
// worker's own node (any node serves LINEARIZABLE reads), writes through the leader, CAS is a
// Txn comparing the value. Judged per key by the WGL checker with the cas-register model.
// Keys rotate: each key takes at most `opsPerKey` ops, then a fresh key replaces it, which
// keeps every per-key search small (as Jepsen's independent keys do).
//
// --consistency sets the mode of every read. With `session`, each worker reads AND writes
// through its own SDK session (reads still pinned to its node), every ok op records its
// revision (a write's, a read's header revision) and a `session` id, the ops are reads and
// writes of unique values (the session checker places a value by its write's revision, so
// values must not repeat, and it does not model cas), and the judge is the session checker
// (monotonic reads, read-your-writes, value consistency). Other modes: linearizability (WGL).

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
  /** Judge with the session checker (and generate unique write values, no cas). */
  session?: boolean;
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
  private readonly session: boolean;
  /** Session mode: next unique value per worker (worker * 1e6 + n). */
  private readonly nextValue = new Map<number, number>();

  constructor(opts: RegisterOptions = {}) {
    this.activeKeys = opts.activeKeys ?? 3;
    this.opsPerKey = opts.opsPerKey ?? 300;
    this.session = opts.session ?? false;
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

  generate(rng: Rng, worker: number): OpSpec {
    const key = String(this.takeKey(rng));
    const roll = rng.next();
    if (this.session) {
      if (roll < 0.5) return { f: 'read', key, value: null };
      const n = this.nextValue.get(worker) ?? 0;
      this.nextValue.set(worker, n + 1);
      return { f: 'write', key, value: (worker + 1) * 1_000_000 + n };
    }
    if (roll < 0.4) return { f: 'read', key, value: null };
    if (roll < 0.7) return { f: 'write', key, value: rng.int(0, VALUE_MAX) };
    return { f: 'cas', key, value: [rng.int(0, VALUE_MAX), rng.int(0, VALUE_MAX)] };
  }

  async execute(ctx: ExecContext, op: OpSpec): Promise<Completion> {
    const key = KEY_PREFIX + op.key!;
    if (op.f === 'read') return this.read(ctx, op.key!, key);
    try {
      if (op.f === 'write') {
        const r = await (ctx.session ?? ctx.writer).put(key, String(op.value), { timeoutMs: ctx.opTimeoutMs });
        return { type: 'ok', value: op.value, revision: r.revision };
      }
      const [from, to] = op.value as [number, number];
      const r = await (ctx.session ?? ctx.writer).txn({ compare: [{ key, value: String(from) }], success: [{ put: { key, value: String(to) } }] }, { timeoutMs: ctx.opTimeoutMs });
      return r.succeeded ? { type: 'ok', value: op.value, revision: r.revision } : { type: 'fail', value: op.value, error: 'compare-failed' };
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
    if (ctx.session) return this.sessionRead(ctx, key);
    const r = await ctx.callNode<{ kv?: { value: Uint8Array; modRevision?: number } | null; header?: { revision?: number } | null }>('Get', { key: bytes(key), read: readOpts(ctx.consistency) });
    if (!r.ok) return readErrorOutcome(r.error);
    const text = str(r.value.kv?.value);
    const value = text === undefined ? null : Number(text);
    this.staleCache.set(cacheKey, value);
    const revision = Number(r.value.header?.revision ?? 0);
    const modRevision = Number(r.value.kv?.modRevision ?? 0);
    return { type: 'ok', value, node: ctx.node.id, ...(revision > 0 ? { revision } : {}), ...(modRevision > 0 ? { modRevision } : {}) };
  }

  /** A SESSION read through the worker's session, pinned to its node (one attempt per endpoint). */
  private async sessionRead(ctx: ExecContext, key: string): Promise<Completion> {
    try {
      const r =
        ctx.plantedBug === 'session-drop-token'
          ? // PLANTED BUG (test-only): the session token is dropped; a plain STALE read of the
            // pinned node is recorded as if it were the session's read.
            await ctx.writer.get(key, { consistency: 'stale', endpoint: ctx.node.clientAddr, timeoutMs: ctx.opTimeoutMs })
          : await ctx.session!.get(key, { endpoint: ctx.node.clientAddr, timeoutMs: ctx.opTimeoutMs });
      const text = str(r.value);
      return { type: 'ok', value: text === undefined ? null : Number(text), node: r.header.servedBy || ctx.node.id, revision: r.header.revision, ...(r.kv ? { modRevision: r.kv.modRevision } : {}) };
    } catch (e) {
      const err = e as { code?: number; details?: string; message?: string };
      return readErrorOutcome({ code: err.code ?? -1, details: err.details ?? String(err.message ?? e) });
    }
  }

  finalOps(): OpSpec[] {
    return [...this.usedKeys].sort((a, b) => a - b).map((k) => ({ f: 'read', key: String(k), value: null }));
  }

  check(events: HistoryEvent[], jsonl: string, opts: { timeoutMs: number }): CheckResult[] {
    const { history, format } = parseHistory(jsonl, { format: 'jsonl', file: 'history.jsonl' });
    if (this.session) {
      const report = runCheck({ history, format, model: 'session', timeoutMs: opts.timeoutMs });
      return [
        {
          name: 'session guarantees (monotonic reads, read-your-writes, values; per key and session)',
          valid: report.valid,
          explanations: report.explanations,
          elapsedMs: report.elapsedMs,
          details: { opCount: report.opCount, anomalyTypes: report.anomalyTypes },
        },
        checkHeaderCoversValue(events),
      ];
    }
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

/**
 * Server response consistency: a read's header revision (the session token the SDK keeps) must
 * be at least the mod revision of the key-value it returned. When it is not, a session that saw
 * the value holds a token older than it, and a later read elsewhere may go back in time.
 */
export function checkHeaderCoversValue(events: readonly HistoryEvent[]): CheckResult {
  const start = performance.now();
  const bad: string[] = [];
  let reads = 0;
  events.forEach((e, i) => {
    if (e.type !== 'ok' || e.f !== 'read' || e.revision === undefined || e.modRevision === undefined) return;
    reads++;
    if (e.modRevision > e.revision) bad.push(`history index ${i}: n${e.node} answered key ${e.key} = ${JSON.stringify(e.value)} (mod revision ${e.modRevision}) with header revision ${e.revision}`);
  });
  return {
    name: 'read header revision >= mod revision of the value returned (server)',
    valid: bad.length === 0,
    explanations: bad.slice(0, 20),
    elapsedMs: performance.now() - start,
    details: { reads, violations: bad.length },
  };
}
