// gRPC handlers of the public API (KV, Cluster, Admin). Every request is validated against
// the node's limits before anything is proposed; every failure is a typed KvError mapped to
// one gRPC status.

import * as grpc from '@grpc/grpc-js';
import {
  COMPACT_REVISION_METADATA_KEY,
  Consistency,
  COUNTER_VALUE_METADATA_KEY,
  encodeCommand,
  type Command,
  type CompactRequest,
  type CounterRequest,
  type DeleteRequest,
  type GetRequest,
  type PutRequest,
  type RangeRequest,
  type ReadHeader,
  type ReadOptions,
  type TxnRequest,
} from '../wire/kv-proto.js';
import { ConfChangeType, StateRole, type ConfChange } from '../raft/index.js';
import { CompactedError, FutureRevisionError, type ApplyResult } from '../state-machine/index.js';
import type { FaultyTransport } from '../transport/index.js';
import { encodeMemberContext } from '../transport/index.js';
import type { Limits } from './config.js';
import { failedPrecondition, invalidArgument, KvError, notFound, resourceExhausted, unavailable, unavailableNotApplied } from './errors.js';
import type { NodeHost } from './node-host.js';

type Handler<Req, Res> = (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>;
/** A KV method's work, given its request and how long it may take (ms); shared by the unary call and Batch. */
type KvOp = (req: never, timeoutMs: number) => Promise<unknown>;

/** A typed failure as a status; anything else as INTERNAL. */
function serviceErrorOf(e: unknown): Partial<grpc.ServiceError> {
  if (e instanceof KvError) return e.toServiceError();
  return { code: grpc.status.INTERNAL, details: (e as Error)?.message ?? String(e) };
}

/** Wraps an async handler: typed errors become statuses, anything else INTERNAL (logged). */
function unary<Req, Res>(fn: Handler<Req, Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, cb) => {
    fn(call.request, call).then(
      (res) => cb(null, res),
      (e: unknown) => cb(serviceErrorOf(e) as grpc.ServiceError),
    );
  };
}

/** A caller's own deadline may ask for at most this many default request timeouts. */
const MAX_TIMEOUT_MULTIPLE = 12;

function timeoutMsOf(call: { getDeadline(): grpc.Deadline }, defaultMs: number): number {
  const d = call.getDeadline();
  const at = d instanceof Date ? d.getTime() : Number(d);
  if (!Number.isFinite(at)) return defaultMs;
  return Math.max(1, Math.min(defaultMs * MAX_TIMEOUT_MULTIPLE, at - Date.now()));
}

/** The oneof field names of BatchItem / BatchResult, and the KV method each stands for. */
const BATCH_METHODS = { put: 'Put', get: 'Get', delete: 'Delete', range: 'Range', txn: 'Txn', counter: 'Counter' } as const;
type BatchField = keyof typeof BATCH_METHODS;
const BATCH_FIELDS = Object.keys(BATCH_METHODS) as BatchField[];

interface BatchItemMsg {
  put?: PutRequest | null;
  get?: GetRequest | null;
  delete?: DeleteRequest | null;
  range?: RangeRequest | null;
  txn?: TxnRequest | null;
  counter?: CounterRequest | null;
  timeoutMs?: number;
}

/**
 * The request an item carries. protobufjs's decoder keeps the last oneof member on the wire
 * (proto3's rule) and clears the others, so at most one is set.
 */
function batchFieldOf(item: BatchItemMsg): BatchField | undefined {
  for (const f of BATCH_FIELDS) if (item[f] != null) return f;
  return undefined;
}

/**
 * The status of a failed item, as BatchError (its metadata flattened to strings). Never throws:
 * an item must always finish, or its stream hangs until the deadline.
 */
