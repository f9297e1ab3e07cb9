// The TypeScript SDK of raftkv: one KvClient talks to a cluster through any of its client
// endpoints. It finds the leader (Status of every endpoint), caches the leader's client
// address, follows the leader hints servers attach to UNAVAILABLE errors (connecting to a
// hinted address even when it is not in `endpoints`), bounds every call by a deadline and
// retries with exponential backoff + full jitter only where a retry cannot apply a write twice.
//
// Retry safety:
//   - Reads (get, range, status, members) are retried on UNAVAILABLE and on a timed-out attempt
//     (each attempt has its own deadline, attemptTimeoutMs, inside the call's): harmless twice.
//   - put, delete, txn and add carry an idempotency key {clientId, seq} (one per logical
//     write, the same bytes on every retry), so they are retried on UNAVAILABLE and timeouts
//     too: the server's exactly-once table returns the first result instead of applying again.
//     "idempotency key expired" / "reused" (FAILED_PRECONDITION) are final.
//   - Writes without a key (member changes, leader transfer, compact) are retried ONLY when the
//     server definitely did not apply them: it says so with the trailing metadata
//     `x-raftkv-not-applied: 1` (refused before proposing: not the leader, shutting down,
//     too many pending proposals; or the proposal's log slot went to another leader's entry),
//     or grpc-js never sent the request ("No connection established"), or the client raised
//     the error itself before sending (no leader known). After DEADLINE_EXCEEDED or a dropped
//     connection the outcome is unknown and reaches the caller.
// Anything without the marker counts as "maybe applied"; message text is never parsed.
// A call's final error is "certainly not applied" (writeDefinitelyNotApplied) only when every
// attempt was: once one attempt may have reached a server, a later "no leader known" or
// "not the leader" proves nothing about it (earlierAttemptMayHaveApplied).

import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  CompareResult,
  CompareTarget,
  Consistency,
  kvServiceDefinition,
  PartitionDirection,
  type Compare,
  type FaultConfig,
  type KeyValue,
  type Member,
  type RangeRequest,
  type ReadHeader,
  type ReadOptions,
  type RequestOp,
  type ResponseOp,
} from './proto.js';
import { COMPACT_REVISION_METADATA_KEY, COUNTER_VALUE_METADATA_KEY, LEADER_ADDR_METADATA_KEY, LEADER_ID_METADATA_KEY, NOT_APPLIED_METADATA_KEY } from './proto.js';
import { Session } from './session.js';
import { prefixEndOf } from '../wire/prefix.js';
import { concurrencyServiceDefinition } from './proto.js';
import { LeaseClient } from './lease.js';
import { lockWith, type LockHandle, type LockOptions } from './lock.js';
import { Election } from './election.js';
import { watchChanges, type WatchBatch, type WatchOptions } from './watch.js';
import { runTransaction, type Transaction, type TransactionOptions } from './transaction.js';
import { CallCoalescer, isBatchable, type BatchResultMsg, type CoalescerLimits, type PipelineCall } from './call-coalescer.js';

export { CompareResult, CompareTarget, Consistency, PartitionDirection };
export type { FaultConfig, KeyValue, Member, ReadHeader };

/** gRPC status codes (re-exported so callers need not import @grpc/grpc-js). */
export const StatusCode = grpc.status;
export type StatusCode = grpc.status;

/** Keys and values: strings are encoded as UTF-8. */
export type Bytes = string | Uint8Array;

export interface KvClientOptions {
  /** Client addresses (host:port) of some cluster members; more are learned from hints. */
  endpoints: string[];
  /** Deadline of a call (all its attempts together) when the call sets none. Default 5000 ms. */
  defaultTimeoutMs?: number;
  /** Most retries after the first attempt (hint follows count). Default 8. */
  maxRetries?: number;
  /** First backoff step; doubles per retry up to maxBackoffMs, full jitter. Default 25 ms. */
  baseBackoffMs?: number;
  /** Default 1000 ms. */
  maxBackoffMs?: number;
  /** Deadline of each Status call during leader discovery (capped by the call's). Default 1000 ms. */
  discoveryTimeoutMs?: number;
  /**
   * Identifies this client's writes in the server's exactly-once table; every put, delete,
   * txn and add carries {clientId, seq}. Default: a random UUID per KvClient. Reuse one only
   * with a seq you persist yourself (pass `idempotencyKey` per call).
   */
  clientId?: string;
  /**
   * Deadline of ONE attempt of a read or a keyed write, so a hung attempt is retried before the
   * call's deadline (capped by it). Default 2000 ms.
   */
  attemptTimeoutMs?: number;
  /**
   * Carry KV calls (put, get, delete, range, txn, add) on one long-lived KV.Pipeline stream per
   * server, concurrent ones coalesced into one message (see call-coalescer.ts): each keeps its
   * own result, status, deadline and retries; a call with nothing else in flight still goes out
   * alone at once. Against a server without Pipeline, concurrent calls travel in KV.Batch calls.
   * false = one unary gRPC call per call. Default true.
   */
  coalesceCalls?: boolean;
  /** A Pipeline stream with no call in flight for this long is half-closed (an open stream keeps the process alive). Default 1000. */
  pipelineIdleMs?: number;
  /** Most calls in one coalesced batch. Default 64. */
  maxBatchItems?: number;
  /**
   * Most encoded request bytes in one coalesced batch (a larger call goes alone). Default 256 KiB.
   * Keep it under the server's maxRequestBytes (2 MiB by default): gRPC refuses a larger batch
   * with RESOURCE_EXHAUSTED, and its calls then fail with an unknown outcome.
   */
  maxBatchBytes?: number;
  /**
   * Extra grpc-js channel options for the connections of this client's calls and lease/election
   * streams (watch streams open connections of their own, without them). grpc-js shares one
   * connection per address among clients with equal options; a distinct option (any unknown
   * key, e.g. {'app.pool': 3}) gives a client connections of its own.
   */
  channelOptions?: Record<string, string | number>;
}

/** Makes a retried write exactly-once: the server returns the first result for a repeated key. */
export interface IdempotencyKey {
  clientId: string;
  /** >= 1; one per logical write, the same on every retry of it. */
  seq: number;
}

export interface WriteOptions extends CallOptions {
  /** Default: {this client's clientId, next seq}. Pass your own to dedupe across restarts. */
  idempotencyKey?: IdempotencyKey;
}

export interface CallOptions {
  /** Deadline of this call, all retries included. */
  timeoutMs?: number;
}

export type ConsistencyName = 'linearizable' | 'lease' | 'session' | 'stale';

export interface ReadCallOptions extends CallOptions {
  /**
   * Default LINEARIZABLE (ReadIndex). LEASE: served by the leader from its lease, falling back
   * to ReadIndex. SESSION: served by any node once it has applied `minRevision`. STALE: any
   * node's applied state at once. Routing: LINEARIZABLE and LEASE go to the leader; SESSION and
   * STALE go to the first endpoint (list your nearest node first), then the others on retry.
   */
  consistency?: Consistency | ConsistencyName;
  /** SESSION reads: wait until this revision is applied. */
  minRevision?: number;
  /** STALE reads: refuse (FAILED_PRECONDITION) if the node may be staler than this. */
  maxStalenessMs?: number;
  /** Send the read to this endpoint instead of routing by mode. */
  endpoint?: string;
  /**
   * Read the state as of this past revision (MVCC). OUT_OF_RANGE when it was compacted
   * (error.compactRevision names the oldest readable one) or is ahead of the cluster.
   */
  revision?: number;
}

