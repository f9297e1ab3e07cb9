// Carries the KV calls a KvClient makes to one address on one long-lived KV.Pipeline stream: a
// call costs one message each way instead of a gRPC call of its own (an HTTP/2 stream, headers,
// trailers and a deadline timer on each side), which is most of gRPC's per-call CPU on both
// ends and, at low concurrency, most of a call's latency. Each call keeps the semantics of its
// own unary call: its own result or status (with the same trailing metadata), its own deadline,
// its own retries above this layer.
//
// When to batch: a call to an address with nothing in flight goes out at once, alone, so a lone
// caller (C=1) pays no wait. While calls are in flight, new ones queue and go out together, as
// one stream message, at the end of the current event-loop turn (setImmediate): the callers a
// result resumes all queue in that turn. A queue that reaches maxBatchItems or maxBatchBytes
// goes out at once; a single call over maxBatchBytes goes as its own unary call.
//
// Results come back as the server finishes items, so a call is answered when it is done; each
// call also expires here on its own deadline. A stream with nothing in flight for
// pipelineIdleMs is half-closed (an open stream keeps the process alive).
//
// When the stream fails, every call still on it fails with the stream's status, which says
// nothing about whether it applied (a connection that never opened says so, as for a unary
// call). Fallbacks, only where nothing ran: a server without Pipeline (UNIMPLEMENTED) gets
// KV.Batch calls from then on (and one without Batch, unary calls); a Batch refused whole as
// over the server's maxBatchItems (RESOURCE_EXHAUSTED marked x-raftkv-not-applied) is resent as
// unary calls and later batches are kept smaller. Any other failure of a Batch call (a
// RESOURCE_EXHAUSTED from grpc-js itself may come after the server ran everything) fails its
// unanswered items with that error.

import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { asBuffer } from '../wire/grpc-service.js';
import { kvType, NOT_APPLIED_METADATA_KEY } from './proto.js';

/** The KV methods a batch can carry, by their BatchItem / BatchResult field. */
export const BATCHABLE_METHODS = { Put: 'put', Get: 'get', Delete: 'delete', Range: 'range', Txn: 'txn', Counter: 'counter' } as const;
export type BatchableMethod = keyof typeof BATCHABLE_METHODS;

export function isBatchable(method: string): method is BatchableMethod {
  return Object.prototype.hasOwnProperty.call(BATCHABLE_METHODS, method);
}

export interface CoalescerLimits {
  /** Most calls in one Batch or Pipeline message (the server refuses over its own maxBatchItems, 1024 by default). */
  maxBatchItems: number;
  /** Most encoded request bytes in one Batch or Pipeline message; a single larger request goes alone, unary. */
  maxBatchBytes: number;
  /** A Pipeline stream with no call in flight for this long is half-closed. */
  pipelineIdleMs: number;
  /**
   * Most items one Pipeline stream carries before the next call opens a new one (the old one is
   * half-closed and still answers what it carries): BatchResult.index is a uint32. Default 2^32 - 1.
   */
  pipelineMaxItems?: number;
}

const MAX_PIPELINE_ITEMS = 0xffffffff;

/** Sends one unary KV call; rejects with the raw grpc-js error. */
export type UnaryCall = (method: BatchableMethod, req: unknown, deadline: number) => Promise<unknown>;
/**
 * Sends one KV.Batch call with an already encoded BatchRequest; `onResults` gets the results of
 * each streamed message as it arrives; resolves when the call ends OK, rejects with the raw
 * grpc-js error (code, details, trailing metadata).
 */
export type BatchCall = (request: Buffer, deadline: number, onResults: (results: BatchResultMsg[]) => void) => Promise<void>;

/** One open KV.Pipeline stream, as the coalescer drives it. */
export interface PipelineCall {
  /** Sends one encoded BatchRequest. */
  write(request: Buffer): void;
  /** Half-closes: the server ends the stream once it has answered everything. */
  end(): void;
  cancel(): void;
}

/**
 * Opens a KV.Pipeline stream: `onResults` gets each message's results as it arrives; `onEnd`
 * gets the stream's end once every result before it was delivered: undefined when it ended OK,
 * else the raw grpc-js error (code, details, trailing metadata). May throw (a closed client).
 */
export type PipelineOpen = (onResults: (results: BatchResultMsg[]) => void, onEnd: (error: unknown) => void) => PipelineCall;

export interface BatchResultMsg {
  /** The item's position in the batch. */
  index?: number;
  error?: { code: number; message: string; metadata?: Record<string, string> } | null;
  [field: string]: unknown;
}

interface Pending {
  method: BatchableMethod;
  req: unknown;
  /** Epoch ms. */
  deadline: number;
  resolve: (res: unknown) => void;
  reject: (e: unknown) => void;
  settled: boolean;
}

