// counter: bounded adds with idempotency keys (client.add(key, delta, { min: 0 }); the SDK
// attaches an idempotency key to every add and retries it safely) and reads, on a few counter
// keys rotated like register's. Checked per key:
//
// - bound: no ok read ever sees a value below 0;
// - exactly-once: the final value (read after heal + recovery) equals the sum of the
//   acknowledged adds plus the sum of SOME subset of the indeterminate (info) adds. Exact
//   subset-sum: the set of every sum a subset of the info deltas can reach (deltas are small
//   integers, so the set stays small; past SUBSET_SUM_LIMIT sums the verdict is unknown);
// - linearizable (src/check's counter model: bounded adds, a rejected add constrains the state).
//
// An add refused by the bound (FAILED_PRECONDITION with the counter's value) is `fail` with
// error "out-of-bounds" (a definite rejection the counter model uses).

import { KvClientError, StatusCode } from '../../../../src/client/index.js';
import { parseHistory } from '../../../../src/check/parse/index.js';
import { runCheck } from '../../../../src/check/run.js';
import type { Completion, HistoryEvent } from '../history.js';
import type { Rng } from '../rng.js';
import { bytes, readErrorOutcome, readOpts, str, writeErrorOutcome, type CheckResult, type ExecContext, type OpSpec, type Workload } from '../workload.js';

const KEY_PREFIX = 'ctr/';
const MIN = 0;
const DELTAS = [-3, -2, -1, 1, 2, 3];
export const SUBSET_SUM_LIMIT = 1_000_000;
/** Processes at or above this are the runner's final reads. */
const FINAL_PROCESS_BASE = 1_000_000;

export interface CounterOptions {
  activeKeys?: number;
  opsPerKey?: number;
}

export interface AddSpec {
  delta: number;
  min: number;
}

export class CounterWorkload implements Workload {
  readonly name = 'counter';
  private readonly slots: { key: number; ops: number }[] = [];
  private nextKey = 0;
  private readonly usedKeys = new Set<number>();
  private readonly opsPerKey: number;

  constructor(opts: CounterOptions = {}) {
    this.opsPerKey = opts.opsPerKey ?? 200;
    for (let i = 0; i < (opts.activeKeys ?? 2); i++) this.slots.push({ key: this.nextKey++, ops: 0 });
  }

  async setup(): Promise<void> {
    // Counters start absent (read as 0).
  }

  generate(rng: Rng): OpSpec {
    const slot = rng.pick(this.slots);
    if (slot.ops >= this.opsPerKey) {
      slot.key = this.nextKey++;
      slot.ops = 0;
    }
    slot.ops++;
    this.usedKeys.add(slot.key);
    const key = String(slot.key);
    if (rng.next() < 0.3) return { f: 'read', key, value: null };
    return { f: 'add', key, value: { delta: rng.pick(DELTAS), min: MIN } satisfies AddSpec };
  }

  async execute(ctx: ExecContext, op: OpSpec): Promise<Completion> {
    const key = KEY_PREFIX + op.key!;
    if (op.f === 'read') {
      const r = await ctx.callNode<{ kv?: { value: Uint8Array } | null; header?: { revision?: number } | null }>('Get', { key: bytes(key), read: readOpts(ctx.consistency) });
      if (!r.ok) return readErrorOutcome(r.error);
      const text = str(r.value.kv?.value);
      return { type: 'ok', value: text === undefined ? 0 : Number(text), node: ctx.node.id, revision: Number(r.value.header?.revision ?? 0) };
    }
    const spec = op.value as AddSpec;
    try {
      const r = await ctx.writer.add(key, spec.delta, { min: spec.min, timeoutMs: ctx.opTimeoutMs });
      return { type: 'ok', value: spec, revision: r.revision };
    } catch (e) {
      if (e instanceof KvClientError && e.code === StatusCode.FAILED_PRECONDITION && e.counterValue !== undefined) {
        return { type: 'fail', value: spec, error: 'out-of-bounds' };
      }
      return writeErrorOutcome(e);
    }
  }

  finalOps(): OpSpec[] {
    return [...this.usedKeys].sort((a, b) => a - b).map((k) => ({ f: 'read', key: String(k), value: null }));
  }

