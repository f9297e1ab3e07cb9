// One entry point for every checker: parse options in, one report out. Used by the CLI, the
// tests and the bench script.

import { checkElle } from './elle/index.js';
import type { History } from './history.js';
import { checkLinearizable, type LinResult } from './lin/check.js';
import { checkSessions } from './session/session-check.js';
import { renderTimelineHtml } from './lin/timeline-html.js';
import { inferModel, isLinModelName, makeModel, type Dialect, type LinModelName } from './models/index.js';
import type { HistoryFormat } from './parse/index.js';

export const ELLE_MODEL_NAMES = ['list-append', 'rw-register'] as const;
export type ElleModelName = (typeof ELLE_MODEL_NAMES)[number];
/** Session guarantees (read-your-writes, monotonic reads) from revisions in our jsonl. */
export const SESSION_MODEL_NAME = 'session';
export type CheckModelName = LinModelName | ElleModelName | typeof SESSION_MODEL_NAME;

export interface CheckRequest {
  history: History;
  format: HistoryFormat;
  /** Inferred from the ops when absent. */
  model?: CheckModelName;
  /** Initial state for linearizability models (already decoded, e.g. from EDN). */
  initial?: unknown;
  consistencyModels?: string[];
  timeoutMs?: number;
  /** Elle rw-register version-order assumptions (Elle's :linearizable-keys? / :sequential-keys?). */
  elleKeyAssumptions?: { linearizableKeys?: boolean; sequentialKeys?: boolean };
  /** Title for the HTML timeline. */
  title?: string;
}

export interface CheckReport {
  valid: boolean | 'unknown';
  model: CheckModelName;
  anomalyTypes: string[];
  not: string[];
  alsoNot: string[];
  opCount: number;
  elapsedMs: number;
  /** Human-readable lines explaining an invalid (or unknown) verdict. */
  explanations: string[];
  /** The HTML timeline of the failing partition (linearizability models, invalid only). */
  timelineHtml?: string;
  /** The full linearizability result, for programs. */
  lin?: LinResult;
}

/** How many ops at the end of the longest prefix the text explanation shows. */
const EXPLAINED_PREFIX_OPS = 8;

export class ModelInferenceError extends Error {
  override name = 'ModelInferenceError';
}

function dialectOf(format: HistoryFormat): Dialect {
  if (format === 'porcupine-log') return 'porcupine-etcd';
  if (format === 'edn' || format === 'elle-json') return 'knossos';
  return 'plain';
}

export function isCheckModelName(name: string): name is CheckModelName {
  return isLinModelName(name) || name === SESSION_MODEL_NAME || (ELLE_MODEL_NAMES as readonly string[]).includes(name);
}

function resolveModel(request: CheckRequest): CheckModelName {
  if (request.model) return request.model;
  const inferred = inferModel(request.history);
  if (inferred === undefined) throw new ModelInferenceError('cannot infer the model from the ops; pass --model');
  return inferred;
}

function linExplanations(result: LinResult, describe: (op: never) => string): string[] {
  const failure = result.failure;
  if (result.valid === 'unknown') return [`search timed out in ${result.unknownPartitions} of ${result.partitionCount} partitions`];
  if (!failure) return [];
  const d = describe as (op: unknown) => string;
  const key = failure.partitionKey === undefined ? '' : ` on key ${failure.partitionKey}`;
  const prefix = failure.longestPrefix;
  // The end of the prefix is what the failing op conflicts with; the start is rarely useful.
  const shownFrom = Math.max(0, prefix.length - EXPLAINED_PREFIX_OPS);
  const shown = prefix.slice(shownFrom).map((op, i) => `${d(op)} => ${failure.statesAfterPrefix[shownFrom + i]}`);
  return [
    `cannot linearize ${d(failure.failingOp)} by process ${String(failure.failingOp.process)} (history index ${failure.failingOp.invoke.index})${key}`,
    `longest linearizable prefix: ${prefix.length} of ${failure.ops.length} ops${shownFrom > 0 ? `, ending ... ` : ': '}${shown.join('; ')}`,
  ];
}

function runLinearizability(request: CheckRequest, model: LinModelName, startMs: number): CheckReport {
  const linModel = makeModel(model, { initial: request.initial, dialect: dialectOf(request.format) });
  const result = checkLinearizable(request.history, linModel, request.timeoutMs === undefined ? {} : { timeoutMs: request.timeoutMs });
  const report: CheckReport = {
    valid: result.valid,
    model,
    anomalyTypes: result.valid === false ? ['nonlinearizable'] : [],
    not: result.valid === false ? ['linearizable'] : [],
    alsoNot: [],
    opCount: result.opCount,
    elapsedMs: performance.now() - startMs,
    explanations: linExplanations(result, linModel.describeOp),
    lin: result,
  };
  if (result.failure) {
    report.timelineHtml = renderTimelineHtml({ title: request.title ?? model, failure: result.failure, describeOp: linModel.describeOp });
  }
  return report;
}

function runElle(request: CheckRequest, model: ElleModelName, startMs: number): CheckReport {
  const options: Parameters<typeof checkElle>[1] = { model };
  if (request.consistencyModels) options.consistencyModels = request.consistencyModels;
  if (request.timeoutMs !== undefined) options.timeoutMs = request.timeoutMs;
  if (request.elleKeyAssumptions?.linearizableKeys) options.linearizableKeys = true;
  if (request.elleKeyAssumptions?.sequentialKeys) options.sequentialKeys = true;
  const result = checkElle(request.history, options);
  return {
    valid: result.valid,
    model,
    anomalyTypes: result.anomalyTypes,
    not: result.not,
    alsoNot: result.alsoNot,
    opCount: request.history.length,
    elapsedMs: performance.now() - startMs,
    explanations: result.explanations,
  };
}

function runSession(request: CheckRequest, startMs: number): CheckReport {
  const result = checkSessions(request.history);
  const kinds = [...new Set(result.violations.map((v) => v.kind))];
  return {
    valid: result.valid,
    model: SESSION_MODEL_NAME,
    anomalyTypes: kinds,
    not: result.valid ? [] : ['session-guarantees'],
    alsoNot: [],
    opCount: request.history.length,
    elapsedMs: performance.now() - startMs,
    explanations: result.violations.slice(0, 20).map((v) => `${v.kind}: ${v.message} (history index ${v.index})`),
  };
}

/** Checks a parsed history with the requested (or inferred) model. */
export function runCheck(request: CheckRequest): CheckReport {
  const startMs = performance.now();
  const model = resolveModel(request);
  if (model === SESSION_MODEL_NAME) return runSession(request, startMs);
  return isLinModelName(model) ? runLinearizability(request, model, startMs) : runElle(request, model, startMs);
}
