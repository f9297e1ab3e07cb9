// The core's read-only view of stable storage, as in etcd-io/raft's storage.go. The host
// writes (it persists each Ready); the core only reads. MemoryStorage is the host-free
// implementation for tests and the simulator.

import { assert } from './assert.js';
import type { ConfState, Entry, HardState, Snapshot } from './types.js';

/** Requested entries are below the first index: they were compacted into a snapshot. */
export class CompactedError extends Error {
  constructor() {
    super('requested index is unavailable due to compaction');
    this.name = 'CompactedError';
  }
}

/** Requested entries are beyond the last index. */
export class UnavailableError extends Error {
  constructor() {
    super('requested entry at index is unavailable');
    this.name = 'UnavailableError';
  }
}

/** A snapshot is being produced; try again later. */
export class SnapshotTemporarilyUnavailableError extends Error {
  constructor() {
    super('snapshot is temporarily unavailable');
    this.name = 'SnapshotTemporarilyUnavailableError';
  }
}

export interface InitialState {
  hardState: HardState;
  confState: ConfState;
}

export interface Storage {
  initialState(): InitialState;
  /** Entries in [lo, hi), at most `maxBytes` in total payload but always at least one if any exist. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of the entry at index i; i may be firstIndex-1 (the snapshot's index). */
  term(i: number): number;
  lastIndex(): number;
  firstIndex(): number;
  snapshot(): Snapshot;
}

export function entryBytes(e: Entry): number {
  // Payload plus a fixed overhead for term/index/type, so empty entries still count.
  return e.data.length + 16;
}

/** Cut `entries` so their total size is at most maxBytes, keeping at least one. */
export function limitSize(entries: Entry[], maxBytes: number): Entry[] {
  if (entries.length === 0) return entries;
  let size = entryBytes(entries[0]!);
  let n = 1;
  for (; n < entries.length; n++) {
    size += entryBytes(entries[n]!);
    if (size > maxBytes) break;
  }
  return n === entries.length ? entries : entries.slice(0, n);
}

/**
 * Storage reads over an in-memory log whose `ents[0]` is a dummy entry holding the log start
 * (the snapshot's index and term) and whose real entries follow contiguously. Shared by
 * MemoryStorage and the LevelDB storage's cached tail.
 */
export function dummyHeadedEntries(ents: Entry[], lo: number, hi: number, maxBytes: number): Entry[] {
  const offset = ents[0]!.index;
  if (lo <= offset) throw new CompactedError();
  if (hi > offset + ents.length) throw new UnavailableError();
  return limitSize(ents.slice(lo - offset, hi - offset), maxBytes);
}

export function dummyHeadedTerm(ents: Entry[], i: number): number {
  const offset = ents[0]!.index;
  if (i < offset) throw new CompactedError();
  if (i - offset >= ents.length) throw new UnavailableError();
  return ents[i - offset]!.term;
}

/**
 * In-memory Storage. `ents[0]` is a dummy entry holding the snapshot's index and term, so
 * `term(firstIndex - 1)` always works.
 */
export class MemoryStorage implements Storage {
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot;
  private ents: Entry[];
  /**
   * The membership a restarting node starts with: the host records the conf state of the last
   * applied ConfChange here, because the core does not re-apply entries below the applied index.
   */
  private confState: ConfState;

  constructor(confState: ConfState = { voters: [], learners: [] }) {
    this.confState = cloneConfState(confState);
    this.snap = { metadata: { index: 0, term: 0, confState: cloneConfState(confState) }, data: new Uint8Array(0) };
    this.ents = [{ term: 0, index: 0, type: 0, data: new Uint8Array(0) }];
  }

  initialState(): InitialState {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.confState) };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  /** Records the conf state in force at the applied index (see `confState`). */
  setConfState(cs: ConfState): void {
    this.confState = cloneConfState(cs);
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return dummyHeadedEntries(this.ents, lo, hi, maxBytes);
  }

  term(i: number): number {
    return dummyHeadedTerm(this.ents, i);
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the storage's contents with the snapshot (the host received one). */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index) return;
    this.snap = snap;
    this.confState = cloneConfState(snap.metadata.confState);
    this.ents = [{ term: snap.metadata.term, index: snap.metadata.index, type: 0, data: new Uint8Array(0) }];
  }

  /** Records a snapshot at index i (the host's state machine produced it) without dropping entries. */
  createSnapshot(i: number, confState: ConfState, data: Uint8Array): Snapshot {
    assert(i > this.snap.metadata.index, `createSnapshot: index ${i} <= current snapshot ${this.snap.metadata.index}`);
    assert(i <= this.lastIndex(), `createSnapshot: index ${i} beyond last index ${this.lastIndex()}`);
    const offset = this.ents[0]!.index;
    this.snap = { metadata: { index: i, term: this.ents[i - offset]!.term, confState: cloneConfState(confState) }, data };
    return this.snap;
  }

  /** Discards entries before compactIndex; compactIndex becomes the dummy entry. */
  compact(compactIndex: number): void {
    const offset = this.ents[0]!.index;
    if (compactIndex <= offset) return;
    assert(compactIndex <= this.lastIndex(), `compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    const i = compactIndex - offset;
    const dummy: Entry = { term: this.ents[i]!.term, index: this.ents[i]!.index, type: 0, data: new Uint8Array(0) };
    this.ents = [dummy, ...this.ents.slice(i + 1)];
  }

  /** Appends entries, truncating any conflicting suffix. Entries must be contiguous. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    if (last < first) return; // all already compacted
    if (first > entries[0]!.index) entries = entries.slice(first - entries[0]!.index);
    const offset = entries[0]!.index - this.ents[0]!.index;
    assert(offset <= this.ents.length, `missing log entry [last: ${this.lastIndex()}, append at: ${entries[0]!.index}]`);
    // In place: copying the whole log on every append made a long log O(n) per Ready. The array
    // never leaves this object (entries() returns copies), so nobody sees it change.
    if (offset < this.ents.length) this.ents.length = offset;
    for (const e of entries) this.ents.push(e);
  }
}

export function cloneConfState(cs: ConfState): ConfState {
  return { voters: [...cs.voters], learners: [...cs.learners] };
}