export interface LeaderHint {
  id: number;
  /** The leader's client address, when the server knew it. */
  addr?: string;
}

/** Every failure of a KvClient call. `code` is the gRPC status. */
export class KvClientError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    readonly opts: {
      leaderHint?: LeaderHint;
      /** The endpoint whose answer this is (undefined for client-side errors). */
      endpoint?: string;
      /** True when the client is sure the request was never sent to any server. */
      notSent?: boolean;
      /** Attempts made (1 = no retry). */
      attempts?: number;
      /** The server marked the write as certainly not applied (x-raftkv-not-applied). */
      notApplied?: boolean;
      /**
       * An earlier attempt of this operation was sent and not proven unapplied: whatever this
       * (last) attempt says, the operation's outcome is unknown.
       */
      earlierAttemptMayHaveApplied?: boolean;
      /** add() refused by a bound (FAILED_PRECONDITION): the counter's current value. */
      counterValue?: number;
      /** A read below the compacted revision (OUT_OF_RANGE): the oldest readable revision. */
      compactRevision?: number;
    } = {},
  ) {
    super(`${grpc.status[code] ?? code}: ${details}`);
    this.name = 'KvClientError';
  }
  get leaderHint(): LeaderHint | undefined {
    return this.opts.leaderHint;
  }
  get endpoint(): string | undefined {
    return this.opts.endpoint;
  }
  get attempts(): number {
    return this.opts.attempts ?? 1;
  }
  /** add() refused by a bound: the counter's current value. */
  get counterValue(): number | undefined {
    return this.opts.counterValue;
  }
  /** A read below the compacted revision: the oldest readable revision. */
  get compactRevision(): number | undefined {
    return this.opts.compactRevision;
  }
  /** The status name, e.g. "UNAVAILABLE". */
  get codeName(): string {
    return grpc.status[this.code] ?? String(this.code);
  }
}

export interface PutOptions extends WriteOptions {
  /** Return the previous key-value, if any. */
  prevKv?: boolean;
  /** Attach the key to this lease (see client.lease); without it a put detaches the key from any lease. */
  lease?: number;
  /** Apply only while this lock is held with this fencing token (else FAILED_PRECONDITION "stale fencing token"). */
  fence?: FenceSpec;
}

/** A lock's fencing token (LockHandle.fence): guarded writes apply only while it is current. */
export interface FenceSpec {
  lock: Bytes;
  token: number;
}

function fenceOf(f: FenceSpec | undefined): { fence: { lock: Uint8Array; token: number } } | Record<string, never> {
  if (!f) return {};
  if (!Number.isSafeInteger(f.token) || f.token < 1) throw usageError(`fencing token must be a positive integer, got ${f.token}`);
  return { fence: { lock: toBytes(f.lock), token: f.token } };
}
export interface PutResult {
  revision: number;
  prevKv?: KeyValue;
}

export interface GetResult {
  /** Undefined when the key does not exist. */
  value: Uint8Array | undefined;
  kv: KeyValue | undefined;
  header: ReadHeader;
}

export interface DeleteOptions extends WriteOptions {
  /** Delete [key, rangeEnd); "\0" = every key >= key. */
  rangeEnd?: Bytes;
  /** Delete every key starting with `key` (overrides rangeEnd). */
  prefix?: boolean;
  prevKv?: boolean;
  /** Apply only while this fencing token is current. */
  fence?: FenceSpec;
}
export interface DeleteResult {
  revision: number;
  deleted: number;
  prevKvs: KeyValue[];
}

export interface RangeSpec {
  key: Bytes;
  /** Read [key, rangeEnd); "\0" = every key >= key. Empty = just key. */
  rangeEnd?: Bytes;
  /** Every key starting with `key` (overrides rangeEnd). */
  prefix?: boolean;
  /** At most this many kvs (0/undefined = the server's maximum); `more` says if some were left out. */
  limit?: number;
  keysOnly?: boolean;
  countOnly?: boolean;
}
export interface RangeResult {
  kvs: KeyValue[];
  more: boolean;
  /** Keys in the range, ignoring limit. */
  count: number;
  header: ReadHeader;
}

export type CompareTargetName = 'value' | 'version' | 'createRevision' | 'modRevision';
export type CompareOpName = '=' | '==' | '!=' | '>' | '<';

/**
 * One txn condition. Exactly one of value/version/createRevision/modRevision is given; it
 * also names the target unless `target` is set. A missing key has version, createRevision and
 * modRevision 0, and its value compares false against everything.
 */
export interface CompareSpec {
  key: Bytes;
  /** Default '='. */
  result?: CompareOpName | CompareResult;
  target?: CompareTargetName | CompareTarget;
  value?: Bytes;
  version?: number;
  createRevision?: number;
  modRevision?: number;
}

export type TxnOpSpec =
  | { put: { key: Bytes; value: Bytes; prevKv?: boolean } }
  | { range: RangeSpec }
  | { get: { key: Bytes } }
  | { delete: { key: Bytes; rangeEnd?: Bytes; prefix?: boolean; prevKv?: boolean } };

export interface TxnSpec {
  compare?: CompareSpec[];
  success?: TxnOpSpec[];
  failure?: TxnOpSpec[];
  /** Apply the txn only while this fencing token is current (else FAILED_PRECONDITION, nothing applied). */
  fence?: FenceSpec;
}

export type TxnOpResult =
  | { type: 'range'; kvs: KeyValue[]; more: boolean; count: number }
  | ({ type: 'put' } & PutResult)
  | ({ type: 'delete' } & DeleteResult);

export interface TxnResult {
  succeeded: boolean;
  revision: number;
  responses: TxnOpResult[];
}

export interface CompactResult {
  /** The current revision (compaction writes none). */
  revision: number;
  compactRevision: number;
}

export interface AddOptions extends WriteOptions {
  /** The new value must be >= min. */
  min?: number;
  /** The new value must be <= max. */
  max?: number;
}
export interface AddResult {
  /** The counter's value after the add. */
  value: number;
  /** The revision the add wrote (the current one when delta is 0). */
  revision: number;
}

export interface CasResult {
  succeeded: boolean;
  revision: number;
  /** On failure: the key as it was (absent = undefined). */
  current?: KeyValue;
}

export interface StatusResult {
  /** The endpoint that answered. */
  endpoint: string;
  memberId: number;
  leaderId: number;
  raftTerm: number;
  role: string;
  commitIndex: number;
  appliedIndex: number;
  revision: number;
  leaseRemainingTicks: number;
  members: Member[];
}

export type EndpointStatus = { endpoint: string; ok: true; status: StatusResult } | { endpoint: string; ok: false; error: KvClientError };

export interface MembersResult {
  members: Member[];
}

export interface MemberAddResult {
  member: Member;
  members: Member[];
}

