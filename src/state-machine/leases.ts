// Leases in the replicated state machine. The state holds only what every replica can agree
// on: which leases exist, their granted TTL, and which keys are attached to each. It holds NO
// deadline: time is the leader's business (src/server/lease-keeper.ts), which proposes a
// LeaseExpire command when a lease runs out; applying it (or a Revoke) deletes every attached
// key at ONE new revision, on every replica alike.
//
// Layout (prefix 's', beside keys.ts):
//   s l <id u64>        lease record: granted TTL seconds u64
//   s a <user key>      attachment: lease id u64 (absent = no lease)
// Both are loaded into memory at open (and rebuilt from a snapshot's records), so a put asks
// "was this key attached?" without a disk read, and a revoke knows its keys even when they
// were attached earlier in the same apply batch.

import { latin1Of, readU64 } from '../storage/codec-bytes.js';
import { PREFIX_STATE_MACHINE, type NodeDb } from '../storage/node-db.js';
import { MAX_LEASE_TTL_SECONDS, type LeaseGrantRequest, type LeaseGrantResponse, type LeaseRevokeResponse } from '../wire/kv-proto.js';
import { EventKind, encodeU64 } from './keys.js';
import type { PendingView } from './pending-view.js';

export { MAX_LEASE_TTL_SECONDS };

const LEASE_TAG = 0x6c; // 'l'
const ATTACH_TAG = 0x61; // 'a'
export const LEASE_KEY_MIN = Uint8Array.of(PREFIX_STATE_MACHINE, LEASE_TAG);
export const LEASE_KEY_END = Uint8Array.of(PREFIX_STATE_MACHINE, LEASE_TAG + 1);
export const ATTACH_KEY_MIN = Uint8Array.of(PREFIX_STATE_MACHINE, ATTACH_TAG);
export const ATTACH_KEY_END = Uint8Array.of(PREFIX_STATE_MACHINE, ATTACH_TAG + 1);

/** Lease ids are positive and below 2^53 (JS numbers on the wire). */
export const MAX_LEASE_ID = Number.MAX_SAFE_INTEGER;

export function leaseKey(id: number): Uint8Array {
  const k = new Uint8Array(10);
  k[0] = PREFIX_STATE_MACHINE;
  k[1] = LEASE_TAG;
  k.set(encodeU64(id), 2);
  return k;
}

export function attachKey(userKey: Uint8Array): Uint8Array {
  const k = new Uint8Array(2 + userKey.length);
  k[0] = PREFIX_STATE_MACHINE;
  k[1] = ATTACH_TAG;
  k.set(userKey, 2);
  return k;
}

/** The inverse of latin1Of (map keys are latin-1: one char per byte, string order = byte order). */
function unmk(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'latin1'));
}

export interface LeaseInfo {
  id: number;
  ttl: number;
}

interface LeaseState {
  ttl: number;
  keys: Set<string>;
}

/** Thrown for a lease command the state refuses (mapped to ApplyResult 'rejected' / 'invalid'). */
export class LeaseRejection extends Error {
  constructor(
    readonly reason: 'lease-not-found' | 'lease-exists' | 'lease-ttl-too-large' | 'invalid',
    message: string,
  ) {
    super(message);
    this.name = 'LeaseRejection';
  }
}

export class LeaseTable {
  private readonly leases = new Map<number, LeaseState>();
  private readonly keyLease = new Map<string, number>();
  /** Inverse operations of the current apply batch (undone on abort). */
  private undo: Array<() => void> = [];
  /** Bumped whenever the set of leases changes (the lease keeper reconciles on change). */
  private epochValue = 0;

  static async load(db: NodeDb): Promise<LeaseTable> {
    const t = new LeaseTable();
    for await (const [k, v] of db.iterator({ gte: LEASE_KEY_MIN, lt: LEASE_KEY_END })) t.leases.set(readU64(k, 2), { ttl: readU64(v, 0), keys: new Set() });
    for await (const [k, v] of db.iterator({ gte: ATTACH_KEY_MIN, lt: ATTACH_KEY_END })) t.loadAttachment(k.slice(2), readU64(v, 0));
    return t;
  }

  /** Rebuilt from a snapshot's records (every `s` key/value, in key order). */
  static fromRecords(records: Iterable<{ key: Uint8Array; value: Uint8Array }>): LeaseTable {
    const t = new LeaseTable();
    const attachments: Array<[Uint8Array, number]> = [];
    for (const r of records) {
      if (r.key.length === 10 && r.key[0] === PREFIX_STATE_MACHINE && r.key[1] === LEASE_TAG) t.leases.set(readU64(r.key, 2), { ttl: readU64(r.value, 0), keys: new Set() });
      else if (r.key[0] === PREFIX_STATE_MACHINE && r.key[1] === ATTACH_TAG) attachments.push([r.key.slice(2), readU64(r.value, 0)]);
    }
    for (const [k, id] of attachments) t.loadAttachment(k, id);
    return t;
  }

  private loadAttachment(userKey: Uint8Array, id: number): void {
    const l = this.leases.get(id);
    if (!l) return; // dangling (cannot happen: revoke deletes attachments in the same batch)
    l.keys.add(latin1Of(userKey));
    this.keyLease.set(latin1Of(userKey), id);
  }

