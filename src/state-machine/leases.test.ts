// Leases, lock queues and fencing in the state machine: contracts, bad input, determinism
// across batching, restart and snapshot restore.
import { afterEach, describe, expect, it } from 'vitest';
import { encodeCommand, MAX_LEASE_TTL_SECONDS, type Command } from '../wire/kv-proto.js';
import { EntryType, type Entry } from '../raft/index.js';
import { openNodeDb, type NodeDb } from '../storage/index.js';
import { makeTempDir } from '../storage/test-helpers.js';
import { KvStateMachine, type ApplyResult } from './index.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (u: Uint8Array | undefined): string | undefined => (u ? new TextDecoder().decode(u) : undefined);
const grant = (ttl: number, id = 0): Command => ({ leaseGrant: { ttl, id } });
const revoke = (id: number): Command => ({ leaseRevoke: { id } });
const expire = (id: number): Command => ({ leaseExpire: { id } });
const put = (k: string, v: string, lease = 0, fence?: { lock: string; token: number }): Command => ({
  put: { key: b(k), value: b(v), lease, fence: fence ? { lock: b(fence.lock), token: fence.token } : null },
});
const lock = (name: string, lease: number, value = ''): Command => ({ lockAcquire: { name: b(name), lease, value: b(value) } });
const del = (k: string): Command => ({ delete: { key: b(k) } });

const dirs: { cleanup: () => void }[] = [];
const dbs: NodeDb[] = [];
afterEach(async () => {
  for (const db of dbs.splice(0)) if (db.status === 'open') await db.close();
  for (const d of dirs.splice(0)) d.cleanup();
});

async function fresh(): Promise<{ sm: KvStateMachine; db: NodeDb; dir: string }> {
  const t = makeTempDir('sm-lease');
  dirs.push(t);
  const db = await openNodeDb(t.dir);
  dbs.push(db);
  return { sm: await KvStateMachine.open(db), db, dir: t.dir };
}

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

function resp<T>(r: ApplyResult): T {
  if (!('response' in r)) throw new Error(`expected a response, got ${JSON.stringify(r)}`);
  return r.response as T;
}

describe('leases in the state machine', () => {
  it('grant picks a deterministic id, or takes the requested one; bad TTLs and duplicate ids are refused', async () => {
    const { sm } = await fresh();
    const f = new Feeder(sm);
    const g = resp<{ id: number; ttl: number }>(await f.one(grant(10)));
    expect(g).toMatchObject({ id: 1, ttl: 10 });
    expect(resp<{ id: number }>(await f.one(grant(5, 77))).id).toBe(77);
    expect(await f.one(grant(5, 77))).toMatchObject({ kind: 'rejected', reason: 'lease-exists' });
    expect(await f.one(grant(0))).toMatchObject({ kind: 'invalid' });
    expect(await f.one(grant(-3))).toMatchObject({ kind: 'invalid' });
    expect(await f.one(grant(MAX_LEASE_TTL_SECONDS + 1))).toMatchObject({ kind: 'rejected', reason: 'lease-ttl-too-large' });
    expect(resp<{ ttl: number }>(await f.one(grant(MAX_LEASE_TTL_SECONDS))).ttl).toBe(MAX_LEASE_TTL_SECONDS);
    expect(sm.leases.list().map((l) => l.id)).toEqual([1, 7, 77]);
    expect(sm.revision()).toBe(0); // grants write no revision
  });

  it('put with an unknown lease is NOT applied; keys vanish on revoke at one revision; expire of a gone lease is a no-op', async () => {
    const { sm } = await fresh();
    const f = new Feeder(sm);
    expect(await f.one(put('k', 'v', 42))).toMatchObject({ kind: 'rejected', reason: 'lease-not-found' });
    expect(sm.get(b('k'))).toBeUndefined();
    const id = resp<{ id: number }>(await f.one(grant(10))).id;
    await f.apply(put('a', '1', id), put('b', '2', id), put('c', '3', id), put('plain', 'x'));
    expect(sm.get(b('a'))?.lease).toBe(id);
    // a put without lease detaches; a delete detaches
    await f.apply(put('c', '3b'), del('b'));
    expect(sm.get(b('c'))?.lease).toBe(0);
    expect(sm.leases.keysOf(id).map(str)).toEqual(['a']);
    await f.one(put('z', '9', id));
    const before = sm.revision();
    const r = resp<{ header: { revision: number } }>(await f.one(revoke(id)));
    expect(r.header.revision).toBe(before + 1);
    expect(sm.revision()).toBe(before + 1);
    expect(sm.get(b('a'))).toBeUndefined();
    expect(sm.get(b('z'))).toBeUndefined();
    expect(str(sm.get(b('c'))?.value)).toBe('3b');
    expect(str(sm.get(b('plain'))?.value)).toBe('x');
    // both keys are gone at exactly that revision
    const hist = await sm.range({ key: b('a'), rangeEnd: b('zz'), revision: before });
    expect(hist.kvs.map((kv) => str(kv.key))).toEqual(['a', 'c', 'plain', 'z']);
    expect((await sm.range({ key: b('a'), rangeEnd: b('zz'), revision: before + 1 })).kvs.map((kv) => str(kv.key))).toEqual(['c', 'plain']);
    expect(await f.one(revoke(id))).toMatchObject({ kind: 'rejected', reason: 'lease-not-found' });
    const e = await f.one(expire(id));
    expect(e).toMatchObject({ kind: 'lease-expire' });
    expect(sm.revision()).toBe(before + 1);
  });

  it('a txn putting with an unknown lease applies nothing', async () => {
    const { sm } = await fresh();
    const f = new Feeder(sm);
    const r = await f.one({ txn: { compare: [], success: [{ requestPut: { key: b('x'), value: b('1') } }, { requestPut: { key: b('y'), value: b('2'), lease: 9 } }], failure: [] } });
    expect(r).toMatchObject({ kind: 'rejected', reason: 'lease-not-found' });
    expect(sm.get(b('x'))).toBeUndefined();
    expect(sm.revision()).toBe(0);
  });

  it('leases and attachments survive a restart and a snapshot restore, identically whatever the batching', async () => {
    const cmds: Command[] = [grant(10), grant(20), put('a', '1', 1), put('b', '2', 2), lock('L', 1), lock('L', 2), expire(1), put('c', '3', 2)];
    const one = await fresh();
    const f1 = new Feeder(one.sm);
    for (const c of cmds) await f1.one(c);
    const two = await fresh();
    await new Feeder(two.sm).apply(...cmds);
    const s1 = await one.sm.createSnapshot();
    const s2 = await two.sm.createSnapshot();
    expect(Buffer.from(s1.data).equals(Buffer.from(s2.data))).toBe(true);
    expect(one.sm.leases.list()).toEqual([{ id: 2, ttl: 20 }]);
    // restart
    await one.db.close();
    const db = await openNodeDb(one.dir);
    dbs.push(db);
    const again = await KvStateMachine.open(db);
    expect(again.leases.list()).toEqual([{ id: 2, ttl: 20 }]);
    expect(again.leases.keysOf(2).map(str)).toEqual(['L/0000000000000002', 'b', 'c']);
    // snapshot restore into a third machine
    const three = await fresh();
    await three.sm.restoreSnapshot(s1.data);
    expect(three.sm.leases.keysOf(2).map(str)).toEqual(['L/0000000000000002', 'b', 'c']);
    expect(three.sm.get(b('c'))?.lease).toBe(2);
  });
});