function batchErrorOf(e: unknown): { code: number; message: string; metadata: Record<string, string> } {
  try {
    const se = serviceErrorOf(e);
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(se.metadata?.getMap() ?? {})) metadata[k] = typeof v === 'string' ? v : v.toString('utf8');
    return { code: se.code ?? grpc.status.UNKNOWN, message: se.details ?? '', metadata };
  } catch (inner) {
    return { code: grpc.status.INTERNAL, message: `could not report the item's error: ${(inner as Error)?.message ?? String(inner)}`, metadata: {} };
  }
}

/**
 * Starts one batch item as its own unary call would run; `finished` always gets its result.
 * Its own timeout_ms is capped at `capMs`; without one it gets `defaultMs`.
 */
function runItem(item: BatchItemMsg, index: number, capMs: number, ops: Record<string, KvOp>, finished: (result: Record<string, unknown>) => void, defaultMs = capMs): void {
  const field = batchFieldOf(item);
  if (field === undefined) return finished({ index, error: batchErrorOf(invalidArgument(`batch item ${index} has no request`)) });
  const own = Number(item.timeoutMs ?? 0);
  const timeoutMs = own > 0 ? Math.min(own, capMs) : defaultMs;
  let op: Promise<unknown>;
  try {
    op = ops[BATCH_METHODS[field]]!(item[field] as never, timeoutMs);
  } catch (e) {
    op = Promise.reject(e);
  }
  op.then(
    (res) => finished({ index, [field]: res }),
    (e: unknown) => finished({ index, error: batchErrorOf(e) }),
  );
}

/**
 * The results half of Batch and Pipeline: results that finish in one cascade of promise
 * continuations share one message; the call ends when `done()` says so.
 */
class ResultStream {
  /** Items started and not answered yet. */
  unanswered = 0;
  private ready: Array<Record<string, unknown>> = [];
  private flushScheduled = false;
  private cancelled = false;

  constructor(
    private readonly call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
    private readonly done: () => boolean,
  ) {
    call.on('cancelled', () => {
      this.cancelled = true;
    });
  }

  readonly finished = (result: Record<string, unknown>): void => {
    this.ready.push(result);
    this.unanswered--;
    this.schedule();
  };

  /** Ends the call now if it is done and nothing waits to be written (a batch of no items). */
  maybeEnd(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // After the promise chains running now settle (the answers one Ready resolved all finish
    // in one cascade), before the next I/O or immediate: the node's own next step (the apply
    // batch's write) must not go ahead of the answers.
    process.nextTick(this.flush);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const results = this.ready;
    this.ready = [];
    // Cancelled by the client, or ended by grpc-js after a failed write: nothing more to send.
    if (this.cancelled || this.call.writableEnded || this.call.destroyed) return;
    if (results.length > 0) this.call.write({ results });
    if (this.done()) this.call.end();
  };
}

export function checkKey(key: Uint8Array | undefined, limits: Limits, what = 'key'): Uint8Array {
  if (!key || key.length === 0) throw invalidArgument(`${what} must not be empty`);
  if (key.length > limits.maxKeyBytes) {
    throw new KvError(grpc.status.RESOURCE_EXHAUSTED, `${what} is ${key.length} bytes, over maxKeyBytes=${limits.maxKeyBytes}`);
  }
  return key;
}

function checkValue(value: Uint8Array | undefined, limits: Limits): void {
  const n = value?.length ?? 0;
  if (n > limits.maxValueBytes) throw new KvError(grpc.status.RESOURCE_EXHAUSTED, `value is ${n} bytes, over maxValueBytes=${limits.maxValueBytes}`);
}

function checkPut(p: PutRequest, limits: Limits): void {
  checkKey(p.key, limits);
  checkValue(p.value, limits);
}

