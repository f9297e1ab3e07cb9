// Deterministic execution of one Command against a PendingView. Everything here depends only
// on the command and the state, never on clocks, randomness or the node: every replica
// computes the same effects and the same response.

import type {
  Command,
  Fence,
  LeaseGrantResponse,
  LeaseRevokeResponse,
  LockAcquireCommand,
  LockAcquireResponse,
  Compare,
  CompactResponse,
  CounterRequest,
  CounterResponse,
  DeleteRequest,
  DeleteResponse,
  KeyValue,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResponse,
} from '../wire/kv-proto.js';
import { CompareResult, CompareTarget } from '../wire/kv-proto.js';
import { compareBytes } from '../storage/codec-bytes.js';
import type { RejectReason } from './dedup.js';
import { EventKind, type KvRecord } from './keys.js';
import { LeaseRejection, LeaseTable } from './leases.js';
import { contenderKey, fenceHolds, lockHolder } from './locks.js';
import type { KeyRecord, PendingView } from './pending-view.js';

/** Upper bound on kvs one range returns when the request sets no (or a larger) limit. */
export const MAX_RANGE_RESULTS = 10_000;

/** Revision bookkeeping for one command: all its writes share `revision`, numbered by `sub`. */
class WriteContext {
  sub = 0;
  constructor(
    readonly view: PendingView,
    readonly revision: number,
    readonly leases: LeaseTable,
  ) {}
  get wrote(): boolean {
    return this.sub > 0;
  }
}

export type CommandResponse =
  | { kind: 'put'; response: PutResponse }
  | { kind: 'delete'; response: DeleteResponse }
  | { kind: 'txn'; response: TxnResponse }
  | { kind: 'counter'; response: CounterResponse }
  | { kind: 'compact'; response: CompactResponse }
  | { kind: 'lease-grant'; response: LeaseGrantResponse }
  | { kind: 'lease-revoke'; response: LeaseRevokeResponse }
  /** The leader's expiry of a lease (a no-op if it was already gone). */
  | { kind: 'lease-expire'; response: LeaseRevokeResponse }
  | { kind: 'lock-acquire'; response: LockAcquireResponse };

/** What a command needs beyond the view: the lease table and the entry's log index. */
export interface ExecuteContext {
  leases: LeaseTable;
  entryIndex: number;
}

/**
 * Executes a put, delete, txn or counter `cmd` at `nextRevision` (used only if it writes).
 * Returns the response and whether it wrote. (Compaction is run by the state machine itself.)
 */
export async function executeCommand(
  view: PendingView,
  cmd: Command,
  nextRevision: number,
  ctx: ExecuteContext = { leases: new LeaseTable(), entryIndex: 0 },
): Promise<{ result: CommandResponse; wrote: boolean }> {
  validateCommand(cmd);
  const w = new WriteContext(view, nextRevision, ctx.leases);
  const fence = cmd.put?.fence ?? cmd.delete?.fence ?? cmd.txn?.fence;
  if (fence) await checkFence(view, fence);
  let result: CommandResponse;
  let revokeWrote = false;
  try {
    if (cmd.put) {
      checkLease(w, cmd.put.lease);
      result = { kind: 'put', response: doPut(w, cmd.put) };
    } else if (cmd.delete) result = { kind: 'delete', response: await doDelete(w, cmd.delete) };
    else if (cmd.txn) result = { kind: 'txn', response: await doTxn(w, cmd.txn) };
    else if (cmd.counter) result = { kind: 'counter', response: doCounter(w, cmd.counter) };
    else if (cmd.leaseGrant) result = { kind: 'lease-grant', response: ctx.leases.grant(view, cmd.leaseGrant, ctx.entryIndex, nextRevision - 1) };
    else if (cmd.leaseRevoke) {
      const r = ctx.leases.revoke(view, Number(cmd.leaseRevoke.id ?? 0), nextRevision);
      revokeWrote = r.wrote;
      result = { kind: 'lease-revoke', response: r.response };
    } else if (cmd.leaseExpire) {
      const id = Number(cmd.leaseExpire.id ?? 0);
      if (ctx.leases.has(id)) {
        const r = ctx.leases.revoke(view, id, nextRevision);
        revokeWrote = r.wrote;
        result = { kind: 'lease-expire', response: r.response };
      } else result = { kind: 'lease-expire', response: {} };
    } else if (cmd.lockAcquire) result = { kind: 'lock-acquire', response: await doLockAcquire(w, cmd.lockAcquire) };
    else throw new InvalidCommandError('command has no operation');
  } catch (err) {
    if (err instanceof LeaseRejection) {
      if (err.reason === 'invalid') throw new InvalidCommandError(err.message);
      throw new RejectedCommandError(err.reason, err.message);
    }
    throw err;
  }
  const wrote = w.wrote || revokeWrote;
  const revision = wrote ? nextRevision : nextRevision - 1;
  result.response.header = { revision };
  return { result, wrote };
}

