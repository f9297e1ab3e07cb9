// The node host: owns the RawNode, its LevelDB storage, the state machine and the peer
// transport, and runs the Ready loop of DESIGN.md. Everything that arrives (peer messages,
// ticks, proposals, read requests, admin operations) is queued; one turn steps all of it
// into the core, takes ONE Ready, persists it in ONE synced batch, sends, applies, answers
// waiting clients and advances. Proposals that arrive during a turn form the next batch
// (group commit).

import type { Logger as PinoLogger } from 'pino';
import {
  bootstrapState,
  ConfChangeType,
  decodeConfChange,
  EntryType,
  MessageType,
  NONE,
  ProgressState,
  RawNode,
  StateRole,
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type Ready,
} from '../raft/index.js';
import type { ApplyResult, KvStateMachine, PreparedApply } from '../state-machine/index.js';
import type { BatchOp, LevelRaftStorage, NodeDb } from '../storage/index.js';
import { decodeMemberContext, type MemberContext } from '../transport/index.js';
import type { Transport } from '../transport/index.js';
import type { NodeConfig, PeerSpec } from './config.js';
import { CommitNoticeHold } from './commit-notices.js';
import { deadlineExceeded, KvError, resourceExhausted, unavailable, unavailableNotApplied } from './errors.js';

/** Raft log entries one Ready's compaction step deletes at most. */
const COMPACT_STEP_ENTRIES = 1_000;

/** Bounds of the test-only clock rate (Admin SetClockRate). */
export const MIN_CLOCK_RATE = 0.1;
export const MAX_CLOCK_RATE = 10;

const MEMBERS_KEY = new Uint8Array([0x68, 0x2f, 0x6d]); // 'h/m': host-owned member address table

interface ProposalWaiter {
  term: number;
  resolve: (r: ApplyResult) => void;
  reject: (e: KvError) => void;
  timer: NodeJS.Timeout;
  /** Answer as soon as the result is known, before the apply batch is written (see propose); a function decides by the result. */
  early: boolean | ((r: ApplyResult) => boolean);
}

interface ReadWaiter {
  readIndex?: number;
  resolve: (appliedIndex: number) => void;
  reject: (e: KvError) => void;
  timer: NodeJS.Timeout;
}

type AdminOp = () => void;

export interface MemberInfo extends MemberContext {
  id: NodeId;
  isLearner: boolean;
}

export class NodeHost {
  readonly rawNode: RawNode;
  private inbox: Message[] = [];
  /** This node's monotonic ms of the last message from each peer (see reachableVoters). */
  private readonly lastHeardFromMs = new Map<NodeId, number>();
  private pendingTicks = 0;
  private proposalQueue: Array<{ data: Uint8Array; waiter: Omit<ProposalWaiter, 'term'> }> = [];
  private readQueue: Array<{ ctx: string; waiter: ReadWaiter }> = [];
  private adminQueue: AdminOp[] = [];
  private readonly proposals = new Map<number, ProposalWaiter>();
  private readonly reads = new Map<string, ReadWaiter>();
  private readSeq = 0;
  /** ReadIndex context of a turn's batch -> the contexts of every read in it (see stepInputs). */
  private readonly readBatches = new Map<string, string[]>();
  private turnScheduled = false;
  private turnRunning = false;
  private tickTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private members = new Map<NodeId, MemberContext>();
  /** Monotonic ms when we last heard from a leader (or were one). */
  lastLeaderContactMs = performance.now();
  /**
   * Test-only clock drift (Admin SetClockRate): this node's notion of elapsed time runs at
   * `clockRate` x real time, for both its Raft ticks and its monotonic clock. 1 = honest.
   */
  private clockRate = 1;
  private clockAnchorRealMs = performance.now();
  private clockAnchorVirtualMs = this.clockAnchorRealMs;
  /**
   * Monotonic ms at which each recent tick was stepped, by tickCount modulo the ring size. The
   * lease is counted in ticks; a paused or starved process does not tick, so the lease is also
   * checked against this clock: the step time of the lease's start tick is never later than
   * the heartbeat's send, which keeps the check conservative.
   */
  private readonly tickTimesMs: Float64Array;
  private appliedWaiters: Array<{ done: () => boolean; resolve: () => void; reject: (e: KvError) => void; timer: NodeJS.Timeout }> = [];
  private readonly commitNotices: CommitNoticeHold;
  /** Resolved when the loop dies on an unrecoverable error (disk failure, invariant). */
  fatal: Error | undefined;
  private readonly enc = new TextEncoder();
  private readonly dec = new TextDecoder();

