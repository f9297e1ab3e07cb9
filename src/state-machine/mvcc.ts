// MVCC: reads at a past revision and compaction, over the per-key revision index `s r` and
// the history `s h` (layout in keys.ts).
//
// Compaction to revision C keeps exactly what a read at any revision >= C can see: for every
// key, the changes at revisions >= C, plus its newest change below C if that change is a put
// (a read at C sees it). Everything else below C (older puts, and a delete that is the newest
// change below C) is removed from both the index and the history. A read below C is refused
// with CompactedError. Compaction is incremental: only keys changed since the previous
// compacted revision can have anything new to remove.

import type { KeyValue, RangeRequest, RangeResponse } from '../wire/kv-proto.js';
import { compareBytes, latin1Of } from '../storage/codec-bytes.js';
import type { NodeDb } from '../storage/node-db.js';
import { CompactedError } from './errors.js';
import {
  decodeEvent,
  escapeKey,
  EventKind,
  historyKey,
  historyKeyParts,
  INDEX_KEY_END,
  indexKey,
  indexKeyParts,
  MAX_SUB,
} from './keys.js';
import type { PendingView } from './pending-view.js';

/** Same bound as a current range (execute.ts MAX_RANGE_RESULTS), duplicated to avoid a cycle. */
const MAX_RANGE_RESULTS = 10_000;

/** Where one change of a key lives: its escaped key and (revision, sub). */
export interface SurvivorPointer {
  esc: Uint8Array;
  revision: number;
  sub: number;
}
type Pointer = SurvivorPointer;

/** The key-value a history event shows at its revision (throws CompactedError if it is gone). */
function kvAt(db: NodeDb, p: Pointer, readRevision: number, compactRevision: () => number, keysOnly: boolean | undefined): KeyValue {
  const raw = db.getSync(historyKey(p.revision, p.sub));
  // Only a compaction that ran after our index snapshot can remove an event we found: it
  // compacted past the read revision.
  if (!raw) throw new CompactedError(readRevision, Math.max(compactRevision(), readRevision + 1));
  const ev = decodeEvent(raw);
  return { key: ev.key, value: keysOnly ? new Uint8Array(0) : ev.value, createRevision: ev.createRevision, modRevision: p.revision, version: ev.version };
}

/**
 * Range at `revision` (already checked to lie in [compactRevision, current]): the keys of
 * [key, rangeEnd) as they were right after `revision` was applied.
 */
export async function rangeAt(db: NodeDb, req: RangeRequest, revision: number, compactRevision: () => number): Promise<RangeResponse> {
  const key = req.key;
  const limit = req.limit && req.limit > 0 ? Math.min(req.limit, MAX_RANGE_RESULTS) : MAX_RANGE_RESULTS;
  const live: Pointer[] = [];
  const end = req.rangeEnd;
  if (!end || end.length === 0) {
    const esc = escapeKey(key);
    for await (const [k, v] of db.iterator({ gte: indexKey(esc), lte: indexKey(esc, revision, MAX_SUB), reverse: true, limit: 1 })) {
      const p = indexKeyParts(k);
      if (v[0] === EventKind.Put) live.push({ esc, revision: p.revision, sub: p.sub });
    }
  } else {
    const upper = end.length === 1 && end[0] === 0 ? INDEX_KEY_END : indexKey(escapeKey(end));
    if (upper !== INDEX_KEY_END && compareBytes(end, key) <= 0) return { kvs: [], more: false, count: 0 };
    let group: Uint8Array | undefined;
    let best: (Pointer & { kind: number }) | undefined;
    const flush = () => {
      if (best && best.kind === EventKind.Put) live.push(best);
      best = undefined;
    };
    for await (const [k, v] of db.iterator({ gte: indexKey(escapeKey(key)), lt: upper })) {
      const p = indexKeyParts(k);
      if (!group || compareBytes(group, p.esc) !== 0) {
        flush();
        group = p.esc.slice();
      }
      if (p.revision <= revision) best = { esc: group, revision: p.revision, sub: p.sub, kind: v[0]! };
    }
    flush();
  }
  const page = req.countOnly ? [] : live.slice(0, limit);
  const kvs = page.map((p) => kvAt(db, p, revision, compactRevision, req.keysOnly));
  return { kvs, more: !req.countOnly && live.length > limit, count: live.length };
}

/** The key's value at `revision`, or undefined if it did not exist then. */
export async function getAt(db: NodeDb, key: Uint8Array, revision: number, compactRevision: () => number): Promise<KeyValue | undefined> {
  const r = await rangeAt(db, { key }, revision, compactRevision);
  return r.kvs[0];
}

/** An index entry: where a key's change at (revision, sub) lives, and whether it was a put or a delete. */
interface Change extends Pointer {
  kind: number;
}

/** Read-ahead of compaction's history scan, bytes. */
const HISTORY_SCAN_BYTES = 4 * 1024 * 1024;

/** Index scans in flight at once for keys the survivor cache does not know. */
const INDEX_SCAN_CONCURRENCY = 64;

/** Upper bound on keys the survivor cache remembers; misses fall back to an index scan. */
export const DEFAULT_SURVIVOR_CACHE_KEYS = 1_000_000;