/** A guarded write applies only while its lock is held with exactly its token. */
async function checkFence(view: PendingView, fence: Fence): Promise<void> {
  const name = fence.lock ?? new Uint8Array(0);
  const token = Number(fence.token ?? 0);
  if (await fenceHolds(view, name, token)) return;
  const holder = await lockHolder(view, name);
  const now = holder ? `the lock is now held with token ${holder.record.createRevision}` : 'the lock is not held now';
  throw new RejectedCommandError('stale-fencing-token', `stale fencing token ${token} for lock "${dec.decode(name)}": ${now}; nothing changed`);
}

/** A put naming a lease needs the lease to exist (checked before any effect). */
function checkLease(w: WriteContext, lease: number | null | undefined): void {
  const id = Number(lease ?? 0);
  if (id !== 0 && !w.leases.has(id)) throw new RejectedCommandError('lease-not-found', `lease ${id} not found`);
}

/** Joins the queue of lock/election `name` (idempotent per lease); reports whether it holds now. */
async function doLockAcquire(w: WriteContext, req: LockAcquireCommand): Promise<LockAcquireResponse> {
  const lease = Number(req.lease ?? 0);
  checkLease(w, lease);
  const key = contenderKey(req.name, lease);
  let rec = w.view.get(key);
  if (!rec) {
    doPut(w, { key, value: req.value ?? new Uint8Array(0), lease });
    rec = w.view.get(key)!;
  }
  const holder = await lockHolder(w.view, req.name);
  return { key, token: rec.createRevision, held: holder !== undefined && holder.record.createRevision === rec.createRevision };
}

/** A command every replica rejects the same way (e.g. empty key); the entry applies as a no-op. */
export class InvalidCommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidCommandError';
  }
}

/**
 * A well-formed command every replica refuses the same way because of the state (e.g. a
 * counter add on a key that holds no integer); thrown before any effect.
 */
export class RejectedCommandError extends Error {
  constructor(
    readonly reason: RejectReason,
    message: string,
  ) {
    super(message);
    this.name = 'RejectedCommandError';
  }
}

function requireKey(key: Uint8Array | undefined): Uint8Array {
  if (!key || key.length === 0) throw new InvalidCommandError('key must not be empty');
  return key;
}

function toKeyValue(key: Uint8Array, r: KvRecord, keysOnly = false): KeyValue {
  return { key, value: keysOnly ? new Uint8Array(0) : r.value, createRevision: r.createRevision, modRevision: r.modRevision, version: r.version };
}

function doPut(w: WriteContext, req: PutRequest): PutResponse {
  const key = requireKey(req.key);
  const prev = w.view.get(key);
  const record: KvRecord = {
    value: req.value ?? new Uint8Array(0),
    createRevision: prev ? prev.createRevision : w.revision,
    modRevision: w.revision,
    version: prev ? prev.version + 1 : 1,
  };
  w.view.put(key, record);
  w.view.recordEvent(w.revision, w.sub++, EventKind.Put, key, record);
  w.leases.setKeyLease(w.view, key, Number(req.lease ?? 0));
  const res: PutResponse = {};
  if (req.prevKv && prev) res.prevKv = toKeyValue(key, prev);
  return res;
}

/** Counters hold a decimal integer in [-(2^53-1), 2^53-1] (JS safe integers; what the wire carries exactly). */
const COUNTER_RE = /^-?(0|[1-9][0-9]*)$/;
const dec = new TextDecoder();
const enc = new TextEncoder();

/** The counter value a record holds (absent key = 0), or a rejection. */
export function counterValueOf(key: Uint8Array, r: KvRecord | undefined): number {
  if (!r) return 0;
  const s = dec.decode(r.value);
  const n = Number(s);
  if (!COUNTER_RE.test(s) || !Number.isSafeInteger(n)) {
    const shown = s.length > 40 ? `${s.slice(0, 40)}...` : s;
    throw new RejectedCommandError('not-a-counter', `key "${dec.decode(key)}" holds "${shown}", not a decimal integer counter`);
  }
  return n;
}

/**
 * Atomic add with optional bounds: the new value must satisfy min <= value <= max, otherwise
 * nothing is written and `applied` is false (the response carries the current value). A
 * missing key counts as 0. delta 0 writes nothing (a consistent read of the counter).
 */
