// SDK against a real 3-node cluster running in this process (real gRPC on loopback).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, KvClientError, StatusCode, text } from './index.js';
import { encodeCommand, kvType } from './proto.js';
import { startTestCluster, type TestCluster } from './test-cluster.js';

let cluster: TestCluster;
let client: KvClient;
const extraClients: KvClient[] = [];

function newClient(endpoints: string[], opts: { defaultTimeoutMs?: number; maxRetries?: number } = {}): KvClient {
  const c = new KvClient({ endpoints, ...opts });
  extraClients.push(c);
  return c;
}

async function expectCode(p: Promise<unknown>, ...codes: StatusCode[]): Promise<KvClientError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'call should have failed').toBeInstanceOf(KvClientError);
  const ke = e as KvClientError;
  expect(codes, `${ke.message}`).toContain(ke.code);
  return ke;
}

const idOf = (addr: string): number => cluster.specs.find((s) => s.clientAddr === addr)!.id;
const addrOf = (id: number): string => cluster.specs.find((s) => s.id === id)!.clientAddr;

beforeAll(async () => {
  cluster = await startTestCluster({ size: 3, tickIntervalMs: 20 });
  await cluster.waitForLeader();
  client = new KvClient({ endpoints: cluster.endpoints, defaultTimeoutMs: 5_000 });
});

afterAll(async () => {
  client?.close();
  for (const c of extraClients) c.close();
  await cluster?.stop();
});

describe('KV round trips', () => {
  it('put then get returns the value and its metadata; absent keys give undefined', async () => {
    const p1 = await client.put('greeting', 'hello');
    expect(p1.revision).toBeGreaterThan(0);
    const g = await client.get('greeting');
    expect(text(g.value)).toBe('hello');
    expect(g.kv).toMatchObject({ createRevision: p1.revision, modRevision: p1.revision, version: 1 });
    expect(text(g.kv!.key)).toBe('greeting');
    expect(g.header.revision).toBeGreaterThanOrEqual(p1.revision);
    expect(g.header.servedBy).toBeGreaterThan(0);

    const p2 = await client.put('greeting', new TextEncoder().encode('hi'), { prevKv: true });
    expect(p2.revision).toBeGreaterThan(p1.revision);
    expect(text(p2.prevKv!.value)).toBe('hello');
    const g2 = await client.get(new TextEncoder().encode('greeting'), { consistency: 'linearizable' });
    expect(g2.kv).toMatchObject({ createRevision: p1.revision, modRevision: p2.revision, version: 2 });

    const missing = await client.get('no-such-key');
    expect(missing.value).toBeUndefined();
    expect(missing.kv).toBeUndefined();
  });

  it('binary keys and values survive the trip', async () => {
    const key = Uint8Array.of(0, 1, 2, 0xff);
    const value = Uint8Array.from({ length: 300 }, (_, i) => i % 256);
    await client.put(key, value);
    const g = await client.get(key);
    expect(Buffer.from(g.value!)).toEqual(Buffer.from(value));
  });

  it('delete removes one key, or a whole prefix with prevKvs', async () => {
    await client.put('d/a', '1');
    await client.put('d/b', '2');
    await client.put('d/c', '3');
    await client.put('e', 'outside');
    const one = await client.delete('d/a');
    expect(one.deleted).toBe(1);
    expect((await client.get('d/a')).value).toBeUndefined();
    const none = await client.delete('d/zzz');
    expect(none.deleted).toBe(0);
    const all = await client.delete('d/', { prefix: true, prevKv: true });
    expect(all.deleted).toBe(2);
    expect(all.prevKvs.map((kv) => `${text(kv.key)}=${text(kv.value)}`)).toEqual(['d/b=2', 'd/c=3']);
    expect(text((await client.get('e')).value)).toBe('outside');
  });

  it('range by prefix, with limit/more, keysOnly and countOnly', async () => {
    for (const k of ['r/1', 'r/2', 'r/3', 'r/4', 's/1']) await client.put(k, `v-${k}`);
    const all = await client.range({ key: 'r/', prefix: true });
    expect(all.kvs.map((kv) => text(kv.key))).toEqual(['r/1', 'r/2', 'r/3', 'r/4']);
    expect(all.count).toBe(4);
    expect(all.more).toBe(false);
    expect(text(all.kvs[0]!.value)).toBe('v-r/1');

    const limited = await client.range({ key: 'r/', prefix: true, limit: 2 });
    expect(limited.kvs.map((kv) => text(kv.key))).toEqual(['r/1', 'r/2']);
    expect(limited.more).toBe(true);
    expect(limited.count).toBe(4);

    const keysOnly = await client.range({ key: 'r/', prefix: true, keysOnly: true });
    expect(keysOnly.kvs.map((kv) => text(kv.key))).toEqual(['r/1', 'r/2', 'r/3', 'r/4']);
    expect(keysOnly.kvs.every((kv) => kv.value.length === 0)).toBe(true);

    const counted = await client.range({ key: 'r/', prefix: true, countOnly: true });
    expect(counted.kvs).toEqual([]);
    expect(counted.count).toBe(4);

    const explicit = await client.range({ key: 'r/2', rangeEnd: 'r/4' });
    expect(explicit.kvs.map((kv) => text(kv.key))).toEqual(['r/2', 'r/3']);
  });

  it('txn: compare-and-swap takes the success branch once, then the failure branch', async () => {
    await client.put('cas', 'v1');
    const ok = await client.txn({
      compare: [{ key: 'cas', value: 'v1' }],
      success: [{ put: { key: 'cas', value: 'v2', prevKv: true } }, { get: { key: 'cas' } }],
      failure: [{ get: { key: 'cas' } }],
    });
    expect(ok.succeeded).toBe(true);
    expect(ok.responses).toHaveLength(2);
    expect(ok.responses[0]).toMatchObject({ type: 'put' });
    expect(ok.responses[1]!.type).toBe('range');
    const r1 = ok.responses[1] as { kvs: Array<{ value: Uint8Array }> };
    expect(text(r1.kvs[0]!.value)).toBe('v2');

    const again = await client.txn({
      compare: [{ key: 'cas', value: 'v1' }],
      success: [{ put: { key: 'cas', value: 'v3' } }],
      failure: [{ range: { key: 'cas' } }],
    });
    expect(again.succeeded).toBe(false);
    expect(text((again.responses[0] as { kvs: Array<{ value: Uint8Array }> }).kvs[0]!.value)).toBe('v2');
    expect(text((await client.get('cas')).value)).toBe('v2');
  });

  it('txn: create-if-absent via version = 0, version/mod-revision comparisons, delete ops', async () => {
    const create = () =>
      client.txn({ compare: [{ key: 'lock', version: 0 }], success: [{ put: { key: 'lock', value: 'me' } }], failure: [] });
    expect((await create()).succeeded).toBe(true);
    expect((await create()).succeeded).toBe(false);
    const g = await client.get('lock');
    const t = await client.txn({
      compare: [
        { key: 'lock', result: '=', modRevision: g.kv!.modRevision },
        { key: 'lock', result: '>', version: 0 },
        { key: 'lock', result: '!=', value: 'you' },
      ],
      success: [{ delete: { key: 'lock', prevKv: true } }],
    });
    expect(t.succeeded).toBe(true);
    expect(t.responses[0]).toMatchObject({ type: 'delete', deleted: 1 });
    expect((await client.get('lock')).value).toBeUndefined();
  });

  it('a malformed txn spec fails client-side with INVALID_ARGUMENT before sending', async () => {
    const e = await expectCode(client.txn({ compare: [{ key: 'x' } as never] }), StatusCode.INVALID_ARGUMENT);
    expect(e.details).toMatch(/exactly one of value/);
    await expectCode(client.txn({ success: [{ frob: {} } as never] }), StatusCode.INVALID_ARGUMENT);
  });
});

