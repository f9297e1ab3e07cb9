// The exactly-once table: results of writes that carried an IdempotencyKey {client_id, seq},
// kept in the replicated state so every replica answers a retry the same way.
//
// THE RULE (deterministic: it depends only on the log, through revisions and counts, never
// on clocks). Per client_id the table keeps:
//   - `floor`: every seq below it is EXPIRED;
//   - `highest`: the highest seq ever applied;
//   - `lastUsed`: the revision after its last keyed command was applied;
//   - the stored results of at most `windowPerClient` seqs (the highest ones applied).
// A keyed command (client, seq) is then:
//   1. seq < floor                      -> refused, "idempotency key expired" (FAILED_PRECONDITION);
//                                         nothing is applied.
//   2. seq has a stored result          -> that FIRST result is returned again, nothing applied
//                                         (if the request differs from the first one under that
//                                         key: refused, "idempotency key reused").
//   3. otherwise                        -> applied, and its result (success OR refusal) stored.
// Storing a result beyond the window drops the lowest stored seq s and raises floor to s+1.
// Every `sweepEveryRevisions` revisions (when a write makes the revision a multiple of it):
//   - a client idle for >= `idleRevisions` (revision - lastUsed) loses its stored results and
//     keeps only a tombstone {floor = highest+1, highest, lastUsed}: any old seq is then
//     EXPIRED, newer seqs still work (a long-idle client may continue);
//   - a tombstone idle for >= `forgetRevisions` is deleted: the client id is then unknown and
//     treated as new. This is the one way a retry can apply twice: a retry sent more than
//     `forgetRevisions` revisions after its client's last keyed write. Clients must therefore
//     use a fresh, unique client_id per process/session and never retry that late.
// "Expired" and "never seen" are told apart by `floor` (and the tombstone): every seq at or
// below a seq whose result was dropped counts as expired, even one that never arrived; the
// error is the safe answer (not applied now), never a second apply.
//
// Memory: the client records (ids + a few numbers + the window's seqs) are held in memory; in
// LevelDB a client record (`s d`) holds only the numbers (28 bytes) and each stored result
// (`s e`, keyed by client and seq) is the record of its seq: the window's seqs are the result
// keys, read back from them on start and on a snapshot restore (a marker in place of the seq
// count says so). Writing the seqs into the client record, as before, rewrote a ~2 KiB record
// with every keyed write of a busy client. Records written that way still load (their seqs are
// checked against their result keys); a binary of that layout refuses the new records.
// Both are part of snapshots.

import * as crypto from 'node:crypto';
import type protobuf from 'protobufjs';
import { kvType, type IdempotencyKey } from '../wire/kv-proto.js';
import { CorruptRecordError, latin1Of, readU32, readU64, scratchBytes, writeU32, writeU64 } from '../storage/codec-bytes.js';
import type { NodeDb } from '../storage/node-db.js';
import type { CommandResponse } from './execute.js';
import { DEDUP_CLIENT_KEY_END, DEDUP_CLIENT_KEY_MIN, DEDUP_RESULT_KEY_END, DEDUP_RESULT_KEY_MIN, dedupClientKey, dedupResultKey, dedupResultKeyParts, escapeKey } from './keys.js';
import type { PendingView } from './pending-view.js';

export interface DedupPolicy {
  /** Stored results kept per client (the highest seqs). */
  windowPerClient: number;
  /** A client idle this many revisions keeps only a tombstone. */
  idleRevisions: number;
  /** A tombstone idle this many revisions (since the client's last use) is forgotten. */
  forgetRevisions: number;
  /** The idle sweep runs when a write makes the revision a multiple of this. */
  sweepEveryRevisions: number;
}

export const DEFAULT_DEDUP_POLICY: DedupPolicy = {
  windowPerClient: 256,
  idleRevisions: 1_000_000,
  forgetRevisions: 10_000_000,
  sweepEveryRevisions: 1_000,
};

/** Longest client_id accepted, in UTF-8 bytes. */
export const MAX_CLIENT_ID_BYTES = 256;

export type RejectReason =
  | 'idempotency-key-expired'
  | 'idempotency-key-reused'
  | 'compacted'
  | 'future-revision'
  | 'not-a-counter'
  | 'counter-overflow'
  // leases, locks (leases.ts, locks.ts)
  | 'lease-not-found'
  | 'lease-exists'
  | 'lease-ttl-too-large'
  | 'stale-fencing-token';

/** A result worth storing under a key: what the first apply answered. */
export type StoredResult = CommandResponse | { kind: 'invalid'; error: string } | { kind: 'rejected'; reason: RejectReason; error: string };

interface ClientState {
  floor: number;
  highest: number;
  lastUsed: number;
  /** Seqs with a stored result, ascending. */
  seqs: number[];
}

