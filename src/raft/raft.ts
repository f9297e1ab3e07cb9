// The Raft state machine (etcd-io/raft raft.go, our own code). Pure and single-threaded:
// inputs are step(message) and tick(); outputs accumulate in `msgs` and `readStates` and
// leave through RawNode.ready(). Role-specific behaviour lives in stepLeader/stepCandidate/
// stepFollower and tickElection/tickHeartbeat, swapped on role change.

import { assert } from './assert.js';
import { Progress, ProgressState } from './progress.js';
import { RaftLog } from './raft-log.js';
import { ReadOnly } from './read-only.js';
import type { Storage } from './storage.js';
import { CompactedError, SnapshotTemporarilyUnavailableError } from './storage.js';
import {
  CAMPAIGN_TRANSFER,
  ConfChangeType,
  EMPTY_BYTES,
  emptyMessage,
  EntryType,
  isLocalMessage,
  MessageType,
  NONE,
  StateRole,
  type ConfChange,
  type ConfState,
  type Entry,
  type Logger,
  type Message,
  type NodeId,
  type RandomIntFn,
  type ReadState,
  type Snapshot,
} from './types.js';

/** Test-only switches that plant known bugs, so tests can prove the simulator catches them. */
export interface PlantedBugs {
  /** Commit any entry a quorum holds, even from a previous term (Raft paper Figure 8). */
  commitPreviousTermByCounting?: boolean;
  /** Grant a vote even when already voted for someone else this term. */
  doubleVote?: boolean;
  /** Lease lasts this many ticks beyond the election timeout. */
  leaseExtraTicks?: number;
}

export interface RaftConfig {
  id: NodeId;
  /** Ticks a follower waits without hearing from a leader before campaigning (randomized up to 2x). */
  electionTimeoutTicks: number;
  /** Ticks between leader heartbeats. Must be < electionTimeoutTicks. */
  heartbeatIntervalTicks: number;
  storage: Storage;
  /** Last applied index when restarting; 0 for a fresh node. */
  appliedIndex?: number;
  /** Upper bound on the entry payload bytes in one append message. */
  maxMsgBytes: number;
  /** Upper bound on appends in flight to one follower in Replicate state. */
  maxInflightMsgs: number;
  /** Upper bound on committed entry bytes handed out in one Ready. */
  maxCommittedBytesPerReady: number;
  /** Leader steps down when it has not heard from a quorum for an election timeout. */
  checkQuorum: boolean;
  /** Run a pre-election first so a partitioned node cannot disrupt the cluster with term bumps. */
  preVote: boolean;
  /** The read lease ends this many ticks before the election timeout, to absorb clock drift. */
  leaseMarginTicks: number;
  randomInt: RandomIntFn;
  logger: Logger;
  plantedBugs?: PlantedBugs;
}

export type ProposeResult = { ok: true; index: number } | { ok: false; reason: ProposalDropReason };
export type ProposalDropReason = 'not-leader' | 'transferring' | 'conf-change-pending' | 'removed';

export type VoteResult = 'won' | 'lost' | 'pending';

