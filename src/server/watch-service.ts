// The Watch gRPC service: each call streams changes to a key or range from a start revision.
// Events are read from the state machine's MVCC history in revision-bounded chunks, so a
// watcher holds at most one chunk in memory however far behind it is; a watcher that stops
// reading (its stream does not drain) for maxWatchStallMs is cancelled with a clear reason,
// and one that falls behind compaction is cancelled with the compacted revision.

import * as grpc from '@grpc/grpc-js';
import type { ChangeEvent } from '../state-machine/index.js';
import { CompactedError } from '../state-machine/errors.js';
import { KvError } from './errors.js';
import { checkKey } from './kv-service.js';
import type { NodeHost } from './node-host.js';

/** Most events per response (a single larger revision is still sent whole). */
export const MAX_WATCH_EVENTS_PER_RESPONSE = 1_000;
/** Default interval of progress notices when nothing else was sent. */
export const DEFAULT_WATCH_PROGRESS_MS = 1_000;
/** A watcher whose stream has not drained for this long is cancelled. */
export const MAX_WATCH_STALL_MS = 30_000;
/** Most concurrent watch streams per node. */
export const MAX_WATCHERS = 10_000;

interface WatchRequest {
  key?: Uint8Array;
  rangeEnd?: Uint8Array;
  startRevision?: number;
  progressNotifyMs?: number;
}

type Call = grpc.ServerWritableStream<WatchRequest, unknown>;

function inRange(key: Uint8Array, start: Uint8Array, end: Uint8Array | undefined): boolean {
  if (!end || end.length === 0) return Buffer.compare(key, start) === 0;
  if (end.length === 1 && end[0] === 0) return Buffer.compare(key, start) >= 0;
  return Buffer.compare(key, start) >= 0 && Buffer.compare(key, end) < 0;
}

export class WatchService {
  private active = 0;

  constructor(private readonly host: NodeHost) {}

  handlers(): grpc.UntypedServiceImplementation {
    return { Watch: (call: Call) => void this.serve(call) };
  }

  private async serve(call: Call): Promise<void> {
    const req = call.request;
    try {
      checkKey(req.key, this.host.cfg.limits);
    } catch (e) {
      this.fail(call, e instanceof KvError ? e.code : grpc.status.INVALID_ARGUMENT, (e as Error).message);
      return;
    }
    if (this.active >= MAX_WATCHERS) {
      this.fail(call, grpc.status.RESOURCE_EXHAUSTED, `too many watchers (MAX_WATCHERS=${MAX_WATCHERS})`);
      return;
    }
    this.active++;
    let closed = false;
    call.on('cancelled', () => (closed = true));
    call.on('close', () => (closed = true));
    try {
      await this.stream(call, req, () => closed);
    } finally {
      this.active--;
    }
  }

  private async stream(call: Call, req: WatchRequest, isClosed: () => boolean): Promise<void> {
    const sm = this.host.sm;
    const progressMs = Number(req.progressNotifyMs ?? 0) > 0 ? Number(req.progressNotifyMs) : DEFAULT_WATCH_PROGRESS_MS;
    let next = Number(req.startRevision ?? 0) > 0 ? Number(req.startRevision) : sm.revision() + 1;
    const key = req.key!;
    while (!isClosed()) {
      if (this.host.stopping) {
        // Let the client resume on another node from its last delivered revision.
        this.fail(call, grpc.status.UNAVAILABLE, 'node is shutting down; resume the watch on another node');
        return;
      }
      const current = sm.revision();
      if (next <= current) {
        let events: ChangeEvent[];
        try {
          events = await sm.changes(next, current, MAX_WATCH_EVENTS_PER_RESPONSE);
        } catch (e) {
          if (!(e instanceof CompactedError)) throw e;
          this.end(call, { canceled: true, cancelReason: e.message, compactRevision: e.compactRevision });
          return;
        }
        if (events.length === 0) {
          next = current + 1;
          continue;
        }
        const last = events[events.length - 1]!.revision;
        const mine = events.filter((e) => inRange(e.kv.key, key, req.rangeEnd));
        next = last + 1;
        if (mine.length === 0) continue;
        const ok = await this.write(call, { header: this.header(last), events: mine.map((e) => ({ type: e.type === 'put' ? 0 : 1, kv: e.kv })) });
        if (!ok) return;
        continue;
      }
      // Caught up: wait for new revisions, or send a progress notice when the interval passes.
      const moved = await this.host.waitUntil(() => sm.revision() >= next || isClosed(), progressMs);
      if (!moved && !isClosed()) {
        const ok = await this.write(call, { header: this.header(next - 1), progress: true, events: [] });
        if (!ok) return;
      }
    }
  }

  /** Ends the stream with an error status (grpc-js sends it on an 'error' emit). */
  private fail(call: Call, code: grpc.status, details: string): void {
    call.emit('error', { code, details });
  }

  private header(revision: number): { revision: number; servedBy: number } {
    return { revision, servedBy: this.host.cfg.id };
  }

  /** Writes one response, waiting for the stream to drain; false (and cancels) on a stall. */
  private async write(call: Call, res: unknown): Promise<boolean> {
    if (call.write(res)) return true;
    const drained = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), MAX_WATCH_STALL_MS);
      call.once('drain', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!drained) {
      this.end(call, { canceled: true, cancelReason: `watcher too slow: its stream did not drain for ${MAX_WATCH_STALL_MS} ms (MAX_WATCH_STALL_MS)` });
    }
    return drained;
  }

  private end(call: Call, res: Record<string, unknown>): void {
    call.write({ header: this.header(this.host.sm.revision()), events: [], ...res });
    call.end();
  }
}
