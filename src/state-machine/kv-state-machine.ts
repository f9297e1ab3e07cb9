// The deterministic key-value state machine over the node's LevelDB. One apply call = one
// LevelDB batch holding every effect of the entries AND the new applied index/revision, so a
// crash leaves either all of it or none; entries at or below the applied index are skipped,
// so replaying the log after a crash never applies anything twice.
//
// Besides the data, the replicated state holds the exactly-once table (dedup.ts) and the
// MVCC compaction point (mvcc.ts); both change only through applied entries, by rules that
// depend on the log alone, so every replica holds the same bytes (snapshots included).

import { decodeCommand, type Command, type IdempotencyKey, type KeyValue, type RangeRequest, type RangeResponse } from '../wire/kv-proto.js';
import { EntryType, type Entry } from '../raft/index.js';
import { writeBatch, type BatchOp, type NodeDb } from '../storage/node-db.js';
import { CompactedError, ConcurrentApplyError, FutureRevisionError } from './errors.js';
import { readChanges, type ChangeEvent } from './history-reader.js';
import { DedupTable, DEFAULT_DEDUP_POLICY, idempotencyKeyProblem, requestHash, type DedupPolicy, type RejectReason, type StoredResult } from './dedup.js';
import { doRange, executeCommand, InvalidCommandError, RejectedCommandError, validateCommand, type CommandResponse } from './execute.js';
import { COMPACT_KEY, decodeMeta, decodeU64, encodeMeta, encodeU64, META_KEY, SM_KEY_END, SM_KEY_MIN, type Meta } from './keys.js';
import { compact, rangeAt, SurvivorCache, type SurvivorPointer } from './mvcc.js';
import { LeaseTable } from './leases.js';
import { contenders } from './locks.js';
import { LatestRecordCache } from './latest-cache.js';
import { LockQueueCache } from './lock-queues.js';
import { mapKey, PendingView, readLatest } from './pending-view.js';
import { parseSnapshot, SnapshotWriter } from './snapshot-codec.js';

/** What applying one entry produced, for the client waiting on it (if any). */
export type ApplyResult =
  /** `replayed`: the command carried an idempotency key already applied; this is the first result. */
  | ({ index: number; replayed?: boolean } & CommandResponse)
  /** Leader no-op, ConfChange (the host applies it to the core), or already applied before. */
  | { index: number; kind: 'noop' }
  /** Rejected identically on every replica (malformed command, empty key): no effect. INVALID_ARGUMENT. */
  | { index: number; kind: 'invalid'; error: string; replayed?: boolean }
  /**
   * Well-formed but refused by the state, identically on every replica, with no effect:
   * idempotency-key-expired / -reused, not-a-counter -> FAILED_PRECONDITION;
   * compacted / future-revision (Compact) -> OUT_OF_RANGE; counter-overflow -> OUT_OF_RANGE.
   */
  | { index: number; kind: 'rejected'; reason: RejectReason; error: string; replayed?: boolean };

/** Replicated-state policies. EVERY replica must use the same values (they shape the state). */
export interface StateMachineOptions {
  /** Exactly-once table expiry (dedup.ts). */
  dedup?: Partial<DedupPolicy>;
  /**
   * Automatic MVCC compaction: keep at least this many recent revisions readable; 0 = never
   * compact automatically. Default 100_000.
   */
  retainRevisions?: number;
  /** Automatic compaction runs when a write makes the revision a multiple of this. Default 1_000. */
  compactEveryRevisions?: number;
  /** Node-local cache of recent keys' latest records, bytes (latest-cache.ts; not replicated state). Default 64 MiB. */
  latestCacheBytes?: number;
  /** Node-local: keys whose compaction survivor is remembered (mvcc.ts SurvivorCache). Default 1_000_000. */
  survivorCacheKeys?: number;
  /** Node-local: locks whose contender keys are kept in memory (lock-queues.ts). Default 10_000. */
  lockQueueCacheLocks?: number;
}

export const DEFAULT_RETAIN_REVISIONS = 100_000;
export const DEFAULT_COMPACT_EVERY_REVISIONS = 1_000;

