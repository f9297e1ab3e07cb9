import { afterEach, describe, expect, it } from 'vitest';
import { encodeCommand, type Command } from '../wire/kv-proto.js';
import { EntryType, type Entry } from '../raft/index.js';
import { openNodeDb, type NodeDb } from '../storage/index.js';
import { makeTempDir } from '../storage/test-helpers.js';
import { KvStateMachine } from './index.js';
import { LatestRecordCache } from './latest-cache.js';
import { mapKey, PendingView } from './pending-view.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (u: Uint8Array | undefined): string | undefined => (u ? new TextDecoder().decode(u) : undefined);
const rec = (v: string, rev: number) => ({ value: b(v), createRevision: rev, modRevision: rev, version: 1 });
const put = (k: string, v: string): Command => ({ put: { key: b(k), value: b(v) } });
const del = (k: string): Command => ({ delete: { key: b(k) } });
const ents = (cmds: Command[], first: number): Entry[] => cmds.map((c, i) => ({ index: first + i, term: 1, type: EntryType.Normal, data: encodeCommand(c) }));

describe('LatestRecordCache', () => {
  it('keeps records and known-absent keys, and evicts the oldest entries past its byte budget', () => {
    const c = new LatestRecordCache(3 * (96 + 1 + 10));
    c.set('a', rec('0123456789', 1));
    c.set('b', null);
    c.set('c', rec('0123456789', 2));
    expect(c.get('a')?.modRevision).toBe(1);
    expect(c.get('b')).toBeNull();
    expect(c.get('z')).toBeUndefined();
    c.set('d', rec('0123456789', 3)); // over budget: 'a' (oldest) goes
    expect(c.get('a')).toBeUndefined();
    expect(c.get('d')?.modRevision).toBe(3);
    expect(c.sizeBytes).toBeLessThanOrEqual(c.maxBytes);
    c.set('c', rec('x', 4)); // replacing refreshes its size and position
    expect(c.get('c')?.modRevision).toBe(4);
    expect(() => new LatestRecordCache(-1)).toThrow(RangeError);
  });

  it('never holds a record bigger than the whole budget', () => {
    const c = new LatestRecordCache(200);
    c.set('big', rec('x'.repeat(500), 1));
    expect(c.get('big')).toBeUndefined();
    expect(c.size).toBe(0);
  });
});

describe('KvStateMachine with the latest-record cache', () => {
  const cleanups: Array<() => void> = [];
  const dbs: NodeDb[] = [];
  afterEach(async () => {
    for (const db of dbs.splice(0)) if (db.status === 'open') await db.close();
    for (const c of cleanups.splice(0)) c();
  });
  async function fresh(cacheBytes?: number): Promise<KvStateMachine> {
    const t = makeTempDir('sm-cache');
    cleanups.push(t.cleanup);
    const db = await openNodeDb(t.dir);
    dbs.push(db);
    return KvStateMachine.open(db, { latestCacheBytes: cacheBytes });
  }

  it('reads, versions and deletes agree with an uncached replica', async () => {
    const cached = await fresh();
    const uncached = await fresh(0);
    const cmds: Command[] = [put('a', '1'), put('b', '1'), put('a', '2'), del('b'), put('b', '3'), put('a', '4'), del('a')];
    for (let i = 0; i < cmds.length; i++) {
      await cached.applyEntries(ents([cmds[i]!], i + 1));
      await uncached.applyEntries(ents([cmds[i]!], i + 1));
      for (const k of ['a', 'b']) expect(cached.get(b(k))).toEqual(uncached.get(b(k)));
    }
    expect(cached.get(b('a'))).toBeUndefined();
    expect(cached.get(b('b'))).toMatchObject({ version: 1, createRevision: 5 });
    expect((await cached.createSnapshot()).data).toEqual((await uncached.createSnapshot()).data);
  });

  it('forgets what it cached when a snapshot replaces the state', async () => {
    const source = await fresh();
    await source.applyEntries(ents([put('k', 'from-snapshot'), put('only-there', 'x')], 1));
    const snap = await source.createSnapshot();
    const node = await fresh();
    await node.applyEntries(ents([put('k', 'local'), put('gone', 'y')], 1));
    expect(str(node.get(b('k'))!.value)).toBe('local'); // now cached
    expect(node.get(b('only-there'))).toBeUndefined(); // cached as absent
    await node.restoreSnapshot(snap.data);
    expect(str(node.get(b('k'))!.value)).toBe('from-snapshot');
    expect(str(node.get(b('only-there'))!.value)).toBe('x');
    expect(node.get(b('gone'))).toBeUndefined();
  });

  it('caches values that own their bytes, never a view that keeps a whole request or batch alive', async () => {
    const t = makeTempDir('sm-cache-own');
    cleanups.push(t.cleanup);
    const db = await openNodeDb(t.dir);
    dbs.push(db);
    const cache = new LatestRecordCache();
    const message = new Uint8Array(64 * 1024).fill(7); // e.g. a peer's whole MessageBatch
    const view = new PendingView(db, cache);
    view.put(b('k'), { value: message.subarray(100, 110), createRevision: 1, modRevision: 1, version: 1 });
    view.publish(cache);
    const got = cache.get(mapKey(b('k')))!;
    expect(got.value.byteLength).toBe(10);
    expect(got.value.buffer.byteLength).toBe(10);
    expect([...got.value]).toEqual(new Array(10).fill(7));
  });

  it('publishes nothing from a prepared batch that is aborted', async () => {
    const sm = await fresh();
    await sm.applyEntries(ents([put('k', '1')], 1));
    const p = await sm.prepareApply(ents([put('k', '2')], 2));
    p.abort();
    expect(str(sm.get(b('k'))!.value)).toBe('1');
    await sm.applyEntries(ents([put('k', '3')], 2));
    expect(sm.get(b('k'))).toMatchObject({ version: 2, modRevision: 2 });
  });
});
