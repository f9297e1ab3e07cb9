// watch: writers put (unique values) and delete on a few keys under one prefix; WATCHERS
// watchers, each an SDK client whose endpoint list starts at a different node, watch the prefix
// with client.watch from one start revision, through the faults (the SDK reconnects to the next
// endpoint from the revision after the last it delivered). At the end (healed, recovered), a
// linearizable Range of the prefix gives the final state at revision R; every watcher must
// reach R (bounded wait), then stops. Checked:
//
// - ordered: revisions strictly increase along each watcher's events (one write per revision
//   here: no txns), never repeat;
// - identical: every watcher saw the same sequence of (revision, type, key, value) up to R;
// - gap-free: every acknowledged put, and every acknowledged delete that deleted something,
//   appears at its revision; every event is one that some client invoked (nothing invented);
// - matches the final state: replaying a watcher's events onto the empty prefix gives exactly
//   the final Range at R (keys, values, mod revisions).

import { KvClient, text, type WatchBatch } from '../../../../src/client/index.js';
import type { Completion, HistoryEvent } from '../history.js';
import type { Rng } from '../rng.js';
import { writeErrorOutcome, type BackgroundEnv, type CheckResult, type ExecContext, type OpSpec, type Workload } from '../workload.js';

const PREFIX = 'wt/';
const KEYS = 5;
const WATCHERS = 3;
/** How long finish() waits for every watcher to deliver the final revision. */
const CATCH_UP_MS = 20_000;

export interface SeenEvent {
  revision: number;
  type: 'put' | 'delete';
  key: string;
  value: string;
}

interface Watcher {
  id: number;
  firstEndpoint: string;
  events: SeenEvent[];
  /** Every change up to this revision has been delivered. */
  revision: number;
  batches: number;
  reconnectsSeen: Set<number>;
  error?: string;
  done: Promise<void>;
}

export interface FinalState {
  revision: number;
  kvs: { key: string; value: string; modRevision: number }[];
}

export class WatchWorkload implements Workload {
  readonly name = 'watch';
  private startRevision = 0;
  private readonly watchers: Watcher[] = [];
  private readonly abort = new AbortController();
  private readonly clients: KvClient[] = [];
  private final: FinalState | undefined;
  private finishNote: string | undefined;
  private readonly nextValue = new Map<number, number>();

  async setup(writer: KvClient): Promise<void> {
    // Start from the current revision + 1: the watchers must see every write of the run.
    const r = await writer.put('wt-start', 'x');
    this.startRevision = r.revision + 1;
  }

  startBackground(env: BackgroundEnv): void {
    const endpoints = env.endpoints();
    for (let i = 0; i < WATCHERS; i++) {
      const rotated = [...endpoints.slice(i % endpoints.length), ...endpoints.slice(0, i % endpoints.length)];
      const client = new KvClient({ endpoints: rotated, defaultTimeoutMs: 5000 });
      this.clients.push(client);
      const w: Watcher = { id: i, firstEndpoint: rotated[0]!, events: [], revision: this.startRevision - 1, batches: 0, reconnectsSeen: new Set(), done: Promise.resolve() };
      w.done = this.runWatcher(w, client, env);
      this.watchers.push(w);
    }
  }

  private async runWatcher(w: Watcher, client: KvClient, env: BackgroundEnv): Promise<void> {
    try {
      const it = client.watch(PREFIX, { prefix: true, startRevision: this.startRevision, progressNotifyMs: 300, maxReconnects: 100_000, signal: this.abort.signal });
      for await (const batch of it as AsyncIterable<WatchBatch>) {
        w.batches++;
        w.reconnectsSeen.add(batch.servedBy);
        for (const e of batch.events) w.events.push({ revision: e.revision, type: e.type, key: text(e.kv.key).slice(PREFIX.length), value: e.type === 'put' ? text(e.kv.value) : '' });
        if (batch.revision > w.revision) w.revision = batch.revision;
        if (batch.events.length) env.observe('watch', { watcher: w.id, revision: batch.revision, events: batch.events.length, servedBy: batch.servedBy });
      }
    } catch (e) {
      if (!this.abort.signal.aborted) {
        w.error = String((e as Error).message ?? e).slice(0, 300);
        env.log(`watcher ${w.id} ended: ${w.error}`);
      }
    }
  }

