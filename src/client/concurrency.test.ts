// Leases, locks with fencing and elections end to end on an in-process 3-node cluster.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, KvClientError, StatusCode, text } from './kv-client.js';
import { MAX_LEASE_TTL_SECONDS } from './proto.js';
import { startTestCluster, type TestCluster } from './test-cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (e) {
    if (e instanceof KvClientError) return e.codeName;
    throw e;
  }
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('leases, locks and elections', () => {
  let cluster: TestCluster;
  let client: KvClient;

  beforeAll(async () => {
    cluster = await startTestCluster({ size: 3 });
    await cluster.waitForLeader();
    client = new KvClient({ endpoints: cluster.endpoints, defaultTimeoutMs: 8_000 });
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await cluster?.stop();
  });

  it('lease contract: grant, ttl, keepalive, revoke; bad input', async () => {
    const { id, ttl } = await client.lease.grant(30);
    expect(ttl).toBe(30);
    const t = await client.lease.ttl(id);
    expect(t.grantedTtl).toBe(30);
    expect(t.ttl).toBeGreaterThan(25);
    await client.put('lc/a', '1', { lease: id });
    expect((await client.get('lc/a')).kv?.lease).toBe(id);
    expect((await client.lease.ttl(id, { keys: true })).keys.map(text)).toEqual(['lc/a']);
    expect(await client.lease.keepAliveOnce(id)).toBe(30);
    // bad input
    expect(await codeOf(client.lease.grant(0))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(client.invoke('Lease', 'Grant', { ttl: 0 }, 'write'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(client.lease.grant(MAX_LEASE_TTL_SECONDS + 1))).toBe('OUT_OF_RANGE');
    expect(await codeOf(client.lease.grant(10, { id }))).toBe('FAILED_PRECONDITION');
    expect(await codeOf(client.lease.revoke(987654321))).toBe('NOT_FOUND');
    expect(await codeOf(client.lease.ttl(987654321))).toBe('NOT_FOUND');
    expect(await codeOf(client.lease.keepAliveOnce(987654321))).toBe('NOT_FOUND');
    expect(await codeOf(client.put('lc/b', 'x', { lease: 987654321 }))).toBe('NOT_FOUND');
    expect((await client.get('lc/b')).kv).toBeUndefined();
    // revoke deletes the keys
    await client.lease.revoke(id);
    expect((await client.get('lc/a')).kv).toBeUndefined();
    expect(await codeOf(client.lease.ttl(id))).toBe('NOT_FOUND');
  });

  it('lease expiry removes the attached keys at the same revision on every replica; keepAlive keeps them', async () => {
    const short = await client.lease.grant(1);
    const kept = await client.lease.grant(1);
    const ka = client.lease.keepAlive(kept.id);
    await ka.ready;
    const p = await client.put('exp/a', '1', { lease: short.id });
    await client.put('exp/b', '2', { lease: short.id });
    await client.put('exp/kept', '3', { lease: kept.id });
    await until(async () => (await client.get('exp/a')).kv === undefined, 5_000, 'expiry');
    expect((await client.get('exp/b')).kv).toBeUndefined();
    await sleep(1_500);
    expect(text((await client.get('exp/kept')).value!)).toBe('3');
    ka.close();
    // every replica applies the expiry at the same revision
    const leader = await cluster.waitForLeader();
    const applied = cluster.nodes.get(leader)!.host.sm.appliedIndex();
    await until(() => [...cluster.nodes.values()].every((n) => n.host.sm.appliedIndex() >= applied), 5_000, 'replicas to catch up');
    const revs: number[] = [];
    for (const n of cluster.nodes.values()) {
      let r = p.revision;
      while ((await n.host.sm.getAt(new TextEncoder().encode('exp/a'), r)) !== undefined) r++;
      revs.push(r);
      expect(await n.host.sm.getAt(new TextEncoder().encode('exp/b'), r)).toBeUndefined();
      expect(await n.host.sm.getAt(new TextEncoder().encode('exp/b'), r - 1)).toBeDefined();
    }
    expect(new Set(revs).size).toBe(1);
  });

  it('locks: FIFO fairness of waiters, increasing tokens, empty name refused', async () => {
    expect(await codeOf(client.lock(''))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(client.invoke('Lock', 'Lock', { name: new Uint8Array(0), lease: 1 }, 'write'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(client.invoke('Lock', 'Lock', { name: new TextEncoder().encode('x'), lease: 987654321 }, 'write'))).toBe('NOT_FOUND');
    const first = await client.lock('fifo', { ttlSeconds: 10 });
    const order: number[] = [];
    const waiters: Array<Promise<{ i: number; token: number; release: () => Promise<void> }>> = [];
    for (let i = 0; i < 4; i++) {
      waiters.push(client.lock('fifo', { ttlSeconds: 10 }).then((h) => (order.push(i), { i, token: h.token, release: h.release })));
      await sleep(150); // enqueue in a known order
    }
    await sleep(200);
    expect(order).toEqual([]);
    await first.release();
    let prevToken = first.token;
    for (let i = 0; i < 4; i++) {
      const h = await waiters[i]!;
      expect(h.token).toBeGreaterThan(prevToken);
      prevToken = h.token;
      await sleep(100);
      expect(order).toEqual([...Array(i + 1).keys()]); // nobody later got in first
      await h.release();
    }
  }, 30_000);

  it('a queued waiter is woken by the release ahead of it, not by the 1 s re-check', async () => {
    // The server re-checks a waiter at least every 1000 ms anyway; each handoff below waits
    // 300 ms before releasing, so a waiter that missed its wake-up would take ~700 ms.
    let holder = await client.lock('wake', { ttlSeconds: 10 });
    for (let i = 0; i < 3; i++) {
      const next = client.lock('wake', { ttlSeconds: 10 });
      await sleep(300);
      const released = Date.now();
      await holder.release();
      holder = await next;
      expect(Date.now() - released, `handoff ${i}`).toBeLessThan(400);
    }
    await holder.release();
  }, 30_000);

  it('fencing: a paused former holder\'s guarded write is rejected after its lease expired and another acquired', async () => {
    // Holder A on a 1 s lease it does NOT keep alive (= paused).
    const leaseA = await client.lease.grant(1);
    const a = await client.lock('fenced', { lease: leaseA.id });
    expect((await client.put('fenced/data', 'A1', { fence: a.fence })).revision).toBeGreaterThan(0);
    // B waits, gets the lock once A's lease expires.
    const b = await client.lock('fenced', { ttlSeconds: 10 });
    expect(b.token).toBeGreaterThan(a.token);
    // A wakes up and writes with its old token: rejected, nothing changes.
    const err = await client.put('fenced/data', 'A-late', { fence: a.fence }).catch((e: unknown) => e as KvClientError);
    expect(err).toBeInstanceOf(KvClientError);
    expect((err as KvClientError).code).toBe(StatusCode.FAILED_PRECONDITION);
    expect((err as KvClientError).details).toContain('stale fencing token');
    expect(await codeOf(client.txn({ success: [{ put: { key: 'fenced/data', value: 'A-txn' } }], fence: a.fence }))).toBe('FAILED_PRECONDITION');
    expect(text((await client.get('fenced/data')).value!)).toBe('A1');
    await client.put('fenced/data', 'B1', { fence: b.fence });
    expect(text((await client.get('fenced/data')).value!)).toBe('B1');
    await b.release();
    expect(await codeOf(client.put('fenced/data', 'B-late', { fence: b.fence }))).toBe('FAILED_PRECONDITION');
  }, 20_000);

  it('elections: campaign blocks until leader, proclaim, observe sees changes, resign hands over', async () => {
    const e1 = client.election('el');
    const e2 = client.election('el');
    expect(await e1.leader()).toBeUndefined();
    const ac = new AbortController();
    const seen: Array<string | undefined> = [];
    const observer = (async () => {
      for await (const ev of client.election('el').observe({ signal: ac.signal })) seen.push(ev.leader ? text(ev.leader.value) : undefined);
    })();
    const l1 = await e1.campaign('one', { ttlSeconds: 10 });
    let e2Leads = false;
    const c2 = e2.campaign('two', { ttlSeconds: 10 }).then((r) => ((e2Leads = true), r));
    await sleep(300);
    expect(e2Leads).toBe(false);
    expect(text((await e1.leader())!.value)).toBe('one');
    await e1.proclaim('one-b');
    expect(text((await e1.leader())!.value)).toBe('one-b');
    await until(() => seen.includes('one-b'), 3_000, 'observer to see one-b');
    await e1.resign();
    const l2 = await c2;
    expect(l2.rev).toBeGreaterThan(l1.rev);
    expect(text((await e2.leader())!.value)).toBe('two');
    await until(() => seen.includes('two'), 3_000, 'observer to see two');
    // the old leader cannot proclaim
    expect(await codeOf(client.invoke('Election', 'Proclaim', { leader: { name: e1.name, key: l1.key, rev: l1.rev, lease: l1.lease }, value: new TextEncoder().encode('x') }, 'write'))).toBe(
      'FAILED_PRECONDITION',
    );
    await e2.resign();
    await until(() => seen[seen.length - 1] === undefined, 3_000, 'observer to see the vacancy');
    ac.abort();
    await observer;
    expect(seen.filter((s) => s !== undefined)).toEqual(['one', 'one-b', 'two']);
  }, 20_000);

  it('leases survive a leader failover without early expiry: the new leader restarts the countdown', async () => {
    const { id } = await client.lease.grant(3);
    await client.put('fo/k', 'v', { lease: id });
    const granted = Date.now();
    await sleep(1_500);
    const old = await cluster.waitForLeader();
    await cluster.stopNode(old);
    const next = await cluster.waitForLeader(10_000);
    expect(next).not.toBe(old);
    // Past the original deadline (3 s after grant) the key is still there: the new leader counts from its election.
    await until(() => Date.now() - granted > 3_300, 5_000, 'original deadline');
    expect(text((await client.get('fo/k')).value!)).toBe('v');
    const t = await client.lease.ttl(id);
    expect(t.ttl).toBeGreaterThan(0);
    // ...and it does expire later without keepalives.
    await until(async () => (await client.get('fo/k')).kv === undefined, 8_000, 'expiry on the new leader');
    expect(await codeOf(client.lease.ttl(id))).toBe('NOT_FOUND');
  }, 30_000);
});