function doCounter(w: WriteContext, req: CounterRequest): CounterResponse {
  const key = requireKey(req.key);
  const prev = w.view.get(key);
  const current = counterValueOf(key, prev);
  const delta = Number(req.delta ?? 0);
  const next = current + delta;
  if (!Number.isSafeInteger(next)) throw new RejectedCommandError('counter-overflow', `counter "${dec.decode(key)}" at ${current} + ${delta} leaves the safe integer range`);
  const min = req.min ?? null;
  const max = req.max ?? null;
  if ((min !== null && next < Number(min)) || (max !== null && next > Number(max))) return { value: current, applied: false };
  if (delta === 0) return { value: current, applied: true };
  doPut(w, { key, value: enc.encode(String(next)) });
  return { value: next, applied: true };
}

/** The keys a (key, rangeEnd) pair selects: empty end = just key; "\0" = every key >= key. */
async function selectRange(view: PendingView, key: Uint8Array, rangeEnd: Uint8Array | undefined): Promise<KeyRecord[]> {
  if (!rangeEnd || rangeEnd.length === 0) {
    const r = view.get(key);
    return r ? [{ key, record: r }] : [];
  }
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return view.range(key, undefined);
  if (compareBytes(rangeEnd, key) <= 0) return [];
  return view.range(key, rangeEnd);
}

async function doDelete(w: WriteContext, req: DeleteRequest): Promise<DeleteResponse> {
  const key = requireKey(req.key);
  const victims = await selectRange(w.view, key, req.rangeEnd);
  const res: DeleteResponse = { deleted: victims.length };
  if (req.prevKv) res.prevKvs = victims.map((v) => toKeyValue(v.key, v.record));
  for (const v of victims) {
    w.leases.setKeyLease(w.view, v.key, 0);
    w.view.del(v.key);
    w.view.recordEvent(w.revision, w.sub++, EventKind.Delete, v.key, undefined);
  }
  return res;
}

/** Range inside the state machine (txn reads, and the node's local reads). */
export async function doRange(view: PendingView, req: RangeRequest): Promise<RangeResponse> {
  const key = requireKey(req.key);
  const all = await selectRange(view, key, req.rangeEnd);
  const limit = req.limit && req.limit > 0 ? Math.min(req.limit, MAX_RANGE_RESULTS) : MAX_RANGE_RESULTS;
  const page = req.countOnly ? [] : all.slice(0, limit);
  return { kvs: page.map((kr) => toKeyValue(kr.key, kr.record, req.keysOnly)), more: !req.countOnly && all.length > limit, count: all.length };
}

function compareHolds(view: PendingView, c: Compare): boolean {
  const r = view.get(requireKey(c.key));
  const target = c.target ?? CompareTarget.Value;
  let cmp: number;
  if (target === CompareTarget.Value) {
    // A missing key has no value to compare: the compare fails whatever the operator (etcd).
    if (!r) return false;
    cmp = compareBytes(r.value, c.value ?? new Uint8Array(0));
  } else {
    const have = !r ? 0 : target === CompareTarget.Version ? r.version : target === CompareTarget.CreateRevision ? r.createRevision : r.modRevision;
    const want = (target === CompareTarget.Version ? c.version : target === CompareTarget.CreateRevision ? c.createRevision : c.modRevision) ?? 0;
    cmp = have < want ? -1 : have > want ? 1 : 0;
  }
  switch (c.result ?? CompareResult.Equal) {
    case CompareResult.Equal:
      return cmp === 0;
    case CompareResult.Greater:
      return cmp > 0;
    case CompareResult.Less:
      return cmp < 0;
    case CompareResult.NotEqual:
      return cmp !== 0;
    default:
      throw new InvalidCommandError(`unknown compare result ${String(c.result)}`);
  }
}

async function doTxn(w: WriteContext, req: TxnRequest): Promise<TxnResponse> {
  const succeeded = (req.compare ?? []).every((c) => compareHolds(w.view, c));
  const ops: RequestOp[] = (succeeded ? req.success : req.failure) ?? [];
  for (const op of ops) if (op.requestPut) checkLease(w, op.requestPut.lease);
  const responses: ResponseOp[] = [];
  for (const op of ops) {
    if (op.requestPut) responses.push({ responsePut: doPut(w, op.requestPut) });
    else if (op.requestDelete) responses.push({ responseDelete: await doDelete(w, op.requestDelete) });
    else if (op.requestRange) responses.push({ responseRange: await doRange(w.view, op.requestRange) });
    else throw new InvalidCommandError('txn op has no request');
  }
  // Nested responses carry the txn's revision too, as etcd does.
  const revision = w.wrote ? w.revision : w.revision - 1;
  for (const r of responses) {
    const inner = r.responsePut ?? r.responseDelete;
    if (inner) inner.header = { revision };
  }
  return { succeeded, responses };
}


