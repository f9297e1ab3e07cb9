// Local clusters on loopback.
//
//   npm start                                  3 nodes in the foreground; Ctrl-C stops them all
//   npm run cluster -- start [--nodes 5]       the same, in the background (pid files)
//   npm run cluster -- status                  which nodes run, who leads
//   npm run cluster -- stop                    stops exactly the pids this script started
//
// Ports: clients base-client-port+i (7001..), peers base-peer-port+i (7101..); data under
// --data-dir (default ./data, ignored by git), one directory per node.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { Command } from 'commander';
import { kvServiceDefinition } from '../src/client/proto.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const KVD = join(ROOT, 'src/cli/kvd.mjs');
const LEADER_WAIT_MS = 15_000;

interface ClusterOptions {
  nodes: string;
  baseClientPort: string;
  basePeerPort: string;
  dataDir: string;
  runDir: string;
  tickMs: string;
  logLevel: string;
  peerTransport: string;
  foreground?: boolean;
}

interface NodeSpec {
  id: number;
  clientAddr: string;
  peerAddr: string;
  dataDir: string;
}

function specs(o: ClusterOptions): NodeSpec[] {
  const n = Number(o.nodes);
  if (!Number.isSafeInteger(n) || n < 1 || n > 9) throw new Error(`--nodes must be 1..9, got ${o.nodes}`);
  return Array.from({ length: n }, (_, i) => ({
    id: i + 1,
    clientAddr: `127.0.0.1:${Number(o.baseClientPort) + i}`,
    peerAddr: `127.0.0.1:${Number(o.basePeerPort) + i}`,
    dataDir: resolve(o.dataDir, `n${i + 1}`),
  }));
}

function pidFile(o: ClusterOptions, id: number): string {
  return resolve(o.runDir, `n${id}.pid`);
}

function spawnNode(s: NodeSpec, all: NodeSpec[], o: ClusterOptions, background: boolean): ChildProcess {
  const peers = all.map((p) => `${p.id}=${p.peerAddr}/${p.clientAddr}`).join(',');
  const args = [KVD, '--id', String(s.id), '--data-dir', s.dataDir, '--client-addr', s.clientAddr, '--peer-addr', s.peerAddr, '--peers', peers, '--tick-ms', o.tickMs, '--log-level', o.logLevel, '--peer-transport', o.peerTransport];
  if (!background) return spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  mkdirSync(o.runDir, { recursive: true });
  const logFd = openSync(resolve(o.runDir, `n${s.id}.log`), 'a');
  const child = spawn(process.execPath, args, { stdio: ['ignore', logFd, logFd], detached: true });
  child.unref();
  return child;
}

type StatusReply = { memberId: number; leaderId: number; raftTerm: number; role: string; commitIndex: number; appliedIndex: number; revision: number };

export function nodeStatus(addr: string, timeoutMs: number): Promise<StatusReply | undefined> {
  const Ctor = grpc.makeGenericClientConstructor(kvServiceDefinition('Cluster'), 'Cluster');
  const client = new Ctor(addr, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Status: (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: StatusReply) => void) => void;
  };
  return new Promise((resolveStatus) => {
    client.Status({}, { deadline: Date.now() + timeoutMs }, (err, res) => {
      client.close();
      resolveStatus(err ? undefined : res);
    });
  });
}