type ServiceName = 'KV' | 'Cluster' | 'Admin' | 'Lease' | 'Lock' | 'Election';
/** read: retry freely. write: retry only if certainly not applied. keyed-write: carries an idempotency key, so any retry is safe. */
/** blocking: idempotent and long (Lock, Campaign): retried like keyed-write, one attempt may use the whole deadline. */
export type OpKind = 'read' | 'write' | 'keyed-write' | 'blocking';
/** Where an operation goes: the leader (discovered), one given endpoint, or any endpoint (first, then the others on retry). */
type Target = { to: 'leader' } | { to: 'endpoint'; addr: string } | { to: 'any' };

const DEFAULT_TIMEOUT_MS = 5_000;
const DEFAULT_ATTEMPT_TIMEOUT_MS = 2_000;
const DEFAULT_MAX_RETRIES = 8;
const DEFAULT_BASE_BACKOFF_MS = 25;
const DEFAULT_MAX_BACKOFF_MS = 1_000;
const DEFAULT_DISCOVERY_TIMEOUT_MS = 1_000;
const DEFAULT_MAX_BATCH_ITEMS = 64;
const DEFAULT_MAX_BATCH_BYTES = 256 * 1024;
const DEFAULT_PIPELINE_IDLE_MS = 1_000;
/** Responses (e.g. large ranges) may exceed grpc-js's 4 MiB default. */
const MAX_RECEIVE_MESSAGE_BYTES = 256 * 1024 * 1024;

const enc = new TextEncoder();

export function toBytes(b: Bytes): Uint8Array {
  return typeof b === 'string' ? enc.encode(b) : b;
}

/** UTF-8 text of a key or value (undefined stays undefined). */
export function text(b: Uint8Array): string;
export function text(b: Uint8Array | undefined): string | undefined;
export function text(b: Uint8Array | undefined): string | undefined {
  return b === undefined ? undefined : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
}

/** The range_end selecting every key with the given prefix (etcd semantics; "\0" = to the end). */
export const prefixEnd = prefixEndOf;

function rangeEndOf(key: Uint8Array, rangeEnd: Bytes | undefined, prefix: boolean | undefined): Uint8Array | undefined {
  if (prefix) return prefixEnd(key);
  return rangeEnd === undefined ? undefined : toBytes(rangeEnd);
}

const CONSISTENCY_BY_NAME: Record<ConsistencyName, Consistency> = {
  linearizable: Consistency.Linearizable,
  lease: Consistency.Lease,
  session: Consistency.Session,
  stale: Consistency.Stale,
};

function readOptions(o: ReadCallOptions | undefined): ReadOptions | null {
  if (!o || (o.consistency === undefined && o.minRevision === undefined && o.maxStalenessMs === undefined)) return null;
  let consistency: Consistency | undefined;
  if (typeof o.consistency === 'string') {
    consistency = CONSISTENCY_BY_NAME[o.consistency];
    if (consistency === undefined) throw usageError(`unknown consistency "${o.consistency}"`);
  } else consistency = o.consistency;
  return { consistency: consistency ?? Consistency.Unspecified, minRevision: o.minRevision ?? 0, maxStalenessMs: o.maxStalenessMs ?? 0 };
}

function revisionOf(o: ReadCallOptions): number {
  const r = o.revision ?? 0;
  if (!Number.isSafeInteger(r) || r < 0) throw usageError(`revision must be a non-negative integer, got ${r}`);
  return r;
}

function usageError(msg: string): KvClientError {
  return new KvClientError(grpc.status.INVALID_ARGUMENT, msg, { notSent: true });
}

// ------------------------------------------------------------------ response normalisation

function kvOf(m: KeyValue | null | undefined): KeyValue | undefined {
  if (!m) return undefined;
  const kv: KeyValue = { key: m.key, value: m.value, createRevision: Number(m.createRevision), modRevision: Number(m.modRevision), version: Number(m.version) };
  if (Number(m.lease ?? 0) !== 0) kv.lease = Number(m.lease);
  return kv;
}

function readHeaderOf(h: ReadHeader | null | undefined): ReadHeader {
  return {
    revision: Number(h?.revision ?? 0),
    servedBy: Number(h?.servedBy ?? 0),
    consistencyUsed: h?.consistencyUsed ?? Consistency.Unspecified,
    stalenessMs: Number(h?.stalenessMs ?? 0),
    leaderId: Number(h?.leaderId ?? 0),
    raftTerm: Number(h?.raftTerm ?? 0),
  };
}

function memberOf(m: Member): Member {
  return { id: Number(m.id), peerAddr: m.peerAddr, clientAddr: m.clientAddr, isLearner: m.isLearner };
}

interface RawPutResponse {
  header?: { revision: number } | null;
  prevKv?: KeyValue | null;
}
interface RawDeleteResponse {
  header?: { revision: number } | null;
  deleted: number;
  prevKvs?: KeyValue[];
}
interface RawRangeResponse {
  header?: ReadHeader | null;
  kvs?: KeyValue[];
  more: boolean;
  count: number;
}

function putResultOf(r: RawPutResponse): PutResult {
  const prevKv = kvOf(r.prevKv);
  return prevKv ? { revision: Number(r.header?.revision ?? 0), prevKv } : { revision: Number(r.header?.revision ?? 0) };
}

function deleteResultOf(r: RawDeleteResponse): DeleteResult {
  return { revision: Number(r.header?.revision ?? 0), deleted: Number(r.deleted ?? 0), prevKvs: (r.prevKvs ?? []).map((k) => kvOf(k)!) };
}

function responseOpOf(r: ResponseOp): TxnOpResult {
  if (r.responsePut) return { type: 'put', ...putResultOf(r.responsePut) };
  if (r.responseDelete) return { type: 'delete', ...deleteResultOf(r.responseDelete) };
  const rr = (r.responseRange ?? { kvs: [], more: false, count: 0 }) as RawRangeResponse;
  return { type: 'range', kvs: (rr.kvs ?? []).map((k) => kvOf(k)!), more: rr.more, count: Number(rr.count) };
}

// ------------------------------------------------------------------ txn encoding

const COMPARE_RESULT_BY_NAME: Record<CompareOpName, CompareResult> = {
  '=': CompareResult.Equal,
  '==': CompareResult.Equal,
  '!=': CompareResult.NotEqual,
  '>': CompareResult.Greater,
  '<': CompareResult.Less,
};
const COMPARE_TARGET_BY_NAME: Record<CompareTargetName, CompareTarget> = {
  value: CompareTarget.Value,
  version: CompareTarget.Version,
  createRevision: CompareTarget.CreateRevision,
  modRevision: CompareTarget.ModRevision,
};

function compareOf(c: CompareSpec, i: number): Compare {
  if (c === null || typeof c !== 'object' || c.key === undefined) throw usageError(`compare[${i}] needs a key`);
  const given = (['value', 'version', 'createRevision', 'modRevision'] as const).filter((f) => c[f] !== undefined);
  if (given.length !== 1) throw usageError(`compare[${i}] needs exactly one of value, version, createRevision, modRevision`);
  const field = given[0]!;
  let target: CompareTarget;
  if (c.target === undefined) target = COMPARE_TARGET_BY_NAME[field];
  else if (typeof c.target === 'string') {
    const t = COMPARE_TARGET_BY_NAME[c.target];
    if (t === undefined) throw usageError(`compare[${i}]: unknown target "${c.target}"`);
    target = t;
  } else target = c.target;
  if (target !== COMPARE_TARGET_BY_NAME[field]) throw usageError(`compare[${i}]: target ${CompareTarget[target]} does not match the given field ${field}`);
  let result: CompareResult;
  if (c.result === undefined) result = CompareResult.Equal;
  else if (typeof c.result === 'string') {
    const r = COMPARE_RESULT_BY_NAME[c.result];
    if (r === undefined) throw usageError(`compare[${i}]: unknown result "${c.result}" (use =, !=, >, <)`);
    result = r;
  } else result = c.result;
  const out: Compare = { key: toBytes(c.key), target, result };
  if (field === 'value') out.value = toBytes(c.value!);
  else out[field] = Number(c[field]);
  return out;
}

