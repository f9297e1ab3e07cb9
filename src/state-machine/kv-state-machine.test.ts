import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CompareResult, CompareTarget, encodeCommand, type Command, type Compare, type TxnResponse } from '../wire/kv-proto.js';
import { EntryType, type Entry } from '../raft/index.js';
import { openNodeDb, type NodeDb } from '../storage/index.js';
import { makeTempDir } from '../storage/test-helpers.js';
import { SnapshotFormatError } from './errors.js';
import { KvStateMachine } from './index.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (u: Uint8Array | undefined): string | undefined => (u ? new TextDecoder().decode(u) : undefined);

function entries(cmds: (Command | null)[], firstIndex = 1, term = 1): Entry[] {
  return cmds.map((c, i) => ({ index: firstIndex + i, term, type: EntryType.Normal, data: c ? encodeCommand(c) : new Uint8Array(0) }));
}
const put = (k: string, v: string): Command => ({ put: { key: b(k), value: b(v) } });

describe('KvStateMachine', () => {
  const dirs: { cleanup: () => void }[] = [];
  const dbs: NodeDb[] = [];
  async function fresh(): Promise<{ sm: KvStateMachine; db: NodeDb; dir: string }> {
    const t = makeTempDir('sm');
    dirs.push(t);
    const db = await openNodeDb(t.dir);
    dbs.push(db);
    return { sm: await KvStateMachine.open(db), db, dir: t.dir };
  }
  beforeEach(() => {
    dirs.length = 0;
    dbs.length = 0;
  });
  afterEach(async () => {
    for (const db of dbs) if (db.status === 'open') await db.close();
    for (const d of dirs) d.cleanup();
  });

  it('prepareApply: results are final before write(); readers see nothing until then; abort leaves no trace', async () => {
    const { sm } = await fresh();
    await sm.applyEntries(entries([put('a', '1')]));
    const p = await sm.prepareApply(entries([put('a', '2'), put('b', '1')], 2));
    expect(p.results.map((r) => r.kind)).toEqual(['put', 'put']);
    expect(p.results[1]).toMatchObject({ response: { header: { revision: 3 } } });
    // Not published yet: the old value, applied index and revision.
    expect(str(sm.get(b('a'))!.value)).toBe('1');
    expect(sm.get(b('b'))).toBeUndefined();
    expect([sm.appliedIndex(), sm.revision()]).toEqual([1, 1]);
    // One apply at a time.
    await expect(sm.prepareApply(entries([put('c', '1')], 4))).rejects.toThrow(/applyEntries/);
    await p.write();
    expect(str(sm.get(b('a'))!.value)).toBe('2');
    expect([sm.appliedIndex(), sm.revision()]).toEqual([3, 3]);
    await expect(p.write()).rejects.toThrow(/already written/);
    const q = await sm.prepareApply(entries([put('z', '1')], 4));
    q.abort();
    expect(sm.get(b('z'))).toBeUndefined();
    expect(sm.appliedIndex()).toBe(3);
    // After an abort the same entries apply normally.
    const r = await sm.applyEntries(entries([put('z', '2')], 4));
    expect(r[0]).toMatchObject({ kind: 'put', response: { header: { revision: 4 } } });
    expect(str(sm.get(b('z'))!.value)).toBe('2');
  });

  it('puts, gets, bumps revision and version, returns per-entry results', async () => {
    const { sm } = await fresh();
    const res = await sm.applyEntries(entries([null, put('a', '1'), put('b', '2'), put('a', '3')]));
    expect(res.map((r) => r.kind)).toEqual(['noop', 'put', 'put', 'put']);
    expect(res[3]).toMatchObject({ kind: 'put', response: { header: { revision: 3 } } });
    expect(sm.appliedIndex()).toBe(4);
    expect(sm.revision()).toBe(3);
    expect(sm.get(b('a'))).toMatchObject({ createRevision: 1, modRevision: 3, version: 2 });
    expect(str(sm.get(b('a'))!.value)).toBe('3');
  });

  it('deletes a range and counts, leaving revision alone when nothing was deleted', async () => {
    const { sm } = await fresh();
    await sm.applyEntries(entries([put('k1', 'x'), put('k2', 'y'), put('l', 'z')]));
    const res = await sm.applyEntries(entries([{ delete: { key: b('k'), rangeEnd: b('l'), prevKv: true } }, { delete: { key: b('nope') } }], 4));
    expect(res[0]).toMatchObject({ kind: 'delete', response: { deleted: 2, header: { revision: 4 } } });
    expect(res[1]).toMatchObject({ kind: 'delete', response: { deleted: 0, header: { revision: 4 } } });
    const r = await sm.range({ key: b('\0'), rangeEnd: Uint8Array.of(0) });
    expect(r.kvs.map((kv) => str(kv.key))).toEqual(['l']);
  });

  it('is deterministic: same entries, same state and snapshot bytes', async () => {
    const cmds: Command[] = [];
    for (let i = 0; i < 200; i++) {
      const k = `key${i % 17}`;
      if (i % 7 === 0) cmds.push({ delete: { key: b('key1'), rangeEnd: b('key3') } });
      else if (i % 5 === 0) cmds.push({ txn: { compare: [{ key: b(k), target: CompareTarget.Version, result: CompareResult.Greater, version: 1 }], success: [{ requestPut: { key: b(k), value: b(`t${i}`) } }], failure: [{ requestDelete: { key: b(k) } }] } });
      else cmds.push(put(k, `v${i}`));
    }
    const one = await fresh();
    const two = await fresh();
    await one.sm.applyEntries(entries(cmds));
    // Different batching on the second replica must not matter.
    for (let i = 0; i < cmds.length; i += 13) await two.sm.applyEntries(entries(cmds.slice(i, i + 13), i + 1));
    const s1 = await one.sm.createSnapshot();
    const s2 = await two.sm.createSnapshot();
    expect(s1.revision).toBe(s2.revision);
    expect(Buffer.compare(s1.data, s2.data)).toBe(0);
  });

  it('commits data and applied index in one batch, and never applies an entry twice', async () => {
    const { sm, db } = await fresh();
    // Writes go through chained batches (storage/node-db.ts writeBatch): record each written one.
    const batches: { key: Uint8Array }[][] = [];
    const orig = db.batch.bind(db) as () => { put(k: Uint8Array, v: Uint8Array): unknown; del(k: Uint8Array): unknown; write(o?: unknown): Promise<void> };
    (db as unknown as { batch: unknown }).batch = () => {
      const real = orig();
      const ops: { key: Uint8Array }[] = [];
      return {
        put: (k: Uint8Array, v: Uint8Array) => (ops.push({ key: k }), real.put(k, v)),
        del: (k: Uint8Array) => (ops.push({ key: k }), real.del(k)),
        write: (o?: unknown) => (batches.push(ops), real.write(o)),
      };
    };
    await sm.applyEntries(entries([put('a', '1'), put('b', '2')]));
    expect(batches).toHaveLength(1);
    const keys = batches[0]!.map((op) => str(op.key.subarray(0, 2)));
    expect(keys).toContain('sm'); // the meta (applied index) key
    expect(keys.filter((k) => k === 'sk')).toHaveLength(2);
    // Replaying after a "crash" (the log re-delivers 1..3): 1 and 2 are skipped.
    const res = await sm.applyEntries(entries([put('a', 'again'), put('b', 'again'), put('c', '3')]));
    expect(res.map((r) => r.kind)).toEqual(['noop', 'noop', 'put']);
    expect(str(sm.get(b('a'))!.value)).toBe('1');
    expect(sm.revision()).toBe(3);
  });

  it('a failed batch write leaves neither data nor applied index', async () => {
    const { sm, db } = await fresh();
    await sm.applyEntries(entries([put('a', '1')]));
    (db as unknown as { batch: unknown }).batch = () => ({ put() {}, del() {}, write: () => Promise.reject(new Error('disk on fire')) });
    await expect(sm.applyEntries(entries([put('a', '2')], 2))).rejects.toThrow('disk on fire');
    expect(sm.appliedIndex()).toBe(1);
    expect(str(sm.get(b('a'))!.value)).toBe('1');
    const again = await KvStateMachine.open(db);
    expect(again.appliedIndex()).toBe(1);
  });

  it('evaluates txn compares on value, version, create and mod revision', async () => {
    const { sm } = await fresh();
    await sm.applyEntries(entries([put('x', 'v1'), put('x', 'v2'), put('y', 'q')]));
    const txn = async (compare: Compare[], index: number): Promise<TxnResponse> => {
      const r = await sm.applyEntries(entries([{ txn: { compare, success: [{ requestPut: { key: b('ok'), value: b(String(index)) } }, { requestRange: { key: b('x') } }], failure: [{ requestRange: { key: b('y') } }] } }], index));
      return (r[0] as { response: TxnResponse }).response;
    };
    expect((await txn([{ key: b('x'), target: CompareTarget.Value, result: CompareResult.Equal, value: b('v2') }], 4)).succeeded).toBe(true);
    expect((await txn([{ key: b('x'), target: CompareTarget.Version, result: CompareResult.Equal, version: 2 }], 5)).succeeded).toBe(true);
    expect((await txn([{ key: b('x'), target: CompareTarget.CreateRevision, result: CompareResult.Equal, createRevision: 1 }], 6)).succeeded).toBe(true);
    expect((await txn([{ key: b('x'), target: CompareTarget.ModRevision, result: CompareResult.Less, modRevision: 2 }], 7)).succeeded).toBe(false);
    expect((await txn([{ key: b('missing'), target: CompareTarget.Version, result: CompareResult.Equal, version: 0 }], 8)).succeeded).toBe(true);
    expect((await txn([{ key: b('missing'), target: CompareTarget.Value, result: CompareResult.NotEqual, value: b('z') }], 9)).succeeded).toBe(false);
    const failed = await txn([{ key: b('y'), target: CompareTarget.Value, result: CompareResult.Greater, value: b('z') }], 10);
    expect(failed.succeeded).toBe(false);
    expect(str(failed.responses[0]!.responseRange!.kvs[0]!.value)).toBe('q');
    expect(failed.header!.revision).toBe(sm.revision()); // read-only branch wrote nothing
    // The success branch's range sees the txn's own earlier ops and state.
    const ok = await txn([], 11);
    expect(ok.responses[1]!.responseRange!.kvs[0]!.version).toBe(2);
    expect(sm.get(b('ok'))!.modRevision).toBe(ok.header!.revision);
  });

  it('rejects malformed commands identically and atomically', async () => {
    const { sm } = await fresh();
    const bad: Command = { txn: { success: [{ requestPut: { key: b('a'), value: b('1') } }, { requestPut: { key: new Uint8Array(0), value: b('2') } }] } };
    const res = await sm.applyEntries([...entries([bad]), { index: 2, term: 1, type: EntryType.Normal, data: Uint8Array.of(0xff, 0xff, 0xff) }]);
    expect(res.map((r) => r.kind)).toEqual(['invalid', 'invalid']);
    expect(sm.get(b('a'))).toBeUndefined();
    expect(sm.appliedIndex()).toBe(2);
    expect(sm.revision()).toBe(0);
  });

  it('round-trips a snapshot and restores atomically, replacing existing state', async () => {
    const src = await fresh();
    await src.sm.applyEntries(entries([put('a', '1'), put('b', '2'), { delete: { key: b('a') } }, put('c', '3')], 1, 7));
    const snap = await src.sm.createSnapshot();
    expect(snap).toMatchObject({ appliedIndex: 4, appliedTerm: 7, revision: 4 });
    const dst = await fresh();
    await dst.sm.applyEntries(entries([put('zzz', 'old')]));
    await dst.sm.restoreSnapshot(snap.data);
    expect(dst.sm.appliedIndex()).toBe(4);
    expect(dst.sm.revision()).toBe(4);
    expect(dst.sm.get(b('zzz'))).toBeUndefined();
    expect(dst.sm.get(b('a'))).toBeUndefined();
    expect(str(dst.sm.get(b('c'))!.value)).toBe('3');
    expect(Buffer.compare((await dst.sm.createSnapshot()).data, snap.data)).toBe(0);
    const broken = snap.data.slice();
    broken[40]! ^= 1;
    await expect(dst.sm.restoreSnapshot(broken)).rejects.toBeInstanceOf(SnapshotFormatError);
    expect(str(dst.sm.get(b('c'))!.value)).toBe('3');
  });
});
