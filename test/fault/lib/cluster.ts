// A cluster of real `kvd` processes on loopback, with raw gRPC calls. Used by the integration
// suite (test/integration) and by the fault-injection harness (test/fault). Every process it
// starts is tracked by pid and killed in stopAll() (and, as a last resort, killAllSync() when
// the host process exits).

import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { kvServiceDefinition } from '../../../src/client/proto.js';

const KVD = resolve(import.meta.dirname, '../../../src/cli/kvd.mjs');
const KvCtor = grpc.makeGenericClientConstructor(kvServiceDefinition('KV'), 'KV');
const ClusterCtor = grpc.makeGenericClientConstructor(kvServiceDefinition('Cluster'), 'Cluster');
const AdminCtor = grpc.makeGenericClientConstructor(kvServiceDefinition('Admin'), 'Admin');

/** Ids 1..MAX_NODE_ID fit in a port block: client base+id, peer base+100+id. */
export const MAX_NODE_ID = 99;
/** The tail of a node's stderr kept in memory (the full log goes to logDir when set). */
const STDERR_TAIL_CHARS = 64 * 1024;

export interface ProcNode {
  id: number;
  clientAddr: string;
  peerAddr: string;
  dataDir: string;
  proc?: ChildProcess;
  stderr: string;
  /** Flags of the last start(), reused by restart(). */
  startFlags?: string[];
  /** True while SIGSTOPped by pause(). */
  paused?: boolean;
}

export interface CallError {
  code: number;
  details: string;
  leaderAddr?: string;
}

export type CallResult<T> = { ok: true; value: T } | { ok: false; error: CallError };

export interface ProcessClusterOptions {
  /** Directory for data dirs (default: a fresh temp dir, removed by stopAll()). */
  root?: string;
  /** Keep `root` after stopAll() (default: keep only when `root` was given). */
  keepRoot?: boolean;
  /** Append every node's stderr to `<logDir>/n<id>.log`. */
  logDir?: string;
  /** First port of the block (default: random block between 20000 and 60000). */
  basePort?: number;
}

export interface NodeStatus {
  memberId: number;
  leaderId: number;
  role: string;
  raftTerm: number;
  commitIndex: number;
  appliedIndex: number;
  members?: { id: number; isLearner: boolean }[];
}

type Unary = (req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
type ServiceKey = 'kv' | 'cluster' | 'admin';

/** Every ProcessCluster alive in this process, for the exit hook. */
const LIVE = new Set<ProcessCluster>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of LIVE) c.killAllSync();
  });
}

export class ProcessCluster {
  /** Every node ever started or planned (removed ones stay, with their old id). */
  readonly nodes: ProcNode[] = [];
  readonly root: string;
  readonly basePort: number;
  private readonly keepRoot: boolean;
  private readonly logDir: string | undefined;
  private readonly clients = new Map<string, { svc: Record<ServiceKey, Record<string, Unary>>; close(): void }>();

  constructor(
    size: number,
    readonly tickMs = 20,
    opts: ProcessClusterOptions = {},
  ) {
    this.root = opts.root ?? mkdtempSync(join(tmpdir(), 'raftkv-it-'));
    mkdirSync(this.root, { recursive: true });
    this.keepRoot = opts.keepRoot ?? opts.root !== undefined;
    this.logDir = opts.logDir;
    if (this.logDir) mkdirSync(this.logDir, { recursive: true });
    // A random port block per run keeps parallel runs and leftovers from colliding; the block
    // leaves room for nodes added later (ids up to 99: client base+id, peer base+100+id).
    this.basePort = opts.basePort ?? 20_000 + Math.floor(Math.random() * 200) * 200;
    for (let i = 1; i <= size; i++) this.nodes.push(this.planNode(i));
    LIVE.add(this);
    installExitHook();
  }

  /** A node description for `id` in this cluster's port block (not started, not added). */
  planNode(id: number): ProcNode {
    if (!(id >= 1 && id <= MAX_NODE_ID)) throw new RangeError(`node id ${id} is outside 1..${MAX_NODE_ID}`);
    return { id, clientAddr: `127.0.0.1:${this.basePort + id}`, peerAddr: `127.0.0.1:${this.basePort + 100 + id}`, dataDir: join(this.root, `n${id}`), stderr: '' };
  }

  node(id: number): ProcNode | undefined {
    return this.nodes.find((n) => n.id === id);
  }

  peersFlag(among: ProcNode[] = this.nodes): string {
    return among.map((n) => `${n.id}=${n.peerAddr}/${n.clientAddr}`).join(',');
  }

