// lock: workers take turns on LOCKS locks (worker w uses lock w % LOCKS) with client.lock
// (a lease of LEASE_TTL_S kept alive by the SDK; fair FIFO queue), then make WRITES_PER_HOLD
// guarded writes of "<worker>:<token>:<i>" to the lock's data key with { fence }, then release.
// A guarded write refused with "stale fencing token" is `fail` (definitely not applied).
//
// Checked per lock, from the data key's applied history (read back at the end with a watch from
// the run's start revision, so writes whose outcome was unknown are judged too):
// - fencing: along revisions, the writers' tokens never go back: once a write with token T
//   applied, no write with a token < T applies (two holders' guarded writes never interleave);
// - every applied write carries a token some acquire returned (or might have: an info acquire);
// - every acknowledged guarded write is in the applied history at its revision.

import { KvClientError, StatusCode, text, type KvClient, type LockHandle, type WatchBatch } from '../../../../src/client/index.js';
import type { Completion, HistoryEvent } from '../history.js';
import type { Rng } from '../rng.js';
import { writeErrorOutcome, type BackgroundEnv, type CheckResult, type ExecContext, type OpSpec, type Workload } from '../workload.js';

const LOCKS = 2;
const WRITES_PER_HOLD = 3;
const LEASE_TTL_S = 2;
const dataKey = (lock: number) => `lkd/${lock}`;
const lockName = (lock: number) => `lk/${lock}`;

interface Holding {
  handle: LockHandle;
  writes: number;
}

export interface AppliedWrite {
  revision: number;
  worker: number;
  token: number;
  i: number;
}

export class LockWorkload implements Workload {
  readonly name = 'lock';
  private startRevision = 0;
  private readonly held = new Map<number, Holding>();
  /** Per lock: its data key's applied writes (from the final watch). */
  private applied: Map<number, AppliedWrite[]> | undefined;
  private finishNote: string | undefined;

  async setup(writer: KvClient): Promise<void> {
    const r = await writer.put('lk-start', 'x');
    this.startRevision = r.revision + 1;
  }

  generate(_rng: Rng, worker: number): OpSpec {
    const lock = String(worker % LOCKS);
    const h = this.held.get(worker);
    if (!h) return { f: 'acquire', key: lock, value: null };
    if (h.writes < WRITES_PER_HOLD) return { f: 'write', key: lock, value: `${worker}:${h.handle.token}:${h.writes}` };
    return { f: 'release', key: lock, value: h.handle.token };
  }

  async execute(ctx: ExecContext, op: OpSpec): Promise<Completion> {
    const lock = Number(op.key);
    const w = ctx.worker;
    if (op.f === 'acquire') {
      try {
        const handle = await ctx.writer.lock(lockName(lock), { ttlSeconds: LEASE_TTL_S, timeoutMs: ctx.opTimeoutMs * 2 });
        handle.lost.then(() => undefined, () => undefined);
        this.held.set(w, { handle, writes: 0 });
        return { type: 'ok', value: handle.token };
      } catch (e) {
        // Gave up waiting: the SDK revoked the lease, so the place in the queue is gone.
        if (e instanceof KvClientError && e.code === StatusCode.DEADLINE_EXCEEDED && /gave up waiting/.test(e.details)) return { type: 'fail', value: null, error: 'lock-timeout' };
        return writeErrorOutcome(e);
      }
    }
    const h = this.held.get(w);
    if (!h) return { type: 'fail', value: null, error: 'not held' };
    if (op.f === 'write') {
      h.writes++;
      try {
        const r = await ctx.writer.put(dataKey(lock), String(op.value), { fence: h.handle.fence, timeoutMs: ctx.opTimeoutMs });
        return { type: 'ok', value: op.value, revision: r.revision };
      } catch (e) {
        if (e instanceof KvClientError && e.code === StatusCode.FAILED_PRECONDITION && /stale fencing token/.test(e.details)) return { type: 'fail', value: op.value, error: 'stale-fence' };
        return writeErrorOutcome(e);
      }
    }
    this.held.delete(w);
    try {
      await Promise.race([h.handle.release(), new Promise((_, rej) => setTimeout(() => rej(new Error('release timed out')), ctx.opTimeoutMs))]);
      return { type: 'ok', value: op.value };
    } catch (e) {
      return writeErrorOutcome(e);
    }
  }

  finalOps(): OpSpec[] {
    return [];
  }

