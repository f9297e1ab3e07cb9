// Linearizability checking of a whole history: pair ops, partition them (P-compositionality),
// search each partition under one shared deadline, and explain a failure.

import type { History } from '../history.js';
import { toOperations } from './operations.js';
import type { LinOp, Model } from './types.js';
import { checkPartition, type PartitionVerdict } from './wgl.js';

export interface LinOptions {
  /** Give up with 'unknown' after this long. Unlimited when absent. */
  timeoutMs?: number;
}

/** Why a history is not linearizable, for people: all in the failing partition. */
export interface LinFailure<I = unknown, O = unknown> {
  partitionIndex: number;
  /** The key of the failing partition, when the model partitions by key. */
  partitionKey: string | undefined;
  /** Every op of the failing partition (the timeline shows these). */
  ops: LinOp<I, O>[];
  /** The op whose return the search could not get past: it cannot be linearized. */
  failingOp: LinOp<I, O>;
  /** The longest linearizable prefix found, in linearization order. */
  longestPrefix: LinOp<I, O>[];
  /** The model state after each op of `longestPrefix` (same length). */
  statesAfterPrefix: string[];
}

export interface LinResult<I = unknown, O = unknown> {
  valid: boolean | 'unknown';
  model: string;
  /** Operations checked (invoke/completion pairs; :fail and nemesis ops excluded). */
  opCount: number;
  partitionCount: number;
  elapsedMs: number;
  failure?: LinFailure<I, O>;
  /** Partitions whose search hit the time limit. */
  unknownPartitions: number;
}

function replayStates<S, I, O>(model: Model<S, I, O>, prefix: LinOp<I, O>[]): string[] {
  let state = model.init();
  return prefix.map((op) => {
    const result = model.step(state, op.input, op.output);
    if (result.ok) state = result.state;
    return model.describeState(state);
  });
}

function explain<S, I, O>(model: Model<S, I, O>, ops: LinOp<I, O>[], index: number, verdict: PartitionVerdict & { valid: false }): LinFailure<I, O> {
  const longestPrefix = verdict.longestPrefix.map((k) => ops[k]!);
  return {
    partitionIndex: index,
    partitionKey: ops[0]?.key,
    ops,
    failingOp: ops[verdict.failingOp]!,
    longestPrefix,
    statesAfterPrefix: replayStates(model, longestPrefix),
  };
}

/** Smaller partitions first: a violation there is found sooner and is easier to read. */
function bySize<T>(partitions: T[][]): T[][] {
  return partitions.filter((p) => p.length > 0).sort((a, b) => a.length - b.length);
}

export function checkLinearizable<S, I, O>(history: History, model: Model<S, I, O>, options: LinOptions = {}): LinResult<I, O> {
  const startMs = performance.now();
  const deadlineMs = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : startMs + options.timeoutMs;
  const ops = toOperations(history, model as Model<unknown, I, O>);
  const partitions = bySize(model.partition(ops));
  let unknownPartitions = 0;
  let failure: LinFailure<I, O> | undefined;
  for (let i = 0; i < partitions.length && failure === undefined; i++) {
    // The search numbers ops by their place in this array, which must be in call order.
    const part = partitions[i]!.slice().sort((a, b) => a.callPosition - b.callPosition);
    const verdict = checkPartition(model, part, deadlineMs);
    if (verdict.valid === false) failure = explain(model, part, i, verdict);
    else if (verdict.valid === 'unknown') unknownPartitions++;
  }
  const valid = failure !== undefined ? false : unknownPartitions > 0 ? 'unknown' : true;
  const result: LinResult<I, O> = {
    valid,
    model: model.name,
    opCount: ops.length,
    partitionCount: partitions.length,
    elapsedMs: performance.now() - startMs,
    unknownPartitions,
  };
  if (failure) result.failure = failure;
  return result;
}
