// Client benchmark: raftkv (3 kvd processes) against etcd (3 members), both on loopback, same
// closed-loop workload, same client stack (grpc-js + protobufjs, same number of channels).
//
//   npm run bench -- --op put -c 64 --duration 10
//   npm run bench -- --op put,get -c 1,16,64,256 --duration 10 --target both
//
// Options (defaults in brackets):
//   --op put|get|get-lease|get-session|get-stale[,...] [put]
//                                 get = linearizable read (ours: ReadIndex; etcd: default Range);
//                                 get-lease: ours LEASE on the leader vs etcd linearizable;
//                                 get-session / get-stale: ours SESSION / STALE spread over all
//                                 nodes vs etcd serializable Range spread over all members
//   -c, --concurrency N[,N..] [64] concurrent closed-loop workers (each: send, await, repeat)
//   --duration S [10]             measured seconds per (target, op, C)
//   --warmup S [2]                unmeasured seconds before each measurement
//   --rounds N [1]                measure each (op, C) N times, alternating which system goes
//                                 first; tables and chart show per-round medians, and the ratio
//                                 table each round's ratio (this machine drifts by +-15% over
//                                 minutes, so one pair of runs can mislead)
//   --target T[,T..] [both]       raftkv (raw gRPC: one unary call per op, no idempotency key,
//                                 the same client code as etcd's), raftkv-sdk (our SDK, KvClient:
//                                 an idempotency key per write, concurrent calls coalesced into
//                                 KV.Batch), etcd; both = raftkv,etcd; all = all three
//   --value-bytes N [256]  --keys N [10000]   (gets first load every key once)
//   --workers-per-channel N [16]  gRPC channels = ceil(C / N), each its own TCP connection
//   --raftkv-endpoints a,b,c      use a running cluster instead of starting one
//   --etcd-endpoints a,b,c        (the same for etcd)
//   --tick-ms N [100]             raftkv tick (etcd keeps its default 100 ms heartbeat)
//   --cpu-prof                    start the kvd nodes under `node --cpu-prof` (bench/out/prof/)
//   --node-flags "..."            extra node flags for the kvd nodes (e.g. --max-semi-space-size=32)
//   --kvd-flags "..."             extra kvd flags (e.g. --commit-notice-delay-ms 0)
//   --out DIR [bench/out]         results JSON + SVG chart; node data and logs under DIR/run/
//
// Both clusters write their data under the same directory (same disk, both fsync per batch).
// Every request goes to the leader (writes would be forwarded anyway; reads would not).
// Every process this script starts is stopped by pid at the end, on error and on Ctrl-C.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { etcdRoot } from './etcd-proto.js';
import { kvServiceDefinition } from '../src/client/proto.js';
import { KvClient } from '../src/client/kv-client.js';
import { serviceDefinition } from '../src/wire/grpc-service.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const KVD = join(ROOT, 'src/cli/kvd.mjs');
const CALL_TIMEOUT_MS = 10_000;

// ------------------------------------------------------------------ options

interface Options {
  ops: Op[];
  concurrency: number[];
  durationS: number;
  warmupS: number;
  rounds: number;
  targets: Target[];
  valueBytes: number;
  keys: number;
  workersPerChannel: number;
  raftkvEndpoints?: string[];
  etcdEndpoints?: string[];
  tickMs: number;
  cpuProf: boolean;
  /** Extra node flags for the kvd processes, e.g. "--max-semi-space-size=32". */
  nodeFlags: string[];
  /** Extra kvd flags, e.g. "--commit-notice-delay-ms 0". */
  kvdFlags: string[];
  out: string;
}

const USAGE = 'usage: npm run bench -- --op put|get[,..] -c N[,N..] --duration S [--warmup S] [--rounds N] [--target raftkv,raftkv-sdk,etcd|both|all] [--value-bytes N] [--keys N] [--workers-per-channel N] [--raftkv-endpoints a,b] [--etcd-endpoints a,b] [--tick-ms N] [--cpu-prof] [--node-flags "..."] [--kvd-flags "..."] [--out DIR]';