function checkTxn(t: TxnRequest, limits: Limits): void {
  const ops = (t.compare?.length ?? 0) + (t.success?.length ?? 0) + (t.failure?.length ?? 0);
  if (ops > limits.maxTxnOps) throw new KvError(grpc.status.RESOURCE_EXHAUSTED, `txn has ${ops} operations, over maxTxnOps=${limits.maxTxnOps}`);
  for (const c of t.compare ?? []) checkKey(c.key, limits, 'compare key');
  for (const op of [...(t.success ?? []), ...(t.failure ?? [])]) {
    if (op.requestPut) checkPut(op.requestPut, limits);
    else if (op.requestDelete) checkKey(op.requestDelete.key, limits);
    else if (op.requestRange) checkKey(op.requestRange.key, limits);
    else throw invalidArgument('txn operation has no request');
  }
}

/** A deterministic refusal of the state machine as a status (see ApplyResult 'rejected'). */
function rejectedError(r: Extract<ApplyResult, { kind: 'rejected' }>): KvError {
  switch (r.reason) {
    case 'compacted':
    case 'future-revision':
    case 'counter-overflow':
    case 'lease-ttl-too-large':
      return new KvError(grpc.status.OUT_OF_RANGE, r.error);
    case 'lease-not-found':
      return notFound(r.error);
    default:
      return failedPrecondition(r.error);
  }
}

/** MVCC read errors (past revision compacted, or not reached yet) as OUT_OF_RANGE. */
async function mvccRead<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    if (e instanceof CompactedError) {
      throw new KvError(grpc.status.OUT_OF_RANGE, e.message, undefined, false, { [COMPACT_REVISION_METADATA_KEY]: String(e.compactRevision) });
    }
    if (e instanceof FutureRevisionError) throw new KvError(grpc.status.OUT_OF_RANGE, e.message);
    throw e;
  }
}

/** A learner is promoted only when its log reaches this fraction of the leader's (etcd: 0.9). */
export const PROMOTE_MIN_MATCH_FRACTION = 0.9;

export class KvService {
  constructor(
    private readonly host: NodeHost,
    private readonly faults: FaultyTransport,
  ) {}

  private get limits(): Limits {
    return this.host.cfg.limits;
  }

  private async write(cmd: Command, timeoutMs: number): Promise<ApplyResult> {
    const data = encodeCommand(cmd);
    if (data.length > this.limits.maxRequestBytes) {
      throw new KvError(grpc.status.RESOURCE_EXHAUSTED, `request is ${data.length} bytes, over maxRequestBytes=${this.limits.maxRequestBytes}`);
    }
    if (!this.host.isLeader()) throw unavailableNotApplied('not the leader: send writes to the leader', this.host.leaderHint());
    const r = await this.host.propose(data, timeoutMs, { early: true });
    if ('kind' in r && r.kind === 'invalid') throw invalidArgument(r.error);
    if ('kind' in r && r.kind === 'rejected') throw rejectedError(r);
    return r;
  }

  /** Waits until this node may serve a read in the requested mode; returns the read header. */
  private async readBarrier(read: ReadOptions | null | undefined, timeoutMs: number): Promise<ReadHeader> {
    const mode = read?.consistency ?? Consistency.Unspecified;
    switch (mode) {
      case Consistency.Unspecified:
      case Consistency.Linearizable:
        return this.linearizable(timeoutMs);
      case Consistency.Lease:
        return this.leaseRead(timeoutMs);
      case Consistency.Session:
        return this.sessionRead(Number(read?.minRevision ?? 0), timeoutMs);
      case Consistency.Stale:
        return this.staleRead(Number(read?.maxStalenessMs ?? 0));
      default:
        throw invalidArgument(`unknown consistency ${mode}`);
    }
  }

  private async linearizable(timeoutMs: number): Promise<ReadHeader> {
    await this.host.readBarrier(timeoutMs);
    return this.readHeader(Consistency.Linearizable);
  }

  /** Served locally by a leader whose lease holds (ticks and monotonic clock); else ReadIndex. */
  private async leaseRead(timeoutMs: number): Promise<ReadHeader> {
    const readIndex = this.host.leaseReadIndex();
    if (readIndex === undefined) return this.linearizable(timeoutMs);
    const applied = await this.host.waitUntil(() => this.host.sm.appliedIndex() >= readIndex, timeoutMs);
    if (!applied) throw new KvError(grpc.status.DEADLINE_EXCEEDED, `lease read: index ${readIndex} not applied before the deadline`);
    return this.readHeader(Consistency.Lease);
  }