  private constructor(
    readonly cfg: NodeConfig,
    readonly storage: LevelRaftStorage,
    readonly sm: KvStateMachine,
    private readonly transport: Transport,
    private readonly log: PinoLogger,
    members: Map<NodeId, MemberContext>,
    /** Where `--peers` disagreed with the stored membership at start (the stored one is used). */
    readonly memberAddressConflicts: readonly MemberAddressConflict[],
  ) {
    this.members = members;
    this.commitNotices = new CommitNoticeHold(cfg.commitNoticeDelayMs, (msgs) => this.transport.send(msgs), () => this.isLeader() && !this.stopped);
    this.tickTimesMs = new Float64Array(cfg.electionTimeoutTicks * 4).fill(-Infinity);
    const appliedIndex = Math.min(sm.appliedIndex(), storage.hardState().commit);
    this.rawNode = new RawNode({
      id: cfg.id,
      electionTimeoutTicks: cfg.electionTimeoutTicks,
      heartbeatIntervalTicks: cfg.heartbeatIntervalTicks,
      storage,
      appliedIndex,
      maxMsgBytes: cfg.maxMsgBytes,
      maxInflightMsgs: cfg.maxInflightMsgs,
      maxCommittedBytesPerReady: 4 * 1024 * 1024,
      checkQuorum: true,
      preVote: true,
      leaseMarginTicks: cfg.leaseMarginTicks,
      randomInt: (n) => Math.floor(Math.random() * n),
      logger: { debug: (m) => log.debug(m), info: (m) => log.info(m), warn: (m) => log.warn(m) },
    });
  }

  /** Opens (bootstrapping if brand new) and starts the loop. */
  static async start(
    cfg: NodeConfig,
    deps: { db: NodeDb; storage: LevelRaftStorage; sm: KvStateMachine; transport: Transport; log: PinoLogger },
  ): Promise<NodeHost> {
    const { members, conflicts } = await loadMembers(deps.db, cfg.initialCluster);
    if (conflicts.length > 0) deps.log.warn({ conflicts }, 'the membership stored in the data directory differs from --peers; the stored addresses are used');
    const fresh = deps.storage.lastIndex() === 0 && deps.storage.hardState().term === 0;
    if (fresh && !cfg.join) await bootstrap(cfg, deps.storage);
    const host = new NodeHost(cfg, deps.storage, deps.sm, deps.transport, deps.log, members, conflicts);
    for (const [id, m] of members) if (id !== cfg.id) deps.transport.addPeer(id, m.peerAddr);
    deps.transport.onMessage((msgs) => host.receive(msgs));
    deps.transport.onUnreachable((peer) => host.enqueueAdmin(() => host.rawNode.reportUnreachable(peer)));
    deps.transport.onSnapshotStatus((peer, ok) => host.enqueueAdmin(() => host.rawNode.reportSnapshot(peer, ok)));
    host.armTickTimer();
    host.scheduleTurn();
    return host;
  }

