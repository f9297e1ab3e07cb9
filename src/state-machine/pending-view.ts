// The state as seen from inside one apply batch: LevelDB's committed state plus the writes
// of earlier commands in the same batch, so entry N+1 sees entry N although nothing has been
// written yet. Collects the batch ops as it goes.

import type { BatchOp, NodeDb } from '../storage/node-db.js';
import type { LatestRecordCache } from './latest-cache.js';
import { contenderPrefixOf, type LockQueueCache } from './lock-queues.js';
import { prefixEndOf } from '../wire/prefix.js';
import { latin1Of } from '../storage/codec-bytes.js';
import { decodeRecord, encodeEvent, encodeRecord, escapeKey, historyKey, indexKey, latestKey, latestKeyEnd, userKeyOf, type EventKind, type KvRecord } from './keys.js';

/** Latin-1 maps bytes 1:1 to UTF-16 code units, so string order equals byte order. */
export function mapKey(userKey: Uint8Array): string {
  return latin1Of(userKey);
}

/** An index entry's value is its event kind; LevelDB copies it, so one constant per kind serves. */
const INDEX_VALUES: Record<EventKind, Uint8Array> = { 0: Uint8Array.of(0), 1: Uint8Array.of(1) };

export interface KeyRecord {
  key: Uint8Array;
  record: KvRecord;
}

/** A change recorded in this batch (history event + index entry), for compaction in the same batch. */
export interface PendingEvent {
  revision: number;
  sub: number;
  kind: EventKind;
  /** Escaped user key (keys.ts escapeKey). */
  esc: Uint8Array;
}

export class PendingView {
  /** User key (latin1) -> record, or null for deleted within this batch. */
  private readonly overlay = new Map<string, { key: Uint8Array; record: KvRecord | null }>();
  readonly ops: BatchOp[] = [];
  /** Raw state-machine keys (latin1) written in this batch: value, or null for deleted. */
  private readonly raw = new Map<string, Uint8Array | null>();
  /** Every change recorded in this batch, in order. */
  readonly events: PendingEvent[] = [];

  constructor(
    private readonly db: NodeDb,
    private readonly cache?: LatestRecordCache,
    private readonly locks?: LockQueueCache,
  ) {}

  get(userKey: Uint8Array): KvRecord | undefined {
    const mk = mapKey(userKey);
    const o = this.overlay.get(mk);
    if (o) return o.record ?? undefined;
    return readLatest(this.db, this.cache, userKey, mk);
  }

  /**
   * Copies this batch's latest records into `cache` (and `locks`); call once the batch is
   * written. Returns the keys (latin-1) this batch deleted.
   */
  publish(cache: LatestRecordCache, locks?: LockQueueCache): string[] {
    const deleted: string[] = [];
    for (const [mk, o] of this.overlay) {
      cache.set(mk, o.record && ownValue(o.record));
      locks?.published(mk, o.record !== null);
      if (o.record === null) deleted.push(mk);
    }
    return deleted;
  }

  put(userKey: Uint8Array, record: KvRecord): void {
    this.overlay.set(mapKey(userKey), { key: userKey, record });
    this.ops.push({ type: 'put', key: latestKey(userKey), value: encodeRecord(record) });
  }

  del(userKey: Uint8Array): void {
    this.overlay.set(mapKey(userKey), { key: userKey, record: null });
    this.ops.push({ type: 'del', key: latestKey(userKey) });
  }

  /** Raw op with no effect on reads (meta, extra ops). */
  push(op: BatchOp): void {
    this.ops.push(op);
  }

  /** Records one change of `userKey` at (revision, sub): history event + per-key index entry. */
  recordEvent(revision: number, sub: number, kind: EventKind, userKey: Uint8Array, record: KvRecord | undefined): void {
    const esc = escapeKey(userKey);
    this.ops.push({ type: 'put', key: historyKey(revision, sub), value: encodeEvent(kind, userKey, record) });
    this.ops.push({ type: 'put', key: indexKey(esc, revision, sub), value: INDEX_VALUES[kind] });
    this.events.push({ revision, sub, kind, esc });
  }