/** The replicated state besides the data, as one apply batch sees it. */
interface WorkingState extends Meta {
  compactRevision: number;
  /** What this batch's compactions found for SurvivorCache (published with the batch). */
  survivorsFound: Map<string, SurvivorPointer | null>;
}

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

/** Entries run against the state, their effects not yet written (KvStateMachine.prepareApply). */
export interface PreparedApply {
  /** One per entry, final. */
  results: ApplyResult[];
  /** Every effect as batch ops (empty when nothing changes), for a caller that writes them in its own batch. */
  ops: BatchOp[];
  /** Writes `ops` in one batch, then publishes them (= writeBatch(ops) + written()). */
  write(): Promise<void>;
  /** Publishes the effects once the caller wrote `ops` in its own batch. */
  written(): void;
  /** Drops the effects (nothing was written). */
  abort(): void;
}

/** A verified snapshot ready to be committed: put `ops` in a batch, then call `commit()`. */
export interface PreparedRestore {
  meta: Meta;
  ops: BatchOp[];
  commit(): void;
}

function idempotencyKeyOf(cmd: Command): IdempotencyKey | undefined {
  const ik = (cmd.put ?? cmd.delete ?? cmd.txn ?? cmd.counter)?.idempotencyKey;
  if (!ik) return undefined;
  // An all-default key (empty message) counts as no key.
  if ((ik.clientId ?? '') === '' && Number(ik.seq ?? 0) === 0) return undefined;
  return ik;
}

export class KvStateMachine {
  private meta: Meta;
  private compactRev: number;
  private dedup: DedupTable;
  /** Leases and key attachments (leases.ts); replaced in place on snapshot restore. */
  private leaseTable = new LeaseTable();
  private busy = false;
  /** Latest records of recent keys (latest-cache.ts); a node-local read cache. */
  private readonly latestCache: LatestRecordCache;
  private readonly lockQueues: LockQueueCache;
  /** Key (latin-1) -> callbacks waiting for its deletion (onKeyDeleted). */
  private readonly deleteListeners = new Map<string, Set<() => void>>();
  /** Each key's entry kept below the compacted revision (mvcc.ts SurvivorCache); node-local. */
  private readonly survivors: SurvivorCache;
  readonly retainRevisions: number;
  readonly compactEveryRevisions: number;
  readonly dedupPolicy: DedupPolicy;

  private constructor(
    private readonly db: NodeDb,
    meta: Meta,
    compactRev: number,
    dedup: DedupTable,
    opts: StateMachineOptions,
  ) {
    this.meta = meta;
    this.compactRev = compactRev;
    this.dedup = dedup;
    this.dedupPolicy = dedup.policy;
    this.latestCache = new LatestRecordCache(opts.latestCacheBytes);
    this.survivors = new SurvivorCache(opts.survivorCacheKeys);
    this.lockQueues = new LockQueueCache(opts.lockQueueCacheLocks);
    this.retainRevisions = opts.retainRevisions ?? DEFAULT_RETAIN_REVISIONS;
    this.compactEveryRevisions = opts.compactEveryRevisions ?? DEFAULT_COMPACT_EVERY_REVISIONS;
    if (!Number.isSafeInteger(this.retainRevisions) || this.retainRevisions < 0) throw new RangeError(`retainRevisions must be >= 0, got ${this.retainRevisions}`);
    if (!Number.isSafeInteger(this.compactEveryRevisions) || this.compactEveryRevisions < 1) throw new RangeError(`compactEveryRevisions must be >= 1, got ${this.compactEveryRevisions}`);
  }

  static async open(db: NodeDb, opts: StateMachineOptions = {}): Promise<KvStateMachine> {
    const policy = resolvePolicy(opts.dedup);
    const raw = await db.get(META_KEY);
    const rawCompact = await db.get(COMPACT_KEY);
    const dedup = await DedupTable.load(db, policy);
    const meta = raw ? decodeMeta(raw) : { appliedIndex: 0, appliedTerm: 0, revision: 0 };
    const sm = new KvStateMachine(db, meta, rawCompact ? decodeU64(rawCompact, 'compacted revision') : 0, dedup, opts);
    sm.leaseTable = await LeaseTable.load(db);
    return sm;
  }