  /** True once stop() began (or the loop died): long-lived streams should end. */
  get stopping(): boolean {
    return this.stopped;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.commitNotices.stop();
    // Proposals already in the log may still commit elsewhere: their outcome is unknown.
    const inLog = unavailable('node is shutting down; the write was proposed and may still commit');
    const notSent = unavailableNotApplied('node is shutting down; the write was not proposed');
    for (const w of this.proposals.values()) this.failWaiter(w, inLog);
    for (const w of this.reads.values()) this.failWaiter(w, notSent);
    for (const p of this.proposalQueue) this.failWaiter(p.waiter, notSent);
    for (const r of this.readQueue) this.failWaiter(r.waiter, notSent);
    for (const w of this.appliedWaiters) {
      clearTimeout(w.timer);
      w.reject(notSent);
    }
    this.appliedWaiters = [];
    this.proposals.clear();
    this.reads.clear();
    this.readBatches.clear();
    this.proposalQueue = [];
    this.readQueue = [];
    // Let an in-flight turn finish its batch before the db closes.
    for (let i = 0; i < 200 && this.turnRunning; i++) await new Promise((r) => setTimeout(r, 5));
  }

  private failWaiter(w: { reject: (e: KvError) => void; timer: NodeJS.Timeout }, e: KvError): void {
    clearTimeout(w.timer);
    w.reject(e);
  }

  // ------------------------------------------------------------------ inputs

  private receive(msgs: Message[]): void {
    for (const m of msgs) this.inbox.push(m);
    this.scheduleTurn();
  }

  enqueueAdmin(op: AdminOp): void {
    this.adminQueue.push(op);
    this.scheduleTurn();
  }

  /** Runs `fn` against the core at the next turn (never between ready and advance). */
  withCore<T>(fn: (n: RawNode) => T): Promise<T> {
    return new Promise((resolve, reject) => {
      this.enqueueAdmin(() => {
        try {
          resolve(fn(this.rawNode));
        } catch (e) {
          reject(e);
        }
      });
    });
  }