  /** A raw state-machine key as this batch sees it (dedup records, compaction marker). */
  getRaw(key: Uint8Array): Uint8Array | undefined {
    const o = this.raw.get(mapKey(key));
    if (o !== undefined) return o ?? undefined;
    return this.db.getSync(key);
  }

  putRaw(key: Uint8Array, value: Uint8Array): void {
    this.raw.set(mapKey(key), value);
    this.ops.push({ type: 'put', key, value });
  }

  /** A raw delete that nothing in this batch reads back (compaction's history and index entries). */
  delUnread(key: Uint8Array): void {
    this.ops.push({ type: 'del', key });
  }

  delRaw(key: Uint8Array): void {
    this.raw.set(mapKey(key), null);
    this.ops.push({ type: 'del', key });
  }

  /**
   * The live contender keys `<prefix><16 lowercase hex>` of one lock (prefix = `<name>/`), in
   * no particular order: the published queue from the lock-queue cache (read from LevelDB on a
   * miss) with this batch's changes on top.
   */
  async contenderKeys(prefix: Uint8Array): Promise<Uint8Array[]> {
    const pmk = mapKey(prefix);
    const found = new Map<string, Uint8Array | null>();
    const cached = this.locks?.get(pmk);
    if (cached) {
      for (const mk of cached) found.set(mk, null);
    } else {
      const token = this.locks?.fillToken() ?? 0;
      const mks: string[] = [];
      for await (const k of this.db.keys({ gte: latestKey(prefix), lt: latestKeyEnd(prefixEndOf(prefix)) })) {
        const key = userKeyOf(k);
        const mk = mapKey(key);
        if (contenderPrefixOf(mk) !== pmk) continue;
        mks.push(mk);
        found.set(mk, key);
      }
      this.locks?.fill(pmk, mks, token);
    }
    for (const [mk, o] of this.overlay) {
      if (!mk.startsWith(pmk) || contenderPrefixOf(mk) !== pmk) continue;
      if (o.record) found.set(mk, o.key);
      else found.delete(mk);
    }
    return [...found].map(([mk, key]) => key ?? Buffer.from(mk, 'latin1'));
  }

  /** Every live key in [start, end) (end empty = unbounded), in key order. */
  async range(start: Uint8Array, end: Uint8Array | undefined): Promise<KeyRecord[]> {
    const found = new Map<string, KeyRecord>();
    for await (const [k, v] of this.db.iterator({ gte: latestKey(start), lt: latestKeyEnd(end) })) {
      const key = userKeyOf(k);
      found.set(mapKey(key), { key, record: decodeRecord(v) });
    }
    if (this.overlay.size > 0) {
      const lo = mapKey(start);
      const hi = end && end.length > 0 ? mapKey(end) : undefined;
      for (const [mk, o] of this.overlay) {
        if (mk < lo || (hi !== undefined && mk >= hi)) continue;
        if (o.record) found.set(mk, { key: o.key, record: o.record });
        else found.delete(mk);
      }
    }
    return [...found.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((e) => e[1]);
  }
}

/** A key's latest published record: from the cache, else LevelDB (then cached). */
export function readLatest(db: NodeDb, cache: LatestRecordCache | undefined, userKey: Uint8Array, mk = mapKey(userKey)): KvRecord | undefined {
  const hit = cache?.get(mk);
  if (hit !== undefined) return hit ?? undefined;
  const raw = db.getSync(latestKey(userKey));
  const r = raw ? decodeRecord(raw) : undefined;
  cache?.set(mk, r ?? null);
  return r;
}

/**
 * The record with a value that owns its bytes: a value decoded from a request or a peer's
 * batch is a view into that whole message, which a cached record would otherwise keep alive.
 */
function ownValue(r: KvRecord): KvRecord {
  const v = r.value;
  // protobufjs gives an unset bytes field its default: an empty array, not a Uint8Array.
  if (!(v instanceof Uint8Array)) return { ...r, value: Buffer.from(v as ArrayLike<number>) };
  if (v.byteOffset === 0 && v.byteLength === v.buffer.byteLength) return r;
  // Unpooled: a small Buffer from the shared pool would keep its 8 KiB slab alive instead.
  const own = Buffer.allocUnsafeSlow(v.byteLength);
  own.set(v);
  return { ...r, value: own };
}
