// The interaction test environment: a handful of RawNodes, a network of in-flight messages
// that the transcript delivers explicitly, and a host loop that handles each Ready exactly as
// a real host would (persist, send, apply, advance). Modelled on etcd-io/raft's rafttest
// InteractionEnv; every command prints what happened so a test file reads like a transcript.

import {
  ConfChangeType,
  decodeConfChange,
  EntryType,
  InvariantViolation,
  MemoryStorage,
  MessageType,
  RawNode,
  StateRole,
  type ConfChange,
  type ConfState,
  type Entry,
  type Logger,
  type Message,
  type NodeId,
  type Ready,
  type Snapshot,
} from '../../../src/raft/index.js';
import type { RaftConfig } from '../../../src/raft/raft.js';
import { parseCommand, type CommandArgs } from './datadriven.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

type LogLevel = 'debug' | 'info' | 'warn' | 'none';
const LEVELS: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, none: 3 };

interface NodeOptions {
  electionTimeoutTicks: number;
  heartbeatIntervalTicks: number;
  checkQuorum: boolean;
  preVote: boolean;
  leaseMarginTicks: number;
  maxInflightMsgs: number;
  maxMsgBytes: number;
  maxCommittedBytesPerReady: number;
}

interface EnvNode {
  id: NodeId;
  opts: NodeOptions;
  storage: MemoryStorage;
  rn: RawNode | undefined; // undefined while crashed
  /** The replicated state machine: the applied Normal entries' payloads, by index. */
  sm: Array<{ index: number; data: string }>;
  /** Configuration history as applied: the conf state in force after each index. */
  confHistory: Array<{ index: number; cs: ConfState }>;
}

export class InteractionEnv {
  private readonly nodes = new Map<NodeId, EnvNode>();
  /** Messages sent and not yet delivered, in send order. */
  private network: Message[] = [];
  private readonly isolated = new Set<NodeId>();
  private out: string[] = [];
  private level: LogLevel = 'debug';
  /** Messages sent across a partition since the last report. */
  private lostInPartition = 0;

  /** Runs one command and returns its output (without a trailing newline). */
  handle(command: string): string {
    this.out = [];
    const args = parseCommand(command);
    try {
      this.dispatch(args);
    } catch (e) {
      if (e instanceof InvariantViolation) this.out.push(`ERROR ${e.name}: ${e.message}`);
      else throw e;
    }
    return this.out.join('\n');
  }

  private dispatch(a: CommandArgs): void {
    switch (a.name) {
      case 'add-nodes':
        return this.addNodes(a);
      case 'campaign':
        return this.withNode(a, (n) => n.rn!.campaign());
      case 'tick':
        return this.tick(this.ids(a)[0]!, Number(a.kv.get('n')?.[0] ?? a.pos[1] ?? 1));
      case 'tick-election':
        return this.eachNode(a, (n) => this.tick(n.id, n.opts.electionTimeoutTicks));
      case 'tick-heartbeat':
        return this.eachNode(a, (n) => this.tick(n.id, n.opts.heartbeatIntervalTicks));
      case 'propose':
        return this.propose(a);
      case 'propose-conf-change':
        return this.proposeConfChange(a);
      case 'read-index':
        return this.withNode(a, (n) => n.rn!.readIndex(enc.encode(a.pos[1]!)));
      case 'transfer-leadership':
        return this.node(Number(a.kv.get('from')![0])).rn!.transferLeader(Number(a.kv.get('to')![0]));
      case 'process-ready':
        return this.eachNode(a, (n) => this.processReady(n));
      case 'deliver-msgs':
        this.deliverMsgs(a);
        return;
      case 'stabilize': {
        // "stabilize quiet" runs the same loop but keeps only the core's WARN/INFO lines.
        const start = this.out.length;
        this.stabilize(a);
        if (a.pos.includes('quiet')) {
          this.out = this.out.slice(0, start).concat(this.out.slice(start).map((l) => l.trim()).filter((l) => /^(INFO|WARN)/.test(l)));
        }
        return;
      }
      case 'set-randomized-timeout': {
        // The node's election timeout is now this many ticks (until its next role change).
        const n = this.node(Number(a.pos[0]));
        const r = n.rn!.raft;
        r.randomizedElectionTimeout = Number(a.pos[1]);
        return;
      }
      case 'isolate':
        for (const id of this.ids(a)) this.isolated.add(id);
        return;
      case 'heal':
        this.isolated.clear();
        return;
      case 'raft-state':
        return this.raftState();
      case 'raft-log':
        return this.eachNode(a, (n) => this.raftLog(n));
      case 'status':
        return this.eachNode(a, (n) => this.status(n));
      case 'lease':
        return this.eachNode(a, (n) => this.lease(n));
      case 'compact':
        return this.compact(this.node(Number(a.pos[0])), Number(a.pos[1]));
      case 'report-snapshot':
        return this.node(Number(a.pos[0])).rn!.reportSnapshot(Number(a.pos[1]), a.pos[2] !== 'fail');
      case 'report-unreachable':
        return this.node(Number(a.pos[0])).rn!.reportUnreachable(Number(a.pos[1]));
      case 'crash':
        return this.eachNode(a, (n) => this.crash(n));
      case 'restart':
        return this.eachNode(a, (n) => this.restart(n));
      case 'log-level':
        this.level = a.pos[0] as LogLevel;
        return;
      case 'applied':
        return this.eachNode(a, (n) => this.out.push(`${n.id}: ${n.sm.map((e) => `${e.index}:${e.data}`).join(' ')}`));
      default:
        throw new Error(`unknown command ${a.name}`);
    }
  }

