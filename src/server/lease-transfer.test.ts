// LEASE reads during leadership transfers (the etcd-io/raft#99 trap: a transfer's forced
// election ignores the followers' lease promise, so the old leader must give up its lease the
// moment the transfer starts). Readers hammer every node with LEASE reads while a writer keeps
// writing and the leadership moves around; the recorded history must be linearizable.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, KvClientError, text } from '../client/index.js';
import { startTestCluster, type TestCluster } from '../client/test-cluster.js';
import type { History } from '../check/history.js';
import { runCheck } from '../check/run.js';

const TRANSFERS = 4;

describe('LEASE reads across leadership transfers', () => {
  let cluster: TestCluster;
  let client: KvClient;

  beforeAll(async () => {
    cluster = await startTestCluster({ size: 3, tickIntervalMs: 20 });
    await cluster.waitForLeader();
    client = new KvClient({ endpoints: cluster.endpoints, defaultTimeoutMs: 2_000 });
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await cluster?.stop();
  });

  it('never yields a stale read: the history is linearizable', async () => {
    const history: History = [];
    const record = (process: number, type: 'invoke' | 'ok' | 'fail' | 'info', f: string, value: unknown): void => {
      history.push({ index: history.length, process, type, f, key: 'x', value });
    };
    let running = true;
    let nextProcess = 100;
    await client.put('x', '0');

    const writer = (async () => {
      let process = 1;
      for (let v = 1; running; v++) {
        record(process, 'invoke', 'write', v);
        try {
          await client.put('x', String(v));
          record(process, 'ok', 'write', v);
        } catch {
          record(process, 'info', 'write', v);
          process = nextProcess++; // a process never reuses its id after an unknown outcome
        }
      }
    })();
    const readers = cluster.endpoints.map(async (endpoint, i) => {
      const process = 10 + i;
      while (running) {
        record(process, 'invoke', 'read', null);
        try {
          const r = await client.get('x', { consistency: 'lease', endpoint, timeoutMs: 500 });
          record(process, 'ok', 'read', Number(text(r.value!)));
        } catch (e) {
          if (!(e instanceof KvClientError)) throw e;
          record(process, 'fail', 'read', null); // a failed read changes nothing
        }
      }
    });

    for (let t = 0; t < TRANSFERS; t++) {
      await new Promise((r) => setTimeout(r, 300));
      const leader = await cluster.waitForLeader();
      const target = cluster.specs.map((s) => s.id).find((id) => id !== leader)!;
      await client.leaderTransfer(target).catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 300));
    running = false;
    await Promise.all([writer, ...readers]);

    const reads = history.filter((op) => op.type === 'ok' && op.f === 'read').length;
    expect(reads).toBeGreaterThan(50);
    const report = runCheck({ history, format: 'jsonl', model: 'register', initial: 0 });
    expect(report.valid, report.explanations.join('\n')).toBe(true);
  }, 60_000);

  it('the old leader gives up its lease when the transfer starts, even if it never hears of the new term', async () => {
    const addr = (id: number): string => cluster.specs.find((x) => x.id === id)!.clientAddr;
    for (let attempt = 0; attempt < 3; attempt++) {
      const old = await cluster.waitForLeader();
      const [target, third] = cluster.specs.map((x) => x.id).filter((id) => id !== old) as [number, number];
      await client.put('t', `before-${attempt}`);
      await new Promise((r) => setTimeout(r, 100)); // let every follower catch up (TimeoutNow goes out at once)
      // Nothing reaches the old leader from now on: no acks renew its lease, and it never learns
      // that the transfer's forced election made a new leader.
      await client.setFaults(addr(target), { partitionFrom: [old], partitionDirection: 1 });
      await client.setFaults(addr(third), { partitionFrom: [old], partitionDirection: 1 });
      try {
        // The old leader's RPC waits to see the new leader, which it never will: do not await it.
        const leaderClient = new KvClient({ endpoints: [addr(old)], defaultTimeoutMs: 1_000, maxRetries: 0 });
        const transfer = leaderClient.leaderTransfer(target).catch(() => undefined);
        const until = Date.now() + 1_000;
        while (!cluster.nodes.get(target)!.host.isLeader() && Date.now() < until) await new Promise((r) => setTimeout(r, 2));
        void transfer.finally(() => leaderClient.close());
        const fresh = new KvClient({ endpoints: [addr(target)], defaultTimeoutMs: 1_000 });
        const wrote = await fresh.put('t', `after-${attempt}`).then(() => true, () => false);
        fresh.close();
        if (!wrote) continue; // the new leader was not ready in time: try again
        const r = await client.get('t', { consistency: 'lease', endpoint: addr(old), timeoutMs: 200 }).then(
          (g) => ({ value: text(g.value!), used: g.header.consistencyUsed }),
          () => undefined,
        );
        expect(r?.value === `before-${attempt}`, `stale LEASE read from the old leader: ${JSON.stringify(r)}`).toBe(false);
        return;
      } finally {
        await client.clearFaults(addr(target));
        await client.clearFaults(addr(third));
      }
    }
    expect.fail('the transfer never produced a new leader that accepted a write');
  }, 30_000);
});