  /**
   * Read-your-writes and monotonic reads: served once this node has applied min_revision; after
   * sessionWaitMs it goes through the leader (ReadIndex), which has every acknowledged revision.
   */
  private async sessionRead(minRevision: number, timeoutMs: number): Promise<ReadHeader> {
    if (!Number.isSafeInteger(minRevision) || minRevision < 0) throw invalidArgument(`min_revision ${minRevision} is not a valid revision`);
    const waitMs = Math.min(this.host.cfg.sessionWaitMs, timeoutMs);
    if (await this.host.waitUntil(() => this.host.sm.revision() >= minRevision, waitMs)) return this.readHeader(Consistency.Session);
    const header = await this.linearizable(Math.max(1, timeoutMs - waitMs));
    if (this.host.sm.revision() < minRevision) {
      throw failedPrecondition(`min_revision ${minRevision} is ahead of the cluster's revision ${this.host.sm.revision()}`);
    }
    return header;
  }

  /** Local applied state at once; with a bound, refused when this node may be staler than it. */
  private async staleRead(maxStalenessMs: number): Promise<ReadHeader> {
    if (!Number.isFinite(maxStalenessMs) || maxStalenessMs < 0) throw invalidArgument(`max_staleness_ms ${maxStalenessMs} is invalid`);
    const staleness = Math.round(this.host.stalenessMs());
    if (maxStalenessMs > 0 && staleness > maxStalenessMs) {
      throw failedPrecondition(`node ${this.host.cfg.id} has not heard from a leader for ${staleness} ms, over max_staleness_ms=${maxStalenessMs}`);
    }
    return this.readHeader(Consistency.Stale);
  }

  private readHeader(used: Consistency): ReadHeader {
    const r = this.host.rawNode.raft;
    return {
      revision: this.host.sm.revision(),
      servedBy: this.host.cfg.id,
      consistencyUsed: used,
      stalenessMs: Math.round(this.host.stalenessMs()),
      leaderId: r.lead,
      raftTerm: r.term,
    };
  }

  /** The KV methods as plain functions of (request, timeout): the unary handlers and Batch both call these. */
  private kvOps(): Record<(typeof BATCH_METHODS)[BatchField], KvOp> {
    return {
      Put: async (req: PutRequest, timeoutMs: number) => {
        checkPut(req, this.limits);
        const r = await this.write({ put: req }, timeoutMs);
        return 'response' in r ? r.response : {};
      },
      Delete: async (req: DeleteRequest, timeoutMs: number) => {
        checkKey(req.key, this.limits);
        const r = await this.write({ delete: req }, timeoutMs);
        return 'response' in r ? r.response : {};
      },
      Txn: async (req: TxnRequest, timeoutMs: number) => {
        checkTxn(req, this.limits);
        const r = await this.write({ txn: req }, timeoutMs);
        return 'response' in r ? r.response : {};
      },
      Get: async (req: GetRequest, timeoutMs: number) => {
        const key = checkKey(req.key, this.limits);
        const header = await this.readBarrier(req.read, timeoutMs);
        const rev = Number(req.revision ?? 0);
        const kv = rev === 0 ? this.host.sm.get(key) : await mvccRead(() => this.host.sm.getAt(key, rev));
        return { header: coverData(header, kv ? [kv] : []), kv: kv ?? null };
      },
      Range: async (req: RangeRequest, timeoutMs: number) => {
        checkKey(req.key, this.limits);
        const header = await this.readBarrier(req.read, timeoutMs);
        const res = await mvccRead(() => this.host.sm.range(req));
        return { ...res, header: coverData(header, res.kvs ?? []) };
      },
      Counter: async (req: CounterRequest, timeoutMs: number) => {
        checkKey(req.key, this.limits);
        const r = await this.write({ counter: req }, timeoutMs);
        if (r.kind === 'counter' && !r.response.applied) {
          const c = r.response;
          const bounds = [req.min != null ? `min ${req.min}` : '', req.max != null ? `max ${req.max}` : ''].filter(Boolean).join(', ');
          throw new KvError(grpc.status.FAILED_PRECONDITION, `counter bound: current value ${c.value}, adding ${req.delta} would leave [${bounds}]; nothing changed`, undefined, false, {
            [COUNTER_VALUE_METADATA_KEY]: String(c.value),
          });
        }
        return 'response' in r ? r.response : {};
      },
    };
  }

