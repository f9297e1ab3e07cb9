// Read modes under faults (issue 7, "tests that can fail"): short runs on 3 real kvd processes.
// - LEASE reads under kill + SIGSTOP of the LEADER for longer than its lease + partition: the
//   history must be linearizable (a paused leader must not serve a stale lease read on waking);
// - SESSION reads and writes through one SDK session per worker, under partition + kill: the
//   session checker (monotonic reads, read-your-writes, values) must pass;
// - proof the session pipeline can fail: a planted client bug drops the session token (STALE
//   reads of the pinned node recorded as session reads); the checker must catch it.
// (STALE under a leader-isolating partition must fail linearizability: fault.test.ts.)

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ELECTION_TIMEOUT_TICKS, runFault, type RunOptions, type RunResult } from './lib/runner.js';

const store = mkdtempSync(join(tmpdir(), 'raftkv-fault-modes-'));
const TICK_MS = 50;

function run(opts: Partial<RunOptions> & Pick<RunOptions, 'workload' | 'nemeses' | 'seed' | 'consistency'>): Promise<RunResult> {
  return runFault({ timeLimitS: 7, concurrency: 6, rate: 120, nodes: 3, tickMs: TICK_MS, nemesisIntervalS: 1.5, recoverS: 15, checkTimeoutS: 30, storeDir: store, ...opts });
}

function explain(r: RunResult): string {
  return JSON.stringify({ runDir: r.runDir, valid: r.valid, checks: r.checks, faults: r.faults, notes: r.notes, counts: r.counts }, null, 2);
}

describe('read modes under faults', () => {
  afterAll(() => rmSync(store, { recursive: true, force: true }));

  it('LEASE reads under kill + leader SIGSTOP longer than the lease + partition are linearizable', async () => {
    const pauseMinMs = 3 * ELECTION_TIMEOUT_TICKS * TICK_MS;
    const r = await run({ workload: 'register', consistency: 'lease', nemeses: ['pause', 'kill', 'partition'], pauseTarget: 'leader', pauseMinMs, seed: 43 });
    expect(r.valid, explain(r)).toBe(true);
    const pauses = r.faults.filter((f) => f.nemesis === 'pause');
    expect(pauses.length, explain(r)).toBeGreaterThan(0);
    for (const p of pauses) {
      expect(p.label).toMatch(/\(leader\)/);
      expect(p.endMs! - p.startMs, 'paused longer than the lease (election timeout)').toBeGreaterThan(ELECTION_TIMEOUT_TICKS * TICK_MS);
    }
    expect(r.counts['read']!.ok, explain(r)).toBeGreaterThan(50);
  }, 90_000);

  it('SESSION reads and writes (one SDK session per worker) under partition + kill keep the session guarantees', async () => {
    const r = await run({ workload: 'register', consistency: 'session', nemeses: ['partition', 'kill'], seed: 42 });
    expect(r.checks[0]!.name).toMatch(/session guarantees/);
    // Both checks must pass: the session guarantees and "a read's header revision covers the
    // data it returned" (the server bug this once caught is fixed in kv-service's coverData).
    expect(r.checks[0]!.explanations, explain(r)).toEqual([]);
    expect(r.checks[1]!.explanations, explain(r)).toEqual([]);
    expect(r.valid, explain(r)).toBe(true);
    expect(r.faults.length, explain(r)).toBeGreaterThan(0);
    expect(r.counts['read']!.ok + r.counts['write']!.ok, explain(r)).toBeGreaterThan(100);
  }, 90_000);

  it('catches a planted bug: session reads that drop the session token (stale reads of a partitioned node)', async () => {
    let last: RunResult | undefined;
    let caught: string[] = [];
    for (let attempt = 0; attempt < 3 && caught.length === 0; attempt++) {
      last = await run({
        workload: 'register',
        consistency: 'session',
        nemeses: ['partition'],
        partitionKinds: ['isolate-leader', 'majority-minority'],
        plantedBug: 'session-drop-token',
        nemesisIntervalS: 2,
        timeLimitS: 6,
        seed: 51 + attempt,
      });
      caught = last.checks[0]!.explanations.filter((e) => /^(read-your-writes|monotonic-reads)/.test(e));
    }
    expect(last!.valid, explain(last!)).toBe(false);
    expect(caught.length, explain(last!)).toBeGreaterThan(0);
  }, 200_000);
});