async function waitForLeader(nodes: NodeSpec[]): Promise<StatusReply | undefined> {
  const deadline = Date.now() + LEADER_WAIT_MS;
  while (Date.now() < deadline) {
    for (const n of nodes) {
      const s = await nodeStatus(n.clientAddr, 500);
      if (s?.role === 'LEADER') return s;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

function printEndpoints(nodes: NodeSpec[], leader: StatusReply | undefined, logs: string): void {
  console.log(`raftkv: ${nodes.length}-node cluster on loopback`);
  for (const n of nodes) console.log(`  node ${n.id}: client ${n.clientAddr}  peer ${n.peerAddr}  data ${n.dataDir}`);
  // The usual cause: data directories made by a cluster on other ports keep their stored
  // addresses (each kvd says so in its log).
  console.log(leader ? `  leader: node ${leader.memberId} (term ${leader.raftTerm})` : `  leader: none after ${LEADER_WAIT_MS / 1000} s; see ${logs} (data directories created with other ports keep the stored addresses)`);
  console.log(`  try: npx kvctl --endpoints ${nodes.map((n) => n.clientAddr).join(',')} put hello world`);
}

async function startForeground(o: ClusterOptions): Promise<void> {
  const nodes = specs(o);
  const children = nodes.map((s) => spawnNode(s, nodes, o, false));
  let stopping = false;
  const stopAll = (): void => {
    if (stopping) return;
    stopping = true;
    console.log('\nraftkv: stopping all nodes');
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  };
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);
  for (const c of children) {
    c.on('exit', (code) => {
      if (!stopping) console.error(`raftkv: node pid ${c.pid} exited with code ${code}`);
      if (children.every((x) => x.exitCode !== null || x.signalCode !== null)) process.exit(0);
    });
  }
  printEndpoints(nodes, await waitForLeader(nodes), 'the kvd lines above');
  console.log('  Ctrl-C stops all nodes.');
}

async function startBackground(o: ClusterOptions): Promise<void> {
  const nodes = specs(o);
  for (const s of nodes) {
    if (existsSync(pidFile(o, s.id)) && isOurNode(readPid(o, s.id))) throw new Error(`node ${s.id} already runs (pid ${readPid(o, s.id)}); stop it first`);
  }
  for (const s of nodes) {
    const child = spawnNode(s, nodes, o, true);
    writeFileSync(pidFile(o, s.id), String(child.pid));
  }
  printEndpoints(nodes, await waitForLeader(nodes), `the node logs in ${o.runDir}`);
  console.log(`  pids in ${o.runDir}; stop with: npm run cluster -- stop`);
}

function readPid(o: ClusterOptions, id: number): number {
  return Number(readFileSync(pidFile(o, id), 'utf8').trim());
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The pid from a pid file still runs our kvd. Where /proc exists its command line must name
 * the kvd shim: a stale pid file must never make `stop` signal whatever process got the pid since.
 */
function isOurNode(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0 || !isRunning(pid)) return false;
  if (!existsSync('/proc/self/cmdline')) return true;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(KVD);
  } catch {
    return false;
  }
}

/** Node ids with a pid file in the run directory: every node `start` wrote, whatever --nodes says now. */
function startedIds(o: ClusterOptions): number[] {
  if (!existsSync(o.runDir)) return [];
  return readdirSync(o.runDir)
    .map((f) => /^n(\d+)\.pid$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** How long a node may take to exit after SIGTERM before it gets SIGKILL. */
const STOP_GRACE_MS = 5_000;

async function stop(o: ClusterOptions): Promise<void> {
  const ids = startedIds(o);
  if (ids.length === 0) console.log(`raftkv: no pid files in ${o.runDir}: nothing to stop`);
  const nodes = ids.map((id) => ({ id, pid: readPid(o, id) }));
  const ours = nodes.filter((n) => isOurNode(n.pid));
  // All at once: one by one, each waited for the others' shutdown in turn.
  for (const n of ours) process.kill(n.pid, 'SIGTERM');
  for (let waited = 0; waited < STOP_GRACE_MS && ours.some((n) => isRunning(n.pid)); waited += 100) await new Promise((r) => setTimeout(r, 100));
  for (const n of nodes) {
    if (!ours.includes(n)) console.log(`node ${n.id} (pid ${n.pid}) was not running (stale pid file removed)`);
    else {
      if (isRunning(n.pid)) process.kill(n.pid, 'SIGKILL');
      console.log(`stopped node ${n.id} (pid ${n.pid})`);
    }
    rmSync(pidFile(o, n.id));
  }
}

async function status(o: ClusterOptions): Promise<void> {
  for (const s of specs(o)) {
    const st = await nodeStatus(s.clientAddr, 1000);
    console.log(st ? `node ${s.id} ${s.clientAddr}: ${st.role} term=${st.raftTerm} leader=${st.leaderId} commit=${st.commitIndex} applied=${st.appliedIndex} revision=${st.revision}` : `node ${s.id} ${s.clientAddr}: not reachable`);
  }
}

async function main(): Promise<void> {
  const program = new Command().name('cluster').description('Run a local raftkv cluster on loopback');
  const withOpts = (c: Command): Command =>
    c
      .option('--nodes <n>', 'cluster size', '3')
      .option('--base-client-port <port>', 'client port of node 1', '7001')
      .option('--base-peer-port <port>', 'peer port of node 1', '7101')
      .option('--data-dir <dir>', 'parent of the node data directories', resolve(ROOT, 'data'))
      .option('--run-dir <dir>', 'pid and log files of background nodes', resolve(ROOT, '.cluster'))
      .option('--tick-ms <ms>', 'Raft tick interval', '100')
      .option('--log-level <level>', 'node log level', 'warn')
      .option('--peer-transport <kind>', 'peer protocol of every node: tcp or grpc', 'tcp');
  withOpts(program.command('start'))
    .option('--foreground', 'run in the foreground; Ctrl-C stops every node')
    .action((o: ClusterOptions) => (o.foreground ? startForeground(o) : startBackground(o)));
  withOpts(program.command('stop')).action((o: ClusterOptions) => stop(o));
  withOpts(program.command('status')).action((o: ClusterOptions) => status(o));
  await program.parseAsync();
}

main().catch((e: Error) => {
  console.error(`cluster: ${e.message}`);
  process.exit(1);
});