export type DedupLookup = { kind: 'new' } | { kind: 'replay'; result: StoredResult } | { kind: 'rejected'; reason: RejectReason; error: string };

const enc = new TextEncoder();
const HASH_BYTES = 16;

/** Fingerprint of the request under a key (the whole encoded command). */
export function requestHash(data: Uint8Array): Uint8Array {
  // One-shot crypto.hash (Node >= 20.12) skips the Hash object; same digest either way.
  const digest = typeof crypto.hash === 'function' ? crypto.hash('sha256', data, 'buffer') : crypto.createHash('sha256').update(data).digest();
  return digest.subarray(0, HASH_BYTES);
}

// ---------------------------------------------------------------- encodings

/**
 * In place of the inline seq count: "the seqs are the result keys". A binary that still expects
 * them inline reads it as a count whose record would be 32 GiB and refuses the record as
 * corrupt, instead of loading every client with an empty window (and applying retries again).
 */
const SEQS_IN_RESULT_KEYS = 0xffffffff;

/** floor, highest, lastUsed and the marker (the seqs live in the result keys). */
function encodeClient(c: ClientState): Uint8Array {
  const out = scratchBytes(28);
  writeU64(out, 0, c.floor);
  writeU64(out, 8, c.highest);
  writeU64(out, 16, c.lastUsed);
  writeU32(out, 24, SEQS_IN_RESULT_KEYS);
  return out;
}

/** A client record; `inline` when it lists its seqs itself (the layout before the marker). */
function decodeClient(b: Uint8Array): { st: ClientState; inline: boolean } {
  if (b.length < 28) throw new CorruptRecordError(`dedup client record of ${b.length} bytes`);
  const n = readU32(b, 24);
  const numbers = { floor: readU64(b, 0), highest: readU64(b, 8), lastUsed: readU64(b, 16) };
  if (n === SEQS_IN_RESULT_KEYS) {
    if (b.length !== 28) throw new CorruptRecordError(`dedup client record of ${b.length} bytes with its seqs in the result keys`);
    return { st: { ...numbers, seqs: [] }, inline: false };
  }
  if (b.length !== 28 + 8 * n) throw new CorruptRecordError(`dedup client record of ${b.length} bytes for ${n} seqs`);
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) seqs.push(readU64(b, 28 + 8 * i));
  return { st: { ...numbers, seqs }, inline: true };
}

const RESPONSE_TYPES: Record<CommandResponse['kind'], string> = {
  put: 'PutResponse',
  delete: 'DeleteResponse',
  txn: 'TxnResponse',
  counter: 'CounterResponse',
  compact: 'CompactResponse',
  'lease-grant': 'LeaseGrantResponse',
  'lease-revoke': 'LeaseRevokeResponse',
  'lease-expire': 'LeaseRevokeResponse',
  'lock-acquire': 'LockAcquireResponse',
};
// Append only: a stored result's tag is its index here.
const TAGS = ['put', 'delete', 'txn', 'counter', 'compact', 'invalid', 'rejected', 'lease-grant', 'lease-revoke', 'lease-expire', 'lock-acquire'] as const;

const types = new Map<string, protobuf.Type>();
function typeOf(name: string): protobuf.Type {
  let t = types.get(name);
  if (!t) types.set(name, (t = kvType(name)));
  return t;
}

function encodeResult(hash: Uint8Array, r: StoredResult): Uint8Array {
  let payload: Uint8Array;
  if (r.kind === 'invalid') payload = enc.encode(r.error);
  else if (r.kind === 'rejected') payload = enc.encode(JSON.stringify({ reason: r.reason, error: r.error }));
  else payload = typeOf(RESPONSE_TYPES[r.kind]).encode(r.response as protobuf.Message).finish();
  const out = scratchBytes(HASH_BYTES + 1 + payload.length);
  out.set(hash, 0);
  out[HASH_BYTES] = TAGS.indexOf(r.kind);
  out.set(payload, HASH_BYTES + 1);
  return out;
}

