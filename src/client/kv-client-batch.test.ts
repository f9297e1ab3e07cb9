// The SDK's call coalescing on the wire, against fake servers (real grpc-js servers on
// 127.0.0.1 that record what arrives): calls travel on one KV.Pipeline stream (concurrent ones
// in one message, a lone one at once), a server without Pipeline gets KV.Batch calls and one
// without Batch unary calls, a broken stream fails its calls as "outcome unknown", and an item's
// own error is handled by the SDK's retry policy exactly as a unary call's (a leader hint followed).

import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { KvClient, KvClientError, StatusCode, writeDefinitelyNotApplied } from './kv-client.js';
import { kvServiceDefinition, LEADER_ADDR_METADATA_KEY, LEADER_ID_METADATA_KEY, NOT_APPLIED_METADATA_KEY } from './proto.js';
import { bindInsecure } from '../wire/grpc-service.js';

interface PutReq {
  key: Uint8Array;
  idempotencyKey?: { clientId: string; seq: number };
}
type Item = { put?: PutReq; get?: { key: Uint8Array } };

interface FakeServer {
  addr: string;
  unary: string[];
  batches: string[][];
  /** The keys of each Pipeline message, in arrival order. */
  pipeline: string[][];
  streams: { opened: number; halfClosed: number };
  seqs: number[];
  stop(): Promise<void>;
}

const servers: FakeServer[] = [];
const clients: KvClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.stop();
});

/**
 * A fake leader. Put answers revision = the seq of its idempotency key; `refuse(key)` may
 * return an error for a key instead (as a unary status or a batch item's error).
 */
async function fakeServer(
  opts: { batch?: boolean; pipeline?: boolean; breakOn?: string; refuse?: (key: string) => { code: number; message: string; metadata: Record<string, string> } | undefined } = {},
): Promise<FakeServer> {
  const rec: Omit<FakeServer, 'addr' | 'stop'> = { unary: [], batches: [], pipeline: [], streams: { opened: 0, halfClosed: 0 }, seqs: [] };
  const server = new grpc.Server();
  const { Batch: _batch, Pipeline: _pipeline, ...unaryOnly } = kvServiceDefinition('KV');
  const kv: grpc.ServiceDefinition = { ...unaryOnly, ...(opts.batch === false ? {} : { Batch: _batch }), ...(opts.pipeline === false ? {} : { Pipeline: _pipeline }) };
  const answerPut = (req: PutReq): { ok: unknown } | { err: { code: number; message: string; metadata: Record<string, string> } } => {
    const key = Buffer.from(req.key).toString();
    rec.seqs.push(Number(req.idempotencyKey?.seq ?? 0));
    const refusal = opts.refuse?.(key);
    return refusal ? { err: refusal } : { ok: { header: { revision: Number(req.idempotencyKey?.seq ?? 0) } } };
  };
  const impl: grpc.UntypedServiceImplementation = {
    Put: (call: grpc.ServerUnaryCall<PutReq, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      rec.unary.push(Buffer.from(call.request.key).toString());
      const a = answerPut(call.request);
      if ('ok' in a) {
        setTimeout(() => cb(null, a.ok), 5);
        return;
      }
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(a.err.metadata)) md.set(k, v);
      cb({ code: a.err.code, details: a.err.message, metadata: md } as grpc.ServiceError);
    },
    Batch: (call: grpc.ServerWritableStream<{ items: Item[] }, unknown>) => {
      rec.batches.push(call.request.items.map((it) => Buffer.from((it.put ?? it.get)!.key).toString()));
      const results = call.request.items.map((it, index) => {
        const a = answerPut(it.put!);
        return 'ok' in a ? { index, put: a.ok } : { index, error: a.err };
      });
      setTimeout(() => {
        call.write({ results });
        call.end();
      }, 5);
    },
  };
  impl.Pipeline = (call: grpc.ServerDuplexStream<{ items: Item[] }, unknown>) => {
    rec.streams.opened++;
    let received = 0;
    call.on('data', (req: { items: Item[] }) => {
      const keys = req.items.map((it) => Buffer.from((it.put ?? it.get)!.key).toString());
      rec.pipeline.push(keys);
      if (opts.breakOn !== undefined && keys.includes(opts.breakOn)) {
        call.emit('error', { code: StatusCode.UNAVAILABLE, details: 'connection reset (fake)' });
        return;
      }
      const first = received;
      received += req.items.length;
      const results = req.items.map((it, i) => {
        const a = answerPut(it.put!);
        return 'ok' in a ? { index: first + i, put: a.ok } : { index: first + i, error: a.err };
      });
      setTimeout(() => call.write({ results }), 5);
    });
    call.on('end', () => {
      rec.streams.halfClosed++;
      setTimeout(() => call.end(), 10);
    });
  };
  server.addService(kv, impl);
  server.addService(kvServiceDefinition('Cluster'), {
    Status: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { memberId: 1, leaderId: 1, raftTerm: 1, role: 'LEADER', members: [] }),
  });
  const port = await bindInsecure(server, '127.0.0.1:0', 'fake server');
  // The recorder arrays are shared with `rec` (the spread copies the references).
  const s: FakeServer = { ...rec, addr: `127.0.0.1:${port}`, stop: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
  servers.push(s);
  return s;
}

function client(endpoints: string[], extra: Partial<ConstructorParameters<typeof KvClient>[0]> = {}): KvClient {
  const c = new KvClient({ endpoints, defaultTimeoutMs: 3_000, ...extra });
  clients.push(c);
  return c;
}

