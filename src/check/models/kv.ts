// A string key-value store with get/put/append (Porcupine's kv model). Every key starts as the
// initial value ("" by default). Always partitioned by key, so a state is one key's value.

import type { Op } from '../history.js';
import { legal, ILLEGAL, ModelInputError, type LinOp, type Model, type OperationIO, type StepResult } from '../lin/types.js';
import { partitionByKey } from './partition.js';
import { hashString, show } from './value.js';

export type KvInput = { f: 'get' } | { f: 'put'; value: string } | { f: 'append'; value: string };
/** get: the value read; put/append: true. */
export type KvOutput = string | true;

function asString(value: unknown, op: Op): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  throw new ModelInputError('a kv value must be a string', op);
}

function readInput(invoke: Op): KvInput {
  if (invoke.key === undefined) throw new ModelInputError('a kv op needs a :key', invoke);
  switch (invoke.f) {
    case 'get':
      return { f: 'get' };
    case 'put':
      return { f: 'put', value: asString(invoke.value, invoke) };
    case 'append':
      return { f: 'append', value: asString(invoke.value, invoke) };
    default:
      throw new ModelInputError('unknown :f for kv (get, put, append)', invoke);
  }
}

function toOperation(invoke: Op, completion: Op | undefined): OperationIO<KvInput, KvOutput> {
  const input = readInput(invoke);
  if (completion === undefined || completion.type === 'info') return { input, output: undefined };
  if (completion.type === 'fail') return null;
  if (input.f !== 'get') return { input, output: true };
  // A get of a key never written returns the initial value; some clients log nil for it.
  return { input, output: completion.value === null ? '' : asString(completion.value, completion) };
}

function step(state: string, input: KvInput, output: KvOutput | undefined): StepResult<string> {
  switch (input.f) {
    case 'get':
      return output === undefined || output === state ? legal(state) : ILLEGAL;
    case 'put':
      return legal(input.value);
    case 'append':
      return legal(state + input.value);
  }
}

function describe(op: LinOp<KvInput, KvOutput>): string {
  const key = show(op.key);
  const pending = op.output === undefined ? ' -> ?' : '';
  switch (op.input.f) {
    case 'get':
      return `get(${key}) -> ${op.output === undefined ? '?' : show(op.output)}`;
    case 'put':
      return `put(${key}, ${show(op.input.value)})${pending}`;
    case 'append':
      return `append(${key}, ${show(op.input.value)})${pending}`;
  }
}

export function makeKvModel(initial: string): Model<string, KvInput, KvOutput> {
  return {
    name: 'kv',
    init: () => initial,
    step,
    equal: (a, b) => a === b,
    hash: hashString,
    partition: partitionByKey,
    toOperation,
    describeOp: describe,
    describeState: show,
  };
}