  /**
   * Every item as its own unary call would run, all at once (writes are proposed in item order,
   * so they share the Ready that follows). Results stream back as items finish: the ones that
   * finish in one turn of the event loop (a Ready's writes, a ReadIndex round's reads) share one
   * message, and a slow item (a read waiting for a revision) never holds back the others.
   */
  private batch(call: grpc.ServerWritableStream<{ items?: BatchItemMsg[] }, unknown>, ops: Record<string, KvOp>): void {
    const items = call.request.items ?? [];
    if (items.length > this.limits.maxBatchItems) {
      call.emit('error', resourceExhausted(`batch has ${items.length} items, over maxBatchItems=${this.limits.maxBatchItems}`, true).toServiceError());
      return;
    }
    const callTimeoutMs = timeoutMsOf(call, this.host.cfg.defaultRequestTimeoutMs);
    const out: ResultStream = new ResultStream(call, (): boolean => out.unanswered === 0);
    out.unanswered = items.length;
    items.forEach((item, index) => runItem(item, index, callTimeoutMs, ops, out.finished));
    out.maybeEnd();
  }

  /**
   * KV.Pipeline: Batch on one long-lived stream. Each request message is a batch; an item's
   * index is its position among all items the stream has carried, which both ends count. A
   * message over maxBatchItems, or one that would leave more than maxStreamItemsInFlight items
   * unanswered, has each of its items refused (RESOURCE_EXHAUSTED, not applied); the stream stays
   * open. After the client half-closes, the stream ends once every item is answered.
   */
  private pipeline(call: grpc.ServerDuplexStream<{ items?: BatchItemMsg[] }, unknown>, ops: Record<string, KvOp>): void {
    const defaultMs = this.host.cfg.defaultRequestTimeoutMs;
    let received = 0;
    let halfClosed = false;
    const out: ResultStream = new ResultStream(call, (): boolean => halfClosed && out.unanswered === 0);
    call.on('data', (req: { items?: BatchItemMsg[] }) => {
      const items = req.items ?? [];
      const first = received;
      received += items.length;
      out.unanswered += items.length;
      const refusal = this.pipelineRefusal(items.length, out.unanswered);
      items.forEach((item, i) => {
        if (refusal) out.finished({ index: first + i, error: batchErrorOf(refusal) });
        // Without a deadline of their own, items get the unary default (the stream has none).
        else runItem(item, first + i, defaultMs * MAX_TIMEOUT_MULTIPLE, ops, out.finished, defaultMs);
      });
    });
    call.on('end', () => {
      halfClosed = true;
      out.maybeEnd();
    });
  }

  private pipelineRefusal(items: number, unanswered: number): KvError | undefined {
    const { maxBatchItems, maxStreamItemsInFlight } = this.limits;
    if (items > maxBatchItems) return resourceExhausted(`pipeline message has ${items} items, over maxBatchItems=${maxBatchItems}`, true);
    if (unanswered > maxStreamItemsInFlight) return resourceExhausted(`${unanswered} items unanswered on this stream, over maxStreamItemsInFlight=${maxStreamItemsInFlight}`, true);
    return undefined;
  }