describe('locks and fencing in the state machine', () => {
  it('queues contenders in log order; the holder gets the lowest token; release promotes the next; stale tokens are fenced off', async () => {
    const { sm } = await fresh();
    const f = new Feeder(sm);
    const [l1, l2, l3] = (await f.apply(grant(10), grant(10), grant(10))).map((r) => resp<{ id: number }>(r).id);
    const a = resp<{ key: Uint8Array; token: number; held: boolean }>(await f.one(lock('job', l1!)));
    const bq = resp<{ key: Uint8Array; token: number; held: boolean }>(await f.one(lock('job', l2!)));
    const c = resp<{ key: Uint8Array; token: number; held: boolean }>(await f.one(lock('job', l3!)));
    expect(str(a.key)).toBe(`job/${l1!.toString(16).padStart(16, '0')}`);
    expect([a.held, bq.held, c.held]).toEqual([true, false, false]);
    expect(a.token).toBeLessThan(bq.token);
    expect(bq.token).toBeLessThan(c.token);
    // idempotent: same lease, same place and token
    expect(resp<{ token: number }>(await f.one(lock('job', l1!))).token).toBe(a.token);
    // a lock named "job/x" is a different lock
    expect(resp<{ held: boolean }>(await f.one(lock('job/x', l3!))).held).toBe(true);
    // the holder's guarded write applies
    expect(await f.one(put('out', 'A', 0, { lock: 'job', token: a.token }))).toMatchObject({ kind: 'put' });
    // a waiter's token is not current
    expect(await f.one(put('out', 'B', 0, { lock: 'job', token: bq.token }))).toMatchObject({ kind: 'rejected', reason: 'stale-fencing-token' });
    // the holder's lease expires: b holds now; a's (paused) write is fenced off
    await f.one(expire(l1!));
    expect((await sm.lockContenders(b('job'))).map((kv) => kv.createRevision)).toEqual([bq.token, c.token]);
    const stale = await f.one(put('out', 'A-late', 0, { lock: 'job', token: a.token }));
    expect(stale).toMatchObject({ kind: 'rejected', reason: 'stale-fencing-token' });
    expect((stale as { error: string }).error).toContain('stale fencing token');
    expect(str(sm.get(b('out'))?.value)).toBe('A');
    expect(await f.one(put('out', 'B', 0, { lock: 'job', token: bq.token }))).toMatchObject({ kind: 'put' });
    // a txn is guarded as a whole
    const t = await f.one({ txn: { compare: [], success: [{ requestPut: { key: b('out'), value: b('A-txn') } }], failure: [], fence: { lock: b('job'), token: a.token } } });
    expect(t).toMatchObject({ kind: 'rejected', reason: 'stale-fencing-token' });
    // unlock (delete) promotes c; after everything is released nobody's token works
    await f.one(del(`job/${l2!.toString(16).padStart(16, '0')}`));
    expect((await sm.lockContenders(b('job')))[0]?.createRevision).toBe(c.token);
    await f.one(revoke(l3!));
    expect(await sm.lockContenders(b('job'))).toEqual([]);
    expect(await f.one(put('out', 'C', 0, { lock: 'job', token: c.token }))).toMatchObject({ kind: 'rejected', reason: 'stale-fencing-token' });
  });

  it('bad input: empty lock name, no lease, unknown lease, empty fence', async () => {
    const { sm } = await fresh();
    const f = new Feeder(sm);
    expect(await f.one(lock('', 1))).toMatchObject({ kind: 'invalid' });
    expect(await f.one(lock('x', 0))).toMatchObject({ kind: 'invalid' });
    expect(await f.one(lock('x', 5))).toMatchObject({ kind: 'rejected', reason: 'lease-not-found' });
    expect(await f.one(put('k', 'v', 0, { lock: '', token: 1 }))).toMatchObject({ kind: 'invalid' });
    expect(await f.one(put('k', 'v', 0, { lock: 'x', token: 0 }))).toMatchObject({ kind: 'invalid' });
    expect(sm.revision()).toBe(0);
  });
});
