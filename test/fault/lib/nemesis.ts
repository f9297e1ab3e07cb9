// Nemeses: each one starts a fault and returns how to heal it. The scheduler runs one fault at a
// time: a quiet gap, a fault window, heal, again, until stopped; every window is recorded (for
// the report's shading and results.json) and logged into the history as a `nemesis` event.
//
// kill       kill -9 a random member or the leader; heal restarts it (same id, same data).
// pause      SIGSTOP a random member or the leader; heal sends SIGCONT.
// partition  via each node's Admin SetFaults on its peer transport (clients still reach every
//            node): majority/minority, isolate the leader, bridge, one-way (a node hears nobody).
// delay      latency + message loss on some nodes' peer transports.
// membership remove a random voter (maybe the leader) and kill it; add a fresh node under a NEW
//            id as a learner; heal promotes it once it has caught up. A removed id never returns.
// clock      TEST ONLY: one node's notion of time (Raft ticks and monotonic clock) runs slow or
//            fast via Admin SetClockRate; heal sets it back to 1. LEASE reads are promised only
//            while a leader's clock runs at >= (electionTimeoutTicks - leaseMarginTicks) /
//            electionTimeoutTicks of real time (0.8 with the defaults): windows beyond that are
//            labelled, and LEASE histories may (and should be seen to) break in them.

import { rmSync } from 'node:fs';
import type { KvClient } from '../../../src/client/index.js';
import type { ProcessCluster, ProcNode } from './cluster.js';
import type { Rng } from './rng.js';

export const NEMESIS_NAMES = ['kill', 'pause', 'partition', 'delay', 'membership', 'clock'] as const;
export type NemesisName = (typeof NEMESIS_NAMES)[number];

/** A fault window, for the report. Times are ms since the run started. */
export interface FaultWindow {
  nemesis: NemesisName;
  label: string;
  startMs: number;
  endMs?: number;
  /** Set when the fault could not be applied (or healed) as planned. */
  error?: string;
}

export interface Fault {
  label: string;
  heal(): Promise<void>;
}

export interface NemesisEnv {
  cluster: ProcessCluster;
  rng: Rng;
  /** Current members (voters and learners), maintained by the membership nemesis. */
  members: ProcNode[];
  /** An SDK client for member changes (leader-following). */
  admin(): KvClient;
  /** Extra kvd flags for nodes the nemesis starts. */
  nodeFlags: string[];
  /** Bumped whenever `members` changes, so workers refresh their clients. */
  bumpEpoch(): void;
  /** Partition shapes to draw from (default: all). */
  partitionKinds?: readonly PartitionKind[];
  /** Called when the membership changed or a node restarted. */
  log(msg: string): void;
  nextNodeId(): number;
  /** Whom pause stops: the leader always, or (default) the leader or a random member 50/50. */
  pauseTarget?: 'leader' | 'any';
  /** Shortest SIGSTOP window in ms (heal waits until it has passed). */
  pauseMinMs?: number;
  /** Clock nemesis: the rates it draws from. */
  clockRates?: number[];
  /** Clock nemesis: always the leader, always cut off after the skew. */
  clockLeaderIsolated?: boolean;
}

const PARTITION_BOTH = 0;
const PARTITION_INBOUND = 2;

export async function findLeader(env: NemesisEnv, timeoutMs = 3000): Promise<ProcNode | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const n of env.members) {
      if (!env.cluster.isRunning(n) || n.paused) continue;
      const s = await env.cluster.status(n, 300);
      if (s?.role === 'LEADER') return n;
    }
    await sleep(50);
  }
  return undefined;
}

async function pickTarget(env: NemesisEnv, leaderOnly = false): Promise<{ node: ProcNode; why: string } | undefined> {
  const up = env.members.filter((n) => env.cluster.isRunning(n) && !n.paused);
  if (up.length === 0) return undefined;
  if (leaderOnly || env.rng.next() < 0.5) {
    const leader = await findLeader(env, 1500);
    if (leader) return { node: leader, why: 'leader' };
  }
  return { node: env.rng.pick(up), why: 'random' };
}