  async finish(client: KvClient, env: BackgroundEnv): Promise<void> {
    for (const h of this.held.values()) await h.handle.release().catch(() => undefined);
    this.held.clear();
    this.applied = new Map();
    try {
      const now = (await client.status(undefined, { timeoutMs: 5000 })).revision;
      for (let lock = 0; lock < LOCKS; lock++) {
        const writes: AppliedWrite[] = [];
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(), 15_000);
        try {
          for await (const batch of client.watch(dataKey(lock), { startRevision: this.startRevision, signal: abort.signal }) as AsyncIterable<WatchBatch>) {
            for (const e of batch.events) {
              if (e.type !== 'put') continue;
              const [worker, token, i] = text(e.kv.value).split(':').map(Number) as [number, number, number];
              writes.push({ revision: e.revision, worker, token, i });
            }
            if (batch.revision >= now) break;
          }
        } finally {
          clearTimeout(timer);
        }
        if (abort.signal.aborted) this.finishNote = `lock ${lock}: the final watch did not reach revision ${now} within 15 s`;
        this.applied.set(lock, writes);
        env.observe('applied-writes', { lock, writes: writes.length, upTo: now });
      }
    } catch (e) {
      this.finishNote = `reading the applied writes failed: ${(e as Error).message}`;
    }
  }

  check(events: HistoryEvent[]): CheckResult[] {
    return [checkLock(events, this.applied, this.finishNote)];
  }
}

/** The fencing checks (see the file header). Exported for tests. */
export function checkLock(events: readonly HistoryEvent[], applied: Map<number, AppliedWrite[]> | undefined, finishNote?: string): CheckResult {
  const start = performance.now();
  const name = 'lock: guarded writes of different holders never interleave (fencing)';
  if (!applied) return { name, valid: 'unknown', explanations: [finishNote ?? 'no applied history'], elapsedMs: 0 };
  const ex: string[] = [];
  const open = new Map<string, HistoryEvent>();
  const tokens = new Map<number, Set<number>>(); // lock -> tokens acquired (ok) or maybe (info)
  const acked: { lock: number; value: string; revision: number }[] = [];
  const counts = { acquired: 0, ackedWrites: 0, staleFence: 0 };
  for (const e of events) {
    if (e.process === 'nemesis') continue;
    const proc = String(e.process);
    if (e.type === 'invoke') {
      open.set(proc, e);
      continue;
    }
    const inv = open.get(proc);
    open.delete(proc);
    if (!inv) continue;
    const lock = Number(inv.key);
    if (inv.f === 'acquire' && e.type === 'ok') {
      counts.acquired++;
      (tokens.get(lock) ?? tokens.set(lock, new Set()).get(lock)!).add(Number(e.value));
    }
    if (inv.f === 'write' && e.type === 'ok') {
      counts.ackedWrites++;
      acked.push({ lock, value: String(inv.value), revision: e.revision! });
    }
    if (inv.f === 'write' && e.type === 'fail' && e.error === 'stale-fence') counts.staleFence++;
  }
  for (const [lock, writes] of applied) {
    const sorted = [...writes].sort((a, b) => a.revision - b.revision);
    let maxToken = 0;
    let maxAt: AppliedWrite | undefined;
    for (const w of sorted) {
      if (w.token < maxToken) {
        ex.push(`lock ${lock}: write ${w.worker}:${w.token}:${w.i} applied at revision ${w.revision}, after holder token ${maxToken} already wrote (${maxAt!.worker}:${maxAt!.token}:${maxAt!.i} at revision ${maxAt!.revision}): two holders interleaved`);
        continue;
      }
      if (w.token > maxToken) {
        maxToken = w.token;
        maxAt = w;
      }
    }
    // A token from an acquire we never saw complete ok may still be real (an info acquire whose
    // lock was granted); only flag tokens when no acquire of this lock was indeterminate.
    const seen = tokens.get(lock) ?? new Set<number>();
    const byRev = new Map(sorted.map((w) => [w.revision, w]));
    for (const a of acked.filter((x) => x.lock === lock)) {
      const got = byRev.get(a.revision);
      if (!got || `${got.worker}:${got.token}:${got.i}` !== a.value) ex.push(`lock ${lock}: acknowledged write ${a.value} at revision ${a.revision} is not in the applied history`);
    }
    for (const w of sorted) if (!seen.has(w.token) && !events.some((e) => e.f === 'acquire' && e.type === 'info')) ex.push(`lock ${lock}: write with token ${w.token} that no acquire returned`);
  }
  if (finishNote) ex.push(finishNote);
  return {
    name,
    valid: ex.length === 0 ? true : finishNote && ex.length === 1 ? 'unknown' : false,
    explanations: ex.slice(0, 20),
    elapsedMs: performance.now() - start,
    details: { ...counts, applied: Object.fromEntries([...applied].map(([l, w]) => [l, w.length])) },
  };
}
