// One seeded simulation run: a safety phase with faults (drops, delays, duplicates,
// partitions, crashes, restarts, membership changes, leader transfers, compaction) while
// clients write and read, then a liveness phase with every fault healed. Besides random faults,
// a per-seed nemesis profile (swarm testing) targets the moments that break broken Rafts: new
// leaders cut off at once or right after their first commit (which makes leadership hop between
// divergent logs, the Raft paper's Figure 8), leaders crashing mid-write, lease holders isolated.

import { InvariantViolation, type Message, type NodeId, type PlantedBugs } from '../../src/raft/index.js';
import { ConfChangeType, EMPTY_BYTES } from '../../src/raft/index.js';
import { SimNetwork } from './network.js';
import { Rng } from './rng.js';
import { SafetyChecker, SafetyViolation, type ViolationKind } from './safety-checker.js';
import { SimNode, type ReadyFault, type ReadyInfo, type SimDisk, type SimNodeConfig } from './sim-node.js';

export interface SimOptions {
  seed: number;
  nodes: number;
  /** Ticks of the faulty safety phase. */
  ticks: number;
  /** Ticks allowed, after healing, to elect a leader and commit a write everywhere. */
  livenessTicks: number;
  plantedBugs?: PlantedBugs;
  /** Keep the last this many trace lines for the failure report. */
  traceLines: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  violation?: { kind: ViolationKind; message: string; tick: number };
  trace: string[];
  stats: { writesAcked: number; readsServed: number; leaders: number; crashes: number; partitions: number; confChanges: number; transfers: number; messages: number; checks: number };
}

const READ_TIMEOUT_TICKS = 60;
const MAX_READY_ROUNDS_PER_TICK = 50;

export function defaultSimOptions(seed: number): SimOptions {
  return { seed, nodes: 3, ticks: 1500, livenessTicks: 600, traceLines: 40 };
}

export class Simulation {
  private readonly rng: Rng;
  private readonly net: SimNetwork;
  private readonly checker = new SafetyChecker();
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly crashedUntil = new Map<NodeId, number>();
  private readonly trace: string[] = [];
  private tick = 0;
  private nextNodeId: NodeId;
  private writeSeq = 0;
  private healAtTick = -1;
  private readonly nodeCfg: SimNodeConfig;
  /** Swarm testing: each seed gets its own fault intensities, so some seeds are brutal. */
  private readonly crashProbabilityPerTick: number;
  private readonly crashAfterPersistProbability: number;
  private readonly nemesis: NemesisProfile;
  /** New leaders the nemesis will cut off after this many more commit advances. */
  private readonly doomed = new Map<NodeId, { commitsLeft: number; isolate: boolean }>();
  private readonly stats = { writesAcked: 0, readsServed: 0, leaders: 0, crashes: 0, partitions: 0, confChanges: 0, transfers: 0, messages: 0, checks: 0 };

  constructor(private readonly opts: SimOptions) {
    this.rng = new Rng(opts.seed);
    // Per-seed variety in the configuration itself.
    this.nodeCfg = {
      electionTimeoutTicks: 10,
      heartbeatIntervalTicks: 1 + this.rng.int(3),
      // Small limits split a new leader's no-op from the older entries before it, so they can
      // reach followers in different messages (the Figure 8 interleaving needs that).
      maxMsgBytes: this.rng.pick([16, 32, 32, 64, 256, 4096]),
      maxInflightMsgs: this.rng.pick([1, 4, 64]),
      leaseMarginTicks: 2,
      snapshotEveryEntries: this.rng.pick([20, 60, 200]),
      plantedBugs: opts.plantedBugs,
    };
    this.crashProbabilityPerTick = this.rng.pick([0.001, 0.004, 0.015]);
    this.crashAfterPersistProbability = this.rng.pick([0.0002, 0.002, 0.01]);
    this.nemesis = pickNemesis(this.rng);
    this.net = new SimNetwork(this.rng.fork(), {
      dropProbability: this.rng.pick([0, 0.01, 0.05, 0.15]),
      duplicateProbability: this.rng.pick([0, 0.02, 0.1]),
      maxDelayTicks: this.rng.pick([1, 2, 4]),
    });
    const ids = Array.from({ length: opts.nodes }, (_, i) => i + 1);
    this.nextNodeId = opts.nodes + 1;
    for (const id of ids) this.addNode(id, SimNode.bootstrapDisk(ids));
  }

