// The host-facing API of the core (etcd-io/raft rawnode.go). Not thread-safe and never
// blocking: the host feeds ticks, messages and proposals, then takes a Ready, handles it
// (persist, send, apply), and calls advance(). Between ready() and advance() the host must
// not feed anything else in; it queues inputs and steps them after advance.

import { assert } from './assert.js';
import { encodeConfChange } from './conf-change-codec.js';
import { Raft, type ProposeResult, type RaftConfig } from './raft.js';
import {
  emptyMessage,
  EntryType,
  isLocalMessage,
  isResponseMessage,
  MessageType,
  NONE,
  StateRole,
  type ConfChange,
  type ConfState,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
  type SoftState,
} from './types.js';

export interface ProgressStatus {
  match: number;
  next: number;
  state: string;
  isLearner: boolean;
  recentActive: boolean;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  applied: number;
  lead: NodeId;
  role: StateRole;
  leadTransferee: NodeId;
  confState: ConfState;
  /** Ticks left on the leader's read lease; 0 when it holds none. */
  leaseRemainingTicks: number;
  tickCount: number;
  /** Leader only. */
  progress: Map<NodeId, ProgressStatus>;
}

export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  /** A Ready was handed out and not yet advanced. */
  private readyInFlight = false;

  constructor(cfg: RaftConfig) {
    this.raft = new Raft(cfg);
    this.prevSoftState = this.softState();
    this.prevHardState = this.hardState();
  }

  tick(): void {
    this.assertNotInReady('tick');
    this.raft.tick();
  }

  /** Starts an election now (tests and bootstrap). */
  campaign(): void {
    this.assertNotInReady('campaign');
    this.raft.step(emptyMessage({ type: MessageType.Hup, from: this.raft.id }));
  }

  /** Steps a message received from a peer. Local message types are refused. */
  step(m: Message): void {
    this.assertNotInReady('step');
    if (isLocalMessage(m.type)) throw new Error(`raft: cannot step local message ${MessageType[m.type]}`);
    // Responses from peers we no longer track (e.g. removed) are dropped.
    if (isResponseMessage(m.type) && !this.raft.prs.has(m.from) && this.raft.state === StateRole.Leader) return;
    this.raft.step(m);
  }

  propose(data: Uint8Array): ProposeResult {
    this.assertNotInReady('propose');
    return this.raft.propose([{ type: EntryType.Normal, data }]);
  }

  /** Proposes many commands in one call (the host's batch for this turn). */
  proposeBatch(datas: Uint8Array[]): ProposeResult {
    this.assertNotInReady('proposeBatch');
    return this.raft.propose(datas.map((data) => ({ type: EntryType.Normal, data })));
  }

  proposeConfChange(cc: ConfChange): ProposeResult {
    this.assertNotInReady('proposeConfChange');
    return this.raft.propose([{ type: EntryType.ConfChange, data: encodeConfChange(cc) }]);
  }

  /** The host applied a committed ConfChange entry: make it take effect. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /**
   * Requests a linearizable read index. When it is safe, a ReadState with this context appears
   * in a later Ready. On a follower the request goes to the leader; without a leader it is
   * dropped and the host must time it out.
   */
  readIndex(requestCtx: Uint8Array): void {
    this.assertNotInReady('readIndex');
    assert(requestCtx.length > 0, 'readIndex needs a non-empty request context');
    this.raft.step(emptyMessage({ type: MessageType.ReadIndex, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: requestCtx }] }));
  }

  transferLeader(transferee: NodeId): void {
    this.assertNotInReady('transferLeader');
    this.raft.step(emptyMessage({ type: MessageType.TransferLeader, from: transferee }));
  }

  reportUnreachable(id: NodeId): void {
    this.raft.step(emptyMessage({ type: MessageType.Unreachable, from: id }));
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.step(emptyMessage({ type: MessageType.SnapStatus, from: id, reject: !ok }));
  }

  leaseRemainingTicks(): number {
    return this.raft.leaseRemainingTicks();
  }

  private softState(): SoftState {
    return { leader: this.raft.lead, role: this.raft.state };
  }

  private hardState(): HardState {
    return { term: this.raft.term, vote: this.raft.vote, commit: this.raft.log.committed };
  }

  hasReady(): boolean {
    const r = this.raft;
    if (r.appendsPending) return true;
    const ss = this.softState();
    if (ss.leader !== this.prevSoftState.leader || ss.role !== this.prevSoftState.role) return true;
    const hs = this.hardState();
    if (!hardStateEqual(hs, this.prevHardState)) return true;
    if (r.log.hasPendingSnapshot()) return true;
    if (r.msgs.length > 0 || r.log.unstableEntries().length > 0 || r.log.hasNextCommittedEntries()) return true;
    return r.readStates.length > 0;
  }

  ready(): Ready {
    this.assertNotInReady('ready');
    const r = this.raft;
    r.flushAppends();
    const rd: Ready = {
      entries: r.log.unstableEntries().slice(),
      committedEntries: r.log.nextCommittedEntries(r.cfg.maxCommittedBytesPerReady),
      messages: r.msgs,
      readStates: r.readStates,
      mustSync: false,
    };
    r.msgs = [];
    r.readStates = [];
    const ss = this.softState();
    if (ss.leader !== this.prevSoftState.leader || ss.role !== this.prevSoftState.role) rd.softState = ss;
    const hs = this.hardState();
    if (!hardStateEqual(hs, this.prevHardState)) {
      this.checkHardStateTransition(this.prevHardState, hs);
      rd.hardState = hs;
    }
    if (r.log.unstable.snapshot) rd.snapshot = r.log.unstable.snapshot;
    rd.mustSync =
      rd.entries.length > 0 ||
      rd.snapshot !== undefined ||
      (rd.hardState !== undefined && (rd.hardState.term !== this.prevHardState.term || rd.hardState.vote !== this.prevHardState.vote));
    this.readyInFlight = true;
    return rd;
  }

  /** Invariants on what we are about to persist: they guard against bugs in the core itself. */
  private checkHardStateTransition(prev: HardState, next: HardState): void {
    assert(next.term >= prev.term, `term must never decrease: ${prev.term} -> ${next.term}`);
    assert(next.commit >= prev.commit, `commit must never regress: ${prev.commit} -> ${next.commit}`);
    if (!this.raft.cfg.plantedBugs?.doubleVote && next.term === prev.term && prev.vote !== NONE) {
      assert(next.vote === prev.vote, `voted twice in term ${next.term}: ${prev.vote} then ${next.vote}`);
    }
  }

  /** The host has handled `rd`: entries persisted, messages sent, committed entries applied. */
  advance(rd: Ready): void {
    assert(this.readyInFlight, 'advance without a Ready');
    this.readyInFlight = false;
    const r = this.raft;
    if (rd.softState) this.prevSoftState = rd.softState;
    if (rd.hardState) this.prevHardState = rd.hardState;
    if (rd.snapshot) {
      r.log.stableSnapTo(rd.snapshot.metadata.index);
      if (rd.snapshot.metadata.index > r.log.applied) r.log.appliedTo(rd.snapshot.metadata.index);
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      r.log.stableTo(last.index, last.term);
      r.onPersisted(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      const lastApplied = rd.committedEntries[rd.committedEntries.length - 1]!.index;
      r.log.appliedTo(lastApplied);
    }
    assert(r.log.applied <= r.log.committed, `applied ${r.log.applied} > committed ${r.log.committed}`);
    // onPersisted may have produced appends (commit advanced); they go out with the next Ready.
  }

  status(): Status {
    const r = this.raft;
    const progress = new Map<NodeId, ProgressStatus>();
    if (r.state === StateRole.Leader) {
      for (const [id, pr] of r.prs) {
        progress.set(id, { match: pr.match, next: pr.next, state: pr.state, isLearner: pr.isLearner, recentActive: pr.recentActive });
      }
    }
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      applied: r.log.applied,
      lead: r.lead,
      role: r.state,
      leadTransferee: r.leadTransferee,
      confState: r.confState(),
      leaseRemainingTicks: r.leaseRemainingTicks(),
      tickCount: r.tickCount,
      progress,
    };
  }

  private assertNotInReady(op: string): void {
    assert(!this.readyInFlight, `${op} called between ready() and advance()`);
  }
}

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

