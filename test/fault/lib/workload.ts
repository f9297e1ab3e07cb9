// The pluggable workload interface. A workload generates operations, executes one against the
// cluster (reads pinned to the worker's node, writes through the leader-following SDK), names
// its final reads, and judges the recorded history. The runner does the recording: it logs the
// invoke before execute() and the ok/fail/info it returns after.
//
// Built: register, list-append, bank, counter, watch, lock.

import { KvClientError, StatusCode, writeDefinitelyNotApplied, type ConsistencyName, type KvClient, type Session } from '../../../src/client/index.js';
import type { CallResult, ProcNode } from './cluster.js';
import type { Completion, HistoryEvent } from './history.js';
import type { Rng } from './rng.js';

export interface OpSpec {
  f: string;
  key?: string;
  value: unknown;
}

/**
 * Planted client bugs, to prove the checkers can fail. Test-only.
 * - stale-read: register reads answered from the client's cache half the time;
 * - session-drop-token: with --consistency session, reads go out as STALE reads without the
 *   session's min_revision (the token is dropped) but are recorded as session reads.
 */
export type PlantedBug = 'stale-read' | 'session-drop-token';
export const PLANTED_BUGS: readonly PlantedBug[] = ['stale-read', 'session-drop-token'];

export interface ExecContext {
  worker: number;
  node: ProcNode;
  rng: Rng;
  /** Leader-following SDK client (safe retries only) for writes and txns. */
  writer: KvClient;
  /** One raw call to the pinned node (no retries, no redirection). */
  callNode<T>(method: 'Get' | 'Range', req: Record<string, unknown>): Promise<CallResult<T>>;
  consistency: ConsistencyName;
  opTimeoutMs: number;
  plantedBug?: PlantedBug;
  /**
   * With --consistency session: this worker's session (of `writer`); its reads (pinned to the
   * worker's node) AND writes go through it. Survives a writer change (continued from its token).
   */
  session?: Session;
}

/** What a workload's background tasks (e.g. watchers) get from the runner. */
export interface BackgroundEnv {
  /** Client addresses of the current members. */
  endpoints(): string[];
  /** Records an observation in the history (process "nemesis", ignored by the checkers). */
  observe(f: string, value: unknown): void;
  log(msg: string): void;
  opTimeoutMs: number;
}

export interface CheckResult {
  /** e.g. "linearizable (cas-register per key)". */
  name: string;
  valid: boolean | 'unknown';
  /** Lines a person reads: what is wrong, where. Empty when valid. */
  explanations: string[];
  elapsedMs: number;
  /** Extra detail for results.json. */
  details?: Record<string, unknown>;
  /** Self-contained HTML of the failing part (e.g. the WGL timeline). */
  html?: string;
}

export interface Workload {
  readonly name: string;
  /** Puts the initial state in place (e.g. bank accounts) before the clock starts. */
  setup(writer: KvClient): Promise<void>;
  generate(rng: Rng, worker: number): OpSpec;
  execute(ctx: ExecContext, op: OpSpec): Promise<Completion>;
  /** Ops to run once the cluster has healed and recovered (retried until ok). */
  finalOps(): OpSpec[];
  check(events: HistoryEvent[], jsonl: string, opts: { timeoutMs: number }): CheckResult[];
  /** Optional: long-running tasks (watchers) started with the workers, after setup(). */
  startBackground?(env: BackgroundEnv): void;
  /**
   * Optional: called after the final reads with a healthy cluster; ends the background tasks
   * (bounded) and gathers what check() needs (e.g. the applied history of a key).
   */
  finish?(client: KvClient, env: BackgroundEnv): Promise<void>;
}

export const WORKLOAD_NAMES = ['register', 'list-append', 'bank', 'counter', 'watch', 'lock'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

const enc = new TextEncoder();
const dec = new TextDecoder();
export const bytes = (s: string): Uint8Array => enc.encode(s);
export const str = (b: Uint8Array | undefined | null): string | undefined => (b ? dec.decode(b) : undefined);

/** Read options of a pinned raw read. */
export function readOpts(consistency: ConsistencyName): Record<string, number> {
  const code = { linearizable: 1, lease: 2, session: 3, stale: 4 }[consistency];
  return { consistency: code };
}

/**
 * The outcome of a failed write. `fail` only when the server certainly did not apply it:
 * refused before proposing (not the leader, slot lost, queue full, bad input), or never sent.
 * Anything else (deadline, dropped connection, unknown) is `info`.
 */
export function writeErrorOutcome(e: unknown): Completion {
  if (e instanceof KvClientError) {
    const error = `${e.codeName}: ${e.details}`.slice(0, 300);
    // A refusal of a retry says nothing of an earlier attempt, which may have been applied.
    const refused =
      e.code === StatusCode.INVALID_ARGUMENT ||
      e.code === StatusCode.UNIMPLEMENTED ||
      (e.code === StatusCode.RESOURCE_EXHAUSTED && /over max|too many pending proposals/.test(e.details));
    const definite = writeDefinitelyNotApplied(e) || (refused && !e.opts.earlierAttemptMayHaveApplied);
    return { type: definite ? 'fail' : 'info', value: null, error };
  }
  return { type: 'info', value: null, error: String((e as Error)?.message ?? e).slice(0, 300) };
}

/**
 * A failed read: `fail`. A read changes nothing, so "did not happen" is always a safe answer
 * (as Jepsen's etcd tests do); recording it as `info` would only slow the search.
 */
export function readErrorOutcome(error: { code: number; details: string }): Completion {
  return { type: 'fail', value: null, error: `${StatusCode[error.code] ?? error.code}: ${error.details}`.slice(0, 300) };
}

export function isDeadline(e: unknown): boolean {
  return e instanceof KvClientError && e.code === StatusCode.DEADLINE_EXCEEDED;
}