/**
 * Rejects a malformed command before any effect, so a command applies entirely or not at
 * all (execution itself then cannot fail half-way through a txn).
 */
export function validateCommand(cmd: Command): void {
  const n =
    (cmd.put ? 1 : 0) +
    (cmd.delete ? 1 : 0) +
    (cmd.txn ? 1 : 0) +
    (cmd.counter ? 1 : 0) +
    (cmd.compact ? 1 : 0) +
    (cmd.leaseGrant ? 1 : 0) +
    (cmd.leaseRevoke ? 1 : 0) +
    (cmd.leaseExpire ? 1 : 0) +
    (cmd.lockAcquire ? 1 : 0);
  if (n !== 1) throw new InvalidCommandError(`command must hold exactly one operation, has ${n}`);
  for (const lease of [cmd.put?.lease, ...(cmd.txn?.success ?? []).map((o) => o.requestPut?.lease), ...(cmd.txn?.failure ?? []).map((o) => o.requestPut?.lease)]) {
    const id = Number(lease ?? 0);
    if (!Number.isSafeInteger(id) || id < 0) throw new InvalidCommandError(`lease id must be a non-negative integer below 2^53, got ${String(lease)}`);
  }
  const fence = cmd.put?.fence ?? cmd.delete?.fence ?? cmd.txn?.fence;
  if (fence) {
    if (!fence.lock || fence.lock.length === 0) throw new InvalidCommandError('fence lock name must not be empty');
    const t = Number(fence.token ?? 0);
    if (!Number.isSafeInteger(t) || t < 1) throw new InvalidCommandError(`fencing token must be a positive integer, got ${String(fence.token)}`);
  }
  if (cmd.lockAcquire) {
    if (!cmd.lockAcquire.name || cmd.lockAcquire.name.length === 0) throw new InvalidCommandError('lock name must not be empty');
    const lease = Number(cmd.lockAcquire.lease ?? 0);
    if (!Number.isSafeInteger(lease) || lease < 1) throw new InvalidCommandError(`a lock needs a lease (a positive id), got ${String(cmd.lockAcquire.lease)}`);
  }
  for (const id of [cmd.leaseRevoke?.id, cmd.leaseExpire?.id]) {
    if (id === undefined || id === null) continue;
    const n2 = Number(id);
    if (!Number.isSafeInteger(n2) || n2 < 1) throw new InvalidCommandError(`lease id must be a positive integer below 2^53, got ${String(id)}`);
  }
  if (cmd.put) requireKey(cmd.put.key);
  if (cmd.delete) requireKey(cmd.delete.key);
  if (cmd.counter) validateCounter(cmd.counter);
  if (cmd.compact) {
    const rev = Number(cmd.compact.revision ?? 0);
    if (!Number.isSafeInteger(rev) || rev < 1) throw new InvalidCommandError(`compact revision must be a positive integer, got ${String(cmd.compact.revision)}`);
  }
  if (cmd.txn) {
    for (const c of cmd.txn.compare ?? []) requireKey(c.key);
    for (const op of [...(cmd.txn.success ?? []), ...(cmd.txn.failure ?? [])]) {
      const req = op.requestPut ?? op.requestDelete ?? op.requestRange;
      if (!req) throw new InvalidCommandError('txn op has no request');
      requireKey(req.key);
      if (op.requestRange && Number(op.requestRange.revision ?? 0) !== 0) throw new InvalidCommandError('a range inside a txn reads the current revision; revision must be 0');
    }
  }
}

export function validateCounter(c: CounterRequest): void {
  requireKey(c.key);
  const delta = Number(c.delta ?? 0);
  if (!Number.isSafeInteger(delta)) throw new InvalidCommandError(`counter delta must be an integer within +-(2^53-1), got ${String(c.delta)}`);
  const min = c.min ?? null;
  const max = c.max ?? null;
  if (min !== null && !Number.isSafeInteger(Number(min))) throw new InvalidCommandError(`counter min must be an integer within +-(2^53-1), got ${String(min)}`);
  if (max !== null && !Number.isSafeInteger(Number(max))) throw new InvalidCommandError(`counter max must be an integer within +-(2^53-1), got ${String(max)}`);
  if (min !== null && max !== null && Number(min) > Number(max)) throw new InvalidCommandError(`counter min ${min} is greater than max ${max}`);
}
