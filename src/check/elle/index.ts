// Entry point of the Elle-style checker: History -> transactions -> workload analysis (version
// orders, dependency graph, non-cycle anomalies) -> real-time/process edges -> cycle search ->
// Elle's result map (valid?, anomaly types, and the consistency models ruled out).
import type { History } from '../history.js';
import type { WorkloadAnalysis } from './analysis.js';
import { anomaliesProhibitedBy, boundary, impossibleModels, validateModels } from './consistency-model.js';
import { findCycles, SEARCH_SPECS, type CycleReport } from './cycles.js';
import { explainCycle, toElleCycle } from './explain.js';
import { REALTIME } from './graph.js';
import { analyzeListAppend } from './list-append.js';
import { addProcessEdges, addRealtimeEdges } from './order.js';
import { analyzeRwRegister } from './rw-register.js';
import { buildTxns, type Txn } from './txn.js';
import type { ElleCycle, ElleOptions, ElleResult } from './types.js';

export type { ElleCycle, ElleCycleStep, ElleModel, ElleOptions, ElleResult } from './types.js';
export { UnknownConsistencyModelError } from './consistency-model.js';

const DEFAULT_MODELS = ['strict-serializable'];
const DEFAULT_TIMEOUT_MS = 30_000;
/** Work allowed per (SCC, anomaly type) search before we call it a cycle-search timeout. */
const RELAXATIONS_PER_SEARCH = 20_000_000;
/** Anomalies that make the verdict 'unknown' rather than false (Elle's unknown-anomaly-types). */
const UNKNOWN_TYPES = ['empty-transaction-graph', 'cycle-search-timeout'];
const EXPLANATIONS_PER_TYPE_MAX = 8;

const MOPS: Record<ElleOptions['model'], ReadonlySet<string>> = {
  'list-append': new Set(['append', 'r']),
  'rw-register': new Set(['w', 'r']),
};

function analyse(txns: readonly Txn[], opts: ElleOptions): WorkloadAnalysis {
  return opts.model === 'list-append' ? analyzeListAppend(txns) : analyzeRwRegister(txns, opts);
}

/** Which order edges the requested models need: real-time subsumes process order (Elle). */
function addOrderEdges(a: WorkloadAnalysis, txns: readonly Txn[], reportable: ReadonlySet<string>): void {
  const wants = (suffix: string): boolean => SEARCH_SPECS.some((s) => s.type.endsWith(suffix) && reportable.has(s.type));
  const link = (u: number, v: number, rel: number): void => a.deps.link(u, v, rel, (x, y) =>
    rel === REALTIME ? `${x} completed before ${y} was invoked` : `process ${String(txns[u]!.process)} executed ${x} before ${y}`);
  const sink = { link } as Parameters<typeof addRealtimeEdges>[0];
  if (wants('-realtime')) addRealtimeEdges(sink, txns);
  else if (wants('-process')) addProcessEdges(sink, txns);
}

/** Cycle-exists anomalies add nothing once a concrete anomaly rules their model out. */
function removeRedundantCycleExists(types: Set<string>): Set<string> {
  const concrete = [...types].filter((t) => !t.endsWith('-cycle-exists'));
  const impossible = impossibleModels(concrete);
  return new Set([...types].filter((t) => !t.endsWith('-cycle-exists') || !impossible.has(t.slice(0, -'-cycle-exists'.length))));
}

function unknownResult(history: History, problems: string[]): ElleResult {
  return { valid: 'unknown', anomalyTypes: ['malformed-history'], not: [], alsoNot: [], explanations: problems, opCount: history.length };
}

export function checkElle(history: History, opts: ElleOptions): ElleResult {
  const models = opts.consistencyModels && opts.consistencyModels.length > 0 ? opts.consistencyModels : DEFAULT_MODELS;
  validateModels(models);
  const prohibited = anomaliesProhibitedBy(models);
  const reportable = new Set([...prohibited, ...UNKNOWN_TYPES]);
  const { txns, malformed } = buildTxns(history, MOPS[opts.model]);
  if (malformed.length > 0) return unknownResult(history, malformed);
  const analysis = analyse(txns, opts);
  if (analysis.malformed.length > 0) return unknownResult(history, analysis.malformed);
  addOrderEdges(analysis, txns, reportable);

  const anomalies = new Map(analysis.anomalies);
  if (analysis.deps.graph.edgeCount() === 0) anomalies.set('empty-transaction-graph', ['the dependency graph has no edges: nothing to order']);
  const deadlineMs = performance.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const report = findCycles(analysis.deps.graph, { deadlineMs, relaxationsPerSearch: RELAXATIONS_PER_SEARCH });
  const cycles = mergeCycles(report, analysis, txns, anomalies);
  return resultMap(history, anomalies, prohibited, reportable, cycles);
}

function mergeCycles(report: CycleReport, a: WorkloadAnalysis, txns: readonly Txn[], anomalies: Map<string, string[]>): ElleCycle[] {
  const out: ElleCycle[] = [];
  for (const c of report.cycles) {
    const ec = toElleCycle(a.deps, txns, c);
    out.push(ec);
    const list = anomalies.get(c.type) ?? [];
    list.push(explainCycle(txns, c.vertices, ec));
    anomalies.set(c.type, list);
  }
  for (const [type, size] of report.cycleExists) {
    anomalies.set(type, [`${type}: a strongly connected component of ${size} transactions has a cycle in this model's dependency subgraph`]);
  }
  if (report.timedOut) anomalies.set('cycle-search-timeout', ['the cycle search ran out of its time or work budget; cycles reported are those found in time']);
  return out;
}

function resultMap(history: History, anomalies: Map<string, string[]>, prohibited: Set<string>, reportable: Set<string>, cycles: ElleCycle[]): ElleResult {
  const reported = removeRedundantCycleExists(new Set([...anomalies.keys()].filter((t) => reportable.has(t))));
  if (reported.size === 0) {
    return { valid: true, anomalyTypes: [], not: [], alsoNot: [], explanations: [], opCount: history.length, cycles: [] };
  }
  const bad = [...anomalies.keys()].some((t) => prohibited.has(t));
  const anomalyTypes = [...reported].sort();
  const { not, alsoNot } = boundary(anomalies.keys());
  const explanations = anomalyTypes.flatMap((t) => (anomalies.get(t) ?? []).slice(0, EXPLANATIONS_PER_TYPE_MAX).map((e) => `${t}: ${e}`));
  return {
    valid: bad ? false : 'unknown',
    anomalyTypes, not, alsoNot, explanations,
    opCount: history.length,
    cycles: cycles.filter((c) => reported.has(c.type)),
  };
}
