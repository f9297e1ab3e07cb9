// Several registers read and written together in transactions (Knossos' multi-register):
// `:f :txn, :value [[:read :x nil] [:write :y 2]]`. Partitioned into groups of keys that
// transactions connect.

import type { Op } from '../history.js';
import { legal, ILLEGAL, ModelInputError, type LinOp, type Model, type OperationIO, type StepResult } from '../lin/types.js';
import { partitionByKeySets } from './partition.js';
import { canonical, hashString, show, valueEquals } from './value.js';

export interface MicroOp {
  f: 'read' | 'write';
  key: string;
  value: unknown;
}
/** The state: key -> value, never mutated (a new object per write). */
export type Registers = Readonly<Record<string, unknown>>;

function readTxn(op: Op, value: unknown): MicroOp[] {
  if (!Array.isArray(value)) throw new ModelInputError('a multi-register txn value must be a vector of [f k v]', op);
  return value.map((mop) => {
    if (!Array.isArray(mop) || mop.length !== 3) throw new ModelInputError('each micro-op must be [f k v]', op);
    const f = mop[0] === 'r' ? 'read' : mop[0] === 'w' ? 'write' : mop[0];
    if (f !== 'read' && f !== 'write') throw new ModelInputError(`unknown micro-op ${show(mop[0])} (read, write)`, op);
    return { f, key: typeof mop[1] === 'string' ? mop[1] : canonical(mop[1]), value: mop[2] };
  });
}

function makeToOperation() {
  return (invoke: Op, completion: Op | undefined): OperationIO<MicroOp[], MicroOp[]> => {
    if (invoke.f !== 'txn') throw new ModelInputError('unknown :f for multi-register (txn)', invoke);
    const input = readTxn(invoke, invoke.value);
    if (completion === undefined || completion.type === 'info') return { input, output: undefined };
    if (completion.type === 'fail') return null;
    const output = readTxn(completion, completion.value);
    if (output.length !== input.length) throw new ModelInputError('completion txn differs in length from its invoke', completion);
    return { input, output };
  };
}

function makeStep(nilReadWildcard: boolean) {
  return (state: Registers, input: MicroOp[], output: MicroOp[] | undefined): StepResult<Registers> => {
    let next: Record<string, unknown> | undefined;
    const mops = output ?? input;
    for (const mop of mops) {
      const current = next ?? state;
      if (mop.f === 'write') {
        next = { ...current, [mop.key]: mop.value };
        continue;
      }
      // Unknown outcome: the reads were never observed. Known nil reads are Knossos wildcards.
      if (output === undefined || (mop.value === null && nilReadWildcard)) continue;
      const held = Object.hasOwn(current, mop.key) ? current[mop.key] : null;
      if (!valueEquals(held, mop.value)) return ILLEGAL;
    }
    return legal(next ?? state);
  };
}

function describe(op: LinOp<MicroOp[], MicroOp[]>): string {
  const mops = op.output ?? op.input;
  const text = mops.map((m) => `${m.f === 'read' ? 'r' : 'w'} ${m.key} ${m.f === 'read' && op.output === undefined ? '?' : show(m.value)}`);
  return `txn[${text.join(', ')}]`;
}

export function makeMultiRegisterModel(initial: Registers, nilReadWildcard: boolean): Model<Registers, MicroOp[], MicroOp[]> {
  return {
    name: 'multi-register',
    init: () => initial,
    step: makeStep(nilReadWildcard),
    equal: (a, b) => canonical(a) === canonical(b),
    hash: (s) => hashString(canonical(s)),
    partition: (ops) => partitionByKeySets(ops, (op) => [...new Set(op.input.map((m) => m.key))]),
    toOperation: makeToOperation(),
    describeOp: describe,
    describeState: (s) => canonical(s),
  };
}