/**
 * Per key (latin1 of its escaped form): the one index entry that survives below the compacted
 * revision (the key's newest change below it, always a put), or null when none does. Compaction
 * needs it for every key changed since the previous compaction; finding it in LevelDB takes
 * an async iterator per key, which stalled the apply pipeline for tens of ms every
 * `compactEveryRevisions` writes. A cache of derivable state (misses are looked up), so the
 * result never depends on it; updated only when the apply batch that compacted is written.
 */
export class SurvivorCache {
  private readonly map = new Map<string, Pointer | null>();

  constructor(readonly maxKeys: number = DEFAULT_SURVIVOR_CACHE_KEYS) {
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 0) throw new RangeError(`survivor cache size must be >= 0 keys, got ${maxKeys}`);
  }

  get(id: string): Pointer | null | undefined {
    return this.map.get(id);
  }

  /** Applies what a written batch's compactions found. */
  publish(found: Map<string, Pointer | null>): void {
    for (const [id, p] of found) {
      this.map.delete(id);
      this.map.set(id, p);
    }
    for (const id of this.map.keys()) {
      if (this.map.size <= this.maxKeys) break;
      this.map.delete(id);
    }
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}

/**
 * Adds to `view` the ops that compact from `from` (the previous compacted revision) to `to`
 * (> from, <= the current revision). Reads the committed state AND the changes recorded
 * earlier in this batch, so the result does not depend on how entries were batched.
 * `found` collects each touched key's new survivor (see SurvivorCache); pass the same map to
 * every compaction of one batch and publish it once the batch is written.
 */
export async function compact(
  db: NodeDb,
  view: PendingView,
  from: number,
  to: number,
  survivors?: SurvivorCache,
  found: Map<string, Pointer | null> = new Map(),
): Promise<{ removed: number }> {
  // Keys changed in [from, to], with those changes: only they can have entries that became
  // unreadable. Entries below `from` were compacted already except each key's survivor.
  const touched = new Map<string, { esc: Uint8Array; changes: Change[] }>();
  const touch = (esc: Uint8Array, id: string = latin1Of(esc)): Change[] => {
    let t = touched.get(id);
    if (!t) touched.set(id, (t = { esc, changes: [] }));
    return t.changes;
  };
  // One compaction round reads ~compactEveryRevisions events: fetch them in one or two trips to
  // LevelDB's thread pool rather than the default 16 KiB at a time (each trip stalls the apply).
  for await (const [k, v] of db.iterator({ gte: historyKey(Math.max(from, 0), 0), lte: historyKey(to, MAX_SUB), highWaterMarkBytes: HISTORY_SCAN_BYTES })) {
    const ev = decodeEvent(v);
    const esc = escapeKey(ev.key);
    const { revision, sub } = historyKeyParts(k);
    touch(esc).push({ esc, revision, sub, kind: ev.kind });
  }
  const pendingByKey = new Map<string, Change[]>();
  for (const e of view.events) {
    if (e.revision > to) continue;
    const id = latin1Of(e.esc);
    let list = pendingByKey.get(id);
    if (!list) pendingByKey.set(id, (list = []));
    list.push({ esc: e.esc, revision: e.revision, sub: e.sub, kind: e.kind });
    if (e.revision >= from) touch(e.esc, id);
  }
  const ids = [...touched.keys()].sort();
  // Keys whose survivor is not known: read their index entries, many at a time (each read is
  // a round trip to LevelDB's thread pool; one after another they stalled the apply).
  const scanned = new Map<string, Change[]>();
  const misses = ids.filter((id) => (found.has(id) ? found.get(id) : survivors?.get(id)) === undefined);
  for (let i = 0; i < misses.length; i += INDEX_SCAN_CONCURRENCY) {
    await Promise.all(
      misses.slice(i, i + INDEX_SCAN_CONCURRENCY).map(async (id) => {
        const esc = touched.get(id)!.esc;
        const entries: Change[] = [];
        for await (const [k, v] of db.iterator({ gte: indexKey(esc), lte: indexKey(esc, to, MAX_SUB) })) {
          const p = indexKeyParts(k);
          entries.push({ esc, revision: p.revision, sub: p.sub, kind: v[0]! });
        }
        scanned.set(id, entries);
      }),
    );
  }
  let removed = 0;
  for (const id of ids) {
    const { esc, changes } = touched.get(id)!;
    const known = found.has(id) ? found.get(id) : survivors?.get(id);
    let entries: Change[];
    if (known !== undefined) entries = known ? [{ ...known, kind: EventKind.Put }, ...changes] : [...changes];
    else entries = scanned.get(id)!;
    entries.push(...(pendingByKey.get(id) ?? []));
    if (entries.length === 0) continue;
    entries.sort((a, b) => a.revision - b.revision || a.sub - b.sub);
    const unique = entries.filter((e, i) => i === 0 || e.revision !== entries[i - 1]!.revision || e.sub !== entries[i - 1]!.sub);
    const latest = unique[unique.length - 1]!;
    for (const e of unique) {
      if (e.revision >= to) continue;
      if (e === latest && e.kind === EventKind.Put) continue;
      view.delUnread(indexKey(esc, e.revision, e.sub));
      view.delUnread(historyKey(e.revision, e.sub));
      removed++;
    }
    found.set(id, latest.revision < to && latest.kind === EventKind.Put ? { esc, revision: latest.revision, sub: latest.sub } : null);
  }
  return { removed };
}
