// Direct unit tests for the pieces of the core where a transcript would be awkward.

import { describe, expect, it } from 'vitest';
import { InvariantViolation } from '../../src/raft/assert.js';
import { decodeConfChange, encodeConfChange } from '../../src/raft/conf-change-codec.js';
import { Unstable } from '../../src/raft/log-unstable.js';
import { Inflights, Progress, ProgressState } from '../../src/raft/progress.js';
import { RaftLog } from '../../src/raft/raft-log.js';
import { kthLargest } from '../../src/raft/raft.js';
import { RawNode } from '../../src/raft/rawnode.js';
import { CompactedError, MemoryStorage } from '../../src/raft/storage.js';
import { ConfChangeType, EntryType, MessageType, emptyMessage, type Entry } from '../../src/raft/types.js';

const ent = (term: number, index: number, data = ''): Entry => ({ term, index, type: EntryType.Normal, data: new TextEncoder().encode(data) });

function logWith(terms: number[]): RaftLog {
  const s = new MemoryStorage({ voters: [1], learners: [] });
  s.append(terms.map((t, i) => ent(t, i + 1)));
  return new RaftLog(s);
}

describe('RaftLog', () => {
  it('maybeAppend appends after a match, truncates a conflicting tail and never truncates committed', () => {
    const log = logWith([1, 1, 2]);
    expect(log.maybeAppend(3, 3, 0, [])).toBeUndefined(); // term mismatch at 3
    expect(log.maybeAppend(2, 1, 2, [ent(3, 3), ent(3, 4)])).toBe(4);
    expect(log.lastIndex()).toBe(4);
    expect(log.term(3)).toBe(3);
    expect(log.committed).toBe(2);
    // Commit is capped at the last new index of this append.
    expect(log.maybeAppend(2, 1, 10, [ent(3, 3)])).toBe(3);
    expect(log.committed).toBe(3);
    expect(log.lastIndex()).toBe(4); // matching prefix: no truncation
    expect(() => log.maybeAppend(1, 1, 3, [ent(9, 2)])).toThrow(InvariantViolation);
  });

  it('findConflictByTerm returns the last index with term <= the given term', () => {
    const log = logWith([1, 1, 2, 2, 2, 4, 4]);
    expect(log.findConflictByTerm(7, 3)).toEqual({ index: 5, term: 2 });
    expect(log.findConflictByTerm(7, 4)).toEqual({ index: 7, term: 4 });
    expect(log.findConflictByTerm(5, 1)).toEqual({ index: 2, term: 1 });
    expect(log.findConflictByTerm(3, 0)).toEqual({ index: 0, term: 0 });
  });

  it('commit never regresses; commit beyond the last index and applied beyond commit throw', () => {
    const log = logWith([1, 1, 1]);
    log.commitTo(3);
    log.commitTo(1);
    expect(log.committed).toBe(3);
    expect(() => log.commitTo(4)).toThrow(InvariantViolation);
    log.appliedTo(2);
    expect(() => log.appliedTo(1)).toThrow(InvariantViolation);
    expect(() => log.appliedTo(4)).toThrow(InvariantViolation);
  });

  it('maybeCommit only commits entries of the given term (Figure 8)', () => {
    const log = logWith([1, 1, 2]);
    expect(log.maybeCommit(2, 2)).toBe(false);
    expect(log.committed).toBe(0);
    expect(log.maybeCommit(3, 2)).toBe(true);
    expect(log.committed).toBe(3);
  });

  it('slice spans storage and unstable entries and respects maxBytes (at least one entry)', () => {
    const log = logWith([1, 1]);
    log.append([ent(2, 3, 'aaaa'), ent(2, 4, 'bbbb')]);
    expect(log.slice(1, 5, Infinity).map((e) => e.index)).toEqual([1, 2, 3, 4]);
    expect(log.slice(3, 5, 20).map((e) => e.index)).toEqual([3]);
    expect(log.slice(3, 5, 1).map((e) => e.index)).toEqual([3]);
    expect(log.entriesFrom(5, Infinity)).toEqual([]);
  });

  it('throws CompactedError below the first index', () => {
    const s = new MemoryStorage({ voters: [1], learners: [] });
    s.append([ent(1, 1), ent(1, 2), ent(1, 3)]);
    s.createSnapshot(2, { voters: [1], learners: [] }, new Uint8Array());
    s.compact(2);
    const log = new RaftLog(s);
    expect(log.firstIndex()).toBe(3);
    expect(log.term(2)).toBe(1); // the snapshot's index keeps its term
    expect(log.maybeTerm(1)).toBeUndefined();
    expect(() => log.entriesFrom(2, Infinity)).toThrow(CompactedError);
  });
});