  /** The applied leases (ids, TTLs, attached keys); `epoch` changes whenever the set changes. */
  get leases(): LeaseTable {
    return this.leaseTable;
  }

  /** Contenders of lock/election `name` in queue order (the first holds it); see locks.ts. */
  async lockContenders(name: Uint8Array): Promise<KeyValue[]> {
    const all = await contenders(new PendingView(this.db, this.latestCache, this.lockQueues), name);
    return all.map(({ key, record: r }) => ({ key, value: r.value, createRevision: r.createRevision, modRevision: r.modRevision, version: r.version, lease: this.leaseTable.leaseOfKey(key) }));
  }

  /**
   * Calls `fn` once when `key`'s deletion is published (as a later read would see it), or when
   * a snapshot replaces the whole state; returns a function that cancels. Lock waiters use it
   * to wake only when the contender ahead of them (or their own key) goes, not on every write.
   */
  onKeyDeleted(key: Uint8Array, fn: () => void): () => void {
    const mk = mapKey(key);
    let set = this.deleteListeners.get(mk);
    if (!set) this.deleteListeners.set(mk, (set = new Set()));
    set.add(fn);
    return () => {
      const s = this.deleteListeners.get(mk);
      if (!s?.delete(fn)) return;
      if (s.size === 0) this.deleteListeners.delete(mk);
    };
  }

  private fireDeleted(mk: string): void {
    const set = this.deleteListeners.get(mk);
    if (!set) return;
    this.deleteListeners.delete(mk);
    for (const fn of set) fn();
  }

  /** Changes with revision in [from, to] for watches (see history-reader.ts); from must be above the compacted revision. */
  async changes(fromRevision: number, toRevision: number, maxEvents: number): Promise<ChangeEvent[]> {
    if (fromRevision <= this.compactRev) throw new CompactedError(fromRevision, this.compactRev + 1);
    const events = await readChanges(this.db, fromRevision, toRevision, maxEvents);
    // A compaction applied while we read may have removed part of what we scanned.
    if (fromRevision <= this.compactRev) throw new CompactedError(fromRevision, this.compactRev + 1);
    return events;
  }

  /** Reads below this revision are refused (0 = nothing compacted). */
  compactRevision(): number {
    return this.compactRev;
  }

  /** The exactly-once table's record of a client (tests, diagnostics). */
  dedupClient(clientId: string): { floor: number; highest: number; lastUsed: number; seqs: readonly number[] } | undefined {
    return this.dedup.client(clientId);
  }

  /** Number of clients the exactly-once table remembers (tombstones included). */
  dedupClients(): number {
    return this.dedup.size;
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
    const p = await this.prepareApply(entries, opts);
    await p.write();
    return p.results;
  }

  /**
   * Runs `entries` against the state without writing anything: the results are final (the
   * same on every replica), the effects are held until `write()` puts them in one LevelDB
   * batch and publishes them (applied index, revision, leases, exactly-once table). Until
   * then readers see the state before these entries. Exactly one of write() / abort() must
   * follow; no other apply may start before it.
   */
  async prepareApply(entries: Entry[], opts: ApplyOptions = {}): Promise<PreparedApply> {
    if (this.busy) throw new ConcurrentApplyError('applyEntries');
    this.busy = true;
    const abort = (): void => {
      this.dedup.abort();
      this.leaseTable.abort();
      this.busy = false;
    };
    try {
      return await this.prepareLocked(entries, opts, abort);
    } catch (err) {
      abort();
      throw err;
    }
  }

