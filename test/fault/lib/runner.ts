// One fault-injection run: start a cluster of real kvd processes, run the workload while the
// nemesis acts, heal everything, let the cluster recover, run the final reads, stop every
// process, judge the history, and write the run directory (history.jsonl, results.json,
// report.html, node logs).

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { KvClient, KvClientError, StatusCode, type ConsistencyName, type Session } from '../../../src/client/index.js';
import { ProcessCluster, type ProcNode } from './cluster.js';
import { HistoryRecorder, totals, type Completion, type OpCounts } from './history.js';
import { addLearner, clearAllFaults, findLeader, NEMESES, promote, sleep, waitUp, type FaultWindow, type NemesisEnv, type NemesisName, type PartitionKind } from './nemesis.js';
import { renderReport } from './report.js';
import { Rng } from './rng.js';
import { type BackgroundEnv, type CheckResult, type ExecContext, type OpSpec, type PlantedBug, type Workload, type WorkloadName } from './workload.js';
import { BankWorkload } from './workloads/bank.js';
import { ListAppendWorkload } from './workloads/list-append.js';
import { RegisterWorkload } from './workloads/register.js';
import { CounterWorkload } from './workloads/counter.js';
import { WatchWorkload } from './workloads/watch.js';
import { LockWorkload } from './workloads/lock.js';

export interface RunOptions {
  workload: WorkloadName;
  nemeses: NemesisName[];
  timeLimitS: number;
  concurrency: number;
  /** Target ops/s over all workers. */
  rate: number;
  nodes: number;
  seed: number;
  consistency: ConsistencyName;
  /** kvd --tick-ms (election timeout is 10 ticks). */
  tickMs?: number;
  /** Deadline of one client op. */
  opTimeoutMs?: number;
  /** Mean length of the quiet gap and of the fault window (each drawn in [0.5, 1.5] x this). */
  nemesisIntervalS?: number;
  /** How long the healed cluster may take to recover before the final reads. */
  recoverS?: number;
  /** Checker time limit (an "unknown" verdict past it). */
  checkTimeoutS?: number;
  /** Parent of the run directories (default ./store). */
  storeDir?: string;
  /** Keep node data dirs even when every check passed. */
  keepData?: boolean;
  /** Partition shapes the partition nemesis draws from (default: all). */
  partitionKinds?: PartitionKind[];
  /** Whom the pause nemesis stops: 'leader' always the leader, 'any' (default) leader or random 50/50. */
  pauseTarget?: 'leader' | 'any';
  /**
   * Shortest SIGSTOP window, ms. Default 3 x the election timeout (10 ticks), so a paused
   * leader always outlives its lease and a new leader can be elected meanwhile.
   */
  pauseMinMs?: number;
  /** Clock nemesis: the rates it draws from (default 0.2, 0.5, 0.9, 1.25, 2). */
  clockRates?: number[];
  /** Clock nemesis: always skew the leader and cut it off (default: leader or random, isolated half the time). */
  clockLeaderIsolated?: boolean;
  /** Test-only: a planted client bug the checker must catch. */
  plantedBug?: PlantedBug;
  /**
   * 'shared' (default): all workers call through one KvClient (per membership epoch), so calls
   * that overlap are coalesced into KV.Batch as any concurrent SDK user's are; 'per-worker':
   * one KvClient each (every call its own RPC).
   */
  clients?: 'shared' | 'per-worker';
  /** The command line, for results.json and the report. */
  command?: string;
  onProgress?: (p: Progress) => void;
  onLog?: (msg: string) => void;
  /** Abort (e.g. Ctrl-C): stop at once, stop every process, write what was recorded. */
  signal?: AbortSignal;
}

export interface Progress {
  phase: 'starting' | 'running' | 'healing' | 'recovering' | 'final-reads' | 'checking' | 'done';
  elapsedS: number;
  timeLimitS: number;
  ops: number;
  ok: number;
  fail: number;
  info: number;
  fault: string;
}

