// Key layout and record encodings of the Raft log inside the node's LevelDB.
//   r h          hard state        sealed [term u64][vote u64][commit u64]
//   r s          snapshot metadata sealed JSON {index, term, confState}
//   r d          log start         sealed [index u64][term u64]: the entry just before the first stored one
//   r e <u64>    log entry         sealed [index u64][term u64][type u8][data]

import type { ConfState, Entry, EntryType, HardState, SnapshotMetadata } from '../raft/index.js';
import { CorruptRecordError, readU64, scratchBytes, seal, sealInPlace, unseal, writeU64 } from './codec-bytes.js';
import { PREFIX_RAFT } from './node-db.js';

export const HARD_STATE_KEY = Uint8Array.of(PREFIX_RAFT, 0x68);
export const SNAPSHOT_META_KEY = Uint8Array.of(PREFIX_RAFT, 0x73);
export const LOG_START_KEY = Uint8Array.of(PREFIX_RAFT, 0x64);
const ENTRY_TAG = 0x65;

export function entryKey(index: number): Uint8Array {
  const k = scratchBytes(10);
  k[0] = PREFIX_RAFT;
  k[1] = ENTRY_TAG;
  writeU64(k, 2, index);
  return k;
}

/** Smallest key >= every entry key / just past them, for iteration bounds. */
export const ENTRY_KEY_MIN = Uint8Array.of(PREFIX_RAFT, ENTRY_TAG);
export const ENTRY_KEY_END = Uint8Array.of(PREFIX_RAFT, ENTRY_TAG + 1);

export function indexOfEntryKey(k: Uint8Array): number {
  if (k.length !== 10) throw new CorruptRecordError(`log entry key of ${k.length} bytes`);
  return readU64(k, 2);
}

const ENTRY_HEADER_BYTES = 17;

export function encodeEntry(e: Entry): Uint8Array {
  return sealInPlace(ENTRY_HEADER_BYTES + e.data.length, (p, at) => {
    writeU64(p, at, e.index);
    writeU64(p, at + 8, e.term);
    p[at + 16] = e.type;
    p.set(e.data, at + ENTRY_HEADER_BYTES);
  });
}

export function decodeEntry(record: Uint8Array, expectIndex: number): Entry {
  const p = unseal(record, `log entry ${expectIndex}`);
  if (p.length < ENTRY_HEADER_BYTES) throw new CorruptRecordError(`log entry ${expectIndex}: ${p.length} bytes`);
  const index = readU64(p, 0);
  if (index !== expectIndex) throw new CorruptRecordError(`log entry stored under index ${expectIndex} says index ${index}`);
  // slice (not subarray): the cache must not pin LevelDB's read buffer or alias it.
  return { index, term: readU64(p, 8), type: p[16] as EntryType, data: p.slice(ENTRY_HEADER_BYTES) };
}

export function encodeHardState(hs: HardState): Uint8Array {
  const p = new Uint8Array(24);
  writeU64(p, 0, hs.term);
  writeU64(p, 8, hs.vote);
  writeU64(p, 16, hs.commit);
  return seal(p);
}

export function decodeHardState(record: Uint8Array): HardState {
  const p = unseal(record, 'hard state');
  if (p.length !== 24) throw new CorruptRecordError(`hard state of ${p.length} bytes`);
  return { term: readU64(p, 0), vote: readU64(p, 8), commit: readU64(p, 16) };
}

export interface LogStart {
  index: number;
  term: number;
}

export function encodeLogStart(s: LogStart): Uint8Array {
  const p = new Uint8Array(16);
  writeU64(p, 0, s.index);
  writeU64(p, 8, s.term);
  return seal(p);
}

export function decodeLogStart(record: Uint8Array): LogStart {
  const p = unseal(record, 'log start');
  if (p.length !== 16) throw new CorruptRecordError(`log start of ${p.length} bytes`);
  return { index: readU64(p, 0), term: readU64(p, 8) };
}

export function encodeSnapshotMeta(md: SnapshotMetadata): Uint8Array {
  return seal(new TextEncoder().encode(JSON.stringify(md)));
}

export function decodeSnapshotMeta(record: Uint8Array): SnapshotMetadata {
  const p = unseal(record, 'snapshot metadata');
  const md = JSON.parse(new TextDecoder().decode(p)) as { index: number; term: number; confState: ConfState };
  if (!Number.isSafeInteger(md.index) || !Number.isSafeInteger(md.term) || !Array.isArray(md.confState?.voters)) {
    throw new CorruptRecordError('snapshot metadata has an impossible shape');
  }
  return { index: md.index, term: md.term, confState: { voters: md.confState.voters, learners: md.confState.learners ?? [] } };
}

//   r c          applied conf state sealed JSON {index, confState}: the configuration as of the
//                last applied ConfChange, written in the same batch as the apply that made it.
export const CONF_STATE_KEY = Uint8Array.of(PREFIX_RAFT, 0x63);

export interface AppliedConfState {
  index: number;
  confState: ConfState;
}

export function encodeConfState(c: AppliedConfState): Uint8Array {
  return seal(new TextEncoder().encode(JSON.stringify(c)));
}

export function decodeConfState(record: Uint8Array): AppliedConfState {
  const c = JSON.parse(new TextDecoder().decode(unseal(record, 'conf state'))) as AppliedConfState;
  if (!Number.isSafeInteger(c.index) || !Array.isArray(c.confState?.voters) || !Array.isArray(c.confState?.learners)) {
    throw new CorruptRecordError('conf state has an impossible shape');
  }
  return c;
}