  check(events: HistoryEvent[], jsonl: string, opts: { timeoutMs: number }): CheckResult[] {
    const out: CheckResult[] = [checkCounterSums(events)];
    const { history, format } = parseHistory(jsonl, { format: 'jsonl', file: 'history.jsonl' });
    const report = runCheck({ history, format, model: 'counter', timeoutMs: opts.timeoutMs, title: 'counter: failing key' });
    out.push({
      name: 'linearizable (bounded counter, per key)',
      valid: report.valid,
      explanations: report.explanations,
      elapsedMs: report.elapsedMs,
      details: { opCount: report.opCount, partitions: report.lin?.partitionCount, unknownPartitions: report.lin?.unknownPartitions },
      ...(report.timelineHtml ? { html: report.timelineHtml } : {}),
    });
    return out;
  }
}

/**
 * Every sum a subset of `deltas` can reach (the empty subset's 0 included), or undefined when
 * the set would exceed `limit` sums.
 */
export function subsetSums(deltas: readonly number[], limit = SUBSET_SUM_LIMIT): Set<number> | undefined {
  let sums = new Set<number>([0]);
  for (const d of deltas) {
    if (d === 0) continue;
    const next = new Set(sums);
    for (const s of sums) next.add(s + d);
    if (next.size > limit) return undefined;
    sums = next;
  }
  return sums;
}

/** The bound and exactly-once checks, per key, from the recorded events. */
export function checkCounterSums(events: readonly HistoryEvent[]): CheckResult {
  const start = performance.now();
  const open = new Map<string, HistoryEvent>();
  const perKey = new Map<string, { ok: number; okAdds: number; info: number[]; final?: number; lastRead?: number }>();
  const explanations: string[] = [];
  let unknown = false;
  let reads = 0;
  const keyState = (k: string) => perKey.get(k) ?? perKey.set(k, { ok: 0, okAdds: 0, info: [] }).get(k)!;
  for (const e of events) {
    if (e.process === 'nemesis') continue;
    const proc = String(e.process);
    if (e.type === 'invoke') {
      open.set(proc, e);
      continue;
    }
    const inv = open.get(proc);
    open.delete(proc);
    if (!inv || inv.key === undefined) continue;
    const s = keyState(inv.key);
    if (inv.f === 'add') {
      const delta = (inv.value as AddSpec).delta;
      if (e.type === 'ok') {
        s.ok += delta;
        s.okAdds++;
      } else if (e.type === 'info') s.info.push(delta);
    } else if (inv.f === 'read' && e.type === 'ok') {
      reads++;
      const v = e.value as number;
      if (v < MIN) explanations.push(`bound: read of counter ${inv.key} returned ${v}, below the bound ${MIN}`);
      if (typeof e.process === 'number' && e.process >= FINAL_PROCESS_BASE) s.final = v;
    }
  }
  // Ops still open when the history ended are indeterminate too.
  for (const inv of open.values()) if (inv.f === 'add' && inv.key !== undefined) keyState(inv.key).info.push((inv.value as AddSpec).delta);
  const details: Record<string, unknown> = {};
  for (const [key, s] of [...perKey].sort((a, b) => Number(a[0]) - Number(b[0]))) {
    if (s.final === undefined) {
      unknown = true;
      explanations.push(`counter ${key}: no final read (cannot check the sum)`);
      continue;
    }
    const need = s.final - s.ok;
    const sums = subsetSums(s.info);
    details[key] = { final: s.final, ackedSum: s.ok, ackedAdds: s.okAdds, infoAdds: s.info.length };
    if (!sums) {
      unknown = true;
      explanations.push(`counter ${key}: over ${SUBSET_SUM_LIMIT} subset sums of ${s.info.length} indeterminate adds (unknown)`);
    } else if (!sums.has(need)) {
      const lo = Math.min(...sums);
      const hi = Math.max(...sums);
      explanations.push(
        `exactly-once: counter ${key} ended at ${s.final}, but the ${s.okAdds} acknowledged adds sum to ${s.ok} and no subset of the ${s.info.length} indeterminate adds [${s.info.join(', ')}] sums to ${need} (reachable ${lo}..${hi})`,
      );
    }
  }
  const valid = explanations.some((x) => !x.includes('(unknown)') && !x.includes('no final read')) ? false : unknown ? 'unknown' : true;
  return { name: 'bounded, exactly-once (final = acked adds + a subset of info adds)', valid, explanations, elapsedMs: performance.now() - start, details: { reads, keys: details } };
}