  /**
   * Replicates a command; resolves with its apply result once committed and applied here.
   * With `early`, it resolves as soon as the result is computed, before the apply batch is
   * written and published: the entry is committed (durable on a quorum, replayed after a
   * crash) and every read barrier waits for the applied index, so a client cannot observe
   * the difference; only callers that read this node's state right after the write (a lock
   * waiter) must not ask for it. A function asks for it only for the results it returns true for.
   */
  propose(data: Uint8Array, timeoutMs: number, opts: { early?: boolean | ((r: ApplyResult) => boolean) } = {}): Promise<ApplyResult> {
    this.checkAlive();
    if (this.proposals.size + this.proposalQueue.length >= this.cfg.limits.maxPendingProposals) {
      return Promise.reject(resourceExhausted(`too many pending proposals (maxPendingProposals=${this.cfg.limits.maxPendingProposals})`, true));
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        early: opts.early ?? false,
        timer: setTimeout(() => this.timeoutProposal(waiter), timeoutMs),
      };
      this.proposalQueue.push({ data, waiter });
      this.scheduleTurn();
    });
  }

  private timeoutProposal(waiter: Omit<ProposalWaiter, 'term'>): void {
    const queued = this.proposalQueue.findIndex((p) => p.waiter === waiter);
    if (queued >= 0) this.proposalQueue.splice(queued, 1);
    for (const [idx, w] of this.proposals) if (w.resolve === waiter.resolve) this.proposals.delete(idx);
    waiter.reject(deadlineExceeded('write not applied before the deadline; its outcome is unknown (it may still commit)'));
  }

  /** Resolves with the applied index at which a linearizable read may be served. */
  readBarrier(timeoutMs: number): Promise<number> {
    this.checkAlive();
    if (this.rawNode.raft.lead === NONE) {
      return Promise.reject(unavailable('no leader known: cannot confirm a read index now (election in progress or node partitioned)'));
    }
    if (this.reads.size + this.readQueue.length >= this.cfg.limits.maxPendingReads) {
      return Promise.reject(resourceExhausted(`too many pending reads (maxPendingReads=${this.cfg.limits.maxPendingReads})`));
    }
    const ctx = `${this.cfg.id}:${++this.readSeq}`;
    return new Promise((resolve, reject) => {
      const waiter: ReadWaiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.reads.delete(ctx);
          const q = this.readQueue.findIndex((r) => r.ctx === ctx);
          if (q >= 0) this.readQueue.splice(q, 1);
          reject(unavailable('no read index before the deadline (no leader reachable?)', this.leaderHint()));
        }, timeoutMs),
      };
      this.readQueue.push({ ctx, waiter });
      this.scheduleTurn();
    });
  }

  /**
   * Resolves true once `done()` holds (checked after every apply), false after timeoutMs.
   * Used by lease reads (applied >= commit) and session reads (revision >= min_revision).
   */
  waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = {
        done,
        resolve: () => resolve(true),
        reject: () => resolve(false),
        timer: setTimeout(() => {
          this.appliedWaiters = this.appliedWaiters.filter((x) => x !== w);
          resolve(false);
        }, timeoutMs),
      };
      this.appliedWaiters.push(w);
    });
  }

  /**
   * The commit index a lease read may be served at, or undefined when this node holds no valid
   * lease: the core's tick-based lease AND the monotonic clock must both agree.
   */
  leaseReadIndex(): number | undefined {
    const r = this.rawNode.raft;
    if (r.state !== StateRole.Leader || r.leaseRemainingTicks() <= 0) return undefined;
    return this.leaseHeldByClock() ? r.log.committed : undefined;
  }

  private leaseHeldByClock(): boolean {
    const r = this.rawNode.raft;
    const startTick = r.leaseStartTick();
    if (startTick < 0 || r.tickCount - startTick >= this.tickTimesMs.length) return false;
    const startMs = this.tickTimesMs[startTick % this.tickTimesMs.length]!;
    const leaseMs = (this.cfg.electionTimeoutTicks - this.cfg.leaseMarginTicks) * this.cfg.tickIntervalMs;
    return this.nowMs() - startMs < leaseMs;
  }

  /**
   * How stale this node's view may be, in ms: a follower's time since it last heard from a
   * leader; a leader's time since the newest heartbeat a quorum acknowledged was sent.
   */
  stalenessMs(): number {
    const r = this.rawNode.raft;
    if (r.state !== StateRole.Leader) return Math.max(0, this.nowMs() - this.lastLeaderContactMs);
    const startTick = r.leaseStartTick();
    if (startTick < 0 || r.tickCount - startTick >= this.tickTimesMs.length) return Math.max(0, this.nowMs() - this.lastLeaderContactMs);
    return Math.max(0, this.nowMs() - this.tickTimesMs[startTick % this.tickTimesMs.length]!);
  }

  private checkAlive(): void {
    if (this.fatal) throw unavailableNotApplied(`node stopped after a fatal error: ${this.fatal.message}`);
    if (this.stopped) throw unavailableNotApplied('node is shutting down');
  }

  // ------------------------------------------------------------------ the loop

  private scheduleTurn(): void {
    if (this.turnScheduled || this.stopped) return;
    this.turnScheduled = true;
    setImmediate(() => {
      this.turnScheduled = false;
      if (this.turnRunning) return; // the running turn loops until idle
      void this.runTurns();
    });
  }

  private async runTurns(): Promise<void> {
    this.turnRunning = true;
    try {
      for (;;) {
        this.stepInputs();
        if (!this.rawNode.hasReady() || this.stopped) break;
        await this.handleReady(this.rawNode.ready());
      }
    } catch (e) {
      this.fatal = e as Error;
      this.log.fatal({ err: e }, 'ready loop failed; node stops serving');
      if (this.tickTimer) clearInterval(this.tickTimer);
      this.stopped = true;
    } finally {
      this.turnRunning = false;
    }
    if (this.inbox.length || this.pendingTicks || this.proposalQueue.length || this.readQueue.length || this.adminQueue.length) {
      this.scheduleTurn();
    }
  }

  private stepInputs(): void {
    const n = this.rawNode;
    for (; this.pendingTicks > 0; this.pendingTicks--) {
      n.tick();
      this.tickTimesMs[n.raft.tickCount % this.tickTimesMs.length] = this.nowMs();
    }
    const inbox = this.inbox;
    this.inbox = [];
    const nowMs = inbox.length > 0 ? this.nowMs() : 0;
    for (const m of inbox) {
      this.lastHeardFromMs.set(m.from, nowMs);
      if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.lastLeaderContactMs = nowMs;
      }
      n.step(m);
    }
    const admin = this.adminQueue;
    this.adminQueue = [];
    for (const op of admin) op();
    this.stepProposals();
    const reads = this.readQueue;
    this.readQueue = [];
    if (reads.length === 0) return;
    // One ReadIndex for every read queued in this turn (as etcd's read loop does): its index is
    // at least the commit index when the last of them arrived, so one heartbeat round serves all.
    const ctxs = reads.map((r) => r.ctx);
    for (const r of reads) this.reads.set(r.ctx, r.waiter);
    this.readBatches.set(ctxs[0]!, ctxs);
    n.readIndex(this.enc.encode(ctxs[0]!));
  }

  private stepProposals(): void {
    if (this.proposalQueue.length === 0) return;
    const batch = this.proposalQueue;
    this.proposalQueue = [];
    const res = this.rawNode.proposeBatch(batch.map((p) => p.data));
    if (!res.ok) {
      const err = unavailableNotApplied(`not the leader (${res.reason})`, this.leaderHint());
      for (const p of batch) this.failWaiter(p.waiter, err);
      return;
    }
    const term = this.rawNode.raft.term;
    const first = res.index - batch.length + 1;
    batch.forEach((p, i) => this.proposals.set(first + i, { ...p.waiter, term }));
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState) this.onSoftState(rd.softState.role, rd.softState.leader);
    // 0. A leader's appends and heartbeats go out before its own fsync (Raft thesis 10.2.1):
    //    the core counts the leader's own match only after advance() (onPersisted), so nothing
    //    commits on an entry that lives only in the leader's memory. Only when term and vote are
    //    already durable; everything else (acks, votes, snapshots) waits for the save.
    const messages = this.sendEarlyLeaderMessages(rd);
    // When no message waits for this Ready's fsync (a leader's went out above) and the committed
    // entries are already durable here (from earlier Readies), run them first: their clients
    // are answered before this Ready's write, and their effects go into that same batch (one
    // LevelDB write per Ready, synced only when the Ready must be). A crash before it loses the
    // apply with the rest of the batch; the entries are re-applied from the log.
    const appliedFirst = messages.length === 0 && this.canApplyEarly(rd) ? await this.prepareApply(rd.committedEntries) : undefined;
    // 1. Persist (a received snapshot replaces the state machine in the same batch).
    let restore: Awaited<ReturnType<KvStateMachine['prepareRestore']>> | undefined;
    if (rd.snapshot) restore = await this.sm.prepareRestore(rd.snapshot.data);
    // A Ready that changes only the commit index need not be fsynced (Raft's mustSync): the
    // commit index is re-learned after a crash, and start-up uses min(applied, commit).
    // Never both: canApplyEarly refuses a Ready with a snapshot (an apply computed before a
    // restore would not hold after it).
    if (restore && appliedFirst) throw new Error('internal: an early apply and a snapshot restore in one Ready');
    const extraOps = restore?.ops ?? appliedFirst?.ops ?? [];
    try {
      await this.storage.save({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot }, extraOps, { sync: rd.mustSync });
    } catch (err) {
      appliedFirst?.abort();
      throw err;
    }
    restore?.commit();
    if (appliedFirst) {
      appliedFirst.written();
      this.finishApply(rd.committedEntries, appliedFirst);
    }
    // 2. Send (snapshots carry the state machine's current state: a "merged" snapshot whose
    //    data may be newer than its metadata; the receiver skips entries it already holds).
    await this.fillSnapshots(messages);
    if (messages.length > 0) this.sendMessages(messages);
    // 3. Apply.
    if (!appliedFirst && rd.committedEntries.length > 0) {
      const prepared = await this.prepareApply(rd.committedEntries);
      await prepared.write();
      this.finishApply(rd.committedEntries, prepared);
    }
    // 4. Read states.
    for (const rs of rd.readStates) {
      const key = this.dec.decode(rs.requestCtx);
      for (const ctx of this.readBatches.get(key) ?? [key]) {
        const w = this.reads.get(ctx);
        if (w) w.readIndex = rs.index;
      }
      this.readBatches.delete(key);
    }
    this.rawNode.advance(rd);
    this.serveReads();
    await this.maybeSnapshot();
  }

  private canApplyEarly(rd: Ready): boolean {
    const ents = rd.committedEntries;
    if (ents.length === 0 || rd.snapshot || ents[ents.length - 1]!.index > this.storage.lastIndex()) return false;
    for (const e of ents) if (e.type === EntryType.ConfChange) return false;
    return true;
  }

  /** Sends a leader's App/Heartbeat messages now (see handleReady); returns the rest. */
  private sendEarlyLeaderMessages(rd: Ready): Message[] {
    if (rd.messages.length === 0 || this.rawNode.raft.state !== StateRole.Leader || rd.snapshot) return rd.messages;
    const durable = this.storage.hardState();
    if (rd.hardState && (rd.hardState.term !== durable.term || rd.hardState.vote !== durable.vote)) return rd.messages;
    const early: Message[] = [];
    const rest: Message[] = [];
    for (const m of rd.messages) (m.type === MessageType.App || m.type === MessageType.Heartbeat ? early : rest).push(m);
    if (early.length > 0) this.sendMessages(early);
    return rest;
  }

  /** To the transport, holding back a leader's commit notices (commit-notices.ts). */
  private sendMessages(messages: Message[]): void {
    this.commitNotices.send(messages, (m) => this.isCommitNotice(m));
  }

  /** An append with no entries to a follower in steady replication: its only news is the commit index. */
  private isCommitNotice(m: Message): boolean {
    if (m.type !== MessageType.App || m.entries.length > 0) return false;
    const r = this.rawNode.raft;
    return r.state === StateRole.Leader && r.prs.get(m.to)?.state === ProgressState.Replicate;
  }

  private onSoftState(role: StateRole, leader: NodeId): void {
    this.log.info({ role, leader }, 'role changed');
    if (role === StateRole.Leader) this.lastLeaderContactMs = this.nowMs();
  }

  private async fillSnapshots(messages: Message[]): Promise<void> {
    let data: Uint8Array | undefined;
    for (const m of messages) {
      if (m.type !== MessageType.Snap || !m.snapshot) continue;
      data ??= (await this.sm.createSnapshot()).data;
      m.snapshot = { metadata: m.snapshot.metadata, data };
    }
  }

  /**
   * Runs committed entries against the state machine (conf changes take effect in the core
   * here) and answers the writes that asked for early answers; the effects are not written yet.
   */
  private async prepareApply(entries: Entry[]): Promise<PreparedApply> {
    const extraOps: BatchOp[] = [];
    const confChanges: Array<{ index: number; cc: ConfChange }> = [];
    for (const e of entries) {
      if (e.type !== EntryType.ConfChange) continue;
      confChanges.push({ index: e.index, cc: decodeConfChange(e.data) });
    }
    // Conf changes take effect in the core as they are applied; the resulting membership is
    // written in the same batch as the apply so a restart sees what the applied index implies.
    let lastConf: { index: number; cs: ConfState } | undefined;
    for (const { index, cc } of confChanges) {
      const cs = this.rawNode.applyConfChange(cc);
      lastConf = { index, cs };
      this.onMembershipChange(cc);
    }
    if (lastConf) {
      extraOps.push(this.storage.confStateOp(lastConf.index, lastConf.cs));
      extraOps.push({ type: 'put', key: MEMBERS_KEY, value: this.enc.encode(JSON.stringify([...this.members])) });
    }
    const prepared = await this.sm.prepareApply(entries, { extraOps });
    let answered = 0;
    for (let i = 0; i < entries.length; i++) answered += this.resolveProposal(entries[i]!, prepared.results[i]!, true);
    // Let the answers' promise chains reach gRPC before the batch write's own setup runs.
    if (answered > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    return prepared;
  }

  /** After the apply was written and published: answers the writes that waited for that. */
  private finishApply(entries: Entry[], prepared: PreparedApply): void {
    for (let i = 0; i < entries.length; i++) this.resolveProposal(entries[i]!, prepared.results[i]!, false);
  }

  private onMembershipChange(cc: ConfChange): void {
    if (cc.type === ConfChangeType.RemoveNode) {
      this.members.delete(cc.nodeId);
      if (cc.nodeId !== this.cfg.id) this.transport.removePeer(cc.nodeId);
      return;
    }
    if (cc.context.length === 0) return;
    const ctx = decodeMemberContext(cc.context);
    this.members.set(cc.nodeId, ctx);
    if (cc.nodeId !== this.cfg.id) this.transport.addPeer(cc.nodeId, ctx.peerAddr);
  }

  /** Answers the waiter of `e`, if any, when its `early` is `early`; returns how many it answered (0 or 1). */
  private resolveProposal(e: Entry, r: ApplyResult, early: boolean): number {
    const w = this.proposals.get(e.index);
    if (!w || (typeof w.early === 'function' ? w.early(r) : w.early) !== early) return 0;
    this.proposals.delete(e.index);
    clearTimeout(w.timer);
    // Another leader's entry at our index means our proposal was overwritten: never committed.
    if (e.term !== w.term) w.reject(unavailableNotApplied('leadership changed before the write committed; it was not applied', this.leaderHint()));
    else w.resolve(r);
    return 1;
  }

  private serveReads(): void {
    if (this.appliedWaiters.length > 0) {
      this.appliedWaiters = this.appliedWaiters.filter((w) => {
        if (!w.done()) return true;
        clearTimeout(w.timer);
        w.resolve();
        return false;
      });
    }
    // Batches whose ReadIndex was dropped (no leader) end when all their reads timed out.
    for (const [key, ctxs] of this.readBatches) if (!ctxs.some((c) => this.reads.has(c))) this.readBatches.delete(key);
    const applied = this.sm.appliedIndex();
    for (const [ctx, w] of this.reads) {
      if (w.readIndex === undefined || w.readIndex > applied) continue;
      this.reads.delete(ctx);
      clearTimeout(w.timer);
      w.resolve(applied);
    }
  }

  private async maybeSnapshot(): Promise<void> {
    const applied = Math.min(this.sm.appliedIndex(), this.storage.hardState().commit);
    if (applied - this.storage.snapshot().metadata.index >= this.cfg.snapshotEveryEntries) {
      await this.storage.createSnapshot(applied, this.rawNode.raft.confState());
      this.log.info({ applied }, 'snapshot taken');
    }
    // Compact the log behind the snapshot (keeping compactionLagEntries for slow followers), at
    // most COMPACT_STEP_ENTRIES per Ready: deleting ~9k entries in one batch stalled the loop ~15 ms.
    const target = this.storage.snapshot().metadata.index - this.cfg.compactionLagEntries;
    const first = this.storage.firstIndex();
    if (target >= first) await this.storage.compact(Math.min(target, first - 1 + COMPACT_STEP_ENTRIES));
  }

  /** This node's monotonic clock in ms (scaled by the test-only clock rate). */
  nowMs(): number {
    return this.clockAnchorVirtualMs + (performance.now() - this.clockAnchorRealMs) * this.clockRate;
  }

  /**
   * Test-only: makes this node's time run at `rate` x real time (ticks and monotonic clock), to
   * model clock drift. LEASE reads are only safe while drift stays within the lease margin.
   */
  setClockRate(rate: number): void {
    if (!(rate >= MIN_CLOCK_RATE && rate <= MAX_CLOCK_RATE)) throw new RangeError(`clock rate ${rate} is not in [${MIN_CLOCK_RATE}, ${MAX_CLOCK_RATE}]`);
    this.clockAnchorVirtualMs = this.nowMs();
    this.clockAnchorRealMs = performance.now();
    this.clockRate = rate;
    if (!this.stopped) this.armTickTimer();
  }

  get currentClockRate(): number {
    return this.clockRate;
  }

  private armTickTimer(): void {
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.tickTimer = setInterval(() => {
      this.pendingTicks++;
      this.scheduleTurn();
    }, this.cfg.tickIntervalMs / this.clockRate);
  }

  // ------------------------------------------------------------------ status

  leaderHint(): { id: NodeId; clientAddr: string } | undefined {
    const lead = this.rawNode.raft.lead;
    if (lead === NONE) return undefined;
    const m = this.members.get(lead);
    return m ? { id: lead, clientAddr: m.clientAddr } : undefined;
  }

  isLeader(): boolean {
    return this.rawNode.raft.state === StateRole.Leader;
  }

  memberList(): MemberInfo[] {
    const cs = this.rawNode.raft.confState();
    const out: MemberInfo[] = [];
    for (const id of [...cs.voters, ...cs.learners]) {
      const m = this.members.get(id) ?? { peerAddr: '', clientAddr: '' };
      out.push({ id, ...m, isLearner: cs.learners.includes(id) });
    }
    return out;
  }

  /**
   * The voters this node heard from within `windowMs` (itself included): on the leader, the
   * members that answer its appends and heartbeats. Membership changes check it before they
   * change the quorum.
   */
  reachableVoters(windowMs: number): Set<NodeId> {
    const now = this.nowMs();
    const out = new Set<NodeId>();
    for (const id of this.rawNode.raft.confState().voters) {
      const heard = this.lastHeardFromMs.get(id);
      if (id === this.cfg.id || (heard !== undefined && now - heard <= windowMs)) out.add(id);
    }
    return out;
  }

  knownMember(id: NodeId): boolean {
    const cs = this.rawNode.raft.confState();
    return cs.voters.includes(id) || cs.learners.includes(id);
  }
}

