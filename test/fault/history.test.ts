// Unit tests of history recording, outcome classification and the bank checker.

import { describe, expect, it } from 'vitest';
import { parseHistory } from '../../src/check/parse/index.js';
import { KvClientError, StatusCode } from '../../src/client/index.js';
import { HistoryRecorder, totals } from './lib/history.js';
import { readErrorOutcome, writeErrorOutcome } from './lib/workload.js';
import { BankWorkload } from './lib/workloads/bank.js';

describe('HistoryRecorder', () => {
  it('records invoke before completion, in real-time order, in our JSON-lines format', () => {
    const rec = new HistoryRecorder();
    const a = rec.invoke(0, 'write', 3, 'k');
    const b = rec.invoke(1, 'read', null, 'k');
    rec.complete(b, { type: 'ok', value: null, node: 2 });
    rec.complete(a, { type: 'info', value: null, error: 'DEADLINE_EXCEEDED: x' });
    rec.nemesis('start-kill', 'kill -9 n1');
    expect(rec.events.map((e) => `${e.process}:${e.type}`)).toEqual(['0:invoke', '1:invoke', '1:ok', '0:info', 'nemesis:info']);
    const times = rec.events.map((e) => e.time);
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    const { history } = parseHistory(rec.toJsonl(), { format: 'jsonl' });
    expect(history).toHaveLength(5);
    expect(history[3]).toMatchObject({ process: 0, type: 'info', f: 'write', key: 'k', error: 'DEADLINE_EXCEEDED: x' });
    expect(history[2]).toMatchObject({ process: 1, type: 'ok', f: 'read', value: null });
    expect(rec.counts()).toEqual({ write: { ok: 0, fail: 0, info: 1, open: 0 }, read: { ok: 1, fail: 0, info: 0, open: 0 } });
  });

  it('refuses a second open op on one process and a completion without an invoke', () => {
    const rec = new HistoryRecorder();
    const h = rec.invoke(7, 'read', null);
    expect(() => rec.invoke(7, 'read', null)).toThrow(/already has an open op/);
    rec.complete(h, { type: 'fail', value: null });
    expect(() => rec.complete(h, { type: 'ok', value: 1 })).toThrow(/no open op/);
  });

  it('turns ops still open at the end into info (outcome unknown)', () => {
    const rec = new HistoryRecorder();
    rec.invoke(1, 'write', 1, 'a');
    rec.invoke(2, 'cas', [1, 2], 'a');
    rec.closeOpen('run aborted');
    expect(rec.openCount()).toBe(0);
    expect(totals(rec.counts())).toEqual({ ok: 0, fail: 0, info: 2, open: 0 });
    expect(rec.events.filter((e) => e.type === 'info').every((e) => e.error === 'run aborted')).toBe(true);
  });
});

describe('outcome classification', () => {
  const err = (code: number, details: string, flags: { notSent?: boolean; notApplied?: boolean; earlierAttemptMayHaveApplied?: boolean } = {}) =>
    new KvClientError(code, details, flags);

  it('fail only when the write was certainly not applied', () => {
    expect(writeErrorOutcome(err(StatusCode.UNAVAILABLE, 'not the leader; leader is 2', { notApplied: true })).type).toBe('fail');
    expect(writeErrorOutcome(err(StatusCode.INVALID_ARGUMENT, 'empty key')).type).toBe('fail');
    expect(writeErrorOutcome(err(StatusCode.UNAVAILABLE, 'no leader known to any endpoint', { notSent: true })).type).toBe('fail');
    expect(writeErrorOutcome(err(StatusCode.RESOURCE_EXHAUSTED, 'too many pending proposals')).type).toBe('fail');
  });

  it('info when the outcome is unknown', () => {
    expect(writeErrorOutcome(err(StatusCode.DEADLINE_EXCEEDED, 'Deadline exceeded')).type).toBe('info');
    expect(writeErrorOutcome(err(StatusCode.UNAVAILABLE, 'Connection dropped')).type).toBe('info');
    expect(writeErrorOutcome(err(StatusCode.UNAVAILABLE, 'not the leader (but the server did not say it was not applied)')).type).toBe('info');
    expect(writeErrorOutcome(err(StatusCode.INTERNAL, 'boom')).type).toBe('info');
    expect(writeErrorOutcome(new Error('weird')).type).toBe('info');
  });

  it('info when a retry was refused but an earlier attempt may have been applied (the seed-13 list-append G1a)', () => {
    const earlier = { earlierAttemptMayHaveApplied: true };
    expect(writeErrorOutcome(err(StatusCode.UNAVAILABLE, 'no leader known to any endpoint', { notSent: true, ...earlier })).type).toBe('info');
    expect(writeErrorOutcome(err(StatusCode.UNAVAILABLE, 'not the leader; leader is 2', { notApplied: true, ...earlier })).type).toBe('info');
    expect(writeErrorOutcome(err(StatusCode.RESOURCE_EXHAUSTED, 'too many pending proposals', earlier)).type).toBe('info');
    expect(writeErrorOutcome(err(StatusCode.INVALID_ARGUMENT, 'empty key', earlier)).type).toBe('info');
  });

  it('a failed read is a fail (it changes nothing)', () => {
    expect(readErrorOutcome({ code: StatusCode.DEADLINE_EXCEEDED, details: 'x' })).toMatchObject({ type: 'fail', error: 'DEADLINE_EXCEEDED: x' });
  });
});

describe('bank checker', () => {
  function history(reads: Record<string, number>[]) {
    const rec = new HistoryRecorder();
    reads.forEach((balances, i) => rec.complete(rec.invoke(i, 'read', null), { type: 'ok', value: balances }));
    return rec.events;
  }
  const bank = new BankWorkload({ accounts: 3, initialBalance: 10 });

  it('passes reads that conserve the total', () => {
    const [r] = bank.check(history([{ a0: 10, a1: 10, a2: 10 }, { a0: 5, a1: 15, a2: 10 }]));
    expect(r!.valid).toBe(true);
  });

  it('rejects a wrong total, a negative balance and a missing account', () => {
    const [r] = bank.check(history([{ a0: 10, a1: 10, a2: 11 }, { a0: -1, a1: 21, a2: 10 }, { a0: 15, a1: 15 }]));
    expect(r!.valid).toBe(false);
    const text = r!.explanations.join('\n');
    expect(text).toMatch(/total 31, expected 30/);
    expect(text).toMatch(/negative balance: a0=-1/);
    expect(text).toMatch(/accounts missing: a2/);
  });

  it('is unknown when no read succeeded', () => {
    expect(bank.check([])[0]!.valid).toBe('unknown');
  });
});
