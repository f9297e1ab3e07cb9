// report.html of a run: one self-contained page (Chart.js's UMD bundle is inlined, no network):
// a summary, latency over time (every op a point, by f and outcome, p50/p99 of ok ops per
// second), throughput over time, every nemesis window shaded and labelled on both charts, the
// fault list, and the checker's verdict with its explanation (and the failing partition's
// timeline for linearizability).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { OpRecord } from './history.js';
import type { RunResult } from './runner.js';
import type { CheckResult } from './workload.js';

export interface ReportInput {
  result: RunResult;
  ops: OpRecord[];
  /** With `html` (the failing partition's timeline) when there is one. */
  checks: CheckResult[];
  /** Ms (recorder clock) when the workload started: time 0 of the charts. */
  workloadStartMs: number;
}

export interface ReportData {
  title: string;
  /** [seconds since start, latency ms] per series "f outcome". */
  points: Record<string, [number, number][]>;
  /** Per second: [second, p50 ms, p99 ms] of ok ops invoked in that second. */
  percentiles: [number, number, number][];
  /** Per second: completions by outcome. */
  throughput: { second: number; ok: number; fail: number; info: number }[];
  windows: { nemesis: string; label: string; start: number; end: number; error?: string }[];
}

let chartJsSource: string | undefined;