async function setFaults(env: NemesisEnv, n: ProcNode, faults: Record<string, unknown>): Promise<string | undefined> {
  const req = { faults: { dropProbability: 0, delayMs: 0, partitionFrom: [], partitionDirection: PARTITION_BOTH, ...faults } };
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await env.cluster.call(n.clientAddr, 'admin', 'SetFaults', req, 2000);
    if (r.ok) return undefined;
    last = r.error.details.slice(0, 100);
    await sleep(300);
  }
  return `n${n.id}: ${last}`;
}

/** Waits (bounded) until `n` answers Status: a restarted node takes a moment to listen. */
export async function waitUp(env: NemesisEnv, n: ProcNode, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!env.cluster.isRunning(n)) return false;
    if (await env.cluster.status(n, 500)) return true;
    await sleep(100);
  }
  return false;
}

/** Clears faults on every member (a few attempts each: a node may be busy recovering). */
export async function clearAllFaults(env: NemesisEnv): Promise<string[]> {
  const errors: string[] = [];
  await Promise.all(
    env.members.map(async (n) => {
      if (!env.cluster.isRunning(n)) return;
      for (let attempt = 0; attempt < 5; attempt++) {
        const r = await env.cluster.call(n.clientAddr, 'admin', 'ClearFaults', {}, 2000);
        if (r.ok) return;
        if (attempt === 4) errors.push(`n${n.id}: ${r.error.details}`);
        await sleep(200);
      }
    }),
  );
  return errors;
}

// ---------------------------------------------------------------------------- kill / pause

async function startKill(env: NemesisEnv): Promise<Fault | undefined> {
  const t = await pickTarget(env);
  if (!t) return undefined;
  await env.cluster.kill9AndWait(t.node);
  return {
    label: `kill -9 n${t.node.id} (${t.why})`,
    heal: async () => {
      if (env.members.includes(t.node) && !env.cluster.isRunning(t.node)) {
        env.cluster.restart(t.node);
        env.log(`restarted n${t.node.id}`);
        await waitUp(env, t.node);
      }
    },
  };
}

async function startPause(env: NemesisEnv): Promise<Fault | undefined> {
  const t = await pickTarget(env, env.pauseTarget === 'leader');
  if (!t) return undefined;
  env.cluster.pause(t.node);
  const startedMs = Date.now();
  const minMs = env.pauseMinMs ?? 0;
  return {
    label: `SIGSTOP n${t.node.id} (${t.why})`,
    heal: async () => {
      // At least minMs stopped (longer than the leader's lease), however short the window drawn.
      await sleep(startedMs + minMs - Date.now());
      env.cluster.resume(t.node);
    },
  };
}

// ---------------------------------------------------------------------------- partition

/** For each node, the ids it must not talk to, given groups that can talk within themselves. */
export function cutsFromGroups(ids: number[], canTalk: (a: number, b: number) => boolean): Map<number, number[]> {
  return new Map(ids.map((a) => [a, ids.filter((b) => b !== a && !canTalk(a, b))]));
}

export const PARTITION_KINDS = ['majority-minority', 'isolate-leader', 'bridge', 'one-way'] as const;
export type PartitionKind = (typeof PARTITION_KINDS)[number];

