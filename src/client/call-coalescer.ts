// Coalesces the KV calls a KvClient's callers make concurrently to one address into KV.Batch
// calls: one gRPC call (one HTTP/2 stream, one set of headers and trailers, one deadline timer
// on each side) carries many independent requests, which is most of gRPC's per-call CPU on
// both ends. Each item keeps the semantics of its own unary call: its own result or status
// (with the same trailing metadata), its own deadline, its own retries above this layer.
//
// When to batch: a call to an address with nothing in flight goes out at once, as a plain
// unary call, so a lone caller (C=1) pays no wait and no batch framing. While calls are in
// flight, new ones queue and go out together at the end of the current event-loop turn
// (setImmediate): the callers a completed batch resumes all queue in that turn. A queue that
// reaches maxBatchItems or maxBatchBytes goes out at once.
//
// Fallbacks: a server without Batch (UNIMPLEMENTED) gets unary calls from then on; a batch
// refused whole with RESOURCE_EXHAUSTED (over the server's maxBatchItems or message size:
// nothing in it ran) is resent as unary calls, so each item meets the limits on its own.

import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { asBuffer } from '../wire/grpc-service.js';
import { kvType } from './proto.js';

/** The KV methods a batch can carry, by their BatchItem / BatchResult field. */
export const BATCHABLE_METHODS = { Put: 'put', Get: 'get', Delete: 'delete', Range: 'range', Txn: 'txn', Counter: 'counter' } as const;
export type BatchableMethod = keyof typeof BATCHABLE_METHODS;

export function isBatchable(method: string): method is BatchableMethod {
  return Object.prototype.hasOwnProperty.call(BATCHABLE_METHODS, method);
}

export interface CoalescerLimits {
  /** Most calls in one Batch (the server refuses over its own maxBatchItems, 1024 by default). */
  maxBatchItems: number;
  /** Most encoded request bytes in one Batch; a single larger request goes alone, unary. */
  maxBatchBytes: number;
}

/** Sends one unary KV call; rejects with the raw grpc-js error. */
export type UnaryCall = (method: BatchableMethod, req: unknown, deadline: number) => Promise<unknown>;
/** Sends one KV.Batch call with an already encoded BatchRequest; rejects with the raw grpc-js error. */
export type BatchCall = (request: Buffer, deadline: number) => Promise<{ results?: BatchResultMsg[] }>;

interface BatchResultMsg {
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

/** Items whose deadlines spread over more than this share the batch's timer no longer: each expires on its own. */
const DEADLINE_SPREAD_MS = 20;

let batchItemType: protobuf.Type | undefined;

export class CallCoalescer {
  private inflight = 0;
  private queue: Pending[] = [];
  private flushScheduled = false;
  private batchUnsupported = false;

  constructor(
    private readonly unaryCall: UnaryCall,
    private readonly batchCall: BatchCall,
    private readonly limits: CoalescerLimits,
  ) {}