  handlers(): grpc.UntypedServiceImplementation {
    const ops = this.kvOps();
    const defaultMs = this.host.cfg.defaultRequestTimeoutMs;
    const viaUnary = (op: KvOp) => unary<unknown, unknown>((req, call) => op(req as never, timeoutMsOf(call, defaultMs)));
    return {
      Put: viaUnary(ops.Put),
      Delete: viaUnary(ops.Delete),
      Txn: viaUnary(ops.Txn),
      Get: viaUnary(ops.Get),
      Range: viaUnary(ops.Range),
      Counter: viaUnary(ops.Counter),
      Compact: unary<CompactRequest, unknown>(async (req, call) => {
        const rev = Number(req.revision ?? 0);
        if (!Number.isSafeInteger(rev) || rev < 1) throw invalidArgument(`compact revision must be a positive integer, got ${String(req.revision)}`);
        const r = await this.write({ compact: { revision: rev } }, timeoutMsOf(call, defaultMs));
        return 'response' in r ? r.response : {};
      }),
      Batch: (call: grpc.ServerWritableStream<{ items?: BatchItemMsg[] }, unknown>) => this.batch(call, ops),
      Pipeline: (call: grpc.ServerDuplexStream<{ items?: BatchItemMsg[] }, unknown>) => this.pipeline(call, ops),
    };
  }

  clusterHandlers(): grpc.UntypedServiceImplementation {
    const members = () => this.host.memberList();
    return {
      Status: unary(async () => {
        const s = this.host.rawNode.status();
        return {
          memberId: s.id,
          leaderId: s.lead,
          raftTerm: s.term,
          role: roleName(s.role),
          commitIndex: s.commit,
          appliedIndex: this.host.sm.appliedIndex(),
          revision: this.host.sm.revision(),
          leaseRemainingTicks: s.leaseRemainingTicks,
          members: members(),
        };
      }),
      MemberList: unary(async () => ({ members: members() })),
      MemberAdd: unary<{ id?: number; peerAddr?: string; clientAddr?: string }, unknown>(async (req, call) => this.addMember(req, false, call)),
      MemberAddLearner: unary<{ id?: number; peerAddr?: string; clientAddr?: string }, unknown>(async (req, call) => this.addMember(req, true, call)),
      MemberPromote: unary<{ id?: number }, unknown>(async (req, call) => {
        const id = Number(req.id ?? 0);
        const m = members().find((x) => x.id === id);
        if (!m) throw notFound(`member ${id} is not in the cluster`);
        if (!m.isLearner) throw failedPrecondition(`member ${id} is already a voter`);
        await this.checkLearnerCaughtUp(id);
        await this.confChange({ type: ConfChangeType.AddNode, nodeId: id, context: encodeMemberContext(m) }, call);
        return { members: members() };
      }),
      MemberRemove: unary<{ id?: number }, unknown>(async (req, call) => {
        const id = Number(req.id ?? 0);
        if (!this.host.knownMember(id)) throw notFound(`member ${id} is not in the cluster`);
        this.checkQuorumAfter({ remove: id });
        await this.confChange({ type: ConfChangeType.RemoveNode, nodeId: id, context: new Uint8Array(0) }, call);
        return { members: members() };
      }),
      LeaderTransfer: unary<{ targetId?: number }, unknown>(async (req) => {
        const id = Number(req.targetId ?? 0);
        const m = members().find((x) => x.id === id);
        if (!m) throw notFound(`member ${id} is not in the cluster`);
        if (m.isLearner) throw failedPrecondition(`member ${id} is a learner and cannot lead`);
        if (!this.host.isLeader()) throw unavailable('not the leader: send the transfer to the leader', this.host.leaderHint());
        await this.host.withCore((n) => n.transferLeader(id));
        const deadline = Date.now() + this.host.cfg.tickIntervalMs * this.host.cfg.electionTimeoutTicks * 2;
        while (Date.now() < deadline) {
          const lead = this.host.rawNode.raft.lead;
          if (lead === id) return { leaderId: id };
          await new Promise((r) => setTimeout(r, this.host.cfg.tickIntervalMs));
        }
        throw unavailable(`leadership did not move to ${id} within an election timeout`, this.host.leaderHint());
      }),
    };
  }

