// Key layout of the state machine inside the node's LevelDB (prefix 's'), laid out for MVCC:
//   s m                  meta      sealed [appliedIndex u64][appliedTerm u64][revision u64]
//   s k <user key>       latest    [createRevision u64][modRevision u64][version u64][value]
//   s h <rev u64><sub u32> history [kind u8][createRevision u64][version u64][keyLen u32][key][value]
// `s k` serves current reads with one lookup. `s h` is every change in revision order:
// watches from a past revision scan it, past-revision reads will add a per-key revision
// index next to it, and MVCC compaction will delete its prefix below a revision.

import { CorruptRecordError, readU64, seal, unseal, writeU64 } from '../storage/codec-bytes.js';
import { PREFIX_STATE_MACHINE } from '../storage/node-db.js';

export const META_KEY = Uint8Array.of(PREFIX_STATE_MACHINE, 0x6d);
const LATEST_TAG = 0x6b;
const HISTORY_TAG = 0x68;

/** Every state-machine key lies in [SM_KEY_MIN, SM_KEY_END). */
export const SM_KEY_MIN = Uint8Array.of(PREFIX_STATE_MACHINE);
export const SM_KEY_END = Uint8Array.of(PREFIX_STATE_MACHINE + 1);
export const LATEST_KEY_MIN = Uint8Array.of(PREFIX_STATE_MACHINE, LATEST_TAG);
export const LATEST_KEY_END = Uint8Array.of(PREFIX_STATE_MACHINE, LATEST_TAG + 1);

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

export function latestKey(userKey: Uint8Array): Uint8Array {
  const k = new Uint8Array(2 + userKey.length);
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
  const out = new Uint8Array(RECORD_HEADER_BYTES + r.value.length);
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
  const k = new Uint8Array(14);
  k[0] = PREFIX_STATE_MACHINE;
  k[1] = HISTORY_TAG;
  writeU64(k, 2, revision);
  new DataView(k.buffer).setUint32(10, sub);
  return k;
}

export function encodeEvent(kind: EventKind, key: Uint8Array, r: KvRecord | undefined): Uint8Array {
  const value = r?.value ?? new Uint8Array(0);
  const out = new Uint8Array(1 + 16 + 4 + key.length + value.length);
  out[0] = kind;
  writeU64(out, 1, r?.createRevision ?? 0);
  writeU64(out, 9, r?.version ?? 0);
  new DataView(out.buffer).setUint32(17, key.length);
  out.set(key, 21);
  out.set(value, 21 + key.length);
  return out;
}