async function bootstrap(cfg: NodeConfig, storage: LevelRaftStorage): Promise<void> {
  const { encodeMemberContext } = await import('../transport/index.js');
  const b = bootstrapState(cfg.initialCluster.map((p) => ({ id: p.id, context: encodeMemberContext({ peerAddr: p.peerAddr, clientAddr: p.clientAddr }) })));
  await storage.bootstrap(b.confState);
  await storage.save({ hardState: b.hardState, entries: b.entries });
}

/** A member whose addresses in the data directory differ from the ones `--peers` gives. */
export interface MemberAddressConflict {
  id: NodeId;
  stored: MemberContext;
  given: MemberContext;
}

/**
 * The members as this node knows them: the applied membership stored in the data directory,
 * falling back to `--peers` for ids it does not hold (a node that has applied nothing yet).
 * Like etcd's --initial-cluster, `--peers` only bootstraps: addresses change through
 * membership changes, so the stored ones win; `conflicts` lists where the flags disagree (a
 * cluster restarted on other ports would otherwise sit in elections with no word of why).
 */
async function loadMembers(db: NodeDb, initial: PeerSpec[]): Promise<{ members: Map<NodeId, MemberContext>; conflicts: MemberAddressConflict[] }> {
  const members = new Map<NodeId, MemberContext>();
  for (const p of initial) members.set(p.id, { peerAddr: p.peerAddr, clientAddr: p.clientAddr });
  const raw = await db.get(MEMBERS_KEY);
  const stored = new Map<NodeId, MemberContext>(raw ? (JSON.parse(new TextDecoder().decode(raw)) as Array<[NodeId, MemberContext]>) : []);
  for (const [id, m] of stored) members.set(id, m);
  return { members, conflicts: memberAddressConflicts(stored, initial) };
}

export function memberAddressConflicts(stored: ReadonlyMap<NodeId, MemberContext>, given: readonly PeerSpec[]): MemberAddressConflict[] {
  const out: MemberAddressConflict[] = [];
  for (const p of given) {
    const s = stored.get(p.id);
    if (s && (s.peerAddr !== p.peerAddr || s.clientAddr !== p.clientAddr)) out.push({ id: p.id, stored: s, given: { peerAddr: p.peerAddr, clientAddr: p.clientAddr } });
  }
  return out;
}
