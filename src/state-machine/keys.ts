// Key layout of the state machine inside the node's LevelDB (prefix 's'), laid out for MVCC:
//   s m                  meta      sealed [appliedIndex u64][appliedTerm u64][revision u64]
//   s k <user key>       latest    [createRevision u64][modRevision u64][version u64][value]
//   s h <rev u64><sub u32> history [kind u8][createRevision u64][version u64][keyLen u32][key][value]
//   s r <esc(key)><rev u64><sub u32>  per-key revision index  [kind u8]
//   s c                  compacted revision u64 (absent = 0: nothing compacted)
//   s d <client id>      dedup client record (see dedup.ts)
//   s e <esc(client id)><seq u64>  dedup stored result (see dedup.ts)
//   s l <lease id u64>   lease: granted TTL seconds u64 (see leases.ts)
//   s a <user key>       the key's lease id u64 (see leases.ts)
// `s k` serves current reads with one lookup. `s h` is every change in revision order
// (watches from a past revision scan it). `s r` points from a key to its changes, in
// revision order, so a read at a past revision is one reverse seek per key; its value is the
// event kind so compaction needs no history reads. esc() is an order-preserving, prefix-free
// byte escaping (0x00 -> 00 FF, terminated by 00 01), so one key's index entries never
// interleave with another's. MVCC compaction (mvcc.ts) deletes the index entries and history
// events that no read at or above the compacted revision can see.

import { CorruptRecordError, readU32, readU64, scratchBytes, seal, unseal, writeU32, writeU64 } from '../storage/codec-bytes.js';
import { PREFIX_STATE_MACHINE } from '../storage/node-db.js';

export const META_KEY = Uint8Array.of(PREFIX_STATE_MACHINE, 0x6d);
const LATEST_TAG = 0x6b;
const HISTORY_TAG = 0x68;
const INDEX_TAG = 0x72;
const COMPACT_TAG = 0x63;
const DEDUP_CLIENT_TAG = 0x64;
const DEDUP_RESULT_TAG = 0x65;

/** Every state-machine key lies in [SM_KEY_MIN, SM_KEY_END). */
export const SM_KEY_MIN = Uint8Array.of(PREFIX_STATE_MACHINE);
export const SM_KEY_END = Uint8Array.of(PREFIX_STATE_MACHINE + 1);
export const LATEST_KEY_MIN = Uint8Array.of(PREFIX_STATE_MACHINE, LATEST_TAG);
export const LATEST_KEY_END = Uint8Array.of(PREFIX_STATE_MACHINE, LATEST_TAG + 1);

export const INDEX_KEY_MIN = Uint8Array.of(PREFIX_STATE_MACHINE, INDEX_TAG);
export const INDEX_KEY_END = Uint8Array.of(PREFIX_STATE_MACHINE, INDEX_TAG + 1);
export const COMPACT_KEY = Uint8Array.of(PREFIX_STATE_MACHINE, COMPACT_TAG);
export const DEDUP_CLIENT_KEY_MIN = Uint8Array.of(PREFIX_STATE_MACHINE, DEDUP_CLIENT_TAG);
export const DEDUP_CLIENT_KEY_END = Uint8Array.of(PREFIX_STATE_MACHINE, DEDUP_CLIENT_TAG + 1);
export const DEDUP_RESULT_KEY_MIN = Uint8Array.of(PREFIX_STATE_MACHINE, DEDUP_RESULT_TAG);
export const DEDUP_RESULT_KEY_END = Uint8Array.of(PREFIX_STATE_MACHINE, DEDUP_RESULT_TAG + 1);
/** Largest sub-revision (position of a change inside one revision). */
export const MAX_SUB = 0xffffffff;

export interface Meta {
  appliedIndex: number;
  appliedTerm: number;
  revision: number;
}

export function encodeMeta(m: Meta): Uint8Array {
  const p = new Uint8Array(24);
  writeU64(p, 0, m.appliedIndex);
  writeU64(p, 8, m.appliedTerm);
  writeU64(p, 16, m.revision);
  return seal(p);
}

export function decodeMeta(record: Uint8Array): Meta {
  const p = unseal(record, 'state machine meta');
  if (p.length !== 24) throw new CorruptRecordError(`state machine meta of ${p.length} bytes`);
  return { appliedIndex: readU64(p, 0), appliedTerm: readU64(p, 8), revision: readU64(p, 16) };
}

// Keys below are handed to LevelDB and dropped (scratchBytes: never keep one).
export function latestKey(userKey: Uint8Array): Uint8Array {
  const k = scratchBytes(2 + userKey.length);
  k[0] = PREFIX_STATE_MACHINE;
  k[1] = LATEST_TAG;
  k.set(userKey, 2);
  return k;
}

export function userKeyOf(latest: Uint8Array): Uint8Array {
  return latest.slice(2);
}

/** Upper bound (exclusive) of the latest-key range for a user range end; empty = no bound. */
export function latestKeyEnd(userRangeEnd: Uint8Array | undefined): Uint8Array {
  return userRangeEnd && userRangeEnd.length > 0 ? latestKey(userRangeEnd) : LATEST_KEY_END;
}

export interface KvRecord {
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
}

const RECORD_HEADER_BYTES = 24;

export function encodeRecord(r: KvRecord): Uint8Array {
  const out = scratchBytes(RECORD_HEADER_BYTES + r.value.length);
  writeU64(out, 0, r.createRevision);
  writeU64(out, 8, r.modRevision);
  writeU64(out, 16, r.version);
  out.set(r.value, RECORD_HEADER_BYTES);
  return out;
}

