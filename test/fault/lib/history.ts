// Records a history as Jepsen does: an `invoke` event before the call, then `ok` (it happened),
// `fail` (it definitely did not happen) or `info` (unknown) after it. Events are kept in
// real-time order (the order the recorder saw them) and serialise to our JSON-lines format
// (src/check/README.md), which kvcheck reads.

import { appendFileSync, writeFileSync } from 'node:fs';

export type EventType = 'invoke' | 'ok' | 'fail' | 'info';

export interface HistoryEvent {
  process: number | string;
  type: EventType;
  f: string;
  key?: string;
  value: unknown;
  /** Nanoseconds since the recorder started (monotonic). */
  time: number;
  error?: string;
  /** Extra fields for the report (not read by the checker): the node that served the call. */
  node?: number;
  /** On `ok`: the revision a write produced / the revision of the state a read reflects. */
  revision?: number;
  /** The client session the op belongs to (stable across process ids; the session checker reads it). */
  session?: string;
  /** A read: the mod revision of the key-value it returned (diagnosis only; checkers ignore it). */
  modRevision?: number;
}

/** One completed (or still open) operation, for reports and counters. */
export interface OpRecord {
  process: number | string;
  f: string;
  key?: string;
  type: 'ok' | 'fail' | 'info' | 'open';
  invokeNs: number;
  completeNs?: number;
  error?: string;
}

export interface Completion {
  type: 'ok' | 'fail' | 'info';
  value: unknown;
  error?: string;
  node?: number;
  /** See HistoryEvent.revision. */
  revision?: number;
  /** A read: the mod revision of the key-value it returned (report/diagnosis only). */
  modRevision?: number;
}

export interface OpHandle {
  readonly process: number | string;
  readonly f: string;
  readonly key?: string;
  readonly invokeNs: number;
  readonly session?: string;
}

/** Counts per f and outcome. */
export type OpCounts = Record<string, { ok: number; fail: number; info: number; open: number }>;

export class HistoryRecorder {
  readonly events: HistoryEvent[] = [];
  readonly ops: OpRecord[] = [];
  private readonly open = new Map<number | string, OpRecord>();
  private readonly startNs: bigint;
  /** When set, every event is also appended to this file as it happens (crash-safe). */
  private readonly streamPath: string | undefined;

  constructor(opts: { streamPath?: string; startNs?: bigint } = {}) {
    this.startNs = opts.startNs ?? process.hrtime.bigint();
    this.streamPath = opts.streamPath;
    if (this.streamPath) writeFileSync(this.streamPath, '');
  }

  nowNs(): number {
    return Number(process.hrtime.bigint() - this.startNs);
  }

  nowMs(): number {
    return this.nowNs() / 1e6;
  }

  private push(e: HistoryEvent): void {
    this.events.push(e);
    if (this.streamPath) appendFileSync(this.streamPath, `${JSON.stringify(e)}\n`);
  }

  /** Records the invocation; the process must have no open op. */
  invoke(process: number | string, f: string, value: unknown, key?: string, session?: string): OpHandle {
    if (this.open.has(process)) throw new Error(`process ${process} already has an open op`);
    const time = this.nowNs();
    const sess = session === undefined ? {} : { session };
    this.push({ process, type: 'invoke', f, ...(key === undefined ? {} : { key }), value, time, ...sess });
    const rec: OpRecord = { process, f, ...(key === undefined ? {} : { key }), type: 'open', invokeNs: time };
    this.open.set(process, rec);
    this.ops.push(rec);
    return { process, f, ...(key === undefined ? {} : { key }), invokeNs: time, ...sess };
  }

  /** Records the completion of `h`'s op. */
  complete(h: OpHandle, c: Completion): void {
    const rec = this.open.get(h.process);
    if (!rec || rec.invokeNs !== h.invokeNs) throw new Error(`process ${h.process} has no open op to complete`);
    this.open.delete(h.process);
    const time = this.nowNs();
    rec.type = c.type;
    rec.completeNs = time;
    if (c.error !== undefined) rec.error = c.error;
    this.push({
      process: h.process,
      type: c.type,
      f: h.f,
      ...(h.key === undefined ? {} : { key: h.key }),
      value: c.value,
      time,
      ...(c.error === undefined ? {} : { error: c.error }),
      ...(c.node === undefined ? {} : { node: c.node }),
      ...(c.revision === undefined || c.type !== 'ok' ? {} : { revision: c.revision }),
      ...(c.modRevision === undefined || c.type !== 'ok' ? {} : { modRevision: c.modRevision }),
      ...(h.session === undefined ? {} : { session: h.session }),
    });
  }

  /**
   * An observation outside the invoke/complete protocol (e.g. a watcher's delivered batch):
   * process "nemesis" type "info", so the checkers ignore it; `f` says what it is.
   */
  observe(f: string, value: unknown): void {
    this.push({ process: 'nemesis', type: 'info', f, value, time: this.nowNs() });
  }

  /** A nemesis event (process "nemesis", ignored by the checkers). */
  nemesis(f: string, value: unknown): void {
    this.push({ process: 'nemesis', type: 'info', f, value, time: this.nowNs() });
  }

  openCount(): number {
    return this.open.size;
  }

  counts(): OpCounts {
    const out: OpCounts = {};
    for (const op of this.ops) {
      const c = (out[op.f] ??= { ok: 0, fail: 0, info: 0, open: 0 });
      c[op.type]++;
    }
    return out;
  }

  toJsonl(): string {
    return this.events.map((e) => JSON.stringify(e)).join('\n') + (this.events.length ? '\n' : '');
  }

  /** Ops still open (e.g. when the run was interrupted) become `info`, as in Jepsen. */
  closeOpen(reason: string): void {
    for (const rec of [...this.open.values()]) this.complete(rec, { type: 'info', value: null, error: reason });
  }
}

/** Total ok/fail/info over every f. */
export function totals(c: OpCounts): { ok: number; fail: number; info: number; open: number } {
  const t = { ok: 0, fail: 0, info: 0, open: 0 };
  for (const v of Object.values(c)) {
    t.ok += v.ok;
    t.fail += v.fail;
    t.info += v.info;
    t.open += v.open;
  }
  return t;
}
