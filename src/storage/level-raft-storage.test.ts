import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CompactedError, UnavailableError, type Entry } from '../raft/index.js';
import { entryKey } from './raft-keys.js';
import { DataDirLockedError, LevelRaftStorage, openNodeDb, StorageCorruptionError, StorageUsageError, type NodeDb } from './index.js';
import { makeTempDir } from './test-helpers.js';

const run = promisify(execFile);

function ent(index: number, term: number, text = `e${index}`): Entry {
  return { index, term, type: 0, data: new TextEncoder().encode(text) };
}

function range(lo: number, hi: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(ent(i, term));
  return out;
}

describe('LevelRaftStorage', () => {
  let tmp: { dir: string; cleanup: () => void };
  let db: NodeDb;

  beforeEach(async () => {
    tmp = makeTempDir('storage');
    db = await openNodeDb(tmp.dir);
  });
  afterEach(async () => {
    await db.close();
    tmp.cleanup();
  });

  async function reopen(): Promise<LevelRaftStorage> {
    await db.close();
    db = await openNodeDb(tmp.dir);
    return LevelRaftStorage.open(db);
  }

  it('starts empty', async () => {
    const s = await LevelRaftStorage.open(db);
    expect(s.firstIndex()).toBe(1);
    expect(s.lastIndex()).toBe(0);
    expect(s.term(0)).toBe(0);
    expect(s.initialState().hardState).toEqual({ term: 0, vote: 0, commit: 0 });
  });

  it('persists hard state, entries and bootstrap conf state across reopen', async () => {
    const s = await LevelRaftStorage.open(db);
    await s.bootstrap({ voters: [1, 2, 3], learners: [] });
    await s.save({ hardState: { term: 2, vote: 1, commit: 3 }, entries: range(1, 5, 2) });
    const r = await reopen();
    expect(r.initialState()).toEqual({ hardState: { term: 2, vote: 1, commit: 3 }, confState: { voters: [1, 2, 3], learners: [] } });
    expect(r.lastIndex()).toBe(5);
    expect(r.entries(2, 5, Infinity).map((e) => new TextDecoder().decode(e.data))).toEqual(['e2', 'e3', 'e4']);
    expect(r.term(5)).toBe(2);
    expect(() => r.term(6)).toThrow(UnavailableError);
  });

  it('truncates a conflicting suffix, in memory and on disk', async () => {
    const s = await LevelRaftStorage.open(db);
    await s.save({ hardState: { term: 1, vote: 1, commit: 2 }, entries: range(1, 6, 1) });
    await s.save({ hardState: { term: 3, vote: 2, commit: 2 }, entries: [ent(4, 3, 'new4')] });
    expect(s.lastIndex()).toBe(4);
    expect(s.term(4)).toBe(3);
    expect(await db.get(entryKey(5))).toBeUndefined();
    const r = await reopen();
    expect(r.lastIndex()).toBe(4);
    expect(new TextDecoder().decode(r.entries(4, 5, Infinity)[0]!.data)).toBe('new4');
  });

  it('an unsynced save may carry only the hard state and extra ops; entries must be synced', async () => {
    const s = await LevelRaftStorage.open(db);
    await s.save({ hardState: { term: 1, vote: 1, commit: 1 }, entries: range(1, 3, 1) });
    const extra = { type: 'put' as const, key: Uint8Array.of(0x73, 0x7a), value: Uint8Array.of(1) };
    await s.save({ hardState: { term: 1, vote: 1, commit: 3 }, entries: [] }, [extra], { sync: false });
    expect((await reopen()).initialState().hardState.commit).toBe(3);
    expect([...((await db.get(extra.key)) ?? [])]).toEqual([1]);
    const r = await LevelRaftStorage.open(db);
    await expect(r.save({ entries: [ent(4, 1)] }, [], { sync: false })).rejects.toBeInstanceOf(StorageUsageError);
  });

  it('refuses an append that leaves a gap', async () => {
    const s = await LevelRaftStorage.open(db);
    await s.save({ entries: range(1, 2, 1) });
    await expect(s.save({ entries: [ent(5, 1)] })).rejects.toBeInstanceOf(StorageUsageError);
  });

  it('compacts up to the snapshot and keeps term(compactIndex)', async () => {
    const s = await LevelRaftStorage.open(db);
    await s.save({ hardState: { term: 2, vote: 1, commit: 10 }, entries: [...range(1, 4, 1), ...range(5, 10, 2)] });
    await expect(s.compact(5)).rejects.toBeInstanceOf(StorageUsageError); // no snapshot yet
    const md = await s.createSnapshot(6, { voters: [1], learners: [] });
    expect(md).toEqual({ index: 6, term: 2, confState: { voters: [1], learners: [] } });
    await s.compact(6);
    expect(s.firstIndex()).toBe(7);
    expect(s.term(6)).toBe(2);
    expect(() => s.entries(6, 8, Infinity)).toThrow(CompactedError);
    expect(await db.get(entryKey(6))).toBeUndefined();
    const r = await reopen();
    expect(r.firstIndex()).toBe(7);
    expect(r.lastIndex()).toBe(10);
    expect(r.snapshot().metadata.index).toBe(6);
    expect(r.entries(7, 11, Infinity)).toHaveLength(4);
  });

  it('installs a received snapshot: the old log goes, extra ops commit in the same batch', async () => {
    const s = await LevelRaftStorage.open(db);
    await s.save({ hardState: { term: 1, vote: 1, commit: 3 }, entries: range(1, 3, 1) });
    const snap = { metadata: { index: 20, term: 4, confState: { voters: [1, 2], learners: [3] } }, data: new Uint8Array() };
    const extraKey = Uint8Array.of(0x73, 1);
    await s.save({ hardState: { term: 4, vote: 0, commit: 20 }, entries: [], snapshot: snap }, [{ type: 'put', key: extraKey, value: Uint8Array.of(9) }]);
    expect(s.firstIndex()).toBe(21);
    expect(s.lastIndex()).toBe(20);
    expect(s.term(20)).toBe(4);
    await s.save({ entries: [ent(21, 4)] });
    const r = await reopen();
    expect(r.initialState().confState).toEqual({ voters: [1, 2], learners: [3] });
    expect(r.lastIndex()).toBe(21);
    expect(await db.get(entryKey(2))).toBeUndefined();
    expect([...(await db.get(extraKey))!]).toEqual([9]);
  });

  it('detects a corrupt entry at open', async () => {
    const s = await LevelRaftStorage.open(db);
    await s.save({ hardState: { term: 1, vote: 1, commit: 1 }, entries: range(1, 3, 1) });
    const rec = (await db.get(entryKey(2)))!;
    const flipped = rec.slice();
    flipped[flipped.length - 1]! ^= 0xff;
    await db.put(entryKey(2), flipped);
    await expect(reopen()).rejects.toThrow(/log entry 2: checksum mismatch/);
    await expect(LevelRaftStorage.open(db)).rejects.toBeInstanceOf(StorageCorruptionError);
  });

  it('detects a gap and a truncated tail at open', async () => {
    const s = await LevelRaftStorage.open(db);
    await s.save({ hardState: { term: 1, vote: 1, commit: 4 }, entries: range(1, 4, 1) });
    await db.del(entryKey(2));
    await expect(reopen()).rejects.toThrow(/gap in the log: entry 1 is followed by 3/);
    await db.batch([{ type: 'del', key: entryKey(3) }, { type: 'del', key: entryKey(4) }]);
    await expect(LevelRaftStorage.open(db)).rejects.toThrow(/commits 4 but the log ends at 1/);
  });

  it('refuses a second open of the same data dir with a clear error', async () => {
    // From another process, which is the case that matters in production...
    const script = `import { openNodeDb } from './src/storage/index.ts'; openNodeDb(${JSON.stringify(tmp.dir)}).then(() => { console.log('opened'); process.exit(0); }, (e) => { console.log(e.name + ': ' + e.message); process.exit(3); });`;
    const res = await run('npx', ['tsx', '--eval', script], { cwd: new URL('../..', import.meta.url).pathname, timeout: 30_000 }).catch((e: { stdout: string; code: number }) => e);
    expect(res.stdout).toMatch(/DataDirLockedError: data directory .* is in use by another process/);
    // ...and from this one; afterwards the cross-process lock must still hold.
    await expect(openNodeDb(tmp.dir)).rejects.toBeInstanceOf(DataDirLockedError);
    const again = await run('npx', ['tsx', '--eval', script], { cwd: new URL('../..', import.meta.url).pathname, timeout: 30_000 }).catch((e: { stdout: string; code: number }) => e);
    expect(again.stdout).toMatch(/DataDirLockedError/);
  });
});