export function decodeRecord(b: Uint8Array): KvRecord {
  if (b.length < RECORD_HEADER_BYTES) throw new CorruptRecordError(`kv record of ${b.length} bytes`);
  return { createRevision: readU64(b, 0), modRevision: readU64(b, 8), version: readU64(b, 16), value: b.slice(RECORD_HEADER_BYTES) };
}

export enum EventKind {
  Put = 0,
  Delete = 1,
}

export function historyKey(revision: number, sub: number): Uint8Array {
  const k = scratchBytes(14);
  k[0] = PREFIX_STATE_MACHINE;
  k[1] = HISTORY_TAG;
  writeU64(k, 2, revision);
  writeU32(k, 10, sub);
  return k;
}

export function encodeEvent(kind: EventKind, key: Uint8Array, r: KvRecord | undefined): Uint8Array {
  const value = r?.value ?? new Uint8Array(0);
  const out = scratchBytes(1 + 16 + 4 + key.length + value.length);
  out[0] = kind;
  writeU64(out, 1, r?.createRevision ?? 0);
  writeU64(out, 9, r?.version ?? 0);
  writeU32(out, 17, key.length);
  out.set(key, 21);
  out.set(value, 21 + key.length);
  return out;
}

export interface HistoryEvent {
  kind: EventKind;
  key: Uint8Array;
  createRevision: number;
  version: number;
  value: Uint8Array;
}

export function decodeEvent(b: Uint8Array): HistoryEvent {
  if (b.length < 21) throw new CorruptRecordError(`history event of ${b.length} bytes`);
  const keyLen = readU32(b, 17);
  if (21 + keyLen > b.length) throw new CorruptRecordError(`history event key of ${keyLen} bytes in ${b.length}`);
  return { kind: b[0] as EventKind, createRevision: readU64(b, 1), version: readU64(b, 9), key: b.slice(21, 21 + keyLen), value: b.slice(21 + keyLen) };
}

/** Revision and sub of a history key. */
export function historyKeyParts(k: Uint8Array): { revision: number; sub: number } {
  return { revision: readU64(k, 2), sub: readU32(k, 10) };
}

/**
 * Order-preserving, prefix-free escaping: every 0x00 becomes 00 FF and the result ends with
 * 00 01. For any keys a < b, esc(a) < esc(b), and no esc(a) is a prefix of another esc(b).
 */
export function escapeKey(key: Uint8Array): Uint8Array {
  let zeros = 0;
  for (const c of key) if (c === 0) zeros++;
  const out = new Uint8Array(key.length + zeros + 2);
  let o = 0;
  for (const c of key) {
    out[o++] = c;
    if (c === 0) out[o++] = 0xff;
  }
  out[o++] = 0;
  out[o] = 1;
  return out;
}

export function unescapeKey(esc: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < esc.length; i++) {
    const c = esc[i]!;
    if (c !== 0) {
      out.push(c);
      continue;
    }
    const next = esc[i + 1];
    if (next === 0x01) return Uint8Array.from(out);
    if (next !== 0xff) throw new CorruptRecordError('bad key escaping');
    out.push(0);
    i++;
  }
  throw new CorruptRecordError('unterminated escaped key');
}

/** `s r <esc> ` + optional revision/sub. With only `esc`, the first index key of that key. */
export function indexKey(esc: Uint8Array, revision?: number, sub?: number): Uint8Array {
  const k = scratchBytes(2 + esc.length + (revision === undefined ? 0 : 12));
  k[0] = PREFIX_STATE_MACHINE;
  k[1] = INDEX_TAG;
  k.set(esc, 2);
  if (revision !== undefined) {
    writeU64(k, 2 + esc.length, revision);
    writeU32(k, 10 + esc.length, sub ?? 0);
  }
  return k;
}

/** The parts of an index key: escaped user key, revision, sub. */
export function indexKeyParts(k: Uint8Array): { esc: Uint8Array; revision: number; sub: number } {
  const n = k.length;
  if (n < 2 + 2 + 12) throw new CorruptRecordError(`index key of ${n} bytes`);
  return { esc: k.subarray(2, n - 12), revision: readU64(k, n - 12), sub: readU32(k, n - 4) };
}

export function dedupClientKey(clientId: Uint8Array): Uint8Array {
  const k = new Uint8Array(2 + clientId.length);
  k[0] = PREFIX_STATE_MACHINE;
  k[1] = DEDUP_CLIENT_TAG;
  k.set(clientId, 2);
  return k;
}

export function dedupResultKey(clientId: Uint8Array, seq: number): Uint8Array {
  const esc = escapeKey(clientId);
  const k = new Uint8Array(2 + esc.length + 8);
  k[0] = PREFIX_STATE_MACHINE;
  k[1] = DEDUP_RESULT_TAG;
  k.set(esc, 2);
  writeU64(k, 2 + esc.length, seq);
  return k;
}

/** The escaped client id and the seq of a dedupResultKey. */
export function dedupResultKeyParts(k: Uint8Array): { escClientId: Uint8Array; seq: number } {
  if (k.length < 2 + 2 + 8) throw new CorruptRecordError(`dedup result key of ${k.length} bytes`);
  return { escClientId: k.subarray(2, k.length - 8), seq: readU64(k, k.length - 8) };
}

export function encodeU64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  writeU64(b, 0, n);
  return b;
}

export function decodeU64(b: Uint8Array, what: string): number {
  if (b.length !== 8) throw new CorruptRecordError(`${what} of ${b.length} bytes`);
  return readU64(b, 0);
}