export interface RunResult {
  runDir: string;
  /** True only when every check passed. */
  valid: boolean | 'unknown';
  aborted: boolean;
  options: Omit<RunOptions, 'onProgress' | 'onLog' | 'signal'>;
  checks: CheckResult[];
  counts: OpCounts;
  faults: FaultWindow[];
  /** Client ops (not the final reads) per second of workload time. */
  opsPerSec: number;
  workloadMs: number;
  totalMs: number;
  checkMs: number;
  events: number;
  notes: string[];
}

const FINAL_PROCESS_BASE = 1_000_000;
/** kvd's election timeout in ticks (the leader lease is as long). */
export const ELECTION_TIMEOUT_TICKS = 10;
const FINAL_ATTEMPTS = 20;
const NODE_FLAGS = ['--snapshot-entries', '1000', '--compaction-lag', '200'];

export function makeWorkload(name: WorkloadName, consistency: ConsistencyName = 'linearizable'): Workload {
  switch (name) {
    case 'register':
      return new RegisterWorkload({ session: consistency === 'session' });
    case 'list-append':
      return new ListAppendWorkload();
    case 'bank':
      return new BankWorkload();
    case 'counter':
      return new CounterWorkload();
    case 'watch':
      return new WatchWorkload();
    case 'lock':
      return new LockWorkload();
  }
}

export class NotBuiltError extends Error {
  override name = 'NotBuiltError';
}

/** A stop flag with a promise, so sleepers wake at once. */
class Stopper {
  stopped = false;
  private wake: (() => void) | undefined;
  readonly done = new Promise<void>((r) => (this.wake = r));
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }
  async sleep(ms: number): Promise<void> {
    if (this.stopped) return;
    await Promise.race([sleep(ms), this.done]);
  }
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