  /** Replaces this table's contents with another's (snapshot restore). */
  replaceWith(other: LeaseTable): void {
    this.leases.clear();
    this.keyLease.clear();
    for (const [id, l] of other.leases) this.leases.set(id, { ttl: l.ttl, keys: new Set(l.keys) });
    for (const [k, id] of other.keyLease) this.keyLease.set(k, id);
    this.undo = [];
    this.epochValue++;
  }

  // ---- batch bookkeeping (like DedupTable)

  begin(): void {
    this.undo = [];
  }
  commit(): void {
    this.undo = [];
  }
  abort(): void {
    for (let i = this.undo.length - 1; i >= 0; i--) this.undo[i]!();
    this.undo = [];
  }

  // ---- queries (applied state, plus the current batch while applying)

  get epoch(): number {
    return this.epochValue;
  }
  get size(): number {
    return this.leases.size;
  }
  has(id: number): boolean {
    return this.leases.has(id);
  }
  ttlOf(id: number): number | undefined {
    return this.leases.get(id)?.ttl;
  }
  /** Every lease, by id. */
  list(): LeaseInfo[] {
    return [...this.leases.entries()].map(([id, l]) => ({ id, ttl: l.ttl })).sort((a, b) => a.id - b.id);
  }
  /** Keys attached to a lease, in byte order. */
  keysOf(id: number): Uint8Array[] {
    const l = this.leases.get(id);
    return l ? [...l.keys].sort().map(unmk) : [];
  }
  leaseOfKey(userKey: Uint8Array): number {
    return this.keyLease.get(latin1Of(userKey)) ?? 0;
  }

  // ---- mutations (inside an apply batch; every one records its inverse)

  /** Attaches `userKey` to lease `id` (0 = detach). The caller checked that the lease exists. */
  setKeyLease(view: PendingView, userKey: Uint8Array, id: number): void {
    const s = latin1Of(userKey);
    const old = this.keyLease.get(s) ?? 0;
    if (old === id) return;
    if (old !== 0) {
      this.leases.get(old)?.keys.delete(s);
      this.keyLease.delete(s);
      this.undo.push(() => {
        this.leases.get(old)?.keys.add(s);
        this.keyLease.set(s, old);
      });
    }
    if (id !== 0) {
      const l = this.leases.get(id);
      if (!l) throw new Error(`attach to unknown lease ${id}`);
      l.keys.add(s);
      this.keyLease.set(s, id);
      this.undo.push(() => {
        l.keys.delete(s);
        if (this.keyLease.get(s) === id) this.keyLease.delete(s);
      });
      view.putRaw(attachKey(userKey), encodeU64(id));
    } else view.delRaw(attachKey(userKey));
  }

  /**
   * Grant: `req.id` if given (must be unused), else the first unused id >= `entryIndex` (the
   * log index: the same on every replica). TTL in [1, MAX_LEASE_TTL_SECONDS].
   */
  grant(view: PendingView, req: LeaseGrantRequest, entryIndex: number, revision: number): LeaseGrantResponse {
    const ttl = Number(req.ttl ?? 0);
    if (!Number.isSafeInteger(ttl) || ttl < 1) throw new LeaseRejection('invalid', `lease TTL must be a positive number of seconds, got ${String(req.ttl)}`);
    if (ttl > MAX_LEASE_TTL_SECONDS) throw new LeaseRejection('lease-ttl-too-large', `lease TTL ${ttl} s is over maxLeaseTtlSeconds=${MAX_LEASE_TTL_SECONDS}`);
    let id = Number(req.id ?? 0);
    if (id !== 0) {
      if (!Number.isSafeInteger(id) || id < 1) throw new LeaseRejection('invalid', `lease id must be a positive integer below 2^53, got ${String(req.id)}`);
      if (this.leases.has(id)) throw new LeaseRejection('lease-exists', `lease ${id} already exists`);
    } else {
      id = Math.max(1, entryIndex);
      while (this.leases.has(id)) id++;
    }
    const state: LeaseState = { ttl, keys: new Set() };
    this.leases.set(id, state);
    this.epochValue++;
    this.undo.push(() => {
      if (this.leases.get(id) === state) this.leases.delete(id);
      this.epochValue++;
    });
    view.putRaw(leaseKey(id), encodeU64(ttl));
    return { header: { revision }, id, ttl };
  }

  /**
   * Revoke (or expire): deletes every attached key at `nextRevision` (one revision for all of
   * them, in key byte order), then the lease. Returns whether a revision was written.
   * Unknown lease: LeaseRejection('lease-not-found').
   */
  revoke(view: PendingView, id: number, nextRevision: number): { response: LeaseRevokeResponse; wrote: boolean } {
    const l = this.leases.get(id);
    if (!l) throw new LeaseRejection('lease-not-found', `lease ${id} not found`);
    const keys = [...l.keys].sort();
    let sub = 0;
    for (const s of keys) {
      const key = unmk(s);
      this.setKeyLease(view, key, 0);
      if (view.get(key)) {
        view.del(key);
        view.recordEvent(nextRevision, sub++, EventKind.Delete, key, undefined);
      }
    }
    this.leases.delete(id);
    this.epochValue++;
    this.undo.push(() => {
      this.leases.set(id, l);
      this.epochValue++;
    });
    view.delRaw(leaseKey(id));
    const wrote = sub > 0;
    return { response: { header: { revision: wrote ? nextRevision : nextRevision - 1 } }, wrote };
  }
}