  // ---------------------------------------------------------------- helpers

  private ids(a: CommandArgs): NodeId[] {
    return a.pos.filter((p) => /^\d+$/.test(p)).map(Number);
  }

  private node(id: NodeId): EnvNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Runs fn on the nodes named in the command, or on every node when none is named. */
  private eachNode(a: CommandArgs, fn: (n: EnvNode) => void): void {
    const ids = this.ids(a);
    const list = ids.length > 0 ? ids : [...this.nodes.keys()].sort((x, y) => x - y);
    for (const id of list) fn(this.node(id));
  }

  private withNode(a: CommandArgs, fn: (n: EnvNode) => void): void {
    const n = this.node(Number(a.pos[0]));
    if (!n.rn) throw new Error(`node ${n.id} is crashed`);
    fn(n);
  }

  private logger(id: NodeId): Logger {
    void id;
    const emit = (lvl: LogLevel, tag: string, msg: string): void => {
      if (LEVELS[lvl] >= LEVELS[this.level]) this.out.push(`${tag} ${msg}`);
    };
    return {
      debug: (m) => emit('debug', 'DEBUG', m),
      info: (m) => emit('info', 'INFO', m),
      warn: (m) => emit('warn', 'WARN', m),
    };
  }

  private newRawNode(n: EnvNode, appliedIndex?: number): RawNode {
    const cfg: RaftConfig = {
      id: n.id,
      storage: n.storage,
      appliedIndex,
      ...n.opts,
      // Deterministic transcripts: the randomized election timeout is exactly electionTimeoutTicks.
      randomInt: () => 0,
      logger: this.logger(n.id),
    };
    return new RawNode(cfg);
  }

  // ---------------------------------------------------------------- commands

  /**
   * add-nodes N voters=(1,2,3) [learners=(4)] [index=2] [election=10] [heartbeat=1]
   *   [checkquorum=true] [prevote=true] [lease-margin=2] [max-inflight=256]
   *   [max-msg-bytes=1048576] [max-committed-bytes=1048576]
   * Adds N nodes with the next free ids. With index=I the storage starts with a snapshot at
   * (index I, term 1) holding the given configuration, like etcd's bootstrap.
   */
  private addNodes(a: CommandArgs): void {
    const count = Number(a.pos[0]);
    const get = (k: string, d: string): string => a.kv.get(k)?.[0] ?? d;
    const opts: NodeOptions = {
      electionTimeoutTicks: Number(get('election', '10')),
      heartbeatIntervalTicks: Number(get('heartbeat', '1')),
      checkQuorum: get('checkquorum', 'true') === 'true',
      preVote: get('prevote', 'true') === 'true',
      leaseMarginTicks: Number(get('lease-margin', '2')),
      maxInflightMsgs: Number(get('max-inflight', '256')),
      maxMsgBytes: Number(get('max-msg-bytes', String(1 << 20))),
      maxCommittedBytesPerReady: Number(get('max-committed-bytes', String(1 << 20))),
    };
    const cs: ConfState = {
      voters: (a.kv.get('voters') ?? []).map(Number),
      learners: (a.kv.get('learners') ?? []).map(Number),
    };
    const index = Number(get('index', '0'));
    for (let i = 0; i < count; i++) {
      const id = this.nodes.size + 1;
      const storage = new MemoryStorage(cs);
      if (index > 0) {
        storage.applySnapshot({ metadata: { index, term: 1, confState: cs }, data: enc.encode('[]') });
      }
      const n: EnvNode = { id, opts, storage, rn: undefined, sm: [], confHistory: [{ index, cs }] };
      this.nodes.set(id, n);
      n.rn = this.newRawNode(n);
      this.out.push(`> ${id} started: ${describeConfState(cs)}, log [${storage.firstIndex()}, ${storage.lastIndex()}]`);
    }
  }