  private async addMember(req: { id?: number; peerAddr?: string; clientAddr?: string }, learner: boolean, call: grpc.ServerUnaryCall<unknown, unknown>): Promise<unknown> {
    const peerAddr = req.peerAddr ?? '';
    if (!/^[^:\s]+:\d+$/.test(peerAddr)) throw invalidArgument(`peer_addr must be host:port, got "${peerAddr}"`);
    const existing = this.host.memberList();
    let id = Number(req.id ?? 0);
    if (id === 0) id = Math.max(0, ...existing.map((m) => m.id)) + 1;
    if (!Number.isSafeInteger(id) || id < 0) throw invalidArgument(`invalid member id ${req.id}`);
    if (existing.some((m) => m.id === id)) throw failedPrecondition(`member ${id} already exists`);
    const ctx = { peerAddr, clientAddr: req.clientAddr ?? '' };
    if (!learner) this.checkQuorumAfter({ add: true });
    await this.confChange({ type: learner ? ConfChangeType.AddLearner : ConfChangeType.AddNode, nodeId: id, context: encodeMemberContext(ctx) }, call);
    return { member: { id, ...ctx, isLearner: learner }, members: this.host.memberList() };
  }

  /**
   * Promotion raises the quorum at once: a learner that is down or far behind adds a vote the
   * cluster must wait for without adding one that can answer (3 voters + a dead learner
   * promoted = 4 voters, quorum 3, one more failure stops writes). So, as etcd does, only a
   * learner whose log reaches PROMOTE_MIN_MATCH_FRACTION of the leader's is promoted.
   */
  private async checkLearnerCaughtUp(id: number): Promise<void> {
    this.requireLeaderForMembership();
    const { match, leaderLast } = await this.host.withCore((n) => ({ match: n.raft.prs.get(id)?.match ?? 0, leaderLast: n.raft.log.lastIndex() }));
    if (match >= leaderLast * PROMOTE_MIN_MATCH_FRACTION) return;
    throw failedPrecondition(
      `learner ${id} has not caught up: its log reaches index ${match}, the leader's ${leaderLast} (promotion needs ${PROMOTE_MIN_MATCH_FRACTION * 100}%); retry once it has caught up`,
    );
  }

  /**
   * etcd's strict reconfiguration check: a change that would leave fewer reachable voters than
   * its new quorum is refused, because it would stop the cluster at once. Adding a voter that is
   * not running yet to a cluster with a member down, or removing a live voter while another is
   * down, does that. Removing a member that is down is always allowed (it lowers the quorum).
   * Reachable = heard from within one election timeout, by the leader.
   */
  private checkQuorumAfter(change: { add: true } | { remove: number }): void {
    this.requireLeaderForMembership();
    const cfg = this.host.cfg;
    const voters = this.host.memberList().filter((m) => !m.isLearner).map((m) => m.id);
    const reachable = this.host.reachableVoters(cfg.electionTimeoutTicks * cfg.tickIntervalMs);
    if ('remove' in change && (!voters.includes(change.remove) || !reachable.has(change.remove))) return;
    // Growing a one-node cluster always stalls until the second node starts (etcd allows it too).
    if ('add' in change && voters.length === 1) return;
    const votersAfter = 'add' in change ? voters.length + 1 : voters.length - 1;
    const reachableAfter = 'add' in change ? reachable.size : reachable.size - 1;
    const quorumAfter = Math.floor(votersAfter / 2) + 1;
    if (reachableAfter >= quorumAfter) return;
    const what = 'add' in change ? 'adding a voter that is not running yet' : `removing member ${change.remove}`;
    const hint = 'add' in change ? ': bring the missing members back first, or add it as a learner and promote it once it has caught up' : ': bring the missing members back first, or remove a member that is down';
    throw failedPrecondition(
      `${what} would leave ${reachableAfter} reachable ${reachableAfter === 1 ? 'voter' : 'voters'} of ${votersAfter}, below the quorum of ${quorumAfter} (reachable now: ${[...reachable].sort((a, b) => a - b).join(',')})${hint}`,
    );
  }

