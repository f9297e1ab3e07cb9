// The SDK's retry policy against scripted fake servers: which failures are retried, which
// never are (a write whose outcome is unknown), hint following, backoff within the deadline.

import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { LEADER_ADDR_METADATA_KEY, LEADER_ID_METADATA_KEY, NOT_APPLIED_METADATA_KEY } from './proto.js';
import { KvClient, KvClientError, StatusCode, writeDefinitelyNotApplied } from './index.js';
import { kvServiceDefinition } from './proto.js';

type Behaviour = (method: string, n: number) => { ok: unknown } | { err: { code: grpc.status; details: string; hint?: { id: number; addr: string }; notApplied?: boolean } } | 'hang';

interface Fake {
  addr: string;
  calls: string[];
  /** Every request received, in order. */
  requests: Array<{ method: string; req: { idempotencyKey?: { clientId: string; seq: number } | null } }>;
  stop(): Promise<void>;
}

const fakes: Fake[] = [];
const clients: KvClient[] = [];

async function fake(id: number, role: 'LEADER' | 'FOLLOWER', leaderId: number, behaviour: Behaviour, members: Array<{ id: number; clientAddr: string }> = []): Promise<Fake> {
  const server = new grpc.Server();
  const calls: string[] = [];
  const requests: Fake['requests'] = [];
  const counts = new Map<string, number>();
  const hung: Array<() => void> = [];
  const handler = (method: string) => (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    calls.push(method);
    requests.push({ method, req: call.request as Fake['requests'][number]['req'] });
    const n = (counts.get(method) ?? 0) + 1;
    counts.set(method, n);
    if (method === 'Status') {
      cb(null, { memberId: id, leaderId, raftTerm: 1, role, members: members.map((m) => ({ ...m, peerAddr: 'x:1', isLearner: false })) });
      return;
    }
    const b = behaviour(method, n);
    if (b === 'hang') {
      hung.push(() => cb({ code: grpc.status.CANCELLED, details: 'shutting down' } as grpc.ServiceError));
      return;
    }
    if ('ok' in b) return cb(null, b.ok);
    const md = new grpc.Metadata();
    if (b.err.hint) {
      md.set(LEADER_ID_METADATA_KEY, String(b.err.hint.id));
      md.set(LEADER_ADDR_METADATA_KEY, b.err.hint.addr);
    }
    if (b.err.notApplied) md.set(NOT_APPLIED_METADATA_KEY, '1');
    cb({ code: b.err.code, details: b.err.details, metadata: md } as grpc.ServiceError);
  };
  const impl = (names: string[]) => Object.fromEntries(names.map((n) => [n, handler(n)]));
  server.addService(kvServiceDefinition('KV'), impl(['Put', 'Get', 'Delete', 'Range', 'Txn']));
  server.addService(kvServiceDefinition('Cluster'), impl(['Status', 'MemberList', 'MemberAdd', 'MemberAddLearner', 'MemberPromote', 'MemberRemove', 'LeaderTransfer']));
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const f: Fake = {
    addr: `127.0.0.1:${port}`,
    calls,
    requests,
    stop: async () => {
      for (const h of hung) h();
      server.forceShutdown();
    },
  };
  fakes.push(f);
  return f;
}

function client(endpoints: string[], timeoutMs = 2_000, maxRetries = 8): KvClient {
  const c = new KvClient({ endpoints, defaultTimeoutMs: timeoutMs, maxRetries, baseBackoffMs: 5, maxBackoffMs: 20 });
  clients.push(c);
  return c;
}

async function failure(p: Promise<unknown>): Promise<KvClientError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(KvClientError);
  return e as KvClientError;
}

const putOk = { ok: { header: { revision: 7 } } };
const getOk = { ok: { header: { revision: 7, servedBy: 1 }, kv: { key: Buffer.from('k'), value: Buffer.from('v'), createRevision: 1, modRevision: 7, version: 2 } } };

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const f of fakes.splice(0)) await f.stop();
});