  /** Starts `n`; `peers` defaults to every node of the cluster. */
  start(n: ProcNode, extra: string[] = [], peers: ProcNode[] = this.nodes): ChildProcess {
    const flags = ['--id', String(n.id), '--data-dir', n.dataDir, '--client-addr', n.clientAddr, '--peer-addr', n.peerAddr, '--peers', this.peersFlag(peers), '--tick-ms', String(this.tickMs), ...extra];
    const proc = spawn(process.execPath, [KVD, ...flags], { stdio: ['ignore', 'ignore', 'pipe'] });
    n.stderr = '';
    n.startFlags = flags;
    n.paused = false;
    const log = this.logDir ? join(this.logDir, `n${n.id}.log`) : undefined;
    if (log) appendFileSync(log, `--- ${new Date().toISOString()} start pid ${proc.pid}: kvd ${flags.join(' ')}\n`);
    proc.stderr!.on('data', (d: Buffer) => {
      n.stderr = (n.stderr + d.toString()).slice(-STDERR_TAIL_CHARS);
      if (log) appendFileSync(log, d);
    });
    proc.once('exit', (code, signal) => {
      if (log) appendFileSync(log, `--- ${new Date().toISOString()} pid ${proc.pid} exited (code ${code}, signal ${signal})\n`);
    });
    n.proc = proc;
    return proc;
  }

  /** Starts `n` again with the flags of its last start. */
  restart(n: ProcNode): ChildProcess {
    if (!n.startFlags) throw new Error(`node ${n.id} was never started`);
    return this.start(n, n.startFlags.slice(n.startFlags.indexOf('--tick-ms') + 2), this.peersFromFlags(n.startFlags));
  }

  private peersFromFlags(flags: string[]): ProcNode[] {
    const list = flags[flags.indexOf('--peers') + 1] ?? '';
    return list.split(',').map((entry) => {
      const [id, addrs] = entry.split('=');
      const [peerAddr, clientAddr] = addrs!.split('/');
      return { id: Number(id), peerAddr: peerAddr!, clientAddr: clientAddr!, dataDir: '', stderr: '' };
    });
  }

  startAll(extra: string[] = []): void {
    for (const n of this.nodes) this.start(n, extra);
  }

  isRunning(n: ProcNode): boolean {
    return n.proc !== undefined && n.proc.exitCode === null && n.proc.signalCode === null;
  }

  kill9(n: ProcNode): void {
    n.proc?.kill('SIGKILL');
    n.paused = false;
  }

  /** kill -9 and wait until the process is gone. */
  async kill9AndWait(n: ProcNode): Promise<void> {
    if (!this.isRunning(n)) return;
    const exited = new Promise((r) => n.proc!.once('exit', r));
    this.kill9(n);
    await exited;
  }

  pause(n: ProcNode): void {
    if (this.isRunning(n) && n.proc!.kill('SIGSTOP')) n.paused = true;
  }

  resume(n: ProcNode): void {
    if (this.isRunning(n)) n.proc!.kill('SIGCONT');
    n.paused = false;
  }

  /** Pids of every process this cluster started that may still run. */
  pids(): number[] {
    return this.nodes.filter((n) => this.isRunning(n) && n.proc!.pid !== undefined).map((n) => n.proc!.pid!);
  }

  /** Synchronous last resort (process exit hook): SIGKILL every process still running. */
  killAllSync(): void {
    for (const n of this.nodes) {
      if (this.isRunning(n)) {
        try {
          n.proc!.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }

  async stopAll(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    await Promise.all(this.nodes.map((n) => this.kill9AndWait(n)));
    LIVE.delete(this);
    if (!this.keepRoot) rmSync(this.root, { recursive: true, force: true });
  }

  private client(addr: string) {
    let c = this.clients.get(addr);
    if (!c) {
      const creds = grpc.credentials.createInsecure();
      const kv = new KvCtor(addr, creds) as unknown as Record<string, Unary> & grpc.Client;
      const cluster = new ClusterCtor(addr, creds) as unknown as Record<string, Unary> & grpc.Client;
      const admin = new AdminCtor(addr, creds) as unknown as Record<string, Unary> & grpc.Client;
      c = { svc: { kv, cluster, admin }, close: () => (kv.close(), cluster.close(), admin.close()) };
      this.clients.set(addr, c);
    }
    return c;
  }

  call<T>(addr: string, service: ServiceKey, method: string, req: unknown, timeoutMs = 2000): Promise<CallResult<T>> {
    const svc = this.client(addr).svc[service];
    return new Promise((resolveCall) => {
      svc[method]!.call(svc, req, { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (!err) return resolveCall({ ok: true, value: res as T });
        const hint = err.metadata?.get('x-raftkv-leader-addr')[0];
        resolveCall({ ok: false, error: { code: err.code, details: err.details, leaderAddr: typeof hint === 'string' ? hint : undefined } });
      });
    });
  }

  async status(n: ProcNode, timeoutMs = 500): Promise<NodeStatus | undefined> {
    const r = await this.call<NodeStatus>(n.clientAddr, 'cluster', 'Status', {}, timeoutMs);
    if (!r.ok) return undefined;
    const s = r.value;
    return {
      memberId: Number(s.memberId),
      leaderId: Number(s.leaderId),
      role: s.role,
      raftTerm: Number(s.raftTerm),
      commitIndex: Number(s.commitIndex),
      appliedIndex: Number(s.appliedIndex),
      members: (s.members ?? []).map((m) => ({ id: Number(m.id), isLearner: m.isLearner })),
    };
  }

  async waitForLeader(timeoutMs: number, among: ProcNode[] = this.nodes): Promise<ProcNode> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const n of among) {
        const s = await this.status(n);
        if (s?.role === 'LEADER') return n;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no leader among ${among.map((n) => n.id)} within ${timeoutMs} ms`);
  }
}