  generate(rng: Rng, worker: number): OpSpec {
    const key = String(rng.int(0, KEYS - 1));
    if (rng.next() < 0.15) return { f: 'delete', key, value: null };
    const n = this.nextValue.get(worker) ?? 0;
    this.nextValue.set(worker, n + 1);
    return { f: 'put', key, value: `${worker}-${n}` };
  }

  async execute(ctx: ExecContext, op: OpSpec): Promise<Completion> {
    const key = PREFIX + op.key!;
    try {
      if (op.f === 'put') {
        const r = await ctx.writer.put(key, String(op.value), { timeoutMs: ctx.opTimeoutMs });
        return { type: 'ok', value: op.value, revision: r.revision };
      }
      const r = await ctx.writer.delete(key, { timeoutMs: ctx.opTimeoutMs });
      return { type: 'ok', value: r.deleted, revision: r.revision };
    } catch (e) {
      return writeErrorOutcome(e);
    }
  }

  finalOps(): OpSpec[] {
    return [];
  }

  async finish(client: KvClient, env: BackgroundEnv): Promise<void> {
    try {
      const r = await client.range({ key: PREFIX, prefix: true }, { timeoutMs: 10_000 });
      this.final = {
        revision: r.header.revision,
        kvs: r.kvs.map((kv) => ({ key: text(kv.key).slice(PREFIX.length), value: text(kv.value), modRevision: kv.modRevision })),
      };
      env.observe('final-range', this.final);
      const deadline = Date.now() + CATCH_UP_MS;
      while (Date.now() < deadline && this.watchers.some((w) => !w.error && w.revision < this.final!.revision)) await new Promise((res) => setTimeout(res, 100));
    } catch (e) {
      this.finishNote = `final range failed: ${(e as Error).message}`;
    } finally {
      this.abort.abort();
      await Promise.race([Promise.all(this.watchers.map((w) => w.done)), new Promise((res) => setTimeout(res, 3000))]);
      for (const c of this.clients) c.close();
    }
    for (const w of this.watchers) env.observe('watcher-end', { watcher: w.id, firstEndpoint: w.firstEndpoint, revision: w.revision, events: w.events.length, batches: w.batches, servedBy: [...w.reconnectsSeen], ...(w.error ? { error: w.error } : {}) });
  }

  check(events: HistoryEvent[]): CheckResult[] {
    return [checkWatch(events, this.watchers, this.final, this.finishNote)];
  }
}

