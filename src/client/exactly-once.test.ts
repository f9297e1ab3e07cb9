// Exactly-once writes end to end: counter increments from many concurrent clients while
// replication is slower than the client's per-attempt timeout (so attempts time out after
// their entry was proposed, and the SDK retries with the same idempotency key), and then the
// leader is stopped. The state machine's dedup table must make every acknowledged increment
// count once, and never more than once.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, KvClientError, text } from './index.js';
import { startTestCluster, type TestCluster } from './test-cluster.js';

const WORKERS = 24;
const ADDS_PER_WORKER = 6;

describe('exactly-once writes through a leader failure', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await startTestCluster({ size: 3, tickIntervalMs: 20 });
    await cluster.waitForLeader();
  }, 30_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it('every acknowledged add counts exactly once; unknown outcomes at most once', async () => {
    const client = new KvClient({ endpoints: cluster.endpoints, defaultTimeoutMs: 8_000, attemptTimeoutMs: 60, maxRetries: 60 });
    const leaderId = await cluster.waitForLeader();
    const leaderAddr = cluster.specs.find((s) => s.id === leaderId)!.clientAddr;
    // Every peer message from the leader waits 120 ms (under the 200 ms election timeout): a commit takes longer than an attempt.
    await client.setFaults(leaderAddr, { delayMs: 120 });
    let acked = 0;
    let unknown = 0;
    const stopper = setTimeout(() => void cluster.stopNode(leaderId), 1_500);
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        for (let i = 0; i < ADDS_PER_WORKER; i++) {
          try {
            await client.add('ctr', 1);
            acked++;
          } catch (e) {
            if (!(e instanceof KvClientError)) throw e;
            unknown++;
          }
        }
      }),
    );
    clearTimeout(stopper);
    await cluster.waitForLeader();
    const value = Number(text((await client.get('ctr')).value!));
    client.close();
    expect(acked + unknown).toBe(WORKERS * ADDS_PER_WORKER);
    expect(acked).toBeGreaterThan(WORKERS * ADDS_PER_WORKER / 2);
    expect(value, `value ${value}, acked ${acked}, unknown ${unknown}`).toBeGreaterThanOrEqual(acked);
    expect(value, `a retried add was applied twice: value ${value}, acked ${acked}, unknown ${unknown}`).toBeLessThanOrEqual(acked + unknown);
  }, 60_000);
});
