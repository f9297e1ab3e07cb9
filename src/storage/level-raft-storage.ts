// The core's Storage over LevelDB. The core reads synchronously, so everything it may read
// (hard state, snapshot metadata, every entry after the last compaction) lives in memory
// and is loaded, checked and cached at open; memory is bounded by how often the host
// snapshots and compacts. Writes are async: one `sync: true` batch per save().

import {
  dummyHeadedEntries,
  dummyHeadedTerm,
  EMPTY_BYTES,
  type ConfState,
  type Entry,
  type HardState,
  type InitialState,
  type Snapshot,
  type SnapshotMetadata,
  type Storage,
} from '../raft/index.js';
import { CorruptRecordError } from './codec-bytes.js';
import { StorageCorruptionError, StorageUsageError } from './errors.js';
import { writeBatch, type BatchOp, type NodeDb } from './node-db.js';
import * as K from './raft-keys.js';

/** What one Ready asks to persist (a subset of the core's Ready). */
export interface PersistRequest {
  hardState?: HardState;
  entries: Entry[];
  /** Snapshot received from the leader: its metadata replaces the log (its data is the state machine's business). */
  snapshot?: Snapshot;
}

const EMPTY_HARD_STATE: HardState = { term: 0, vote: 0, commit: 0 };

export class LevelRaftStorage implements Storage {
  private hs: HardState;
  private snapMeta: SnapshotMetadata;
  private confState: K.AppliedConfState;
  /** ents[0] is a dummy holding the log start (index, term); real entries follow contiguously. */
  private ents: Entry[];
  private saving = false;

  private constructor(
    private readonly db: NodeDb,
    hs: HardState,
    snapMeta: SnapshotMetadata,
    confState: K.AppliedConfState,
    ents: Entry[],
  ) {
    this.hs = hs;
    this.snapMeta = snapMeta;
    this.confState = confState;
    this.ents = ents;
  }

  /**
   * Loads and verifies the log. Throws StorageCorruptionError on a bad checksum, a gap, an
   * entry before the log start, or a hard state committing past the last entry (a lost tail).
   */
  static async open(db: NodeDb): Promise<LevelRaftStorage> {
    try {
      return await LevelRaftStorage.load(db);
    } catch (e) {
      if (e instanceof CorruptRecordError) throw new StorageCorruptionError(e.message, e);
      throw e;
    }
  }

  private static async load(db: NodeDb): Promise<LevelRaftStorage> {
    const [hsRec, snapRec, startRec, confRec] = await db.getMany([K.HARD_STATE_KEY, K.SNAPSHOT_META_KEY, K.LOG_START_KEY, K.CONF_STATE_KEY]);
    const hs = hsRec ? K.decodeHardState(hsRec) : { ...EMPTY_HARD_STATE };
    const snapMeta = snapRec ? K.decodeSnapshotMeta(snapRec) : { index: 0, term: 0, confState: { voters: [], learners: [] } };
    const start = startRec ? K.decodeLogStart(startRec) : { index: snapMeta.index, term: snapMeta.term };
    const conf = confRec ? K.decodeConfState(confRec) : { index: snapMeta.index, confState: snapMeta.confState };
    if (start.index > snapMeta.index) throw new CorruptRecordError(`log start ${start.index} is past the snapshot at ${snapMeta.index}`);
    const ents: Entry[] = [{ index: start.index, term: start.term, type: 0, data: EMPTY_BYTES }];
    for await (const [key, value] of db.iterator({ gte: K.ENTRY_KEY_MIN, lt: K.ENTRY_KEY_END })) {
      const index = K.indexOfEntryKey(key);
      if (index <= start.index) throw new CorruptRecordError(`entry ${index} survives below the log start ${start.index}`);
      const prev = ents[ents.length - 1]!;
      if (index !== prev.index + 1) throw new CorruptRecordError(`gap in the log: entry ${prev.index} is followed by ${index}`);
      const e = K.decodeEntry(value, index);
      if (e.term < prev.term) throw new CorruptRecordError(`entry ${index} has term ${e.term} < ${prev.term} of entry ${prev.index}`);
      ents.push(e);
    }
    const last = ents[ents.length - 1]!.index;
    if (hs.commit > last) throw new CorruptRecordError(`hard state commits ${hs.commit} but the log ends at ${last} (truncated tail)`);
    if (snapMeta.index > last) throw new CorruptRecordError(`snapshot at ${snapMeta.index} but the log ends at ${last}`);
    return new LevelRaftStorage(db, hs, snapMeta, conf.index >= snapMeta.index ? conf : { index: snapMeta.index, confState: snapMeta.confState }, ents);
  }

