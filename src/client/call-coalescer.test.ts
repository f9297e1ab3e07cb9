// CallCoalescer against fake transports: when calls go alone and when together, how each item
// gets its own result or status back, and the fallbacks (no Batch on the server, batch refused
// whole, oversized item, an item's own deadline).

import { describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { CallCoalescer, type BatchableMethod, type BatchResultMsg } from './call-coalescer.js';
import { kvType } from './proto.js';

interface DecodedItem {
  method: string;
  key: string;
  timeoutMs: number;
}

const FIELDS = ['put', 'get', 'delete', 'range', 'txn', 'counter'] as const;

function decodeBatch(buf: Buffer): DecodedItem[] {
  const msg = kvType('BatchRequest').decode(buf) as unknown as { items: Record<string, unknown>[] };
  return msg.items.map((it) => {
    const field = FIELDS.find((f) => it[f] != null)!;
    const req = it[field] as { key: Uint8Array };
    return { method: field, key: Buffer.from(req.key).toString(), timeoutMs: Number(it.timeoutMs) };
  });
}

type Reply = { put?: object; get?: object; counter?: object; error?: { code: number; message: string; metadata?: Record<string, string> } };

/**
 * A fake server: unary calls answer {unary: key}; batches answer by `answer` (default: each put
 * ok), all results in one message, or item by item after `delayMsOf(item)` when given.
 */
function fakeTransport(
  opts: { answer?: (items: DecodedItem[]) => Promise<Reply[]>; unaryFails?: (key: string) => unknown; batchFails?: unknown; delayMsOf?: (item: DecodedItem) => number } = {},
) {
  const log: { unary: string[]; batches: DecodedItem[][]; messages: number } = { unary: [], batches: [], messages: 0 };
  const unary = async (method: BatchableMethod, req: unknown): Promise<unknown> => {
    const key = Buffer.from((req as { key: Uint8Array }).key).toString();
    log.unary.push(`${method}:${key}`);
    await new Promise((r) => setTimeout(r, 5));
    const fail = opts.unaryFails?.(key);
    if (fail) throw fail;
    return { unary: key };
  };
  const batch = async (request: Buffer, _deadline: number, onResults: (results: BatchResultMsg[]) => void): Promise<void> => {
    const items = decodeBatch(request);
    log.batches.push(items);
    await new Promise((r) => setTimeout(r, 5));
    if (opts.batchFails) throw opts.batchFails;
    const results: BatchResultMsg[] = (opts.answer ? await opts.answer(items) : items.map((it) => ({ put: { header: { revision: 1 }, key: it.key } }))).map((r, index) => ({ index, ...r }));
    const delayMsOf = opts.delayMsOf;
    if (!delayMsOf) {
      log.messages++;
      onResults(results);
      return;
    }
    await Promise.all(
      results.map(async (r) => {
        await new Promise((res) => setTimeout(res, delayMsOf(items[r.index!]!)));
        log.messages++;
        onResults([r]);
      }),
    );
  };
  return { log, unary, batch };
}

const LIMITS = { maxBatchItems: 64, maxBatchBytes: 64 * 1024, pipelineIdleMs: 1000 };
const put = (key: string, value = 'v') => ({ key: Buffer.from(key), value: Buffer.from(value) });
const soon = () => Date.now() + 5_000;

describe('CallCoalescer', () => {
  it('sends a lone call unary at once, and calls made while one is in flight as one batch', async () => {
    const t = fakeTransport();
    const c = new CallCoalescer(t.unary, t.batch, LIMITS);
    const first = c.call('Put', put('a'), soon());
    expect(t.log.unary).toEqual(['Put:a']); // no wait for the end of the turn
    const rest = ['b', 'c', 'd'].map((k) => c.call('Put', put(k), soon()));
    expect(t.log.batches).toHaveLength(0); // queued until the end of this turn
    const res = await Promise.all([first, ...rest]);
    expect(t.log.unary).toEqual(['Put:a']);
    expect(t.log.batches.map((b) => b.map((i) => i.key))).toEqual([['b', 'c', 'd']]);
    expect(res[0]).toEqual({ unary: 'a' });
    expect(res.slice(1).map((r) => (r as { key: string }).key)).toEqual(['b', 'c', 'd']);
    // Each item carries its own remaining time.
    for (const it of t.log.batches[0]!) expect(it.timeoutMs).toBeGreaterThan(4_000);
  });

  it('a single queued call still goes unary, and calls after everything settled go alone again', async () => {
    const t = fakeTransport();
    const c = new CallCoalescer(t.unary, t.batch, LIMITS);
    await Promise.all([c.call('Put', put('a'), soon()), c.call('Get', put('b'), soon())]);
    await c.call('Put', put('c'), soon());
    expect(t.log.unary).toEqual(['Put:a', 'Get:b', 'Put:c']);
    expect(t.log.batches).toHaveLength(0);
  });

  it('gives every item its own result or status, with its metadata', async () => {
    const t = fakeTransport({
      answer: async (items) =>
        items.map((it): Reply => {
          if (it.key === 'bad') return { error: { code: grpc.status.INVALID_ARGUMENT, message: 'key must not be empty' } };
          if (it.key === 'away') return { error: { code: grpc.status.UNAVAILABLE, message: 'not the leader', metadata: { 'x-raftkv-leader-id': '2', 'x-raftkv-not-applied': '1' } } };
          if (it.method === 'counter') return { counter: { value: 7 } };
          return { put: { key: it.key } };
        }),
    });
    const c = new CallCoalescer(t.unary, t.batch, LIMITS);
    const busy = c.call('Put', put('first'), soon());
    const got = await Promise.allSettled([
      c.call('Put', put('ok'), soon()),
      c.call('Put', put('bad'), soon()),
      c.call('Put', put('away'), soon()),
      c.call('Counter', { key: Buffer.from('ctr'), delta: 1 }, soon()),
    ]);
    await busy;
    expect(got[0]).toMatchObject({ status: 'fulfilled', value: { key: 'ok' } });
    expect(got[1]).toMatchObject({ status: 'rejected', reason: { code: grpc.status.INVALID_ARGUMENT, details: 'key must not be empty' } });
    expect(got[2].status).toBe('rejected');
    const away = (got[2] as PromiseRejectedResult).reason as { code: number; metadata: grpc.Metadata };
    expect(away.code).toBe(grpc.status.UNAVAILABLE);
    expect(away.metadata.get('x-raftkv-leader-id')).toEqual(['2']);
    expect(away.metadata.get('x-raftkv-not-applied')).toEqual(['1']);
    expect(got[3]).toMatchObject({ status: 'fulfilled', value: { value: 7 } });
  });

  it('a result of the wrong kind or a missing result fails that item with INTERNAL', async () => {
    const t = fakeTransport({ answer: async () => [{ get: {} }] });
    const c = new CallCoalescer(t.unary, t.batch, LIMITS);
    const busy = c.call('Put', put('first'), soon());
    const got = await Promise.allSettled([c.call('Put', put('a'), soon()), c.call('Put', put('b'), soon())]);
    await busy;
    expect(got.map((g) => g.status)).toEqual(['rejected', 'rejected']);
    expect((got[0] as PromiseRejectedResult).reason).toMatchObject({ code: grpc.status.INTERNAL, details: expect.stringContaining("no Put response") });
    expect((got[1] as PromiseRejectedResult).reason).toMatchObject({ code: grpc.status.INTERNAL, details: expect.stringContaining('without a result') });
  });

  it('splits a queue at maxBatchItems and sends an item over maxBatchBytes alone', async () => {
    const t = fakeTransport();
    const c = new CallCoalescer(t.unary, t.batch, { maxBatchItems: 4, maxBatchBytes: 200, pipelineIdleMs: 1000 });
    const busy = c.call('Put', put('first'), soon());
    const calls = ['a', 'b', 'c', 'd', 'e'].map((k) => c.call('Put', put(k), soon()));
    calls.push(c.call('Put', put('huge', 'x'.repeat(300)), soon()));
    calls.push(c.call('Put', put('f'), soon()), c.call('Put', put('g'), soon()));
    await Promise.all([busy, ...calls]);
    // The queue hit 4 items twice and went out at once each time; "huge" went alone.
    expect(t.log.batches.map((b) => b.map((i) => i.key))).toEqual([['a', 'b', 'c', 'd'], ['e', 'f', 'g']]);
    expect(t.log.unary).toEqual(['Put:first', 'Put:huge']);
  });

  it('falls back to unary calls for good when the server has no Batch (UNIMPLEMENTED)', async () => {
    const t = fakeTransport({ batchFails: { code: grpc.status.UNIMPLEMENTED, details: 'unknown method Batch' } });
    const c = new CallCoalescer(t.unary, t.batch, LIMITS);
    const first = c.call('Put', put('first'), soon());
    const res = await Promise.all([first, c.call('Put', put('a'), soon()), c.call('Put', put('b'), soon())]);
    expect(res).toEqual([{ unary: 'first' }, { unary: 'a' }, { unary: 'b' }]);
    expect(t.log.batches).toHaveLength(1);
    // Later concurrent calls never try a batch again.
    await Promise.all(['c', 'd', 'e'].map((k) => c.call('Put', put(k), soon())));
    expect(t.log.batches).toHaveLength(1);
    expect(t.log.unary).toEqual(['Put:first', 'Put:a', 'Put:b', 'Put:c', 'Put:d', 'Put:e']);
  });

  it('resends the items of a batch the server refused whole as too many (RESOURCE_EXHAUSTED, not applied) one by one, and keeps later batches smaller', async () => {
    const tooMany = new grpc.Metadata();
    tooMany.set('x-raftkv-not-applied', '1');
    let refuse = true;
    const t = fakeTransport({ answer: async (items) => items.map((it) => ({ put: { key: it.key } })) });
    const c = new CallCoalescer(
      t.unary,
      async (request, deadline, onResults) => {
        if (refuse) {
          refuse = false;
          t.log.batches.push([]);
          throw { code: grpc.status.RESOURCE_EXHAUSTED, details: 'batch has 4 items, over maxBatchItems=2', metadata: tooMany };
        }
        return t.batch(request, deadline, onResults);
      },
      LIMITS,
    );
    const busy = c.call('Put', put('first'), soon());
    const res = await Promise.all(['a', 'b', 'c', 'd'].map((k) => c.call('Put', put(k), soon())));
    await busy;
    expect(res).toEqual(['a', 'b', 'c', 'd'].map((k) => ({ unary: k })));
    // Later batches carry at most half the refused size.
    const busy2 = c.call('Put', put('first2'), soon());
    const res2 = await Promise.all(['e', 'f', 'g', 'h'].map((k) => c.call('Put', put(k), soon())));
    await busy2;
    expect(res2.map((r) => (r as { key: string }).key)).toEqual(['e', 'f', 'g', 'h']);
    expect(t.log.batches.slice(1).map((b) => b.map((i) => i.key))).toEqual([['e', 'f'], ['g', 'h']]);
  });

  it('a RESOURCE_EXHAUSTED not marked as refused whole (e.g. grpc-js over its receive limit, after the server ran everything) fails the items, unsent again', async () => {
    const tooLarge = { code: grpc.status.RESOURCE_EXHAUSTED, details: 'Received message larger than max (300000000 vs 268435456)', metadata: new grpc.Metadata() };
    const t = fakeTransport({ batchFails: tooLarge });
    const c = new CallCoalescer(t.unary, t.batch, LIMITS);
    const busy = c.call('Put', put('first'), soon());
    const got = await Promise.allSettled([c.call('Put', put('a'), soon()), c.call('Put', put('b'), soon())]);
    await busy;
    expect(got).toEqual([
      { status: 'rejected', reason: tooLarge },
      { status: 'rejected', reason: tooLarge },
    ]);
    expect(t.log.unary).toEqual(['Put:first']);
  });

  it('answers each item when its result arrives: a slow item does not hold back the others', async () => {
    const t = fakeTransport({ delayMsOf: (it) => (it.key === 'slow' ? 400 : 0) });
    const c = new CallCoalescer(t.unary, t.batch, LIMITS);
    const busy = c.call('Put', put('first'), soon());
    const t0 = Date.now();
    const slow = c.call('Put', put('slow'), soon());
    const fast = c.call('Put', put('fast'), soon());
    await expect(fast).resolves.toMatchObject({ key: 'fast' });
    expect(Date.now() - t0).toBeLessThan(300);
    await expect(slow).resolves.toMatchObject({ key: 'slow' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(390);
    await busy;
    expect(t.log.batches).toHaveLength(1);
    expect(t.log.messages).toBe(2);
  });

  it('a queued call whose deadline passed before the flush is not sent: DEADLINE_EXCEEDED, marked not applied', async () => {
    const t = fakeTransport();
    const c = new CallCoalescer(t.unary, t.batch, LIMITS);
    const busy = c.call('Put', put('first'), soon());
    const late = c.call('Put', put('late'), Date.now() - 1);
    const onTime = [c.call('Put', put('a'), soon()), c.call('Put', put('b'), soon())];
    const err = (await late.catch((e: unknown) => e)) as { code: number; metadata: grpc.Metadata };
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(err.metadata.get('x-raftkv-not-applied')).toEqual(['1']);
    await Promise.all([busy, ...onTime]);
    expect(t.log.batches.map((b) => b.map((i) => i.key))).toEqual([['a', 'b']]);
  });

  it('fails every item with the error of a batch that failed as a whole (e.g. connection lost)', async () => {
    const lost = { code: grpc.status.UNAVAILABLE, details: 'Connection dropped' };
    const t = fakeTransport({ batchFails: lost });
    const c = new CallCoalescer(t.unary, t.batch, LIMITS);
    const busy = c.call('Put', put('first'), soon());
    const got = await Promise.allSettled([c.call('Put', put('a'), soon()), c.call('Put', put('b'), soon())]);
    await busy;
    expect(got).toEqual([
      { status: 'rejected', reason: lost },
      { status: 'rejected', reason: lost },
    ]);
  });

  it('an item whose own deadline passes while its batch is out fails with DEADLINE_EXCEEDED; the others wait', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const t = fakeTransport({
      answer: async (items) => {
        await held;
        return items.map((it) => ({ put: { key: it.key } }));
      },
    });
    const c = new CallCoalescer(t.unary, t.batch, LIMITS);
    const busy = c.call('Put', put('first'), soon());
    const short = c.call('Put', put('short'), Date.now() + 60);
    const long = c.call('Put', put('long'), Date.now() + 5_000);
    const t0 = Date.now();
    await expect(short).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
    expect(Date.now() - t0).toBeLessThan(1_000);
    release();
    await expect(long).resolves.toMatchObject({ key: 'long' });
    await busy;
    expect(t.log.batches[0]!.find((i) => i.key === 'short')!.timeoutMs).toBeLessThanOrEqual(60);
  });

  it('a transport that throws at once (client closed) fails the queued items with that error', async () => {
    const closed = { code: grpc.status.CANCELLED, details: 'client is closed' };
    const t = fakeTransport();
    const c = new CallCoalescer(
      t.unary,
      () => {
        throw closed;
      },
      LIMITS,
    );
    const busy = c.call('Put', put('first'), soon());
    const got = await Promise.allSettled([c.call('Put', put('a'), soon()), c.call('Put', put('b'), soon())]);
    await busy;
    expect(got.map((g) => (g as PromiseRejectedResult).reason)).toEqual([closed, closed]);
  });
});

/**
 * A fake Pipeline server: every opened stream is recorded with the keys of each message; each
 * item is answered by its stream-wide index after 5 ms, unless `silent(key)`.
 */
function fakePipeline(opts: { silent?: (key: string) => boolean } = {}) {
  const streams: Array<{ messages: string[][]; ended: boolean; cancelled: boolean }> = [];
  const open = (onResults: (results: BatchResultMsg[]) => void, _onEnd: (error: unknown) => void) => {
    const rec = { messages: [] as string[][], ended: false, cancelled: false };
    streams.push(rec);
    let received = 0;
    return {
      write: (request: Buffer) => {
        const items = decodeBatch(request);
        rec.messages.push(items.map((i) => i.key));
        const first = received;
        received += items.length;
        const results = items.flatMap((it, i) => (opts.silent?.(it.key) ? [] : [{ index: first + i, put: { key: it.key } }]));
        if (results.length > 0) setTimeout(() => onResults(results), 5);
      },
      end: () => void (rec.ended = true),
      cancel: () => void (rec.cancelled = true),
    };
  };
  return { streams, open };
}

describe('CallCoalescer on a Pipeline stream', () => {
  it('moves to a new stream before item indexes would pass pipelineMaxItems; the old one is half-closed and still answers', async () => {
    const t = fakeTransport();
    const p = fakePipeline();
    const c = new CallCoalescer(t.unary, t.batch, { ...LIMITS, pipelineMaxItems: 3 }, p.open);
    const first = await Promise.all(['a', 'b'].map((k) => c.call('Put', put(k), soon())));
    const second = await Promise.all(['c', 'd'].map((k) => c.call('Put', put(k), soon())));
    expect([...first, ...second].map((r) => (r as { key: string }).key)).toEqual(['a', 'b', 'c', 'd']);
    expect(p.streams.map((s) => s.messages)).toEqual([[['a'], ['b'], ['c']], [['d']]]);
    expect(p.streams[0]!.ended).toBe(true);
    expect(p.streams[1]!.ended).toBe(false);
    expect(t.log.unary).toEqual([]);
  });

  it('an unanswered call expires on its own deadline; the idle stream is then half-closed', async () => {
    const t = fakeTransport();
    const p = fakePipeline({ silent: (k) => k === 'lost' });
    const c = new CallCoalescer(t.unary, t.batch, { ...LIMITS, pipelineIdleMs: 20 }, p.open);
    const err = await c.call('Put', put('lost'), Date.now() + 50).then(
      () => undefined,
      (e: { code: number }) => e,
    );
    expect(err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    for (let i = 0; i < 50 && !p.streams[0]!.ended; i++) await new Promise((r) => setTimeout(r, 10));
    expect(p.streams[0]!.ended).toBe(true);
  });

  it('close() cancels the stream', async () => {
    const t = fakeTransport();
    const p = fakePipeline();
    const c = new CallCoalescer(t.unary, t.batch, LIMITS, p.open);
    await c.call('Put', put('a'), soon());
    c.close();
    expect(p.streams[0]!.cancelled).toBe(true);
    const err = await c.call('Put', put('b'), soon()).then(
      () => undefined,
      (e: { code: number }) => e,
    );
    expect(err?.code).toBe(grpc.status.CANCELLED);
  });
});
