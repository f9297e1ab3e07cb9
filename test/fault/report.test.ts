// report.html: self-contained (Chart.js inlined), carries the chart data and every nemesis window.

import { describe, expect, it } from 'vitest';
import { HistoryRecorder } from './lib/history.js';
import { renderReport, reportData } from './lib/report.js';
import type { RunResult } from './lib/runner.js';

function fixture() {
  const rec = new HistoryRecorder();
  for (let i = 0; i < 20; i++) {
    const h = rec.invoke(i, i % 2 ? 'read' : 'write', i, 'k');
    rec.complete(h, { type: i % 5 === 0 ? 'info' : i % 7 === 0 ? 'fail' : 'ok', value: i });
  }
  const result: RunResult = {
    runDir: '/tmp/x',
    valid: false,
    aborted: false,
    options: { workload: 'register', nemeses: ['kill', 'partition'], timeLimitS: 10, concurrency: 4, rate: 50, nodes: 3, seed: 42, consistency: 'linearizable', tickMs: 50, opTimeoutMs: 1500, command: 'npm run fault -- --workload register' },
    checks: [],
    counts: rec.counts(),
    faults: [
      { nemesis: 'kill', label: 'kill -9 n2 (leader)', startMs: 1000, endMs: 3000 },
      { nemesis: 'partition', label: 'partition isolate-leader: [1] | [2,3]', startMs: 5000, endMs: 8000 },
    ],
    opsPerSec: 2,
    workloadMs: 10_000,
    totalMs: 12_000,
    checkMs: 5,
    events: rec.events.length,
    notes: [],
  };
  const checks = [{ name: 'linearizable (cas-register, per key)', valid: false as const, explanations: ['cannot linearize read 3 by process 1'], elapsedMs: 3, html: '<html><body>timeline "x"</body></html>' }];
  return { rec, result, checks };
}

describe('report', () => {
  it('computes points per f and outcome, percentiles, throughput and windows', () => {
    const { rec, result, checks } = fixture();
    const d = reportData({ result, ops: rec.ops, checks, workloadStartMs: 0 });
    const total = Object.values(d.points).reduce((s, p) => s + p.length, 0);
    expect(total).toBe(20);
    expect(Object.keys(d.points).sort()).toEqual(['read fail', 'read info', 'read ok', 'write fail', 'write info', 'write ok']);
    expect(d.percentiles.length).toBeGreaterThan(0);
    expect(d.throughput.reduce((s, t) => s + t.ok + t.fail + t.info, 0)).toBe(20);
    expect(d.windows).toEqual([
      { nemesis: 'kill', label: 'kill -9 n2 (leader)', start: 1, end: 3 },
      { nemesis: 'partition', label: 'partition isolate-leader: [1] | [2,3]', start: 5, end: 8 },
    ]);
  });

  it('renders a self-contained page with Chart.js, the data, the windows and the explanation', () => {
    const { rec, result, checks } = fixture();
    const html = renderReport({ result, ops: rec.ops, checks, workloadStartMs: 0 });
    expect(html).toContain('<canvas id="latency">');
    expect(html).toContain('<canvas id="throughput">');
    expect(html).toMatch(/Chart\.js v4/); // the UMD bundle's banner: inlined, no network
    expect(html).not.toMatch(/<script[^>]+src=/);
    const json = /<script id="report-data" type="application\/json">(.*?)<\/script>/s.exec(html)![1]!;
    const data = JSON.parse(json);
    expect(data.windows.map((w: { label: string }) => w.label)).toEqual(['kill -9 n2 (leader)', 'partition isolate-leader: [1] | [2,3]']);
    expect(Object.values(data.points as Record<string, unknown[]>).flat()).toHaveLength(20);
    expect(html).toContain('cannot linearize read 3 by process 1');
    expect(html).toContain('srcdoc="&lt;html&gt;&lt;body&gt;timeline &quot;x&quot;');
    expect(html).toContain('FAIL');
  });
});