  private addNode(id: NodeId, disk: SimDisk): void {
    const rng = this.rng.fork();
    const node = new SimNode(id, disk, this.nodeCfg, rng, this.checker, (s) => this.log(s));
    this.nodes.set(id, node);
  }

  private log(line: string): void {
    this.trace.push(`t=${this.tick} ${line}`);
    if (this.trace.length > this.opts.traceLines * 4) this.trace.splice(0, this.trace.length - this.opts.traceLines);
  }

  run(): SimResult {
    try {
      for (; this.tick < this.opts.ticks; this.tick++) {
        this.injectFaults();
        this.clientOps();
        this.step();
      }
      this.heal();
      this.checkLiveness();
      return this.result();
    } catch (e) {
      if (e instanceof SafetyViolation) return this.result({ kind: e.kind, message: e.message, tick: this.tick });
      if (e instanceof InvariantViolation) return this.result({ kind: 'invariant', message: e.message, tick: this.tick });
      throw e;
    }
  }

  private result(violation?: SimResult['violation']): SimResult {
    let writesAcked = 0;
    let readsServed = 0;
    for (const n of this.nodes.values()) {
      writesAcked += n.writesAcked;
      readsServed += n.readsServed;
    }
    this.stats.writesAcked = writesAcked;
    this.stats.readsServed = readsServed;
    this.stats.messages = this.net.messagesSent;
    this.stats.checks = this.checker.checks;
    return { seed: this.opts.seed, ok: !violation, violation, trace: this.trace.slice(-this.opts.traceLines), stats: { ...this.stats } };
  }

  /** One tick: every live node ticks, due messages are delivered, Readies are handled. */
  private step(): void {
    for (const n of this.liveNodes()) n.node.tick();
    for (const m of this.net.takeDue(this.tick)) {
      const to = this.nodes.get(m.to);
      if (!to || !to.alive) continue;
      to.node.step(m);
    }
    this.processReadies();
    for (const n of this.liveNodes()) {
      n.expireReads(this.tick, READ_TIMEOUT_TICKS);
      n.maybeCompact();
    }
  }

  private processReadies(): void {
    for (let round = 0; round < MAX_READY_ROUNDS_PER_TICK; round++) {
      let any = false;
      for (const n of this.liveNodes()) {
        if (!n.node.hasReady()) continue;
        any = true;
        const wasLeader = n.isLeader;
        const res = n.handleReady((m) => this.send(m), (info) => this.readyFault(n, info));
        if (res === 'crashed') this.onCrashed(n);
        else if (!wasLeader && n.isLeader) this.stats.leaders++;
      }
      if (!any) return;
    }
  }