async function startPartition(env: NemesisEnv): Promise<Fault | undefined> {
  const members = env.members;
  const ids = members.map((n) => n.id);
  if (ids.length < 2) return undefined;
  const kind = env.rng.pick<PartitionKind>(env.partitionKinds ?? PARTITION_KINDS);
  let cuts: Map<number, number[]>;
  let label: string;
  let direction = PARTITION_BOTH;
  const shuffled = env.rng.shuffle(ids);
  if (kind === 'majority-minority' || kind === 'isolate-leader') {
    let minority: number[];
    if (kind === 'isolate-leader') {
      const leader = await findLeader(env, 1500);
      minority = [leader?.id ?? shuffled[0]!];
    } else minority = shuffled.slice(0, Math.floor((ids.length - 1) / 2) || 1);
    const side = (id: number) => minority.includes(id);
    cuts = cutsFromGroups(ids, (a, b) => side(a) === side(b));
    label = `partition ${kind}: [${minority.join(',')}] | [${ids.filter((i) => !side(i)).join(',')}]`;
  } else if (kind === 'bridge') {
    const [bridge, ...rest] = shuffled;
    const half = rest.slice(0, Math.ceil(rest.length / 2));
    const inA = (id: number) => half.includes(id);
    cuts = cutsFromGroups(ids, (a, b) => a === bridge || b === bridge || inA(a) === inA(b));
    label = `partition bridge: [${half.join(',')}] <- n${bridge} -> [${rest.filter((i) => !inA(i)).join(',')}]`;
  } else {
    const victim = env.rng.next() < 0.5 ? ((await findLeader(env, 1500))?.id ?? shuffled[0]!) : shuffled[0]!;
    cuts = new Map([[victim, ids.filter((i) => i !== victim)]]);
    direction = PARTITION_INBOUND;
    label = `partition one-way: n${victim} hears nobody (its sends still arrive)`;
  }
  const errors: string[] = [];
  await Promise.all(
    members.map(async (n) => {
      const from = cuts.get(n.id) ?? [];
      if (from.length === 0 || !env.cluster.isRunning(n)) return;
      const err = await setFaults(env, n, { partitionFrom: from, partitionDirection: direction });
      if (err) errors.push(err);
    }),
  );
  if (errors.length) label += ` (not applied on ${errors.join('; ')})`;
  return { label, heal: async () => void (await clearAllFaults(env)) };
}

// ---------------------------------------------------------------------------- delay

async function startDelay(env: NemesisEnv): Promise<Fault | undefined> {
  const running = env.members.filter((n) => env.cluster.isRunning(n));
  if (running.length === 0) return undefined;
  const targets = env.rng.next() < 0.5 ? running : [env.rng.pick(running)];
  const delayMs = env.rng.pick([20, 50, 100, 200]);
  const dropProbability = env.rng.pick([0, 0.05, 0.2, 0.4]);
  const errors: string[] = [];
  await Promise.all(
    targets.map(async (n) => {
      const err = await setFaults(env, n, { delayMs, dropProbability });
      if (err) errors.push(err);
    }),
  );
  const who = targets.length === running.length ? 'all nodes' : `n${targets[0]!.id}`;
  return { label: `delay ${delayMs} ms + loss ${dropProbability * 100}% on ${who}${errors.length ? ` (failed: ${errors.join('; ')})` : ''}`, heal: async () => void (await clearAllFaults(env)) };
}

// ---------------------------------------------------------------------------- membership

/** Adds a fresh node under a new id as a learner and starts it; returns it, or an error. */
export async function addLearner(env: NemesisEnv): Promise<{ ok: true; node: ProcNode } | { ok: false; error: string }> {
  const id = env.nextNodeId();
  const node = env.cluster.planNode(id);
  rmSync(node.dataDir, { recursive: true, force: true });
  try {
    await env.admin().memberAddLearner(id, node.peerAddr, node.clientAddr, { timeoutMs: 5000 });
  } catch (e) {
    return { ok: false, error: `add learner n${id}: ${(e as Error).message}` };
  }
  env.cluster.nodes.push(node);
  env.cluster.start(node, [...env.nodeFlags, '--join'], [...env.members, node]);
  env.members.push(node);
  env.bumpEpoch();
  env.log(`added learner n${id}`);
  return { ok: true, node };
}

/** Waits (bounded) until `node` has applied what the leader committed, then promotes it. */
export async function promote(env: NemesisEnv, node: ProcNode, timeoutMs = 10_000): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const leader = await findLeader(env, 1000);
    const [ls, ns] = leader ? [await env.cluster.status(leader), await env.cluster.status(node)] : [undefined, undefined];
    if (ls && ns && ns.appliedIndex >= ls.commitIndex - 5) break;
    await sleep(200);
  }
  let last = '';
  while (Date.now() < deadline + 5000) {
    try {
      await env.admin().memberPromote(node.id, { timeoutMs: 3000 });
      env.log(`promoted n${node.id}`);
      return undefined;
    } catch (e) {
      last = (e as Error).message;
      await sleep(300);
    }
  }
  return `promote n${node.id}: ${last}`;
}

