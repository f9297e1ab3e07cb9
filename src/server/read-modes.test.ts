// Per-call read consistency on a real in-process 3-node cluster: what each mode promises,
// and what it refuses to do.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Consistency, KvClient, KvClientError, StatusCode, text } from '../client/index.js';
import { startTestCluster, type TestCluster } from '../client/test-cluster.js';

const TICK_MS = 20;

describe('read consistency modes', () => {
  let cluster: TestCluster;
  let client: KvClient;
  let leaderId: number;
  let followers: number[];

  beforeAll(async () => {
    cluster = await startTestCluster({ size: 3, tickIntervalMs: TICK_MS, overrides: { sessionWaitMs: 200 } });
    leaderId = await cluster.waitForLeader();
    followers = cluster.specs.map((s) => s.id).filter((id) => id !== leaderId);
    client = new KvClient({ endpoints: cluster.endpoints, defaultTimeoutMs: 3_000 });
    // The lease needs an entry of the leader's term committed and a heartbeat quorum.
    await client.put('warmup', 'x');
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await cluster?.stop();
  });

  const addr = (id: number): string => cluster.specs.find((s) => s.id === id)!.clientAddr;
  const host = (id: number) => cluster.nodes.get(id)!.host;

  it('LEASE is served from the leader lease; a follower falls back to ReadIndex', async () => {
    await client.put('lease-k', 'v1');
    const onLeader = await client.get('lease-k', { consistency: 'lease' });
    expect(text(onLeader.value!)).toBe('v1');
    expect(onLeader.header.consistencyUsed).toBe(Consistency.Lease);
    expect(onLeader.header.servedBy).toBe(leaderId);
    const onFollower = await client.get('lease-k', { consistency: 'lease', endpoint: addr(followers[0]!) });
    expect(onFollower.header.consistencyUsed).toBe(Consistency.Linearizable);
    expect(onFollower.header.servedBy).toBe(followers[0]);
  });

  it('a process pause longer than the lease voids it even though the tick-based lease still holds', async () => {
    await client.put('pause-k', 'v');
    const h = host(leaderId);
    expect(h.leaseReadIndex()).toBeDefined();
    // Block the event loop (every in-process node stops ticking): the core's tick count does
    // not move, so its lease still looks valid, but the monotonic clock says it is long gone.
    const leaseMs = (h.cfg.electionTimeoutTicks - h.cfg.leaseMarginTicks) * TICK_MS;
    const until = performance.now() + leaseMs * 2;
    while (performance.now() < until);
    expect(h.rawNode.leaseRemainingTicks()).toBeGreaterThan(0);
    expect(h.leaseReadIndex()).toBeUndefined();
  });

  it('SESSION gives read-your-writes on any node, and causality through a token', async () => {
    const s1 = client.session();
    const w = await s1.put('sess-k', 'mine');
    expect(s1.minRevision).toBe(w.revision);
    for (const f of followers) {
      const r = await s1.get('sess-k', { endpoint: addr(f) });
      expect(text(r.value!)).toBe('mine');
      expect(r.header.servedBy).toBe(f);
      expect(r.header.revision).toBeGreaterThanOrEqual(w.revision);
    }
    const s2 = client.session(s1.token());
    expect(s2.minRevision).toBe(s1.minRevision);
    expect(() => client.session('garbage')).toThrow(KvClientError);
  });

  it('a partitioned follower never serves a SESSION read older than the session, but STALE may', async () => {
    const f = followers[1]!;
    const s = client.session();
    await s.put('part-k', 'old');
    // A session read on f waits until f applied the session's write (followers learn the commit
    // index from the next append, or a held commit notice: commitNoticeDelayMs).
    expect(text((await s.get('part-k', { endpoint: addr(f) })).value!)).toBe('old');
    await client.setFaults(addr(f), { partitionFrom: cluster.specs.map((x) => x.id).filter((id) => id !== f) });
    try {
      await s.put('part-k', 'new');
      const err = await s.get('part-k', { endpoint: addr(f), timeoutMs: 1_500 }).then(
        () => undefined,
        (e: unknown) => e as KvClientError,
      );
      expect(err, 'a session read must not return the old value').toBeInstanceOf(KvClientError);
      expect([StatusCode.UNAVAILABLE, StatusCode.DEADLINE_EXCEEDED]).toContain(err!.code);

      const stale = await client.get('part-k', { consistency: 'stale', endpoint: addr(f) });
      expect(text(stale.value!)).toBe('old');
      expect(stale.header.consistencyUsed).toBe(Consistency.Stale);

      await new Promise((r) => setTimeout(r, 300));
      const bounded = await client.get('part-k', { consistency: 'stale', maxStalenessMs: 100, endpoint: addr(f) }).then(
        () => undefined,
        (e: unknown) => e as KvClientError,
      );
      expect(bounded?.code).toBe(StatusCode.FAILED_PRECONDITION);
      expect(bounded?.details).toMatch(/has not heard from a leader for \d+ ms, over max_staleness_ms=100/);
    } finally {
      await client.clearFaults(addr(f));
    }
  }, 20_000);

  it('STALE with a bound is served by a healthy follower, with its staleness in the header', async () => {
    await new Promise((r) => setTimeout(r, 200));
    const r = await client.get('warmup', { consistency: 'stale', maxStalenessMs: 1_000, endpoint: addr(followers[0]!) });
    expect(text(r.value!)).toBe('x');
    expect(r.header.stalenessMs).toBeLessThanOrEqual(1_000);
  });

  it('rejects a session token from the future after falling back to the leader', async () => {
    const err = await client.get('warmup', { consistency: 'session', minRevision: 1_000_000, timeoutMs: 2_000 }).then(
      () => undefined,
      (e: unknown) => e as KvClientError,
    );
    expect(err?.code).toBe(StatusCode.FAILED_PRECONDITION);
    expect(err?.details).toMatch(/ahead of the cluster's revision/);
  });
});

describe('LEASE reads and clock drift (test-only clock rate)', () => {
  let cluster: TestCluster;
  let client: KvClient;

  beforeAll(async () => {
    cluster = await startTestCluster({ size: 3, tickIntervalMs: TICK_MS });
    await cluster.waitForLeader();
    client = new KvClient({ endpoints: cluster.endpoints, defaultTimeoutMs: 3_000 });
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await cluster?.stop();
  });

  const addr = (id: number): string => cluster.specs.find((s) => s.id === id)!.clientAddr;
  const others = (id: number): number[] => cluster.specs.map((s) => s.id).filter((x) => x !== id);

  /**
   * Cuts the leader off, waits for a new leader among the others, writes `next` there, then
   * asks the old leader for a LEASE read. Returns what the old leader answered.
   */
  async function deposeAndRead(key: string, next: string): Promise<{ value?: string; used?: Consistency; error?: StatusCode }> {
    const old = await cluster.waitForLeader();
    await client.setFaults(addr(old), { partitionFrom: others(old) });
    let fresh: KvClient | undefined;
    try {
      // Watch the in-process hosts directly so the write lands as soon as a new leader exists.
      const deadline = Date.now() + 5_000;
      let lead: number | undefined;
      while (lead === undefined && Date.now() < deadline) {
        lead = others(old).find((id) => cluster.nodes.get(id)!.host.isLeader());
        if (lead === undefined) await new Promise((r) => setTimeout(r, 2));
      }
      if (lead === undefined) throw new Error('no new leader within 5 s');
      fresh = new KvClient({ endpoints: [addr(lead)], defaultTimeoutMs: 2_000 });
      await fresh.put(key, next);
      return await client.get(key, { consistency: 'lease', endpoint: addr(old), timeoutMs: 300 }).then(
        (g) => ({ value: g.value === undefined ? undefined : text(g.value), used: g.header.consistencyUsed }),
        (e: KvClientError) => ({ error: e.code }),
      );
    } finally {
      fresh?.close();
      await client.clearFaults(addr(old));
      await client.setClockRate(addr(old), 1);
    }
  }

  it('with honest clocks a deposed leader never serves a stale LEASE read', async () => {
    await client.put('drift-k', 'v1');
    const r = await deposeAndRead('drift-k', 'v2');
    expect(r.used === Consistency.Lease && r.value === 'v1', JSON.stringify(r)).toBe(false);
  }, 20_000);

  it('a leader whose clock runs ~7x slow (beyond the lease margin) does serve one: the drift bound matters', async () => {
    // The window (between the new leader's first write and the slow lease's end) is a few
    // hundred ms of real time; on a loaded machine one attempt can miss it, so allow three.
    const seen: unknown[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const key = `drift-k${attempt}`;
      await client.put(key, 'v1');
      const leader = await cluster.waitForLeader();
      await client.setClockRate(addr(leader), 0.15);
      await new Promise((r) => setTimeout(r, 300)); // heartbeat rounds at the slow rate
      const r = await deposeAndRead(key, 'v2');
      seen.push(r);
      if (r.used === Consistency.Lease && r.value === 'v1') return;
    }
    expect.fail(`the slow-clocked old leader never served a stale LEASE read: ${JSON.stringify(seen)}`);
  }, 40_000);

  it('rejects clock rates outside [0.1, 10]', async () => {
    const err = await client.setClockRate(cluster.endpoints[0]!, 50).then(
      () => undefined,
      (e: KvClientError) => e,
    );
    expect(err?.code).toBe(StatusCode.INVALID_ARGUMENT);
  });
});
