// A counter with bounded add and read. `add` takes a delta, or {delta, min?, max?}: an add that
// would leave [min, max] is rejected (our server's "never below zero" counters). A :fail add whose
// :error is "out-of-bounds" is a definite rejection and constrains the state; other :fail adds
// did not happen.

import type { Op } from '../history.js';
import { legal, ILLEGAL, ModelInputError, type LinOp, type Model, type OperationIO, type StepResult } from '../lin/types.js';
import { partitionByKey } from './partition.js';
import { hashValue, show } from './value.js';

export type CounterInput = { f: 'read' } | { f: 'add'; delta: number; min: number; max: number };
/** read: the value; add: 'applied' or 'rejected' (out of bounds). */
export type CounterOutput = number | 'applied' | 'rejected';

export const OUT_OF_BOUNDS_ERROR = 'out-of-bounds';

function numberField(value: unknown, fallback: number, op: Op, name: string): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'number' && !Number.isNaN(value)) return value;
  throw new ModelInputError(`counter add ${name} must be a number`, op);
}

function readInput(invoke: Op): CounterInput {
  if (invoke.f === 'read') return { f: 'read' };
  if (invoke.f !== 'add') throw new ModelInputError('unknown :f for counter (add, read)', invoke);
  const v = invoke.value;
  if (typeof v === 'number') return { f: 'add', delta: v, min: -Infinity, max: Infinity };
  if (v === null || typeof v !== 'object') throw new ModelInputError('counter add value must be a number or {delta, min?, max?}', invoke);
  const spec = v as Record<string, unknown>;
  return {
    f: 'add',
    delta: numberField(spec['delta'], NaN, invoke, 'delta'),
    min: numberField(spec['min'], -Infinity, invoke, 'min'),
    max: numberField(spec['max'], Infinity, invoke, 'max'),
  };
}

function toOperation(invoke: Op, completion: Op | undefined): OperationIO<CounterInput, CounterOutput> {
  const input = readInput(invoke);
  if (input.f === 'add' && Number.isNaN(input.delta)) throw new ModelInputError('counter add needs a delta', invoke);
  if (completion === undefined || completion.type === 'info') return { input, output: undefined };
  if (completion.type === 'fail') return input.f === 'add' && completion.error === OUT_OF_BOUNDS_ERROR ? { input, output: 'rejected' } : null;
  if (input.f === 'add') return { input, output: 'applied' };
  if (typeof completion.value !== 'number') throw new ModelInputError('a counter read must return a number', completion);
  return { input, output: completion.value };
}

function step(state: number, input: CounterInput, output: CounterOutput | undefined): StepResult<number> {
  if (input.f === 'read') return output === undefined || output === state ? legal(state) : ILLEGAL;
  const next = state + input.delta;
  const inBounds = next >= input.min && next <= input.max;
  if (output === 'rejected') return inBounds ? ILLEGAL : legal(state);
  return inBounds ? legal(next) : ILLEGAL;
}

function describe(op: LinOp<CounterInput, CounterOutput>): string {
  const out = op.output === undefined ? '?' : String(op.output);
  if (op.input.f === 'read') return `read() -> ${out}`;
  const { delta, min, max } = op.input;
  const bounds = Number.isFinite(min) || Number.isFinite(max) ? ` in [${min}, ${max}]` : '';
  return `add(${delta}${bounds}) -> ${out}`;
}

export function makeCounterModel(initial: number): Model<number, CounterInput, CounterOutput> {
  return {
    name: 'counter',
    init: () => initial,
    step,
    equal: (a, b) => a === b,
    hash: hashValue,
    partition: partitionByKey,
    toOperation,
    describeOp: describe,
    describeState: show,
  };
}
