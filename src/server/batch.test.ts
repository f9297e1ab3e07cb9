// KV.Batch and KV.Pipeline on a real in-process 3-node cluster, called raw (no SDK): every
// item is answered as its own unary call would be, in its own slot; Batch's call-wide limit
// refuses the whole batch before anything runs, Pipeline's limits refuse a message's items and
// keep the stream open.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { COUNTER_VALUE_METADATA_KEY, kvServiceDefinition, LEADER_ID_METADATA_KEY, NOT_APPLIED_METADATA_KEY } from '../wire/kv-proto.js';
import { startTestCluster, type TestCluster } from '../client/test-cluster.js';

const MAX_BATCH_ITEMS = 8;
const MAX_STREAM_ITEMS_IN_FLIGHT = 12;
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => (b === undefined ? undefined : Buffer.from(b).toString());

interface BatchResult {
  index?: number;
  put?: { header: { revision: number } } | null;
  get?: { kv?: { value: Uint8Array } | null } | null;
  range?: { count: number } | null;
  counter?: { value: number } | null;
  txn?: { succeeded: boolean } | null;
  delete?: { deleted: number } | null;
  error?: { code: number; message: string; metadata: Record<string, string> } | null;
}

let cluster: TestCluster;
const channels: grpc.Client[] = [];

function call<Res>(addr: string, method: string, req: unknown): Promise<Res> {
  const c = new grpc.Client(addr, grpc.credentials.createInsecure());
  channels.push(c);
  const m = kvServiceDefinition('KV')[method]!;
  return new Promise((resolve, reject) =>
    c.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err, res) =>
      err ? reject(err) : resolve(res as Res),
    ),
  );
}

/** One Batch call: every streamed message, in arrival order, with the time it arrived. */
function batchMessages(addr: string, items: unknown[], deadlineMs = 5_000): Promise<Array<{ atMs: number; results: BatchResult[] }>> {
  const c = new grpc.Client(addr, grpc.credentials.createInsecure());
  channels.push(c);
  const m = kvServiceDefinition('KV').Batch!;
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const messages: Array<{ atMs: number; results: BatchResult[] }> = [];
    const stream = c.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, { items }, new grpc.Metadata(), { deadline: Date.now() + deadlineMs });
    stream.on('data', (msg: { results: BatchResult[] }) => messages.push({ atMs: Date.now() - t0, results: msg.results }));
    stream.on('error', reject);
    stream.on('end', () => resolve(messages));
  });
}

/** One Batch call's results, in item order; every item answered exactly once. */
async function batch(addr: string, items: unknown[]): Promise<BatchResult[]> {
  const messages = await batchMessages(addr, items);
  const all = messages.flatMap((m) => m.results);
  expect(all.map((r) => r.index ?? 0).sort((a, b) => a - b)).toEqual(items.map((_, i) => i));
  return items.map((_, i) => all.find((r) => (r.index ?? 0) === i)!);
}

const addrOf = (id: number) => cluster.specs.find((s) => s.id === id)!.clientAddr;

beforeAll(async () => {
  cluster = await startTestCluster({ size: 3, overrides: { limits: { ...(await import('./config.js')).DEFAULT_LIMITS, maxBatchItems: MAX_BATCH_ITEMS, maxStreamItemsInFlight: MAX_STREAM_ITEMS_IN_FLIGHT } } });
  await cluster.waitForLeader();
}, 30_000);

afterAll(async () => {
  for (const c of channels) c.close();
  await cluster?.stop();
});

