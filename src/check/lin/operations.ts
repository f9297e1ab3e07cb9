// Pairs a history's invokes with their completions and asks the model what each pair means.

import type { History, Op } from '../history.js';
import { ModelInputError, type LinOp, type Model } from './types.js';

/** Jepsen's fault injector logs its own ops; they are not client operations. */
function isNemesis(op: Op): boolean {
  return op.process === 'nemesis';
}

/**
 * Converts a history into operations. :fail ops are dropped by the model (usually); :info ops and
 * invokes that never complete stay pending until the end of the history, as in Knossos and Porcupine.
 */
export function toOperations<I, O>(history: History, model: Model<unknown, I, O>): LinOp<I, O>[] {
  const open = new Map<number | string, { op: Op; position: number }>();
  const ops: LinOp<I, O>[] = [];
  const add = (invoke: Op, callPosition: number, completion: Op | undefined, returnPosition: number): void => {
    const io = model.toOperation(invoke, completion);
    if (io === null) return;
    const pending = io.output === undefined;
    ops.push({
      id: ops.length,
      process: invoke.process,
      key: invoke.key,
      input: io.input,
      output: io.output,
      callPosition,
      returnPosition: pending ? Number.POSITIVE_INFINITY : returnPosition,
      invoke,
      completion,
    });
  };
  history.forEach((op, position) => {
    if (isNemesis(op)) return;
    if (op.type === 'invoke') {
      if (open.has(op.process)) throw new ModelInputError('process invoked again before its previous op completed', op);
      open.set(op.process, { op, position });
      return;
    }
    const invoke = open.get(op.process);
    if (!invoke) throw new ModelInputError(`:${op.type} without a preceding :invoke by this process`, op);
    if (invoke.op.f !== op.f) throw new ModelInputError(`completion :f differs from its invoke's :${invoke.op.f}`, op);
    open.delete(op.process);
    add(invoke.op, invoke.position, op, position);
  });
  for (const { op, position } of open.values()) add(op, position, undefined, Number.POSITIVE_INFINITY);
  // Ops were added in completion order; the search wants ids in call order for stable output.
  ops.sort((a, b) => a.callPosition - b.callPosition);
  ops.forEach((op, i) => (op.id = i));
  return ops;
}