describe('KvClient call coalescing', () => {
  it('sends every put on one Pipeline stream: a lone put at once, concurrent puts as one message; each gets its own result', async () => {
    const s = await fakeServer();
    const c = client([s.addr]);
    const lone = await c.put('lone', 'v');
    expect(s.pipeline).toEqual([['lone']]);
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    const res = await Promise.all(keys.map((k) => c.put(k, 'v')));
    // The first goes at once (nothing in flight), the other 19 in one message at the end of the turn.
    expect(s.pipeline).toEqual([['lone'], ['k0'], keys.slice(1)]);
    expect(s.unary).toEqual([]);
    expect(s.batches).toEqual([]);
    expect(s.streams.opened).toBe(1);
    // Each result is its own (matched by its index in the stream): revision = its idempotency seq.
    expect(lone.revision).toBe(1);
    expect(res.map((r) => r.revision)).toEqual(keys.map((_, i) => i + 2));
    expect(new Set(s.seqs).size).toBe(21);
  });

  it('a server without Pipeline (UNIMPLEMENTED) gets the same puts as KV.Batch; one without either, unary', async () => {
    const s = await fakeServer({ pipeline: false });
    const c = client([s.addr]);
    const res = await Promise.all(['a', 'b', 'c'].map((k) => c.put(k, 'v')));
    expect(res.map((r) => r.revision)).toEqual([1, 2, 3]);
    expect(s.batches).toEqual([['a', 'b', 'c']]);
    // From then on a lone call goes unary and concurrent ones in a Batch.
    await c.put('d', 'v');
    expect(s.unary).toEqual(['d']);
    const old = await fakeServer({ pipeline: false, batch: false });
    const c2 = client([old.addr]);
    await Promise.all(['x', 'y'].map((k) => c2.put(k, 'v')));
    expect(old.unary.sort()).toEqual(['x', 'y']);
  });

  it('a broken stream fails the calls on it with its status (outcome unknown); the next call opens a new stream', async () => {
    const s = await fakeServer({ breakOn: 'boom' });
    const c = client([s.addr], { maxRetries: 0 });
    // 'a' goes at once; 'boom' and 'c' follow in one message while 'a' is unanswered.
    const got = await Promise.allSettled(['a', 'boom', 'c'].map((k) => c.put(k, 'v')));
    expect(s.pipeline).toEqual([['a'], ['boom', 'c']]);
    expect(got.map((g) => g.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const r of got as PromiseRejectedResult[]) {
      const e = r.reason as KvClientError;
      expect(e.code).toBe(StatusCode.UNAVAILABLE);
      expect(writeDefinitelyNotApplied(e)).toBe(false);
    }
    const after = await c.put('d', 'v');
    expect(after.revision).toBeGreaterThan(0);
    expect(s.streams.opened).toBe(2);
  });

  it('half-closes a stream idle for pipelineIdleMs and opens another for the next call', async () => {
    const s = await fakeServer();
    const c = client([s.addr], { pipelineIdleMs: 30 });
    await c.put('a', 'v');
    for (let i = 0; i < 100 && s.streams.halfClosed === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(s.streams.halfClosed).toBe(1);
    await c.put('b', 'v');
    expect(s.streams.opened).toBe(2);
    expect(s.pipeline).toEqual([['a'], ['b']]);
  });

  it('coalesceCalls: false sends every call unary', async () => {
    const s = await fakeServer();
    const c = client([s.addr], { coalesceCalls: false });
    await Promise.all(['a', 'b', 'c'].map((k) => c.put(k, 'v')));
    expect(s.unary.sort()).toEqual(['a', 'b', 'c']);
    expect(s.batches).toEqual([]);
  });

  it('a server without Batch or Pipeline (UNIMPLEMENTED) still gets every put, unary', async () => {
    const s = await fakeServer({ batch: false, pipeline: false });
    const c = client([s.addr]);
    const res = await Promise.all(['a', 'b', 'c', 'd'].map((k) => c.put(k, 'v')));
    expect(res.every((r) => r.revision > 0)).toBe(true);
    expect(s.unary.sort()).toEqual(['a', 'b', 'c', 'd']);
  });

  it("follows a leader hint in one batch item's error, retrying that item alone at the hinted leader", async () => {
    const leader = await fakeServer();
    const stale = await fakeServer({
      refuse: (key) =>
        key === 'moved'
          ? { code: StatusCode.UNAVAILABLE, message: 'not the leader', metadata: { [LEADER_ID_METADATA_KEY]: '2', [LEADER_ADDR_METADATA_KEY]: leader.addr, [NOT_APPLIED_METADATA_KEY]: '1' } }
          : undefined,
    });
    const c = client([stale.addr]);
    const res = await Promise.all(['a', 'moved', 'b'].map((k) => c.put(k, 'v')));
    expect(stale.pipeline).toEqual([['a'], ['moved', 'b']]);
    expect(leader.pipeline).toEqual([['moved']]);
    // Same idempotency key on the retry: the hinted leader saw the seq the stale one saw.
    expect(leader.seqs).toEqual([stale.seqs[1]]);
    expect(res.map((r) => r.revision)).toEqual([1, 2, 3]);
  });

  it("an item's final error reaches its caller as KvClientError with the item's status; the others succeed", async () => {
    const s = await fakeServer({ refuse: (key) => (key === 'bad' ? { code: StatusCode.RESOURCE_EXHAUSTED, message: 'value is too big', metadata: {} } : undefined) });
    const c = client([s.addr]);
    const got = await Promise.allSettled(['a', 'bad', 'b'].map((k) => c.put(k, 'v')));
    expect(got.map((g) => g.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const e = (got[1] as PromiseRejectedResult).reason as KvClientError;
    expect(e).toBeInstanceOf(KvClientError);
    expect(e.code).toBe(StatusCode.RESOURCE_EXHAUSTED);
    expect(e.details).toBe('value is too big');
    expect(s.pipeline).toEqual([['a'], ['bad', 'b']]);
  });
});
