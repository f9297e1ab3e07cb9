// The SDK's call coalescing on the wire, against fake servers (real grpc-js servers on
// 127.0.0.1 that record what arrives): concurrent calls travel as KV.Batch, a lone call as its
// own unary call, a server without Batch still gets every call, and an item's own error is
// handled by the SDK's retry policy exactly as a unary call's (here: a leader hint followed).

import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { KvClient, KvClientError, StatusCode } from './kv-client.js';
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
async function fakeServer(opts: { batch?: boolean; refuse?: (key: string) => { code: number; message: string; metadata: Record<string, string> } | undefined } = {}): Promise<FakeServer> {
  const rec: Omit<FakeServer, 'addr' | 'stop'> = { unary: [], batches: [], seqs: [] };
  const server = new grpc.Server();
  const kv = kvServiceDefinition('KV');
  const { Batch: _batch, ...withoutBatch } = kv;
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
  server.addService(opts.batch === false ? withoutBatch : kv, impl);
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
  it('sends concurrent puts as KV.Batch and a lone put as Put; every put gets its own result and key', async () => {
    const s = await fakeServer();
    const c = client([s.addr]);
    const lone = await c.put('lone', 'v');
    expect(s.unary).toEqual(['lone']);
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    const res = await Promise.all(keys.map((k) => c.put(k, 'v')));
    // The first goes at once (nothing in flight), the other 19 in one batch at the end of the turn.
    expect(s.unary).toEqual(['lone', 'k0']);
    expect(s.batches).toEqual([keys.slice(1)]);
    // Each result is its own: revision = its idempotency seq, all distinct.
    expect(lone.revision).toBe(1);
    expect(res.map((r) => r.revision)).toEqual(keys.map((_, i) => i + 2));
    expect(new Set(s.seqs).size).toBe(21);
  });

  it('coalesceCalls: false sends every call unary', async () => {
    const s = await fakeServer();
    const c = client([s.addr], { coalesceCalls: false });
    await Promise.all(['a', 'b', 'c'].map((k) => c.put(k, 'v')));
    expect(s.unary.sort()).toEqual(['a', 'b', 'c']);
    expect(s.batches).toEqual([]);
  });

  it('a server without Batch (UNIMPLEMENTED) still gets every put, unary', async () => {
    const s = await fakeServer({ batch: false });
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
    expect(stale.batches).toEqual([['moved', 'b']]);
    expect(leader.unary).toEqual(['moved']);
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
    expect(s.batches).toEqual([['bad', 'b']]);
  });
});