  private async prepareLocked(entries: Entry[], opts: ApplyOptions, abort: () => void): Promise<PreparedApply> {
    const view = new PendingView(this.db, this.latestCache, this.lockQueues);
    const st: WorkingState = { ...this.meta, compactRevision: this.compactRev, survivorsFound: new Map() };
    const results: ApplyResult[] = [];
    this.dedup.begin();
    this.leaseTable.begin();
    for (const e of entries) {
      if (e.index <= st.appliedIndex) {
        results.push({ index: e.index, kind: 'noop' });
        continue;
      }
      if (e.index !== st.appliedIndex + 1) throw new Error(`apply gap: entry ${e.index} after applied index ${st.appliedIndex}`);
      results.push(await this.applyOne(view, e, st));
      st.appliedIndex = e.index;
      st.appliedTerm = e.term;
    }
    if (st.appliedIndex === this.meta.appliedIndex && !opts.extraOps?.length) {
      return { results, ops: [], write: async () => abort(), written: abort, abort };
    }
    this.dedup.flush(view);
    const meta: Meta = { appliedIndex: st.appliedIndex, appliedTerm: st.appliedTerm, revision: st.revision };
    view.push({ type: 'put', key: META_KEY, value: encodeMeta(meta) });
    for (const op of opts.extraOps ?? []) view.push(op);
    let settled = false;
    const settle = (): void => {
      if (settled) throw new Error('prepared apply already written or aborted');
      settled = true;
    };
    const publish = (): void => {
      const deleted = view.publish(this.latestCache, this.lockQueues);
      if (st.survivorsFound.size > 0) this.survivors.publish(st.survivorsFound);
      this.meta = meta;
      this.compactRev = st.compactRevision;
      this.dedup.commit();
      this.leaseTable.commit();
      this.busy = false;
      if (this.deleteListeners.size > 0) for (const mk of deleted) this.fireDeleted(mk);
    };
    return {
      results,
      ops: view.ops,
      abort: () => {
        if (settled) return;
        settled = true;
        abort();
      },
      written: () => {
        settle();
        publish();
      },
      write: async () => {
        settle();
        try {
          await writeBatch(this.db, view.ops, opts.sync ?? false);
        } catch (err) {
          abort();
          throw err;
        }
        publish();
      },
    };
  }

  private async applyOne(view: PendingView, e: Entry, st: WorkingState): Promise<ApplyResult> {
    if (e.type !== EntryType.Normal || e.data.length === 0) return { index: e.index, kind: 'noop' };
    let cmd: Command;
    try {
      cmd = decodeCommand(e.data);
    } catch (err) {
      return { index: e.index, kind: 'invalid', error: `undecodable command: ${(err as Error).message}` };
    }
    const ik = idempotencyKeyOf(cmd);
    const problem = idempotencyKeyProblem(ik);
    if (problem) return { index: e.index, kind: 'invalid', error: problem };
    let hash: Uint8Array | undefined;
    if (ik) {
      hash = requestHash(e.data);
      const seen = this.dedup.lookup(view, ik, hash);
      if (seen.kind === 'replay') return { index: e.index, ...seen.result, replayed: true };
      if (seen.kind === 'rejected') return { index: e.index, kind: 'rejected', reason: seen.reason, error: seen.error };
    }
    const before = st.revision;
    const result = await this.execute(view, cmd, st);
    if (ik) this.dedup.record(view, ik, hash!, result, st.revision);
    if (st.revision !== before) await this.afterWrite(view, st);
    return { index: e.index, ...result };
  }

  /** Runs one command; deterministic refusals become results, anything else (I/O) propagates. */
  private async execute(view: PendingView, cmd: Command, st: WorkingState): Promise<StoredResult> {
    try {
      validateCommand(cmd);
      if (cmd.compact) return await this.compactCommand(view, Number(cmd.compact.revision), st);
      const { result, wrote } = await executeCommand(view, cmd, st.revision + 1, { leases: this.leaseTable, entryIndex: st.appliedIndex + 1 });
      if (wrote) st.revision += 1;
      return result;
    } catch (err) {
      if (err instanceof InvalidCommandError) return { kind: 'invalid', error: err.message };
      if (err instanceof RejectedCommandError) return { kind: 'rejected', reason: err.reason, error: err.message };
      throw err;
    }
  }

  private async compactCommand(view: PendingView, revision: number, st: WorkingState): Promise<CommandResponse> {
    if (revision > st.revision) throw new RejectedCommandError('future-revision', `cannot compact to revision ${revision}: the current revision is ${st.revision}`);
    if (revision <= st.compactRevision) {
      throw new RejectedCommandError('compacted', `revision ${revision} is already compacted; the compacted revision is ${st.compactRevision}`);
    }
    await this.compactTo(view, revision, st);
    return { kind: 'compact', response: { header: { revision: st.revision }, compactRevision: revision } };
  }