function decodeResult(b: Uint8Array): { hash: Uint8Array; result: StoredResult } {
  if (b.length < HASH_BYTES + 1) throw new CorruptRecordError(`dedup result of ${b.length} bytes`);
  const hash = b.subarray(0, HASH_BYTES);
  const kind = TAGS[b[HASH_BYTES]!];
  const payload = b.subarray(HASH_BYTES + 1);
  if (kind === undefined) throw new CorruptRecordError(`dedup result tag ${b[HASH_BYTES]}`);
  if (kind === 'invalid') return { hash, result: { kind, error: new TextDecoder().decode(payload) } };
  if (kind === 'rejected') {
    const j = JSON.parse(new TextDecoder().decode(payload)) as { reason: RejectReason; error: string };
    return { hash, result: { kind, reason: j.reason, error: j.error } };
  }
  const t = typeOf(RESPONSE_TYPES[kind]);
  const response = t.toObject(t.decode(payload), { arrays: true }) as never;
  return { hash, result: { kind, response } as StoredResult };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

// ---------------------------------------------------------------- the table

export class DedupTable {
  private committed = new Map<string, ClientState>();
  /** Changes of the batch being applied: client -> new state, or null = forgotten. */
  private working: Map<string, ClientState | null> | undefined;

  constructor(readonly policy: DedupPolicy) {}

  static async load(db: NodeDb, policy: DedupPolicy): Promise<DedupTable> {
    const t = new DedupTable(policy);
    const records = new Map<string, { st: ClientState; inline: boolean }>();
    for await (const [k, v] of db.iterator({ gte: DEDUP_CLIENT_KEY_MIN, lt: DEDUP_CLIENT_KEY_END })) records.set(clientIdOf(k), decodeClient(v));
    const seqsOf = t.install(records);
    for await (const k of db.keys({ gte: DEDUP_RESULT_KEY_MIN, lt: DEDUP_RESULT_KEY_END })) addResultKey(seqsOf, k);
    return t;
  }

  /** The table a snapshot holds (its `s d` records and `s e` keys), to install on commit of a restore. */
  static fromRecords(records: { key: Uint8Array; value: Uint8Array }[], policy: DedupPolicy): DedupTable {
    const t = new DedupTable(policy);
    const within = (k: Uint8Array, min: Uint8Array, end: Uint8Array): boolean => Buffer.compare(k, min) >= 0 && Buffer.compare(k, end) < 0;
    const clients = new Map<string, { st: ClientState; inline: boolean }>();
    for (const r of records) if (within(r.key, DEDUP_CLIENT_KEY_MIN, DEDUP_CLIENT_KEY_END)) clients.set(clientIdOf(r.key), decodeClient(r.value));
    const seqsOf = t.install(clients);
    for (const r of records) if (within(r.key, DEDUP_RESULT_KEY_MIN, DEDUP_RESULT_KEY_END)) addResultKey(seqsOf, r.key);
    return t;
  }

  /**
   * Takes the client records as the committed table; returns every client's seq list by escaped
   * client id (latin-1), to be filled from the result keys, or checked against them for a
   * record that lists its seqs itself.
   */
  private install(records: Map<string, { st: ClientState; inline: boolean }>): Map<string, { seqs: number[]; inline: boolean }> {
    const m = new Map<string, { seqs: number[]; inline: boolean }>();
    for (const [id, { st, inline }] of records) {
      this.committed.set(id, st);
      m.set(latin1Of(escapeKey(enc.encode(id))), { seqs: st.seqs, inline });
    }
    return m;
  }

  /** Number of clients remembered (tombstones included). */
  get size(): number {
    return this.committed.size;
  }

  /** For tests and status: a client's record. */
  client(clientId: string): Readonly<ClientState> | undefined {
    return this.read(clientId);
  }

  begin(): void {
    this.working = new Map();
  }

  commit(): void {
    for (const [id, st] of this.working ?? []) {
      if (st) this.committed.set(id, st);
      else this.committed.delete(id);
    }
    this.working = undefined;
  }

  abort(): void {
    this.working = undefined;
  }

  private read(id: string): ClientState | undefined {
    const w = this.working?.get(id);
    if (w !== undefined) return w ?? undefined;
    return this.committed.get(id);
  }

  /**
   * Changes a client's record for this batch. Its bytes are written once, by flush() at the
   * end of the batch: a busy client's record (up to windowPerClient seqs, ~2 KiB) used to be
   * re-encoded and re-written for every one of its commands in the batch.
   */
  private write(id: string, st: ClientState | null): void {
    if (!this.working) throw new Error('dedup table written outside a batch');
    this.working.set(id, st);
  }

  /** Writes every client record this batch changed into `view`; call once, before committing the batch. */
  flush(view: PendingView): void {
    if (!this.working) throw new Error('dedup table flushed outside a batch');
    for (const [id, st] of this.working) {
      const key = dedupClientKey(enc.encode(id));
      if (st) view.putRaw(key, encodeClient(st));
      else view.delRaw(key);
    }
  }

  lookup(view: PendingView, ik: IdempotencyKey, hash: Uint8Array): DedupLookup {
    const seq = Number(ik.seq);
    const st = this.read(ik.clientId);
    if (!st) return { kind: 'new' };
    if (seq < st.floor) {
      const why = st.seqs.length === 0 ? `client "${ik.clientId}" was idle for ${this.policy.idleRevisions}+ revisions` : `the lowest retained seq of client "${ik.clientId}" is ${st.floor}`;
      return {
        kind: 'rejected',
        reason: 'idempotency-key-expired',
        error: `idempotency key expired: seq ${seq} is below the retained window (${why}); it was applied once before or never, and is not applied now`,
      };
    }
    if (!st.seqs.includes(seq)) return { kind: 'new' };
    const raw = view.getRaw(dedupResultKey(enc.encode(ik.clientId), seq));
    if (!raw) throw new CorruptRecordError(`dedup result of client "${ik.clientId}" seq ${seq} is missing`);
    const stored = decodeResult(raw);
    if (!sameBytes(stored.hash, hash)) {
      return {
        kind: 'rejected',
        reason: 'idempotency-key-reused',
        error: `idempotency key reused: client "${ik.clientId}" seq ${seq} was first used for a different request`,
      };
    }
    return { kind: 'replay', result: stored.result };
  }

  /** Stores the first result of (client, seq), applied when the revision was `revision`. */
  record(view: PendingView, ik: IdempotencyKey, hash: Uint8Array, result: StoredResult, revision: number): void {
    const seq = Number(ik.seq);
    const id = ik.clientId;
    // A record already changed in this batch belongs to the batch: update it in place.
    const own = this.working?.get(id);
    const prev = this.read(id);
    const st: ClientState = own ?? (prev ? { ...prev, seqs: [...prev.seqs] } : { floor: 0, highest: 0, lastUsed: revision, seqs: [] });
    const idBytes = enc.encode(id);
    let i = st.seqs.length;
    while (i > 0 && st.seqs[i - 1]! > seq) i--;
    st.seqs.splice(i, 0, seq);
    st.highest = Math.max(st.highest, seq);
    st.lastUsed = revision;
    view.putRaw(dedupResultKey(idBytes, seq), encodeResult(hash, result));
    while (st.seqs.length > this.policy.windowPerClient) {
      const dropped = st.seqs.shift()!;
      view.delRaw(dedupResultKey(idBytes, dropped));
      st.floor = Math.max(st.floor, dropped + 1);
    }
    this.write(id, st);
  }

  /** The idle rule; call after a write brought the revision to `revision`. */
  maybeSweep(view: PendingView, revision: number): void {
    if (revision % this.policy.sweepEveryRevisions !== 0) return;
    const ids = new Set([...this.committed.keys(), ...(this.working?.keys() ?? [])]);
    for (const id of [...ids].sort()) {
      const st = this.read(id);
      if (!st) continue;
      const idle = revision - st.lastUsed;
      if (st.seqs.length > 0 && idle >= this.policy.idleRevisions) {
        const idBytes = enc.encode(id);
        for (const s of st.seqs) view.delRaw(dedupResultKey(idBytes, s));
        this.write(id, { floor: st.highest + 1, highest: st.highest, lastUsed: st.lastUsed, seqs: [] });
      } else if (st.seqs.length === 0 && idle >= this.policy.forgetRevisions) {
        this.write(id, null);
      }
    }
  }
}

/**
 * Adds a result key's seq to its client's list (keys come in order: seqs ascend per client), or
 * checks it against a list the record held itself. A result key no client record accounts for
 * fails loudly: that replica's window would differ from the others'.
 */
function addResultKey(seqsOf: Map<string, { seqs: number[]; inline: boolean }>, k: Uint8Array): void {
  const { escClientId, seq } = dedupResultKeyParts(k);
  const c = seqsOf.get(latin1Of(escClientId));
  if (c === undefined) throw new CorruptRecordError(`dedup result of seq ${seq} has no client record`);
  if (c.inline) {
    if (!c.seqs.includes(seq)) throw new CorruptRecordError(`dedup result of seq ${seq} is not in its client's record`);
    return;
  }
  if (c.seqs.length > 0 && c.seqs[c.seqs.length - 1]! >= seq) throw new CorruptRecordError(`dedup result keys out of order at seq ${seq}`);
  c.seqs.push(seq);
}

// ignoreBOM: a client id may start with U+FEFF; a default decoder strips it, and the id read back
// would name another client than the one whose results are stored.
const idDecoder = new TextDecoder('utf-8', { ignoreBOM: true });

function clientIdOf(k: Uint8Array): string {
  return idDecoder.decode(k.subarray(2));
}

/** Why a key is malformed, or undefined when it is fine (or absent). */
export function idempotencyKeyProblem(ik: IdempotencyKey | null | undefined): string | undefined {
  if (!ik) return undefined;
  const id = ik.clientId ?? '';
  const seq = Number(ik.seq ?? 0);
  if (id.length === 0) return 'idempotency key needs a non-empty client_id';
  if (Buffer.byteLength(id, 'utf8') > MAX_CLIENT_ID_BYTES) return `idempotency key client_id is over ${MAX_CLIENT_ID_BYTES} bytes`;
  if (!Number.isSafeInteger(seq) || seq < 1) return `idempotency key seq must be a positive integer, got ${String(ik.seq)}`;
  return undefined;
}
