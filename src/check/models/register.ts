// Single-value registers: `register` (read/write) and `cas-register` (read/write/cas).
// Histories with a :key per op are partitioned by key, one register each.

import type { Op } from '../history.js';
import { ILLEGAL, legal, ModelInputError, type LinOp, type Model, type OperationIO, type StepResult } from '../lin/types.js';
import { partitionByKey } from './partition.js';
import { hashValue, show, valueEquals } from './value.js';

export type RegisterInput = { f: 'read' } | { f: 'write'; value: unknown } | { f: 'cas'; from: unknown; to: unknown };
/** read: the value read; write: true; cas: whether the compare matched. */
export type RegisterOutput = unknown;

export interface RegisterOptions {
  initial: unknown;
  /**
   * 'wildcard' (Knossos): an :ok read of nil matches any state, because Jepsen clients that lost
   * the response record nil. 'strict' (Porcupine's etcd logs): nil means the key is absent.
   */
  nilRead: 'wildcard' | 'strict';
  /**
   * 'dropped' (Jepsen): a :fail op did not happen. 'compare-failed' (Porcupine's etcd logs): a
   * :fail cas is a definite answer that the compare did not match, which constrains the state.
   */
  failedCas: 'dropped' | 'compare-failed';
  allowCas: boolean;
}

function readInput(invoke: Op, allowCas: boolean): RegisterInput {
  switch (invoke.f) {
    case 'read':
      return { f: 'read' };
    case 'write':
      return { f: 'write', value: invoke.value };
    case 'cas': {
      if (!allowCas) throw new ModelInputError('the register model has no cas; use cas-register', invoke);
      const pair = invoke.value;
      if (!Array.isArray(pair) || pair.length !== 2) throw new ModelInputError('a cas value must be [old new]', invoke);
      return { f: 'cas', from: pair[0], to: pair[1] };
    }
    default:
      throw new ModelInputError(`unknown :f for a register (read, write${allowCas ? ', cas' : ''})`, invoke);
  }
}

function readOutput(input: RegisterInput, completion: Op | undefined, options: RegisterOptions): OperationIO<RegisterInput, RegisterOutput> {
  if (completion === undefined || completion.type === 'info') return { input, output: undefined };
  if (completion.type === 'fail') {
    return input.f === 'cas' && options.failedCas === 'compare-failed' ? { input, output: false } : null;
  }
  if (input.f === 'read') return { input, output: completion.value };
  return { input, output: true };
}

function stepRegister(state: unknown, input: RegisterInput, output: RegisterOutput | undefined, options: RegisterOptions): StepResult<unknown> {
  switch (input.f) {
    case 'read':
      if (output === undefined || (output === null && options.nilRead === 'wildcard')) return legal(state);
      return valueEquals(state, output) ? legal(state) : ILLEGAL;
    case 'write':
      return legal(input.value);
    case 'cas': {
      const matches = valueEquals(state, input.from);
      if (output === undefined) return legal(matches ? input.to : state);
      if (output === true) return matches ? legal(input.to) : ILLEGAL;
      return matches ? ILLEGAL : legal(state);
    }
  }
}

function describe(op: LinOp<RegisterInput, RegisterOutput>): string {
  const input = op.input;
  const pending = op.output === undefined;
  switch (input.f) {
    case 'read':
      return `read() -> ${pending ? '?' : show(op.output)}`;
    case 'write':
      return `write(${show(input.value)})${pending ? ' -> ?' : ''}`;
    case 'cas':
      return `cas(${show(input.from)}, ${show(input.to)}) -> ${pending ? '?' : op.output === true ? 'ok' : 'fail'}`;
  }
}

export function makeRegisterModel(options: RegisterOptions): Model<unknown, RegisterInput, RegisterOutput> {
  return {
    name: options.allowCas ? 'cas-register' : 'register',
    init: () => options.initial,
    step: (state, input, output) => stepRegister(state, input, output, options),
    equal: valueEquals,
    hash: hashValue,
    partition: partitionByKey,
    toOperation: (invoke, completion) => readOutput(readInput(invoke, options.allowCas), completion, options),
    describeOp: describe,
    describeState: show,
  };
}