export async function runFault(opts: RunOptions): Promise<RunResult> {
  const startedMs = Date.now();
  const storeDir = resolve(opts.storeDir ?? 'store');
  const runDir = join(storeDir, opts.workload, timestamp());
  mkdirSync(runDir, { recursive: true });
  const log = (msg: string) => opts.onLog?.(msg);
  const tickMs = opts.tickMs ?? 50;
  const opTimeoutMs = opts.opTimeoutMs ?? 1500;
  const intervalS = opts.nemesisIntervalS ?? 5;
  const rng = new Rng(opts.seed);
  const nemesisRng = rng.fork(1000);
  const workload = makeWorkload(opts.workload, opts.consistency);
  if (opts.plantedBug === 'session-drop-token' && (opts.workload !== 'register' || opts.consistency !== 'session')) {
    throw new NotBuiltError('--planted-bug session-drop-token needs --workload register --consistency session');
  }
  const notes: string[] = [];
  const cluster = new ProcessCluster(opts.nodes, tickMs, { root: join(runDir, 'data'), logDir: join(runDir, 'logs'), keepRoot: true });
  const rec = new HistoryRecorder({ streamPath: join(runDir, 'history.partial.jsonl') });
  const faults: FaultWindow[] = [];
  const members: ProcNode[] = [...cluster.nodes];
  let epoch = 0;
  let sharedWriter: { epoch: number; client: KvClient } | undefined;
  let nextId = opts.nodes + 1;
  let phase: Progress['phase'] = 'starting';
  let currentFault = 'none';
  let workloadEndMs = 0;
  let workloadStartMs = 0;
  let aborted = false;
  const adminClients: KvClient[] = [];
  const adminClient = (): KvClient => {
    const c = new KvClient({ endpoints: members.map((n) => n.clientAddr), defaultTimeoutMs: 5000, discoveryTimeoutMs: 500 });
    adminClients.push(c);
    return c;
  };
  const env: NemesisEnv = {
    cluster,
    rng: nemesisRng,
    members,
    admin: adminClient,
    nodeFlags: NODE_FLAGS,
    bumpEpoch: () => void epoch++,
    log: (m) => {
      rec.nemesis('log', m);
      log(m);
    },
    nextNodeId: () => nextId++,
    ...(opts.partitionKinds ? { partitionKinds: opts.partitionKinds } : {}),
    pauseTarget: opts.pauseTarget ?? 'any',
    pauseMinMs: opts.pauseMinMs ?? 3 * ELECTION_TIMEOUT_TICKS * tickMs,
    ...(opts.clockRates ? { clockRates: opts.clockRates } : {}),
    ...(opts.clockLeaderIsolated ? { clockLeaderIsolated: true } : {}),
  };
  const bgEnv: BackgroundEnv = {
    endpoints: () => members.map((n) => n.clientAddr),
    observe: (f, value) => rec.observe(f, value),
    log,
    opTimeoutMs,
  };
  const progress = (): Progress => {
    const t = totals(rec.counts());
    return { phase, elapsedS: workloadStartMs ? ((workloadEndMs || rec.nowMs()) - workloadStartMs) / 1000 : 0, timeLimitS: opts.timeLimitS, ops: t.ok + t.fail + t.info + t.open, ok: t.ok, fail: t.fail, info: t.info, fault: currentFault };
  };
  const progressTimer = setInterval(() => opts.onProgress?.(progress()), 250);
  const stopper = new Stopper();
  const onAbort = () => {
    aborted = true;
    stopper.stop();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let checks: CheckResult[] = [];
  let checkMs = 0;
  try {
    cluster.startAll(NODE_FLAGS);
    await cluster.waitForLeader(30_000);
    const setupClient = adminClient();
    await probeConsistency(setupClient, opts.consistency);
    await workload.setup(setupClient);
    workload.startBackground?.(bgEnv);
    phase = 'running';
    workloadStartMs = rec.nowMs();
    const workers = Array.from({ length: opts.concurrency }, (_, w) => runWorker(w));
    const nemesisLoop = runNemesis();
    await stopper.sleep(opts.timeLimitS * 1000);
    stopper.stop();
    await Promise.all(workers);
    sharedWriter?.client.close();
    workloadEndMs = rec.nowMs();
    await nemesisLoop;
    if (!aborted) {
      phase = 'healing';
      currentFault = 'none';
      await healAll();
      phase = 'recovering';
      await recover();
      phase = 'final-reads';
      await finalReads();
      if (workload.finish) await workload.finish(adminClient(), bgEnv);
    }
  } catch (e) {
    if (e instanceof NotBuiltError) throw e;
    notes.push(`run error: ${(e as Error).stack ?? e}`);
    log(`run error: ${(e as Error).message}`);
  } finally {
    clearInterval(progressTimer);
    opts.signal?.removeEventListener('abort', onAbort);
    stopper.stop();
    rec.closeOpen(aborted ? 'run aborted' : 'run ended');
    for (const c of adminClients) c.close();
    await cluster.stopAll();
  }
  writeFileSync(join(runDir, 'history.jsonl'), rec.toJsonl());
  rmSync(join(runDir, 'history.partial.jsonl'), { force: true });

  // ------------------------------------------------------------------ judge and write
  phase = 'checking';
  opts.onProgress?.(progress());
  const checkStart = performance.now();
  if (!aborted && !notes.some((n) => n.startsWith('run error'))) {
    checks = workload.check(rec.events, rec.toJsonl(), { timeoutMs: (opts.checkTimeoutS ?? 120) * 1000 });
  }
  checkMs = performance.now() - checkStart;
  const valid: boolean | 'unknown' = checks.length === 0 ? 'unknown' : checks.every((c) => c.valid === true) ? true : checks.some((c) => c.valid === false) ? false : 'unknown';
  for (const [i, c] of checks.entries()) if (c.html) writeFileSync(join(runDir, `check-${i}.html`), c.html);
  const workloadMs = Math.max(1, workloadEndMs - workloadStartMs);
  const counts = rec.counts();
  const clientOps = rec.ops.filter((o) => typeof o.process === 'number' && o.process < FINAL_PROCESS_BASE).length;
  const { onProgress: _p, onLog: _l, signal: _s, ...options } = opts;
  const result: RunResult = {
    runDir,
    valid,
    aborted,
    options,
    checks: checks.map(({ html: _h, ...c }) => c),
    counts,
    faults,
    opsPerSec: clientOps / (workloadMs / 1000),
    workloadMs,
    totalMs: Date.now() - startedMs,
    checkMs,
    events: rec.events.length,
    notes,
  };
  writeFileSync(join(runDir, 'results.json'), JSON.stringify(result, null, 2) + '\n');
  writeFileSync(join(runDir, 'report.html'), renderReport({ result, ops: rec.ops, checks, workloadStartMs }));
  if (valid === true && !opts.keepData) rmSync(join(runDir, 'data'), { recursive: true, force: true });
  phase = 'done';
  return result;

  // ------------------------------------------------------------------ pieces

  /** The workers' KvClient for the current epoch ('shared'), or a new one ('per-worker'). */
  function writerFor(currentEpoch: number, opTimeoutMs: number): KvClient {
    const make = () => new KvClient({ endpoints: members.map((n) => n.clientAddr), defaultTimeoutMs: opTimeoutMs, discoveryTimeoutMs: Math.min(500, opTimeoutMs) });
    if (opts.clients === 'per-worker') return make();
    if (sharedWriter?.epoch !== currentEpoch) {
      const old = sharedWriter?.client;
      // Other workers may still be in an op on the old client; the longest op (a lock acquire
      // and its release) takes up to two op timeouts.
      if (old) setTimeout(() => old.close(), 2 * opTimeoutMs + 1000);
      sharedWriter = { epoch: currentEpoch, client: make() };
    }
    return sharedWriter.client;
  }

  async function runWorker(w: number): Promise<void> {
    const wrng = rng.fork(w);
    let proc = w;
    let writer: KvClient | undefined;
    let session: Session | undefined;
    let writerEpoch = -1;
    const sessionId = opts.consistency === 'session' ? `s${w}` : undefined;
    const meanGapMs = (opts.concurrency / opts.rate) * 1000;
    // Open-loop-ish schedule: the next op is due a random gap after the previous one was due,
    // so slow ops do not lower the rate (a worker that fell behind catches up, bounded by one gap).
    let dueMs = rec.nowMs() + wrng.next() * meanGapMs;
    while (!stopper.stopped) {
      dueMs = Math.max(dueMs, rec.nowMs() - meanGapMs);
      await stopper.sleep(dueMs - rec.nowMs());
      dueMs += wrng.next() * 2 * meanGapMs;
      if (stopper.stopped) break;
      if (writerEpoch !== epoch || !writer) {
        const old = writer;
        if (old && opts.clients === 'per-worker') setTimeout(() => old.close(), opTimeoutMs + 1000);
        writer = writerFor(epoch, opTimeoutMs);
        writerEpoch = epoch;
        // One logical session per worker: a new client continues it from the old one's token.
        if (sessionId) session = session ? writer.session(session.token()) : writer.session();
      }
      const node = members[w % members.length]!;
      const op = workload.generate(wrng, w);
      const c = await execute(proc, op, execContext(w, node, wrng, writer, session), sessionId);
      if (c.type === 'info') proc += opts.concurrency;
    }
    if (writer && opts.clients === 'per-worker') {
      const last = writer;
      setTimeout(() => last.close(), 100);
    }
  }

  function execContext(worker: number, node: ProcNode, wrng: Rng, writer: KvClient, session?: Session): ExecContext {
    return {
      ...(session ? { session } : {}),
      worker,
      node,
      rng: wrng,
      writer,
      callNode: (method, req) => cluster.call(node.clientAddr, 'kv', method, req, opTimeoutMs),
      consistency: opts.consistency,
      opTimeoutMs,
      ...(opts.plantedBug ? { plantedBug: opts.plantedBug } : {}),
    };
  }

  async function execute(proc: number, op: OpSpec, ctx: ExecContext, sessionId?: string): Promise<Completion> {
    const h = rec.invoke(proc, op.f, op.value, op.key, sessionId);
    let c: Completion;
    try {
      c = await workload.execute(ctx, op);
    } catch (e) {
      c = { type: 'info', value: null, error: `harness: ${(e as Error).message}`.slice(0, 300) };
    }
    rec.complete(h, c);
    return c;
  }

  async function runNemesis(): Promise<void> {
    if (opts.nemeses.length === 0) return;
    while (!stopper.stopped) {
      await stopper.sleep((0.5 + nemesisRng.next()) * intervalS * 1000);
      if (stopper.stopped) break;
      const name = nemesisRng.pick(opts.nemeses);
      const startMs = rec.nowMs() - workloadStartMs;
      currentFault = `${name}: starting`;
      let fault;
      try {
        fault = await NEMESES[name](env);
      } catch (e) {
        faults.push({ nemesis: name, label: `${name} failed to start`, startMs, endMs: rec.nowMs() - workloadStartMs, error: (e as Error).message });
        currentFault = 'none';
        continue;
      }
      if (!fault) {
        currentFault = 'none';
        continue;
      }
      const window: FaultWindow = { nemesis: name, label: fault.label, startMs };
      faults.push(window);
      rec.nemesis(`start-${name}`, fault.label);
      currentFault = fault.label;
      log(`fault: ${fault.label}`);
      await stopper.sleep((0.5 + nemesisRng.next()) * intervalS * 1000);
      try {
        await fault.heal();
      } catch (e) {
        window.error = `heal: ${(e as Error).message}`;
      }
      window.endMs = rec.nowMs() - workloadStartMs;
      rec.nemesis(`stop-${name}`, fault.label);
      currentFault = 'none';
    }
  }

  /** Every process running and resumed, no transport faults, the membership back to size. */
  async function healAll(): Promise<void> {
    for (const n of members) {
      if (n.paused) cluster.resume(n);
      if (!cluster.isRunning(n)) {
        cluster.restart(n);
        log(`heal: restarted n${n.id}`);
      }
    }
    await Promise.all(members.map((n) => waitUp(env, n)));
    const errs = await clearAllFaults(env);
    if (errs.length) notes.push(`heal: clear faults failed on ${errs.join('; ')}`);
    if (!opts.nemeses.includes('membership')) return;
    const leader = await findLeader(env, 20_000);
    if (!leader) return void notes.push('heal: no leader to restore the membership');
    const s = await cluster.status(leader);
    const learners = (s?.members ?? []).filter((m) => m.isLearner).map((m) => m.id);
    for (const id of learners) {
      const n = members.find((m) => m.id === id);
      if (n) {
        const err = await promote(env, n, 15_000);
        if (err) notes.push(`heal: ${err}`);
      }
    }
    while (members.length < opts.nodes) {
      const added = await addLearner(env);
      if (!added.ok) {
        notes.push(`heal: ${added.error}`);
        break;
      }
      const err = await promote(env, added.node, 15_000);
      if (err) notes.push(`heal: ${err}`);
    }
  }

  /** Waits (bounded) for a leader and for every member to apply what the leader committed. */
  async function recover(): Promise<void> {
    const deadline = Date.now() + (opts.recoverS ?? 20) * 1000;
    while (Date.now() < deadline) {
      const leader = await findLeader(env, 2000);
      const ls = leader ? await cluster.status(leader) : undefined;
      if (ls) {
        const all = await Promise.all(members.map((n) => cluster.status(n)));
        if (all.every((s) => s && s.appliedIndex >= ls.commitIndex)) return;
      }
      await sleep(200);
    }
    notes.push(`recovery: not every member caught up within ${opts.recoverS ?? 20} s`);
  }

  async function finalReads(): Promise<void> {
    const writer = adminClient();
    const wrng = rng.fork(99_999);
    let proc = FINAL_PROCESS_BASE;
    for (const [i, op] of workload.finalOps().entries()) {
      for (let attempt = 0; attempt < FINAL_ATTEMPTS; attempt++) {
        const node = members[(i + attempt) % members.length]!;
        const c = await execute(proc, op, execContext(-1, node, wrng, writer));
        if (c.type === 'info') proc++;
        if (c.type === 'ok') break;
        if (attempt === FINAL_ATTEMPTS - 1) notes.push(`final read ${JSON.stringify(op)} never succeeded: ${c.error}`);
        await sleep(250);
      }
    }
  }
}

/** Refuses a consistency mode the server does not implement (it answers UNIMPLEMENTED). */
async function probeConsistency(client: KvClient, consistency: ConsistencyName): Promise<void> {
  if (consistency === 'linearizable') return;
  try {
    await client.get('probe/consistency', { consistency, timeoutMs: 5000 });
  } catch (e) {
    if (e instanceof KvClientError && e.code === StatusCode.UNIMPLEMENTED) {
      throw new NotBuiltError(`--consistency ${consistency}: not built yet (the server answers UNIMPLEMENTED: ${e.details}); use linearizable`);
    }
    throw e;
  }
}