describe('Unstable', () => {
  it('truncateAndAppend appends, replaces, or truncates in the middle', () => {
    const u = new Unstable(5);
    u.truncateAndAppend([ent(1, 5), ent(1, 6), ent(1, 7)]);
    expect(u.maybeLastIndex()).toBe(7);
    u.truncateAndAppend([ent(2, 7)]);
    expect(u.entries.map((e) => `${e.term}/${e.index}`)).toEqual(['1/5', '1/6', '2/7']);
    u.truncateAndAppend([ent(3, 4)]);
    expect(u.offset).toBe(4);
    expect(u.entries.map((e) => `${e.term}/${e.index}`)).toEqual(['3/4']);
  });

  it('stableTo only drops entries whose term still matches', () => {
    const u = new Unstable(5);
    u.truncateAndAppend([ent(1, 5), ent(1, 6)]);
    u.stableTo(6, 2); // stale: entry 6 now has term 1
    expect(u.entries.length).toBe(2);
    u.stableTo(5, 1);
    expect(u.offset).toBe(6);
    expect(u.entries.map((e) => e.index)).toEqual([6]);
  });

  it('a snapshot sets the first index and the term of its index', () => {
    const u = new Unstable(1);
    u.restore({ metadata: { index: 10, term: 3, confState: { voters: [1], learners: [] } }, data: new Uint8Array() });
    expect(u.maybeFirstIndex()).toBe(11);
    expect(u.maybeLastIndex()).toBe(10);
    expect(u.maybeTerm(10)).toBe(3);
    expect(u.maybeTerm(9)).toBeUndefined();
    u.stableSnapTo(10);
    expect(u.snapshot).toBeUndefined();
  });
});

describe('Progress and Inflights', () => {
  it('Inflights is a bounded FIFO freed by ack index', () => {
    const inf = new Inflights(3);
    inf.add(5);
    inf.add(7);
    inf.add(9);
    expect(inf.full()).toBe(true);
    expect(() => inf.add(10)).toThrow(InvariantViolation);
    inf.freeLE(7);
    expect(inf.count).toBe(1);
    inf.freeLE(100);
    expect(inf.count).toBe(0);
    for (let i = 0; i < 1000; i++) {
      inf.add(i);
      inf.freeLE(i);
    }
    expect(inf.count).toBe(0);
  });

  it('probe sends one append then pauses; replicate is bounded by the window', () => {
    const pr = new Progress(11, 2, false);
    expect(pr.isPaused()).toBe(false);
    pr.sentEntries(1, 11);
    expect(pr.isPaused()).toBe(true);
    expect(pr.maybeUpdate(10)).toBe(true);
    pr.becomeReplicate();
    expect(pr.next).toBe(11);
    pr.sentEntries(2, 12);
    pr.sentEntries(1, 13);
    expect(pr.next).toBe(14);
    expect(pr.isPaused()).toBe(true);
    pr.inflights.freeLE(12);
    expect(pr.isPaused()).toBe(false);
  });

  it('maybeDecrTo ignores stale rejections and uses the hint', () => {
    const pr = new Progress(21, 4, false);
    pr.match = 5;
    expect(pr.maybeDecrTo(19, 7)).toBe(false); // not the last probe (next-1 = 20)
    expect(pr.maybeDecrTo(20, 7)).toBe(true);
    expect(pr.next).toBe(8);
    pr.sentEntries(0, 7);
    expect(pr.maybeDecrTo(7, 2)).toBe(true);
    expect(pr.next).toBe(6); // never below match + 1
    pr.becomeReplicate();
    expect(pr.maybeDecrTo(5, 0)).toBe(false); // <= match: stale
    expect(pr.maybeDecrTo(9, 0)).toBe(true);
    expect(pr.next).toBe(6);
  });

  it('after a snapshot, probing resumes past the snapshot', () => {
    const pr = new Progress(3, 4, false);
    pr.becomeSnapshot(50);
    expect(pr.state).toBe(ProgressState.Snapshot);
    expect(pr.isPaused()).toBe(true);
    pr.becomeProbe();
    expect(pr.next).toBe(51);
  });
});

describe('conf change codec', () => {
  it('round-trips every type with context bytes', () => {
    for (const type of [ConfChangeType.AddNode, ConfChangeType.RemoveNode, ConfChangeType.AddLearner]) {
      const cc = { type, nodeId: 123456789, context: new TextEncoder().encode('127.0.0.1:7001') };
      const back = decodeConfChange(encodeConfChange(cc));
      expect(back.type).toBe(type);
      expect(back.nodeId).toBe(cc.nodeId);
      expect(new TextDecoder().decode(back.context)).toBe('127.0.0.1:7001');
    }
  });

  it('rejects malformed payloads loudly', () => {
    expect(() => decodeConfChange(new Uint8Array(3))).toThrow(InvariantViolation);
    const bad = encodeConfChange({ type: ConfChangeType.AddNode, nodeId: 1, context: new Uint8Array() });
    bad[0] = 9;
    expect(() => decodeConfChange(bad)).toThrow(InvariantViolation);
    const zero = encodeConfChange({ type: ConfChangeType.AddNode, nodeId: 0, context: new Uint8Array() });
    expect(() => decodeConfChange(zero)).toThrow(InvariantViolation);
  });
});

