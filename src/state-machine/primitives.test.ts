// Exactly-once table, MVCC reads/compaction and counters of the state machine.
import { afterEach, describe, expect, it } from 'vitest';
import { encodeCommand, type Command, type IdempotencyKey } from '../wire/kv-proto.js';
import { EntryType, type Entry } from '../raft/index.js';
import { openNodeDb, type NodeDb } from '../storage/index.js';
import { makeTempDir, seededRandom as rng } from '../storage/test-helpers.js';
import { CompactedError, FutureRevisionError } from './errors.js';
import { KvStateMachine, type ApplyResult, type StateMachineOptions } from './index.js';
import { escapeKey, unescapeKey } from './keys.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (u: Uint8Array | undefined): string | undefined => (u ? new TextDecoder().decode(u) : undefined);
const ik = (clientId: string, seq: number): IdempotencyKey => ({ clientId, seq });
const put = (k: string, v: string, key?: IdempotencyKey): Command => ({ put: { key: b(k), value: b(v), idempotencyKey: key ?? null } });
const del = (k: string, end?: string): Command => ({ delete: { key: b(k), ...(end ? { rangeEnd: b(end) } : {}) } });
const add = (k: string, delta: number, o: { min?: number; max?: number; key?: IdempotencyKey } = {}): Command => ({
  counter: { key: b(k), delta, min: o.min ?? null, max: o.max ?? null, idempotencyKey: o.key ?? null },
});

const dirs: { cleanup: () => void }[] = [];
const dbs: NodeDb[] = [];
afterEach(async () => {
  for (const db of dbs.splice(0)) if (db.status === 'open') await db.close();
  for (const d of dirs.splice(0)) d.cleanup();
});

async function fresh(opts: StateMachineOptions = {}): Promise<{ sm: KvStateMachine; db: NodeDb }> {
  const t = makeTempDir('sm-prim');
  dirs.push(t);
  const db = await openNodeDb(t.dir);
  dbs.push(db);
  return { sm: await KvStateMachine.open(db, opts), db };
}

/** Feeds commands one entry each, keeping the index running. */
class Feeder {
  index = 0;
  constructor(readonly sm: KvStateMachine) {}
  async apply(...cmds: Command[]): Promise<ApplyResult[]> {
    const es: Entry[] = cmds.map((c) => ({ index: ++this.index, term: 1, type: EntryType.Normal, data: encodeCommand(c) }));
    return this.sm.applyEntries(es);
  }
  async one(cmd: Command): Promise<ApplyResult> {
    return (await this.apply(cmd))[0]!;
  }
}

function entriesOf(cmds: Command[]): Entry[] {
  return cmds.map((c, i) => ({ index: i + 1, term: 1, type: EntryType.Normal, data: encodeCommand(c) }));
}

async function historyCount(db: NodeDb): Promise<number> {
  let n = 0;
  for await (const _ of db.keys({ gte: Uint8Array.of(0x73, 0x68), lt: Uint8Array.of(0x73, 0x69) })) n++;
  return n;
}

const revOf = (r: ApplyResult): number => ('response' in r ? Number(r.response.header?.revision ?? -1) : -1);

