// Generates histories from a sequential model run under simulated concurrency, for property
// tests: several processes overlap their ops, each op takes effect atomically at a random moment
// between its invoke and its completion, some ops fail (no effect) or crash (:info, effect or not).
// All randomness comes from one seed, so a failing case replays from its seed.

import type { History, Op, OpType } from '../history.js';
import { seededRandom } from './random.js';

/** A sequential object: applies an op atomically and says what it returned. */
export interface SimObject {
  /** Picks the next op for a process. `nextUnique` gives values never used before. */
  nextOp(random: () => number, nextUnique: () => number): { f: string; key?: string; value: unknown };
  /** Applies the op; returns the completion value, or 'fail' if the op is refused. */
  apply(op: { f: string; key?: string; value: unknown }): { value: unknown } | 'fail';
}

export interface SimOptions {
  seed: number;
  processCount: number;
  opCount: number;
  /** Probability that an in-flight op crashes and is recorded :info. */
  crashProbability: number;
}

interface InFlight {
  process: number;
  op: { f: string; key?: string; value: unknown };
  /** Set once the op has taken effect. */
  result?: { value: unknown } | 'fail';
}

function event(index: number, process: number, type: OpType, op: { f: string; key?: string; value: unknown }, value: unknown): Op {
  const e: Op = { index, process, type, f: op.f, value };
  if (op.key !== undefined) e.key = op.key;
  return e;
}

/** Runs the simulation; the result is a well-formed history in real-time order. */
export function simulate(object: SimObject, options: SimOptions): History {
  const random = seededRandom(options.seed);
  let unique = 0;
  const nextUnique = () => ++unique;
  const history: History = [];
  const inFlight = new Map<number, InFlight>();
  const idle: number[] = Array.from({ length: options.processCount }, (_, i) => i);
  let nextProcess = options.processCount;
  let invoked = 0;
  // Each iteration does one thing; bounded because every op is invoked once and finishes in <= 3 steps.
  const maxSteps = options.opCount * 10 + 100;
  for (let step = 0; step < maxSteps && (invoked < options.opCount || inFlight.size > 0); step++) {
    const choice = random();
    if (invoked < options.opCount && idle.length > 0 && (choice < 0.4 || inFlight.size === 0)) {
      const process = idle.splice(Math.floor(random() * idle.length), 1)[0]!;
      const op = object.nextOp(random, nextUnique);
      inFlight.set(process, { process, op });
      history.push(event(history.length, process, 'invoke', op, op.f === 'read' || op.f === 'get' ? null : op.value));
      invoked++;
      continue;
    }
    const flights = [...inFlight.values()];
    if (flights.length === 0) continue;
    const flight = flights[Math.floor(random() * flights.length)]!;
    if (flight.result === undefined) {
      flight.result = object.apply(flight.op); // the linearization point
      continue;
    }
    inFlight.delete(flight.process);
    if (random() < options.crashProbability) {
      // The client lost the reply: outcome unknown, and this process id is never reused.
      history.push(event(history.length, flight.process, 'info', flight.op, flight.op.value));
      idle.push(nextProcess++);
      continue;
    }
    const failed = flight.result === 'fail';
    history.push(event(history.length, flight.process, failed ? 'fail' : 'ok', flight.op, failed ? flight.op.value : (flight.result as { value: unknown }).value));
    idle.push(flight.process);
  }
  return history;
}