describe('invariants', () => {
  const newNode = (storage: MemoryStorage): RawNode =>
    new RawNode({
      id: 1,
      storage,
      electionTimeoutTicks: 10,
      heartbeatIntervalTicks: 1,
      maxMsgBytes: 1 << 20,
      maxInflightMsgs: 16,
      maxCommittedBytesPerReady: 1 << 20,
      checkQuorum: true,
      preVote: true,
      leaseMarginTicks: 2,
      randomInt: () => 0,
      logger: { debug() {}, info() {}, warn() {} },
    });

  it('the term never decreases', () => {
    const s = new MemoryStorage({ voters: [1, 2, 3], learners: [] });
    s.setHardState({ term: 5, vote: 0, commit: 0 });
    const rn = newNode(s);
    expect(() => rn.raft.becomeFollower(4, 0)).toThrow(InvariantViolation);
  });

  it('a restart with a commit index beyond the log fails loudly', () => {
    const s = new MemoryStorage({ voters: [1, 2, 3], learners: [] });
    s.append([ent(1, 1)]);
    s.setHardState({ term: 1, vote: 0, commit: 2 });
    expect(() => newNode(s)).toThrow(InvariantViolation);
  });

  it('a second vote in the same term is caught before it is persisted', () => {
    const s = new MemoryStorage({ voters: [1, 2, 3], learners: [] });
    s.setHardState({ term: 2, vote: 2, commit: 0 });
    const rn = newNode(s);
    rn.raft.vote = 3; // what a double-vote bug would do
    expect(() => rn.ready()).toThrow(InvariantViolation);
  });

  it('commit regression is caught before it is persisted', () => {
    const s = new MemoryStorage({ voters: [1, 2, 3], learners: [] });
    s.append([ent(1, 1), ent(1, 2)]);
    s.setHardState({ term: 1, vote: 0, commit: 2 });
    const rn = newNode(s);
    rn.raft.log.committed = 1;
    expect(() => rn.ready()).toThrow(InvariantViolation);
  });

  it('a node at term 0 that knows no configuration rejects a pre-vote by silence (sim seed 125546)', () => {
    // A learner that crashed before it received anything, promoted meanwhile, restarts empty.
    const s = new MemoryStorage({ voters: [], learners: [] });
    const rn = newNode(s);
    expect(rn.raft.term).toBe(0);
    rn.step({ ...emptyMessage({ type: MessageType.PreVote, to: 1, term: 11 }), from: 2, index: 80, logTerm: 10 });
    const sent = rn.hasReady() ? rn.ready().messages : [];
    expect(sent.filter((m) => m.type === MessageType.PreVoteResp)).toEqual([]);
    expect(rn.raft.term).toBe(0);
    // With a configuration it grants (at the request's term), as before.
    const s2 = new MemoryStorage({ voters: [1, 2, 3], learners: [] });
    const rn2 = newNode(s2);
    rn2.step({ ...emptyMessage({ type: MessageType.PreVote, to: 1, term: 11 }), from: 2, index: 80, logTerm: 10 });
    const granted = rn2.ready().messages.filter((m) => m.type === MessageType.PreVoteResp);
    expect(granted).toMatchObject([{ to: 2, term: 11, reject: false }]);
  });

  it('the host must not step between ready() and advance()', () => {
    const s = new MemoryStorage({ voters: [1], learners: [] });
    const rn = newNode(s);
    rn.campaign();
    const rd = rn.ready();
    expect(() => rn.tick()).toThrow(InvariantViolation);
    expect(() => rn.propose(new Uint8Array([1]))).toThrow(InvariantViolation);
    rn.advance(rd);
    expect(() => rn.advance(rd)).toThrow(InvariantViolation);
  });
});

describe('kthLargest (quorum index)', () => {
  it('matches a sort-based reference on random small arrays, duplicates included', () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    for (let trial = 0; trial < 2_000; trial++) {
      const xs = Array.from({ length: 1 + rand(9) }, () => rand(6));
      const ref = [...xs].sort((a, b) => b - a);
      const k = 1 + rand(xs.length);
      expect(kthLargest(xs, k)).toBe(ref[k - 1]);
      expect(xs).toEqual(ref);
    }
  });

  it('is undefined for k outside 1..length', () => {
    expect(kthLargest([], 1)).toBeUndefined();
    expect(kthLargest([3, 1], 0)).toBeUndefined();
    expect(kthLargest([3, 1], 3)).toBeUndefined();
    expect(kthLargest([1, 3, 2], 2)).toBe(2);
  });
});
