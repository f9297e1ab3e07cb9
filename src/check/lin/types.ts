// Types shared by the linearizability checker and its model plug-ins.

import type { Op } from '../history.js';

/**
 * One operation as the linearizability checker sees it: an invoke paired with its completion.
 * Times are event positions in the history (file order), not wall clocks: Jepsen's :time fields
 * come from several machines and are not reliably ordered, the file order is.
 */
export interface LinOp<I = unknown, O = unknown> {
  /** Dense id within the whole history's operation list (0-based). */
  id: number;
  process: number | string;
  key: string | undefined;
  input: I;
  /** `undefined` means the outcome is unknown (:info, or never completed): the op is pending. */
  output: O | undefined;
  /** Event position of the invoke. */
  callPosition: number;
  /** Event position of the completion; +Infinity for pending ops (they stay open to the end). */
  returnPosition: number;
  invoke: Op;
  completion: Op | undefined;
}

export type StepResult<S> = { ok: true; state: S } | { ok: false };

/** What `toOperation` makes of one invoke/completion pair; `null` drops it (e.g. a :fail op). */
export type OperationIO<I, O> = { input: I; output: O | undefined } | null;

/**
 * A sequential specification. `step` must be pure and deterministic. When `output` is undefined
 * (unknown outcome) it should apply the op if it can; the checker additionally lets an unknown op
 * that cannot step take no effect, since it may never have happened.
 */
export interface Model<S = unknown, I = unknown, O = unknown> {
  name: string;
  init(): S;
  step(state: S, input: I, output: O | undefined): StepResult<S>;
  equal(a: S, b: S): boolean;
  /** A 32-bit hash consistent with `equal`. */
  hash(state: S): number;
  /** Independent sub-histories (P-compositionality), e.g. one per key. */
  partition(ops: LinOp<I, O>[]): LinOp<I, O>[][];
  /** Reads an invoke and its completion (undefined when it never completed) into model terms. */
  toOperation(invoke: Op, completion: Op | undefined): OperationIO<I, O>;
  describeOp(op: LinOp<I, O>): string;
  describeState(state: S): string;
}

/** An op the model cannot understand (wrong value shape, unknown :f). */
export class ModelInputError extends Error {
  constructor(
    message: string,
    readonly op: Op,
  ) {
    super(`op index ${op.index} (process ${String(op.process)}, :${op.f}): ${message}`);
    this.name = 'ModelInputError';
  }
}

export const ILLEGAL: StepResult<never> = { ok: false };

export function legal<S>(state: S): StepResult<S> {
  return { ok: true, state };
}