describe('exactly-once writes (dedup table)', () => {
  it('a retried keyed put returns the first result and applies once', async () => {
    const { sm, db } = await fresh();
    const f = new Feeder(sm);
    const first = await f.one(put('a', '1', ik('c1', 1)));
    await f.one(put('b', 'x'));
    const retry = await f.one(put('a', '1', ik('c1', 1)));
    expect(first).toMatchObject({ kind: 'put', response: { header: { revision: 1 } } });
    expect(retry).toMatchObject({ kind: 'put', replayed: true, response: { header: { revision: 1 } } });
    expect(sm.revision()).toBe(2);
    expect(sm.get(b('a'))).toMatchObject({ version: 1, modRevision: 1 });
    expect(await historyCount(db)).toBe(2);
    // Keyed delete, txn and counter are deduplicated the same way.
    const d1 = await f.one({ delete: { key: b('b'), idempotencyKey: ik('c1', 2) } });
    await f.one(put('b', 'again'));
    const d2 = await f.one({ delete: { key: b('b'), idempotencyKey: ik('c1', 2) } });
    expect(d2).toMatchObject({ kind: 'delete', replayed: true, response: { deleted: 1, header: { revision: revOf(d1) } } });
    expect(str(sm.get(b('b'))!.value)).toBe('again');
    const t1 = await f.one({ txn: { success: [{ requestPut: { key: b('t'), value: b('1') } }], idempotencyKey: ik('c1', 3) } });
    const t2 = await f.one({ txn: { success: [{ requestPut: { key: b('t'), value: b('1') } }], idempotencyKey: ik('c1', 3) } });
    expect(revOf(t2)).toBe(revOf(t1));
    expect(sm.get(b('t'))!.version).toBe(1);
    const c1 = await f.one(add('n', 5, { key: ik('c1', 4) }));
    const c2 = await f.one(add('n', 5, { key: ik('c1', 4) }));
    expect(c1).toMatchObject({ kind: 'counter', response: { value: 5, applied: true } });
    expect(c2).toMatchObject({ kind: 'counter', replayed: true, response: { value: 5, applied: true } });
    expect(str(sm.get(b('n'))!.value)).toBe('5');
  });

  it('refuses a key reused for a different request, and malformed keys', async () => {
    const { sm } = await fresh();
    const f = new Feeder(sm);
    await f.one(put('a', '1', ik('c', 1)));
    expect(await f.one(put('a', '2', ik('c', 1)))).toMatchObject({ kind: 'rejected', reason: 'idempotency-key-reused' });
    expect(await f.one(put('a', '2', ik('', 3)))).toMatchObject({ kind: 'invalid' });
    expect(await f.one(put('a', '2', ik('c', 0)))).toMatchObject({ kind: 'invalid' });
    expect(await f.one(put('a', '2', ik('x'.repeat(300), 1)))).toMatchObject({ kind: 'invalid' });
    expect(str(sm.get(b('a'))!.value)).toBe('1');
    expect(sm.revision()).toBe(1);
  });

  it('window rule: seqs below the retained window are expired, never applied again; out-of-order seqs inside it apply', async () => {
    const { sm } = await fresh({ dedup: { windowPerClient: 3 } });
    const f = new Feeder(sm);
    for (const seq of [1, 2, 4, 5]) await f.one(put(`k${seq}`, 'v', ik('c', seq)));
    // Stored: 2,4,5 (1 dropped -> floor 2). seq 3 never arrived and is still >= floor: applies.
    expect(sm.dedupClient('c')).toMatchObject({ floor: 2, highest: 5, seqs: [2, 4, 5] });
    expect(await f.one(put('k3', 'v', ik('c', 3)))).toMatchObject({ kind: 'put', response: { header: { revision: 5 } } });
    expect(sm.dedupClient('c')).toMatchObject({ floor: 3, seqs: [3, 4, 5] });
    const expired = await f.one(put('k1', 'v', ik('c', 1)));
    expect(expired).toMatchObject({ kind: 'rejected', reason: 'idempotency-key-expired' });
    expect((expired as { error: string }).error).toMatch(/idempotency key expired/);
    expect(await f.one(put('k2', 'v', ik('c', 2)))).toMatchObject({ kind: 'rejected', reason: 'idempotency-key-expired' });
    expect(await f.one(put('k4', 'v', ik('c', 4)))).toMatchObject({ replayed: true, response: { header: { revision: 3 } } });
    expect(sm.get(b('k1'))!.version).toBe(1);
    expect(sm.revision()).toBe(5);
  });

  it('idle rule: an idle client keeps a tombstone (old seqs expired, new ones apply), then is forgotten', async () => {
    const { sm } = await fresh({ dedup: { windowPerClient: 10, idleRevisions: 10, forgetRevisions: 30, sweepEveryRevisions: 5 } });
    const f = new Feeder(sm);
    await f.one(put('a', '1', ik('idle', 1))); // revision 1
    await f.one(put('a', '2', ik('idle', 2))); // revision 2
    for (let i = 0; i < 9; i++) await f.one(put('filler', String(i))); // revisions 3..11
    // Sweep at 5 and 10: idle 8 at 10 < 10 -> still full.
    expect(sm.dedupClient('idle')!.seqs).toEqual([1, 2]);
    for (let i = 0; i < 4; i++) await f.one(put('filler', String(i))); // 12..15: sweep at 15, idle 13
    expect(sm.dedupClient('idle')).toMatchObject({ floor: 3, highest: 2, lastUsed: 2, seqs: [] });
    expect(await f.one(put('a', '2', ik('idle', 2)))).toMatchObject({ kind: 'rejected', reason: 'idempotency-key-expired' });
    expect(await f.one(put('a', '3', ik('idle', 3)))).toMatchObject({ kind: 'put', response: { header: { revision: 16 } } });
    expect(sm.dedupClient('idle')).toMatchObject({ floor: 3, seqs: [3], lastUsed: 16 });
    // Tombstone it again and let it be forgotten: idle >= 30 since revision 16.
    for (let i = 0; i < 30; i++) await f.one(put('filler', String(i))); // 17..46; sweeps at 30 (idle 14 -> tombstone), 45 (idle 29)
    expect(sm.dedupClient('idle')).toMatchObject({ seqs: [] });
    for (let i = 0; i < 5; i++) await f.one(put('filler', String(i))); // ..51: sweep at 50, idle 34 -> forgotten
    expect(sm.dedupClient('idle')).toBeUndefined();
    expect(sm.dedupClients()).toBe(0);
  });

  it('is deterministic across replicas and batchings, and survives snapshot + restore', async () => {
    const r = rng(7);
    const cmds: Command[] = [];
    const sent: Command[] = [];
    for (let i = 0; i < 300; i++) {
      const client = `c${Math.floor(r() * 4)}`;
      const x = r();
      let c: Command;
      if (x < 0.3 && sent.length > 0) c = sent[Math.floor(r() * sent.length)]!; // a retry of an earlier keyed command
      else if (x < 0.5) c = add('ctr', Math.floor(r() * 7) - 3, { min: 0, max: 20, key: ik(client, i + 1) });
      else if (x < 0.6) c = del(`k${Math.floor(r() * 5)}`);
      else c = put(`k${Math.floor(r() * 5)}`, `v${i}`, ik(client, i + 1));
      if (x >= 0.3 && !c.delete) sent.push(c);
      cmds.push(c);
    }
    const opts: StateMachineOptions = { dedup: { windowPerClient: 8, idleRevisions: 40, forgetRevisions: 80, sweepEveryRevisions: 10 }, retainRevisions: 30, compactEveryRevisions: 7 };
    const one = await fresh(opts);
    const two = await fresh(opts);
    const res1 = await one.sm.applyEntries(entriesOf(cmds));
    const all = entriesOf(cmds);
    const res2: ApplyResult[] = [];
    for (let i = 0; i < all.length; i += 11) res2.push(...(await two.sm.applyEntries(all.slice(i, i + 11))));
    expect(JSON.stringify(res2)).toBe(JSON.stringify(res1));
    expect(res1.some((x) => 'replayed' in x && x.replayed)).toBe(true);
    expect(res1.some((x) => x.kind === 'rejected' && x.reason === 'idempotency-key-expired')).toBe(true);
    const s1 = await one.sm.createSnapshot();
    const s2 = await two.sm.createSnapshot();
    expect(Buffer.compare(s1.data, s2.data)).toBe(0);
    // Restore on a third replica, then every replica answers the same retries the same way.
    const three = await fresh(opts);
    await three.sm.restoreSnapshot(s1.data);
    expect(three.sm.compactRevision()).toBe(one.sm.compactRevision());
    const retries = entriesOf([...sent.slice(-5), ...cmds.slice(0, 3)]).map((e, i) => ({ ...e, index: cmds.length + 1 + i }));
    const a = await one.sm.applyEntries(retries);
    const c = await three.sm.applyEntries(retries);
    expect(JSON.stringify(c)).toBe(JSON.stringify(a));
    expect(a.filter((x) => 'replayed' in x && x.replayed).length).toBeGreaterThan(0);
    expect(Buffer.compare((await one.sm.createSnapshot()).data, (await three.sm.createSnapshot()).data)).toBe(0);
  });

  it('a restarted replica (reopened db) keeps every client window: same seqs, replays, expiries', async () => {
    const t = makeTempDir('sm-prim-reopen');
    dirs.push(t);
    const opts: StateMachineOptions = { dedup: { windowPerClient: 4 } };
    let db = await openNodeDb(t.dir);
    let sm = await KvStateMachine.open(db, opts);
    const f = new Feeder(sm);
    // Ids that share a prefix and contain NUL (escaped in the result keys); one starts with a
    // byte-order mark, which a default TextDecoder strips.
    const ids = ['c', 'c\0', 'c\0x', '\uFEFFc'];
    for (const [n, id] of ids.entries()) for (const seq of [1, 2, 3, 5, 6, 8].slice(0, 3 + n)) await f.one(put(`k/${n}/${seq}`, 'v', ik(id, seq)));
    const before = ids.map((id) => sm.dedupClient(id));
    expect(before.map((c) => c!.seqs)).toEqual([[1, 2, 3], [1, 2, 3, 5], [2, 3, 5, 6], [3, 5, 6, 8]]);
    await db.close();
    db = await openNodeDb(t.dir);
    dbs.push(db);
    sm = await KvStateMachine.open(db, opts);
    expect(ids.map((id) => sm.dedupClient(id))).toEqual(before);
    const g = new Feeder(sm);
    g.index = f.index;
    expect(await g.one(put('k/3/6', 'v', ik('\uFEFFc', 6)))).toMatchObject({ replayed: true });
    expect(await g.one(put('k/3/2', 'v', ik('\uFEFFc', 2)))).toMatchObject({ kind: 'rejected', reason: 'idempotency-key-expired' });
    expect(await g.one(put('k/1/5', 'v', ik('c\0', 5)))).toMatchObject({ replayed: true });
    expect(await g.one(put('k/0/4', 'v', ik('c', 4)))).toMatchObject({ kind: 'put' });
    expect(sm.dedupClient('c')!.seqs).toEqual([1, 2, 3, 4]);
  });

  it('a client record keeps no seq list on disk (28 bytes however full its window); one written with the list still loads', async () => {
    const t = makeTempDir('sm-prim-layout');
    dirs.push(t);
    let db = await openNodeDb(t.dir);
    let sm = await KvStateMachine.open(db, { dedup: { windowPerClient: 64 } });
    const f = new Feeder(sm);
    for (let seq = 1; seq <= 40; seq++) await f.one(put('k', String(seq), ik('busy', seq)));
    const clientKey = Uint8Array.of(0x73, 0x64, ...b('busy'));
    const rec = await db.get(clientKey);
    expect(rec?.length).toBe(28);
    // The seq count's place holds a marker a binary of the inline layout refuses as corrupt.
    expect([...rec!.subarray(24)]).toEqual([0xff, 0xff, 0xff, 0xff]);
    // The layout before this one: the seqs inline after the 28-byte header.
    const old = new Uint8Array(28 + 8 * 40);
    old.set(rec!, 0);
    const view = new DataView(old.buffer);
    view.setUint32(24, 40);
    for (let i = 0; i < 40; i++) view.setBigUint64(28 + 8 * i, BigInt(i + 1));
    await db.put(clientKey, old);
    await db.close();
    db = await openNodeDb(t.dir);
    dbs.push(db);
    sm = await KvStateMachine.open(db, { dedup: { windowPerClient: 64 } });
    expect(sm.dedupClient('busy')!.seqs).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const g = new Feeder(sm);
    g.index = f.index;
    expect(await g.one(put('k', '7', ik('busy', 7)))).toMatchObject({ replayed: true });
  });

  it('a stored result that no client record accounts for stops the replica from opening', async () => {
    const t = makeTempDir('sm-prim-orphan');
    dirs.push(t);
    let db = await openNodeDb(t.dir);
    let sm = await KvStateMachine.open(db);
    await new Feeder(sm).one(put('k', 'v', ik('gone', 1)));
    await db.del(Uint8Array.of(0x73, 0x64, ...b('gone')));
    await db.close();
    db = await openNodeDb(t.dir);
    dbs.push(db);
    await expect(KvStateMachine.open(db)).rejects.toThrow(/has no client record/);
  });
});

