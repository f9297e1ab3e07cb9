// The deterministic key-value state machine over the node's LevelDB. One apply call = one
// LevelDB batch holding every effect of the entries AND the new applied index/revision, so a
// crash leaves either all of it or none; entries at or below the applied index are skipped,
// so replaying the log after a crash never applies anything twice.

import { decodeCommand, type Command, type KeyValue, type RangeRequest, type RangeResponse } from '../client/proto.js';
import { EntryType, type Entry } from '../raft/index.js';
import type { BatchOp, NodeDb } from '../storage/node-db.js';
import { ConcurrentApplyError } from './errors.js';
import { doRange, executeCommand, InvalidCommandError, type CommandResponse } from './execute.js';
import { decodeMeta, decodeRecord, encodeMeta, latestKey, META_KEY, SM_KEY_END, SM_KEY_MIN, type Meta } from './keys.js';
import { PendingView } from './pending-view.js';
import { parseSnapshot, SnapshotWriter } from './snapshot-codec.js';

/** What applying one entry produced, for the client waiting on it (if any). */
export type ApplyResult =
  | ({ index: number } & CommandResponse)
  /** Leader no-op, ConfChange (the host applies it to the core), or already applied before. */
  | { index: number; kind: 'noop' }
  /** Rejected identically on every replica (malformed command, empty key): no effect. */
  | { index: number; kind: 'invalid'; error: string };

export interface ApplyOptions {
  /** Extra ops committed in the same batch (e.g. LevelRaftStorage.confStateOp for a ConfChange). */
  extraOps?: BatchOp[];
  /**
   * fsync this batch. Default false: the entries are already durable in the Raft log, a lost
   * apply is replayed from it, and the next synced save/compaction of the shared LevelDB makes it durable.
   */
  sync?: boolean;
}

export interface StateSnapshot {
  appliedIndex: number;
  appliedTerm: number;
  revision: number;
  data: Uint8Array;
}

/** A verified snapshot ready to be committed: put `ops` in a batch, then call `commit()`. */
export interface PreparedRestore {
  meta: Meta;
  ops: BatchOp[];
  commit(): void;
}

export class KvStateMachine {
  private meta: Meta;
  private busy = false;

  private constructor(
    private readonly db: NodeDb,
    meta: Meta,
  ) {
    this.meta = meta;
  }

  static async open(db: NodeDb): Promise<KvStateMachine> {
    const raw = await db.get(META_KEY);
    return new KvStateMachine(db, raw ? decodeMeta(raw) : { appliedIndex: 0, appliedTerm: 0, revision: 0 });
  }

  appliedIndex(): number {
    return this.meta.appliedIndex;
  }

  appliedTerm(): number {
    return this.meta.appliedTerm;
  }

  /** The revision of the last write applied (0 before any). */
  revision(): number {
    return this.meta.revision;
  }

  async applyEntries(entries: Entry[], opts: ApplyOptions = {}): Promise<ApplyResult[]> {
    if (this.busy) throw new ConcurrentApplyError('applyEntries');
    this.busy = true;
    try {
      return await this.applyLocked(entries, opts);
    } finally {
      this.busy = false;
    }
  }

  private async applyLocked(entries: Entry[], opts: ApplyOptions): Promise<ApplyResult[]> {
    const view = new PendingView(this.db);
    const meta = { ...this.meta };
    const results: ApplyResult[] = [];
    for (const e of entries) {
      if (e.index <= meta.appliedIndex) {
        results.push({ index: e.index, kind: 'noop' });
        continue;
      }
      if (e.index !== meta.appliedIndex + 1) throw new Error(`apply gap: entry ${e.index} after applied index ${meta.appliedIndex}`);
      results.push(await this.applyOne(view, e, meta));
      meta.appliedIndex = e.index;
      meta.appliedTerm = e.term;
    }
    if (meta.appliedIndex === this.meta.appliedIndex && !opts.extraOps?.length) return results;
    view.push({ type: 'put', key: META_KEY, value: encodeMeta(meta) });
    for (const op of opts.extraOps ?? []) view.push(op);
    await this.db.batch(view.ops, { sync: opts.sync ?? false });
    this.meta = meta;
    return results;
  }

  private async applyOne(view: PendingView, e: Entry, meta: Meta): Promise<ApplyResult> {
    if (e.type !== EntryType.Normal || e.data.length === 0) return { index: e.index, kind: 'noop' };
    let cmd: Command;
    try {
      cmd = decodeCommand(e.data);
    } catch (err) {
      return { index: e.index, kind: 'invalid', error: `undecodable command: ${(err as Error).message}` };
    }
    try {
      const { result, wrote } = await executeCommand(view, cmd, meta.revision + 1);
      if (wrote) meta.revision += 1;
      return { index: e.index, ...result };
    } catch (err) {
      // Validation errors are deterministic (every replica agrees); anything else (I/O) must propagate.
      if (err instanceof InvalidCommandError) return { index: e.index, kind: 'invalid', error: err.message };
      throw err;
    }
  }

  // ---- reads of the applied state

  get(key: Uint8Array): KeyValue | undefined {
    const raw = this.db.getSync(latestKey(key));
    if (!raw) return undefined;
    const r = decodeRecord(raw);
    return { key, value: r.value, createRevision: r.createRevision, modRevision: r.modRevision, version: r.version };
  }

  /** Range over the applied state; the response header is left for the caller (it knows the read mode). */
  range(req: RangeRequest): Promise<RangeResponse> {
    return doRange(new PendingView(this.db), req);
  }

  // ---- snapshots

  /** The whole state at the applied index (one consistent LevelDB iterator snapshot). */
  async createSnapshot(): Promise<StateSnapshot> {
    const it = this.db.iterator({ gte: SM_KEY_MIN, lt: SM_KEY_END });
    let meta: Meta | undefined;
    const entries: [Uint8Array, Uint8Array][] = [];
    for await (const [k, v] of it) {
      if (Buffer.compare(k, META_KEY) === 0) meta = decodeMeta(v);
      else entries.push([k, v]);
    }
    meta ??= { appliedIndex: 0, appliedTerm: 0, revision: 0 };
    const w = new SnapshotWriter(meta);
    for (const [k, v] of entries) w.add(k, v);
    return { ...meta, data: w.finish() };
  }

  /**
   * Verifies `data` and builds the ops that replace the whole state with it (deleting every
   * current key). Nothing changes until the ops are written and commit() is called; use this
   * to install a snapshot in the same batch as the Raft storage's snapshot metadata.
   */
  async prepareRestore(data: Uint8Array): Promise<PreparedRestore> {
    const parsed = parseSnapshot(data);
    const ops: BatchOp[] = [];
    for await (const k of this.db.keys({ gte: SM_KEY_MIN, lt: SM_KEY_END })) ops.push({ type: 'del', key: k });
    for (const r of parsed.records) ops.push({ type: 'put', key: r.key, value: r.value });
    ops.push({ type: 'put', key: META_KEY, value: encodeMeta(parsed.meta) });
    return { meta: parsed.meta, ops, commit: () => (this.meta = { ...parsed.meta }) };
  }

  /** Replaces the whole state with the snapshot, atomically (one synced batch). */
  async restoreSnapshot(data: Uint8Array): Promise<void> {
    if (this.busy) throw new ConcurrentApplyError('restoreSnapshot');
    this.busy = true;
    try {
      const p = await this.prepareRestore(data);
      await this.db.batch(p.ops, { sync: true });
      p.commit();
    } finally {
      this.busy = false;
    }
  }
}