describe('bad input', () => {
  it('empty key → INVALID_ARGUMENT (put, get, delete, range); the node stays up', async () => {
    await expectCode(client.put('', 'v'), StatusCode.INVALID_ARGUMENT);
    await expectCode(client.get(''), StatusCode.INVALID_ARGUMENT);
    await expectCode(client.delete(''), StatusCode.INVALID_ARGUMENT);
    await expectCode(client.range({ key: '' }), StatusCode.INVALID_ARGUMENT);
    await expectCode(client.txn({ success: [{ put: { key: '', value: 'x' } }] }), StatusCode.INVALID_ARGUMENT);
    expect((await client.put('still-up', 'yes')).revision).toBeGreaterThan(0);
  });

  it('oversized key, value or request → RESOURCE_EXHAUSTED', async () => {
    const e1 = await expectCode(client.put('k'.repeat(4 * 1024 + 1), 'v'), StatusCode.RESOURCE_EXHAUSTED);
    expect(e1.details).toMatch(/maxKeyBytes/);
    const e2 = await expectCode(client.put('big', new Uint8Array(1024 * 1024 + 1)), StatusCode.RESOURCE_EXHAUSTED);
    expect(e2.details).toMatch(/maxValueBytes/);
    expect(e2.attempts).toBe(1);
    // Over the gRPC receive limit (maxRequestBytes = 2 MiB): refused by the transport itself.
    await expectCode(client.put('huge', new Uint8Array(3 * 1024 * 1024)), StatusCode.RESOURCE_EXHAUSTED);
    // A txn that fits the gRPC limit (2 MiB) but whose replicated command (a few bytes of
    // framing more) does not: refused by the maxRequestBytes check before proposing.
    const limit = 2 * 1024 * 1024;
    const fixed = 700_000;
    // The SDK attaches an idempotency key; fix it so the request's size is known exactly.
    const idempotencyKey = { clientId: 'size-test', seq: 1 };
    const txnOf = (n: number) => ({
      success: [fixed, fixed, n].map((size, i) => ({ requestPut: { key: Buffer.from(`k${i}`), value: new Uint8Array(size) } })),
      idempotencyKey,
    });
    const txnType = kvType('TxnRequest');
    // The largest third value whose TxnRequest still fits the gRPC limit (binary search).
    let lo = 600_000;
    let hi = 1024 * 1024;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (txnType.encode(txnOf(mid) as never).finish().length <= limit) lo = mid;
      else hi = mid - 1;
    }
    const n = lo;
    expect(encodeCommand({ txn: txnOf(n) }).length).toBeGreaterThan(limit);
    const e3 = await expectCode(
      client.txn({ success: [fixed, fixed, n].map((size, i) => ({ put: { key: `k${i}`, value: new Uint8Array(size) } })) }, { idempotencyKey }),
      StatusCode.RESOURCE_EXHAUSTED,
    );
    expect(e3.details).toMatch(/maxRequestBytes/);
    expect((await client.get('still-up')).value).toBeDefined();
  });

  it('unknown member id → NOT_FOUND for promote, remove and leader transfer', async () => {
    await expectCode(client.memberPromote(99), StatusCode.NOT_FOUND);
    await expectCode(client.memberRemove(99), StatusCode.NOT_FOUND);
    await expectCode(client.leaderTransfer(99), StatusCode.NOT_FOUND);
  });

  it('a bad peer address → INVALID_ARGUMENT; an unknown consistency name fails client-side', async () => {
    await expectCode(client.memberAddLearner(0, 'not-an-address'), StatusCode.INVALID_ARGUMENT);
    await expectCode(client.get('k', { consistency: 'bogus' as never }), StatusCode.INVALID_ARGUMENT);
  });
});