let batchItemType: protobuf.Type | undefined;

/** The open Pipeline stream and the calls on it, by their index in the stream. */
interface Pipe {
  call: PipelineCall;
  nextIndex: number;
  pending: Map<number, Pending>;
  expiry: PipeExpiry;
  idleTimer: NodeJS.Timeout | undefined;
}

export class CallCoalescer {
  /** Unary and Batch calls out (Pipeline calls are counted in pipe.pending). */
  private inflight = 0;
  private queue: Pending[] = [];
  private flushScheduled = false;
  private pipelineUnsupported = false;
  private batchUnsupported = false;
  private pipe: Pipe | undefined;
  private closed = false;
  /** Most items per batch: limits.maxBatchItems, lowered when a server refuses a batch as too many. */
  private maxItems: number;

  constructor(
    private readonly unaryCall: UnaryCall,
    private readonly batchCall: BatchCall,
    private readonly limits: CoalescerLimits,
    private readonly pipelineOpen?: PipelineOpen,
  ) {
    this.maxItems = limits.maxBatchItems;
    if (!pipelineOpen) this.pipelineUnsupported = true;
  }

  /** The unary call's result, or its error (a raw grpc-js error or a ServiceError-shaped object). */
  call(method: BatchableMethod, req: unknown, deadline: number): Promise<unknown> {
    const usePipe = !this.pipelineUnsupported;
    if (!usePipe && (this.batchUnsupported || (this.inflight === 0 && this.queue.length === 0))) return this.sendUnary(method, req, deadline);
    return new Promise((resolve, reject) => {
      const idle = this.inflight === 0 && this.queue.length === 0 && (this.pipe?.pending.size ?? 0) === 0;
      this.queue.push({ method, req, deadline, resolve, reject, settled: false });
      if (this.queue.length >= this.maxItems || (usePipe && idle)) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Cancels the Pipeline stream (its calls fail with CANCELLED); later calls fail as the transport does. */
  close(): void {
    this.closed = true;
    const pipe = this.pipe;
    this.pipe = undefined;
    if (pipe) {
      if (pipe.idleTimer) clearTimeout(pipe.idleTimer);
      pipe.call.cancel();
    }
  }

  private sendUnary(method: BatchableMethod, req: unknown, deadline: number): Promise<unknown> {
    this.inflight++;
    const p = this.unaryCall(method, req, deadline);
    p.then(this.done, this.done);
    return p;
  }

  private readonly done = (): void => {
    this.inflight--;
  };

  /** Sends everything queued: in messages (or batches) within the limits, an oversized item (or a lone one, without Pipeline) unary. */
  private flush(): void {
    this.flushScheduled = false;
    const items = this.queue;
    this.queue = [];
    let chunk: Pending[] = [];
    let chunkParts: Buffer[] = [];
    let chunkBytes = 0;
    const sendChunk = (): void => {
      if (chunk.length > 0 && !this.pipelineUnsupported) this.sendOnPipe(chunk, Buffer.concat(chunkParts, chunkBytes));
      else if (chunk.length === 1) this.forward(chunk[0]!, this.sendUnary(chunk[0]!.method, chunk[0]!.req, chunk[0]!.deadline));
      else if (chunk.length > 1) this.sendBatch(chunk, Buffer.concat(chunkParts, chunkBytes));
      chunk = [];
      chunkParts = [];
      chunkBytes = 0;
    };
    const now = Date.now();
    for (const p of items) {
      if (expiredBeforeSend(p, now)) continue;
      let framed: Buffer;
      try {
        framed = frameItem(p, now);
      } catch (e) {
        settle(p, () => p.reject(statusError(grpc.status.INTERNAL, `Request message serialization failure: ${(e as Error)?.message ?? String(e)}`, true)));
        continue;
      }
      if (framed.length > this.limits.maxBatchBytes) {
        this.forward(p, this.sendUnary(p.method, p.req, p.deadline));
        continue;
      }
      if (chunk.length >= this.maxItems || chunkBytes + framed.length > this.limits.maxBatchBytes) sendChunk();
      chunk.push(p);
      chunkParts.push(framed);
      chunkBytes += framed.length;
    }
    sendChunk();
  }

  private forward(p: Pending, result: Promise<unknown>): void {
    result.then(
      (res) => settle(p, () => p.resolve(res)),
      (e: unknown) => settle(p, () => p.reject(e)),
    );
  }

  private sendOnPipe(items: Pending[], request: Buffer): void {
    const current = this.pipe;
    if (current && current.nextIndex + items.length > (this.limits.pipelineMaxItems ?? MAX_PIPELINE_ITEMS)) {
      // Indexes would wrap: retire this stream (it still answers what it carries).
      this.pipe = undefined;
      if (current.idleTimer) clearTimeout(current.idleTimer);
      current.call.end();
    }
    let pipe: Pipe;
    try {
      pipe = this.pipe ?? this.openPipe();
    } catch (e) {
      for (const p of items) settle(p, () => p.reject(e));
      return;
    }
    if (pipe.idleTimer) clearTimeout(pipe.idleTimer);
    pipe.idleTimer = undefined;
    const first = pipe.nextIndex;
    pipe.nextIndex += items.length;
    items.forEach((p, i) => pipe.pending.set(first + i, p));
    pipe.expiry.arm();
    pipe.call.write(request);
  }

  private openPipe(): Pipe {
    if (this.closed) throw statusError(grpc.status.CANCELLED, 'client is closed', true);
    const pending = new Map<number, Pending>();
    const pipe: Pipe = { call: undefined as unknown as PipelineCall, nextIndex: 0, pending, expiry: new PipeExpiry(pending, () => this.maybeIdle(pipe)), idleTimer: undefined };
    pipe.call = this.pipelineOpen!(
      (results) => this.onPipeResults(pipe, results),
      (error) => this.onPipeEnd(pipe, error),
    );
    this.pipe = pipe;
    return pipe;
  }

  private onPipeResults(pipe: Pipe, results: BatchResultMsg[]): void {
    for (const r of results) {
      const index = r.index ?? 0;
      const p = pipe.pending.get(index);
      if (!p) continue;
      pipe.pending.delete(index);
      settleFromResult(p, r);
    }
    this.maybeIdle(pipe);
  }

  /** Starts the idle countdown of a stream with nothing in flight. */
  private maybeIdle(pipe: Pipe): void {
    if (pipe.pending.size === 0 && pipe === this.pipe && !pipe.idleTimer) {
      pipe.idleTimer = setTimeout(() => {
        if (this.pipe !== pipe || pipe.pending.size > 0) return;
        this.pipe = undefined;
        pipe.call.end();
      }, this.limits.pipelineIdleMs);
      pipe.idleTimer.unref();
    }
  }

  private onPipeEnd(pipe: Pipe, error: unknown): void {
    if (this.pipe === pipe) this.pipe = undefined;
    if (pipe.idleTimer) clearTimeout(pipe.idleTimer);
    pipe.expiry.stop();
    const items = [...pipe.pending.values()];
    pipe.pending.clear();
    if (items.length === 0) return;
    if ((error as { code?: number } | undefined)?.code === grpc.status.UNIMPLEMENTED) {
      // A server without Pipeline ran none of it: Batch (or unary) calls from now on.
      this.pipelineUnsupported = true;
      const now = Date.now();
      const again = items.filter((p) => !p.settled && !expiredBeforeSend(p, now));
      if (again.length > 0) {
        this.queue.push(...again);
        this.flush();
      }
      return;
    }
    const err = error ?? statusError(grpc.status.INTERNAL, 'pipeline stream ended without a result for this call');
    for (const p of items) settle(p, () => p.reject(err));
  }

  private sendBatch(items: Pending[], request: Buffer): void {
    let deadline = 0;
    for (const p of items) deadline = Math.max(deadline, p.deadline);
    const expiry = new ItemExpiry(items, deadline);
    const onResults = (results: BatchResultMsg[]): void => {
      for (const r of results) {
        const p = items[r.index ?? 0];
        if (p) settleFromResult(p, r);
      }
    };
    this.inflight++;
    let sent: Promise<void>;
    try {
      sent = this.batchCall(request, deadline, onResults);
    } catch (e) {
      sent = Promise.reject(e);
    }
    sent.then(
      () => {
        this.inflight--;
        expiry.stop();
        const missing = statusError(grpc.status.INTERNAL, 'batch ended without a result for this call');
        for (const p of items) settle(p, () => p.reject(missing));
      },
      (e: unknown) => {
        this.inflight--;
        expiry.stop();
        const code = (e as { code?: number })?.code;
        if (code === grpc.status.UNIMPLEMENTED) this.batchUnsupported = true;
        const refusedWhole = code === grpc.status.RESOURCE_EXHAUSTED && markedNotApplied(e);
        if (refusedWhole) this.maxItems = Math.max(2, Math.min(this.maxItems, Math.floor(items.length / 2)));
        if (code === grpc.status.UNIMPLEMENTED || refusedWhole) {
          // Nothing in the batch ran: each item goes again on its own (unless its caller gave up).
          const now = Date.now();
          for (const p of items) if (!p.settled && !expiredBeforeSend(p, now)) this.forward(p, this.sendUnary(p.method, p.req, p.deadline));
          return;
        }
        for (const p of items) settle(p, () => p.reject(e));
      },
    );
  }
}

/** Fails each item of a batch whose own deadline passes while the batch (with a later one) is out. */
class ItemExpiry {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly items: Pending[],
    private readonly batchDeadline: number,
  ) {
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    let next = Infinity;
    for (const p of this.items) if (!p.settled && p.deadline < next) next = p.deadline;
    if (this.stopped || !Number.isFinite(next) || next >= this.batchDeadline) return;
    this.timer = setTimeout(() => this.expire(), Math.max(0, next - Date.now()));
    this.timer.unref();
  }

  private expire(): void {
    const now = Date.now();
    const expired = statusError(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded (the call was in a batch that is still out)');
    for (const p of this.items) if (p.deadline <= now) settle(p, () => p.reject(expired));
    this.arm();
  }
}

/**
 * Fails each call on a Pipeline stream whose own deadline passes before its result comes (the
 * server also gives up on it then); one timer, for the earliest deadline in flight.
 */
class PipeExpiry {
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private stopped = false;

  constructor(
    private readonly pending: Map<number, Pending>,
    private readonly afterExpiry: () => void,
  ) {}

  /** Makes sure the timer fires by the earliest deadline of a call just added. */
  arm(): void {
    if (this.stopped) return;
    let next = Infinity;
    for (const p of this.pending.values()) if (p.deadline < next) next = p.deadline;
    if (!Number.isFinite(next) || (this.timer && this.timerAt <= next)) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = next;
    this.timer = setTimeout(() => this.expire(), Math.max(0, next - Date.now()));
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private expire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = Date.now();
    const expired = statusError(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded (the call is still on its pipeline stream)');
    for (const [index, p] of this.pending) {
      if (p.deadline > now) continue;
      this.pending.delete(index);
      settle(p, () => p.reject(expired));
    }
    this.arm();
    this.afterExpiry();
  }
}

function settle(p: Pending, fn: () => void): void {
  if (p.settled) return;
  p.settled = true;
  fn();
}

function settleFromResult(p: Pending, r: BatchResultMsg): void {
  if (r.error) {
    const metadata = new grpc.Metadata();
    try {
      for (const [k, v] of Object.entries(r.error.metadata ?? {})) metadata.set(k, v);
    } catch (e) {
      return settle(p, () => p.reject(statusError(grpc.status.INTERNAL, `batch result has bad metadata: ${(e as Error)?.message ?? String(e)}`)));
    }
    const err = { code: r.error.code, details: r.error.message, metadata };
    return settle(p, () => p.reject(err));
  }
  const res = r[BATCHABLE_METHODS[p.method]];
  if (res == null) return settle(p, () => p.reject(statusError(grpc.status.INTERNAL, `batch result of a ${p.method} has no ${p.method} response`)));
  settle(p, () => p.resolve(res));
}

/**
 * A ServiceError-shaped status raised here; `notApplied` (a call that never left this process)
 * marks it as the server marks its refusals.
 */
function statusError(code: number, details: string, notApplied = false): { code: number; details: string; metadata: grpc.Metadata } {
  const metadata = new grpc.Metadata();
  if (notApplied) metadata.set(NOT_APPLIED_METADATA_KEY, '1');
  return { code, details, metadata };
}

/** A caller that has given up must not have its write sent (and perhaps applied) now: fails it, not sent. */
function expiredBeforeSend(p: Pending, nowMs: number): boolean {
  if (p.deadline > nowMs) return false;
  settle(p, () => p.reject(statusError(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded before the call was sent', true)));
  return true;
}

function markedNotApplied(e: unknown): boolean {
  const md = (e as { metadata?: unknown })?.metadata;
  return md instanceof grpc.Metadata && md.get(NOT_APPLIED_METADATA_KEY)[0]?.toString() === '1';
}

/** One BatchItem as field 1 of BatchRequest (tag, length, bytes), so batches are joined without re-encoding. */
function frameItem(p: Pending, nowMs: number): Buffer {
  batchItemType ??= kvType('BatchItem');
  const timeoutMs = Math.max(1, Math.min(0xffffffff, Math.round(p.deadline - nowMs)));
  const body = batchItemType.encode({ [BATCHABLE_METHODS[p.method]]: p.req, timeoutMs } as unknown as protobuf.Message).finish();
  const header = Buffer.allocUnsafe(6);
  header[0] = 0x0a; // field 1, length-delimited
  let n = body.length;
  let i = 1;
  while (n >= 0x80) {
    header[i++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  header[i++] = n;
  return Buffer.concat([header.subarray(0, i), asBuffer(body)], i + body.length);
}
