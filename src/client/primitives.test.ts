// End to end on an in-process 3-node cluster: exactly-once writes through the wire field,
// MVCC reads and compaction, counters and CAS through the SDK.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, KvClientError, StatusCode, text } from './index.js';
import { kvServiceDefinition } from './proto.js';
import { startTestCluster, type TestCluster } from './test-cluster.js';

let cluster: TestCluster;
let client: KvClient;
const raw = new Map<string, grpc.Client>();

async function expectCode(p: Promise<unknown>, code: StatusCode): Promise<KvClientError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'call should have failed').toBeInstanceOf(KvClientError);
  expect((e as KvClientError).codeName, (e as KvClientError).message).toBe(StatusCode[code]);
  return e as KvClientError;
}

/** One raw KV call to the current leader (the SDK does not attach idempotency keys yet). */
async function rawCall<Res>(method: string, req: unknown): Promise<Res> {
  const leader = await cluster.waitForLeader();
  const addr = cluster.specs.find((s) => s.id === leader)!.clientAddr;
  let c = raw.get(addr);
  if (!c) raw.set(addr, (c = new grpc.Client(addr, grpc.credentials.createInsecure())));
  const m = kvServiceDefinition('KV')[method]!;
  return new Promise((resolve, reject) =>
    c.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err, res) =>
      err ? reject(err) : resolve(res as Res),
    ),
  );
}

const enc = (s: string) => new TextEncoder().encode(s);

beforeAll(async () => {
  cluster = await startTestCluster({
    size: 3,
    tickIntervalMs: 20,
    overrides: { stateMachine: { dedup: { windowPerClient: 4 }, retainRevisions: 0 } },
  });
  await cluster.waitForLeader();
  client = new KvClient({ endpoints: cluster.endpoints, defaultTimeoutMs: 5_000 });
});

afterAll(async () => {
  client?.close();
  for (const c of raw.values()) c.close();
  await cluster?.stop();
});

/**
 * Every node's applied revision, once they agree and have reached `atLeast` (an acknowledged
 * write's revision: a write is answered once committed, before every node has applied it).
 */
async function convergedRevision(atLeast = 0): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const revs = [...cluster.nodes.values()].map((n) => n.host.sm.revision());
    if (revs[0]! >= atLeast && revs.every((r) => r === revs[0])) return revs[0]!;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('replicas did not converge');
}