  private tick(id: NodeId, n: number): void {
    const node = this.node(id);
    for (let i = 0; i < n; i++) node.rn!.tick();
  }

  private propose(a: CommandArgs): void {
    const n = this.node(Number(a.pos[0]));
    const res = n.rn!.propose(enc.encode(a.pos[1] ?? ''));
    if (!res.ok) this.out.push(`raft proposal dropped: ${res.reason}`);
  }

  /** propose-conf-change 1 add|add-learner|remove 4 */
  private proposeConfChange(a: CommandArgs): void {
    const n = this.node(Number(a.pos[0]));
    const types: Record<string, ConfChangeType> = {
      add: ConfChangeType.AddNode,
      'add-learner': ConfChangeType.AddLearner,
      remove: ConfChangeType.RemoveNode,
    };
    const type = types[a.pos[1]!];
    if (type === undefined) throw new Error(`unknown conf change ${a.pos[1]}`);
    const res = n.rn!.proposeConfChange({ type, nodeId: Number(a.pos[2]), context: new Uint8Array(0) });
    if (!res.ok) this.out.push(`raft proposal dropped: ${res.reason}`);
  }

  /** Handles one Ready like a host: persist, send, apply, advance. Returns false if none. */
  private processReady(n: EnvNode): boolean {
    const rn = n.rn;
    if (!rn || !rn.hasReady()) return false;
    const rd = rn.ready();
    this.out.push(`> ${n.id} handling Ready`);
    this.out.push(...describeReady(rd).map((l) => `  ${l}`));
    // 1. Persist.
    if (rd.snapshot) {
      n.storage.applySnapshot(rd.snapshot);
      this.restoreStateMachine(n, rd.snapshot);
    }
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    // 2. Send. A partition loses what is sent across it (reported at delivery time otherwise).
    for (const m of rd.messages) {
      if (this.isolated.has(m.from) || this.isolated.has(m.to)) this.lostInPartition++;
      else this.network.push(m);
    }
    // 3. Apply (core log lines produced while applying are indented with the Ready).
    const before = this.out.length;
    for (const e of rd.committedEntries) this.apply(n, e);
    for (let i = before; i < this.out.length; i++) if (!this.out[i]!.startsWith('  ')) this.out[i] = `  ${this.out[i]}`;
    // 4. Read states are reported in the Ready dump above.
    rn.advance(rd);
    if (this.lostInPartition > 0) {
      this.out.push(`  (${this.lostInPartition} message(s) lost in the partition)`);
      this.lostInPartition = 0;
    }
    return true;
  }