describe('retry policy', () => {
  it('a keyed write whose attempt hangs is retried with the same idempotency key', async () => {
    const leader = await fake(1, 'LEADER', 1, (m, n) => (m === 'Put' && n === 1 ? 'hang' : putOk));
    const c = new KvClient({ endpoints: [leader.addr], defaultTimeoutMs: 3_000, attemptTimeoutMs: 300, baseBackoffMs: 5, maxBackoffMs: 20 });
    clients.push(c);
    const r = await c.put('k', 'v');
    expect(r.revision).toBe(7);
    const puts = leader.requests.filter((x) => x.method === 'Put');
    expect(puts).toHaveLength(2);
    expect(puts[0]!.req.idempotencyKey).toEqual({ clientId: c.clientId, seq: 1 });
    expect(puts[1]!.req.idempotencyKey).toEqual(puts[0]!.req.idempotencyKey);
    // The next logical write gets the next seq.
    await c.put('k2', 'v');
    expect(leader.requests.filter((x) => x.method === 'Put').at(-1)!.req.idempotencyKey!.seq).toBe(2);
  });

  it('keyed writes are retried after a server DEADLINE_EXCEEDED or any UNAVAILABLE; key refusals are final', async () => {
    const leader = await fake(1, 'LEADER', 1, (m, n) => {
      if (m === 'Put') return n === 1 ? { err: { code: grpc.status.DEADLINE_EXCEEDED, details: 'write not applied before the deadline; its outcome is unknown' } } : putOk;
      if (m === 'Delete') return n === 1 ? { err: { code: grpc.status.UNAVAILABLE, details: 'Connection dropped' } } : { ok: { header: { revision: 8 }, deleted: 1 } };
      return { err: { code: grpc.status.FAILED_PRECONDITION, details: 'idempotency key expired' } };
    });
    const c = client([leader.addr]);
    expect((await c.put('k', 'v')).revision).toBe(7);
    expect((await c.delete('k')).revision).toBe(8);
    const e = await failure(c.txn({ success: [{ put: { key: 'k', value: 'v' } }] }));
    expect(e.code).toBe(StatusCode.FAILED_PRECONDITION);
    expect(e.attempts).toBe(1);
    const keys = leader.requests.filter((x) => x.method !== 'Status').map((x) => `${x.method}:${x.req.idempotencyKey?.seq}`);
    expect(keys).toEqual(['Put:1', 'Put:1', 'Delete:2', 'Delete:2', 'Txn:3']);
  });

  it('a write without an idempotency key (member remove) is not retried after a deadline (outcome unknown)', async () => {
    const leader = await fake(1, 'LEADER', 1, () => 'hang');
    const c = client([leader.addr], 1_500);
    const t0 = Date.now();
    const e = await failure(c.memberRemove(3));
    expect(e.code, e.message).toBe(StatusCode.DEADLINE_EXCEEDED);
    expect(Date.now() - t0).toBeLessThan(1_500 + 1_000);
    expect(leader.calls.filter((m) => m === 'MemberRemove')).toHaveLength(1);
    expect(e.attempts).toBe(1);
  });

  it('reads are retried on any UNAVAILABLE', async () => {
    const leader = await fake(1, 'LEADER', 1, (m, n) => (n < 3 ? { err: { code: grpc.status.UNAVAILABLE, details: 'node is shutting down' } } : getOk));
    const c = client([leader.addr]);
    const g = await c.get('k');
    expect(Buffer.from(g.value!).toString()).toBe('v');
    expect(leader.calls.filter((m) => m === 'Get')).toHaveLength(3);
  });

  it('a write refused with "not the leader" follows the hint to an address outside the endpoint list', async () => {
    const real = await fake(2, 'LEADER', 2, () => putOk);
    const stale = await fake(1, 'LEADER', 1, () => ({ err: { code: grpc.status.UNAVAILABLE, details: 'not the leader: send writes to the leader', hint: { id: 2, addr: real.addr }, notApplied: true } }));
    const c = client([stale.addr]);
    expect((await c.put('k', 'v')).revision).toBe(7);
    expect(c.cachedLeader).toBe(real.addr);
    expect(stale.calls.filter((m) => m === 'Put')).toHaveLength(1);
    expect(real.calls.filter((m) => m === 'Put')).toHaveLength(1);
  });

  it('"leadership changed ... not applied" and "too many pending proposals" are retried for writes, with backoff', async () => {
    const leader = await fake(1, 'LEADER', 1, (m, n) => {
      if (n === 1) return { err: { code: grpc.status.UNAVAILABLE, details: 'leadership changed before the write committed; it was not applied', notApplied: true } };
      if (n === 2) return { err: { code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many pending proposals (maxPendingProposals=1)', notApplied: true } };
      return putOk;
    });
    const c = client([leader.addr]);
    expect((await c.put('k', 'v')).revision).toBe(7);
    expect(leader.calls.filter((m) => m === 'Put')).toHaveLength(3);
  });

  it('gives up after maxRetries and reports the attempts', async () => {
    const f = await fake(1, 'FOLLOWER', 0, () => ({ err: { code: grpc.status.UNAVAILABLE, details: 'not the leader (no-leader)', notApplied: true } }));
    // Status says no leader, so discovery itself fails (nothing sent): retried until maxRetries.
    const c = client([f.addr], 5_000, 3);
    const e = await failure(c.put('k', 'v'));
    expect(e.code).toBe(StatusCode.UNAVAILABLE);
    expect(e.attempts).toBe(4);
    expect(f.calls.filter((m) => m === 'Put')).toHaveLength(0);
  });

  it('a keyed write whose first attempt may have applied is never reported as certainly not applied', async () => {
    // The first attempt's outcome is unknown (its answer lost); every retry is refused before
    // proposing. The last error alone would say "not applied": the first attempt may still be.
    const leader = await fake(1, 'LEADER', 1, (m, n) =>
      n === 1
        ? { err: { code: grpc.status.DEADLINE_EXCEEDED, details: 'write not applied before the deadline; its outcome is unknown' } }
        : { err: { code: grpc.status.UNAVAILABLE, details: 'not the leader (no-leader)', notApplied: true } },
    );
    const c = client([leader.addr], 5_000, 3);
    const e = await failure(c.txn({ success: [{ put: { key: 'k', value: 'v' } }] }));
    expect(e.code).toBe(StatusCode.UNAVAILABLE);
    expect(e.attempts).toBe(4);
    expect(e.opts.notApplied).toBe(true);
    expect(e.opts.earlierAttemptMayHaveApplied).toBe(true);
    expect(writeDefinitelyNotApplied(e)).toBe(false);
    // Every attempt refused before proposing: certainly not applied.
    const refusing = await fake(2, 'LEADER', 2, () => ({ err: { code: grpc.status.UNAVAILABLE, details: 'not the leader (no-leader)', notApplied: true } }));
    const c2 = client([refusing.addr], 5_000, 3);
    const e2 = await failure(c2.txn({ success: [{ put: { key: 'k', value: 'v' } }] }));
    expect(e2.attempts).toBe(4);
    expect(e2.opts.earlierAttemptMayHaveApplied).toBeUndefined();
    expect(writeDefinitelyNotApplied(e2)).toBe(true);
  });

  it('never waits past the deadline while backing off', async () => {
    const f = await fake(1, 'FOLLOWER', 0, () => putOk);
    const c = new KvClient({ endpoints: [f.addr], defaultTimeoutMs: 250, maxRetries: 1_000, baseBackoffMs: 50, maxBackoffMs: 1_000 });
    clients.push(c);
    const t0 = Date.now();
    const e = await failure(c.get('k'));
    expect(e.code).toBe(StatusCode.UNAVAILABLE);
    expect(Date.now() - t0).toBeLessThan(600);
  });

  it('classifies errors conservatively', () => {
    const mk = (code: grpc.status, details: string, notApplied = false) => new KvClientError(code, details, { notApplied });
    expect(writeDefinitelyNotApplied(mk(StatusCode.UNAVAILABLE, 'not the leader: send writes to the leader', true))).toBe(true);
    // Message text alone proves nothing: only the server's marker does.
    expect(writeDefinitelyNotApplied(mk(StatusCode.UNAVAILABLE, 'not the leader: send writes to the leader'))).toBe(false);
    expect(writeDefinitelyNotApplied(mk(StatusCode.UNAVAILABLE, 'No connection established. Last error: connect ECONNREFUSED'))).toBe(true);
    expect(writeDefinitelyNotApplied(mk(StatusCode.UNAVAILABLE, 'Connection dropped'))).toBe(false);
    expect(writeDefinitelyNotApplied(mk(StatusCode.UNAVAILABLE, 'node is shutting down'))).toBe(false);
    expect(writeDefinitelyNotApplied(mk(StatusCode.DEADLINE_EXCEEDED, 'Deadline exceeded'))).toBe(false);
    expect(writeDefinitelyNotApplied(mk(StatusCode.RESOURCE_EXHAUSTED, 'value is 5 bytes, over maxValueBytes=4'))).toBe(false);
    expect(writeDefinitelyNotApplied(mk(StatusCode.INTERNAL, 'boom'))).toBe(false);
  });
});
