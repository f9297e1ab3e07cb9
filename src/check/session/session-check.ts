// Session guarantees from a history whose ops carry revisions (the revision a write produced,
// the revision of the state a read reflects), per key:
//
// - monotonic reads: within a session, the revision of completed reads never goes backwards;
// - read-your-writes: a read invoked after the session's own write completed reflects a
//   revision at least that write's;
// - value consistency: a read of revision R returns the value of the newest acknowledged
//   write with revision <= R (or, if that write's revision is unknown, a value someone wrote);
//   null only when no acknowledged write to the key has revision <= R.
//
// A session is the op's `session` field when present, else its process. Ops without a
// revision cannot be judged on the first two rules and are skipped there (and counted).

import type { History, Op } from '../history.js';

export interface SessionViolation {
  kind: 'monotonic-reads' | 'read-your-writes' | 'wrong-value' | 'unknown-value';
  session: string;
  key: string;
  /** History index of the offending read's completion. */
  index: number;
  message: string;
}

export interface SessionResult {
  valid: boolean;
  violations: SessionViolation[];
  readsChecked: number;
  writesSeen: number;
  /** Reads without a revision (only value consistency was skipped for them too). */
  readsWithoutRevision: number;
}

interface Write {
  value: unknown;
  revision?: number;
  session: string;
  /** Position of the completion in the history. */
  completedAt: number;
}

interface ReadOp {
  key: string;
  value: unknown;
  revision?: number;
  session: string;
  invokedAt: number;
  completedAt: number;
}

const READ_FS = new Set(['read', 'get']);
const WRITE_FS = new Set(['write', 'put']);

function sessionOf(op: Op): string {
  return op.session ?? String(op.process);
}

function revisionOf(op: Op): number | undefined {
  return op.revision;
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Pairs invokes with completions by process, in history order. */
function collect(history: History): { reads: ReadOp[]; writes: Map<string, Write[]>; possibleValues: Map<string, unknown[]> } {
  const open = new Map<string, { op: Op; at: number }>();
  const reads: ReadOp[] = [];
  const writes = new Map<string, Write[]>();
  const possibleValues = new Map<string, unknown[]>();
  history.forEach((op, at) => {
    const proc = String(op.process);
    if (op.type === 'invoke') {
      open.set(proc, { op, at });
      if (WRITE_FS.has(op.f)) {
        const key = op.key ?? '';
        (possibleValues.get(key) ?? possibleValues.set(key, []).get(key)!).push(op.value);
      }
      return;
    }
    const inv = open.get(proc);
    open.delete(proc);
    if (!inv || op.type !== 'ok') return;
    const key = op.key ?? inv.op.key ?? '';
    if (READ_FS.has(op.f)) {
      reads.push({ key, value: op.value, revision: revisionOf(op), session: sessionOf(op), invokedAt: inv.at, completedAt: at });
    } else if (WRITE_FS.has(op.f)) {
      (writes.get(key) ?? writes.set(key, []).get(key)!).push({ value: inv.op.value, revision: revisionOf(op), session: sessionOf(op), completedAt: at });
    }
  });
  return { reads, writes, possibleValues };
}

export function checkSessions(history: History): SessionResult {
  const { reads, writes, possibleValues } = collect(history);
  const violations: SessionViolation[] = [];
  const lastReadRevision = new Map<string, { revision: number; index: number }>();
  let withoutRevision = 0;
  for (const r of reads) {
    const keyWrites = writes.get(r.key) ?? [];
    if (r.revision === undefined) {
      withoutRevision++;
    } else {
      checkMonotonic(r, r.revision, lastReadRevision, violations);
      checkReadYourWrites(r, r.revision, keyWrites, violations);
    }
    checkValue(r, keyWrites, possibleValues.get(r.key) ?? [], violations);
  }
  let writesSeen = 0;
  for (const w of writes.values()) writesSeen += w.length;
  return { valid: violations.length === 0, violations, readsChecked: reads.length, writesSeen, readsWithoutRevision: withoutRevision };
}

function checkMonotonic(r: ReadOp, revision: number, last: Map<string, { revision: number; index: number }>, out: SessionViolation[]): void {
  const prev = last.get(r.session);
  if (prev && revision < prev.revision) {
    out.push({
      kind: 'monotonic-reads',
      session: r.session,
      key: r.key,
      index: r.completedAt,
      message: `session ${r.session} read revision ${revision} after already reading revision ${prev.revision} (history index ${prev.index})`,
    });
  }
  if (!prev || revision > prev.revision) last.set(r.session, { revision, index: r.completedAt });
}

function checkReadYourWrites(r: ReadOp, revision: number, keyWrites: Write[], out: SessionViolation[]): void {
  let own: Write | undefined;
  for (const w of keyWrites) {
    if (w.session !== r.session || w.completedAt > r.invokedAt || w.revision === undefined) continue;
    if (!own || w.revision! > own.revision!) own = w;
  }
  if (own && revision < own.revision!) {
    out.push({
      kind: 'read-your-writes',
      session: r.session,
      key: r.key,
      index: r.completedAt,
      message: `session ${r.session} read key ${r.key} at revision ${revision}, older than its own write of ${JSON.stringify(own.value)} at revision ${own.revision}`,
    });
  }
}

function checkValue(r: ReadOp, keyWrites: Write[], possible: unknown[], out: SessionViolation[]): void {
  const known = keyWrites.filter((w) => w.revision !== undefined && (r.revision === undefined || w.revision <= r.revision));
  if (r.value === null || r.value === undefined) {
    if (r.revision !== undefined && known.length > 0) {
      const first = known.reduce((a, b) => (a.revision! < b.revision! ? a : b));
      out.push({
        kind: 'wrong-value',
        session: r.session,
        key: r.key,
        index: r.completedAt,
        message: `read of key ${r.key} at revision ${r.revision} returned nothing, but ${JSON.stringify(first.value)} was written at revision ${first.revision}`,
      });
    }
    return;
  }
  if (!possible.some((v) => sameValue(v, r.value))) {
    out.push({ kind: 'unknown-value', session: r.session, key: r.key, index: r.completedAt, message: `read of key ${r.key} returned ${JSON.stringify(r.value)}, which no one wrote` });
    return;
  }
  if (r.revision === undefined) return;
  // A value whose write has no known revision may sit anywhere: it cannot be placed. Otherwise
  // it must be the newest acknowledged write at or below R, and not from after R.
  const writtenAt = keyWrites.find((w) => sameValue(w.value, r.value))?.revision;
  if (writtenAt === undefined) return;
  const newest = known.length > 0 ? known.reduce((a, b) => (a.revision! > b.revision! ? a : b)) : undefined;
  if (writtenAt <= r.revision && (!newest || writtenAt >= newest.revision!)) return;
  const why = writtenAt > r.revision ? `a write from after that revision` : `but ${JSON.stringify(newest!.value)} was written at revision ${newest!.revision}`;
  out.push({
    kind: 'wrong-value',
    session: r.session,
    key: r.key,
    index: r.completedAt,
    message: `read of key ${r.key} at revision ${r.revision} returned ${JSON.stringify(r.value)} (written at revision ${writtenAt}), ${why}`,
  });
}