/** Chart.js's UMD bundle from node_modules (its package exports do not name it, so go by path). */
export function chartJsBundle(): string {
  if (chartJsSource === undefined) {
    const require = createRequire(import.meta.url);
    const dir = dirname(require.resolve('chart.js'));
    chartJsSource = readFileSync(join(dir, 'chart.umd.min.js'), 'utf8');
  }
  return chartJsSource;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

export function reportData(input: ReportInput): ReportData {
  const t0 = input.workloadStartMs;
  const points: Record<string, [number, number][]> = {};
  const okBySecond = new Map<number, number[]>();
  const tput = new Map<number, { ok: number; fail: number; info: number }>();
  for (const op of input.ops) {
    if (op.completeNs === undefined || op.type === 'open') continue;
    const startS = (op.invokeNs / 1e6 - t0) / 1000;
    const endS = (op.completeNs / 1e6 - t0) / 1000;
    const latencyMs = (op.completeNs - op.invokeNs) / 1e6;
    (points[`${op.f} ${op.type}`] ??= []).push([round(startS), round(latencyMs, 2)]);
    if (op.type === 'ok') {
      const s = Math.floor(startS);
      let l = okBySecond.get(s);
      if (!l) okBySecond.set(s, (l = []));
      l.push(latencyMs);
    }
    const sec = Math.floor(endS);
    const b = tput.get(sec) ?? { ok: 0, fail: 0, info: 0 };
    b[op.type]++;
    tput.set(sec, b);
  }
  const percentiles = [...okBySecond.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([s, l]): [number, number, number] => {
      l.sort((a, b) => a - b);
      return [s + 0.5, round(percentile(l, 50), 2), round(percentile(l, 99), 2)];
    });
  const throughput = [...tput.entries()].sort((a, b) => a[0] - b[0]).map(([second, c]) => ({ second, ...c }));
  const endS = input.result.workloadMs / 1000;
  const windows = input.result.faults.map((f) => ({
    nemesis: f.nemesis,
    label: f.label,
    start: round(f.startMs / 1000),
    end: round((f.endMs ?? input.result.workloadMs) / 1000),
    ...(f.error ? { error: f.error } : {}),
  }));
  const o = input.result.options;
  return { title: `${o.workload} / ${o.nemeses.join(',') || 'no nemesis'} / ${o.nodes} nodes / seed ${o.seed}`, points, percentiles, throughput, windows: windows.filter((w) => w.start <= endS + 60) };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/** JSON safe inside <script>. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c');

function verdictText(v: boolean | 'unknown'): string {
  return v === true ? 'PASS' : v === false ? 'FAIL' : 'UNKNOWN';
}

function summaryHtml(r: RunResult): string {
  const fs = Object.keys(r.counts).sort();
  const rows = fs.map((f) => `<tr><td>${esc(f)}</td><td>${r.counts[f]!.ok}</td><td>${r.counts[f]!.fail}</td><td>${r.counts[f]!.info}</td></tr>`).join('');
  const checks = r.checks
    .map((c) => `<tr><td>${esc(c.name)}</td><td class="v-${verdictText(c.valid)}">${verdictText(c.valid)}</td><td>${(c.elapsedMs / 1000).toFixed(2)} s</td></tr>`)
    .join('');
  const faults = r.faults
    .map((f) => `<tr><td>${(f.startMs / 1000).toFixed(1)}</td><td>${f.endMs === undefined ? '' : (f.endMs / 1000).toFixed(1)}</td><td>${esc(f.nemesis)}</td><td>${esc(f.label)}${f.error ? ` <em>(${esc(f.error)})</em>` : ''}</td></tr>`)
    .join('');
  const o = r.options;
  return `
<table class="kv"><tr><th>verdict</th><td class="v-${verdictText(r.valid)}">${verdictText(r.valid)}${r.aborted ? ' (aborted)' : ''}</td></tr>
<tr><th>command</th><td><code>${esc(o.command ?? '')}</code></td></tr>
<tr><th>workload</th><td>${esc(o.workload)}, concurrency ${o.concurrency}, rate ${o.rate}/s, ${o.timeLimitS} s, consistency ${esc(o.consistency)}</td></tr>
<tr><th>cluster</th><td>${o.nodes} nodes, tick ${o.tickMs ?? ''} ms, op timeout ${o.opTimeoutMs ?? ''} ms, seed ${o.seed}</td></tr>
<tr><th>throughput</th><td>${r.opsPerSec.toFixed(1)} ops/s over ${(r.workloadMs / 1000).toFixed(1)} s; ${r.events} history events</td></tr>
<tr><th>checker</th><td>${(r.checkMs / 1000).toFixed(2)} s</td></tr></table>
<h2>Operations</h2><table><tr><th>f</th><th>ok</th><th>fail</th><th>info</th></tr>${rows}</table>
<h2>Checks</h2><table><tr><th>check</th><th>verdict</th><th>time</th></tr>${checks}</table>
<h2>Faults (${r.faults.length})</h2><table><tr><th>start s</th><th>end s</th><th>nemesis</th><th>what</th></tr>${faults}</table>
${r.notes.length ? `<h2>Notes</h2><ul>${r.notes.map((n) => `<li><pre>${esc(n)}</pre></li>`).join('')}</ul>` : ''}`;
}

function explanationHtml(checks: CheckResult[]): string {
  const failing = checks.filter((c) => c.valid !== true);
  if (failing.length === 0) return '<p>Every check passed: no anomaly to explain.</p>';
  return failing
    .map(
      (c) => `<h3>${esc(c.name)}: ${verdictText(c.valid)}</h3><pre class="explain">${esc(c.explanations.join('\n'))}</pre>
${c.html ? `<p>Timeline of the failing partition:</p><iframe class="timeline" srcdoc="${esc(c.html)}"></iframe>` : ''}`,
    )
    .join('\n');
}

/** The page's own script: builds both charts from the embedded data. */
const PAGE_SCRIPT = String.raw`
const data = JSON.parse(document.getElementById('report-data').textContent);
const NEMESIS_COLOURS = { kill: 'rgba(220,38,38,0.13)', pause: 'rgba(147,51,234,0.13)', partition: 'rgba(37,99,235,0.13)', delay: 'rgba(234,179,8,0.18)', membership: 'rgba(13,148,136,0.15)' };
// Colour = outcome (green ok, orange fail, red info); each f gets its own shade and shape.
const OUTCOME_HUES = { ok: [[22,163,74], [5,150,105], [101,163,13], [13,148,136]], fail: [[234,88,12], [217,119,6], [194,65,12], [202,138,4]], info: [[220,38,38], [190,18,60], [153,27,27], [225,29,72]] };
const colourOf = (outcome, i) => { const c = OUTCOME_HUES[outcome][i % 4]; return 'rgba(' + c.join(',') + ',' + (outcome === 'ok' ? 0.55 : 0.8) + ')'; };
const STYLES = ['circle', 'triangle', 'rect', 'rectRot', 'star', 'crossRot'];
// Shades every nemesis window behind the datasets and labels it (a Chart.js plugin).
const faultWindows = {
  id: 'faultWindows',
  beforeDatasetsDraw(chart) {
    const { ctx, chartArea: a, scales: { x } } = chart;
    ctx.save();
    data.windows.forEach((w, i) => {
      const x0 = Math.max(a.left, x.getPixelForValue(w.start));
      const x1 = Math.min(a.right, x.getPixelForValue(w.end));
      if (x1 <= x0) return;
      ctx.fillStyle = NEMESIS_COLOURS[w.nemesis] || 'rgba(100,100,100,0.12)';
      ctx.fillRect(x0, a.top, x1 - x0, a.bottom - a.top);
      ctx.fillStyle = '#333';
      ctx.font = '10px sans-serif';
      ctx.save();
      ctx.beginPath(); ctx.rect(x0, a.top, x1 - x0, a.bottom - a.top); ctx.clip();
      ctx.fillText(w.label, x0 + 2, a.top + 10 + (i % 3) * 11);
      ctx.restore();
    });
    ctx.restore();
  },
};
const maxX = Math.max(1, ...data.throughput.map((t) => t.second + 1), ...data.windows.map((w) => w.end));
const fs = [...new Set(Object.keys(data.points).map((k) => k.split(' ')[0]))].sort();
const scatter = Object.entries(data.points).sort().map(([name, pts]) => {
  const [f, outcome] = name.split(' ');
  return { type: 'scatter', label: name + ' (' + pts.length + ')', data: pts.map(([x, y]) => ({ x, y })), pointStyle: STYLES[fs.indexOf(f) % STYLES.length],
    backgroundColor: colourOf(outcome, fs.indexOf(f)), borderColor: colourOf(outcome, fs.indexOf(f)), pointRadius: outcome === 'ok' ? 1.6 : 2.6, order: 2 };
});
const pLine = (i, label, colour) => ({ type: 'line', label, data: data.percentiles.map((p) => ({ x: p[0], y: Math.max(p[i], 0.01) })), borderColor: colour, backgroundColor: colour, borderWidth: 1.5, pointRadius: 0, tension: 0.2, order: 1 });
new Chart(document.getElementById('latency'), {
  data: { datasets: [...scatter, pLine(1, 'p50 (ok)', '#111'), pLine(2, 'p99 (ok)', '#2563eb')] },
  options: { animation: false, parsing: true, responsive: true, maintainAspectRatio: false,
    scales: { x: { type: 'linear', min: 0, max: maxX, title: { display: true, text: 'time since start (s)' } },
              y: { type: 'logarithmic', title: { display: true, text: 'latency (ms, log)' } } },
    plugins: { legend: { position: 'bottom', labels: { usePointStyle: true } }, tooltip: { enabled: true } } },
  plugins: [faultWindows],
});
const tp = (key, colour) => ({ type: 'line', label: key, data: data.throughput.map((t) => ({ x: t.second + 0.5, y: t[key] })), borderColor: colour, backgroundColor: colour, pointRadius: 0, borderWidth: 1.5, stepped: 'middle' });
new Chart(document.getElementById('throughput'), {
  data: { datasets: [tp('ok', '#16a34a'), tp('fail', '#ea580c'), tp('info', '#dc2626')] },
  options: { animation: false, responsive: true, maintainAspectRatio: false,
    scales: { x: { type: 'linear', min: 0, max: maxX, title: { display: true, text: 'time since start (s)' } }, y: { beginAtZero: true, title: { display: true, text: 'completions / s' } } },
    plugins: { legend: { position: 'bottom' } } },
  plugins: [faultWindows],
});
`;

export function renderReport(input: ReportInput): string {
  const data = reportData(input);
  const r = input.result;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>raftkv fault run: ${esc(data.title)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #111; }
table { border-collapse: collapse; margin: .5em 0 1em; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
table.kv th { background: #f6f6f6; width: 8em; }
.v-PASS { color: #15803d; font-weight: bold; } .v-FAIL { color: #b91c1c; font-weight: bold; } .v-UNKNOWN { color: #a16207; font-weight: bold; }
.chart { position: relative; height: 420px; } .chart.small { height: 260px; }
pre.explain { background: #fef2f2; border: 1px solid #fecaca; padding: .6em; white-space: pre-wrap; }
iframe.timeline { width: 100%; height: 500px; border: 1px solid #ddd; }
</style></head><body>
<h1>${esc(data.title)}: <span class="v-${verdictText(r.valid)}">${verdictText(r.valid)}</span></h1>
<h2>Latency over time</h2><p>Every operation is a point at its invocation time (shape = f, colour = outcome: green ok, orange fail, red info); lines are the p50/p99 of ok ops per second. Shaded bands are nemesis windows.</p>
<div class="chart"><canvas id="latency"></canvas></div>
<h2>Throughput over time</h2><div class="chart small"><canvas id="throughput"></canvas></div>
<h2>Checker</h2>${explanationHtml(input.checks)}
${summaryHtml(r)}
<script id="report-data" type="application/json">${scriptJson(data)}</script>
<script>${chartJsBundle()}</script>
<script>${PAGE_SCRIPT}</script>
</body></html>
`;
}