  /**
   * The nemesis's say over a Ready its host has just persisted. Besides the untargeted crash,
   * it goes for the moments VOPR and Jepsen find fruitful: a leader that has just been elected
   * (its no-op only on its own disk), a leader that has just appended or committed (its appends
   * only partly out), and bursts of loss that take a random subset of one Ready's messages.
   */
  private readyFault(n: SimNode, info: ReadyInfo): ReadyFault | undefined {
    if (!this.isFaultPhase()) return undefined;
    const nm = this.nemesis;
    let crash = this.rng.chance(this.crashAfterPersistProbability);
    let why = 'after persist';
    if (info.becameLeader) {
      // A new leader may be doomed: cut off (crashed, or isolated from everyone) at once or at
      // its first commit advance, while its no-op has reached only part of the cluster.
      // Isolating heals the previous partition, so leadership hops between divergent logs.
      this.doomed.delete(n.id);
      if (this.rng.chance(nm.newLeaderDoom)) {
        this.doomed.set(n.id, { commitsLeft: this.rng.int(2), isolate: this.rng.chance(nm.doomIsolates) });
      }
    }
    const doom = this.doomed.get(n.id);
    if (doom && !info.isLeader) this.doomed.delete(n.id);
    else if (doom && (info.becameLeader || info.commitAdvanced)) {
      if (doom.commitsLeft > 0) {
        if (info.commitAdvanced) doom.commitsLeft--;
      } else {
        this.doomed.delete(n.id);
        const when = info.becameLeader ? 'right after its election' : 'right after its first commit';
        if (doom.isolate) this.isolate(n.id, `leader ${when}:`);
        else {
          crash = true;
          why = when;
        }
      }
    }
    if (!crash && info.isLeader && info.commitAdvanced && this.rng.chance(nm.crashCommittingLeader)) {
      crash = true;
      why = 'right after advancing commit';
    } else if (!crash && info.isLeader && info.newEntries > 0 && this.rng.chance(nm.crashAppendingLeader)) {
      crash = true;
      why = 'right after appending';
    }
    if (crash) {
      // A process dies mid-write as often as before it: some of the messages may be out.
      const sendFraction = info.messages > 0 && this.rng.chance(0.5) ? this.rng.next() : 0;
      this.log(`nemesis: crash n${n.id} ${why}${sendFraction > 0 ? `, sending ~${Math.round(sendFraction * 100)}% of ${info.messages} messages` : ''}`);
      return { crash, sendFraction };
    }
    if (info.messages > 1 && this.rng.chance(nm.readyLoss)) return { crash: false, sendFraction: this.rng.next() };
    return undefined;
  }

  private send(m: Message): boolean {
    return this.net.send(m, this.tick);
  }