describe('KV.Batch', () => {
  it('answers every item in its own slot: results and statuses side by side', async () => {
    const leader = addrOf(await cluster.waitForLeader());
    await call(leader, 'Put', { key: enc('b/existing'), value: enc('old') });
    const r = await batch(leader, [
      { put: { key: enc('b/one'), value: enc('1') } },
      { put: { key: enc(''), value: enc('x') } },
      { get: { key: enc('b/existing') } },
      { counter: { key: enc('b/ctr'), delta: 5 } },
      { counter: { key: enc('b/ctr-floor'), delta: -1, min: 0 } },
      { txn: { compare: [{ key: enc('b/existing'), value: enc('old') }], success: [{ requestPut: { key: enc('b/txn'), value: enc('t') } }] } },
      {},
    ]);
    expect(r[0]!.put!.header.revision).toBeGreaterThan(0);
    expect(r[1]!.error).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: 'key must not be empty' });
    expect(dec(r[2]!.get!.kv!.value)).toBe('old');
    expect(Number(r[3]!.counter!.value)).toBe(5);
    expect(r[4]!.error).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, metadata: { [COUNTER_VALUE_METADATA_KEY]: '0' } });
    expect(r[5]!.txn!.succeeded).toBe(true);
    expect(r[6]!.error).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: 'batch item 6 has no request' });
    // The writes are really there, and the refused ones are not.
    const after = await batch(leader, [{ get: { key: enc('b/one') } }, { get: { key: enc('b/txn') } }, { get: { key: enc('b/ctr-floor') } }]);
    expect(after.map((x) => dec(x.get?.kv?.value))).toEqual(['1', 't', undefined]);
  });

  it('on a follower, writes get UNAVAILABLE with the leader hint and the not-applied marker; local reads are served', async () => {
    const leaderId = await cluster.waitForLeader();
    const follower = cluster.specs.find((s) => s.id !== leaderId)!;
    await call(addrOf(leaderId), 'Put', { key: enc('b/f'), value: enc('v') });
    const r = await batch(follower.clientAddr, [
      { put: { key: enc('b/f2'), value: enc('v') } },
      { get: { key: enc('b/f'), read: { consistency: 1 } } },
    ]);
    expect(r[0]!.error).toMatchObject({ code: grpc.status.UNAVAILABLE, metadata: { [LEADER_ID_METADATA_KEY]: String(leaderId), [NOT_APPLIED_METADATA_KEY]: '1' } });
    expect(dec(r[1]!.get!.kv!.value)).toBe('v'); // linearizable (ReadIndex) on the follower
  });

  it(`refuses a batch over maxBatchItems (${MAX_BATCH_ITEMS}) whole, marked not applied, and applies none of it`, async () => {
    const leader = addrOf(await cluster.waitForLeader());
    const items = Array.from({ length: MAX_BATCH_ITEMS + 1 }, (_, i) => ({ put: { key: enc(`b/over/${i}`), value: enc('x') } }));
    const err = await batchMessages(leader, items).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err?.details).toContain(`over maxBatchItems=${MAX_BATCH_ITEMS}`);
    expect(err?.metadata.get(NOT_APPLIED_METADATA_KEY)).toEqual(['1']);
    const r = await call<{ count: number }>(leader, 'Range', { key: enc('b/over/'), rangeEnd: enc('b/over0'), countOnly: true });
    expect(Number(r.count)).toBe(0);
  });

  it('an item is bounded by its own timeout_ms, not the call deadline (a read waiting for a revision)', async () => {
    const leaderId = await cluster.waitForLeader();
    const follower = cluster.specs.find((s) => s.id !== leaderId)!;
    const t0 = Date.now();
    const r = await batch(follower.clientAddr, [
      // SESSION read of a revision nobody has: waits sessionWaitMs, then ReadIndex, then refuses.
      { get: { key: enc('b/f'), read: { consistency: 3, minRevision: 1e12 } }, timeoutMs: 200 },
      { get: { key: enc('b/f'), read: { consistency: 4 } } },
    ]);
    // Refused (how depends on where the time ran out: the session wait, the ReadIndex, the
    // revision check); what matters is when: without its own timeout the wait alone is
    // sessionWaitMs (1000 ms).
    expect(r[0]!.error?.code).toBeOneOf([grpc.status.DEADLINE_EXCEEDED, grpc.status.FAILED_PRECONDITION, grpc.status.UNAVAILABLE]);
    expect(Date.now() - t0).toBeLessThan(800);
    expect(dec(r[1]!.get!.kv!.value)).toBe('v');
  });

  it('streams each result as its item finishes: a write is answered while a read in the same batch still waits', async () => {
    const leader = addrOf(await cluster.waitForLeader());
    const messages = await batchMessages(leader, [
      // SESSION read of a revision nobody has: held until its own 600 ms run out.
      { get: { key: enc('b/w'), read: { consistency: 3, minRevision: 1e12 } }, timeoutMs: 600 },
      { put: { key: enc('b/w'), value: enc('fast') } },
    ]);
    expect(messages).toHaveLength(2);
    const [first, second] = messages as [(typeof messages)[0], (typeof messages)[0]];
    expect(first.results.map((r) => r.index ?? 0)).toEqual([1]);
    expect(first.results[0]!.put!.header.revision).toBeGreaterThan(0);
    expect(first.atMs).toBeLessThan(400);
    expect(second.results.map((r) => r.index ?? 0)).toEqual([0]);
    expect(second.results[0]!.error).toBeTruthy();
    expect(second.atMs).toBeGreaterThanOrEqual(550);
  });

  it('items finishing together share one message (a Ready of writes)', async () => {
    const leader = addrOf(await cluster.waitForLeader());
    const items = Array.from({ length: MAX_BATCH_ITEMS }, (_, i) => ({ put: { key: enc(`b/together/${i}`), value: enc('x') } }));
    const messages = await batchMessages(leader, items);
    expect(messages.flatMap((m) => m.results)).toHaveLength(MAX_BATCH_ITEMS);
    expect(messages.length).toBeLessThanOrEqual(2);
  });
});

/** A raw KV.Pipeline stream: send() writes one message; results() has every result so far. */
function pipeline(addr: string): { send(items: unknown[]): void; end(): void; results: BatchResult[]; next(n: number): Promise<BatchResult[]>; ended: Promise<grpc.StatusObject> } {
  const c = new grpc.Client(addr, grpc.credentials.createInsecure());
  channels.push(c);
  const m = kvServiceDefinition('KV').Pipeline!;
  const stream = c.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), { deadline: Date.now() + 10_000 });
  const results: BatchResult[] = [];
  let waiter: { n: number; resolve: () => void } | undefined;
  stream.on('data', (msg: { results: BatchResult[] }) => {
    results.push(...msg.results);
    if (waiter && results.length >= waiter.n) waiter.resolve();
  });
  stream.on('error', () => {});
  const ended = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
  return {
    send: (items) => void stream.write({ items }),
    end: () => stream.end(),
    results,
    ended,
    next: (n) =>
      results.length >= n
        ? Promise.resolve(results.slice())
        : new Promise((resolve, reject) => {
            const t = setTimeout(() => reject(new Error(`only ${results.length} of ${n} results arrived`)), 5_000);
            waiter = { n, resolve: () => (clearTimeout(t), resolve(results.slice())) };
          }),
  };
}

