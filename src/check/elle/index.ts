// Entry point of the Elle-style checker. See check.ts for the pipeline.
import type { History } from '../history.js';
import type { ElleOptions, ElleResult } from './types.js';

export type { ElleCycle, ElleCycleStep, ElleModel, ElleOptions, ElleResult } from './types.js';

export function checkElle(history: History, opts: ElleOptions): ElleResult {
  return { valid: 'unknown', anomalyTypes: ['not-implemented'], not: [], alsoNot: [], explanations: [], opCount: history.length };
}