  private liveNodes(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.alive) out.push(n);
    return out;
  }

  private isFaultPhase(): boolean {
    return this.tick < this.opts.ticks;
  }

  private onCrashed(n: SimNode): void {
    this.stats.crashes++;
    this.doomed.delete(n.id);
    this.crashedUntil.set(n.id, this.tick + this.nemesis.downMinTicks + this.rng.int(this.nemesis.downSpanTicks));
    this.log(`crash n${n.id}`);
  }

  // ------------------------------------------------------------- faults

  private injectFaults(): void {
    for (const [id, until] of this.crashedUntil) {
      if (this.tick < until) continue;
      this.crashedUntil.delete(id);
      this.nodes.get(id)!.restart();
      this.log(`restart n${id}`);
    }
    if (this.healAtTick === this.tick) {
      this.net.heal();
      this.log('network healed');
    }
    if (this.rng.chance(this.crashProbabilityPerTick)) this.crashRandom();
    if (this.nemesis.isolateLeaseholder > 0 && this.rng.chance(this.nemesis.isolateLeaseholder)) {
      // A leader that holds a read lease is cut off just after it passed a CheckQuorum round, so
      // it stays leader as long as it can: the rest elect a new leader and write, and its lease
      // must have run out before they can.
      const holder = this.liveNodes().find((n) => n.isLeader && n.node.raft.electionElapsed <= 1 && n.node.leaseRemainingTicks() > 0);
      if (holder) this.isolate(holder.id, 'lease holder');
    }
    const r = this.rng.next();
    if (r < 0.004) this.partitionRandom();
    else if (r < 0.006) this.confChangeRandom();
    else if (r < 0.009) this.transferRandom();
  }

  private crashRandom(): void {
    const live = this.liveNodes();
    if (live.length <= 1) return;
    // Prefer the leader half the time: that is where the interesting bugs are.
    const leader = live.find((n) => n.isLeader);
    const victim = leader && this.rng.chance(0.5) ? leader : this.rng.pick(live);
    victim.crash();
    this.onCrashed(victim);
  }

  private partitionRandom(): void {
    const ids = [...this.nodes.keys()];
    this.net.heal();
    const kind = this.rng.int(3);
    if (kind === 0) {
      const shuffled = this.rng.shuffle(ids.slice());
      const cut = 1 + this.rng.int(shuffled.length - 1);
      this.net.partition(shuffled.slice(0, cut), shuffled.slice(cut));
      this.log(`partition ${shuffled.slice(0, cut)} | ${shuffled.slice(cut)}`);
    } else if (kind === 1) {
      const leader = this.liveNodes().find((n) => n.isLeader);
      if (!leader) return;
      this.isolate(leader.id, 'leader');
      return;
    } else {
      const from = this.rng.pick(ids);
      const to = this.rng.pick(ids.filter((i) => i !== from));
      this.net.blockOneWay(from, to);
      this.log(`one-way block n${from} -> n${to}`);
    }
    this.stats.partitions++;
    this.healAtTick = this.tick + 10 + this.rng.int(60);
  }

  private isolate(id: NodeId, what: string): void {
    this.net.heal();
    this.net.partition([id], [...this.nodes.keys()].filter((i) => i !== id));
    this.log(`isolate ${what} n${id}`);
    this.stats.partitions++;
    this.healAtTick = this.tick + 10 + this.rng.int(60);
  }

  private confChangeRandom(): void {
    const leader = this.liveNodes().find((n) => n.isLeader);
    if (!leader) return;
    const cs = leader.node.raft.confState();
    const r = this.rng.int(3);
    let res;
    if (r === 0 && this.nodes.size < this.opts.nodes + 3) {
      const id = this.nextNodeId++;
      this.addNode(id, SimNode.emptyDisk());
      res = leader.node.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: id, context: EMPTY_BYTES });
      this.log(`propose add-learner n${id}: ${res.ok ? 'ok' : res.reason}`);
    } else if (r === 1 && cs.learners.length > 0) {
      const id = this.rng.pick(cs.learners);
      res = leader.node.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: id, context: EMPTY_BYTES });
      this.log(`propose promote n${id}: ${res.ok ? 'ok' : res.reason}`);
    } else if (r === 2 && cs.voters.length > 3) {
      const id = this.rng.pick(cs.voters);
      res = leader.node.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: id, context: EMPTY_BYTES });
      this.log(`propose remove n${id}: ${res.ok ? 'ok' : res.reason}`);
    }
    if (res?.ok) this.stats.confChanges++;
  }

  private transferRandom(): void {
    const leader = this.liveNodes().find((n) => n.isLeader);
    if (!leader) return;
    const voters = leader.node.raft.confState().voters.filter((v) => v !== leader.id);
    if (voters.length === 0) return;
    const to = this.rng.pick(voters);
    leader.node.transferLeader(to);
    this.stats.transfers++;
    this.log(`transfer leadership n${leader.id} -> n${to}`);
  }

  // ------------------------------------------------------------- clients

  private clientOps(): void {
    const live = this.liveNodes();
    if (live.length === 0) return;
    const writes = this.rng.int(3);
    for (let i = 0; i < writes; i++) {
      const n = this.rng.pick(live);
      if (n.isLeader) n.proposeWrite(`k${this.rng.int(4)}=v${++this.writeSeq}`);
    }
    if (this.rng.chance(0.5)) {
      // Lease reads go to whoever believes it leads: during a partition that can be two nodes,
      // and the deposed one is exactly where a broken lease would serve stale data.
      const leaders = live.filter((n) => n.isLeader);
      if (this.rng.chance(0.5) && leaders.length > 0) {
        this.rng.pick(leaders).startRead('lease', this.checker.completedIndexLowerBound, this.tick);
      } else {
        this.rng.pick(live).startRead('read-index', this.checker.completedIndexLowerBound, this.tick);
      }
    }
  }

  // ------------------------------------------------------------- liveness

  private heal(): void {
    this.net.heal();
    this.net.faults = { dropProbability: 0, duplicateProbability: 0, maxDelayTicks: 1 };
    for (const id of this.crashedUntil.keys()) this.nodes.get(id)!.restart();
    this.crashedUntil.clear();
    this.log('all faults healed; liveness phase');
  }

  private checkLiveness(): void {
    const deadline = this.tick + this.opts.livenessTicks;
    // A probe write proposed at the current leader; re-proposed if leadership moves (an old
    // leader's uncommitted probe may be overwritten, which is correct Raft behaviour).
    let probe: { leader: NodeId; term: number; index: number; acked: number } | undefined;
    for (; this.tick < deadline; this.tick++) {
      this.step();
      const leader = this.liveNodes().find((n) => n.isLeader && n.node.raft.voters.has(n.id));
      if (!leader) continue;
      if (!probe || probe.leader !== leader.id || probe.term !== leader.node.raft.term) {
        if (leader.proposeWrite(`probe=${this.tick}`)) {
          probe = { leader: leader.id, term: leader.node.raft.term, index: leader.node.raft.log.lastIndex(), acked: leader.writesAcked };
        }
        continue;
      }
      if (leader.writesAcked > probe.acked && this.allMembersApplied(leader, probe.index)) return;
    }
    const status = [...this.nodes.values()].map((n) => `n${n.id}:${n.node.raft.state}/t${n.node.raft.term}/c${n.node.raft.log.committed}/a${n.disk.appliedIndex}`);
    throw new SafetyViolation('liveness', `no leader committed a write to every member within ${this.opts.livenessTicks} ticks after healing (${status.join(' ')})`);
  }

  private allMembersApplied(leader: SimNode, index: number): boolean {
    const cs = leader.node.raft.confState();
    for (const id of [...cs.voters, ...cs.learners]) {
      const n = this.nodes.get(id);
      if (!n || n.disk.appliedIndex < index) return false;
    }
    return true;
  }
}

