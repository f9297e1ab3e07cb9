// Each model on small hand-made histories, including the dialect differences and :info handling.

import { describe, expect, it } from 'vitest';
import type { History, Op, OpType } from '../history.js';
import type { HistoryFormat } from '../parse/index.js';
import { runCheck, type CheckModelName } from '../run.js';

/** Builds a history from [process, type, f, value, key?] tuples. */
function h(...events: [number, OpType, string, unknown, string?][]): History {
  return events.map(([process, type, f, value, key], index) => {
    const op: Op = { index, process, type, f, value };
    if (key !== undefined) op.key = key;
    return op;
  });
}

function verdict(model: CheckModelName, history: History, format: HistoryFormat = 'jsonl', initial?: unknown) {
  return runCheck({ history, format, model, initial, timeoutMs: 5_000 }).valid;
}

describe('register and cas-register', () => {
  const staleRead = h([0, 'invoke', 'write', 1], [0, 'ok', 'write', 1], [1, 'invoke', 'read', null], [1, 'ok', 'read', 0]);

  it('rejects a read of an overwritten value and accepts overlapping ones', () => {
    expect(verdict('register', staleRead, 'jsonl', 0)).toBe(false);
    const overlapping = h([0, 'invoke', 'write', 1], [1, 'invoke', 'read', null], [1, 'ok', 'read', 0], [0, 'ok', 'write', 1]);
    expect(verdict('register', overlapping, 'jsonl', 0)).toBe(true);
  });

  it('treats an :ok read of nil as a wildcard only in Knossos EDN', () => {
    const nilRead = h([0, 'invoke', 'write', 1], [0, 'ok', 'write', 1], [1, 'invoke', 'read', null], [1, 'ok', 'read', null]);
    expect(verdict('cas-register', nilRead, 'edn')).toBe(true);
    expect(verdict('cas-register', nilRead, 'jsonl')).toBe(false);
    expect(verdict('cas-register', nilRead, 'porcupine-log')).toBe(false);
  });

  it('reads a :fail cas as "compare failed" in Porcupine etcd logs, as "did not happen" elsewhere', () => {
    // The register holds 1, so a cas from 1 cannot fail because of its compare.
    const failedCas = h([0, 'invoke', 'write', 1], [0, 'ok', 'write', 1], [1, 'invoke', 'cas', [1, 2]], [1, 'fail', 'cas', [1, 2]]);
    expect(verdict('cas-register', failedCas, 'porcupine-log')).toBe(false);
    expect(verdict('cas-register', failedCas, 'edn')).toBe(true);
  });

  it('lets an :info write take effect or not', () => {
    const infoWrite = (seen: number) =>
      h([0, 'invoke', 'write', 1], [0, 'info', 'write', 1], [1, 'invoke', 'read', null], [1, 'ok', 'read', seen], [1, 'invoke', 'read', null], [1, 'ok', 'read', 0]);
    expect(verdict('register', infoWrite(0), 'jsonl', 0)).toBe(true);
    // Seen, then unseen: a write cannot be undone.
    expect(verdict('register', infoWrite(1), 'jsonl', 0)).toBe(false);
  });

  it('checks each key on its own', () => {
    const keyed = h([0, 'invoke', 'write', 1, 'a'], [0, 'ok', 'write', 1, 'a'], [1, 'invoke', 'read', null, 'b'], [1, 'ok', 'read', null, 'b']);
    expect(verdict('register', keyed)).toBe(true);
  });

  it('names the op that cannot be linearized and the prefix before it', () => {
    const report = runCheck({ history: staleRead, format: 'jsonl', model: 'register', initial: 0 });
    expect(report.lin!.failure!.failingOp.invoke.index).toBe(2);
    expect(report.lin!.failure!.longestPrefix.map((op) => op.invoke.index)).toEqual([0]);
    expect(report.explanations[0]).toMatch(/cannot linearize read\(\) -> 0 by process 1/);
  });
});

describe('kv', () => {
  it('appends to "" per key', () => {
    const ok = h([0, 'invoke', 'append', 'x', 'k'], [0, 'ok', 'append', 'x', 'k'], [0, 'invoke', 'append', 'y', 'k'], [0, 'ok', 'append', 'y', 'k'], [1, 'invoke', 'get', null, 'k'], [1, 'ok', 'get', 'xy', 'k']);
    expect(verdict('kv', ok)).toBe(true);
    const bad = ok.slice();
    bad[5] = { ...bad[5]!, value: 'yx' };
    expect(verdict('kv', bad)).toBe(false);
  });
});

describe('mutex', () => {
  it('rejects two holders and accepts an :info acquire that never happened', () => {
    const twoHolders = h([0, 'invoke', 'acquire', null], [0, 'ok', 'acquire', null], [1, 'invoke', 'acquire', null], [1, 'ok', 'acquire', null]);
    expect(verdict('mutex', twoHolders)).toBe(false);
    const lostAcquire = h([0, 'invoke', 'acquire', null], [0, 'ok', 'acquire', null], [1, 'invoke', 'acquire', null], [1, 'info', 'acquire', null]);
    expect(verdict('mutex', lostAcquire)).toBe(true);
  });
});

describe('multi-register', () => {
  it('applies a txn atomically', () => {
    const torn = h([0, 'invoke', 'txn', [['write', 'x', 1], ['write', 'y', 1]]], [1, 'invoke', 'txn', [['read', 'x', null], ['read', 'y', null]]], [1, 'ok', 'txn', [['read', 'x', 1], ['read', 'y', 0]]], [0, 'ok', 'txn', [['write', 'x', 1], ['write', 'y', 1]]]);
    expect(verdict('multi-register', torn, 'jsonl', { x: 0, y: 0 })).toBe(false);
    const whole = torn.slice();
    whole[2] = { ...whole[2]!, value: [['read', 'x', 1], ['read', 'y', 1]] };
    expect(verdict('multi-register', whole, 'jsonl', { x: 0, y: 0 })).toBe(true);
  });
});

describe('counter', () => {
  it('respects bounds, and an out-of-bounds rejection must be justified', () => {
    const add = (d: number) => ({ delta: d, min: 0 });
    const ok = h([0, 'invoke', 'add', add(2)], [0, 'ok', 'add', add(2)], [0, 'invoke', 'add', add(-3)], [0, 'fail', 'add', add(-3)], [0, 'invoke', 'read', null], [0, 'ok', 'read', 2]);
    ok[3] = { ...ok[3]!, error: 'out-of-bounds' };
    expect(verdict('counter', ok)).toBe(true);
    const unjustified = ok.slice();
    unjustified[2] = { ...ok[2]!, value: add(-1) };
    unjustified[3] = { ...ok[3]!, value: add(-1) };
    unjustified[5] = { ...ok[5]!, value: 2 };
    expect(verdict('counter', unjustified)).toBe(false);
    const belowZero = h([0, 'invoke', 'add', add(-1)], [0, 'ok', 'add', add(-1)]);
    expect(verdict('counter', belowZero)).toBe(false);
  });
});
