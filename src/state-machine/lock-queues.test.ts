import { afterEach, describe, expect, it } from 'vitest';
import { encodeCommand, type Command } from '../wire/kv-proto.js';
import { EntryType, type Entry } from '../raft/index.js';
import { openNodeDb, type NodeDb } from '../storage/index.js';
import { makeTempDir, seededRandom } from '../storage/test-helpers.js';
import { KvStateMachine, type ApplyResult } from './index.js';
import { contenderPrefixOf, LockQueueCache } from './lock-queues.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (lease: number): string => lease.toString(16).padStart(16, '0');

describe('contenderPrefixOf', () => {
  it('names the lock of keys shaped <name>/<16 lowercase hex> and nothing else', () => {
    expect(contenderPrefixOf(`a/${hex(1)}`)).toBe('a/');
    expect(contenderPrefixOf(`a/b/${hex(255)}`)).toBe('a/b/');
    expect(contenderPrefixOf(`/${hex(1)}`)).toBeUndefined(); // empty lock name
    expect(contenderPrefixOf(`a/${hex(1).toUpperCase().replace(/^0/, 'A')}`)).toBeUndefined();
    expect(contenderPrefixOf(`a/${hex(1)}0`)).toBeUndefined(); // 17 digits
    expect(contenderPrefixOf(`a_${hex(1)}`)).toBeUndefined();
    expect(contenderPrefixOf('a/b')).toBeUndefined();
  });
});

describe('LockQueueCache', () => {
  it('keeps published changes of cached locks and evicts the least recently used lock', () => {
    const c = new LockQueueCache(2);
    c.fill('a/', [`a/${hex(1)}`], c.fillToken());
    c.fill('b/', [], c.fillToken());
    c.published(`a/${hex(2)}`, true);
    c.published(`a/${hex(1)}`, false);
    c.published('a/not-a-contender', true);
    expect([...c.get('a/')!]).toEqual([`a/${hex(2)}`]);
    c.fill('c/', [], c.fillToken()); // 'b/' is now the least recently used
    expect(c.get('b/')).toBeUndefined();
    expect(c.get('a/')).toBeDefined();
    expect(c.size).toBe(2);
    expect(() => new LockQueueCache(-1)).toThrow(RangeError);
  });

  it('drops a fill that raced a published contender change or a clear', () => {
    const c = new LockQueueCache();
    const t1 = c.fillToken();
    c.published(`x/${hex(7)}`, true); // any lock: the read may predate it
    c.fill('a/', [], t1);
    expect(c.get('a/')).toBeUndefined();
    const t2 = c.fillToken();
    c.published('plain-key', true); // not a contender: the read still holds
    c.fill('a/', [], t2);
    expect(c.get('a/')).toBeDefined();
    const t3 = c.fillToken();
    c.clear();
    c.fill('b/', [], t3);
    expect(c.get('b/')).toBeUndefined();
    expect(c.get('a/')).toBeUndefined();
  });
});

