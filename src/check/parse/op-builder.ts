// Turns one already-decoded op map (from EDN or JSON) into our common `Op`, validating its fields.

import { HistoryParseError, type Op, type OpType } from '../history.js';

const OP_TYPES: ReadonlySet<string> = new Set(['invoke', 'ok', 'fail', 'info']);

/** Where an op came from, so that errors point into the file. */
export interface OpLocation {
  file: string | undefined;
  line: number;
  column: number;
}

/** Process id used when an op has no :process (Elle's paper example): one anonymous process. */
export const MISSING_PROCESS = 'nil';

/** Computed only when an error is reported: finding a line is a scan of the text. */
export type LocateOp = () => OpLocation;

function fail(locate: LocateOp, message: string): never {
  const location = locate();
  throw new HistoryParseError(message, location.file, location.line, location.column);
}

function isTxnValue(value: unknown): boolean {
  return Array.isArray(value) && value.every((mop) => Array.isArray(mop));
}

function readProcess(raw: Record<string, unknown>, location: LocateOp): number | string {
  const process = raw['process'];
  if (process === undefined || process === null) return MISSING_PROCESS;
  if (typeof process === 'number' && Number.isFinite(process)) return process;
  if (typeof process === 'string') return process;
  return fail(location, `op :process must be an integer or a keyword, got ${JSON.stringify(process)}`);
}

function readF(raw: Record<string, unknown>, location: LocateOp): string {
  const f = raw['f'];
  if (typeof f === 'string') return f;
  // Elle's hand-written histories sometimes omit :f; their values are transactions.
  if (f === undefined && isTxnValue(raw['value'])) return 'txn';
  return fail(location, `op needs :f (a keyword), got ${JSON.stringify(f)}`);
}

/**
 * Validates and normalizes one op. `position` is the op's place in the file (used as the index when
 * the op has no :index of its own).
 */
export function buildOp(raw: unknown, position: number, location: LocateOp): Op {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return fail(location, `expected an op map, got ${JSON.stringify(raw)?.slice(0, 60)}`);
  }
  const map = raw as Record<string, unknown>;
  const type = map['type'];
  if (typeof type !== 'string' || !OP_TYPES.has(type)) {
    return fail(location, `op :type must be :invoke, :ok, :fail or :info, got ${JSON.stringify(type)}`);
  }
  const op: Op = {
    index: typeof map['index'] === 'number' ? map['index'] : position,
    process: readProcess(map, location),
    type: type as OpType,
    f: readF(map, location),
    value: map['value'] === undefined ? null : map['value'],
  };
  const key = map['key'];
  if (key !== undefined && key !== null) op.key = typeof key === 'string' ? key : JSON.stringify(key);
  if (typeof map['time'] === 'number') op.time = map['time'];
  if (map['error'] !== undefined) op.error = map['error'];
  if (typeof map['revision'] === 'number' && Number.isFinite(map['revision'])) op.revision = map['revision'];
  if (typeof map['session'] === 'string' || typeof map['session'] === 'number') op.session = String(map['session']);
  return op;
}
