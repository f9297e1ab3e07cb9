// Core throughput of the Raft core alone: committed entries/s for a 3-node in-memory cluster,
// no I/O, batching as the host's Ready loop does. Each turn: every node steps the messages
// delivered to it, the leader proposes a batch of K entries (RawNode.proposeBatch), then every
// node handles one Ready (persist to MemoryStorage, deliver its messages, apply, advance).
// The host compacts its log behind the applied index, like the server does.
//
// Usage: npx tsx bench/raft-core.ts [--entries N] [--batches 1,10,100,1000] [--payloads 16,100,1000]
// Run it on one core (it is single-threaded; `taskset -c 0` pins it). `--cpu-prof` works as usual
// through `node --import tsx --cpu-prof bench/raft-core.ts`.

import {
  bootstrapState,
  decodeConfChange,
  EntryType,
  MemoryStorage,
  RawNode,
  StateRole,
  type ConfState,
  type Message,
  type NodeId,
  type Ready,
} from '../src/raft/index.js';

interface Host {
  id: NodeId;
  node: RawNode;
  storage: MemoryStorage;
  confState: ConfState;
  inbox: Message[];
  applied: number;
  /** Normal entries with a payload applied (the no-ops are not counted). */
  appliedCommands: number;
}

/** Ticks are time (100 ms in the server); turns are microseconds, so tick rarely. */
const TURNS_PER_TICK = 200;
/** Compact once this many applied entries sit in the log; keep a tail for slow followers. */
const COMPACT_EVERY = 20_000;
const COMPACT_KEEP = 1_000;

function argValue(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function numberList(v: string | undefined, dflt: number[]): number[] {
  return v === undefined ? dflt : v.split(',').map((x) => Number(x));
}

function makeCluster(n: number): Host[] {
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const b = bootstrapState(ids.map((id) => ({ id })));
  return ids.map((id) => {
    const storage = new MemoryStorage(b.confState);
    storage.append(b.entries);
    storage.setHardState(b.hardState);
    const node = new RawNode({
      id,
      electionTimeoutTicks: 10,
      heartbeatIntervalTicks: 1,
      storage,
      appliedIndex: 0,
      maxMsgBytes: 1 << 20,
      maxInflightMsgs: 256,
      maxCommittedBytesPerReady: 1 << 24,
      checkQuorum: true,
      preVote: true,
      leaseMarginTicks: 2,
      randomInt: (k) => (id * 7919) % k,
      logger: { debug: () => {}, info: () => {}, warn: () => {} },
    });
    return { id, node, storage, confState: b.confState, inbox: [], applied: 0, appliedCommands: 0 };
  });
}

class Cluster {
  readonly hosts: Host[];
  private readonly byId = new Map<NodeId, Host>();
  private turns = 0;

  constructor(n: number) {
    this.hosts = makeCluster(n);
    for (const h of this.hosts) this.byId.set(h.id, h);
    // Restarted nodes (term > 0) refuse votes for an election timeout: let that pass first.
    for (let i = 0; i < 10; i++) for (const h of this.hosts) h.node.tick();
    this.turn([]); // apply the bootstrap membership entries (a node with unapplied ones cannot campaign)
    this.hosts[0]!.node.campaign();
    for (let i = 0; i < 100 && this.leader() === undefined; i++) this.turn([]);
    if (!this.leader()) throw new Error(`no leader: ${this.hosts.map((h) => `${h.id}:${h.node.raft.state}/t${h.node.raft.term}/tc${h.node.raft.tickCount}`).join(' ')}`);
    // Let the leader's no-op commit everywhere.
    for (let i = 0; i < 10; i++) this.turn([]);
  }

  leader(): Host | undefined {
    return this.hosts.find((h) => h.node.raft.state === StateRole.Leader);
  }

  /** One turn of every host's loop; `batch` is proposed at the leader. */
  turn(batch: Uint8Array[]): void {
    if (++this.turns % TURNS_PER_TICK === 0) for (const h of this.hosts) h.node.tick();
    for (const h of this.hosts) {
      const inbox = h.inbox;
      h.inbox = [];
      for (const m of inbox) h.node.step(m);
    }
    if (batch.length > 0) {
      const res = this.leader()!.node.proposeBatch(batch);
      if (!res.ok) throw new Error(`proposal dropped: ${res.reason}`);
    }
    for (const h of this.hosts) if (h.node.hasReady()) this.handleReady(h, h.node.ready());
  }

  private handleReady(h: Host, rd: Ready): void {
    const st = h.storage;
    if (rd.snapshot) st.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) st.append(rd.entries);
    if (rd.hardState) st.setHardState(rd.hardState);
    for (const m of rd.messages) this.byId.get(m.to)!.inbox.push(m);
    for (const e of rd.committedEntries) {
      if (e.type === EntryType.ConfChange) h.confState = h.node.applyConfChange(decodeConfChange(e.data));
      else if (e.data.length > 0) h.appliedCommands++;
      h.applied = e.index;
    }
    h.node.advance(rd);
    if (h.applied - st.firstIndex() >= COMPACT_EVERY) {
      st.createSnapshot(h.applied, h.confState, new Uint8Array(0));
      st.compact(h.applied - COMPACT_KEEP);
    }
  }
}

/** Proposes `entries` commands in batches of `batch` and returns once every node applied them. */
function drive(c: Cluster, entries: number, batch: number, payload: Uint8Array): { turns: number } {
  const leader = c.leader()!;
  const start = leader.appliedCommands;
  const target = start + entries;
  const datas = Array.from({ length: batch }, () => payload);
  let proposed = 0;
  let turns = 0;
  // Bound the proposals in flight, as a server bounds its pending requests.
  const window = Math.max(4 * batch, 64);
  while (c.hosts.some((h) => h.appliedCommands < target)) {
    const inFlight = proposed - (leader.appliedCommands - start);
    const k = proposed < entries && inFlight < window ? Math.min(batch, entries - proposed) : 0;
    c.turn(k === batch ? datas : datas.slice(0, k));
    proposed += k;
    turns++;
    if (turns > 100 * entries + 1000) throw new Error('no progress');
  }
  return { turns };
}

function main(): void {
  const entries = Number(argValue('--entries') ?? 200_000);
  const batches = numberList(argValue('--batches'), [1, 10, 100, 1000]);
  const payloads = numberList(argValue('--payloads'), [16, 100, 1000]);
  console.log(`raft core, 3 nodes in memory, ${entries} entries per row after a ${Math.round(entries / 5)}-entry warmup (node ${process.version})`);
  console.log('batch  payload B      entries/s       MB/s   turns   µs/turn');
  for (const payload of payloads) {
    for (const batch of batches) {
      const data = new Uint8Array(payload).fill(120);
      const c = new Cluster(3);
      drive(c, Math.round(entries / 5), batch, data); // warmup
      const t0 = process.hrtime.bigint();
      const { turns } = drive(c, entries, batch, data);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const eps = entries / s;
      console.log(
        `${String(batch).padStart(5)}  ${String(payload).padStart(9)}  ${eps.toFixed(0).padStart(13)}  ${((eps * payload) / 1e6).toFixed(1).padStart(9)}  ${String(turns).padStart(6)}  ${((s * 1e6) / turns).toFixed(1).padStart(8)}`,
      );
    }
  }
}

main();