describe('MVCC', () => {
  it('key escaping is order-preserving and prefix-free', () => {
    const keys = ['', 'a', 'a\0', 'a\0\0', 'a\0b', 'a\x01', 'ab', 'b', '\0', '\xff'].map((s) => Buffer.from(s, 'latin1'));
    const sorted = [...keys].sort(Buffer.compare);
    const escSorted = [...keys].sort((x, y) => Buffer.compare(escapeKey(x), escapeKey(y)));
    expect(escSorted).toEqual(sorted);
    for (const k of keys) expect(Buffer.compare(unescapeKey(escapeKey(k)), k)).toBe(0);
  });

  it('reads every past revision exactly as the model saw it, before and after compactions', async () => {
    const r = rng(42);
    const { sm } = await fresh({ retainRevisions: 0 });
    const f = new Feeder(sm);
    const model = new Map<string, string>();
    const states: Map<string, string>[] = [new Map()];
    const names = ['a', 'a\0', 'a\0b', 'ab', 'b', 'b\0', 'c'];
    for (let i = 0; i < 150; i++) {
      const k = names[Math.floor(r() * names.length)]!;
      const x = r();
      if (x < 0.2) {
        await f.one(del(k));
        if (!model.has(k)) continue; // deleting nothing writes no revision
        model.delete(k);
      } else if (x < 0.3) {
        // One txn writing the same key twice: one revision, the second write wins.
        await f.one({ txn: { success: [{ requestPut: { key: b(k), value: b(`x${i}`) } }, { requestPut: { key: b(k), value: b(`y${i}`) } }] } });
        model.set(k, `y${i}`);
      } else {
        await f.one(put(k, `v${i}`));
        model.set(k, `v${i}`);
      }
      states.push(new Map(model));
      expect(sm.revision()).toBe(states.length - 1);
    }
    const check = async (from: number) => {
      for (let rev = from; rev <= sm.revision(); rev++) {
        const want = [...states[rev]!.entries()].sort((x, y) => Buffer.compare(Buffer.from(x[0], 'latin1'), Buffer.from(y[0], 'latin1')));
        const got = await sm.range({ key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0), revision: rev });
        expect(got.kvs.map((kv) => [Buffer.from(kv.key).toString('latin1'), str(kv.value)]), `revision ${rev}`).toEqual(want);
        expect(got.count).toBe(want.length);
        for (const name of names) {
          const kv = await sm.getAt(b(name), rev);
          expect(kv ? str(kv.value) : undefined, `${JSON.stringify(name)} at ${rev}`).toBe(states[rev]!.get(name));
          if (kv) expect(kv.modRevision).toBeLessThanOrEqual(rev);
        }
        const sub = await sm.range({ key: b('a'), rangeEnd: b('b'), revision: rev, limit: 2 });
        const subWant = want.filter(([k]) => k >= 'a' && k < 'b');
        expect(sub.count).toBe(subWant.length);
        expect(sub.more).toBe(subWant.length > 2);
      }
    };
    await check(1);
    const c1 = Math.floor(sm.revision() / 3);
    expect(await f.one({ compact: { revision: c1 } })).toMatchObject({ kind: 'compact', response: { compactRevision: c1 } });
    await check(c1);
    await expect(sm.range({ key: b('a'), revision: c1 - 1 })).rejects.toBeInstanceOf(CompactedError);
    await expect(sm.getAt(b('a'), c1 - 1)).rejects.toThrow(`revision ${c1 - 1} has been compacted; the oldest readable revision is ${c1}`);
    await expect(sm.range({ key: b('a'), revision: sm.revision() + 1 })).rejects.toBeInstanceOf(FutureRevisionError);
    const c2 = sm.revision() - 5;
    await f.one({ compact: { revision: c2 } });
    await check(c2);
    // Compacting to the current revision leaves the current state intact.
    await f.one({ compact: { revision: sm.revision() } });
    await check(sm.revision());
    const current = await sm.range({ key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0) });
    expect(current.kvs.map((kv) => str(kv.value))).toEqual([...states[states.length - 1]!.entries()].sort((x, y) => Buffer.compare(Buffer.from(x[0], 'latin1'), Buffer.from(y[0], 'latin1'))).map((e) => e[1]));
  });

  it('compaction with the survivor cache removes exactly what an uncached replica removes (many compactions, deletes, txns, batchings)', async () => {
    for (const seed of [1, 2, 3]) {
      const r = rng(seed);
      const opts: StateMachineOptions = { retainRevisions: 9, compactEveryRevisions: 4 };
      const cached = await fresh(opts);
      const uncached = await fresh({ ...opts, survivorCacheKeys: 0 });
      const names = ['a', 'a\0', 'ab', 'b', 'c', 'd'];
      const cmds: Command[] = [];
      for (let i = 0; i < 400; i++) {
        const k = names[Math.floor(r() * names.length)]!;
        const x = r();
        if (x < 0.2) cmds.push(del(k));
        else if (x < 0.3) cmds.push({ txn: { success: [{ requestPut: { key: b(k), value: b(`x${i}`) } }, { requestDelete: { key: b(names[(i + 1) % names.length]!) } }, { requestPut: { key: b(k), value: b(`y${i}`) } }] } });
        else if (x < 0.33) cmds.push({ compact: { revision: 1 + Math.floor(r() * 3) } }); // mostly refused (already compacted): exercises refusals in a batch
        else cmds.push(put(k, `v${i}`));
      }
      const all = entriesOf(cmds);
      // Different batchings too: the cached replica applies in batches of 1..16.
      for (let i = 0; i < all.length; ) {
        const n = 1 + Math.floor(r() * 16);
        await cached.sm.applyEntries(all.slice(i, i + n));
        i += n;
      }
      await uncached.sm.applyEntries(all);
      expect(cached.sm.revision()).toBe(uncached.sm.revision());
      expect(cached.sm.compactRevision()).toBe(uncached.sm.compactRevision());
      expect(cached.sm.compactRevision()).toBeGreaterThan(100);
      expect(Buffer.compare((await cached.sm.createSnapshot()).data, (await uncached.sm.createSnapshot()).data), `seed ${seed}`).toBe(0);
      for (let rev = cached.sm.compactRevision(); rev <= cached.sm.revision(); rev++) {
        const want = await uncached.sm.range({ key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0), revision: rev });
        const got = await cached.sm.range({ key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0), revision: rev });
        expect(got, `seed ${seed} revision ${rev}`).toEqual(want);
      }
    }
  });

  it('compaction removes unreadable history and refuses bad revisions', async () => {
    const { sm, db } = await fresh({ retainRevisions: 0 });
    const f = new Feeder(sm);
    await f.apply(put('a', '1'), put('a', '2'), put('b', '1'), del('b'), put('a', '3')); // revisions 1..5
    expect(await historyCount(db)).toBe(5);
    expect(await f.one({ compact: { revision: 4 } })).toMatchObject({ kind: 'compact', response: { header: { revision: 5 }, compactRevision: 4 } });
    // Left: a@2 (newest put of a below 4), a@5, and b's delete at 4 (a read at 4 sees it).
    expect(await historyCount(db)).toBe(3);
    expect(str((await sm.getAt(b('a'), 4))!.value)).toBe('2');
    expect(await sm.getAt(b('b'), 4)).toBeUndefined();
    expect(await f.one({ compact: { revision: 4 } })).toMatchObject({ kind: 'rejected', reason: 'compacted' });
    expect(await f.one({ compact: { revision: 2 } })).toMatchObject({ kind: 'rejected', reason: 'compacted' });
    expect(await f.one({ compact: { revision: 9 } })).toMatchObject({ kind: 'rejected', reason: 'future-revision' });
    expect(await f.one({ compact: { revision: 0 } })).toMatchObject({ kind: 'invalid' });
    await f.one({ compact: { revision: 5 } });
    expect(await historyCount(db)).toBe(1);
    expect(sm.compactRevision()).toBe(5);
    expect(sm.revision()).toBe(5); // compaction writes no revision
    expect(await f.one({ txn: { success: [{ requestRange: { key: b('a'), revision: 3 } }] } })).toMatchObject({ kind: 'invalid' });
  });

  it('automatic compaction keeps the last retainRevisions revisions, deterministically across batchings', async () => {
    const cmds: Command[] = [];
    for (let i = 0; i < 60; i++) cmds.push(i % 9 === 8 ? del(`k${i % 4}`) : put(`k${i % 4}`, `v${i}`));
    cmds.splice(30, 0, { compact: { revision: 20 } });
    const opts = { retainRevisions: 10, compactEveryRevisions: 5 };
    const one = await fresh(opts);
    const two = await fresh(opts);
    await one.sm.applyEntries(entriesOf(cmds));
    for (const e of entriesOf(cmds)) await two.sm.applyEntries([e]);
    const rev = one.sm.revision();
    expect(one.sm.compactRevision()).toBe(Math.floor(rev / 5) * 5 - 10);
    expect(Buffer.compare((await one.sm.createSnapshot()).data, (await two.sm.createSnapshot()).data)).toBe(0);
    await expect(one.sm.getAt(b('k1'), one.sm.compactRevision() - 1)).rejects.toBeInstanceOf(CompactedError);
    for (let r = one.sm.compactRevision(); r <= rev; r++) {
      const x = await one.sm.range({ key: b('k'), rangeEnd: b('l'), revision: r });
      const y = await two.sm.range({ key: b('k'), rangeEnd: b('l'), revision: r });
      expect(x).toEqual(y);
    }
  });
});