function rangeRequestOf(s: RangeSpec): RangeRequest {
  const key = toBytes(s.key);
  const req: RangeRequest = { key, limit: s.limit ?? 0, keysOnly: s.keysOnly ?? false, countOnly: s.countOnly ?? false };
  const end = rangeEndOf(key, s.rangeEnd, s.prefix);
  if (end) req.rangeEnd = end;
  return req;
}

function requestOpOf(op: TxnOpSpec, where: string): RequestOp {
  if (op === null || typeof op !== 'object') throw usageError(`${where} is not an operation`);
  const kinds = Object.keys(op);
  if (kinds.length !== 1) throw usageError(`${where} needs exactly one of put, get, range, delete`);
  if ('put' in op) {
    if (op.put?.key === undefined || op.put.value === undefined) throw usageError(`${where}.put needs key and value`);
    return { requestPut: { key: toBytes(op.put.key), value: toBytes(op.put.value), prevKv: op.put.prevKv ?? false } };
  }
  if ('get' in op) {
    if (op.get?.key === undefined) throw usageError(`${where}.get needs a key`);
    return { requestRange: rangeRequestOf({ key: op.get.key }) };
  }
  if ('range' in op) {
    if (op.range?.key === undefined) throw usageError(`${where}.range needs a key`);
    return { requestRange: rangeRequestOf(op.range) };
  }
  if ('delete' in op) {
    if (op.delete?.key === undefined) throw usageError(`${where}.delete needs a key`);
    const key = toBytes(op.delete.key);
    const end = rangeEndOf(key, op.delete.rangeEnd, op.delete.prefix);
    return { requestDelete: end ? { key, rangeEnd: end, prevKv: op.delete.prevKv ?? false } : { key, prevKv: op.delete.prevKv ?? false } };
  }
  throw usageError(`${where}: unknown operation "${kinds[0]}" (use put, get, range, delete)`);
}

// ------------------------------------------------------------------ retry classification

/** True when the error proves the server did not (and never will) apply the write. */
export function writeDefinitelyNotApplied(e: KvClientError): boolean {
  if (e.opts.earlierAttemptMayHaveApplied) return false;
  if (e.opts.notSent || e.opts.notApplied) return true;
  // grpc-js never sent the request (connection refused, nothing listening).
  return e.code === grpc.status.UNAVAILABLE && e.details.startsWith('No connection established');
}