/** The watch checks (see the file header). Exported for tests. */
export function checkWatch(events: readonly HistoryEvent[], watchers: readonly { id: number; events: SeenEvent[]; revision: number; error?: string }[], final: FinalState | undefined, finishNote?: string): CheckResult {
  const start = performance.now();
  const ex: string[] = [];
  if (finishNote) ex.push(finishNote);
  if (!final) {
    return { name: 'watch: ordered, identical, gap-free, matches the final state', valid: 'unknown', explanations: [...ex, 'no final state read'], elapsedMs: performance.now() - start };
  }
  const R = final.revision;
  // Invoked writes (any outcome) and acknowledged ones, from the history.
  const open = new Map<string, HistoryEvent>();
  const invokedPuts = new Set<string>(); // key=value
  const invokedDeleteKeys = new Set<string>();
  const acked: SeenEvent[] = [];
  for (const e of events) {
    if (e.process === 'nemesis') continue;
    const proc = String(e.process);
    if (e.type === 'invoke') {
      open.set(proc, e);
      if (e.f === 'put') invokedPuts.add(`${e.key}=${e.value}`);
      if (e.f === 'delete') invokedDeleteKeys.add(e.key!);
      continue;
    }
    const inv = open.get(proc);
    open.delete(proc);
    if (!inv || e.type !== 'ok' || e.revision === undefined) continue;
    if (inv.f === 'put') acked.push({ revision: e.revision, type: 'put', key: inv.key!, value: String(inv.value) });
    if (inv.f === 'delete' && Number(e.value) > 0) acked.push({ revision: e.revision, type: 'delete', key: inv.key!, value: '' });
  }
  const same = (a: SeenEvent, b: SeenEvent) => a.revision === b.revision && a.type === b.type && a.key === b.key && a.value === b.value;
  const show = (e: SeenEvent) => `${e.type} ${e.key}${e.type === 'put' ? `=${e.value}` : ''} @${e.revision}`;
  let reference: SeenEvent[] | undefined;
  let refId = -1;
  for (const w of watchers) {
    const tag = `watcher ${w.id}`;
    if (w.error) ex.push(`${tag} ended with an error: ${w.error}`);
    if (w.revision < R) ex.push(`${tag} only reached revision ${w.revision} of the final ${R}`);
    const seen = w.events.filter((e) => e.revision <= R);
    // ordered, no repeats
    for (let i = 1; i < seen.length; i++) {
      if (seen[i]!.revision <= seen[i - 1]!.revision) {
        ex.push(`${tag}: out of order or repeated: ${show(seen[i]!)} after ${show(seen[i - 1]!)} (event ${i})`);
        break;
      }
    }
    // nothing invented
    for (const e of seen) {
      if (e.type === 'put' ? !invokedPuts.has(`${e.key}=${e.value}`) : !invokedDeleteKeys.has(e.key)) {
        ex.push(`${tag}: ${show(e)} matches no invoked write`);
        break;
      }
    }
    // gap-free w.r.t. acknowledged writes
    const byRev = new Map(seen.map((e) => [e.revision, e]));
    const missing = acked.filter((a) => a.revision <= R && !(byRev.has(a.revision) && same(byRev.get(a.revision)!, a)));
    if (missing.length) ex.push(`${tag}: ${missing.length} acknowledged write(s) missing or different, e.g. ${missing.slice(0, 3).map(show).join('; ')}${byRev.has(missing[0]!.revision) ? ` (saw ${show(byRev.get(missing[0]!.revision)!)})` : ''}`);
    // replay == final state
    const state = new Map<string, { value: string; modRevision: number }>();
    for (const e of seen) {
      if (e.type === 'put') state.set(e.key, { value: e.value, modRevision: e.revision });
      else state.delete(e.key);
    }
    const want = new Map(final.kvs.map((kv) => [kv.key, kv]));
    const diffs: string[] = [];
    for (const [k, v] of want) {
      const got = state.get(k);
      if (!got || got.value !== v.value || got.modRevision !== v.modRevision) diffs.push(`${k}: final ${v.value}@${v.modRevision}, replay ${got ? `${got.value}@${got.modRevision}` : 'absent'}`);
    }
    for (const k of state.keys()) if (!want.has(k)) diffs.push(`${k}: absent in the final state, replay has ${state.get(k)!.value}`);
    if (diffs.length) ex.push(`${tag}: replaying its events does not give the final state at ${R}: ${diffs.slice(0, 3).join('; ')}`);
    // identical across watchers
    if (!reference) {
      reference = seen;
      refId = w.id;
    } else {
      const n = Math.max(reference.length, seen.length);
      for (let i = 0; i < n; i++) {
        const a = reference[i];
        const b = seen[i];
        if (!a || !b || !same(a, b)) {
          ex.push(`${tag} differs from watcher ${refId} at event ${i}: ${b ? show(b) : 'nothing'} vs ${a ? show(a) : 'nothing'}`);
          break;
        }
      }
    }
  }
  return {
    name: 'watch: ordered, identical, gap-free, matches the final state',
    valid: ex.length === 0,
    explanations: ex,
    elapsedMs: performance.now() - start,
    details: { finalRevision: R, finalKeys: final.kvs.length, ackedWrites: acked.length, watchers: watchers.map((w) => ({ id: w.id, events: w.events.length, revision: w.revision, ...(w.error ? { error: w.error } : {}) })) },
  };
}
