// Watch on a real in-process cluster: identical gap-free ordered streams on every node,
// resumption across a node failure, progress notices, compaction and bad input.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, KvClientError, StatusCode, text, watchChanges, type WatchBatch, type WatchEvent } from '../client/index.js';
import { startTestCluster, type TestCluster } from '../client/test-cluster.js';

async function collect(it: AsyncGenerator<WatchBatch>, events: number, timeoutMs: number, onBatch?: (b: WatchBatch) => void): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  const deadline = Date.now() + timeoutMs;
  for await (const b of it) {
    onBatch?.(b);
    out.push(...b.events);
    if (out.length >= events || Date.now() > deadline) break;
  }
  return out;
}

describe('watch', () => {
  let cluster: TestCluster;
  let client: KvClient;

  beforeAll(async () => {
    cluster = await startTestCluster({ size: 3, tickIntervalMs: 20 });
    await cluster.waitForLeader();
    client = new KvClient({ endpoints: cluster.endpoints });
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await cluster?.stop();
  });

  it('watchers on every node from one revision see the same ordered, gap-free events', async () => {
    const start = (await client.put('w/0', 'start')).revision;
    const writes = 40;
    const writer = (async () => {
      for (let i = 1; i <= writes; i++) {
        if (i % 10 === 0) await client.delete('w/3'); // w/3 is rewritten between deletes
        else await client.put(`w/${i % 7}`, `v${i}`);
      }
      await client.put('other/x', 'not watched');
    })();
    const streams = cluster.endpoints.map((addr) => collect(watchChanges([addr], 'w/', { prefix: true, startRevision: start }), writes + 1, 15_000));
    const [results] = await Promise.all([Promise.all(streams), writer]);
    const seqs = results.map((evs) => evs.map((e) => `${e.revision}:${e.type}:${text(e.kv.key)}=${text(e.kv.value)}`));
    expect(seqs[0]!.length).toBe(writes + 1);
    expect(seqs[1]).toEqual(seqs[0]);
    expect(seqs[2]).toEqual(seqs[0]);
    const revs = results[0]!.map((e) => e.revision);
    expect(revs[0]).toBe(start);
    for (let i = 1; i < revs.length; i++) expect(revs[i]).toBe(revs[i - 1]! + 1);
    expect(seqs[0]!.some((s) => s.includes('other/'))).toBe(false);
    // Replaying the events gives the final state.
    const state = new Map<string, string>();
    for (const e of results[0]!) e.type === 'put' ? state.set(text(e.kv.key), text(e.kv.value)) : state.delete(text(e.kv.key));
    const final = await client.range({ key: 'w/', prefix: true });
    expect(new Map(final.kvs.map((kv) => [text(kv.key), text(kv.value)]))).toEqual(state);
  }, 30_000);

  it('resumes on another node after its node stops, losing and repeating nothing', async () => {
    const leaderId = await cluster.waitForLeader();
    const victim = cluster.specs.find((s) => s.id !== leaderId)!;
    const others = cluster.specs.filter((s) => s.id !== victim.id).map((s) => s.clientAddr);
    const start = (await client.put('r/k', 'v0')).revision;
    const servedBy = new Set<number>();
    const it = watchChanges([victim.clientAddr, ...others], 'r/', { prefix: true, startRevision: start });
    const done = collect(it, 31, 20_000, (b) => servedBy.add(b.servedBy));
    for (let i = 1; i <= 30; i++) {
      await client.put('r/k', `v${i}`);
      if (i === 10) await cluster.stopNode(victim.id);
    }
    const events = await done;
    expect(events.map((e) => text(e.kv.value))).toEqual(Array.from({ length: 31 }, (_, i) => `v${i}`));
    expect(servedBy.size).toBeGreaterThan(1);
  }, 30_000);

  it('sends progress notices when nothing changes', async () => {
    const rev = (await client.status()).revision;
    const it = client.watch('idle/', { prefix: true, progressNotifyMs: 50 });
    const first = await it.next();
    await it.return(undefined);
    expect(first.value?.progress).toBe(true);
    expect(first.value?.revision).toBeGreaterThanOrEqual(rev);
  });

  it('refuses a compacted start revision and an empty key', async () => {
    const a = (await client.put('c/k', '1')).revision;
    await client.put('c/k', '2');
    const b = (await client.put('c/k', '3')).revision;
    await client.compact(b);
    const err = await collect(watchChanges(cluster.endpoints.slice(0, 2), 'c/k', { startRevision: a }), 1, 5_000).then(
      () => undefined,
      (e: unknown) => e as KvClientError,
    );
    expect(err?.code).toBe(StatusCode.OUT_OF_RANGE);
    expect(err?.details).toMatch(/compacted/);
    const bad = await collect(watchChanges(cluster.endpoints.slice(0, 2), '', { startRevision: 1 }), 1, 5_000).then(
      () => undefined,
      (e: unknown) => e as KvClientError,
    );
    expect(bad?.code).toBe(StatusCode.INVALID_ARGUMENT);
  });
});
