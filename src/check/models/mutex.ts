// A lock with acquire/release (Knossos' mutex). State: whether it is held.

import type { Op } from '../history.js';
import { legal, ILLEGAL, ModelInputError, type Model, type OperationIO } from '../lin/types.js';

export type MutexInput = 'acquire' | 'release';

function toOperation(invoke: Op, completion: Op | undefined): OperationIO<MutexInput, true> {
  if (invoke.f !== 'acquire' && invoke.f !== 'release') throw new ModelInputError('unknown :f for mutex (acquire, release)', invoke);
  if (completion === undefined || completion.type === 'info') return { input: invoke.f, output: undefined };
  if (completion.type === 'fail') return null;
  return { input: invoke.f, output: true };
}

export function makeMutexModel(initiallyHeld: boolean): Model<boolean, MutexInput, true> {
  return {
    name: 'mutex',
    init: () => initiallyHeld,
    // Acquiring a held lock or releasing a free one cannot happen.
    step: (held, input) => (input === 'acquire' ? (held ? ILLEGAL : legal(true)) : held ? legal(false) : ILLEGAL),
    equal: (a, b) => a === b,
    hash: (held) => (held ? 1 : 2),
    partition: (ops) => [ops],
    toOperation,
    describeOp: (op) => `${op.input}()${op.output === undefined ? ' -> ?' : ''}`,
    describeState: (held) => (held ? 'held' : 'free'),
  };
}