describe('cluster API', () => {
  it('members lists the three founding voters with their addresses', async () => {
    const ms = await client.members();
    expect(ms.map((m) => m.id).sort()).toEqual([1, 2, 3]);
    for (const m of ms) {
      expect(m.clientAddr).toBe(addrOf(m.id));
      expect(m.peerAddr).toBe(cluster.specs.find((s) => s.id === m.id)!.peerAddr);
      expect(m.isLearner).toBe(false);
    }
  });

  it('status of each endpoint and of the leader agree on the leader', async () => {
    const leaderId = await cluster.waitForLeader();
    const all = await client.statusAll();
    expect(all.map((s) => s.ok)).toEqual([true, true, true]);
    for (const s of all) {
      if (!s.ok) continue;
      expect(s.status.memberId).toBe(idOf(s.endpoint));
      expect(s.status.leaderId).toBe(leaderId);
      expect(s.status.role).toBe(s.status.memberId === leaderId ? 'LEADER' : 'FOLLOWER');
      expect(s.status.members).toHaveLength(3);
    }
    const ls = await client.status();
    expect(ls.memberId).toBe(leaderId);
    expect(ls.endpoint).toBe(addrOf(leaderId));
  });

  it('add a learner (server-picked id), then remove it', async () => {
    const [spare] = await (await import('./test-cluster.js')).freePorts(1);
    const added = await client.memberAddLearner(0, `127.0.0.1:${spare}`, '');
    expect(added.member.id).toBe(4);
    expect(added.member.isLearner).toBe(true);
    expect(added.members.find((m) => m.id === 4)?.isLearner).toBe(true);
    expect((await client.members()).map((m) => m.id).sort()).toEqual([1, 2, 3, 4]);
    const after = await client.memberRemove(4);
    expect(after.map((m) => m.id).sort()).toEqual([1, 2, 3]);
  });
});