  private apply(n: EnvNode, e: Entry): void {
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      const cs = n.rn!.applyConfChange(cc);
      n.confHistory.push({ index: e.index, cs });
      this.out.push(`  applied ${describeConfChange(cc)} at ${e.index}: ${describeConfState(cs)}`);
      return;
    }
    if (e.data.length > 0) n.sm.push({ index: e.index, data: dec.decode(e.data) });
  }

  private restoreStateMachine(n: EnvNode, snap: Snapshot): void {
    n.sm = JSON.parse(dec.decode(snap.data)) as EnvNode['sm'];
    n.confHistory.push({ index: snap.metadata.index, cs: snap.metadata.confState });
  }

  /** deliver-msgs [drop=(ids)] [ids...]: delivers (or drops) pending messages to the given nodes. */
  private deliverMsgs(a: CommandArgs): number {
    const drop = new Set((a.kv.get('drop') ?? []).map(Number));
    const ids = this.ids(a);
    const targets = ids.length > 0 ? ids : [...this.nodes.keys()].sort((x, y) => x - y);
    let count = 0;
    for (const id of [...targets, ...drop]) {
      const mine = this.network.filter((m) => m.to === id);
      if (mine.length === 0) continue;
      this.network = this.network.filter((m) => m.to !== id);
      count += this.deliverTo(id, mine, drop.has(id));
    }
    return count;
  }

  private deliverTo(id: NodeId, msgs: Message[], drop: boolean): number {
    const n = this.node(id);
    for (const m of msgs) {
      if (drop || !n.rn || this.isolated.has(m.from) || this.isolated.has(m.to)) {
        this.out.push(`dropped: ${describeMessage(m)}`);
        continue;
      }
      this.out.push(describeMessage(m));
      n.rn.step(m);
    }
    return msgs.length;
  }

  /** Processes Readies and delivers messages until nothing more happens. */
  private stabilize(a: CommandArgs): void {
    const ids = this.ids(a);
    const list = ids.length > 0 ? ids : [...this.nodes.keys()].sort((x, y) => x - y);
    for (let round = 0; round < 1000; round++) {
      let progressed = false;
      for (const id of list) {
        const n = this.node(id);
        if (n.rn?.hasReady()) {
          this.processReady(n);
          progressed = true;
        }
      }
      for (const id of list) {
        const mine = this.network.filter((m) => m.to === id);
        if (mine.length === 0) continue;
        this.network = this.network.filter((m) => m.to !== id);
        this.out.push(`> ${id} receiving messages`);
        const before = this.out.length;
        this.deliverTo(id, mine, false);
        for (let i = before; i < this.out.length; i++) this.out[i] = `  ${this.out[i]}`;
        progressed = true;
      }
      if (!progressed) return;
    }
    throw new Error('stabilize did not converge in 1000 rounds');
  }

  private raftState(): void {
    for (const id of [...this.nodes.keys()].sort((x, y) => x - y)) {
      const n = this.node(id);
      if (!n.rn) {
        this.out.push(`${id}: crashed`);
        continue;
      }
      const s = n.rn.status();
      const kind = s.confState.voters.includes(id) ? 'Voter' : s.confState.learners.includes(id) ? 'Learner' : 'Non-member';
      const extra = this.isolated.has(id) ? ' (isolated)' : '';
      this.out.push(`${id}: ${s.role} (${kind}) Term:${s.term} Lead:${s.lead}${extra}`);
    }
  }

  private raftLog(n: EnvNode): void {
    const st = n.storage;
    const first = st.firstIndex();
    const last = st.lastIndex();
    if (first > 1) this.out.push(`${n.id}: snapshot ${st.snapshot().metadata.term}/${st.snapshot().metadata.index}`);
    if (last < first) {
      this.out.push(`${n.id}: log is empty: first index=${first}, last index=${last}`);
      return;
    }
    for (const e of st.entries(first, last + 1, Infinity)) this.out.push(`${n.id}: ${describeEntry(e)}`);
  }

  private status(n: EnvNode): void {
    const s = n.rn!.status();
    this.out.push(
      `${n.id}: ${s.role} term=${s.term} vote=${s.vote} lead=${s.lead} commit=${s.commit} applied=${s.applied} transferee=${s.leadTransferee}`,
    );
    if (s.role !== StateRole.Leader) return;
    for (const [id, pr] of [...n.rn!.raft.prs].sort((x, y) => x[0] - y[0])) {
      this.out.push(`  ${id}: ${pr.toString()}${pr.recentActive ? ' active' : ''}`);
    }
  }

  private lease(n: EnvNode): void {
    const s = n.rn!.status();
    const ticks = s.leaseRemainingTicks;
    this.out.push(ticks > 0 ? `${n.id}: lease valid for ${ticks} ticks (tick ${s.tickCount})` : `${n.id}: no lease (tick ${s.tickCount})`);
  }

  /** compact ID I: the host snapshots its state machine at applied index I and drops the log before it. */
  private compact(n: EnvNode, index: number): void {
    const applied = n.rn!.status().applied;
    if (index > applied) throw new Error(`cannot compact ${n.id} at ${index}: applied is ${applied}`);
    let cs = n.confHistory[0]!.cs;
    for (const h of n.confHistory) if (h.index <= index) cs = h.cs;
    const data = enc.encode(JSON.stringify(n.sm.filter((e) => e.index <= index)));
    n.storage.createSnapshot(index, cs, data);
    n.storage.compact(index);
    this.raftLog(n);
  }

  /** The node loses everything not persisted (nothing is, between Readies) and its volatile state. */
  private crash(n: EnvNode): void {
    n.rn = undefined;
    n.sm = [];
    this.out.push(`> ${n.id} crashed`);
  }

  /** Restarts from the persisted storage; the state machine restarts from the snapshot. */
  private restart(n: EnvNode): void {
    const snap = n.storage.snapshot();
    n.sm = snap.metadata.index > 0 ? (JSON.parse(dec.decode(snap.data)) as EnvNode['sm']) : [];
    n.rn = this.newRawNode(n, snap.metadata.index);
    const hs = n.storage.hardState;
    this.out.push(
      `> ${n.id} restarted [term: ${hs.term}, vote: ${hs.vote}, commit: ${hs.commit}, applied: ${n.rn.status().applied}, lastindex: ${n.storage.lastIndex()}]`,
    );
  }
}

