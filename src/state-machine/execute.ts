// Deterministic execution of one Command against a PendingView. Everything here depends only
// on the command and the state, never on clocks, randomness or the node: every replica
// computes the same effects and the same response.

import type {
  Command,
  Compare,
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
import { EventKind, encodeEvent, historyKey, type KvRecord } from './keys.js';
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

export type CommandResponse = { kind: 'put'; response: PutResponse } | { kind: 'delete'; response: DeleteResponse } | { kind: 'txn'; response: TxnResponse };

/** Executes `cmd` at `nextRevision` (used only if it writes). Returns the response and whether it wrote. */
export async function executeCommand(view: PendingView, cmd: Command, nextRevision: number): Promise<{ result: CommandResponse; wrote: boolean }> {
  validateCommand(cmd);
  const w = new WriteContext(view, nextRevision);
  let result: CommandResponse;
  if (cmd.put) result = { kind: 'put', response: doPut(w, cmd.put) };
  else if (cmd.delete) result = { kind: 'delete', response: await doDelete(w, cmd.delete) };
  else if (cmd.txn) result = { kind: 'txn', response: await doTxn(w, cmd.txn) };
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
  w.view.push({ type: 'put', key: historyKey(w.revision, w.sub++), value: encodeEvent(EventKind.Put, key, record) });
  const res: PutResponse = {};
  if (req.prevKv && prev) res.prevKv = toKeyValue(key, prev);
  return res;
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
    w.view.push({ type: 'put', key: historyKey(w.revision, w.sub++), value: encodeEvent(EventKind.Delete, v.key, undefined) });
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
  const n = (cmd.put ? 1 : 0) + (cmd.delete ? 1 : 0) + (cmd.txn ? 1 : 0);
  if (n !== 1) throw new InvalidCommandError(`command must hold exactly one operation, has ${n}`);
  if (cmd.put) requireKey(cmd.put.key);
  if (cmd.delete) requireKey(cmd.delete.key);
  if (cmd.txn) {
    for (const c of cmd.txn.compare ?? []) requireKey(c.key);
    for (const op of [...(cmd.txn.success ?? []), ...(cmd.txn.failure ?? [])]) {
      const req = op.requestPut ?? op.requestDelete ?? op.requestRange;
      if (!req) throw new InvalidCommandError('txn op has no request');
      requireKey(req.key);
    }
  }
}