const NOOP_DATA = EMPTY_BYTES;

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  readonly log: RaftLog;
  readonly prs = new Map<NodeId, Progress>();
  voters = new Set<NodeId>();
  learners = new Set<NodeId>();
  state: StateRole = StateRole.Follower;
  lead: NodeId = NONE;
  leadTransferee: NodeId = NONE;
  /** Index of the last conf change proposed; a new one waits until it is applied. */
  pendingConfIndex = 0;
  readonly readOnly = new ReadOnly();
  private pendingReadIndexMessages: Message[] = [];
  private votes = new Map<NodeId, boolean>();
  /** Reused by the quorum computations (commit index, lease start) so they allocate nothing. */
  private readonly quorumScratch: number[] = [];
  /** Entries were proposed since the last broadcast. */
  appendsPending = false;
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  /** Ticks since this object was created: the core's only notion of time. */
  tickCount = 0;
  readonly cfg: RaftConfig;
  private readonly bugs: PlantedBugs;
  private tickFn: () => void = () => this.tickElection();
  private stepFn: (m: Message) => void = (m) => this.stepFollower(m);

  constructor(cfg: RaftConfig) {
    assert(cfg.id !== NONE, 'cannot use none as id');
    assert(cfg.heartbeatIntervalTicks > 0, 'heartbeat interval must be greater than 0');
    assert(cfg.electionTimeoutTicks > cfg.heartbeatIntervalTicks, 'election timeout must exceed heartbeat interval');
    assert(cfg.maxInflightMsgs > 0, 'maxInflightMsgs must be greater than 0');
    assert(cfg.leaseMarginTicks >= 0 && cfg.leaseMarginTicks < cfg.electionTimeoutTicks, 'leaseMarginTicks out of range');
    this.cfg = cfg;
    this.id = cfg.id;
    this.bugs = cfg.plantedBugs ?? {};
    this.log = new RaftLog(cfg.storage);
    const { hardState, confState } = cfg.storage.initialState();
    this.applyConfState(confState);
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) {
      assert(
        hardState.commit >= this.log.committed && hardState.commit <= this.log.lastIndex(),
        `hardState.commit ${hardState.commit} is out of range [${this.log.committed}, ${this.log.lastIndex()}]`,
      );
      this.log.committed = hardState.commit;
      this.term = hardState.term;
      this.vote = hardState.vote;
    }
    if (cfg.appliedIndex && cfg.appliedIndex > 0) this.log.appliedTo(cfg.appliedIndex);
    this.becomeFollower(this.term, NONE);
  }

  // ---------------------------------------------------------------- configuration

  private applyConfState(cs: ConfState): void {
    this.voters = new Set(cs.voters);
    this.learners = new Set(cs.learners);
    this.prs.clear();
    for (const id of [...cs.voters, ...cs.learners]) {
      this.prs.set(id, new Progress(this.log.lastIndex() + 1, this.cfg.maxInflightMsgs, this.learners.has(id)));
    }
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort((a, b) => a - b), learners: [...this.learners].sort((a, b) => a - b) };
  }

  quorum(): number {
    return Math.floor(this.voters.size / 2) + 1;
  }

  promotable(): boolean {
    return this.voters.has(this.id);
  }

  /** Called by the host when it applies a committed ConfChange entry. */
  applyConfChange(cc: ConfChange): ConfState {
    const id = cc.nodeId;
    switch (cc.type) {
      case ConfChangeType.AddNode:
        this.learners.delete(id);
        this.voters.add(id);
        this.ensureProgress(id, false);
        break;
      case ConfChangeType.AddLearner:
        this.voters.delete(id);
        this.learners.add(id);
        this.ensureProgress(id, true);
        break;
      case ConfChangeType.RemoveNode:
        this.voters.delete(id);
        this.learners.delete(id);
        this.prs.delete(id);
        break;
    }
    this.onConfChanged(id);
    return this.confState();
  }

  private ensureProgress(id: NodeId, isLearner: boolean): void {
    const pr = this.prs.get(id);
    if (pr) {
      pr.isLearner = isLearner;
      return;
    }
    const npr = new Progress(this.log.lastIndex() + 1, this.cfg.maxInflightMsgs, isLearner);
    // Treat a newly added node as recently active so CheckQuorum does not count it as lost at once.
    npr.recentActive = true;
    this.prs.set(id, npr);
  }

  private onConfChanged(changed: NodeId): void {
    if (this.state !== StateRole.Leader) return;
    if (!this.voters.has(this.id)) {
      // The leader removed itself (or was demoted): step down so a remaining voter takes over.
      this.cfg.logger.info(`${this.id} stepping down: no longer a voter`);
      this.becomeFollower(this.term, NONE);
      return;
    }
    if (this.leadTransferee === changed && !this.voters.has(changed)) this.abortLeaderTransfer();
    // A smaller quorum may commit more now.
    if (this.maybeCommitAsLeader()) this.bcastAppend();
  }

  // ---------------------------------------------------------------- role changes

  private reset(term: number): void {
    if (this.term !== term) {
      assert(term > this.term, `term must never decrease: ${this.term} -> ${term}`);
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.votes.clear();
    const stableLast = this.stableLastIndex();
    for (const [id, pr] of this.prs) {
      const isLearner = pr.isLearner;
      const npr = new Progress(this.log.lastIndex() + 1, this.cfg.maxInflightMsgs, isLearner);
      if (id === this.id) npr.match = stableLast;
      this.prs.set(id, npr);
    }
    this.pendingConfIndex = 0;
    this.readOnly.clear();
    this.pendingReadIndexMessages = [];
  }

  /** The last index known to be on stable storage (entries the host has persisted). */
  private stableLastIndex(): number {
    if (this.log.unstable.snapshot) return 0;
    return Math.min(this.log.unstable.offset - 1, this.log.storage.lastIndex());
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.cfg.electionTimeoutTicks + this.cfg.randomInt(this.cfg.electionTimeoutTicks);
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.stepFn = (m) => this.stepFollower(m);
    this.tickFn = () => this.tickElection();
    this.reset(term);
    this.lead = lead;
    this.state = StateRole.Follower;
    this.cfg.logger.debug(`${this.id} became follower at term ${this.term}`);
  }

  private becomeCandidate(): void {
    assert(this.state !== StateRole.Leader, 'invalid transition [leader -> candidate]');
    this.stepFn = (m) => this.stepCandidate(m);
    this.tickFn = () => this.tickElection();
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = StateRole.Candidate;
    this.cfg.logger.info(`${this.id} became candidate at term ${this.term}`);
  }

  private becomePreCandidate(): void {
    assert(this.state !== StateRole.Leader, 'invalid transition [leader -> pre-candidate]');
    // A pre-candidate changes neither term nor vote: a failed pre-election disturbs nobody.
    this.stepFn = (m) => this.stepCandidate(m);
    this.tickFn = () => this.tickElection();
    this.votes.clear();
    this.lead = NONE;
    this.state = StateRole.PreCandidate;
    this.cfg.logger.info(`${this.id} became pre-candidate at term ${this.term}`);
  }

  private becomeLeader(): void {
    assert(this.state !== StateRole.Follower, 'invalid transition [follower -> leader]');
    this.stepFn = (m) => this.stepLeader(m);
    this.tickFn = () => this.tickHeartbeat();
    this.reset(this.term);
    this.lead = this.id;
    this.state = StateRole.Leader;
    this.prs.get(this.id)?.becomeReplicate();
    // Conservatively assume the unapplied tail may hold a conf change.
    this.pendingConfIndex = this.log.lastIndex();
    // The no-op of this term: committing it commits everything before it (Raft §5.4.2) and
    // enables ReadIndex and the lease.
    this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: NOOP_DATA }]);
    this.cfg.logger.info(`${this.id} became leader at term ${this.term}`);
  }

  // ---------------------------------------------------------------- ticks

  tick(): void {
    this.tickCount++;
    this.tickFn();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(emptyMessage({ type: MessageType.Hup, from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTimeoutTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.quorumActive()) {
        this.cfg.logger.warn(`${this.id} stepped down to follower since quorum is not active`);
        this.becomeFollower(this.term, NONE);
        return;
      }
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatIntervalTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  /** True if a quorum of voters was heard from since the last check; resets the flags. */
  private quorumActive(): boolean {
    let active = 0;
    for (const id of this.voters) {
      const pr = this.prs.get(id)!;
      if (id === this.id || pr.recentActive) active++;
    }
    for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = false;
    return active >= this.quorum();
  }

  // ---------------------------------------------------------------- lease

  /**
   * Ticks the leader's read lease has left (0 if none). The lease starts at the send tick of the
   * newest heartbeat a quorum acknowledged; followers that acknowledged it will refuse votes for
   * an election timeout after receiving it, so no other leader can exist before then.
   */
  leaseRemainingTicks(): number {
    if (this.state !== StateRole.Leader || !this.cfg.checkQuorum) return 0;
    if (this.leadTransferee !== NONE) return 0;
    if (!this.committedEntryInCurrentTerm()) return 0;
    const start = this.leaseStartTick();
    if (start < 0) return 0;
    const durationTicks = this.cfg.electionTimeoutTicks - this.cfg.leaseMarginTicks + (this.bugs.leaseExtraTicks ?? 0);
    return Math.max(0, start + durationTicks - this.tickCount);
  }

  /** The quorum-th newest acknowledged heartbeat send tick among voters (self counts as now). */
  leaseStartTick(): number {
    const acked = this.quorumScratch;
    acked.length = 0;
    for (const id of this.voters) {
      acked.push(id === this.id ? this.tickCount : (this.prs.get(id)?.ackedHeartbeatSentTick ?? -1));
    }
    return kthLargest(acked, this.quorum()) ?? -1;
  }

  // ---------------------------------------------------------------- step

  step(m: Message): void {
    if (m.term === 0) {
      // local message
    } else if (m.term > this.term) {
      if (!this.stepHigherTerm(m)) return;
    } else if (m.term < this.term) {
      this.stepLowerTerm(m);
      return;
    }
    switch (m.type) {
      case MessageType.Hup:
        this.hup(false);
        return;
      case MessageType.Vote:
      case MessageType.PreVote:
        this.handleVoteRequest(m);
        return;
      default:
        this.stepFn(m);
    }
  }

  /** Returns false if the message must be ignored. */
  private stepHigherTerm(m: Message): boolean {
    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      const force = bytesEqual(m.context, CAMPAIGN_TRANSFER);
      const heardFromLeader = this.lead !== NONE && this.electionElapsed < this.cfg.electionTimeoutTicks;
      // A node that just (re)started may have acknowledged a leader's heartbeat before it went
      // down and forgot: it too must wait out one election timeout, or the leader's lease breaks.
      // (A node at term 0 never acknowledged anyone, so a fresh cluster can elect at once.)
      const justStarted = this.term > 0 && this.tickCount < this.cfg.electionTimeoutTicks;
      const inLease = this.cfg.checkQuorum && (heardFromLeader || justStarted);
      // Within the lease we heard from a live leader: refusing keeps a returning partitioned node
      // from deposing it, and is what makes the leader's read lease sound.
      if (!force && inLease) {
        this.cfg.logger.debug(`${this.id} ignored ${MessageType[m.type]} from ${m.from} at term ${m.term}: lease not expired`);
        return false;
      }
    }
    if (m.type === MessageType.PreVote) return true; // never change term on a pre-vote request
    if (m.type === MessageType.PreVoteResp && !m.reject) return true; // term bumps only once the pre-vote wins
    const fromLeader = m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap;
    this.becomeFollower(m.term, fromLeader ? m.from : NONE);
    return true;
  }

  private stepLowerTerm(m: Message): void {
    if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
      // A stale leader (e.g. after a partition) learns our term and steps down; without this,
      // with CheckQuorum or PreVote it could never be told (we would ignore its messages forever).
      this.send(emptyMessage({ type: MessageType.AppResp, to: m.from }));
    } else if (m.type === MessageType.PreVote) {
      this.send(emptyMessage({ type: MessageType.PreVoteResp, to: m.from, term: this.term, reject: true }));
    }
  }

  private handleVoteRequest(m: Message): void {
    // A node that knows no configuration at all (a wiped or joining node before its first
    // snapshot) may have voted in this term before it lost its disk: it must not vote again.
    const knowsConfig = this.voters.size > 0 || this.learners.size > 0;
    const canVote =
      knowsConfig &&
      (this.vote === m.from ||
        (this.vote === NONE && this.lead === NONE) ||
        (m.type === MessageType.PreVote && m.term > this.term) ||
        this.bugs.doubleVote === true);
    const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // Reply with the request's term: a pre-vote grant must carry the future term to count.
      this.send(emptyMessage({ type: respType, to: m.from, term: m.term }));
      if (m.type === MessageType.Vote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      // A rejection carries our term, and at term 0 (only a PreVote reaches here then: a Vote
      // moved us to its term) we have none: the request's term would make the pre-candidate
      // adopt a term it never won. Silence rejects just as well (a grant is what counts).
      if (this.term === 0) {
        this.cfg.logger.debug(`${this.id} at term 0 ignored ${MessageType[m.type]} from ${m.from}: not granted`);
        return;
      }
      this.send(emptyMessage({ type: respType, to: m.from, term: this.term, reject: true }));
    }
  }

  private hup(transfer: boolean): void {
    if (this.state === StateRole.Leader) return;
    if (!this.promotable()) {
      this.cfg.logger.warn(`${this.id} is unpromotable and can not campaign`);
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      this.cfg.logger.warn(`${this.id} cannot campaign at term ${this.term}: unapplied conf changes`);
      return;
    }
    this.campaign(transfer ? 'transfer' : this.cfg.preVote ? 'pre-election' : 'election');
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.applied >= this.log.committed) return false;
    const ents = this.log.slice(Math.max(this.log.applied + 1, this.log.firstIndex()), this.log.committed + 1, Infinity);
    return ents.some((e) => e.type === EntryType.ConfChange);
  }

  private campaign(kind: 'pre-election' | 'election' | 'transfer'): void {
    let voteMsg: MessageType;
    let term: number;
    if (kind === 'pre-election') {
      this.becomePreCandidate();
      voteMsg = MessageType.PreVote;
      term = this.term + 1; // the term we would campaign with
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.Vote;
      term = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      // Single-voter cluster.
      if (kind === 'pre-election') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    for (const id of this.voters) {
      if (id === this.id) continue;
      this.send(
        emptyMessage({
          type: voteMsg,
          to: id,
          term,
          index: this.log.lastIndex(),
          logTerm: this.log.lastTerm(),
          context: kind === 'transfer' ? CAMPAIGN_TRANSFER : EMPTY_BYTES,
        }),
      );
    }
  }

  private poll(id: NodeId, granted: boolean): VoteResult {
    if (!this.votes.has(id) && this.voters.has(id)) this.votes.set(id, granted);
    let yes = 0;
    let no = 0;
    for (const v of this.votes.values()) v ? yes++ : no++;
    const q = this.quorum();
    if (yes >= q) return 'won';
    if (this.voters.size - no < q) return 'lost';
    return 'pending';
  }

  // ---------------------------------------------------------------- proposals

  /** Proposes entries (Normal or ConfChange). Only a leader accepts. */
  propose(entries: Array<{ type: EntryType; data: Uint8Array }>): ProposeResult {
    if (this.state !== StateRole.Leader) return { ok: false, reason: 'not-leader' };
    if (!this.prs.has(this.id)) return { ok: false, reason: 'removed' };
    if (this.leadTransferee !== NONE) return { ok: false, reason: 'transferring' };
    // One conf change at a time, and only once the previous one is applied.
    const confChanges = entries.filter((e) => e.type === EntryType.ConfChange).length;
    if (confChanges > 1 || (confChanges === 1 && this.pendingConfIndex > this.log.applied)) {
      return { ok: false, reason: 'conf-change-pending' };
    }
    const ents: Entry[] = entries.map((e) => ({ term: 0, index: 0, type: e.type, data: e.data }));
    this.appendEntries(ents);
    this.appendsPending = true;
    const last = this.log.lastIndex();
    for (let i = ents.length - 1; i >= 0; i--) {
      if (ents[i]!.type === EntryType.ConfChange) {
        this.pendingConfIndex = ents[i]!.index;
        break;
      }
    }
    return { ok: true, index: last };
  }

  /**
   * Proposals only mark appends as pending; one broadcast per Ready then carries every entry
   * proposed in this turn (batching, like the host's group commit).
   */
  flushAppends(): void {
    if (!this.appendsPending) return;
    this.appendsPending = false;
    if (this.state === StateRole.Leader) this.bcastAppend();
  }

  private appendEntries(ents: Entry[]): void {
    const li = this.log.lastIndex();
    for (let i = 0; i < ents.length; i++) {
      ents[i]!.term = this.term;
      ents[i]!.index = li + 1 + i;
    }
    this.log.append(ents);
    // The leader's own match advances only once the host has persisted the entries (onPersisted),
    // so the leader may send appends before its own fsync completes without risking a commit
    // that lives only in memory.
  }

  /** The host persisted entries up to (index, term). */
  onPersisted(index: number, term: number): void {
    if (this.state !== StateRole.Leader) return;
    if (!this.log.matchTerm(index, term)) return;
    const pr = this.prs.get(this.id);
    if (!pr) return;
    if (pr.maybeUpdate(index) && this.maybeCommitAsLeader()) this.bcastAppend();
  }

  // ---------------------------------------------------------------- leader

  private committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  /** Commits the highest index a quorum of voters has; returns true if commit advanced. */
  private maybeCommitAsLeader(): boolean {
    const matches = this.quorumScratch;
    matches.length = 0;
    for (const id of this.voters) matches.push(this.prs.get(id)?.match ?? 0);
    if (matches.length === 0) return false;
    const mci = kthLargest(matches, this.quorum())!;
    const before = this.log.committed;
    if (this.bugs.commitPreviousTermByCounting) {
      if (mci > this.log.committed) this.log.commitTo(mci);
    } else {
      this.log.maybeCommit(mci, this.term);
    }
    if (this.log.committed === before) return false;
    if (this.committedEntryInCurrentTerm()) this.releasePendingReadIndexMessages();
    return true;
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat();
        return;
      case MessageType.Prop:
        this.propose(m.entries.map((e) => ({ type: e.type, data: e.data })));
        return;
      case MessageType.ReadIndex:
        this.leaderReadIndex(m);
        return;
    }
    const pr = this.prs.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.HeartbeatResp:
        this.handleHeartbeatResponse(m, pr);
        return;
      case MessageType.SnapStatus:
        if (pr.state !== ProgressState.Snapshot) return;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Wait for a heartbeat response before probing again.
        pr.msgAppFlowPaused = true;
        return;
      case MessageType.Unreachable:
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return;
      case MessageType.TransferLeader:
        this.handleTransferLeader(m, pr);
        return;
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      let nextProbeIdx = m.rejectHint;
      if (m.logTerm > 0) nextProbeIdx = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    const probeConfirmed = pr.match === m.index && pr.state === ProgressState.Probe;
    if (!pr.maybeUpdate(m.index) && !probeConfirmed) return;
    if (pr.state === ProgressState.Probe) {
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Snapshot && pr.match + 1 >= this.log.firstIndex()) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Replicate) {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommitAsLeader()) {
      this.bcastAppend();
    } else if (oldPaused) {
      this.sendAppend(m.from);
    }
    // Keep the pipeline full: send everything the window allows.
    for (let i = 0; i < this.cfg.maxInflightMsgs && this.maybeSendAppend(m.from, false); i++);
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.cfg.logger.info(`${this.id} sent TimeoutNow to ${m.from} after its log caught up`);
      this.sendTimeoutNow(m.from);
    }
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.msgAppFlowPaused = false;
    // A full window may hold a lost append: free one slot so the next append either fills the
    // gap or is rejected, which resets the follower to probing. Without this it stalls forever.
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (m.sentTick > pr.ackedHeartbeatSentTick) pr.ackedHeartbeatSentTick = m.sentTick;
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
    if (m.context.length === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (!acks) return;
    let granted = this.voters.has(this.id) ? 1 : 0;
    for (const id of acks) if (id !== this.id && this.voters.has(id)) granted++;
    if (granted < this.quorum()) return;
    for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index);
  }

  private handleTransferLeader(m: Message, pr: Progress): void {
    const transferee = m.from;
    if (pr.isLearner) {
      this.cfg.logger.debug(`${this.id} ignored transfer to learner ${transferee}`);
      return;
    }
    if (this.leadTransferee !== NONE) {
      if (this.leadTransferee === transferee) return;
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) return;
    // The transfer must finish within one election timeout.
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(transferee);
    else this.sendAppend(transferee);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(emptyMessage({ type: MessageType.TimeoutNow, to }));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  private leaderReadIndex(m: Message): void {
    if (this.voters.size === 1 && this.voters.has(this.id)) {
      this.respondToReadIndex(m, this.log.committed);
      return;
    }
    // A new leader does not know the commit index of the previous term until its own entry commits.
    if (!this.committedEntryInCurrentTerm()) {
      this.pendingReadIndexMessages.push(m);
      return;
    }
    this.readOnly.addRequest(this.log.committed, m);
    this.readOnly.recvAck(this.id, m.entries[0]!.data);
    this.bcastHeartbeatWithCtx(m.entries[0]!.data);
  }

  private releasePendingReadIndexMessages(): void {
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of pending) this.leaderReadIndex(m);
  }

  private respondToReadIndex(req: Message, readIndex: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index: readIndex, requestCtx: req.entries[0]!.data });
      return;
    }
    this.send(emptyMessage({ type: MessageType.ReadIndexResp, to: req.from, index: readIndex, entries: req.entries }));
  }

  bcastAppend(): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(): void {
    this.bcastHeartbeatWithCtx(this.readOnly.lastPendingRequestCtx() ?? EMPTY_BYTES);
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      // Never tell a follower to commit beyond what it is known to have.
      const commit = Math.min(pr.match, this.log.committed);
      this.send(emptyMessage({ type: MessageType.Heartbeat, to: id, commit, context: ctx, sentTick: this.tickCount }));
    }
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Sends an append (or a snapshot) to `to` if its progress allows. Returns true if sent. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.maybeTerm(prevIndex);
    let ents: Entry[] | undefined;
    try {
      ents = this.log.entriesFrom(pr.next, this.cfg.maxMsgBytes);
    } catch (e) {
      if (!(e instanceof CompactedError)) throw e;
      ents = undefined;
    }
    if (prevTerm === undefined || ents === undefined) return this.maybeSendSnapshot(to, pr);
    if (ents.length === 0 && !sendIfEmpty) return false;
    this.send(
      emptyMessage({ type: MessageType.App, to, index: prevIndex, logTerm: prevTerm, entries: ents, commit: this.log.committed }),
    );
    pr.sentEntries(ents.length, ents.length > 0 ? ents[ents.length - 1]!.index : prevIndex);
    return true;
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false; // do not ship a snapshot to a peer that may be down
    let snap: Snapshot;
    try {
      snap = this.log.snapshot();
    } catch (e) {
      if (e instanceof SnapshotTemporarilyUnavailableError) return false;
      throw e;
    }
    assert(snap.metadata.index > 0, 'need non-empty snapshot');
    this.cfg.logger.debug(`${this.id} sending snapshot at index ${snap.metadata.index} to ${to} [${pr}]`);
    pr.becomeSnapshot(snap.metadata.index);
    this.send(emptyMessage({ type: MessageType.Snap, to, snapshot: snap }));
    return true;
  }

  // ---------------------------------------------------------------- candidate and follower

  private stepCandidate(m: Message): void {
    const myVoteResp = this.state === StateRole.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myVoteResp: {
        const res = this.poll(m.from, !m.reject);
        if (res === 'won') {
          if (this.state === StateRole.PreCandidate) {
            this.campaign('election');
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (res === 'lost') {
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead === NONE) return;
        this.send({ ...m, to: this.lead, term: 0 });
        return;
      case MessageType.TimeoutNow:
        this.cfg.logger.info(`${this.id} received TimeoutNow from ${m.from}: campaigning to transfer leadership`);
        this.hup(true);
        return;
      case MessageType.ReadIndex:
        if (this.lead === NONE) return; // the host times the read out and retries
        this.send({ ...m, to: this.lead, term: 0 });
        return;
      case MessageType.ReadIndexResp:
        if (m.entries.length !== 1) return;
        this.readStates.push({ index: m.index, requestCtx: m.entries[0]!.data });
        return;
    }
  }

  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      this.send(emptyMessage({ type: MessageType.AppResp, to: m.from, index: this.log.committed }));
      return;
    }
    const mlast = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (mlast !== undefined) {
      this.send(emptyMessage({ type: MessageType.AppResp, to: m.from, index: mlast }));
      return;
    }
    // Tell the leader where our log may match, skipping a whole term of entries at once.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send(
      emptyMessage({ type: MessageType.AppResp, to: m.from, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term }),
    );
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(m.commit);
    this.send(emptyMessage({ type: MessageType.HeartbeatResp, to: m.from, context: m.context, sentTick: m.sentTick }));
  }

  private handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (!snap) return;
    if (this.restore(snap)) {
      this.cfg.logger.info(`${this.id} restored snapshot [index: ${snap.metadata.index}, term: ${snap.metadata.term}]`);
      this.send(emptyMessage({ type: MessageType.AppResp, to: m.from, index: this.log.lastIndex() }));
    } else {
      this.send(emptyMessage({ type: MessageType.AppResp, to: m.from, index: this.log.committed }));
    }
  }

  /** Installs a snapshot from the leader; false if it is stale or we already have its entries. */
  private restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.log.committed) return false;
    const cs = s.metadata.confState;
    if (!cs.voters.includes(this.id) && !cs.learners.includes(this.id)) {
      // A node added after the snapshot was taken: accept it anyway, the entries after the
      // snapshot (including our own addition) follow. We cannot campaign until then.
      this.cfg.logger.info(`${this.id} restoring a snapshot whose ConfState does not include it yet`);
    }
    if (this.log.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have the entries: fast-forward the commit instead of replacing the log.
      this.log.commitTo(s.metadata.index);
      return false;
    }
    this.log.restore(s);
    this.applyConfState(cs);
    return true;
  }

  // ---------------------------------------------------------------- output

  private send(m: Message): void {
    if (m.from === NONE) m.from = this.id;
    if (isLocalMessage(m.type)) return;
    if (m.type === MessageType.Vote || m.type === MessageType.VoteResp || m.type === MessageType.PreVote || m.type === MessageType.PreVoteResp) {
      assert(m.term !== 0, `term should be set when sending ${MessageType[m.type]}`);
    } else {
      // Forwarded proposals and read requests keep term 0 and are not bound to our term.
      if (m.type !== MessageType.Prop && m.type !== MessageType.ReadIndex && m.type !== MessageType.TransferLeader) {
        m.term = this.term;
      }
    }
    this.msgs.push(m);
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The k-th largest of `xs` (1-based), sorting `xs` in place, descending; undefined if k is out
 * of range. Insertion sort: a handful of voters, and Array.prototype.sort allocated ~800 bytes
 * of merge state per call (this runs on every append response, as etcd's quorum code knows).
 */
export function kthLargest(xs: number[], k: number): number | undefined {
  for (let i = 1; i < xs.length; i++) {
    const x = xs[i]!;
    let j = i - 1;
    for (; j >= 0 && xs[j]! < x; j--) xs[j + 1] = xs[j]!;
    xs[j + 1] = x;
  }
  return k >= 1 && k <= xs.length ? xs[k - 1] : undefined;
}