  private async compactTo(view: PendingView, revision: number, st: WorkingState): Promise<void> {
    await compact(this.db, view, st.compactRevision, revision, this.survivors, st.survivorsFound);
    st.compactRevision = revision;
    view.putRaw(COMPACT_KEY, encodeU64(revision));
  }

  /**
   * Maintenance decided by the revision alone (so identical on every replica, whatever the
   * batching): the dedup idle sweep, and automatic compaction when the revision reaches a
   * multiple of compactEveryRevisions, to revision - retainRevisions.
   */
  private async afterWrite(view: PendingView, st: WorkingState): Promise<void> {
    this.dedup.maybeSweep(view, st.revision);
    if (this.retainRevisions > 0 && st.revision % this.compactEveryRevisions === 0) {
      const target = st.revision - this.retainRevisions;
      if (target > st.compactRevision) await this.compactTo(view, target, st);
    }
  }

  // ---- reads of the applied state

  get(key: Uint8Array): KeyValue | undefined {
    const r = readLatest(this.db, this.latestCache, key);
    if (!r) return undefined;
    return { key, value: r.value, createRevision: r.createRevision, modRevision: r.modRevision, version: r.version, lease: this.leaseTable.leaseOfKey(key) };
  }

  /**
   * Range over the applied state, at req.revision when non-zero (MVCC). Throws CompactedError
   * or FutureRevisionError for a revision outside [compactRevision, revision()]. The response
   * header is left for the caller (it knows the read mode).
   */
  async range(req: RangeRequest): Promise<RangeResponse> {
    const rev = Number(req.revision ?? 0);
    if (rev === 0) {
      const res = await doRange(new PendingView(this.db, this.latestCache, this.lockQueues), req);
      for (const kv of res.kvs) kv.lease = this.leaseTable.leaseOfKey(kv.key);
      return res;
    }
    this.checkReadRevision(rev);
    return rangeAt(this.db, req, rev, () => this.compactRev);
  }

  /** The key as of `revision` (0 = current); same errors as range(). */
  async getAt(key: Uint8Array, revision: number): Promise<KeyValue | undefined> {
    if (!revision) return this.get(key);
    const r = await this.range({ key, revision });
    return r.kvs[0];
  }

  private checkReadRevision(rev: number): void {
    if (!Number.isSafeInteger(rev) || rev < 0) throw new FutureRevisionError(rev, this.meta.revision);
    if (rev > this.meta.revision) throw new FutureRevisionError(rev, this.meta.revision);
    if (rev < this.compactRev) throw new CompactedError(rev, this.compactRev);
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
    const compactRecord = parsed.records.find((r) => Buffer.compare(r.key, COMPACT_KEY) === 0);
    const compactRev = compactRecord ? decodeU64(compactRecord.value, 'compacted revision') : 0;
    const dedup = DedupTable.fromRecords(parsed.records, this.dedupPolicy);
    const leases = LeaseTable.fromRecords(parsed.records);
    return {
      meta: parsed.meta,
      ops,
      commit: () => {
        this.meta = { ...parsed.meta };
        this.compactRev = compactRev;
        this.dedup = dedup;
        this.leaseTable.replaceWith(leases);
        this.latestCache.clear();
        this.lockQueues.clear();
        this.survivors.clear();
        for (const mk of [...this.deleteListeners.keys()]) this.fireDeleted(mk);
      },
    };
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

function resolvePolicy(p: Partial<DedupPolicy> | undefined): DedupPolicy {
  const policy = { ...DEFAULT_DEDUP_POLICY, ...p };
  for (const [k, v] of Object.entries(policy)) if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`dedup.${k} must be a positive integer, got ${v}`);
  if (policy.forgetRevisions < policy.idleRevisions) throw new RangeError('dedup.forgetRevisions must be >= dedup.idleRevisions');
  return policy;
}