describe('exactly-once writes over the wire', () => {
  it('the same Put with the same key twice: same revision, applied once on every replica', async () => {
    const req = { key: enc('once'), value: enc('v'), idempotencyKey: { clientId: 'e2e-client', seq: 1 } };
    const a = await rawCall<{ header: { revision: number } }>('Put', req);
    const before = await convergedRevision(Number(a.header.revision));
    const b = await rawCall<{ header: { revision: number } }>('Put', req);
    expect(Number(b.header.revision)).toBe(Number(a.header.revision));
    expect(await convergedRevision()).toBe(before);
    const got = await client.get('once');
    expect(got.kv).toMatchObject({ version: 1, modRevision: Number(a.header.revision) });
    // One history entry: the key's history has no second change.
    const at = await client.range({ key: 'once' }, { revision: Number(a.header.revision) });
    expect(at.kvs[0]).toMatchObject({ version: 1 });
    for (const n of cluster.nodes.values()) expect((await n.host.sm.getAt(enc('once'), before))?.version).toBe(1);
  });

  it('an expired key fails with FAILED_PRECONDITION and is not applied; a reused key too', async () => {
    let last = 0;
    for (let seq = 1; seq <= 6; seq++) {
      const r = await rawCall<{ header: { revision: number } }>('Put', { key: enc(`exp${seq}`), value: enc('v'), idempotencyKey: { clientId: 'e2e-exp', seq } });
      last = Number(r.header.revision);
    }
    const rev = await convergedRevision(last);
    expect(rev).toBe(last);
    const err = await rawCall('Put', { key: enc('exp1'), value: enc('v'), idempotencyKey: { clientId: 'e2e-exp', seq: 1 } }).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.FAILED_PRECONDITION);
    expect((err as grpc.ServiceError).details).toMatch(/idempotency key expired/);
    const reused = await rawCall('Put', { key: enc('other'), value: enc('v'), idempotencyKey: { clientId: 'e2e-exp', seq: 6 } }).catch((e: grpc.ServiceError) => e);
    expect((reused as grpc.ServiceError).code).toBe(grpc.status.FAILED_PRECONDITION);
    expect((reused as grpc.ServiceError).details).toMatch(/idempotency key reused/);
    expect(await convergedRevision()).toBe(rev);
    const bad = await rawCall('Put', { key: enc('x'), value: enc('v'), idempotencyKey: { clientId: '', seq: 3 } }).catch((e: grpc.ServiceError) => e);
    expect((bad as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
  });
});

describe('MVCC through the SDK', () => {
  it('reads past revisions, compacts, and reports compacted and future revisions as OUT_OF_RANGE', async () => {
    const r1 = await client.put('mv/a', '1');
    const r2 = await client.put('mv/a', '2');
    await client.put('mv/b', 'x');
    const r4 = (await client.delete('mv/a')).revision;
    expect(text((await client.get('mv/a', { revision: r1.revision })).value)).toBe('1');
    expect(text((await client.get('mv/a', { revision: r2.revision })).value)).toBe('2');
    expect((await client.get('mv/a', { revision: r4 })).kv).toBeUndefined();
    const past = await client.range({ key: 'mv/', prefix: true }, { revision: r2.revision });
    expect(past.kvs.map((kv) => text(kv.key))).toEqual(['mv/a']);
    const c = await client.compact(r2.revision);
    expect(c.compactRevision).toBe(r2.revision);
    const e = await expectCode(client.get('mv/a', { revision: r1.revision }), StatusCode.OUT_OF_RANGE);
    expect(e.compactRevision).toBe(r2.revision);
    expect(e.details).toMatch(new RegExp(`oldest readable revision is ${r2.revision}`));
    expect(text((await client.get('mv/a', { revision: r2.revision })).value)).toBe('2');
    await expectCode(client.range({ key: 'mv/', prefix: true }, { revision: 1_000_000 }), StatusCode.OUT_OF_RANGE);
    await expectCode(client.compact(r1.revision), StatusCode.OUT_OF_RANGE);
    await expectCode(client.compact(1_000_000), StatusCode.OUT_OF_RANGE);
    await expectCode(client.compact(0), StatusCode.INVALID_ARGUMENT);
    // Every replica compacted at the same point (followers apply it shortly after the ack).
    for (let i = 0; i < 250 && [...cluster.nodes.values()].some((n) => n.host.sm.compactRevision() < r2.revision); i++) await new Promise((r) => setTimeout(r, 20));
    for (const n of cluster.nodes.values()) expect(n.host.sm.compactRevision()).toBe(r2.revision);
  });
});

describe('counters and CAS through the SDK', () => {
  it('concurrent bounded decrements never oversell; refusals name the current value', async () => {
    await client.add('stock', 10);
    const results = await Promise.allSettled(Array.from({ length: 30 }, () => client.add('stock', -1, { min: 0 })));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(10);
    expect(refused).toHaveLength(20);
    for (const r of refused) {
      const e = r.reason as KvClientError;
      expect(e.codeName).toBe('FAILED_PRECONDITION');
      expect(e.counterValue).toBe(0);
      expect(e.details).toMatch(/current value 0/);
    }
    expect(text((await client.get('stock')).value)).toBe('0');
    expect((await client.add('stock', 3, { max: 3 })).value).toBe(3);
    await expectCode(client.add('stock', 1, { max: 3 }), StatusCode.FAILED_PRECONDITION);
  });

  it('bad input', async () => {
    const e1 = await expectCode(client.add('c', 1.5), StatusCode.INVALID_ARGUMENT);
    expect(e1.opts.notSent).toBe(true);
    await expectCode(client.add('c', 1, { min: 3, max: 1 }), StatusCode.INVALID_ARGUMENT);
    await client.put('word', 'hello');
    await expectCode(client.add('word', 1), StatusCode.FAILED_PRECONDITION);
    // Server-side validation too (a raw request with min > max).
    const raw1 = await rawCall('Counter', { key: enc('c'), delta: 1, min: 5, max: 1 }).catch((e: grpc.ServiceError) => e);
    expect((raw1 as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('cas and casRevision', async () => {
    expect((await client.cas('cas', null, 'v1')).succeeded).toBe(true);
    const miss = await client.cas('cas', null, 'v2');
    expect(miss.succeeded).toBe(false);
    expect(text(miss.current!.value)).toBe('v1');
    expect((await client.cas('cas', 'v1', 'v2')).succeeded).toBe(true);
    const cur = (await client.get('cas')).kv!;
    expect((await client.casRevision('cas', cur.modRevision - 1, 'v3')).succeeded).toBe(false);
    const ok = await client.casRevision('cas', cur.modRevision, 'v3');
    expect(ok.succeeded).toBe(true);
    expect(text((await client.get('cas')).value)).toBe('v3');
  });
});
