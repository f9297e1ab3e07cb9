// One simulated host: it drives a RawNode the way the real server does (persist, send,
// apply, advance), with a MemoryStorage and a tiny key-value state machine as its "disk".
// A crash throws away the RawNode and everything not persisted; the disk survives.

import {
  bootstrapState,
  decodeConfChange,
  EntryType,
  MemoryStorage,
  MessageType,
  RawNode,
  StateRole,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type PlantedBugs,
  type Ready,
  type Snapshot,
} from '../../src/raft/index.js';
import type { Rng } from './rng.js';
import type { SafetyChecker } from './safety-checker.js';

export interface SimNodeConfig {
  electionTimeoutTicks: number;
  heartbeatIntervalTicks: number;
  maxMsgBytes: number;
  maxInflightMsgs: number;
  leaseMarginTicks: number;
  /** Take a snapshot and compact once this many applied entries sit in the log. */
  snapshotEveryEntries: number;
  plantedBugs?: PlantedBugs;
}

/** The durable part of a host: survives crashes. */
export interface SimDisk {
  storage: MemoryStorage;
  kv: Map<string, string>;
  appliedIndex: number;
  confState: ConfState;
}

export type ReadMode = 'read-index' | 'lease';

interface PendingRead {
  ctx: string;
  mode: ReadMode;
  lowerBound: number;
  invokeTick: number;
  /** Known once the read index is granted. */
  readIndex?: number;
}

/** What the simulator's nemesis sees of a Ready the host has just persisted. */
export interface ReadyInfo {
  isLeader: boolean;
  /** This Ready announces that the node became leader. */
  becameLeader: boolean;
  newEntries: number;
  /** The persisted commit index moved forward. */
  commitAdvanced: boolean;
  messages: number;
}

/** The nemesis's decision for one persisted Ready. */
export interface ReadyFault {
  /** Die before applying (after sending the messages that got out, see sendFraction). */
  crash: boolean;
  /** Each message leaves the host with this probability (1: all, 0: none). */
  sendFraction: number;
}

interface PendingWrite {
  index: number;
  data: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class SimNode {
  node: RawNode;
  alive = true;
  private pendingReads: PendingRead[] = [];
  private pendingWrites: PendingWrite[] = [];
  private readSeq = 0;
  readsServed = 0;
  writesAcked = 0;

  constructor(
    readonly id: NodeId,
    readonly disk: SimDisk,
    private readonly cfg: SimNodeConfig,
    private readonly rng: Rng,
    private readonly checker: SafetyChecker,
    private readonly trace: (s: string) => void,
  ) {
    this.node = this.makeRawNode();
  }

  /** A founding member's disk: bootstrapped like a real node (membership in the log). */
  static bootstrapDisk(peers: NodeId[]): SimDisk {
    const b = bootstrapState(peers.map((id) => ({ id })));
    const storage = new MemoryStorage(b.confState);
    storage.append(b.entries);
    storage.setHardState(b.hardState);
    return { storage, kv: new Map(), appliedIndex: 0, confState: b.confState };
  }

  /** A joining node's disk: empty; it learns everything from the leader. */
  static emptyDisk(): SimDisk {
    const confState = { voters: [], learners: [] };
    return { storage: new MemoryStorage(confState), kv: new Map(), appliedIndex: 0, confState };
  }

  private makeRawNode(): RawNode {
    return new RawNode({
      id: this.id,
      electionTimeoutTicks: this.cfg.electionTimeoutTicks,
      heartbeatIntervalTicks: this.cfg.heartbeatIntervalTicks,
      storage: this.disk.storage,
      appliedIndex: this.disk.appliedIndex,
      maxMsgBytes: this.cfg.maxMsgBytes,
      maxInflightMsgs: this.cfg.maxInflightMsgs,
      maxCommittedBytesPerReady: 64 * 1024,
      checkQuorum: true,
      preVote: true,
      leaseMarginTicks: this.cfg.leaseMarginTicks,
      randomInt: (n) => this.rng.int(n),
      logger: { debug: () => {}, info: (m) => this.trace(m), warn: (m) => this.trace(m) },
      plantedBugs: this.cfg.plantedBugs,
    });
  }

  crash(): void {
    this.alive = false;
    this.pendingReads = [];
    this.pendingWrites = [];
  }

  restart(): void {
    this.alive = true;
    // A crash between persisting a received snapshot and restoring the state machine from it
    // leaves the log ahead of the state machine: finish the restore first, as the server must.
    const snap = this.disk.storage.snapshot();
    if (snap.metadata.index > this.disk.appliedIndex) this.restoreSnapshot(snap);
    this.disk.storage.setConfState(this.disk.confState);
    this.node = this.makeRawNode();
    this.checker.onRestart(this.id);
  }

  get isLeader(): boolean {
    return this.node.raft.state === StateRole.Leader;
  }

  /** Proposes a write; returns false if this node cannot take it now. */
  proposeWrite(data: string): boolean {
    const res = this.node.propose(enc.encode(data));
    if (!res.ok) return false;
    this.pendingWrites.push({ index: res.index, data });
    return true;
  }

  startRead(mode: ReadMode, lowerBound: number, nowTick: number): boolean {
    const ctx = `r${this.id}-${++this.readSeq}`;
    if (mode === 'lease') {
      if (!this.isLeader || this.node.leaseRemainingTicks() <= 0) return false;
      this.pendingReads.push({ ctx, mode, lowerBound, invokeTick: nowTick, readIndex: this.node.raft.log.committed });
    } else {
      this.pendingReads.push({ ctx, mode, lowerBound, invokeTick: nowTick });
      this.node.readIndex(enc.encode(ctx));
    }
    return true;
  }

  /** Gives up on reads older than timeoutTicks (the client would see a timeout). */
  expireReads(nowTick: number, timeoutTicks: number): void {
    this.pendingReads = this.pendingReads.filter((r) => nowTick - r.invokeTick < timeoutTicks);
  }

  /**
   * Handles one Ready like the server's loop. After the fsync, `nemesis` may decide the host's
   * fate for this Ready: crash before sending (or after sending only some of the messages, as a
   * process dying mid-write would), or lose a random subset of the messages.
   */
  handleReady(send: (m: Message) => boolean, nemesis: (info: ReadyInfo) => ReadyFault | undefined): 'ok' | 'crashed' {
    const rd = this.node.ready();
    const commitBefore = this.disk.storage.hardState.commit;
    this.persist(rd);
    const info: ReadyInfo = {
      isLeader: this.isLeader,
      becameLeader: rd.softState?.role === StateRole.Leader,
      newEntries: rd.entries.length,
      commitAdvanced: rd.hardState !== undefined && rd.hardState.commit > commitBefore,
      messages: rd.messages.length,
    };
    const fault = nemesis(info);
    const sendFraction = fault?.sendFraction ?? 1;
    // Like a real transport, report whether each snapshot made it out.
    const snapReports: Array<[NodeId, boolean]> = [];
    for (const m of rd.messages) {
      const sent = (sendFraction >= 1 || this.rng.chance(sendFraction)) && send(m);
      if (m.type === MessageType.Snap) snapReports.push([m.to, sent]);
    }
    if (fault?.crash) {
      this.crash();
      return 'crashed';
    }
    if (rd.snapshot) this.restoreSnapshot(rd.snapshot);
    for (const e of rd.committedEntries) this.apply(e);
    for (const rs of rd.readStates) {
      const ctx = dec.decode(rs.requestCtx);
      const pr = this.pendingReads.find((r) => r.ctx === ctx);
      if (pr) pr.readIndex = rs.index;
    }
    this.node.advance(rd);
    for (const [to, ok] of snapReports) this.node.reportSnapshot(to, ok);
    this.serveReads();
    return 'ok';
  }

  private persist(rd: Ready): void {
    const st = this.disk.storage;
    if (rd.snapshot) st.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      const termBefore = first - 1 >= st.firstIndex() - 1 ? safeTerm(st, first - 1) : 0;
      st.append(rd.entries);
      this.checker.onPersistEntries(this.id, rd.entries, termBefore ?? 0);
    }
    if (rd.hardState) {
      st.setHardState(rd.hardState);
      this.checker.onCommit(this.id, rd.hardState.commit, (i) => safeTerm(st, i), st.firstIndex());
    }
    if (rd.softState?.role === StateRole.Leader) {
      const r = this.node.raft;
      this.checker.onBecomeLeader(this.id, r.term, (i) => r.log.maybeTerm(i), r.log.firstIndex());
      this.trace(`n${this.id} is leader of term ${r.term}`);
    }
  }