  /** The unary call's result, or its error (a raw grpc-js error or a ServiceError-shaped object). */
  call(method: BatchableMethod, req: unknown, deadline: number): Promise<unknown> {
    if (this.batchUnsupported || (this.inflight === 0 && this.queue.length === 0)) return this.sendUnary(method, req, deadline);
    return new Promise((resolve, reject) => {
      this.queue.push({ method, req, deadline, resolve, reject, settled: false });
      if (this.queue.length >= this.limits.maxBatchItems) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
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

  /** Sends everything queued: in batches within the limits, a lone or oversized item unary. */
  private flush(): void {
    this.flushScheduled = false;
    const items = this.queue;
    this.queue = [];
    let chunk: Pending[] = [];
    let chunkParts: Buffer[] = [];
    let chunkBytes = 0;
    const sendChunk = (): void => {
      if (chunk.length === 1) this.forward(chunk[0]!, this.sendUnary(chunk[0]!.method, chunk[0]!.req, chunk[0]!.deadline));
      else if (chunk.length > 1) this.sendBatch(chunk, Buffer.concat(chunkParts, chunkBytes));
      chunk = [];
      chunkParts = [];
      chunkBytes = 0;
    };
    for (const p of items) {
      const framed = frameItem(p);
      if (framed.length > this.limits.maxBatchBytes) {
        this.forward(p, this.sendUnary(p.method, p.req, p.deadline));
        continue;
      }
      if (chunk.length >= this.limits.maxBatchItems || chunkBytes + framed.length > this.limits.maxBatchBytes) sendChunk();
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

  private sendBatch(items: Pending[], request: Buffer): void {
    let deadline = 0;
    let earliest = Infinity;
    for (const p of items) {
      deadline = Math.max(deadline, p.deadline);
      earliest = Math.min(earliest, p.deadline);
    }
    const timer = deadline - earliest > DEADLINE_SPREAD_MS ? this.expireEarly(items, deadline) : undefined;
    this.inflight++;
    let sent: Promise<{ results?: BatchResultMsg[] }>;
    try {
      sent = this.batchCall(request, deadline);
    } catch (e) {
      sent = Promise.reject(e);
    }
    sent.then(
      (res) => {
        this.inflight--;
        if (timer) clearTimeout(timer);
        const results = res.results ?? [];
        items.forEach((p, i) => settleFromResult(p, results[i]));
      },
      (e: unknown) => {
        this.inflight--;
        if (timer) clearTimeout(timer);
        const code = (e as { code?: number })?.code;
        if (code === grpc.status.UNIMPLEMENTED) this.batchUnsupported = true;
        if (code === grpc.status.UNIMPLEMENTED || code === grpc.status.RESOURCE_EXHAUSTED) {
          // Nothing in the batch ran: each item goes again on its own.
          for (const p of items) if (!p.settled) this.forward(p, this.sendUnary(p.method, p.req, p.deadline));
          return;
        }
        for (const p of items) settle(p, () => p.reject(e));
      },
    );
  }

  /** Fails items whose own deadline passes while the batch (with a later deadline) is out. */
  private expireEarly(items: Pending[], batchDeadline: number): NodeJS.Timeout | undefined {
    const next = Math.min(...items.filter((p) => !p.settled).map((p) => p.deadline));
    if (!Number.isFinite(next) || next >= batchDeadline) return undefined;
    const t = setTimeout(() => {
      const now = Date.now();
      for (const p of items) if (p.deadline <= now) settle(p, () => p.reject(deadlineExceeded()));
      this.expireEarly(items, batchDeadline);
    }, Math.max(0, next - Date.now()));
    t.unref();
    return t;
  }
}

function settle(p: Pending, fn: () => void): void {
  if (p.settled) return;
  p.settled = true;
  fn();
}

function settleFromResult(p: Pending, r: BatchResultMsg | undefined): void {
  if (!r) return settle(p, () => p.reject({ code: grpc.status.INTERNAL, details: 'batch response has no result for this call', metadata: new grpc.Metadata() }));
  if (r.error) {
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(r.error.metadata ?? {})) metadata.set(k, v);
    const err = { code: r.error.code, details: r.error.message, metadata };
    return settle(p, () => p.reject(err));
  }
  const res = r[BATCHABLE_METHODS[p.method]];
  if (res == null) return settle(p, () => p.reject({ code: grpc.status.INTERNAL, details: `batch result of a ${p.method} has no ${p.method} response`, metadata: new grpc.Metadata() }));
  settle(p, () => p.resolve(res));
}

function deadlineExceeded(): { code: number; details: string; metadata: grpc.Metadata } {
  return { code: grpc.status.DEADLINE_EXCEEDED, details: 'Deadline exceeded (the call was in a batch that is still out)', metadata: new grpc.Metadata() };
}

/** One BatchItem as field 1 of BatchRequest (tag, length, bytes), so batches are joined without re-encoding. */
function frameItem(p: Pending): Buffer {
  batchItemType ??= kvType('BatchItem');
  const timeoutMs = Math.max(1, Math.min(0xffffffff, Math.round(p.deadline - Date.now())));
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
