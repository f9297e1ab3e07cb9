// Reads the MVCC change history (`s h <rev><sub>`) in revision order, for watches. A chunk
// always ends on a revision boundary, so a watcher that resumes at "last revision + 1" never
// misses the rest of a half-delivered revision.

import type { KeyValue } from '../wire/kv-proto.js';
import type { NodeDb } from '../storage/node-db.js';
import { decodeEvent, EventKind, historyKey, historyKeyParts } from './keys.js';

export interface ChangeEvent {
  type: 'put' | 'delete';
  revision: number;
  /** For a delete: the key, modRevision = the deleting revision, empty value. */
  kv: KeyValue;
}

/**
 * Events with revision in [fromRevision, toRevision], at most about `maxEvents` (more only when
 * one revision alone holds more), ending on a revision boundary.
 */
export async function readChanges(db: NodeDb, fromRevision: number, toRevision: number, maxEvents: number): Promise<ChangeEvent[]> {
  if (fromRevision > toRevision) return [];
  const out = await scan(db, fromRevision, toRevision, maxEvents + 1);
  if (out.length <= maxEvents) return out;
  const cut = out[maxEvents]!.revision;
  const whole = out.filter((e) => e.revision < cut);
  if (whole.length > 0) return whole;
  // A single revision larger than maxEvents: deliver it whole.
  return scan(db, cut, cut, Number.MAX_SAFE_INTEGER);
}

async function scan(db: NodeDb, from: number, to: number, limit: number): Promise<ChangeEvent[]> {
  const out: ChangeEvent[] = [];
  for await (const [k, v] of db.iterator({ gte: historyKey(from, 0), lt: historyKey(to + 1, 0), limit })) {
    const { revision } = historyKeyParts(k);
    const ev = decodeEvent(v);
    const kv: KeyValue = ev.kind === EventKind.Put
      ? { key: ev.key, value: ev.value, createRevision: ev.createRevision, modRevision: revision, version: ev.version }
      : { key: ev.key, value: new Uint8Array(0), createRevision: 0, modRevision: revision, version: 0 };
    out.push({ type: ev.kind === EventKind.Put ? 'put' : 'delete', revision, kv });
  }
  return out;
}