describe('KvStateMachine with the lock-queue cache', () => {
  const cleanups: Array<() => void> = [];
  const dbs: NodeDb[] = [];
  afterEach(async () => {
    for (const db of dbs.splice(0)) if (db.status === 'open') await db.close();
    for (const c of cleanups.splice(0)) c();
  });
  async function fresh(lockQueueCacheLocks?: number): Promise<KvStateMachine> {
    const t = makeTempDir('sm-locks');
    cleanups.push(t.cleanup);
    const db = await openNodeDb(t.dir);
    dbs.push(db);
    return KvStateMachine.open(db, { lockQueueCacheLocks });
  }
  const names = ['a', 'a/b', 'b'];
  const queueOf = async (sm: KvStateMachine, name: string): Promise<string[]> =>
    (await sm.lockContenders(b(name))).map((kv) => `${Buffer.from(kv.key).toString('latin1')}@${kv.createRevision}`);

  /** Lock traffic with every way a contender key appears or vanishes. */
  function commands(r: () => number, n: number): Command[] {
    const cmds: Command[] = [1, 2, 3, 4].map((id) => ({ leaseGrant: { ttl: 60, id } }));
    const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
    for (let i = 0; i < n; i++) {
      const name = pick(names);
      const lease = pick([1, 2, 3, 4]);
      const x = r();
      if (x < 0.35) cmds.push({ lockAcquire: { name: b(name), lease, value: b(`w${i}`) } });
      else if (x < 0.55) cmds.push({ delete: { key: b(`${name}/${hex(lease)}`) } }); // Unlock
      else if (x < 0.62) cmds.push({ leaseRevoke: { id: lease } }, { leaseGrant: { ttl: 60, id: lease } }); // drops its keys everywhere
      else if (x < 0.68) cmds.push({ put: { key: b(`${name}/${hex(100 + i)}`), value: b('direct') } }); // a contender with no lease
      else if (x < 0.72) cmds.push({ put: { key: b(`${name}/not-hex`), value: b('ignored') } });
      else if (x < 0.76) cmds.push({ delete: { key: b(`${name}/`), rangeEnd: b(`${name}0`) } }); // every contender (and deeper locks')
      else if (x < 0.82) {
        cmds.push({ txn: { success: [{ requestDelete: { key: b(`${name}/${hex(lease)}`) } }, { requestPut: { key: b(`${pick(names)}/${hex(200 + i)}`), value: b('t') } }] } });
      } else cmds.push({ put: { key: b(`guarded-${i}`), value: b('x'), fence: { lock: b(name), token: 1 + Math.floor(r() * (i + 5)) } } });
    }
    return cmds;
  }

  it('acquires, fences and queues exactly as an uncached replica (random lock traffic, different batchings)', async () => {
    for (const seed of [1, 2, 3]) {
      const r = seededRandom(seed);
      const cached = await fresh();
      const uncached = await fresh(0);
      const cmds = commands(r, 300);
      const all: Entry[] = cmds.map((c, i) => ({ index: i + 1, term: 1, type: EntryType.Normal, data: encodeCommand(c) }));
      let held = 0;
      let fenced = 0;
      for (let i = 0; i < all.length; ) {
        const batch = all.slice(i, i + 1 + Math.floor(r() * 8));
        i += batch.length;
        // Readers fill the cache between batches, as waiting Lock calls do.
        if (r() < 0.5) for (const name of names) await cached.lockContenders(b(name));
        const got = await cached.applyEntries(batch);
        const want: ApplyResult[] = [];
        for (const e of batch) want.push(...(await uncached.applyEntries([e])));
        expect(got, `seed ${seed} entries ${batch[0]!.index}..`).toEqual(want);
        for (const res of got) {
          if ('response' in res && res.kind === 'lock-acquire' && res.response.held) held++;
          if (res.kind === 'rejected' && res.reason === 'stale-fencing-token') fenced++;
        }
        for (const name of names) expect(await queueOf(cached, name), `seed ${seed} lock ${name} after entry ${i}`).toEqual(await queueOf(uncached, name));
      }
      // The traffic did exercise acquisitions and fencing refusals.
      expect(held).toBeGreaterThan(10);
      expect(fenced).toBeGreaterThan(5);
      expect(Buffer.compare((await cached.createSnapshot()).data, (await uncached.createSnapshot()).data)).toBe(0);
    }
  });

  it('tells a deletion listener once the deletion is published, once, and never after cancel', async () => {
    const sm = await fresh();
    const e = (index: number, c: Command): Entry => ({ index, term: 1, type: EntryType.Normal, data: encodeCommand(c) });
    await sm.applyEntries([e(1, { put: { key: b('k'), value: b('1') } }), e(2, { put: { key: b('other'), value: b('1') } })]);
    const seen: string[] = [];
    sm.onKeyDeleted(b('k'), () => seen.push(`k gone at revision ${sm.revision()}`));
    const cancel = sm.onKeyDeleted(b('other'), () => seen.push('other'));
    cancel();
    await sm.applyEntries([e(3, { put: { key: b('k'), value: b('2') } })]); // a put is no deletion
    expect(seen).toEqual([]);
    const p = await sm.prepareApply([e(4, { delete: { key: b('k') } }), e(5, { delete: { key: b('other') } })]);
    expect(seen).toEqual([]); // computed, not yet published
    await p.write();
    expect(seen).toEqual(['k gone at revision 5']);
    await sm.applyEntries([e(6, { put: { key: b('k'), value: b('3') } }), e(7, { delete: { key: b('k') } })]);
    expect(seen).toHaveLength(1); // once
    const source = await fresh();
    sm.onKeyDeleted(b('never-deleted'), () => seen.push('restore'));
    await sm.restoreSnapshot((await source.createSnapshot()).data);
    expect(seen).toEqual(['k gone at revision 5', 'restore']); // a snapshot may have removed anything
  });

  it('forgets cached queues when a snapshot replaces the state', async () => {
    const source = await fresh();
    await source.applyEntries([{ index: 1, term: 1, type: EntryType.Normal, data: encodeCommand({ put: { key: b(`q/${hex(9)}`), value: b('') } }) }]);
    const snap = await source.createSnapshot();
    const node = await fresh();
    await node.applyEntries([{ index: 1, term: 1, type: EntryType.Normal, data: encodeCommand({ put: { key: b(`q/${hex(5)}`), value: b('') } }) }]);
    expect(await queueOf(node, 'q')).toEqual([`q/${hex(5)}@1`]); // now cached
    await node.restoreSnapshot(snap.data);
    expect(await queueOf(node, 'q')).toEqual([`q/${hex(9)}@1`]);
  });
});