// ---------------------------------------------------------------- formatting

export function describeConfState(cs: ConfState): string {
  const l = cs.learners.length > 0 ? ` learners=(${cs.learners.join(' ')})` : '';
  return `voters=(${cs.voters.join(' ')})${l}`;
}

function describeConfChange(cc: ConfChange): string {
  const t = { [ConfChangeType.AddNode]: 'add', [ConfChangeType.AddLearner]: 'add-learner', [ConfChangeType.RemoveNode]: 'remove' }[cc.type];
  return `${t} ${cc.nodeId}`;
}

export function describeEntry(e: Entry): string {
  if (e.type === EntryType.ConfChange) return `${e.term}/${e.index} EntryConfChange ${describeConfChange(decodeConfChange(e.data))}`;
  return `${e.term}/${e.index} EntryNormal ${JSON.stringify(dec.decode(e.data))}`;
}

export function describeMessage(m: Message): string {
  let s = `${m.from}->${m.to} Msg${MessageType[m.type]} Term:${m.term}`;
  switch (m.type) {
    case MessageType.App:
      s += ` Log:${m.logTerm}/${m.index} Commit:${m.commit}`;
      if (m.entries.length > 0) s += ` Entries:[${m.entries.map(describeEntry).join(', ')}]`;
      break;
    case MessageType.AppResp:
      s += ` Log:${m.logTerm}/${m.index}`;
      if (m.reject) s += ` Rejected (Hint: ${m.rejectHint})`;
      break;
    case MessageType.Vote:
    case MessageType.PreVote:
      s += ` Log:${m.logTerm}/${m.index}`;
      if (m.context.length > 0) s += ` Context:${dec.decode(m.context)}`;
      break;
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      if (m.reject) s += ' Rejected';
      break;
    case MessageType.Heartbeat:
      s += ` Commit:${m.commit} SentTick:${m.sentTick}`;
      if (m.context.length > 0) s += ` Context:${dec.decode(m.context)}`;
      break;
    case MessageType.HeartbeatResp:
      s += ` SentTick:${m.sentTick}`;
      if (m.context.length > 0) s += ` Context:${dec.decode(m.context)}`;
      break;
    case MessageType.ReadIndex:
    case MessageType.ReadIndexResp:
      if (m.type === MessageType.ReadIndexResp) s += ` Index:${m.index}`;
      s += ` Context:${m.entries.map((e) => dec.decode(e.data)).join(',')}`;
      break;
    case MessageType.Snap: {
      const md = m.snapshot!.metadata;
      s += ` Snapshot: Index:${md.index} Term:${md.term} ConfState:${describeConfState(md.confState)}`;
      break;
    }
    default:
      break;
  }
  return s;
}

export function describeReady(rd: Ready): string[] {
  const lines: string[] = [`Ready MustSync=${rd.mustSync}:`];
  if (rd.softState) lines.push(`Lead:${rd.softState.leader} State:${rd.softState.role}`);
  if (rd.hardState) lines.push(`HardState Term:${rd.hardState.term} Vote:${rd.hardState.vote} Commit:${rd.hardState.commit}`);
  if (rd.entries.length > 0) lines.push('Entries:', ...rd.entries.map(describeEntry));
  if (rd.snapshot) {
    const md = rd.snapshot.metadata;
    lines.push(`Snapshot Index:${md.index} Term:${md.term} ConfState:${describeConfState(md.confState)}`);
  }
  if (rd.committedEntries.length > 0) lines.push('CommittedEntries:', ...rd.committedEntries.map(describeEntry));
  if (rd.messages.length > 0) lines.push('Messages:', ...rd.messages.map(describeMessage));
  if (rd.readStates.length > 0) {
    lines.push('ReadStates:', ...rd.readStates.map((r) => `Index:${r.index} Context:${dec.decode(r.requestCtx)}`));
  }
  return lines;
}
