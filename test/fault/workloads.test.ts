// counter, watch and lock workloads: short runs on 3 real kvd processes that must pass, and
// unit tests proving their checkers reject what they must.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { HistoryEvent } from './lib/history.js';
import { runFault, type RunOptions, type RunResult } from './lib/runner.js';
import { checkCounterSums, subsetSums } from './lib/workloads/counter.js';
import { checkLock } from './lib/workloads/lock.js';
import { checkWatch, type SeenEvent } from './lib/workloads/watch.js';

const store = mkdtempSync(join(tmpdir(), 'raftkv-fault-wl-'));

function run(opts: Partial<RunOptions> & Pick<RunOptions, 'workload' | 'nemeses' | 'seed'>): Promise<RunResult> {
  return runFault({ timeLimitS: 7, concurrency: 6, rate: 120, nodes: 3, consistency: 'linearizable', nemesisIntervalS: 1.5, recoverS: 15, checkTimeoutS: 30, storeDir: store, ...opts });
}

function explain(r: RunResult): string {
  return JSON.stringify({ runDir: r.runDir, valid: r.valid, checks: r.checks, faults: r.faults, notes: r.notes, counts: r.counts }, null, 2);
}

describe('counter, watch and lock workloads against real processes', () => {
  afterAll(() => rmSync(store, { recursive: true, force: true }));

  it('counter under kill + partition: bounded, exactly-once, linearizable', async () => {
    const r = await run({ workload: 'counter', nemeses: ['kill', 'partition'], seed: 61 });
    expect(r.valid, explain(r)).toBe(true);
    expect(r.checks.map((c) => c.valid)).toEqual([true, true]);
    expect(r.counts['add']!.ok, explain(r)).toBeGreaterThan(100);
    expect(r.faults.length).toBeGreaterThan(0);
  }, 90_000);

  it('watch under kill + partition: watchers on different nodes see one gap-free sequence', async () => {
    const r = await run({ workload: 'watch', nemeses: ['kill', 'partition'], seed: 62 });
    expect(r.valid, explain(r)).toBe(true);
    const d = r.checks[0]!.details as { ackedWrites: number; watchers: { events: number }[] };
    expect(d.watchers.length).toBe(3);
    expect(d.ackedWrites, explain(r)).toBeGreaterThan(100);
  }, 90_000);

  it('lock under kill + pause + partition: fenced writes of different holders never interleave', async () => {
    const r = await run({ workload: 'lock', nemeses: ['kill', 'pause', 'partition'], seed: 63 });
    expect(r.valid, explain(r)).toBe(true);
    expect(r.counts['write']!.ok, explain(r)).toBeGreaterThan(30);
    expect(r.counts['acquire']!.ok, explain(r)).toBeGreaterThan(10);
  }, 90_000);
});

// ---------------------------------------------------------------------------- checkers

let t = 0;
function op(process: number, f: string, key: string, value: unknown, type: 'ok' | 'fail' | 'info', out?: Partial<HistoryEvent>): HistoryEvent[] {
  return [
    { process, type: 'invoke', f, key, value, time: t++ },
    { process, type, f, key, value: out?.value ?? value, time: t++, ...out },
  ];
}

describe('counter checker', () => {
  it('subset sums are exact and bounded', () => {
    expect([...subsetSums([2, -1, 3])!].sort((a, b) => a - b)).toEqual([-1, 0, 1, 2, 3, 4, 5]);
    expect(subsetSums([1, 2, 4, 8, 16, 32], 10)).toBeUndefined();
  });

  it('accepts a final value of acked adds plus a subset of info adds, rejects a double apply and a read below 0', () => {
    const add = (p: number, d: number, type: 'ok' | 'fail' | 'info') => op(p, 'add', '0', { delta: d, min: 0 }, type);
    const base = [...add(1, 3, 'ok'), ...add(2, 2, 'info'), ...add(3, 5, 'info'), ...add(4, -1, 'ok')];
    const final = (v: number) => op(1_000_000, 'read', '0', null, 'ok', { value: v });
    expect(checkCounterSums([...base, ...final(2 + 5)]).valid).toBe(true);
    expect(checkCounterSums([...base, ...final(2 + 7)]).valid).toBe(true);
    const dup = checkCounterSums([...base, ...final(2 + 3)]); // the +3 applied twice
    expect(dup.valid).toBe(false);
    expect(dup.explanations[0]).toMatch(/exactly-once: counter 0 ended at 5/);
    const neg = checkCounterSums([...base, ...op(9, 'read', '0', null, 'ok', { value: -1 }), ...final(2)]);
    expect(neg.valid).toBe(false);
    expect(neg.explanations[0]).toMatch(/below the bound/);
  });
});

describe('watch checker', () => {
  const writes = [...op(1, 'put', '0', 'a', 'ok', { revision: 10 }), ...op(2, 'put', '1', 'b', 'ok', { revision: 11 }), ...op(1, 'delete', '0', null, 'ok', { value: 1, revision: 12 })];
  const seq: SeenEvent[] = [
    { revision: 10, type: 'put', key: '0', value: 'a' },
    { revision: 11, type: 'put', key: '1', value: 'b' },
    { revision: 12, type: 'delete', key: '0', value: '' },
  ];
  const final = { revision: 12, kvs: [{ key: '1', value: 'b', modRevision: 11 }] };
  const w = (id: number, events: SeenEvent[]) => ({ id, events, revision: 12 });

  it('accepts identical complete sequences', () => {
    expect(checkWatch(writes, [w(0, seq), w(1, seq)], final).valid).toBe(true);
  });

  it('rejects a gap, a reorder and a divergence', () => {
    const gap = checkWatch(writes, [w(0, seq), w(1, [seq[0]!, seq[2]!])], final);
    expect(gap.valid).toBe(false);
    expect(gap.explanations.join('\n')).toMatch(/missing/);
    const reorder = checkWatch(writes, [w(0, [seq[1]!, seq[0]!, seq[2]!])], final);
    expect(reorder.explanations.join('\n')).toMatch(/out of order/);
    const invented = checkWatch(writes, [w(0, [...seq.slice(0, 2), { revision: 12, type: 'put', key: '0', value: 'zzz' }])], final);
    expect(invented.explanations.join('\n')).toMatch(/matches no invoked write/);
  });
});

describe('lock checker', () => {
  it('rejects a write of an older holder applied after a newer holder wrote', () => {
    const events = [...op(1, 'acquire', '0', null, 'ok', { value: 5 }), ...op(2, 'acquire', '0', null, 'ok', { value: 9 })];
    const ok = new Map([[0, [{ revision: 20, worker: 1, token: 5, i: 0 }, { revision: 21, worker: 2, token: 9, i: 0 }]]]);
    expect(checkLock(events, ok).valid).toBe(true);
    const bad = new Map([[0, [...ok.get(0)!, { revision: 22, worker: 1, token: 5, i: 1 }]]]);
    const r = checkLock(events, bad);
    expect(r.valid).toBe(false);
    expect(r.explanations[0]).toMatch(/two holders interleaved/);
  });
});
