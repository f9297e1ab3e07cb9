// Raft's safety properties, checked incrementally as the simulated hosts persist, apply and
// serve: every event is checked the moment it happens, so a violation stops the run at the
// step that caused it.

import type { Entry, NodeId } from '../../src/raft/index.js';

export type ViolationKind =
  | 'election-safety' // two leaders in one term
  | 'log-matching' // same (index, term) but different entries or prefixes
  | 'leader-completeness' // a new leader lacks a committed entry
  | 'committed-entry-lost' // a persisted committed entry differs from the committed one
  | 'state-machine-safety' // different entries applied at one index
  | 'stale-read' // a read missed a write (or read) that completed before it was issued
  | 'invariant' // the core's own assertion fired
  | 'liveness'; // no progress after faults healed

export class SafetyViolation extends Error {
  constructor(
    readonly kind: ViolationKind,
    message: string,
  ) {
    super(`${kind}: ${message}`);
    this.name = 'SafetyViolation';
  }
}

function entryKey(e: Entry): string {
  // Entry identity for comparisons: type and payload bytes.
  let s = `${e.type}:`;
  for (let i = 0; i < e.data.length; i++) s += String.fromCharCode(e.data[i]!);
  return s;
}

export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** (index, term) -> entry identity and the term of the entry before it. */
  private readonly seenEntries = new Map<string, { key: string; prevTerm: number }>();
  /** index -> term of the committed entry there. */
  private readonly committedTerms = new Map<number, number>();
  private readonly appliedAt = new Map<number, string>();
  /** Highest log index of any completed client operation: later reads must reflect it. */
  completedIndexLowerBound = 0;
  maxCommittedIndex = 0;
  checks = 0;

  onBecomeLeader(id: NodeId, term: number, logTermAt: (i: number) => number | undefined, firstIndex: number): void {
    this.checks++;
    const prev = this.leaderOfTerm.get(term);
    if (prev !== undefined && prev !== id) {
      throw new SafetyViolation('election-safety', `nodes ${prev} and ${id} both became leader in term ${term}`);
    }
    this.leaderOfTerm.set(term, id);
    for (const [index, committedTerm] of this.committedTerms) {
      if (index < firstIndex) continue; // compacted into the leader's snapshot, which holds it
      const t = logTermAt(index);
      if (t !== committedTerm) {
        throw new SafetyViolation(
          'leader-completeness',
          `leader ${id} of term ${term} has term ${t ?? 'none'} at index ${index}, but term ${committedTerm} was committed there`,
        );
      }
    }
  }

  /** A node persisted entries; `termBefore` gives the term of the entry preceding the first. */
  onPersistEntries(id: NodeId, entries: Entry[], termBefore: number): void {
    let prevTerm = termBefore;
    for (const e of entries) {
      this.checks++;
      const k = `${e.index}/${e.term}`;
      const key = entryKey(e);
      const seen = this.seenEntries.get(k);
      if (!seen) {
        this.seenEntries.set(k, { key, prevTerm });
      } else if (seen.key !== key || seen.prevTerm !== prevTerm) {
        throw new SafetyViolation(
          'log-matching',
          `node ${id} persisted (index ${e.index}, term ${e.term}) with a different entry or prefix (prev term ${prevTerm} vs ${seen.prevTerm})`,
        );
      }
      // An old leader may persist entries at indexes a newer leader committed differently: that
      // is fine until it claims them committed. Only its own committed prefix must agree.
      const committedTerm = e.index <= this.maxCommittedIndexSeenBy(id) ? this.committedTerms.get(e.index) : undefined;
      if (committedTerm !== undefined && committedTerm !== e.term) {
        throw new SafetyViolation(
          'committed-entry-lost',
          `node ${id} overwrote committed index ${e.index} (term ${committedTerm}) with term ${e.term}`,
        );
      }
      prevTerm = e.term;
    }
  }

  /** A node persisted commit index `commit`; its log says the terms up to there. */
  onCommit(id: NodeId, commit: number, logTermAt: (i: number) => number | undefined, firstIndex: number): void {
    const from = Math.max(firstIndex, this.maxCommittedIndexSeenBy(id) + 1);
    for (let i = from; i <= commit; i++) {
      this.checks++;
      const t = logTermAt(i);
      if (t === undefined) continue;
      const known = this.committedTerms.get(i);
      if (known === undefined) this.committedTerms.set(i, t);
      else if (known !== t) {
        throw new SafetyViolation('committed-entry-lost', `node ${id} committed term ${t} at index ${i}, but term ${known} was committed there`);
      }
    }
    this.commitSeen.set(id, Math.max(commit, this.commitSeen.get(id) ?? 0));
    if (commit > this.maxCommittedIndex) this.maxCommittedIndex = commit;
  }

  private readonly commitSeen = new Map<NodeId, number>();
  private maxCommittedIndexSeenBy(id: NodeId): number {
    return this.commitSeen.get(id) ?? 0;
  }

  /** A restarted node begins again from its persisted state. */
  onRestart(id: NodeId): void {
    this.commitSeen.delete(id);
  }

  onApply(id: NodeId, e: Entry): void {
    this.checks++;
    const key = `${e.term}|${entryKey(e)}`;
    const prev = this.appliedAt.get(e.index);
    if (prev === undefined) this.appliedAt.set(e.index, key);
    else if (prev !== key) {
      throw new SafetyViolation('state-machine-safety', `node ${id} applied a different entry at index ${e.index}`);
    }
  }

  /** A client operation completed having observed the state at `index`. */
  onComplete(index: number): void {
    if (index > this.completedIndexLowerBound) this.completedIndexLowerBound = index;
  }

  onRead(id: NodeId, mode: string, servedIndex: number, lowerBound: number, invokeTick: number): void {
    this.checks++;
    if (servedIndex < lowerBound) {
      throw new SafetyViolation(
        'stale-read',
        `node ${id} served a ${mode} read (invoked at tick ${invokeTick}) at index ${servedIndex}, but index ${lowerBound} had completed before it was invoked`,
      );
    }
    this.onComplete(servedIndex);
  }
}