/** Per-seed intensities of the targeted faults (swarm testing: many seeds run without some). */
interface NemesisProfile {
  /** A node that has just become leader is cut off right away or right after its first commit. */
  newLeaderDoom: number;
  /** ...by isolating it (else by crashing it). */
  doomIsolates: number;
  /** A leader crashes after persisting a Ready that advanced its commit index. */
  crashCommittingLeader: number;
  /** A leader crashes after persisting a Ready that appended entries. */
  crashAppendingLeader: number;
  /** Per tick: a leader holding a read lease is isolated. */
  isolateLeaseholder: number;
  /** A Ready loses a random subset of its messages. */
  readyLoss: number;
  /** A crashed node restarts after downMinTicks + [0, downSpanTicks) ticks. */
  downMinTicks: number;
  downSpanTicks: number;
}

function pickNemesis(rng: Rng): NemesisProfile {
  const down = rng.pick([
    [5, 40],
    [1, 12],
    [20, 100],
  ] as const);
  return {
    newLeaderDoom: rng.pick([0, 0, 0.3, 0.7, 1]),
    doomIsolates: rng.pick([0, 0.5, 1, 1]),
    crashCommittingLeader: rng.pick([0, 0, 0.01, 0.05]),
    crashAppendingLeader: rng.pick([0, 0, 0.005, 0.02, 0.08]),
    isolateLeaseholder: rng.pick([0, 0, 0.01, 0.05]),
    readyLoss: rng.pick([0, 0.01, 0.05, 0.2]),
    downMinTicks: down[0],
    downSpanTicks: down[1],
  };
}

export function runSimulation(opts: SimOptions): SimResult {
  return new Simulation(opts).run();
}