describe('leader discovery and hints', () => {
  it('a client whose only endpoint is a follower follows the hint to the leader (an address not in its list)', async () => {
    const leaderId = await cluster.waitForLeader();
    const follower = cluster.specs.find((s) => s.id !== leaderId)!;
    const c = newClient([follower.clientAddr]);
    const p = await c.put('via-follower', 'ok');
    expect(p.revision).toBeGreaterThan(0);
    expect(c.cachedLeader).toBe(addrOf(leaderId));
    const g = await c.get('via-follower');
    expect(text(g.value)).toBe('ok');
    expect(g.header.servedBy).toBe(leaderId);
    expect((await c.members()).length).toBe(3);
  });

  it('leader transfer moves leadership; the client rediscovers and keeps writing', async () => {
    const leaderId = await cluster.waitForLeader();
    const target = cluster.specs.find((s) => s.id !== leaderId)!.id;
    const newLeader = await client.leaderTransfer(target);
    expect(newLeader).toBe(target);
    expect(await cluster.waitForLeader()).toBe(target);
    const p = await client.put('after-transfer', 'yes');
    expect(p.revision).toBeGreaterThan(0);
    expect(client.cachedLeader).toBe(addrOf(target));
  });

  it('a stale cached leader is corrected by the hint of the old leader; without retries the typed error carries the hint', async () => {
    const c = newClient(cluster.endpoints);
    const noRetry = newClient(cluster.endpoints, { maxRetries: 0 });
    await c.put('warm', 'up');
    await noRetry.put('warm', 'up');
    const before = await cluster.waitForLeader();
    expect(c.cachedLeader).toBe(addrOf(before));
    expect(noRetry.cachedLeader).toBe(addrOf(before));
    const target = cluster.specs.find((s) => s.id !== before)!.id;
    await client.leaderTransfer(target);
    expect(await cluster.waitForLeader()).toBe(target);
    // Both still cache the old leader, which now refuses writes with UNAVAILABLE + a hint.
    const e = await expectCode(noRetry.put('warm', 'refused'), StatusCode.UNAVAILABLE);
    expect(e.details).toMatch(/^not the leader/);
    expect(e.leaderHint).toEqual({ id: target, addr: addrOf(target) });
    expect(e.endpoint).toBe(addrOf(before));
    expect(e.attempts).toBe(1);
    // With retries, the hint is followed and the write succeeds.
    await c.put('warm', 'again');
    expect(c.cachedLeader).toBe(addrOf(target));
    expect(text((await c.get('warm')).value)).toBe('again');
  });
});

describe('deadlines and faults', () => {
  it('with every node partitioned from the others (no quorum), calls fail within their deadline', async () => {
    await cluster.waitForLeader();
    const ids = cluster.specs.map((s) => s.id);
    for (const s of cluster.specs) await client.setFaults(s.clientAddr, { partitionFrom: ids.filter((i) => i !== s.id) });
    try {
      const st = await client.status(cluster.endpoints[0]);
      expect(st).toBeDefined();
      const c = newClient(cluster.endpoints, { defaultTimeoutMs: 800 });
      for (const op of [() => c.put('nq', 'x'), () => c.get('nq'), () => c.range({ key: 'nq', prefix: true })]) {
        const t0 = Date.now();
        const e = await expectCode(op(), StatusCode.DEADLINE_EXCEEDED, StatusCode.UNAVAILABLE);
        const took = Date.now() - t0;
        expect(took, `${e.message} after ${took} ms`).toBeLessThan(800 + 700);
      }
      // An explicit per-call deadline overrides the default.
      const t1 = Date.now();
      await expectCode(c.put('nq', 'x', { timeoutMs: 300 }), StatusCode.DEADLINE_EXCEEDED, StatusCode.UNAVAILABLE);
      expect(Date.now() - t1).toBeLessThan(300 + 700);
    } finally {
      for (const s of cluster.specs) await client.clearFaults(s.clientAddr);
    }
    await cluster.waitForLeader();
    expect((await client.put('healed', 'yes')).revision).toBeGreaterThan(0);
  });

  it('setFaults reports the faults in effect and clearFaults resets them', async () => {
    const ep = cluster.endpoints[1]!;
    const f = await client.setFaults(ep, { delayMs: 5, dropProbability: 0 });
    expect(f.delayMs).toBe(5);
    const cleared = await client.clearFaults(ep);
    expect(cleared.delayMs).toBe(0);
    expect(cleared.partitionFrom).toEqual([]);
  });

  it('a stopped endpoint is skipped: connection refused is retried elsewhere, even for writes', async () => {
    const c = newClient(['127.0.0.1:1', ...cluster.endpoints]);
    expect((await c.put('refused-ok', 'v')).revision).toBeGreaterThan(0);
    const only = newClient(['127.0.0.1:1'], { defaultTimeoutMs: 500 });
    const e = await expectCode(only.get('x'), StatusCode.UNAVAILABLE);
    expect(e.attempts).toBeGreaterThan(1);
  });
});

describe('close', () => {
  it('close() is idempotent and later calls fail with CANCELLED', async () => {
    const c = new KvClient({ endpoints: cluster.endpoints });
    await c.put('close-me', 'v');
    c.close();
    c.close();
    await expectCode(c.get('close-me'), StatusCode.CANCELLED);
  });
});
