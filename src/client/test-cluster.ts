// Test helper: a real N-node cluster in this process on 127.0.0.1 (free ports picked by
// binding port 0), fast ticks, data under os.tmpdir() removed on stop. Used by the SDK and
// kvctl tests; not part of the SDK's public entry point.

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultNodeConfig, type NodeConfig, type PeerSpec } from '../server/config.js';
import { startNode, type RunningNode } from '../server/server.js';

/** Distinct free TCP ports on 127.0.0.1 (all held open together, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve(s));
      }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

export interface TestCluster {
  specs: PeerSpec[];
  /** Client addresses, in member-id order (id 1 first). */
  endpoints: string[];
  nodes: Map<number, RunningNode>;
  /** The current leader's id once one is elected with every live node agreeing (throws on timeout). */
  waitForLeader(timeoutMs?: number): Promise<number>;
  stopNode(id: number): Promise<void>;
  /** Stops every node still running and removes the data directories. */
  stop(): Promise<void>;
}

export async function startTestCluster(opts: { size?: number; tickIntervalMs?: number; overrides?: Partial<NodeConfig> } = {}): Promise<TestCluster> {
  const size = opts.size ?? 3;
  const root = await mkdtemp(join(tmpdir(), 'raftkv-client-test-'));
  const ports = await freePorts(size * 2);
  const specs: PeerSpec[] = Array.from({ length: size }, (_, i) => ({
    id: i + 1,
    clientAddr: `127.0.0.1:${ports[i]}`,
    peerAddr: `127.0.0.1:${ports[size + i]}`,
  }));
  const nodes = new Map<number, RunningNode>();
  try {
    for (const s of specs) {
      const cfg = defaultNodeConfig({
        id: s.id,
        dataDir: join(root, `node-${s.id}`),
        clientAddr: s.clientAddr,
        peerAddr: s.peerAddr,
        initialCluster: specs,
        tickIntervalMs: opts.tickIntervalMs ?? 20,
        defaultRequestTimeoutMs: 3_000,
        logLevel: 'silent',
        ...opts.overrides,
      });
      nodes.set(s.id, await startNode(cfg));
    }
  } catch (e) {
    for (const n of nodes.values()) await n.stop().catch(() => undefined);
    await rm(root, { recursive: true, force: true });
    throw e;
  }
  const cluster: TestCluster = {
    specs,
    endpoints: specs.map((s) => s.clientAddr),
    nodes,
    async waitForLeader(timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        const live = [...nodes.values()];
        const leaders = live.filter((n) => n.host.isLeader());
        if (leaders.length === 1) {
          const id = leaders[0]!.host.cfg.id;
          if (live.every((n) => n.host.rawNode.raft.lead === id)) return id;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`no leader within ${timeoutMs} ms`);
    },
    async stopNode(id) {
      const n = nodes.get(id);
      if (!n) return;
      nodes.delete(id);
      await n.stop();
    },
    async stop() {
      const all = [...nodes.values()];
      nodes.clear();
      await Promise.all(all.map((n) => n.stop()));
      await rm(root, { recursive: true, force: true });
    },
  };
  return cluster;
}
