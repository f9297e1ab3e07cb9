// Test helper: a cluster of real `kvd` processes on loopback, with raw gRPC calls, so the
// integration suite exercises exactly what users run. Every process it starts is tracked by
// pid and killed in stopAll().

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { kvServiceDefinition } from '../../src/client/proto.js';

const KVD = resolve(import.meta.dirname, '../../src/cli/kvd.mjs');
const KvCtor = grpc.makeGenericClientConstructor(kvServiceDefinition('KV'), 'KV');
const ClusterCtor = grpc.makeGenericClientConstructor(kvServiceDefinition('Cluster'), 'Cluster');

export interface ProcNode {
  id: number;
  clientAddr: string;
  peerAddr: string;
  dataDir: string;
  proc?: ChildProcess;
  stderr: string;
}

export interface CallError {
  code: number;
  details: string;
  leaderAddr?: string;
}

type Unary = (req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

export class ProcessCluster {
  readonly nodes: ProcNode[] = [];
  readonly root: string;
  private readonly clients = new Map<string, { kv: Record<string, Unary>; cluster: Record<string, Unary>; close(): void }>();

  constructor(size: number, readonly tickMs = 20) {
    this.root = mkdtempSync(join(tmpdir(), 'raftkv-it-'));
    // A random port block per run keeps parallel runs and leftovers from colliding; the block
    // leaves room for nodes added later (ids up to 9: client base+id, peer base+100+id).
    const base = 20_000 + Math.floor(Math.random() * 200) * 200;
    for (let i = 1; i <= size; i++) {
      this.nodes.push({ id: i, clientAddr: `127.0.0.1:${base + i}`, peerAddr: `127.0.0.1:${base + 100 + i}`, dataDir: join(this.root, `n${i}`), stderr: '' });
    }
  }

  peersFlag(): string {
    return this.nodes.map((n) => `${n.id}=${n.peerAddr}/${n.clientAddr}`).join(',');
  }

  start(n: ProcNode, extra: string[] = []): ChildProcess {
    const args = [KVD, '--id', String(n.id), '--data-dir', n.dataDir, '--client-addr', n.clientAddr, '--peer-addr', n.peerAddr, '--peers', this.peersFlag(), '--tick-ms', String(this.tickMs), ...extra];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    n.stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (n.stderr += d.toString()));
    n.proc = proc;
    return proc;
  }

  startAll(): void {
    for (const n of this.nodes) this.start(n);
  }

  kill9(n: ProcNode): void {
    n.proc?.kill('SIGKILL');
  }

  async stopAll(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    for (const n of this.nodes) {
      if (n.proc && n.proc.exitCode === null && n.proc.signalCode === null) {
        const exited = new Promise((r) => n.proc!.once('exit', r));
        n.proc.kill('SIGKILL');
        await exited;
      }
    }
    rmSync(this.root, { recursive: true, force: true });
  }

  private client(addr: string) {
    let c = this.clients.get(addr);
    if (!c) {
      const kv = new KvCtor(addr, grpc.credentials.createInsecure()) as unknown as Record<string, Unary> & grpc.Client;
      const cluster = new ClusterCtor(addr, grpc.credentials.createInsecure()) as unknown as Record<string, Unary> & grpc.Client;
      c = { kv, cluster, close: () => (kv.close(), cluster.close()) };
      this.clients.set(addr, c);
    }
    return c;
  }

  call<T>(addr: string, service: 'kv' | 'cluster', method: string, req: unknown, timeoutMs = 2000): Promise<{ ok: true; value: T } | { ok: false; error: CallError }> {
    const svc = this.client(addr)[service];
    return new Promise((resolveCall) => {
      svc[method]!.call(svc, req, { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (!err) return resolveCall({ ok: true, value: res as T });
        const hint = err.metadata?.get('x-raftkv-leader-addr')[0];
        resolveCall({ ok: false, error: { code: err.code, details: err.details, leaderAddr: typeof hint === 'string' ? hint : undefined } });
      });
    });
  }

  async status(n: ProcNode): Promise<{ memberId: number; leaderId: number; role: string; commitIndex: number; appliedIndex: number } | undefined> {
    const r = await this.call<{ memberId: number; leaderId: number; role: string; commitIndex: number; appliedIndex: number }>(n.clientAddr, 'cluster', 'Status', {}, 500);
    return r.ok ? r.value : undefined;
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