describe('counters', () => {
  it('never crosses a bound under many adds; refusals carry the current value and write nothing', async () => {
    const { sm } = await fresh();
    const f = new Feeder(sm);
    await f.one(add('stock', 10));
    let applied = 0;
    let refused = 0;
    for (let i = 0; i < 40; i++) {
      const r = await f.one(add('stock', -1, { min: 0 }));
      if (r.kind !== 'counter') throw new Error(`unexpected ${JSON.stringify(r)}`);
      if (r.response.applied) applied++;
      else {
        refused++;
        expect(r.response.value).toBe(0);
      }
      expect(Number(str(sm.get(b('stock'))!.value))).toBeGreaterThanOrEqual(0);
    }
    expect([applied, refused]).toEqual([10, 30]);
    expect(sm.revision()).toBe(11);
    expect(await f.one(add('stock', -3, { min: 0 }))).toMatchObject({ response: { applied: false, value: 0 } });
    expect(await f.one(add('stock', 5, { min: 0, max: 4 }))).toMatchObject({ response: { applied: false, value: 0 } });
    expect(await f.one(add('stock', 4, { min: 0, max: 4 }))).toMatchObject({ response: { applied: true, value: 4, header: { revision: 12 } } });
    expect(await f.one(add('stock', 0))).toMatchObject({ response: { applied: true, value: 4, header: { revision: 12 } } });
    expect(await f.one(add('neg', -7))).toMatchObject({ response: { applied: true, value: -7 } });
    expect(str(sm.get(b('neg'))!.value)).toBe('-7');
  });

  it('rejects bad input and non-counter values', async () => {
    const { sm } = await fresh();
    const f = new Feeder(sm);
    expect(await f.one(add('c', 1, { min: 5, max: 1 }))).toMatchObject({ kind: 'invalid', error: expect.stringMatching(/min 5 is greater than max 1/) });
    expect(await f.one(add('', 1))).toMatchObject({ kind: 'invalid' });
    await f.one(put('text', 'hello'));
    expect(await f.one(add('text', 1))).toMatchObject({ kind: 'rejected', reason: 'not-a-counter' });
    await f.one(put('pad', '007'));
    expect(await f.one(add('pad', 1))).toMatchObject({ kind: 'rejected', reason: 'not-a-counter' });
    await f.one(put('big', String(Number.MAX_SAFE_INTEGER)));
    expect(await f.one(add('big', 1))).toMatchObject({ kind: 'rejected', reason: 'counter-overflow' });
    expect(sm.revision()).toBe(3);
  });
});