function retryable(e: KvClientError, kind: OpKind): boolean {
  if (e.code === grpc.status.CANCELLED && e.opts.notSent) return false; // client closed
  if (kind === 'write') return writeDefinitelyNotApplied(e);
  if (kind === 'keyed-write' || kind === 'blocking') {
    // The server returns the first result for a repeated key: a retry cannot apply twice.
    // (Refusals like "idempotency key expired/reused" are FAILED_PRECONDITION: final.)
    if (e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED) return true;
    return e.code === grpc.status.RESOURCE_EXHAUSTED && (e.opts.notApplied ?? false);
  }
  // Reads: running one twice is harmless; a timed-out attempt (per-attempt deadline) is retried.
  if (e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED) return true;
  return e.code === grpc.status.RESOURCE_EXHAUSTED && (e.opts.notApplied ?? false);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

function metadataString(md: grpc.Metadata | undefined, key: string): string | undefined {
  const v = md?.get(key)[0];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.toString('utf8');
}

function toClientError(e: unknown, endpoint: string | undefined): KvClientError {
  if (e instanceof KvClientError) return e;
  const se = e as Partial<grpc.ServiceError>;
  if (typeof se?.code === 'number') {
    const id = Number(metadataString(se.metadata, LEADER_ID_METADATA_KEY) ?? NaN);
    const addr = metadataString(se.metadata, LEADER_ADDR_METADATA_KEY);
    const leaderHint = Number.isFinite(id) && id > 0 ? { id, ...(addr ? { addr } : {}) } : undefined;
    const notApplied = metadataString(se.metadata, NOT_APPLIED_METADATA_KEY) === '1';
    const counter = metadataString(se.metadata, COUNTER_VALUE_METADATA_KEY);
    const compacted = metadataString(se.metadata, COMPACT_REVISION_METADATA_KEY);
    return new KvClientError(se.code, tidyDetails(se.details ?? se.message ?? ''), {
      endpoint,
      notApplied,
      ...(leaderHint ? { leaderHint } : {}),
      ...(counter !== undefined ? { counterValue: Number(counter) } : {}),
      ...(compacted !== undefined ? { compactRevision: Number(compacted) } : {}),
    });
  }
  return new KvClientError(grpc.status.INTERNAL, (e as Error)?.message ?? String(e), { endpoint });
}

/**
 * Reads the results of a KV.Batch or KV.Pipeline call: `onResults` per message, then `onEnd`
 * once: undefined when the call ended OK, else the raw grpc-js error. grpc-js emits 'status'
 * (after 'error' when not OK) right as the call ends, while results that arrived just before may
 * still sit in the stream's buffer (delivered on the next tick): `onEnd` comes after them. On OK
 * every result has then been delivered; on a failure (deadline, cancel, reset) grpc-js may drop
 * results it had not delivered yet, and those items get the call's error, which never claims
 * they were not applied.
 */
function readResults(stream: grpc.ClientReadableStream<unknown>, onResults: (results: BatchResultMsg[]) => void, onEnd: (error: unknown) => void): void {
  let error: unknown;
  stream.on('data', (msg: { results?: BatchResultMsg[] }) => onResults(msg.results ?? []));
  stream.on('error', (e: unknown) => {
    error = e;
  });
  stream.on('status', (st: grpc.StatusObject) =>
    setImmediate(() => onEnd(st.code === grpc.status.OK ? undefined : (error ?? { code: st.code, details: st.details, metadata: st.metadata }))),
  );
}

// ------------------------------------------------------------------ the client

let definitions: Record<ServiceName, grpc.ServiceDefinition> | undefined;
function methodDef(service: ServiceName, method: string): grpc.MethodDefinition<unknown, unknown> {
  definitions ??= {
    KV: kvServiceDefinition('KV'),
    Cluster: kvServiceDefinition('Cluster'),
    Admin: kvServiceDefinition('Admin'),
    Lease: concurrencyServiceDefinition('Lease'),
    Lock: concurrencyServiceDefinition('Lock'),
    Election: concurrencyServiceDefinition('Election'),
  };
  const m = definitions[service][method];
  if (!m) throw new Error(`unknown method ${service}.${method}`);
  return m as grpc.MethodDefinition<unknown, unknown>;
}

export class KvClient {
  private readonly endpoints: string[];
  readonly clientId: string;
  private writeSeq = 0;
  private readonly attemptTimeoutMs: number;
  private readonly defaultTimeoutMs: number;
  private readonly maxRetries: number;
  private readonly baseBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly discoveryTimeoutMs: number;
  /** One channel per address, endpoints and hinted addresses alike. */
  private readonly channels = new Map<string, grpc.Client>();
  /** One coalescer per address (undefined when coalesceCalls is off). */
  private readonly coalescers = new Map<string, CallCoalescer>();
  private readonly coalesceLimits: CoalescerLimits | undefined;
  private readonly channelOptions: grpc.ChannelOptions;
  private leaderAddr: string | undefined;
  private closed = false;

  constructor(opts: KvClientOptions) {
    const eps = (opts.endpoints ?? []).map((e) => e.trim()).filter((e) => e.length > 0);
    if (eps.length === 0) throw new TypeError('KvClient needs at least one endpoint');
    this.endpoints = [...new Set(eps)];
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxRetries = opts.maxRetries ?? DEFAULT_MAX_RETRIES;
    this.baseBackoffMs = opts.baseBackoffMs ?? DEFAULT_BASE_BACKOFF_MS;
    this.maxBackoffMs = opts.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
    this.discoveryTimeoutMs = opts.discoveryTimeoutMs ?? DEFAULT_DISCOVERY_TIMEOUT_MS;
    this.clientId = opts.clientId ?? randomUUID();
    if (this.clientId.length === 0 || this.clientId.length > 256) throw new TypeError('clientId must be 1..256 characters');
    this.attemptTimeoutMs = opts.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
    this.channelOptions = { ...opts.channelOptions, 'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_BYTES };
    if (opts.coalesceCalls ?? true) {
      const maxBatchItems = opts.maxBatchItems ?? DEFAULT_MAX_BATCH_ITEMS;
      const maxBatchBytes = opts.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
      if (!Number.isSafeInteger(maxBatchItems) || maxBatchItems < 1) throw new TypeError(`maxBatchItems must be a positive integer, got ${maxBatchItems}`);
      if (!Number.isSafeInteger(maxBatchBytes) || maxBatchBytes < 1) throw new TypeError(`maxBatchBytes must be a positive integer, got ${maxBatchBytes}`);
      const pipelineIdleMs = opts.pipelineIdleMs ?? DEFAULT_PIPELINE_IDLE_MS;
      if (!Number.isFinite(pipelineIdleMs) || pipelineIdleMs < 0) throw new TypeError(`pipelineIdleMs must be a number >= 0, got ${pipelineIdleMs}`);
      this.coalesceLimits = { maxBatchItems, maxBatchBytes, pipelineIdleMs };
    }
  }

  /** The key for the next logical write (the same object is reused by its retries). */
  private idempotencyKeyFor(opts: WriteOptions): { clientId: string; seq: number } {
    if (opts.idempotencyKey) {
      const k = opts.idempotencyKey;
      if (!k.clientId || !Number.isSafeInteger(k.seq) || k.seq < 1) throw usageError('idempotencyKey needs a non-empty clientId and an integer seq >= 1');
      return { clientId: k.clientId, seq: k.seq };
    }
    return { clientId: this.clientId, seq: ++this.writeSeq };
  }

  /** The leader's client address as last learned (undefined until discovered). */
  get cachedLeader(): string | undefined {
    return this.leaderAddr;
  }

  // ---------------------------------------------------------------- leases, locks, elections

  private leaseClient: LeaseClient | undefined;

  /** Leases: grant, revoke, keepAlive (a stream), ttl. See lease.ts. */
  get lease(): LeaseClient {
    this.leaseClient ??= new LeaseClient(this);
    return this.leaseClient;
  }

  /**
   * Waits for lock `name` (fair FIFO queue) and returns it with its fencing token; pass
   * `handle.fence` to put/delete/txn so a write after losing the lock is rejected. See lock.ts.
   */
  lock(name: Bytes, opts: LockOptions = {}): Promise<LockHandle> {
    return lockWith(this, name, opts);
  }

  /** Leader election `name`: campaign, proclaim, resign, leader, observe. See election.ts. */
  election(name: Bytes): Election {
    return new Election(this, name);
  }

  /** @internal A unary call of the Lease/Lock/Election services to the leader, with this client's retry policy. */
  invoke<Res>(service: 'Lease' | 'Lock' | 'Election', method: string, req: unknown, kind: OpKind, timeoutMs?: number): Promise<Res> {
    return this.call<Res>(service, method, req, kind, { to: 'leader' }, timeoutMs);
  }

  /** @internal The leader's channel and a method's definition, for streaming calls. */
  async streamTo(service: 'Lease' | 'Election', method: string, timeoutMs?: number): Promise<{ addr: string; channel: grpc.Client; def: grpc.MethodDefinition<unknown, unknown> }> {
    const addr = await this.leader(Date.now() + (timeoutMs ?? this.defaultTimeoutMs));
    return { addr, channel: this.channel(addr), def: methodDef(service, method) };
  }

  /** @internal Forget the cached leader (a stream to it failed); the next call rediscovers. */
  forgetLeader(addr?: string): void {
    if (addr === undefined || this.leaderAddr === addr) this.leaderAddr = undefined;
  }

  /** @internal Follow a leader hint from a stream's error. */
  useLeaderHint(e: KvClientError): void {
    if (e.leaderHint?.addr) this.leaderAddr = e.leaderHint.addr;
  }

  /**
   * Streams changes to `key` (or a prefix/range) from `startRevision` (default: after the
   * current revision), resuming on another endpoint after a node failure with no event lost
   * or repeated. See watch.ts.
   */
  async *watch(key: Bytes, opts: WatchOptions = {}): AsyncGenerator<WatchBatch> {
    const startRevision = opts.startRevision ?? (await this.status()).revision + 1;
    yield* watchChanges(this.endpoints, key, { ...opts, startRevision });
  }

  /**
   * Runs `fn` as an optimistic interactive transaction: reads at one revision, buffered writes,
   * committed as one server Txn comparing every key read; re-run on conflict (bounded).
   * See transaction.ts for the guarantees.
   */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, opts: TransactionOptions = {}): Promise<T> {
    return runTransaction(this, fn, opts);
  }

  /**
   * A session for read-your-writes and monotonic reads on any node (SESSION consistency);
   * `fromToken` continues another session's causality (see Session.token()).
   */
  session(fromToken?: string): Session {
    return new Session(this, fromToken);
  }

  // ---------------------------------------------------------------- KV

  async put(key: Bytes, value: Bytes, opts: PutOptions = {}): Promise<PutResult> {
    const lease = opts.lease ?? 0;
    if (!Number.isSafeInteger(lease) || lease < 0) throw usageError(`lease must be a lease id, got ${lease}`);
    const req = { key: toBytes(key), value: toBytes(value), prevKv: opts.prevKv ?? false, lease, ...fenceOf(opts.fence), idempotencyKey: this.idempotencyKeyFor(opts) };
    const r = await this.call<RawPutResponse>('KV', 'Put', req, 'keyed-write', { to: 'leader' }, opts.timeoutMs);
    return putResultOf(r);
  }

  async get(key: Bytes, opts: ReadCallOptions = {}): Promise<GetResult> {
    const req = { key: toBytes(key), read: readOptions(opts), revision: revisionOf(opts) };
    const r = await this.call<{ header?: ReadHeader | null; kv?: KeyValue | null }>('KV', 'Get', req, 'read', this.readTarget(opts), opts.timeoutMs);
    const kv = kvOf(r.kv);
    return { value: kv?.value, kv, header: readHeaderOf(r.header) };
  }

  async delete(key: Bytes, opts: DeleteOptions = {}): Promise<DeleteResult> {
    const k = toBytes(key);
    const end = rangeEndOf(k, opts.rangeEnd, opts.prefix);
    const base = end ? { key: k, rangeEnd: end, prevKv: opts.prevKv ?? false } : { key: k, prevKv: opts.prevKv ?? false };
    const req = { ...base, ...fenceOf(opts.fence), idempotencyKey: this.idempotencyKeyFor(opts) };
    const r = await this.call<RawDeleteResponse>('KV', 'Delete', req, 'keyed-write', { to: 'leader' }, opts.timeoutMs);
    return deleteResultOf(r);
  }

  async range(spec: RangeSpec, opts: ReadCallOptions = {}): Promise<RangeResult> {
    const req = { ...rangeRequestOf(spec), read: readOptions(opts), revision: revisionOf(opts) };
    const r = await this.call<RawRangeResponse>('KV', 'Range', req, 'read', this.readTarget(opts), opts.timeoutMs);
    return { kvs: (r.kvs ?? []).map((k) => kvOf(k)!), more: r.more, count: Number(r.count), header: readHeaderOf(r.header) };
  }

  /** One atomic compare-and-act: all `compare`s hold → `success` runs, else `failure`. */
  async txn(spec: TxnSpec, opts: WriteOptions = {}): Promise<TxnResult> {
    const req = {
      compare: (spec.compare ?? []).map(compareOf),
      success: (spec.success ?? []).map((op, i) => requestOpOf(op, `success[${i}]`)),
      failure: (spec.failure ?? []).map((op, i) => requestOpOf(op, `failure[${i}]`)),
      ...fenceOf(spec.fence),
      idempotencyKey: this.idempotencyKeyFor(opts),
    };
    const r = await this.call<{ header?: { revision: number } | null; succeeded: boolean; responses?: ResponseOp[] }>('KV', 'Txn', req, 'keyed-write', { to: 'leader' }, opts.timeoutMs);
    return { succeeded: r.succeeded, revision: Number(r.header?.revision ?? 0), responses: (r.responses ?? []).map(responseOpOf) };
  }

  /**
   * Compacts the MVCC history: reads below `revision` then fail with OUT_OF_RANGE. `revision`
   * must be above the current compacted revision and at most the current revision.
   */
  async compact(revision: number, opts: CallOptions = {}): Promise<CompactResult> {
    if (!Number.isSafeInteger(revision) || revision < 1) throw usageError(`compact revision must be a positive integer, got ${revision}`);
    const r = await this.call<{ header?: { revision: number } | null; compactRevision?: number }>('KV', 'Compact', { revision }, 'write', { to: 'leader' }, opts.timeoutMs);
    return { revision: Number(r.header?.revision ?? 0), compactRevision: Number(r.compactRevision ?? revision) };
  }

  /**
   * Atomically adds `delta` to the integer counter at `key` (a missing key counts as 0; the
   * value is stored as decimal text). With bounds, the new value must satisfy
   * min <= value <= max, otherwise nothing changes and this throws FAILED_PRECONDITION with
   * `error.counterValue` = the current value. Values stay within +-(2^53-1).
   */
  async add(key: Bytes, delta: number, opts: AddOptions = {}): Promise<AddResult> {
    if (!Number.isSafeInteger(delta)) throw usageError(`delta must be an integer within +-(2^53-1), got ${delta}`);
    for (const b of ['min', 'max'] as const) {
      const v = opts[b];
      if (v !== undefined && !Number.isSafeInteger(v)) throw usageError(`${b} must be an integer within +-(2^53-1), got ${v}`);
    }
    if (opts.min !== undefined && opts.max !== undefined && opts.min > opts.max) throw usageError(`min ${opts.min} is greater than max ${opts.max}`);
    const req = { key: toBytes(key), delta, min: opts.min ?? null, max: opts.max ?? null, idempotencyKey: this.idempotencyKeyFor(opts) };
    const r = await this.call<{ header?: { revision: number } | null; value?: number }>('KV', 'Counter', req, 'keyed-write', { to: 'leader' }, opts.timeoutMs);
    return { value: Number(r.value ?? 0), revision: Number(r.header?.revision ?? 0) };
  }

  /**
   * Compare-and-swap on the value: writes `next` only if the key currently holds `expected`
   * (`null` = only if the key does not exist). One atomic txn; on failure `current` is the
   * key as it was (undefined if absent).
   */
  async cas(key: Bytes, expected: Bytes | null, next: Bytes, opts: CallOptions = {}): Promise<CasResult> {
    const compare: CompareSpec = expected === null ? { key, version: 0 } : { key, value: expected };
    return this.casWith(key, compare, next, opts);
  }

  /** Compare-and-swap on the revision: writes `next` only if the key's modRevision is `expectedModRevision` (0 = absent). */
  async casRevision(key: Bytes, expectedModRevision: number, next: Bytes, opts: CallOptions = {}): Promise<CasResult> {
    if (!Number.isSafeInteger(expectedModRevision) || expectedModRevision < 0) throw usageError(`expected revision must be a non-negative integer, got ${expectedModRevision}`);
    return this.casWith(key, { key, modRevision: expectedModRevision }, next, opts);
  }

  private async casWith(key: Bytes, compare: CompareSpec, next: Bytes, opts: CallOptions): Promise<CasResult> {
    const r = await this.txn({ compare: [compare], success: [{ put: { key, value: next } }], failure: [{ get: { key } }] }, opts);
    if (r.succeeded) return { succeeded: true, revision: r.revision };
    const got = r.responses[0];
    const current = got && got.type === 'range' ? got.kvs[0] : undefined;
    return current ? { succeeded: false, revision: r.revision, current } : { succeeded: false, revision: r.revision };
  }

  // ---------------------------------------------------------------- Cluster

  /** Status of one endpoint (any address), or of the leader when none is given. */
  async status(endpoint?: string, opts: CallOptions = {}): Promise<StatusResult> {
    const target: Target = endpoint ? { to: 'endpoint', addr: endpoint } : { to: 'leader' };
    let answered = '';
    const r = await this.call<Omit<StatusResult, 'endpoint'>>('Cluster', 'Status', {}, 'read', target, opts.timeoutMs, (addr) => (answered = addr));
    return statusOf(answered, r);
  }

  /** Status of every configured endpoint, in order; unreachable ones carry their error. */
  async statusAll(opts: CallOptions = {}): Promise<EndpointStatus[]> {
    return Promise.all(
      this.endpoints.map(async (endpoint): Promise<EndpointStatus> => {
        try {
          return { endpoint, ok: true, status: await this.status(endpoint, { timeoutMs: opts.timeoutMs ?? this.defaultTimeoutMs }) };
        } catch (e) {
          return { endpoint, ok: false, error: toClientError(e, endpoint) };
        }
      }),
    );
  }

  /** The membership as the leader sees it. */
  async members(opts: CallOptions = {}): Promise<Member[]> {
    const r = await this.call<{ members?: Member[] }>('Cluster', 'MemberList', {}, 'read', { to: 'leader' }, opts.timeoutMs);
    return (r.members ?? []).map(memberOf);
  }

  /** Adds a voter. id 0 lets the server pick. Not retried once it may have been proposed. */
  memberAdd(id: number, peerAddr: string, clientAddr = '', opts: CallOptions = {}): Promise<MemberAddResult> {
    return this.addMember('MemberAdd', id, peerAddr, clientAddr, opts);
  }

  memberAddLearner(id: number, peerAddr: string, clientAddr = '', opts: CallOptions = {}): Promise<MemberAddResult> {
    return this.addMember('MemberAddLearner', id, peerAddr, clientAddr, opts);
  }

  async memberPromote(id: number, opts: CallOptions = {}): Promise<Member[]> {
    const r = await this.call<{ members?: Member[] }>('Cluster', 'MemberPromote', { id }, 'write', { to: 'leader' }, opts.timeoutMs);
    return (r.members ?? []).map(memberOf);
  }

  async memberRemove(id: number, opts: CallOptions = {}): Promise<Member[]> {
    const r = await this.call<{ members?: Member[] }>('Cluster', 'MemberRemove', { id }, 'write', { to: 'leader' }, opts.timeoutMs);
    return (r.members ?? []).map(memberOf);
  }

  /** Asks the leader to hand leadership to `id`; resolves with the new leader id. */
  async leaderTransfer(id: number, opts: CallOptions = {}): Promise<number> {
    const r = await this.call<{ leaderId: number }>('Cluster', 'LeaderTransfer', { targetId: id }, 'write', { to: 'leader' }, opts.timeoutMs);
    this.leaderAddr = undefined; // leadership moved (or is moving): rediscover on the next call
    return Number(r.leaderId);
  }

  // ---------------------------------------------------------------- Admin

  /** Switches on fault injection on the peer transport of the node at `endpoint`. */
  async setFaults(endpoint: string, cfg: FaultConfig, opts: CallOptions = {}): Promise<FaultConfig> {
    const faults = {
      dropProbability: cfg.dropProbability ?? 0,
      delayMs: cfg.delayMs ?? 0,
      partitionFrom: cfg.partitionFrom ?? [],
      partitionDirection: cfg.partitionDirection ?? PartitionDirection.Both,
    };
    const r = await this.call<{ faults?: FaultConfig | null }>('Admin', 'SetFaults', { faults }, 'read', { to: 'endpoint', addr: endpoint }, opts.timeoutMs);
    return faultsOf(r.faults);
  }

  /** TEST ONLY: makes `endpoint`'s time run at `rate` x real time (clock drift; see kv.proto). */
  async setClockRate(endpoint: string, rate: number, opts: CallOptions = {}): Promise<number> {
    const r = await this.call<{ rate?: number }>('Admin', 'SetClockRate', { rate }, 'read', { to: 'endpoint', addr: endpoint }, opts.timeoutMs);
    return Number(r.rate ?? 0);
  }

  async clearFaults(endpoint: string, opts: CallOptions = {}): Promise<FaultConfig> {
    const r = await this.call<{ faults?: FaultConfig | null }>('Admin', 'ClearFaults', {}, 'read', { to: 'endpoint', addr: endpoint }, opts.timeoutMs);
    return faultsOf(r.faults);
  }

  /** Closes every channel. Calls after close fail with CANCELLED. Idempotent. */
  close(): void {
    this.closed = true;
    for (const c of this.coalescers.values()) c.close();
    for (const c of this.channels.values()) c.close();
    this.channels.clear();
    this.coalescers.clear();
    this.leaderAddr = undefined;
  }

  // ---------------------------------------------------------------- plumbing

  private async addMember(method: 'MemberAdd' | 'MemberAddLearner', id: number, peerAddr: string, clientAddr: string, opts: CallOptions): Promise<MemberAddResult> {
    const r = await this.call<{ member?: Member | null; members?: Member[] }>('Cluster', method, { id, peerAddr, clientAddr }, 'write', { to: 'leader' }, opts.timeoutMs);
    return { member: memberOf(r.member ?? { id, peerAddr, clientAddr, isLearner: method === 'MemberAddLearner' }), members: (r.members ?? []).map(memberOf) };
  }

  private channel(addr: string): grpc.Client {
    if (this.closed) throw new KvClientError(grpc.status.CANCELLED, 'client is closed', { notSent: true });
    let c = this.channels.get(addr);
    if (!c) {
      c = new grpc.Client(addr, grpc.credentials.createInsecure(), this.channelOptions);
      this.channels.set(addr, c);
    }
    return c;
  }

  /** One attempt against one address, bounded by `deadline` (epoch ms); KV calls may travel in a batch. */
  private once<Res>(addr: string, service: ServiceName, method: string, req: unknown, deadline: number): Promise<Res> {
    if (service === 'KV' && this.coalesceLimits && isBatchable(method)) {
      return this.coalescer(addr, this.coalesceLimits)
        .call(method, req, deadline)
        .then(
          (res) => res as Res,
          (e: unknown) => Promise.reject(toClientError(e, addr)),
        );
    }
    return this.unary<Res>(addr, service, method, req, deadline).catch((e: unknown) => Promise.reject(toClientError(e, addr)));
  }

  /** One unary call; rejects with grpc-js's error (or the client's own, e.g. closed). */
  private unary<Res>(addr: string, service: ServiceName, method: string, req: unknown, deadline: number): Promise<Res> {
    const m = methodDef(service, method);
    // this.channel throws once the client is closed: inside the executor that is a rejection.
    return new Promise<Res>((resolve, reject) => {
      this.channel(addr).makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, new grpc.Metadata(), { deadline }, (err, res) => {
        if (err) reject(err);
        else resolve(res as Res);
      });
    });
  }

  /** One KV.Batch call (server-streamed results); the request arrives encoded (the coalescer frames each item once). */
  private batchStream(addr: string, request: Buffer, deadline: number, onResults: (results: BatchResultMsg[]) => void): Promise<void> {
    const m = methodDef('KV', 'Batch');
    return new Promise<void>((resolve, reject) => {
      const stream = this.channel(addr).makeServerStreamRequest(m.path, (b: unknown) => b as Buffer, m.responseDeserialize, request, new grpc.Metadata(), { deadline });
      readResults(stream, onResults, (error) => (error === undefined ? resolve() : reject(error)));
    });
  }

  /** Opens a KV.Pipeline stream to `addr` (see PipelineOpen); throws once the client is closed. */
  private pipelineStream(addr: string, onResults: (results: BatchResultMsg[]) => void, onEnd: (error: unknown) => void): PipelineCall {
    const m = methodDef('KV', 'Pipeline');
    const stream = this.channel(addr).makeBidiStreamRequest(m.path, (b: unknown) => b as Buffer, m.responseDeserialize, new grpc.Metadata(), {});
    readResults(stream, onResults, onEnd);
    return {
      write: (request) => void stream.write(request),
      end: () => stream.end(),
      cancel: () => stream.cancel(),
    };
  }

  private coalescer(addr: string, limits: CoalescerLimits): CallCoalescer {
    let c = this.coalescers.get(addr);
    if (!c) {
      c = new CallCoalescer(
        (method, req, deadline) => this.unary(addr, 'KV', method, req, deadline),
        (request, deadline, onResults) => this.batchStream(addr, request, deadline, onResults),
        limits,
        (onResults, onEnd) => this.pipelineStream(addr, onResults, onEnd),
      );
      this.coalescers.set(addr, c);
    }
    return c;
  }

  private backoffMs(retry: number): number {
    const cap = Math.min(this.maxBackoffMs, this.baseBackoffMs * 2 ** Math.min(retry - 1, 20));
    return Math.random() * cap; // full jitter
  }

  /**
   * Runs one operation with the retry policy of `kind` until it succeeds, fails for good, runs
   * out of retries or passes its deadline (one deadline covers every attempt).
   */
  private async call<Res>(service: ServiceName, method: string, req: unknown, kind: OpKind, target: Target, timeoutMs: number | undefined, onAnswer?: (addr: string) => void): Promise<Res> {
    const deadline = Date.now() + (timeoutMs ?? this.defaultTimeoutMs);
    let retries = 0;
    let previous: KvClientError | undefined;
    // Once any attempt may have reached a server, no later failure can prove the operation was
    // not applied: a keyed write's earlier attempt can still commit (or already has, its answer
    // lost) while a retry finds no leader. The final error then says so.
    let maybeApplied = false;
    let next: string | undefined = this.firstAddress(target);
    for (;;) {
      let addr: string | undefined;
      try {
        addr = next ?? (await this.leader(deadline));
        // A plain write gets the whole deadline (it cannot be retried after a timeout anyway);
        // reads and keyed writes get a shorter per-attempt deadline so a hung attempt is retried.
        const attemptDeadline = kind === 'write' || kind === 'blocking' ? deadline : Math.min(deadline, Date.now() + this.attemptTimeoutMs);
        const res = await this.once<Res>(addr, service, method, req, attemptDeadline);
        onAnswer?.(addr);
        return res;
      } catch (e) {
        const err = toClientError(e, addr);
        const attempts = retries + 1;
        // A deadline that ran out during a retry says little; name the failure that caused the retries.
        const details =
          err.code === grpc.status.DEADLINE_EXCEEDED && previous ? `${err.details} (earlier attempt: ${previous.codeName}: ${previous.details})` : err.details;
        const final = new KvClientError(err.code, details, { ...err.opts, attempts, ...(maybeApplied ? { earlierAttemptMayHaveApplied: true } : {}) });
        maybeApplied ||= !writeDefinitelyNotApplied(err);
        previous = err;
        if (!retryable(err, kind) || retries >= this.maxRetries || Date.now() >= deadline) throw final;
        retries++;
        // Where the next attempt goes.
        next = target.to === 'any' ? this.endpoints[retries % this.endpoints.length] : this.firstAddress(target);
        if (target.to === 'leader') {
          const hinted = err.leaderHint?.addr;
          if (addr !== undefined && this.leaderAddr === addr) this.leaderAddr = undefined;
          if (hinted && hinted !== addr) {
            // Follow the hint at once: the server named the leader.
            this.leaderAddr = hinted;
            next = hinted;
            continue;
          }
        }
        const wait = Math.min(this.backoffMs(retries), deadline - Date.now() - 1);
        if (wait <= 0) throw final;
        await sleep(wait);
      }
    }
  }

  private firstAddress(target: Target): string | undefined {
    if (target.to === 'endpoint') return target.addr;
    if (target.to === 'any') return this.endpoints[0];
    return undefined;
  }

  /** Where a read goes, by its consistency mode (see ReadCallOptions). */
  private readTarget(opts: ReadCallOptions): Target {
    if (opts.endpoint) return { to: 'endpoint', addr: opts.endpoint };
    const c = typeof opts.consistency === 'string' ? CONSISTENCY_BY_NAME[opts.consistency] : opts.consistency;
    return c === Consistency.Session || c === Consistency.Stale ? { to: 'any' } : { to: 'leader' };
  }

  /** The leader's client address: cached, or discovered by asking every known endpoint. */
  private async leader(deadline: number): Promise<string> {
    if (this.leaderAddr) return this.leaderAddr;
    const addr = await this.discover(deadline);
    this.leaderAddr = addr;
    return addr;
  }

  private async discover(deadline: number): Promise<string> {
    const statusDeadline = Math.min(deadline, Date.now() + this.discoveryTimeoutMs);
    const results = await Promise.all(
      this.endpoints.map((addr) =>
        this.once<Omit<StatusResult, 'endpoint'>>(addr, 'Cluster', 'Status', {}, statusDeadline).then(
          (s) => ({ addr, s }),
          (e: unknown) => ({ addr, e: toClientError(e, addr) }),
        ),
      ),
    );
    let best: { addr: string; term: number } | undefined;
    let hinted: { id: number; term: number; members: Member[] } | undefined;
    const errors: string[] = [];
    for (const r of results) {
      if (!('s' in r)) {
        if (r.e.code === grpc.status.CANCELLED && r.e.opts.notSent) throw r.e;
        errors.push(`${r.addr}: ${r.e.message}`);
        continue;
      }
      const term = Number(r.s.raftTerm);
      if (r.s.role === 'LEADER' && (!best || term > best.term)) best = { addr: r.addr, term };
      const lead = Number(r.s.leaderId);
      if (lead !== 0 && (!hinted || term > hinted.term)) hinted = { id: lead, term, members: r.s.members ?? [] };
    }
    if (best && (!hinted || best.term >= hinted.term)) return best.addr;
    if (hinted) {
      const m = hinted.members.find((x) => Number(x.id) === hinted.id);
      if (m?.clientAddr) return m.clientAddr;
    }
    const why = errors.length ? `; ${errors.join('; ')}` : '';
    throw new KvClientError(grpc.status.UNAVAILABLE, `no leader known to any endpoint (${this.endpoints.join(', ')})${why}`, { notSent: true });
  }
}

function statusOf(endpoint: string, r: Omit<StatusResult, 'endpoint'>): StatusResult {
  return {
    endpoint,
    memberId: Number(r.memberId),
    leaderId: Number(r.leaderId),
    raftTerm: Number(r.raftTerm),
    role: r.role,
    commitIndex: Number(r.commitIndex),
    appliedIndex: Number(r.appliedIndex),
    revision: Number(r.revision),
    leaseRemainingTicks: Number(r.leaseRemainingTicks),
    members: (r.members ?? []).map(memberOf),
  };
}

function faultsOf(f: FaultConfig | null | undefined): FaultConfig {
  return {
    dropProbability: f?.dropProbability ?? 0,
    delayMs: Number(f?.delayMs ?? 0),
    partitionFrom: (f?.partitionFrom ?? []).map(Number),
    partitionDirection: f?.partitionDirection ?? PartitionDirection.Both,
  };
}

/** grpc-js ends connection errors with "Resolution note: " and nothing after it on loopback; drop the empty tail. */
export function tidyDetails(details: string): string {
  return details.replace(/\.? Resolution note: *$/, '');
}