const byIndex = (rs: BatchResult[]) => new Map(rs.map((r) => [r.index ?? 0, r]));

describe('KV.Pipeline', () => {
  it('numbers items across the whole stream and answers each in its slot; ends after a half-close once all are answered', async () => {
    const leader = addrOf(await cluster.waitForLeader());
    const p = pipeline(leader);
    p.send([{ put: { key: enc('p/a'), value: enc('1') } }, { put: { key: enc(''), value: enc('x') } }]);
    p.send([{ counter: { key: enc('p/ctr'), delta: 2 } }]);
    // Nothing is ordered across items: the get goes only after the put was answered.
    await p.next(3);
    p.send([{ get: { key: enc('p/a') } }, {}]);
    const r = byIndex(await p.next(5));
    expect([...r.keys()].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(r.get(0)!.put!.header.revision).toBeGreaterThan(0);
    expect(r.get(1)!.error).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: 'key must not be empty' });
    expect(Number(r.get(2)!.counter!.value)).toBe(2);
    expect(dec(r.get(3)!.get!.kv!.value)).toBe('1');
    expect(r.get(4)!.error).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: 'batch item 4 has no request' });
    p.end();
    expect((await p.ended).code).toBe(grpc.status.OK);
  });

  it(`refuses each item of a message over maxBatchItems (${MAX_BATCH_ITEMS}), marked not applied; the stream goes on`, async () => {
    const leader = addrOf(await cluster.waitForLeader());
    const p = pipeline(leader);
    p.send(Array.from({ length: MAX_BATCH_ITEMS + 1 }, (_, i) => ({ put: { key: enc(`p/over/${i}`), value: enc('x') } })));
    p.send([{ put: { key: enc('p/after'), value: enc('ok') } }]);
    const r = byIndex(await p.next(MAX_BATCH_ITEMS + 2));
    for (let i = 0; i <= MAX_BATCH_ITEMS; i++) {
      expect(r.get(i)!.error).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, metadata: { [NOT_APPLIED_METADATA_KEY]: '1' } });
      expect(r.get(i)!.error!.message).toContain(`over maxBatchItems=${MAX_BATCH_ITEMS}`);
    }
    expect(r.get(MAX_BATCH_ITEMS + 1)!.put!.header.revision).toBeGreaterThan(0);
    const count = await call<{ count: number }>(leader, 'Range', { key: enc('p/over/'), rangeEnd: enc('p/over0'), countOnly: true });
    expect(Number(count.count)).toBe(0);
    p.end();
    await p.ended;
  });

  it(`refuses items that would leave over maxStreamItemsInFlight (${MAX_STREAM_ITEMS_IN_FLIGHT}) unanswered; a slow item does not hold back a fast one`, async () => {
    const leader = addrOf(await cluster.waitForLeader());
    const p = pipeline(leader);
    // SESSION reads of a revision nobody has: unanswered until their own 1500 ms run out.
    const waiting = { get: { key: enc('p/w'), read: { consistency: 3, minRevision: 1e12 } }, timeoutMs: 1500 };
    p.send(Array.from({ length: MAX_BATCH_ITEMS }, () => waiting));
    p.send(Array.from({ length: MAX_STREAM_ITEMS_IN_FLIGHT - MAX_BATCH_ITEMS }, () => waiting));
    p.send([{ put: { key: enc('p/late'), value: enc('x') } }]);
    const first = await p.next(1);
    expect(first).toHaveLength(1);
    expect(first[0]!.index).toBe(MAX_STREAM_ITEMS_IN_FLIGHT);
    expect(first[0]!.error).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, metadata: { [NOT_APPLIED_METADATA_KEY]: '1' } });
    expect(first[0]!.error!.message).toContain(`over maxStreamItemsInFlight=${MAX_STREAM_ITEMS_IN_FLIGHT}`);
    const got = await call<{ kv?: unknown }>(leader, 'Get', { key: enc('p/late') });
    expect(got.kv ?? undefined).toBeUndefined();
    // Once the waiting reads are answered (refused at their deadline), room is back.
    await p.next(MAX_STREAM_ITEMS_IN_FLIGHT + 1);
    p.send([{ put: { key: enc('p/late'), value: enc('y') } }]);
    const r = byIndex(await p.next(MAX_STREAM_ITEMS_IN_FLIGHT + 2));
    expect(r.get(MAX_STREAM_ITEMS_IN_FLIGHT + 1)!.put!.header.revision).toBeGreaterThan(0);
    p.end();
    expect((await p.ended).code).toBe(grpc.status.OK);
  });
});