function parseArgs(argv: string[]): Options {
  const o: Options = { ops: ['put'], concurrency: [64], durationS: 10, warmupS: 2, rounds: 1, targets: ['raftkv', 'etcd'], valueBytes: 256, keys: 10_000, workersPerChannel: 16, tickMs: 100, cpuProf: false, nodeFlags: [], kvdFlags: [], out: join(ROOT, 'bench/out') };
  const num = (flag: string, v: string | undefined, min = 1): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min) throw new Error(`${flag} needs a number >= ${min}, got "${v}"`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    const take = (): string => {
      i++;
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--op':
        o.ops = take().split(',').map((x) => {
          if (!(OPS as readonly string[]).includes(x)) throw new Error(`--op must be one of ${OPS.join(', ')}, got "${x}"`);
          return x as Op;
        });
        break;
      case '-c':
      case '--concurrency':
        o.concurrency = take().split(',').map((x) => num(a, x));
        break;
      case '--duration': o.durationS = num(a, take()); break;
      case '--warmup': o.warmupS = num(a, take(), 0); break;
      case '--rounds': o.rounds = Math.floor(num(a, take())); break;
      case '--target': {
        const t = take();
        if (t === 'both') o.targets = ['raftkv', 'etcd'];
        else if (t === 'all') o.targets = [...TARGETS];
        else {
          o.targets = t.split(',').map((x) => {
            if (!(TARGETS as readonly string[]).includes(x)) throw new Error(`--target must be a list of ${TARGETS.join(', ')} (or both, all), got "${x}"`);
            return x as Target;
          });
        }
        break;
      }
      case '--value-bytes': o.valueBytes = num(a, take(), 0); break;
      case '--keys': o.keys = num(a, take()); break;
      case '--workers-per-channel': o.workersPerChannel = num(a, take()); break;
      case '--raftkv-endpoints': o.raftkvEndpoints = take().split(','); break;
      case '--etcd-endpoints': o.etcdEndpoints = take().split(','); break;
      case '--tick-ms': o.tickMs = num(a, take()); break;
      case '--cpu-prof': o.cpuProf = true; break;
      case '--node-flags': o.nodeFlags = take().split(' ').filter((x) => x !== ''); break;
      case '--kvd-flags': o.kvdFlags = take().split(' ').filter((x) => x !== ''); break;
      case '--out': o.out = resolve(take()); break;
      case '-h':
      case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  return o;
}

// ------------------------------------------------------------------ processes

const children: ChildProcess[] = [];
let stopping: Promise<void> | undefined;

export function startProcess(cmd: string, args: string[], logFile: string): ChildProcess {
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
  children.push(child);
  return child;
}

function alive(c: ChildProcess): boolean {
  return c.exitCode === null && c.signalCode === null;
}

/** SIGTERM every child we started (by pid), SIGKILL after 5 s. */
/**
 * A fresh run directory, and Ctrl-C / SIGTERM handlers that stop every process this script
 * started (exit 130). Returns the directory.
 */
export function prepareRun(name: string, runDir: string): string {
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const onSignal = (sig: string): void => {
    progress(`\n${name}: ${sig}, stopping the processes it started\n`);
    void stopAll().then(() => process.exit(130));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  return runDir;
}

export function stopAll(): Promise<void> {
  stopping ??= (async () => {
    for (const c of children) if (alive(c) && c.pid) process.kill(c.pid, 'SIGTERM');
    const deadline = Date.now() + 5_000;
    while (children.some(alive) && Date.now() < deadline) await sleep(50);
    for (const c of children) if (alive(c) && c.pid) process.kill(c.pid, 'SIGKILL');
  })();
  return stopping;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function progress(s: string): void {
  process.stderr.write(s);
}

// ------------------------------------------------------------------ the two systems


const OPS = ['put', 'get', 'get-lease', 'get-session', 'get-stale'] as const;
type Op = (typeof OPS)[number];
const TARGETS = ['raftkv', 'raftkv-sdk', 'etcd'] as const;
type Target = (typeof TARGETS)[number];
/** Read ops served by every node (spread over all endpoints) rather than the leader. */
const SPREAD_OPS: ReadonlySet<Op> = new Set(['get-session', 'get-stale']);
const isRead = (op: Op): boolean => op !== 'put';

export interface System {
  name: Target;
  /** Server processes this script started (for CPU accounting); empty when connecting to a running cluster. */
  pids: number[];
  /** Client address of the current leader. */
  leader(): Promise<string>;
  /** Every member's client address. */
  endpoints: string[];
  /** One fresh channel (own TCP connection) to addr; put/get bound to it (get in the op's mode). */
  channel(addr: string, n: number, op: Op): { put(key: Buffer, value: Buffer, cb: (err: Error | null) => void): void; get(key: Buffer, cb: (err: Error | null) => void): void; close(): void };
}

/** grpc-js pools subchannels by address+options; a distinct option gives each channel its own connection. */
export function channelOptions(n: number): grpc.ChannelOptions {
  return { 'bench.channel': n, 'grpc.max_receive_message_length': 64 * 1024 * 1024 };
}

function deadline(): grpc.CallOptions {
  return { deadline: Date.now() + CALL_TIMEOUT_MS };
}

export function raftkvSystem(endpoints: string[], pids: number[]): System {
  const Kv = grpc.makeGenericClientConstructor(kvServiceDefinition('KV'), 'KV');
  const Cluster = grpc.makeGenericClientConstructor(kvServiceDefinition('Cluster'), 'Cluster');
  return {
    name: 'raftkv',
    pids,
    endpoints,
    async leader() {
      for (let attempt = 0; attempt < 100; attempt++) {
        for (const ep of endpoints) {
          const c = new Cluster(ep, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Status: (r: object, o: grpc.CallOptions, cb: (e: unknown, s?: { role: string }) => void) => void };
          const s = await new Promise<{ role: string } | undefined>((r) => c.Status({}, { deadline: Date.now() + 500 }, (e, s) => r(e ? undefined : s)));
          c.close();
          if (s?.role === 'LEADER') return ep;
        }
        await sleep(200);
      }
      throw new Error(`raftkv: no leader among ${endpoints.join(',')}`);
    },
    channel(addr, n, op) {
      const c = new Kv(addr, grpc.credentials.createInsecure(), channelOptions(n)) as unknown as grpc.Client & { Put: (r: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void; Get: (r: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void };
      // Consistency enum of kv.proto: 1 LINEARIZABLE, 2 LEASE, 3 SESSION, 4 STALE.
      const consistency = { put: 1, get: 1, 'get-lease': 2, 'get-session': 3, 'get-stale': 4 }[op];
      const read = { consistency };
      return {
        put: (key, value, cb) => c.Put({ key, value }, deadline(), cb),
        get: (key, cb) => c.Get({ key, read }, deadline(), cb),
        close: () => c.close(),
      };
    },
  };
}


/** raftkv through the SDK (KvClient), one client per channel with a connection of its own. */
export function raftkvSdkSystem(endpoints: string[], pids: number[]): System {
  const raw = raftkvSystem(endpoints, pids);
  return {
    name: 'raftkv-sdk',
    pids,
    endpoints,
    leader: () => raw.leader(),
    channel(addr, n, op) {
      const client = new KvClient({ endpoints: [addr, ...endpoints.filter((e) => e !== addr)], defaultTimeoutMs: CALL_TIMEOUT_MS, channelOptions: channelOptions(n) as Record<string, number> });
      const consistency = ({ put: 'linearizable', get: 'linearizable', 'get-lease': 'lease', 'get-session': 'session', 'get-stale': 'stale' } as const)[op];
      const done = (cb: (err: Error | null) => void) => [() => cb(null), (e: Error) => cb(e)] as const;
      return {
        put: (key, value, cb) => void client.put(key, value).then(...done(cb)),
        // The read goes to `addr` (the leader, or this channel's member for the spread ops).
        get: (key, cb) => void client.get(key, { consistency, endpoint: addr }).then(...done(cb)),
        close: () => client.close(),
      };
    },
  };
}

export function etcdSystem(endpoints: string[], pids: number[]): System {
  const root = etcdRoot();
  const Kv = grpc.makeGenericClientConstructor(serviceDefinition(root, 'etcdserverpb.KV'), 'KV');
  const Maint = grpc.makeGenericClientConstructor(serviceDefinition(root, 'etcdserverpb.Maintenance'), 'Maintenance');
  return {
    name: 'etcd',
    pids,
    endpoints,
    async leader() {
      for (let attempt = 0; attempt < 100; attempt++) {
        for (const ep of endpoints) {
          const c = new Maint(ep, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Status: (r: object, o: grpc.CallOptions, cb: (e: unknown, s?: { header: { memberId: number }; leader: number }) => void) => void };
          const s = await new Promise<{ header: { memberId: number }; leader: number } | undefined>((r) => c.Status({}, { deadline: Date.now() + 500 }, (e, s) => r(e ? undefined : s)));
          c.close();
          // 64-bit member ids decode lossily as numbers, but identically on both sides.
          if (s && s.leader !== 0 && s.leader === s.header.memberId) return ep;
        }
        await sleep(200);
      }
      throw new Error(`etcd: no leader among ${endpoints.join(',')}`);
    },
    channel(addr, n, op) {
      const c = new Kv(addr, grpc.credentials.createInsecure(), channelOptions(n)) as unknown as grpc.Client & { Put: (r: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void; Range: (r: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void };
      // serializable=false (the default): a linearizable read through etcd's ReadIndex; the
      // spread ops compare with etcd's serializable (local) reads.
      const serializable = SPREAD_OPS.has(op);
      return {
        put: (key, value, cb) => c.Put({ key, value }, deadline(), cb),
        get: (key, cb) => c.Range({ key, serializable }, deadline(), cb),
        close: () => c.close(),
      };
    },
  };
}

// ------------------------------------------------------------------ cluster start-up

const RAFTKV_CLIENT_PORT = 17001;
const RAFTKV_PEER_PORT = 17101;
const ETCD_CLIENT_PORT = 12379;
const ETCD_PEER_PORT = 12380;

/** Starts 3 kvd nodes (client ports base.client.., peer ports base.peer..); returns their client addresses. */
export function startRaftkv(o: Pick<Options, 'out' | 'cpuProf' | 'nodeFlags' | 'tickMs'> & { kvdFlags?: string[] }, runDir: string, pids: number[], base = { client: RAFTKV_CLIENT_PORT, peer: RAFTKV_PEER_PORT }): string[] {
  const nodes = [1, 2, 3].map((id) => ({ id, client: `127.0.0.1:${base.client + id - 1}`, peer: `127.0.0.1:${base.peer + id - 1}`, data: join(runDir, 'raftkv', `n${id}`) }));
  const peers = nodes.map((n) => `${n.id}=${n.peer}/${n.client}`).join(',');
  for (const n of nodes) {
    mkdirSync(n.data, { recursive: true });
    // One directory per node: tsx's loader thread writes its own (nearly idle) profile next to the main thread's.
    const profDir = join(o.out, 'prof', `n${n.id}`);
    if (o.cpuProf) mkdirSync(profDir, { recursive: true });
    const nodeFlags = o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
    const args = [...o.nodeFlags, ...nodeFlags, KVD, '--id', String(n.id), '--data-dir', n.data, '--client-addr', n.client, '--peer-addr', n.peer, '--peers', peers, '--tick-ms', String(o.tickMs), '--log-level', 'warn', ...(o.kvdFlags ?? [])];
    const c = startProcess(process.execPath, args, join(runDir, `raftkv-n${n.id}.log`));
    pids.push(c.pid!);
    progress(`  raftkv node ${n.id}: pid ${c.pid}, client ${n.client}\n`);
  }
  return nodes.map((n) => n.client);
}

export function etcdInstalled(): boolean {
  return spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Starts a 3-member etcd (client ports base.client, +2, +4; peer ports base.peer, +2, +4); returns the client addresses. */
export function startEtcd(runDir: string, pids: number[], base = { client: ETCD_CLIENT_PORT, peer: ETCD_PEER_PORT }): string[] {
  if (!etcdInstalled()) {
    throw new Error('no `etcd` binary on PATH. Install it with:\n    apt-get update && apt-get install -y etcd-server etcd-client\n  or run with --target raftkv (or --etcd-endpoints for a running cluster)');
  }
  const members = [1, 2, 3].map((i) => ({ name: `e${i}`, client: `http://127.0.0.1:${base.client + (i - 1) * 2}`, peer: `http://127.0.0.1:${base.peer + (i - 1) * 2}`, data: join(runDir, 'etcd', `e${i}`) }));
  const cluster = members.map((m) => `${m.name}=${m.peer}`).join(',');
  for (const m of members) {
    mkdirSync(m.data, { recursive: true });
    const args = ['--name', m.name, '--data-dir', m.data, '--listen-client-urls', m.client, '--advertise-client-urls', m.client, '--listen-peer-urls', m.peer, '--initial-advertise-peer-urls', m.peer, '--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', 'kv-bench', '--logger', 'zap', '--log-level', 'warn'];
    const c = startProcess('etcd', args, join(runDir, `etcd-${m.name}.log`));
    pids.push(c.pid!);
    progress(`  etcd member ${m.name}: pid ${c.pid}, client ${m.client}\n`);
  }
  return members.map((m) => m.client.replace('http://', ''));
}

// ------------------------------------------------------------------ the workload

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN elsewhere. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}
/** USER_HZ; 100 on every Linux we run on. */
const CLOCK_TICKS_PER_SECOND = 100;

function serverCpu(sys: System): number {
  return sys.pids.length === 0 ? NaN : sys.pids.reduce((a, p) => a + cpuSeconds(p), 0);
}

function clientCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

interface Result {
  target: string;
  op: string;
  c: number;
  channels: number;
  ops: number;
  errors: number;
  opsPerSec: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  /** CPU microseconds per measured op: the three servers together, and this client process. */
  serverCpuUsPerOp: number;
  clientCpuUsPerOp: number;
  firstError?: string;
  /** 1-based round (--rounds); absent in a per-round median. */
  round?: number;
}

function keyOf(i: number): Buffer {
  return Buffer.from(`bench/key/${String(i).padStart(8, '0')}`);
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

/** Writes every key once (so gets find values); C=64 on 4 channels. */
async function preload(sys: System, addr: string, o: Options, value: Buffer): Promise<void> {
  const chans = [0, 1, 2, 3].map((i) => sys.channel(addr, 1000 + i, 'put'));
  let next = 0;
  const worker = async (w: number): Promise<void> => {
    const ch = chans[w % chans.length]!;
    while (next < o.keys) {
      const k = keyOf(next++);
      await new Promise<void>((res, rej) => ch.put(k, value, (e) => (e ? rej(e) : res())));
    }
  };
  await Promise.all(Array.from({ length: 64 }, (_, w) => worker(w)));
  for (const ch of chans) ch.close();
}

async function runOne(sys: System, addr: string, op: Op, c: number, o: Options, value: Buffer, keys: Buffer[]): Promise<Result> {
  // Spread ops: at least one channel per member, round-robin over all of them.
  const nChannels = Math.max(Math.ceil(c / o.workersPerChannel), SPREAD_OPS.has(op) ? Math.min(c, sys.endpoints.length) : 1);
  const addrOf = (i: number): string => (SPREAD_OPS.has(op) ? sys.endpoints[i % sys.endpoints.length]! : addr);
  const chans = Array.from({ length: nChannels }, (_, i) => sys.channel(addrOf(i), i, op));
  const lat: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let measuring = false;
  let done = false;
  let windowOps = 0;
  let windowErrors = 0;
  const worker = async (w: number): Promise<void> => {
    const ch = chans[w % nChannels]!;
    let seed = (w + 1) * 2654435761;
    while (!done) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const key = keys[seed % keys.length]!;
      const t0 = performance.now();
      const err = await new Promise<Error | null>((res) => (op === 'put' ? ch.put(key, value, res) : ch.get(key, res)));
      const dt = performance.now() - t0;
      windowOps++;
      if (err) windowErrors++;
      if (!measuring || done) continue;
      if (err) {
        errors++;
        firstError ??= err.message;
      } else lat.push(dt);
    }
  };
  const workers = Array.from({ length: c }, (_, w) => worker(w));
  const ticker = setInterval(() => {
    if (stopping) return;
    progress(`\r  ${sys.name} ${op} C=${c}: ${measuring ? 'measuring' : 'warmup   '} ${String(windowOps - windowErrors).padStart(7)} ops/s${windowErrors ? `, ${windowErrors} errors/s` : ''}  `);
    windowOps = 0;
    windowErrors = 0;
  }, 1000);
  await sleep(o.warmupS * 1000);
  measuring = true;
  const t0 = performance.now();
  const srv0 = serverCpu(sys);
  const cli0 = clientCpu();
  await sleep(o.durationS * 1000);
  done = true;
  const elapsed = (performance.now() - t0) / 1000;
  const srvCpu = serverCpu(sys) - srv0;
  const cliCpu = clientCpu() - cli0;
  await Promise.all(workers);
  clearInterval(ticker);
  for (const ch of chans) ch.close();
  const sorted = Float64Array.from(lat).sort();
  const r: Result = {
    target: sys.name,
    op,
    c,
    channels: nChannels,
    ops: sorted.length,
    errors,
    opsPerSec: sorted.length / elapsed,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
    serverCpuUsPerOp: (srvCpu * 1e6) / sorted.length,
    clientCpuUsPerOp: (cliCpu * 1e6) / sorted.length,
  };
  if (firstError) r.firstError = firstError;
  progress(`\r  ${sys.name} ${op} C=${c}: ${r.opsPerSec.toFixed(0)} ops/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms${errors ? `, ${errors} errors (${firstError})` : ''}        \n`);
  return r;
}

// ------------------------------------------------------------------ report

export function fmt(n: number, d = 2): string {
  return Number.isFinite(n) ? n.toFixed(d) : '-';
}

function table(results: Result[]): string {
  const rows: string[][] = [['target', 'op', 'C', 'chans', 'ops/s', 'p50 ms', 'p99 ms', 'p999 ms', 'errors', 'srv cpu us/op', 'cli cpu us/op']];
  for (const r of results) rows.push([r.target, r.op, String(r.c), String(r.channels), fmt(r.opsPerSec, 0), fmt(r.p50), fmt(r.p99), fmt(r.p999), String(r.errors), fmt(r.serverCpuUsPerOp, 0), fmt(r.clientCpuUsPerOp, 0)]);
  const ratios: string[][] = [['ours', 'op', 'C', 'ops/s ours/etcd', 'p50 ours/etcd', 'p99 ours/etcd', 'p999 ours/etcd', 'srv cpu/op ours/etcd']];
  for (const ours of results.filter((r) => r.target !== 'etcd')) {
    const theirs = results.find((r) => r.target === 'etcd' && r.op === ours.op && r.c === ours.c);
    if (!theirs) continue;
    ratios.push([ours.target, ours.op, String(ours.c), fmt(ours.opsPerSec / theirs.opsPerSec), fmt(ours.p50 / theirs.p50), fmt(ours.p99 / theirs.p99), fmt(ours.p999 / theirs.p999), fmt(ours.serverCpuUsPerOp / theirs.serverCpuUsPerOp)]);
  }
  const render = (t: string[][], textCols = 2): string => {
    const w = t[0]!.map((_, i) => Math.max(...t.map((r) => r[i]!.length)));
    return t.map((r) => r.map((x, i) => (i < textCols ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join('  ')).join('\n');
  };
  return render(rows) + (ratios.length > 1 ? `\n\nratios (raftkv / etcd; ops/s > 1 and latency < 1 favour raftkv)\n${render(ratios, 3)}` : '');
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** One row per (target, op, C): the median of each figure over the rounds, errors summed. */
export function medians(results: Result[]): Result[] {
  const groups = new Map<string, Result[]>();
  for (const r of results) {
    const k = `${r.target}|${r.op}|${r.c}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((rs) => {
    const m = (f: (r: Result) => number): number => median(rs.map(f));
    return {
      target: rs[0]!.target,
      op: rs[0]!.op,
      c: rs[0]!.c,
      channels: rs[0]!.channels,
      ops: rs.reduce((n, r) => n + r.ops, 0),
      errors: rs.reduce((n, r) => n + r.errors, 0),
      opsPerSec: m((r) => r.opsPerSec),
      p50: m((r) => r.p50),
      p99: m((r) => r.p99),
      p999: m((r) => r.p999),
      max: Math.max(...rs.map((r) => r.max)),
      serverCpuUsPerOp: m((r) => r.serverCpuUsPerOp),
      clientCpuUsPerOp: m((r) => r.clientCpuUsPerOp),
    };
  });
}

/** Each round's ratios ours/etcd (the two ran back to back), with their median and range. */
function roundRatios(results: Result[]): string {
  const rows: string[][] = [['ours', 'op', 'C', 'ops/s ours/etcd by round', 'median', 'p50 ours/etcd by round', 'median']];
  const keys = [...new Set(results.filter((r) => r.target !== 'etcd').map((r) => `${r.target}|${r.op}|${r.c}`))];
  for (const k of keys) {
    const [target, op, c] = k.split('|') as [string, string, string];
    const pairs = results
      .filter((r) => r.target === target && r.op === op && String(r.c) === c)
      .map((ours) => [ours, results.find((t) => t.target === 'etcd' && t.op === op && String(t.c) === c && t.round === ours.round)] as const)
      .filter((p): p is readonly [Result, Result] => p[1] !== undefined);
    if (pairs.length === 0) continue;
    const tput = pairs.map(([a, b]) => a.opsPerSec / b.opsPerSec);
    const p50 = pairs.map(([a, b]) => a.p50 / b.p50);
    rows.push([target, op, c, tput.map((x) => fmt(x)).join(' '), fmt(median(tput)), p50.map((x) => fmt(x)).join(' '), fmt(median(p50))]);
  }
  if (rows.length === 1) return '';
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return `ratios per round (raftkv / etcd, measured in the same round)\n${rows.map((r) => r.map((x, i) => (i < 3 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join('  ')).join('\n')}`;
}

/** A self-contained SVG: per op, throughput and p50/p99 latency against C (log scale), one line per target. */
function chart(results: Result[], title: string): string {
  const ops = [...new Set(results.map((r) => r.op))];
  const cs = [...new Set(results.map((r) => r.c))].sort((a, b) => a - b);
  const targets = [...new Set(results.map((r) => r.target))];
  const colors: Record<string, string> = { raftkv: '#d62728', 'raftkv-sdk': '#ff7f0e', etcd: '#1f77b4' };
  const pw = 420, ph = 260, ml = 60, mt = 40, gap = 70;
  const width = ml + 2 * (pw + gap), height = mt + ops.length * (ph + gap) + 20;
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`, `<rect width="100%" height="100%" fill="white"/>`, `<text x="${ml}" y="20" font-size="14" font-weight="bold">${title}</text>`];
  const xOf = (c: number, x0: number): number => (cs.length === 1 ? x0 + pw / 2 : x0 + (Math.log(c / cs[0]!) / Math.log(cs[cs.length - 1]! / cs[0]!)) * pw);
  ops.forEach((op, row) => {
    const y0 = mt + row * (ph + gap);
    const panels: Array<{ label: string; series: Array<{ name: string; dash: string; get: (r: Result) => number }>; log: boolean }> = [
      { label: `${op}: throughput (ops/s)`, series: [{ name: 'ops/s', dash: '', get: (r) => r.opsPerSec }], log: false },
      { label: `${op}: latency (ms, log): p50 solid, p99 dashed`, series: [{ name: 'p50', dash: '', get: (r) => r.p50 }, { name: 'p99', dash: '5,4', get: (r) => r.p99 }], log: true },
    ];
    panels.forEach((p, col) => {
      const x0 = ml + col * (pw + gap);
      const vals = results.filter((r) => r.op === op).flatMap((r) => p.series.map((s) => s.get(r))).filter((v) => Number.isFinite(v) && v > 0);
      const lo = p.log ? Math.min(...vals) / 1.5 : 0;
      const hi = Math.max(...vals) * 1.1;
      const yOf = (v: number): number => (p.log ? y0 + ph - (Math.log(v / lo) / Math.log(hi / lo)) * ph : y0 + ph - (v / hi) * ph);
      out.push(`<text x="${x0}" y="${y0 - 8}" font-weight="bold">${p.label}</text>`);
      out.push(`<rect x="${x0}" y="${y0}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
      for (const c of cs) out.push(`<text x="${xOf(c, x0)}" y="${y0 + ph + 14}" text-anchor="middle">C=${c}</text>`);
      for (let i = 0; i <= 4; i++) {
        const v = p.log ? lo * Math.pow(hi / lo, i / 4) : (hi * i) / 4;
        const y = yOf(v);
        out.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${y}" y2="${y}" stroke="#eee"/><text x="${x0 - 4}" y="${y + 4}" text-anchor="end">${v >= 100 ? v.toFixed(0) : v.toPrecision(2)}</text>`);
      }
      for (const t of targets) {
        for (const s of p.series) {
          const pts = cs.map((c) => results.find((r) => r.target === t && r.op === op && r.c === c)).filter((r): r is Result => !!r && Number.isFinite(s.get(r)) && s.get(r) > 0);
          if (pts.length === 0) continue;
          out.push(`<polyline fill="none" stroke="${colors[t] ?? '#000'}" stroke-width="2" stroke-dasharray="${s.dash}" points="${pts.map((r) => `${xOf(r.c, x0).toFixed(1)},${yOf(s.get(r)).toFixed(1)}`).join(' ')}"/>`);
          for (const r of pts) out.push(`<circle cx="${xOf(r.c, x0).toFixed(1)}" cy="${yOf(s.get(r)).toFixed(1)}" r="3" fill="${colors[t] ?? '#000'}"><title>${t} ${op} C=${r.c} ${s.name}: ${fmt(s.get(r))}</title></circle>`);
        }
      }
      targets.forEach((t, i) => out.push(`<rect x="${x0 + 8}" y="${y0 + 8 + i * 14}" width="10" height="10" fill="${colors[t] ?? '#000'}"/><text x="${x0 + 22}" y="${y0 + 17 + i * 14}">${t}</text>`));
    });
  });
  out.push('</svg>');
  return out.join('\n');
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const load0 = loadavg()[0]!;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const runDir = prepareRun('kv-bench', join(o.out, 'run'));

  if (o.targets.includes('etcd') && !o.etcdEndpoints && !etcdInstalled()) {
    throw new Error('no `etcd` binary on PATH. Install it with:\n    apt-get update && apt-get install -y etcd-server etcd-client\n  or run with --target raftkv (or pass --etcd-endpoints of a running cluster)');
  }
  const systems: System[] = [];
  progress(`kv-bench: starting clusters (data and logs under ${runDir})\n`);
  if (o.targets.includes('raftkv') || o.targets.includes('raftkv-sdk')) {
    // One cluster for both raftkv clients.
    const pids: number[] = [];
    const eps = o.raftkvEndpoints ?? startRaftkv(o, runDir, pids);
    if (o.targets.includes('raftkv')) systems.push(raftkvSystem(eps, pids));
    if (o.targets.includes('raftkv-sdk')) systems.push(raftkvSdkSystem(eps, pids));
  }
  if (o.targets.includes('etcd')) {
    const pids: number[] = [];
    systems.push(etcdSystem(o.etcdEndpoints ?? startEtcd(runDir, pids), pids));
  }
  const leaders = new Map<System, string>();
  for (const s of systems) {
    leaders.set(s, await s.leader());
    progress(`  ${s.name} leader: ${leaders.get(s)}\n`);
  }
  const value = Buffer.alloc(o.valueBytes, 0x61);
  const keys = Array.from({ length: o.keys }, (_, i) => keyOf(i));
  const results: Result[] = [];
  for (const op of o.ops) {
    if (isRead(op) && !o.ops.slice(0, o.ops.indexOf(op)).some(isRead)) {
      for (const s of systems) {
        progress(`  ${s.name}: loading ${o.keys} keys for gets\n`);
        await preload(s, leaders.get(s)!, o, value);
      }
    }
    for (const c of o.concurrency) {
      for (let round = 1; round <= o.rounds; round++) {
        // Alternate who goes first so a drift of the machine's speed favours neither.
        for (const s of round % 2 === 1 ? systems : [...systems].reverse()) {
          leaders.set(s, await s.leader()); // in case leadership moved
          if (o.rounds > 1) progress(`  round ${round}/${o.rounds}\n`);
          results.push({ ...(await runOne(s, leaders.get(s)!, op, c, o, value, keys)), ...(o.rounds > 1 ? { round } : {}) });
        }
      }
    }
  }
  const summary = o.rounds > 1 ? medians(results) : results;
  const meta = `${cpus().length} CPUs, 1-min load average ${load0.toFixed(1)} at start and ${loadavg()[0]!.toFixed(1)} at end; value ${o.valueBytes} B, ${o.keys} keys, ${o.durationS} s (+${o.warmupS} s warmup)${o.rounds > 1 ? ` x ${o.rounds} rounds (medians)` : ''}, ${o.workersPerChannel} workers per channel`;
  console.log(`\n${meta}\n${table(summary)}${o.rounds > 1 ? `\n\n${roundRatios(results)}` : ''}`);
  mkdirSync(o.out, { recursive: true });
  const base = join(o.out, `kv-bench-${o.ops.join('-')}-${stamp}`);
  writeFileSync(`${base}.json`, JSON.stringify({ options: o, results, ...(o.rounds > 1 ? { medians: summary } : {}) }, null, 2));
  writeFileSync(`${base}.svg`, chart(summary, `raftkv vs etcd, 3 nodes on loopback (${meta})`));
  console.log(`\nwrote ${base}.json and ${base}.svg`);
}

// Run only as a script; primitives-bench.ts imports the helpers above.
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main()
    .catch((e: Error) => {
      process.exitCode = 1;
      console.error(`kv-bench: ${e.message}`);
    })
    .finally(() => stopAll().then(() => process.exit()));
}
