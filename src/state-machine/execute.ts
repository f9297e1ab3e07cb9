// Deterministic execution of one Command against a PendingView. Everything here depends only
// on the command and the state, never on clocks, randomness or the node: every replica
// computes the same effects and the same response.

import type {
  Command,
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
} from '../client/proto.js';
import { CompareResult, CompareTarget } from '../client/proto.js';
import { compareBytes } from '../storage/codec-bytes.js';
import type { RejectReason } from './dedup.js';
import { EventKind, type KvRecord } from './keys.js';
import type { KeyRecord, PendingView } from './pending-view.js';

/** Upper bound on kvs one range returns when the request sets no (or a larger) limit. */
export const MAX_RANGE_RESULTS = 10_000;

/** Revision bookkeeping for one command: all its writes share `revision`, numbered by `sub`. */
class WriteContext {
  sub = 0;
  constructor(
    readonly view: PendingView,
    readonly revision: number,
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
  | { kind: 'compact'; response: CompactResponse };

/**
 * Executes a put, delete, txn or counter `cmd` at `nextRevision` (used only if it writes).
 * Returns the response and whether it wrote. (Compaction is run by the state machine itself.)
 */
export async function executeCommand(view: PendingView, cmd: Command, nextRevision: number): Promise<{ result: CommandResponse; wrote: boolean }> {
  validateCommand(cmd);
  const w = new WriteContext(view, nextRevision);
  let result: CommandResponse;
  if (cmd.put) result = { kind: 'put', response: doPut(w, cmd.put) };
  else if (cmd.delete) result = { kind: 'delete', response: await doDelete(w, cmd.delete) };
  else if (cmd.txn) result = { kind: 'txn', response: await doTxn(w, cmd.txn) };
  else if (cmd.counter) result = { kind: 'counter', response: doCounter(w, cmd.counter) };
  else throw new InvalidCommandError('command has no operation');
  const revision = w.wrote ? nextRevision : nextRevision - 1;
  result.response.header = { revision };
  return { result, wrote: w.wrote };
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
  const n = (cmd.put ? 1 : 0) + (cmd.delete ? 1 : 0) + (cmd.txn ? 1 : 0) + (cmd.counter ? 1 : 0) + (cmd.compact ? 1 : 0);
  if (n !== 1) throw new InvalidCommandError(`command must hold exactly one operation, has ${n}`);
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
