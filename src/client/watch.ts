// Watching a key or prefix from a revision, as an async iterator that survives node failures:
// when a stream breaks, it reconnects (to the next endpoint) from the revision after the last
// one it delivered or was told about by a progress notice, so no event is lost or repeated.
//
//   for await (const batch of client.watch('cfg/', { prefix: true, startRevision: 1 })) {
//     for (const e of batch.events) console.log(e.type, text(e.kv.key), e.revision);
//   }

import * as grpc from '@grpc/grpc-js';
import type { Bytes, KeyValue } from './kv-client.js';
import { KvClientError, prefixEnd, toBytes } from './kv-client.js';
import { kvServiceDefinition } from './proto.js';

export interface WatchOptions {
  /** Watch every key starting with `key`. */
  prefix?: boolean;
  /** Watch [key, rangeEnd); "\0" = every key >= key. */
  rangeEnd?: Bytes;
  /** First revision to deliver; default: changes after the current revision. */
  startRevision?: number;
  /** Progress notice interval when nothing changes (server default 1 s). */
  progressNotifyMs?: number;
  /** Reconnect attempts in a row before giving up. Default 30. */
  maxReconnects?: number;
  /** Stops the watch (the iterator ends). */
  signal?: AbortSignal;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  revision: number;
  kv: KeyValue;
}

export interface WatchBatch {
  events: WatchEvent[];
  /** Every change up to this revision has been delivered. */
  revision: number;
  /** A progress notice (no events). */
  progress: boolean;
  servedBy: number;
}

interface RawResponse {
  header?: { revision?: number; servedBy?: number } | null;
  events?: Array<{ type?: number; kv?: KeyValue | null }>;
  progress?: boolean;
  canceled?: boolean;
  cancelReason?: string;
  compactRevision?: number;
}

const WatchCtor = grpc.makeGenericClientConstructor(kvServiceDefinition('Watch'), 'Watch');

export async function* watchChanges(endpoints: readonly string[], key: Bytes, opts: WatchOptions = {}): AsyncGenerator<WatchBatch> {
  const k = toBytes(key);
  const rangeEnd = opts.prefix ? prefixEnd(k) : opts.rangeEnd === undefined ? undefined : toBytes(opts.rangeEnd);
  // The caller resolves "from now" to a concrete revision first, so a reconnect never skips.
  if (opts.startRevision === undefined || opts.startRevision < 1) throw new KvClientError(grpc.status.INVALID_ARGUMENT, 'watchChanges needs startRevision >= 1', { notSent: true });
  let nextRevision = opts.startRevision;
  let failures = 0;
  const maxReconnects = opts.maxReconnects ?? 30;
  for (let attempt = 0; !opts.signal?.aborted; attempt++) {
    const addr = endpoints[attempt % endpoints.length]!;
    const client = new WatchCtor(addr, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Watch: (req: unknown) => grpc.ClientReadableStream<RawResponse>;
    };
    const call = client.Watch({ key: k, rangeEnd, startRevision: nextRevision, progressNotifyMs: opts.progressNotifyMs ?? 0 });
    const onAbort = (): void => call.cancel();
    opts.signal?.addEventListener('abort', onAbort);
    try {
      for await (const raw of call as AsyncIterable<RawResponse>) {
        failures = 0;
        const revision = Number(raw.header?.revision ?? 0);
        if (raw.canceled) {
          throw new KvClientError(grpc.status.OUT_OF_RANGE, raw.cancelReason ?? 'watch canceled by the server', { endpoint: addr });
        }
        const events = (raw.events ?? []).map((e) => ({ type: e.type === 1 ? ('delete' as const) : ('put' as const), revision: Number(e.kv?.modRevision ?? revision), kv: normalizeKv(e.kv) }));
        // Resume after the last revision we know is fully delivered.
        if (revision + 1 > nextRevision) nextRevision = revision + 1;
        yield { events, revision, progress: raw.progress === true, servedBy: Number(raw.header?.servedBy ?? 0) };
      }
    } catch (e) {
      if (e instanceof KvClientError || opts.signal?.aborted) throw e;
      const code = (e as { code?: number }).code;
      if (code === grpc.status.INVALID_ARGUMENT || code === grpc.status.RESOURCE_EXHAUSTED) {
        throw new KvClientError(code, (e as { details?: string }).details ?? String(e), { endpoint: addr });
      }
      // The node went away or the stream broke: reconnect elsewhere, from nextRevision.
      if (++failures > maxReconnects) throw new KvClientError(grpc.status.UNAVAILABLE, `watch lost its stream ${failures} times in a row: ${(e as Error).message}`, { endpoint: addr });
      await new Promise((r) => setTimeout(r, Math.min(1_000, 20 * 2 ** Math.min(failures, 6))));
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      call.cancel();
      client.close();
    }
  }
}

/** protobufjs decodes an absent bytes field as an empty array, not a Uint8Array. */
function asBytes(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array((v as ArrayLike<number> | null | undefined) ?? []);
}

function normalizeKv(kv: KeyValue | null | undefined): KeyValue {
  return {
    key: asBytes(kv?.key),
    value: asBytes(kv?.value),
    createRevision: Number(kv?.createRevision ?? 0),
    modRevision: Number(kv?.modRevision ?? 0),
    version: Number(kv?.version ?? 0),
  };
}
