// The leader's view of one follower's replication (etcd-io/raft tracker/progress.go).
//
// Probe: the leader does not know where the follower's log ends; it sends at most one
//   append per heartbeat interval and waits for the answer.
// Replicate: the follower is known to match; the leader streams appends optimistically,
//   bounded by the inflight window.
// Snapshot: the follower needs a snapshot; nothing else is sent until it reports back.

import { assert } from './assert.js';

export enum ProgressState {
  Probe = 'Probe',
  Replicate = 'Replicate',
  Snapshot = 'Snapshot',
}

/** A bounded FIFO of the last index of each in-flight append, so the window can be freed on ack. */
export class Inflights {
  private readonly buffer: number[] = [];
  private start = 0;

  constructor(readonly capacity: number) {
    assert(capacity > 0, 'inflights capacity must be positive');
  }

  get count(): number {
    return this.buffer.length - this.start;
  }

  full(): boolean {
    return this.count >= this.capacity;
  }

  add(lastIndex: number): void {
    assert(!this.full(), 'cannot add into a full inflights');
    this.buffer.push(lastIndex);
  }

  /** Frees every in-flight append whose last index is <= to. */
  freeLE(to: number): void {
    while (this.start < this.buffer.length && this.buffer[this.start]! <= to) this.start++;
    if (this.start > 64 && this.start * 2 > this.buffer.length) {
      this.buffer.splice(0, this.start);
      this.start = 0;
    }
  }

  /** Frees the oldest in-flight append (it may have been lost). */
  freeFirstOne(): void {
    if (this.count > 0) this.start++;
  }

  reset(): void {
    this.buffer.length = 0;
    this.start = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** In Snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Probe state: an append was sent this heartbeat interval; wait before sending another. */
  msgAppFlowPaused = false;
  readonly inflights: Inflights;
  isLearner: boolean;
  /**
   * Lease support: the largest leader tick at which a heartbeat was sent that this peer has
   * acknowledged in the current term.
   */
  ackedHeartbeatSentTick = -1;

  constructor(next: number, maxInflightMsgs: number, isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs);
    this.isLearner = isLearner;
  }

  toString(): string {
    return `${this.state} match=${this.match} next=${this.next}${this.isLearner ? ' learner' : ''}${this.state === ProgressState.Snapshot ? ` pendingSnap=${this.pendingSnapshot}` : ''}${this.msgAppFlowPaused ? ' paused' : ''} inflight=${this.inflights.count}`;
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, resume probing right after it (the follower surely has it or more).
    if (this.state === ProgressState.Snapshot) {
      const pendingSnapshot = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** The leader sent entries up to `lastIndex` (count > 0) or an empty probe. */
  sentEntries(entryCount: number, lastIndex: number): void {
    if (this.state === ProgressState.Replicate) {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
    } else if (this.state === ProgressState.Probe) {
      this.msgAppFlowPaused = true;
    }
  }

  /** An ack for index n: returns true if it moved match forward. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.msgAppFlowPaused = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * A rejection of the append at `rejected`, with the follower's hint of where its log may match.
   * Returns false if the rejection is stale (for an append we no longer care about).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false; // stale
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false; // not the probe we sent last
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  /** True when the leader should not send more appends now. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.msgAppFlowPaused;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }
}
