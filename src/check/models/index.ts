// The linearizability models, by name. Each is a plug-in built by a factory from options.

import type { History } from '../history.js';
import type { Model } from '../lin/types.js';
import { makeCounterModel } from './counter.js';
import { makeKvModel } from './kv.js';
import { makeMultiRegisterModel, type Registers } from './multi-register.js';
import { makeMutexModel } from './mutex.js';
import { makeRegisterModel } from './register.js';

export const LIN_MODEL_NAMES = ['register', 'cas-register', 'kv', 'mutex', 'multi-register', 'counter'] as const;
export type LinModelName = (typeof LIN_MODEL_NAMES)[number];

/**
 * Whose conventions the history follows. 'knossos' (Jepsen EDN/JSON): an :ok read of nil is a
 * wildcard. 'porcupine-etcd': nil means absent and a :fail cas means the compare failed.
 * 'plain' (our jsonl, Porcupine kv): nil means absent, :fail means it did not happen.
 */
export type Dialect = 'knossos' | 'porcupine-etcd' | 'plain';

export interface ModelOptions {
  /** Initial state; `undefined` means the model's default (nil, "", 0, free, {}). */
  initial?: unknown;
  dialect: Dialect;
}

export function isLinModelName(name: string): name is LinModelName {
  return (LIN_MODEL_NAMES as readonly string[]).includes(name);
}

function registersFrom(initial: unknown): Registers {
  if (initial === undefined || initial === null) return {};
  if (typeof initial !== 'object' || Array.isArray(initial)) throw new TypeError('multi-register --initial must be a map, e.g. {:x 0 :y 0}');
  return initial as Registers;
}

/**
 * A model of any state/input/output types. The CLI picks a model at run time, so its types are only
 * known inside the model; the checker is generic and never looks inside them.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyModel = Model<any, any, any>;

export function makeModel(name: LinModelName, options: ModelOptions): AnyModel {
  const { initial, dialect } = options;
  switch (name) {
    case 'register':
    case 'cas-register':
      return makeRegisterModel({
        initial: initial === undefined ? null : initial,
        nilRead: dialect === 'knossos' ? 'wildcard' : 'strict',
        failedCas: dialect === 'porcupine-etcd' ? 'compare-failed' : 'dropped',
        allowCas: name === 'cas-register',
      });
    case 'kv':
      if (initial !== undefined && typeof initial !== 'string') throw new TypeError('kv --initial must be a string');
      return makeKvModel(initial ?? '');
    case 'mutex':
      return makeMutexModel(initial === true || initial === 'held');
    case 'multi-register':
      return makeMultiRegisterModel(registersFrom(initial), dialect === 'knossos');
    case 'counter':
      if (initial !== undefined && typeof initial !== 'number') throw new TypeError('counter --initial must be a number');
      return makeCounterModel(initial ?? 0);
  }
}

/** The set of :f values in a history's client ops. */
function fSet(history: History): Set<string> {
  return new Set(history.filter((op) => op.process !== 'nemesis').map((op) => op.f));
}

function txnMicroOpNames(history: History): Set<string> {
  const names = new Set<string>();
  for (const op of history) {
    if (op.f !== 'txn' || !Array.isArray(op.value)) continue;
    for (const mop of op.value) if (Array.isArray(mop) && typeof mop[0] === 'string') names.add(mop[0]);
  }
  return names;
}

/** Guesses the model from the ops' :f values; undefined when the history does not make it clear. */
export function inferModel(history: History): LinModelName | 'list-append' | 'rw-register' | undefined {
  const fs = fSet(history);
  const only = (...allowed: string[]) => fs.size > 0 && [...fs].every((f) => allowed.includes(f));
  if (only('txn')) {
    const mops = txnMicroOpNames(history);
    if (mops.has('append')) return 'list-append';
    if (mops.has('read') || mops.has('write')) return 'multi-register';
    if (mops.has('r') || mops.has('w')) return 'rw-register';
    return undefined;
  }
  if (only('acquire', 'release')) return 'mutex';
  if (only('get', 'put', 'append')) return 'kv';
  if (only('read', 'write', 'cas')) return 'cas-register';
  if (only('read', 'add')) return 'counter';
  return undefined;
}
