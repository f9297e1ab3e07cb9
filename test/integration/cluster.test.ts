// Real processes on loopback: 3 kvd nodes, real gRPC and LevelDB, kill -9 of the leader in
// the middle of concurrent writes. Every acknowledged write must survive, on the new leader
// and on the restarted node.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster, type ProcNode } from './process-cluster.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const WRITERS = 16;
const WRITE_PHASE_MS = 3_000;

describe('3-node cluster of real processes', () => {
  const cluster = new ProcessCluster(3);
  let leader: ProcNode;

  beforeAll(async () => {
    cluster.startAll();
    leader = await cluster.waitForLeader(20_000);
  }, 30_000);

  afterAll(async () => {
    await cluster.stopAll();
  });

  it('rejects bad input with clear statuses and stays up', async () => {
    const empty = await cluster.call(leader.clientAddr, 'kv', 'Put', { key: new Uint8Array(0), value: enc.encode('x') });
    expect(empty.ok).toBe(false);
    if (!empty.ok) expect(empty.error).toMatchObject({ code: 3, details: 'key must not be empty' });
    const big = await cluster.call(leader.clientAddr, 'kv', 'Put', { key: enc.encode('big'), value: new Uint8Array(1024 * 1024 + 1) });
    expect(big.ok).toBe(false);
    if (!big.ok) expect(big.error.code).toBe(8); // RESOURCE_EXHAUSTED
    const follower = cluster.nodes.find((n) => n !== leader)!;
    // A follower can only hint at a leader it has heard from.
    await waitUntil(async () => Number((await cluster.status(follower))?.leaderId) === leader.id, 10_000);
    const onFollower = await cluster.call(follower.clientAddr, 'kv', 'Put', { key: enc.encode('k'), value: enc.encode('v') });
    expect(onFollower.ok).toBe(false);
    if (!onFollower.ok) expect(onFollower.error).toMatchObject({ code: 14, leaderAddr: leader.clientAddr });
    expect((await cluster.status(leader))?.role).toBe('LEADER');
  });

  it('keeps every acknowledged write through kill -9 of the leader and its restart', async () => {
    const acked = new Map<string, string>();
    let target = leader.clientAddr;
    const stopAt = Date.now() + WRITE_PHASE_MS;
    let killed: ProcNode | undefined;
    const killer = setTimeout(() => {
      killed = leader;
      cluster.kill9(leader);
    }, WRITE_PHASE_MS / 3);
    await Promise.all(
      Array.from({ length: WRITERS }, async (_, w) => {
        for (let i = 0; Date.now() < stopAt; i++) {
          const key = `w${w}-${i}`;
          const value = `v${i}`;
          const r = await cluster.call(target, 'kv', 'Put', { key: enc.encode(key), value: enc.encode(value) }, 1000);
          if (r.ok) {
            acked.set(key, value);
          } else {
            if (r.error.leaderAddr) target = r.error.leaderAddr;
            else target = cluster.nodes[(cluster.nodes.findIndex((n) => n.clientAddr === target) + 1) % 3]!.clientAddr;
            await new Promise((res) => setTimeout(res, 20));
          }
        }
      }),
    );
    clearTimeout(killer);
    expect(killed).toBeDefined();
    expect(acked.size).toBeGreaterThan(50);
    const survivors = cluster.nodes.filter((n) => n !== killed);
    const newLeader = await cluster.waitForLeader(10_000, survivors);
    expect(newLeader).not.toBe(killed);

    const missing = await missingKeys(cluster, newLeader, acked);
    expect(missing, `acknowledged writes lost on the new leader`).toEqual([]);

    cluster.start(killed!);
    const leaderStatus = await cluster.status(newLeader);
    await waitUntil(async () => ((await cluster.status(killed!))?.appliedIndex ?? 0) >= leaderStatus!.commitIndex, 15_000);
    const missingOnRestarted = await missingKeys(cluster, killed!, acked);
    expect(missingOnRestarted, `acknowledged writes lost on the restarted node`).toEqual([]);
  }, 60_000);

  it('refuses a second kvd on the same data directory', async () => {
    const n = cluster.nodes[0]!;
    const clash = { ...n, clientAddr: '127.0.0.1:0', peerAddr: '127.0.0.1:0', stderr: '', proc: undefined };
    const proc = cluster.start(clash);
    const code = await new Promise<number | null>((r) => proc.once('exit', r));
    expect(code).toBe(1);
    expect(clash.stderr).toMatch(/in use by another process/);
  }, 20_000);
});

async function missingKeys(cluster: ProcessCluster, n: ProcNode, acked: Map<string, string>): Promise<string[]> {
  const missing: string[] = [];
  const entries = [...acked];
  // Linearizable gets served by n itself (a follower asks the leader for the read index).
  for (let i = 0; i < entries.length; i += 64) {
    const chunk = entries.slice(i, i + 64);
    const results = await Promise.all(chunk.map(([k]) => getVia(cluster, n, k)));
    chunk.forEach(([k, v], j) => {
      if (results[j] !== v) missing.push(`${k}=${v} (got ${results[j]})`);
    });
  }
  return missing;
}

async function getVia(cluster: ProcessCluster, n: ProcNode, key: string): Promise<string | undefined> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = await cluster.call<{ kv?: { value: Uint8Array } | null; header: { servedBy: number } }>(n.clientAddr, 'kv', 'Get', { key: enc.encode(key) }, 3000);
    if (r.ok) return r.value.kv ? dec.decode(r.value.kv.value) : undefined;
    await new Promise((res) => setTimeout(res, 100));
  }
  return 'unreachable';
}

async function waitUntil(cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}