  // ---- Storage (synchronous, from memory)

  initialState(): InitialState {
    return { hardState: { ...this.hs }, confState: cloneConf(this.confState.confState) };
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

  /**
   * The latest snapshot's metadata with EMPTY data: the data is the state machine itself,
   * which the host attaches when it actually sends a SNAP message (as etcd does).
   */
  snapshot(): Snapshot {
    return { metadata: { ...this.snapMeta, confState: cloneConf(this.snapMeta.confState) }, data: EMPTY_BYTES };
  }

  hardState(): HardState {
    return { ...this.hs };
  }

  // ---- writes

  /**
   * Persists one Ready in ONE batch: hard state, entries (overwriting and deleting any
   * conflicting suffix), and a received snapshot's metadata (dropping the whole old log).
   * `extraOps` (a state-machine restore, or the apply of already-durable committed entries)
   * commit in the same batch. The batch is fsynced unless `sync` is false, which the host
   * passes only for a Ready whose `mustSync` is false (nothing changed but the commit index:
   * losing it in a crash is harmless, it is re-learned; an apply is redone from the log).
   * Not reentrant: the host awaits each save before the next, as the Ready loop does.
   */
  async save(rd: PersistRequest, extraOps: BatchOp[] = [], opts: { sync?: boolean } = {}): Promise<void> {
    if (this.saving) throw new StorageUsageError('save() called while another save is in flight');
    this.saving = true;
    try {
      const ops: BatchOp[] = [];
      // The in-memory log changes only once the batch is durable (the core must not see
      // entries that a crash could lose), and then in place: copying it per save made every
      // append cost O(log length).
      let base = this.ents;
      let snapMeta = this.snapMeta;
      let conf = this.confState;
      if (rd.snapshot && rd.snapshot.metadata.index > this.snapMeta.index) {
        snapMeta = rd.snapshot.metadata;
        conf = { index: snapMeta.index, confState: snapMeta.confState };
        for (let i = 1; i < base.length; i++) ops.push({ type: 'del', key: K.entryKey(base[i]!.index) });
        ops.push({ type: 'put', key: K.SNAPSHOT_META_KEY, value: K.encodeSnapshotMeta(snapMeta) });
        ops.push({ type: 'put', key: K.CONF_STATE_KEY, value: K.encodeConfState(conf) });
        ops.push({ type: 'put', key: K.LOG_START_KEY, value: K.encodeLogStart({ index: snapMeta.index, term: snapMeta.term }) });
        base = [{ index: snapMeta.index, term: snapMeta.term, type: 0, data: EMPTY_BYTES }];
      }
      const append = rd.entries.length > 0 ? this.appendOps(base, rd.entries, ops) : undefined;
      if (rd.hardState) ops.push({ type: 'put', key: K.HARD_STATE_KEY, value: K.encodeHardState(rd.hardState) });
      for (const op of extraOps) ops.push(op);
      const sync = opts.sync ?? true;
      if (!sync && (rd.entries.length > 0 || rd.snapshot)) {
        throw new StorageUsageError('entries and snapshots must be synced');
      }
      if (ops.length > 0) await writeBatch(this.db, ops, sync);
      // Only now is it durable: publish to the core's view.
      if (append) {
        base.length = append.keep;
        for (const e of append.fresh) base.push(e);
      }
      this.ents = base;
      this.snapMeta = snapMeta;
      this.confState = conf;
      if (rd.hardState) this.hs = { ...rd.hardState };
    } finally {
      this.saving = false;
    }
  }

  /**
   * Adds put/del ops for appending `entries` to the log `ents`; returns how to change `ents`
   * once they are durable: keep its first `keep` slots, then push `fresh`.
   */
  private appendOps(ents: Entry[], entries: Entry[], ops: BatchOp[]): { keep: number; fresh: Entry[] } | undefined {
    for (let i = 1; i < entries.length; i++) {
      if (entries[i]!.index !== entries[i - 1]!.index + 1) throw new StorageUsageError(`entries not contiguous at ${entries[i]!.index}`);
    }
    const offset = ents[0]!.index;
    const oldLast = offset + ents.length - 1;
    const first = Math.max(entries[0]!.index, offset + 1);
    const newLast = entries[entries.length - 1]!.index;
    if (newLast <= offset) return undefined; // everything is already in a snapshot
    if (first > oldLast + 1) throw new StorageUsageError(`append at ${first} leaves a gap after last index ${oldLast}`);
    const fresh = entries.slice(first - entries[0]!.index);
    for (const e of fresh) ops.push({ type: 'put', key: K.entryKey(e.index), value: K.encodeEntry(e) });
    // A conflicting suffix longer than the new entries must not survive on disk.
    for (let i = newLast + 1; i <= oldLast; i++) ops.push({ type: 'del', key: K.entryKey(i) });
    return { keep: first - offset, fresh };
  }

  /**
   * Records that the state machine holds a snapshot at `index` (<= applied), so the core can
   * offer it to lagging followers and the log before it may be compacted.
   */
  async createSnapshot(index: number, confState: ConfState): Promise<SnapshotMetadata> {
    if (index <= this.snapMeta.index) throw new StorageUsageError(`snapshot ${index} is not newer than ${this.snapMeta.index}`);
    if (index > this.hs.commit) throw new StorageUsageError(`snapshot ${index} is past the commit index ${this.hs.commit}`);
    const md: SnapshotMetadata = { index, term: this.term(index), confState: cloneConf(confState) };
    await this.db.batch([{ type: 'put', key: K.SNAPSHOT_META_KEY, value: K.encodeSnapshotMeta(md) }], { sync: true });
    this.snapMeta = md;
    return md;
  }

  /**
   * Drops entries up to and including `index`, which must be covered by the snapshot.
   * The batch is synced, which also makes earlier unsynced state-machine applies durable.
   */
  async compact(index: number): Promise<void> {
    const offset = this.ents[0]!.index;
    if (index <= offset) return;
    if (index > this.snapMeta.index) throw new StorageUsageError(`compact ${index} is past the snapshot at ${this.snapMeta.index}`);
    const start = { index, term: this.term(index) };
    const ops: BatchOp[] = [{ type: 'put', key: K.LOG_START_KEY, value: K.encodeLogStart(start) }];
    for (let i = offset + 1; i <= index; i++) ops.push({ type: 'del', key: K.entryKey(i) });
    // Thousands of deletes: the chained batch keeps this off the event loop's critical path.
    await writeBatch(this.db, ops, true);
    // Re-read: a concurrent save may have replaced this.ents while we awaited.
    const cur = this.ents;
    const curOffset = cur[0]!.index;
    if (index > curOffset) this.ents = [{ index, term: start.term, type: 0, data: EMPTY_BYTES }, ...cur.slice(index - curOffset + 1)];
  }

  /**
   * A batch op recording the configuration after applying the ConfChange at `index`. Put it
   * in the same batch as that apply so a restart sees the configuration the applied index implies.
   */
  confStateOp(index: number, confState: ConfState): BatchOp {
    this.confState = { index, confState: cloneConf(confState) };
    return { type: 'put', key: K.CONF_STATE_KEY, value: K.encodeConfState(this.confState) };
  }

  /** Sets the initial configuration of a brand-new node (no-op if any state exists). */
  async bootstrap(confState: ConfState): Promise<void> {
    if (this.lastIndex() > 0 || this.hs.term > 0 || this.confState.confState.voters.length > 0) return;
    const conf = { index: 0, confState: cloneConf(confState) };
    await this.db.batch([{ type: 'put', key: K.CONF_STATE_KEY, value: K.encodeConfState(conf) }], { sync: true });
    this.confState = conf;
  }
}

function cloneConf(cs: ConfState): ConfState {
  return { voters: [...cs.voters], learners: [...cs.learners] };
}