/** Voters among the members, according to the leader (undefined when no leader answers). */
async function learnerIds(env: NemesisEnv): Promise<Set<number> | undefined> {
  const leader = await findLeader(env, 2000);
  if (!leader) return undefined;
  const s = await env.cluster.status(leader);
  return s?.members ? new Set(s.members.filter((m) => m.isLearner).map((m) => m.id)) : undefined;
}

async function startMembership(env: NemesisEnv): Promise<Fault | undefined> {
  const learners = await learnerIds(env);
  if (!learners) return undefined;
  const voters = env.members.filter((n) => !learners.has(n.id));
  if (voters.length < 2) return undefined;
  const victim = env.rng.pick(voters);
  try {
    await env.admin().memberRemove(victim.id, { timeoutMs: 5000 });
  } catch (e) {
    return { label: `membership: remove n${victim.id} failed (${(e as Error).message.slice(0, 80)})`, heal: async () => {} };
  }
  env.members.splice(env.members.indexOf(victim), 1);
  env.bumpEpoch();
  env.log(`removed n${victim.id}`);
  // Give the removed node a moment to learn it was removed, then stop it for good.
  await sleep(300);
  await env.cluster.kill9AndWait(victim);
  const added = await addLearner(env);
  if (!added.ok) return { label: `membership: removed n${victim.id}; ${added.error}`, heal: async () => {} };
  return {
    label: `membership: removed n${victim.id}, added learner n${added.node.id}`,
    heal: async () => {
      const err = await promote(env, added.node);
      if (err) env.log(err);
    },
  };
}

// ---------------------------------------------------------------------------- clock

/** Lowest leader clock rate for which LEASE reads stay safe: (election - margin) / election. */
export const LEASE_SAFE_MIN_CLOCK_RATE = 0.8;

async function setClockRate(env: NemesisEnv, n: ProcNode, rate: number): Promise<string | undefined> {
  const r = await env.cluster.call(n.clientAddr, 'admin', 'SetClockRate', { rate }, 2000);
  return r.ok ? undefined : `n${n.id}: ${r.error.details.slice(0, 100)}`;
}

async function startClock(env: NemesisEnv): Promise<Fault | undefined> {
  const running = env.members.filter((n) => env.cluster.isRunning(n) && !n.paused);
  if (running.length === 0) return undefined;
  const leader = env.clockLeaderIsolated || env.rng.next() < 0.5 ? await findLeader(env, 1000) : undefined;
  const target = leader ?? env.rng.pick(running);
  const rate = env.rng.pick(env.clockRates ?? [0.2, 0.5, 0.9, 1.25, 2]);
  const err = await setClockRate(env, target, rate);
  const beyond = rate < LEASE_SAFE_MIN_CLOCK_RATE ? ', beyond the lease drift bound' : '';
  // Drift alone changes nothing a reader can see: a skewed leader must also lose its quorum
  // while it still believes in its lease. Half the leader windows cut it off after a moment.
  let isolated = '';
  if (leader && (env.clockLeaderIsolated || env.rng.next() < 0.5)) {
    await sleep(300);
    const others = env.members.filter((n) => n !== leader).map((n) => n.id);
    const e = await setFaults(env, leader, { partitionFrom: others, partitionDirection: PARTITION_BOTH });
    isolated = e ? ` (isolate failed: ${e})` : ', then isolated';
  }
  return {
    label: `clock n${target.id}${leader ? ' (leader)' : ''} x${rate}${beyond}${isolated}${err ? ` (failed: ${err})` : ''}`,
    heal: async () => {
      if (isolated) await clearAllFaults(env);
      if (!env.cluster.isRunning(target)) return;
      const e = await setClockRate(env, target, 1);
      if (e) env.log(`clock heal ${e}`);
    },
  };
}

export const NEMESES: Record<NemesisName, (env: NemesisEnv) => Promise<Fault | undefined>> = {
  kill: startKill,
  pause: startPause,
  partition: startPartition,
  delay: startDelay,
  membership: startMembership,
  clock: startClock,
};

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}
