// Real processes: a wiped node rejoins through a snapshot; a 4th node joins as a learner, is
// promoted, and the old leader is removed, while a writer keeps going. No acknowledged write
// may be lost and the cluster must keep serving.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster, type ProcNode } from './process-cluster.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
// Snapshot often and keep few entries behind it, so a rejoining node needs a snapshot.
const NODE_FLAGS = ['--snapshot-entries', '40', '--compaction-lag', '5'];

interface Member {
  id: number;
  isLearner: boolean;
}

describe('membership and snapshots with real processes', () => {
  const cluster = new ProcessCluster(3);
  const acked = new Map<string, string>();
  let writes = 0;

  beforeAll(async () => {
    for (const n of cluster.nodes) cluster.start(n, NODE_FLAGS);
    await cluster.waitForLeader(20_000);
  }, 30_000);

  afterAll(async () => {
    await cluster.stopAll();
  });

  /** Writes `count` keys through whoever leads, following hints; records what was acked. */
  async function writeKeys(count: number, among: ProcNode[]): Promise<void> {
    let target = (await cluster.waitForLeader(10_000, among)).clientAddr;
    for (let i = 0; i < count; ) {
      const key = `k${writes}`;
      const r = await cluster.call(target, 'kv', 'Put', { key: enc.encode(key), value: enc.encode(`v${writes}`) }, 2000);
      if (r.ok) {
        acked.set(key, `v${writes}`);
        writes++;
        i++;
        continue;
      }
      target = r.error.leaderAddr ?? (await cluster.waitForLeader(10_000, among)).clientAddr;
    }
  }

  async function assertAllAcked(n: ProcNode): Promise<void> {
    const missing: string[] = [];
    for (const [k, v] of acked) {
      const r = await cluster.call<{ kv?: { value: Uint8Array } | null }>(n.clientAddr, 'kv', 'Get', { key: enc.encode(k) }, 3000);
      const got = r.ok && r.value.kv ? dec.decode(r.value.kv.value) : undefined;
      if (got !== v) missing.push(`${k}: want ${v}, got ${got}`);
    }
    expect(missing.slice(0, 5), `node ${n.id} misses ${missing.length} acknowledged writes`).toEqual([]);
  }

  async function waitCaughtUp(n: ProcNode, leader: ProcNode): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const [ls, ns] = [await cluster.status(leader), await cluster.status(n)];
      if (ls && ns && ns.appliedIndex >= ls.commitIndex) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`node ${n.id} did not catch up with leader ${leader.id}; its stderr:\n${n.stderr.slice(-2000)}`);
  }

  it('a wiped node is refused under its old id, then rejoins under a new id via snapshot', async () => {
    await writeKeys(120, cluster.nodes);
    const leader = await cluster.waitForLeader(10_000);
    const victim = cluster.nodes.find((n) => n !== leader)!;
    cluster.kill9(victim);
    await new Promise((r) => victim.proc!.once('exit', r));
    rmSync(victim.dataDir, { recursive: true, force: true });
    await writeKeys(60, cluster.nodes.filter((n) => n !== victim));

    // Same id, empty disk: it must stop loudly instead of serving with a lost log.
    const sameId = cluster.start(victim, [...NODE_FLAGS, '--join']);
    const code = await new Promise<number | null>((r) => sameId.once('exit', r));
    expect(code).not.toBe(0);
    expect(victim.stderr).toMatch(/log was lost or truncated/);

    // The operator's path: remove the old member, add the machine back under a new id.
    const removed = await cluster.call(leader.clientAddr, 'cluster', 'MemberRemove', { id: victim.id }, 5000);
    expect(removed.ok, JSON.stringify(removed)).toBe(true);
    rmSync(victim.dataDir, { recursive: true, force: true });
    const reborn: ProcNode = { ...victim, id: 5, proc: undefined, stderr: '' };
    const added = await cluster.call(leader.clientAddr, 'cluster', 'MemberAdd', { id: 5, peerAddr: reborn.peerAddr, clientAddr: reborn.clientAddr }, 5000);
    expect(added.ok, JSON.stringify(added)).toBe(true);
    cluster.nodes[cluster.nodes.indexOf(victim)] = reborn;
    cluster.start(reborn, [...NODE_FLAGS, '--join']);
    await writeKeys(30, cluster.nodes);
    await waitCaughtUp(reborn, leader);
    await assertAllAcked(reborn);
    expect(reborn.stderr).not.toMatch(/fatal/i);
  }, 90_000);

  it('adds a learner, promotes it, removes the old leader, and keeps serving', async () => {
    const leader = await cluster.waitForLeader(10_000);
    const base = Number(cluster.nodes[2]!.clientAddr.split(':')[1]) - 3;
    // A learner that never came up is not promoted (it would raise the quorum for nothing).
    const ghost = await cluster.call(leader.clientAddr, 'cluster', 'MemberAddLearner', { id: 9, peerAddr: `127.0.0.1:${base + 109}`, clientAddr: `127.0.0.1:${base + 9}` }, 5000);
    expect(ghost.ok, JSON.stringify(ghost)).toBe(true);
    const early = await cluster.call(leader.clientAddr, 'cluster', 'MemberPromote', { id: 9 }, 5000);
    expect(early.ok ? 0 : early.error.code, JSON.stringify(early)).toBe(9); // FAILED_PRECONDITION
    if (!early.ok) expect(early.error.details).toMatch(/learner 9 has not caught up/);
    const dropGhost = await cluster.call(leader.clientAddr, 'cluster', 'MemberRemove', { id: 9 }, 5000);
    expect(dropGhost.ok, JSON.stringify(dropGhost)).toBe(true);
    const fourth: ProcNode = { id: 4, clientAddr: `127.0.0.1:${base + 4}`, peerAddr: `127.0.0.1:${base + 104}`, dataDir: join(cluster.root, 'n4'), stderr: '' };
    const add = await cluster.call<{ members: Member[] }>(leader.clientAddr, 'cluster', 'MemberAddLearner', { id: 4, peerAddr: fourth.peerAddr, clientAddr: fourth.clientAddr }, 5000);
    expect(add.ok, JSON.stringify(add)).toBe(true);
    cluster.nodes.push(fourth);
    cluster.start(fourth, [...NODE_FLAGS, '--join']);
    await writeKeys(30, cluster.nodes);
    await waitCaughtUp(fourth, leader);

    const promote = await cluster.call<{ members: Member[] }>(leader.clientAddr, 'cluster', 'MemberPromote', { id: 4 }, 5000);
    expect(promote.ok, JSON.stringify(promote)).toBe(true);
    if (promote.ok) expect(promote.value.members.find((m) => Number(m.id) === 4)?.isLearner).toBe(false);

    const remove = await cluster.call(leader.clientAddr, 'cluster', 'MemberRemove', { id: leader.id }, 5000);
    expect(remove.ok, JSON.stringify(remove)).toBe(true);
    const rest = cluster.nodes.filter((n) => n !== leader);
    const newLeader = await cluster.waitForLeader(15_000, rest);
    expect(newLeader.id).not.toBe(leader.id);
    await writeKeys(30, rest);
    const list = await cluster.call<{ members: Member[] }>(newLeader.clientAddr, 'cluster', 'MemberList', {}, 3000);
    expect(list.ok && list.value.members.map((m) => Number(m.id)).sort()).toEqual(rest.map((n) => n.id).sort());
    await assertAllAcked(fourth);

    const unknown = await cluster.call(newLeader.clientAddr, 'cluster', 'MemberRemove', { id: 99 }, 3000);
    expect(unknown.ok ? 0 : unknown.error.code).toBe(5); // NOT_FOUND

    // With one of three voters down, a change that would leave fewer reachable voters than its
    // quorum is refused (etcd's strict reconfiguration check); removing the dead one is not.
    const lead = await cluster.waitForLeader(10_000, rest);
    const [down, live] = rest.filter((n) => n !== lead);
    await cluster.kill9AndWait(down!);
    await new Promise((r) => setTimeout(r, 2_500)); // > one election timeout (1 s): it no longer counts as reachable
    const addVoter = await cluster.call(lead.clientAddr, 'cluster', 'MemberAdd', { id: 7, peerAddr: `127.0.0.1:${base + 107}`, clientAddr: `127.0.0.1:${base + 7}` }, 5000);
    expect(addVoter.ok ? 0 : addVoter.error.code, JSON.stringify(addVoter)).toBe(9);
    if (!addVoter.ok) expect(addVoter.error.details).toMatch(/would leave 2 reachable voters of 4, below the quorum of 3/);
    const removeLive = await cluster.call(lead.clientAddr, 'cluster', 'MemberRemove', { id: live!.id }, 5000);
    expect(removeLive.ok ? 0 : removeLive.error.code, JSON.stringify(removeLive)).toBe(9);
    if (!removeLive.ok) expect(removeLive.error.details).toMatch(new RegExp(`removing member ${live!.id} would leave 1 reachable voter of 2`));
    const learnerOk = await cluster.call(lead.clientAddr, 'cluster', 'MemberAddLearner', { id: 8, peerAddr: `127.0.0.1:${base + 108}`, clientAddr: `127.0.0.1:${base + 8}` }, 5000);
    expect(learnerOk.ok, JSON.stringify(learnerOk)).toBe(true);
    const removeDead = await cluster.call(lead.clientAddr, 'cluster', 'MemberRemove', { id: down!.id }, 5000);
    expect(removeDead.ok, JSON.stringify(removeDead)).toBe(true);
    const after = await cluster.call<{ members: Member[] }>(lead.clientAddr, 'cluster', 'MemberList', {}, 3000);
    expect(after.ok && after.value.members.filter((m) => !m.isLearner).map((m) => Number(m.id)).sort()).toEqual([lead.id, live!.id].sort());
  }, 120_000);
});