  /** Membership checks read the leader's progress and contacts; only the leader proposes them. */
  private requireLeaderForMembership(): void {
    if (!this.host.isLeader()) throw unavailableNotApplied('not the leader: send membership changes to the leader', this.host.leaderHint());
  }

  /** Proposes a conf change and waits until it is applied here. */
  private async confChange(cc: ConfChange, call: grpc.ServerUnaryCall<unknown, unknown>): Promise<void> {
    this.requireLeaderForMembership();
    const res = await this.host.withCore((n) => n.proposeConfChange(cc));
    if (!res.ok) {
      if (res.reason === 'conf-change-pending') throw failedPrecondition('another membership change is still being applied; retry shortly');
      throw unavailable(`membership change refused: ${res.reason}`, this.host.leaderHint());
    }
    const deadline = Date.now() + timeoutMsOf(call, this.host.cfg.defaultRequestTimeoutMs);
    while (this.host.sm.appliedIndex() < res.index) {
      if (Date.now() > deadline) throw new KvError(grpc.status.DEADLINE_EXCEEDED, 'membership change not applied before the deadline');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  adminHandlers(): grpc.UntypedServiceImplementation {
    const toWire = () => {
      const f = this.faults.faults();
      const dir = { both: 0, outbound: 1, inbound: 2 }[f.partitionDirection];
      return { faults: { dropProbability: f.dropProbability, delayMs: f.delayMs, partitionFrom: f.partitionFrom, partitionDirection: dir } };
    };
    return {
      SetFaults: unary<{ faults?: { dropProbability?: number; delayMs?: number; partitionFrom?: number[]; partitionDirection?: number } }, unknown>(async (req) => {
        const f = req.faults ?? {};
        const dirs = ['both', 'outbound', 'inbound'] as const;
        const dir = dirs[f.partitionDirection ?? 0];
        if (!dir) throw invalidArgument(`unknown partition direction ${f.partitionDirection}`);
        try {
          this.faults.setFaults({ dropProbability: f.dropProbability ?? 0, delayMs: Number(f.delayMs ?? 0), partitionFrom: (f.partitionFrom ?? []).map(Number), partitionDirection: dir });
        } catch (e) {
          throw invalidArgument((e as Error).message);
        }
        return toWire();
      }),
      ClearFaults: unary(async () => {
        this.faults.clearFaults();
        return toWire();
      }),
      SetClockRate: unary<{ rate?: number }, unknown>(async (req) => {
        try {
          this.host.setClockRate(Number(req.rate ?? 0));
        } catch (e) {
          throw invalidArgument((e as Error).message);
        }
        return { rate: this.host.currentClockRate };
      }),
    };
  }
}

/**
 * A LevelDB batch becomes visible to reads a moment before the state machine publishes its new
 * revision, so a read may return data newer than the revision taken for its header. The header
 * must never claim less than the data it returns (a session token built from it would let a
 * later read go back in time): raise it to the newest mod revision returned.
 */
function coverData(header: ReadHeader, kvs: Array<{ modRevision?: number | null }>): ReadHeader {
  let revision = Number(header.revision ?? 0);
  for (const kv of kvs) revision = Math.max(revision, Number(kv.modRevision ?? 0));
  return revision === header.revision ? header : { ...header, revision };
}

function roleName(role: StateRole): string {
  return { Follower: 'FOLLOWER', PreCandidate: 'PRE_CANDIDATE', Candidate: 'CANDIDATE', Leader: 'LEADER' }[role];
}