  private restoreSnapshot(snap: Snapshot): void {
    const state = JSON.parse(dec.decode(snap.data)) as { kv: [string, string][] };
    this.disk.kv = new Map(state.kv);
    this.disk.appliedIndex = snap.metadata.index;
    this.disk.confState = snap.metadata.confState;
    this.pendingWrites = this.pendingWrites.filter((w) => w.index > snap.metadata.index);
  }

  private apply(e: Entry): void {
    if (e.index <= this.disk.appliedIndex) return;
    this.checker.onApply(this.id, e);
    if (e.type === EntryType.ConfChange) {
      const cs = this.node.applyConfChange(decodeConfChange(e.data));
      this.disk.confState = cs;
      this.trace(`n${this.id} applied conf change at ${e.index}: voters=${cs.voters} learners=${cs.learners}`);
    } else if (e.data.length > 0) {
      const [k, v] = dec.decode(e.data).split('=') as [string, string];
      this.disk.kv.set(k, v);
    }
    this.disk.appliedIndex = e.index;
    this.ackWrites(e);
  }

  private ackWrites(e: Entry): void {
    // A write proposed at index i is acknowledged when that very entry is applied at i; any
    // other entry there means it was overwritten and never committed.
    if (this.pendingWrites.length === 0) return;
    const data = dec.decode(e.data);
    this.pendingWrites = this.pendingWrites.filter((w) => {
      if (w.index > e.index) return true;
      if (w.index === e.index && w.data === data) {
        this.writesAcked++;
        this.checker.onComplete(e.index);
      }
      return false;
    });
  }

  private serveReads(): void {
    const applied = this.disk.appliedIndex;
    const rest: PendingRead[] = [];
    for (const r of this.pendingReads) {
      if (r.readIndex === undefined || applied < r.readIndex) {
        rest.push(r);
        continue;
      }
      this.readsServed++;
      this.checker.onRead(this.id, r.mode, applied, r.lowerBound, r.invokeTick);
    }
    this.pendingReads = rest;
  }

  /** Snapshot and compact when enough applied entries sit in the log. */
  maybeCompact(): void {
    const st = this.disk.storage;
    const applied = this.disk.appliedIndex;
    if (applied - st.firstIndex() < this.cfg.snapshotEveryEntries) return;
    if (applied > st.lastIndex()) return;
    const data = enc.encode(JSON.stringify({ kv: [...this.disk.kv] }));
    st.createSnapshot(applied, this.disk.confState, data);
    // Keep a few entries so slightly lagging followers can still catch up from the log.
    const keep = Math.floor(this.cfg.snapshotEveryEntries / 4);
    if (applied - keep > st.firstIndex()) st.compact(applied - keep);
  }
}

function safeTerm(st: MemoryStorage, i: number): number | undefined {
  try {
    return st.term(i);
  } catch {
    return undefined;
  }
}
